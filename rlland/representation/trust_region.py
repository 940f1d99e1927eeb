"""Trust-region diagnostics: statistics of the probability ratio after a PPO update.

Source: Moalla et al. 2024 (reference ``representation-regions-qd.md`` A.3, ``metrics.py compute_models_diff``,
logged under ``batch/diff/``). ``r = pi_new(a|s) / pi_old(a|s)`` on the full rollout batch, after all epochs of the
update; the paper plots ``avg_prob_ratio_below_epsilon``, the mean ratio among the samples that fell below the
clip range ``r < 1 - eps``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _masked_stats(r: jax.Array, mask: jax.Array, empty_value) -> dict[str, jax.Array]:
    count = jnp.sum(mask)
    nonempty = count > 0
    n_safe = jnp.maximum(count, 1).astype(r.dtype)
    mean = jnp.sum(jnp.where(mask, r, 0.0)) / n_safe
    sq_dev = jnp.where(mask, jnp.square(r - mean), 0.0)
    # Unbiased std (torch.std default, as in the reference); needs >= 2 samples.
    std = jnp.sqrt(jnp.sum(sq_dev) / jnp.maximum(count - 1, 1).astype(r.dtype))
    empty = jnp.asarray(empty_value, r.dtype)
    return {
        "mean": jnp.where(nonempty, mean, empty),
        "max": jnp.where(nonempty, jnp.max(jnp.where(mask, r, -jnp.inf)), empty),
        "min": jnp.where(nonempty, jnp.min(jnp.where(mask, r, jnp.inf)), empty),
        "std": jnp.where(count > 1, std, empty),
        "count": count.astype(jnp.int32),
    }


@jax.jit
def ratio_stats(ratio, clip_eps, *, empty_value=jnp.nan) -> dict[str, jax.Array]:
    """Statistics of probability ratios ``ratio`` (any shape; all elements are samples) for clip range ``eps``.

    Returns scalars in the float dtype of ``ratio`` (float32 for integer input; counts int32):

    * over all samples: ``mean``, ``std``, ``max``, ``min`` (original ``avg/std/max/min_prob_ratio``);
    * over the samples with ``r < 1 - eps`` (strict): ``mean_below``, ``std_below``, ``max_below``, ``min_below``,
      ``count_below``, ``fraction_below`` = count / total (original ``*_prob_ratio_below_epsilon``);
    * over the samples with ``r > 1 + eps`` (strict): the same six with ``_above``;
    * ``fraction_outside`` = fraction_below + fraction_above.

    ``std*`` is the unbiased std (ddof=1, ``torch.std`` default, as in the reference).

    Empty sets: when no sample is below (above) the clip range, ``mean/std/max/min_below`` (``_above``) are
    ``empty_value`` (default NaN), ``count`` and ``fraction`` are 0. NaN here means "not defined this step": the
    original code does not log these keys at all in that case, so ``nanmean`` over steps/seeds reproduces its
    averages, whereas a finite filler (e.g. 1 - eps) would bias them. The computation is masked, never 0/0, so no
    NaN reaches any other entry or any gradient. Pass e.g. ``empty_value=0.0`` for a finite filler. ``std`` also
    takes ``empty_value`` when fewer than 2 samples are in the set (torch gives NaN there).

    ``clip_eps`` and ``empty_value`` are traced (a sweep over eps is a vmap).
    """
    r = jnp.ravel(jnp.asarray(ratio))
    if r.size == 0:
        raise ValueError("ratio_stats: ratio is empty")
    if not jnp.issubdtype(r.dtype, jnp.floating):
        r = r.astype(jnp.float32)
    total = r.shape[0]
    everything = _masked_stats(r, jnp.ones_like(r, dtype=bool), empty_value)
    below = _masked_stats(r, r < 1.0 - clip_eps, empty_value)
    above = _masked_stats(r, r > 1.0 + clip_eps, empty_value)
    out = {k: everything[k] for k in ("mean", "std", "max", "min")}
    for name, stats in (("below", below), ("above", above)):
        for k in ("mean", "std", "max", "min", "count"):
            out[f"{k}_{name}"] = stats[k]
        out[f"fraction_{name}"] = (stats["count"] / total).astype(r.dtype)
    out["fraction_outside"] = out["fraction_below"] + out["fraction_above"]
    return out
