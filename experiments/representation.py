"""Representation dynamics of a run (Moalla et al. 2024; reference A.3-A.5): the command line of
`rlland.representation.analysis.analyse_run` (the plasticity probe over the run's snapshots, ``representation.h5``;
figures of feature rank, dead units, trust region and plasticity by `rlland.representation.figures`).

    python experiments/representation.py --run_dir=runs/representation-ppo-ant
    python experiments/representation.py --config=configs/representation.py:quick --run_dir=runs/quickstart \
        --config.steps="(0, 10240)" --config.seeds="(0, 1)" --config.plasticity.data=twin
"""
import os

from absl import flags

from rlland import cli, sweep
from rlland.representation import analysis

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "representation.py")
_CONFIG = cli.define_config(_DEFAULT, "representation analysis config (path[:quick])")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory written by experiments/train.py", required=True)


def main(argv):
    del argv
    for run_dir in sweep.analysis_dirs(_RUN_DIR.value):  # a sweep run: each point in turn
        path = analysis.analyse_run(_CONFIG.value, run_dir)
        print(analysis.summary(analysis.read_h5(path)[0]))


if __name__ == "__main__":
    cli.main(main, _DEFAULT)
