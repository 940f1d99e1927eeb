"""Quality-diversity runs (MAP-Elites, PGA-ME, CMA-MEGA (ES), CMA-MEGA (TD3, ES), ME-ES) on the Brax QD tasks,
seeds vmapped, from an ml_collections config.

    python experiments/qd.py                                         # the quick PGA-ME hopper run
    python experiments/qd.py --config=configs/qd.py:pga_me/hopper    # the study's PGA-ME hopper (1M evaluations)
    python experiments/qd.py --config=configs/qd.py:map_elites/walker2d --config.num_seeds=2 --run_dir=runs/me-w

Re-running with the same --run_dir resumes from its latest checkpoint (a different config is refused unless
--force; total_evals may change). Writes config.json, checkpoints/, qd.h5 (metrics vs evaluations, [seed, chunk]),
wandb/ and figures/ (archive heatmaps per seed, QD curves) into the run directory. Layout: rlland.qd.driver.
"""
import os

from absl import flags

from rlland import cli
from rlland.qd import driver

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "qd.py")
_CONFIG = cli.define_config(_DEFAULT, "QD config file (path[:algo/task[/quick]])")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory (default: config.run_dir or runs/qd-<algo>-<task>-...)")
_FORCE = flags.DEFINE_bool("force", False, "resume a run directory even if its config differs")
_MAX_CHUNKS = flags.DEFINE_integer("max_chunks", None, "stop after this many chunks (resume later)")


def main(argv):
    del argv
    result = driver.run(_CONFIG.value, run_dir=_RUN_DIR.value, force=_FORCE.value, max_chunks=_MAX_CHUNKS.value)
    h = result.history
    print(f"done: {result.run_dir}  ({'complete' if result.complete else 'stopped early; re-run to resume'})")
    print(f"  evaluations {int(h['evaluations'][0, -1])}  QD score per seed "
          f"{[round(float(q), 1) for q in h['qd_score'][:, -1]]}  coverage "
          f"{[round(float(c), 3) for c in h['coverage'][:, -1]]}")
    if "final/mean_elite_robustness" in h:
        print(f"  mean elite robustness per seed {[round(float(r), 2) for r in h['final/mean_elite_robustness']]}")
    print(f"  metrics: {os.path.join(result.run_dir, 'qd.h5')}  figures: {os.path.join(result.run_dir, 'figures')}")


if __name__ == "__main__":
    cli.main(main, _DEFAULT)
