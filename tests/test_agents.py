"""TD3 / SAC / PPO kernels: known values on probe tasks, vmap equivalence, traced sweeps, bad input."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import agents, envs
from rlland.buffers import Transition

GAMMA = 0.5  # short horizons make bootstrapped values converge in a CI-sized number of updates
OFF_POLICY = dict(hidden_sizes=(32, 32), warmup_steps=64, buffer_capacity=2048, batch_size=64, learning_rate=1e-3,
                  gamma=GAMMA, tau=0.05)
PPO = dict(hidden_sizes=(32, 32), num_envs=16, unroll_length=8, num_minibatches=2, learning_rate=3e-3, gamma=GAMMA,
           gae_lambda=0.95)


@functools.lru_cache(maxsize=None)
def trained(algo: str, env_name: str, iterations: int, **overrides):
    env = envs.make(env_name, episode_length=3 if env_name == "probe_time_limit" else None)
    config = (PPO if algo == "ppo" else OFF_POLICY) | overrides
    agent = agents.make(algo, env, config)
    run = jax.jit(lambda s: jax.lax.scan(lambda s, _: agent.step(s), s, None, iterations))
    state, metrics = run(agent.init(jax.random.PRNGKey(0)))
    return agent, state, metrics


def q_value(agent, params, obs, action):
    return agent.critic.apply(params["critic"], jnp.array([[obs]]), jnp.array([[action]]))[0].min()


def v_value(agent, params, obs):
    return agent.critic.apply(params["critic"], jnp.array([[obs]]))[0]


# -- probe values: (env, obs, action, known value) ------------------------------------------------------------
Q_PROBES = [("probe_constant", 0.0, 0.3, 1.0), ("probe_observation", 1.0, 0.0, 1.0),
            ("probe_observation", -1.0, 0.0, -1.0), ("probe_two_step", 0.0, 0.0, GAMMA),
            ("probe_two_step", 1.0, 0.0, 1.0), ("probe_time_limit", 0.0, 0.0, 1.0 / (1.0 - GAMMA))]


@pytest.mark.parametrize("env_name,obs,action,value", Q_PROBES)
def test_td3_learns_probe_values(env_name, obs, action, value):
    agent, state, _ = trained("td3", env_name, 1500)
    assert abs(float(q_value(agent, state.params, obs, action)) - value) < 0.1


def test_td3_actor_finds_the_best_action():
    agent, state, _ = trained("td3", "probe_action", 1500)
    a = float(agent.act(state.params, jnp.zeros((1, 1)))[0, 0])
    assert abs(a - 0.5) < 0.1
    assert abs(float(q_value(agent, state.params, 0.0, 0.5))) < 0.05
    assert abs(float(q_value(agent, state.params, 0.0, -1.0)) + 2.25) < 0.3


@pytest.mark.parametrize("env_name,obs,action,value", [Q_PROBES[0], Q_PROBES[5]])
def test_sac_learns_probe_values(env_name, obs, action, value):
    # a negligible temperature removes the entropy bonus from the targets, so the known values apply
    agent, state, _ = trained("sac", env_name, 1500, init_temperature=1e-6)
    assert abs(float(q_value(agent, state.params, obs, action)) - value) < 0.1


@pytest.mark.parametrize("env_name,obs,value", [("probe_constant", 0.0, 1.0), ("probe_observation", 1.0, 1.0),
                                                ("probe_two_step", 0.0, GAMMA), ("probe_two_step", 1.0, 1.0),
                                                ("probe_time_limit", 0.0, 1.0 / (1.0 - GAMMA))])
def test_ppo_learns_probe_values(env_name, obs, value):
    agent, state, _ = trained("ppo", env_name, 150)
    assert abs(float(v_value(agent, state.params, obs)) - value) < 0.1


def test_time_limit_bootstraps_but_termination_does_not():
    """Same constant reward; a time limit keeps bootstrapping (Q -> 1/(1-gamma)), a termination stops it (Q -> 1)."""
    agent_t, state_t, _ = trained("td3", "probe_time_limit", 1500)
    agent_c, state_c, _ = trained("td3", "probe_constant", 1500)
    q_trunc = float(q_value(agent_t, state_t.params, 0.0, 0.0))
    q_term = float(q_value(agent_c, state_c.params, 0.0, 0.0))
    assert q_trunc > 1.8 and q_term < 1.1


def test_critic_target_masks_termination_only():
    env = envs.make("probe_constant")
    agent = agents.make("td3", env, OFF_POLICY)
    params = agent.init(jax.random.PRNGKey(0)).params
    hp = agent.hparams()
    one = lambda terminated: Transition(  # noqa: E731
        obs=jnp.zeros((1, 1)), action=jnp.zeros((1, 1)), reward=jnp.ones(1), next_obs=jnp.ones((1, 1)),
        terminated=jnp.array([terminated]))
    q = agent.critic.apply(params["critic"], jnp.zeros((1, 1)), jnp.zeros((1, 1)))
    loss_term, _ = agent.critic_loss(params, one(1.0), jax.random.PRNGKey(1), hp)
    np.testing.assert_allclose(loss_term, ((q - 1.0) ** 2).sum(), rtol=1e-5)  # y = r exactly
    loss_boot, _ = agent.critic_loss(params, one(0.0), jax.random.PRNGKey(1), hp)
    assert not np.isclose(loss_boot, loss_term)


# -- vmap over seeds and hyperparameters --------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["td3", "sac", "ppo"])
def test_vmap_over_seeds_equals_single_seed_runs(algo):
    env = envs.make("probe_observation")
    agent = agents.make(algo, env, PPO if algo == "ppo" else OFF_POLICY)
    run = lambda s: jax.lax.scan(lambda s, _: agent.step(s), s, None, 20)[0]  # noqa: E731
    keys = jax.random.split(jax.random.PRNGKey(7), 4)
    batched = jax.jit(jax.vmap(run))(jax.vmap(agent.init)(keys))
    single = jax.jit(run)
    for i in range(4):
        one = single(agent.init(keys[i]))
        for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(batched.params)):
            np.testing.assert_allclose(a, b[i], rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("algo", ["td3", "ppo"])
def test_learning_rate_sweep_is_one_compiled_kernel(algo):
    env = envs.make("probe_observation")
    agent = agents.make(algo, env, PPO if algo == "ppo" else OFF_POLICY)
    step = jax.jit(jax.vmap(lambda s: jax.lax.scan(lambda s, _: agent.step(s), s, None, 80)[0]))
    keys = jnp.stack([jax.random.PRNGKey(0)] * 2)
    outs = []
    for lrs in ([1e-3, 3e-3], [1e-4, 0.0]):
        hp = jax.vmap(lambda lr: agent.hparams(learning_rate=lr))(jnp.array(lrs))
        outs.append(step(jax.vmap(agent.init)(keys, hp)))
    assert step._cache_size() == 1
    actor = [jax.tree.leaves(o.params["actor"])[0] for o in outs]
    assert not np.allclose(actor[0][0], actor[0][1])  # the two learning rates trained differently
    init = jax.tree.leaves(agent.init(keys[0]).params["actor"])[0]
    np.testing.assert_array_equal(actor[1][1], init)  # learning rate 0 leaves the actor untouched


# -- bad input ----------------------------------------------------------------------------------------------
def test_bad_input_is_refused_clearly():
    env = envs.make("probe_constant")
    with pytest.raises(ValueError, match="unknown algorithm 'dqn'; valid: td3, sac, ppo"):
        agents.make("dqn", env)
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        agents.make("td3", env, {"learning_rate": -1e-3})
    with pytest.raises(ValueError, match="batch_size .* larger than buffer_capacity"):
        agents.make("sac", env, {"batch_size": 512, "buffer_capacity": 256})
    with pytest.raises(ValueError, match="unknown config keys .*learning_rat"):
        agents.make("ppo", env, {"learning_rat": 1e-3})
    with pytest.raises(ValueError, match="must be > 0"):
        agents.make("td3", env).hparams(learning_rate=-1.0)
    with pytest.raises(ValueError, match="divisible by num_minibatches"):
        agents.make("ppo", env, {"num_envs": 3, "unroll_length": 3, "num_minibatches": 2})
    with pytest.raises(ValueError, match="gamma must lie in"):
        agents.make("ppo", env, {"gamma": 1.5})
