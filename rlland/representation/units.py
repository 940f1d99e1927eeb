"""Dead units of a layer, from its post-activation features over a batch.

Source: Moalla et al. 2024 (reference ``representation-regions-qd.md`` A.3, ``metrics.py
compute_dead_neurons_from_features``). A unit d is dead over the N samples of the batch when:

* ``relu`` / ``gelu``: ``F[n, d] == 0`` for every n (exactly zero);
* ``leaky_relu``: ``F[n, d] < 0`` for every n (never on the positive branch);
* ``tanh``: ``std_n F[n, d] < 0.001`` (unbiased std over samples, ``torch.std`` default; the unit is saturated or
  constant).

Measured on post-activation features only; no tau-dormant (Sokar et al.) normalisation. The reference logs the
COUNT; we return the count and the fraction ``count / D``.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# the activations dead units are defined for (lower-cased name -> the rule used)
ACTIVATIONS = {
    "relu": "relu",
    "gelu": "relu",  # the reference treats GELU like ReLU: dead iff exactly zero on every sample
    "leakyrelu": "leaky_relu",
    "leaky_relu": "leaky_relu",
    "tanh": "tanh",
}


def supports_dead_units(activation: str) -> bool:
    """Whether :func:`dead_units` defines dead units for ``activation`` (case-insensitive)."""
    return isinstance(activation, str) and activation.lower() in ACTIVATIONS


def _canonical_activation(activation: str) -> str:
    if not isinstance(activation, str):
        raise TypeError(f"activation must be a string, got {type(activation).__name__}")
    key = activation.lower()
    if key not in ACTIVATIONS:
        raise ValueError(
            f"dead_units: unknown activation {activation!r}; expected one of 'relu', 'gelu', 'tanh', 'leaky_relu'"
        )
    return ACTIVATIONS[key]


@functools.partial(jax.jit, static_argnames=("activation",))
def dead_units(F, activation: str = "relu", *, tanh_std_threshold=1e-3) -> dict[str, jax.Array]:
    """Dead units of post-activation features ``F`` [N, D] (reference A.3).

    Args:
      F: post-activation features, shape [N, D] (N samples, D units). Batches via ``jax.vmap``.
      activation: ``"relu"``, ``"gelu"``, ``"tanh"`` or ``"leaky_relu"`` (case-insensitive; ``"LeakyReLU"`` is
        accepted too). Static.
      tanh_std_threshold: a tanh unit is dead when its unbiased std over samples is below this (0.001). Traced.

    Returns:
      ``{"count": int32 scalar, "fraction": float32 scalar = count / D}``.
    """
    kind = _canonical_activation(activation)
    F = jnp.asarray(F)
    if F.ndim != 2:
        raise ValueError(f"dead_units expects features of shape [N, D] (use jax.vmap for batches), got {F.shape}")
    n, d = F.shape
    if kind == "relu":
        dead = jnp.all(F == 0, axis=0)
    elif kind == "leaky_relu":
        dead = jnp.all(F < 0, axis=0)
    else:  # tanh
        if n < 2:
            raise ValueError(f"dead_units(activation='tanh') needs N >= 2 samples for a std, got N = {n}")
        dead = jnp.std(F.astype(jnp.float32), axis=0, ddof=1) < tanh_std_threshold
    count = jnp.sum(dead).astype(jnp.int32)
    return {"count": count, "fraction": (count / d).astype(jnp.float32)}
