"""Minimal MAP-Elites loop (Mouret & Clune 2015): emit -> score -> add, one generation per step.

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

Budget accounting follows the study (reference C.2): ``num_evals`` counts every scored genotype (the
initial population included); generation 0 is the initial population.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from rlland.qd.archive import IMPROVE_EXISTING, NEW, AddInfo, Archive
from rlland.qd.metrics import archive_summary

ScoreFn = Callable[[Any, jax.Array], tuple[jax.Array, jax.Array, Any]]
Emitter = Callable[[Archive, jax.Array, int, Any], Any]


class MapElitesState(flax.struct.PyTreeNode):
    """Checkpointable MAP-Elites state (one seed; leaves gain a seed axis under vmap).

    Attributes:
      archive: the `Archive` (``added_at`` records the generation of each elite).
      emitter_params: pytree passed to the emitter each step (e.g. `GaussianParams`); None -> emitter
        defaults. Traced, so a hyperparameter sweep is a vmap.
      generation: int32, generations done (0 after init).
      num_evals: int32, genotypes scored so far.
    """

    archive: Archive
    emitter_params: Any
    generation: jax.Array
    num_evals: jax.Array


def _step_metrics(archive: Archive, info: AddInfo, fitnesses: jax.Array, state: MapElitesState,
                  metrics_fn: Callable[[Archive], dict]) -> dict:
    out = dict(metrics_fn(archive))
    out.update(
        generation=state.generation,
        num_evals=state.num_evals,
        num_inserted=jnp.sum(info.inserted).astype(jnp.int32),
        num_new=jnp.sum(info.status == NEW).astype(jnp.int32),
        num_improved=jnp.sum(info.status == IMPROVE_EXISTING).astype(jnp.int32),
        batch_max_fitness=jnp.max(jnp.where(jnp.isnan(fitnesses), -jnp.inf, fitnesses)),
    )
    return out


def map_elites_init(
    archive: Archive,
    genotypes: Any,
    key: jax.Array,
    *,
    score_fn: ScoreFn,
    emitter_params: Any = None,
    metrics_fn: Callable[[Archive], dict] = archive_summary,
) -> tuple[MapElitesState, dict]:
    """Score the initial population and insert it into ``archive`` (generation 0).

    Args:
      archive: usually empty (`Archive.empty` / `Archive.grid`).
      genotypes: initial population, leaves ``(n, ...)`` (e.g. ``task.init_genomes(key, n)``).
      key: scoring key.
      score_fn: ``score_fn(genotypes, key) -> (fitnesses, descriptors, extras)`` (e.g. ``task.score``).
      emitter_params: stored in the state for `map_elites_step`.
      metrics_fn: archive -> dict of scalars; default `archive_summary` (no QD score, which needs a
        convention: pass ``functools.partial(qd.metrics, f_min=...)`` or ``(..., offset=...)``).
    Returns:
      ``(state, metrics)``.
    """
    fitnesses, descriptors, _ = score_fn(genotypes, key)
    archive, info = archive.add(genotypes, fitnesses, descriptors, step=0)
    state = MapElitesState(
        archive=archive,
        emitter_params=emitter_params,
        generation=jnp.zeros((), jnp.int32),
        num_evals=jnp.asarray(fitnesses.shape[0], jnp.int32),
    )
    return state, _step_metrics(archive, info, fitnesses, state, metrics_fn)


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
    offspring = emitter(state.archive, k_emit, int(batch_size), state.emitter_params)
    fitnesses, descriptors, _ = score_fn(offspring, k_score)
    generation = state.generation + 1
    archive, info = state.archive.add(offspring, fitnesses, descriptors, step=generation)
    state = state.replace(archive=archive, generation=generation,
                          num_evals=state.num_evals + jnp.asarray(fitnesses.shape[0], jnp.int32))
    return state, _step_metrics(archive, info, fitnesses, state, metrics_fn)


def map_elites_chunk(state: MapElitesState, key: jax.Array, num_steps: int,
                     **step_kwargs) -> tuple[MapElitesState, dict]:
    """``num_steps`` generations as one ``lax.scan``; metrics gain a leading ``(num_steps,)`` axis.

    ``step_kwargs`` are those of `map_elites_step` (score_fn, emitter, batch_size, metrics_fn). Jit it
    with ``num_steps`` and the callables static (e.g. via ``functools.partial`` before ``jax.jit``).
    """
    def step(s, k):
        return map_elites_step(s, k, **step_kwargs)

    return jax.lax.scan(step, state, jax.random.split(key, int(num_steps)))
