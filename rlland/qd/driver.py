"""The QD experiment driver: ``result = qd.driver.run(config)`` (configs in ``configs/qd.py``).

Seeds are one batch: ``jax.vmap`` of the per-seed init (an empty archive and, for PGA-ME, an untrained critic),
then chunks of ``jit(vmap(scan(generation, G)))`` compiled once, with a thin host loop between chunks for
logging (``qd.h5`` + wandb), rolling checkpoints (`rlland.checkpoint.Checkpoints`) and a tqdm bar. Algorithms
plug in as an `rlland.qd.algo.Algo`, each built in its own module (registry `ALGOS`; each module's
``default_config()`` is its ``configs/qd.py`` section). For MAP-Elites and PGA-ME a generation is
emit -> score -> tell; generation 0 "emits" the initial population (``task.init_genomes``: Xavier-initialised
policies, as QDax; the study's pyribs starts from one x0 plus N(0, 0.02^2) noise) and, for PGA-ME, does not train
the critic. Both kinds of generation share one rollout graph, so a chunk kernel compiles the Brax step once.

Budget (reference C.2): ``total_evals`` counts every scored genome, the initial population included; a
generation scores ``Algo.evals_per_generation`` genomes (``batch_size`` for MAP-Elites and PGA-ME), so a run
has ``total_evals / evals_per_generation`` generations (the study: 1e6 / 100 = 10,000). The best elite is
re-evaluated at the end of every chunk (``robustness.every_chunk``; the study does it every generation) and every
elite once at the end (mean elite robustness, reference C.4); re-evaluations are not counted in the budget (as in
the study).

Exact resume: generation ``g`` draws its randomness from ``fold_in(seed_key, g)`` and a chunk skips the
generations past the budget with a ``lax.cond`` on an unbatched generation index, so the archive after
generation ``g`` does not depend on how the run was cut into chunks or interrupted: a run resumed from any
checkpoint reproduces the uninterrupted run bit for bit (same device and kernels). ``total_evals`` may be
raised on resume.

Seed ``i`` uses ``fold_in(PRNGKey(config.seed), i)``: the same seed whatever ``num_seeds`` is.

Sweeps (`rlland.sweep`): ``config.sweep`` over the algorithm's traced hyperparameters (`TRACED_HPARAMS`: the
pytree its state carries, e.g. MAP-Elites' emitter ``sigma``, PGA-ME's `PGAHParams`) runs points x seeds as one
batch (member ``p * S + s``, seed ``s``'s key, point ``p``'s values written into the member's state after the
init); qd.h5 then holds ``[point, seed, ...]`` arrays and ``sweep/<key>``; checkpoints, wandb runs (grouped by
point) and ``archive_seed<m>.png`` follow the member axis.

Run directory::

    config.json           the config (a different config is refused on resume unless forced)
    checkpoints/<gens>/   full seed-batched state (archive, critic, replay buffer, ...) + host history
    qd.h5                 metrics vs evaluations, layout below
    wandb/                one run per seed (offline unless told otherwise), step = evaluations
    figures/              archive_seed<i>.png heatmaps (one colour scale for all seeds), qd_curves.png
    archive.h5            the final seed-batched archive WITH the elites' genotypes (`rlland.qd.archive_io`;
                          ``qd.load_archive(run_dir)`` reads it back), written when the budget is spent

``qd.h5`` layout (S seeds; P = 1 + chunks run; column 0 is the state before any evaluation, the study's
leading zero for QD score, coverage and evaluations)::

    evaluations [S, P]    genomes scored so far
    generations [P]       generations done
    qd_score, coverage, max_fitness, mean_fitness, min_fitness, num_elites      [S, P]  archive at the column
    num_inserted, num_new, num_improved (+ PGA: num_inserted_ga, num_inserted_pg, greedy_inserted)  [S, P]
                          summed over the chunk's generations
    batch_max_fitness (+ PGA: greedy_fitness, critic_loss, greedy_actor_loss)  [S, P]  means over the chunk's
                          emitted generations (generation 0, the initial population, is not emitted)
    robustness, best_reevaluated, best_fitness  [S, P]  the best elite re-evaluated (num_episodes fresh random
                          starts) at the end of each chunk: robustness = best_reevaluated - best_fitness
    final/fitnesses [S, C], final/descriptors [S, C, m]      the final archive (genotypes: archive.h5)
    final/mean_elite_robustness [S], final/cell_robustness [S, C] (NaN in empty cells),
    final/best_returns [S, N], final/best_robustness [S]     post-hoc re-evaluation of every elite (same N
                          start states for all elites), written when the budget is spent
    attrs: config (JSON), qd_score_convention, f_min, compile_seconds, init_seconds, run_seconds
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import math
import os
import time
from typing import Any, Callable, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rlland import checkpoint, loop, runs, sharding, sinks, sweep
from rlland.buffers import check_fits
from rlland.validation import require_choice, require_positive, static_int
from rlland.qd import plotting as qd_plotting
from rlland.qd import robustness as qd_robustness
from rlland.qd import archive_io
from rlland.qd.algo import Algo
from rlland.qd.archive import Archive
from rlland.qd.centroids import cvt_centroids
from rlland.qd.metrics import metrics as qd_metrics

# algorithm name -> its builder, ``(task, config, metrics_fn) -> Algo`` ("module:function", imported when used)
ALGOS = {"map_elites": "rlland.qd.map_elites:map_elites_algo", "pga_me": "rlland.qd.pga:pga_me_algo",
         "cma_mega_es": "rlland.qd.cma_mega:cma_mega_es_algo",
         "cma_mega_td3_es": "rlland.qd.cma_mega:cma_mega_td3_es_algo", "me_es": "rlland.qd.me_es:me_es_algo"}
# keys that may change when a run directory is resumed (they do not change what is computed)
RESUMABLE_CHANGES = ("total_evals", "wandb", "progress", "run_dir", "force")
ARCHIVE_KINDS = ("grid", "cvt")
# algorithm -> (config section, field of its state holding the traced hyperparameters) for sweeps
TRACED_HPARAMS = {"map_elites": ("emitter", "emitter_hparams"), "pga_me": ("pga", "hparams"),
                  "cma_mega_td3_es": ("pga", "hparams")}
ARCHIVE_METRICS = ("qd_score", "coverage", "max_fitness", "mean_fitness", "min_fitness", "num_elites")
ROBUSTNESS_METRICS = ("robustness", "best_reevaluated", "best_fitness")
_ROBUST_STREAM = 2**31 - 1  # fold_in index of the robustness key stream, apart from generation keys
_FINAL_KEY = 2**31 - 2  # in the robustness stream: the post-hoc re-evaluation of the final archive
_INIT_KEY = 2**31 - 3  # the initial algorithm state (critic, greedy actor)


class QDRunState(flax.struct.PyTreeNode):
    """One seed's run state: the algorithm's state (e.g. `rlland.qd.map_elites.MapElitesState`) and the seed's
    base key."""

    algo: Any
    key: jax.Array


@dataclasses.dataclass
class QDResult:
    run_dir: str
    state: QDRunState  # final seed-batched state
    history: dict[str, np.ndarray]  # the qd.h5 datasets
    compile_seconds: float
    complete: bool  # False when stopped early by max_chunks

    @property
    def archive(self) -> Archive:
        return self.state.algo.archive


@dataclasses.dataclass
class QDSetup:
    """What a config builds: the task(s), the algorithm's per-seed functions and derived budget numbers."""

    config: ml_collections.ConfigDict
    task: Any
    robust_task: Any
    init_seed: Callable  # key -> (QDRunState, metrics)
    chunk_seed: Callable  # (QDRunState, first_generation, last_generation) -> (QDRunState, metrics)
    final_seed: Callable  # QDRunState -> dict
    metrics_fn: Callable
    num_generations: int  # including generation 0
    buffer_bytes: int  # replay memory per seed (0 without PGA)
    _kernels: tuple | None = None  # set by `kernels`


# -- building ------------------------------------------------------------------------------------------------
def make_task(config):
    from rlland.qd.tasks import make_task as _make_task

    t = config.task
    return _make_task(t.name, episode_length=t.episode_length, hidden_sizes=tuple(t.hidden_sizes),
                      random_init=t.random_init, backend=t.backend, **dict(t.get("kwargs", {})))


def _check(config) -> None:
    require_choice("config.algo", config.algo, ALGOS)
    require_positive(config, ("num_seeds", "batch_size", "total_evals", "generations_per_chunk",
                              "checkpoint_every", "keep_checkpoints"))
    static_int("config.robustness.num_episodes", config.robustness.num_episodes, minimum=0)


def _check_budget(config, evals_per_generation: int) -> None:
    if config.total_evals % evals_per_generation:
        raise ValueError(f"config.total_evals ({config.total_evals}) must be a multiple of the evaluations per "
                         f"generation ({evals_per_generation} for {config.algo} with config.batch_size = "
                         f"{config.batch_size})")
    if config.total_evals < 2 * evals_per_generation:
        raise ValueError(f"config.total_evals ({config.total_evals}) leaves no generation after the first "
                         f"({evals_per_generation} evaluations)")


def archive_builder(config, task) -> Callable[[], Archive]:
    """``() -> Archive``: the empty archive of ``config.archive`` over ``task``'s descriptor box ``[0, 1]^m`` (one
    seed; every seed starts from it). The checks and the CVT centroids are computed here, once; the builder is
    called inside the init kernel, so the ``C x genome`` zeros are made there rather than baked in as a constant.

    ``kind = "grid"`` (the study's): `Archive.grid` of ``grid_shape``. ``kind = "cvt"``: `Archive.empty` over
    ``num_cells`` (0: as many as ``grid_shape`` has cells) CVT centroids (`rlland.qd.centroids.cvt_centroids`:
    k-means on ``cvt_samples`` uniform samples, ``cvt_iters`` Lloyd iterations) drawn from ``PRNGKey(cvt_seed)``,
    one tessellation shared by all seeds (QD scores stay comparable across seeds), as QDax's examples build one CVT
    for a run.
    """
    a = config.archive
    kind = a.get("kind", "grid")
    require_choice("config.archive.kind", kind, ARCHIVE_KINDS)
    lo, hi = task.descriptor_bounds
    if kind == "grid":
        grid = tuple(int(s) for s in a.grid_shape)
        if len(grid) != task.descriptor_size:
            raise ValueError(f"config.archive.grid_shape {grid} has {len(grid)} axes but task {task.name!r} has "
                             f"{task.descriptor_size} descriptors")
        return lambda: Archive.grid(grid, lo, hi, jnp.zeros(task.genome_size, jnp.float32))
    num_cells = static_int("config.archive.num_cells", a.get("num_cells", 0), minimum=0)
    num_cells = num_cells or int(np.prod([int(s) for s in a.grid_shape]))
    samples = static_int("config.archive.cvt_samples", a.cvt_samples, minimum=num_cells)
    iters = static_int("config.archive.cvt_iters", a.cvt_iters, minimum=0)
    centroids = jax.jit(cvt_centroids, static_argnums=(0, 1, 5, 6))(
        num_cells, task.descriptor_size, lo, hi, jax.random.PRNGKey(int(a.cvt_seed)), samples, iters)
    return lambda: Archive.empty(centroids, jnp.zeros(task.genome_size, jnp.float32), minval=lo, maxval=hi)


def make_algo(task, config, metrics_fn) -> Algo:
    """``config.algo``'s `Algo` (see `ALGOS`)."""
    module, name = ALGOS[config.algo].split(":")
    return getattr(importlib.import_module(module), name)(task, config, metrics_fn)


def build(config: ml_collections.ConfigDict) -> QDSetup:
    """Check ``config`` and build the task and the per-seed init / chunk / final functions (not jitted)."""
    _check(config)
    task = make_task(config)
    if config.robustness.num_episodes and not task.random_init:
        robust_task = make_task(_with(config, random_init=True))
    else:
        robust_task = task
    metrics_fn = functools.partial(qd_metrics, f_min=float(config.f_min))
    new_archive = archive_builder(config, task)
    algo = make_algo(task, config, metrics_fn)
    _check_budget(config, algo.evals_per_generation)

    num_episodes = int(config.robustness.num_episodes)
    every_chunk = bool(config.robustness.every_chunk) and num_episodes > 0
    gens_per_chunk = int(config.generations_per_chunk)
    robust_keys = ROBUSTNESS_METRICS if every_chunk else ()

    def init_seed(seed_key):
        """The state before generation 0 (empty archive) and the metrics of column 0 (zeros, NaN means)."""
        archive = new_archive()
        state = algo.init_state(archive, jax.random.fold_in(seed_key, _INIT_KEY))
        out = {k: v for k, v in metrics_fn(archive).items() if k in ARCHIVE_METRICS}
        out.update({k: jnp.zeros((), jnp.int32) for k in algo.sum_keys})
        out.update({k: jnp.full((), jnp.nan, jnp.float32) for k in algo.mean_keys + robust_keys})
        out["evaluations"] = state.num_evals
        return QDRunState(algo=state, key=seed_key), out

    def generation(carry, g):
        """Generation ``g`` (``initial`` = g == 0 is unbatched, so conds on it stay real branches)."""
        s, acc = carry
        state, m = algo.generation(s.algo, jax.random.fold_in(s.key, g), g == 0)
        emitted = jnp.where(g == 0, 0.0, 1.0)
        acc = {"n": acc["n"] + emitted,
               **{k: acc[k] + m[k].astype(jnp.int32) for k in algo.sum_keys},
               **{k: acc[k] + emitted * m[k].astype(jnp.float32) for k in algo.mean_keys}}
        return (s.replace(algo=state), acc), None

    def chunk_seed(run_state, first_generation, last_generation):
        """Generations first .. first+G-1; those past ``last_generation`` are skipped (both unbatched)."""
        gens = first_generation + jnp.arange(gens_per_chunk, dtype=jnp.int32)

        def body(carry, g):  # the predicate is unbatched under vmap, so this stays a real cond (no select)
            return jax.lax.cond(g <= last_generation, generation, lambda c, g: (c, None), carry, g)

        acc = {"n": jnp.zeros((), jnp.float32), **{k: jnp.zeros((), jnp.int32) for k in algo.sum_keys},
               **{k: jnp.zeros((), jnp.float32) for k in algo.mean_keys}}
        (s, acc), _ = jax.lax.scan(body, (run_state, acc), gens)
        out = {k: v for k, v in metrics_fn(s.algo.archive).items() if k in ARCHIVE_METRICS}
        out.update({k: acc[k] for k in algo.sum_keys})
        out.update({k: jnp.where(acc["n"] > 0, acc[k] / jnp.maximum(acc["n"], 1.0), jnp.nan)
                    for k in algo.mean_keys})
        out["evaluations"] = s.algo.num_evals
        if every_chunk:
            key = jax.random.fold_in(jax.random.fold_in(s.key, _ROBUST_STREAM), s.algo.generation)
            r = qd_robustness.best_elite_robustness(robust_task, s.algo.archive, key, num_episodes)
            out.update({k: r[k] for k in ROBUSTNESS_METRICS})
        return s, out

    def final_seed(run_state):
        """The final archive, and its post-hoc robustness: every elite re-evaluated with the same episodes
        (mean elite robustness); the best elite's figures are read from the same re-evaluation."""
        archive = run_state.algo.archive
        out = {"fitnesses": archive.fitnesses, "descriptors": archive.descriptors}
        if num_episodes:
            key = jax.random.fold_in(jax.random.fold_in(run_state.key, _ROBUST_STREAM), _FINAL_KEY)
            r = qd_robustness.mean_elite_robustness(robust_task, archive, key, num_episodes,
                                                    block_size=config.robustness.block_size or None)
            best = jnp.argmax(archive.fitnesses)
            out.update(mean_elite_robustness=r["mean_elite_robustness"], cell_robustness=r["cell_robustness"],
                       best_returns=r["cell_returns"][best], best_robustness=r["cell_robustness"][best])
        return out

    return QDSetup(config=config, task=task, robust_task=robust_task, init_seed=init_seed, chunk_seed=chunk_seed,
                   final_seed=final_seed, metrics_fn=metrics_fn,
                   num_generations=int(config.total_evals) // algo.evals_per_generation,
                   buffer_bytes=algo.buffer_bytes)


def kernels(setup: QDSetup):
    """``(init, chunk, final)``: the seed-batched, jitted kernels of a setup (built once per setup).

    ``init(keys) -> (state, metrics)``; ``chunk(state, first_generation, last_generation) -> (state, metrics)``
    (the state is donated; the generation indices are unbatched int32 scalars); ``final(state) -> dict``.
    ``config.compiler_options`` (XLA options, e.g. ``{"xla_backend_optimization_level": 0}``, which halves
    CPU compile time at a slower CPU run time; the tests use it) is passed to every kernel.
    """
    if setup._kernels is None:
        opts = dict(setup.config.get("compiler_options", {}) or {}) or None
        setup._kernels = (
            jax.jit(jax.vmap(setup.init_seed), compiler_options=opts),
            jax.jit(jax.vmap(setup.chunk_seed, in_axes=(0, None, None)), donate_argnums=0, compiler_options=opts),
            jax.jit(jax.vmap(setup.final_seed), compiler_options=opts),
        )
    return setup._kernels


def _kernel_key(config) -> dict:
    """The part of a config that determines the kernels (not where or how the run is logged)."""
    return {k: v for k, v in runs.jsonable(config).items()
            if k not in ("wandb", "progress", "run_dir", "force", "sweep", "sweep_mode")}


@functools.lru_cache(maxsize=2)
def _cached_build(config_json: str) -> QDSetup:
    # repeated runs of one config in a process (resume, notebooks, tests) reuse the task and traced kernels
    return build(ml_collections.ConfigDict(json.loads(config_json)))


def _with(config, **task_overrides):
    c = ml_collections.ConfigDict(config.to_dict())
    c.task.update(task_overrides)
    return c


# -- run directory -------------------------------------------------------------------------------------------
def default_run_dir(config) -> str:
    return os.path.join("runs", f"qd-{config.algo}-{config.task.name}-seed{config.seed}")


def write_results(run_dir: str, history: dict, attrs: dict, points: Sequence[dict] = ()) -> str:
    """qd.h5; a sweep's member-axis arrays as ``[point, seed, ...]``, with ``sweep/<key>`` [P] and ``sweep_keys``."""
    path = os.path.join(run_dir, "qd.h5")
    if points:
        history = {k: (v if k == "generations" else sweep.by_point(v, len(points))) for k, v in history.items()}
        history |= {f"sweep/{k}": np.array([p[k] for p in points], np.float64) for k in points[0]}
        attrs = attrs | {"sweep_keys": list(points[0]), "sweep_labels": [sweep.label(p) for p in points]}
    sinks.write_h5(path, history, attrs)
    return path


def sweep_points(config, setup: QDSetup) -> list[dict]:
    """The points of ``config.sweep`` (`rlland.sweep`), checked against the algorithm's traced hyperparameters
    (the fields of its state's `TRACED_HPARAMS` pytree); ValueError for anything else."""
    if not sweep.spec(config):
        return []
    if config.algo not in TRACED_HPARAMS:
        raise ValueError(f"config.sweep: {config.algo} keeps no traced hyperparameters in its state (its settings "
                         f"are static, compiled into the kernel); run one run per value")
    section, field = TRACED_HPARAMS[config.algo]
    abstract = jax.eval_shape(kernels(setup)[0], jax.ShapeDtypeStruct((1, 2), jnp.uint32))[0]
    traced = tuple(f.name for f in dataclasses.fields(getattr(abstract.algo, field)))
    return sweep.validate(config, traced, set(config[section].keys()), where=f"config.{section}")


def _with_point_hparams(state: QDRunState, config, points: list[dict]) -> QDRunState:
    """Member ``p * S + s`` of a fresh member-batched state with point ``p``'s traced hyperparameters."""
    field = TRACED_HPARAMS[config.algo][1]
    values = {k: jnp.repeat(jnp.asarray([p[k] for p in points], jnp.float32), int(config.num_seeds))
              for k in points[0]}
    return state.replace(algo=state.algo.replace(**{field: getattr(state.algo, field).replace(**values)}))


def _append_column(history: dict, metrics: dict, generations: int) -> None:
    """Append one column (chunk) to the [S, P] history."""
    for k, v in metrics.items():
        loop.append(history, k, np.asarray(v)[:, None], axis=1)
    loop.append(history, "generations", np.array([generations]), axis=0)


def _place(state: Any, num_seeds: int) -> Any:
    """Seed axis over the devices (`rlland.sharding`), or committed to the default device: a fresh state (jit
    output, uncommitted) and a restored one (committed) then lower to the same kernel, so resuming hits the
    compilation caches instead of compiling again."""
    placement = sharding.seed_sharding(num_seeds)
    return jax.device_put(state, placement if placement is not None else jax.devices()[0])


def generations_done(state: QDRunState) -> int:
    """Generations done by a seed-batched state (``generation + 1``; 0 before the initial population)."""
    g = np.asarray(state.algo.generation)
    if not np.all(g == g.flat[0]):
        raise RuntimeError(f"seeds are at different generations {g.tolist()}; the state is corrupt")
    return int(g.flat[0]) + 1


# -- the run -------------------------------------------------------------------------------------------------
def run(config: ml_collections.ConfigDict, run_dir: str | None = None, force: bool | None = None,
        max_chunks: int | None = None, hooks: Sequence[loop.Hook] = ()) -> QDResult:
    """Run ``config.num_seeds`` seeds of ``config.algo`` on ``config.task``; resume if ``run_dir`` holds a run.

    ``max_chunks`` stops after that many chunks of this call (as if interrupted; a later call resumes from the
    last checkpoint). Final robustness and figures are written once the budget is spent. ``hooks``: extra
    `rlland.loop.Hook`s called after every chunk (position = generations done, log step = evaluations).
    """
    config = ml_collections.ConfigDict(config.to_dict())
    run_dir = run_dir or config.get("run_dir") or default_run_dir(config)
    force = config.get("force", False) if force is None else force
    require_choice("config.wandb.mode", config.wandb.mode, sinks.WANDB_MODES)
    setup = _cached_build(json.dumps(_kernel_key(config), sort_keys=True))
    points = sweep_points(config, setup)
    members = sweep.num_members(config)
    if setup.buffer_bytes:
        check_fits(setup.buffer_bytes * members, f"{members} PGA replay buffers")
    resuming = runs.prepare_run_dir(run_dir, config, force, resumable=RESUMABLE_CHANGES)
    runs.write_config(run_dir, config)

    init_fn, chunk_fn, final_fn = kernels(setup)
    ckpts = checkpoint.Checkpoints(run_dir, keep=config.keep_checkpoints)
    total = setup.num_generations
    t0 = time.perf_counter()
    state, m0 = init_fn(runs.member_keys(config))  # cheap (nothing is scored); also the restore target
    if points:
        state = _with_point_hparams(state, config, points)
    restored = ckpts.restore_latest(state) if resuming else None
    if restored is None:
        history = {}
        _append_column(history, jax.tree.map(np.asarray, m0), 0)
    else:
        _, state, history = restored
        state = jax.tree.map(jnp.asarray, state)
        print(f"resuming {run_dir} after generation {generations_done(state)} of {total}")
    state = _place(state, members)
    init_seconds = time.perf_counter() - t0

    g32 = lambda g: np.asarray(g, np.int32)  # noqa: E731
    compile_seconds = 0.0
    done = generations_done(state)
    if done < total:  # compiled once; a finished run only rewrites its results
        chunk_fn, compile_seconds = loop.compile_chunk(chunk_fn, state, g32(0), g32(total - 1))
    config_json = runs.jsonable(config)
    attrs = {"config": config_json, "qd_score_convention": "sum over elites of (f - f_min) (dqd-rl)",
             "f_min": float(config.f_min), "compile_seconds": compile_seconds, "init_seconds": init_seconds}
    sink = sinks.WandbSink(run_dir, runs.run_id(run_dir), config.num_seeds, config_json,
                           mode=config.wandb.mode, project=config.wandb.project,
                           console=config.wandb.get("console", False), points=points)
    evals = int(np.asarray(state.algo.num_evals).flat[0])
    columns = {k: v for k, v in history.items() if k != "generations"}  # every row so far (see history_rows)
    sink.log_rows(sinks.history_rows((columns["evaluations"][0], columns)))

    def record(e: loop.ChunkEnd):
        _append_column(history, e.metrics, e.position)

    def save(e: loop.ChunkEnd):
        if e.chunks % config.checkpoint_every == 0 or e.final or (max_chunks is not None and e.chunks >= max_chunks):
            ckpts.save(e.position, e.state, history)
            write_results(run_dir, history, attrs | {"run_seconds": e.seconds}, points)

    bar = loop.progress_bar(int(config.total_evals), evals, "eval", f"{config.algo}/{config.task.name} "
                            f"x{f'{len(points)}x' if points else ''}{config.num_seeds}", config.get("progress", True))
    bar.set_postfix_str(f"compiled in {compile_seconds:.1f}s")
    state, done, run_seconds = loop.run(
        state, done, total, lambda s, g: chunk_fn(s, g32(g), g32(total - 1)),
        advance=lambda p, s, m: generations_done(s),
        log_step=lambda p, m: int(m["evaluations"][0]) if m else evals,
        hooks=[record, *hooks, save], sinks=[sink], bar=bar, max_chunks=max_chunks,
        postfix=lambda m: f"qd {m['qd_score'].mean():.4g} cov {m['coverage'].mean():.3f}")
    complete = done >= total
    if complete:
        final = jax.tree.map(np.asarray, final_fn(state))
        history.update({f"final/{k}": v for k, v in final.items()})
        fig_dir = os.path.join(run_dir, "figures")
        qd_plotting.save_archive_heatmaps(state.algo.archive, fig_dir,
                                          title=f"{config.algo} on {config.task.name}")
        fig = qd_plotting.qd_curves(history["evaluations"], history,
                                    title=f"{config.algo} on {config.task.name} ({config.num_seeds} seeds)")
        qd_plotting.save(fig, os.path.join(fig_dir, "qd_curves.png"))
        archive_io.save_archive(os.path.join(run_dir, archive_io.ARCHIVE_FILE), jax.device_get(state.algo.archive))
    write_results(run_dir, history, attrs | {"run_seconds": run_seconds}, points)
    return QDResult(run_dir=run_dir, state=state, history=history, compile_seconds=compile_seconds,
                    complete=complete)


def num_chunks(config) -> int:
    """Chunks an uninterrupted run of ``config`` takes (builds the setup to know a generation's evaluations)."""
    setup = _cached_build(json.dumps(_kernel_key(config), sort_keys=True))
    return math.ceil(setup.num_generations / int(config.generations_per_chunk))
