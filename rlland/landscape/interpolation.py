"""Linear interpolation between two policies, and the PURD along the path.

Reference: ``landscapes-and-subspaces.md`` A.6 (``eval_policy/experiments/policy_interpolation*.py``).

    theta(a) = (1 - a) * theta_A + a * theta_B,     a in linspace(0, 1, num_points)     (leafwise)

so point 0 is A and the last point is B, EXACTLY (the two products are exact at a = 0 and a = 1). The original
wrote ``a * theta_1 + (1 - a) * theta_2`` with column 0 = policy 2; we order from A to B.

What is interpolated (``parts``): by default the actor and the observation statistics (``"actor"``,
``"obs_norm"``; those present), because the policy is the pair of both: with observation normalisation on, an
actor-only path would not end at policy B. Every other entry (critics, targets, temperature) is taken from A:
it is not part of the policy. ``parts=None`` interpolates the whole params pytree.

The PURD at each point (:func:`interpolation_purd`) uses an ``update_fn``; the study used Gaussian parameter noise
(:func:`rlland.landscape.param_noise` with scale 3e-4), since an interpolated policy has no critic, buffer or
optimiser state of its own.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from rlland.validation import positive_int
from rlland.landscape.purd import ReturnFn, UpdateFn, post_update_returns

DEFAULT_PARTS = ("actor", "obs_norm")


def _lerp(a, b, alpha):
    if jax.tree.structure(a) != jax.tree.structure(b):
        raise ValueError("params_a and params_b must have the same structure, got "
                         f"{jax.tree.structure(a)} and {jax.tree.structure(b)}")

    def leaf(x, y):
        if jnp.shape(x) != jnp.shape(y):
            raise ValueError(f"params_a and params_b leaves differ in shape: {jnp.shape(x)} vs {jnp.shape(y)}")
        w = jnp.asarray(alpha, jnp.result_type(x))
        return (1 - w) * x + w * y

    return jax.tree.map(leaf, a, b)


def interpolate(params_a, params_b, alphas, parts: Sequence[str] | None = DEFAULT_PARTS):
    """``(1 - a) * A + a * B`` on ``parts`` of the params dict (module docstring), other entries from A.

    ``alphas`` a scalar (may be traced: vmap over it) gives one params dict; a 1-D array of P values gives params
    with a leading axis of size P. ``parts=None`` interpolates every leaf. Endpoints are exact: ``a = 0`` returns
    A's values and ``a = 1`` B's.
    """
    alphas = jnp.asarray(alphas)
    if alphas.ndim == 1:
        return jax.vmap(lambda a: interpolate(params_a, params_b, a, parts))(alphas)
    if alphas.ndim != 0:
        raise ValueError(f"alphas must be a scalar or a 1-D array, got shape {alphas.shape}")
    if parts is None:
        return _lerp(params_a, params_b, alphas)
    if isinstance(parts, str):
        parts = (parts,)
    if not isinstance(params_a, Mapping) or not isinstance(params_b, Mapping):
        raise TypeError("with parts set, params_a and params_b must be params dicts (use parts=None for any "
                        "pytree)")
    present = [p for p in parts if p in params_a]
    if not present:
        raise ValueError(f"none of parts {tuple(parts)} is in the params (keys {sorted(params_a)})")
    missing = [p for p in present if p not in params_b]
    if missing:
        raise ValueError(f"params_b lacks {missing}")
    return dict(params_a) | {p: _lerp(params_a[p], params_b[p], alphas) for p in present}


def interpolation_alphas(num_points: int) -> jax.Array:
    """``linspace(0, 1, num_points)`` (endpoint included, as the original)."""
    num_points = positive_int("num_points", num_points)
    return jnp.linspace(0.0, 1.0, num_points) if num_points > 1 else jnp.zeros((1,))


def interpolation_purd(update_fn: UpdateFn, return_fn: ReturnFn, params_a, params_b, key: jax.Array,
                       num_points: int, num_samples: int, chunk_size: int | None = None, *,
                       parts: Sequence[str] | None = DEFAULT_PARTS, common_random_numbers: bool = True,
                       points_chunk_size: int | None = None) -> dict[str, jax.Array]:
    """The PURD at each of ``num_points`` points of the path from A to B.

    Returns ``dict(undiscounted=[num_points, num_samples], discounted=[num_points, num_samples],
    alphas=[num_points])``; row p is :func:`post_update_returns` at ``interpolate(A, B, alphas[p])``.

    ``common_random_numbers=True`` (default, as the original) gives every point the SAME sample keys, so sample
    i sees the same noise draw at every point and differences along the path are not blurred by sampling noise;
    False gives each point its own keys. Points run sequentially (``lax.map``) unless ``points_chunk_size`` vmaps
    that many at a time; samples within a point are chunked by ``chunk_size``. With one deterministic rollout and
    no update (e.g. ``param_noise(0.0)``) this is the original's ``num_purd_samples=None`` curve.
    """
    alphas = interpolation_alphas(num_points)
    num_points = alphas.shape[0]
    if points_chunk_size is not None:
        points_chunk_size = positive_int("points_chunk_size", points_chunk_size)
    keys = (jnp.broadcast_to(key, (num_points,) + key.shape) if common_random_numbers
            else jax.random.split(key, num_points))

    def at(xs):
        a, k = xs
        return post_update_returns(update_fn, return_fn, interpolate(params_a, params_b, a, parts), k, num_samples,
                                   chunk_size)

    out = jax.lax.map(at, (alphas, keys), batch_size=points_chunk_size)
    return out | {"alphas": alphas}
