"""Shared helpers for ``rlland.regions``: input validation, activation patterns, exact unique-pattern counts.

A *region* throughout this package is a set of inputs that share the activation pattern of ALL hidden ReLU
neurons (every hidden layer, the output head excluded), as in Cohan et al. 2022 (reference B.2, which takes
the policy MLP's hidden layers only). A neuron is "on" iff its pre-activation is strictly positive, so a
neuron sitting exactly at 0 reads as "off", the same as its ReLU output.

``layers`` is a list of ``(W, b)`` pairs for the hidden layers, ``W`` of shape ``(in, out)``, ``b`` of shape
``(out,)``; ``h_{k+1} = relu(h_k @ W_k + b_k)``.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import jax
import jax.numpy as jnp

__all__ = [
    "validate_layers",
    "validate_point",
    "hidden_widths",
    "num_hidden_neurons",
    "activation_pattern",
    "pack_patterns",
    "unique_rows",
    "pieces_upper_bound",
]


def _shape(x: Any) -> tuple[int, ...] | str:
    try:
        return tuple(jnp.shape(x))
    except Exception:  # pragma: no cover - exotic leaves
        return f"<{type(x).__name__}>"


def _describe(layers: Any) -> str:
    try:
        return "[" + ", ".join(f"(W {_shape(w)}, b {_shape(b)})" for w, b in layers) + "]"
    except Exception:
        return repr(type(layers))


def validate_layers(layers: Any, in_dim: int | None = None) -> list[tuple[jax.Array, jax.Array]]:
    """Check that ``layers`` is a non-empty list of ``(W, b)`` with chaining shapes; return it as a list.

    Raises ``ValueError`` listing every layer's shapes when W is not 2-D, ``b`` is not ``(W.shape[1],)``,
    consecutive layers do not chain (``W_{k+1}.shape[0] != W_k.shape[1]``), or the first layer's input
    dimension differs from ``in_dim``. Works on tracers (only static shapes are read), so it also runs
    inside ``jit``/``vmap``, where a seed axis has already been stripped.
    """
    if not isinstance(layers, (list, tuple)) or len(layers) == 0:
        raise ValueError(
            "layers must be a non-empty list of (W, b) pairs for the hidden layers, W of shape (in, out); "
            f"got {type(layers).__name__}"
        )
    out: list[tuple[jax.Array, jax.Array]] = []
    for k, layer in enumerate(layers):
        if not isinstance(layer, (list, tuple)) or len(layer) != 2:
            raise ValueError(f"layers[{k}] must be a (W, b) pair; got {type(layer).__name__}")
        out.append((layer[0], layer[1]))
    desc = _describe(out)
    prev = None
    for k, (w, b) in enumerate(out):
        ws, bs = _shape(w), _shape(b)
        if len(ws) != 2:
            hint = " (a leading seed/snapshot axis? map it with jax.vmap)" if len(ws) == 3 else ""
            raise ValueError(f"layers[{k}]: W must have shape (in, out), got {ws}{hint}; layers = {desc}")
        if len(bs) != 1 or bs[0] != ws[1]:
            raise ValueError(
                f"layers[{k}]: b must have shape ({ws[1]},) to match W {ws}, got {bs}; layers = {desc}"
            )
        if prev is not None and ws[0] != prev:
            raise ValueError(
                f"layers[{k}]: W in-dim {ws[0]} does not chain with layers[{k - 1}] out-dim {prev}; "
                f"layers = {desc}"
            )
        prev = ws[1]
    first_in = _shape(out[0][0])[0]
    if in_dim is not None and in_dim != first_in:
        raise ValueError(
            f"input dimension {in_dim} does not match the first layer's in-dim {first_in}; layers = {desc}"
        )
    return out


def validate_point(x: Any, layers: Sequence[tuple[Any, Any]], name: str) -> None:
    """Raise ``ValueError`` unless ``x`` has shape ``(in_dim,)`` of the first layer."""
    in_dim = _shape(layers[0][0])[0]
    xs = _shape(x)
    if xs != (in_dim,):
        hint = " (batches: map with jax.vmap)" if len(xs) == 2 and xs[-1] == in_dim else ""
        raise ValueError(
            f"{name} must have shape ({in_dim},) = the first layer's in-dim, got {xs}{hint}; "
            f"layers = {_describe(layers)}"
        )


def hidden_widths(layers: Sequence[tuple[Any, Any]]) -> tuple[int, ...]:
    """Static widths (out-dims) of the hidden layers."""
    return tuple(int(_shape(w)[1]) for w, _ in layers)


def num_hidden_neurons(layers: Sequence[tuple[Any, Any]]) -> int:
    """Total number of hidden neurons n = sum of the hidden widths (the normaliser of Cohan et al.'s density)."""
    return int(sum(hidden_widths(layers)))


def pieces_upper_bound(layers_or_widths: Sequence[Any]) -> int:
    """Worst-case number of pieces of any line or segment: ``prod_k (width_k + 1)``.

    Why: within one piece of layer k-1's partition every layer-k pre-activation is affine in t, so each of
    the ``width_k`` neurons crosses zero at most once there; a piece is cut into at most ``width_k + 1``.
    The bound is attained only by contrived nets; trained and random nets sit far below it (one hidden
    layer: exactly ``width + 1`` on an infinite line in general position).
    """
    widths = [int(w) if isinstance(w, numbers.Integral) else int(_shape(w[0])[1]) for w in layers_or_widths]
    return int(math.prod(w + 1 for w in widths))


def activation_pattern(layers: Sequence[tuple[jax.Array, jax.Array]], x: jax.Array) -> jax.Array:
    """Activation pattern of every hidden neuron at one input ``x`` (shape ``(in,)``): bool ``(n,)``.

    Bit j is ``pre-activation_j > 0``; layers are concatenated in order. vmap for batches of points.
    """
    bits = []
    h = x
    for w, b in layers:
        z = h @ w + b
        bits.append(z > 0)
        h = jnp.maximum(z, 0)
    return jnp.concatenate(bits, axis=-1)


def pack_patterns(patterns: jax.Array) -> jax.Array:
    """Pack bool patterns ``(..., n)`` into ``(..., ceil(n / 32))`` uint32 words (exact, for sorting)."""
    n = patterns.shape[-1]
    k = max(1, -(-n // 32))
    pad = k * 32 - n
    bits = jnp.pad(patterns.astype(jnp.uint32), [(0, 0)] * (patterns.ndim - 1) + [(0, pad)])
    bits = bits.reshape(patterns.shape[:-1] + (k, 32))
    weights = jnp.left_shift(jnp.uint32(1), jnp.arange(32, dtype=jnp.uint32))
    return jnp.sum(bits * weights, axis=-1, dtype=jnp.uint32)


def unique_rows(words: jax.Array, valid: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Exact distinct-row count with static shapes.

    Args:
      words: ``(m, k)`` integer rows (e.g. from :func:`pack_patterns`).
      valid: ``(m,)`` bool; invalid rows are ignored. Default all valid.
    Returns:
      ``(num_unique, ids)``: int32 scalar, and ``(m,)`` int32 ids in ``[0, num_unique)`` (equal rows get
      equal ids, numbered in lexicographic order of the rows), ``-1`` for invalid rows.
    """
    m, k = words.shape
    if valid is None:
        valid = jnp.ones((m,), bool)
    keys = [words[:, j] for j in range(k - 1, -1, -1)] + [jnp.logical_not(valid).astype(jnp.int32)]
    order = jnp.lexsort(keys)  # last key is primary: valid rows first, then lexicographic
    sw = words[order]
    sv = valid[order]
    differs = jnp.concatenate([jnp.ones((1,), bool), jnp.any(sw[1:] != sw[:-1], axis=-1)])
    new = differs & sv
    gid = jnp.cumsum(new.astype(jnp.int32)) - 1
    ids = jnp.zeros((m,), jnp.int32).at[order].set(jnp.where(sv, gid, -1))
    return jnp.sum(new.astype(jnp.int32)), ids
