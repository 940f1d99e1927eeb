"""Post-update-CVaR rejection training from a snapshot (Rahn et al. 2023, Algorithm 1; reference A.7).

    python experiments/reject.py --run_dir=runs/td3-hopper-seed0 --config.step=50000
    python experiments/reject.py --run_dir=runs/td3-hopper-seed0 --config.step=50000 --config.heuristic=none \\
        --config.seeds="(0, 1)" --config.num_repeats=10 --config.max_steps=40 --config.num_samples=1000

Writes <run_dir>/reject.h5 and figures/reject_step_<step>.png, and logs the curves to wandb. Settings: configs/reject.py.
"""
import os

from absl import flags

from rlland import cli, runs, sweep
from rlland.landscape import analysis

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "reject.py")
_CONFIG = cli.define_config(_DEFAULT, "reject settings (configs/reject.py)")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory written by experiments/train.py (default: the "
                                               "config's run_dir, set by the <algo>/<env> presets)")


def main(argv):
    del argv
    config = _CONFIG.value
    run_dir = runs.resolve_run_dir(_RUN_DIR.value, config)
    analysis.analyse_rejection(config, run_dir)
    print(f"wrote results and figures into {', '.join(sweep.analysis_dirs(run_dir))}")


if __name__ == "__main__":
    cli.main(main, _DEFAULT)
