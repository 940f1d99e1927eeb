"""Evolution-strategies gradient estimates (shared by CMA-MEGA (ES) and ME-ES).

For a genome theta and n = 2h mirrored perturbations eps_{i+h} = -eps_i (Salimans et al. 2017), the values
v_i = f(theta + sigma eps_i) of k functions (objective, measures, novelty, ...) are rank-normalised per function,
r_i = rank(v_i) / (n - 1) - 0.5 in [-0.5, 0.5] ("centered ranks"), and

    g = sum_{i < h} eps_i (r_i - r_{i+h}) / (h sigma)                                   (dqd-rl, reference C.3)

which without the rank transform estimates 2 grad E[f(theta + sigma eps)] (each pair gives
eps (f(+) - f(-)) / sigma ~ 2 eps eps^T grad f); the scale does not matter once normalised. dqd-rl then
normalises each gradient to unit length, g / (||g|| + 1e-8) (``normalize_gradients=True``).

Every function takes one genome; a population of genomes or a seed axis is a ``jax.vmap``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def mirrored_noise(key: jax.Array, num_samples: int, dim: int) -> jax.Array:
    """``(num_samples, dim)`` standard normal perturbations with ``eps[i + n/2] = -eps[i]``."""
    if num_samples < 2 or num_samples % 2:
        raise ValueError(f"mirrored sampling needs an even num_samples >= 2, got {num_samples}")
    half = jax.random.normal(key, (num_samples // 2, dim))
    return jnp.concatenate([half, -half], axis=0)


def centered_ranks(values: jax.Array) -> jax.Array:
    """``rank / (n - 1) - 0.5`` along axis 0 (rank 0 = smallest; ties keep their order), float32 in [-0.5, 0.5].

    Ties (frequent for contact-fraction descriptors) get distinct ranks in sample order (a stable sort); dqd-rl's
    ``np.argsort`` (quicksort) leaves their order unspecified, so no tie rule can match it exactly."""
    n = values.shape[0]
    if n < 2:
        raise ValueError(f"centered_ranks needs at least 2 values, got {n}")
    ranks = jnp.argsort(jnp.argsort(values, axis=0), axis=0)
    return ranks.astype(jnp.float32) / (n - 1) - 0.5


def es_gradient(eps: jax.Array, values: jax.Array, sigma, rank_normalise: bool = True) -> jax.Array:
    """Mirrored ES gradient estimates: ``eps`` ``(n, D)`` from `mirrored_noise`, ``values`` ``(n,)`` or ``(n, k)``
    (one column per function) -> ``(D,)`` or ``(k, D)``, see the module docstring."""
    n = eps.shape[0]
    if values.shape[0] != n:
        raise ValueError(f"es_gradient: {values.shape[0]} values for {n} perturbations")
    squeeze = values.ndim == 1
    v = values[:, None] if squeeze else values
    r = centered_ranks(v) if rank_normalise else v.astype(jnp.float32)
    h = n // 2
    g = (r[:h] - r[h:]).T @ eps[:h] / (h * sigma)
    return g[0] if squeeze else g


def unit(g: jax.Array, eps: float = 1e-8) -> jax.Array:
    """``g / (||g|| + eps)`` along the last axis (dqd-rl's gradient normalisation)."""
    return g / (jnp.linalg.norm(g, axis=-1, keepdims=True) + eps)
