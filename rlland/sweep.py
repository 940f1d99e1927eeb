"""Hyperparameter sweeps in one kernel: ``config.sweep`` maps traced hyperparameters to lists of values.

    --config.sweep.learning_rate="(1e-4, 3e-4, 1e-3)" --config.num_seeds=5          # 3 points x 5 seeds
    --config.sweep.learning_rate="(1e-4, 1e-3)" --config.sweep.tau="(0.005, 0.01)"  # a 2 x 2 grid (sorted keys)
    ... --config.sweep_mode=zip                                                     # zipped: 2 points

Only traced hyperparameters (the agent's ``HPARAMS``, which live in ``state.hparams``) can be swept: they are
values, not shapes, so every point runs in the same compiled kernel. A static key (a width, ``num_envs``, a
batch size) is refused: it sets a shape or a loop count, which would be another kernel (another run).

**Members.** A sweep of P points and S seeds is one batch of ``M = P x S`` members, point-major: member
``m = p * S + s`` is point ``p``'s seed ``s``. It uses the seed key ``fold_in(PRNGKey(config.seed), s)`` (the
key of seed ``s`` of a plain run, whatever the point) and the point's hyperparameters, so point ``p``'s seed
``s`` is the run of config-with-point-``p``'s seed ``s``. Grid points are ``itertools.product`` over the keys in
sorted order (the last key varies fastest); zipped points are the i-th values of every list.

**On disk** (`rlland.train`): checkpoints and snapshots hold the member-batched state (leading axis M, each
member's values in its ``state.hparams``); ``metrics.h5`` carries ``[point, seed, ...]`` arrays with the points
in ``sweep/<key>`` datasets and attributes; and ``points/<p>/`` is a *point view* for the analyses: the config a
plain run of that point would have (``config.json``), ``sweep_point.json`` (the point, its values, the sweep's
directory), its own ``metrics.h5`` and figures. `rlland.runs.load_snapshot` on a point view reads the sweep's
snapshots and keeps the point's members, so every analysis reads a point as it reads a plain run, and writes
its h5 files and figures into the point view. `per_point` makes an analysis entry point accept the sweep's own
directory (it analyses each point) and labels what it writes with the point's values.
"""
from __future__ import annotations

import functools
import itertools
import json
import os
from typing import Any, Callable, Collection, Sequence

import numpy as np

SWEEP_MODES = ("grid", "zip")
POINTS_DIR = "points"
POINT_FILE = "sweep_point.json"


# -- the points of a config ----------------------------------------------------------------------------------
def spec(config: Any) -> dict[str, tuple]:
    """``{key: values}`` of the swept keys (empty lists left out), keys sorted: ``{}`` for a plain run."""
    sweep = config.get("sweep", None) if hasattr(config, "get") else None
    if not sweep:
        return {}
    sweep = sweep.to_dict() if hasattr(sweep, "to_dict") else dict(sweep)
    out = {}
    for k in sorted(sweep):
        v = sweep[k]
        values = tuple(v) if isinstance(v, (tuple, list)) else (() if v is None else (v,))
        if values:
            out[k] = values
    return out


def points(config: Any) -> list[dict[str, float]]:
    """The sweep's points in order (``[]`` for a plain run): the grid (``itertools.product`` over the sorted
    keys) or, with ``config.sweep_mode = "zip"``, the i-th values of every list."""
    s = spec(config)
    if not s:
        return []
    mode = config.get("sweep_mode", "grid") or "grid"
    if mode not in SWEEP_MODES:
        raise ValueError(f"config.sweep_mode must be one of {', '.join(SWEEP_MODES)}; got {mode!r}")
    keys = list(s)
    if mode == "zip":
        lengths = {k: len(v) for k, v in s.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"config.sweep_mode='zip' needs lists of one length; got lengths {lengths}")
        rows = zip(*s.values())
    else:
        rows = itertools.product(*s.values())
    return [dict(zip(keys, (float(v) for v in row))) for row in rows]


def num_points(config: Any) -> int:
    """P: the sweep's points, 1 for a plain run."""
    return max(1, len(points(config)))


def num_members(config: Any) -> int:
    """M = P x S: the length of the run's batch axis."""
    return num_points(config) * int(config.num_seeds)


def validate(config: Any, traced: Sequence[str], static: Collection[str], where: str = "config.agent") -> list:
    """The points, after checking every swept key: ValueError for a static key (it sets a shape), an unknown
    key, a non-numeric value or a repeated point."""
    for k, values in spec(config).items():
        if k not in traced:
            if k in static:
                raise ValueError(f"config.sweep.{k}: {where}.{k} is static (it sets a shape or a loop count, "
                                 f"compiled into the kernel), so it cannot be swept in one kernel; sweep traced "
                                 f"hyperparameters ({', '.join(traced)}) or train one run per value")
            raise ValueError(f"config.sweep.{k}: unknown hyperparameter; traced ones: {', '.join(traced)}")
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float, np.number))]
        if bad:
            raise ValueError(f"config.sweep.{k}: values must be numbers, got {bad}")
    pts = points(config)
    seen = [tuple(sorted(p.items())) for p in pts]
    if len(set(seen)) != len(seen):
        raise ValueError(f"config.sweep repeats a point: {[label(p) for p in pts]}")
    return pts


def label(point: dict[str, float]) -> str:
    """``"learning_rate=0.0001, tau=0.005"``."""
    return ", ".join(f"{k}={v:g}" for k, v in point.items())


def with_point(config: Any, point: dict[str, float], section: str = "agent"):
    """A copy of ``config`` as a plain run of ``point``: the values set in ``config.<section>``, no sweep."""
    import ml_collections

    c = ml_collections.ConfigDict(config.to_dict())
    node = c
    for part in section.split(".") if section else ():
        node = node[part]
    for k, v in point.items():
        node[k] = type(node[k])(v) if isinstance(node[k], (int, float)) and not isinstance(node[k], bool) else v
    if "sweep" in c:
        c.sweep = ml_collections.ConfigDict({k: () for k in c.sweep.keys()})
    return c


# -- member axes ---------------------------------------------------------------------------------------------
def member_seeds(config: Any) -> np.ndarray:
    """``[M]``: the seed index of each member (``m % S``)."""
    return np.arange(num_members(config)) % int(config.num_seeds)


def member_points(config: Any) -> np.ndarray:
    """``[M]``: the point index of each member (``m // S``)."""
    return np.arange(num_members(config)) // int(config.num_seeds)


def member_hparams(hparams_fn: Callable[..., dict], pts: Sequence[dict], num_seeds: int) -> dict:
    """``{name: [P * S]}`` float32: ``hparams_fn(**point)`` of each member's point (point-major)."""
    import jax.numpy as jnp

    per_point = [hparams_fn(**p) for p in pts] or [hparams_fn()]
    return {k: jnp.repeat(jnp.stack([jnp.asarray(h[k], jnp.float32) for h in per_point]), num_seeds)
            for k in per_point[0]}


def by_point(x: np.ndarray, num_points: int) -> np.ndarray:
    """A member-axis array ``[M, ...]`` as ``[P, S, ...]``."""
    x = np.asarray(x)
    return x.reshape((num_points, x.shape[0] // num_points) + x.shape[1:])


def select_point(tree: Any, p: int, num_seeds: int) -> Any:
    """Point ``p``'s members (``[S, ...]``) of a member-batched pytree."""
    import jax

    return jax.tree.map(lambda x: x[p * num_seeds:(p + 1) * num_seeds], tree)


# -- point views on disk -------------------------------------------------------------------------------------
def point_dir(run_dir: str, p: int) -> str:
    return os.path.join(run_dir, POINTS_DIR, str(p))


def write_point_view(run_dir: str, p: int, pts: Sequence[dict], num_seeds: int, config_json: dict) -> str:
    """Write ``points/<p>/config.json`` (the plain run's config of point ``p``) and ``sweep_point.json``."""
    d = point_dir(run_dir, p)
    os.makedirs(d, exist_ok=True)
    info = {"sweep_dir": os.path.relpath(run_dir, d), "point": p, "values": pts[p], "label": label(pts[p]),
            "num_points": len(pts), "num_seeds": int(num_seeds)}
    for name, obj in (("config.json", config_json), (POINT_FILE, info)):
        tmp = os.path.join(d, name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
        os.replace(tmp, os.path.join(d, name))
    return d


def point_of(run_dir: str) -> dict | None:
    """A point view's ``sweep_point.json`` with ``sweep_dir`` resolved, or None for any other directory."""
    path = os.path.join(run_dir, POINT_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        info = json.load(f)
    # realpath: a study reaches a point view through a symlink (`rlland.studies.pipeline`)
    info["sweep_dir"] = os.path.normpath(os.path.join(os.path.realpath(run_dir), info["sweep_dir"]))
    return info


def point_dirs(run_dir: str) -> list[str]:
    """The point views of a sweep run directory, in point order (``[]`` for any other directory)."""
    root = os.path.join(run_dir, POINTS_DIR)
    if not os.path.isdir(root) or not os.path.exists(os.path.join(run_dir, "config.json")):
        return []
    found = [n for n in os.listdir(root) if n.isdigit() and os.path.exists(os.path.join(root, n, POINT_FILE))]
    return [os.path.join(root, n) for n in sorted(found, key=int)]


def _label_h5_files(run_dir: str, before: dict[str, int], info: dict) -> None:
    """Add ``sweep.point`` / ``sweep.label`` / ``sweep.<key>`` attributes to the h5 files an analysis wrote."""
    import h5py

    for name, mtime in _h5_mtimes(run_dir).items():
        if name == "metrics.h5" or before.get(name) == mtime:
            continue
        with h5py.File(os.path.join(run_dir, name), "a") as f:
            f.attrs["sweep.point"] = int(info["point"])
            f.attrs["sweep.label"] = info["label"]
            for k, v in info["values"].items():
                f.attrs[f"sweep.{k}"] = float(v)


def _h5_mtimes(run_dir: str) -> dict[str, int]:
    return {n: os.stat(os.path.join(run_dir, n)).st_mtime_ns for n in os.listdir(run_dir) if n.endswith(".h5")}


def analyse_point(fn: Callable, c: Any, run_dir: str, *args, **kwargs):
    """``fn(c, run_dir, ...)`` on one point view, its figures titled and its h5 files labelled with the point."""
    from rlland import plotting

    info = point_of(run_dir)
    before = _h5_mtimes(run_dir)
    with plotting.caption(f"sweep point {info['point']}: {info['label']}"):
        out = fn(c, run_dir, *args, **kwargs)
    _label_h5_files(run_dir, before, info)
    return out


def per_point(fn: Callable) -> Callable:
    """Decorate an analysis entry point ``fn(c, run_dir, ...)``: given a sweep run's directory it analyses each
    point view and returns ``{point dir: result}``; given a point view, it labels the h5 files and figures it
    writes with the point's values (`analyse_point`); any other directory is passed through unchanged."""
    @functools.wraps(fn)
    def wrapped(c, run_dir, *args, **kwargs):
        dirs = point_dirs(run_dir)
        if dirs:
            return {d: analyse_point(fn, c, d, *args, **kwargs) for d in dirs}
        if point_of(run_dir) is not None:
            return analyse_point(fn, c, run_dir, *args, **kwargs)
        return fn(c, run_dir, *args, **kwargs)

    return wrapped


def analysis_dirs(run_dir: str) -> list[str]:
    """What an analysis script analyses for ``--run_dir``: a sweep's point views, or the directory itself."""
    return point_dirs(run_dir) or [run_dir]

