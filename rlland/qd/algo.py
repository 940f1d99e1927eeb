"""What the QD driver needs from an algorithm (`Algo`), and the one-phase emit -> score -> tell adapter.

An algorithm's per-seed state is any pytree with ``archive`` (`Archive`), ``generation`` (int32, -1 before the
first generation) and ``num_evals`` (int32, genomes scored so far). The driver calls ``init_state`` once per
seed and then ``generation`` inside ``jit(vmap(scan))``; it never looks inside the state otherwise, so an
algorithm with several scoring phases per generation (CMA-MEGA: gradient phase then emission phase; ME-ES)
writes its own ``generation`` and calls ``score`` as often as it needs.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax


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
