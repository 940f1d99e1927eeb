"""One study end to end: train every seed, run every analysis, write the report.

    python experiments/study.py --config=configs/study.py:return_landscapes/cpu
    python experiments/study.py --config=configs/study.py:dqd/smoke --run_dir=runs/dqd-smoke

Studies: return_landscapes, pg_subspaces, representation, linear_regions, dqd; scales: smoke, cpu (default),
paper. Writes one run directory (the drivers' runs, the analyses' h5 files, figures, report.md, report.html).
Re-running the same command resumes a killed study: finished stages are skipped, the stage in flight resumes.
Trainings that are sweeps (e.g. ``--config.train.td3.sweep.learning_rate="(1e-4,1e-3)"``) train once, every point
in one kernel; the analyses and a report then run per point, in <run_dir>/points/<p>/ (rlland.studies.pipeline).
"""
import os

from absl import flags

from rlland import cli

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "study.py")
_CONFIG = cli.define_config(_DEFAULT, "study config file (path:<study>[/<scale>])")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory (default: config.run_dir)")
_FORCE = flags.DEFINE_bool("force", False, "resume a study directory even if its config differs")


def main(argv):
    del argv
    from rlland import studies

    out = studies.run(_CONFIG.value, run_dir=_RUN_DIR.value, force=_FORCE.value)
    ran = out.pop("_ran")
    print(f"stages run now: {', '.join(ran) or 'none (the study was finished)'}")
    for p, point in enumerate(out.get("points", [out])):  # a study of sweeps: one report per point
        for name, result in point.get("report", {}).items():
            print(f"{'' if 'points' not in out else f'point {p}: '}{name}: {result['verdict']}")
    print(f"report: {out['report.md']} and {out['report.html']}")


if __name__ == "__main__":
    cli.main(main, _DEFAULT + ":return_landscapes/cpu")
