"""Discrete-action PPO: known values on discrete probe tasks, the entropy bonus, vmapped seeds == single seeds,
and every analysis that applies (representation metrics on conv and dense features, PFO, plasticity, a PURD of a
PPO update, gradient subspaces of PPO's losses) on a tiny MinAtar run with the CNN."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import agents, curvature, envs, landscape
from rlland.representation import plasticity

GAMMA = 0.5
PPO = dict(hidden_sizes=(32, 32), num_envs=16, unroll_length=8, num_minibatches=2, learning_rate=3e-3, gamma=GAMMA,
           gae_lambda=0.95)
# a tiny CNN PPO on breakout: 4 filters, dense 16, 4 envs x 8 steps
TINY_CNN = dict(network="cnn", conv_features=(4,), hidden_sizes=(16,), activation="relu", num_envs=4, unroll_length=8,
                num_minibatches=2, epochs=2, learning_rate=1e-3)


@functools.lru_cache(maxsize=None)
def trained(env_name: str, iterations: int, ent_coef: float = 0.0):
    agent = agents.make("ppo", envs.make(env_name), PPO | dict(ent_coef=ent_coef))
    run = jax.jit(lambda s: jax.lax.scan(lambda s, _: agent.step(s), s, None, iterations))
    state, metrics = run(agent.init(jax.random.PRNGKey(0)))
    return agent, state, metrics


def probs(agent, params, obs):
    return np.asarray(agent.policy(params, jnp.array([[obs]])).probs[0])


def value(agent, params, obs):
    return float(agent.value(params, jnp.array([[obs]]))[0])


# -- probe values -------------------------------------------------------------------------------------------
def test_discrete_bandit_finds_the_best_arm_and_its_value():
    agent, state, _ = trained("probe_discrete_bandit", 150)
    assert probs(agent, state.params, 0.0)[1] > 0.95
    assert abs(value(agent, state.params, 0.0) - 1.0) < 0.1  # V* = 1
    assert int(agent.act(state.params, jnp.zeros((1, 1)))[0]) == 1  # deterministic = the most likely action


def test_discrete_two_step_values():
    agent, state, _ = trained("probe_discrete_two_step", 150)
    assert probs(agent, state.params, 1.0)[1] > 0.95
    assert abs(value(agent, state.params, 1.0) - 1.0) < 0.1  # V*(1) = 1
    assert abs(value(agent, state.params, 0.0) - GAMMA) < 0.1  # V*(0) = gamma V*(1)


def test_entropy_bonus_keeps_the_categorical_policy_spread():
    """With a large entropy coefficient the bandit's policy stays spread (measured: H = 0.53 of log 2 = 0.69,
    pi(1) = 0.79 after 150 iterations), without it it collapses onto the best arm (H = 2e-4); the logged entropy is
    the categorical's, -sum_a p_a log p_a."""
    _, _, plain = trained("probe_discrete_bandit", 150)
    agent, state, bonus = trained("probe_discrete_bandit", 150, ent_coef=2.0)
    p = probs(agent, state.params, 0.0)
    assert float(plain["entropy"][-1]) < 0.05 and float(bonus["entropy"][-1]) > 0.3
    assert 0.5 < p[1] < 0.95  # the reward still tilts it towards arm 1
    np.testing.assert_allclose(float(bonus["entropy"][-1]), -(p * np.log(p)).sum(), atol=0.05)


# -- seeds --------------------------------------------------------------------------------------------------
def test_vmap_over_seeds_equals_single_seed_runs_on_minatar():
    agent = agents.make("ppo", envs.make("minatar/breakout"), TINY_CNN | dict(network="mlp"))
    run = lambda s: jax.lax.scan(lambda s, _: agent.step(s), s, None, 3)[0]  # noqa: E731
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    batched = jax.jit(jax.vmap(run))(jax.vmap(agent.init)(keys))
    single = jax.jit(run)
    for i in range(3):
        one = single(agent.init(keys[i]))
        for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(batched.params)):
            np.testing.assert_allclose(a, b[i], rtol=2e-4, atol=2e-5)
        np.testing.assert_array_equal(one.env_state.obs, batched.env_state.obs[i])


def test_cnn_needs_images_and_discrete_actions():
    with pytest.raises(ValueError, match="needs image observations"):
        agents.make("ppo", envs.make("probe_discrete_bandit"), dict(network="cnn"))
    with pytest.raises(ValueError, match="Gaussian actor has an MLP torso"):
        agents.make("ppo", envs.make("hopper"), dict(network="cnn"))
    with pytest.raises(ValueError, match="do not fit the 10x10"):
        agents.make("ppo", envs.make("minatar/breakout"), dict(network="cnn", conv_features=(4, 4), conv_kernel=6))
    agent = agents.make("ppo", envs.make("minatar/breakout"), TINY_CNN)
    with pytest.raises(ValueError, match="CNN torso"):
        agent.actor_layers({"actor": {}})  # refused before any parameter is read


# -- analyses on a tiny MinAtar CNN run ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def cnn_run():
    """Two logged iterations of a tiny CNN agent with every diagnostic (one filter, so that the 64 rows of a batch
    cover the 8 x 8 x 1 conv features: ranks need N >= D), and the analyses of its snapshot."""
    agent = agents.make("ppo", envs.make("minatar/breakout"),
                        TINY_CNN | dict(conv_features=(1,), unroll_length=16, log_every=1, log_samples=64))
    rf = landscape.policy_returns(agent, episode_length=40)

    @jax.jit
    def suite(key):
        state, metrics = jax.lax.scan(lambda s, _: agent.step(s), agent.init(key), None, 2)
        op, op0 = (landscape.ppo_update(agent, state, learning_rate=lr) for lr in (1e-3, 0.0))
        purd = lambda op: landscape.post_update_returns(op, rf, state.params, key, 4)  # noqa: E731
        subspaces = curvature.analyse_snapshot(agent, state, key, k=2, num_iters=4, ks=(1, 2), num_samples=32)
        fit = plasticity(agent, state.params, key, num_envs=2, num_steps=16, epochs=1, minibatch_size=8)
        return dict(metrics=metrics, pre=rf(state.params, key).undiscounted, purd=purd(op), purd_lr0=purd(op0),
                    subspaces=subspaces, plasticity=fit)

    return agent, suite(jax.random.PRNGKey(3))


def test_representation_metrics_on_conv_and_dense_features(cnn_run):
    _, out = cnn_run
    m = {k: np.asarray(v) for k, v in out["metrics"].items()}
    for net in ("actor", "critic"):
        for kind in ("pre", "post", "conv_pre", "conv_post"):
            for phase in ("start", "end"):
                assert np.all(np.isfinite(m[f"repr/{phase}/{net}_{kind}/effective_rank"])), (net, kind)
            assert np.all(np.isfinite(m[f"repr/drift/{net}_{kind}"]))
        assert np.all(m[f"repr/start/{net}_conv_post/dead_units"] >= 0)
    assert np.all(m["repr/end/kl_analytic"] > 0) and np.all(np.isfinite(m["repr/end/kl_k3"]))
    assert np.all((m["repr/end/ratio_fraction_outside"] >= 0) & (m["repr/end/ratio_fraction_outside"] <= 1))
    assert np.all(m["repr/start/policy_variance"] >= 0) and np.all(np.isfinite(m["entropy"]))
    assert np.all(m["entropy"] <= np.log(3) + 1e-5)


def test_pfo_all_layers_includes_the_convolutions(cnn_run):
    agent, _ = cnn_run
    pfo = agents.make("ppo", agent.env, TINY_CNN | dict(pfo="all", pfo_coef=1.0))
    params = pfo.init(jax.random.PRNGKey(0)).params
    _, feats = pfo.policy_and_features(params, jnp.zeros((5, agent.env.observation_size)))
    assert pfo.pfo_phi(feats).shape == (5, 8 * 8 * 4 + 16)  # conv pre-activations (8x8x4) + the dense layer
    state, metrics = jax.jit(pfo.step)(pfo.init(jax.random.PRNGKey(1)))
    assert np.isfinite(float(metrics["pfo_loss"])) and float(metrics["pfo_loss"]) >= 0


def test_purd_of_a_ppo_update(cnn_run):
    _, out = cnn_run
    purd, lr0 = np.asarray(out["purd"]["undiscounted"]), np.asarray(out["purd_lr0"]["undiscounted"])
    assert purd.shape == (4,) and np.all(np.isfinite(purd))
    np.testing.assert_array_equal(lr0, np.full(4, np.asarray(out["pre"])))  # lr 0: the pre-update return exactly


def test_plasticity_and_subspaces_of_ppo_losses(cnn_run):
    _, out = cnn_run
    fit = {k: float(v) for k, v in out["plasticity"].items()}
    assert all(np.isfinite(v) for v in fit.values()) and fit["policy_loss_initial"] > 0
    for loss in ("policy_loss", "value_function_loss", "combined_loss"):
        o = out["subspaces"][loss]
        assert np.all(np.isfinite(np.asarray(o["eigenvalues"]))), loss
        f = np.asarray(o["true_gradient"])
        assert f.shape == (2,) and np.all((f >= 0) & (f <= 1 + 1e-5)), (loss, f)
