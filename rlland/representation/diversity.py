"""Policy variance and value diversity across the states of a batch.

Source: Moalla et al. 2024 (reference ``representation-regions-qd.md`` A.3, ``metrics.py compute_policy_diversity``
and ``compute_value_diversity``). Both measure how much the network's outputs differ across states: a collapsed
representation gives near-identical policies / values on every state.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.jit
def policy_variance(dist_params) -> jax.Array:
    """Policy variance: the mean over distribution parameters of their UNBIASED variance across states.

    ``dist_params`` holds the per-state distribution parameters with a leading state axis N:

    * discrete (categorical): the probabilities, shape [N, A];
    * Gaussian / tanh-Gaussian: ``(loc, scale)`` as a tuple of two [N, A] arrays, or the stacked array [N, 2, A]
      (the reference stacks ``[loc, scale]``; ``scale`` is the std, not its log). Both give the same number.

    Any array or pytree of arrays with a common leading axis N works: each leaf is flattened to [N, -1], the
    leaves are concatenated, ``var`` (ddof=1, ``torch.var`` default) is taken over N and averaged over the
    parameters. Returns a float32 scalar (``action_diversity/policy_variance``).
    """
    leaves = jax.tree_util.tree_leaves(dist_params)
    if not leaves:
        raise ValueError("policy_variance: dist_params is empty")
    leaves = [jnp.asarray(x) for x in leaves]
    n = leaves[0].shape[0] if leaves[0].ndim else None
    for x in leaves:
        if x.ndim < 1 or x.shape[0] != n:
            raise ValueError(
                "policy_variance: every leaf of dist_params needs the same leading state axis N, got shapes "
                f"{[tuple(x.shape) for x in leaves]}"
            )
    if n < 2:
        raise ValueError(f"policy_variance needs N >= 2 states for an unbiased variance, got N = {n}")
    P = jnp.concatenate([x.reshape(n, -1).astype(jnp.float32) for x in leaves], axis=1)
    return jnp.mean(jnp.var(P, axis=0, ddof=1))


@jax.jit
def value_diversity(values) -> dict[str, jax.Array]:
    """Value diversity over a batch of state values, shape [N] or [N, 1]:

    ``{"avg": mean_n V(s_n), "std": std_n V(s_n)}`` with the UNBIASED std (``torch.std`` default); original keys
    ``state_value_diversity/avg_state_value`` and ``std_state_value``. NaN std when N = 1.
    """
    v = jnp.asarray(values)
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim != 1:
        raise ValueError(f"value_diversity expects values of shape [N] or [N, 1], got {v.shape}")
    v = v.astype(jnp.float32)
    std = jnp.std(v, ddof=1) if v.shape[0] > 1 else jnp.array(jnp.nan, jnp.float32)
    return {"avg": jnp.mean(v), "std": std}
