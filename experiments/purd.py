"""Post-update return distributions (PURDs) of a run's snapshots (Rahn et al. 2023; reference A.4).

    python experiments/purd.py --config=configs/purd.py:td3/hopper      # the original's TD3 operator, runs/td3-hopper-seed0
    python experiments/purd.py --config=configs/purd.py:ppo/hopper/action_noise --run_dir=runs/my-ppo
    python experiments/purd.py --run_dir=runs/td3-hopper-seed0 --config.steps="(50000, 550000)" \\
        --config.seeds="(0, 1)" --config.num_samples=1000 --config.chunk_size=100 --config.operator=param_noise

Writes <run_dir>/purd.h5 (one group per operator, settings and step, with mean / std / mode / LTP / CVaR per seed,
written as each step finishes; a re-run skips finished steps, other settings get their own groups) and
figures/purd_<operator>_<settings id>_{step_<step>,mean_vs_ltp}.png. Settings and presets: configs/purd.py.
"""
import os

from absl import flags

from rlland import cli, runs, sweep
from rlland.landscape import analysis

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "purd.py")
_CONFIG = cli.define_config(_DEFAULT, "purd settings (configs/purd.py)")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory written by experiments/train.py (default: the "
                                               "config's run_dir, set by the <algo>/<env> presets)")


def main(argv):
    del argv
    config = _CONFIG.value
    run_dir = runs.resolve_run_dir(_RUN_DIR.value, config)
    analysis.analyse_purd(config, run_dir)
    print(f"wrote results and figures into {', '.join(sweep.analysis_dirs(run_dir))}")


if __name__ == "__main__":
    cli.main(main, _DEFAULT)
