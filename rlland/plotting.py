"""Matplotlib figures shared by experiments and reports.

Importing this module leaves the user's matplotlib backend alone (a notebook keeps its inline backend); the
experiment scripts choose Agg (`rlland.cli`), and matplotlib picks a non-interactive backend by itself on a
machine without a display.
"""
from __future__ import annotations

import contextlib
import os

import matplotlib.pyplot as plt
import numpy as np


def mean_and_interval(values: np.ndarray, axis: int = 0, z: float = 1.96):
    """Mean over ``axis`` and the half-width of a normal-approximation 95% interval of that mean."""
    values = np.asarray(values, dtype=float)
    n = np.sum(np.isfinite(values), axis=axis)  # NaN entries (diverged seeds) are left out
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(values, axis=axis) if np.any(n) else np.full(np.shape(n), np.nan)
        if values.shape[axis] > 1 and np.any(n > 1):
            sem = np.nanstd(values, axis=axis, ddof=1) / np.sqrt(n)
        else:
            sem = np.zeros_like(mean)
    return mean, z * np.nan_to_num(sem)


def seed_curves(ax, steps, values, label: str | None = None, color=None):
    """Per-seed thin lines, the mean over seeds and its 95% interval. ``values`` is [seed, point]."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    mean, half = mean_and_interval(values)
    line = ax.plot(steps, mean, lw=2, label=label, color=color)[0]
    for v in values:
        ax.plot(steps, v, lw=0.6, alpha=0.35, color=line.get_color())
    ax.fill_between(steps, mean - half, mean + half, alpha=0.2, color=line.get_color())
    return ax


def learning_curves(steps, returns, title: str = "", ylabel: str = "episode return", diverged_at=None):
    """Figure of evaluation returns [seed, eval] against env steps. ``diverged_at`` [seed] (env steps, -1 for
    healthy seeds) marks where each diverged seed's curve ends (its later evaluations are NaN, left out of the
    mean)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    returns = np.atleast_2d(np.asarray(returns, dtype=float))
    bad = [] if diverged_at is None else [int(s) for s in np.flatnonzero(np.asarray(diverged_at) >= 0)]
    healthy = returns.shape[0] - len(bad)
    seed_curves(ax, steps, returns, label=f"mean of {healthy} seeds (95% CI)")
    for i, s in enumerate(bad):
        ax.axvline(int(np.asarray(diverged_at)[s]), color="red", lw=0.8, ls=":",
                   label="seed diverged" if i == 0 else None)
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


_CAPTIONS: list[str] = []


@contextlib.contextmanager
def caption(text: str):
    """Inside this context `save` titles every figure with ``text`` above its own titles (a sweep point's
    values, `rlland.sweep.per_point`)."""
    _CAPTIONS.append(text)
    try:
        yield
    finally:
        _CAPTIONS.pop()


def save(fig, path: str, dpi: int = 120, **savefig_kwargs) -> str:
    """Write ``fig`` as PNG atomically (temp file + rename) and close it: the one figure saver of rlland.
    Inside `caption`, the caption is the figure's top line."""
    path = os.fspath(path)
    if _CAPTIONS:
        fig.text(0.5, 1.0, " / ".join(_CAPTIONS), ha="center", va="bottom", fontsize=9)
        savefig_kwargs.setdefault("bbox_inches", "tight")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=dpi, **savefig_kwargs)
    plt.close(fig)
    os.replace(tmp, path)
    return path
