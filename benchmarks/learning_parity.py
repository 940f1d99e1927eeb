"""Learning parity: rlland's TD3/SAC against rejax 0.1.3 and its PPO against Brax 0.14.2's own PPO trainer, on
spring ``inverted_pendulum``, ``hopper`` and ``halfcheetah`` (issue 16 item 1).

For every (task, algo) "piece" both sides train ``--seeds`` seeds with the same networks, batch, updates per env
step, hyperparameters and budget, evaluate the deterministic policy every ``eval_interval`` env steps on
``eval_episodes`` fresh random starts (undiscounted return of one ``episode_length`` episode, until the first
termination), and this script reports, per piece:

* eval return vs env steps, mean over seeds and its 95% band (normal approximation), one panel per task x algo:
  ``docs/learning_parity.png``;
* the final return (last evaluation; per seed the mean over its episodes): mean per side with a 95% percentile
  bootstrap interval over seeds (`rlland.bootstrap.mean_interval`), and the ratio rlland / peer of the means
  with a 95% bootstrap interval (`rlland.bootstrap.ratio_interval`, seeds of the two sides resampled apart);
* the target: **met** when rlland's mean final return lies in the peer's interval or above it
  (rlland mean >= the peer interval's lower end), else **missed**.

Sides:

* rlland: ``rlland.train.run`` with ``configs/train.py``'s ``base(algo, env)`` / ``ppo(env)`` and the agent keys
  below; seeds are one vmapped batch (seed i = ``fold_in(PRNGKey(--seed), i)``); the run directory is a scratch
  directory under ``--work_dir`` (checkpoint only at the end, no snapshots, wandb disabled).
* rejax (TD3, SAC): ``benchmarks/peers/rejax_learning.py`` in ``benchmarks/_peers/rejax`` (seeds vmapped,
  ``jax.random.split(PRNGKey(--seed), S)``); same Brax task through rejax's Brax wrapper (``brax/<task>``).
* Brax PPO: ``benchmarks/peers/brax_ppo_learning.py`` in ``benchmarks/_peers/brax_ppo`` (jax 0.7.2; seeds are
  sequential ``ppo.train`` calls, seed = --seed + i).

Matched settings (``PRESETS``; ``--scale full`` is the issue's budget for an accelerator, ``--scale cpu`` the
reduced one that fits a 2-core CPU; both sides always get the same values):

    off-policy (rlland key = rejax field)      full                       cpu
      hidden_sizes = hidden_layer_sizes        256,256 ReLU               64,64 ReLU
      batch_size = batch_size                  256                        128
      learning_rate = learning_rate (all nets) 3e-4                       1e-3
      total env steps per seed                 300k (IP 100k)             8,000
      warmup_steps = fill_buffer               5,000                      1,000
                                               (uniform actions; rejax SAC: policy actions, no updates)
      buffer_capacity = buffer_size            = total env steps (rejax's sampling is O(buffer_size))
      updates_per_step 1 = num_epochs 1, num_envs 1
      gamma 0.99; tau 0.005 = polyak 0.995; no reward scaling, no observation normalisation, no grad clipping
      TD3: policy_delay 2, policy_noise 0.2 = target_noise, noise_clip 0.5 = target_noise_clip,
           exploration_noise 0.1 (rejax default 0.3)
      SAC: init_temperature 1.0 = exp(log_alpha 0), target_entropy -|A| (rejax's; rlland's default is -|A|/2)
    PPO (rlland key = brax ppo.train argument)  full                       cpu
      num_envs = num_envs                      2048                       64
      unroll_length = unroll_length            16                         16
      num_minibatches = num_minibatches        32                         4     (brax batch_size = num_envs/mb)
      epochs = num_updates_per_batch           4                          4
      hidden_sizes (policy and value)          64,64 tanh                 64,64 tanh
      total env steps per seed                 5,242,880                  81,920 (80 iterations)
      learning_rate 3e-4, gamma = discounting 0.99, gae_lambda 0.95, clip_eps = clipping_epsilon 0.2,
      ent_coef = entropy_cost 1e-3, vf_coef = vf_loss_coefficient 0.5 (both 0.5 * coef * mean sq. error),
      max_grad_norm 0.5, adam_eps 1e-8 (optax's default, brax's), normalize_observations on (both running
      mean/std), reward_scaling 1, advantages normalised per minibatch (both)
    evaluation: every T/10 env steps, 10 episodes (cpu: T/4, 5 episodes), deterministic policy (TD3 mu(s), SAC
      tanh(mean), PPO mode); 10 seeds per side (cpu: 5)

Differences that remain (each side's own design, recorded, not changed):

* initialisation: rlland orthogonal (gain sqrt(2) on hidden layers; TD3/SAC output layers sqrt(2) too, the
  study's; PPO policy head 0.01, value head 1.0), rejax/brax lecun-normal/uniform. ``--rlland_agent`` overrides
  rlland keys (e.g. ``actor_output_scale=0.01``) to test the initialisation as a cause.
* time limits: rlland bootstraps at truncation from the true final observation; rejax stores ``done`` (a time
  limit is a termination) and brax (``bootstrap_on_timeout=False``) masks truncated steps out of GAE.
* TD3 actor loss: rlland ``-min(Q1, Q2)`` (the study's), rejax ``-mean(Q1, Q2)``. Losses without rejax's 1/2
  factor (Adam makes the scale irrelevant up to its epsilon).
* PPO policy: rlland a Gaussian with state-independent log-std (init std 1) whose samples the env clips to
  [-1, 1]; brax a tanh-squashed Gaussian (state-independent std, init 1.0).

Pieces are resumable: each side of each piece writes ``<work_dir>/<scale>/<task>-<algo>-<side>.json`` and is
skipped when that file exists. The report (RESULTS.md block ``learning_parity``, the figure and the raw JSON
under ``benchmarks/results/``) is written from whatever pieces exist; ``--report_only`` writes it without
training anything.

    .venv/bin/python benchmarks/learning_parity.py --scale cpu                  # the CPU run (an hour, shared CPU)
    .venv/bin/python benchmarks/learning_parity.py --scale cpu --report_only    # re-render from the pieces
    .venv/bin/python benchmarks/learning_parity.py                               # full scale (accelerator)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import (  # noqa: E402
    ROOT,
    add_report_args,
    finish_report,
    fmt,
    jsonable,
    log,
    run_header,
    run_peer_command,
    start_report,
)

BLOCK = "learning_parity"
TASKS = ("inverted_pendulum", "hopper", "halfcheetah")
ALGOS = ("td3", "sac", "ppo")
PEERS_DIR = os.path.join(ROOT, "benchmarks", "peers")
PEER_VENVS = os.path.join(ROOT, "benchmarks", "_peers")
FIGURE = os.path.join(ROOT, "docs", "learning_parity.png")

# Per scale: off-policy and PPO settings shared by both sides; "steps" per task (env steps per seed).
PRESETS = {
    "full": dict(
        seeds=10, episode_length=1000, eval_points=10, eval_episodes=10,
        offpolicy=dict(hidden=(256, 256), batch=256, lr=3e-4, warmup=5000,
                       steps=dict(inverted_pendulum=100_000, hopper=300_000, halfcheetah=300_000)),
        ppo=dict(num_envs=2048, unroll=16, minibatches=32, epochs=4, hidden=(64, 64), lr=3e-4,
                 steps=dict(inverted_pendulum=5_242_880, hopper=5_242_880, halfcheetah=5_242_880)),
    ),
    # sized for a shared 2-core CPU (measured: 5 seeds of 6,000 TD3 steps took 236 s beside four other jobs)
    "cpu": dict(
        seeds=5, episode_length=1000, eval_points=4, eval_episodes=5,
        offpolicy=dict(hidden=(64, 64), batch=128, lr=1e-3, warmup=1000,
                       steps=dict(inverted_pendulum=8_000, hopper=8_000, halfcheetah=8_000)),
        ppo=dict(num_envs=64, unroll=16, minibatches=4, epochs=4, hidden=(64, 64), lr=3e-4,
                 steps=dict(inverted_pendulum=81_920, hopper=81_920, halfcheetah=81_920)),
    ),
}
COMMON = dict(gamma=0.99, tau=0.005, policy_delay=2, policy_noise=0.2, noise_clip=0.5, exploration_noise=0.1,
              init_temperature=1.0, gae_lambda=0.95, clip_eps=0.2, ent_coef=1e-3, vf_coef=0.5, max_grad_norm=0.5)


# -- arguments ------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(PRESETS), default="full")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--algos", default=",".join(ALGOS))
    p.add_argument("--sides", default="rlland,peer", help="which sides to train (both are reported)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per side (default: the preset's)")
    p.add_argument("--steps", default="", help="override env steps per seed: 'td3:20000,ppo:245760' "
                                                "(all tasks) or 'hopper/td3:20000'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rlland_agent", default="", help="extra rlland agent keys 'k=v,k=v' (a diagnosis variant; "
                                                      "its pieces are named <task>-<algo>-rlland-<tag>)")
    p.add_argument("--tag", default="", help="name of the --rlland_agent variant (required with it)")
    p.add_argument("--work_dir", default=os.path.join(ROOT, "benchmarks", "results", "learning_parity"))
    p.add_argument("--scratch", default="/tmp/rlland_learning_parity", help="rlland run directories")
    p.add_argument("--peer_timeout", type=float, default=4 * 3600)
    p.add_argument("--report_only", action="store_true", help="train nothing; report the existing pieces")
    p.add_argument("--diagnose_init", action="store_true",
                   help="train nothing; measure TD3/SAC at initialisation (action saturation, |Q|) for the study's "
                        "initialiser gains and for gain 1 everywhere, and add it to the report")
    p.add_argument("--figure", default=FIGURE)
    add_report_args(p)
    a = p.parse_args(argv)
    a.tasks = [t for t in a.tasks.split(",") if t]
    a.algos = [x for x in a.algos.split(",") if x]
    a.sides = [x for x in a.sides.split(",") if x]
    for name, got, valid in (("--tasks", a.tasks, TASKS), ("--algos", a.algos, ALGOS),
                             ("--sides", a.sides, ("rlland", "peer"))):
        bad = [x for x in got if x not in valid]
        if bad or not got:
            p.error(f"{name} must be a subset of {','.join(valid)}, got {got}")
    if bool(a.rlland_agent) != bool(a.tag):
        p.error("--rlland_agent and --tag go together")
    try:
        a.rlland_agent = parse_overrides(a.rlland_agent)
        a.step_overrides = parse_steps(a.steps)
    except ValueError as err:
        p.error(str(err))
    preset = PRESETS[a.scale]
    a.num_seeds = a.seeds or preset["seeds"]
    if a.num_seeds < 2:
        p.error("--seeds must be >= 2 (intervals over seeds)")
    return a


def parse_overrides(text: str) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        if "=" not in item:
            raise ValueError(f"--rlland_agent items look like key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def parse_steps(text: str) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        try:
            key, v = item.rsplit(":", 1)
            out[key.strip()] = int(v)
        except ValueError:
            raise ValueError(f"--steps items look like algo:N or task/algo:N, got {item!r}") from None
    return out


# -- the matched settings of one piece ------------------------------------------------------------------------
def piece_settings(scale: str, task: str, algo: str, step_overrides: dict | None = None) -> dict:
    """Everything both sides of (task, algo) share: budget, evaluation, networks, hyperparameters."""
    p = PRESETS[scale]
    group = p["ppo"] if algo == "ppo" else p["offpolicy"]
    steps = group["steps"][task]
    overrides = step_overrides or {}
    steps = overrides.get(f"{task}/{algo}", overrides.get(algo, steps))
    s = dict(task=task, algo=algo, steps=int(steps), episode_length=p["episode_length"],
             eval_interval=int(steps) // p["eval_points"], eval_episodes=p["eval_episodes"],
             hidden=tuple(group["hidden"]), lr=group["lr"], **COMMON)
    if algo == "ppo":
        s.update(num_envs=group["num_envs"], unroll=group["unroll"], minibatches=group["minibatches"],
                 epochs=group["epochs"])
        per_iter = s["num_envs"] * s["unroll"]
        if s["steps"] % (per_iter * p["eval_points"]):
            raise ValueError(f"{task}/ppo: {s['steps']} env steps is not {p['eval_points']} evaluations of whole "
                             f"iterations of {per_iter}")
    else:
        s.update(batch=group["batch"], warmup=group["warmup"])
        if s["steps"] % (2 * p["eval_points"]):
            raise ValueError(f"{task}/{algo}: {s['steps']} env steps must be {p['eval_points']} evaluations of an "
                             "even number of steps (rejax TD3 runs 2 env steps per iteration)")
    return s


def rlland_agent_config(s: dict, action_size: int) -> dict:
    """rlland agent keys for the matched settings (the key mapping of the module docstring)."""
    if s["algo"] == "ppo":
        return dict(hidden_sizes=s["hidden"], activation="tanh", num_envs=s["num_envs"], unroll_length=s["unroll"],
                    num_minibatches=s["minibatches"], epochs=s["epochs"], normalize_observations=True,
                    adam_eps=1e-8, learning_rate=s["lr"], gamma=s["gamma"], gae_lambda=s["gae_lambda"],
                    clip_eps=s["clip_eps"], ent_coef=s["ent_coef"], vf_coef=s["vf_coef"],
                    max_grad_norm=s["max_grad_norm"], reward_scaling=1.0, normalize_rewards=False)
    c = dict(hidden_sizes=s["hidden"], activation="relu", num_envs=1, batch_size=s["batch"],
             buffer_capacity=s["steps"], warmup_steps=s["warmup"], updates_per_step=1, normalize_observations=False,
             learning_rate=s["lr"], gamma=s["gamma"], tau=s["tau"], reward_scaling=1.0, normalize_rewards=False)
    if s["algo"] == "td3":
        c.update(policy_delay=s["policy_delay"], policy_noise=s["policy_noise"], noise_clip=s["noise_clip"],
                 exploration_noise=s["exploration_noise"])
    else:
        c.update(init_temperature=s["init_temperature"], target_entropy=-float(action_size))
    return c


def peer_command(s: dict, num_seeds: int, seed: int) -> list[str]:
    """The peer script's command line for the matched settings."""
    common = ["--env", s["task"], "--backend", "spring", "--num_seeds", str(num_seeds), "--seed", str(seed),
              "--episode_length", str(s["episode_length"]), "--hidden", ",".join(map(str, s["hidden"])),
              "--eval_interval", str(s["eval_interval"]), "--eval_episodes", str(s["eval_episodes"]),
              "--learning_rate", repr(s["lr"]), "--gamma", repr(s["gamma"])]
    if s["algo"] == "ppo":
        return [os.path.join(PEER_VENVS, "brax_ppo", "bin", "python"), os.path.join(PEERS_DIR, "brax_ppo_learning.py"),
                *common, "--num_timesteps", str(s["steps"]), "--num_envs", str(s["num_envs"]),
                "--unroll_length", str(s["unroll"]), "--num_minibatches", str(s["minibatches"]),
                "--epochs", str(s["epochs"]), "--activation", "tanh", "--gae_lambda", repr(s["gae_lambda"]),
                "--clip_eps", repr(s["clip_eps"]), "--entropy_cost", repr(s["ent_coef"]),
                "--vf_coef", repr(s["vf_coef"]), "--max_grad_norm", repr(s["max_grad_norm"]),
                "--normalize_observations", "--reward_scaling", "1.0"]
    cmd = [os.path.join(PEER_VENVS, "rejax", "bin", "python"), os.path.join(PEERS_DIR, "rejax_learning.py"),
           "--algo", s["algo"], *common, "--total_timesteps", str(s["steps"]), "--learning_starts", str(s["warmup"]),
           "--num_envs", "1", "--batch_size", str(s["batch"]), "--activation", "relu",
           "--buffer_size", str(s["steps"]), "--updates_per_step", "1", "--tau", repr(s["tau"])]
    if s["algo"] == "td3":
        cmd += ["--policy_delay", str(s["policy_delay"]), "--exploration_noise", repr(s["exploration_noise"]),
                "--target_noise", repr(s["policy_noise"]), "--target_noise_clip", repr(s["noise_clip"])]
    return cmd


# -- running the sides ----------------------------------------------------------------------------------------
def load_train_configs():
    """``configs/train.py`` as a module (the presets ``base(algo, env)`` and ``ppo(env)``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rlland_train_configs", os.path.join(ROOT, "configs", "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_rlland(s: dict, a, run_dir: str) -> dict:
    from rlland import envs, train

    train_configs = load_train_configs()
    env = envs.make(s["task"], backend="spring", episode_length=s["episode_length"])
    c = train_configs.ppo(s["task"]) if s["algo"] == "ppo" else train_configs.base(s["algo"], s["task"])
    agent_cfg = rlland_agent_config(s, env.action_size) | a.rlland_agent
    c.agent.update(agent_cfg)
    c.env.episode_length = s["episode_length"]
    c.seed, c.num_seeds, c.total_steps = a.seed, a.num_seeds, s["steps"]
    c.eval_interval, c.eval_episodes = s["eval_interval"], s["eval_episodes"]
    c.checkpoint_interval, c.keep_checkpoints, c.snapshot_steps = s["steps"], 1, ()
    c.progress, c.wandb.mode = False, "disabled"
    shutil.rmtree(run_dir, ignore_errors=True)
    t0 = time.perf_counter()
    result = train.run(c, run_dir=run_dir, force=True)
    wall = time.perf_counter() - t0
    shutil.rmtree(run_dir, ignore_errors=True)  # checkpoints hold the replay buffers: not kept
    return dict(side="rlland", eval_steps=np.asarray(result.eval_steps).tolist(),
                eval_returns=np.asarray(result.eval_returns).tolist(), compile_s=result.compile_seconds,
                wall_s=wall, agent_config={k: (list(v) if isinstance(v, tuple) else v) for k, v in agent_cfg.items()},
                diverged_at=np.asarray(result.diverged_at).tolist(), num_seeds=a.num_seeds, seed=a.seed)


def run_peer(s: dict, a) -> dict:
    cmd = peer_command(s, a.num_seeds, a.seed)
    venv = "brax_ppo" if s["algo"] == "ppo" else "rejax"
    out = run_peer_command(cmd, f"peer {s['task']}/{s['algo']}", f"bash benchmarks/peers/setup_peers.sh {venv}",
                           a.peer_timeout)
    out["side"] = "peer"
    return out


def piece_path(a, task: str, algo: str, side: str) -> str:
    suffix = f"-{a.tag}" if (side == "rlland" and a.tag) else ""
    return os.path.join(a.work_dir, a.scale, f"{task}-{algo}-{side}{suffix}.json")


def train_pieces(a) -> None:
    os.makedirs(os.path.join(a.work_dir, a.scale), exist_ok=True)
    for task in a.tasks:
        for algo in a.algos:
            s = piece_settings(a.scale, task, algo, a.step_overrides)
            for side in a.sides:
                if side == "peer" and a.tag:
                    continue  # a variant reruns rlland only
                path = piece_path(a, task, algo, side)
                if os.path.exists(path):
                    log(f"{task}/{algo} {side}: done ({os.path.relpath(path, ROOT)})")
                    continue
                log(f"{task}/{algo} {side}: {s['steps']} env steps x {a.num_seeds} seeds")
                t0 = time.perf_counter()
                run_dir = os.path.join(a.scratch, a.scale, f"{task}-{algo}{'-' + a.tag if a.tag else ''}")
                out = run_rlland(s, a, run_dir) if side == "rlland" else run_peer(s, a)
                out.update(settings=jsonable(s), subprocess_or_run_wall_s=time.perf_counter() - t0,
                           load_after=os.getloadavg()[0])
                if side == "rlland" and a.tag:
                    out["variant_keys"] = dict(a.rlland_agent)
                tmp = path + ".tmp"
                with open(tmp, "w") as f:
                    json.dump(jsonable(out), f)
                os.replace(tmp, path)
                final = np.asarray(out["eval_returns"], dtype=float)
                final = final[:, -1].mean(-1) if final.ndim == 3 else final[:, -1]
                log(f"{task}/{algo} {side}: final returns {np.round(final, 1).tolist()} "
                    f"({time.perf_counter() - t0:.0f} s)")


# -- initialisation diagnosis -----------------------------------------------------------------------------------
INIT_VARIANTS = {"study gains (sqrt 2 everywhere)": {},
                 "gain 1 everywhere": dict(hidden_init_scale=1.0, actor_output_scale=1.0, critic_output_scale=1.0)}


def init_diagnostics(a, steps: int = 200, starts: int = 16) -> list[dict]:
    """TD3/SAC at initialisation, per task and initialiser variant, over ``a.num_seeds`` seeds: on the observations
    of ``starts`` episodes of ``steps`` uniform-random actions, the fraction of deterministic actions with |a| >
    0.99 (a saturated tanh), the mean |a| and the mean |Q(s, a)| of the twin critic at those actions."""
    import jax
    import jax.numpy as jnp

    from rlland import agents, envs

    rows = []
    for task in a.tasks:
        env = envs.make(task, backend="spring", episode_length=PRESETS[a.scale]["episode_length"])

        def observations(key):
            def one(state, k):
                k_act, k_env = jax.random.split(k)
                action = jax.random.uniform(k_act, (env.action_size,), minval=-1.0, maxval=1.0)
                state, _ = env.step(state, action, k_env)
                return state, state.obs

            k_reset, k_steps = jax.random.split(key)
            return jax.lax.scan(one, env.reset(k_reset), jax.random.split(k_steps, steps))[1]

        obs_key = jax.random.PRNGKey(a.seed + 12345)
        obs = jax.jit(jax.vmap(observations))(jax.random.split(obs_key, starts)).reshape(-1, env.observation_size)
        for algo in [x for x in a.algos if x != "ppo"]:
            s = piece_settings(a.scale, task, algo, a.step_overrides)
            for name, keys in INIT_VARIANTS.items():
                agent = agents.make(algo, env, rlland_agent_config(s, env.action_size) | keys)

                def measure(key, agent=agent):
                    params = agent.init(key).params
                    act = agent.act(params, obs, deterministic=True)
                    q = agent.critic.apply(params["critic"], agent.normalize(params, obs), act)
                    return (jnp.abs(act) > 0.99).mean(), jnp.abs(act).mean(), jnp.abs(q).mean()

                keys_ = jax.random.split(jax.random.PRNGKey(a.seed), a.num_seeds)
                sat, mean_abs, q = (np.asarray(x) for x in jax.jit(jax.vmap(measure))(keys_))
                rows.append(dict(task=task, algo=algo, variant=name, keys=keys, saturated=float(sat.mean()),
                                 mean_abs_action=float(mean_abs.mean()), mean_abs_q=float(q.mean()),
                                 obs_abs_max=float(jnp.abs(obs).max())))
                log(f"init {task}/{algo} [{name}]: saturated {sat.mean():.3f}, mean |a| {mean_abs.mean():.3f}, "
                    f"mean |Q| {q.mean():.3f}")
    return rows


# -- statistics and report ------------------------------------------------------------------------------------
def curves(piece: dict) -> tuple[np.ndarray, np.ndarray]:
    """(steps [E], per-seed returns [S, E]) without brax's step-0 evaluation (rlland and rejax have none)."""
    steps = np.asarray(piece["eval_steps"], dtype=float)
    ret = np.asarray(piece["eval_returns"], dtype=float)
    ret = ret.mean(-1) if ret.ndim == 3 else ret
    keep = steps > 0
    return steps[keep], ret[:, keep]


def compare(rl: dict, peer: dict, level: float = 0.95) -> dict:
    """Final-return statistics of one piece (module docstring)."""
    from rlland.bootstrap import mean_interval, ratio_interval

    keys = ("steps", "eval_interval", "eval_episodes", "episode_length")
    if "settings" in rl and "settings" in peer and any(rl["settings"][k] != peer["settings"][k] for k in keys):
        raise ValueError(f"the two sides of {rl['settings']['task']}/{rl['settings']['algo']} ran different "
                         f"budgets: {[rl['settings'][k] for k in keys]} vs {[peer['settings'][k] for k in keys]}")
    f_rl, f_peer = curves(rl)[1][:, -1], curves(peer)[1][:, -1]
    m_rl, m_peer = mean_interval(f_rl, level), mean_interval(f_peer, level)
    ratio = ratio_interval(f_rl, f_peer, level)
    met = bool(m_rl.estimate >= m_peer.low)
    return dict(rlland_final=f_rl.tolist(), peer_final=f_peer.tolist(), rlland=m_rl._asdict(),
                peer=m_peer._asdict(), ratio=ratio._asdict(), met=met)


def load_pieces(a) -> dict:
    pieces = {}
    for task in TASKS:
        for algo in ALGOS:
            got = {}
            for side in ("rlland", "peer"):
                path = piece_path(a, task, algo, side)
                if os.path.exists(path):
                    with open(path) as f:
                        got[side] = json.load(f)
            variants = sorted(f for f in os.listdir(os.path.join(a.work_dir, a.scale))
                              if f.startswith(f"{task}-{algo}-rlland-") and f.endswith(".json")) \
                if os.path.isdir(os.path.join(a.work_dir, a.scale)) else []
            for v in variants:
                with open(os.path.join(a.work_dir, a.scale, v)) as f:
                    got["variant:" + v[len(f"{task}-{algo}-rlland-"):-5]] = json.load(f)
            if got:
                pieces[(task, algo)] = got
    return pieces


def figure(pieces: dict, path: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlland.plotting import mean_and_interval

    if not pieces:
        return None
    fig, axes = plt.subplots(len(TASKS), len(ALGOS), figsize=(4.2 * len(ALGOS), 3.2 * len(TASKS)), squeeze=False)
    for i, task in enumerate(TASKS):
        for j, algo in enumerate(ALGOS):
            ax = axes[i, j]
            got = pieces.get((task, algo), {})
            for key, color in [("rlland", "C0"), ("peer", "C1")] + [(k, f"C{2 + n}") for n, k in enumerate(
                    k for k in sorted(got) if k.startswith("variant:"))]:
                if key not in got:
                    continue
                steps, ret = curves(got[key])
                mean, half = mean_and_interval(ret)
                if key.startswith("variant:"):
                    label = "rlland " + key[len("variant:"):]
                else:
                    label = "rlland" if key == "rlland" else (
                        ("rejax " if algo != "ppo" else "brax ") + got[key].get("version", ""))
                ax.plot(steps, mean, color=color, lw=2, label=f"{label} (n={ret.shape[0]})")
                ax.fill_between(steps, mean - half, mean + half, color=color, alpha=0.2)
            ax.set_title(f"{algo.upper()} — {task}", fontsize=10)
            ax.grid(alpha=0.3)
            if i == len(TASKS) - 1:
                ax.set_xlabel("env steps per seed")
            if j == 0:
                ax.set_ylabel("eval return")
            if got:
                ax.legend(fontsize=7, loc="best")
    fig.suptitle("Learning parity: eval return (mean over seeds, 95% band)", fontsize=11)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def interval_cell(d: dict) -> str:
    return f"{fmt(d['estimate'])} [{fmt(d['low'])}, {fmt(d['high'])}]"


def markdown(report: dict) -> str:
    a = report["args"]
    L = run_header(report, f"{report['date']}, scale `{a['scale']}`")
    L += [f"Seeds per side: {a['num_seeds']}. Final return = the last evaluation (mean of "
          f"{PRESETS[a['scale']]['eval_episodes']} deterministic episodes per seed); intervals are 95% percentile "
          "bootstrap intervals over seeds (10,000 resamples); the ratio resamples the two sides apart. "
          "**Target**: rlland's mean final return within the peer's interval or above it.", "",
          "| task | algo | peer | env steps/seed | rlland final [95% CI] | peer final [95% CI] | "
          "rlland ÷ peer [95% CI] | target | rlland wall s | peer wall s |",
          "|---|---|---|---:|---:|---:|---:|---|---:|---:|"]
    for row in report["rows"]:
        c = row.get("stats")
        peer = row.get("peer_name", "—")
        if c is None:
            L.append(f"| {row['task']} | {row['algo']} | {peer} | {row['steps']:,} | "
                     f"{'done' if row['has_rlland'] else 'missing'} | {'done' if row['has_peer'] else 'missing'} "
                     "| — | not run | — | — |")
            continue
        ratio = c["ratio"]
        rcell = (f"{ratio['estimate']:.2f} [{ratio['low']:.2f}, {ratio['high']:.2f}]"
                 if np.isfinite(ratio["low"]) else f"{fmt(ratio['estimate'], 2)} (undefined: peer mean ≤ 0 in "
                                                   "resamples)")
        L.append(f"| {row['task']} | {row['algo']} | {peer} | {row['steps']:,} | {interval_cell(c['rlland'])} | "
                 f"{interval_cell(c['peer'])} | {rcell} | {'**met**' if c['met'] else '**missed**'} | "
                 f"{fmt(row['rlland_s'], 0)} | {fmt(row['peer_s'], 0)} |")
    variants = [r for r in report["rows"] if r.get("variants")]
    if variants:
        L += ["", "Diagnosis variants (rlland only, same seeds and budget; agent keys changed as named):", "",
              "| task | algo | variant | agent keys | final [95% CI] | ÷ peer [95% CI] | vs peer interval |",
              "|---|---|---|---|---:|---:|---|"]
        for r in variants:
            for name, v in r["variants"].items():
                ratio = v["ratio"]
                rc = (f"{ratio['estimate']:.2f} [{ratio['low']:.2f}, {ratio['high']:.2f}]"
                      if np.isfinite(ratio["low"]) else "—")
                L.append(f"| {r['task']} | {r['algo']} | {name} | `{v['keys']}` | {interval_cell(v['rlland'])} | "
                         f"{rc} | {'within/above' if v['met'] else 'below'} |")
    if report.get("init"):
        L += ["", "rlland TD3/SAC at initialisation (mean over seeds; deterministic actions on the observations of 16 "
              "random-action episodes of 200 steps; `--diagnose_init`):", "",
              "| task | algo | initialiser | saturated actions (abs a > 0.99) | mean abs a | mean abs Q(s, a) |",
              "|---|---|---|---:|---:|---:|"]
        for r in report["init"]:
            L.append(f"| {r['task']} | {r['algo']} | {r['variant']} | {r['saturated']:.3f} | "
                     f"{r['mean_abs_action']:.3f} | {fmt(r['mean_abs_q'], 2)} |")
    L += ["", "Per-seed final returns:", ""]
    for row in report["rows"]:
        c = row.get("stats")
        if c:
            L.append(f"- {row['task']}/{row['algo']}: rlland {np.round(c['rlland_final'], 1).tolist()}; "
                     f"peer {np.round(c['peer_final'], 1).tolist()}")
    L += ["", "Wall times are whole pieces (compilation, training, evaluation; brax PPO: its seeds one after another) "
          "on the machine as loaded when they ran: not throughput measurements (`train_throughput.py` is).", ""]
    if report.get("figure"):
        L += [f"![learning curves]({report['figure']})", ""]
    L += ["Peer commands:", ""]
    for row in report["rows"]:
        if row.get("peer_command"):
            L.append(f"- `{row['peer_command']}`")
    L.append("")
    return "\n".join(L)


HEADER = """## Learning parity (`learning_parity.py`)

rlland's TD3 and SAC against rejax 0.1.3, its PPO against Brax 0.14.2's own PPO trainer, on spring
`inverted_pendulum`, `hopper` and `halfcheetah` with matched networks, batch, updates per step, hyperparameters
and budget (the mapping and the differences that remain are in the script's docstring). Issue 16 item 1.
"""


def build_report(a, report: dict) -> None:
    pieces = load_pieces(a)
    rows = []
    for task in TASKS:
        for algo in ALGOS:
            got = pieces.get((task, algo), {})
            if not got:
                continue
            s = next(iter(got.values()))["settings"]  # what the pieces ran with (--steps may have changed it)
            row = dict(task=task, algo=algo, steps=s["steps"], has_rlland="rlland" in got, has_peer="peer" in got)
            if "peer" in got:
                p = got["peer"]
                row.update(peer_name=f"{p['peer']} {p['version']}", peer_command=p.get("command"),
                           peer_s=p.get("subprocess_or_run_wall_s"))
            if "rlland" in got:
                row["rlland_s"] = got["rlland"].get("subprocess_or_run_wall_s")
            if "rlland" in got and "peer" in got:
                row["stats"] = compare(got["rlland"], got["peer"])
                row["variants"] = {}
                for k in sorted(got):
                    if k.startswith("variant:"):
                        c = compare(got[k], got["peer"])
                        row["variants"][k[8:]] = dict(keys=got[k].get("variant_keys", {}), rlland=c["rlland"],
                                                      ratio=c["ratio"], met=c["met"], final=c["rlland_final"])
            rows.append(row)
    report["rows"] = rows
    init_path = os.path.join(a.work_dir, a.scale, "init_diagnostics.json")
    if os.path.exists(init_path):
        with open(init_path) as f:
            report["init"] = json.load(f)
    fig = figure(pieces, a.figure) if not a.no_write else None
    report["figure"] = os.path.relpath(fig, os.path.dirname(a.results)) if fig else None


def main(argv=None):
    a = parse_args(argv)
    report = start_report("learning_parity.py", a, argv, json_suffix=f"-learning-parity-{a.scale}")
    if a.diagnose_init:
        rows = init_diagnostics(a)
        os.makedirs(os.path.join(a.work_dir, a.scale), exist_ok=True)
        with open(os.path.join(a.work_dir, a.scale, "init_diagnostics.json"), "w") as f:
            json.dump(rows, f, indent=1)
    elif not a.report_only:
        train_pieces(a)
    build_report(a, report)
    finish_report(report, a, markdown, block=BLOCK, header=HEADER)


if __name__ == "__main__":
    main()
