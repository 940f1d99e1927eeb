"""Figures of a run's representation dynamics, in ``<run_dir>/figures/``: ``representation_seed<s>.png`` per seed
(feature rank, dead units, mean ratio below 1 - eps, plasticity against env steps) and ``representation.png``
(the same, mean over seeds with 95% intervals).

The rank / dead-unit / trust-region curves come from ``<run_dir>/metrics.h5``, logged during training when the
agent's ``log_every`` > 0 (:mod:`rlland.representation.diagnostics`): every logged update (``updates/repr/...``
against ``updates/steps``, `rlland.train`), or the chunk means (``train/repr/...``) of a run written before
those existed; the plasticity curves from the probe's datasets (:mod:`rlland.representation.analysis`).
"""
from __future__ import annotations

import os

import numpy as np

from rlland import plotting, sinks

PANELS = (  # (title, metric) of the 2 x 2 panels
    ("feature rank (approx. rank 99%, start of update)", "approximate_rank"),
    ("dead units (post-activation)", "dead_units"),
    ("mean ratio below 1 - eps (end of update)", "end/ratio_mean_below"),
    ("plasticity: last-minibatch fit loss", "plasticity"),
)
NETS = (("actor", "-"), ("critic", "--"), ("critic1", "--"))


def _training_curves(run_dir: str) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """``(steps [T], {name: [S, T]})`` of the ``repr/...`` curves in metrics.h5: per logged update
    (``updates/...``) where the run has them, else per chunk (``train/...``); (None, {}) without a metrics.h5."""
    path = os.path.join(run_dir, "metrics.h5")
    if not os.path.exists(path):
        return None, {}
    data, _ = sinks.read_h5(path)
    group = "updates" if "updates/steps" in data else "train"
    prefix = f"{group}/repr/"
    return data.get(f"{group}/steps"), {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}


def _find(curves: dict, metric: str, net: str, kind: str = "post"):
    """A logged curve [S, C]: PPO logs ``start/<net>_<kind>/<metric>``, TD3 / SAC ``<net>_<kind>/<metric>``."""
    for name in (f"start/{net}_{kind}/{metric}", f"{net}_{kind}/{metric}"):
        if name in curves:
            return curves[name]
    return None


def _panel(ax, title, metric, rows, train_steps, curves, plast_steps, plast, summary: bool):
    """One panel: ``metric``'s curves for the seed rows ``rows`` (``summary``: mean and 95% interval)."""
    drawn = False

    def draw(x, y, label, style):
        nonlocal drawn
        y = np.asarray(y, float)
        if not np.any(np.isfinite(y)):
            return
        if summary:
            plotting.seed_curves(ax, x, y, label=label)
        else:
            ax.plot(x, y, style, label=label)
        drawn = True

    if metric == "plasticity":
        for name, style in (("policy_loss", "-o"), ("value_loss", "--o")):
            if f"plasticity/{name}" in plast:
                draw(plast_steps, plast[f"plasticity/{name}"][rows], name.replace("_", " "), style)
        if drawn:
            ax.set_yscale("log")
    elif metric.startswith("end/"):
        if metric in curves and train_steps is not None:
            draw(train_steps, curves[metric][rows], "actor", "-")
    elif train_steps is not None:
        for net, style in NETS:
            for kind, suffix in (("post", ""), ("pre", " pre")):
                if metric == "dead_units" and kind == "pre":
                    continue
                y = _find(curves, metric, net, kind)
                if y is not None:
                    draw(train_steps, y[rows], net + suffix, style if kind == "post" else ":")
    ax.set(title=title, xlabel="env steps")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no finite values\n(not logged, or undefined: e.g. no ratio below 1 - eps)", ha="center",
                va="center", transform=ax.transAxes, fontsize="small")


def figures(run_dir: str, datasets: dict[str, np.ndarray]) -> list[str]:
    """Per-seed figures and an all-seeds summary from the probe's ``datasets`` (`rlland.representation.analysis`)
    and ``<run_dir>/metrics.h5``; seeds index metrics.h5 by their run index. Returns the paths."""
    train_steps, curves = _training_curves(run_dir)
    seeds = [int(s) for s in datasets["seeds"]]
    plast_steps = datasets["steps"]
    plast = {k: v for k, v in datasets.items() if k.startswith("plasticity/")}
    paths = []
    jobs = [(f"seed {s}", f"representation_seed{s}.png", s, j, False) for j, s in enumerate(seeds)]
    jobs.append((f"{len(seeds)} seeds (mean, 95% CI)", "representation.png", seeds, slice(None), True))
    for label, fname, train_rows, plast_rows, summary in jobs:
        fig, axes = plotting.plt.subplots(2, 2, figsize=(11, 7))
        for ax, (title, metric) in zip(axes.ravel(), PANELS):
            rows = plast_rows if metric == "plasticity" else train_rows
            _panel(ax, title, metric, rows, train_steps, curves, plast_steps, plast, summary)
        fig.suptitle(f"representation dynamics, {label}")
        fig.tight_layout()
        paths.append(plotting.save(fig, os.path.join(run_dir, "figures", fname)))
    return paths
