"""Activation patterns of ReLU MLPs and exact distinct-pattern counts (the definition of a region).

A *region* throughout :mod:`rlland.regions` is a set of inputs that share the activation pattern of ALL hidden
ReLU neurons (every hidden layer, the output head excluded), as in Cohan et al. 2022 (reference B.2, which takes
the policy MLP's hidden layers only). A neuron is "on" iff its pre-activation is strictly positive, so a neuron
sitting exactly at 0 reads as "off", the same as its ReLU output. ``layers`` as in :mod:`rlland.regions.layers`.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

__all__ = ["activation_pattern", "pack_patterns", "unique_rows"]


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
