"""Linear regions of a run's actors over training: the command line of :func:`rlland.regions.analysis.analyse_run`
(what is computed, the ``regions.h5`` layout and the figures: :mod:`rlland.regions.analysis`; settings:
``configs/regions.py``).

    python experiments/train.py --config=configs/train.py:ppo_relu/hopper --run_dir=runs/ppo-hopper-relu
    python experiments/regions.py --run_dir=runs/ppo-hopper-relu
    python experiments/regions.py --run_dir=runs/ppo-hopper-relu --config=configs/regions.py:quick \
        --config.steps="(5996544, 11993088)" --config.seeds="(0, 1)"

The study's protocol is the default (``configs/regions.py``); ``--config.normalizer=snapshot
--config.line_origin=input --config.plane.frame=rlland`` gives rlland's earlier choices. The study's 1-D car
(``car1d``, 2-D states) also gets the picture of its state plane (exact polygons, the study's box); these two
commands made ``docs/regions_car1d_state_plane.png`` (eval return 917.6, where full throttle, full braking and
standing still earn about 950; 72 s and 81 s on the shared 2-core CPU):

    python experiments/train.py --config=configs/train.py:ppo_relu/car1d --run_dir=runs/ppo-car1d-relu \
        --config.agent.hidden_sizes="(16, 16)" --config.agent.num_envs=16 --config.agent.unroll_length=128 \
        --config.agent.num_minibatches=4 --config.total_steps=614400 --config.eval_interval=61440 \
        --config.checkpoint_interval=61440 --config.snapshot_steps="(61440, 614400)"
    python experiments/regions.py --run_dir=runs/ppo-car1d-relu --config=configs/regions.py:car1d
"""
import os

from absl import flags

from rlland import cli, sweep
from rlland.regions import analysis

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "regions.py")
_CONFIG = cli.define_config(_DEFAULT, "regions analysis config file (path[:study|quick|car1d])")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory written by experiments/train.py", required=True)


def main(argv):
    del argv
    for run_dir in sweep.analysis_dirs(_RUN_DIR.value):  # a sweep run: each point in turn
        path = analysis.analyse_run(_CONFIG.value, run_dir)
        print(analysis.summary(analysis.read_h5(path)[0]))


if __name__ == "__main__":
    cli.main(main, _DEFAULT)
