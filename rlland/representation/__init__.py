"""Representation and trust-region metrics (Moalla et al. 2024, "No Representation, No Trust").

Pure array functions for ONE feature matrix / batch; batches of seeds, snapshots or feature keys come from
``jax.vmap``. Reference: ``representation-regions-qd.md`` part A (A.2 ranks, A.3 other metrics).

* ``ranks``: :func:`effective_rank`, :func:`approximate_rank`, :func:`srank`, :func:`feature_rank`,
  :func:`matrix_rank`, :func:`singular_values`, :func:`all_ranks` (one SVD for all of them).
* ``units``: :func:`dead_units`.
* ``norms``: :func:`feature_norms`.
* ``diversity``: :func:`policy_variance`, :func:`value_diversity`.
* ``kl``: :func:`kl_k1`, :func:`kl_k3`, :func:`kl_gaussian`, :func:`kl_categorical` (KL(old || new), samples from old).
* ``trust_region``: :func:`ratio_stats`.
* ``pfo``: :func:`pfo_features`, :func:`pfo_loss`, :func:`feature_drift`, :func:`feature_cosine` (PFO regulariser,
  reference A.6; the feature change over an update, A.3).
* ``plasticity``: :func:`plasticity` (the probe, reference A.5), :func:`fit_to_targets`,
  :func:`collect_observations`.
* ``diagnostics``: :func:`feature_summary`, :func:`subsample`, :func:`every` (what the agents log during
  training every ``log_every`` iterations).
* ``updates``: :func:`end_minus_start` (the study's end - start differences, from the update-resolution arrays
  ``rlland.train`` writes).

A whole run (not imported here: it loads runs, which import the agents, which import this package):
``rlland.representation.analysis.analyse_run`` (the probe over a run's snapshots, ``representation.h5``;
``experiments/representation.py``) and ``rlland.representation.figures``.
"""
from rlland.representation.diagnostics import every, feature_summary, subsample
from rlland.representation.diversity import policy_variance, value_diversity
from rlland.representation.kl import kl_categorical, kl_gaussian, kl_k1, kl_k3
from rlland.representation.norms import feature_norms
from rlland.representation.pfo import feature_cosine, feature_drift, pfo_features, pfo_loss
from rlland.representation.plasticity import collect_observations, fit_to_targets, plasticity
from rlland.representation.ranks import (
    all_ranks,
    approximate_rank,
    effective_rank,
    feature_rank,
    matrix_rank,
    ranks_from_singular_values,
    singular_values,
    srank,
)
from rlland.representation.trust_region import ratio_stats
from rlland.representation.updates import end_minus_start
from rlland.representation.units import dead_units

__all__ = [
    "effective_rank",
    "approximate_rank",
    "srank",
    "feature_rank",
    "matrix_rank",
    "singular_values",
    "all_ranks",
    "ranks_from_singular_values",
    "dead_units",
    "feature_norms",
    "policy_variance",
    "value_diversity",
    "kl_k1",
    "kl_k3",
    "kl_categorical",
    "kl_gaussian",
    "ratio_stats",
    "pfo_features",
    "pfo_loss",
    "feature_drift",
    "feature_cosine",
    "plasticity",
    "fit_to_targets",
    "collect_observations",
    "feature_summary",
    "subsample",
    "every",
    "end_minus_start",
]
