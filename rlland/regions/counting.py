"""Exact counting of the linear regions of a ReLU MLP along a segment or an infinite line.

Algorithm (Hanin & Rolnick 2019, as used by Cohan et al. 2022, ``regions_counting_1d.py``; reference
``representation-regions-qd.md`` B.2), restated for static shapes:

Parametrise the line ``x(t) = p0 + t (p1 - p0)``, ``t in [0, 1]`` (segment) or ``t in (-inf, inf)`` (line).
Keep the sorted breakpoints ``t_1 < ... < t_m`` that cut the t-range into pieces, and for every piece the
affine map of the current layer input, ``h_k(t) = t a_k + c_k`` (``a_0 = p1 - p0``, ``c_0 = p0``). For layer k:

1. pre-activations ``z(t) = t (a_k W_k) + (c_k W_k + b_k)`` are affine on each piece;
2. each neuron with non-zero slope crosses zero at ``t* = -(c_k W_k + b_k)_j / (a_k W_k)_j``; it is a new
   breakpoint iff ``lo < t* < hi`` strictly for its piece ``(lo, hi)``, by more than float error (see
   :func:`_inside`). Nothing here needs a bounded piece, so the unbounded end pieces of an infinite line
   (``lo = -inf`` or ``hi = +inf``) are handled exactly;
3. merge the new breakpoints into the sorted buffer (exact duplicates - two neurons crossing at the same
   t - are kept once, so no zero-width piece exists);
4. for the next layer, each piece's affine map is rebuilt by a forward pass in (slope, intercept) form,
   with every layer's ReLU mask read at a representative point strictly inside the piece (the midpoint;
   ``hi - 1 - |hi|`` / ``lo + 1 + |lo|`` for unbounded ends): ``a_{j+1} = mask_j * (a_j W_j)``,
   ``c_{j+1} = mask_j * (c_j W_j + b_j)``. The masks are constant on the piece, so the map is exact there.

A region is an activation pattern of ALL hidden neurons (decision shared with the reference, which uses
every hidden ReLU of the policy MLP and no output head). In exact arithmetic two adjacent pieces never share
a pattern (the neuron that created their breakpoint changes sign there). As a float-robustness step the
final breakpoints whose two sides have identical patterns are dropped, so ``count`` is exactly
``1 + number of pattern changes along the path``; a segment or line meets a convex region in one interval,
so this is also the number of distinct regions met.

Static shapes: the breakpoints live in a buffer of ``max_pieces - 1`` sorted t values padded with +inf,
so everything jits and vmaps (over a batch of segments, or over seeds/snapshots through the ``layers``
pytree). If the true number of pieces would exceed ``max_pieces`` at any layer, ``overflow`` is True and
``count`` is then only a strict lower bound (``count <= max_pieces < true count``): a count is never
silently wrong.

Choosing ``max_pieces``: a line or segment has at most ``prod_k (width_k + 1)`` pieces
(:func:`pieces_upper_bound`), which makes overflow impossible but is huge for deep nets. In practice counts
grow roughly linearly with the number of neurons crossed per unit length (Hanin & Rolnick): one hidden layer
gives exactly ``width + 1`` on a line in general position; trajectory steps usually cross a handful of
boundaries. Start from a few times the total number of hidden neurons for infinite lines and 32-64 for
trajectory steps, check ``overflow.any()``, and recompute the overflowed items with a doubled buffer.
Cost per layer is a sort of ``max_pieces * (width + 1)`` values.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlland.regions.layers import validate_layers, validate_point
from rlland.validation import static_int

__all__ = ["RegionCount", "SegmentRegions", "segment_breakpoints", "count_on_segment", "count_on_line"]


class RegionCount(NamedTuple):
    """``count``: int32 number of linear regions (pieces) met; ``overflow``: bool, True => count is a lower bound."""

    count: jax.Array
    overflow: jax.Array


class SegmentRegions(NamedTuple):
    """Full result of :func:`segment_breakpoints` (``P = max_pieces``, ``n`` = total hidden neurons).

    Fields:
      count: int32, number of pieces (= regions met); ``count - 1`` valid breakpoints.
      overflow: bool, True when the buffer was too small (count is then a strict lower bound).
      t: ``(P-1,)`` sorted breakpoint parameters, +inf padded.
      points: ``(P-1, d)`` breakpoints ``p0 + t (p1 - p0)`` in input space, NaN padded.
      representatives: ``(P,)`` a t strictly inside each piece (midpoint for bounded pieces), NaN padded.
      piece_valid: ``(P,)`` bool, the first ``count`` entries are True.
      patterns: ``(P, n)`` bool activation pattern of each piece (all hidden layers, in order), False padded.
    """

    count: jax.Array
    overflow: jax.Array
    t: jax.Array
    points: jax.Array
    representatives: jax.Array
    piece_valid: jax.Array
    patterns: jax.Array


def _pieces(bps: jax.Array, n: jax.Array, t_lo, t_hi):
    """Piece bounds from a +inf-padded sorted breakpoint buffer with ``n`` valid entries."""
    num = bps.shape[0] + 1
    idx = jnp.arange(num)
    lo = jnp.concatenate([jnp.full((1,), t_lo, bps.dtype), bps])
    hi = jnp.concatenate([bps, jnp.full((1,), t_hi, bps.dtype)])
    hi = jnp.where(idx == n, jnp.asarray(t_hi, bps.dtype), hi)
    return lo, hi, idx <= n


def _representatives(lo: jax.Array, hi: jax.Array) -> jax.Array:
    """A point strictly inside each piece; exact for unbounded ends (no bounded interval is assumed)."""
    flo, fhi = jnp.isfinite(lo), jnp.isfinite(hi)
    lo0 = jnp.where(flo, lo, 0)
    hi0 = jnp.where(fhi, hi, 0)
    mid = 0.5 * lo0 + 0.5 * hi0
    left_end = hi0 - 1 - jnp.abs(hi0)  # piece (-inf, hi]
    right_end = lo0 + 1 + jnp.abs(lo0)  # piece [lo, +inf)
    return jnp.where(flo & fhi, mid, jnp.where(fhi, left_end, jnp.where(flo, right_end, jnp.zeros_like(lo0))))


INSIDE_ULPS = 4  # a crossing closer than 4 eps * max(1, |bound|) to its piece's bound is that bound's crossing


def _inside(tstar: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """``lo + tol(lo) < t* < hi - tol(hi)`` with ``tol(x) = INSIDE_ULPS * eps * max(1, |x|)`` (no tolerance at an
    infinite bound); ``tstar`` ``(P, width)``, ``lo`` / ``hi`` ``(P,)``.

    Why a tolerance: a layer-k neuron can flip exactly at a breakpoint of an earlier layer. The common case is a
    zero bias (every bias is 0 at initialisation) on a piece where a single neuron of the layer below is active:
    ``z = w h_j`` is zero exactly where ``h_j`` switches off. Computed in floats its crossing lands an ulp or so on
    either side of that breakpoint, so a strict test would add a spurious sliver piece (one extra transition and
    pattern) or not, depending on rounding (it differs between XLA optimisation levels). With the tolerance both
    flips are one breakpoint, as in exact arithmetic. Deliberate difference: a genuine region narrower than the
    tolerance (about 5e-7 of a segment in float32) at a piece's bound is not counted.
    """
    eps = INSIDE_ULPS * jnp.finfo(tstar.dtype).eps
    lo_t = jnp.where(jnp.isfinite(lo), lo + eps * jnp.maximum(1, jnp.abs(lo)), lo)
    hi_t = jnp.where(jnp.isfinite(hi), hi - eps * jnp.maximum(1, jnp.abs(hi)), hi)
    return (tstar > lo_t[:, None]) & (tstar < hi_t[:, None])


def _merge(bps: jax.Array, cand: jax.Array):
    """Sorted union of the buffer and the candidates, exact duplicates removed, truncated to the buffer.

    Compaction is done by sorting (duplicates and padding become +inf), which compiles far faster on CPU
    than the cumsum/scatter equivalent.
    """
    size = bps.shape[0]
    x = jnp.sort(jnp.concatenate([bps, cand]))
    dup = jnp.concatenate([jnp.zeros((1,), bool), x[1:] == x[:-1]])
    x = jnp.sort(jnp.where(dup, jnp.inf, x))
    total = jnp.sum(jnp.isfinite(x).astype(jnp.int32))
    return x[:size], jnp.minimum(total, size), total > size


def _piece_maps(s0, q0, layers, rep):
    """Per-piece affine maps ``z_k(t) = t s_k + q_k`` of every layer's pre-activations, with each layer's
    ReLU mask read at the piece's representative ``rep`` (so the maps are exact on the whole piece).

    ``s0, q0``: layer-0 slope and intercept (the same on every piece). Returns a list of ``(s, q, on)``.
    """
    num = rep.shape[0]
    s = jnp.broadcast_to(s0, (num,) + s0.shape)
    q = jnp.broadcast_to(q0, (num,) + q0.shape)
    out = []
    for k in range(len(layers) + 1):
        on = rep[:, None] * s + q > 0
        out.append((s, q, on))
        if k == len(layers):
            break
        w, b = layers[k]
        s = jnp.where(on, s, 0) @ w
        q = jnp.where(on, q, 0) @ w + b
    return out


@functools.partial(jax.jit, static_argnames=("max_pieces", "unbounded"))
def _segment_breakpoints(layers, p0, p1, max_pieces: int, unbounded: bool) -> SegmentRegions:
    dtype = jnp.result_type(jnp.float32, p0, p1, *[w for w, _ in layers])
    layers = [(w.astype(dtype), b.astype(dtype)) for w, b in layers]
    p0 = p0.astype(dtype)
    p1 = p1.astype(dtype)
    P = max_pieces
    t_lo, t_hi = (-jnp.inf, jnp.inf) if unbounded else (0.0, 1.0)
    direction = p1 - p0
    w0, b0 = layers[0]
    s0, q0 = direction @ w0, p0 @ w0 + b0  # layer-0 pre-activations are affine in t everywhere
    bps = jnp.full((P - 1,), jnp.inf, dtype)
    n = jnp.zeros((), jnp.int32)
    overflow = jnp.zeros((), bool)
    for k in range(len(layers)):
        lo, hi, valid = _pieces(bps, n, t_lo, t_hi)
        s, q, _ = _piece_maps(s0, q0, layers[1 : k + 1], _representatives(lo, hi))[k]  # (P, width_k)
        nz = s != 0
        tstar = jnp.where(nz, -q / jnp.where(nz, s, 1), jnp.inf)
        inside = valid[:, None] & _inside(tstar, lo, hi)
        bps, n, of = _merge(bps, jnp.where(inside, tstar, jnp.inf).reshape(-1))
        overflow = overflow | of

    # Patterns of the final pieces, each layer's mask read at the piece's representative point.
    lo, hi, valid = _pieces(bps, n, t_lo, t_hi)
    rep = _representatives(lo, hi)
    pattern = jnp.concatenate([on for _, _, on in _piece_maps(s0, q0, layers[1:], rep)], axis=-1)

    # Robustness: keep only breakpoints across which the full pattern changes (always true in exact math);
    # a merged piece keeps the pattern of its first piece. Compaction by sorting (cheap to compile).
    change = (jnp.arange(P - 1) < n) & jnp.any(pattern[:-1] != pattern[1:], axis=-1)
    start = valid & jnp.concatenate([jnp.ones((1,), bool), change])
    first_piece = jnp.sort(jnp.where(start, jnp.arange(P), P))
    bps = jnp.sort(jnp.where(change, bps, jnp.inf))
    n = jnp.sum(change.astype(jnp.int32))
    lo, hi, valid = _pieces(bps, n, t_lo, t_hi)
    rep = jnp.where(valid, _representatives(lo, hi), jnp.nan)
    pattern = pattern[jnp.minimum(first_piece, P - 1)] & valid[:, None]

    finite = jnp.isfinite(bps)
    points = jnp.where(finite[:, None], p0 + jnp.where(finite, bps, 0)[:, None] * direction, jnp.nan)
    return SegmentRegions(
        count=(n + 1).astype(jnp.int32),
        overflow=overflow,
        t=bps,
        points=points,
        representatives=rep,
        piece_valid=valid,
        patterns=pattern,
    )


def segment_breakpoints(
    layers, p0, p1, *, max_pieces: int = 256, unbounded: bool = False
) -> SegmentRegions:
    """Exact breakpoints, pieces and activation patterns along ``x(t) = p0 + t (p1 - p0)``.

    Args:
      layers: list of ``(W, b)`` hidden layers, ``W`` of shape ``(in, out)``, ReLU after each.
      p0, p1: ``(in,)`` points (for one segment; vmap for batches).
      max_pieces: static buffer size (see the module docstring for the bound and how to choose it).
      unbounded: False -> ``t in [0, 1]`` (the segment); True -> ``t in (-inf, inf)`` (the infinite line).
    Returns:
      :class:`SegmentRegions`. Breakpoints at exactly ``t = 0`` or ``t = 1`` of a segment are not counted:
      a piece has positive length.
    """
    max_pieces = static_int("max_pieces", max_pieces, minimum=2)
    layers = validate_layers(layers)
    p0 = jnp.asarray(p0)
    p1 = jnp.asarray(p1)
    validate_point(p0, layers, "p0")
    validate_point(p1, layers, "p1")
    return _segment_breakpoints(layers, p0, p1, max_pieces=max_pieces, unbounded=bool(unbounded))


def count_on_segment(layers, p0, p1, *, max_pieces: int = 256, return_details: bool = False):
    """Exact number of linear regions met by the segment ``[p0, p1]``.

    Formula: ``count = 1 + #{t in (0, 1) : the activation pattern of x(t) = p0 + t (p1 - p0) changes}``,
    computed by layer-wise breakpoint splitting (Hanin & Rolnick 2019; Cohan et al. 2022,
    ``regions_counting_1d.py``, reference B.2). Regions = activation patterns of all hidden neurons.

    Returns :class:`RegionCount` ``(count, overflow)``, or :class:`SegmentRegions` when
    ``return_details=True``. ``overflow`` True means more than ``max_pieces`` pieces exist and ``count`` is
    a lower bound. jit/vmap friendly: ``jax.vmap(lambda a, b: count_on_segment(layers, a, b))(P0, P1)``.
    """
    res = segment_breakpoints(layers, p0, p1, max_pieces=max_pieces, unbounded=False)
    return res if return_details else RegionCount(res.count, res.overflow)


def count_on_line(layers, p0, p1, *, max_pieces: int = 1024, return_details: bool = False):
    """Exact number of linear regions met by the infinite line through ``p0`` and ``p1``.

    Same algorithm as :func:`count_on_segment` with ``t in (-inf, inf)``: crossings ``t* = -q/s`` are
    accepted anywhere inside their (possibly unbounded) piece, so breakpoints at any finite t are found.
    Cohan et al.'s "random lines" (reference B.2) are counted this way; one hidden layer in general position
    gives ``width + 1``. ``p0 == p1`` degenerates to a point (count 1).
    """
    res = segment_breakpoints(layers, p0, p1, max_pieces=max_pieces, unbounded=True)
    return res if return_details else RegionCount(res.count, res.overflow)
