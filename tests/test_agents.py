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


def step_metric_names(algo: str, env_name: str) -> set:
    """The names of the metrics one ``agent.step`` returns (the dict's structure is fixed when the step is traced:
    ``jax.eval_shape`` gives it without compiling a program)."""
    agent = agents.make(algo, envs.make(env_name), PPO if algo == "ppo" else OFF_POLICY)
    return set(jax.eval_shape(lambda s: agent.step(s)[1], agent.init(jax.random.PRNGKey(0))))


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
@functools.lru_cache(maxsize=None)
def seed_batch_run(algo: str):
    """(agent, iterations, one jitted kernel): ``agent.step`` ``iterations`` times on probe_observation (PPO 20;
    TD3 / SAC 80: 16 updates after the 64 warm-up steps), vmapped over a leading batch axis of states; the
    vmap-over-seeds and the learning-rate sweep tests call the same compiled kernel."""
    agent = agents.make(algo, envs.make("probe_observation"), PPO if algo == "ppo" else OFF_POLICY)
    n = 20 if algo == "ppo" else 80
    return agent, n, jax.jit(jax.vmap(lambda s: jax.lax.scan(lambda s, _: agent.step(s), s, None, n)[0]))


@pytest.mark.parametrize("algo", ["td3", "sac", "ppo"])
def test_vmap_over_seeds_equals_single_seed_runs(algo):
    agent, n, batched_run = seed_batch_run(algo)
    keys = jax.random.split(jax.random.PRNGKey(7), 4)
    batched = batched_run(jax.vmap(agent.init)(keys))
    single = jax.jit(lambda s: jax.lax.scan(lambda s, _: agent.step(s), s, None, n)[0])
    for i in range(4):
        one = single(agent.init(keys[i]))
        for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(batched.params)):
            np.testing.assert_allclose(a, b[i], rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("algo", ["td3", "ppo"])
def test_learning_rate_sweep_is_one_compiled_kernel(algo):
    agent, _, step = seed_batch_run(algo)
    keys = jnp.stack([jax.random.PRNGKey(0)] * 4)
    outs = []
    for lrs in ([1e-3, 3e-3, 1e-2, 1e-4], [1e-4, 0.0, 3e-3, 1e-3]):
        hp = jax.vmap(lambda lr: agent.hparams(learning_rate=lr))(jnp.array(lrs))
        outs.append(step(jax.vmap(agent.init)(keys, hp)))
    assert step._cache_size() == 1  # also when the vmap-over-seeds test called it first (default hparams)
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


# -- configurable where the peers are: initialiser scales, learning-rate schedules, reward transform ----------
def _singular_values(kernel):
    return np.linalg.svd(np.asarray(kernel), compute_uv=False)


@pytest.mark.parametrize("algo,actor_out,critic_out", [("td3", 2.0 ** 0.5, 2.0 ** 0.5), ("sac", 2.0 ** 0.5, 2.0 ** 0.5),
                                                       ("ppo", 0.01, 1.0)])
def test_initialiser_scales_from_the_config(algo, actor_out, critic_out):
    """Defaults are the study's (bitwise the networks' own defaults); set scales give orthogonal kernels of that gain
    (all singular values equal to the scale, as orthogonal(scale) = scale * Q)."""
    from rlland import networks
    env = envs.make("probe_observation")
    base = PPO if algo == "ppo" else OFF_POLICY
    default = agents.make(algo, env, base)
    c = default.config
    assert (c.hidden_init_scale, c.actor_output_scale, c.critic_output_scale) == (2.0 ** 0.5, actor_out, critic_out)
    own = {"td3": networks.DeterministicActor(1, (32, 32)), "sac": networks.TanhGaussianActor(1, (32, 32)),
           "ppo": networks.GaussianActor(1, (32, 32))}[algo]
    key = jax.random.PRNGKey(3)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(default.actor.init(key, jnp.zeros((1, 1)))),
                                                    jax.tree.leaves(own.init(key, jnp.zeros((1, 1))))))
    agent = agents.make(algo, env, base | dict(hidden_init_scale=0.5, actor_output_scale=0.02, critic_output_scale=3.0))
    params = agent.init(jax.random.PRNGKey(0)).params
    for w, _ in agent.actor_layers(params)[1:]:  # square hidden kernels: every singular value is the scale
        np.testing.assert_allclose(_singular_values(w), 0.5, rtol=1e-5)
    actor = params["actor"]["params"]
    head = actor["_Head_0"]["Dense_0"] if "_Head_0" in actor else actor["Dense_0"]  # SAC: mean head Dense_0
    np.testing.assert_allclose(_singular_values(head["kernel"]), 0.02, rtol=1e-5)
    critic = params["critic"]["params"]["_Head_0"]["Dense_0"]["kernel"]
    np.testing.assert_allclose(_singular_values(critic), 3.0, rtol=1e-5)
    with pytest.raises(ValueError, match="hidden_init_scale must be > 0"):
        agents.make(algo, env, {"hidden_init_scale": 0.0})
    with pytest.raises(ValueError, match="actor_output_scale must be a finite number >= 0"):
        agents.make(algo, env, {"actor_output_scale": -1.0})


def test_learning_rate_at():
    from rlland.agents.base import learning_rate_at
    lr = jnp.float32(2e-3)
    assert learning_rate_at(lr, jnp.int32(50), "constant", 100) is lr
    got = [float(learning_rate_at(lr, jnp.int32(t), "linear", 100)) for t in (0, 25, 100, 150)]
    np.testing.assert_allclose(got, [2e-3, 1.5e-3, 0.0, 0.0], rtol=1e-6, atol=0)


@pytest.mark.parametrize("algo", ["td3", "sac", "ppo"])
def test_linear_learning_rate_schedule(algo):
    """lr_t = lr * (1 - t / T) at the iteration's env steps t (PPO: before its rollout); at t >= T the networks stop
    changing, bitwise (Adam's step is multiplied by 0)."""
    env = envs.make("probe_observation")
    per_iter = PPO["num_envs"] * PPO["unroll_length"] if algo == "ppo" else 1
    horizon = 4 * per_iter if algo == "ppo" else 96  # PPO: 4 iterations; off-policy: 32 updates after warm-up
    base = PPO if algo == "ppo" else OFF_POLICY
    agent = agents.make(algo, env, base | dict(lr_schedule="linear", lr_schedule_steps=horizon))
    # one compiled run of horizon // per_iter iterations, called twice: up to the horizon, then as many past it
    run = jax.jit(lambda s: jax.lax.scan(lambda s, _: agent.step(s), s, None, horizon // per_iter))
    state, metrics = run(agent.init(jax.random.PRNGKey(0)))
    t = np.arange(horizon // per_iter) * per_iter + (0 if algo == "ppo" else 1)  # env steps at the update
    np.testing.assert_allclose(metrics["learning_rate"], base["learning_rate"] * (1 - t / horizon), rtol=1e-5,
                               atol=1e-9)
    later, metrics = run(state)
    np.testing.assert_array_equal(metrics["learning_rate"], 0.0)
    for part in ("actor", "critic"):
        assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.params[part]),
                                                        jax.tree.leaves(later.params[part])))
    assert "learning_rate" not in step_metric_names(algo, "probe_constant")  # constant: no extra metric
    with pytest.raises(ValueError, match="needs lr_schedule_steps"):
        agents.make(algo, env, {"lr_schedule": "linear"})
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, linear"):
        agents.make(algo, env, {"lr_schedule": "cosine"})


def _terminal_transition(reward):
    return Transition(obs=jnp.zeros((1, 1)), action=jnp.zeros((1, 1)), reward=jnp.array([reward]),
                      next_obs=jnp.ones((1, 1)), terminated=jnp.ones(1))


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_reward_scaling_scales_the_replayed_rewards(algo):
    """The buffer stores reward_scaling * r (traced: two scalings in one vmapped kernel), so the critic target at a
    termination is y = reward_scaling * r; the critic loss itself adds nothing (normalisation off)."""
    env = envs.make("probe_constant")  # reward 1 at every step
    agent = agents.make(algo, env, OFF_POLICY | dict(reward_scaling=3.0))
    hp = jax.vmap(lambda s: agent.hparams(reward_scaling=s))(jnp.array([3.0, 0.5]))
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    state = jax.jit(jax.vmap(lambda s: jax.lax.scan(lambda s, _: agent.step(s), s, None, 4)[0]))(
        jax.vmap(agent.init)(keys, hp))
    np.testing.assert_array_equal(state.buffer.data.reward[:, :4], [[3.0] * 4, [0.5] * 4])
    params = agent.init(jax.random.PRNGKey(0)).params
    q = agent.critic.apply(params["critic"], jnp.zeros((1, 1)), jnp.zeros((1, 1)))
    loss, _ = agent.critic_loss(params, _terminal_transition(6.0), jax.random.PRNGKey(1), agent.hparams())
    np.testing.assert_allclose(loss, ((q - 6.0) ** 2).sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="reward_scaling must be > 0"):
        agents.make(algo, env, {"reward_scaling": 0.0})


def test_ppo_reward_scaling_scales_the_return_targets():
    # probe_constant: one-step episodes with reward 1, so the return target is reward_scaling * 1 exactly
    env = envs.make("probe_constant")
    agent = agents.make("ppo", env, PPO | dict(reward_scaling=4.0))
    state = agent.init(jax.random.PRNGKey(0))
    _, traj, _ = agent.rollout(state.params, state.env_state, jax.random.PRNGKey(1))
    batch = agent.make_batch(state.params, traj, state.hparams)
    np.testing.assert_allclose(batch.target, 4.0, rtol=1e-6)


def _naive_return_variance(rewards, dones, gamma):
    """Every env's discounted return R_t = gamma R_{t-1} + r_t (zeroed after done), population variance of all."""
    acc, seen = np.zeros(rewards.shape[1]), []
    for r, d in zip(rewards, dones):
        acc = gamma * acc + r
        seen.append(acc.copy())
        acc = np.where(d, 0.0, acc)
    return np.var(np.concatenate(seen)), acc


def test_return_normalizer_matches_a_naive_computation():
    from rlland.agents.rewards import ReturnNormalizer
    rng = np.random.default_rng(0)
    rewards, dones = rng.normal(1.0, 2.0, (40, 5)).astype(np.float32), rng.random((40, 5)) < 0.1
    var, acc = _naive_return_variance(rewards, dones, 0.9)
    norm = ReturnNormalizer.create(5)
    rollout = norm.update_rollout(jnp.asarray(rewards), jnp.asarray(dones), 0.9)
    stepwise, update = norm, jax.jit(lambda n, r, d: n.update(r, d, 0.9))  # one compiled step, 40 calls
    for r, d in zip(rewards, dones):
        stepwise = update(stepwise, jnp.asarray(r), jnp.asarray(d))
    for n in (rollout, stepwise):
        np.testing.assert_allclose(n.stats.var[0], var, rtol=1e-4)
        np.testing.assert_allclose(n.returns, acc, rtol=1e-5)
    x = jnp.array([0.5, -3.0, 1e6])
    np.testing.assert_allclose(rollout.normalize(x), np.clip(np.asarray(x) / np.sqrt(var + 1e-8), -10, 10),
                               rtol=1e-4)


@pytest.mark.parametrize("algo", ["td3", "ppo"])
def test_reward_normalisation_tracks_the_discounted_returns_in_the_state(algo):
    """probe_time_limit: reward 1 each step, episodes of 3 steps, so R cycles 1, 1 + g, 1 + g + g^2 in every env."""
    env = envs.make("probe_time_limit", episode_length=3)
    base = PPO if algo == "ppo" else OFF_POLICY | dict(num_envs=2)
    agent = agents.make(algo, env, base | dict(normalize_rewards=True, reward_scaling=2.0))
    state = agent.init(jax.random.PRNGKey(0))
    state, _ = jax.jit(lambda s: jax.lax.scan(lambda s, _: agent.step(s), s, None, 5))(state)
    steps = 5 * (PPO["unroll_length"] if algo == "ppo" else 1)
    # the statistics are those of the scaled rewards (2 per step)
    var, acc = _naive_return_variance(np.full((steps, agent.config.num_envs), 2.0),
                                      (np.arange(steps) % 3 == 2)[:, None].repeat(agent.config.num_envs, 1), GAMMA)
    np.testing.assert_allclose(state.params["reward_norm"].stats.var[0], var, rtol=1e-5)
    np.testing.assert_allclose(state.params["reward_norm"].returns, acc)
    r = agent.reward(state.params, jnp.ones(3), agent.hparams())  # env reward 1 -> 2 / std(R)
    np.testing.assert_allclose(r, 2.0 / np.sqrt(var + 1e-8), rtol=1e-5)
    assert "reward_norm" not in agents.make(algo, env, base).init(jax.random.PRNGKey(0)).params  # off by default


@pytest.mark.parametrize("algo", ["sac", "ppo"])
def test_env_metrics_reach_the_step_metrics(algo):
    """A core's per-step metrics (Brax's per-reward-term ``state.metrics``) come out of a step as ``env/<term>``, the
    mean over the envs (and PPO's unroll), one scalar per iteration; tasks without them add nothing.

    The agents pass ``Step.metrics`` through whatever the core, so this runs on the 1-D car (``car1d``, metrics
    ``distance`` = |100 - x| and ``speed`` = |v| after the step), whose kernels compile in a fraction of hopper's;
    tests/test_envs.py checks that hopper's Brax metrics reach ``Step.metrics``. The car starts at x in [-1, 1],
    |v| <= 0.1 and accelerates by at most dt = 0.2 per step, so in these <= 12 steps every env's distance stays
    within [93, 107] and speed within [0, 2.5]: a sum over the envs (or the unroll) would fall outside."""
    env = envs.make("car1d", episode_length=100)  # no episode ends in these steps
    cfg = (dict(PPO, hidden_sizes=(8,), num_envs=4, unroll_length=4) if algo == "ppo"
           else dict(OFF_POLICY, hidden_sizes=(8,), warmup_steps=4, batch_size=4, buffer_capacity=64, num_envs=2))
    agent = agents.make(algo, env, cfg)
    run = jax.jit(lambda s: jax.lax.scan(lambda s, _: agent.step(s), s, None, 3))
    state, metrics = run(agent.init(jax.random.PRNGKey(0)))
    assert {"env/distance", "env/speed"} <= set(metrics)
    distance, speed = np.asarray(metrics["env/distance"]), np.asarray(metrics["env/speed"])
    assert distance.shape == speed.shape == (3,)
    assert np.all((distance >= 93.0) & (distance <= 107.0)) and np.all((speed >= 0.0) & (speed <= 2.5))
    if algo == "sac":  # one env step per iteration: the last one's metrics are those of the final env states
        obs = np.asarray(state.env_state.obs)
        np.testing.assert_allclose(distance[-1], np.abs(100.0 - obs[:, 0]).mean(), rtol=1e-6)
        np.testing.assert_allclose(speed[-1], np.abs(obs[:, 1]).mean(), rtol=1e-6)
    assert not any(k.startswith("env/") for k in step_metric_names(algo, "probe_constant"))
