"""Policy-gradient subspaces over a run's snapshots (Schneider et al., ICLR 2024; reference B.2-B.5): the command
line of `rlland.curvature.run_analysis.analyse_run` (what it computes; the ``subspaces.h5`` layout is
`rlland.curvature.layout`, the figures `rlland.curvature.figures`).

    python experiments/subspaces.py --run_dir=runs/td3-hopper-seed0
    python experiments/subspaces.py --config=configs/subspaces.py:td3/hopper/quick      # runs/td3-hopper-seed0
    python experiments/subspaces.py --config=configs/subspaces.py:quick --run_dir=runs/quickstart \
        --config.steps="(10240, 20480)" --config.seeds="(0, 1)" --config.k=50 --config.num_iters=150
"""
import os

from absl import flags

from rlland import cli, runs, sweep
from rlland.curvature import layout, run_analysis

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "subspaces.py")
_CONFIG = cli.define_config(_DEFAULT, "subspace analysis config file (path[:study|quick])")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory written by experiments/train.py (default: the "
                                               "config's run_dir, set by the <algo>/<env> presets)")


def main(argv):
    del argv
    for run_dir in sweep.analysis_dirs(runs.resolve_run_dir(_RUN_DIR.value, _CONFIG.value)):  # sweep: each point
        path = run_analysis.analyse_run(_CONFIG.value, run_dir)
        print(layout.summary(layout.read_h5(path)[0]))


if __name__ == "__main__":
    cli.main(main, _DEFAULT)
