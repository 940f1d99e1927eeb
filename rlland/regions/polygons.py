"""Exact linear regions of a ReLU MLP on a 2-D affine slice of its input space, as convex polygons.

Cohan et al. 2022 (``regions_counting_2d.py``, after Hanin & Rolnick; reference B.3) split polygons exactly; this
is the same layer-wise idea, written anew (host side, float64 numpy). The slice is ``x(u, v) = origin + u e1 + v e2``
over the rectangle ``box = ((u0, u1), (v0, v1))`` (the plane through three states: ``[-1, 1]^2`` of a
:class:`rlland.regions.PlaneFrame`; a 2-D state space: ``origin = 0``, ``e1 = (1, 0)``, ``e2 = (0, 1)``).

On every polygon the input of hidden layer k is affine in (u, v), ``h_k(u, v) = (u, v) A + c`` (layer 0: ``A =
(e1; e2)``, ``c = origin``), so each of the layer's neurons is a line ``(u, v) . G_j + g_j = 0`` with ``G = A W_k``,
``g = c W_k + b_k``. A polygon is cut by the first of its remaining neurons whose line crosses it, and both halves
go on with the neurons after that one (a stack, no recursion); a polygon no remaining line crosses is a cell of the
layer. Its pattern is the sign of ``G . p + g`` at its vertex mean ``p`` (strictly inside a convex polygon), and the
next layer's map is ``A <- G * on``, ``c <- g * on``. Cells of the last layer are the regions: one polygon per
activation pattern met by the rectangle (an activation region is convex, so it meets the rectangle in one convex
polygon), so :attr:`PlaneRegions.num_regions` is the exact number of regions meeting the rectangle.

Float robustness: a vertex within ``REL_TOL * (|G_j|_1 * extent + |g_j|)`` of a line counts as ON it (it goes to
both halves and decides no crossing), so a neuron whose line runs along an existing edge (a zero bias at
initialisation makes a layer-k neuron vanish exactly where one of layer k-1 does) adds no sliver. Deliberate
difference: a genuine region thinner than that tolerance (relative 1e-9) is not separated.

Cost: one small matrix product per cut, ``O(regions x neurons)`` Python steps; a 64-64 net on a few hundred
regions takes seconds.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rlland.regions.layers import validate_layers

__all__ = ["REL_TOL", "PlaneRegions", "polygon_regions", "polygon_area"]

REL_TOL = 1e-9


class PlaneRegions(NamedTuple):
    """Exact regions on a 2-D slice (module docstring).

    Fields:
      polygons: list of ``(m, 2)`` float64 vertex arrays in (u, v), counter-clockwise, one per region piece.
      patterns: ``(P, n)`` bool activation pattern of every polygon (all hidden layers in order).
      region_ids: ``(P,)`` int, equal ids for equal patterns (0 .. num_regions - 1).
      num_regions: distinct patterns = regions meeting the rectangle (exact; ``P`` in exact arithmetic).
      areas: ``(P,)`` polygon areas (they sum to the rectangle's).
      box: the rectangle ``((u0, u1), (v0, v1))``.
    """

    polygons: list
    patterns: np.ndarray
    region_ids: np.ndarray
    num_regions: int
    areas: np.ndarray
    box: tuple


def polygon_area(vertices: np.ndarray) -> float:
    """Shoelace area of a simple polygon ``(m, 2)`` (positive when counter-clockwise)."""
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _cut(verts: np.ndarray, vals: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Split a convex polygon along the zero line of an affine function with values ``vals`` at its vertices:
    ``(negative side, positive side)``; vertices within ``tol`` of zero belong to both."""
    neg, pos = [], []
    m = len(verts)
    for i in range(m):
        j = (i + 1) % m
        vi, vj = vals[i], vals[j]
        if vi > tol:
            pos.append(verts[i])
        elif vi < -tol:
            neg.append(verts[i])
        else:
            pos.append(verts[i])
            neg.append(verts[i])
        if (vi > tol and vj < -tol) or (vi < -tol and vj > tol):
            p = verts[i] + (vi / (vi - vj)) * (verts[j] - verts[i])
            pos.append(p)
            neg.append(p)
    return np.asarray(neg), np.asarray(pos)


def _layer_cells(verts, a, c, w, b, extent):
    """Cells of one hidden layer inside the polygon ``verts`` whose layer input is ``(u, v) a + c``:
    ``[(cell_vertices, G, g)]`` with the layer's pre-activations ``(u, v) G + g`` (the same on every cell)."""
    g_mat = a @ w  # (2, width)
    g_off = c @ w + b  # (width,)
    tol = REL_TOL * (np.abs(g_mat).sum(0) * extent + np.abs(g_off))
    out, stack = [], [(verts, 0)]
    while stack:
        poly, start = stack.pop()
        vals = poly @ g_mat[:, start:] + g_off[start:]  # (m, remaining)
        t = tol[start:]
        crossing = np.flatnonzero((vals.max(0) > t) & (vals.min(0) < -t))
        if crossing.size == 0:
            out.append(poly)
            continue
        j = int(crossing[0])
        neg, pos = _cut(poly, vals[:, j], t[j])
        stack.append((neg, start + j + 1))
        stack.append((pos, start + j + 1))
    return out, g_mat, g_off


def polygon_regions(layers, origin, e1, e2, box=((-1.0, 1.0), (-1.0, 1.0))) -> PlaneRegions:
    """Exact activation regions of the hidden ReLU ``layers`` on the slice ``origin + u e1 + v e2``,
    ``(u, v)`` in ``box`` (module docstring). Host side (numpy, float64); not traceable.

    Args:
      layers: hidden ``(W, b)`` layers (``W`` ``(in, out)``), as everywhere in :mod:`rlland.regions`.
      origin, e1, e2: ``(in,)`` points/directions of the slice in the network's input space.
      box: ``((u0, u1), (v0, v1))`` with ``u0 < u1``, ``v0 < v1``.
    Returns:
      :class:`PlaneRegions`.
    """
    layers = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in validate_layers(layers)]
    in_dim = layers[0][0].shape[0]
    origin, e1, e2 = (np.asarray(x, np.float64).reshape(-1) for x in (origin, e1, e2))
    for name, x in (("origin", origin), ("e1", e1), ("e2", e2)):
        if x.shape != (in_dim,):
            raise ValueError(f"{name} must have shape ({in_dim},) = the first layer's in-dim, got {x.shape}")
    (u0, u1), (v0, v1) = ((float(p), float(q)) for p, q in box)
    if not (u0 < u1 and v0 < v1) or not np.all(np.isfinite([u0, u1, v0, v1])):
        raise ValueError(f"box must be ((u0, u1), (v0, v1)) with finite u0 < u1 and v0 < v1, got {box}")
    extent = max(abs(u0), abs(u1)) + max(abs(v0), abs(v1))
    square = np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], np.float64)
    pieces = [(square, np.stack([e1, e2]), origin, [])]
    for w, b in layers:
        new = []
        for verts, a, c, bits in pieces:
            cells, g_mat, g_off = _layer_cells(verts, a, c, w, b, extent)
            for cell in cells:
                on = cell.mean(0) @ g_mat + g_off > 0
                new.append((cell, g_mat * on, g_off * on, bits + [on]))
        pieces = new
    polygons = [p for p, _, _, _ in pieces]
    patterns = np.stack([np.concatenate(bits) for _, _, _, bits in pieces])
    _, ids = np.unique(np.packbits(patterns, axis=1), axis=0, return_inverse=True)
    ids = ids.reshape(-1)
    areas = np.array([polygon_area(p) for p in polygons])
    return PlaneRegions(polygons, patterns, ids, int(ids.max()) + 1, areas, ((u0, u1), (v0, v1)))
