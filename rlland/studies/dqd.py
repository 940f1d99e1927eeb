"""Differentiable quality diversity with approximated gradients (Tjanaka, Fontaine, Togelius, Nikolaidis,
Approximating Gradients for Differentiable Quality Diversity in Reinforcement Learning, GECCO 2022; reference
``representation-regions-qd.md`` C): do approximate policy gradients grow better archives?

Stages: for every task of the study and each of the five algorithms (MAP-Elites, PGA-ME, CMA-MEGA (ES),
CMA-MEGA (TD3, ES), ME-ES), one QD run with all its seeds vmapped (`rlland.qd.driver.run`; ``qd.h5``, archive
heatmaps, final robustness), then one comparison figure per task (`rlland.qd.plotting.compare_runs`: QD score,
coverage and best fitness vs evaluations, mean and 95% interval over seeds).

Claims tested per task on the final QD score (``sum over elites of (f - f_min)``; seed i of every algorithm is a
pair, so differences are per seed index): PGA-ME - MAP-Elites > 0 and CMA-MEGA (TD3, ES) - MAP-Elites > 0 (the
paper: at least as high at equal evaluations), ME-ES - min(the other four) < 0 (ME-ES lowest).
"""
from __future__ import annotations

import os

import numpy as np

from rlland import plotting
from rlland.qd import plotting as qd_plotting
from rlland.sinks import read_h5
from rlland.studies.pipeline import Stage, qd_stage, run_figures
from rlland.studies.report import Claim, Report

SOURCE = "Tjanaka et al., Approximating Gradients for Differentiable Quality Diversity in Reinforcement Learning, " \
         "GECCO 2022"
ALGOS = ("map_elites", "pga_me", "cma_mega_es", "cma_mega_td3_es", "me_es")
# the paper's final QD scores at 1M evaluations, read from dqd-rl's docs/comparison.png (reference C.4)
PAPER_QD = {"ant": dict(pga_me=1.65e6, cma_mega_td3_es=1.48e6, cma_mega_es=1.65e6, map_elites=1.42e6, me_es=0.54e6),
            "halfcheetah": dict(pga_me=4.7e6, cma_mega_td3_es=4.6e6, cma_mega_es=4.45e6, map_elites=4.15e6,
                                me_es=2.3e6),
            "hopper": dict(pga_me=2.05e6, cma_mega_td3_es=1.85e6, cma_mega_es=1.0e6, map_elites=1.83e6, me_es=0.78e6),
            "walker2d": dict(pga_me=1.48e6, cma_mega_td3_es=1.45e6, cma_mega_es=0.37e6, map_elites=0.45e6,
                             me_es=0.1e6)}


def tasks(config) -> list[str]:
    out = []
    for label in config.qd:
        task = label.split("__")[1]
        if task not in out:
            out.append(task)
    return out


def stages(config, run_dir: str) -> list:
    out = [qd_stage(run_dir, label, config.qd[label]) for label in config.qd]

    def compare(progress):
        del progress
        for task in tasks(config):
            labels = [a for a in ALGOS if f"{a}__{task}" in config.qd]
            fig, summary = qd_plotting.compare_runs([os.path.join(run_dir, f"{a}__{task}") for a in labels],
                                                    labels=labels, title=f"{task}")
            plotting.save(fig, os.path.join(run_dir, "figures", f"compare_{task}.png"))
        return {}
    return out + [Stage("compare", compare, "QD score, coverage and best fitness of the algorithms, per task")]


def report(config, run_dir: str) -> Report:
    tables, claims, figures, setting, seeds = {}, [], [], [], []
    for task in tasks(config):
        final = {}
        for algo in ALGOS:
            label = f"{algo}__{task}"
            if label not in config.qd:
                continue
            h, _ = read_h5(os.path.join(run_dir, label, "qd.h5"))
            final[algo] = {"qd_score": np.asarray(h["qd_score"], float)[:, -1],
                           "coverage": np.asarray(h["coverage"], float)[:, -1],
                           "max_fitness": np.asarray(h["max_fitness"], float)[:, -1],
                           "evaluations": np.asarray(h["evaluations"])[:, -1]}
            q = config.qd[label]
            setting.append((label, f"{q.num_seeds} seeds, {q.total_evals:,} evaluations, episodes of "
                                   f"{q.task.episode_length} steps, policy {tuple(q.task.hidden_sizes)}, archive "
                                   f"{tuple(q.archive.grid_shape)}, f_min {q.f_min:g}"))
        seeds = list(range(len(next(iter(final.values()))["qd_score"])))
        tables[f"{task}: final archive"] = {f"{m}, {a}": v[m] for m in ("qd_score", "coverage", "max_fitness")
                                           for a, v in final.items()}
        paper = PAPER_QD.get(task, {})
        ptxt = lambda a: f"{paper[a]:.3g}" if a in paper else "?"  # noqa: E731
        for algo in ("pga_me", "cma_mega_td3_es"):
            if algo in final and "map_elites" in final:
                claims.append(Claim(f"{task}: {algo} QD score at least as high as MAP-Elites",
                                    f"QD({algo}) - QD(map_elites)",
                                    final[algo]["qd_score"] - final["map_elites"]["qd_score"],
                                    f"{ptxt(algo)} vs {ptxt('map_elites')}"))
        if "me_es" in final and len(final) > 1:
            others = np.min([v["qd_score"] for a, v in final.items() if a != "me_es"], axis=0)
            claims.append(Claim(f"{task}: ME-ES has the lowest QD score", "QD(me_es) - min(QD of the others)",
                                final["me_es"]["qd_score"] - others, f"{ptxt('me_es')}, lowest of five",
                                direction="less"))
        figures.append((f"{task}: QD score, coverage and best fitness vs evaluations", f"figures/compare_{task}.png"))
        for algo in ALGOS:
            figures += [f for f in run_figures(run_dir, f"{algo}__{task}") if "qd_curves" in f[1]]
    return Report(
        title=f"DQD study ({config.scale})", source=SOURCE, measures=__doc__.split("\n\n")[1].replace("\n", " "),
        setting=setting, reductions=list(config.reductions), seeds=seeds, tables=tables, claims=claims,
        figures=figures, commands=[])
