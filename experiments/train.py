"""Train a batch of seeds from an ml_collections config.

    python experiments/train.py                                   # the quickstart run
    python experiments/train.py --config=configs/train.py:td3/hopper --config.num_seeds=20 \
        --config.agent.learning_rate=1e-3 --run_dir=runs/td3-hopper
    python experiments/train.py --config=configs/train.py:td3/hopper --config.num_seeds=5 \
        --config.sweep.learning_rate="(1e-4,3e-4,1e-3)"           # 3 points x 5 seeds in one kernel
    python experiments/train.py ... --distributed --coordinator_address=host0:1234 --num_processes=2 --process_id=0

Re-running with the same --run_dir resumes from its latest checkpoint (a different config is refused unless
--force). Writes config.json, checkpoints/, snapshots/, metrics.h5, wandb/ and figures/ into the run directory
(a sweep also writes points/<p>/, one view per point for the analyses; see rlland.sweep).
A mistyped override (``--config.agent.learning_rat=...``) stops before anything runs, listing the valid keys.
--distributed runs this process as one of several on jax.distributed (rlland.distributed): the coordinator
address, number of processes and process id come from the flags, else JAX_COORDINATOR_ADDRESS /
JAX_NUM_PROCESSES / JAX_PROCESS_ID, else from the cluster (SLURM, Open MPI) as jax.distributed detects it.
"""
import os

from absl import flags

from rlland import cli, distributed, sweep, train

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "train.py")
_CONFIG = cli.define_config(_DEFAULT, "training config file (path[:algo/env])")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory (default: config.run_dir or runs/<algo>-<env>-seed<s>)")
_FORCE = flags.DEFINE_bool("force", False, "resume a run directory even if its config differs")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "one of several processes on jax.distributed (each runs "
                                                       "this same command; only process 0 writes logs)")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "with --distributed: process 0's host:port "
                                                                "(default $JAX_COORDINATOR_ADDRESS or the cluster's)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "with --distributed: number of processes "
                                                             "(default $JAX_NUM_PROCESSES or the cluster's)")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "with --distributed: this process's id "
                                                       "(default $JAX_PROCESS_ID or the cluster's)")


def main(argv):
    del argv
    if _DISTRIBUTED.value:
        distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    result = train.run(_CONFIG.value, run_dir=_RUN_DIR.value, force=_FORCE.value)
    if not distributed.is_primary():
        return
    returns = result.eval_return_mean[:, -1] if result.eval_returns.size else []
    if result.points and len(returns):
        for p, point_returns in enumerate(result.by_point(returns)):
            print(f"point {p} ({sweep.label(result.points[p])}): final eval return per seed: "
                  f"{[round(float(r), 1) for r in point_returns]}")
        print(f"done: {result.run_dir} ({len(result.points)} points; analyse them in "
              f"{os.path.join(result.run_dir, sweep.POINTS_DIR)}/<p>)")
    else:
        print(f"done: {result.run_dir}  final eval return per seed: {[round(float(r), 1) for r in returns]}")
    if (result.diverged_at >= 0).any():
        bad = [int(s) for s in (result.diverged_at >= 0).nonzero()[0]]
        print(f"diverged: {'members' if result.points else 'seeds'} {bad} at env steps "
              f"{[int(result.diverged_at[s]) for s in bad]} (non-finite parameters or losses; their returns are "
              "NaN, not scores)")
    print(f"learning curve: {os.path.join(result.run_dir, 'figures', 'learning_curve.png')}")


if __name__ == "__main__":
    cli.main(main, _DEFAULT)
