"""The env adapter: termination vs truncation, true final observations, fresh-key resets, fixed starts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import envs
from rlland.buffers import ReplayBuffer, check_fits


def _run(env, actions, keys):
    state = env.reset(jax.random.PRNGKey(0))
    outs = []
    for a, k in zip(actions, keys):
        state, out = env.step(state, a, k)
        outs.append(out)
    return state, outs


def test_truncation_is_not_termination():
    env = envs.make("probe_time_limit", episode_length=3)
    _, outs = _run(env, [jnp.zeros(1)] * 4, jax.random.split(jax.random.PRNGKey(1), 4))
    assert [bool(o.truncated) for o in outs] == [False, False, True, False]
    assert not any(bool(o.terminated) for o in outs)
    assert float(outs[2].episode_return) == 3.0


def test_termination_keeps_true_final_obs():
    env = envs.make("probe_two_step")
    _, outs = _run(env, [jnp.zeros(1)] * 2, jax.random.split(jax.random.PRNGKey(1), 2))
    assert bool(outs[1].terminated) and not bool(outs[1].truncated)
    assert float(outs[1].final_obs[0]) == 1.0  # the true s_{t+1}
    assert float(outs[1].obs[0]) == 0.0  # the next episode's first observation


def test_autoreset_draws_a_fresh_start_from_the_step_key():
    env = envs.make("probe_observation")  # start observation is +-1 at random, one-step episodes
    state = env.reset(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(3), 64)
    step = jax.jit(env.step)  # one compiled step (op-by-op dispatch of 64 steps costs ~10 s of CPU)
    starts = []
    for k in keys:
        state, out = step(state, jnp.zeros(1), k)
        starts.append(float(out.obs[0]))
    assert set(starts) == {-1.0, 1.0}  # Brax's AutoResetWrapper would replay a single cached start


def test_autoreset_under_named_axes_matches_the_select_and_skips_unneeded_resets():
    """A batch vmapped over ENV_AXIS / SEED_AXIS branches on "some env ended": the same states as a plain vmap (which
    selects a reset computed at every step), and the reset runs only on steps where an env ended."""
    from rlland.seed_axis import ENV_AXIS, SEED_AXIS

    env = envs.make("probe_time_limit", episode_length=3)
    calls = []
    reset = env.reset

    def counted_reset(key):
        jax.debug.callback(lambda: calls.append(1))
        return reset(key)

    env.reset = counted_reset
    keys = jax.random.split(jax.random.PRNGKey(2), 4 * 2 * 2).reshape(4, 2, 2, 2)  # [step, seed, env, key]

    def run(vstep):
        state = jax.vmap(jax.vmap(reset))(keys[0])
        outs = []
        for k in keys:
            state, out = vstep(state, jnp.zeros((2, 2, 1)), k)
            outs.append(out)
        jax.effects_barrier()
        return outs

    plain = run(jax.jit(jax.vmap(jax.vmap(env.step))))
    plain_calls, calls[:] = len(calls), []
    named = run(jax.jit(jax.vmap(jax.vmap(env.step, axis_name=ENV_AXIS), axis_name=SEED_AXIS)))
    for a, b in zip(plain, named):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert [bool(o.truncated.any()) for o in named] == [False, False, True, False]
    # (a debug callback under vmap runs once per call of the batch)
    assert plain_calls == 4, "a plain vmap selects: the reset runs at every step"
    assert len(calls) == 1, "named axes: the reset runs only on the step where the episodes ended"


def test_fixed_start_and_random_start_on_brax():
    fixed = envs.make("hopper", fixed_start=True)
    a, b = fixed.reset(jax.random.PRNGKey(1)), fixed.reset(jax.random.PRNGKey(2))
    np.testing.assert_array_equal(a.obs, b.obs)
    rand = envs.make("hopper")
    assert not np.array_equal(rand.reset(jax.random.PRNGKey(1)).obs, rand.reset(jax.random.PRNGKey(2)).obs)
    assert (fixed.observation_size, fixed.action_size) == (11, 3)


def test_brax_metrics_of_the_step_taken_even_when_it_resets():
    """``Step.metrics`` are Brax's ``state.metrics`` of the stepped state (its reward terms), not of the fresh start
    that replaces it when the episode ends; probe tasks have none."""
    from brax import envs as brax_envs
    env = envs.make("hopper", episode_length=1)  # every step truncates and resets
    brax = brax_envs.get_environment("hopper", backend="spring")
    state, action = env.reset(jax.random.PRNGKey(1)), jnp.full((3,), 0.5)
    new, out = jax.jit(env.step)(state, action, jax.random.PRNGKey(2))
    expected = jax.jit(brax.step)(state.inner, action).metrics
    assert out.truncated and set(out.metrics) == set(expected) >= {"reward_forward", "reward_ctrl", "reward_healthy"}
    for k in expected:
        np.testing.assert_allclose(out.metrics[k], expected[k], rtol=1e-5, atol=1e-7)
    assert float(out.metrics["reward_ctrl"]) < 0.0 and float(new.inner.metrics["reward_ctrl"]) == 0.0
    assert envs.make("probe_constant").step(envs.make("probe_constant").reset(jax.random.PRNGKey(0)), jnp.zeros(1),
                                             jax.random.PRNGKey(1))[1].metrics == {}


def test_bad_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid names: .*hopper.*probe_constant"):
        envs.make("hoper")
    with pytest.raises(ValueError, match="valid backends: spring"):
        envs.make("hopper", backend="springy")


def test_wrong_action_shape_is_refused():
    env = envs.make("probe_constant")
    with pytest.raises(ValueError, match=r"expected a continuous action of shape \(1,\)"):
        env.step(env.reset(jax.random.PRNGKey(0)), jnp.zeros(2), jax.random.PRNGKey(1))


def test_replay_buffer_wraps_and_samples_only_valid_items():
    buf = ReplayBuffer.empty(5, {"x": jnp.zeros(())})
    buf = buf.add({"x": jnp.arange(3.0) + 1})
    assert int(buf.size) == 3 and int(buf.cursor) == 3
    assert set(np.asarray(buf.sample(jax.random.PRNGKey(0), 200)["x"]).tolist()) == {1.0, 2.0, 3.0}
    buf = buf.add({"x": jnp.arange(4.0) + 4})  # 4..7 overwrite the oldest slots
    assert int(buf.size) == 5 and int(buf.cursor) == 2
    np.testing.assert_array_equal(buf.data["x"], [6.0, 7.0, 3.0, 4.0, 5.0])
    with pytest.raises(ValueError, match="cannot add 6 items"):
        buf.add({"x": jnp.zeros(6)})


def test_replay_buffer_vmaps_over_seeds():
    bufs = jax.vmap(lambda _: ReplayBuffer.empty(4, {"x": jnp.zeros(())}))(jnp.arange(3))
    bufs = jax.vmap(lambda b, x: b.add({"x": x}))(bufs, jnp.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(bufs.size, [2, 2, 2])
    np.testing.assert_array_equal(bufs.data["x"][:, :2], [[0, 1], [2, 3], [4, 5]])


def test_memory_check_refuses_what_will_not_fit():
    with pytest.raises(ValueError, match="GiB but only"):
        check_fits(10 ** 15, "a huge buffer")
