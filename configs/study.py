"""Study configs: ``--config=configs/study.py:<study>[/<scale>]`` for ``experiments/study.py``
(`rlland.studies.run`), study in {return_landscapes, pg_subspaces, representation, linear_regions, dqd} and
scale in {smoke, cpu, paper} (default cpu).

* ``paper``: the papers' settings as far as the references give them (``../shared/reference``): budgets, seeds,
  sample counts, k = 100, 1M QD evaluations. Settings a reference does not give are rlland's choice and named
  in ``reductions`` (shown in the report).
* ``cpu``: reduced to run on a 2-core CPU; every reduction is listed in ``reductions``.
* ``smoke``: CI-sized (tiny nets, probe tasks or short episodes, a few steps): the report is produced and
  well-formed, its numbers mean nothing.

A study config holds the drivers' configs (``train.<label>``: ``configs/train.py`` presets; ``qd.<label>``:
``configs/qd.py`` presets) and the analyses' configs (``configs/{purd,interpolate,reject,subspaces,
representation,regions}.py``), so any key can be overridden, e.g. ``--config.train.td3.num_seeds=5``.
"""
import ml_collections

from rlland import configs

STUDIES = ("return_landscapes", "pg_subspaces", "representation", "linear_regions", "dqd")
SCALES = ("smoke", "cpu", "paper")


def _common(study: str, scale: str) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.study, c.scale = study, scale
    c.run_dir = f"runs/study-{study}-{scale}"
    c.force = False
    c.progress = True
    c.reductions = ()
    return c


def _quiet(t, scale):
    t.progress = False
    t.wandb.mode = "disabled" if scale == "smoke" else "offline"
    return t


# -- return landscapes (Rahn et al. 2023; reference A) --------------------------------------------------------
def return_landscapes(scale: str) -> ml_collections.ConfigDict:
    c = _common("return_landscapes", scale)
    if scale == "paper":  # A.1 / README: TD3 on halfcheetah, 20 seeds, 1M steps, snapshots 50k ... 950k
        t = configs.load("train", "td3/halfcheetah")
        t.num_seeds = 20
    elif scale == "cpu":
        # hopper, not inverted_pendulum: TD3 does not learn spring inverted_pendulum within 60k steps (neither does
        # rejax's TD3 on the same task), and a policy that never balances has no left tail to measure
        t = configs.load("train", "td3/hopper")
        t.update(num_seeds=4, total_steps=60_000, eval_interval=10_000, checkpoint_interval=10_000,
                 snapshot_steps=(20_000, 30_000, 40_000, 50_000, 60_000))
        c.reductions = ("hopper instead of halfcheetah (same 256-256 TD3, 1000-step episodes); 4 seeds; 60k steps "
                        "(10k warm-up), 5 snapshots", "PURD 200 samples (paper 1000); interpolation 20 points x 20 "
                        "samples on pairs of seed 0 (paper 100 x 100, seeds 0-9)", "rejection 10 proposals, "
                        "100 samples, seeds 0-1 x 2 repeats, from one snapshot (paper 40, 1000, seeds 0-9 x 10 "
                        "repeats, 10 snapshots)")
    else:
        t = configs.load("train", "td3/probe_action")
        t.env.episode_length = 5
        t.agent.update(hidden_sizes=(16, 16), num_envs=2, batch_size=8, buffer_capacity=128, warmup_steps=16)
        t.update(num_seeds=2, total_steps=96, eval_interval=32, eval_episodes=3, checkpoint_interval=32,
                 snapshot_steps=(32, 64, 96))
        c.reductions = ("smoke: a 1-step probe task, 16-16 nets, 2 seeds, 96 steps, a few samples",)
    c.train = ml_collections.ConfigDict({"td3": _quiet(t, scale)})
    c.purd = configs.load("purd")
    c.interpolate = configs.load("interpolate")
    c.reject = configs.load("reject")
    c.reject_steps = ()  # snapshots the rejection runs start from (empty: the first)
    if scale == "paper":
        c.interpolate.seeds = tuple(range(10))  # A.6 README: seeds 0..9, 100 points x 100 samples
        c.reject.update(seeds=tuple(range(10)), num_repeats=10)  # A.7 README: root seeds and reject seeds 0..9
        c.reject_steps = tuple(t.snapshot_steps)
    elif scale == "cpu":
        c.purd.update(num_samples=200, chunk_size=100)
        c.interpolate.update(seeds=(0,), num_points=20, num_samples=20, chunk_size=20)
        c.reject.update(seeds=(0, 1), max_steps=10, num_samples=100, num_repeats=2, chunk_size=100)
        c.reject_steps = (40_000,)
    else:
        c.purd.update(num_samples=8, chunk_size=0)
        c.interpolate.update(steps=(32, 96), num_points=3, num_samples=4, chunk_size=0)
        c.reject.update(max_steps=2, num_samples=4, num_repeats=2, chunk_size=0)
    return c


# -- policy-gradient subspaces (Schneider et al. 2024; reference B) -------------------------------------------
def _sb3_ppo(t):
    """SB3's PPO defaults as the study's ``ppo_default`` (B.0): 1 env x 2048 steps, minibatch 64, 10 epochs."""
    t.agent.update(num_envs=1, unroll_length=2048, num_minibatches=32, epochs=10, learning_rate=3e-4,
                   max_grad_norm=0.5, vf_coef=0.5, clip_eps=0.2, ent_coef=0.0)
    return t


def pg_subspaces(scale: str) -> ml_collections.ConfigDict:
    c = _common("pg_subspaces", scale)
    if scale == "paper":  # B.0: SAC and PPO (SB3 defaults), 1M steps, analysed every 100k (ppo: 102,400)
        sac = configs.load("train", "sac/hopper")
        sac.update(num_seeds=5, total_steps=1_000_000, eval_interval=10_000, checkpoint_interval=100_000,
                   snapshot_steps=tuple(100_000 * i for i in range(1, 11)))
        ppo = _sb3_ppo(configs.load("train", "ppo/hopper"))
        ppo.update(num_seeds=5, total_steps=49 * 20_480, eval_interval=20_480, checkpoint_interval=102_400,
                   snapshot_steps=tuple(102_400 * i for i in range(1, 10)) + (49 * 20_480,))
        c.train = ml_collections.ConfigDict({"sac": _quiet(sac, scale), "ppo": _quiet(ppo, scale)})
        c.reductions = ("one env (Brax hopper, spring) of the paper's nine gym MuJoCo tasks; 5 seeds (the "
                        "reference does not give the count); PPO snapshots on 2048-step iteration boundaries",)
    elif scale == "cpu":
        sac = configs.load("train", "sac/inverted_pendulum")
        sac.env.episode_length = 200
        sac.agent.update(hidden_sizes=(64, 64), buffer_capacity=50_000)
        sac.update(num_seeds=3, total_steps=30_000, eval_interval=5_000, checkpoint_interval=10_000,
                   snapshot_steps=(10_000, 20_000, 30_000))
        c.train = ml_collections.ConfigDict({"sac": _quiet(sac, scale)})
        c.reductions = ("SAC only (no PPO) on inverted_pendulum (200-step episodes), 64-64 nets, 3 seeds, 30k "
                        "steps, 3 snapshots", "k = 50 eigenvectors with 120 Lanczos steps (paper k = 100); "
                        "Hessians on 20,000 replay transitions (paper: the whole buffer)")
    else:
        t = configs.load("train", "td3/probe_observation")
        t.env.episode_length = None
        t.agent.update(hidden_sizes=(8, 8), num_envs=2, batch_size=16, buffer_capacity=64, warmup_steps=16,
                       learning_rate=1e-3)
        t.update(num_seeds=2, total_steps=192, eval_interval=64, eval_episodes=2, checkpoint_interval=64,
                 snapshot_steps=(64, 128, 192))
        c.train = ml_collections.ConfigDict({"td3": _quiet(t, scale)})
        c.reductions = ("smoke: TD3 on a 1-step probe task, 8-8 nets, 2 seeds, 192 steps, k = 5",)
    c.subspaces = configs.load("subspaces")
    c.subspaces.overlap_steps = ()  # set below: the first snapshot after the early phase
    if scale == "cpu":
        c.subspaces.update(k=50, num_iters=120, num_samples=20_000)
    elif scale == "smoke":
        c.subspaces.update(k=5, num_iters=24, tol=1e-3, figure_ks=(1, 5))
    c.overlap_from = 1  # index of the snapshot used as t1 (the paper: 100k, the first analysed after step 0)
    return c


# -- representation collapse (Moalla et al. 2024; reference part A of representation-regions-qd) ---------------
def representation(scale: str) -> ml_collections.ConfigDict:
    c = _common("representation", scale)
    if scale == "paper":  # A.7 MuJoCo: 2 envs x 1024, minibatch 64, epochs 10 (sweep 10/15/20), 5M steps, 5 seeds
        base = configs.load("representation", "train/hopper")
        base.agent.update(num_envs=2, unroll_length=1024, num_minibatches=32, epochs=10, learning_rate=3e-4,
                          max_grad_norm=0.5, vf_coef=0.5, clip_eps=0.2, ent_coef=0.0, log_every=2,
                          log_samples=2048,
                          # A.1/A.7: TanhNormal with a state-dependent scale, one clip + Adam per network, torch eps
                          policy="tanh_gaussian", clip_per_network=True, adam_eps=1e-8)
        per_chunk = 61 * 2048
        base.update(num_seeds=5, total_steps=40 * per_chunk, eval_interval=per_chunk, checkpoint_interval=per_chunk,
                    snapshot_steps=tuple(per_chunk * i for i in range(41)))
        epochs, c.reductions = (10, 20), ("one task (Brax hopper, spring) of the paper's four; 40 x 61 "
                                          "iterations = 4,997,120 steps (5M on iteration boundaries)",)
        c.plasticity = configs.load("representation")
    elif scale == "cpu":
        # hopper with ReLU, lr 3e-3 and 32 epochs of 16 minibatches: the cheapest setting found where the high-epoch
        # run's rank collapses within 100 iterations (3 seeds, chunk means: 42-44 in the first 10 iterations -> 5.5-10.3
        # of 64 units in the last, 26-54 dead, vs 37-40 -> 24-31 with 4 epochs; the whole study takes 17.5 min on the
        # shared 2-core CPU). The quickstart's inverted_pendulum never did (rank rose from 3-4 to 5-7 with
        # 4 and 12 epochs). rlland's Gaussian head (state-independent log-std) is kept: with policy="tanh_gaussian"
        # (A.1) the 32-epoch run diverged (non-finite params at 20-31k steps, 3 of 3 seeds)
        base = configs.load("representation", "train/hopper")
        base.agent.update(activation="relu", normalize_observations=True, num_envs=32,
                          unroll_length=32, num_minibatches=16, learning_rate=3e-3, log_every=1, log_samples=1024)
        per_chunk = 10 * 32 * 32
        base.update(num_seeds=3, total_steps=10 * per_chunk, eval_interval=per_chunk, checkpoint_interval=per_chunk,
                    eval_episodes=4, snapshot_steps=(0, 5 * per_chunk, 10 * per_chunk))
        epochs = (4, 32)
        c.plasticity = configs.load("representation", "quick")
        c.reductions = ("one task (Brax hopper, spring) of the paper's four, 3 seeds, 100 iterations of 32 envs x 32 "
                        "steps = 102,400 steps (paper 2 x 1024 per iteration, 5M steps); minibatch 64 (16 per "
                        "epoch) as the paper", "ReLU (one of the paper's two MuJoCo activations) with running "
                        "observation normalisation (paper: fixed from random rollouts); lr 3e-3 (paper 3e-4) and "
                        "epochs 4 vs 32 (paper 10 vs 20) so that the collapse happens within the budget",
                        "rlland's PPO defaults elsewhere: Gaussian policy with a state-independent log-std "
                        "(paper: TanhNormal, which diverged here with 32 epochs), value coefficient 2 (paper 0.5), "
                        "max grad norm 1 (paper 0.5), Adam eps 1e-5 (paper 1e-8)",
                        "diagnostics every iteration on 1024 samples (the whole rollout batch, as A.4); snapshots "
                        "at 0, 51,200 and 102,400 steps", "plasticity probe 4 x 250 observations, 2 epochs (paper "
                        "4 x 1000, 4 epochs)")
    else:
        base = configs.load("train", "ppo/probe_observation")
        base.env.episode_length = 5
        base.agent.update(hidden_sizes=(16, 16), num_envs=4, unroll_length=8, num_minibatches=2, log_every=1,
                          log_samples=32)
        base.update(num_seeds=2, total_steps=256, eval_interval=64, eval_episodes=3, checkpoint_interval=128,
                    snapshot_steps=(0, 128, 256))
        epochs = (1, 3)
        c.plasticity = configs.load("representation", "quick")
        c.plasticity.plasticity.update(num_envs=2, num_steps=16, epochs=1, minibatch_size=8)
        c.reductions = ("smoke: PPO on a 1-step probe task, 16-16 nets, 2 seeds, 8 iterations; epochs 1 vs 3; "
                        "every run has the PFO term, at coefficient 0 but in the PFO run",)
    runs_ = {}
    for name, n, pfo in (("low_epochs", epochs[0], False), ("high_epochs", epochs[1], False),
                         ("high_epochs_pfo", epochs[1], True)):
        t = ml_collections.ConfigDict(base.to_dict())
        t.agent.epochs = n
        if pfo:  # the study's coefficient: 1 for tanh networks, 10 for relu (A.6)
            t.agent.update(pfo="last", pfo_coef=1.0 if t.agent.activation == "tanh" else 10.0)
        elif scale == "smoke":
            # smoke: the PFO term built in at coefficient 0 (traced; adds exact zeros, so the same updates as
            # plain PPO), so the three runs share their init, evaluation and plasticity-probe kernels and the
            # two high-epoch runs their training kernel (one compile instead of two)
            t.agent.pfo = "last"
        runs_[name] = _quiet(t, scale)
    c.train = ml_collections.ConfigDict(runs_)
    return c


# -- linear regions (Cohan et al. 2022; reference B) ----------------------------------------------------------
def linear_regions(scale: str) -> ml_collections.ConfigDict:
    c = _common("linear_regions", scale)
    if scale == "paper":  # B.1/B.4: SB3 PPO, ReLU policy of one hidden layer of 16, HalfCheetah, 32 checkpoints
        t = configs.load("train", "ppo_relu/halfcheetah")
        t.agent.update(hidden_sizes=(16,), num_envs=8, unroll_length=1000, num_minibatches=125, epochs=10,
                       learning_rate=3e-4, max_grad_norm=0.5, vf_coef=0.5, clip_eps=0.2, ent_coef=0.0)
        t.update(num_seeds=5, total_steps=1_024_000, eval_interval=32_000, checkpoint_interval=32_000,
                 snapshot_steps=tuple(32_000 * i for i in range(1, 33)))
        c.regions = configs.load("regions")
        c.reductions = ("Brax halfcheetah (spring) for gym HalfCheetah-v2; the reference gives no training budget: "
                        "1,024,000 steps (32 checkpoints as its run 52fy9iwo); 5 seeds; one net for policy and "
                        "value widths (16; the study's value net is 32-32)",)
    elif scale == "cpu":
        t = configs.load("train", "ppo_relu/inverted_pendulum")
        t.env.episode_length = 200
        t.agent.update(hidden_sizes=(16,), num_envs=32, unroll_length=32, num_minibatches=4, learning_rate=3e-3)
        t.update(num_seeds=10, total_steps=80 * 1024, eval_interval=10 * 1024, checkpoint_interval=10 * 1024,
                 snapshot_steps=tuple(10 * 1024 * i for i in range(1, 9)))
        c.regions = configs.load("regions", "quick")
        c.regions.num_episodes.random = 10
        c.reductions = ("inverted_pendulum (200-step episodes) instead of HalfCheetah, 10 seeds, 81,920 steps, "
                        "8 snapshots", "trajectories of 200 steps, 10 random trajectories, 20 lines per family, "
                        "plane pictures as exact polygons (grid counts at 100 x 100 beside them) (paper 1000 steps, 10 "
                        "random trajectories, 100 lines)")
    else:
        # the study's own 1-D car (reference B.1; pure JAX, rlland.envs.car), not a Brax task: every kernel here
        # (training chunk, evaluation, the analysis' trajectory collection) holds a rollout, and a Brax rollout
        # costs ~10 s of compile per kernel; the analysis code is the same for every env (analysis_env)
        t = configs.load("train", "ppo_relu/car1d")
        t.env.episode_length = 20
        t.agent.update(hidden_sizes=(8,), num_envs=4, unroll_length=8, num_minibatches=2, epochs=1)
        t.update(num_seeds=2, total_steps=96, eval_interval=32, eval_episodes=2, checkpoint_interval=32,
                 snapshot_steps=(32, 64, 96))
        c.regions = configs.load("regions", "quick")
        c.regions.update(length=0, num_lines=8)
        c.regions.num_episodes.random = 2
        c.regions.plane.update(resolution=16, gridlines=False)
        c.reductions = ("smoke: the 1-D car (car1d) with 20-step episodes, one hidden layer of 8, 2 seeds, 96 steps",)
    c.train = ml_collections.ConfigDict({"ppo_relu": _quiet(t, scale)})
    return c


# -- DQD (Tjanaka et al. 2022; reference C) -------------------------------------------------------------------
QD_ALGOS = ("map_elites", "pga_me", "cma_mega_es", "cma_mega_td3_es", "me_es")


def dqd(scale: str) -> ml_collections.ConfigDict:
    c = _common("dqd", scale)
    tasks = ("hopper", "walker2d", "halfcheetah", "ant") if scale != "smoke" else ("hopper",)
    # smoke: the baseline and the DQD algorithm with the most machinery (TD3 critic + ES + coefficient CMA-ES); each
    # algorithm is its own compile, and tests/test_qd_*.py cover the other three
    algos = QD_ALGOS if scale != "smoke" else ("map_elites", "cma_mega_td3_es")
    runs_ = {}
    for task in tasks:
        for algo in algos:
            if scale == "paper":  # C.2-C.3: 1M evaluations, 5 seeds, the study's archives and emitters
                q = configs.load("qd", f"{algo}/{task}")
            else:
                q = configs.load("qd", f"{algo}/{task}/quick")
                if scale == "smoke":
                    q.task.episode_length = 10
                    q.task.hidden_sizes = (8, 8)
                    q.archive.grid_shape = (10,)
                    q.total_evals = 4 * 32  # 4 generations of 32 evaluations
                    q.generations_per_chunk = 4
                    q.pga.update(num_critic_training_steps=4, num_pg_training_steps=2, replay_buffer_size=1024,
                                 transitions_batch_size=16, critic_hidden_sizes=(8, 8))
                    q.cma_mega.update(num_critic_training_steps=4, pg_batch_size=64)
                    q.robustness.update(num_episodes=0, every_chunk=False)  # no re-evaluation kernels
            q.progress = False
            q.wandb.mode = "disabled" if scale == "smoke" else "offline"
            runs_[f"{algo}__{task}"] = q
    c.qd = ml_collections.ConfigDict(runs_)
    if scale == "cpu":
        c.reductions = ("configs/qd.py quick presets: 100-step episodes, 16-16 policies, small archives, 2 seeds, "
                        "2048 evaluations per run (paper 1000 steps, 128-128, 1M evaluations, 5 seeds)",)
    elif scale == "smoke":
        c.reductions = ("smoke: hopper only, MAP-Elites and CMA-MEGA (TD3, ES), 10-step episodes, 8-8 policies, 4 "
                        "generations, no robustness re-evaluation",)
    else:
        c.reductions = ("Brax tasks (spring) for the study's PyBullet QDGym; QD score offset is QDax's "
                        "per-task reward offset (configs/qd.py)",)
    return c


BUILDERS = {"return_landscapes": return_landscapes, "pg_subspaces": pg_subspaces,
            "representation": representation, "linear_regions": linear_regions, "dqd": dqd}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    parts = (arg or "").split("/")
    if not arg or len(parts) > 2 or parts[0] not in BUILDERS or (len(parts) == 2 and parts[1] not in SCALES):
        raise ValueError(f"config argument must look like <study>[/<scale>] with study in {', '.join(STUDIES)} "
                         f"and scale in {', '.join(SCALES)} (default cpu), got {arg!r}")
    return BUILDERS[parts[0]](parts[1] if len(parts) == 2 else "cpu")
