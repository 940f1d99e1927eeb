"""Robustness of archived elites to the start state (dqd-rl ``manager.py`` and ``robustness.py``, reference C.4).

An elite's archived fitness comes from ONE episode; re-evaluating it from fresh random start states shows how
much of it was luck. With ``R_e`` the mean return of elite ``e`` over ``num_episodes`` fresh episodes and
``f_e`` its archived fitness:

* **robustness** (of the best elite, logged every generation by the study): ``R_best - f_best``, usually <= 0;
* **mean elite robustness** (the paper's post-hoc metric): ``mean_{e in elites} (R_e - f_e)``, every elite
  re-evaluated with the SAME base seed (the same ``num_episodes`` start states for every elite) and no action
  noise; normalised by ``max_objective - f_min`` when asked.

Both need a task with random start states (``make_task(..., random_init=True)``): with a deterministic start
every re-evaluation repeats the archived episode. Re-evaluations are not counted in the evaluation budget
(as in the study). One seed per call; vmap over seed-batched archives and keys.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rlland.qd.archive import Archive


def _check_task(task: Any) -> None:
    if not getattr(task, "random_init", False):
        raise ValueError("robustness needs random start states: build the task with random_init=True")


def episode_keys(key: jax.Array, num_episodes: int) -> jax.Array:
    """The ``(num_episodes, 2)`` start-state keys shared by every re-evaluated genome."""
    if int(num_episodes) < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    return jax.random.split(key, int(num_episodes))


def reevaluate(task: Any, genomes: jax.Array, key: jax.Array, num_episodes: int,
               block_size: int | None = None) -> jax.Array:
    """Returns ``(M, num_episodes)``: the return of each of ``M`` genomes in each of ``num_episodes`` episodes,
    episode ``j`` starting from the same state (key) for every genome.

    ``block_size`` (static) bounds memory: genomes are evaluated ``block_size`` at a time (``lax.map``), i.e.
    ``block_size * num_episodes`` episodes in parallel; None evaluates all ``M`` at once. ``M`` must be a
    multiple of ``block_size``.
    """
    _check_task(task)
    keys = episode_keys(key, num_episodes)
    genomes = jnp.asarray(genomes)

    n = int(num_episodes)

    def block(gs):  # (B, D) -> (B, N): ONE vmap over the B * N (genome, episode) pairs
        b = gs.shape[0]
        pairs = jnp.repeat(gs, n, axis=0), jnp.tile(keys, (b, 1))
        returns = jax.vmap(lambda g, k: task.rollout(g, k, return_transitions=False)["fitness"])(*pairs)
        return returns.reshape(b, n)

    m = genomes.shape[0]
    if block_size is None or int(block_size) >= m:
        return block(genomes)
    b = int(block_size)
    if m % b:
        raise ValueError(f"the number of genomes ({m}) must be a multiple of block_size ({b})")
    out = jax.lax.map(block, genomes.reshape((m // b, b) + genomes.shape[1:]))
    return out.reshape(m, n)


def best_elite_robustness(task: Any, archive: Archive, key: jax.Array, num_episodes: int = 10) -> dict:
    """Re-evaluate the best elite: ``{"best_fitness", "best_reevaluated" (mean of the returns), "robustness"
    (= best_reevaluated - best_fitness), "best_returns" (num_episodes,)}``. NaN for an empty archive."""
    best = jnp.argmax(archive.fitnesses)
    genome = jax.tree.map(lambda x: x[best], archive.genotypes)
    returns = reevaluate(task, genome[None], key, num_episodes)[0]
    empty = archive.num_elites == 0
    f = archive.fitnesses[best]
    mean = jnp.where(empty, jnp.nan, jnp.mean(returns))
    return {"best_fitness": jnp.where(empty, jnp.nan, f), "best_reevaluated": mean,
            "robustness": mean - jnp.where(empty, jnp.nan, f),
            "best_returns": jnp.where(empty, jnp.nan, returns)}


def mean_elite_robustness(task: Any, archive: Archive, key: jax.Array, num_episodes: int = 10,
                          block_size: int | None = None, f_min=None, max_objective=None) -> dict:
    """Re-evaluate EVERY cell's elite with the same ``num_episodes`` start states (reference C.4).

    Returns ``{"mean_elite_robustness": mean over elites of (R_e - f_e), "cell_robustness": (C,) (NaN in empty
    cells), "cell_reevaluated": (C,) mean returns R_e, "cell_returns": (C, num_episodes) every return (NaN in
    empty cells)}``, plus
    ``"normalized_mean_elite_robustness" = mean_elite_robustness / (max_objective - f_min)`` when both are
    given. Cost: ``num_cells * num_episodes`` episodes (empty cells are evaluated too, to keep shapes static;
    their results are masked). ``block_size`` is passed to `reevaluate` (cells are padded to a multiple of it).
    """
    num_cells = archive.num_cells
    genomes = archive.genotypes
    b = num_cells if block_size is None else min(int(block_size), num_cells)
    pad = (-num_cells) % b
    if pad:
        genomes = jnp.concatenate([genomes, jnp.zeros((pad,) + genomes.shape[1:], genomes.dtype)], axis=0)
    returns = reevaluate(task, genomes, key, num_episodes, block_size=b)[:num_cells]
    filled = archive.filled
    reeval = jnp.where(filled, jnp.mean(returns, axis=-1), jnp.nan)
    cell = jnp.where(filled, reeval - archive.fitnesses, jnp.nan)
    n = jnp.sum(filled)
    mean = jnp.where(n > 0, jnp.sum(jnp.where(filled, cell, 0.0)) / jnp.maximum(n, 1), jnp.nan)
    out = {"mean_elite_robustness": mean, "cell_robustness": cell, "cell_reevaluated": reeval,
           "cell_returns": jnp.where(filled[:, None], returns, jnp.nan)}
    if (f_min is None) != (max_objective is None):
        raise ValueError("normalisation needs both f_min and max_objective (or neither)")
    if f_min is not None:
        out["normalized_mean_elite_robustness"] = mean / (jnp.asarray(max_objective) - jnp.asarray(f_min))
    return out

