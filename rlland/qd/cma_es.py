"""The coefficient CMA-ES of CMA-MEGA (Fontaine & Nikolaidis 2021), built on evosax 0.3.2's ``CMA_ES``.

CMA-MEGA samples gradient coefficients ``c in R^{m+1}`` (objective + m measures) from N(mean, sigma^2 C) and
ranks them by archive improvement (not by a fitness function), so this module wraps evosax with:

  * the study's parameters (dqd-rl ``src/emitters/opt/cma_es.py``, a purecma port; reference C.3): dimension
    m + 1, mean 0, sigma_g = 1.0, population ``batch_size`` (99; 98 with the TD3 greedy actor), ``mu`` parents
    (49) with TRUNCATION weights

        w'_i = log(mu + 1/2) - log i  (i = 1..mu),   w_i = w'_i / sum_j w'_j,   w_i = 0 for i > mu.

    evosax's default is active CMA (mu = lambda / 2 with log((lambda + 1) / 2) - log i and NEGATIVE weights for
    the worse half); the study (and pyribs, QDax) use positive truncation weights only, so `CoefficientCMAES`
    builds its own ``Params``. The other constants are Hansen's tutorial ones (arXiv:1604.00772, eqs. 55-58),
    recomputed from the truncation weights' mu_eff = 1 / sum w_i^2:
        c_c = (4 + mu_eff/n) / (n + 4 + 2 mu_eff/n),  c_s = (mu_eff + 2) / (n + mu_eff + 5),
        c_1 = 2 / ((n + 1.3)^2 + mu_eff),  c_mu = min(1 - c_1, 2 (mu_eff - 2 + 1/mu_eff) / ((n + 2)^2 + mu_eff)),
        d_s = 1 + 2 max(0, sqrt((mu_eff - 1) / (n + 1)) - 1) + c_s,  chi_n = sqrt(n) (1 - 1/(4n) + 1/(21 n^2)).
    (evosax's c_mu uses 2 mu_eff / 2 = mu_eff in the denominator: the same number.) evosax eigendecomposes C at
    every ``ask`` (the study's purecma does it lazily; with n = m + 1 <= 5 the cost is nil and the samples are
    the same distribution).
  * ranking supplied from outside: `tell` takes ``order`` (indices of the population, best first; CMA-MEGA
    ranks by improvement status then value) and hands evosax the fitness ``position in the ranking`` (0 for
    the best, float), which evosax (a minimiser, ``weights_fitness_shaping_fn``: weight = ``weights[rank]``)
    orders identically, with no ties.
  * `reset` (a fresh state: mean 0, sigma_g, C = I, zero paths) and the numerical restart rules of pyribs 0.4
    ``CMAEvolutionStrategy.check_stop`` used by the study (reference C.3): condition number of C > 1e14,
    ``sigma * sqrt(max eig C) < 1e-11``, or ``|value(best) - value(worst)| < 1e-12`` over the ranked batch.

All functions are pure functions of one `CMAESState` (a pytree), so a seed axis is a ``jax.vmap``.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from evosax.algorithms import CMA_ES
from evosax.algorithms.distribution_based.cma_es import Params as EvosaxParams
from evosax.algorithms.distribution_based.cma_es import State as CMAESState

from rlland.validation import positive_int, static_int

__all__ = ["CMAESState", "CoefficientCMAES", "truncation_weights"]

CONDITION_LIMIT = 1e14
AREA_LIMIT = 1e-11
SPREAD_LIMIT = 1e-12


def truncation_weights(mu: int, population_size: int | None = None) -> jax.Array:
    """``(population_size,)`` weights ``(log(mu + 1/2) - log i) / sum`` for ranks i = 1..mu, 0 after."""
    n = int(mu if population_size is None else population_size)
    i = jnp.arange(1, n + 1, dtype=jnp.float32)
    w = jnp.where(i <= mu, jnp.log(mu + 0.5) - jnp.log(i), 0.0)
    return w / jnp.sum(w)


@dataclasses.dataclass(frozen=True)
class CoefficientCMAES:
    """CMA-ES over ``dim`` coefficients with an externally supplied ranking (see the module docstring).

        es = CoefficientCMAES(dim=m + 1, population_size=99, mu=49)
        state = es.init()
        coeffs, state = es.ask(state, key)                 # (population_size, dim)
        state = es.tell(state, coeffs, order)              # order: population indices, best first
        stop = es.needs_restart(state, ranked_values)      # numerical rules; es.reset(state) restarts
    """

    dim: int
    population_size: int
    mu: int
    sigma0: float = 1.0

    def __post_init__(self):
        positive_int("CoefficientCMAES.dim", self.dim)
        static_int("CoefficientCMAES.population_size", self.population_size, minimum=2)
        if not 1 <= self.mu <= self.population_size:
            raise ValueError(f"CoefficientCMAES: mu must lie in [1, population_size={self.population_size}], "
                             f"got {self.mu}")

    @functools.cached_property
    def es(self) -> CMA_ES:
        return CMA_ES(population_size=int(self.population_size), solution=jnp.zeros((int(self.dim),)))

    @property
    def hparams(self) -> EvosaxParams:
        """evosax ``Params`` (its hyperparameters) with truncation weights and the constants recomputed from their
        mu_eff."""
        n = float(self.dim)
        w = truncation_weights(self.mu, self.population_size)
        mu_eff = 1.0 / jnp.sum(w ** 2)
        c_c = (4 + mu_eff / n) / (n + 4 + 2 * mu_eff / n)
        c_1 = 2.0 / ((n + 1.3) ** 2 + mu_eff)
        c_mu = jnp.minimum(1 - c_1, 2 * (mu_eff - 2 + 1 / mu_eff) / ((n + 2) ** 2 + mu_eff))
        c_std = (mu_eff + 2) / (n + mu_eff + 5)
        d_std = 1 + 2 * jnp.maximum(0.0, jnp.sqrt((mu_eff - 1) / (n + 1)) - 1) + c_std
        chi_n = jnp.sqrt(n) * (1.0 - 1.0 / (4.0 * n) + 1.0 / (21.0 * n ** 2))
        return EvosaxParams(std_init=jnp.asarray(self.sigma0, jnp.float32), std_min=0.0, std_max=1e8, weights=w,
                            mu_eff=mu_eff, c_mean=1.0, c_std=c_std, d_std=d_std, c_c=c_c, c_1=c_1, c_mu=c_mu,
                            chi_n=chi_n)

    def init(self, mean=None) -> CMAESState:
        """A fresh state: ``mean`` (default 0), sigma = ``sigma0``, C = I, zero evolution paths."""
        mean = jnp.zeros((self.dim,), jnp.float32) if mean is None else jnp.asarray(mean, jnp.float32)
        # evosax's init key is unused by CMA-ES; a constant keeps init a pure function of nothing
        return self.es.init(jax.random.PRNGKey(0), mean, self.hparams)

    def reset(self, state: CMAESState) -> CMAESState:
        """The restart state (same as `init`); ``state`` only fixes the structure."""
        del state
        return self.init()

    def ask(self, state: CMAESState, key: jax.Array) -> tuple[jax.Array, CMAESState]:
        """``(population_size, dim)`` coefficients ~ N(mean, sigma^2 C), and the state with C's eigenbasis."""
        return self.es.ask(key, state, self.hparams)

    def tell(self, state: CMAESState, population: jax.Array, order: jax.Array) -> CMAESState:
        """Update with ``population`` ranked by ``order`` (population indices, best first)."""
        fitness = jnp.zeros((self.population_size,), jnp.float32).at[order].set(
            jnp.arange(self.population_size, dtype=jnp.float32))
        state, _ = self.es.tell(jax.random.PRNGKey(0), population, fitness, state, self.hparams)
        return state

    def needs_restart(self, state: CMAESState, ranked_values: jax.Array | None = None) -> jax.Array:
        """pyribs 0.4 ``check_stop``: cond(C) > 1e14, sigma sqrt(max eig C) < 1e-11, or (if ``ranked_values``,
        the batch's values in ranking order) ``|v_first - v_last| < 1e-12``."""
        C = (state.C + state.C.T) / 2
        eig = jnp.linalg.eigvalsh(C)
        lo, hi = eig[0], eig[-1]
        cond = jnp.where(lo > 0, hi / jnp.where(lo > 0, lo, 1.0), jnp.inf)
        stop = (cond > CONDITION_LIMIT) | (state.std * jnp.sqrt(jnp.maximum(hi, 0.0)) < AREA_LIMIT)
        stop = stop | ~jnp.all(jnp.isfinite(state.mean)) | ~jnp.isfinite(state.std)
        if ranked_values is not None:
            stop = stop | (jnp.abs(ranked_values[0] - ranked_values[-1]) < SPREAD_LIMIT)
        return stop
