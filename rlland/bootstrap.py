"""Percentile-bootstrap intervals over seeds: of a mean, and of the ratio of two independent groups' means.

For values x_1..x_n (one per seed) and B resamples (each draws n values with replacement):

    mean interval:   [q_{(1-level)/2}, q_{(1+level)/2}] of { mean(x*_b) }_b
    ratio interval:  the same quantiles of { mean(a*_b) / mean(b*_b) }_b, a and b resampled independently

(Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13, the percentile interval). The two groups
of the ratio are independent runs (e.g. two libraries' seeds), so they are resampled separately, not in pairs.
A ratio is only a ratio of magnitudes when every resampled denominator is positive: when some resample's
denominator mean is <= 0 (e.g. returns around zero), the ratio interval is undefined and returned as NaN.
NaN values (diverged seeds) are left out before resampling. The point estimates are the plain means and ratio
of means; the generator is NumPy's ``default_rng(seed)``, so an interval is reproducible.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class Interval(NamedTuple):
    estimate: float
    low: float
    high: float


def _finite(values, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError(f"{name}: no finite values to bootstrap")
    return v


def _check(level: float, num_resamples: int) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be >= 1, got {num_resamples}")


def resampled_means(values: np.ndarray, num_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``num_resamples`` means of ``values`` resampled with replacement (same size), shape [num_resamples]."""
    idx = rng.integers(0, values.size, size=(num_resamples, values.size))
    return values[idx].mean(axis=1)


def mean_interval(values, level: float = 0.95, num_resamples: int = 10_000, seed: int = 0) -> Interval:
    """The mean of the finite ``values`` and its percentile-bootstrap ``level`` interval."""
    _check(level, num_resamples)
    v = _finite(values, "mean_interval")
    means = resampled_means(v, num_resamples, np.random.default_rng(seed))
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(v.mean()), float(lo), float(hi))


def ratio_interval(numerator, denominator, level: float = 0.95, num_resamples: int = 10_000,
                   seed: int = 0) -> Interval:
    """mean(numerator) / mean(denominator) and its percentile-bootstrap ``level`` interval (groups resampled
    independently); NaN bounds when a resampled denominator mean is <= 0, a NaN estimate when the denominator's
    own mean is."""
    _check(level, num_resamples)
    a, b = _finite(numerator, "ratio_interval numerator"), _finite(denominator, "ratio_interval denominator")
    estimate = float(a.mean() / b.mean()) if b.mean() > 0 else math.nan
    rng = np.random.default_rng(seed)
    num, den = resampled_means(a, num_resamples, rng), resampled_means(b, num_resamples, rng)
    if not np.all(den > 0):
        return Interval(estimate, math.nan, math.nan)
    lo, hi = np.quantile(num / den, [(1 - level) / 2, (1 + level) / 2])
    return Interval(estimate, float(lo), float(hi))
