"""Tessellations of descriptor space: regular grids and CVT (k-means) centroids.

A cell is identified by an integer in ``[0, num_cells)``; a descriptor ``d`` belongs to the cell whose
centroid is nearest in Euclidean distance (QDax `get_cells_indices`, reference D). For a regular grid the
nearest centre is the grid cell that contains ``d``, so `grid_index` gives the same answer directly in
O(m) per descriptor instead of O(num_cells * m).

Cell ordering of a grid is row-major (C order) over the grid axes: cell ``(i_0, ..., i_{m-1})`` has flat
index ``ravel_multi_index((i_0, ..., i_{m-1}), shape)``, and `grid_centroids` lists the centres in that order.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

_HIGHEST = jax.lax.Precision.HIGHEST
GRID_EPSILON = 1e-6  # pyribs GridArchive _EPSILON


def _bounds(minval, maxval, m: int, what: str) -> tuple[jax.Array, jax.Array]:
    lo = jnp.broadcast_to(jnp.asarray(minval, jnp.float32), (m,))
    hi = jnp.broadcast_to(jnp.asarray(maxval, jnp.float32), (m,))
    if not isinstance(lo, jax.core.Tracer) and not isinstance(hi, jax.core.Tracer):
        if not bool(jnp.all(hi > lo)):
            raise ValueError(f"{what}: need maxval > minval in every dimension, got minval={minval}, maxval={maxval}")
    return lo, hi


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in np.atleast_1d(shape))
    if len(shape) == 0 or any(s < 1 for s in shape):
        raise ValueError(f"grid shape must be a non-empty sequence of positive ints, got {shape}")
    return shape


def grid_centroids(shape: Sequence[int], minval, maxval) -> jax.Array:
    """Centres of the cells of a regular grid over the box ``[minval, maxval]``.

    Axis k is split into ``shape[k]`` equal intervals; the centre of interval i is
    ``minval_k + (i + 1/2) (maxval_k - minval_k) / shape[k]`` (QDax `compute_euclidean_centroids`,
    reference D). Returns ``(prod(shape), len(shape))`` float32 centres in row-major cell order, consistent
    with `grid_index`.

    Args:
      shape: cells per descriptor dimension, e.g. ``(32, 32)``; the study's grids are hopper ``(1000,)``,
        walker2d / halfcheetah ``(32, 32)``, ant ``(6, 6, 6, 6)`` (reference C.1).
      minval, maxval: scalars or ``(m,)`` arrays, the box bounds.
    """
    shape = _check_shape(shape)
    lo, hi = _bounds(minval, maxval, len(shape), "grid_centroids")
    axes = [lo[k] + (jnp.arange(n, dtype=jnp.float32) + 0.5) * (hi[k] - lo[k]) / n for k, n in enumerate(shape)]
    mesh = jnp.meshgrid(*axes, indexing="ij")
    return jnp.stack([g.reshape(-1) for g in mesh], axis=-1)


def grid_index(descriptors: jax.Array, shape: Sequence[int], minval, maxval) -> jax.Array:
    """Flat cell index of each descriptor in a regular grid (row-major), without a centroid search.

    Per axis ``i_k = floor((d_k + eps - minval_k) / (maxval_k - minval_k) * shape[k])``, clipped to
    ``[0, shape[k] - 1]`` so that ``d_k == maxval_k`` falls in the last cell. ``eps = GRID_EPSILON = 1e-6``
    as in pyribs GridArchive (``index_of`` / ``_get_index_numba``: clip ``d + 1e-6`` into
    ``[lower, upper - 1e-6]``, then truncate): without it some fractions ``k / 1000`` in float32 (e.g.
    251 / 1000 -> 0.25099999) land one cell too low in the study's 1000-cell hopper grid (1000 steps). Descriptors
    outside the box are mapped to a border cell (pyribs clips the same way); `Archive.add` drops them
    first unless built with ``out_of_bounds="clip"``. Equal to the nearest `grid_centroids` centre for
    every descriptor inside the box except within ``eps`` below a cell border.

    Args:
      descriptors: ``(..., m)``.
    Returns:
      int32 ``(...)`` flat indices.
    """
    shape = _check_shape(shape)
    descriptors = jnp.asarray(descriptors, jnp.float32)
    if descriptors.shape[-1] != len(shape):
        raise ValueError(f"descriptors have {descriptors.shape[-1]} dims but the grid has {len(shape)}")
    lo, hi = _bounds(minval, maxval, len(shape), "grid_index")
    dims = jnp.asarray(shape, jnp.int32)
    rel = (descriptors + GRID_EPSILON - lo) / (hi - lo) * dims.astype(jnp.float32)
    rel = jnp.where(jnp.isfinite(rel), rel, 0.0)
    idx = jnp.clip(jnp.floor(rel).astype(jnp.int32), 0, dims - 1)
    strides = np.cumprod((1,) + shape[::-1])[:-1][::-1].astype(np.int32)
    return jnp.sum(idx * jnp.asarray(strides), axis=-1).astype(jnp.int32)


def _sq_dists(points: jax.Array, centroids: jax.Array) -> jax.Array:
    """``(n, k)`` squared distances via ||p||^2 - 2 p.c + ||c||^2 (full-precision matmul, no TF32)."""
    cross = jnp.dot(points, centroids.T, precision=_HIGHEST)
    return jnp.sum(points**2, -1)[:, None] - 2.0 * cross + jnp.sum(centroids**2, -1)[None, :]


def nearest_centroid(descriptors: jax.Array, centroids: jax.Array) -> jax.Array:
    """Index of the Euclidean-nearest centroid for each descriptor, ``argmin_c ||d - c||^2``.

    Ties go to the lowest centroid index. ``descriptors`` is ``(n, m)``, ``centroids`` is ``(C, m)``;
    returns int32 ``(n,)``. Cost O(n * C * m) (one matmul), as in QDax `get_cells_indices`.
    """
    return jnp.argmin(_sq_dists(jnp.asarray(descriptors, jnp.float32), centroids), axis=-1).astype(jnp.int32)


def cvt_centroids(
    num_centroids: int,
    num_descriptors: int,
    minval,
    maxval,
    key: jax.Array,
    num_samples: int = 50_000,
    num_iters: int = 100,
) -> jax.Array:
    """Centroids of a centroidal Voronoi tessellation (CVT) of the box ``[minval, maxval]``.

    Draw ``num_samples`` points uniformly in the box, then run k-means (k-means++ seeding, then
    ``num_iters`` Lloyd iterations ``c_j <- mean{x : nearest(x) = j}``; a centroid that loses all its
    samples keeps its position). Same recipe as QDax `compute_cvt_centroids` and pyribs CVTArchive,
    which call scikit-learn KMeans (k-means++, n_init=1) on uniform samples (reference D); here it is
    written with `lax.fori_loop`, so it is jittable and vmappable over keys, and it does not need sklearn.
    Samples are drawn in the raw box (not the unit cube) so that the tessellation is Voronoi-optimal for
    the same Euclidean distance that the archive uses to look cells up.

    Memory: one ``(num_samples, num_centroids)`` float32 distance matrix per iteration (50,000 x 1,024
    is 200 MB); lower ``num_samples`` for big archives on small machines.

    Args:
      num_centroids: number of cells C (static).
      num_descriptors: descriptor dimension m (static).
      minval, maxval: scalars or ``(m,)`` bounds.
      key: PRNG key (split internally: samples, seeding).
      num_samples: number of uniform samples (static, >= num_centroids).
      num_iters: Lloyd iterations (static).
    Returns:
      ``(num_centroids, num_descriptors)`` float32 centroids.
    """
    num_centroids, num_descriptors = int(num_centroids), int(num_descriptors)
    num_samples, num_iters = int(num_samples), int(num_iters)
    if num_centroids < 1 or num_descriptors < 1:
        raise ValueError(f"need num_centroids >= 1 and num_descriptors >= 1, got {num_centroids}, {num_descriptors}")
    if num_samples < num_centroids:
        raise ValueError(f"num_samples ({num_samples}) must be >= num_centroids ({num_centroids})")
    if num_iters < 0:
        raise ValueError(f"num_iters must be >= 0, got {num_iters}")
    lo, hi = _bounds(minval, maxval, num_descriptors, "cvt_centroids")
    key_x, key_init = jax.random.split(key)
    x = jax.random.uniform(key_x, (num_samples, num_descriptors), minval=lo, maxval=hi)
    init = _kmeans_pp(x, num_centroids, key_init)

    def lloyd(_, c):
        assign = jnp.argmin(_sq_dists(x, c), axis=-1)
        sums = jax.ops.segment_sum(x, assign, num_segments=num_centroids)
        counts = jax.ops.segment_sum(jnp.ones((num_samples,), jnp.float32), assign, num_segments=num_centroids)
        return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], c)

    return jax.lax.fori_loop(0, num_iters, lloyd, init)


def _kmeans_pp(x: jax.Array, k: int, key: jax.Array) -> jax.Array:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): next centre drawn with probability ∝ D(x)^2."""
    n, m = x.shape
    keys = jax.random.split(key, k)
    first = x[jax.random.randint(keys[0], (), 0, n)]
    centres = jnp.zeros((k, m), x.dtype).at[0].set(first)
    d2 = jnp.sum((x - first) ** 2, -1)

    def body(i, carry):
        centres, d2 = carry
        cum = jnp.cumsum(d2)
        total = cum[-1]
        # Inverse-CDF draw of j with P(j) = d2_j / sum(d2); u in (0, total] so a zero-weight sample is
        # never chosen. If every sample sits on a centre (degenerate box), draw uniformly instead.
        u = (1.0 - jax.random.uniform(keys[i])) * total
        j = jnp.where(total > 0, jnp.searchsorted(cum, u, side="left"), jax.random.randint(keys[i], (), 0, n))
        c = x[jnp.clip(j, 0, n - 1)]
        return centres.at[i].set(c), jnp.minimum(d2, jnp.sum((x - c) ** 2, -1))

    centres, _ = jax.lax.fori_loop(1, k, body, (centres, d2))
    return centres
