"""Figures of a run's ``subspaces.h5`` datasets (`rlland.curvature.layout`), in ``<run_dir>/figures/``:

* ``subspaces_eigenspectrum.png``: per loss, the seed-mean Hessian eigenvalues of each snapshot, and the
  true-gradient fraction against k next to the random k/n baseline;
* ``subspaces_fraction.png``: the true- and estimated-gradient fractions against the training step (per-seed lines,
  mean and 95% interval; k/n baselines dotted), in the big-batch Hessian's basis and, when computed, in the
  low-sample Hessian's (the study's four variants);
* ``subspaces_density.png``: the Hessian's SLQ spectral density of each snapshot (seed mean, Gaussian-smoothed),
  the eigenspectrum over training;
* ``subspaces_overlap.png``: the subspace overlap from each reference step t1 against t2 >= t1 (k/n dotted).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from rlland import plotting
from rlland.curvature import layout


def _figure_levels(d, loss, figure_ks) -> list[int]:
    """The levels of ``figure_ks`` that ``loss`` has (and its largest one if a larger level was asked for)."""
    ks_loss = [int(k) for k in d[f"ks/{loss}"]]
    chosen = [k for k in figure_ks if k in ks_loss]
    if ks_loss and ks_loss[-1] not in chosen and any(k > ks_loss[-1] for k in figure_ks):
        chosen.append(ks_loss[-1])  # a requested level above what exists: show the largest that does
    return chosen or ks_loss[-1:]


def eigenspectrum(d: dict[str, np.ndarray], path: str) -> str:
    """Per loss: the seed-mean eigenvalues of each snapshot, and the true-gradient fraction against k with k/n."""
    plt = plotting.plt
    steps, losses = d["steps"], layout.losses(d)
    cmap = plt.get_cmap("viridis")
    colors = lambda i, n: cmap(i / max(n - 1, 1))
    fig, axes = plt.subplots(len(losses), 2, figsize=(11, 3.2 * len(losses)), squeeze=False)
    for r, loss in enumerate(losses):
        ev = d[f"eigenvalues/{loss}"]  # [S, T, k]
        ks_loss = d[f"ks/{loss}"]
        ax_ev, ax_fr = axes[r]
        for j, step in enumerate(steps):
            ax_ev.plot(np.arange(1, ev.shape[-1] + 1), np.nanmean(ev[:, j], 0), color=colors(j, len(steps)),
                       label=f"step {step}")
            fr = np.stack([d[layout.fraction_key(int(k), "true_gradient", loss)][:, j] for k in ks_loss], -1)
            ax_fr.plot(ks_loss, np.nanmean(fr, 0), "o-", color=colors(j, len(steps)), label=f"step {step}")
        ax_fr.plot(ks_loss, [d[layout.baseline_key(int(k), loss)] for k in ks_loss], "k:", label="random k/n")
        ax_ev.set(xlabel="eigenvalue index i", ylabel="lambda_i (seed mean)", title=f"{loss}: Hessian eigenspectrum")
        ax_ev.set_yscale("symlog", linthresh=1e-3)
        ax_fr.set(xlabel="k", ylabel="true-gradient fraction", title=f"{loss}: fraction in top-k subspace",
                  xscale="log", ylim=(-0.02, 1.02))
        ax_fr.set_xticks(ks_loss, [str(k) for k in ks_loss])
        ax_fr.minorticks_off()
        for ax in (ax_ev, ax_fr):
            ax.grid(alpha=0.3)
        ax_fr.legend(fontsize="x-small", loc="best")
    fig.tight_layout()
    return plotting.save(fig, path)


def _level_curves(ax, d, steps, loss, figure_ks, key_of):
    """Per level k: seed curves of ``d[key_of(k)]`` [S, len(steps)], seed-mean markers, k/n dotted."""
    for i, k in enumerate(_figure_levels(d, loss, figure_ks)):
        color = f"C{i}"
        values = key_of(k)
        plotting.seed_curves(ax, steps, values, label=f"k={k}", color=color)
        ax.plot(steps, np.nanmean(values, 0), "o", ms=3, color=color)
        ax.axhline(d[layout.baseline_key(k, loss)], ls=":", color=color, lw=1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", loc="best")


def fractions(d: dict[str, np.ndarray], path: str, figure_ks: Sequence[int]) -> str:
    """Per loss: the true- and estimated-gradient fractions against the training step (and the low-sample
    variants when ``d`` has them)."""
    steps, losses = d["steps"], layout.losses(d)
    variants = [(g, False) for g in layout.GRADIENTS]
    if losses and len(d[f"ks/{losses[0]}"]) and layout.fraction_key(int(d[f"ks/{losses[0]}"][0]), "true_gradient",
                                                                     losses[0], True) in d:
        variants += [(g, True) for g in layout.GRADIENTS]
    fig, axes = plotting.plt.subplots(len(losses), len(variants), figsize=(5.5 * len(variants), 3.2 * len(losses)),
                                      squeeze=False)
    for r, loss in enumerate(losses):
        for col, (gradient, low) in enumerate(variants):
            ax = axes[r, col]
            _level_curves(ax, d, steps, loss, figure_ks,
                          lambda k: d[layout.fraction_key(k, gradient, loss, low)])
            ax.set(xlabel="env steps", ylabel="gradient subspace fraction", ylim=(-0.02, 1.02),
                   title=f"{loss}: {gradient.replace('_', ' ')}" + (", low-sample Hessian" if low else "")
                   + " (dotted: random k/n)")
            ax.title.set_fontsize("small")
    fig.tight_layout()
    return plotting.save(fig, path)


def density_curves(nodes, weights, grid, sigma) -> np.ndarray:
    """Gaussian-smoothed SLQ densities ``mean_p sum_j w_pj N(t; node_pj, sigma^2)`` on ``grid`` for
    nodes / weights [..., P, m] (the formula of `rlland.curvature.spectral_density`); returns [..., len(grid)]."""
    nodes, weights = np.asarray(nodes, np.float64), np.asarray(weights, np.float64)
    z = (np.asarray(grid)[None, :] - nodes.reshape(-1, 1)) / sigma
    kernel = np.exp(-0.5 * z ** 2) / (sigma * np.sqrt(2 * np.pi))  # [(... P m), G]
    dens = (weights.reshape(-1, 1) * kernel).reshape(nodes.shape + (len(grid),))
    return dens.sum(-2).mean(-2)


def density(d: dict[str, np.ndarray], path: str) -> str | None:
    """Per block: the seed-mean SLQ spectral density of every snapshot (log scale; sigma = 1% of the eigenvalue
    range over the run), coloured by step. None when ``d`` has no SLQ datasets."""
    plt = plotting.plt
    losses = [loss for loss in layout.losses(d) if f"slq_nodes/{loss}" in d]
    if not losses:
        return None
    steps = d["steps"]
    cmap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(1, len(losses), figsize=(5.5 * len(losses), 3.6), squeeze=False)
    for ax, loss in zip(axes[0], losses):
        nodes, weights = d[f"slq_nodes/{loss}"], d[f"slq_weights/{loss}"]  # [S, T, P, m]
        lo, hi = float(np.nanmin(nodes)), float(np.nanmax(nodes))
        span = max(hi - lo, 1e-12)
        grid = np.linspace(lo - 0.05 * span, hi + 0.05 * span, 800)
        dens = density_curves(nodes, weights, grid, 0.01 * span)  # [S, T, G]
        for j, step in enumerate(steps):
            ax.plot(grid, np.maximum(np.nanmean(dens[:, j], 0), 1e-12), color=cmap(j / max(len(steps) - 1, 1)),
                    label=f"step {step}")
        ax.set(xlabel="Hessian eigenvalue", ylabel="density (SLQ, seed mean)", yscale="log",
               title=f"{loss}: eigenspectrum over training")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="best")
    fig.tight_layout()
    return plotting.save(fig, path)


def overlap_steps(d: dict[str, np.ndarray]) -> list[int]:
    """The overlap reference steps t1 present in ``d``."""
    return sorted({layout.overlap_reference(name)[0] for name in d if name.startswith("overlaps_top")})


def overlaps(d: dict[str, np.ndarray], path: str, figure_ks: Sequence[int]) -> str:
    """Per loss and reference step t1: the subspace overlap against t2 >= t1."""
    steps, losses, t1s = d["steps"], layout.losses(d), overlap_steps(d)
    fig, axes = plotting.plt.subplots(len(losses), len(t1s), figsize=(4.2 * len(t1s), 3.2 * len(losses)),
                                      squeeze=False)
    for r, loss in enumerate(losses):
        for col, t1 in enumerate(t1s):
            ax = axes[r, col]
            later = steps >= t1
            _level_curves(ax, d, steps[later], loss, figure_ks,
                          lambda k: d[layout.overlap_key(k, t1, loss)][:, later])
            ax.set(xlabel="env steps t2", ylabel="subspace overlap", ylim=(-0.02, 1.02), title=f"{loss}: from t1={t1}")
    fig.tight_layout()
    return plotting.save(fig, path)


def figures(d: dict[str, np.ndarray], run_dir: str, figure_ks: Sequence[int]) -> list[str]:
    """The figures of the module docstring from the datasets ``d``, drawing the levels ``figure_ks`` (clipped to
    what exists; the overlap figure only if ``d`` has overlaps); returns their paths."""
    out_dir = os.path.join(run_dir, "figures")
    paths = [eigenspectrum(d, os.path.join(out_dir, "subspaces_eigenspectrum.png")),
             fractions(d, os.path.join(out_dir, "subspaces_fraction.png"), figure_ks)]
    if overlap_steps(d):
        paths.append(overlaps(d, os.path.join(out_dir, "subspaces_overlap.png"), figure_ks))
    slq = density(d, os.path.join(out_dir, "subspaces_density.png"))
    return paths + ([slq] if slq else [])
