"""Sinks for chunk outputs and analysis results: ``metrics.h5`` (learning curves with a seed axis) and wandb (one run per seed).

``metrics.h5`` layout (rewritten atomically from the host-side history after every evaluation)::

    eval/steps            [E]             env steps (per seed) at each evaluation
    eval/return_mean      [S, E]          mean deterministic return per seed
    eval/returns          [S, E, n]       every evaluation episode's return
    train/steps           [C]             env steps at the end of each chunk
    train/<metric>        [S, C]          chunk-mean of each training metric (episode_return: mean over the
                                          episodes that ended in the chunk, NaN if none did)
    attrs: config (JSON), compile_seconds

A sweep (`rlland.sweep`, P points): every ``[S, ...]`` above is ``[P, S, ...]``, and ``diverged_at`` [P, S]; the
points are the datasets ``sweep/<key>`` [P] (each point's value of each swept key) and the attributes
``sweep_keys`` and ``sweep_labels``; ``points/<p>/metrics.h5`` holds point p's seeds in the layout above.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping

import h5py
import numpy as np


def write_h5(path: str, history: dict[str, np.ndarray], attrs: dict | None = None) -> None:
    """Write ``history`` (keys like ``eval/returns``) to ``path`` atomically."""
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        for key, value in history.items():
            f.create_dataset(key, data=np.asarray(value))
        for key, value in (attrs or {}).items():
            f.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value)
    os.replace(tmp, path)


def open_h5(path: str):
    """``h5py.File(path, "r")``; an unreadable file (missing, truncated, not HDF5) raises an OSError that names it
    (h5py's own message, e.g. "file signature not found", does not)."""
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise OSError(f"cannot read {path}: {err}") from None


def read_h5(path: str) -> tuple[dict[str, np.ndarray], dict]:
    with open_h5(path) as f:
        data = {}
        f.visititems(lambda name, obj: data.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return data, dict(f.attrs)


_JSON = "json:"  # prefix of attribute values stored as JSON (non-numeric lists, dicts, None)


def flatten_attrs(attrs, prefix: str = "") -> dict:
    """Nested mappings (and ml_collections ConfigDicts) flattened to dotted keys (``agent.learning_rate``)."""
    if attrs is None:
        return {}
    if hasattr(attrs, "to_dict"):
        attrs = attrs.to_dict()
    if not isinstance(attrs, Mapping):
        raise TypeError(f"attrs must be a mapping (or an ml_collections ConfigDict), got {type(attrs).__name__}")
    out = {}
    for k, v in attrs.items():
        if hasattr(v, "to_dict"):
            v = v.to_dict()
        if isinstance(v, Mapping):
            out |= flatten_attrs(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def encode_attr(value):
    """An h5 attribute value: numbers, bools, strings and numeric arrays as they are, anything else (None, dicts,
    lists of strings) as ``"json:" + json.dumps(value)``."""
    if isinstance(value, (bool, int, float, str, np.generic)):
        return value
    arr = np.asarray(value) if not isinstance(value, (list, tuple)) or value else None
    if arr is not None and arr.dtype.kind in "biuf" and arr.dtype != object:
        return arr
    return _JSON + json.dumps(value, default=str)


def decode_attr(value):
    """The inverse of `encode_attr` (numpy scalars come back as Python scalars)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value.startswith(_JSON):
        return json.loads(value[len(_JSON):])
    if isinstance(value, np.generic):
        return value.item()
    return value


def set_attrs(obj, attrs) -> None:
    """Write ``attrs`` (flattened, encoded) onto an h5 file, group or dataset."""
    for k, v in flatten_attrs(attrs).items():
        obj.attrs[k] = encode_attr(v)


def write_layout_h5(path: str, datasets: dict[str, np.ndarray], attrs: dict, layout: str, version: int) -> None:
    """An analysis's h5 file: ``datasets`` (names with '/' make groups), ``attrs`` flattened to dotted keys
    (numbers and numeric lists as is, anything else as JSON), and ``rlland_layout`` / ``rlland_layout_version``;
    written atomically."""
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        for name, value in datasets.items():
            f.create_dataset(name, data=np.asarray(value))
        set_attrs(f, attrs)
        f.attrs["rlland_layout"] = layout
        f.attrs["rlland_layout_version"] = version
    os.replace(tmp, path)


def read_layout_h5(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """``(datasets by full name, decoded attributes)`` of a file written by :func:`write_layout_h5`."""
    data = {}
    with open_h5(path) as f:
        f.visititems(lambda n, o: data.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        attrs = {k: decode_attr(v) for k, v in f.attrs.items()}
    return data, attrs


WANDB_MODES = ("online", "offline", "disabled")


def history_rows(*tables: tuple[np.ndarray, dict[str, np.ndarray]]) -> list[tuple[int, dict[str, np.ndarray]]]:
    """The rows of a restored history, merged by step and sorted: each table is ``(steps [N], {key: [S, N]})``.

    A resumed run logs them first, so its wandb session holds every row up to the checkpoint: wandb-core buffers
    the offline file, and a ``kill -9`` loses the rows it had not written (the killed session's file can be
    empty), while the checkpoint's history has them all. Online, wandb drops the steps its server already has."""
    merged: dict[int, dict[str, np.ndarray]] = {}
    for steps, columns in tables:
        for j, step in enumerate(np.asarray(steps).tolist()):
            merged.setdefault(int(step), {}).update({k: np.asarray(v)[:, j] for k, v in columns.items()})
    return sorted(merged.items())


class WandbSink:
    """One wandb run per seed, grouped under the experiment; ``mode`` online | offline | disabled. A sweep's
    members (``points``): one group per point (``<group>-p<p>``), runs ``p<p>-seed<s>`` with the point's values
    in their config (``sweep.<key>``); ``log`` then takes member-axis arrays.

    Ids are ``<run_id>-seed<i>`` and the group ``<basename>-<run_id>``, with ``run_id`` the run directory's
    stable id (`rlland.runs.run_id`): two directories with the same basename never share a wandb run or group,
    and a resumed directory logs to the same ids. Every row is committed as it is logged, so a kill loses no
    logged step. In offline mode wandb writes one folder per session (``offline-run-<time>-<id>``); the folders
    of one id are one run, which ``wandb sync`` merges (rows a resume recomputes are bitwise the rows logged
    before the kill). wandb's console output (sparklines, summaries) is off unless ``console``.
    """

    def __init__(self, run_dir: str, run_id: str, num_seeds: int, config: dict, mode: str = "offline",
                 project: str = "rlland", entity: str | None = None, console: bool = False, points=()):
        self.runs = []
        if mode == "disabled":
            return
        import wandb

        os.makedirs(os.path.join(run_dir, "wandb"), exist_ok=True)
        if not console:  # wandb prints several lines per run at init and finish unless silenced
            os.environ.setdefault("WANDB_SILENT", "true")
        settings = wandb.Settings(console="auto" if console else "off", quiet=not console,
                                  show_info=console, show_warnings=console)
        group = f"{os.path.basename(os.path.abspath(run_dir))}-{run_id}"
        # a sweep (points, `rlland.sweep`): one group per point, runs in member order (point-major)
        members = [("", None, {})] if not points else [
            (f"-p{p}", p, {"sweep_point": p, **{f"sweep.{k}": v for k, v in point.items()}})
            for p, point in enumerate(points)]
        for suffix, p, extra in members:
            for seed in range(num_seeds):
                name = f"seed{seed}" if p is None else f"p{p}-seed{seed}"
                self.runs.append(wandb.init(project=project, entity=entity or None, group=group + suffix,
                                            name=name, id=f"{run_id}-{name}", dir=run_dir, mode=mode,
                                            resume="allow", config=config | {"seed_index": seed} | extra,
                                            reinit="create_new", settings=settings))

    def log(self, step: int, per_seed: dict[str, np.ndarray]) -> None:
        """``per_seed`` maps metric names to arrays with a leading seed axis."""
        for seed, run in enumerate(self.runs):
            run.log({k: float(np.asarray(v)[seed]) for k, v in per_seed.items()}, step=int(step), commit=True)

    def log_rows(self, rows: list[tuple[int, dict[str, np.ndarray]]]) -> None:
        """Log ``(step, per-seed metrics)`` rows in order (see `history_rows`)."""
        for step, per_seed in rows:
            self.log(step, per_seed)

    def finish(self) -> None:
        for run in self.runs:
            run.finish()
        self.runs = []
