"""MAP-Elites archive: a fixed-size pytree of elites, one per cell, updated with vectorised scatters.

Layout follows QDax `MapElitesRepertoire` (reference D): genotypes (a pytree whose leaves have a leading
``num_cells`` axis), fitnesses (``-inf`` in empty cells), descriptors and centroids. It adds per-cell
metadata (``added_at``: the caller's step counter, e.g. generation or evaluation count, at insertion,
``-1`` when empty; ``extras``: any per-cell pytree), descriptor bounds, and optionally a grid shape for a
direct O(m) cell lookup instead of the nearest-centroid search.

One archive is one seed; ``jax.vmap`` over `Archive.empty` / `Archive.add` / `Archive.sample` gives an
archive batch whose leaves carry a leading seed axis (the static fields, grid shape and bounds mode, are
shared).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from rlland.qd.centroids import grid_centroids, grid_index, nearest_centroid
from rlland.validation import require_choice

NOT_ADDED = 0
IMPROVE_EXISTING = 1
NEW = 2
STATUS_MODES = ("sequential", "batch")
OUT_OF_BOUNDS_MODES = ("drop", "clip")


class AddInfo(flax.struct.PyTreeNode):
    """What `Archive.add` did with each candidate of a batch (all arrays have the batch axis B).

    Attributes:
      status: int32, `NOT_ADDED` (0), `IMPROVE_EXISTING` (1) or `NEW` (2); see `Archive.add` for the
        two status modes.
      value: float32 improvement value used by CMA-ME / CMA-MEGA ranking: ``f - new_cell_offset`` for
        NEW, else ``f - incumbent`` (negative when NOT_ADDED); ``-inf`` for dropped candidates.
      inserted: bool, this candidate is the one stored in its cell after the batch.
      cell: int32 cell index, ``num_cells`` for dropped candidates.
      valid: bool, the candidate passed the checks (finite descriptor inside the bounds, finite fitness:
        neither NaN nor +-inf) and took part in the insertion.
    """

    status: jax.Array
    value: jax.Array
    inserted: jax.Array
    cell: jax.Array
    valid: jax.Array


def _leading_zeros(like: Any, n: int) -> Any:
    def zeros(x):
        x = x if hasattr(x, "shape") and hasattr(x, "dtype") else jnp.asarray(x)
        return jnp.zeros((n,) + tuple(x.shape), x.dtype)

    return jax.tree.map(zeros, like)


class Archive(flax.struct.PyTreeNode):
    """A MAP-Elites archive (one seed). Build with `Archive.empty` or `Archive.grid`; update with `add`.

    Attributes:
      genotypes: pytree, leaves ``(C, ...)``; zeros in empty cells.
      fitnesses: ``(C,)`` float32, ``-inf`` in empty cells.
      descriptors: ``(C, m)`` float32 descriptor of each elite (zeros in empty cells).
      centroids: ``(C, m)`` float32 cell centroids.
      added_at: ``(C,)`` int32 value of ``step`` passed to `add` when the elite was stored; -1 if empty.
      extras: pytree of per-cell metadata, leaves ``(C, ...)`` (``{}`` when unused).
      minval, maxval: ``(m,)`` float32 descriptor bounds (``-inf`` / ``+inf`` when unbounded).
      grid_shape: static; when set, cells are a row-major regular grid and lookup uses `grid_index`.
      out_of_bounds: static; "drop" (default) discards candidates whose descriptor lies outside
        ``[minval, maxval]``; "clip" assigns them to the nearest border cell, as pyribs GridArchive does.
    """

    genotypes: Any
    fitnesses: jax.Array
    descriptors: jax.Array
    centroids: jax.Array
    added_at: jax.Array
    extras: Any
    minval: jax.Array
    maxval: jax.Array
    grid_shape: tuple[int, ...] | None = flax.struct.field(pytree_node=False, default=None)
    out_of_bounds: str = flax.struct.field(pytree_node=False, default="drop")

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(
        cls,
        centroids: jax.Array,
        genotype_like: Any,
        *,
        minval=None,
        maxval=None,
        grid_shape: Sequence[int] | None = None,
        extras_like: Any = None,
        out_of_bounds: str = "drop",
    ) -> "Archive":
        """An archive with every cell empty.

        Args:
          centroids: ``(C, m)`` cell centroids (`grid_centroids` or `cvt_centroids`).
          genotype_like: ONE genotype (pytree of arrays or ShapeDtypeStructs, no leading axis); the archive
            stores ``C`` of them.
          minval, maxval: descriptor bounds (scalars or ``(m,)``); None means unbounded on that side.
            Candidates outside are dropped (or clipped, see ``out_of_bounds``).
          grid_shape: the grid the centroids come from; enables the direct `grid_index` lookup and requires
            finite bounds and ``prod(grid_shape) == C``.
          extras_like: ONE per-cell metadata record (pytree), or None for no metadata.
          out_of_bounds: "drop" or "clip".
        """
        centroids = jnp.asarray(centroids, jnp.float32)
        if centroids.ndim != 2:
            raise ValueError(f"centroids must have shape (num_cells, num_descriptors), got {centroids.shape}")
        require_choice("out_of_bounds", out_of_bounds, OUT_OF_BOUNDS_MODES)
        num_cells, m = centroids.shape
        lo = jnp.broadcast_to(jnp.asarray(-jnp.inf if minval is None else minval, jnp.float32), (m,))
        hi = jnp.broadcast_to(jnp.asarray(jnp.inf if maxval is None else maxval, jnp.float32), (m,))
        if grid_shape is not None:
            grid_shape = tuple(int(s) for s in grid_shape)
            if len(grid_shape) != m or int(np.prod(grid_shape)) != num_cells:
                raise ValueError(f"grid_shape {grid_shape} does not match centroids of shape {centroids.shape}")
            if minval is None or maxval is None:
                raise ValueError("a grid archive (grid_shape set) needs finite minval and maxval")
        return cls(
            genotypes=_leading_zeros(genotype_like, num_cells),
            fitnesses=jnp.full((num_cells,), -jnp.inf, jnp.float32),
            descriptors=jnp.zeros((num_cells, m), jnp.float32),
            centroids=centroids,
            added_at=jnp.full((num_cells,), -1, jnp.int32),
            extras={} if extras_like is None else _leading_zeros(extras_like, num_cells),
            minval=lo,
            maxval=hi,
            grid_shape=grid_shape,
            out_of_bounds=out_of_bounds,
        )

    @classmethod
    def grid(cls, shape: Sequence[int], minval, maxval, genotype_like: Any, **kwargs) -> "Archive":
        """Empty regular-grid archive: `grid_centroids` + direct `grid_index` lookup + bounds."""
        return cls.empty(grid_centroids(shape, minval, maxval), genotype_like, minval=minval, maxval=maxval,
                         grid_shape=shape, **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def num_cells(self) -> int:
        return self.fitnesses.shape[-1]

    @property
    def num_descriptors(self) -> int:
        return self.centroids.shape[-1]

    @property
    def filled(self) -> jax.Array:
        """``(C,)`` bool, the cell holds an elite."""
        return self.fitnesses > -jnp.inf

    @property
    def num_elites(self) -> jax.Array:
        return jnp.sum(self.filled, axis=-1).astype(jnp.int32)

    # ------------------------------------------------------------------ lookup
    def cell_index(self, descriptors: jax.Array) -> jax.Array:
        """Cell of each ``(B, m)`` descriptor, ignoring bounds: grid index or nearest centroid."""
        descriptors = jnp.asarray(descriptors, jnp.float32)
        if self.grid_shape is not None:
            return grid_index(descriptors, self.grid_shape, self.minval, self.maxval)
        return nearest_centroid(descriptors, self.centroids)

    def in_bounds(self, descriptors: jax.Array) -> jax.Array:
        """``(B,)`` bool: every component finite (not NaN) and inside ``[minval, maxval]``."""
        d = jnp.asarray(descriptors, jnp.float32)
        return jnp.all(~jnp.isnan(d) & (d >= self.minval) & (d <= self.maxval), axis=-1)

    # ------------------------------------------------------------------ insertion
    def add(
        self,
        genotypes: Any,
        fitnesses: jax.Array,
        descriptors: jax.Array,
        *,
        step=0,
        extras: Any = None,
        new_cell_offset=0.0,
        status_mode: str = "sequential",
    ) -> tuple["Archive", AddInfo]:
        """Insert a batch of B candidates; returns ``(archive, AddInfo)``. Fully vectorised (no loop over B).

        Rule (MAP-Elites, Mouret & Clune 2015; QDax `MapElitesRepertoire.add`, reference D):
          1. Drop candidates with a non-finite fitness (NaN, ``-inf`` or ``+inf``: a ``+inf`` elite would be
             unbeatable and make the QD score infinite), or a descriptor that is NaN or outside
             ``[minval, maxval]`` (``out_of_bounds="clip"`` keeps out-of-range ones in border cells
             instead; pyribs GridArchive clips, QDax has no bounds and takes the nearest centroid).
          2. Cell = `grid_index` for grid archives, else nearest centroid.
          3. Within the batch, each cell keeps its best candidate (``segment_max``); ties go to the LOWEST
             batch index (``segment_min`` over the tied indices). QDax resolves ties arbitrarily; lowest
             index is what inserting the batch one by one in order (pyribs 0.4, used by the study) gives,
             because a later equal candidate is not strictly better.
          4. The batch winner replaces the incumbent only if STRICTLY better (``f > f_cell``; an empty
             cell has ``-inf``). Losers are scattered to the out-of-bounds index ``C`` and dropped.
        The final archive equals inserting the candidates one at a time in batch order.

        Status and value per candidate (`AddInfo`), two modes:
          * ``"sequential"`` (default): as if the candidates were added one at a time in batch order, as
            pyribs 0.4.0 ``ArchiveBase.add`` does in the study (dqd-rl calls it per solution). The
            incumbent of candidate i is ``max(f_cell, max{f_j : j < i valid in the same cell})``; NEW if
            the cell was still empty then (value ``f - new_cell_offset``; pyribs 0.4 uses the objective
            itself, i.e. offset 0), IMPROVE_EXISTING if ``f`` beats that incumbent, else NOT_ADDED (value
            ``f - incumbent`` in both cases). Costs a B x B comparison.
          * ``"batch"``: every candidate is compared with the archive BEFORE the batch (pyribs >= 0.5
            batch add): two candidates landing in the same empty cell are both NEW.
        Dropped candidates get NOT_ADDED and value ``-inf`` (ranked last).

        Args:
          genotypes: pytree with leaves ``(B, ...)`` matching the archive's genotype leaves.
          fitnesses: ``(B,)``.
          descriptors: ``(B, m)``.
          step: int scalar stored in ``added_at`` of the cells written (e.g. generation or evaluation
            count); traced.
          extras: per-candidate metadata, leaves ``(B, ...)``; required iff the archive has extras.
          new_cell_offset: baseline subtracted from ``f`` in the value of NEW candidates (traced).
          status_mode: "sequential" or "batch" (static).
        """
        require_choice("status_mode", status_mode, STATUS_MODES)
        fitnesses = jnp.asarray(fitnesses, jnp.float32)
        descriptors = jnp.asarray(descriptors, jnp.float32)
        if fitnesses.ndim != 1:
            raise ValueError(f"fitnesses must be (batch,), got shape {fitnesses.shape}")
        batch = fitnesses.shape[0]
        if descriptors.shape != (batch, self.num_descriptors):
            raise ValueError(f"descriptors must be ({batch}, {self.num_descriptors}), got {descriptors.shape}")
        _check_batch_tree(genotypes, self.genotypes, batch, "genotypes")
        has_extras = bool(jax.tree.leaves(self.extras))
        if has_extras and extras is None:
            raise ValueError("this archive stores per-cell extras; pass extras=... to add()")
        if not has_extras and extras is not None and jax.tree.leaves(extras):
            raise ValueError("extras given but the archive was built without extras_like")
        if has_extras:
            _check_batch_tree(extras, self.extras, batch, "extras")

        return _add(self, genotypes, fitnesses, descriptors, jnp.asarray(step, jnp.int32),
                    extras if has_extras else None, jnp.asarray(new_cell_offset, jnp.float32),
                    status_mode=status_mode)

    # ------------------------------------------------------------------ sampling
    def sample_indices(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` cell indices drawn uniformly, with replacement, among the filled cells.

        If the archive is empty the draw is uniform over all cells (whose genotypes are zeros and
        fitnesses ``-inf``); callers that can meet an empty archive should check `num_elites`.
        """
        weights = self.filled.astype(jnp.float32)
        weights = jnp.where(jnp.sum(weights) > 0, weights, 1.0)
        cum = jnp.cumsum(weights)
        u = (1.0 - jax.random.uniform(key, (int(n),))) * cum[-1]  # in (0, total]
        return jnp.clip(jnp.searchsorted(cum, u, side="left"), 0, self.num_cells - 1).astype(jnp.int32)

    def sample(self, key: jax.Array, n: int) -> Any:
        """``n`` genotypes (leaves ``(n, ...)``) drawn uniformly with replacement among the elites."""
        cells = self.sample_indices(key, n)
        return jax.tree.map(lambda x: x[cells], self.genotypes)


@functools.partial(jax.jit, static_argnames=("status_mode",))
def _add(archive: Archive, genotypes, fitnesses, descriptors, step, extras, new_cell_offset, *, status_mode):
    """Jitted body of `Archive.add` (one compiled kernel when called eagerly; inlined under an outer jit)."""
    batch = fitnesses.shape[0]
    num_cells = archive.num_cells
    idx = jnp.arange(batch, dtype=jnp.int32)
    in_box = archive.in_bounds(descriptors)
    d_lookup = descriptors
    if archive.out_of_bounds == "clip":
        in_box = jnp.all(~jnp.isnan(descriptors), axis=-1)
        d_lookup = jnp.clip(descriptors, archive.minval, archive.maxval)
    valid = in_box & jnp.isfinite(fitnesses)  # NaN, -inf and +inf fitnesses are refused alike
    cell = jnp.where(valid, archive.cell_index(jnp.where(valid[:, None], d_lookup, 0.0)), num_cells)
    fit = jnp.where(valid, fitnesses, -jnp.inf)

    # per-cell batch maximum; lowest batch index among the tied maxima wins
    cell_max = jax.ops.segment_max(fit, cell, num_segments=num_cells + 1)
    is_max = valid & (fit == cell_max[cell])
    winner = jax.ops.segment_min(jnp.where(is_max, idx, batch), cell, num_segments=num_cells + 1)
    incumbent = jnp.concatenate([archive.fitnesses, jnp.full((1,), jnp.inf, jnp.float32)])[cell]
    inserted = valid & (winner[cell] == idx) & (fit > incumbent)
    target = jnp.where(inserted, cell, num_cells)  # unique per written cell; others dropped

    def scatter(store, new):
        return store.at[target].set(new.astype(store.dtype), mode="drop")

    new_archive = archive.replace(
        genotypes=jax.tree.map(scatter, archive.genotypes, genotypes),
        fitnesses=scatter(archive.fitnesses, fit),
        descriptors=scatter(archive.descriptors, descriptors),
        added_at=scatter(archive.added_at, jnp.broadcast_to(step, (batch,))),
        extras=jax.tree.map(scatter, archive.extras, extras) if extras is not None else archive.extras,
    )

    if status_mode == "sequential":
        earlier_same = (cell[:, None] == cell[None, :]) & valid[None, :] & (idx[None, :] < idx[:, None])
        earlier_best = jnp.max(jnp.where(earlier_same, fit[None, :], -jnp.inf), axis=1)
        prior = jnp.maximum(incumbent, earlier_best)
    else:
        prior = incumbent
    was_empty = prior == -jnp.inf
    status = jnp.where(was_empty, NEW, jnp.where(fit > prior, IMPROVE_EXISTING, NOT_ADDED))
    value = jnp.where(was_empty, fit - new_cell_offset, fit - prior)
    info = AddInfo(
        status=jnp.where(valid, status, NOT_ADDED).astype(jnp.int32),
        value=jnp.where(valid, value, -jnp.inf).astype(jnp.float32),
        inserted=inserted,
        cell=cell.astype(jnp.int32),
        valid=valid,
    )
    return new_archive, info


def _check_batch_tree(tree: Any, store: Any, batch: int, what: str) -> None:
    t_leaves, t_def = jax.tree.flatten(tree)
    s_leaves, s_def = jax.tree.flatten(store)
    if t_def != s_def:
        raise ValueError(f"{what} structure {t_def} does not match the archive's {s_def}")
    for t, s in zip(t_leaves, s_leaves):
        if tuple(np.shape(t)) != (batch,) + tuple(s.shape[1:]):
            raise ValueError(f"{what} leaf has shape {np.shape(t)}, expected {(batch,) + tuple(s.shape[1:])}")
