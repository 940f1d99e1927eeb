"""The coefficient CMA-ES of CMA-MEGA (rlland.qd.cma_es): truncation weights, external ranking, convergence on
a sphere and an ill-conditioned quadratic, restart rules, reset, vmap over seeds."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rlland  # noqa: F401
from rlland.qd.cma_es import CoefficientCMAES, truncation_weights

DIM, POP, MU = 5, 20, 10
ES = CoefficientCMAES(dim=DIM, population_size=POP, mu=MU, sigma0=1.0)
H = jnp.diag(10.0 ** jnp.linspace(0.0, 4.0, DIM))  # condition number 1e4


def sphere(x):
    return jnp.sum((x - 1.0) ** 2, axis=-1)


def ellipsoid(x):
    return jnp.einsum("...i,ij,...j->...", x - 0.5, H, x - 0.5)


def _minimise(f, num_generations, keys):
    def one(key):
        def gen(state, k):
            x, state = ES.ask(state, k)
            state = ES.tell(state, x, jnp.argsort(f(x)))  # best (lowest) first
            return state, (f(state.mean), ES.needs_restart(state))

        return jax.lax.scan(gen, ES.init(), jax.random.split(key, num_generations))

    return jax.jit(jax.vmap(one))(keys)


def test_truncation_weights():
    w = np.asarray(truncation_weights(49, 99))
    assert w.shape == (99,) and np.all(w[49:] == 0) and np.all(np.diff(w[:49]) < 0)
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-6)
    raw = np.log(49.5) - np.log(np.arange(1, 50))
    np.testing.assert_allclose(w[:49], raw / raw.sum(), rtol=1e-5)
    p = CoefficientCMAES(dim=2, population_size=99, mu=49).hparams
    np.testing.assert_allclose(p.weights, w)
    np.testing.assert_allclose(p.mu_eff, 1.0 / np.sum(w ** 2), rtol=1e-5)


def test_external_ranking_matches_a_minimised_fitness():
    """tell(order) == evosax's own tell on a fitness that sorts the same way (it minimises)."""
    state = ES.init()
    x, state = ES.ask(state, jax.random.PRNGKey(0))
    fitness = sphere(x)
    ours = ES.tell(state, x, jnp.argsort(fitness))
    theirs, _ = ES.es.tell(jax.random.PRNGKey(1), x, fitness, state, ES.hparams)
    for name in ("mean", "std", "p_std", "p_c", "C", "generation_counter"):  # best_fitness is in ranks for ours
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-5, atol=1e-7, err_msg=name)
    # the mean moves to the truncation-weighted mean of the best MU
    w = truncation_weights(MU)
    np.testing.assert_allclose(ours.mean, w @ x[jnp.argsort(fitness)[:MU]], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("f, gens, tol", [(sphere, 100, 1e-8), (ellipsoid, 150, 1e-6)])
def test_cma_es_minimises(f, gens, tol):
    keys = jax.random.split(jax.random.PRNGKey(3), 3)  # three seeds, vmapped
    _, (f_mean, stop) = _minimise(f, gens, keys)
    assert f_mean.shape == (3, gens)
    assert np.all(np.asarray(f_mean[:, -1]) < tol), f_mean[:, -1]
    assert not np.any(np.asarray(stop[:, :10]))  # no restart rule fires early on


def test_restart_rules_and_reset():
    state = ES.init()
    assert not bool(ES.needs_restart(state))
    assert bool(ES.needs_restart(state.replace(std=jnp.float32(1e-12))))  # sigma sqrt(max eig) < 1e-11
    assert bool(ES.needs_restart(state.replace(C=jnp.diag(jnp.array([1.0, 1.0, 1.0, 1.0, 1e-15])))))  # cond > 1e14
    assert bool(ES.needs_restart(state, jnp.array([3.0, 3.0, 3.0])))  # ranked value spread < 1e-12
    assert not bool(ES.needs_restart(state, jnp.array([3.0, 1.0, -jnp.inf])))
    x, moved = ES.ask(state, jax.random.PRNGKey(0))
    moved = ES.tell(moved, x, jnp.arange(POP))
    assert float(jnp.abs(moved.mean).sum()) > 0
    reset = ES.reset(moved)
    jax.tree.map(np.testing.assert_array_equal, reset, ES.init())
    np.testing.assert_array_equal(reset.C, np.eye(DIM))
    assert float(reset.std) == 1.0 and np.all(np.asarray(reset.mean) == 0)
