"""PFO, Proximal Feature Optimisation (Moalla et al. 2024): a trust region on the features.

Reference ``representation-regions-qd.md`` A.6 (``losses.py PPOLoss``, loss type ``l2``, the default):

    phi      = the actor's penultimate PRE-activation (``features_preactivation_policy``), or with the all-layers
               variant every hidden pre-activation, flattened and concatenated on the last axis
               (``all_preactivations_policy``; post-activation all-layers does not exist in the original)
    phi_old  = phi under the parameters that collected the batch, stored in the rollout
    l(s)     = mean_d (phi_theta(s)_d - phi_old(s)_d)^2            a MEAN over dims, not a sum
    L_PFO    = coef * mean_batch l(s)                               ADDED to the PPO loss

Coefficients of the study: 1 (MuJoCo tanh, Atari last layer), 10 (MuJoCo ReLU, Atari all layers); default 0. The
critic has the same option with its own coefficient (0 in every sweep of the study). The ``cosine`` loss type and
the ``clip`` mode of the original (not used in the paper) are not implemented.

The same quantity between the features at the start and at the end of an update is the feature drift the study
logs as ``*_l2_batch`` (``compute_models_diff``): :func:`feature_drift`; beside it the study logs ``*_cosine``,
the mean cosine similarity of the start and end features: :func:`feature_cosine` (reference A.3).
"""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp


def pfo_features(features: Mapping, all_layers: bool = False) -> jax.Array:
    """phi from a network's features dict (``rlland.networks``, ``with_features=True``): ``features["pre"]``
    [..., width], or with ``all_layers`` every entry of ``features["hidden_pre"]`` concatenated on the last axis
    [..., sum of widths]."""
    if all_layers:
        return jnp.concatenate(list(features["hidden_pre"]), axis=-1)
    return features["pre"]


def pfo_loss(phi: jax.Array, phi_old: jax.Array) -> jax.Array:
    """``mean_batch mean_d (phi - phi_old)^2`` (without the coefficient). ``phi``/``phi_old``: [N, D] (any leading
    shape; the mean is over every element, which for [N, D] is the mean over samples of the per-sample mean over
    dims). ``phi_old`` is data (the rollout's features): no gradient flows into it."""
    phi, phi_old = jnp.asarray(phi), jnp.asarray(phi_old)
    if phi.shape != phi_old.shape:
        raise ValueError(f"pfo_loss: phi and phi_old must have the same shape, got {phi.shape} and {phi_old.shape}")
    return jnp.mean(jnp.square(phi - jax.lax.stop_gradient(phi_old)))


def feature_drift(phi_start: jax.Array, phi_end: jax.Array) -> jax.Array:
    """Mean squared change of the features over an update, ``mean_n mean_d (phi_end - phi_start)^2`` (the study's
    ``*_l2_batch`` = MSE(start, end), reference A.3)."""
    return pfo_loss(phi_end, phi_start)


COSINE_EPS = 1e-8  # torch.nn.functional.cosine_similarity's default eps


def feature_cosine(phi_start: jax.Array, phi_end: jax.Array) -> jax.Array:
    """Mean cosine similarity of the features at the start and at the end of an update (the study's ``*_cosine``,
    reference A.3, ``torch.nn.functional.cosine_similarity`` on the rows, then the mean):

        mean_n  <phi_start_n, phi_end_n> / (max(||phi_start_n||, eps) max(||phi_end_n||, eps))     eps = 1e-8

    ``phi_start``/``phi_end``: [N, D]. 1 when the features did not change (a row that is zero at both ends, e.g.
    a dead ReLU row, counts 0, as torch's). Float32."""
    a, b = jnp.asarray(phi_start, jnp.float32), jnp.asarray(phi_end, jnp.float32)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"feature_cosine: phi_start and phi_end must be [N, D] of the same shape, got {a.shape} "
                         f"and {b.shape}")
    norm = lambda x: jnp.maximum(jnp.linalg.norm(x, axis=-1), COSINE_EPS)
    return jnp.mean(jnp.sum(a * b, axis=-1) / (norm(a) * norm(b)))
