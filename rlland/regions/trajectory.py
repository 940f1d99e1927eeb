"""Region metrics along trajectories and on random lines (Cohan et al. 2022, reference B.2).

Trajectory metrics (``compute_metrics.py get_history`` / ``get_visited_regions_analytic``): for states
``s_0 .. s_{T-1}`` (raw, unnormalised) and the observation normaliser ``x = (s - mean) / std`` of the
checkpoint, each consecutive pair is mapped to a segment ``[x_i, x_{i+1}]`` in the network's input space
(the normaliser is affine, so a segment stays a segment) and its regions are counted exactly:

- ``num_transitions = sum_i (regions on [x_i, x_{i+1}] - 1)``: boundary crossings of the piecewise-linear path;
- ``num_regions_pieces``: distinct activation patterns over all pieces of all segments (the reference's
  ``num_regions``); ``num_regions_states``: distinct patterns among the visited states themselves;
- ``length = sum_i ||s_{i+1} - s_i||_2`` on raw states, ``length_normalized`` on normalised states;
- ``density = num_transitions / length`` (the reference's "transitions per unit length", raw length);
  ``density_per_neuron = num_transitions / (length * n)``, n = total hidden neurons (the paper's
  normalised density); ``density_normalized = num_transitions / length_normalized``.
  A zero length gives NaN densities.

Random lines: directions uniform on the unit sphere (normalised Gaussians) through a centre (the origin or
the mean state), counted on the infinite line (the reference's setting) or on a centred segment of a given
length. :func:`state_line_counts` reproduces the reference's exact variant: lines through the origin (or
the mean of the states) and a randomly chosen state.

Everything is written for one trajectory / one policy; ``jax.vmap`` over a batch of trajectories (same T,
use ``mask`` for early termination) or over seeds/snapshots through the ``layers`` pytree.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlland.regions.layers import num_hidden_neurons, validate_layers, validate_point
from rlland.regions.patterns import activation_pattern, pack_patterns, unique_rows
from rlland.regions.counting import count_on_line, count_on_segment, segment_breakpoints

__all__ = ["TrajectoryMetrics", "LineCounts", "trajectory_metrics", "random_line_counts", "state_line_counts"]


class TrajectoryMetrics(NamedTuple):
    """Scalar metrics of one trajectory (a leading axis appears under vmap). See the module docstring."""

    num_transitions: jax.Array
    num_regions_pieces: jax.Array
    num_regions_states: jax.Array
    length: jax.Array
    length_normalized: jax.Array
    density: jax.Array
    density_per_neuron: jax.Array
    density_normalized: jax.Array
    num_timesteps: jax.Array
    num_neurons: jax.Array
    overflow: jax.Array


class LineCounts(NamedTuple):
    """Per-line region counts ``(num_lines,)``, overflow flags, and the lines' anchor and unit direction."""

    counts: jax.Array
    overflow: jax.Array
    anchors: jax.Array
    directions: jax.Array


def _check_states(states: jax.Array, layers, name: str = "states") -> None:
    in_dim = layers[0][0].shape[0]
    if states.ndim != 2 or states.shape[1] != in_dim:
        raise ValueError(
            f"{name} must have shape (T, {in_dim}) (T states of the first layer's in-dim), got {states.shape}; "
            "batches of trajectories: map with jax.vmap"
        )


@functools.partial(jax.jit, static_argnames=("max_pieces", "piece_patterns"))
def _trajectory_metrics(layers, states, mean, std, mask, max_pieces: int, piece_patterns: bool) -> TrajectoryMetrics:
    dtype = states.dtype
    x = (states - mean) / std
    seg_ok = mask[:-1] & mask[1:]
    res = jax.vmap(lambda a, b: segment_breakpoints(layers, a, b, max_pieces=max_pieces))(x[:-1], x[1:])
    transitions = jnp.sum(jnp.where(seg_ok, res.count - 1, 0))
    n = num_hidden_neurons(layers)

    state_pats = jax.vmap(lambda s: activation_pattern(layers, s))(x)
    num_states, _ = unique_rows(pack_patterns(state_pats), mask)
    if piece_patterns:
        words = pack_patterns(res.patterns).reshape(-1, -(-n // 32))
        valid = (res.piece_valid & seg_ok[:, None]).reshape(-1)
        num_pieces, _ = unique_rows(words, valid)
    else:
        num_pieces = jnp.asarray(-1, jnp.int32)

    length = jnp.sum(jnp.where(seg_ok, jnp.linalg.norm(jnp.diff(states, axis=0), axis=-1), 0))
    length_n = jnp.sum(jnp.where(seg_ok, jnp.linalg.norm(jnp.diff(x, axis=0), axis=-1), 0))
    tr = transitions.astype(dtype)
    return TrajectoryMetrics(
        num_transitions=transitions.astype(jnp.int32),
        num_regions_pieces=num_pieces.astype(jnp.int32),
        num_regions_states=num_states.astype(jnp.int32),
        length=length,
        length_normalized=length_n,
        density=tr / length,
        density_per_neuron=tr / (length * n),
        density_normalized=tr / length_n,
        num_timesteps=jnp.sum(mask.astype(jnp.int32)),
        num_neurons=jnp.asarray(n, jnp.int32),
        overflow=jnp.any(res.overflow & seg_ok),
    )


def trajectory_metrics(
    layers,
    states,
    *,
    mean=None,
    std=None,
    mask=None,
    max_pieces: int = 64,
    piece_patterns: bool = True,
) -> TrajectoryMetrics:
    """Exact region metrics of one trajectory (Cohan et al. 2022, reference B.2).

    Args:
      layers: hidden ``(W, b)`` layers of the policy MLP.
      states: ``(T, d)`` raw states, ``T >= 2``.
      mean, std: observation normaliser; the network sees ``(s - mean) / std`` (pass
        ``sqrt(var + eps)`` for a VecNormalize-style normaliser). Default: identity.
      mask: ``(T,)`` bool, False for padding after termination; segment i counts iff both ends are valid.
      max_pieces: buffer per segment (static); ``overflow`` reports whether any segment exceeded it.
      piece_patterns: also compute ``num_regions_pieces`` (costs a sort over ``(T-1) * max_pieces`` rows);
        when False it is returned as -1.
    Memory: about ``T * max_pieces * n`` bytes of per-piece patterns per trajectory (n = hidden neurons);
    under a large vmap (seeds x snapshots) chunk the batch with ``jax.lax.map`` if that does not fit.
    Returns:
      :class:`TrajectoryMetrics`; formulas in the module docstring.
    """
    layers = validate_layers(layers)
    states = jnp.asarray(states)
    _check_states(states, layers)
    t_len = states.shape[0]
    if t_len < 2:
        raise ValueError(f"states must hold at least 2 states, got shape {states.shape}")
    dtype = jnp.result_type(jnp.float32, states)
    states = states.astype(dtype)
    if mask is None:
        mask = jnp.ones((t_len,), bool)
    mask = jnp.asarray(mask, bool)
    if mask.shape != (t_len,):
        raise ValueError(f"mask must have shape ({t_len},), got {mask.shape}")
    # Always pass arrays (identity by default) so that one compiled kernel serves every call.
    mean = jnp.zeros(states.shape[1:], dtype) if mean is None else jnp.asarray(mean, dtype)
    std = jnp.ones(states.shape[1:], dtype) if std is None else jnp.asarray(std, dtype)
    validate_point(mean, layers, "mean")
    validate_point(std, layers, "std")
    return _trajectory_metrics(
        layers, states, mean, std, mask, max_pieces=int(max_pieces), piece_patterns=bool(piece_patterns)
    )


def _count_lines(layers, anchors, directions, segment_length, max_pieces):
    if segment_length is None:
        fn = lambda a, u: count_on_line(layers, a, a + u, max_pieces=max_pieces)  # noqa: E731
    else:
        half = 0.5 * jnp.asarray(segment_length, anchors.dtype)
        fn = lambda a, u: count_on_segment(layers, a - half * u, a + half * u, max_pieces=max_pieces)  # noqa: E731
    return jax.vmap(fn)(anchors, directions)


def random_line_counts(
    key, layers, center, *, num_lines: int, segment_length=None, max_pieces: int = 1024
) -> LineCounts:
    """Region counts on ``num_lines`` random lines through ``center``, directions uniform on the sphere.

    ``u = g / ||g||`` with ``g ~ N(0, I_d)``. ``segment_length=None`` counts the infinite line
    ``center + t u`` (reference B.2 "random lines"); otherwise the segment
    ``[center - L/2 u, center + L/2 u]`` (a traced scalar, so lengths can be swept under vmap). Pass
    ``center = 0`` for lines through the origin or the mean state for lines through the mean.
    """
    layers = validate_layers(layers)
    center = jnp.asarray(center)
    validate_point(center, layers, "center")
    if segment_length is not None:
        segment_length = jnp.asarray(segment_length)
    return _random_line_counts(
        key, layers, center, segment_length, num_lines=int(num_lines), max_pieces=int(max_pieces)
    )


@functools.partial(jax.jit, static_argnames=("num_lines", "max_pieces"))
def _random_line_counts(key, layers, center, segment_length, num_lines: int, max_pieces: int) -> LineCounts:
    dtype = jnp.result_type(jnp.float32, center)
    g = jax.random.normal(key, (num_lines, center.shape[0]), dtype)
    u = g / jnp.linalg.norm(g, axis=-1, keepdims=True)
    anchors = jnp.broadcast_to(center.astype(dtype), u.shape)
    res = _count_lines(layers, anchors, u, segment_length, max_pieces)
    return LineCounts(res.count, res.overflow, anchors, u)


def state_line_counts(
    key, layers, states, *, num_lines: int, through: str = "origin", segment_length=None, max_pieces: int = 1024
) -> LineCounts:
    """Reference B.2 variant: lines through a uniformly drawn state and the origin (or the states' mean).

    ``through="origin"``: line through 0 and ``s``; ``through="mean"``: through ``mean(states)`` and ``s``.
    The line is parametrised from the anchor (0 or the mean) with unit direction towards ``s``; a state
    equal to the anchor gives a zero direction (a point, count 1). States are drawn with replacement.
    Counted on the infinite line unless ``segment_length`` is given (then a segment centred on the anchor).
    """
    layers = validate_layers(layers)
    states = jnp.asarray(states)
    _check_states(states, layers)
    if through not in ("origin", "mean"):
        raise ValueError(f"through must be 'origin' or 'mean', got {through!r}")
    if segment_length is not None:
        segment_length = jnp.asarray(segment_length)
    return _state_line_counts(
        key, layers, states, segment_length, num_lines=int(num_lines), through=through, max_pieces=int(max_pieces)
    )


@functools.partial(jax.jit, static_argnames=("num_lines", "through", "max_pieces"))
def _state_line_counts(key, layers, states, segment_length, num_lines: int, through: str, max_pieces: int):
    dtype = jnp.result_type(jnp.float32, states)
    states = states.astype(dtype)
    idx = jax.random.randint(key, (num_lines,), 0, states.shape[0])
    picked = states[idx]
    anchor = jnp.zeros_like(states[0]) if through == "origin" else jnp.mean(states, axis=0)
    diff = picked - anchor
    norm = jnp.linalg.norm(diff, axis=-1, keepdims=True)
    u = jnp.where(norm > 0, diff / jnp.where(norm > 0, norm, 1), 0)
    anchors = jnp.broadcast_to(anchor, u.shape)
    res = _count_lines(layers, anchors, u, segment_length, max_pieces)
    return LineCounts(res.count, res.overflow, anchors, u)
