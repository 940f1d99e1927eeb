"""What every study shares: the run directory, training stages through the drivers, the reproduce commands and
the report stage. The studies themselves are `rlland.studies.return_landscapes`, ``pg_subspaces``,
``representation``, ``linear_regions`` and ``dqd``; `run` runs one from its config (``configs/study.py``).

Study run directory::

    config.json            the study's config (a different one is refused unless forced)
    stages/<stage>.json    a marker per finished stage (`rlland.studies.stages`)
    <label>/               one driver run directory per training (config.json, snapshots/, metrics.h5 or qd.h5,
                           figures/) holding its analyses' h5 files and figures (purd.h5, subspaces.h5, ...)
    figures/               the study's own figures
    report.md, report.html the report (`rlland.studies.report`)
"""
from __future__ import annotations

import importlib
import os
import shlex
from typing import Any, Callable

import ml_collections
import numpy as np

from rlland import configs as config_files, runs, sweep, train
from rlland.qd import driver as qd_driver
from rlland.studies import report as report_lib
from rlland.studies.stages import Stage, fraction_hook, run_stages

STUDIES = ("return_landscapes", "pg_subspaces", "representation", "linear_regions", "dqd")
SCALES = ("smoke", "cpu", "paper")
RESUMABLE = ("progress", "run_dir", "force")


def module(study: str):
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r}; valid: {', '.join(STUDIES)}")
    return importlib.import_module(f"rlland.studies.{study}")


def default_run_dir(config) -> str:
    return config.get("run_dir") or f"runs/study-{config.study}-{config.scale}"


# -- stages shared by the studies -----------------------------------------------------------------------------
def train_stage(run_dir: str, label: str, config: ml_collections.ConfigDict) -> Stage:
    """Train every seed of ``config`` (one vmapped batch, `rlland.train.run`) into ``<run_dir>/<label>``."""
    def fn(progress):
        c = ml_collections.ConfigDict(config.to_dict())
        c.progress = False
        result = train.run(c, run_dir=os.path.join(run_dir, label),
                           hooks=[fraction_hook(progress, int(c.total_steps))])
        final = result.eval_return_mean[:, -1] if result.eval_returns.size else np.full(c.num_seeds, np.nan)
        return {"final_eval_return": [float(x) for x in final], "diverged_at": result.diverged_at.tolist()}
    return Stage(f"train_{label}", fn, f"train {config.algo} on {config.env.name}, {config.num_seeds} seeds")


def qd_stage(run_dir: str, label: str, config: ml_collections.ConfigDict) -> Stage:
    """Every seed of one QD algorithm (one vmapped batch, `rlland.qd.driver.run`) into ``<run_dir>/<label>``."""
    def fn(progress):
        c = ml_collections.ConfigDict(config.to_dict())
        c.progress = False
        total = qd_driver.num_chunks(c) * int(c.generations_per_chunk)
        result = qd_driver.run(c, run_dir=os.path.join(run_dir, label), hooks=[fraction_hook(progress, total)])
        return {"final_qd_score": np.asarray(result.history["qd_score"])[:, -1].tolist()}
    return Stage(f"qd_{label}", fn, f"{config.algo} on {config.task.name}, {config.num_seeds} seeds")


def analysis_stage(name: str, fn: Callable[[], Any], description: str = "") -> Stage:
    """A stage calling one library analysis (which resumes by itself); its result is not kept in the marker."""
    def run(progress):
        del progress
        fn()
        return {}
    return Stage(name, run, description)


def run_figures(run_dir: str, label: str) -> list[tuple[str, str]]:
    """(caption, path relative to ``run_dir``) of every PNG the driver and the analyses wrote into
    ``<run_dir>/<label>/figures`` (their names are the analyses' own)."""
    d = os.path.join(run_dir, label, "figures")
    names = sorted(n for n in os.listdir(d) if n.endswith(".png")) if os.path.isdir(d) else []
    return [(f"{label}: {os.path.splitext(n)[0].replace('_', ' ')}", f"{label}/figures/{n}") for n in names]


# -- commands -------------------------------------------------------------------------------------------------
def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def _flag_value(v) -> str:
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(_flag_value(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)


def commands(config, run_dir: str) -> list[str]:
    """The command that reproduces this study (its preset plus every key that differs from it), then resumes."""
    preset = _flatten(runs.jsonable(config_files.load("study", f"{config.study}/{config.scale}")))
    mine = _flatten(runs.jsonable(config))
    args = [f"--config=configs/study.py:{config.study}/{config.scale}", f"--run_dir={run_dir}"]
    args += [f"--config.{k}={_flag_value(v)}" for k, v in sorted(mine.items())
             if k not in RESUMABLE and preset.get(k, object()) != v]
    cmd = "python experiments/study.py " + " ".join(shlex.quote(a) for a in args)
    return [cmd, "# the same command again resumes a killed study (finished stages are skipped);",
            "# the trainings and analyses are the library calls named in the stages of rlland.studies."
            f"{config.study}"]


def report_stage(config, run_dir: str, build: Callable[[], report_lib.Report]) -> Stage:
    def fn(progress):
        del progress
        r = build()
        r.commands = commands(config, run_dir)
        report_lib.write(r, run_dir)
        return {c.statistic: {"verdict": c.verdict, "values": [float(x) for x in np.ravel(c.values)]}
                for c in r.claims}
    return Stage("report", fn, "report.md and report.html")


# -- running a study ------------------------------------------------------------------------------------------
def run(config: ml_collections.ConfigDict, run_dir: str | None = None, force: bool | None = None) -> dict:
    """Run (or resume) the study of ``config`` (``configs/study.py``); returns ``{stage: result}`` with the
    report's paths under ``"report.md"`` / ``"report.html"``."""
    config = ml_collections.ConfigDict(config.to_dict())
    run_dir = run_dir or default_run_dir(config)
    force = bool(config.get("force", False)) if force is None else force
    study = module(config.study)
    runs.prepare_run_dir(run_dir, config, force, resumable=RESUMABLE)
    runs.write_config(run_dir, config)
    if any(sweep.spec(t) for t in (config.get("train", None) or {}).values()):
        return _run_sweep(config, run_dir, study)
    stages = study.stages(config, run_dir) + [report_stage(config, run_dir, lambda: study.report(config, run_dir))]
    out = run_stages(run_dir, stages, desc=f"{config.study}/{config.scale}", progress=bool(config.progress))
    out["report.md"], out["report.html"] = (os.path.join(run_dir, n) for n in ("report.md", "report.html"))
    return out


def _run_sweep(config, run_dir: str, study) -> dict:
    """A study whose trainings (``config.train.<label>.sweep``) are sweeps: every training runs once, all its
    points in one kernel; then the study's analyses and report run once per point, in ``<run_dir>/points/<p>/``
    whose ``<label>`` links to that point's view (`rlland.sweep`) of each swept training (an unswept one links
    to the whole run). The swept trainings must have the same number of points; point p of each goes together.
    Returns ``{"points": [each point's result], "_ran": [...], "report.md"/"report.html": [paths]}``."""
    counts = {label: len(sweep.points(t)) for label, t in config.train.items() if sweep.spec(t)}
    if len(set(counts.values())) > 1:
        raise ValueError(f"the swept trainings of a study need the same number of points; got {counts}")
    num_points = next(iter(counts.values()))
    trainings = [s for s in study.stages(config, run_dir) if s.name.startswith(("train_", "qd_"))]
    out = {"_ran": list(run_stages(run_dir, trainings, desc=f"{config.study}/{config.scale} trainings",
                                   progress=bool(config.progress))["_ran"]), "points": []}
    for p in range(num_points):
        pdir = os.path.join(run_dir, sweep.POINTS_DIR, str(p))
        pconfig = ml_collections.ConfigDict(config.to_dict())
        for label, t in config.train.items():
            if label in counts:
                pconfig.train[label] = sweep.with_point(t, sweep.points(t)[p])
        os.makedirs(pdir, exist_ok=True)
        for label in list(config.get("train", {}).keys()) + list(config.get("qd", {}).keys()):
            link, target = os.path.join(pdir, label), os.path.join(run_dir, label)
            target = sweep.point_dir(target, p) if label in counts else target
            if not os.path.lexists(link):
                os.symlink(os.path.relpath(target, pdir), link)
        runs.write_config(pdir, pconfig)
        stages = [s for s in study.stages(pconfig, pdir) if not s.name.startswith(("train_", "qd_"))]
        stages.append(report_stage(pconfig, pdir, lambda c=pconfig, d=pdir: study.report(c, d)))
        result = run_stages(pdir, stages, desc=f"{config.study}/{config.scale} point {p}",
                            progress=bool(config.progress))
        out["_ran"] += [f"points/{p}/{name}" for name in result.pop("_ran")]
        out["points"].append(result)
    out["report.md"], out["report.html"] = ([os.path.join(run_dir, sweep.POINTS_DIR, str(p), n)
                                             for p in range(num_points)] for n in ("report.md", "report.html"))
    return out
