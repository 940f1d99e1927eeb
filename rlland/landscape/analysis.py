"""The return-landscape analyses of a training run directory (Rahn et al. 2023; reference A.4, A.6, A.7):

* `analyse_purd(config, run_dir)`: post-update return distributions of every selected snapshot and seed ->
  ``purd.h5`` (one group per operator and step, written as each step finishes; a re-run skips the steps already
  there with the same settings) and ``figures/purd_step_<step>.png``;
* `analyse_interpolation(config, run_dir)`: PURDs along linear paths between snapshots or seeds ->
  ``interpolation.h5`` and ``figures/interpolation.png``;
* `analyse_rejection(config, run_dir)`: CVaR-rejection training (Algorithm 1) from a snapshot -> ``reject.h5`` and
  ``figures/reject_step_<step>.png``.

Settings are the configs in ``configs/{purd,interpolate,reject}.py``; the file layouts are in `rlland.landscape.io`.
Every selected seed of a snapshot is one ``jit(vmap(...))`` over the seed axis. Sample keys are
``fold_in(fold_in(PRNGKey(config.seed), step), seed)`` (PURD, rejection: plus the repeat index), so a seed's
result does not depend on which other seeds are selected.
"""
from __future__ import annotations

import functools
import itertools
import json
import os

import jax
import numpy as np

from rlland import plotting, runs
from rlland.landscape import io, operators, purd as purd_lib, reject as reject_lib, stats
from rlland.landscape.interpolation import interpolation_purd
from rlland.validation import require_choice

OPERATORS = {"td3_actor_step": operators.td3_actor_step, "sac_actor_step": operators.sac_actor_step,
             "ppo_update": operators.ppo_update, "default": operators.default_operator}


def return_fn(agent, c):
    """The evaluation return function of ``c.eval`` (deterministic, fixed start, ... as the study)."""
    e = c.eval
    return purd_lib.policy_returns(agent, deterministic=e.deterministic, gamma=e.gamma, fixed_start=e.fixed_start,
                                   episode_length=e.episode_length or None, num_episodes=e.num_episodes)


def update_builder(c):
    """``(agent, snapshot) -> update_fn`` for ``c.operator`` (chained ``c.k`` times)."""
    if c.operator == "param_noise":
        return lambda agent, snap: operators.k_steps(operators.param_noise(c.noise_scale), c.k)
    require_choice("config.operator", c.operator, (*OPERATORS, "param_noise"))
    kwargs = {"learning_rate": c.learning_rate} if c.learning_rate >= 0 else {}
    return lambda agent, snap: operators.k_steps(OPERATORS[c.operator](agent, snap, **kwargs), c.k)


def sample_keys(c, step, seeds):
    root = jax.random.fold_in(jax.random.PRNGKey(c.seed), step)
    return jax.vmap(lambda s: jax.random.fold_in(root, s))(np.asarray(seeds))


def purd_summary(undiscounted: np.ndarray, alpha: float) -> dict[str, np.ndarray]:
    """Per-seed statistics of PURD samples [seeds, samples]: mean, std, LTP (threshold 0.5 of the mode) and
    CVaR_alpha, the numbers the study reports."""
    r = np.asarray(undiscounted)
    return {"mean": r.mean(-1), "std": r.std(-1),
            "ltp": np.asarray([float(stats.ltp(x)) for x in r]),
            "cvar": np.asarray([float(stats.cvar(x, alpha)) for x in r])}


def _settings(c, *selection: str) -> str:
    """What a group's result depends on, as sorted JSON: the config less the ``selection`` keys, which only say
    which groups to compute (each group's name or attributes identify it)."""
    return json.dumps({k: v for k, v in c.to_dict().items() if k not in selection}, sort_keys=True, default=str)


def _done_groups(path: str, settings: str) -> set[str]:
    """Groups of ``path`` already written with these settings (a re-run skips them)."""
    if not os.path.exists(path):
        return set()
    _, _, group_attrs = io.read_h5(path)
    return {name for name, a in group_attrs.items() if a.get("settings") == settings}


def analyse_purd(c, run_dir: str, verbose: bool = True) -> dict:
    """PURDs of ``run_dir``'s snapshots (``c``: configs/purd.py); returns ``{group: datasets}``."""
    run_config, _, agent = runs.load_run(run_dir)
    steps = [int(s) for s in c.steps] or runs.snapshot_steps(run_dir)
    if not steps:
        raise ValueError(f"{run_dir} has no snapshots")
    rf, build = return_fn(agent, c), update_builder(c)

    def one(snap, key):
        out = purd_lib.post_update_returns(build(agent, snap), rf, snap.params, key, c.num_samples,
                                           c.chunk_size or None)
        return out | {"pre_update": rf(snap.params, key).undiscounted}

    kernel = jax.jit(jax.vmap(one))
    path, settings = os.path.join(run_dir, "purd.h5"), _settings(c, "steps")
    done, results = _done_groups(path, settings), {}
    for step in steps:
        name = f"{c.operator}/step_{step}"
        if name in done:
            if verbose:
                print(f"step {step}: already in {path} with these settings, skipped")
            continue
        snaps = runs.load_snapshot(run_dir, step, agent, config=run_config)
        states, seeds = runs.select_seeds(snaps, c.seeds, run_config.num_seeds)
        out = jax.device_get(kernel(states, sample_keys(c, step, seeds)))
        out |= purd_summary(out["undiscounted"], c.alpha)
        results[name] = out
        io.write_purd_h5(path, {name: dict(out, attrs={"step": step, "seeds": seeds, "settings": settings})},
                         {"run_dir": os.path.abspath(run_dir), "config": c.to_dict()})
        if verbose:
            for i, s in enumerate(seeds):
                print(f"step {step} seed {s}: pre-update {out['pre_update'][i]:.2f}  PURD mean {out['mean'][i]:.2f} "
                      f"std {out['std'][i]:.2f}  LTP {out['ltp'][i]:.3f}  CVaR_{c.alpha} {out['cvar'][i]:.2f}")
        purd_figure(run_dir, step, seeds, out)
    return results


def purd_figure(run_dir, step, seeds, out):
    fig, ax = plotting.plt.subplots(figsize=(6, 4))
    for i, s in enumerate(seeds):
        r = np.asarray(out["undiscounted"][i])
        line = ax.hist(r, bins=_bins(r), histtype="step", label=f"seed {s}")[2][0]
        ax.axvline(out["pre_update"][i], ls="--", lw=1, color=line.get_edgecolor())
    ax.set(xlabel="post-update return (undiscounted)", ylabel="samples", title=f"PURD at step {step}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    plotting.save(fig, os.path.join(run_dir, "figures", f"purd_step_{step}.png"))


def _bins(r: np.ndarray):
    """50 bins, or one bin around a (nearly) constant PURD (numpy refuses 50 bins on a zero-width range)."""
    lo, hi = float(np.min(r)), float(np.max(r))
    return 50 if hi - lo > 1e-6 * max(1.0, abs(lo)) else [lo - 0.5, hi + 0.5]


# -- interpolation ------------------------------------------------------------------------------------------
def parse_pair(text: str) -> tuple[int, int, int, int]:
    try:
        a, b = text.split("-")
        (sa, ta), (sb, tb) = a.split(":"), b.split(":")
        return int(sa), int(ta), int(sb), int(tb)
    except ValueError:
        raise ValueError(f"a pair must look like 'seedA:stepA-seedB:stepB' (e.g. '0:50000-0:550000'), got {text!r}")


def make_pairs(c, run_config, steps_available) -> list[tuple[int, int, int, int]]:
    if c.pairs:
        return [parse_pair(p) for p in c.pairs]
    steps = [int(s) for s in c.steps] or steps_available
    seeds = [int(s) for s in c.seeds] or list(range(run_config.num_seeds - (0 if c.same_seed else 1)))
    return [(s, ta, s if c.same_seed else s + 1, tb) for s in seeds for ta, tb in itertools.combinations(steps, 2)]


def analyse_interpolation(c, run_dir: str, verbose: bool = True) -> dict:
    """PURDs along ``(1 - a) A + a B`` for each pair (``c``: configs/interpolate.py; B from ``c.run_dir_b``)."""
    run_dir_b = c.run_dir_b or run_dir
    run_config, _, agent = runs.load_run(run_dir)
    pairs = make_pairs(c, run_config, runs.snapshot_steps(run_dir))
    if not pairs:
        raise ValueError("no pairs to interpolate: give config.pairs, or at least two snapshot steps")
    rf = return_fn(agent, c)

    @jax.jit
    def path(params_a, params_b, key):
        return interpolation_purd(
            operators.param_noise(c.noise_scale), rf, params_a, params_b, key, c.num_points, c.num_samples,
            c.chunk_size or None, common_random_numbers=c.common_random_numbers,
            points_chunk_size=c.points_chunk_size or None)

    @functools.lru_cache(maxsize=None)
    def snapshot(rd, step):
        return runs.load_snapshot(rd, step, agent if rd == run_dir else None, params_only=True)

    h5_path, settings = os.path.join(run_dir, "interpolation.h5"), _settings(c, "pairs", "steps", "seeds", "same_seed")
    done = _done_groups(h5_path, settings)
    for sa, ta, sb, tb in pairs:  # host loop over pairs: each is written when done, a re-run skips it
        name = f"seed{sa}_step{ta}__seed{sb}_step{tb}"
        if name in done:
            if verbose:
                print(f"{name}: already in {h5_path} with these settings, skipped")
            continue
        key = jax.random.PRNGKey(c.seed)
        for x in (sa, ta, sb, tb):
            key = jax.random.fold_in(key, x)
        out = jax.device_get(path(runs.select_seed(snapshot(run_dir, ta), sa),
                                  runs.select_seed(snapshot(run_dir_b, tb), sb), key))
        io.write_interpolation_h5(h5_path, {name: dict(out, attrs={
            "seed_a": sa, "step_a": ta, "seed_b": sb, "step_b": tb, "run_dir_b": os.path.abspath(run_dir_b),
            "settings": settings})}, {"run_dir": os.path.abspath(run_dir), "config": c.to_dict()})
        if verbose:
            mean = out["undiscounted"].mean(-1)
            print(f"{name}: mean return at A {mean[0]:.2f}, B {mean[-1]:.2f}, min along the path {mean.min():.2f} "
                  f"(a = {out['alphas'][mean.argmin()]:.2f})")
    groups, _, group_attrs = io.read_h5(h5_path)
    names = {f"seed{sa}_step{ta}__seed{sb}_step{tb}" for sa, ta, sb, tb in pairs}
    results = {n: dict(g, attrs=group_attrs[n]) for n, g in groups.items() if n in names}
    interpolation_figure(run_dir, results)
    return results


def interpolation_figure(run_dir, results):
    fig, ax = plotting.plt.subplots(figsize=(6, 4))
    for name, out in results.items():
        r = out["undiscounted"]
        line = ax.plot(out["alphas"], r.mean(-1), lw=1.5, label=name)[0]
        ax.fill_between(out["alphas"], np.quantile(r, 0.1, -1), np.quantile(r, 0.9, -1), alpha=0.2,
                        color=line.get_color())
    ax.set(xlabel="a  (policy = (1 - a) A + a B)", ylabel="post-update return (mean, 10-90%)")
    if len(results) <= 10:
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    plotting.save(fig, os.path.join(run_dir, "figures", "interpolation.png"))


# -- CVaR rejection ------------------------------------------------------------------------------------------
def analyse_rejection(c, run_dir: str, verbose: bool = True) -> dict:
    """Algorithm 1 from one snapshot, every selected seed repeated ``c.num_repeats`` times (the study's "reject
    seeds"), all as one ``jit(vmap(reject_train))`` (``c``: configs/reject.py). Returns the curves."""
    run_config, _, agent = runs.load_run(run_dir)
    available = runs.snapshot_steps(run_dir)
    step = available[0] if c.step < 0 and available else c.step
    states = runs.load_snapshot(run_dir, step, agent, config=run_config)
    if c.num_repeats < 1:
        raise ValueError(f"config.num_repeats must be >= 1, got {c.num_repeats}")
    _, seeds = runs.select_seeds(None, c.seeds, run_config.num_seeds)
    index = np.repeat(np.asarray(seeds), c.num_repeats)
    states = jax.tree.map(lambda x: x[index], states)
    root = jax.random.fold_in(jax.random.PRNGKey(c.seed), step)
    keys = jax.vmap(lambda s, r: jax.random.fold_in(jax.random.fold_in(root, s), r))(
        index, np.tile(np.arange(c.num_repeats), len(seeds)))
    path, name, settings = os.path.join(run_dir, "reject.h5"), f"{c.heuristic}/step_{step}", _settings(c, "step")
    if name in _done_groups(path, settings):
        if verbose:
            print(f"{name}: already in {path} with these settings, skipped")
        rejection_figure(run_dir, path, step)
        return io.read_h5(path)[0][name]
    rf = return_fn(agent, c)
    builder = (functools.partial(operators.default_operator, learning_rate=c.learning_rate)
               if c.learning_rate >= 0 else operators.default_operator)
    run = jax.jit(jax.vmap(lambda s, k: reject_lib.reject_train(
        agent, s, k, c.max_steps, c.check_interval, c.heuristic, c.alpha, c.num_samples, return_fn=rf,
        update_builder=builder, chunk_size=c.chunk_size or None, threshold=c.threshold)[1]))
    curves = jax.device_get(run(states, keys))
    if verbose:
        acc = curves["accepted"][:, 1:]
        print(f"step {step}, heuristic {c.heuristic}: accepted {acc.mean():.0%} of {acc.size} checks; "
              f"CVaR_{c.alpha} {curves['cvar'][:, 0].mean():.2f} -> {curves['cvar'][:, -1].mean():.2f}, "
              f"PURD mean {curves['mean'][:, 0].mean():.2f} -> {curves['mean'][:, -1].mean():.2f} "
              f"(averaged over runs)")
    io.write_reject_h5(path, {name: dict(curves, attrs={
        "step": step, "seeds": index.tolist(), "num_repeats": c.num_repeats, "settings": settings})},
        {"run_dir": os.path.abspath(run_dir), "config": c.to_dict()})
    rejection_figure(run_dir, path, step)
    return curves


def rejection_figure(run_dir, path, step):
    """The curves of every heuristic written so far for ``step`` (run ``cvar`` and ``none`` to compare)."""
    groups, _, _ = io.read_h5(path)
    mine = {k.split("/")[0]: v for k, v in groups.items() if k.endswith(f"/step_{step}")}
    fig, axes = plotting.plt.subplots(1, 2, figsize=(10, 4))
    for heuristic, curves in sorted(mine.items()):
        for ax, stat in zip(axes, ("cvar", "mean")):
            plotting.seed_curves(ax, curves["proposals"][0], curves[stat], label=heuristic)
    for ax, stat in zip(axes, ("PURD CVaR (last accepted)", "PURD mean (last accepted)")):
        ax.set(xlabel="proposed updates", ylabel=stat)
        ax.legend(fontsize="small")
    fig.tight_layout()
    plotting.save(fig, os.path.join(run_dir, "figures", f"reject_step_{step}.png"))
