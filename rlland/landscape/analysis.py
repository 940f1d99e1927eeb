"""The return-landscape analyses of a training run directory (Rahn et al. 2023; reference A.4, A.6, A.7):

* `analyse_purd(config, run_dir)`: post-update return distributions of every selected snapshot and seed ->
  ``purd.h5`` and figures (below);
* `analyse_interpolation(config, run_dir)`: PURDs along linear paths between snapshots or seeds ->
  ``interpolation.h5``, ``figures/interpolation.png`` (curves) and ``figures/interpolation_heatmap.png`` (mean
  and LTP, one row per path);
* `analyse_rejection(config, run_dir)`: CVaR-rejection training (Algorithm 1) from a snapshot -> ``reject.h5``,
  ``figures/reject_step_<step>.png`` and the curves logged to wandb (the original's only output, A.7).

Settings are the configs in ``configs/{purd,interpolate,reject}.py``; the file layouts are in `rlland.landscape.io`,
the figures in `rlland.landscape.figures`. Every selected seed of a snapshot is one ``jit(vmap(...))`` over the
seed axis. Sample keys are ``fold_in(fold_in(PRNGKey(config.seed), step), seed)`` (PURD, rejection: plus the
repeat index), so a seed's result does not depend on which other seeds are selected.

PURD provenance and resuming. Each PURD group is ``<operator>/<settings id>/step_<step>``: the settings id is the
first 10 hex digits of the SHA-1 of :func:`purd_settings` (the config less the keys that only select or display:
``steps``, ``run_dir``, ``progress``, ``figures``, ``block_size``), and the group's attributes hold the settings
JSON, every config key flattened (``config.operator``, ``config.eval.action_noise``, ...), and what the operator
resolved to on this run (``resolved.operator``, ``resolved.learning_rate`` per seed, ``resolved.batch_size``).
So runs with another noise scale, k, learning rate or evaluation protocol write their own groups next to the
earlier ones; a re-run with the same settings skips the steps already in the file (each step is written, atomically,
as soon as it is done, so a killed run loses at most the step in progress). Within a step the samples run in
blocks of about ``num_samples / 10`` (``block_size``), one compiled call each, with a progress bar in samples/s;
the sample keys do not depend on the blocking (`rlland.landscape.purd.purd_sample_keys`).

``pre_update`` is the snapshot's return under ``c.eval`` WITHOUT the in-rollout perturbations (action, per-step
parameter and start-state noise), i.e. the unperturbed reference the PURD spreads around.

Refusals (ValueError, naming the snapshot and seed; nothing of that step is written): an off-policy operator on a
snapshot whose replay buffer is empty (it would sample all-zero transitions), a snapshot whose parameters are not
finite (a diverged seed), and non-finite post-update or pre-update returns (a non-finite loss makes the updated
parameters NaN).
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import os

import jax
import numpy as np

from rlland import loop, runs, sweep
from rlland.divergence import finite
from rlland.landscape import figures, io, operators, purd as purd_lib, reject as reject_lib, stats
from rlland.landscape.interpolation import interpolation_purd
from rlland.validation import require_choice

OPERATORS = {"td3_actor_step": operators.td3_actor_step, "sac_actor_step": operators.sac_actor_step,
             "ppo_update": operators.ppo_update, "default": operators.default_operator}
PPO_ORIGINAL = "ppo_minibatch_step"
OTHER_OPERATORS = ("param_noise", PPO_ORIGINAL, "none")
OFF_POLICY_OPERATORS = ("td3_actor_step", "sac_actor_step")
# keys that choose what is computed or shown, not what a group's numbers are: left out of the settings
PURD_SELECTION_KEYS = ("steps", "run_dir", "progress", "figures", "block_size", "wandb")


def return_fn(agent, c, perturbed: bool = True):
    """The evaluation return function of ``c.eval`` (deterministic, fixed start, ... as the study; the in-rollout
    perturbations ``action_noise``, ``param_noise`` and ``start_noise`` (< 0: off) when the config has them and
    ``perturbed``; without them for the pre-update return, the snapshot's unperturbed return)."""
    e = c.eval
    start_noise = e.get("start_noise", -1.0) if perturbed else -1.0
    return purd_lib.policy_returns(agent, deterministic=e.deterministic, gamma=e.gamma, fixed_start=e.fixed_start,
                                   episode_length=e.episode_length or None, num_episodes=e.num_episodes,
                                   action_noise=float(e.get("action_noise", 0.0)) if perturbed else 0.0,
                                   param_noise=float(e.get("param_noise", 0.0)) if perturbed else 0.0,
                                   start_noise=None if start_noise < 0 else float(start_noise))


def update_builder(c):
    """``(agent, snapshot) -> update_fn`` for ``c.operator`` (chained ``c.k`` times)."""
    require_choice("config.operator", c.operator, (*OPERATORS, *OTHER_OPERATORS))
    if c.operator == "param_noise":
        return lambda agent, snap: operators.k_steps(operators.param_noise(c.noise_scale), c.k)
    if c.operator == "none":
        return lambda agent, snap: operators.no_update
    kwargs = {"learning_rate": c.learning_rate} if c.learning_rate >= 0 else {}
    if c.operator == PPO_ORIGINAL:
        p = c.get("ppo", {})
        kwargs |= {"fraction": float(p.get("fraction", 0.5)), "max_grad_norm": float(p.get("max_grad_norm", 0.1))}
        return lambda agent, snap: operators.k_steps(operators.ppo_minibatch_step(agent, snap, **kwargs), c.k)
    return lambda agent, snap: operators.k_steps(OPERATORS[c.operator](agent, snap, **kwargs), c.k)


def resolved_operator(c, agent) -> str:
    """The operator ``c.operator`` means for ``agent`` (``default``: the study's, per the agent's family)."""
    if c.operator != "default":
        return c.operator
    return f"{agent.name}_actor_step" if agent.is_off_policy else "ppo_update"


def sample_keys(c, step, seeds):
    root = jax.random.fold_in(jax.random.PRNGKey(c.seed), step)
    return jax.vmap(lambda s: jax.random.fold_in(root, s))(np.asarray(seeds))


def purd_summary(undiscounted: np.ndarray, alpha: float, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Per-seed statistics of PURD samples [seeds, samples] (one vmap over seeds): mean, std, mode, LTP
    (fraction below ``threshold`` x mode) and CVaR_alpha, the numbers the study reports (reference A.5)."""
    r = np.asarray(undiscounted)
    per_seed = jax.vmap(lambda x: {"mode": stats.mode(x), "ltp": stats.ltp(x, threshold),
                                   "cvar": stats.cvar(x, alpha)})(r)
    return {"mean": r.mean(-1), "std": r.std(-1)} | {k: np.asarray(v) for k, v in per_seed.items()}


def _settings(c, *selection: str) -> str:
    """What a group's result depends on, as sorted JSON: the config less the ``selection`` keys, which only say
    which groups to compute (each group's name or attributes identify it)."""
    return json.dumps({k: v for k, v in c.to_dict().items() if k not in selection}, sort_keys=True, default=str)


def purd_settings(c) -> str:
    """The canonical JSON of what a PURD group's numbers depend on (module docstring)."""
    return _settings(c, *PURD_SELECTION_KEYS)


def settings_id(settings: str) -> str:
    """A short stable id of a settings JSON (first 10 hex digits of its SHA-1)."""
    return hashlib.sha1(settings.encode()).hexdigest()[:10]


def purd_group(c, step: int) -> str:
    return f"{c.operator}/{settings_id(purd_settings(c))}/step_{int(step)}"


def _done_groups(path: str, settings: str) -> set[str]:
    """Groups of ``path`` already written with these settings (a re-run skips them)."""
    if not os.path.exists(path):
        return set()
    _, _, group_attrs = io.read_h5(path)
    return {name for name, a in group_attrs.items() if a.get("settings") == settings}


def check_replay(step: int, seeds, sizes, operator: str) -> None:
    """ValueError naming the snapshot and seed when an operator that samples the replay buffer meets an empty one
    (``sizes`` [seeds]: the snapshots' ``buffer.size``)."""
    for s, size in zip(seeds, np.asarray(sizes).reshape(-1)):
        if int(size) < 1:
            raise ValueError(f"snapshot {step} seed {s}: the replay buffer is empty, so {operator} would sample "
                             f"all-zero transitions; analyse a later snapshot, or use operator=param_noise")


def check_finite(step: int, seeds, what: str, ok) -> None:
    """ValueError naming the snapshot and the first seed whose ``ok`` [seeds] is False."""
    for s, good in zip(seeds, np.asarray(ok).reshape(-1)):
        if not bool(good):
            raise ValueError(f"snapshot {step} seed {s}: {what}; refusing to write NaN statistics for it (leave the "
                             f"seed out with config.seeds)")


def _blocks(num_samples: int, block_size: int, chunk_size: int) -> tuple[int, int]:
    """``(blocks, samples per block)``: about 10 blocks (or ``block_size`` samples each), whole chunks, and
    at most ``blocks - 1`` padded samples."""
    target = block_size or max(chunk_size, math.ceil(num_samples / 10))
    target = min(num_samples, max(1, target))
    if chunk_size and target > chunk_size:
        target = chunk_size * math.ceil(target / chunk_size)
    blocks = math.ceil(num_samples / target)
    return blocks, math.ceil(num_samples / blocks)


@sweep.per_point  # a sweep run: each point view in turn
def analyse_purd(c, run_dir: str, verbose: bool = True) -> dict:
    """PURDs of ``run_dir``'s snapshots (``c``: configs/purd.py; see the module docstring for the file, resuming
    and refusals); returns ``{group: datasets}`` of the steps computed by this call."""
    run_config, _, agent = runs.load_run(run_dir)
    steps = [int(s) for s in c.steps] or runs.snapshot_steps(run_dir)
    if not steps:
        raise ValueError(f"{run_dir} has no snapshots")
    rf, rf_pre, build = return_fn(agent, c), return_fn(agent, c, perturbed=False), update_builder(c)
    operator = resolved_operator(c, agent)
    if operator in OFF_POLICY_OPERATORS and not agent.is_off_policy:
        raise ValueError(f"operator {operator} needs an off-policy run, {run_dir} is {agent.name}")
    chunk = c.chunk_size or None
    blocks, block = _blocks(int(c.num_samples), int(c.get("block_size", 0)), int(c.chunk_size or 0))

    @jax.jit
    @jax.vmap
    def kernel(snap, keys):
        return purd_lib.post_update_returns_at(build(agent, snap), rf, snap.params, keys, chunk)

    @jax.jit
    @jax.vmap
    def pre_update(snap, key):
        return rf_pre(snap.params, key).undiscounted, finite(snap.params)

    path, settings = os.path.join(run_dir, "purd.h5"), purd_settings(c)
    sid, config_attrs = settings_id(settings), {k: v for k, v in c.to_dict().items() if k not in ("run_dir",)}
    done, results = _done_groups(path, settings), {}
    for step in steps:
        name = purd_group(c, step)
        if name in done:
            if verbose:
                print(f"step {step}: already in {path} with these settings ({name}), skipped")
            continue
        snaps = runs.load_snapshot(run_dir, step, agent, config=run_config)
        states, seeds = runs.select_seeds(snaps, c.seeds, run_config.num_seeds)
        if operator in OFF_POLICY_OPERATORS:
            check_replay(step, seeds, states.buffer.size, operator)
        k_samples, k_pre = jax.vmap(jax.random.split, out_axes=1)(sample_keys(c, step, seeds))
        pre, ok = jax.device_get(pre_update(states, k_pre))
        check_finite(step, seeds, "its parameters are not finite (the seed diverged)", ok)
        keys = jax.vmap(lambda k: purd_lib.purd_sample_keys(k, int(c.num_samples)))(k_samples)  # [S, N, 2]
        pad = blocks * block - int(c.num_samples)
        keys = np.concatenate([np.asarray(keys), np.asarray(keys[:, :pad])], axis=1) if pad else np.asarray(keys)
        parts = []
        bar = loop.progress_bar(blocks * block * len(seeds), 0, "sample", f"PURD step {step} x{len(seeds)} seeds",
                                enabled=verbose and bool(c.get("progress", True)))
        with bar:
            for b in range(blocks):  # host blocks for progress only: the samples and their keys are fixed
                parts.append(jax.device_get(kernel(states, keys[:, b * block:(b + 1) * block])))
                bar.update(block * len(seeds))
        out = {k: np.concatenate([p[k] for p in parts], axis=1)[:, :int(c.num_samples)] for k in parts[0]}
        check_finite(step, seeds, f"non-finite post-update returns ({operator}: a non-finite loss or update)",
                     np.all(np.isfinite(out["undiscounted"]), axis=-1))
        check_finite(step, seeds, "its pre-update return is not finite", np.isfinite(pre))
        out |= {"pre_update": pre} | purd_summary(out["undiscounted"], c.alpha, c.get("threshold", 0.5))
        resolved = {"operator": operator, "settings_id": sid}
        if c.operator not in ("param_noise", "none"):
            resolved["learning_rate"] = (np.asarray(states.hparams["learning_rate"], np.float64)
                                         if c.learning_rate < 0 else np.full(len(seeds), c.learning_rate))
        if operator in OFF_POLICY_OPERATORS:
            resolved["batch_size"] = int(agent.config.batch_size)
        results[name] = out
        io.write_purd_h5(path, {name: dict(out, attrs={"step": step, "seeds": seeds, "settings": settings,
                                                       "config": config_attrs, "resolved": resolved})},
                         {"run_dir": os.path.abspath(run_dir), "algo": run_config.algo, "env": run_config.env.name})
        if verbose:
            for i, s in enumerate(seeds):
                print(f"step {step} seed {s}: pre-update {out['pre_update'][i]:.2f}  PURD mean {out['mean'][i]:.2f} "
                      f"std {out['std'][i]:.2f}  LTP {out['ltp'][i]:.3f}  CVaR_{c.alpha} {out['cvar'][i]:.2f}")
        if c.get("figures", True):
            purd_figure(run_dir, step, seeds, out, name, c.get("threshold", 0.5))
    if c.get("figures", True) and os.path.exists(path):
        ltp_scatter(run_dir, path, c.operator, settings)
    return results


def read_purd(run_dir: str, c) -> dict[int, dict[str, np.ndarray]]:
    """``{step: datasets}`` of the PURD groups of ``<run_dir>/purd.h5`` written with ``c``'s settings (other
    settings' groups in the same file are left out); empty if there are none."""
    path = os.path.join(run_dir, "purd.h5")
    if not os.path.exists(path):
        return {}
    groups, _, group_attrs = io.read_h5(path)
    settings = purd_settings(c)
    return {int(a["step"]): groups[n] for n, a in sorted(group_attrs.items()) if a.get("settings") == settings}


def purd_figure(run_dir, step, seeds, out, name: str | None = None, threshold: float = 0.5) -> str:
    """``figures/purd_<operator>_<settings id>_step_<step>.png`` (``name`` the h5 group; None: ``purd_step_<step>``):
    per-seed histograms with the pre-update return and the LTP threshold (`rlland.landscape.figures`)."""
    mode = out["mode"] if "mode" in out else jax.vmap(stats.mode)(np.asarray(out["undiscounted"], np.float32))
    stem = "purd_" + ("_".join(name.split("/")[:2]) + "_" if name else "") + f"step_{step}"
    return figures.purd_histograms(os.path.join(run_dir, "figures", f"{stem}.png"), f"PURD at step {step}"
                                   + (f" ({name.rsplit('/', 1)[0]})" if name else ""), seeds, out["undiscounted"],
                                   out["pre_update"], np.asarray(mode), threshold)


def ltp_scatter(run_dir: str, path: str, operator: str, settings: str) -> str | None:
    """``figures/purd_<operator>_<settings id>_mean_vs_ltp.png``: PURD mean against LTP over every step and seed
    of ``path`` written with ``settings`` (those already there included)."""
    groups, _, group_attrs = io.read_h5(path)
    mine = sorted((a["step"], n) for n, a in group_attrs.items() if a.get("settings") == settings and "ltp" in groups[n])
    if not mine:
        return None
    steps = np.concatenate([np.full(groups[n]["mean"].shape, s) for s, n in mine])
    means = np.concatenate([groups[n]["mean"] for _, n in mine])
    ltps = np.concatenate([groups[n]["ltp"] for _, n in mine])
    sid = settings_id(settings)
    return figures.mean_vs_ltp(os.path.join(run_dir, "figures", f"purd_{operator}_{sid}_mean_vs_ltp.png"),
                               f"PURD mean vs LTP, {operator} ({sid}): {len(mine)} checkpoints", steps, means, ltps)


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


@sweep.per_point  # a sweep run: each point view in turn
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

    h5_path, settings = os.path.join(run_dir, "interpolation.h5"), _settings(c, "pairs", "steps", "seeds", "same_seed",
                                                                            "run_dir")
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


def interpolation_figure(run_dir, results) -> list[str]:
    """``figures/interpolation.png`` (mean and 10-90% band along each path) and
    ``figures/interpolation_heatmap.png`` (PURD mean and LTP, one row per path; paths of different ``num_points``
    are drawn on the first path's grid only if they share it)."""
    out = [figures.interpolation_curves(os.path.join(run_dir, "figures", "interpolation.png"), results)]
    first = next(iter(results.values()))
    same = {n: r for n, r in results.items() if r["alphas"].shape == first["alphas"].shape}
    und = np.stack([same[n]["undiscounted"] for n in same])  # [paths, points, samples]
    ltp = jax.vmap(jax.vmap(stats.ltp))(np.asarray(und, np.float32))
    out.append(figures.interpolation_heatmap(os.path.join(run_dir, "figures", "interpolation_heatmap.png"),
                                             list(same), first["alphas"], und.mean(-1), np.asarray(ltp)))
    return out


# -- CVaR rejection ------------------------------------------------------------------------------------------
@sweep.per_point  # a sweep run: each point view in turn
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
    if agent.is_off_policy:
        check_replay(step, seeds, np.asarray(states.buffer.size)[np.asarray(seeds)], f"{agent.name}_actor_step")
    check_finite(step, seeds, "its parameters are not finite (the seed diverged)",
                 np.asarray(jax.vmap(finite)(states.params))[np.asarray(seeds)])
    index = np.repeat(np.asarray(seeds), c.num_repeats)
    states = jax.tree.map(lambda x: x[index], states)
    root = jax.random.fold_in(jax.random.PRNGKey(c.seed), step)
    keys = jax.vmap(lambda s, r: jax.random.fold_in(jax.random.fold_in(root, s), r))(
        index, np.tile(np.arange(c.num_repeats), len(seeds)))
    path, name = os.path.join(run_dir, "reject.h5"), f"{c.heuristic}/step_{step}"
    settings = _settings(c, "step", "wandb", "run_dir")
    if name in _done_groups(path, settings):
        if verbose:
            print(f"{name}: already in {path} with these settings, skipped (not logged to wandb again)")
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
    log_rejection(c, run_dir, step, index, curves)
    return curves


def log_rejection(c, run_dir: str, step: int, seeds, curves) -> None:
    """The curves to wandb as the original logged them (A.7: ``PURD mean``, ``PURD LTP``, ``PURD CVaR`` of the last
    accepted policy at each proposed update, plus the proposal's and whether it was accepted): one wandb run per
    rejection run (seed and repeat), group ``<run basename>-<run_id>-reject``, id
    ``<run_id>-reject-<heuristic>-step<step>-<settings id>-seed<i>`` (``config.wandb.mode``: offline by default,
    disabled to skip)."""
    w = c.get("wandb", None)
    mode = w.mode if w is not None else "disabled"
    if mode == "disabled":
        return
    from rlland import sinks

    sid = settings_id(_settings(c, "step", "wandb"))
    sink = sinks.WandbSink(run_dir, f"{runs.run_id(run_dir)}-reject-{c.heuristic}-step{step}-{sid}", len(seeds),
                           {"reject": c.to_dict(), "step": step, "seeds": [int(s) for s in seeds]}, mode=mode,
                           project=w.get("project", "rlland"))
    names = {"mean": "PURD mean", "ltp": "PURD LTP", "cvar": "PURD CVaR", "proposal_mean": "proposal/PURD mean",
             "proposal_ltp": "proposal/PURD LTP", "proposal_cvar": "proposal/PURD CVaR", "accepted": "accepted"}
    try:
        for j, proposals in enumerate(np.asarray(curves["proposals"])[0]):
            sink.log(int(proposals), {names[k]: np.asarray(curves[k], np.float64)[:, j] for k in names})
    finally:
        sink.finish()


def rejection_figure(run_dir, path, step) -> str:
    """The curves of every heuristic written so far for ``step`` (run ``cvar`` and ``none`` to compare)."""
    groups, _, _ = io.read_h5(path)
    mine = {k.split("/")[0]: v for k, v in groups.items() if k.endswith(f"/step_{step}")}
    return figures.rejection_curves(os.path.join(run_dir, "figures", f"reject_step_{step}.png"), mine)
