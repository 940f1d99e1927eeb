"""What the QD driver needs from an algorithm (`Algo`), and the pieces every algorithm shares: the one-phase
emit -> score -> tell adapter, the insertion of a scored batch (`insert`) and its metrics (`step_metrics`), and
the config section <-> settings dataclass conversion (`section_defaults`, `from_section`).

An algorithm's per-seed state is any pytree with ``archive`` (`Archive`), ``generation`` (int32, -1 before the
first generation) and ``num_evals`` (int32, genomes scored so far). The driver calls ``init_state`` once per
seed and then ``generation`` inside ``jit(vmap(scan))``; it never looks inside the state otherwise, so an
algorithm with several scoring phases per generation (CMA-MEGA: gradient phase then emission phase; ME-ES)
writes its own ``generation`` and calls ``score`` as often as it needs.

Each algorithm module keeps its defaults in ONE place, its settings dataclasses (static ``...Config`` and
traced ``...HParams``); ``configs/qd.py`` reads them through the module's ``default_config()``
(`section_defaults`) and the algorithm's builder reads a config back with `from_section`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from rlland.qd.archive import IMPROVE_EXISTING, NEW, AddInfo, Archive


@dataclasses.dataclass(frozen=True)
class Algo:
    """A QD algorithm as the driver runs it.

    init_state: ``(archive, key) -> state`` with ``generation = -1`` and nothing scored.
    generation: ``(state, key, initial) -> (state, metrics)``: one generation; ``initial`` is a traced bool,
      true for generation 0 (an algorithm that seeds its archive with a random population uses it).
      ``metrics`` holds at least ``sum_keys`` and ``mean_keys`` (scalars).
    evals_per_generation: genomes scored per generation (the budget is counted in these; re-evaluations for
      robustness are not counted, as in the study).
    sum_keys: per-generation metrics summed over a chunk (counts).
    mean_keys: per-generation metrics averaged over a chunk's non-initial generations.
    buffer_bytes: replay memory per seed (checked against the host's memory before a run).
    """

    init_state: Callable
    generation: Callable
    evals_per_generation: int
    sum_keys: tuple[str, ...] = ("num_inserted", "num_new", "num_improved")
    mean_keys: tuple[str, ...] = ("batch_max_fitness",)
    buffer_bytes: int = 0


def emit_score_tell(init_genomes: Callable, emit: Callable, score: Callable, tell: Callable) -> Callable:
    """A one-phase ``generation``: offspring = ``init_genomes(key)`` at generation 0 (the initial population),
    else ``emit(state, key)``; then ``score`` and ``tell(state, offspring, fitnesses, descriptors, extras, key,
    initial)``. Both branches feed ONE ``score`` call, so a chunk kernel compiles the rollout once."""

    def generation(state, key, initial):
        k_emit, k_score, k_tell = jax.random.split(key, 3)
        offspring = jax.lax.cond(initial, lambda: init_genomes(k_emit), lambda: emit(state, k_emit))
        fitnesses, descriptors, extras = score(offspring, k_score)
        return tell(state, offspring, fitnesses, descriptors, extras, k_tell, initial)

    return generation


def insert(state: Any, genomes: Any, fitnesses: jax.Array, descriptors: jax.Array) -> tuple[Any, AddInfo]:
    """Generation ``g = state.generation + 1`` of a one-phase algorithm: add the scored batch to the archive
    (``added_at = g``) and count its evaluations. Returns ``(state, AddInfo)``."""
    generation = state.generation + 1
    archive, info = state.archive.add(genomes, fitnesses, descriptors, step=generation)
    return state.replace(archive=archive, generation=generation,
                         num_evals=state.num_evals + jnp.asarray(fitnesses.shape[0], jnp.int32)), info


def step_metrics(state: Any, info: AddInfo, fitnesses: jax.Array,
                 metrics_fn: Callable[[Archive], dict]) -> dict:
    """``metrics_fn(state.archive)`` plus generation, num_evals, num_inserted (cells written), num_new /
    num_improved (`AddInfo` status counts) and batch_max_fitness (a NaN fitness counts as -inf) of the batch
    ``info`` / ``fitnesses`` told at this generation."""
    out = dict(metrics_fn(state.archive))
    out.update(
        generation=state.generation,
        num_evals=state.num_evals,
        num_inserted=jnp.sum(info.inserted).astype(jnp.int32),
        num_new=jnp.sum(info.status == NEW).astype(jnp.int32),
        num_improved=jnp.sum(info.status == IMPROVE_EXISTING).astype(jnp.int32),
        batch_max_fitness=jnp.max(jnp.where(jnp.isnan(fitnesses), -jnp.inf, fitnesses)),
    )
    return out


# -- config sections <-> settings dataclasses ----------------------------------------------------------------
def section_defaults(*classes: type, exclude: tuple[str, ...] = ()) -> ml_collections.ConfigDict:
    """A config section holding the field defaults of the dataclasses ``classes`` (less ``exclude``)."""
    return ml_collections.ConfigDict({f.name: f.default for cls in classes for f in dataclasses.fields(cls)
                                      if f.name not in exclude})


def from_section(cls: type, section: Any, **fixed) -> Any:
    """``cls(**fixed, **{name: section[name]})`` over the fields of ``cls`` found in ``section`` (not in
    ``fixed``), each cast to the type of its default (JSON round trips turn tuples into lists)."""
    values = {f.name: type(f.default)(section[f.name]) for f in dataclasses.fields(cls)
              if f.name in section and f.name not in fixed}
    return cls(**fixed, **values)
