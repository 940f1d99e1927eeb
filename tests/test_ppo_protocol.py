"""The representation study's PPO options (reference A.1, A.3, A.7 of representation-regions-qd.md): tanh-Gaussian
head, Adam betas, Adam reset, per-network clipping, shared trunk, gradient / weight norm metrics.

Tiny: the 1-d probe envs, 8-8 nets, 8 envs x 8 steps; one compiled training run per option set (module fixtures).
"""
import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rlland import agents, envs, networks
from rlland.agents import ppo as ppo_module

K = 4
SMALL = dict(hidden_sizes=(8, 8), num_envs=8, unroll_length=8, num_minibatches=2, epochs=2, learning_rate=3e-3)


@pytest.fixture(scope="module")
def env():
    return envs.make("probe_observation")


def train(agent, k=K, seed=0):
    """K iterations of one seed, jitted: (final state, metrics [K])."""
    @jax.jit
    def run(key):
        return jax.lax.scan(lambda s, _: agent.step(s), agent.init(key), None, k)

    return jax.device_get(run(jax.random.PRNGKey(seed)))


@pytest.fixture(scope="module")
def tanh_run(env):
    agent = agents.make("ppo", env, SMALL | dict(policy="tanh_gaussian", log_every=2, log_samples=32,
                                                  log_metrics=("diversity", "kl", "trust_region")))
    return agent, *train(agent)


# -- 1. tanh-Gaussian head ------------------------------------------------------------------------------------------
def test_tanh_log_prob_matches_closed_form_and_scale_depends_on_state(env, tanh_run):
    agent, state, _ = tanh_run
    obs = jnp.array([[1.0], [-1.0], [0.3]])

    @jax.jit
    def probe(params):
        pi = agent.policy(params, obs)
        action, logp = agent.sample(pi, jax.random.PRNGKey(1))
        u = jnp.arctanh(action)
        closed = (jax.scipy.stats.norm.logpdf(u, pi.loc, pi.scale_diag) - jnp.log1p(-action ** 2)).sum(-1)
        ref = distrax.Transformed(distrax.Normal(pi.loc, pi.scale_diag), distrax.Tanh()).log_prob(action).sum(-1)
        edge = pi.log_prob(jnp.full((3, 1), 1.0 - ppo_module.ACTION_EPS))
        stoch = agent.act(params, jnp.ones((256, 1)), jax.random.PRNGKey(2), deterministic=False)
        return dict(action=action, logp=logp, closed=closed, ref=ref, loc=pi.loc, scale=pi.scale_diag, edge=edge,
                    det=agent.act(params, obs), stoch=stoch)

    assert isinstance(agent.policy(state.params, obs), ppo_module.TanhNormal)
    r = jax.device_get(probe(state.params))
    assert np.all(np.abs(r["action"]) < 1.0) and np.all(np.abs(r["stoch"]) < 1.0)
    np.testing.assert_allclose(r["logp"], r["closed"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r["logp"], r["ref"], rtol=1e-5, atol=1e-5)
    assert abs(r["scale"][0, 0] - r["scale"][1, 0]) > 1e-4  # state-dependent scale after training
    assert np.all(r["scale"] > networks.TanhGaussianActor.SOFTPLUS_MIN)
    assert np.all(np.isfinite(r["edge"]))  # a stored action at the clip edge has a finite log-prob
    np.testing.assert_allclose(r["det"], np.tanh(r["loc"]), rtol=1e-6)  # deterministic action = tanh(mean)


def test_tanh_training_finite_with_diagnostics(tanh_run):
    _, state, m = tanh_run
    assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(state.params))
    assert np.all(np.isfinite(m["entropy"])) and np.all(np.isfinite(m["pg_loss"]))
    logged = slice(0, None, 2)
    assert np.all(m["repr/start/policy_variance"][logged] > 0)  # the scale (and mean) vary across states
    kl = m["repr/end/kl_analytic"][logged]
    assert np.all(np.isfinite(kl)) and np.all(kl >= 0)


def test_tanh_rejects_discrete_and_unknown_policy(env):
    with pytest.raises(ValueError, match="tanh_gaussian' is for continuous"):
        agents.make("ppo", envs.make("probe_discrete_bandit"), SMALL | dict(policy="tanh_gaussian"))
    with pytest.raises(ValueError, match="config.policy must be one of"):
        agents.make("ppo", env, SMALL | dict(policy="beta"))
