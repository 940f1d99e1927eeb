"""Policy-gradient subspaces (Schneider et al., Identifying Policy Gradient Subspaces, ICLR 2024; reference
``landscapes-and-subspaces.md`` B): is the policy gradient in the small subspace of high curvature?

Stages: train every run of ``config.train`` (`rlland.train.run`, seeds vmapped; SAC and PPO with SB3's defaults
at paper scale), then `rlland.curvature.run_analysis.analyse_run` on each run's snapshots (``subspaces.h5``): the
top-k eigenvectors of the actor and critic loss Hessians (thick-restart Lanczos over exact HVPs), the fraction
``||V_k^T g||^2 / ||g||^2`` of the true gradient inside them, and the overlap ``||V_k(t1)^T V_k(t2)||_F^2 / k`` of
the subspace at a reference checkpoint t1 (the first after the early phase: ``config.overlap_from``) with every
later one.

Claims tested per run (k = the largest level analysed, 100 at paper scale; one number per seed, averaged over
snapshots):

* the gradient fraction in the top-k subspace is far above the random-subspace baseline k/n: actor
  (policy loss) fraction - k/n > 0;
* critic above actor: value-loss fraction - policy-loss fraction > 0;
* the top subspace of a checkpoint overlaps later ones far above k/n: mean over t2 > t1 of the policy-loss
  overlap - k/n > 0 (and the same for the value loss).
"""
from __future__ import annotations

import os

import ml_collections
import numpy as np

from rlland import plotting
from rlland.curvature import layout, run_analysis
from rlland.studies.pipeline import analysis_stage, run_figures, train_stage
from rlland.studies.report import Claim, Report

SOURCE = "Schneider et al., Identifying Policy Gradient Subspaces, ICLR 2024"


def analysis_config(config, label: str) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(config.subspaces.to_dict())
    steps = [int(s) for s in (c.steps or config.train[label].snapshot_steps)]
    if not c.overlap_steps:
        c.overlap_steps = (steps[min(int(config.overlap_from), len(steps) - 1)],)
    return c


def stages(config, run_dir: str) -> list:
    out = []
    for label in config.train:
        out.append(train_stage(run_dir, label, config.train[label]))
        out.append(analysis_stage(
            f"subspaces_{label}", lambda label=label: run_analysis.analyse_run(
                analysis_config(config, label), os.path.join(run_dir, label), verbose=False),
            "Hessian eigenvectors, gradient subspace fractions and overlaps"))
    return out


def report(config, run_dir: str) -> Report:
    tables, claims, figures, setting = {}, [], [], []
    seeds = None
    fig, axes = plotting.plt.subplots(1, 2, figsize=(10, 4))
    for label in config.train:
        t = config.train[label]
        c = analysis_config(config, label)
        d, _ = layout.read_h5(os.path.join(run_dir, label, layout.FILE_NAME))
        seeds = [int(s) for s in d["seeds"]] if seeds is None else seeds
        k = {loss: int(np.max(d[f"ks/{loss}"])) for loss in ("policy_loss", "value_function_loss")}
        frac = {loss: np.asarray(d[f"gradient_subspace_fraction_{k[loss]:03d}evs/true_gradient/{loss}"], float)
                for loss in k}
        est = {loss: np.asarray(d[f"gradient_subspace_fraction_{k[loss]:03d}evs/estimated_gradient/{loss}"], float)
               for loss in k}
        base = {loss: float(d[f"random_subspace_baseline_{k[loss]:03d}evs/{loss}"]) for loss in k}
        t1 = int(c.overlap_steps[0])
        steps = np.asarray(d["steps"])
        later = steps > t1
        ov = {loss: np.asarray(d[f"overlaps_top{k[loss]:03d}_checkpoint{t1:07d}/{loss}"], float) for loss in k}
        ov_later = {loss: (ov[loss][:, later].mean(1) if later.any() else np.full(len(seeds), np.nan))
                    for loss in k}
        name = {"policy_loss": "actor", "value_function_loss": "critic"}
        tables[f"{label}: gradient subspace fractions (mean over snapshots)"] = {
            **{f"{name[l]} true-gradient fraction, k = {k[l]}": frac[l].mean(1) for l in k},
            **{f"{name[l]} estimated-gradient fraction, k = {k[l]}": est[l].mean(1) for l in k},
            **{f"{name[l]} overlap with step {t1}, later steps, k = {k[l]}": ov_later[l] for l in k}}
        setting.append((label, f"{t.algo} on {t.env.name} ({t.env.backend}), {t.num_seeds} seeds, "
                               f"{t.total_steps:,} steps, snapshots {[int(s) for s in steps]}; k = {c.k}, Lanczos basis "
                               f"{c.num_iters}, tol {c.tol}; actor n = {int(d['num_parameters/policy_loss'])}, "
                               f"critic n = {int(d['num_parameters/value_function_loss'])}"))
        claims += [
            Claim(f"{label}: actor gradient lies in the top-k subspace far above k/n",
                  f"actor fraction - k/n (k = {k['policy_loss']})", frac["policy_loss"].mean(1) - base["policy_loss"],
                  "far above k/n at k = 100 (Fig. 2)", note=f"k/n = {base['policy_loss']:.3g}"),
            Claim(f"{label}: critic fraction above actor fraction", "critic fraction - actor fraction",
                  frac["value_function_loss"].mean(1) - frac["policy_loss"].mean(1), "critic > actor (Fig. 2)"),
            Claim(f"{label}: actor subspace overlap stays above k/n after the early phase",
                  f"actor overlap(t1 = {t1}, t2 > t1) - k/n", ov_later["policy_loss"] - base["policy_loss"],
                  "well above k/n (Fig. 4)"),
            Claim(f"{label}: critic subspace overlap stays above k/n after the early phase",
                  f"critic overlap(t1 = {t1}, t2 > t1) - k/n",
                  ov_later["value_function_loss"] - base["value_function_loss"], "well above k/n (Fig. 4)"),
        ]
        for loss, ax in zip(k, axes):
            plotting.seed_curves(ax, steps, frac[loss], label=f"{label} {name[loss]}")
            ax.axhline(base[loss], ls=":", lw=1, color="gray")
        figures += run_figures(run_dir, label)
    for ax, title in zip(axes, ("actor", "critic")):
        ax.set(xlabel="env steps", ylabel="true-gradient fraction in top-k subspace", title=f"{title} (dotted: k/n)")
        ax.legend(fontsize="small")
    fig.tight_layout()
    plotting.save(fig, os.path.join(run_dir, "figures", "subspace_fractions.png"))
    return Report(
        title=f"Policy-gradient subspaces study ({config.scale})", source=SOURCE,
        measures=__doc__.split("\n\n")[1].replace("\n", " "), setting=setting, reductions=list(config.reductions),
        seeds=seeds or [], tables=tables, claims=claims,
        figures=[("true-gradient fraction in the top-k subspace vs env steps (dotted: k/n)",
                  "figures/subspace_fractions.png")] + figures, commands=[])
