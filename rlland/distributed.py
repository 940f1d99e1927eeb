"""Many processes on ``jax.distributed``: one process per host (or per GPU), one global device mesh.

    python experiments/train.py --distributed --coordinator_address=host0:1234 --num_processes=4 --process_id=$i

Every process runs the same driver on the same config; the member (point x seed) axis is sharded over the
global mesh (`rlland.sharding`), so each process computes its own members and the kernels' cross-seed reductions
(`rlland.seed_axis`) are collectives. Host-side numbers (chunk metrics, evaluation returns) are gathered onto
every process (`to_host`), so every process keeps the same history and takes the same decisions; orbax writes
checkpoints and snapshots from all processes (each its own shards; the directory must be shared); only process 0
(`is_primary`) writes config.json, metrics.h5, figures and wandb. A run killed in any process is resumed by
launching every process again with the same command: orbax finalises a checkpoint only once every process has
written its part, so the latest finished checkpoint is whole.

`initialize` takes the coordinator address, the number of processes and this process's id from its arguments,
else from ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``, else leaves them to JAX's
cluster detection (SLURM, Open MPI, Kubernetes, TPU pods: ``jax.distributed.initialize()`` with no arguments).
"""
from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

ENV_VARS = {"coordinator_address": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES",
            "process_id": "JAX_PROCESS_ID"}


def settings(coordinator_address: str | None = None, num_processes: int | None = None,
             process_id: int | None = None, environ=None) -> dict:
    """The arguments for ``jax.distributed.initialize``: those given, else the environment variables of
    `ENV_VARS`; missing ones are left out (JAX then detects a cluster scheduler)."""
    environ = os.environ if environ is None else environ
    given = {"coordinator_address": coordinator_address, "num_processes": num_processes, "process_id": process_id}
    out = {}
    for name, value in given.items():
        if value is None or value == "":
            value = environ.get(ENV_VARS[name]) or None
        if value is not None:
            out[name] = value if name == "coordinator_address" else int(value)
    if "num_processes" in out and not out["num_processes"] >= 1:
        raise ValueError(f"num_processes must be >= 1, got {out['num_processes']}")
    if "process_id" in out and "num_processes" in out and not 0 <= out["process_id"] < out["num_processes"]:
        raise ValueError(f"process_id must lie in [0, {out['num_processes']}), got {out['process_id']}")
    return out


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, **kwargs) -> dict:
    """``jax.distributed.initialize`` with `settings`; call it before any JAX computation. On CPU it selects
    gloo for cross-process collectives. Returns the settings used."""
    args = settings(coordinator_address, num_processes, process_id)
    try:  # CPU collectives across processes (the GPU backends bring their own)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, KeyError, ValueError):
        pass
    jax.distributed.initialize(**args, **kwargs)
    return args


def is_multiprocess() -> bool:
    return jax.process_count() > 1


def is_primary() -> bool:
    """Whether this process writes the run's host-side files (config, metrics.h5, figures, wandb)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process gets here (nothing with one process)."""
    if is_multiprocess():
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def to_host(tree: Any) -> Any:
    """Every leaf as a numpy array holding the global value (gathered from every process when the array spans
    several; ``np.asarray`` otherwise)."""
    if not is_multiprocess():
        return jax.tree.map(np.asarray, tree)
    from jax.experimental import multihost_utils

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(one, tree)
