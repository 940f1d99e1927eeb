"""Representation collapse and trust regions in PPO (Moalla et al., No Representation, No Trust, 2024;
reference ``representation-regions-qd.md`` A): does PPO's feature rank collapse under non-stationarity, does its
trust region fail as it does, and does PFO help?

Stages: three PPO trainings with the representation diagnostics on (`rlland.train.run`, seeds vmapped; feature
ranks, dead units and probability-ratio statistics of each update logged into ``metrics.h5``): ``low_epochs``,
``high_epochs`` (more epochs per rollout: stronger non-stationarity; 10 vs 20 at paper scale, the study's
sweep) and ``high_epochs_pfo`` (the same with PFO, the study's coefficient), then the plasticity probe
(`rlland.representation.analysis.analyse_run`, ``representation.h5``) on every snapshot of each.

Claims tested (one number per seed; "final" = the mean over the last quarter of the logged UPDATES, the
``updates/...`` arrays of ``metrics.h5`` (every ``log_every``-th update and the last; `rlland.train`); seed i
of the three runs shares its key, so differences are paired):

* feature rank (approximate rank of the actor's penultimate features, the paper's "feature rank") is lower with
  more epochs: final rank(low) - final rank(high) > 0; dead units: final fraction(high) - (low) > 0;
* trust-region violations grow as the rank falls: the correlation over training between the rank and the
  fraction of probability ratios outside the clip range (high epochs) < 0 (0 when either did not move);
* PFO mitigates both: final rank(PFO) - rank(high) > 0, final violations(high) - violations(PFO) > 0;
* plasticity is lost: the probe's policy loss at the last snapshot - at the first > 0 (high epochs).

Also reported: the curves over updates (feature rank, dead units, ratios outside the clip range, and the actor's
gradient and weight norms where the run logged them), their first and last logged update, and the change of the
feature ranks over one update (end - start, the study's ``get_rank_diff``; `rlland.representation.end_minus_start`).
"""
from __future__ import annotations

import os

import numpy as np

from rlland import plotting
from rlland.representation import analysis, end_minus_start
from rlland.sinks import read_h5
from rlland.studies.pipeline import analysis_stage, run_figures, train_stage
from rlland.studies.report import Claim, Report

SOURCE = "Moalla, Miele, Pyatko, Pascanu, Gulcehre, No Representation, No Trust: Connecting Representation, " \
         "Collapse, and Trust Issues in PPO, 2024"
RUNS = ("low_epochs", "high_epochs", "high_epochs_pfo")
STEPS = "updates/steps"  # env steps after each logged update [U]
RANK = "updates/repr/start/actor_post/approximate_rank"
DEAD = "updates/repr/start/actor_post/dead_units"
OUTSIDE = "updates/repr/end/ratio_fraction_outside"
# curves drawn when the run logged them (gradient and weight norms: PPO's step metrics, every update)
CURVES = ((RANK, "feature rank (approximate, actor)"), (DEAD, "dead units (actor)"),
          (OUTSIDE, "ratios outside the clip range"), ("updates/grad_norm/actor", "actor gradient norm"),
          ("updates/weight_norm/actor", "actor weight norm"))
RANK_DIFFS = tuple(f"updates/repr/diff/{net}_{kind}/approximate_rank" for net in ("actor", "critic")
                   for kind in ("pre", "post"))


def stages(config, run_dir: str) -> list:
    out = []
    for label in RUNS:
        out.append(train_stage(run_dir, label, config.train[label]))
        out.append(analysis_stage(f"plasticity_{label}", lambda label=label: analysis.analyse_run(
            config.plasticity, os.path.join(run_dir, label), verbose=False), "plasticity probe of every snapshot"))
    return out


def _final(x: np.ndarray) -> np.ndarray:
    """Per seed: nanmean over the last quarter of the logged updates (``x`` [seed, U]; at least one)."""
    q = max(1, x.shape[1] // 4)
    with np.errstate(invalid="ignore"):
        return np.nanmean(x[:, -q:], axis=1)


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = []
    for x, y in zip(a, b):
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 3:
            out.append(np.nan)
        elif x[ok].std() == 0 or y[ok].std() == 0:  # one series did not move: no relation to report
            out.append(0.0)
        else:
            out.append(np.corrcoef(x[ok], y[ok])[0, 1])
    return np.asarray(out)


def report(config, run_dir: str) -> Report:
    hist, probe = {}, {}
    for label in RUNS:
        hist[label], _ = read_h5(os.path.join(run_dir, label, "metrics.h5"))
        if RANK not in hist[label]:
            raise ValueError(f"{run_dir}/{label}/metrics.h5 has no {RANK}: the run was trained without the "
                             f"update-resolution diagnostics (agent log_every > 0, rlland.train); train it again")
        hist[label] |= end_minus_start(hist[label])
        probe[label], _ = analysis.read_h5(os.path.join(run_dir, label, analysis.FILE_NAME))
    t = config.train.high_epochs
    width = int(t.agent.hidden_sizes[-1])
    rank = {k: _final(hist[k][RANK]) for k in RUNS}
    dead = {k: _final(hist[k][DEAD]) / width for k in RUNS}
    outside = {k: _final(hist[k][OUTSIDE]) for k in RUNS}
    plast = {k: np.asarray(probe[k]["plasticity/policy_loss"], float) for k in RUNS}
    seeds = [int(s) for s in probe["high_epochs"]["seeds"]]
    tables = {"final values (last quarter of training)": {
        **{f"feature rank, {k}": rank[k] for k in RUNS}, **{f"dead-unit fraction, {k}": dead[k] for k in RUNS},
        **{f"ratios outside the clip range, {k}": outside[k] for k in RUNS},
        **{f"plasticity policy loss at the last snapshot, {k}": plast[k][:, -1] for k in RUNS},
        **{f"final eval return, {k}": hist[k]["eval/return_mean"][:, -1] for k in RUNS}},
        "first and last logged update": {
            f"{what}, {k}, {at} update": hist[k][key][:, i] for key, what in CURVES[:3] for k in RUNS
            for at, i in (("first", 0), ("last", -1))},
        "change over one update, end - start (last quarter of training)": {
            f"{key.split('/')[-2]} approximate rank, {k}": _final(hist[k][key]) for key in RANK_DIFFS for k in RUNS}}
    corr = _corr(hist["high_epochs"][RANK], hist["high_epochs"][OUTSIDE])
    e_lo, e_hi = config.train.low_epochs.agent.epochs, t.agent.epochs
    claims = [
        Claim(f"feature rank is lower with more epochs ({e_hi} vs {e_lo})", "rank(low) - rank(high)",
              rank["low_epochs"] - rank["high_epochs"], "rank collapses faster with more epochs (Fig. 1, 3)"),
        Claim("dead units grow with more epochs", "dead fraction(high) - dead fraction(low)",
              dead["high_epochs"] - dead["low_epochs"], "more dead / collapsed units with more epochs",
              note=f"{t.agent.activation} units"),
        Claim("trust-region violations grow as the rank falls", "corr(rank, fraction outside clip) over training",
              corr, "ratios below the clip range grow as rank collapses (Fig. 4)", direction="less",
              note="0 where the rank or the violations did not move"),
        Claim("PFO mitigates rank collapse", "rank(PFO) - rank(high)", rank["high_epochs_pfo"] - rank["high_epochs"],
              "PFO keeps the rank up (Fig. 6)"),
        Claim("PFO mitigates trust-region violations", "outside(high) - outside(PFO)",
              outside["high_epochs"] - outside["high_epochs_pfo"], "fewer violations with PFO (Fig. 6)"),
        Claim("plasticity is lost during training", "plasticity policy loss: last - first snapshot",
              plast["high_epochs"][:, -1] - plast["high_epochs"][:, 0], "plasticity loss rises (Fig. 5)"),
    ]
    curves = [(key, label) for key, label in CURVES if all(key in hist[k] for k in RUNS)]
    cols = min(3, len(curves))
    rows = -(-len(curves) // cols)
    fig, axes = plotting.plt.subplots(rows, cols, figsize=(4.5 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.ravel()[len(curves):]:
        ax.axis("off")
    for ax, (key, label) in zip(axes.ravel(), curves):
        for k in RUNS:
            plotting.seed_curves(ax, hist[k][STEPS], hist[k][key], label=k)
        ax.set(xlabel="env steps (every logged update)", ylabel=label)
        ax.legend(fontsize="small")
    fig.tight_layout()
    plotting.save(fig, os.path.join(run_dir, "figures", "rank_and_trust_region.png"))
    figures = [("feature rank, dead units, trust-region violations (and gradient / weight norms where logged) per "
                "logged update vs env steps", "figures/rank_and_trust_region.png")]
    for k in RUNS:
        figures += run_figures(run_dir, k)
    a = t.agent
    setting = [("algorithm", f"PPO on {t.env.name} ({t.env.backend}), {t.num_seeds} seeds vmapped, "
                             f"{a.num_envs} envs x {a.unroll_length} steps, {a.num_minibatches} minibatches, "
                             f"{a.hidden_sizes} {a.activation}"),
               ("runs", f"epochs {e_lo} / {e_hi} / {e_hi} + PFO (coef {config.train.high_epochs_pfo.agent.pfo_coef}, "
                        f"{config.train.high_epochs_pfo.agent.pfo})"),
               ("training", f"{t.total_steps:,} steps; diagnostics every {a.log_every} iterations on "
                            f"{a.log_samples} samples and on the last, stored per logged update "
                            f"({hist['high_epochs'][STEPS].size} updates)"),
               ("plasticity probe", f"{config.plasticity.plasticity.num_envs} x "
                                    f"{config.plasticity.plasticity.num_steps} observations, "
                                    f"{config.plasticity.plasticity.epochs} epochs")]
    return Report(
        title=f"Representation study ({config.scale})", source=SOURCE,
        measures=__doc__.split("\n\n")[1].replace("\n", " "), setting=setting, reductions=list(config.reductions),
        seeds=seeds, tables=tables, claims=claims, figures=figures, commands=[])
