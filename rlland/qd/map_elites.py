"""MAP-Elites (Mouret & Clune 2015): emit -> score -> add, one generation per step.

The state is a pytree (archive + emitter hyperparameters + counters), so a chunk of generations is
``lax.scan(step, state, keys)``, seeds are ``jax.vmap`` over that, and checkpointing saves the pytree as
is. The scoring function and the emitter are static callables bound with ``functools.partial``::

    task = qd.make_task("hopper", episode_length=100)
    archive = qd.Archive.grid((32,), 0.0, 1.0, jnp.zeros(task.genome_size))
    init = functools.partial(qd.map_elites_init, score_fn=task.score)
    step = functools.partial(qd.map_elites_step, score_fn=task.score, emitter=qd.gaussian_emitter,
                             batch_size=100)
    state, _ = init(archive, task.init_genomes(k0, 100), k1)
    state, metrics = jax.lax.scan(step, state, jax.random.split(k2, 50))   # 50 generations
    # seeds: jax.vmap over (archive / genomes / keys) of the same two calls

`map_elites_algo` is the same generation as an `rlland.qd.algo.Algo` for the QD driver (``config.algo =
"map_elites"``; ``config.emitter`` = `default_config`).

Defaults (reference C.3 ``map_elites.gin``): batch 100 (`BATCH_SIZE`), Gaussian emitter sigma 0.02
(`rlland.qd.emitters.GaussianHParams`). Budget accounting follows the study (reference C.2): ``num_evals``
counts every scored genotype (the initial population included); generation 0 is the initial population.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from rlland.qd.algo import Algo, emit_score_tell, from_section, insert, section_defaults, step_metrics
from rlland.qd.archive import Archive
from rlland.qd.emitters import EMITTERS, GaussianHParams, IsoLineHParams
from rlland.qd.metrics import archive_summary
from rlland.validation import positive_int, require_choice

ScoreFn = Callable[[Any, jax.Array], tuple[jax.Array, jax.Array, Any]]
Emitter = Callable[[Archive, jax.Array, int, Any], Any]
BATCH_SIZE = 100  # the study's MAP-Elites batch (map_elites.gin)


class MapElitesState(flax.struct.PyTreeNode):
    """Checkpointable MAP-Elites state (one seed; leaves gain a seed axis under vmap).

    Attributes:
      archive: the `Archive` (``added_at`` records the generation of each elite).
      emitter_hparams: pytree passed to the emitter each step (e.g. `GaussianHParams`); None -> emitter
        defaults. Traced, so a hyperparameter sweep is a vmap.
      generation: int32, generations done (0 after init; -1 before the initial population is told).
      num_evals: int32, genotypes scored so far.
    """

    archive: Archive
    emitter_hparams: Any
    generation: jax.Array
    num_evals: jax.Array


def map_elites_state(archive: Archive, emitter_hparams: Any = None) -> MapElitesState:
    """The state before generation 0: ``archive`` as given, ``generation = -1``, nothing scored."""
    return MapElitesState(archive=archive, emitter_hparams=emitter_hparams,
                          generation=jnp.full((), -1, jnp.int32), num_evals=jnp.zeros((), jnp.int32))


def map_elites_tell(state: MapElitesState, offspring: Any, fitnesses: jax.Array, descriptors: jax.Array,
                    metrics_fn: Callable[[Archive], dict] = archive_summary) -> tuple[MapElitesState, dict]:
    """Insert a scored batch as generation ``state.generation + 1`` (`rlland.qd.algo.insert`); metrics
    `rlland.qd.algo.step_metrics`."""
    state, info = insert(state, offspring, fitnesses, descriptors)
    return state, step_metrics(state, info, fitnesses, metrics_fn)


def map_elites_init(
    archive: Archive,
    genotypes: Any,
    key: jax.Array,
    *,
    score_fn: ScoreFn,
    emitter_hparams: Any = None,
    metrics_fn: Callable[[Archive], dict] = archive_summary,
) -> tuple[MapElitesState, dict]:
    """Score the initial population and insert it into ``archive`` (generation 0).

    Args:
      archive: usually empty (`Archive.empty` / `Archive.grid`).
      genotypes: initial population, leaves ``(n, ...)`` (e.g. ``task.init_genomes(key, n)``).
      key: scoring key.
      score_fn: ``score_fn(genotypes, key) -> (fitnesses, descriptors, extras)`` (e.g. ``task.score``).
      emitter_hparams: stored in the state for `map_elites_step`.
      metrics_fn: archive -> dict of scalars; default `archive_summary` (no QD score, which needs a
        convention: pass ``functools.partial(qd.metrics, f_min=...)`` or ``(..., offset=...)``).
    Returns:
      ``(state, metrics)``.
    """
    fitnesses, descriptors, _ = score_fn(genotypes, key)
    return map_elites_tell(map_elites_state(archive, emitter_hparams), genotypes, fitnesses, descriptors,
                           metrics_fn)


def map_elites_step(
    state: MapElitesState,
    key: jax.Array,
    *,
    score_fn: ScoreFn,
    emitter: Emitter,
    batch_size: int,
    metrics_fn: Callable[[Archive], dict] = archive_summary,
) -> tuple[MapElitesState, dict]:
    """One MAP-Elites generation: ``batch_size`` offspring from ``emitter``, scored, added.

    Signature ``(state, key) -> (state, metrics)`` once the keyword arguments are bound, so it is a
    ``lax.scan`` body over a ``(K, 2)`` key array. Metrics: those of ``metrics_fn`` plus generation,
    num_evals, num_inserted (cells written), num_new / num_improved (`AddInfo` status counts, sequential
    mode), batch_max_fitness.
    """
    k_emit, k_score = jax.random.split(key)
    offspring = emitter(state.archive, k_emit, int(batch_size), state.emitter_hparams)
    fitnesses, descriptors, _ = score_fn(offspring, k_score)
    return map_elites_tell(state, offspring, fitnesses, descriptors, metrics_fn)


def map_elites_chunk(state: MapElitesState, key: jax.Array, num_steps: int,
                     **step_kwargs) -> tuple[MapElitesState, dict]:
    """``num_steps`` generations as one ``lax.scan``; metrics gain a leading ``(num_steps,)`` axis.

    ``step_kwargs`` are those of `map_elites_step` (score_fn, emitter, batch_size, metrics_fn). Jit it
    with ``num_steps`` and the callables static (e.g. via ``functools.partial`` before ``jax.jit``).
    """
    def step(s, k):
        return map_elites_step(s, k, **step_kwargs)

    return jax.lax.scan(step, state, jax.random.split(key, int(num_steps)))


# -- the driver's Algo ---------------------------------------------------------------------------------------
def default_config() -> ml_collections.ConfigDict:
    """``config.emitter``: the emitter's name (`rlland.qd.emitters.EMITTERS`) and every emitter's
    hyperparameters (their dataclass defaults)."""
    section = section_defaults(GaussianHParams, IsoLineHParams)
    section.name = "gaussian"
    return section


def map_elites_algo(task, config, metrics_fn) -> Algo:
    """MAP-Elites as an `rlland.qd.algo.Algo`: generation 0 scores ``task.init_genomes`` (Xavier genomes, as
    QDax), later generations ``config.batch_size`` offspring of ``config.emitter``."""
    require_choice("config.emitter.name", config.emitter.name, EMITTERS)
    emitter, hparams_cls = EMITTERS[config.emitter.name]
    hparams = jax.tree.map(jnp.float32, from_section(hparams_cls, config.emitter))
    batch = positive_int("config.batch_size", config.batch_size)
    generation = emit_score_tell(
        lambda k: task.init_genomes(k, batch),
        lambda s, k: emitter(s.archive, k, batch, s.emitter_hparams), task.score,
        lambda s, o, f, d, e, k, initial: map_elites_tell(s, o, f, d, metrics_fn))
    return Algo(init_state=lambda archive, key: map_elites_state(archive, hparams), generation=generation,
                evals_per_generation=batch)
