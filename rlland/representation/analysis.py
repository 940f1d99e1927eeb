"""Representation dynamics of a training run (Moalla et al. 2024; reference ``representation-regions-qd.md``
A.3-A.5): :func:`analyse_run`, the library side of ``experiments/representation.py``.

:mod:`rlland.representation.plasticity` is the probe of ONE snapshot of ONE seed (pure); this module is the host
side of a run: which snapshots and seeds, loading them, the data policy, one ``jit(vmap(vmap(...)))`` over
snapshots x seeds, and the ``representation.h5`` file. The figures are :mod:`rlland.representation.figures`.

Plasticity (on-policy runs, ``not agent.is_off_policy``; :func:`rlland.representation.plasticity`): every selected
snapshot of every selected seed fits a freshly initialised twin's policy (KL) and value (MSE) with a fresh Adam, on
observations of the initial policy; the metric is the loss of the last minibatch. The seed's key
(:func:`probe_keys`) is the same for all its snapshots, so they fit the same targets on the same data, as the
original. ``config.plasticity.data``: ``snapshot0`` collects with the run's step-0 snapshot (the original's
"checkpoint 0" policy), ``twin`` with the fresh twin, ``auto`` = snapshot0 if the run has a step-0 snapshot.
Snapshots x seeds are one ``jit(vmap(vmap(...)))`` (in batches of ``config.snapshot_batch`` snapshots: a host
loop for memory only). Off-policy runs (TD3 / SAC) get no probe (their critics are Q functions), only the figures
of what they logged. The config's keys are those of ``configs/representation.py``.

``<run_dir>/representation.h5`` (rewritten atomically; `rlland.sinks.write_layout_h5`), S = selected seeds,
P = probed snapshots::

    steps                          int64 [P]     env steps of the snapshots
    seeds                          int64 [S]     seed indices in the run
    plasticity/policy_loss         f32 [S, P]    last-minibatch KL(target || snapshot): THE plasticity metric
    plasticity/value_loss          f32 [S, P]    last-minibatch MSE
    plasticity/{policy,value}_loss_{initial,final}   f32 [S, P]   whole-dataset losses before / after fitting
    attributes: the config (flattened, "json:"-prefixed JSON for non-numeric values), run_dir, algo, env,
                data ("snapshot0" | "twin" | "none"), rlland_layout = "representation", rlland_layout_version,
                compile_seconds, run_seconds
"""
from __future__ import annotations

import os
import time

import jax
import ml_collections
import numpy as np

from rlland import runs, sinks
from rlland.representation import figures
from rlland.representation.plasticity import plasticity
from rlland.validation import require_choice

LAYOUT = "representation"
LAYOUT_VERSION = 1
FILE_NAME = "representation.h5"
DATA_POLICIES = ("auto", "snapshot0", "twin")
_PLASTICITY_STREAM = 0x706C6173  # "plas"


def probe_keys(seed: int, seeds) -> jax.Array:
    """The probe key of each selected seed: ``fold_in(fold_in(PRNGKey(seed), 0x706c6173), seed_index)``."""
    root = jax.random.fold_in(jax.random.PRNGKey(seed), _PLASTICITY_STREAM)
    return jax.vmap(lambda s: jax.random.fold_in(root, s))(np.asarray(seeds))


def data_policy(data: str, available: list[int], run_dir: str) -> str:
    """``snapshot0`` or ``twin`` for ``config.plasticity.data`` (``auto``: snapshot0 iff a step-0 snapshot exists)."""
    require_choice("config.plasticity.data", data, DATA_POLICIES)
    data = ("snapshot0" if 0 in available else "twin") if data == "auto" else data
    if data == "snapshot0" and 0 not in available:
        raise ValueError(f"config.plasticity.data='snapshot0' but {run_dir} has no step-0 snapshot "
                         f"(snapshots: {available}); use data='twin'")
    return data


def plasticity_fn(agent, p: ml_collections.ConfigDict):
    """jit(vmap over snapshots (vmap over seeds)) of the probe; keys and data params are per seed only.

    ``p``: ``config.plasticity``; a negative ``learning_rate`` / ``max_grad_norm`` means the run's training value.
    """
    kwargs = dict(num_envs=p.num_envs, num_steps=p.num_steps, epochs=p.epochs, minibatch_size=p.minibatch_size,
                  learning_rate=p.learning_rate if p.learning_rate >= 0 else None,
                  max_grad_norm=p.max_grad_norm if p.max_grad_norm >= 0 else None)

    def one(params, hparams, key, data_params):
        return plasticity(agent, params, key, hparams=hparams, data_params=data_params, **kwargs)

    per_seed = jax.vmap(one)
    return jax.jit(jax.vmap(per_seed, in_axes=(0, 0, None, None)))


def _stack(trees):
    return jax.tree.map(lambda *x: np.stack(x), *trees)


def probe_snapshots(c: ml_collections.ConfigDict, run_dir: str, run_config, agent, steps: list[int], seeds: list[int],
                    data: str) -> tuple[dict[str, np.ndarray], float, float]:
    """``({"plasticity/<loss>": [S, P]}, compile_seconds, run_seconds)`` of the probe over ``steps`` x ``seeds``."""
    load = lambda step, **kw: runs.select_seeds(runs.load_snapshot(run_dir, step, agent, config=run_config, **kw),
                                                seeds, run_config.num_seeds)[0]
    data_params = load(0, params_only=True) if data == "snapshot0" else None
    keys = probe_keys(c.seed, seeds)
    fn = plasticity_fn(agent, c.plasticity)
    batch = int(c.snapshot_batch) or len(steps)
    compile_seconds = run_seconds = 0.0
    outs = []
    for i in range(0, len(steps), batch):  # host loop over snapshot batches: I/O and memory only
        states = [load(s) for s in steps[i:i + batch]]
        params, hparams = _stack([s.params for s in states]), _stack([s.hparams for s in states])
        t0 = time.perf_counter()
        compiled = fn.lower(params, hparams, keys, data_params).compile()
        t1 = time.perf_counter()
        outs.append(jax.device_get(compiled(params, hparams, keys, data_params)))
        compile_seconds, run_seconds = compile_seconds + t1 - t0, run_seconds + time.perf_counter() - t1
    datasets = {f"plasticity/{k}": np.concatenate([o[k] for o in outs], axis=0).T.astype(np.float32)  # [S, P]
                for k in outs[0]}
    return datasets, compile_seconds, run_seconds


def analyse_run(c: ml_collections.ConfigDict, run_dir: str, verbose: bool = True) -> str:
    """Run the probe over the run's snapshots, write ``representation.h5`` and (``c.figures``) the figures;
    returns the h5 path. ``c``: a ``configs/representation.py`` analysis config."""
    run_config, _, agent = runs.load_run(run_dir)
    available = runs.snapshot_steps(run_dir)
    steps = sorted(int(s) for s in c.steps) if c.steps else available
    missing = [s for s in steps if s not in available]
    if missing:
        raise ValueError(f"no snapshots at steps {missing} in {run_dir}; available: {available}")
    seeds = runs.select_seeds(None, c.seeds, run_config.num_seeds)[1]  # validates the indices
    do_plasticity = bool(c.plasticity.enabled) and not agent.is_off_policy
    if c.plasticity.enabled and not do_plasticity and verbose:
        print(f"plasticity probe skipped: {run_config.algo} is off-policy (the probe fits a state-value critic)")
    data = data_policy(c.plasticity.data, available, run_dir)

    datasets: dict[str, np.ndarray] = {"steps": np.asarray(steps, np.int64), "seeds": np.asarray(seeds, np.int64)}
    compile_seconds = run_seconds = 0.0
    if do_plasticity and steps:
        probed, compile_seconds, run_seconds = probe_snapshots(c, run_dir, run_config, agent, steps, seeds, data)
        datasets |= probed
    attrs = {"config": c.to_dict(), "run_dir": os.path.abspath(run_dir), "algo": run_config.algo,
             "env": run_config.env.name, "data": data if do_plasticity else "none",
             "compile_seconds": compile_seconds, "run_seconds": run_seconds}
    path = os.path.join(run_dir, FILE_NAME)
    write_h5(path, datasets, attrs)
    if c.figures:
        for f in figures.figures(run_dir, datasets):
            if verbose:
                print(f"wrote {f}")
    if verbose:
        print(f"wrote {path} (compile {compile_seconds:.1f}s, run {run_seconds:.1f}s)")
    return path


def write_h5(path: str, datasets: dict[str, np.ndarray], attrs: dict) -> None:
    sinks.write_layout_h5(path, datasets, attrs, LAYOUT, LAYOUT_VERSION)


def read_h5(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """``(datasets, attributes)`` of a ``representation.h5``."""
    return sinks.read_layout_h5(path)


def summary(d: dict[str, np.ndarray]) -> str:
    """One line per seed: the plasticity losses at each probed step (or why there are none)."""
    steps = [int(s) for s in d["steps"]]
    if "plasticity/policy_loss" not in d:
        return f"no plasticity probe (steps {steps}, seeds {[int(s) for s in d['seeds']]})"
    return "\n".join(f"seed {int(s)}: plasticity policy loss "
                     f"{np.array2string(d['plasticity/policy_loss'][j], precision=4)}  value loss "
                     f"{np.array2string(d['plasticity/value_loss'][j], precision=4)}  at steps {steps}"
                     for j, s in enumerate(d["seeds"]))
