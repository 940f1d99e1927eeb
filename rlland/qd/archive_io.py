"""Archives on disk: `save_archive` writes an `Archive` (one seed or a seed batch) with its elites' genotypes to
an h5 file; `load_archive` reads it back, from the file or from a QD driver run directory.

The QD driver writes ``<run_dir>/archive.h5`` once the budget is spent (with the final metrics of ``qd.h5``), as
the study keeps its final archive with the solutions (dqd-rl ``archive/archive_<gen>.pkl``, a pyribs
ArchiveDataFrame; reference C.5). Layout (S seeds, C cells, m descriptors, D genome size; no seed axis for a
one-seed archive)::

    genotypes [S, C, D] float32     the elites' genomes (zeros in empty cells)
    fitnesses [S, C]                -inf in empty cells
    descriptors [S, C, m], added_at [S, C], centroids [S, C, m], minval [S, m], maxval [S, m]
    extras/<name> [S, C, ...]       per-cell metadata (a dict of arrays), if the archive has any
    attrs: rlland_layout = "qd_archive", rlland_layout_version = 1, grid_shape (JSON: list or null),
           out_of_bounds, seed_batched (0/1)

The seed axis is the driver's member axis (under a ``config.sweep``, member ``p * S + s`` is point p's seed s).
Size: S x C x D x 4 bytes of genotypes (the study's hopper, 5 seeds x 1000 cells x 18,435 Brax genes: 369 MB).
Genotypes must be one array per archive (the driver's flat genomes); other pytrees are refused.
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from rlland import sinks
from rlland.qd.archive import Archive

ARCHIVE_FILE = "archive.h5"
LAYOUT, LAYOUT_VERSION = "qd_archive", 1
_FIELDS = ("genotypes", "fitnesses", "descriptors", "added_at", "centroids", "minval", "maxval")

__all__ = ["ARCHIVE_FILE", "load_archive", "save_archive"]


def save_archive(path: str, archive: Archive) -> str:
    """Write ``archive`` (leaves with or without a leading seed axis) to ``path`` atomically; returns ``path``."""
    if not isinstance(archive.genotypes, (jax.Array, np.ndarray)):
        raise TypeError(f"save_archive stores array genotypes only, got a {type(archive.genotypes).__name__} pytree")
    if not isinstance(archive.extras, dict) or any(not hasattr(v, "shape") for v in archive.extras.values()):
        raise TypeError("save_archive stores extras that are a dict of arrays only")
    data = {k: np.asarray(getattr(archive, k)) for k in _FIELDS}
    data.update({f"extras/{k}": np.asarray(v) for k, v in archive.extras.items()})
    attrs = {"rlland_layout": LAYOUT, "rlland_layout_version": LAYOUT_VERSION,
             "grid_shape": json.dumps(None if archive.grid_shape is None else list(archive.grid_shape)),
             "out_of_bounds": archive.out_of_bounds, "seed_batched": int(data["fitnesses"].ndim == 2)}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sinks.write_h5(path, data, attrs)
    return path


def load_archive(path: str, seed: int | None = None) -> Archive:
    """The `Archive` saved by `save_archive` (``path``: the h5 file, or a QD run directory holding
    ``archive.h5``). ``seed``: one seed of a seed-batched archive (default: all of them, leaves ``(S, ...)``)."""
    file = os.path.join(path, ARCHIVE_FILE) if os.path.isdir(path) else path
    if not os.path.exists(file):
        where = f"run directory {path!r}" if os.path.isdir(path) else repr(path)
        raise FileNotFoundError(f"no {ARCHIVE_FILE} in {where}: the QD driver writes it when a run's budget is "
                                "spent (finish the run, or re-run a finished one with this version)")
    data, attrs = sinks.read_h5(file)
    if attrs.get("rlland_layout") != LAYOUT:
        raise ValueError(f"{file} is not an rlland QD archive (rlland_layout {attrs.get('rlland_layout')!r})")
    batched = bool(int(attrs["seed_batched"]))
    if seed is not None:
        if not batched:
            raise ValueError(f"{file} holds one seed's archive; load it with seed=None")
        num_seeds = data["fitnesses"].shape[0]
        if not 0 <= int(seed) < num_seeds:
            raise ValueError(f"seed {seed} out of range: {file} holds {num_seeds} seeds")
        data = {k: v[int(seed)] for k, v in data.items()}
    extras = {k.split("/", 1)[1]: jnp.asarray(v) for k, v in data.items() if k.startswith("extras/")}
    grid = json.loads(attrs["grid_shape"])
    return Archive(**{k: jnp.asarray(data[k]) for k in _FIELDS}, extras=extras,
                   grid_shape=None if grid is None else tuple(int(s) for s in grid),
                   out_of_bounds=str(attrs["out_of_bounds"]))
