"""Exact counting of the linear regions of a ReLU MLP along a segment or an infinite line.

Algorithm (Hanin & Rolnick 2019, as used by Cohan et al. 2022, ``regions_counting_1d.py``; reference
``representation-regions-qd.md`` B.2), restated layer by layer with static shapes and no per-neuron loop:

Parametrise the line ``x(t) = p0 + t (p1 - p0)``, ``t in [0, 1]`` (segment) or ``t in (-inf, inf)`` (line).
Keep the sorted breakpoints ``t_1 < ... < t_m`` that cut the t-range into pieces and, for every piece, the affine
map of the current layer's pre-activations, ``z_k(t) = t s_k + q_k`` (layer 0: ``s_0 = (p1 - p0) W_0``,
``q_0 = p0 W_0 + b_0``, the same on every piece). For layer k, all at once:

1. every neuron j of every piece crosses zero at ``t*_j = -q_j / s_j`` (``s_j != 0``); it is a new breakpoint
   iff ``lo < t* < hi`` for its piece ``(lo, hi)`` by more than float error (:data:`INSIDE_ULPS`). Nothing needs a
   bounded piece, so the unbounded end pieces of an infinite line are handled exactly;
2. the old breakpoints and the accepted crossings are merged into one sorted list: the smallest ``P_k - 1``
   candidates by ``lax.top_k`` (pieces are disjoint and ordered, so sorting by t alone is the merge), exact
   duplicates (two neurons crossing at the same t) kept once;
3. each new piece finds its parent piece by ``searchsorted`` over the old breakpoints, takes the parent's map,
   reads the layer's ReLU mask at a point strictly inside itself (the midpoint; ``hi - 1 - |hi|`` /
   ``lo + 1 + |lo|`` for unbounded ends) and passes it on: ``s_{k+1} = (mask * s_k) W_{k+1}``,
   ``q_{k+1} = (mask * q_k) W_{k+1} + b_{k+1}``. The mask is constant on the piece, so the map is exact there.

A region is an activation pattern of ALL hidden neurons (decision shared with the reference, which uses every
hidden ReLU of the policy MLP and no output head); each piece carries its pattern (its ancestors' masks and its
own). In exact arithmetic two adjacent pieces never share a pattern (the neuron that made their breakpoint
changes sign there); as a float-robustness step breakpoints whose two sides have identical patterns are dropped,
so ``count`` is exactly ``1 + number of pattern changes along the path``. A segment or line meets a convex
region in one interval, so this is also the number of distinct regions met.

Static shapes and cost. Layer k keeps at most ``P_k = min(max_pieces, P_{k-1} (width_k + 1))`` pieces (``P_{-1} =
1``): the a-priori bound of :func:`rlland.regions.pieces_upper_bound` layer by layer, so one hidden layer never
overflows once ``max_pieces > width`` (closed form: ``width + 1`` regions on a generic infinite line). The work of
a layer is elementwise on ``(P_{k-1}, width_k)`` plus a ``top_k`` and a sort of ``P_k`` values, so it grows with
the buffer, not with the true count: keep the buffer small. If a segment needs more than ``max_pieces`` pieces,
``overflow`` is True and ``count`` is not exact (at most ``max_pieces``, a lower bound unless exact duplicate
crossings filled the buffer); a count is never silently wrong. :func:`count_segments` / :func:`count_lines`
handle that for a batch: a first pass with a small buffer over every item, then only the overflowing items again
with a buffer ``growth`` times larger, up to the bound, so every returned count is exact.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rlland.regions.layers import hidden_widths, pieces_upper_bound, validate_layers, validate_point
from rlland.validation import static_int

__all__ = [
    "INSIDE_ULPS",
    "RegionCount",
    "SegmentRegions",
    "segment_breakpoints",
    "count_on_segment",
    "count_on_line",
    "count_segments",
    "count_lines",
]

INSIDE_ULPS = 4  # a crossing closer than 4 eps * max(1, |bound|) to its piece's bound is that bound's crossing


class RegionCount(NamedTuple):
    """``count``: int32 number of linear regions (pieces) met; ``overflow``: bool, True => count is not exact."""

    count: jax.Array
    overflow: jax.Array


class SegmentRegions(NamedTuple):
    """Full result of :func:`segment_breakpoints` (``P = max_pieces``, ``n`` = total hidden neurons).

    Fields:
      count: int32, number of pieces (= regions met); ``count - 1`` valid breakpoints.
      overflow: bool, True when the buffer was too small (count is then not exact).
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


class _Pieces(NamedTuple):
    """The final partition of :func:`_split`: ``bps`` ``(P_L - 1,)`` sorted, +inf padded; ``n`` valid entries;
    ``patterns`` ``(P_L, n_neurons)``; ``overflow``."""

    bps: jax.Array
    n: jax.Array
    patterns: jax.Array
    overflow: jax.Array


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


def _merge(bps: jax.Array, cand: jax.Array, size: int):
    """The ``size`` smallest distinct values of ``bps`` (sorted, +inf padded) and ``cand`` (+inf = none), sorted
    and +inf padded, and whether more than ``size`` distinct finite values exist.

    ``lax.top_k`` takes ``size + 1`` values (one more than kept, so that "everything fitted" is decided after
    removing duplicates); duplicates are adjacent once sorted and are pushed out by a second, small sort. When
    more than ``size + 1`` candidates exist and the window held a duplicate, overflow is reported conservatively.
    """
    x = jnp.concatenate([bps, cand])
    window = min(size + 1, x.shape[0])
    x = -jax.lax.top_k(-x, window)[0] if window < x.shape[0] else jnp.sort(x)
    dup = jnp.concatenate([jnp.zeros((1,), bool), x[1:] == x[:-1]])
    x = jnp.sort(jnp.where(dup, jnp.inf, x))
    total = jnp.sum(jnp.isfinite(jnp.concatenate([bps, cand])).astype(jnp.int32))
    distinct = jnp.sum(jnp.isfinite(x).astype(jnp.int32))
    overflow = (total > window) | (distinct > size)
    x = x[:size]
    return x, jnp.minimum(distinct, size), overflow


def _split(layers, p0, p1, max_pieces: int, unbounded: bool):
    """Layer-by-layer splitting of the module docstring; returns the final :class:`_Pieces` (``P_L`` pieces)."""
    dtype = p0.dtype
    t_lo, t_hi = (-jnp.inf, jnp.inf) if unbounded else (0.0, 1.0)
    w0, b0 = layers[0]
    s = ((p1 - p0) @ w0)[None]  # (pieces, width_k): slope of every pre-activation on every piece
    q = (p0 @ w0 + b0)[None]
    bps = jnp.zeros((0,), dtype)
    lo, hi, valid = _pieces(bps, jnp.zeros((), jnp.int32), t_lo, t_hi)
    patterns = jnp.zeros((1, 0), bool)
    overflow = jnp.zeros((), bool)
    for k, width in enumerate(hidden_widths(layers)):
        size = min(max_pieces, (bps.shape[0] + 1) * (width + 1))  # a-priori bound on this layer's pieces
        nz = s != 0
        tstar = jnp.where(nz, -q / jnp.where(nz, s, 1), jnp.inf)
        cand = jnp.where(valid[:, None] & _inside(tstar, lo, hi), tstar, jnp.inf).reshape(-1)
        new, n, of = _merge(bps, cand, size - 1)
        overflow = overflow | of
        new_lo, hi, valid = _pieces(new, n, t_lo, t_hi)
        if bps.shape[0]:
            parent = jnp.minimum(jnp.searchsorted(bps, new_lo, side="right"), bps.shape[0])
            s, q, patterns = s[parent], q[parent], patterns[parent]
        else:
            s, q, patterns = (jnp.broadcast_to(x, (size,) + x.shape[1:]) for x in (s, q, patterns))
        on = _representatives(new_lo, hi)[:, None] * s + q > 0
        patterns = jnp.concatenate([patterns, on], axis=-1)
        if k + 1 < len(layers):
            w, b = layers[k + 1]
            s, q = jnp.where(on, s, 0) @ w, jnp.where(on, q, 0) @ w + b
        bps, lo = new, new_lo
    return _Pieces(bps, n, patterns, overflow)


def _prepare(layers, p0, p1):
    dtype = jnp.result_type(jnp.float32, p0, p1, *[w for w, _ in layers])
    return [(w.astype(dtype), b.astype(dtype)) for w, b in layers], p0.astype(dtype), p1.astype(dtype)


def _changes(pieces: _Pieces) -> jax.Array:
    """``(P_L - 1,)`` bool: breakpoint i is valid and the patterns on its two sides differ."""
    pat = pieces.patterns
    return (jnp.arange(pat.shape[0] - 1) < pieces.n) & jnp.any(pat[:-1] != pat[1:], axis=-1)


@functools.partial(jax.jit, static_argnames=("max_pieces", "unbounded"))
def _count(layers, p0, p1, max_pieces: int, unbounded: bool) -> RegionCount:
    pieces = _split(*_prepare(layers, p0, p1), max_pieces, unbounded)
    return RegionCount(1 + jnp.sum(_changes(pieces).astype(jnp.int32)), pieces.overflow)


@functools.partial(jax.jit, static_argnames=("max_pieces", "unbounded"))
def _segment_breakpoints(layers, p0, p1, max_pieces: int, unbounded: bool) -> SegmentRegions:
    layers, p0, p1 = _prepare(layers, p0, p1)
    t_lo, t_hi = (-jnp.inf, jnp.inf) if unbounded else (0.0, 1.0)
    pieces = _split(layers, p0, p1, max_pieces, unbounded)
    num = pieces.patterns.shape[0]  # P_L <= max_pieces

    # Robustness: keep only breakpoints across which the full pattern changes (always true in exact math);
    # a merged piece keeps the pattern of its first piece. Compaction by sorting (P_L values).
    change = _changes(pieces)
    start = (jnp.arange(num) <= pieces.n) & jnp.concatenate([jnp.ones((1,), bool), change])
    first_piece = jnp.sort(jnp.where(start, jnp.arange(num), num))
    bps = jnp.sort(jnp.where(change, pieces.bps, jnp.inf))
    n = jnp.sum(change.astype(jnp.int32))
    pad = max_pieces - num
    bps = jnp.pad(bps, (0, pad), constant_values=jnp.inf)
    lo, hi, valid = _pieces(bps, n, t_lo, t_hi)
    rep = jnp.where(valid, _representatives(lo, hi), jnp.nan)
    patterns = jnp.pad(pieces.patterns[jnp.minimum(first_piece, num - 1)], ((0, pad), (0, 0))) & valid[:, None]

    finite = jnp.isfinite(bps)
    direction = p1 - p0
    points = jnp.where(finite[:, None], p0 + jnp.where(finite, bps, 0)[:, None] * direction, jnp.nan)
    return SegmentRegions(
        count=(n + 1).astype(jnp.int32),
        overflow=pieces.overflow,
        t=bps,
        points=points,
        representatives=rep,
        piece_valid=valid,
        patterns=patterns,
    )


def _checked(layers, p0, p1, max_pieces):
    max_pieces = static_int("max_pieces", max_pieces, minimum=2)
    layers = validate_layers(layers)
    p0 = jnp.asarray(p0)
    p1 = jnp.asarray(p1)
    validate_point(p0, layers, "p0")
    validate_point(p1, layers, "p1")
    return layers, p0, p1, max_pieces


def segment_breakpoints(
    layers, p0, p1, *, max_pieces: int = 256, unbounded: bool = False
) -> SegmentRegions:
    """Exact breakpoints, pieces and activation patterns along ``x(t) = p0 + t (p1 - p0)``.

    Args:
      layers: list of ``(W, b)`` hidden layers, ``W`` of shape ``(in, out)``, ReLU after each.
      p0, p1: ``(in,)`` points (for one segment; vmap for batches).
      max_pieces: static buffer size (see the module docstring for the bound and the cost).
      unbounded: False -> ``t in [0, 1]`` (the segment); True -> ``t in (-inf, inf)`` (the infinite line).
    Returns:
      :class:`SegmentRegions`. Breakpoints at exactly ``t = 0`` or ``t = 1`` of a segment are not counted:
      a piece has positive length.
    """
    layers, p0, p1, max_pieces = _checked(layers, p0, p1, max_pieces)
    return _segment_breakpoints(layers, p0, p1, max_pieces=max_pieces, unbounded=bool(unbounded))


def count_on_segment(layers, p0, p1, *, max_pieces: int = 256, return_details: bool = False):
    """Exact number of linear regions met by the segment ``[p0, p1]``.

    Formula: ``count = 1 + #{t in (0, 1) : the activation pattern of x(t) = p0 + t (p1 - p0) changes}``,
    computed by layer-wise breakpoint splitting (Hanin & Rolnick 2019; Cohan et al. 2022,
    ``regions_counting_1d.py``, reference B.2). Regions = activation patterns of all hidden neurons.

    Returns :class:`RegionCount` ``(count, overflow)``, or :class:`SegmentRegions` when
    ``return_details=True``. ``overflow`` True means more than ``max_pieces`` pieces were needed and ``count`` is
    not exact. jit/vmap friendly: ``jax.vmap(lambda a, b: count_on_segment(layers, a, b))(P0, P1)``; for a batch
    with exact counts whatever the buffer, see :func:`count_segments`.
    """
    if return_details:
        return segment_breakpoints(layers, p0, p1, max_pieces=max_pieces, unbounded=False)
    layers, p0, p1, max_pieces = _checked(layers, p0, p1, max_pieces)
    return _count(layers, p0, p1, max_pieces=max_pieces, unbounded=False)


def count_on_line(layers, p0, p1, *, max_pieces: int = 1024, return_details: bool = False):
    """Exact number of linear regions met by the infinite line through ``p0`` and ``p1``.

    Same algorithm as :func:`count_on_segment` with ``t in (-inf, inf)``: crossings ``t* = -q/s`` are
    accepted anywhere inside their (possibly unbounded) piece, so breakpoints at any finite t are found.
    Cohan et al.'s "random lines" (reference B.2) are counted this way; one hidden layer in general position
    gives ``width + 1``. ``p0 == p1`` degenerates to a point (count 1).
    """
    if return_details:
        return segment_breakpoints(layers, p0, p1, max_pieces=max_pieces, unbounded=True)
    layers, p0, p1, max_pieces = _checked(layers, p0, p1, max_pieces)
    return _count(layers, p0, p1, max_pieces=max_pieces, unbounded=True)


# -- batches, exact whatever the buffer -------------------------------------------------------------------------
MAX_BATCH = 8192  # items per compiled call of count_segments / count_lines (a power of two)
CHUNK_ELEMENTS = 2**18  # items x pieces x (width + 1) per step of a call's lax.map (working arrays in cache)


def _chunk(max_pieces: int, widest: int) -> int:
    """Items per ``lax.map`` step: the largest power of two with ``items * max_pieces * widest <= CHUNK_ELEMENTS``.

    Why: the per-layer arrays of one item are ``(pieces, width)``; vmapping thousands of items at once makes every
    intermediate a many-megabyte array and the kernel memory-bound (measured 1.5-3x slower on a 2-core CPU)."""
    n = max(1, CHUNK_ELEMENTS // (max_pieces * widest))
    return 1 << (n.bit_length() - 1)


@functools.partial(jax.jit, static_argnames=("max_pieces", "unbounded", "chunk"))
def _count_batch(layers, p0, p1, max_pieces: int, unbounded: bool, chunk: int) -> RegionCount:
    def one(ab):
        return _count(layers, ab[0], ab[1], max_pieces=max_pieces, unbounded=unbounded)

    return jax.lax.map(one, (p0, p1), batch_size=min(chunk, p0.shape[0]))


def _bucket(num: int, cap: int) -> int:
    """The smallest power of two >= ``num`` (at least 16), at most ``cap``: padded batch sizes, so compiles are
    reused across calls."""
    return min(cap, max(16, 1 << (int(num) - 1).bit_length()))


def _levels(first: int, growth: int, limit: int) -> list[int]:
    """Buffer sizes of the cascade from ``first``: ``first, first * growth, ...``, the last one ``limit``."""
    out = [min(first, limit)]
    while out[-1] < limit:
        out.append(min(out[-1] * growth, limit))
    return out


def _first_buffer(counts: np.ndarray, growth: int, limit: int) -> int:
    """The first buffer that minimises the expected work of the cascade on items with these ``counts``.

    Cost model (measured: a pass costs about its buffer size per item, see the module docstring): starting from
    P_0, an item with ``c`` pieces costs ``sum_l [c > P_{l-1}] P_l`` (``P_{-1} = 0``); the candidates are the
    powers of two from 8 to ``limit`` and ``limit``."""
    candidates = sorted({min(1 << j, limit) for j in range(3, max(4, limit.bit_length() + 1))} | {limit})

    def cost(first):
        levels = _levels(first, growth, limit)
        return sum(np.mean(counts > prev) * p for prev, p in zip([0] + levels[:-1], levels))

    return min(candidates, key=cost)


PILOT = 256  # items of a batch counted first; their counts choose the first buffer for the rest


def _batch_counts(layers, p0, p1, *, unbounded: bool, max_pieces: int, growth: int, limit) -> RegionCount:
    layers = validate_layers(layers)
    p0, p1 = np.asarray(p0), np.asarray(p1)
    in_dim = int(layers[0][0].shape[0])
    for name, x in (("p0", p0), ("p1", p1)):
        if x.ndim != 2 or x.shape[1] != in_dim:
            raise ValueError(f"{name} must have shape (batch, {in_dim}), got {x.shape}")
    if p0.shape != p1.shape:
        raise ValueError(f"p0 and p1 must have the same shape, got {p0.shape} and {p1.shape}")
    max_pieces = static_int("max_pieces", max_pieces, minimum=2)
    growth = static_int("growth", growth, minimum=2)
    bound = pieces_upper_bound(layers)
    limit = bound if limit is None else min(static_int("limit", limit, minimum=2), bound)
    widest = max(hidden_widths(layers)) + 1
    layers = jax.tree.map(jnp.asarray, layers)

    num = p0.shape[0]
    count = np.zeros((num,), np.int32)
    overflow = np.ones((num,), bool)

    def cascade(todo, first):
        for pieces in _levels(first, growth, limit):
            chunk = _chunk(pieces, widest)
            for start in range(0, todo.size, MAX_BATCH):
                idx = todo[start:start + MAX_BATCH]
                padded = np.pad(idx, (0, _bucket(idx.size, MAX_BATCH) - idx.size), mode="edge")
                res = jax.device_get(_count_batch(layers, p0[padded], p1[padded], max_pieces=pieces,
                                                  unbounded=unbounded, chunk=chunk))
                count[idx], overflow[idx] = res.count[:idx.size], res.overflow[:idx.size]
            todo = todo[overflow[todo]]
            if not todo.size:
                return

    cascade(np.arange(min(num, PILOT)), max_pieces)
    if num > PILOT:
        cascade(np.arange(PILOT, num), _first_buffer(count[:PILOT], growth, limit))
    return RegionCount(count, overflow)


def count_segments(layers, p0, p1, *, max_pieces: int = 16, growth: int = 4, limit: int | None = None) -> RegionCount:
    """Exact region counts of a batch of segments ``[p0[i], p1[i]]`` (``p0``, ``p1``: ``(B, in)``), host side.

    Same count as :func:`count_on_segment`, with the buffer grown per item instead of sized for the worst one:
    segments are counted with a small buffer; the ones that overflow are counted again with a buffer ``growth``
    times larger, and so on up to ``limit`` (default the bound ``prod(width + 1)``, where nothing can overflow).
    The first :data:`PILOT` segments start from ``max_pieces``; the rest from the buffer that minimises the work
    expected from the pilot's counts (:func:`_first_buffer`: a pass costs about its buffer size per item), so a
    call is cheap whether most segments have few pieces (trajectory steps) or many: only the long ones pay for a
    large buffer. Batches are padded to power-of-two sizes of at most :data:`MAX_BATCH` items, so the compiles of
    one buffer size are reused (not made per segment or per batch size), and computed in cache-sized chunks.

    Returns :class:`RegionCount` of numpy arrays ``(B,)``; ``overflow`` is True only for a segment that still
    overflowed at ``limit`` (never with the default). Not traceable (it loops on the host); inside ``jit`` use
    ``jax.vmap`` over :func:`count_on_segment` with a static buffer and its ``overflow`` flag.
    """
    return _batch_counts(layers, p0, p1, unbounded=False, max_pieces=max_pieces, growth=growth, limit=limit)


def count_lines(layers, p0, p1, *, max_pieces: int | None = None, growth: int = 4,
                limit: int | None = None) -> RegionCount:
    """Exact region counts of the infinite lines through ``p0[i]`` and ``p1[i]`` (``(B, in)``), host side.

    :func:`count_segments` for :func:`count_on_line`. The first buffer defaults to ``2 (n + 1)`` pieces, n = the
    hidden neurons (a line crosses every first-layer neuron once, ``width_0 + 1`` pieces after the first layer,
    and random lines meet a few regions per neuron, Hanin & Rolnick 2019)."""
    if max_pieces is None:
        max_pieces = 2 * (sum(hidden_widths(validate_layers(layers))) + 1)
    return _batch_counts(layers, p0, p1, unbounded=True, max_pieces=max_pieces, growth=growth, limit=limit)
