"""The coefficient CMA-ES of CMA-MEGA (Fontaine & Nikolaidis 2021), with two update rules.

CMA-MEGA samples gradient coefficients ``c in R^n`` (n = m + 1: objective + m measures) from
N(mean, sigma^2 C) and ranks them by archive improvement (not by a fitness function): `CoefficientCMAES.tell`
takes the ranking from outside (``order``: population indices, best first). The study's parameters (dqd-rl
``src/emitters/opt/cma_es.py``; reference C.3): mean 0, sigma_0 = sigma_g = 1.0, population ``batch_size``
(99; 98 with the TD3 greedy actor), mu = lambda // 2 (49) parents with TRUNCATION weights

    w_i = (log(mu + 1/2) - log i) / sum_j (log(mu + 1/2) - log j)   (i = 1..mu),   mu_eff = 1 / sum w_i^2,

and the constants of Hansen's tutorial (arXiv:1604.00772, eqs. 55-58) from these weights:
    c_c = (4 + mu_eff/n) / (n + 4 + 2 mu_eff/n),  c_s = (mu_eff + 2) / (n + mu_eff + 5),
    c_1 = 2 / ((n + 1.3)^2 + mu_eff),  c_mu = min(1 - c_1, 2 (mu_eff - 2 + 1/mu_eff) / ((n + 2)^2 + mu_eff)),
    d_s = 1 + 2 max(0, sqrt((mu_eff - 1) / (n + 1)) - 1) + c_s.

``update_rule="dqd_rl"`` (default; `DQDCMAState`): the study's update, a port of pycma's ``purecma`` as dqd-rl
wrote it (dqd-rl @ e227035 ``CMAEvolutionStrategy.tell`` / ``ask`` / ``check_stop``). With ``x_(1..mu)`` the
top-mu ranked samples, ``m`` the old mean, ``t`` the evaluations told since the last reset (``current_eval``,
counted BEFORE the update, i.e. including this batch):

    m'    = sum_i w_i x_(i),   y = m' - m
    p_s  <- (1 - c_s) p_s + sqrt(c_s (2 - c_s) mu_eff) / sigma * C^{-1/2} y
    h_sig = [ |p_s|^2 / n / (1 - (1 - c_s)^(2 t / lambda)) < 2 + 4 / (n + 1) ]
    p_c  <- (1 - c_c) p_c + h_sig sqrt(c_c (2 - c_c) mu_eff) y                    (y NOT divided by sigma)
    C    <- (1 - c_1a - c_mu sum w) C + c_1^2 p_c p_c^T + c_mu / sigma^2 sum_i w_i (x_(i) - m)(x_(i) - m)^T,
            c_1a = c_1 (1 - (1 - h_sig^2) c_c (2 - c_c))                         (c_1 TWICE in the rank-one term)
    sigma <- sigma exp(min(1, c_s / d_s (|p_s|^2 / n - 1) / 2))                  (old sigma in p_s and C above)

C^{-1/2}, the eigenbasis B and eigenvalues D^2 used by ``ask`` (x = m + sigma B D z) are recomputed LAZILY, in
``ask``, only when ``t > t_eig + lazy_gap`` with lazy_gap = 0.5 n lambda / (c_1 + c_mu) / n^2 (c_1, c_mu for
lambda // 2 parents, as dqd-rl), after forcing symmetry with ``C <- max(C, C^T)`` (elementwise, stored);
``C^{-1/2} = max(S, S^T)`` of ``S = B diag(1/sqrt D^2) B^T``. With the study's n <= 5 and lambda = 98/99 the
gap (~25 evaluations for n = 2) is below one batch, so every ``ask`` after the first decomposes C. The restart
rules (``check_stop``, `CoefficientCMAES.needs_restart`) read the condition number and eigenvalues of that last
decomposition (before this generation's ``tell``), the current sigma, and the ranked values:
    cond(C) = max D^2 / min D^2 > 1e14,  sigma sqrt(max D^2) < 1e-11,  |v_first - v_last| < 1e-12,
plus one rule of ours that never fires in a healthy run: a non-finite mean, sigma or C (restart instead of
propagating NaN coefficients).
Deviations from dqd-rl: float32 (the study's CMA-ES ran in its pyribs archive's dtype, float64); ``mu`` is a
setting (the study's is lambda // 2), the lazy gap keeps dqd-rl's lambda // 2.

``update_rule="evosax"``: evosax 0.3.2's ``CMA_ES`` textbook update (evosax ``Params`` with the same truncation
weights and constants; `CoefficientCMAES.hparams`; state: evosax's ``State``). It differs from the study's in
the rank-one term (c_1 p_c p_c^T, p_c from y / sigma), the step size (exp(c_s / d_s (|p_s| / chi_n - 1)), no
cap), the stall test (|p_s| / sqrt(1 - (1 - c_s)^(2 (g + 1))) < (1.4 + 2 / (n + 1)) chi_n) and an eager
eigendecomposition at every ``ask``; the ranking reaches evosax as the fitness ``position in the ranking``
(evosax minimises). Its restart rules read the current C.

All functions are pure functions of one state (a pytree), so a seed axis is a ``jax.vmap``.
"""
from __future__ import annotations

import dataclasses
import functools

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from evosax.algorithms import CMA_ES
from evosax.algorithms.distribution_based.cma_es import Params as EvosaxParams
from evosax.algorithms.distribution_based.cma_es import State as EvosaxCMAState

from rlland.validation import positive_int, require_choice, static_int

__all__ = ["DQDCMAState", "EvosaxCMAState", "CoefficientCMAES", "UPDATE_RULES", "strategy_constants",
           "truncation_weights"]

UPDATE_RULES = ("dqd_rl", "evosax")
CONDITION_LIMIT = 1e14
AREA_LIMIT = 1e-11
SPREAD_LIMIT = 1e-12
# the CMA-ES's small matrix products at full float32 precision (no TF32 on GPUs)
_matmul = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)


def truncation_weights(mu: int, population_size: int | None = None) -> jax.Array:
    """``(population_size,)`` weights ``(log(mu + 1/2) - log i) / sum`` for ranks i = 1..mu, 0 after."""
    n = int(mu if population_size is None else population_size)
    i = jnp.arange(1, n + 1, dtype=jnp.float32)
    w = jnp.where(i <= mu, jnp.log(mu + 0.5) - jnp.log(i), 0.0)
    return w / jnp.sum(w)


def strategy_constants(dim: int, mu: int) -> dict:
    """``mu_eff, c_c, c_s, c_1, c_mu, d_s`` of truncation weights with ``mu`` parents in ``dim`` dimensions (the
    module docstring; dqd-rl ``_calc_strat_params`` and ``damps``). Python floats."""
    n = float(dim)
    w = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
    w = w / w.sum()
    mu_eff = float(w.sum() ** 2 / np.sum(w ** 2))
    c_c = (4 + mu_eff / n) / (n + 4 + 2 * mu_eff / n)
    c_s = (mu_eff + 2) / (n + mu_eff + 5)
    c_1 = 2 / ((n + 1.3) ** 2 + mu_eff)
    c_mu = min(1 - c_1, 2 * (mu_eff - 2 + 1 / mu_eff) / ((n + 2) ** 2 + mu_eff))
    d_s = 1 + 2 * max(0.0, float(np.sqrt((mu_eff - 1) / (n + 1))) - 1) + c_s
    return dict(mu_eff=mu_eff, c_c=c_c, c_s=c_s, c_1=c_1, c_mu=c_mu, d_s=d_s)


class DQDCMAState(flax.struct.PyTreeNode):
    """State of the study's CMA-ES (``update_rule="dqd_rl"``; dqd-rl ``CMAEvolutionStrategy`` + ``DecompMatrix``).

    Attributes:
      mean ``(n,)``, sigma ``()``, C ``(n, n)``, p_c, p_s ``(n,)``: the search distribution and evolution paths.
      eigvals ``(n,)``, eigvecs ``(n, n)``, invsqrt ``(n, n)``, condition ``()``: the last (lazy)
        eigendecomposition of C, C^{-1/2} and max/min eigenvalue.
      current_eval: evaluations told since the last reset; updated_eval: ``current_eval`` at the last
        decomposition (int32).
    """

    mean: jax.Array
    sigma: jax.Array
    C: jax.Array
    p_c: jax.Array
    p_s: jax.Array
    eigvals: jax.Array
    eigvecs: jax.Array
    invsqrt: jax.Array
    condition: jax.Array
    current_eval: jax.Array
    updated_eval: jax.Array


@dataclasses.dataclass(frozen=True)
class CoefficientCMAES:
    """CMA-ES over ``dim`` coefficients with an externally supplied ranking (see the module docstring).

        es = CoefficientCMAES(dim=m + 1, population_size=99, mu=49)     # update_rule="dqd_rl" (the study's)
        state = es.init()
        coeffs, state = es.ask(state, key)                 # (population_size, dim)
        state = es.tell(state, coeffs, order)              # order: population indices, best first
        stop = es.needs_restart(state, ranked_values)      # numerical rules; es.reset(state) restarts
    """

    dim: int
    population_size: int
    mu: int
    sigma0: float = 1.0
    update_rule: str = "dqd_rl"

    def __post_init__(self):
        positive_int("CoefficientCMAES.dim", self.dim)
        static_int("CoefficientCMAES.population_size", self.population_size, minimum=2)
        require_choice("CoefficientCMAES.update_rule", self.update_rule, UPDATE_RULES)
        if not 1 <= self.mu <= self.population_size:
            raise ValueError(f"CoefficientCMAES: mu must lie in [1, population_size={self.population_size}], "
                             f"got {self.mu}")

    # ------------------------------------------------------------------ constants
    @functools.cached_property
    def constants(self) -> dict:
        """`strategy_constants` for ``mu`` parents."""
        return strategy_constants(self.dim, self.mu)

    @property
    def lazy_gap_evals(self) -> float:
        """dqd-rl's evaluations between eigendecompositions: ``0.5 n lambda / (c_1 + c_mu) / n^2`` with c_1, c_mu
        of lambda // 2 parents."""
        c = strategy_constants(self.dim, max(1, self.population_size // 2))
        return 0.5 * self.dim * self.population_size / (c["c_1"] + c["c_mu"]) / self.dim ** 2

    @functools.cached_property
    def es(self) -> CMA_ES:
        return CMA_ES(population_size=int(self.population_size), solution=jnp.zeros((int(self.dim),)))

    @property
    def hparams(self) -> EvosaxParams:
        """evosax ``Params`` (``update_rule="evosax"``) with truncation weights and the constants of their mu_eff
        (evosax's c_mu uses 2 mu_eff / 2 = mu_eff in the denominator: the same number)."""
        n = float(self.dim)
        c = self.constants
        chi_n = jnp.sqrt(n) * (1.0 - 1.0 / (4.0 * n) + 1.0 / (21.0 * n ** 2))
        f32 = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
        return EvosaxParams(std_init=f32(self.sigma0), std_min=0.0, std_max=1e8,
                            weights=truncation_weights(self.mu, self.population_size), mu_eff=f32(c["mu_eff"]),
                            c_mean=1.0, c_std=f32(c["c_s"]), d_std=f32(c["d_s"]), c_c=f32(c["c_c"]),
                            c_1=f32(c["c_1"]), c_mu=f32(c["c_mu"]), chi_n=chi_n)

    # ------------------------------------------------------------------ state
    def init(self, mean=None):
        """A fresh state: ``mean`` (default 0), sigma = ``sigma0``, C = I, zero evolution paths."""
        n = self.dim
        mean = jnp.zeros((n,), jnp.float32) if mean is None else jnp.asarray(mean, jnp.float32)
        if self.update_rule == "evosax":
            # evosax's init key is unused by CMA-ES; a constant keeps init a pure function of nothing
            return self.es.init(jax.random.PRNGKey(0), mean, self.hparams)
        eye = jnp.eye(n, dtype=jnp.float32)
        zeros = jnp.zeros((n,), jnp.float32)
        return DQDCMAState(mean=mean, sigma=jnp.asarray(self.sigma0, jnp.float32), C=eye, p_c=zeros, p_s=zeros,
                           eigvals=jnp.ones((n,), jnp.float32), eigvecs=eye, invsqrt=eye,
                           condition=jnp.ones((), jnp.float32), current_eval=jnp.zeros((), jnp.int32),
                           updated_eval=jnp.zeros((), jnp.int32))

    def reset(self, state):
        """The restart state (same as `init`); ``state`` only fixes the structure."""
        del state
        return self.init()

    def sigma(self, state) -> jax.Array:
        """The step size of either rule's state."""
        return state.std if self.update_rule == "evosax" else state.sigma

    # ------------------------------------------------------------------ ask / tell
    def ask(self, state, key: jax.Array):
        """``(population_size, dim)`` coefficients ~ N(mean, sigma^2 C), and the state (with the eigenbasis the
        samples used: evosax decomposes C every time, dqd_rl lazily, see the module docstring)."""
        if self.update_rule == "evosax":
            return self.es.ask(key, state, self.hparams)
        state = self._update_eigensystem(state)
        z = state.sigma * jax.random.normal(key, (self.population_size, self.dim), jnp.float32)
        transform = state.eigvecs * jnp.sqrt(state.eigvals)[None, :]  # B D
        return state.mean + _matmul(z, transform.T), state

    def _update_eigensystem(self, state: DQDCMAState) -> DQDCMAState:
        """dqd-rl ``DecompMatrix.update_eigensystem``: redo the decomposition when ``t > t_eig + lazy_gap``."""
        due = state.current_eval.astype(jnp.float32) > state.updated_eval.astype(jnp.float32) + self.lazy_gap_evals
        C = jnp.maximum(state.C, state.C.T)
        vals, vecs = jnp.linalg.eigh(C)
        invsqrt = _matmul(vecs * (1.0 / jnp.sqrt(vals))[None, :], vecs.T)
        fresh = state.replace(C=C, eigvals=vals, eigvecs=vecs, invsqrt=jnp.maximum(invsqrt, invsqrt.T),
                              condition=jnp.max(vals) / jnp.min(vals), updated_eval=state.current_eval)
        return jax.tree.map(lambda a, b: jnp.where(due, a, b), fresh, state)

    def tell(self, state, population: jax.Array, order: jax.Array):
        """Update with ``population`` ranked by ``order`` (population indices, best first)."""
        if self.update_rule == "evosax":
            fitness = jnp.zeros((self.population_size,), jnp.float32).at[order].set(
                jnp.arange(self.population_size, dtype=jnp.float32))
            state, _ = self.es.tell(jax.random.PRNGKey(0), population, fitness, state, self.hparams)
            return state
        c, n, lam = self.constants, float(self.dim), self.population_size
        current_eval = state.current_eval + lam
        parents = population[order[:self.mu]]
        w = truncation_weights(self.mu)
        mu_eff, c_c, c_s, c_1, c_mu, d_s = (c[k] for k in ("mu_eff", "c_c", "c_s", "c_1", "c_mu", "d_s"))
        old, sigma = state.mean, state.sigma
        mean = _matmul(w, parents)
        y = mean - old
        p_s = (1 - c_s) * state.p_s + (jnp.sqrt(c_s * (2 - c_s) * mu_eff) / sigma) * _matmul(state.invsqrt, y)
        sq_ps = jnp.sum(p_s ** 2)
        left = sq_ps / n / (1 - (1 - c_s) ** (2 * current_eval.astype(jnp.float32) / lam))
        h_sig = (left < 2 + 4.0 / (n + 1)).astype(jnp.float32)
        p_c = (1 - c_c) * state.p_c + h_sig * jnp.sqrt(c_c * (2 - c_c) * mu_eff) * y
        ys = parents - old
        rank_mu = _matmul((w[:, None] * ys).T, ys)
        c_1a = c_1 * (1 - (1 - h_sig ** 2) * c_c * (2 - c_c))
        C = (state.C * (1 - c_1a - c_mu * jnp.sum(w)) + c_1 * (c_1 * jnp.outer(p_c, p_c))
             + rank_mu * c_mu / sigma ** 2)
        sigma = sigma * jnp.exp(jnp.minimum(1.0, c_s / d_s * (sq_ps / n - 1) / 2))
        return state.replace(mean=mean, sigma=sigma, C=C, p_c=p_c, p_s=p_s, current_eval=current_eval)

    # ------------------------------------------------------------------ restarts
    def needs_restart(self, state, ranked_values: jax.Array | None = None) -> jax.Array:
        """pyribs 0.4 / dqd-rl ``check_stop``: cond(C) > 1e14, sigma sqrt(max eig C) < 1e-11, or (if
        ``ranked_values``, the batch's values in ranking order, at least 2) ``|v_first - v_last| < 1e-12``; also
        a non-finite mean, sigma or C. dqd_rl reads the eigenvalues of the last lazy decomposition (as the study),
        evosax those of the current C."""
        if self.update_rule == "evosax":
            eig = jnp.linalg.eigvalsh((state.C + state.C.T) / 2)
            lo, hi = eig[0], jnp.maximum(eig[-1], 0.0)
            cond = jnp.where(lo > 0, hi / jnp.where(lo > 0, lo, 1.0), jnp.inf)
            sigma, C = state.std, state.C
        else:
            cond, hi, sigma, C = state.condition, jnp.max(state.eigvals), state.sigma, state.C
        stop = (cond > CONDITION_LIMIT) | (sigma * jnp.sqrt(hi) < AREA_LIMIT)
        stop = stop | ~jnp.all(jnp.isfinite(state.mean)) | ~jnp.isfinite(sigma) | ~jnp.all(jnp.isfinite(C))
        if ranked_values is not None and ranked_values.shape[0] >= 2:
            stop = stop | (jnp.abs(ranked_values[0] - ranked_values[-1]) < SPREAD_LIMIT)
        return stop
