"""Post-update return distributions (PURDs) of a run's snapshots (Rahn et al. 2023; reference A.4).

    python experiments/purd.py --run_dir=runs/td3-hopper-seed0
    python experiments/purd.py --run_dir=runs/td3-hopper-seed0 --config.steps="(50000, 550000)" \\
        --config.seeds="(0, 1)" --config.num_samples=1000 --config.chunk_size=100 --config.operator=param_noise

Writes <run_dir>/purd.h5 (one group per operator and step, with mean / std / LTP / CVaR per seed, written as each
step finishes; a re-run skips finished steps) and figures/purd_step_<step>.png. Settings: configs/purd.py.
"""
import os

from absl import flags

from rlland import cli
from rlland.landscape import analysis

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "purd.py")
_CONFIG = cli.define_config(_DEFAULT, "purd settings (configs/purd.py)")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory written by experiments/train.py", required=True)


def main(argv):
    del argv
    config = _CONFIG.value
    analysis.analyse_purd(config, _RUN_DIR.value)
    print(f"wrote results and figures into {_RUN_DIR.value}")


if __name__ == "__main__":
    cli.main(main, _DEFAULT)
