"""Quality-diversity metrics of an archive: QD score (two conventions), coverage, best / mean / worst fitness.

Two QD-score conventions exist and give different numbers for the same archive; `metrics` makes the
caller pick one by the name of the argument:

* ``f_min=`` — the study's (dqd-rl, Tjanaka et al. 2022, ``manager.py`` "Actual QD Score", reference C.4):
  ``qd_score = sum_{elites} (f - f_min)`` with ``f_min`` a fixed per-task lower bound (the lowest objective
  ever inserted across the paper's runs, `DQD_RL_F_MIN`). Normalised QD score
  ``= qd_score / (num_cells * (max_objective - f_min))``.
* ``offset=`` — QDax's (``qdax/utils/metrics.py`` ``default_qd_metrics``, reference D):
  ``qd_score = sum_{elites} (f + offset)``, i.e. the offset is ADDED; the QDax examples use
  ``offset = reward_offset[env] * episode_length`` (`QDAX_REWARD_OFFSET` holds the per-step values).

So ``f_min = -offset`` gives the same number. Coverage is a FRACTION in [0, 1] (as dqd-rl); QDax reports a
percentage (100 x ours).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rlland.qd.archive import Archive

# dqd-rl ANALYSIS_INFO (reference C.4): PyBullet QDGym, 1000-step episodes. The Brax tasks of `tasks.py`
# have other reward scales, so these are only right for the original environments; for Brax, pick a bound
# below every fitness you can meet (e.g. the QDax offset times the episode length, negated).
DQD_RL_F_MIN = {
    "ant": -374.702526595403,
    "halfcheetah": -2797.5195251991777,
    "hopper": -362.0897231940748,
    "walker2d": -67.16652198025106,
}
DQD_RL_MAX_OBJECTIVE = {"ant": 2500.0, "halfcheetah": 3000.0, "hopper": 2500.0, "walker2d": 2500.0}
# QDax brax task registry `reward_offset` (per step; multiply by the episode length), reference D.
QDAX_REWARD_OFFSET = {"ant": 3.24, "halfcheetah": 9.231, "hopper": 0.9, "walker2d": 1.413}


def archive_summary(archive: Archive) -> dict[str, jax.Array]:
    """Convention-free statistics: num_elites, coverage (fraction), max / mean / min fitness, fitness_sum.

    Empty archive: coverage 0, max and min fitness ``-inf``, mean NaN, fitness_sum 0. ``fitness_sum`` is
    ``sum_{elites} f``, from which either QD score follows (``fitness_sum - n f_min`` or
    ``fitness_sum + n offset``).
    """
    filled = archive.filled
    n = jnp.sum(filled, axis=-1)
    fit = archive.fitnesses
    total = jnp.sum(jnp.where(filled, fit, 0.0), axis=-1)
    return {
        "num_elites": n.astype(jnp.int32),
        "coverage": n.astype(jnp.float32) / archive.num_cells,
        "max_fitness": jnp.max(fit, axis=-1),
        "min_fitness": jnp.min(jnp.where(filled, fit, jnp.inf), axis=-1) * jnp.where(n > 0, 1.0, -1.0),
        "mean_fitness": total / n,
        "fitness_sum": total,
    }


def metrics(archive: Archive, *, f_min=None, offset=None, max_objective=None) -> dict[str, jax.Array]:
    """QD metrics of one archive (or of a seed batch of archives: reductions run over the last axis).

    Pass EXACTLY ONE of:
      f_min: the study's convention, ``qd_score = sum_{elites} (f - f_min)`` (dqd-rl manager.py;
        reference C.4). Values: `DQD_RL_F_MIN` (for the PyBullet tasks).
      offset: QDax's convention, ``qd_score = sum_{elites} (f + offset)`` (QDax default_qd_metrics;
        reference D). Values: ``QDAX_REWARD_OFFSET[env] * episode_length``.
    max_objective: optional; adds ``normalized_qd_score = qd_score / (num_cells * (max_objective - base))``
      with ``base = f_min`` or ``-offset`` (dqd-rl normalisation; `DQD_RL_MAX_OBJECTIVE`).

    Returns a dict with qd_score, coverage (fraction of cells filled, in [0, 1]; QDax uses a percentage),
    max_fitness, mean_fitness, min_fitness, num_elites, fitness_sum (and normalized_qd_score). All values
    are traced arrays, so the function runs inside jit / vmap / scan.
    """
    if (f_min is None) == (offset is None):
        raise ValueError(
            "metrics() needs exactly one QD-score convention: f_min=... (study / dqd-rl: sum of f - f_min) "
            "or offset=... (QDax: sum of f + offset)"
        )
    base = jnp.asarray(f_min if f_min is not None else -jnp.asarray(offset), jnp.float32)
    out = archive_summary(archive)
    base_b = base[..., None] if base.ndim else base
    out["qd_score"] = jnp.sum(jnp.where(archive.filled, archive.fitnesses - base_b, 0.0), axis=-1)
    if max_objective is not None:
        out["normalized_qd_score"] = out["qd_score"] / (archive.num_cells * (jnp.asarray(max_objective) - base))
    return out
