"""Train a batch of seeds from an ml_collections config.

    python experiments/train.py                                   # the quickstart run
    python experiments/train.py --config=configs/train.py:td3/hopper --config.num_seeds=20 \
        --config.agent.learning_rate=1e-3 --run_dir=runs/td3-hopper

Re-running with the same --run_dir resumes from its latest checkpoint (a different config is refused unless
--force). Writes config.json, checkpoints/, snapshots/, metrics.h5, wandb/ and figures/ into the run directory.
A mistyped override (``--config.agent.learning_rat=...``) stops before anything runs, listing the valid keys.
"""
import os

from absl import flags

from rlland import cli, train

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "train.py")
_CONFIG = cli.define_config(_DEFAULT, "training config file (path[:algo/env])")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory (default: config.run_dir or runs/<algo>-<env>-seed<s>)")
_FORCE = flags.DEFINE_bool("force", False, "resume a run directory even if its config differs")


def main(argv):
    del argv
    result = train.run(_CONFIG.value, run_dir=_RUN_DIR.value, force=_FORCE.value)
    returns = result.eval_return_mean[:, -1] if result.eval_returns.size else []
    print(f"done: {result.run_dir}  final eval return per seed: {[round(float(r), 1) for r in returns]}")
    if (result.diverged_at >= 0).any():
        bad = [int(s) for s in (result.diverged_at >= 0).nonzero()[0]]
        print(f"diverged: seeds {bad} at env steps {[int(result.diverged_at[s]) for s in bad]} "
              "(non-finite parameters or losses; their returns are NaN, not scores)")
    print(f"learning curve: {os.path.join(result.run_dir, 'figures', 'learning_curve.png')}")


if __name__ == "__main__":
    cli.main(main, _DEFAULT)
