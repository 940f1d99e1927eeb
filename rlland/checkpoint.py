"""Checkpoints (exact resume) and snapshots (what the analyses load), with orbax-checkpoint; nothing else.

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

import errno
import os
import shutil
import warnings
from typing import Any

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
        """Write checkpoint ``step``. A full disk raises a one-line OSError and leaves no partial step behind
        (so a retry can write it)."""
        try:
            self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(to_dict(state)),
                                                            host=ocp.args.StandardSave(_encode(host))))
            self.manager.wait_until_finished()
        except Exception as err:
            if not _no_space(err):
                raise
            self._remove_partial(step)
            raise OSError(f"cannot write checkpoint {step} to {self.directory}: no space left on device") from None

    def _remove_partial(self, step: int) -> None:
        """Orbax's temporary directory of an unfinished ``step`` (never a finished checkpoint)."""
        if not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            if name.startswith(f"{step}.orbax-checkpoint-tmp"):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
        self.manager.reload()

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

def _no_space(err: BaseException) -> bool:
    """Whether ``err`` (or anything in its cause chain) is ENOSPC, however orbax wrapped it."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if getattr(err, "errno", None) == errno.ENOSPC or "No space left on device" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


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

def restore_snapshot(run_dir: str, step: int, abstract_state: Any) -> tuple[dict, bool]:
    """``(state dict, has_buffer_data)`` of the snapshot at ``step``, restored onto ``abstract_state``'s shapes and
    shardings. The replay data is in the dict only when the snapshot stored it (``has_buffer_data``);
    `rlland.runs.load_snapshot` completes the view from a checkpoint otherwise."""
    manager = _manager(os.path.join(run_dir, "snapshots"), read_only=True,
                       item_handlers=ocp.StandardCheckpointHandler())
    stored = manager.item_metadata(step)
    has_data = "buffer" in stored and "data" in stored["buffer"]
    target = snapshot_dict(abstract_state, keep_buffer_data=has_data)
    return dict(manager.restore(step, args=ocp.args.StandardRestore(target))), has_data

_MOVED = {"load_snapshot": "rlland.runs.load_snapshot", "select_seed": "rlland.runs.select_seed",
          "write_json_atomic": "rlland.runs.write_json_atomic"}

def __getattr__(name: str):
    if name in _MOVED:
        raise AttributeError(f"rlland.checkpoint.{name} has moved to {_MOVED[name]}")
    raise AttributeError(f"module 'rlland.checkpoint' has no attribute {name!r}")
