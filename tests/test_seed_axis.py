"""seed_cond: lax.cond semantics per seed, and the expensive branch skipped when no seed takes it."""
import jax
import jax.numpy as jnp
import numpy as np

from rlland.seed_axis import ENV_AXIS, SEED_AXIS, any_over_seeds, seed_cond


def _gate(calls):
    def true_fn(x):
        jax.debug.callback(lambda: calls.append(1))
        return {"y": x * 2.0, "n": jnp.ones((), jnp.int32)}

    def false_fn(x):
        return {"y": x - 1.0, "n": jnp.zeros((), jnp.int32)}

    return lambda pred, x: seed_cond(pred, true_fn, false_fn, x)


def test_seed_cond_matches_cond_per_seed_and_skips_the_branch_no_seed_takes():
    calls = []
    gate = _gate(calls)
    x = jnp.arange(3.0)
    named = jax.jit(jax.vmap(gate, axis_name=SEED_AXIS))
    mixed = named(jnp.array([True, False, True]), x)
    np.testing.assert_array_equal(mixed["y"], [0.0, 0.0, 4.0])
    np.testing.assert_array_equal(mixed["n"], [1, 0, 1])
    jax.effects_barrier()
    assert calls, "some seed takes the true branch: it must run"
    calls.clear()
    none = named(jnp.zeros(3, bool), x)
    jax.effects_barrier()
    np.testing.assert_array_equal(none["y"], x - 1.0)
    assert not calls, "no seed takes the true branch: under the named seed axis it must not run"
    # unnamed vmap and no vmap: plain lax.cond semantics
    np.testing.assert_array_equal(jax.vmap(gate)(jnp.array([True, False, True]), x)["y"], mixed["y"])
    assert float(gate(jnp.array(False), jnp.array(5.0))["y"]) == 4.0


def test_any_over_several_axes_reduces_each_bound_one():
    pred = jnp.array([[False, False], [False, True]])  # [seed, env]
    inner = jax.vmap(lambda p: any_over_seeds(p, (ENV_AXIS, SEED_AXIS)), axis_name=ENV_AXIS)
    both = jax.vmap(inner, axis_name=SEED_AXIS)(pred)
    np.testing.assert_array_equal(both, jnp.ones((2, 2), bool))  # one env of one seed: true for all
    env_only = jax.vmap(inner)(pred)  # seed axis unnamed: reduced over the envs of each seed only
    np.testing.assert_array_equal(env_only, [[False, False], [True, True]])
