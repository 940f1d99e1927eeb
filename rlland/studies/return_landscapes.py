"""Return landscapes (Rahn, D'Oro, Wiltzer, Bacon, Bellemare, NeurIPS 2023; reference
``landscapes-and-subspaces.md`` A): what one policy update does to a policy's return.

Stages: train TD3 (`rlland.train.run`, seeds vmapped; ``config.train.td3``, the study's A.1 defaults at paper
scale), then on its snapshots (`rlland.landscape.analysis`): post-update return distributions (PURDs: one actor
step on a replay minibatch, one fixed-start rollout per sample; ``purd.h5``), PURDs along linear paths between
checkpoints of one seed and between seeds (Gaussian parameter noise 3e-4; ``interpolation.h5``), and Algorithm 1,
CVaR-rejection training, against plain training with the same proposals (heuristic ``none``; ``reject.h5``).

Claims tested (each on one number per seed; `rlland.studies.report`):

* PURDs have left tails: LTP (fraction of post-update returns below half the PURD mode) averaged over
  checkpoints > 0;
* LTP varies across the checkpoints of one run: its standard deviation over checkpoints > 0;
* policies of similar mean return differ in their tails: for the two checkpoints whose PURD means are closest,
  |difference of CVaR_0.1| - |difference of mean| > 0;
* interpolation (the paper's figures): paths between checkpoints of one run dip less below their endpoints than
  paths between runs: (dip between seeds) - (dip within a seed) > 0, dip = min(endpoint means) - min along the
  path, over the seed's pairs (seed s with s + 1 for "between seeds");
* CVaR rejection lowers LTP against plain training at equal proposals: LTP(none) - LTP(cvar) at the last check > 0.
"""
from __future__ import annotations

import itertools
import os

import ml_collections
import numpy as np

from rlland import plotting, runs
from rlland.landscape import analysis, io
from rlland.studies.pipeline import analysis_stage, run_figures, train_stage
from rlland.studies.report import Claim, Report

SOURCE = "Rahn et al., Policy Optimization in a Noisy Neighborhood: On Return Landscapes in Continuous Control, " \
         "NeurIPS 2023"
LABEL = "td3"


def _reject_steps(config, run_dir):
    return [int(s) for s in config.reject_steps] or runs.snapshot_steps(os.path.join(run_dir, LABEL))[:1]


def stages(config, run_dir: str) -> list:
    d = os.path.join(run_dir, LABEL)
    out = [train_stage(run_dir, LABEL, config.train.td3),
           analysis_stage("purd", lambda: analysis.analyse_purd(config.purd, d, verbose=False),
                          "post-update return distributions of every snapshot")]
    same, cross = (ml_collections.ConfigDict(config.interpolate.to_dict()) for _ in range(2))
    same.same_seed = True
    n = int(config.train.td3.num_seeds)
    steps = [int(s) for s in (config.interpolate.steps or config.train.td3.snapshot_steps)]
    # between runs: seed s with seed (s + 1) mod n, every pair of the steps (each seed gets a value)
    cross.pairs = tuple(f"{s}:{a}-{(s + 1) % n}:{b}" for s in (config.interpolate.seeds or range(n))
                        for a, b in itertools.combinations(steps, 2))
    out.append(analysis_stage("interpolation_within_seed", lambda: analysis.analyse_interpolation(same, d, False)))
    if n > 1:
        out.append(analysis_stage("interpolation_between_seeds",
                                  lambda: analysis.analyse_interpolation(cross, d, False)))
    for heuristic in ("cvar", "none"):
        rc = ml_collections.ConfigDict(config.reject.to_dict())
        rc.heuristic = heuristic

        def reject(rc=rc):
            for step in _reject_steps(config, run_dir):
                rc.step = step
                analysis.analyse_rejection(rc, d, verbose=False)
        out.append(analysis_stage(f"reject_{heuristic}", reject, f"Algorithm 1 with heuristic {heuristic}"))
    return out


def _dips(groups: dict, seeds: list[int], same: bool) -> np.ndarray:
    """Per seed: mean over its pairs of min(endpoint means) - min of the mean return along the path."""
    out = []
    for s in seeds:
        vals = []
        for name, g in groups.items():
            if "__" not in name:
                continue
            a, b = name.split("/")[-1].split("__")
            sa, sb = int(a.split("_")[0][4:]), int(b.split("_")[0][4:])
            if sa == s and (sa == sb) == same:
                m = np.asarray(g["undiscounted"], float).mean(-1)
                vals.append(min(m[0], m[-1]) - m.min())
        out.append(np.mean(vals) if vals else np.nan)
    return np.asarray(out)


def report(config, run_dir: str) -> Report:
    d = os.path.join(run_dir, LABEL)
    t = config.train.td3
    seeds = list(range(t.num_seeds))
    groups, _, group_attrs = io.read_h5(os.path.join(d, "purd.h5"))
    by_step = {int(group_attrs[k]["step"]): g for k, g in sorted(groups.items())
               if k.split("/")[0] == config.purd.operator and "step" in group_attrs.get(k, {})}
    steps = sorted(by_step)
    if not steps:
        raise ValueError(f"{d}/purd.h5 holds no PURD of operator {config.purd.operator!r}")
    purd = {k: np.stack([by_step[s][k] for s in steps], 1)
            for k in ("mean", "ltp", "cvar", "std", "pre_update")}  # [S, T]
    table = {"PURD mean (over checkpoints)": purd["mean"].mean(1), "PURD std": purd["std"].mean(1),
             "LTP (mean over checkpoints)": purd["ltp"].mean(1), "LTP std over checkpoints": purd["ltp"].std(1),
             f"CVaR_{config.purd.alpha} (mean over checkpoints)": purd["cvar"].mean(1),
             "pre-update return (mean over checkpoints)": purd["pre_update"].mean(1)}
    per_step = {f"LTP at step {s}": purd["ltp"][:, j] for j, s in enumerate(steps)}
    close = []
    for i in seeds:
        m = purd["mean"][i]
        if len(m) < 2:
            close.append(np.nan)
            continue
        diff = np.abs(m[:, None] - m[None, :]) + np.diag(np.full(len(m), np.inf))
        a, b = np.unravel_index(np.argmin(diff), diff.shape)
        close.append(abs(purd["cvar"][i, a] - purd["cvar"][i, b]) - abs(m[a] - m[b]))
    igroups, _, _ = io.read_h5(os.path.join(d, "interpolation.h5"))
    within, between = _dips(igroups, seeds, True), _dips(igroups, seeds, False)
    interp = {"dip below endpoints, within a seed": within, "dip below endpoints, between seeds": between}
    rgroups, _, rattrs = io.read_h5(os.path.join(d, "reject.h5"))
    rsteps = _reject_steps(config, run_dir)
    def last_ltp(heuristic):
        found = {int(rattrs[k]["step"]): g for k, g in sorted(rgroups.items())
                 if k.split("/")[0] == heuristic and "step" in rattrs.get(k, {})}
        return np.concatenate([found[s]["ltp"][:, -1] for s in rsteps])
    cv, no = last_ltp("cvar"), last_ltp("none")
    reject = {"LTP after rejection training (cvar)": cv, "LTP after plain training (none)": no}

    fig, ax = plotting.plt.subplots(figsize=(6, 4))
    plotting.seed_curves(ax, steps, purd["ltp"], label="LTP")
    ax.set(xlabel="env steps", ylabel="LTP (fraction below half the PURD mode)", title="LTP across checkpoints")
    ax.legend()
    fig.tight_layout()
    plotting.save(fig, os.path.join(run_dir, "figures", "ltp_by_checkpoint.png"))
    figures = [("LTP of every seed across checkpoints (mean and 95% interval)", "figures/ltp_by_checkpoint.png")]
    figures += run_figures(run_dir, LABEL)
    n_rep = int(config.reject.num_repeats)
    claims = [
        Claim("TD3 post-update return distributions have left tails (LTP > 0)", "LTP averaged over checkpoints",
              purd["ltp"].mean(1), "heavy left tails at most checkpoints (Fig. 2-3)"),
        Claim("LTP varies across checkpoints of one run", "std of LTP over checkpoints", purd["ltp"].std(1),
              "LTP ranges widely across checkpoints of one run"),
        Claim("policies of similar mean return differ in their tails",
              "|dCVaR| - |dmean| of the two closest-mean checkpoints", np.asarray(close),
              "similar means, different LTP/CVaR"),
        Claim("paths within a run dip less than paths between runs",
              "dip between seeds - dip within a seed", between - within,
              "interpolation figures: connected within a run, a valley between runs",
              note="say what rlland sees: the per-seed dips are in the interpolation table"),
        Claim("CVaR rejection lowers LTP against plain training at equal steps",
              "LTP(none) - LTP(cvar) after the last check, per rejection run", no - cv,
              "lower LTP with rejection (Sec. 6)", note=f"{n_rep} repeats per seed, values per run"),
    ]
    setting = [("algorithm", f"TD3 on {t.env.name} ({t.env.backend}), {t.num_seeds} seeds vmapped"),
               ("training", f"{t.total_steps:,} steps, snapshots at {list(t.snapshot_steps)}"),
               ("PURD", f"operator {config.purd.operator}, {config.purd.num_samples} samples per checkpoint, "
                        f"fixed start, deterministic rollouts"),
               ("interpolation", f"{config.interpolate.num_points} points x {config.interpolate.num_samples} "
                                 f"samples, parameter noise {config.interpolate.noise_scale}"),
               ("rejection", f"{config.reject.max_steps} proposals, {config.reject.num_samples} samples per "
                             f"check, from steps {rsteps}, {n_rep} repeats per seed")]
    return Report(
        title=f"Return landscapes study ({config.scale})", source=SOURCE,
        measures=__doc__.split("\n\n")[1].replace("\n", " "), setting=setting,
        reductions=list(config.reductions), seeds=seeds,
        tables={"PURD statistics per seed": table, "LTP per checkpoint": per_step, "Interpolation": interp,
                "CVaR rejection (per rejection run)": reject},
        claims=claims, figures=figures, commands=[])
