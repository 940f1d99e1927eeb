"""Feature norms of a feature matrix.

Source: Moalla et al. 2024 (reference ``representation-regions-qd.md`` A.3, ``metrics.py compute_feature_norms``).
Applied in the study to post-activation features, pre-activations and the concatenation of all pre-activations;
the paper's "norm of the pre-activation" is ``norm`` of ``features_preactivation_policy``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.jit
def feature_norms(F) -> dict[str, jax.Array]:
    """Norm statistics of ``F`` [N, D] (N samples, D dims), float32 scalars:

    * ``norm`` = mean_n ||F_n||_2  (mean L2 norm of the rows; original key ``feature_stats/norm_*``);
    * ``avg``  = mean_n mean_d F_nd (``feature_stats/avg_*``);
    * ``std``  = mean_n std_d(F_n), the UNBIASED std across dims of each row, averaged over rows
      (``feature_stats/std_*``, ``torch.std`` default). NaN when D = 1.
    """
    F = jnp.asarray(F)
    if F.ndim != 2:
        raise ValueError(f"feature_norms expects features of shape [N, D] (use jax.vmap for batches), got {F.shape}")
    F = F.astype(jnp.float32)
    d = F.shape[1]
    row_std = jnp.std(F, axis=1, ddof=1) if d > 1 else jnp.full((F.shape[0],), jnp.nan, jnp.float32)
    return {
        "norm": jnp.mean(jnp.linalg.norm(F, axis=1)),
        "avg": jnp.mean(F),
        "std": jnp.mean(row_std),
    }
