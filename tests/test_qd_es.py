"""ES gradient estimates (rlland.qd.es): mirrored noise, centered ranks, direction on known functions."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland.qd import es


def test_mirrored_noise_pairs_and_bad_sizes():
    eps = es.mirrored_noise(jax.random.PRNGKey(0), 6, 4)
    assert eps.shape == (6, 4)
    np.testing.assert_array_equal(eps[3:], -eps[:3])
    with pytest.raises(ValueError, match="even"):
        es.mirrored_noise(jax.random.PRNGKey(0), 5, 4)


def test_centered_ranks_by_hand():
    r = es.centered_ranks(jnp.array([[3.0, 0.0], [1.0, 5.0], [2.0, 1.0]]))
    np.testing.assert_allclose(r, [[0.5, -0.5], [-0.5, 0.5], [0.0, 0.0]])


@pytest.mark.parametrize("rank_normalise", [True, False])
def test_es_gradient_of_linear_functions_points_along_the_true_gradient(rank_normalise):
    dim, key = 20, jax.random.PRNGKey(1)  # cosine ~ sqrt(h / (h + dim)) for h mirrored pairs
    k_w, k_theta, k_eps = jax.random.split(key, 3)
    w = jax.random.normal(k_w, (3, dim))  # three linear functions (objective + two measures)
    theta = jax.random.normal(k_theta, (dim,))
    sigma = 0.02
    eps = es.mirrored_noise(k_eps, 1000, dim)
    values = (theta + sigma * eps) @ w.T  # (1000, 3)
    g = es.unit(es.es_gradient(eps, values, sigma, rank_normalise=rank_normalise))
    cosines = np.asarray(jnp.sum(g * es.unit(w), axis=-1))
    assert np.all(cosines > 0.9), cosines
    np.testing.assert_allclose(np.linalg.norm(g, axis=-1), 1.0, rtol=1e-5)
    g1 = es.es_gradient(eps, values[:, 0], sigma, rank_normalise=rank_normalise)  # one function: (D,)
    # same sums in another order: float32 rounding relative to the vector's scale (entries ~10, sums of 500 terms)
    np.testing.assert_allclose(g1, es.es_gradient(eps, values, sigma, rank_normalise=rank_normalise)[0],
                               rtol=1e-6, atol=1e-5)


def test_es_gradient_without_ranks_is_the_antithetic_estimate_of_a_quadratic():
    dim, sigma = 10, 0.01
    theta = jnp.linspace(-1.0, 1.0, dim)
    eps = es.mirrored_noise(jax.random.PRNGKey(2), 40_000, dim)
    values = -jnp.sum((theta + sigma * eps) ** 2, axis=-1)
    # E[eps (v(eps) - v(-eps))] / sigma = 2 grad v, so the estimate is twice the gradient
    g = es.es_gradient(eps, values, sigma, rank_normalise=False) / 2
    np.testing.assert_allclose(g, -2 * theta, atol=0.15)
