"""Branches that stay branches under a vmap over seeds.

Under ``jax.vmap`` a ``lax.cond`` whose predicate is batched becomes a ``select``: BOTH branches run on every
call. For gates that are the same for every seed most of the time (TD3's policy delay, the warm-up, logging
every k iterations) that wastes the expensive branch. If the caller names its seed axis
(``jax.vmap(f, axis_name=SEED_AXIS)``, as `rlland.train` does), `seed_cond` first OR-reduces the predicate over
that axis (``lax.pmax``), which makes it unbatched, so the cond stays a real branch; inside it, each seed
still takes its own branch's result (a select on its own predicate). Results are identical to ``lax.cond``.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

SEED_AXIS = "seed"
ENV_AXIS = "env"  # the agents' vmap over the envs of one seed: an env's autoreset is a branch over both axes


def any_over_seeds(pred: jax.Array, axis_name: str | tuple[str, ...] | None = SEED_AXIS) -> jax.Array:
    """``pred`` OR-reduced over the named vmap axis (or each of several) that is bound, else ``pred`` itself;
    reduced over every batched axis around it, the result is unbatched."""
    names = () if axis_name is None else (axis_name,) if isinstance(axis_name, str) else tuple(axis_name)
    out = pred
    for name in names:
        try:
            out = jax.lax.pmax(out.astype(jnp.int32), name) > 0
        except NameError:  # no vmap / shard_map with this axis name around us
            pass
    return out


def seed_cond(pred: jax.Array, true_fn: Callable, false_fn: Callable, *operands,
              axis_name: str | tuple[str, ...] | None = SEED_AXIS):
    """``lax.cond(pred, true_fn, false_fn, *operands)``, evaluating ``true_fn`` only when some seed needs it
    (see the module docstring). ``false_fn`` should be the cheap branch: it runs on every call."""
    any_pred = any_over_seeds(pred, axis_name)
    if any_pred is pred:
        return jax.lax.cond(pred, true_fn, false_fn, *operands)

    def some(*ops):
        return jax.tree.map(lambda t, f: jnp.where(pred, t, f), true_fn(*ops), false_fn(*ops))

    return jax.lax.cond(any_pred, some, false_fn, *operands)
