"""The experiment driver: ``result = train.run(config)``.

Seeds are one batch: ``jax.vmap(agent.init)`` over per-seed keys, the seed axis placed over the local devices,
and training runs in chunks of ``jit(vmap(scan(agent.step, K)))`` compiled once (compile time is reported apart).
Between chunks a thin host loop evaluates, logs, snapshots, checkpoints and draws the progress bar. Chunk
boundaries are fixed by the config (the gcd of the eval/checkpoint/snapshot intervals), so a resumed run executes
exactly the same kernels on exactly the same states as an uninterrupted one.

Seed ``i`` uses ``fold_in(PRNGKey(config.seed), i)``: it is the same seed whatever ``num_seeds`` is.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from rlland import agents, checkpoint, envs, evaluate, plotting, sharding
from rlland import logging as rl_logging
from rlland.buffers import check_fits

# keys that may change when a run directory is resumed (they do not change what is computed)
RESUMABLE_CHANGES = ("total_steps", "wandb", "progress", "run_dir", "force")


@dataclasses.dataclass
class RunResult:
    run_dir: str
    state: Any  # final seed-batched training state
    eval_steps: np.ndarray  # [E]
    eval_returns: np.ndarray  # [S, E, episodes]
    train_steps: np.ndarray  # [C]
    train_metrics: dict[str, np.ndarray]  # name -> [S, C]
    compile_seconds: float

    @property
    def eval_return_mean(self) -> np.ndarray:
        return self.eval_returns.mean(-1)


# -- building ------------------------------------------------------------------------------------------------
def build(config: ml_collections.ConfigDict):
    """(env, agent) for a config; raises ValueError on an unknown env / algorithm or invalid values."""
    env = envs.make(config.env.name, backend=config.env.backend, episode_length=config.env.episode_length,
                    **dict(config.env.get("kwargs", {})))
    return env, agents.make(config.algo, env, config.agent)


def steps_per_iteration(agent) -> int:
    c = agent.config
    return c.num_envs * c.get("unroll_length", 1)


def chunk_steps(config, agent) -> int:
    """Env steps per chunk: the gcd of every interval the host loop must stop at."""
    points = [config.eval_interval, config.checkpoint_interval, *config.snapshot_steps]
    return math.gcd(*[int(p) for p in points if p > 0])


def validate(config: ml_collections.ConfigDict):
    """Check a config before anything is written; returns (env, agent, steps per chunk)."""
    for key in ("num_seeds", "total_steps", "eval_interval", "eval_episodes", "checkpoint_interval",
                "keep_checkpoints"):
        if not int(config[key]) > 0:
            raise ValueError(f"config.{key} must be > 0, got {config[key]}")
    if config.wandb.mode not in ("online", "offline", "disabled"):
        raise ValueError(f"config.wandb.mode must be online, offline or disabled, got {config.wandb.mode!r}")
    env, agent = build(config)
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
    if hasattr(agent, "buffer_bytes"):
        check_fits(agent.buffer_bytes(config.num_seeds), f"{config.num_seeds} replay buffers")
    return env, agent, chunk


def seed_keys(config) -> jax.Array:
    base = jax.random.PRNGKey(config.seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(config.num_seeds))


def abstract_state(agent, num_seeds: int):
    keys = jax.ShapeDtypeStruct((num_seeds, 2), jnp.uint32)
    return jax.eval_shape(jax.vmap(agent.init), keys)


# -- run directory -------------------------------------------------------------------------------------------
def default_run_dir(config) -> str:
    return os.path.join("runs", f"{config.algo}-{config.env.name}-seed{config.seed}")


def read_config(run_dir: str) -> ml_collections.ConfigDict:
    with open(os.path.join(run_dir, "config.json")) as f:
        return ml_collections.ConfigDict(json.load(f))


def load_run(run_dir: str):
    """(config, env, agent) of an existing run directory."""
    config = read_config(run_dir)
    env, agent = build(config)
    return config, env, agent


def _comparable(config_dict: dict, resumable=RESUMABLE_CHANGES) -> dict:
    return {k: v for k, v in config_dict.items() if k not in resumable}


def _jsonable(config) -> dict:
    return json.loads(config.to_json_best_effort())


def prepare_run_dir(run_dir: str, config, force: bool, resumable=RESUMABLE_CHANGES) -> bool:
    """Create or check ``run_dir``; True if it holds a run to resume. Refuses a different config (keys other
    than ``resumable``) unless forced, and never deletes anything. Also used by `rlland.qd.driver`."""
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = os.path.join(run_dir, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as err:
        raise ValueError(f"run_dir {run_dir!r} is not writable: {err}") from err
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        old = json.load(f)
    new = _jsonable(config)
    if _comparable(old, resumable) != _comparable(new, resumable) and not force:
        diff = sorted(k for k in set(old) | set(new) if k not in resumable and old.get(k) != new.get(k))
        raise ValueError(f"run_dir {run_dir!r} holds a run with a different config (differs in {diff}); "
                         f"use another run_dir, or force=True (--force) to resume it with the new config")
    return True


# -- the chunk kernel ----------------------------------------------------------------------------------------
def _reduce(metrics: dict) -> dict:
    """Chunk reduction of per-iteration metrics [K]: means, and the mean return of the episodes that ended."""
    # diagnostics logged every few iterations are NaN in between: average over the iterations that logged
    out = {k: (jnp.nanmean(v) if k.startswith("repr/") else v.mean()) for k, v in metrics.items()
           if k not in ("episode_return_sum", "episodes")}
    n = metrics["episodes"].sum()
    out["episode_return"] = jnp.where(n > 0, metrics["episode_return_sum"].sum() / jnp.maximum(n, 1), jnp.nan)
    out["episodes"] = n
    return out


def make_chunk(agent, iterations: int):
    def chunk(state):
        state, metrics = jax.lax.scan(lambda s, _: agent.step(s), state, None, iterations)
        return state, _reduce(metrics)

    # the named seed axis lets gates shared by all seeds (e.g. "log every k updates") stay real branches
    return jax.jit(jax.vmap(chunk, axis_name="seed"), donate_argnums=0)


def make_eval(agent, num_episodes: int):
    def one(params, key):
        return evaluate.evaluate(agent, params, key, num_episodes).undiscounted

    return jax.jit(jax.vmap(one))


def _eval_keys(config, step: int) -> jax.Array:
    base = jax.random.fold_in(jax.random.PRNGKey(config.seed), 2**31 - 1)  # a stream apart from training keys
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(base, step), i))(jnp.arange(config.num_seeds))


def _buffer_wraps(config, agent) -> bool:
    cap = agent.config.get("buffer_capacity")
    return cap is not None and config.total_steps > cap


# -- the host loop -------------------------------------------------------------------------------------------
def run(config: ml_collections.ConfigDict, run_dir: str | None = None, force: bool | None = None) -> RunResult:
    """Train ``config.num_seeds`` seeds of ``config.algo`` on ``config.env``; resume if ``run_dir`` holds a run."""
    config = ml_collections.ConfigDict(config.to_dict())
    run_dir = run_dir or config.get("run_dir") or default_run_dir(config)
    force = config.get("force", False) if force is None else force
    env, agent, chunk_env_steps = validate(config)
    resuming = prepare_run_dir(run_dir, config, force)
    checkpoint.write_json_atomic(os.path.join(run_dir, "config.json"), _jsonable(config))

    iterations = chunk_env_steps // steps_per_iteration(agent)
    chunk_fn, eval_fn = make_chunk(agent, iterations), make_eval(agent, config.eval_episodes)
    ckpts = checkpoint.Checkpoints(run_dir, keep=config.keep_checkpoints)
    abstract = sharding.with_sharding(abstract_state(agent, config.num_seeds), config.num_seeds)
    restored = ckpts.restore_latest(abstract, set_aside=True) if resuming else None
    if restored is None:
        step, history = 0, {}
        state = jax.jit(jax.vmap(agent.init))(seed_keys(config))
    else:
        step, state, history = restored
        print(f"resuming {run_dir} from env step {step}")
    state = sharding.shard_seeds(state, config.num_seeds)

    t0 = time.perf_counter()
    chunk_fn = chunk_fn.lower(state).compile()
    compile_seconds = time.perf_counter() - t0
    sink = rl_logging.WandbSink(run_dir, os.path.basename(os.path.abspath(run_dir)), config.num_seeds,
                                _jsonable(config), mode=config.wandb.mode, project=config.wandb.project)
    attrs = {"config": _jsonable(config), "compile_seconds": compile_seconds}
    snapshot_at, wraps = set(int(s) for s in config.snapshot_steps), _buffer_wraps(config, agent)
    bar = tqdm(total=config.total_steps, initial=step, unit="step", unit_scale=True, dynamic_ncols=True,
               disable=not config.get("progress", True), desc=f"{config.algo}/{config.env.name} x{config.num_seeds}")
    bar.set_postfix_str(f"compiled in {compile_seconds:.1f}s")
    if step == 0 and 0 in snapshot_at:
        checkpoint.save_snapshot(run_dir, 0, state, wraps)
    try:
        while step < config.total_steps:
            state, metrics = chunk_fn(state)
            step += chunk_env_steps
            metrics = jax.tree.map(np.asarray, metrics)
            _append(history, "train/steps", np.array([step]), axis=0)
            for k, v in metrics.items():
                _append(history, f"train/{k}", v[:, None], axis=1)
            log = {f"train/{k}": v for k, v in metrics.items()}
            if step % config.eval_interval == 0 or step == config.total_steps:
                returns = np.asarray(eval_fn(state.params, _eval_keys(config, step)))
                _append(history, "eval/steps", np.array([step]), axis=0)
                _append(history, "eval/returns", returns[:, None, :], axis=1)
                history["eval/return_mean"] = history["eval/returns"].mean(-1)
                log["eval/return_mean"] = returns.mean(-1)
                bar.set_postfix_str(f"eval return {returns.mean():.1f}")
                rl_logging.write_h5(os.path.join(run_dir, "metrics.h5"), history, attrs)
            sink.log(step, log)
            if step in snapshot_at:
                checkpoint.save_snapshot(run_dir, step, state, wraps)
            if step % config.checkpoint_interval == 0 or step == config.total_steps:
                ckpts.save(step, state, history)
            bar.update(chunk_env_steps)
    finally:
        bar.close()
        sink.finish()
    rl_logging.write_h5(os.path.join(run_dir, "metrics.h5"), history, attrs)
    if "eval/steps" in history:
        fig = plotting.learning_curves(history["eval/steps"], history["eval/return_mean"],
                                       title=f"{config.algo} on {config.env.name}")
        plotting.save(fig, os.path.join(run_dir, "figures", "learning_curve.png"))
    return RunResult(run_dir=run_dir, state=state, eval_steps=history.get("eval/steps", np.zeros(0)),
                     eval_returns=history.get("eval/returns", np.zeros((config.num_seeds, 0, 0))),
                     train_steps=history["train/steps"],
                     train_metrics={k[6:]: v for k, v in history.items() if k.startswith("train/") and
                                    k != "train/steps"}, compile_seconds=compile_seconds)


def _append(history: dict, key: str, value: np.ndarray, axis: int) -> None:
    history[key] = value if key not in history else np.concatenate([history[key], value], axis=axis)
