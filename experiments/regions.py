"""Linear regions of a run's actors over training: the command line of :func:`rlland.regions.analysis.analyse_run`
(what is computed, the ``regions.h5`` layout and the figures: :mod:`rlland.regions.analysis`; settings:
``configs/regions.py``).

    python experiments/train.py --config=configs/train.py:ppo_relu/hopper --run_dir=runs/ppo-hopper-relu
    python experiments/regions.py --run_dir=runs/ppo-hopper-relu
    python experiments/regions.py --run_dir=runs/ppo-hopper-relu --config=configs/regions.py:quick \
        --config.steps="(5996544, 11993088)" --config.seeds="(0, 1)"
"""
import os

from absl import flags

from rlland import cli, sweep
from rlland.regions import analysis

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "regions.py")
_CONFIG = cli.define_config(_DEFAULT, "regions analysis config file (path[:study|quick])")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory written by experiments/train.py", required=True)


def main(argv):
    del argv
    for run_dir in sweep.analysis_dirs(_RUN_DIR.value):  # a sweep run: each point in turn
        path = analysis.analyse_run(_CONFIG.value, run_dir)
        print(analysis.summary(analysis.read_h5(path)[0]))


if __name__ == "__main__":
    cli.main(main, _DEFAULT)
