"""Policy-gradient-subspace analysis settings: ``--config=configs/subspaces.py`` (the study's settings) or
``--config=configs/subspaces.py:quick`` (small k and batches for a CPU look at a run in minutes).

Used by ``experiments/subspaces.py --run_dir=<training run>`` (``rlland.curvature.run_analysis.analyse_run``; the
h5 layout is ``rlland.curvature.layout``). Defaults follow Schneider et al. 2024 (reference
``landscapes-and-subspaces.md`` B.2-B.4): top-100 eigenvectors of the actor and critic Hessians, fractions and
overlaps at k in {1, 2, 5, 10, 20, 50, 100}, the whole replay buffer (TD3 / SAC) or 10^6 fresh samples (PPO) for
the Hessian and the true gradient, 2048 // batch_size replay minibatches (or one PPO training rollout in the
agent's minibatches) for the estimated gradient; the study's loss definitions (``losses="study"``: SAC critic
``0.5 * sum_i MSE``, PPO critic ``vf_coef * MSE``, TD3 actor ``-Q1``; ``rlland.curvature.study_losses`` gives each
with its source; ``losses="agent"``: rlland's training losses); all four gradient-fraction variants (true /
estimated gradient x big-batch / ``low_sample`` Hessian); the Hessian's SLQ spectral density per snapshot.
"""
import ml_collections

from rlland import runs
from rlland.curvature import SUBSPACE_KS


def study() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        run_dir="",  # the training run (set by the <algo>/<env> presets); --run_dir overrides
        steps=(),  # snapshot steps to analyse, e.g. --config.steps="(50000, 550000)"; empty = every snapshot
        seeds=(),  # seed indices, e.g. --config.seeds="(0, 1)"; empty = every seed of the run
        seed=0,  # analysis keys: fold_in(fold_in(PRNGKey(seed), step), seed_index)
        k=100,  # eigenvectors per Hessian (clipped to the block's parameter count)
        # Thick-restart Lanczos (rlland.curvature.lanczos_eigh): basis size per cycle (clipped to the parameter
        # count), the reference eigsh's ncv = 2k + 1; pairs converge to ||H v - lambda v|| <= tol * max|lambda|
        # (the reference's tol) within max_matvecs HVPs (0: num_iters + 20 restarts' worth, 1,221 for k = 100);
        # unconverged pairs are flagged in the h5 (eigenvalue_converged) and warned about.
        num_iters=201,
        tol=1e-4,
        max_matvecs=0,
        ks=SUBSPACE_KS,  # levels for fractions and overlaps (clipped to k)
        # TD3/SAC: transitions of the replay buffer for the Hessian / true gradient, 0 = the whole valid buffer
        # (capped to the buffer's size); PPO: fresh on-policy samples (rounded up to whole rollouts),
        # 0 = 10^6 (run_analysis.ON_POLICY_SAMPLES).
        num_samples=0,
        num_minibatches=0,  # TD3/SAC estimated gradient: 0 = 2048 // minibatch_size (PPO: must stay 0)
        minibatch_size=0,  # TD3/SAC: 0 = the agent's batch_size (PPO: must stay 0)
        chunk_size=0,  # TD3/SAC: evaluate the big-batch loss in chunks of this size to bound memory (0 = off)
        combined=True,  # also the combined loss (actor + critic, merged eigenbasis), as the reference
        # "study": the subspace study's loss definitions (rlland.curvature.study_losses, B.1): SAC critic 0.5 x,
        # PPO critic 2 x rlland's, TD3 actor -Q1; "agent": the agent's own training losses
        losses="study",
        # the study's "low_sample" Hessian (B.2): the same eigensolve on the estimated gradient's minibatches
        # concatenated (~2048 samples); gives the low_sample/ fraction variants (B.3, B.5)
        low_sample=True,
        # stochastic Lanczos quadrature of each block's Hessian (spectral density over training; PyHessian's
        # defaults: 1 probe, 100 Lanczos steps; num_probes=0: off)
        slq=dict(num_probes=1, num_iters=100),
        overlap_steps=(),  # t1 steps for overlaps (must be analysed snapshots); empty = every analysed snapshot
        figures=True,
        figure_ks=(1, 10, 100),  # levels drawn in the fraction and overlap figures (clipped to what exists)
    ))


def quick() -> ml_collections.ConfigDict:
    c = study()
    c.k = 20
    c.num_iters = 60
    c.num_samples = 8192
    c.slq.num_iters = 40
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """``study`` (default), ``quick``, or ``<algo>/<env>[/quick]``: those settings on the run
    ``runs/<algo>-<env>-seed0`` (the name ``experiments/train.py --config=configs/train.py:<algo>/<env>`` gives it;
    ``--run_dir`` overrides)."""
    if not arg or arg == "study":
        return study()
    if arg == "quick":
        return quick()
    parts = arg.split("/")
    if len(parts) in (2, 3) and (len(parts) == 2 or parts[2] in ("study", "quick")):
        c = quick() if parts[-1] == "quick" and len(parts) == 3 else study()
        c.run_dir = runs.preset_run_dir(*parts[:2])
        return c
    raise ValueError(f"config argument must be empty, 'study', 'quick' or <algo>/<env>[/quick], got {arg!r}")
