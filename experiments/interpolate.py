"""PURDs along linear interpolation paths between snapshots (Rahn et al. 2023; reference A.6).

    python experiments/interpolate.py --run_dir=runs/td3-hopper-seed0
    python experiments/interpolate.py --run_dir=runs/td3-hopper-seed0 --config.pairs="('0:50000-0:550000',)" \\
        --config.num_points=100 --config.num_samples=100 --config.noise_scale=3e-4

Writes <run_dir>/interpolation.h5, figures/interpolation.png and figures/interpolation_heatmap.png. Settings: configs/interpolate.py.
"""
import os

from absl import flags

from rlland import cli, runs, sweep
from rlland.landscape import analysis

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "interpolate.py")
_CONFIG = cli.define_config(_DEFAULT, "interpolate settings (configs/interpolate.py)")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory written by experiments/train.py (default: the "
                                               "config's run_dir, set by the <algo>/<env> presets)")
_RUN_DIR_B = flags.DEFINE_string("run_dir_b", None, "run directory of policy B (default: --run_dir)")


def main(argv):
    del argv
    config = _CONFIG.value
    run_dir = runs.resolve_run_dir(_RUN_DIR.value, config)
    if _RUN_DIR_B.value:
        config.run_dir_b = _RUN_DIR_B.value
    analysis.analyse_interpolation(config, run_dir)
    print(f"wrote results and figures into {', '.join(sweep.analysis_dirs(run_dir))}")


if __name__ == "__main__":
    cli.main(main, _DEFAULT)
