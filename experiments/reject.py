"""Post-update-CVaR rejection training from a snapshot (Rahn et al. 2023, Algorithm 1; reference A.7).

    python experiments/reject.py --run_dir=runs/td3-hopper-seed0 --config.step=50000
    python experiments/reject.py --run_dir=runs/td3-hopper-seed0 --config.step=50000 --config.heuristic=none \\
        --config.seeds="(0, 1)" --config.num_repeats=10 --config.max_steps=40 --config.num_samples=1000

Writes <run_dir>/reject.h5 and figures/reject_step_<step>.png. Settings: configs/reject.py.
"""
import os

from absl import flags

from rlland import cli
from rlland.landscape import analysis

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "reject.py")
_CONFIG = cli.define_config(_DEFAULT, "reject settings (configs/reject.py)")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory written by experiments/train.py", required=True)


def main(argv):
    del argv
    config = _CONFIG.value
    analysis.analyse_rejection(config, _RUN_DIR.value)
    print(f"wrote results and figures into {_RUN_DIR.value}")


if __name__ == "__main__":
    cli.main(main, _DEFAULT)
