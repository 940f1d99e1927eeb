"""Archive heatmaps and QD learning curves (matplotlib, Agg backend). Inputs are numpy-able arrays of ONE seed.

Grid archives (cells in row-major order, `rlland.qd.grid_centroids`):
  * 1-D: a strip of cells coloured by fitness, with the fitness-vs-descriptor profile below it;
  * 2-D: one image, descriptor 0 on x, descriptor 1 on y;
  * 3-D: a row of 2-D slices (descriptor 0 indexes the slice);
  * 4-D: a grid of 2-D slices, as pyribs / QDax draw the ant archive: descriptors 0 and 1 index the panel
    (row = descriptor 0, column = descriptor 1), descriptors 2 and 3 are the x / y axes inside each panel.
CVT archives of 1 or 2 descriptors are drawn as their centroids coloured by fitness. Empty cells are grey.
One colour scale serves every panel of a figure.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from rlland import plotting as rl_plotting
from rlland.plotting import plt, save  # Agg backend set there

__all__ = ["archive_heatmap", "compare_runs", "grid_image", "heatmap", "load_runs", "qd_curves", "save",
           "save_archive_heatmaps"]


def grid_image(fitnesses, grid_shape: Sequence[int]) -> np.ndarray:
    """``(C,)`` fitnesses -> array of ``grid_shape`` with NaN in empty (``-inf``) cells."""
    f = np.asarray(fitnesses, dtype=float)
    shape = tuple(int(s) for s in grid_shape)
    if f.shape != (int(np.prod(shape)),):
        raise ValueError(f"fitnesses of shape {f.shape} do not fill a grid of shape {shape}")
    return np.where(np.isfinite(f), f, np.nan).reshape(shape)


def _cmap(name: str):
    cmap = plt.get_cmap(name).copy()
    cmap.set_bad("0.85")
    return cmap


def _limits(values: np.ndarray, vmin, vmax):
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if vmin is None and finite.size else (0.0 if vmin is None else float(vmin))
    hi = float(finite.max()) if vmax is None and finite.size else (1.0 if vmax is None else float(vmax))
    return lo, (hi if hi > lo else lo + 1.0)


def heatmap(fitnesses, grid_shape: Sequence[int] | None = None, minval=0.0, maxval=1.0, *, centroids=None,
            vmin=None, vmax=None, title: str = "", descriptor_names: Sequence[str] | None = None,
            cmap: str = "viridis"):
    """Figure of an archive's fitness over descriptor space (see the module docstring for the layouts).

    Args:
      fitnesses: ``(C,)``, ``-inf`` (or NaN) in empty cells.
      grid_shape: cells per descriptor for a grid archive (1 to 4 descriptors); None for a CVT archive, which
        then needs ``centroids`` ``(C, m)`` with m = 1 or 2.
      minval, maxval: descriptor bounds (scalars or ``(m,)``).
      vmin, vmax: colour range (default: the finite fitness range).
      descriptor_names: axis labels (default ``d0, d1, ...``).
    Returns:
      a matplotlib Figure (write it with `save`).
    """
    if grid_shape is None:
        if centroids is None:
            raise ValueError("heatmap needs grid_shape (grid archive) or centroids (CVT archive)")
        return _cvt_heatmap(fitnesses, np.asarray(centroids), minval, maxval, vmin, vmax, title,
                            descriptor_names, cmap)
    img = grid_image(fitnesses, grid_shape)
    m = img.ndim
    lo = np.broadcast_to(np.asarray(minval, float), (m,))
    hi = np.broadcast_to(np.asarray(maxval, float), (m,))
    names = list(descriptor_names or [f"d{i}" for i in range(m)])
    if len(names) != m:
        raise ValueError(f"descriptor_names has {len(names)} names for {m} descriptors")
    lim = _limits(img, vmin, vmax)
    kw = dict(cmap=_cmap(cmap), vmin=lim[0], vmax=lim[1], origin="lower", interpolation="nearest")
    if m == 1:
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 3.6), sharex=True, gridspec_kw={"height_ratios": [1, 2]})
        im = ax.imshow(img[None, :], extent=(lo[0], hi[0], 0, 1), aspect="auto", **kw)
        ax.set_yticks([])
        centres = lo[0] + (np.arange(img.shape[0]) + 0.5) * (hi[0] - lo[0]) / img.shape[0]
        ax2.plot(centres, img, ".", ms=3)
        ax2.set_xlabel(names[0])
        ax2.set_ylabel("fitness")
        ax2.grid(alpha=0.3)
        fig.colorbar(im, ax=[ax, ax2], label="fitness")
        ax.set_title(title)
        return fig
    if m == 2:
        fig, ax = plt.subplots(figsize=(5.2, 4.4))
        im = ax.imshow(img.T, extent=(lo[0], hi[0], lo[1], hi[1]), aspect="auto", **kw)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_title(title)
        fig.colorbar(im, ax=ax, label="fitness")
        return fig
    if m == 3:
        rows, cols = 1, img.shape[0]
        panels = [((0, i), img[i]) for i in range(cols)]
        inner = (1, 2)
        outer = [f"{names[0]}~{lo[0] + (i + 0.5) * (hi[0] - lo[0]) / cols:.2g}" for i in range(cols)]
    elif m == 4:  # descriptor 0 grows upwards (bottom row = bin 0), like the y axis inside each panel
        rows, cols = img.shape[0], img.shape[1]
        panels = [((rows - 1 - i, j), img[i, j]) for i in range(rows) for j in range(cols)]
        inner, outer = (2, 3), None
        centre = lambda k, i: lo[k] + (i + 0.5) * (hi[k] - lo[k]) / img.shape[k]  # noqa: E731
    else:
        raise ValueError(f"heatmaps are drawn for grid archives of 1 to 4 descriptors, got {m}")
    size = min(1.6, 12.0 / max(rows, cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 1.6, size * rows + 1.4), squeeze=False)
    ext = (lo[inner[0]], hi[inner[0]], lo[inner[1]], hi[inner[1]])
    for (r, c), panel in panels:
        ax = axes[r][c]
        im = ax.imshow(panel.T, extent=ext, aspect="auto", **kw)
        ax.set_xticks([])
        ax.set_yticks([])
        if m == 3:
            ax.set_title(outer[c], fontsize=8)
        if m == 4 and c == 0:
            ax.set_ylabel(f"{names[0]}~{centre(0, rows - 1 - r):.2g}", fontsize=7)
        if m == 4 and r == rows - 1:
            ax.set_xlabel(f"{names[1]}~{centre(1, c):.2g}", fontsize=7)
    fig.subplots_adjust(top=1.0 - 0.9 / fig.get_figheight(), bottom=0.35 / fig.get_figheight())
    panels_by = f"panel rows: {names[0]} (up), columns: {names[1]}" if m == 4 else f"panels: {names[0]}"
    fig.suptitle(f"{title}\n({panels_by}; inside each panel: x={names[inner[0]]} in [{lo[inner[0]]:g}, "
                 f"{hi[inner[0]]:g}], y={names[inner[1]]} in [{lo[inner[1]]:g}, {hi[inner[1]]:g}])", fontsize=9)
    fig.colorbar(im, ax=axes.ravel().tolist(), label="fitness", shrink=0.8)
    return fig


def _cvt_heatmap(fitnesses, centroids, minval, maxval, vmin, vmax, title, descriptor_names, cmap):
    f = np.asarray(fitnesses, float)
    f = np.where(np.isfinite(f), f, np.nan)
    m = centroids.shape[1]
    if m not in (1, 2):
        raise ValueError(f"CVT archives are drawn for 1 or 2 descriptors, got {m}")
    names = list(descriptor_names or [f"d{i}" for i in range(m)])
    lim = _limits(f, vmin, vmax)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    y = centroids[:, 1] if m == 2 else np.zeros(len(f))
    empty = ~np.isfinite(f)
    ax.scatter(centroids[empty, 0], y[empty], c="0.85", s=12)
    sc = ax.scatter(centroids[~empty, 0], y[~empty], c=f[~empty], s=12, cmap=cmap, vmin=lim[0], vmax=lim[1])
    lo = np.broadcast_to(np.asarray(minval, float), (m,))
    hi = np.broadcast_to(np.asarray(maxval, float), (m,))
    if np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)):
        ax.set_xlim(lo[0], hi[0])
        if m == 2:
            ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel(names[0])
    if m == 2:
        ax.set_ylabel(names[1])
    ax.set_title(title)
    fig.colorbar(sc, ax=ax, label="fitness")
    return fig


def archive_heatmap(archive, **kwargs):
    """`heatmap` of one seed's `rlland.qd.Archive` (grid or CVT)."""
    if np.ndim(archive.fitnesses) != 1:
        raise ValueError(f"archive_heatmap draws ONE seed's archive; fitnesses have shape "
                         f"{np.shape(archive.fitnesses)} (use rlland.runs.select_seed)")
    lo, hi = np.asarray(archive.minval), np.asarray(archive.maxval)
    return heatmap(np.asarray(archive.fitnesses), archive.grid_shape, lo, hi,
                   centroids=None if archive.grid_shape is not None else np.asarray(archive.centroids), **kwargs)


def save_archive_heatmaps(archives, directory: str, prefix: str = "archive", title: str = "", **kwargs) -> list[str]:
    """One PNG per seed of a seed-batched archive (leading seed axis): ``<directory>/<prefix>_seed<i>.png``.
    All seeds share one colour range unless ``vmin`` / ``vmax`` are given."""
    fit = np.asarray(archives.fitnesses)
    if fit.ndim == 1:
        fit = fit[None]
        archives = _add_seed_axis(archives)
    finite = fit[np.isfinite(fit)]
    if finite.size:
        kwargs.setdefault("vmin", float(finite.min()))
        kwargs.setdefault("vmax", float(finite.max()))
    paths = []
    for i in range(fit.shape[0]):
        one = _seed(archives, i)
        fig = archive_heatmap(one, title=f"{title} seed {i}".strip(), **kwargs)
        paths.append(save(fig, os.path.join(directory, f"{prefix}_seed{i}.png")))
    return paths


def _add_seed_axis(archive):
    import jax

    return jax.tree.map(lambda x: np.asarray(x)[None], archive)


def _seed(archives, i):
    import jax

    return jax.tree.map(lambda x: np.asarray(x)[i], archives)


def qd_curves(evaluations, metrics: dict, title: str = "", names: Sequence[str] = ("qd_score", "coverage",
                                                                                      "max_fitness")):
    """Figure of QD metrics ``[seed, point]`` against evaluations ``[point]`` (or ``[seed, point]``): per-seed
    lines, the mean and its 95% interval (`rlland.plotting.seed_curves`)."""
    names = [n for n in names if n in metrics]
    if not names:
        raise ValueError(f"none of the metrics to plot are present; have {sorted(metrics)}")
    evals = np.asarray(evaluations)
    x = evals[0] if evals.ndim == 2 else evals
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        y = np.atleast_2d(np.asarray(metrics[name], float))
        keep = np.all(np.isfinite(y), axis=0)  # e.g. max_fitness of the empty archive (column 0) is -inf
        rl_plotting.seed_curves(ax, x[keep], y[:, keep])
        ax.set_xlabel("evaluations")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# -- comparison of algorithms (issue 9) ----------------------------------------------------------------------
COMPARE_METRICS = ("qd_score", "coverage", "max_fitness")


def _run_label(attrs: dict) -> str:
    import json

    config = attrs.get("config", "{}")
    config = json.loads(config) if isinstance(config, (str, bytes)) else dict(config)
    return str(config.get("algo", "?"))


def load_runs(run_dirs: Sequence[str], labels: Sequence[str] | None = None,
              names: Sequence[str] = COMPARE_METRICS, f_min: float | None = None) -> dict[str, dict]:
    """Read the ``qd.h5`` of several driver run directories and group them by label (default: the config's
    ``algo``), seeds of runs with the same label stacked.

    Returns ``{label: {"evaluations": (P,), name: (S, P) for name in names, "num_runs": int}}``. Runs of one
    label are put on the evaluation grid of the first of them (``np.interp`` per seed, cut to the evaluations
    every run reached). QD scores use the study's ``sum (f - f_min)``; runs written with different ``f_min``
    are re-offset to a common one (``f_min``, default the lowest of the runs) with
    ``qd + num_elites * (f_min_run - f_min)``, as dqd-rl's ``figures.collect`` does (reference C.4).
    """
    from rlland.sinks import read_h5

    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels for {len(run_dirs)} run directories")
    runs = []
    for i, run_dir in enumerate(run_dirs):
        path = os.path.join(run_dir, "qd.h5")
        if not os.path.exists(path):
            raise FileNotFoundError(f"no qd.h5 in {run_dir!r} (a run directory written by rlland.qd.driver)")
        data, attrs = read_h5(path)
        missing = [n for n in ("evaluations", *names) if n not in data]
        if missing:
            raise ValueError(f"{path} lacks {missing}")
        runs.append((labels[i] if labels is not None else _run_label(attrs), data, float(attrs.get("f_min", 0.0))))
    common = min(r[2] for r in runs) if f_min is None else float(f_min)
    out: dict[str, dict] = {}
    for label, data, run_f_min in runs:
        data = dict(data)
        if "qd_score" in names and run_f_min != common:
            if "num_elites" not in data:
                raise ValueError(f"cannot re-offset the QD score of a {label!r} run without num_elites")
            data["qd_score"] = data["qd_score"] + data["num_elites"] * (run_f_min - common)
        evals = np.asarray(data["evaluations"], float)
        x = evals[0]
        if label not in out:
            out[label] = {"evaluations": x, "num_runs": 1, **{n: np.atleast_2d(np.asarray(data[n], float))
                                                               for n in names}}
            continue
        group = out[label]
        keep = group["evaluations"] <= evals[:, -1].min()
        group["evaluations"] = group["evaluations"][keep]
        for n in names:
            y = np.atleast_2d(np.asarray(data[n], float))
            new = np.stack([np.interp(group["evaluations"], e, v) for e, v in zip(evals, y)])
            group[n] = np.concatenate([group[n][:, keep], new], axis=0)
        group["num_runs"] += 1
    return out


def compare_runs(run_dirs: Sequence[str], labels: Sequence[str] | None = None,
                 names: Sequence[str] = COMPARE_METRICS, title: str = "", f_min: float | None = None):
    """Figure comparing algorithms: one panel per metric (default QD score, coverage and best fitness) against
    evaluations, one line per label (the mean over seeds, its 95% interval and thin per-seed lines,
    `rlland.plotting.seed_curves`). ``run_dirs``, ``labels``, ``f_min``: see `load_runs`.
    Returns ``(fig, summary)``, summary = ``{label: {name: (final mean, 95% half-width), "seeds": S}}``."""
    groups = load_runs(run_dirs, labels, names, f_min)
    fig, axes = plt.subplots(1, len(names), figsize=(4.4 * len(names), 3.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    summary = {}
    for j, (label, g) in enumerate(groups.items()):
        color = colors[j % len(colors)]
        summary[label] = {"seeds": int(g[names[0]].shape[0])}
        for ax, name in zip(axes[0], names):
            y = g[name]
            keep = np.all(np.isfinite(y), axis=0)  # e.g. max_fitness of the empty archive is -inf
            rl_plotting.seed_curves(ax, g["evaluations"][keep], y[:, keep],
                                    label=f"{label} ({y.shape[0]} seeds)", color=color)
            mean, half = rl_plotting.mean_and_interval(y[:, -1:])
            summary[label][name] = (float(mean[0]), float(half[0]))
    for ax, name in zip(axes[0], names):
        ax.set_xlabel("evaluations")
        ax.set_ylabel({"qd_score": "QD score", "coverage": "coverage", "max_fitness": "best fitness"}.get(name, name))
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig, summary
