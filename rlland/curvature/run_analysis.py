"""Policy-gradient subspaces over a training run's snapshots (Schneider et al., ICLR 2024; reference
``landscapes-and-subspaces.md`` B.2-B.5): :func:`analyse_run`, the library side of ``experiments/subspaces.py``.

A module of its own because it is a different concept from :mod:`rlland.curvature.analysis`: that module is the
math of ONE seed's snapshot (pure, jittable functions of a state and a key); this one is the host side of a whole
run (which snapshots and seeds, loading them, one compile per big-batch size, comparing eigenbases across
snapshots, writing the file), i.e. I/O and state kept between snapshots. The file is :mod:`rlland.curvature.layout`,
the figures :mod:`rlland.curvature.figures`.

For every selected snapshot (a host loop over snapshots, in increasing step order: I/O and memory only), all
selected seeds are one ``jit(vmap(rlland.curvature.analyse_snapshot))`` over the seed axis (placed over the local
devices): the actor (``policy_loss``) and critic (``value_function_loss``) Hessians' top-k eigenpairs by Lanczos,
the true- and estimated-gradient subspace fractions, and the ``combined_loss`` (merged eigenbasis;
``config.combined``). The bases of the overlap reference steps t1 stay on the device, and every later snapshot t2
is compared with each of them (``subspace_overlap``, B.4). Data and noise handling: :mod:`rlland.curvature.analysis`.
The kernel is compiled once per distinct big-batch size (the whole replay buffer grows until it is full, so early
snapshots of a TD3 / SAC run may each compile; a fixed ``config.num_samples`` compiles once); compile time is
reported apart from run time. Analysis keys: :func:`snapshot_keys` (a seed's result does not depend on which
other seeds are selected). The config's keys are those of ``configs/subspaces.py``.

Convergence: every Hessian's eigenpairs come from thick-restart Lanczos to ``config.tol`` (``||H y - theta y|| <=
tol * max|theta|``) within ``config.max_matvecs`` HVPs; the residuals, per-pair converged flags and HVP counts are
stored, and each snapshot and seed with unconverged pairs gets one warning line.

Losses and variants (``configs/subspaces.py``): by default the subspace study's own loss definitions
(``config.losses = "study"``, :mod:`rlland.curvature.study_losses`: the combined basis merges the two blocks by
eigenvalue, so the losses' scales matter), the low-sample Hessian variant (``config.low_sample``) and the SLQ
spectral density of each block's Hessian (``config.slq``). Refusals (ValueError naming the snapshot and seed,
nothing of that snapshot written): an empty replay buffer, non-finite parameters, a non-finite loss.

Resuming: the h5 is rewritten atomically after every snapshot. A re-run reuses the snapshots the file already
holds with the same settings (`rlland.curvature.layout.settings`: the config without the step selection and the
figure options, and the seeds) and computes the others, as ``rlland.landscape.analysis.analyse_purd`` does; the
eigenbases of the overlap reference steps are kept in ``subspaces_bases/`` so that later snapshots can still be
compared with a reused step (a reused step whose basis file is missing or stale is recomputed).
"""
from __future__ import annotations

import os
import time
from functools import partial

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rlland import runs, sharding, sweep
from rlland.buffers import check_fits
from rlland.curvature import figures, layout
from rlland.curvature.analysis import analyse_snapshot, on_policy_rollouts, resolve_subspace_sizes
from rlland.curvature.study_losses import study_losses
from rlland.divergence import finite
from rlland.curvature.layout import Results
from rlland.curvature.subspace import subspace_overlap

ON_POLICY_SAMPLES = 1_000_000  # PPO's big batch when config.num_samples is 0: 10^6 fresh samples (B.2)


def snapshot_keys(seed: int, step: int, seeds) -> jax.Array:
    """The analysis key of each selected seed at ``step``: ``fold_in(fold_in(PRNGKey(seed), step), seed_index)``."""
    root = jax.random.fold_in(jax.random.PRNGKey(seed), step)
    return jax.vmap(lambda s: jax.random.fold_in(root, s))(jnp.asarray(seeds))


def resolve_num_samples(c: ml_collections.ConfigDict, agent, states, step: int | None = None, seeds=None) -> int:
    """The static big-batch size for this snapshot (``config.num_samples``, see configs/subspaces.py).

    On-policy: whole rollouts covering ``num_samples`` (0: ``ON_POLICY_SAMPLES``). Off-policy: ``num_samples``
    capped to the replay size shared by all seeds (0: the whole valid buffer), cut to whole ``chunk_size`` chunks.
    """
    if not agent.is_off_policy:
        n = int(c.num_samples) or ON_POLICY_SAMPLES
        return on_policy_rollouts(agent, n) * int(agent.config.unroll_length) * int(agent.config.num_envs)
    per_seed = np.asarray(states.buffer.size).reshape(-1)
    seeds = list(range(per_seed.size)) if seeds is None else list(seeds)
    empty = [s for s, n in zip(seeds, per_seed) if n < 1]
    if empty:
        raise ValueError(f"snapshot {step} seed {empty[0]}: the replay buffer is empty (taken before any transition "
                         f"was stored?): nothing to take the losses on; analyse later snapshots (config.steps)")
    sizes = np.unique(per_seed)
    if sizes.size != 1:
        raise ValueError(f"snapshot {step}: seeds {seeds} hold different replay sizes {per_seed.tolist()}; analyse "
                         f"them separately (config.seeds)")
    size = int(sizes[0])
    n = min(int(c.num_samples), size) if c.num_samples else size
    if c.chunk_size and n % int(c.chunk_size):
        n -= n % int(c.chunk_size)  # whole chunks only
        if n == 0:
            raise ValueError(f"chunk_size {c.chunk_size} exceeds the replay size {size}")
    return n


def _selected_steps(c: ml_collections.ConfigDict, run_dir: str) -> tuple[list[int], list[int]]:
    """``(steps, t1_steps)``: the snapshots to analyse and the overlap reference steps among them."""
    available = runs.snapshot_steps(run_dir)
    steps = sorted({int(s) for s in c.steps}) if c.steps else available
    missing = [s for s in steps if s not in available]
    if not steps or missing:
        raise ValueError(f"{run_dir}: snapshots {missing or 'none'} not available; it has {available}")
    t1_steps = sorted({int(s) for s in c.overlap_steps}) if c.overlap_steps else steps
    bad_t1 = [s for s in t1_steps if s not in steps]
    if bad_t1:
        raise ValueError(f"overlap_steps {bad_t1} are not among the analysed snapshots {steps}")
    return steps, t1_steps


def _snapshot_fn(agent, c: ml_collections.ConfigDict, ks: tuple[int, ...], num_samples: int, losses=None):
    """``(state, key) -> analyse_snapshot(...)`` for one seed, every size static."""
    slq = c.get("slq", {})
    return partial(analyse_snapshot, agent, k=int(c.k), num_iters=int(c.num_iters), ks=ks, num_samples=num_samples,
                   num_minibatches=int(c.num_minibatches), minibatch_size=int(c.minibatch_size),
                   chunk_size=int(c.chunk_size), combined=bool(c.combined), tol=float(c.tol),
                   max_matvecs=int(c.max_matvecs) or None, losses=losses,
                   low_sample=bool(c.get("low_sample", False)), slq_probes=int(slq.get("num_probes", 0)),
                   slq_iters=int(slq.get("num_iters", 0)))


def check_finite_losses(step: int, seeds, host: dict) -> None:
    """ValueError naming the snapshot, seed and loss where a loss on the big batch is not finite (its eigenvalues
    and fractions would be NaN): nothing of that snapshot is written."""
    for loss, o in host.items():
        for s, value in zip(seeds, np.asarray(o["loss"]).reshape(-1)):
            if not np.isfinite(value):
                raise ValueError(f"snapshot {step} seed {s}: non-finite {loss} ({value}); refusing to write NaN "
                                 f"eigenvalues and fractions (leave the seed out with config.seeds)")


def _step_summary(host: dict, ks) -> str:
    return "  ".join(f"{loss}: lambda_1 {np.mean(o['eigenvalues'][:, 0]):.3g}, true fraction at k="
                     f"{layout.levels(ks, o['eigenvalues'].shape[-1])[-1]} {np.nanmean(o['true_gradient'][:, -1]):.3f}"
                     for loss, o in host.items())


def convergence_warnings(step: int, seeds, host: dict, tol: float) -> list[str]:
    """One line per seed of ``host`` (a snapshot's results, leading seed axis) with unconverged eigenpairs."""
    lines = []
    for i, seed in enumerate(seeds):
        parts = []
        for loss, o in host.items():
            for prefix, label in (("", loss), ("low_sample_", f"low-sample {loss}")):
                if f"{prefix}converged" not in o or np.all(o[f"{prefix}converged"][i]):
                    continue
                converged, residuals = o[f"{prefix}converged"][i], o[f"{prefix}residuals"][i]
                with np.errstate(divide="ignore", invalid="ignore"):
                    relative = np.max(residuals) / np.max(np.abs(o[f"{prefix}eigenvalues"][i]))
                parts.append(f"{label} {int(np.sum(~converged))} of {converged.shape[-1]} (max residual / "
                             f"max|lambda| {relative:.2g} after {int(o[f'{prefix}num_matvecs'][i])} HVPs)")
        if parts:
            lines.append(f"warning: step {step} seed {seed}: Hessian eigenpairs not converged to tol {tol:g}: "
                         + "; ".join(parts) + " (raise config.max_matvecs or num_iters; eigenvalue_converged in the "
                         "h5 marks them)")
    return lines


def _needs_basis(previous: Results, step: int, steps, t1_steps) -> bool:
    """Whether an overlap with the reused snapshot ``step`` is not in the file, so that its basis must be loaded:
    a pair ``(t1, step)`` for a reference step ``t1 <= step``, or, if ``step`` is a reference step, ``(step, t2)``
    for a snapshot ``t2 >= step``."""
    pairs = [(t1, step) for t1 in t1_steps if t1 <= step]
    if step in t1_steps:
        pairs += [(step, t2) for t2 in steps if t2 > step]
    return any((t1, t2, loss) not in previous.overlaps for t1, t2 in pairs for loss in previous.per_step[step])


@sweep.per_point  # a sweep run: each point view in turn
def analyse_run(c: ml_collections.ConfigDict, run_dir: str, verbose: bool = True,
                compiler_options: dict | None = None) -> str:
    """Run the analysis of the module docstring on ``run_dir``; writes ``<run_dir>/subspaces.h5`` (layout:
    :mod:`rlland.curvature.layout`; rewritten after every snapshot, and snapshots already there with the same
    settings are reused) and, with ``c.figures``, the figures; returns the h5 path.

    ``c``: a ``configs/subspaces.py`` config. ``compiler_options`` go to XLA when the kernel is compiled (tests pass
    cheap-compile CPU options). Raises ValueError for snapshots, seeds or sizes the run cannot give.
    """
    log = print if verbose else (lambda *a, **k: None)
    run_config, _, agent = runs.load_run(run_dir)
    steps, t1_steps = _selected_steps(c, run_dir)
    ks = tuple(int(x) for x in c.ks)
    resolve_subspace_sizes(1, int(c.k), int(c.num_iters), ks)  # validate k, num_iters, ks early
    if len(set(c.seeds)) != len(c.seeds):
        raise ValueError(f"seeds must be distinct indices of the run's seeds, got {list(c.seeds)}")
    if c.max_matvecs and int(c.max_matvecs) < int(c.num_iters):
        raise ValueError(f"max_matvecs ({c.max_matvecs}) must be 0 (the default budget) or >= num_iters "
                         f"({c.num_iters})")
    if not float(c.tol) >= 0:
        raise ValueError(f"tol must be >= 0, got {c.tol}")
    _, seeds = runs.select_seeds(None, c.seeds, run_config.num_seeds)
    losses = study_losses(run_config.algo, agent, c.get("losses", "agent"))
    path = os.path.join(run_dir, layout.FILE_NAME)
    settings = layout.settings(c, seeds)
    previous = layout.previous_results(path, settings)
    if previous is None and os.path.exists(path):
        log(f"{path} was written with other settings (or an older layout): every snapshot is recomputed")
    attrs = {"config": c.to_dict(), "run_dir": os.path.abspath(run_dir), "algo": run_config.algo,
             "env": run_config.env.name, "settings": settings}

    # overlaps are deterministic functions of the two snapshots' results: every pair already in the file is reused
    results = Results({}, {}, {key: v for key, v in previous.overlaps.items() if key[0] in t1_steps and key[1] in steps}
                      if previous else {}, dict(previous.num_parameters) if previous else {})
    kernels, overlap_fns, bases = {}, {}, {}  # bases: t1 -> {loss: [S, k, n]} (device arrays)
    compile_seconds = run_seconds = 0.0
    for step in steps:
        reused, vectors = previous is not None and step in previous.per_step, None
        if reused and _needs_basis(previous, step, steps, t1_steps):
            vectors = layout.read_basis(layout.basis_path(run_dir, step), settings)
            if vectors is None:
                reused = False
                log(f"step {step}: in {path}, but its eigenbasis (needed for overlaps) is missing or stale: recomputed")
        if reused:
            host = previous.per_step[step]
            results.num_samples[step] = previous.num_samples[step]
            log(f"step {step}: already in {path} with these settings, skipped")
        else:
            snapshot = runs.load_snapshot(run_dir, step, agent, config=run_config)
            states, _ = runs.select_seeds(snapshot, seeds, run_config.num_seeds)
            for s, ok in zip(seeds, np.asarray(jax.vmap(finite)(states.params))):
                if not ok:
                    raise ValueError(f"snapshot {step} seed {s}: its parameters are not finite (the seed diverged); "
                                     f"leave it out with config.seeds")
            states = sharding.shard_seeds(states, len(seeds))
            keys = snapshot_keys(int(c.seed), step, seeds)
            n = resolve_num_samples(c, agent, states, step, seeds)
            results.num_samples[step] = n
            if n not in kernels:
                t0 = time.perf_counter()
                kernels[n] = jax.jit(jax.vmap(_snapshot_fn(agent, c, ks, n, losses))).lower(states, keys).compile(
                    compiler_options)
                compile_seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            out = jax.block_until_ready(kernels[n](states, keys))
            run_seconds += time.perf_counter() - t0
            check_finite_losses(step, seeds, {loss: {"loss": o["loss"]} for loss, o in out.items()})
            vectors = {loss: o["eigenvectors"] for loss, o in out.items()}
            results.num_parameters.update({loss: int(v.shape[-1]) for loss, v in vectors.items()})
            if step in t1_steps:
                layout.write_basis(layout.basis_path(run_dir, step), vectors, settings, seeds, step)
            host = {loss: {k: np.asarray(v) for k, v in o.items() if k != "eigenvectors"} for loss, o in out.items()}
            log(f"step {step} ({len(seeds)} seeds, {n} samples): {_step_summary(host, ks)}")
        results.per_step[step] = host
        if step in t1_steps and vectors is not None:
            nbytes = sum(np.asarray(v).nbytes for v in vectors.values())
            check_fits(nbytes * (len(bases) + 1), f"the eigenbases of {len(bases) + 1} overlap reference steps")
            bases[step] = {loss: jnp.asarray(v) for loss, v in vectors.items()}
        for t1 in (t for t in t1_steps if t <= step):  # B.4: this snapshot (t2) against every reference step t1 <= t2
            for loss in host:
                if (t1, step, loss) in results.overlaps:
                    continue
                ks_loss = layout.levels(ks, host[loss]["eigenvalues"].shape[-1])
                if ks_loss not in overlap_fns:
                    overlap_fns[ks_loss] = jax.jit(jax.vmap(partial(subspace_overlap, ks=list(ks_loss))))
                results.overlaps[(t1, step, loss)] = np.asarray(overlap_fns[ks_loss](bases[t1][loss], vectors[loss]))
        for line in convergence_warnings(step, seeds, host, float(c.tol)):
            log(line)
        datasets = layout.collect(results, seeds, ks)
        layout.write_h5(path, datasets, attrs | {"compile_seconds": compile_seconds, "run_seconds": run_seconds})
    log(f"wrote {path} (compile {compile_seconds:.1f}s, run {run_seconds:.1f}s)")
    if c.figures:
        for fig_path in figures.figures(datasets, run_dir, tuple(int(x) for x in c.figure_ks)):
            log(f"wrote {fig_path}")
    return path
