"""Linear regions of ReLU policies during training (Cohan, Guo, Lee, Kira, Understanding the Evolution of Linear
Regions in Deep Reinforcement Learning, NeurIPS 2022; reference ``representation-regions-qd.md`` B).

Stages: train PPO with a ReLU actor and observation normalisation (`rlland.train.run`, seeds vmapped; one hidden
layer of 16 at paper scale, as the study's HalfCheetah sweep), then `rlland.regions.analysis.analyse_run` on every
snapshot (``regions.h5``): exact counts of region transitions along the final policy's ("fixed") trajectory,
each snapshot's own ("current") trajectory and uniform-random-action trajectories, and regions on infinite random
lines (through the origin and through the mean state), with the study's protocol (`rlland.regions.analysis`: random
trajectories and lines under the reference snapshot's normaliser, origin = the raw zero state normalised).

Claims tested (one number per seed, first vs last snapshot; the reference's run with 16 units: fixed-trajectory
transitions 3,249 -> 4,123, current trajectory length 26 -> 12,008, random-trajectory transitions 3,206 ->
2,147):

* fixed-trajectory transitions rise moderately: log(last / first) > 0;
* the current trajectory's length grows far more: log(length last / first) - log(fixed transitions last / first)
  > 0;
* random-trajectory transitions fall: log(last / first) < 0;
* a one-hidden-layer net of n units in general position has n + 1 regions on a line: the fraction of the
  mean-family lines with exactly n + 1 regions (last snapshot) > 0.99 (only for one hidden layer).
"""
from __future__ import annotations

import os

import numpy as np

from rlland import plotting
from rlland.regions import analysis
from rlland.studies.pipeline import analysis_stage, run_figures, train_stage
from rlland.studies.report import Claim, Report

SOURCE = "Cohan et al., Understanding the Evolution of Linear Regions in Deep Reinforcement Learning, NeurIPS 2022"
LABEL = "ppo_relu"


def stages(config, run_dir: str) -> list:
    d = os.path.join(run_dir, LABEL)
    return [train_stage(run_dir, LABEL, config.train[LABEL]),
            analysis_stage("regions", lambda: analysis.analyse_run(config.regions, d, verbose=False),
                           "region transitions, densities and lines of every snapshot")]


_NORMALIZERS = {"reference": "the last snapshot's statistics for every snapshot (the study: the best checkpoint's)",
                "snapshot": "each snapshot's own statistics (not the study's protocol)"}
_ORIGINS = {"raw": "the raw zero state, normalised (the study's)",
            "input": "the origin of the normalised input space (not the study's protocol)"}


def _log_ratio(x: np.ndarray) -> np.ndarray:
    """Per seed log((last + 1) / (first + 1)) of a [S, N] table (the +1 keeps a zero start finite)."""
    x = np.asarray(x, float)
    return np.log((x[:, -1] + 1.0) / (x[:, 0] + 1.0))


def report(config, run_dir: str) -> Report:
    t = config.train[LABEL]
    d, attrs = analysis.read_h5(os.path.join(run_dir, LABEL, analysis.FILE_NAME))
    steps, seeds = [int(s) for s in d["steps"]], [int(s) for s in d["seeds"]]
    n = int(attrs["num_neurons"])
    tables = {"first -> last snapshot": {}}
    tab = tables["first -> last snapshot"]
    for kind in ("fixed", "current", "random"):
        for m in ("transitions", "length", "density_per_neuron"):
            x = np.asarray(d[f"{kind}/{m}"], float)
            tab[f"{kind} {m}, step {steps[0]}"] = x[:, 0]
            tab[f"{kind} {m}, step {steps[-1]}"] = x[:, -1]
    for fam in ("origin", "mean"):
        tab[f"regions per {fam} line, step {steps[-1]}"] = np.asarray(d[f"lines/{fam}/mean"], float)[:, -1]
    one_layer = len(t.agent.hidden_sizes) == 1
    counts = np.asarray(d["lines/mean/counts"])[:, -1]  # [S, L]
    exact = (counts == n + 1).mean(-1) if one_layer else np.full(len(seeds), np.nan)
    fixed_lr, current_lr = _log_ratio(d["fixed/transitions"]), _log_ratio(d["current/length"])
    claims = [
        Claim("transitions along the fixed (final-policy) trajectory rise moderately",
              "log(fixed transitions last / first)", fixed_lr, "3,249 -> 4,123 (log ratio 0.24)"),
        Claim("the current trajectory's length grows far more",
              "log(current length ratio) - log(fixed transitions ratio)", current_lr - fixed_lr,
              "length 26 -> 12,008 vs transitions x1.27"),
        Claim("transitions along random trajectories fall", "log(random transitions last / first)",
              _log_ratio(d["random/transitions"]), "3,206 -> 2,147 (log ratio -0.40)", direction="less"),
        Claim("a 1-layer net of n units has n + 1 regions on a line",
              f"fraction of mean-family lines with n + 1 = {n + 1} regions", exact, "9 / 17 / 33 for n = 8 / 16 / 32",
              null=0.99, note="" if one_layer else "not tested: more than one hidden layer"),
    ]
    fig, axes = plotting.plt.subplots(1, 3, figsize=(13, 4))
    for ax, (kind, m) in zip(axes, (("fixed", "transitions"), ("current", "length"), ("random", "transitions"))):
        plotting.seed_curves(ax, steps, np.asarray(d[f"{kind}/{m}"], float), label=f"{kind} {m}")
        ax.set(xlabel="env steps", ylabel=f"{kind} trajectory {m}")
        ax.legend(fontsize="small")
    fig.tight_layout()
    plotting.save(fig, os.path.join(run_dir, "figures", "regions_evolution.png"))
    figures = [("fixed-trajectory transitions, current-trajectory length and random-trajectory transitions vs "
                "env steps", "figures/regions_evolution.png")] + run_figures(run_dir, LABEL)
    r = config.regions
    setting = [("algorithm", f"PPO (ReLU actor {tuple(t.agent.hidden_sizes)}, n = {n}, observation normalisation) "
                             f"on {t.env.name} ({t.env.backend}), {t.num_seeds} seeds vmapped, {t.total_steps:,} "
                             f"steps, snapshots {steps}"),
               ("trajectories", f"length {r.length or 'episode length'}, episodes fixed/current/random "
                                f"{r.num_episodes.fixed}/{r.num_episodes.current}/{r.num_episodes.random}, "
                                f"policy {r.policy}"),
               ("lines", f"{r.num_lines} per family (origin, mean), infinite, exact counts"),
               ("protocol", f"random trajectories and lines normalised with {_NORMALIZERS[r.normalizer]}; origin "
                            f"lines through {_ORIGINS[r.line_origin]}; plane square in the {r.plane.frame} frame, "
                            "regions drawn as exact polygons")]
    return Report(
        title=f"Linear regions study ({config.scale})", source=SOURCE,
        measures=__doc__.split("\n\n")[1].replace("\n", " "), setting=setting, reductions=list(config.reductions),
        seeds=seeds, tables=tables, claims=claims, figures=figures, commands=[])
