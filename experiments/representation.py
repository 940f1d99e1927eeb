"""Representation dynamics of a run: the plasticity probe over its snapshots, and per-seed figures of feature
rank, dead units, trust region and plasticity against training steps (Moalla et al. 2024; reference A.3-A.5).

    python experiments/representation.py --run_dir=runs/representation-ppo-ant
    python experiments/representation.py --config=configs/representation.py:quick --run_dir=runs/quickstart \
        --config.steps="(0, 10240)" --config.seeds="(0, 1)" --config.plasticity.data=twin

Plasticity (PPO runs; :func:`rlland.representation.plasticity`): every selected snapshot of every selected seed
fits a freshly initialised twin's policy (KL) and value (MSE) with a fresh Adam, on observations of the initial
policy; the metric is the loss of the last minibatch. The seed's key (``fold_in(fold_in(PRNGKey(config.seed),
0x706c6173), seed_index)``) is the same for all its snapshots, so they fit the same targets on the same data, as
the original. ``config.plasticity.data``: ``snapshot0`` collects with the run's step-0 snapshot (the original's
"checkpoint 0" policy), ``twin`` with the fresh twin, ``auto`` = snapshot0 if the run has a step-0 snapshot.
Snapshots x seeds are one ``jit(vmap(vmap(...)))`` (in batches of ``config.snapshot_batch`` snapshots).

The rank / dead-unit / trust-region curves come from ``<run_dir>/metrics.h5`` (``train/repr/...``, logged during
training when the agent's ``log_every`` > 0; chunk means, see ``rlland.representation.diagnostics``). Runs of
TD3 / SAC get the figures of what they logged and no plasticity probe.

Writes ``<run_dir>/representation.h5`` (rewritten atomically), S = selected seeds, P = probed snapshots::

    steps                          int64 [P]     env steps of the snapshots
    seeds                          int64 [S]     seed indices in the run
    plasticity/policy_loss         f32 [S, P]    last-minibatch KL(target || snapshot): THE plasticity metric
    plasticity/value_loss          f32 [S, P]    last-minibatch MSE
    plasticity/{policy,value}_loss_{initial,final}   f32 [S, P]   whole-dataset losses before / after fitting
    attributes: config (JSON), run_dir, algo, env, data ("snapshot0" | "twin"), rlland_layout =
                "representation", compile_seconds, run_seconds

Figures in ``<run_dir>/figures/``: ``representation_seed<s>.png`` per seed (feature rank, dead units, mean ratio
below 1 - eps, plasticity against env steps) and ``representation.png`` (the same, mean over seeds with 95%
intervals).
"""
from __future__ import annotations

import json
import os
import time

import jax
import ml_collections
import numpy as np

from rlland import runs
from rlland import sinks
from rlland import representation

_PLASTICITY_STREAM = 0x706C6173  # "plas"


def probe_keys(seed: int, seeds) -> jax.Array:
    root = jax.random.fold_in(jax.random.PRNGKey(seed), _PLASTICITY_STREAM)
    return jax.vmap(lambda s: jax.random.fold_in(root, s))(np.asarray(seeds))


def resolve_seeds(seeds, num_seeds: int) -> list[int]:
    seeds = list(range(num_seeds)) if not seeds else [int(s) for s in seeds]
    bad = [s for s in seeds if not 0 <= s < num_seeds]
    if bad:
        raise ValueError(f"seeds {bad} are not in the run (it has {num_seeds} seeds)")
    return seeds


def write_h5(path: str, datasets: dict[str, np.ndarray], attrs: dict) -> None:
    import h5py

    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=np.asarray(v))
        for k, v in attrs.items():
            f.attrs[k] = v if isinstance(v, (int, float, str)) else json.dumps(v)
    os.replace(tmp, path)


def read_h5(path: str) -> tuple[dict[str, np.ndarray], dict]:
    return sinks.read_h5(path)


def plasticity_fn(agent, p):
    """jit(vmap over snapshots (vmap over seeds)) of the probe; keys and data params are per seed only."""
    kwargs = dict(num_envs=p.num_envs, num_steps=p.num_steps, epochs=p.epochs, minibatch_size=p.minibatch_size,
                  learning_rate=p.learning_rate if p.learning_rate >= 0 else None,
                  max_grad_norm=p.max_grad_norm if p.max_grad_norm >= 0 else None)

    def one(params, hparams, key, data_params):
        return representation.plasticity(agent, params, key, hparams=hparams, data_params=data_params, **kwargs)

    per_seed = jax.vmap(one)
    return jax.jit(jax.vmap(per_seed, in_axes=(0, 0, None, None)))


def analyse_run(c: ml_collections.ConfigDict, run_dir: str, verbose: bool = True) -> str:
    """Run the probe over the run's snapshots, write ``representation.h5`` and the figures; returns the h5 path."""
    run_config, _, agent = runs.load_run(run_dir)
    available = runs.snapshot_steps(run_dir)
    steps = sorted(int(s) for s in c.steps) if c.steps else available
    missing = [s for s in steps if s not in available]
    if missing:
        raise ValueError(f"no snapshots at steps {missing} in {run_dir}; available: {available}")
    seeds = resolve_seeds(c.seeds, run_config.num_seeds)
    p = c.plasticity
    do_plasticity = bool(p.enabled) and hasattr(agent, "value") and hasattr(agent, "init_networks")
    if p.enabled and not do_plasticity and verbose:
        print(f"plasticity probe skipped: {run_config.algo} has no state-value critic (PPO-style agents only)")
    if p.data not in ("auto", "snapshot0", "twin"):
        raise ValueError(f"config.plasticity.data must be auto, snapshot0 or twin, got {p.data!r}")
    data = ("snapshot0" if 0 in available else "twin") if p.data == "auto" else p.data
    if data == "snapshot0" and 0 not in available:
        raise ValueError(f"config.plasticity.data='snapshot0' but {run_dir} has no step-0 snapshot "
                         f"(snapshots: {available}); use data='twin'")

    datasets: dict[str, np.ndarray] = {"steps": np.asarray(steps, np.int64), "seeds": np.asarray(seeds, np.int64)}
    compile_seconds = run_seconds = 0.0
    if do_plasticity and steps:
        load = lambda step: jax.tree.map(lambda x: x[np.asarray(seeds)], runs.load_snapshot(run_dir, step, agent))
        data_params = load(0).params if data == "snapshot0" else None
        keys = probe_keys(c.seed, seeds)
        fn = plasticity_fn(agent, p)
        batch = int(c.snapshot_batch) or len(steps)
        outs = []
        for i in range(0, len(steps), batch):  # host loop over snapshot batches: I/O and memory only
            states = [load(s) for s in steps[i:i + batch]]
            params = jax.tree.map(lambda *x: np.stack(x), *[s.params for s in states])
            hparams = jax.tree.map(lambda *x: np.stack(x), *[s.hparams for s in states])
            t0 = time.perf_counter()
            compiled = fn.lower(params, hparams, keys, data_params).compile()
            t1 = time.perf_counter()
            out = jax.device_get(compiled(params, hparams, keys, data_params))
            compile_seconds, run_seconds = compile_seconds + t1 - t0, run_seconds + time.perf_counter() - t1
            outs.append(out)
        for k in outs[0]:
            datasets[f"plasticity/{k}"] = np.concatenate([o[k] for o in outs], axis=0).T.astype(np.float32)  # [S, P]
        if verbose:
            for j, s in enumerate(seeds):
                pol = datasets["plasticity/policy_loss"][j]
                val = datasets["plasticity/value_loss"][j]
                print(f"seed {s}: plasticity policy loss {np.array2string(pol, precision=4)}  "
                      f"value loss {np.array2string(val, precision=4)}  at steps {steps}")
    attrs = {"config": c.to_dict(), "run_dir": os.path.abspath(run_dir), "algo": run_config.algo,
             "env": run_config.env.name, "data": data if do_plasticity else "none", "rlland_layout": "representation",
             "compile_seconds": compile_seconds, "run_seconds": run_seconds}
    path = os.path.join(run_dir, "representation.h5")
    write_h5(path, datasets, attrs)
    if c.figures:
        for f in figures(run_dir, datasets):
            if verbose:
                print(f"wrote {f}")
    if verbose:
        print(f"wrote {path} (compile {compile_seconds:.1f}s, run {run_seconds:.1f}s)")
    return path


# -- figures -------------------------------------------------------------------------------------------------
def _training_curves(run_dir: str) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    path = os.path.join(run_dir, "metrics.h5")
    if not os.path.exists(path):
        return None, {}
    data, _ = sinks.read_h5(path)
    return data.get("train/steps"), {k[len("train/repr/"):]: v for k, v in data.items()
                                     if k.startswith("train/repr/")}


def _find(curves: dict, metric: str, net: str, kind: str = "post"):
    """A logged curve [S, C]: PPO logs ``start/<net>_<kind>/<metric>``, TD3 / SAC ``<net>_<kind>/<metric>``."""
    for name in (f"start/{net}_{kind}/{metric}", f"{net}_{kind}/{metric}"):
        if name in curves:
            return curves[name]
    return None


PANELS = (
    ("feature rank (approx. rank 99%, start of update)", "approximate_rank"),
    ("dead units (post-activation)", "dead_units"),
    ("mean ratio below 1 - eps (end of update)", "end/ratio_mean_below"),
    ("plasticity: last-minibatch fit loss", "plasticity"),
)
NETS = (("actor", "-"), ("critic", "--"), ("critic1", "--"))


def _panel(ax, title, metric, rows, train_steps, curves, plast_steps, plast, summary: bool):
    from rlland import plotting

    drawn = False

    def draw(x, y, label, style):
        nonlocal drawn
        y = np.asarray(y, float)
        if not np.any(np.isfinite(y)):
            return
        if summary:
            plotting.seed_curves(ax, x, y, label=label)
        else:
            ax.plot(x, y, style, label=label)
        drawn = True

    if metric == "plasticity":
        for name, style in (("policy_loss", "-o"), ("value_loss", "--o")):
            if f"plasticity/{name}" in plast:
                draw(plast_steps, plast[f"plasticity/{name}"][rows], name.replace("_", " "), style)
        if drawn:
            ax.set_yscale("log")
    elif metric.startswith("end/"):
        if metric in curves and train_steps is not None:
            draw(train_steps, curves[metric][rows], "actor", "-")
    elif train_steps is not None:
        for net, style in NETS:
            for kind, suffix in (("post", ""), ("pre", " pre")):
                if metric == "dead_units" and kind == "pre":
                    continue
                y = _find(curves, metric, net, kind)
                if y is not None:
                    draw(train_steps, y[rows], net + suffix, style if kind == "post" else ":")
    ax.set(title=title, xlabel="env steps")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no finite values\n(not logged, or undefined: e.g. no ratio below 1 - eps)", ha="center",
                va="center", transform=ax.transAxes, fontsize="small")


def figures(run_dir: str, datasets: dict[str, np.ndarray]) -> list[str]:
    """Per-seed figures and an all-seeds summary; seeds index metrics.h5 by their run index."""
    from rlland import plotting

    train_steps, curves = _training_curves(run_dir)
    seeds = [int(s) for s in datasets["seeds"]]
    plast_steps = datasets["steps"]
    plast = {k: v for k, v in datasets.items() if k.startswith("plasticity/")}
    paths = []
    jobs = [(f"seed {s}", f"representation_seed{s}.png", s, j, False) for j, s in enumerate(seeds)]
    jobs.append((f"{len(seeds)} seeds (mean, 95% CI)", "representation.png", seeds, slice(None), True))
    for label, fname, train_rows, plast_rows, summary in jobs:
        fig, axes = plotting.plt.subplots(2, 2, figsize=(11, 7))
        for ax, (title, metric) in zip(axes.ravel(), PANELS):
            rows = plast_rows if metric == "plasticity" else train_rows
            _panel(ax, title, metric, rows, train_steps, curves, plast_steps, plast, summary)
        fig.suptitle(f"representation dynamics, {label}")
        fig.tight_layout()
        paths.append(plotting.save(fig, os.path.join(run_dir, "figures", fname)))
    return paths


def main(argv):
    del argv
    analyse_run(_CONFIG.value, _RUN_DIR.value)


if __name__ == "__main__":
    from absl import app, flags
    from ml_collections import config_flags

    _DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "representation.py")
    _CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "representation analysis config (path[:quick])")
    _RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory written by experiments/train.py", required=True)
    app.run(main)
