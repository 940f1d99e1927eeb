"""HDF5 files of landscape analyses: documented layouts, configuration stored as attributes.

Attributes (``attrs``, e.g. the experiment's ml_collections config): nested mappings are flattened with ``.``
(``agent.learning_rate``); numbers, bools, strings and numeric arrays are stored natively; anything else (None,
lists of strings, ...) as the string ``"json:" + json.dumps(value)``, decoded by :func:`read_h5`. Every file also
carries ``rlland_layout`` (the layout's name) and ``rlland_layout_version``.

Writes add groups: an existing group of the same name is replaced, other groups are kept (so one file collects
e.g. every pair of a study; the original did the same per dataset), and each write is atomic (a copy is appended to,
then renamed over the file).

Interpolation layout (:func:`write_interpolation_h5`, ``rlland_layout = "interpolation"``)::

    /<pair>/undiscounted   float32 [num_points, num_samples]   undiscounted PURD returns at each point
    /<pair>/discounted     float32 [num_points, num_samples]   (when given)
    /<pair>/alphas         float32 [num_points]                a, point p is (1 - a_p) A + a_p B
    /<pair>.attrs          per-pair attributes (e.g. run / seed / step of A and B)

Row p, column i is sample i at point p (the original stored the transpose, and wrote run_name2 twice in its
dataset path, A.6 QUIRK). ``<pair>`` is the caller's name, e.g. ``"seed0/step50000__seed0/step550000"``
(slashes make nested groups).

PURD layout (:func:`write_purd_h5`, ``rlland_layout = "purd"``)::

    /<name>/undiscounted   float32 [..., num_samples]   e.g. [num_seeds, num_samples] or [num_samples]
    /<name>/discounted     float32 [..., num_samples]
    /<name>/pre_update, mean, std, mode, ltp, cvar   float32 [...]   (written by
                           rlland.landscape.analysis.analyse_purd: the return before the update, and the PURD's
                           mean, std, mode, LTP and CVaR_alpha per seed)
    /<name>.attrs          per-group attributes (operator, step, seeds, settings, ...)

``analyse_purd`` names its groups ``<operator>/<settings id>/step_<step>`` and stores the whole config in each
group's attributes (``settings`` JSON, ``config.*``, ``resolved.*``), so groups of different settings coexist.

Both arrays are stored (the original's main dataset was the discounted one, A.4 QUIRK: use ``undiscounted`` for
LTP / CVaR).

Rejection-training layout (:func:`write_reject_h5`, ``rlland_layout = "reject"``)::

    /<name>/<curve>        float32 [..., num_checks + 1]   every curve :func:`rlland.landscape.reject_train`
                                                           returns (mean, ltp, cvar, proposal_*, accepted as 0/1,
                                                           proposals, updates), entry 0 = the starting state
    /<name>.attrs          per-group attributes

(the original's h5 writer for Algorithm 1 was unreachable; its results lived only in wandb, A.7 QUIRK).
"""
from __future__ import annotations

from collections.abc import Mapping
import os
import shutil
from typing import Any

import numpy as np

from rlland import sinks

LAYOUT_VERSION = 1


def _write(path, layout: str, groups: Mapping[str, Mapping[str, Any]], attrs, group_attrs) -> None:
    """Add (or replace) ``groups`` in ``path`` atomically: the file is copied, appended to, then renamed over the
    original, so a kill mid-write leaves the previous file whole."""
    import h5py

    path = os.fspath(path)
    tmp = path + ".tmp"
    if os.path.exists(path):
        shutil.copyfile(path, tmp)
    elif os.path.exists(tmp):
        os.remove(tmp)
    with h5py.File(tmp, "a") as f:
        sinks.set_attrs(f, attrs)
        f.attrs["rlland_layout"] = layout
        f.attrs["rlland_layout_version"] = LAYOUT_VERSION
        for name, datasets in groups.items():
            if name in f:
                del f[name]
            g = f.create_group(name)
            for dname, data in datasets.items():
                g.create_dataset(dname, data=np.asarray(data, np.float32))
            sinks.set_attrs(g, (group_attrs or {}).get(name))
    os.replace(tmp, path)


def _as_groups(results: Mapping, what: str) -> tuple[dict, dict]:
    if not isinstance(results, Mapping) or not results:
        raise TypeError(f"results must be a non-empty mapping {{name: {what}}}, got {type(results).__name__}")
    groups, group_attrs = {}, {}
    for name, value in results.items():
        if not isinstance(name, str) or not name.strip("/"):
            raise ValueError(f"group names must be non-empty strings, got {name!r}")
        if isinstance(value, Mapping):
            value = dict(value)
            group_attrs[name] = value.pop("attrs", None)
            groups[name] = {k: np.asarray(v) for k, v in value.items()}
        else:
            groups[name] = {"undiscounted": np.asarray(value)}
        if "undiscounted" not in groups[name]:
            raise ValueError(f"results[{name!r}] needs an 'undiscounted' array, got keys {sorted(groups[name])}")
    return groups, group_attrs


def write_interpolation_h5(path, results: Mapping[str, Any], attrs: Mapping | None = None) -> None:
    """Write interpolation PURDs in the layout of the module docstring.

    ``results``: ``{pair: {"undiscounted": [P, N], "discounted": [P, N] (optional), "alphas": [P] (optional),
    "attrs": {...} (optional)}}`` (the dict :func:`rlland.landscape.interpolation_purd` returns, plus attrs), or
    ``{pair: array [P, N]}`` (stored as ``undiscounted``). ``attrs``: file attributes (the config).
    """
    groups, group_attrs = _as_groups(results, "interpolation_purd output")
    for name, g in groups.items():
        und = g["undiscounted"]
        if und.ndim != 2:
            raise ValueError(f"results[{name!r}]['undiscounted'] must be [num_points, num_samples], got {und.shape}")
        if "discounted" in g and g["discounted"].shape != und.shape:
            raise ValueError(f"results[{name!r}]: discounted {g['discounted'].shape} != undiscounted {und.shape}")
        if "alphas" not in g:
            g["alphas"] = np.linspace(0.0, 1.0, und.shape[0]) if und.shape[0] > 1 else np.zeros((1,))
        if g["alphas"].shape != (und.shape[0],):
            raise ValueError(f"results[{name!r}]: alphas must be [{und.shape[0]}], got {g['alphas'].shape}")
    _write(path, "interpolation", groups, attrs, group_attrs)


def write_purd_h5(path, results: Mapping[str, Any], attrs: Mapping | None = None) -> None:
    """Write PURDs in the layout of the module docstring. ``results``: ``{name: {"undiscounted": [..., N],
    "discounted": [..., N], "attrs": {...}}}`` (the dict :func:`rlland.landscape.post_update_returns` returns,
    possibly vmapped) or ``{name: array}``."""
    groups, group_attrs = _as_groups(results, "post_update_returns output")
    for name, g in groups.items():
        if g["undiscounted"].ndim < 1:
            raise ValueError(f"results[{name!r}]['undiscounted'] must have a sample axis, got a scalar")
    _write(path, "purd", groups, attrs, group_attrs)


def write_reject_h5(path, results: Mapping[str, Any], attrs: Mapping | None = None) -> None:
    """Write rejection-training curves in the layout of the module docstring. ``results``: ``{name: curves}``
    with ``curves`` the dict :func:`rlland.landscape.reject_train` returns (possibly vmapped over seeds), plus an
    optional ``"attrs"`` entry."""
    if not isinstance(results, Mapping) or not results:
        raise TypeError(f"results must be a non-empty mapping {{name: curves}}, got {type(results).__name__}")
    groups, group_attrs = {}, {}
    for name, curves in results.items():
        if not isinstance(curves, Mapping) or "cvar" not in curves:
            raise ValueError(f"results[{name!r}] must be reject_train's curves dict (with 'cvar', 'accepted', ...)")
        curves = dict(curves)
        group_attrs[name] = curves.pop("attrs", None)
        groups[name] = {k: np.asarray(v) for k, v in curves.items()}
    _write(path, "reject", groups, attrs, group_attrs)


def read_h5(path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any], dict[str, dict[str, Any]]]:
    """Read a file written here: ``(groups, attrs, group_attrs)`` with ``groups[name][dataset]`` numpy arrays
    (``name`` the full group path), the decoded file attributes, and each group's decoded attributes."""
    import h5py

    groups, group_attrs = {}, {}
    with sinks.open_h5(path) as f:
        attrs = {k: sinks.decode_attr(v) for k, v in f.attrs.items()}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                parent, _, dname = name.rpartition("/")
                groups.setdefault(parent, {})[dname] = obj[()]
                if parent not in group_attrs:
                    group_attrs[parent] = {k: sinks.decode_attr(v) for k, v in f[parent].attrs.items()}

        f.visititems(visit)
    return groups, attrs, group_attrs
