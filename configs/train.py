"""Training configs: ``--config=configs/train.py:<algo>/<env>`` (e.g. ``td3/hopper``), or no argument for the
quickstart (a small PPO run on inverted_pendulum that finishes in a few minutes on a 2-core CPU).
``ppo_relu/<env>`` is PPO with ReLU networks and observation normalisation, for ``experiments/regions.py``.

Env suites (`rlland.envs`): ``<env>`` is a bare Brax name (``hopper``), ``minatar_<game>`` (``ppo/minatar_breakout``:
the env ``minatar/breakout``) or ``dmc_<task>`` (``sac/dmc_cheetah_run``: ``dmc/cheetah_run``). PPO on MinAtar
(`ppo_minatar`) takes the representation study's PPO-on-Atari algorithm with a CNN, at PureJaxRL's MinAtar
scale; ``ppo_mlp/minatar_<game>`` is the same with PureJaxRL's MLP. TD3/SAC on DM Control keep their defaults.

Defaults are the return-landscapes study's (reference A.1-A.3): TD3/SAC train 1M steps with evaluation every
10k steps and snapshots at 50k, 150k, ..., 950k; PPO trains 60M steps (2048 envs x 16 steps per iteration) with
ten snapshots. Override anything on the command line: ``--config.num_seeds=20 --config.agent.learning_rate=1e-3``.
Sweeps: ``--config.sweep.learning_rate="(1e-4,3e-4,1e-3)"`` trains every point's seeds in one kernel
(`rlland.sweep`).
The agent keys (``c.agent``) are the agents' ``default_config``: initialiser scales, ``lr_schedule`` /
``lr_schedule_steps``, ``reward_scaling`` / ``normalize_rewards`` among them (`rlland.agents.base`).
"""
import ml_collections

from rlland import agents, envs


def base(algo: str, env: str) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.algo = algo
    env = envs.from_preset(env)
    c.env = ml_collections.ConfigDict(dict(name=env, backend="spring", episode_length=_episode_length(env)))
    c.agent = agents.default_config(algo)
    c.seed = 0
    c.num_seeds = 1
    c.total_steps = 1_000_000
    c.eval_interval = 10_000
    c.eval_episodes = 10
    # the evaluation env: the training task with these settings over c.env's (rlland.runs.build_eval_env);
    # "" / 0 = the training env's, e.g. --config.eval_env.fixed_start=True for the study's fixed start (A.4)
    c.eval_env = ml_collections.ConfigDict(dict(backend="", episode_length=0, fixed_start=False))
    c.eval_env.kwargs = ml_collections.ConfigDict()
    c.checkpoint_interval = 50_000
    c.keep_checkpoints = 2
    c.snapshot_steps = tuple(50_000 + 100_000 * i for i in range(10))
    c.run_dir = ""
    c.force = False
    c.progress = True
    c.on_divergence = "continue"  # a seed with non-finite params or losses is flagged; "stop" ends the run
    c.wandb = ml_collections.ConfigDict(dict(mode="offline", project="rlland", console=False))  # console: wandb output
    # a sweep in one kernel (rlland.sweep): traced agent keys -> values, e.g. --config.sweep.learning_rate="(1e-4,1e-3)";
    # several keys make a grid, or are zipped with sweep_mode="zip"; a static key (a shape) is refused
    c.sweep = ml_collections.ConfigDict({k: () for k in c.agent.keys()})
    c.sweep_mode = "grid"
    return c


def _episode_length(env: str) -> int:
    """The suite's time limit: MinAtar gymnax's ``max_steps_in_episode`` (1000, freeway 2500), else 1000 (Brax, DM
    Control, the study's)."""
    return envs.make(env).episode_length if env.startswith("minatar/") else 1000


def ppo(env: str) -> ml_collections.ConfigDict:
    if envs.from_preset(env).startswith("minatar/"):
        return ppo_minatar(env)
    c = base("ppo", env)
    per_iter = c.agent.num_envs * c.agent.unroll_length  # 32768
    c.total_steps = 1830 * per_iter  # ~60M as in the study (1831 iterations there)
    c.eval_interval = 61 * per_iter  # 30 evaluations
    c.checkpoint_interval = 183 * per_iter
    c.snapshot_steps = tuple(183 * per_iter * (i + 1) for i in range(10))
    return c


def quickstart() -> ml_collections.ConfigDict:
    c = ppo("inverted_pendulum")
    c.env.episode_length = 200
    c.agent.update(num_envs=32, unroll_length=32, num_minibatches=4, learning_rate=3e-3)
    c.num_seeds = 4
    c.total_steps = 30 * 1024
    c.eval_interval = c.checkpoint_interval = 5 * 1024
    c.snapshot_steps = (10 * 1024, 20 * 1024)
    c.run_dir = "runs/quickstart"
    return c


def ppo_relu(env: str) -> ml_collections.ConfigDict:
    """PPO with ReLU actor and critic and observation normalisation, for the linear-regions analysis
    (Cohan et al.'s SB3 PPO used ReLU MLPs and VecNormalize; reference B.1); otherwise as `ppo`."""
    c = ppo(env)
    c.agent.activation = "relu"
    c.agent.normalize_observations = True
    return c


def ppo_minatar(env: str, network: str = "cnn") -> ml_collections.ConfigDict:
    """PPO on a MinAtar game: the representation study's PPO-on-Atari settings (reference
    ``representation-regions-qd.md`` A.7: clip 0.1, entropy 0.01, value coefficient 0.5, max grad norm 0.5, 4 epochs,
    ReLU, Adam eps 1e-8, linearly annealed learning rate, separate actor and critic) at PureJaxRL's MinAtar scale
    (``purejaxrl/ppo.py`` MinAtar config: 64 envs x 128 steps, 8 minibatches of 1024, lr 5e-4, 1e7 steps, where the
    study's Atari runs used 8 x 128, 4 minibatches, lr 2.5e-4, 100M steps). ``network="cnn"``: MinAtar's reduction
    of the study's Nature CNN (16 3x3 filters, dense 128; `rlland.networks.CNN`); ``"mlp"``: PureJaxRL's 64-64
    ReLU MLP. The learning rate anneals over ``lr_schedule_steps`` (the preset's total; set it with total_steps)."""
    c = base("ppo", env)
    c.agent.update(network=network, hidden_sizes=(128,) if network == "cnn" else (64, 64), activation="relu",
                   conv_features=(16,), conv_kernel=3, conv_stride=1, num_envs=64, unroll_length=128,
                   num_minibatches=8, epochs=4, learning_rate=5e-4, clip_eps=0.1, ent_coef=0.01, vf_coef=0.5,
                   max_grad_norm=0.5, adam_eps=1e-8, gamma=0.99, gae_lambda=0.95)
    per_iter = c.agent.num_envs * c.agent.unroll_length  # 8192
    c.total_steps = 1220 * per_iter  # ~1e7
    c.agent.lr_schedule, c.agent.lr_schedule_steps = "linear", c.total_steps
    c.eval_interval = 61 * per_iter  # 20 evaluations
    c.checkpoint_interval = 122 * per_iter
    c.snapshot_steps = tuple(122 * per_iter * (i + 1) for i in range(10))
    return c


def ppo_mlp(env: str) -> ml_collections.ConfigDict:
    """`ppo_minatar` with PureJaxRL's MLP instead of the CNN (MinAtar games only)."""
    if not envs.from_preset(env).startswith("minatar/"):
        raise ValueError(f"ppo_mlp/<env> is for MinAtar games (minatar_<game>), got {env!r}")
    return ppo_minatar(env, network="mlp")


PRESETS = {"ppo": ppo, "ppo_relu": ppo_relu, "ppo_mlp": ppo_mlp}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if not arg or arg == "quickstart":
        return quickstart()
    try:
        algo, env = arg.split("/")
    except ValueError:
        raise ValueError(f"config argument must look like <algo>/<env> (e.g. td3/hopper), got {arg!r}") from None
    return PRESETS[algo](env) if algo in PRESETS else base(algo, env)
