"""A pytree->pytree linear operator viewed as a flat vector->vector operator (what Lanczos, Hutchinson and SLQ
iterate on: ``[n]`` vectors in ``ravel_pytree(like)`` order)."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

PyTree = Any


class FlatOperator(NamedTuple):
    """``matvec`` on flat ``[n]`` vectors of the working ``dtype``; ``unravel`` maps one back to the pytree."""

    n: int
    dtype: Any  # working dtype: float64 if the parameters are float64, else float32
    like_dtype: Any  # dtype ravel_pytree(like) produces (what unravel expects)
    unravel: Callable[[jax.Array], PyTree]
    matvec: Callable[[jax.Array], jax.Array]


def working_dtype(dtype) -> Any:
    """float64 for float64 parameters, else float32; TypeError for non-floating dtypes."""
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"expected floating-point parameters (float32 or float64), got dtype {dtype}")
    return jnp.float64 if dtype == jnp.float64 else jnp.float32


def flatten_operator(matvec: Callable[[PyTree], PyTree], like: PyTree) -> FlatOperator:
    """Wrap ``matvec`` (pytree shaped like ``like`` -> same) as a map on flat ``[n]`` vectors."""
    flat, unravel = ravel_pytree(like)
    if flat.ndim != 1 or flat.shape[0] == 0:
        raise ValueError("`like` must be a non-empty pytree of arrays (the parameters the operator acts on)")
    like_dtype = flat.dtype
    dtype = working_dtype(like_dtype)

    def matvec_flat(x: jax.Array) -> jax.Array:
        out = matvec(unravel(x.astype(like_dtype)))
        out_flat, _ = ravel_pytree(out)
        if out_flat.shape != flat.shape:
            raise ValueError(
                f"matvec must return a pytree shaped like `like` ({flat.shape[0]} entries), got {out_flat.shape[0]}"
            )
        return out_flat.astype(dtype)

    return FlatOperator(flat.shape[0], dtype, like_dtype, unravel, matvec_flat)
