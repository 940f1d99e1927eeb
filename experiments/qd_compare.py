"""Compare QD runs (issue 9): QD score, coverage and best fitness vs evaluations, one line per algorithm.

    python experiments/qd_compare.py --run_dirs=runs/qd-pga_me-hopper-seed0,runs/qd-me_es-hopper-seed0 \
        --out=figures/qd_hopper.png

Each run directory is one written by ``experiments/qd.py`` (its ``qd.h5``; layout: rlland.qd.driver). Lines are
labelled by the runs' ``algo`` (or --labels); runs with the same label are pooled as more seeds. Each line is the
mean over seeds with its 95% interval. QD scores written with different f_min are re-offset to a common one
(rlland.qd.plotting.load_runs). Prints the final values.
"""
from absl import flags

from rlland import cli
from rlland.qd import plotting as qd_plotting

_RUN_DIRS = flags.DEFINE_list("run_dirs", None, "comma-separated run directories (each with a qd.h5)")
_LABELS = flags.DEFINE_list("labels", None, "one label per run directory (default: each run's config.algo)")
_OUT = flags.DEFINE_string("out", "qd_compare.png", "output PNG")
_TITLE = flags.DEFINE_string("title", "", "figure title")
_METRICS = flags.DEFINE_list("metrics", list(qd_plotting.COMPARE_METRICS), "metrics of qd.h5 to plot")
_F_MIN = flags.DEFINE_float("f_min", None, "common QD-score offset (default: the lowest f_min of the runs)")


def main(argv):
    del argv
    fig, summary = qd_plotting.compare_runs(_RUN_DIRS.value, labels=_LABELS.value, names=tuple(_METRICS.value),
                                            title=_TITLE.value, f_min=_F_MIN.value)
    path = qd_plotting.save(fig, _OUT.value)
    for label, values in summary.items():
        cells = "  ".join(f"{k} {m:.4g} +- {h:.2g}" for k, (m, h) in ((k, v) for k, v in values.items()
                                                                      if k != "seeds"))
        print(f"{label} ({values['seeds']} seeds): {cells}")
    print(f"figure: {path}")


if __name__ == "__main__":
    flags.mark_flag_as_required("run_dirs")
    cli.main(main)
