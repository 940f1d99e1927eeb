"""QD configs: ``--config=configs/qd.py:<algo>/<task>`` with algo in {map_elites, pga_me, cma_mega_es,
cma_mega_td3_es, me_es} and task in {hopper, walker2d, halfcheetah, ant}; ``<algo>/<task>/quick`` (or just
``quick`` = ``pga_me/hopper/quick``) is a small run that finishes in minutes on a 2-core CPU (mostly compile time).

Defaults are the differentiable-QD study's (Tjanaka et al. 2022, dqd-rl; reference C), ported to Brax. The
algorithms' settings are read from their modules' settings dataclasses (``<module>.default_config()``, one
place for every default); the values below are documentation:
  * archive grids (C.1): hopper 1000 cells (1-D), walker2d and halfcheetah 32 x 32, ant 6^4; descriptors =
    foot-contact proportions in [0, 1]. ``--config.archive.kind=cvt`` uses a CVT archive of
    ``archive.num_cells`` centroids instead (default 0: as many cells as ``grid_shape``; k-means on
    ``cvt_samples`` uniform samples, ``cvt_iters`` Lloyd iterations, key ``cvt_seed``, one tessellation for all
    seeds; `rlland.qd.driver.archive_builder`);
  * budget (C.2): 1,000,000 evaluations, 100 per generation -> 10,000 generations (the initial population
    counts as the first);
  * episodes of 1000 steps, a fresh random start per evaluation ("a new env seed for each episode"), policy
    MLP obs -> 128 -> 128 -> act with tanh hidden and output (C.1);
  * MAP-Elites: Gaussian emitter sigma 0.02, batch 100 (C.3 ``map_elites.gin``);
  * PGA-ME: 50 Iso+LineDD (iso 0.005, line 0.05) + 49 PG offspring (10 Adam steps, lr 1e-3) + the greedy
    TD3 actor; 300 critic steps per generation; TD3 as ``td3.gin`` (C.3). QDax's differing defaults are in
    `rlland.qd.pga`;
  * CMA-MEGA (ES) and (TD3, ES) (C.3, `rlland.qd.cma_mega`): a generation = gradient phase (theta + 100
    mirrored ES samples, sigma 0.02; the TD3 variant's objective row is the critic's actor gradient over 65,536
    replay samples) + emission phase of 99 (TD3: 98 coefficient samples + the greedy actor) = 200 evaluations,
    so 5000 generations; coefficient CMA-ES sigma_g 1.0, mu 49, step 1.0, restart when nothing was added, the
    study's CMA-ES update (``cma_mega.cma_es_update="dqd_rl"``, dqd-rl's purecma port; "evosax" for evosax's
    textbook CMA-ES, `rlland.qd.cma_es`), the TD3 greedy actor inserted before the CMA-ES solutions;
    TD3 (``c.pga``'s keys) critic trained 600 steps per generation from the second on;
  * ME-ES (C.3 ``me_es.gin``, `rlland.qd.me_es`): one generation = one ES iteration of 200 rollouts (100 workers
    x 2 mirrored, sigma 0.02, action noise 0.01, running observation normalisation, centered ranks, Adam lr
    0.01 + L2 0.005) from a start cell kept for 10 iterations, explore (novelty, k = 10, ``novelty_bias``) and
    exploit (``best2inlast5_or_best``) chains alternating, then one noiseless evaluation of the new parameters
    for the archive. The budget counts the ES rollouts, as the study (5000 iterations x 200 = 1M); the 5000
    archive evaluations are not counted (``--config.me_es.count_archive_evals=True`` counts them: 201 per
    generation);
  * robustness (C.4): best elite re-evaluated with 10 episodes at the end of every chunk; mean elite robustness
    over the final archive with 10 episodes;
  * 5 seeds (the paper's figures average 5).
QD score: the study's convention ``sum (f - f_min)``. The study's f_min values are for PyBullet QDGym and do
not bound Brax returns, so f_min defaults to QDax's per-task offset, ``-reward_offset[task] * episode_length``
(hopper 0.9, walker2d 1.413, halfcheetah 9.231, ant 3.24 per step); that makes the number equal to QDax's QD
score. Override with ``--config.f_min=...``.

Override anything on the command line, e.g. ``--config.num_seeds=2 --config.pga.num_pg_training_steps=100``.
"""
import ml_collections

from rlland.qd import cma_mega, map_elites, me_es, pga

ALGOS = ("map_elites", "pga_me", "cma_mega_es", "cma_mega_td3_es", "me_es")
TASKS = ("hopper", "walker2d", "halfcheetah", "ant")
GRIDS = {"hopper": (1000,), "walker2d": (32, 32), "halfcheetah": (32, 32), "ant": (6, 6, 6, 6)}
REWARD_OFFSET = {"ant": 3.24, "halfcheetah": 9.231, "hopper": 0.9, "walker2d": 1.413}  # QDax, per step
# the config section holding each algorithm's settings (its traced ones can be swept: rlland.qd.driver)
SWEEP_SECTION = {"map_elites": "emitter", "pga_me": "pga", "cma_mega_es": "cma_mega", "cma_mega_td3_es": "pga",
                 "me_es": "me_es"}
# the algorithms' defaults live in their modules (settings dataclasses); these read them
BATCH_SIZE = {"map_elites": map_elites.BATCH_SIZE, "pga_me": pga.BATCH_SIZE, "cma_mega_es": cma_mega.BATCH_SIZE,
              "cma_mega_td3_es": cma_mega.BATCH_SIZE, "me_es": me_es.BATCH_SIZE}


def base(algo: str, task: str) -> ml_collections.ConfigDict:
    if algo not in ALGOS:
        raise ValueError(f"unknown QD algorithm {algo!r}; valid: {', '.join(ALGOS)}")
    if task not in TASKS:
        raise ValueError(f"unknown QD task {task!r}; valid: {', '.join(TASKS)}")
    c = ml_collections.ConfigDict()
    c.algo = algo
    c.task = ml_collections.ConfigDict(dict(name=task, episode_length=1000, hidden_sizes=(128, 128),
                                            backend="spring", random_init=True))
    # kind "cvt": num_cells CVT centroids (0: as many as grid_shape has cells), rlland.qd.driver.archive_builder
    c.archive = ml_collections.ConfigDict(dict(kind="grid", grid_shape=GRIDS[task], num_cells=0, cvt_samples=50_000,
                                               cvt_iters=100, cvt_seed=0))
    c.batch_size = BATCH_SIZE[algo]  # evaluations per generation (CMA-MEGA: the emission batch; ME-ES: ES rollouts)
    c.total_evals = 1_000_000
    c.generations_per_chunk = 50 if algo == "me_es" else 100
    c.checkpoint_every = 10  # chunks
    c.keep_checkpoints = 2
    # QD score = sum over elites of (f - f_min); follows the episode length unless overridden
    c.f_min = c.task.get_ref("episode_length") * (-REWARD_OFFSET[task])
    c.emitter = map_elites.default_config()  # MAP-Elites: rlland.qd.map_elites, rlland.qd.emitters
    c.pga = pga.default_config()  # PGA-ME: rlland.qd.pga (CMA-MEGA (TD3, ES) reads its TD3 keys)
    c.cma_mega = cma_mega.default_config()  # CMA-MEGA (ES) and (TD3, ES): rlland.qd.cma_mega
    c.me_es = me_es.default_config()  # ME-ES: rlland.qd.me_es
    c.robustness = ml_collections.ConfigDict(dict(num_episodes=10, every_chunk=True, block_size=100))
    c.compiler_options = ml_collections.ConfigDict()  # XLA options for every kernel (see rlland.qd.driver.kernels)
    c.seed = 0
    c.num_seeds = 5
    c.run_dir = ""
    c.force = False
    c.progress = True
    c.wandb = ml_collections.ConfigDict(dict(mode="offline", project="rlland"))
    # a sweep in one kernel (rlland.sweep) over the algorithm's traced hyperparameters, e.g. MAP-Elites
    # --config.sweep.sigma="(0.01,0.02)", PGA-ME --config.sweep.iso_sigma=...; its section's other keys are static
    c.sweep = ml_collections.ConfigDict({k: () for k in c[SWEEP_SECTION[algo]].keys()})
    c.sweep_mode = "grid"
    return c


def quick(algo: str = "pga_me", task: str = "hopper") -> ml_collections.ConfigDict:
    """A small run: short episodes, a small policy, critic and archive, 2 seeds, ~60 generations."""
    c = base(algo, task)
    c.task.episode_length = 100
    c.task.hidden_sizes = (16, 16)
    c.archive.grid_shape = {"hopper": (50,), "walker2d": (10, 10), "halfcheetah": (10, 10),
                            "ant": (3, 3, 3, 3)}[task]
    c.archive.update(cvt_samples=5_000, cvt_iters=20)
    c.batch_size = 32
    c.total_evals = 32 * 64
    c.generations_per_chunk = 9
    c.checkpoint_every = 2
    c.emitter.sigma = 0.1
    c.pga.update(num_critic_training_steps=50, num_pg_training_steps=5, replay_buffer_size=50_000,
                 transitions_batch_size=128, critic_hidden_sizes=(64, 64))
    if algo in ("cma_mega_es", "cma_mega_td3_es"):  # 1 + 16 + 15 = 32 evals per generation, 64 generations
        c.batch_size = 15
        c.cma_mega.update(mu=7, num_samples=16, num_critic_training_steps=50, pg_batch_size=1024)
    if algo == "me_es":  # 32 ES rollouts per iteration, 64 iterations (chains of 4 steps)
        c.batch_size = 32
        c.me_es.nb_consecutive_steps = 4
    c.robustness.update(num_episodes=4, block_size=0)
    c.num_seeds = 2
    c.run_dir = f"runs/qd-quick-{algo}-{task}"
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if not arg or arg == "quick":
        return quick()
    parts = arg.split("/")
    if len(parts) == 3 and parts[2] == "quick":
        return quick(parts[0], parts[1])
    if len(parts) != 2:
        raise ValueError(f"config argument must look like <algo>/<task>[/quick] (e.g. pga_me/hopper), got {arg!r}")
    return base(*parts)
