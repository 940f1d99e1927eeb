"""Sinks for chunk outputs: ``metrics.h5`` (learning curves with a seed axis) and wandb (one run per seed).

``metrics.h5`` layout (rewritten atomically from the host-side history after every evaluation)::

    eval/steps            [E]             env steps (per seed) at each evaluation
    eval/return_mean      [S, E]          mean deterministic return per seed
    eval/returns          [S, E, n]       every evaluation episode's return
    train/steps           [C]             env steps at the end of each chunk
    train/<metric>        [S, C]          chunk-mean of each training metric (episode_return: mean over the
                                          episodes that ended in the chunk, NaN if none did)
    attrs: config (JSON), compile_seconds
"""
from __future__ import annotations

import json
import os

import h5py
import numpy as np


def write_h5(path: str, history: dict[str, np.ndarray], attrs: dict | None = None) -> None:
    """Write ``history`` (keys like ``eval/returns``) to ``path`` atomically."""
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        for key, value in history.items():
            f.create_dataset(key, data=np.asarray(value))
        for key, value in (attrs or {}).items():
            f.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value)
    os.replace(tmp, path)


def read_h5(path: str) -> tuple[dict[str, np.ndarray], dict]:
    with h5py.File(path, "r") as f:
        data = {}
        f.visititems(lambda name, obj: data.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return data, dict(f.attrs)


class WandbSink:
    """One wandb run per seed, grouped under the experiment; ``mode`` online | offline | disabled."""

    def __init__(self, run_dir: str, group: str, num_seeds: int, config: dict, mode: str = "offline",
                 project: str = "rlland", entity: str | None = None):
        self.runs = []
        if mode == "disabled":
            return
        import wandb

        os.makedirs(os.path.join(run_dir, "wandb"), exist_ok=True)
        for seed in range(num_seeds):
            self.runs.append(wandb.init(project=project, entity=entity or None, group=group, name=f"seed{seed}",
                                        id=f"{group}-seed{seed}", dir=run_dir, mode=mode, resume="allow",
                                        config=config | {"seed_index": seed}, reinit="create_new"))

    def log(self, step: int, per_seed: dict[str, np.ndarray]) -> None:
        """``per_seed`` maps metric names to arrays with a leading seed axis."""
        for seed, run in enumerate(self.runs):
            run.log({k: float(np.asarray(v)[seed]) for k, v in per_seed.items()}, step=int(step))

    def finish(self) -> None:
        for run in self.runs:
            run.finish()
        self.runs = []
