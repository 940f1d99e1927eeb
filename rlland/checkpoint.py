"""Checkpoints (exact resume) and snapshots (what the analyses load), with orbax-checkpoint.

Layout in a run directory::

    checkpoints/<env_step>/   the full seed-batched training state + host-side history (last N kept)
    snapshots/<env_step>/     params, optimiser states, targets, temperature, hparams, env states, counters and
                              the replay buffer's cursor and size at that step

Orbax writes each step to a temporary directory and renames it when complete, so a killed run never leaves a
half-written checkpoint that looks finished. A checkpoint that fails to restore is skipped with a warning and
the previous one is used; the driver moves such a checkpoint aside to ``checkpoints.failed/<env_step>`` (never
deletes it) so that the resumed run can write that step again.

Replay data in snapshots: the buffer is append-only until it wraps. If the run writes no more transitions than
the buffer holds, every later checkpoint still contains the exact data a snapshot saw (the first ``size`` slots),
so a snapshot stores only cursor and size (the study's convention, reference A.3). If the buffer will wrap, that
data gets overwritten, so the snapshot stores the buffer itself to keep its view exact.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization


def _abs(path: str) -> str:
    return os.path.abspath(path)


def _manager(directory: str, keep: int | None = None, read_only: bool = False, **kwargs) -> ocp.CheckpointManager:
    """``read_only``: only read (creates nothing; orbax's own read_only mode logs a warning on every use)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=not read_only)
    return ocp.CheckpointManager(_abs(directory), options=options, **kwargs)


def to_dict(state: Any) -> dict:
    return serialization.to_state_dict(state)


def from_dict(target: Any, state_dict: dict) -> Any:
    return serialization.from_state_dict(target, state_dict)


def _encode(host: dict) -> dict:
    """Host keys like "eval/returns" name files inside the checkpoint: keep them free of path separators."""
    return {k.replace("/", "__"): np.asarray(v) for k, v in host.items()}


class Checkpoints:
    """The run's rolling checkpoints: full state (as a state dict) plus a host-side dict of numpy arrays."""

    def __init__(self, run_dir: str, keep: int = 2, read_only: bool = False):
        self.directory = os.path.join(run_dir, "checkpoints")
        self.manager = _manager(self.directory, keep, read_only=read_only)

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, host: dict[str, np.ndarray]) -> None:
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(to_dict(state)),
                                                        host=ocp.args.StandardSave(_encode(host))))
        self.manager.wait_until_finished()

    def restore_latest(self, abstract_state: Any, set_aside: bool = False) -> tuple[int, Any, dict] | None:
        """(step, state, host) from the newest checkpoint that restores; None when there is none.

        ``abstract_state`` should carry the shardings to restore to (`rlland.sharding.with_sharding`). A checkpoint
        that fails to restore is skipped with a warning. With ``set_aside``, once an older one has restored, the
        failed ones are moved to ``checkpoints.failed/`` (kept, not deleted): orbax never writes a step at or below
        its latest one, so a resumed run could otherwise not replace them. Raises ValueError (moving nothing) when
        there are checkpoints and none of them restores, e.g. after a forced change of the network shapes.
        """
        target = to_dict(abstract_state)
        failed = []
        for step in reversed(self.steps()):
            try:
                out = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), host=ocp.args.StandardRestore()))
                host = {k.replace("__", "/"): np.asarray(v) for k, v in dict(out["host"]).items()}
                result = step, from_dict(abstract_state, out["state"]), host
                break
            except Exception as err:  # a corrupt or partial checkpoint: say so, fall back to the previous one
                reason = f"{type(err).__name__}: {str(err)[:500]}"
                failed.append((step, reason))
                warnings.warn(f"checkpoint at step {step} could not be restored ({reason}); "
                              f"falling back to the previous checkpoint")
        else:
            result = None
        if failed and set_aside and result is not None:
            for step, _ in failed:
                self._set_aside(step)
        if failed and result is None:
            raise ValueError(f"no checkpoint in {self.directory} could be restored: "
                             + "; ".join(f"step {s}: {e[:300]}" for s, e in failed)
                             + " (nothing was moved or deleted)")
        return result

    def _set_aside(self, step: int) -> None:
        src = os.path.join(self.directory, str(step))
        dst = os.path.join(os.path.dirname(self.directory), "checkpoints.failed", str(step))
        n = 0
        while os.path.exists(dst if n == 0 else f"{dst}.{n}"):
            n += 1
        dst = dst if n == 0 else f"{dst}.{n}"
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.move(src, dst)
        warnings.warn(f"moved the checkpoint that failed to restore to {dst}")
        self.manager.reload()


def snapshot_dict(state: Any, keep_buffer_data: bool) -> dict:
    """What a snapshot stores of a (seed-batched) training state."""
    sd = to_dict(state)
    if "buffer" in sd and not keep_buffer_data:
        sd["buffer"] = {k: v for k, v in sd["buffer"].items() if k != "data"}
    return sd


def save_snapshot(run_dir: str, step: int, state: Any, keep_buffer_data: bool) -> None:
    _manager(os.path.join(run_dir, "snapshots")).save(
        step, args=ocp.args.StandardSave(snapshot_dict(state, keep_buffer_data)))


def snapshot_steps(run_dir: str) -> list[int]:
    path = os.path.join(run_dir, "snapshots")
    return sorted(_manager(path, read_only=True).all_steps()) if os.path.isdir(path) else []


def load_snapshot(run_dir: str, step: int, agent: Any = None, params_only: bool = False) -> Any:
    """The seed-batched training state as it was at ``step`` (use `select_seed` for one seed).

    ``agent``: the run's agent, from ``rlland.train.load_run(run_dir)``; pass it when loading several snapshots
    (each call otherwise rebuilds the env, seconds for a Brax task). ``params_only``: return only the seed-batched
    ``params`` and skip the replay data (which may mean restoring a whole checkpoint's buffer).

    The state has the agent's own type (e.g. ``OffPolicyState``), so the agent's losses and update steps apply.
    For off-policy agents the replay buffer holds exactly the data present at ``step`` (slots past ``size`` are
    zero, as they were): from the snapshot if it stored it, else from the latest checkpoint (whose first ``size``
    slots are that data, see module docstring); a ValueError says so if that checkpoint cannot give the exact view
    (older than the snapshot, or its buffer has wrapped). Use `rlland.train.load_run` to rebuild the matching
    env and agent.
    """
    from rlland import sharding, train  # the run's config says how to rebuild the agent

    steps = snapshot_steps(run_dir)
    if step not in steps:
        raise ValueError(f"no snapshot at step {step} in {run_dir}; available: {steps}")
    config = train.read_config(run_dir)
    agent = train.load_run(run_dir)[2] if agent is None else agent
    abstract = sharding.with_sharding(train.abstract_state(agent, config.num_seeds), config.num_seeds)
    manager = _manager(os.path.join(run_dir, "snapshots"), read_only=True,
                       item_handlers=ocp.StandardCheckpointHandler())
    stored = manager.item_metadata(step)
    has_data = "buffer" in stored and "data" in stored["buffer"]
    target = snapshot_dict(abstract, keep_buffer_data=has_data)
    sd = dict(manager.restore(step, args=ocp.args.StandardRestore(target)))
    if params_only:
        return from_dict(abstract.params, sd["params"])
    if "buffer" in sd and not has_data:
        latest = Checkpoints(run_dir, read_only=True).restore_latest(abstract)
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
        size = np.asarray(sd["buffer"]["size"])  # [seeds]

        def as_then(d):  # slots past the snapshot's size were still empty (zero) at that step
            keep = (np.arange(capacity)[None, :] < size[:, None]).reshape(size.shape + (capacity,) + (1,) * (d.ndim - 2))
            return jax.numpy.where(keep, d, jax.numpy.zeros_like(d))

        sd["buffer"] = dict(sd["buffer"]) | {"data": jax.tree.map(as_then, to_dict(ckpt_state.buffer)["data"])}
    return from_dict(abstract, sd)


def select_seed(tree: Any, i: int) -> Any:
    """Seed ``i`` of a seed-batched pytree (every leaf indexed on its leading axis)."""
    return jax.tree.map(lambda x: x[i], tree)


def write_json_atomic(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
