"""Policy-gradient subspaces over a run's snapshots (Schneider et al., ICLR 2024; reference B.2-B.5).

    python experiments/subspaces.py --run_dir=runs/td3-hopper-seed0
    python experiments/subspaces.py --config=configs/subspaces.py:quick --run_dir=runs/quickstart \
        --config.steps="(10240, 20480)" --config.seeds="(0, 1)" --config.k=50 --config.num_iters=150

For every selected snapshot (a host loop over snapshots, in increasing step order), all selected seeds are one
``jit(vmap(rlland.curvature.analyse_snapshot))`` over the seed axis (placed over the local devices): the actor
(``policy_loss``) and critic (``value_function_loss``) Hessians' top-k eigenpairs by Lanczos, the true- and
estimated-gradient subspace fractions, and the ``combined_loss`` (merged eigenbasis; ``config.combined``). The
bases of the overlap reference steps t1 stay on the device, and every later snapshot t2 is compared with each
of them (``subspace_overlap``, B.4). Data and noise handling: :mod:`rlland.curvature.analysis`. The kernel is
compiled once per distinct big-batch size (the whole replay buffer grows until it is full, so early snapshots
of a TD3 / SAC run may each compile; a fixed ``config.num_samples`` compiles once); compile time is reported
apart from run time. Analysis keys: ``fold_in(fold_in(PRNGKey(config.seed), step), seed_index)`` (so a seed's
result does not depend on which other seeds are selected).

Writes ``<run_dir>/subspaces.h5`` (rewritten atomically) with ``S`` = selected seeds, ``T`` = analysed snapshots,
``<loss>`` in {policy_loss, value_function_loss, combined_loss}, ``k`` over the levels ``ks/<loss>`` (the
configured ``ks`` clipped to that loss's number of eigenvectors) and ``t1`` over the overlap reference steps::

    steps                                                        int64 [T]     env steps of the snapshots
    seeds                                                        int64 [S]     seed indices in the run
    num_samples                                                  int64 [T]     samples in the big (Hessian) batch
    ks/<loss>                                                    int64 [K]     levels reported for <loss>
    num_parameters/<loss>                                        int64 []      n (actor / critic / both)
    eigenvalues/<loss>                                           f32 [S, T, k] top-k Hessian eigenvalues, descending
    eigenvalue_residuals/<loss>                                  f32 [S, T, k] Ritz residuals ||H y - theta y||
                                                                               (policy / value_function only)
    loss/<loss>                                                  f32 [S, T]    loss on the big batch
    gradient_norm/<loss>                                         f32 [S, T]    ||true gradient||
    gradient_subspace_fraction_{k:03d}evs/true_gradient/<loss>   f32 [S, T]    ||V_k^T g||^2 / ||g||^2, big batch
    gradient_subspace_fraction_{k:03d}evs/estimated_gradient/<loss> f32 [S, T] mean over minibatches of the same
    random_subspace_baseline_{k:03d}evs/<loss>                   f32 []        k / n
    overlaps_top{k:03d}_checkpoint{t1:07d}/<loss>                f32 [S, T]    ||V_k(t1)^T V_k(t2)||_F^2 / k at
                                                                               t2 = steps[j]; NaN where t2 < t1
    attributes: the config (flattened, "json:"-prefixed JSON for non-numeric values), run_dir, algo, env,
                rlland_layout = "subspaces", rlland_layout_version, compile_seconds, run_seconds

The metric names are the reference's TensorBoard scalars (B.5) with the seed and step axes made explicit
(``gradient_subspace_fraction_100evs/true_gradient/policy_loss``, ``overlaps_top100_checkpoint0100000/...``).
Figures in ``<run_dir>/figures/``: ``subspaces_eigenspectrum.png`` (eigenvalues per snapshot, and the
true-gradient fraction against k with the k/n baseline), ``subspaces_fraction.png`` (fractions against the
training step, true and estimated, k/n baselines dotted) and ``subspaces_overlap.png`` (overlap curves from each
t1, k/n baselines dotted).
"""
from __future__ import annotations

import os
import time
from functools import partial

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rlland import curvature, sharding, runs
from rlland import sinks
from rlland.buffers import check_fits

LAYOUT_VERSION = 1
LOSSES = curvature.SUBSPACE_LOSSES


def fraction_key(k: int, gradient: str, loss: str) -> str:
    return f"gradient_subspace_fraction_{k:03d}evs/{gradient}/{loss}"


def overlap_key(k: int, t1: int, loss: str) -> str:
    return f"overlaps_top{k:03d}_checkpoint{t1:07d}/{loss}"


def baseline_key(k: int, loss: str) -> str:
    return f"random_subspace_baseline_{k:03d}evs/{loss}"


def snapshot_keys(seed: int, step: int, seeds) -> jax.Array:
    """The analysis key of each selected seed at ``step``: ``fold_in(fold_in(PRNGKey(seed), step), seed_index)``."""
    root = jax.random.fold_in(jax.random.PRNGKey(seed), step)
    return jax.vmap(lambda s: jax.random.fold_in(root, s))(jnp.asarray(seeds))


def _select(states, seeds, num_seeds):
    seeds = list(range(num_seeds)) if not seeds else [int(s) for s in seeds]
    bad = [s for s in seeds if not 0 <= s < num_seeds]
    if bad or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct indices of the run's {num_seeds} seeds, got {list(seeds)}")
    return jax.tree.map(lambda x: x[np.asarray(seeds)], states), seeds


def resolve_num_samples(c, agent, states) -> int:
    """The static big-batch size for this snapshot (see configs/subspaces.py)."""
    if not hasattr(states, "buffer"):
        n = int(c.num_samples) or 1_000_000
        return curvature.on_policy_rollouts(agent, n) * int(agent.config.unroll_length) * int(agent.config.num_envs)
    sizes = np.unique(np.asarray(states.buffer.size))
    if sizes.size != 1:
        raise ValueError(f"seeds hold different replay sizes {sizes.tolist()}; analyse them separately")
    size = int(sizes[0])
    if size < 1:
        raise ValueError("the snapshot's replay buffer is empty (step 0?): nothing to take the losses on")
    n = min(int(c.num_samples), size) if c.num_samples else size
    if c.chunk_size and n % int(c.chunk_size):
        n -= n % int(c.chunk_size)  # whole chunks only
        if n == 0:
            raise ValueError(f"chunk_size {c.chunk_size} exceeds the replay size {size}")
    return n


def write_h5(path: str, datasets: dict[str, np.ndarray], attrs: dict) -> None:
    sinks.write_layout_h5(path, datasets, attrs, "subspaces", LAYOUT_VERSION)


read_h5 = sinks.read_layout_h5


def analyse_run(c: ml_collections.ConfigDict, run_dir: str, verbose: bool = True,
                compiler_options: dict | None = None) -> str:
    """Run the analysis of the module docstring on ``run_dir``; returns the h5 path.

    ``compiler_options`` go to XLA when the kernel is compiled (tests pass cheap-compile CPU options)."""
    log = print if verbose else (lambda *a, **k: None)
    run_config, _, agent = runs.load_run(run_dir)
    available = runs.snapshot_steps(run_dir)
    steps = sorted({int(s) for s in c.steps}) if c.steps else available
    missing = [s for s in steps if s not in available]
    if not steps or missing:
        raise ValueError(f"{run_dir}: snapshots {missing or 'none'} not available; it has {available}")
    t1_steps = sorted({int(s) for s in c.overlap_steps}) if c.overlap_steps else steps
    bad_t1 = [s for s in t1_steps if s not in steps]
    if bad_t1:
        raise ValueError(f"overlap_steps {bad_t1} are not among the analysed snapshots {steps}")
    ks = tuple(int(x) for x in c.ks)
    curvature.resolve_subspace_sizes(1, int(c.k), int(c.num_iters), ks)  # validate k, num_iters, ks early

    def fn_for(num_samples):
        return partial(curvature.analyse_snapshot, agent, k=int(c.k), num_iters=int(c.num_iters), ks=ks,
                       num_samples=num_samples, num_minibatches=int(c.num_minibatches),
                       minibatch_size=int(c.minibatch_size), chunk_size=int(c.chunk_size),
                       combined=bool(c.combined))

    kernels, overlap_fns, bases = {}, {}, {}
    compile_seconds = run_seconds = 0.0
    T = len(steps)
    per_step, num_samples_used, seeds = [], [], None
    overlaps: dict[tuple[int, str], np.ndarray] = {}  # (t1, loss) -> [S, T, len(ks_loss)]
    for j, step in enumerate(steps):
        states, seeds = _select(runs.load_snapshot(run_dir, step, agent), c.seeds, run_config.num_seeds)
        S = len(seeds)
        states = sharding.shard_seeds(states, S)
        keys = snapshot_keys(int(c.seed), step, seeds)
        n = resolve_num_samples(c, agent, states)
        num_samples_used.append(n)
        if n not in kernels:
            t0 = time.perf_counter()
            kernels[n] = jax.jit(jax.vmap(fn_for(n))).lower(states, keys).compile(compiler_options)
            compile_seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        out = jax.block_until_ready(kernels[n](states, keys))
        run_seconds += time.perf_counter() - t0
        if step in t1_steps:
            nbytes = sum(o["eigenvectors"].nbytes for o in out.values())
            check_fits(nbytes * (len(bases) + 1), f"the eigenbases of {len(bases) + 1} overlap reference steps")
            bases[step] = {loss: o["eigenvectors"] for loss, o in out.items()}
        for t1, basis in bases.items():
            for loss, o in out.items():
                ks_loss = _levels(ks, o["eigenvalues"].shape[-1])
                if ks_loss not in overlap_fns:
                    overlap_fns[ks_loss] = jax.jit(jax.vmap(partial(curvature.subspace_overlap, ks=list(ks_loss))))
                arr = overlaps.setdefault((t1, loss), np.full((S, T, len(ks_loss)), np.nan, np.float32))
                arr[:, j] = np.asarray(overlap_fns[ks_loss](basis[loss], o["eigenvectors"]))
        host = {loss: {k: np.asarray(v) for k, v in o.items() if k != "eigenvectors"} for loss, o in out.items()}
        for loss, o in host.items():
            if not np.all(np.isfinite(o["loss"])):
                log(f"warning: non-finite {loss} at step {step} for seeds "
                    f"{[s for s, v in zip(seeds, o['loss']) if not np.isfinite(v)]}: its results are NaN")
        per_step.append(host)
        summary = "  ".join(f"{loss}: lambda_1 {np.mean(o['eigenvalues'][:, 0]):.3g}, true fraction at k="
                            f"{_levels(ks, o['eigenvalues'].shape[-1])[-1]} {np.nanmean(o['true_gradient'][:, -1]):.3f}"
                            for loss, o in host.items())
        log(f"step {step} ({S} seeds, {n} samples): {summary}")

    datasets = _collect(per_step, overlaps, steps, seeds, num_samples_used, ks, {
        loss: int(o["eigenvectors"].shape[-1]) for loss, o in out.items()})
    attrs = {"config": c.to_dict(), "run_dir": os.path.abspath(run_dir), "algo": run_config.algo,
             "env": run_config.env.name, "compile_seconds": compile_seconds, "run_seconds": run_seconds}
    path = os.path.join(run_dir, "subspaces.h5")
    write_h5(path, datasets, attrs)
    log(f"wrote {path} (compile {compile_seconds:.1f}s, run {run_seconds:.1f}s)")
    if c.figures:
        for fig_path in figures(datasets, run_dir, tuple(int(x) for x in c.figure_ks)):
            log(f"wrote {fig_path}")
    return path


def _levels(ks, k_available: int) -> tuple[int, ...]:
    return tuple(sorted({int(x) for x in ks if int(x) <= k_available}))


def _collect(per_step, overlaps, steps, seeds, num_samples, ks, num_parameters) -> dict[str, np.ndarray]:
    """Stack the per-snapshot host results into the [seed, snapshot] datasets of the module docstring."""
    d = {"steps": np.asarray(steps, np.int64), "seeds": np.asarray(seeds, np.int64),
         "num_samples": np.asarray(num_samples, np.int64)}
    stack = lambda loss, field: np.stack([r[loss][field] for r in per_step], axis=1).astype(np.float32)
    for loss in per_step[0]:
        n = num_parameters[loss]
        k_loss = per_step[0][loss]["eigenvalues"].shape[-1]
        ks_loss = _levels(ks, k_loss)
        d[f"ks/{loss}"] = np.asarray(ks_loss, np.int64)
        d[f"num_parameters/{loss}"] = np.int64(n)
        d[f"eigenvalues/{loss}"] = stack(loss, "eigenvalues")
        if "residuals" in per_step[0][loss]:
            d[f"eigenvalue_residuals/{loss}"] = stack(loss, "residuals")
        d[f"loss/{loss}"] = stack(loss, "loss")
        d[f"gradient_norm/{loss}"] = stack(loss, "gradient_norm")
        for gradient in ("true_gradient", "estimated_gradient"):
            values = stack(loss, gradient)  # [S, T, K]
            for i, k in enumerate(ks_loss):
                d[fraction_key(k, gradient, loss)] = values[..., i]
        for k in ks_loss:
            d[baseline_key(k, loss)] = np.float32(curvature.random_subspace_baseline(k, n))
    for (t1, loss), values in overlaps.items():
        ks_loss = d[f"ks/{loss}"]
        for i, k in enumerate(ks_loss):
            d[overlap_key(int(k), t1, loss)] = values[..., i]
    return d


# -- figures ---------------------------------------------------------------------------------------------------
def _losses(d):
    return [loss for loss in LOSSES if f"eigenvalues/{loss}" in d]


def _figure_levels(d, loss, figure_ks):
    ks_loss = [int(k) for k in d[f"ks/{loss}"]]
    chosen = [k for k in figure_ks if k in ks_loss]
    if ks_loss and ks_loss[-1] not in chosen and any(k > ks_loss[-1] for k in figure_ks):
        chosen.append(ks_loss[-1])  # a requested level above what exists: show the largest that does
    return chosen or ks_loss[-1:]


def figures(d: dict[str, np.ndarray], run_dir: str, figure_ks=(1, 10, 100)) -> list[str]:
    """The three figures of the module docstring from the datasets ``d``; returns their paths."""
    from rlland import plotting

    plt = plotting.plt
    steps, losses = d["steps"], _losses(d)
    out_dir = os.path.join(run_dir, "figures")
    paths = []
    cmap = plt.get_cmap("viridis")
    colors = lambda i, n: cmap(i / max(n - 1, 1))

    # eigenspectra, and the true-gradient fraction against k next to k/n
    fig, axes = plt.subplots(len(losses), 2, figsize=(11, 3.2 * len(losses)), squeeze=False)
    for r, loss in enumerate(losses):
        ev = d[f"eigenvalues/{loss}"]  # [S, T, k]
        ks_loss = d[f"ks/{loss}"]
        ax_ev, ax_fr = axes[r]
        for j, step in enumerate(steps):
            ax_ev.plot(np.arange(1, ev.shape[-1] + 1), np.nanmean(ev[:, j], 0), color=colors(j, len(steps)),
                       label=f"step {step}")
            fr = np.stack([d[fraction_key(int(k), "true_gradient", loss)][:, j] for k in ks_loss], -1)
            ax_fr.plot(ks_loss, np.nanmean(fr, 0), "o-", color=colors(j, len(steps)), label=f"step {step}")
        ax_fr.plot(ks_loss, [d[baseline_key(int(k), loss)] for k in ks_loss], "k:", label="random k/n")
        ax_ev.set(xlabel="eigenvalue index i", ylabel="lambda_i (seed mean)", title=f"{loss}: Hessian eigenspectrum")
        ax_ev.set_yscale("symlog", linthresh=1e-3)
        ax_fr.set(xlabel="k", ylabel="true-gradient fraction", title=f"{loss}: fraction in top-k subspace",
                  xscale="log", ylim=(-0.02, 1.02))
        ax_fr.set_xticks(ks_loss, [str(k) for k in ks_loss])
        ax_fr.minorticks_off()
        for ax in (ax_ev, ax_fr):
            ax.grid(alpha=0.3)
        ax_fr.legend(fontsize="x-small", loc="best")
    fig.tight_layout()
    paths.append(plotting.save(fig, os.path.join(out_dir, "subspaces_eigenspectrum.png")))

    # fractions against the training step
    fig, axes = plt.subplots(len(losses), 2, figsize=(11, 3.2 * len(losses)), squeeze=False)
    for r, loss in enumerate(losses):
        levels = _figure_levels(d, loss, figure_ks)
        for col, gradient in enumerate(("true_gradient", "estimated_gradient")):
            ax = axes[r, col]
            for i, k in enumerate(levels):
                color = f"C{i}"
                values = d[fraction_key(k, gradient, loss)]
                plotting.seed_curves(ax, steps, values, label=f"k={k}", color=color)
                ax.plot(steps, np.nanmean(values, 0), "o", ms=3, color=color)
                ax.axhline(d[baseline_key(k, loss)], ls=":", color=color, lw=1)
            ax.set(xlabel="env steps", ylabel="gradient subspace fraction", ylim=(-0.02, 1.02),
                   title=f"{loss}: {gradient.replace('_', ' ')} (dotted: random k/n)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="x-small", loc="best")
    fig.tight_layout()
    paths.append(plotting.save(fig, os.path.join(out_dir, "subspaces_fraction.png")))

    # overlap curves from each t1
    t1s = sorted({int(name.split("_checkpoint")[1].split("/")[0]) for name in d if name.startswith("overlaps_top")})
    if t1s:
        fig, axes = plt.subplots(len(losses), len(t1s), figsize=(4.2 * len(t1s), 3.2 * len(losses)),
                                 squeeze=False)
        for r, loss in enumerate(losses):
            for col, t1 in enumerate(t1s):
                ax = axes[r, col]
                later = steps >= t1
                for i, k in enumerate(_figure_levels(d, loss, figure_ks)):
                    color = f"C{i}"
                    values = d[overlap_key(k, t1, loss)][:, later]
                    plotting.seed_curves(ax, steps[later], values, label=f"k={k}", color=color)
                    ax.plot(steps[later], np.nanmean(values, 0), "o", ms=3, color=color)
                    ax.axhline(d[baseline_key(k, loss)], ls=":", color=color, lw=1)
                ax.set(xlabel="env steps t2", ylabel="subspace overlap", ylim=(-0.02, 1.02),
                       title=f"{loss}: from t1={t1}")
                ax.grid(alpha=0.3)
                ax.legend(fontsize="x-small", loc="best")
        fig.tight_layout()
        paths.append(plotting.save(fig, os.path.join(out_dir, "subspaces_overlap.png")))
    return paths


# -- command line ----------------------------------------------------------------------------------------------
def main(argv):
    del argv
    from absl import flags

    analyse_run(flags.FLAGS.config, flags.FLAGS.run_dir)


if __name__ == "__main__":
    from absl import app, flags
    from ml_collections import config_flags

    _DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "subspaces.py")
    config_flags.DEFINE_config_file("config", _DEFAULT, "subspace analysis config file (path[:study|quick])")
    flags.DEFINE_string("run_dir", None, "run directory written by experiments/train.py", required=True)
    app.run(main)
