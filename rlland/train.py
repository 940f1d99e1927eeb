"""The experiment driver: ``result = train.run(config)``.

Seeds are one batch: ``jax.vmap(agent.init)`` over per-seed keys, the seed axis placed over the local devices,
and training runs in chunks of ``jit(vmap(scan(agent.step, K)))`` compiled once (compile time is reported apart).
Between chunks a thin host loop evaluates, logs, snapshots, checkpoints and draws the progress bar. Chunk
boundaries are fixed by the config (the gcd of the eval/checkpoint/snapshot intervals), so a resumed run executes
exactly the same kernels on exactly the same states as an uninterrupted one.

Seed ``i`` uses ``fold_in(PRNGKey(config.seed), i)``: it is the same seed whatever ``num_seeds`` is.

Metrics of the iterations (the step's metrics dict): ``train/<name>`` [seed, chunk] is their mean over the chunk
(the representation diagnostics' ``repr/...``, NaN on non-logging iterations, their nanmean: `_reduce`). With the
diagnostics on (agent config ``log_every`` > 0) the driver also keeps every LOGGED iteration at update resolution
(reference A.4: ~1,000 points per run, first and last update included): ``updates/<name>`` [seed, U] for every
step metric (``repr/...``, losses, gradient norms, ...; not the episode sums), with ``updates/iteration`` [U]
(0-based iteration index) and ``updates/steps`` [U] (env steps after that iteration), U = the logged iterations
so far. Logged = ``rlland.representation.diagnostics.logs_at(i, log_every, last)``: ``i % log_every == 0`` or
``i`` the run's last iteration, which the driver gives the agent (``agent.final_iteration``, from
``total_steps``) so that the agent's gate and the driver's row selection are the same function. The rows come
from the chunk kernel's per-iteration outputs (scan outputs, [seed, K]; no host callback in the loop), selected
and appended on the host at each chunk end like the other histories, saved in every checkpoint's history (a
resumed run's arrays equal an uninterrupted run's: the same kernels on the same states), and written to
``metrics.h5`` (a sweep's ``[point, seed, U]`` and its point views, as the other arrays). wandb keeps the chunk
values only. A run resumed with a larger ``total_steps`` keeps the rows it had (its former last iteration
included) and logs the new last one.

Sweeps (`rlland.sweep`): with ``config.sweep`` the batch is points x seeds (member ``p * S + s``, point-major),
one kernel for all; the state, checkpoints and snapshots carry that member axis, ``metrics.h5`` carries
``[point, seed, ...]`` arrays and the point values (``sweep/<key>``), and ``points/<p>/`` are the point views the
analyses read. Many processes (`rlland.distributed`): the member axis spans the global devices; every process
runs this same function; only process 0 writes config.json, metrics.h5, figures and wandb.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rlland import checkpoint, distributed, divergence, evaluate, loop, plotting, runs, sharding, sinks, sweep
from rlland.buffers import check_fits
from rlland.representation import diagnostics
from rlland.seed_axis import SEED_AXIS
from rlland.validation import require_choice, require_positive


@dataclasses.dataclass
class RunResult:
    run_dir: str
    state: Any  # final seed-batched training state
    eval_steps: np.ndarray  # [E]
    eval_returns: np.ndarray  # [S, E, episodes]
    train_steps: np.ndarray  # [C]
    train_metrics: dict[str, np.ndarray]  # name -> [S, C]
    compile_seconds: float
    diverged_at: np.ndarray  # [S] env steps after which the seed was first non-finite, -1 if it never was
    # a sweep: its points (`rlland.sweep.points`); every seed axis above is then the member axis M = P x S
    points: list = dataclasses.field(default_factory=list)
    # update resolution (diagnostics on): "iteration", "steps" -> [U]; step metric name -> [S, U] (module docstring)
    updates: dict = dataclasses.field(default_factory=dict)

    @property
    def eval_return_mean(self) -> np.ndarray:
        return self.eval_returns.mean(-1)

    def by_point(self, x: np.ndarray) -> np.ndarray:
        """A member-axis array ``[M, ...]`` of this result as ``[P, S, ...]`` (``[1, S, ...]`` without a sweep)."""
        return sweep.by_point(x, max(1, len(self.points)))


# -- building ------------------------------------------------------------------------------------------------
def steps_per_iteration(agent) -> int:
    c = agent.config
    return c.num_envs * c.get("unroll_length", 1)


def chunk_steps(config, agent) -> int:
    """Env steps per chunk: the gcd of every interval the host loop must stop at."""
    points = [config.eval_interval, config.checkpoint_interval, *config.snapshot_steps]
    return math.gcd(*[int(p) for p in points if p > 0])


def validate(config: ml_collections.ConfigDict):
    """Check a config before anything is written; returns (env, agent, steps per chunk)."""
    return build_checked(config)[:3]


def build_checked(config: ml_collections.ConfigDict):
    """`validate`, also returning the evaluation env (`rlland.runs.build_eval_env`): (env, agent, chunk, eval_env)."""
    require_positive(config, ("num_seeds", "total_steps", "eval_interval", "eval_episodes", "checkpoint_interval",
                              "keep_checkpoints"))
    require_choice("config.wandb.mode", config.wandb.mode, sinks.WANDB_MODES)
    require_choice("config.on_divergence", config.get("on_divergence", "continue"), divergence.ON_DIVERGENCE)
    env, agent = runs.build(config)
    sweep.validate(config, agent.HPARAMS, set(agent.config.keys()))
    eval_env = runs.build_eval_env(config, env)
    if (eval_env.observation_size, eval_env.action_size) != (env.observation_size, env.action_size):
        raise ValueError(f"config.eval_env: the evaluation env's observation/action sizes "
                         f"({eval_env.observation_size}, {eval_env.action_size}) differ from the training env's "
                         f"({env.observation_size}, {env.action_size})")
    per_iter = steps_per_iteration(agent)
    chunk = chunk_steps(config, agent)
    stops = {"eval_interval": config.eval_interval, "checkpoint_interval": config.checkpoint_interval,
             **{f"snapshot_steps[{i}]": s for i, s in enumerate(config.snapshot_steps)}}
    bad = {k: v for k, v in stops.items() if v % per_iter}
    if bad:
        raise ValueError(f"these must be multiples of the env steps per iteration ({per_iter}): {bad}")
    if config.total_steps % chunk:
        raise ValueError(f"total_steps ({config.total_steps}) must be a multiple of the chunk ({chunk} env steps, "
                         f"the gcd of the eval, checkpoint and snapshot steps)")
    agent.final_iteration = config.total_steps // per_iter - 1  # the diagnostics always log the last update
    n = sweep.num_members(config)
    if agent.is_off_policy:
        check_fits(agent.buffer_bytes(n), f"{n} replay buffers")
    else:
        check_fits(agent.rollout_bytes(n), f"{n} seeds' PPO rollouts ({agent.config.num_envs} envs x "
                   f"{agent.config.unroll_length} steps)", hint="reduce num_seeds, num_envs or unroll_length")
    return env, agent, chunk, eval_env


# -- the chunk kernel ----------------------------------------------------------------------------------------
EPISODE_SUMS = ("episode_return_sum", "episodes")  # per-iteration sums, reduced to the chunk's episode return
UPDATES = "updates"  # the chunk output holding the per-iteration metrics (make_chunk(..., per_update=True))


def _reduce(metrics: dict) -> dict:
    """Chunk reduction of per-iteration metrics [K]: means, and the mean return of the episodes that ended."""
    # diagnostics logged every few iterations are NaN in between: average over the iterations that logged
    out = {k: (jnp.nanmean(v) if k.startswith("repr/") else v.mean()) for k, v in metrics.items()
           if k not in EPISODE_SUMS}
    n = metrics["episodes"].sum()
    out["episode_return"] = jnp.where(n > 0, metrics["episode_return_sum"].sum() / jnp.maximum(n, 1), jnp.nan)
    out["episodes"] = n
    return out


def make_chunk(agent, iterations: int, per_update: bool = False):
    """``jit(vmap(chunk))``: ``chunk(state) -> (state, metrics)``, the step scanned ``iterations`` times, metrics
    reduced by `_reduce` plus ``finite``; with ``per_update`` also ``metrics[UPDATES]`` = the step metrics of
    every iteration, ``{name: [K]}`` per seed (not the episode sums), for the update-resolution history."""
    def chunk(state):
        state, metrics = jax.lax.scan(lambda s, _: agent.step(s), state, None, iterations)
        # a diverged seed: non-finite parameters now, or a non-finite loss at any iteration of the chunk
        out = _reduce(metrics) | {"finite": divergence.seed_is_finite(state.params, metrics)}
        if per_update:
            out[UPDATES] = {k: v for k, v in metrics.items() if k not in EPISODE_SUMS}
        return state, out

    # the named seed axis lets gates shared by all seeds (e.g. "log every k updates") stay real branches
    return jax.jit(jax.vmap(chunk, axis_name=SEED_AXIS), donate_argnums=0)


def make_eval(agent, num_episodes: int, env=None):
    """Per-seed returns of ``num_episodes`` deterministic episodes on ``env`` (default: the agent's own)."""
    def one(params, key):
        return evaluate.evaluate(agent, params, key, num_episodes, env=env).undiscounted

    return jax.jit(jax.vmap(one))


def _eval_keys(config, step: int) -> jax.Array:
    """Seed ``i``'s evaluation keys at ``step`` (a sweep's member ``(p, s)`` uses seed ``s``'s)."""
    base = jax.random.fold_in(jax.random.PRNGKey(config.seed), 2**31 - 1)  # a stream apart from training keys
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(base, step), i))(jnp.arange(config.num_seeds))
    return keys if not sweep.spec(config) else jnp.tile(keys, (sweep.num_points(config), 1))


def buffer_wraps(config, agent) -> bool:
    """Whether the run writes more transitions than the replay buffer holds (snapshots then store its data)."""
    cap = agent.config.get("buffer_capacity")
    return cap is not None and config.total_steps > cap




def _broadcast(hparams: dict, num_seeds: int) -> dict:
    return {k: jnp.broadcast_to(v, (num_seeds,)) for k, v in hparams.items()}


def _forced_change(run_dir: str, config, agent) -> dict[str, tuple[float, float]]:
    """Checks a resumed run's config change before anything is written: refuses one that alters the state's
    shapes (the checkpoints would not restore), keeps the previous config.json as config.<timestamp>.json, and
    returns the traced hyperparameters that changed, ``{name: (old, new)}`` (applied to the restored state)."""
    old_config = runs.read_config(run_dir)
    diff = runs.config_differences(runs.jsonable(old_config), runs.jsonable(config))
    if not diff:
        return {}
    if sweep.points(old_config) != sweep.points(config):
        raise ValueError(f"--force cannot change the points of a sweep ({runs.describe_differences(diff)}); "
                         f"nothing was changed; use another run_dir")
    old_agent = runs.build(old_config)[1]
    runs.check_restorable(runs.abstract_state(old_agent, sweep.num_members(old_config)),
                          runs.abstract_state(agent, sweep.num_members(config)), diff)
    if distributed.is_primary():
        runs.archive_config(run_dir)
    old_hp, new_hp = old_agent.hparams(), agent.hparams()
    return {k: (float(old_hp[k]), float(v)) for k, v in new_hp.items() if float(old_hp.get(k, np.nan)) != float(v)}


# -- the run -------------------------------------------------------------------------------------------------
def run(config: ml_collections.ConfigDict, run_dir: str | None = None, force: bool | None = None,
        hooks: Sequence[loop.Hook] = ()) -> RunResult:
    """Train ``config.num_seeds`` seeds of ``config.algo`` on ``config.env``; resume if ``run_dir`` holds a run.

    With ``config.sweep`` (`rlland.sweep`) every point's seeds train in the same kernel: the result's seed axes
    are then the member axis (points x seeds, point-major; `RunResult.by_point`).
    ``hooks``: extra `rlland.loop.Hook`s called after every chunk (after evaluation, before snapshots and
    checkpoints); what they return is logged with the chunk's metrics.
    """
    config = ml_collections.ConfigDict(config.to_dict())
    run_dir = run_dir or config.get("run_dir") or runs.default_run_dir(config)
    force = config.get("force", False) if force is None else force
    view = sweep.point_of(run_dir)
    if view is not None:
        raise ValueError(f"{run_dir} is a point view of the sweep in {view['sweep_dir']}, not a run directory; "
                         f"train or resume the sweep there")
    env, agent, chunk_env_steps, eval_env = build_checked(config)
    points, num_seeds = sweep.points(config), int(config.num_seeds)
    members = sweep.num_members(config)
    primary = distributed.is_primary()
    resuming = runs.prepare_run_dir(run_dir, config, force)
    changed_hparams = _forced_change(run_dir, config, agent) if resuming else {}
    distributed.barrier("rlland.train: run directory read")  # every process read it before process 0 writes
    if primary:
        runs.write_config(run_dir, config)

    per_iter = steps_per_iteration(agent)
    iterations, log_every = chunk_env_steps // per_iter, int(agent.config.get("log_every", 0))
    chunk_fn = make_chunk(agent, iterations, per_update=log_every > 0)
    eval_fn = make_eval(agent, config.eval_episodes, eval_env)
    ckpts = checkpoint.Checkpoints(run_dir, keep=config.keep_checkpoints)
    abstract = sharding.with_sharding(runs.abstract_state(agent, members), members)
    restored = ckpts.restore_latest(abstract, set_aside=primary) if resuming else None
    if restored is None:
        step, history = 0, {}
        if points:
            state = jax.jit(jax.vmap(agent.init))(runs.member_keys(config),
                                                  sweep.member_hparams(agent.hparams, points, num_seeds))
        else:
            state = jax.jit(jax.vmap(agent.init))(runs.seed_keys(config))
        if resuming:
            print(f"{run_dir} has no finished checkpoint (the first one was interrupted); starting from env step 0")
    else:
        step, state, history = restored
        print(f"resuming {run_dir} from env step {step}")
        if changed_hparams:
            hparams = (sweep.member_hparams(agent.hparams, points, num_seeds) if points
                       else _broadcast(agent.hparams(), config.num_seeds))
            state = state.replace(hparams=hparams)
            print("applying the changed hyperparameters to the restored state: "
                  + ", ".join(f"{k} {a:g} -> {b:g}" for k, (a, b) in changed_hparams.items()))
    state = sharding.shard_seeds(state, members)

    if step >= config.total_steps:  # a finished run: nothing to compile or run
        compiled, compile_seconds = None, 0.0
    else:
        compiled, compile_seconds = loop.compile_chunk(chunk_fn, state)
    config_json = runs.jsonable(config)
    attrs = {"config": config_json, "compile_seconds": compile_seconds}
    metrics_path = os.path.join(run_dir, "metrics.h5")
    snapshot_at, wraps = set(int(s) for s in config.snapshot_steps), buffer_wraps(config, agent)
    if step == 0 and 0 in snapshot_at:
        checkpoint.save_snapshot(run_dir, 0, state, wraps)
    point_configs = [runs.jsonable(sweep.with_point(config, p)) | {"run_dir": sweep.point_dir(run_dir, i)}
                     for i, p in enumerate(points)]
    if primary:
        for i in range(len(points)):
            sweep.write_point_view(run_dir, i, points, num_seeds, point_configs[i])

    def write_metrics():
        if primary:
            write_metrics_h5(metrics_path, history, attrs, points, point_configs)

    tracker = divergence.Tracker(members, history.get("diverged_at"))

    def who(m: int) -> str:
        if not points:
            return f"seed {m}"
        return f"member {m} (point {m // num_seeds}: {sweep.label(points[m // num_seeds])}, seed {m % num_seeds})"

    per_update: dict = {}  # the last chunk's per-iteration metrics, set aside by run_chunk for record_updates

    def run_chunk(s, _):
        s, metrics = compiled(s)
        if UPDATES in metrics:  # kept out of the chunk's log: the sinks take one value per seed and chunk
            per_update.clear()
            per_update.update(distributed.to_host(metrics.pop(UPDATES)))
        return s, metrics

    def record_updates(e: loop.ChunkEnd):
        if not per_update:
            return
        i = (e.position - chunk_env_steps) // per_iter + np.arange(iterations)
        logged = np.asarray(diagnostics.logs_at(i, log_every, agent.final_iteration))
        loop.append(history, f"{UPDATES}/iteration", i[logged], axis=0)
        loop.append(history, f"{UPDATES}/steps", (i[logged] + 1) * per_iter, axis=0)
        for k, v in per_update.items():
            loop.append(history, f"{UPDATES}/{k}", v[:, logged], axis=1)

    def record(e: loop.ChunkEnd):
        record_updates(e)
        loop.append(history, "train/steps", np.array([e.position]), axis=0)
        for k, v in e.metrics.items():
            loop.append(history, f"train/{k}", v[:, None], axis=1)
        for s in tracker.update(e.position, e.metrics["finite"]):
            bar.write(f"{who(s)} diverged: non-finite parameters or losses by env step {e.position}; its "
                      f"evaluations are NaN from here on")
        history["diverged_at"] = tracker.diverged_at
        return {f"train/{k}": v for k, v in e.metrics.items()}

    def evaluation(e: loop.ChunkEnd):
        if not loop.every(config.eval_interval, e.position, e.final):
            return None
        keys = _eval_keys(config, e.position)
        if distributed.is_multiprocess():
            keys = sharding.shard_seeds(keys, members)
        returns = distributed.to_host(eval_fn(e.state.params, keys))
        loop.append(history, "eval/steps", np.array([e.position]), axis=0)
        loop.append(history, "eval/returns", returns[:, None, :], axis=1)
        history["eval/return_mean"] = history["eval/returns"].mean(-1)
        write_metrics()
        return {"eval/return_mean": returns.mean(-1)}

    def snapshot(e: loop.ChunkEnd):
        if e.position in snapshot_at:
            checkpoint.save_snapshot(run_dir, e.position, e.state, wraps)

    def save_checkpoint(e: loop.ChunkEnd):
        if loop.every(config.checkpoint_interval, e.position, e.final):
            ckpts.save(e.position, e.state, history)

    def stop_on_divergence(e: loop.ChunkEnd):
        if tracker.diverged and config.get("on_divergence", "continue") == "stop":
            raise loop.StopRun(f"stopping ({tracker.describe()}; config.on_divergence='stop')")

    def postfix(log):
        if "eval/return_mean" not in log:
            return ""
        returns = log["eval/return_mean"]
        healthy = returns[np.isfinite(returns)]
        text = f"eval return {healthy.mean():.1f}" if healthy.size else "eval return n/a"
        return text + (f" ({len(tracker.diverged)} diverged)" if tracker.diverged else "")

    wandb_mode = config.wandb.mode if primary else "disabled"
    sink = sinks.WandbSink(run_dir, runs.run_id(run_dir) if primary else "", num_seeds, config_json,
                           mode=wandb_mode, project=config.wandb.project,
                           console=config.wandb.get("console", False), points=points)
    if restored is not None:  # the checkpoint's rows first: the killed session's wandb file may have lost them
        sink.log_rows(sinks.history_rows(
            (history["train/steps"], {k: v for k, v in history.items() if k.startswith("train/") and k != "train/steps"}),
            (history.get("eval/steps", []), {"eval/return_mean": history.get("eval/return_mean", [])})))
    size = f"x{config.num_seeds}" if not points else f"x{len(points)}x{config.num_seeds}"
    bar = loop.progress_bar(config.total_steps, step, "step", f"{config.algo}/{config.env.name} {size}",
                            config.get("progress", True) and primary)
    bar.set_postfix_str(f"compiled in {compile_seconds:.1f}s")
    state, step, _ = loop.run(
        state, step, config.total_steps, run_chunk, advance=lambda p, s, m: p + chunk_env_steps,
        hooks=[record, evaluation, *hooks, snapshot, save_checkpoint, stop_on_divergence], sinks=[sink], bar=bar,
        postfix=postfix)
    write_metrics()
    if "eval/steps" in history and primary:
        title = f"{config.algo} on {config.env.name}"
        if not points:
            fig = plotting.learning_curves(history["eval/steps"], history["eval/return_mean"], title=title,
                                           diverged_at=tracker.diverged_at)
            plotting.save(fig, os.path.join(run_dir, "figures", "learning_curve.png"))
        else:
            sweep_figures(run_dir, title, history, tracker.diverged_at, points, num_seeds)
    return RunResult(run_dir=run_dir, state=state, eval_steps=history.get("eval/steps", np.zeros(0)),
                     eval_returns=history.get("eval/returns", np.zeros((members, 0, 0))),
                     train_steps=history["train/steps"],
                     train_metrics={k[6:]: v for k, v in history.items() if k.startswith("train/") and
                                    k != "train/steps"}, compile_seconds=compile_seconds,
                     diverged_at=tracker.diverged_at, points=points,
                     updates={k[len(UPDATES) + 1:]: v for k, v in history.items() if k.startswith(f"{UPDATES}/")})


# -- a sweep's files -----------------------------------------------------------------------------------------
_STEP_AXES = ("eval/steps", "train/steps", f"{UPDATES}/iteration", f"{UPDATES}/steps")  # no member axis


def write_metrics_h5(path: str, history: dict, attrs: dict, points: list, point_configs: list) -> None:
    """metrics.h5 (`rlland.sinks`); for a sweep, member-axis arrays as ``[point, seed, ...]`` with the points in
    ``sweep/<key>`` ([P] values) and the attributes ``sweep_keys``, ``sweep_labels``, and every point view's own
    metrics.h5 (the plain-run layout of its seeds, its config in the attributes)."""
    if not points:
        sinks.write_h5(path, history, attrs)
        return
    P = len(points)
    by_point = {k: (v if k in _STEP_AXES else sweep.by_point(v, P)) for k, v in history.items()}
    by_point |= {f"sweep/{k}": np.array([p[k] for p in points], np.float64) for k in points[0]}
    sinks.write_h5(path, by_point, attrs | {"sweep_keys": list(points[0]),
                                            "sweep_labels": [sweep.label(p) for p in points]})
    run_dir = os.path.dirname(path)
    for i, point_config in enumerate(point_configs):
        mine = {k: (v if k in _STEP_AXES else by_point[k][i]) for k, v in history.items()}
        sinks.write_h5(os.path.join(sweep.point_dir(run_dir, i), "metrics.h5"), mine,
                       attrs | {"config": point_config, "sweep_point": i, "sweep_label": sweep.label(points[i])})


def sweep_figures(run_dir: str, title: str, history: dict, diverged_at: np.ndarray, points: list,
                  num_seeds: int) -> None:
    """``figures/learning_curve.png``: each point's mean over seeds (95% interval); each point view's own
    ``figures/learning_curve.png`` (its seeds, as a plain run's)."""
    import matplotlib.pyplot as plt

    steps, returns = history["eval/steps"], sweep.by_point(history["eval/return_mean"], len(points))
    diverged = sweep.by_point(diverged_at, len(points))
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, p in enumerate(points):
        mean, half = plotting.mean_and_interval(returns[i])
        line = ax.plot(steps, mean, lw=2, label=sweep.label(p))[0]
        ax.fill_between(steps, mean - half, mean + half, alpha=0.2, color=line.get_color())
    ax.set(xlabel="env steps", ylabel="episode return", title=f"{title}: {len(points)} points x {num_seeds} seeds")
    ax.legend(loc="best", fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    plotting.save(fig, os.path.join(run_dir, "figures", "learning_curve.png"))
    for i, p in enumerate(points):
        fig = plotting.learning_curves(steps, returns[i], title=f"{title} ({sweep.label(p)})",
                                       diverged_at=diverged[i])
        plotting.save(fig, os.path.join(sweep.point_dir(run_dir, i), "figures", "learning_curve.png"))
