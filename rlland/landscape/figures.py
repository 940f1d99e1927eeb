"""Figures of the return-landscape analyses (Rahn et al. 2023), drawn from numpy arrays and saved with
`rlland.plotting.save`:

* :func:`purd_histograms`: one snapshot's PURDs, one histogram per seed, with the pre-update return (dashed) and
  the LTP threshold ``threshold * mode`` (dotted: the returns left of it are the LTP; reference A.5);
* :func:`mean_vs_ltp`: PURD mean against LTP for every checkpoint and seed (the paper's main scatter);
* :func:`interpolation_heatmap`: one row per interpolation path, the PURD mean and LTP along ``a`` (the paper
  shows the paths as a heatmap);
* :func:`interpolation_curves`: the mean and 10-90% band along each path;
* :func:`rejection_curves`: CVaR and mean of the last accepted policy against proposed updates (Algorithm 1).

:func:`histogram_bins` gives bin edges for ANY sample: a (nearly) constant PURD, one whose spread is below the
float32 resolution of its values, or one with non-finite entries (left out) never raises numpy's "Too many bins
for data range".
"""
from __future__ import annotations

import numpy as np

from rlland import plotting


def histogram_bins(values, num_bins: int = 50) -> np.ndarray:
    """Increasing float64 bin edges for the finite entries of ``values``: ``num_bins`` equal-width bins over
    [min, max] when those edges are distinct in float64, else one bin [v - 0.5, v + 0.5] around the mean (a
    constant or nearly constant PURD, e.g. early hopper snapshots whose episodes all end at the same step)."""
    r = np.asarray(values, np.float64).ravel()
    r = r[np.isfinite(r)]
    if r.size == 0:
        return np.array([-0.5, 0.5])
    lo, hi = float(r.min()), float(r.max())
    if hi > lo:
        edges = np.linspace(lo, hi, int(num_bins) + 1)
        if np.all(np.diff(edges) > 0) and (hi - lo) > 1e-9 * max(1.0, abs(lo), abs(hi)):
            return edges
    v = float(r.mean())
    return np.array([v - 0.5, v + 0.5]) if hi - lo < 1.0 else np.array([lo, hi])


def purd_histograms(path: str, title: str, seeds, undiscounted, pre_update, mode, threshold: float) -> str:
    """Histograms of ``undiscounted`` [seeds, samples] with each seed's pre-update return (dashed) and LTP
    threshold ``threshold * mode`` (dotted, reference A.5's cut)."""
    fig, ax = plotting.plt.subplots(figsize=(6.5, 4))
    for i, s in enumerate(seeds):
        r = np.asarray(undiscounted[i], np.float64)
        finite = r[np.isfinite(r)]
        line = ax.hist(finite, bins=histogram_bins(finite), histtype="step", label=f"seed {s}")[2][0]
        color = line.get_edgecolor()
        ax.axvline(float(pre_update[i]), ls="--", lw=1, color=color)
        ax.axvline(float(threshold) * float(mode[i]), ls=":", lw=1.2, color=color)
    ax.set(xlabel="post-update return (undiscounted)", ylabel="samples",
           title=f"{title}\n(dashed: pre-update return; dotted: LTP threshold {threshold:g} x mode)")
    ax.title.set_fontsize("small")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return plotting.save(fig, path)


def mean_vs_ltp(path: str, title: str, steps, means, ltps) -> str:
    """Scatter of PURD mean (x) against LTP (y), one point per checkpoint and seed, coloured by the checkpoint's
    env step. ``steps`` [P], ``means`` [P], ``ltps`` [P] (flattened over checkpoints and seeds)."""
    plt = plotting.plt
    fig, ax = plt.subplots(figsize=(6, 4.2))
    steps = np.asarray(steps, np.float64)
    sc = ax.scatter(np.asarray(means, np.float64), np.asarray(ltps, np.float64), c=steps, cmap="viridis", s=18,
                    vmin=steps.min(), vmax=max(steps.max(), steps.min() + 1))
    fig.colorbar(sc, ax=ax, label="checkpoint (env steps)")
    ax.set(xlabel="PURD mean (undiscounted return)", ylabel="LTP (fraction below threshold x mode)",
           title=title, ylim=(-0.02, 1.02))
    ax.title.set_fontsize("small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return plotting.save(fig, path)


def interpolation_heatmap(path: str, names, alphas, means, ltps) -> str:
    """Two heatmaps, rows = paths (``names``), columns = the points ``alphas``: the PURD mean [paths, points] and
    the LTP [paths, points] along each path from A (a = 0) to B (a = 1)."""
    plt = plotting.plt
    means, ltps = np.asarray(means, np.float64), np.asarray(ltps, np.float64)
    height = 1.5 + 0.25 * len(names)
    fig, axes = plt.subplots(1, 2, figsize=(12, height), squeeze=False)
    a = np.asarray(alphas, np.float64)
    extent = (a[0], a[-1] if a[-1] > a[0] else a[0] + 1, len(names) - 0.5, -0.5)
    for ax, values, label, cmap in ((axes[0, 0], means, "PURD mean", "viridis"),
                                    (axes[0, 1], ltps, "LTP", "magma")):
        im = ax.imshow(values, aspect="auto", interpolation="nearest", cmap=cmap, extent=extent)
        fig.colorbar(im, ax=ax, label=label)
        ax.set(xlabel="a  (policy = (1 - a) A + a B)", title=label)
        ax.set_yticks(range(len(names)), names if len(names) <= 30 else [""] * len(names), fontsize="x-small")
    fig.tight_layout()
    return plotting.save(fig, path)


def interpolation_curves(path: str, results: dict) -> str:
    """Mean post-update return and its 10-90% band along each path (``results``: ``{name: {"alphas": [P],
    "undiscounted": [P, N]}}``)."""
    fig, ax = plotting.plt.subplots(figsize=(6, 4))
    for name, out in results.items():
        r = out["undiscounted"]
        line = ax.plot(out["alphas"], r.mean(-1), lw=1.5, label=name)[0]
        ax.fill_between(out["alphas"], np.quantile(r, 0.1, -1), np.quantile(r, 0.9, -1), alpha=0.2,
                        color=line.get_color())
    ax.set(xlabel="a  (policy = (1 - a) A + a B)", ylabel="post-update return (mean, 10-90%)")
    if len(results) <= 10:
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return plotting.save(fig, path)


def rejection_curves(path: str, curves_by_heuristic: dict) -> str:
    """CVaR and mean of the last accepted policy's PURD against proposed updates, one curve set (per-seed lines,
    mean, 95% band) per heuristic (``{heuristic: reject_train curves with a leading run axis}``)."""
    fig, axes = plotting.plt.subplots(1, 2, figsize=(10, 4))
    for heuristic, curves in sorted(curves_by_heuristic.items()):
        for ax, stat in zip(axes, ("cvar", "mean")):
            plotting.seed_curves(ax, curves["proposals"][0], curves[stat], label=heuristic)
    for ax, stat in zip(axes, ("PURD CVaR (last accepted)", "PURD mean (last accepted)")):
        ax.set(xlabel="proposed updates", ylabel=stat)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return plotting.save(fig, path)
