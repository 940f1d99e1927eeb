"""Run directories: the config on disk, what it builds, seed keys, and loading a run's snapshots.

A training run directory (written by `rlland.train.run`)::

    config.json        the run's config (refused on resume if it differs in keys other than the resumable ones)
    checkpoints/       orbax: full seed-batched state + host history (`rlland.checkpoint.Checkpoints`)
    snapshots/<step>/  what the analyses load (`load_snapshot`)
    metrics.h5  wandb/  figures/

QD run directories (`rlland.qd.driver`) share everything here except `build`. Seed ``i`` of a run uses
``fold_in(PRNGKey(config.seed), i)``: the same seed whatever ``num_seeds`` is.

A sweep run (`rlland.sweep`) batches points x seeds; its checkpoints and snapshots hold the member-batched state,
and ``points/<p>/`` are point views: `load_run`, `snapshot_steps` and `load_snapshot` on a point view read the
sweep's files and give that point's seeds, exactly as for a plain run of the point (the sweep's own directory
is refused there with the list of its points).
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rlland import agents, checkpoint, envs, sharding, sweep

# keys that may change when a training run directory is resumed (they do not change what is computed)
RESUMABLE_CHANGES = ("total_steps", "wandb", "progress", "run_dir", "force", "on_divergence")
CONFIG_FILE = "config.json"


# -- configs on disk -----------------------------------------------------------------------------------------
def jsonable(config: Any) -> dict:
    """A config as plain JSON types (what config.json holds). ``sweep`` keeps only its swept keys, and is left
    out (with ``sweep_mode``) when there are none, at any depth: a plain run's (or study's) config is what it was
    before sweeps existed."""
    if isinstance(config, dict):
        config = ml_collections.ConfigDict(config)
    return _without_empty_sweeps(json.loads(config.to_json_best_effort()))


def _without_empty_sweeps(node: Any) -> Any:
    """Every ``sweep`` group (a study nests driver configs) reduced to its swept keys, dropped with its
    ``sweep_mode`` when none is swept."""
    if not isinstance(node, dict):
        return node
    out = {k: _without_empty_sweeps(v) for k, v in node.items()}
    if isinstance(out.get("sweep"), dict) or ("sweep" in out and out["sweep"] is None):
        out["sweep"] = {k: v for k, v in (out["sweep"] or {}).items() if v not in ((), [], None)}
        if not out["sweep"]:
            del out["sweep"]
            out.pop("sweep_mode", None)
    return out


def write_json_atomic(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def read_config(run_dir: str) -> ml_collections.ConfigDict:
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir!r} is not a run directory (no {CONFIG_FILE})")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def write_config(run_dir: str, config: Any) -> None:
    write_json_atomic(os.path.join(run_dir, CONFIG_FILE), jsonable(config))


def run_id(run_dir: str) -> str:
    """The run directory's stable id (a random hex string in ``<run_dir>/run_id``, created on first use): what
    wandb ids are made of, so two directories that share a basename never share ids."""
    path = os.path.join(run_dir, "run_id")
    if os.path.exists(path):
        with open(path) as f:
            return f.read().strip()
    new = uuid.uuid4().hex[:12]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(new + "\n")
    os.replace(tmp, path)
    return new


def config_differences(old: dict, new: dict, resumable=RESUMABLE_CHANGES) -> list[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` for every leaf that differs between two JSON configs, top-level
    keys in ``resumable`` excepted (missing values are None)."""
    out = []

    def walk(a, b, prefix):
        for k in sorted(set(a) | set(b)):
            va, vb = a.get(k), b.get(k)
            if isinstance(va, dict) and isinstance(vb, dict):
                walk(va, vb, f"{prefix}{k}.")
            elif va != vb:
                out.append((f"{prefix}{k}", va, vb))

    walk({k: v for k, v in old.items() if k not in resumable}, {k: v for k, v in new.items() if k not in resumable}, "")
    return out


def describe_differences(diff: list[tuple[str, Any, Any]]) -> str:
    """e.g. "agent.learning_rate: 0.0003 -> 0.001; num_seeds: 2 -> 4"."""
    return "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diff)


def prepare_run_dir(run_dir: str, config: Any, force: bool, resumable=RESUMABLE_CHANGES) -> bool:
    """Create or check ``run_dir``; True if it holds a run to resume. Refuses a different config (keys other
    than ``resumable``) unless forced, and never deletes anything."""
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = os.path.join(run_dir, ".write_test" + (f".{jax.process_index()}" if jax.process_count() > 1 else ""))
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as err:
        raise ValueError(f"run_dir {run_dir!r} is not writable: {err}") from err
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return False
    with open(path) as f:
        old = json.load(f)
    diff = config_differences(old, jsonable(config), resumable)
    if diff and not force:
        top = sorted({k.split(".")[0] for k, _, _ in diff})
        raise ValueError(f"run_dir {run_dir!r} holds a run with a different config (differs in {top}): "
                         f"{describe_differences(diff)}; use another run_dir, or force=True (--force) to resume "
                         f"it with the new config")
    return True


def archive_config(run_dir: str) -> str | None:
    """Keep the current config.json as ``config.<UTC timestamp>.json`` (before a forced change); returns its path."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dst, n = os.path.join(run_dir, f"config.{stamp}.json"), 1
    while os.path.exists(dst):
        dst, n = os.path.join(run_dir, f"config.{stamp}.{n}.json"), n + 1
    shutil.copy2(path, dst)
    return dst


def check_restorable(old_abstract: Any, new_abstract: Any, diff: list) -> None:
    """ValueError (naming the changed keys) when a forced config change alters the training state's shapes, so
    the run's checkpoints could not be restored with it."""
    def shapes(tree):
        return jax.tree.structure(tree), [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]

    if shapes(old_abstract) != shapes(new_abstract):
        raise ValueError(f"--force cannot resume this run with the new config: it changes the shapes of the "
                         f"training state, so the checkpoints would not restore ({describe_differences(diff)}); "
                         f"nothing was changed; use another run_dir")


# -- what a training config builds ---------------------------------------------------------------------------
def build(config: ml_collections.ConfigDict):
    """(env, agent) for a training config; raises ValueError on an unknown env / algorithm or invalid values."""
    env = envs.make(config.env.name, backend=config.env.backend, episode_length=config.env.episode_length,
                    **dict(config.env.get("kwargs", {})))
    return env, agents.make(config.algo, env, config.agent)


EVAL_ENV_KEYS = ("backend", "episode_length", "fixed_start", "kwargs")


def build_eval_env(config: ml_collections.ConfigDict, env: envs.Env | None = None) -> envs.Env:
    """The driver's evaluation env: the training task with ``config.eval_env``'s settings over ``config.env``'s.

    ``config.eval_env`` (optional; absent or all defaults = evaluate on the training env ``env`` itself):
    ``backend`` ("" = the training env's), ``episode_length`` (0 = the training env's), ``fixed_start`` (the
    study's fixed start state, reference A.4), ``kwargs`` (Brax constructor arguments, merged over
    ``config.env.kwargs``). ValueError for an unknown key.
    """
    settings = dict(config.get("eval_env", None) or {})
    unknown = set(settings) - set(EVAL_ENV_KEYS)
    if unknown:
        raise ValueError(f"config.eval_env: unknown keys {sorted(unknown)}; valid: {', '.join(EVAL_ENV_KEYS)}")
    backend = settings.get("backend") or config.env.backend
    length = settings.get("episode_length") or config.env.episode_length
    fixed, extra = bool(settings.get("fixed_start", False)), dict(settings.get("kwargs") or {})
    if env is not None and backend == config.env.backend and length == config.env.episode_length and not fixed \
            and not extra:
        return env
    kwargs = dict(config.env.get("kwargs", {})) | extra
    return envs.make(config.env.name, backend=backend, episode_length=length, fixed_start=fixed, **kwargs)


def default_run_dir(config) -> str:
    """`preset_run_dir`, with ``-sweep-<keys>`` appended for a sweep (e.g. ``runs/td3-hopper-seed0-sweep-learning_rate``)."""
    swept = sweep.spec(config)
    base = preset_run_dir(config.algo, config.env.name, config.seed)
    return base if not swept else f"{base}-sweep-{'-'.join(swept)}"


def preset_run_dir(algo: str, env: str, seed: int = 0) -> str:
    """``runs/<algo>-<env>-seed<seed>``: where ``configs/train.py:<algo>/<env>`` trains by default, and so the run
    an analysis preset ``configs/<analysis>.py:<algo>/<env>`` reads. A suite name's slash becomes ``_``
    (``minatar/breakout`` -> ``runs/ppo-minatar_breakout-seed0``, the preset spelling ``ppo/minatar_breakout``)."""
    return os.path.join("runs", f"{algo}-{env.replace('/', '_')}-seed{seed}")


def preset_run_dir_of(arg: str | None) -> str:
    """An analysis config's argument ``<algo>/<env>`` -> :func:`preset_run_dir`; "" for no argument;
    ValueError for anything else."""
    if not arg:
        return ""
    parts = arg.split("/")
    if len(parts) != 2:
        raise ValueError(f"config argument must be empty or <algo>/<env> (e.g. td3/hopper), got {arg!r}")
    return preset_run_dir(*parts)


def seed_keys(config) -> jax.Array:
    """``[num_seeds, 2]``: seed ``i``'s key is ``fold_in(PRNGKey(config.seed), i)``."""
    base = jax.random.PRNGKey(config.seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(config.num_seeds))


def member_keys(config) -> jax.Array:
    """``[points x seeds, 2]``: member ``p * S + s`` of a sweep has seed ``s``'s key (`seed_keys`)."""
    keys = seed_keys(config)
    return jnp.tile(keys, (sweep.num_points(config), 1))


def abstract_state(agent, num_seeds: int):
    """The seed-batched training state's shapes and dtypes (nothing is computed)."""
    keys = jax.ShapeDtypeStruct((num_seeds, 2), jnp.uint32)
    return jax.eval_shape(jax.vmap(agent.init), keys)


def not_a_sweep(run_dir: str) -> None:
    """ValueError naming the point views when ``run_dir`` is a sweep run's own directory (an analysis reads
    one point at a time)."""
    points = sweep.point_dirs(run_dir)
    if points:
        raise ValueError(f"{run_dir} is a sweep of {len(points)} points: analyse its point views "
                         f"({', '.join(points)}); the analyses' entry points and scripts do each in turn")


def load_run(run_dir: str):
    """(config, env, agent) of an existing training run directory (or a sweep's point view)."""
    not_a_sweep(run_dir)
    config = read_config(run_dir)
    env, agent = build(config)
    return config, env, agent


def select_seed(tree: Any, i: int) -> Any:
    """Seed ``i`` of a seed-batched pytree (every leaf indexed on its leading axis)."""
    return jax.tree.map(lambda x: x[i], tree)


def select_seeds(tree: Any, seeds, num_seeds: int) -> tuple[Any, list[int]]:
    """``(tree restricted to seeds, seeds)``; empty ``seeds`` = every seed; ValueError for a seed not in the run."""
    seeds = list(range(num_seeds)) if not seeds else [int(s) for s in seeds]
    bad = [s for s in seeds if not 0 <= s < num_seeds]
    if bad:
        raise ValueError(f"seeds {bad} are not in the run (it has {num_seeds} seeds)")
    return jax.tree.map(lambda x: x[np.asarray(seeds)], tree), seeds


# -- snapshots -----------------------------------------------------------------------------------------------
def snapshot_steps(run_dir: str) -> list[int]:
    view = sweep.point_of(run_dir)
    return checkpoint.snapshot_steps(view["sweep_dir"] if view else run_dir)


def load_snapshot(run_dir: str, step: int, agent: Any = None, params_only: bool = False,
                  config: ml_collections.ConfigDict | None = None) -> Any:
    """The seed-batched training state as it was at ``step`` (use `select_seed` for one seed).

    ``agent`` / ``config``: the run's, from `load_run`; pass them when loading several snapshots (each call
    otherwise reads config.json and rebuilds the env, seconds for a Brax task). ``params_only``: return only the
    seed-batched ``params`` and skip the replay data (which may mean restoring a whole checkpoint's buffer).

    The state has the agent's own type (e.g. ``OffPolicyState``), so the agent's losses and update steps apply.
    For off-policy agents the replay buffer holds exactly the data present at ``step`` (slots past ``size`` are
    zero, as they were): from the snapshot if it stored it, else from the latest checkpoint (whose first ``size``
    slots are that data, see `rlland.checkpoint`); a ValueError says so if that checkpoint cannot give the exact
    view (older than the snapshot, or its buffer has wrapped).
    """
    not_a_sweep(run_dir)
    steps = snapshot_steps(run_dir)
    if step not in steps:
        raise ValueError(f"no snapshot at step {step} in {run_dir}; available: {steps}")
    config = read_config(run_dir) if config is None else config
    agent = build(config)[1] if agent is None else agent
    view = sweep.point_of(run_dir)
    if view is not None:  # a sweep's point: its members of the sweep's snapshot (same static config, same shapes)
        members = int(view["num_points"]) * int(config.num_seeds)
        abstract = sharding.with_sharding(abstract_state(agent, members), members)
        full = _load_snapshot(view["sweep_dir"], step, abstract, params_only)
        return sweep.select_point(full, int(view["point"]), int(config.num_seeds))
    abstract = sharding.with_sharding(abstract_state(agent, config.num_seeds), config.num_seeds)
    return _load_snapshot(run_dir, step, abstract, params_only)


def _load_snapshot(run_dir: str, step: int, abstract: Any, params_only: bool) -> Any:
    try:
        sd, has_data = checkpoint.restore_snapshot(run_dir, step, abstract)
    except Exception as err:  # orbax / TensorStore errors carry a long spec and no file name
        raise ValueError(f"snapshot {step} of {run_dir} could not be read ({type(err).__name__}: "
                         f"{str(err)[:300]})") from err
    if params_only:
        return checkpoint.from_dict(abstract.params, sd["params"])
    if "buffer" in sd and not has_data:
        sd["buffer"] = dict(sd["buffer"]) | {"data": _buffer_data_at(run_dir, step, abstract, sd["buffer"]["size"])}
    return checkpoint.from_dict(abstract, sd)


def _buffer_data_at(run_dir: str, step: int, abstract: Any, size) -> dict:
    """The replay data a snapshot at ``step`` saw, from the latest checkpoint (slots past ``size`` zeroed)."""
    latest = checkpoint.Checkpoints(run_dir, read_only=True).restore_latest(abstract)
    if latest is None:
        raise ValueError(f"snapshot {step} needs the replay data of a checkpoint, and {run_dir} has none")
    ckpt_step, ckpt_state, _ = latest
    capacity = ckpt_state.buffer.capacity
    written = int(np.max(np.asarray(getattr(ckpt_state, "env_steps", ckpt_state.buffer.size))))
    if ckpt_step < step or written > capacity:
        why = (f"the latest checkpoint (step {ckpt_step}) is older than the snapshot" if ckpt_step < step else
               f"its buffer has wrapped ({written} transitions written, capacity {capacity}) and overwritten "
               f"the data the snapshot saw")
        raise ValueError(f"snapshot {step} of {run_dir} stores no replay data and cannot be viewed exactly: {why}")
    size = np.asarray(size)  # [seeds]

    def as_then(d):  # slots past the snapshot's size were still empty (zero) at that step
        keep = (np.arange(capacity)[None, :] < size[:, None]).reshape(size.shape + (capacity,) + (1,) * (d.ndim - 2))
        return jnp.where(keep, d, jnp.zeros_like(d))

    return jax.tree.map(as_then, checkpoint.to_dict(ckpt_state.buffer)["data"])


def resolve_run_dir(flag: str | None, c) -> str:
    """The run directory of an analysis: ``--run_dir`` if given, else the config's ``run_dir`` (set by the
    ``<algo>/<env>`` presets); ValueError if neither names an existing run."""
    run_dir = flag or c.get("run_dir", "")
    if not run_dir:
        raise ValueError("no run directory: pass --run_dir, or a preset --config=configs/<analysis>.py:<algo>/<env> "
                         "that names the run of configs/train.py:<algo>/<env>")
    if not os.path.exists(os.path.join(run_dir, "config.json")):
        raise ValueError(f"{run_dir} is not a training run directory (no config.json): train it first with "
                         f"experiments/train.py, or pass --run_dir")
    return run_dir
