"""Checkpoints (exact resume) and snapshots (what the analyses load), with orbax-checkpoint.

Layout in a run directory::

    checkpoints/<env_step>/   the full seed-batched training state + host-side history (last N kept)
    snapshots/<env_step>/     params, optimiser states, targets, temperature, hparams, env states, counters and
                              the replay buffer's cursor and size at that step

Orbax writes each step to a temporary directory and renames it when complete, so a killed run never leaves a
half-written checkpoint that looks finished. A checkpoint that fails to restore is skipped with a warning and
the previous one is used.

Replay data in snapshots: the buffer is append-only until it wraps. If the run writes no more transitions than
the buffer holds, every later checkpoint still contains the exact data a snapshot saw (the first ``size`` slots),
so a snapshot stores only cursor and size (the study's convention, reference A.3). If the buffer will wrap, that
data gets overwritten, so the snapshot stores the buffer itself to keep its view exact.
"""
from __future__ import annotations

import json
import os
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization


def _abs(path: str) -> str:
    return os.path.abspath(path)


def _manager(directory: str, keep: int | None = None, read_only: bool = False) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=not read_only,
                                           read_only=read_only)
    return ocp.CheckpointManager(_abs(directory), options=options)


def to_dict(state: Any) -> dict:
    return serialization.to_state_dict(state)


def from_dict(target: Any, state_dict: dict) -> Any:
    return serialization.from_state_dict(target, state_dict)


def _encode(host: dict) -> dict:
    """Host keys like "eval/returns" name files inside the checkpoint: keep them free of path separators."""
    return {k.replace("/", "__"): np.asarray(v) for k, v in host.items()}


class Checkpoints:
    """The run's rolling checkpoints: full state (as a state dict) plus a host-side dict of numpy arrays."""

    def __init__(self, run_dir: str, keep: int = 2):
        self.manager = _manager(os.path.join(run_dir, "checkpoints"), keep)

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, host: dict[str, np.ndarray]) -> None:
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(to_dict(state)),
                                                        host=ocp.args.StandardSave(_encode(host))))
        self.manager.wait_until_finished()

    def restore_latest(self, abstract_state: Any) -> tuple[int, Any, dict] | None:
        """(step, state, host) from the newest checkpoint that restores; None when there is none."""
        target = to_dict(abstract_state)
        for step in reversed(self.steps()):
            try:
                out = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), host=ocp.args.StandardRestore()))
                host = {k.replace("__", "/"): np.asarray(v) for k, v in dict(out["host"]).items()}
                return step, from_dict(abstract_state, out["state"]), host
            except Exception as err:  # a corrupt or partial checkpoint: say so, fall back to the previous one
                warnings.warn(f"checkpoint at step {step} could not be restored ({type(err).__name__}: {err}); "
                              f"falling back to the previous checkpoint")
        return None


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


def load_snapshot(run_dir: str, step: int) -> Any:
    """The seed-batched training state as it was at ``step`` (use `select_seed` for one seed).

    The state has the agent's own type (e.g. ``OffPolicyState``), so the agent's losses and update steps apply.
    For off-policy agents the replay buffer holds exactly the data present at ``step``: from the snapshot if it
    stored it, else from the latest checkpoint (whose first ``size`` slots are that data, see module docstring).
    Use `rlland.train.load_run` to rebuild the matching env and agent.
    """
    from rlland import train  # the run's config says how to rebuild the agent

    steps = snapshot_steps(run_dir)
    if step not in steps:
        raise ValueError(f"no snapshot at step {step} in {run_dir}; available: {steps}")
    _, _, agent = train.load_run(run_dir)
    config = train.read_config(run_dir)
    abstract = train.abstract_state(agent, config.num_seeds)
    sd = dict(_manager(os.path.join(run_dir, "snapshots"), read_only=True).restore(
        step, args=ocp.args.StandardRestore()))
    if "buffer" in sd and "data" not in sd["buffer"]:
        latest = Checkpoints(run_dir).restore_latest(abstract)
        if latest is None:
            raise ValueError(f"snapshot {step} needs the replay data of a checkpoint, and {run_dir} has none")
        sd["buffer"] = dict(sd["buffer"]) | {"data": to_dict(latest[1].buffer)["data"]}
    return from_dict(abstract, sd)


def select_seed(tree: Any, i: int) -> Any:
    """Seed ``i`` of a seed-batched pytree (every leaf indexed on its leading axis)."""
    return jax.tree.map(lambda x: x[i], tree)


def write_json_atomic(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
