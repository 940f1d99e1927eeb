"""KL divergence between the policy before and after an update: analytic and sample estimators.

Direction, everywhere in this module: **KL(old || new) = E_{a ~ pi_old}[log pi_old(a|s) - log pi_new(a|s)]**, with
the actions sampled from the OLD policy (the rollout policy), as in PPO diagnostics. Source: Moalla et al. 2024
(reference ``representation-regions-qd.md`` A.3: ``kl_batch/kl_dist``, ``kl_sample_naive``,
``kl_sample_schulman``) and J. Schulman, "Approximating KL divergence" (2020, http://joschu.net/blog/kl-approx.html).

With ``r = pi_new(a|s) / pi_old(a|s)`` and ``a ~ pi_old``:

* k1 = mean(-log r): unbiased, high variance, can be negative on a finite sample;
* k3 = mean((r - 1) - log r): unbiased (since E_old[r] = 1), always >= 0 per sample, lower variance when the
  policies are close.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _log_ratio(logp_old, logp_new) -> jax.Array:
    logp_old = jnp.asarray(logp_old)
    logp_new = jnp.asarray(logp_new)
    if logp_old.shape != logp_new.shape:
        raise ValueError(f"logp_old and logp_new must have the same shape, got {logp_old.shape} and {logp_new.shape}")
    return logp_new - logp_old


@jax.jit
def kl_k1(logp_old, logp_new) -> jax.Array:
    """k1 estimate of KL(old || new): ``mean(logp_old - logp_new)`` = mean(-log r) over all samples.

    ``logp_old``/``logp_new``: log-probabilities of the SAME actions, sampled from the old policy, under the old and
    the new policy (any shape, e.g. [N]; the mean is over every element). Original key ``kl_sample_naive``.
    """
    return jnp.mean(-_log_ratio(logp_old, logp_new))


@jax.jit
def kl_k3(logp_old, logp_new) -> jax.Array:
    """k3 (Schulman) estimate of KL(old || new): ``mean((r - 1) - log r)``, ``r = exp(logp_new - logp_old)``.

    Same inputs as :func:`kl_k1`. Computed with ``expm1`` for accuracy when r is close to 1. Original key
    ``kl_sample_schulman``.
    """
    log_r = _log_ratio(logp_old, logp_new)
    return jnp.mean(jnp.expm1(log_r) - log_r)


@jax.jit
def kl_gaussian(mean_p, log_std_p, mean_q, log_std_q) -> jax.Array:
    """Analytic KL(p || q) between diagonal Gaussians, summed over the last (action) axis.

    ``KL = sum_a [ log(sigma_q / sigma_p) + (sigma_p^2 + (mu_p - mu_q)^2) / (2 sigma_q^2) - 1/2 ]``.

    For PPO diagnostics pass p = old policy, q = new policy (the reference's ``kl_dist``), per state; the batch
    value is the mean over states, ``kl_gaussian(...).mean()``. Inputs broadcast; the result has the broadcast
    shape without its last axis. Also exact for tanh-squashed Gaussians that share the squashing: KL is invariant
    under the same invertible map applied to both distributions.
    """
    mean_p, log_std_p, mean_q, log_std_q = (jnp.asarray(x) for x in (mean_p, log_std_p, mean_q, log_std_q))
    if min(x.ndim for x in (mean_p, log_std_p, mean_q, log_std_q)) < 1:
        raise ValueError("kl_gaussian expects arrays with a last (action) axis, e.g. shape [A] or [N, A]")
    var_ratio = jnp.exp(2.0 * (log_std_p - log_std_q))
    mahal = jnp.square((mean_p - mean_q) * jnp.exp(-log_std_q))
    per_dim = 0.5 * (var_ratio + mahal - 1.0) + (log_std_q - log_std_p)
    return jnp.sum(per_dim, axis=-1)


@jax.jit
def kl_categorical(logits_p, logits_q) -> jax.Array:
    """Analytic KL(p || q) between categoricals given by logits, summed over the last (action) axis:
    ``KL = sum_a p_a (log p_a - log q_a)`` with ``log p = log_softmax(logits_p)``. For PPO diagnostics p = old
    policy, q = new policy, per state (the reference's ``kl_dist`` for its Atari agents); the batch value is the
    mean over states. Inputs broadcast; the result drops the last axis."""
    logits_p, logits_q = jnp.asarray(logits_p), jnp.asarray(logits_q)
    if min(logits_p.ndim, logits_q.ndim) < 1:
        raise ValueError("kl_categorical expects arrays with a last (action) axis, e.g. shape [A] or [N, A]")
    log_p, log_q = jax.nn.log_softmax(logits_p, axis=-1), jax.nn.log_softmax(logits_q, axis=-1)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
