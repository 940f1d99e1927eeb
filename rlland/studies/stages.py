"""The stage runner of a study: named stages run in order, each finished one marked on disk.

A study (`rlland.studies`) is a list of `Stage`s: trainings (`rlland.train.run`, `rlland.qd.driver.run`), analyses
(`rlland.landscape.analysis`, `rlland.curvature.run_analysis`, ...) and the report. `run_stages` runs them in order
under ONE progress bar (`rlland.loop.progress_bar`, one unit per stage; a training stage advances it in fractions
through a driver hook) and, after a stage's outputs are written, writes its marker ``stages/<name>.json``
atomically (`rlland.runs.write_json_atomic`): what the stage returned, its seconds and when it finished. A
re-run skips every stage with a marker, so a killed study resumes at the stage it was in; that stage resumes
too, because the drivers resume from their checkpoints and the analyses skip the snapshots already in their h5
files.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable

from rlland import loop, runs

STAGES_DIR = "stages"


@dataclasses.dataclass(frozen=True)
class Stage:
    """``fn(progress)`` runs the stage and returns JSON-able numbers (kept in the marker); ``progress(fraction)``
    moves the study's bar within the stage (0 <= fraction <= 1)."""

    name: str
    fn: Callable[[Callable[[float], None]], dict | None]
    description: str = ""


def marker_path(run_dir: str, name: str) -> str:
    return os.path.join(run_dir, STAGES_DIR, f"{name}.json")


def finished(run_dir: str, name: str) -> dict | None:
    """The marker of a finished stage, or None."""
    path = marker_path(run_dir, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def run_stages(run_dir: str, stages: list[Stage], desc: str = "study", progress: bool = True,
               log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the stages without a marker, in order; returns ``{name: result}`` for every stage (markers' results
    for the stages finished earlier). Returns which stages ran this time under ``"_ran"``."""
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"stage names must be distinct, got {names}")
    os.makedirs(os.path.join(run_dir, STAGES_DIR), exist_ok=True)
    done = {s.name: finished(run_dir, s.name) for s in stages}
    bar = loop.progress_bar(len(stages), sum(m is not None for m in done.values()), "stage", desc, progress)
    results: dict[str, Any] = {"_ran": []}
    try:
        for stage in stages:
            if done[stage.name] is not None:
                results[stage.name] = done[stage.name]["result"]
                continue
            bar.set_postfix_str(stage.name)
            moved = [0.0]

            def advance(fraction: float, moved=moved) -> None:
                fraction = min(max(float(fraction), 0.0), 1.0)
                if fraction > moved[0]:
                    bar.update(fraction - moved[0])
                    moved[0] = fraction

            t0 = time.perf_counter()
            out = stage.fn(advance) or {}
            seconds = time.perf_counter() - t0
            runs.write_json_atomic(marker_path(run_dir, stage.name), {
                "stage": stage.name, "description": stage.description, "seconds": seconds,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "result": out})
            advance(1.0)
            results[stage.name] = out
            results["_ran"].append(stage.name)
            if not progress:
                log(f"stage {stage.name}: done in {seconds:.1f}s")
    finally:
        bar.close()
    return results


def fraction_hook(progress: Callable[[float], None], total: int) -> loop.Hook:
    """A driver hook (`rlland.loop.Hook`) that moves the study's bar to ``position / total`` of the stage."""
    def hook(event: loop.ChunkEnd):
        progress(event.position / max(total, 1))
    return hook
