"""PURDs along linear interpolation paths between snapshots (Rahn et al. 2023; reference A.6).

    python experiments/interpolate.py --run_dir=runs/td3-hopper-seed0
    python experiments/interpolate.py --run_dir=runs/td3-hopper-seed0 --config.pairs="('0:50000-0:550000',)" \\
        --config.num_points=100 --config.num_samples=100 --config.noise_scale=3e-4

Writes <run_dir>/interpolation.h5 and figures/interpolation.png. Settings: configs/interpolate.py.
"""
import os

from absl import flags

from rlland import cli
from rlland.landscape import analysis

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "interpolate.py")
_CONFIG = cli.define_config(_DEFAULT, "interpolate settings (configs/interpolate.py)")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory written by experiments/train.py", required=True)
_RUN_DIR_B = flags.DEFINE_string("run_dir_b", None, "run directory of policy B (default: --run_dir)")


def main(argv):
    del argv
    config = _CONFIG.value
    if _RUN_DIR_B.value:
        config.run_dir_b = _RUN_DIR_B.value
    analysis.analyse_interpolation(config, _RUN_DIR.value)
    print(f"wrote results and figures into {_RUN_DIR.value}")


if __name__ == "__main__":
    cli.main(main, _DEFAULT)
