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
Snapshots x seeds are one ``jit(vmap(vmap(...)))`` in batches of ``config.snapshot_batch`` snapshots (0 = all at
once), compiled once per batch size. Off-policy runs (TD3 / SAC) get no probe (their critics are Q functions),
only the figures of what they logged. The config's keys are those of ``configs/representation.py``.

**Resumable.** ``<run_dir>/representation.h5`` is rewritten atomically (`rlland.sinks.write_layout_h5`) after every
snapshot batch, so an interrupted analysis loses at most the batch in flight; a re-run skips every snapshot
already in the file with the same :func:`settings` (as `rlland.landscape.analysis.analyse_purd` does with
``purd.h5``) and probes only the others; a snapshot probed with other settings is probed again and replaced.
Layout (version 2), S = selected seeds, one group per probed snapshot step::

    steps                                          int64 [P]   the steps of the current table, sorted
    seeds                                          int64 [S]   seed indices in the run
    step_<step>/plasticity/policy_loss             f32 [S]     last-minibatch KL(target || snapshot): THE metric
    step_<step>/plasticity/value_loss              f32 [S]     last-minibatch MSE
    step_<step>/plasticity/{policy,value}_loss_{initial,final}   f32 [S]   whole-dataset losses before / after
    attributes: settings (the JSON of `settings` the current table was probed with); per snapshot
                step_<step>.settings, step_<step>.compile_seconds, step_<step>.run_seconds; config (the last
                run's, flattened), run_dir, algo, env, data ("snapshot0" | "twin" | "none"),
                rlland_layout = "representation", rlland_layout_version = 2

The current table is the snapshots probed with the current settings (``steps``); groups of other steps probed
with other settings stay in the file. :func:`read_h5` returns the table as the figures and :func:`summary` use it:
``steps`` [P], ``seeds`` [S] and ``plasticity/<loss>`` [S, P].
"""
from __future__ import annotations

import json
import os
import time

import jax
import ml_collections
import numpy as np

from rlland import runs, sinks, sweep
from rlland.representation import figures
from rlland.representation.plasticity import plasticity
from rlland.validation import require_choice

LAYOUT = "representation"
LAYOUT_VERSION = 2
FILE_NAME = "representation.h5"
DATA_POLICIES = ("auto", "snapshot0", "twin")
# config keys that change no snapshot's result: which snapshots, how many per compiled call, whether to plot
NOT_SETTINGS = ("steps", "snapshot_batch", "figures")
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


def settings(c: ml_collections.ConfigDict, seeds: list[int], data: str) -> str:
    """What one snapshot's result depends on, as sorted JSON: the analysis config less ``NOT_SETTINGS``, the
    selected seeds and the resolved data policy."""
    d = {k: v for k, v in c.to_dict().items() if k not in NOT_SETTINGS}
    return json.dumps(d | {"seeds": [int(s) for s in seeds], "data": data}, sort_keys=True, default=str)


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


def probe_batches(c: ml_collections.ConfigDict, run_dir: str, run_config, agent, steps: list[int], seeds: list[int],
                  data: str):
    """Yield ``(batch_steps, {"plasticity/<loss>": [S, B]}, compile_seconds, run_seconds)`` for ``steps`` in batches
    of ``c.snapshot_batch`` snapshots; one compile per batch size."""
    load = lambda step, **kw: runs.select_seeds(runs.load_snapshot(run_dir, step, agent, config=run_config, **kw),
                                                seeds, run_config.num_seeds)[0]
    data_params = load(0, params_only=True) if data == "snapshot0" else None
    keys = probe_keys(c.seed, seeds)
    fn, compiled = plasticity_fn(agent, c.plasticity), {}
    size = int(c.snapshot_batch) or len(steps)
    for i in range(0, len(steps), size):  # host loop over snapshot batches: I/O, memory and the h5 file only
        batch = steps[i:i + size]
        states = [load(s) for s in batch]
        params, hparams = _stack([s.params for s in states]), _stack([s.hparams for s in states])
        t0 = time.perf_counter()
        if len(batch) not in compiled:
            compiled[len(batch)] = fn.lower(params, hparams, keys, data_params).compile()
        t1 = time.perf_counter()
        out = jax.device_get(compiled[len(batch)](params, hparams, keys, data_params))
        yield batch, {f"plasticity/{k}": np.asarray(v, np.float32).T for k, v in out.items()}, t1 - t0, \
            time.perf_counter() - t1


@sweep.per_point  # a sweep run: each point view in turn
def analyse_run(c: ml_collections.ConfigDict, run_dir: str, verbose: bool = True) -> str:
    """Run the probe over the run's snapshots, writing ``representation.h5`` after every snapshot batch (snapshots
    already there with the same settings are skipped), then (``c.figures``) the figures; returns the h5 path.
    ``c``: a ``configs/representation.py`` analysis config."""
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
    data = data_policy(c.plasticity.data, available, run_dir) if do_plasticity else "none"
    current = settings(c, seeds, data)
    path = os.path.join(run_dir, FILE_NAME)
    datasets, attrs = read_raw(path) if os.path.exists(path) else ({}, {})
    attrs = {k: v for k, v in attrs.items() if not k.startswith("config.")}  # replaced by this run's config
    attrs |= {"config": c.to_dict(), "run_dir": os.path.abspath(run_dir), "algo": run_config.algo,
              "env": run_config.env.name, "data": data, "settings": current}
    done = [s for s in steps if attrs.get(f"step_{s}.settings") == current] if do_plasticity else steps
    todo = [s for s in steps if s not in done]
    if verbose and done and do_plasticity:
        print(f"steps {done}: already in {path} with these settings, skipped")

    def write(table_steps):
        table = {"steps": np.asarray(sorted(table_steps), np.int64), "seeds": np.asarray(seeds, np.int64)}
        write_h5(path, {k: v for k, v in datasets.items() if k not in ("steps", "seeds")} | table, attrs)

    write(done)  # the settings and the table of what is already there, before anything is computed
    for batch, out, compile_s, run_s in (probe_batches(c, run_dir, run_config, agent, todo, seeds, data)
                                         if do_plasticity and todo else ()):
        for j, step in enumerate(batch):
            datasets |= {f"step_{step}/{k}": v[:, j] for k, v in out.items()}
            attrs |= {f"step_{step}.settings": current, f"step_{step}.compile_seconds": compile_s if j == 0 else 0.0,
                      f"step_{step}.run_seconds": run_s / len(batch)}
        done += batch
        write(done)
        if verbose:
            print(f"steps {batch}: probed (compile {compile_s:.1f}s, run {run_s:.1f}s), written to {path}")
    if c.figures:
        for f in figures.figures(run_dir, read_h5(path)[0]):
            if verbose:
                print(f"wrote {f}")
    if verbose:
        print(f"wrote {path}")
    return path


def write_h5(path: str, datasets: dict[str, np.ndarray], attrs: dict) -> None:
    sinks.write_layout_h5(path, datasets, attrs, LAYOUT, LAYOUT_VERSION)


def read_raw(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """``(datasets, attributes)`` of a ``representation.h5`` as stored (groups per step); an unreadable file or one
    of another layout raises an error that names it."""
    datasets, attrs = sinks.read_layout_h5(path)
    if attrs.get("rlland_layout") != LAYOUT or attrs.get("rlland_layout_version") != LAYOUT_VERSION:
        raise ValueError(f"{path} is not a {LAYOUT!r} file of layout version {LAYOUT_VERSION} (layout "
                         f"{attrs.get('rlland_layout')!r}, version {attrs.get('rlland_layout_version')}); move it "
                         f"away to probe again")
    return datasets, attrs


def read_h5(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """``(table, attributes)`` of a ``representation.h5``: ``steps`` [P], ``seeds`` [S] and ``plasticity/<loss>``
    [S, P] over the current table's steps (see the module docstring). A snapshot whose group is missing or
    malformed raises a ValueError naming the file and the step."""
    datasets, attrs = read_raw(path)
    steps, seeds = datasets["steps"], datasets["seeds"]
    table = {"steps": steps, "seeds": seeds}
    if attrs.get("data") == "none":
        return table, attrs
    columns: dict[str, list[np.ndarray]] = {}
    names = None
    for step in (int(s) for s in steps):
        group = {k[len(f"step_{step}/"):]: v for k, v in datasets.items() if k.startswith(f"step_{step}/")}
        if not group or (names is not None and sorted(group) != names):
            raise ValueError(f"{path}: snapshot step {step} has datasets {sorted(group)}, expected "
                             f"{names or 'plasticity/<loss>'}")
        names = sorted(group)
        for k, v in group.items():
            if np.shape(v) != (len(seeds),):
                raise ValueError(f"{path}: snapshot step {step}: {k} has shape {np.shape(v)}, expected "
                                 f"({len(seeds)},) (one value per seed)")
            columns.setdefault(k, []).append(v)
    return table | {k: np.stack(v, axis=1) for k, v in columns.items()}, attrs


def summary(d: dict[str, np.ndarray]) -> str:
    """One line per seed: the plasticity losses at each probed step (or why there are none)."""
    steps = [int(s) for s in d["steps"]]
    if "plasticity/policy_loss" not in d:
        return f"no plasticity probe (steps {steps}, seeds {[int(s) for s in d['seeds']]})"
    return "\n".join(f"seed {int(s)}: plasticity policy loss "
                     f"{np.array2string(d['plasticity/policy_loss'][j], precision=4)}  value loss "
                     f"{np.array2string(d['plasticity/value_loss'][j], precision=4)}  at steps {steps}"
                     for j, s in enumerate(d["seeds"]))
