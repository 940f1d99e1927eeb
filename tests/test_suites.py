"""The env contract per suite (MinAtar through gymnax, DM Control through MuJoCo Playground, suite names):
truncation at the time limit, the task's own termination, the true final observation, fresh resets from the
step key, fixed starts, and the action space (discrete indices are never clipped)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import agents, envs, runs
from rlland.envs import ActionSpace


def _jit_step(env):
    return jax.jit(env.step, static_argnames="autoreset")


def _steps(env, state, actions, keys):
    step = _jit_step(env)
    outs = []
    for a, k in zip(actions, keys):
        state, out = step(state, a, k)
        outs.append(out)
    return state, outs


# -- names, spaces, presets ---------------------------------------------------------------------------------
def test_suite_names_and_brax_aliases():
    names = envs.names()
    for n in ("brax/hopper", "hopper", "minatar/breakout", "minatar/asterix", "minatar/freeway",
              "minatar/space_invaders", "minatar/seaquest", "dmc/cheetah_run", "dmc/finger_spin", "dmc/walker_walk",
              "dmc/cartpole_swingup", "probe_discrete_bandit"):
        assert n in names, n
    a, b = envs.make("brax/hopper"), envs.make("hopper")
    assert (a.name, b.name) == ("brax/hopper", "hopper") and a.episode_length == b.episode_length == 1000
    assert a.core.env.__class__ is b.core.env.__class__ and a.core.env_kwargs == b.core.env_kwargs


def test_bad_names_list_the_valid_ones_per_suite():
    with pytest.raises(ValueError, match=r"valid names: brax/: .*hopper.*; minatar/: asterix, breakout, freeway, "
                                         r"seaquest, space_invaders; dmc/: .*cheetah_run.*; .*probes: probe_constant"):
        envs.make("minatar/pong")
    with pytest.raises(ValueError, match="unknown suite 'atari'"):
        envs.make("atari/breakout")
    with pytest.raises(ValueError, match=r"unknown env kwargs \['nope'\]"):
        envs.make("minatar/breakout", nope=1)
    with pytest.raises(ValueError, match=r"unknown env kwargs \['nope'\]"):
        envs.make("dmc/cheetah_run", nope=1)


def test_action_spaces_and_observation_shapes():
    games = {"asterix": (5, 4), "breakout": (3, 4), "freeway": (3, 7), "seaquest": (6, 10), "space_invaders": (4, 6)}
    for game, (num_actions, channels) in games.items():
        env = envs.make(f"minatar/{game}")
        assert env.action_space == ActionSpace("discrete", num_actions) and env.action_space.shape == ()
        assert env.observation_shape == (10, 10, channels) and env.observation_size == 100 * channels
        assert env.episode_length == (2500 if game == "freeway" else 1000), game  # gymnax's own limits
    assert envs.make("probe_discrete_two_step").action_space == ActionSpace("discrete", 2)
    assert envs.make("probe_constant").action_space == ActionSpace("continuous", 1)
    assert envs.make("hopper").action_space == ActionSpace("continuous", 3)
    with pytest.raises(ValueError, match="has discrete actions; td3 acts in continuous"):
        agents.make("td3", envs.make("minatar/breakout"))
    with pytest.raises(ValueError, match="has discrete actions; sac acts in continuous"):
        agents.make("sac", envs.make("probe_discrete_bandit"))


def test_presets_name_suite_envs_and_their_run_dirs():
    from rlland import configs
    ppo = configs.load("train", "ppo/minatar_breakout")
    assert ppo.env.name == "minatar/breakout" and ppo.env.episode_length == 1000 and ppo.agent.network == "cnn"
    assert runs.default_run_dir(ppo) == runs.preset_run_dir_of("ppo/minatar_breakout") == \
        "runs/ppo-minatar_breakout-seed0"
    assert configs.load("train", "ppo_mlp/minatar_freeway").env.episode_length == 2500
    sac = configs.load("train", "sac/dmc_cheetah_run")
    assert sac.env.name == "dmc/cheetah_run" and sac.env.episode_length == 1000
    assert configs.load("train", "td3/hopper").env.name == "hopper"  # bare Brax names stay as they are


# -- MinAtar ------------------------------------------------------------------------------------------------
def test_minatar_truncates_at_the_time_limit_and_resets_from_the_step_key():
    env = envs.make("minatar/breakout", episode_length=3)  # the ball cannot reach the paddle in 3 steps
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    state, outs = _steps(env, env.reset(jax.random.PRNGKey(0)), [jnp.int32(0)] * 3, keys)
    assert [bool(o.truncated) for o in outs] == [False, False, True]
    assert not any(bool(o.terminated) for o in outs)
    # a stochastic core splits the step key: (dynamics, reset); the new episode starts from the reset half
    np.testing.assert_array_equal(state.obs, env.reset(jax.random.split(keys[2])[1]).obs)
    assert int(state.time) == 0 and not np.array_equal(outs[2].final_obs, state.obs)
    assert set(np.unique(np.asarray(state.obs)).tolist()) <= {0.0, 1.0}


def test_minatar_termination_keeps_the_true_final_observation():
    env = envs.make("minatar/breakout")
    state = env.reset(jax.random.PRNGKey(2))
    step = _jit_step(env)
    for t, k in enumerate(jax.random.split(jax.random.PRNGKey(3), 60)):
        ended, _ = step(state, jnp.int32(0), k, autoreset=False)  # the same step without the reset
        new, out = step(state, jnp.int32(0), k)
        if bool(out.terminated | out.truncated):
            break
        state = new
    assert bool(out.terminated) and not bool(out.truncated), "a still paddle loses the ball within 60 steps"
    np.testing.assert_array_equal(out.final_obs, ended.obs)  # s_{t+1} of the terminal step
    assert int(new.time) == 0 and float(out.episode_return) == float(ended.episode_return)


def test_minatar_discrete_actions_are_indices_not_clipped_and_starts_fixed_or_fresh():
    env = envs.make("minatar/breakout")
    state, key = env.reset(jax.random.PRNGKey(0)), jax.random.PRNGKey(4)
    step = _jit_step(env)
    paddle = lambda a: int(np.argmax(np.asarray(step(state, jnp.int32(a), key)[0].obs).reshape(10, 10, 4)[9, :, 0]))
    start = int(np.argmax(np.asarray(state.obs).reshape(10, 10, 4)[9, :, 0]))
    assert (paddle(0), paddle(1), paddle(2)) == (start, start - 1, start + 1)  # no-op, left, right (2 not clipped)
    with pytest.raises(ValueError, match=r"expected a discrete action of shape \(\)"):
        env.step(state, jnp.zeros(1), key)
    fixed = envs.make("minatar/breakout", fixed_start=True)
    starts = {np.asarray(fixed.reset(k).obs).tobytes() for k in jax.random.split(jax.random.PRNGKey(5), 8)}
    fresh = {np.asarray(env.reset(k).obs).tobytes() for k in jax.random.split(jax.random.PRNGKey(5), 8)}
    assert len(starts) == 1 and len(fresh) > 1


def test_minatar_freeway_never_terminates():
    env = envs.make("minatar/freeway", episode_length=4)
    _, outs = _steps(env, env.reset(jax.random.PRNGKey(0)), [jnp.int32(1)] * 5,
                     jax.random.split(jax.random.PRNGKey(1), 5))
    assert [bool(o.truncated) for o in outs] == [False, False, False, True, False]
    assert not any(bool(o.terminated) for o in outs)


# -- DM Control ---------------------------------------------------------------------------------------------
# cartpole: the cheapest suite task to compile on a CPU (cheetah's reset alone runs 200 physics steps)
@pytest.fixture(scope="module")
def cartpole():
    env = envs.make("dmc/cartpole_swingup", episode_length=3)
    return env, _jit_step(env), jax.jit(env.reset)


def test_dmc_truncates_never_terminates_and_resets_fresh(cartpole):
    env, step, reset = cartpole
    assert env.action_space == ActionSpace("continuous", 1) and env.observation_size == 5
    assert env.core.default_episode_length == 1000 and env.core.env_kwargs == {"impl": "jax"}  # Playground's limit
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    state, outs = reset(jax.random.PRNGKey(0)), []
    for k in keys:
        state, out = step(state, jnp.full((1,), 0.3), k)
        outs.append(out)
    assert [bool(o.truncated) for o in outs] == [False, False, True, False]
    assert not any(bool(o.terminated) for o in outs) and all(np.isfinite(float(o.reward)) for o in outs)
    # steps that do not end: obs = final_obs; the one that truncates: a reset from its key (a deterministic core
    # gets the whole step key), and final_obs stays the true s_{t+1} (MinAtar's test checks it against autoreset=False)
    np.testing.assert_array_equal(outs[1].obs, outs[1].final_obs)
    np.testing.assert_array_equal(outs[2].obs, reset(keys[2]).obs)
    assert not np.array_equal(outs[2].final_obs, outs[2].obs)


def test_dmc_actions_are_clipped_and_starts_fixed_or_fresh(cartpole):
    env, step, reset = cartpole
    state, key = reset(jax.random.PRNGKey(0)), jax.random.PRNGKey(1)
    np.testing.assert_array_equal(step(state, jnp.full((1,), 5.0), key)[1].final_obs,
                                  step(state, jnp.ones(1), key)[1].final_obs)
    assert not np.array_equal(step(state, -jnp.ones(1), key)[1].final_obs, step(state, jnp.ones(1), key)[1].final_obs)
    assert not np.array_equal(reset(jax.random.PRNGKey(1)).obs, reset(jax.random.PRNGKey(2)).obs)
    # orbax refuses zero-size arrays (MJX's act, ...): the core keeps none in its state and restores their shapes
    assert all(x.size for x in jax.tree.leaves(state.inner))
    assert [x.shape for x in jax.tree.leaves(env.core.unpack(state.inner))] == env.core.leaf_shapes
    fixed = jax.jit(envs.make("dmc/cartpole_swingup", episode_length=3, fixed_start=True).reset)
    np.testing.assert_array_equal(fixed(jax.random.PRNGKey(1)).obs, fixed(jax.random.PRNGKey(2)).obs)
