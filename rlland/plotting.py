"""Matplotlib figures shared by experiments and reports (Agg backend: no display needed)."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def mean_and_interval(values: np.ndarray, axis: int = 0, z: float = 1.96):
    """Mean over ``axis`` and the half-width of a normal-approximation 95% interval of that mean."""
    values = np.asarray(values, dtype=float)
    n = values.shape[axis]
    mean = np.nanmean(values, axis=axis)
    sem = np.nanstd(values, axis=axis, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(mean)
    return mean, z * sem


def seed_curves(ax, steps, values, label: str | None = None, color=None):
    """Per-seed thin lines, the mean over seeds and its 95% interval. ``values`` is [seed, point]."""
    values = np.atleast_2d(values)
    line = ax.plot(steps, values.mean(0), lw=2, label=label, color=color)[0]
    for v in values:
        ax.plot(steps, v, lw=0.6, alpha=0.35, color=line.get_color())
    mean, half = mean_and_interval(values)
    ax.fill_between(steps, mean - half, mean + half, alpha=0.2, color=line.get_color())
    return ax


def learning_curves(steps, returns, title: str = "", ylabel: str = "episode return"):
    """Figure of evaluation returns [seed, eval] against env steps."""
    fig, ax = plt.subplots(figsize=(6, 4))
    seed_curves(ax, steps, returns, label=f"mean of {np.atleast_2d(returns).shape[0]} seeds (95% CI)")
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save(fig, path: str) -> str:
    """Write ``fig`` as PNG atomically (temp file + rename) and close it."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
    return path
