"""Linear-regions analysis settings: ``--config=configs/regions.py`` (the study's settings and protocol, reference
B.2), ``--config=configs/regions.py:quick`` (short trajectories, few lines and a coarse grid: a CPU look in minutes)
or ``--config=configs/regions.py:car1d`` (the study's settings with the state-plane box of its 1-D car picture,
for runs on ``car1d``, :mod:`rlland.envs.car`).

The study's protocol is the default; rlland's earlier choices stay as options (``--config.normalizer=snapshot
--config.line_origin=input --config.plane.frame=rlland``), see :mod:`rlland.regions.analysis`.

Used by ``experiments/regions.py --run_dir=<training run>`` (:func:`rlland.regions.analysis.analyse_run`; that module
documents what is computed and the h5 layout). Every key is read by the analysis, which has no defaults of its own.
The run must have a ReLU actor (PPO's default is tanh: train with ``--config=configs/train.py:ppo_relu/<env>``, ReLU
and observation normalisation as Cohan et al.'s SB3 PPO, or ``--config.agent.activation=relu``).
Override anything on the command line, e.g. ``--config.num_lines=200 --config.steps="(50000, 950000)"``.
"""
import ml_collections

from rlland.envs import car


def study() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        steps=(),  # snapshot steps to analyse, e.g. --config.steps="(50000, 550000)"; empty = every snapshot
        seeds=(),  # seed indices of the run, e.g. --config.seeds="(0, 1)"; empty = every seed
        seed=0,  # analysis keys: fold_in(PRNGKey(seed), seed_index), the same for every snapshot
        fixed_step=-1,  # snapshot whose policy gives the "fixed" trajectories; -1 = the last snapshot of the run
        length=0,  # steps per trajectory (scan length); 0 = the run's episode_length (1000 in the study)
        fixed_start=False,  # start every trajectory from the env's fixed start state
        policy="deterministic",  # fixed / current trajectories: "deterministic" (reference default) | "stochastic"
        # episodes per kind: the reference uses one fixed and one current trajectory and 10 random ones
        num_episodes=dict(fixed=1, current=1, random=10),
        # random trajectories and lines normalised with "reference": the fixed_step snapshot's observation normaliser
        # for every snapshot (the study: the best checkpoint's) | "snapshot": each snapshot's own (rlland's earlier)
        normalizer="reference",
        # "origin" lines through "raw": the raw zero state normalised (the study) | "input": the origin of the
        # normalised input space (rlland's earlier; biases 0 at initialisation put every neuron's hyperplane there)
        line_origin="raw",
        max_pieces=64,  # 1-D buffer per trajectory segment; doubled (up to the exact bound) on overflow
        num_lines=100,  # lines per family (origin, mean), reference B.2 default
        line_max_pieces=0,  # buffer per infinite line; 0 = min(prod(width + 1), max(64, 4 * hidden neurons))
        piece_patterns=True,  # unique patterns over all pieces (the reference's num_regions); False is cheaper
        episode_batch=0,  # > 0: trajectory metrics this many episodes at a time (bounds memory); 0 = all at once
        plane=dict(
            enabled=True,
            frame="study",  # orientation of the square: "study" (the reference's get_sample_plane) | "rlland"
            resolution=200,  # grid points per side of the grid count stored beside the exact polygons
            margin=1.25,  # square half-side / circumradius, as the reference
            gridlines=True,  # also count exactly along the 2R grid lines (a tighter lower bound)
            anchor_seed=0,  # numpy seed for the three anchor states drawn from the fixed trajectory
            state_bounds=(),  # 2-D state spaces: ((x0, x1), (y0, y1)) of raw states drawn; () = the trajectory's box
        ),
        figures=True,
    ))


def quick() -> ml_collections.ConfigDict:
    c = study()
    c.length = 200
    c.num_episodes.random = 2
    c.num_lines = 20
    c.plane.resolution = 100
    return c


def car1d() -> ml_collections.ConfigDict:
    c = study()
    c.plane.state_bounds = car.STATE_PLANE_BOUNDS  # the study's visualize_2d.py box: x in [-50, 150], v in [-20, 20]
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if not arg or arg == "study":
        return study()
    if arg == "quick":
        return quick()
    if arg == "car1d":
        return car1d()
    raise ValueError(f"config argument must be empty, 'study', 'quick' or 'car1d', got {arg!r}")
