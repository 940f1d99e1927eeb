"""CMA-MEGA (ES) and CMA-MEGA (TD3, ES) (rlland.qd.cma_mega) on the toy task of tests/qd_toy.py: QD score rises
over the first generation, restarts when nothing can be added (with the CMA-ES reset), same seed -> same archive,
the TD3 objective row is the actor-loss gradient, the greedy actor is inserted before the CMA-ES solutions and
ranking ties go as pyribs 0.4 sorts them, configs build (the study's CMA-ES update by default, evosax's as an
option). One compiled kernel per variant (module fixtures), XLA backend optimisation level 0.

The task is the toy (a tanh-MLP genome steering a point; transitions for the critic like the hopper's): these are
tests of the algorithm's logic, which only calls the task's interface (score, policy, sizes). A hopper rollout
costs ~10 s of compile per kernel; the QD algorithms' real-env integration is in tests/test_qd_pga.py (PGA-ME,
the same genome-TD3 machinery) and tests/test_qd_driver.py."""
import functools
import importlib.util
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import qd
from rlland.buffers import Transition
from rlland.qd import driver
from rlland.qd.archive import NEW, NOT_ADDED, AddInfo
from rlland.qd.cma_mega import td3_objective_gradient
from rlland.qd.es import mirrored_noise, unit
from rlland.qd.genome_td3 import add_valid

import qd_toy

_spec = importlib.util.spec_from_file_location(
    "qd_configs", os.path.join(os.path.dirname(__file__), "..", "configs", "qd.py"))
qd_configs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(qd_configs)

GENS, SEEDS, CELLS = 5, 2, 8


def tiny_config(algo):
    c = qd_configs.get_config(f"{algo}/hopper/quick")
    c.task.update(name="toy", episode_length=25, hidden_sizes=(8, 8))  # the algorithms' settings, on the toy
    c.archive.grid_shape = (CELLS,)
    c.batch_size = 9
    c.cma_mega.update(mu=4, num_samples=10, num_critic_training_steps=20, pg_batch_size=512)
    c.pga.update(replay_buffer_size=4096, transitions_batch_size=64, critic_hidden_sizes=(16, 16))
    c.total_evals = 20 * 6
    return c


def _setup(algo):
    config = tiny_config(algo)
    task = qd_toy.make_task(config)
    algo_obj = driver.make_algo(task, config, functools.partial(qd.metrics, f_min=float(config.f_min)))
    lo, hi = task.descriptor_bounds
    empty = qd.Archive.grid((CELLS,), lo, hi, jnp.zeros(task.genome_size, jnp.float32))

    def run(archive, key):
        state = algo_obj.init_state(archive, key)

        def body(s, g):
            return algo_obj.generation(s, jax.random.fold_in(key, g), g == 0)

        return jax.lax.scan(body, state, jnp.arange(GENS))

    keys = jax.random.split(jax.random.PRNGKey(0), SEEDS)
    archives = jax.tree.map(lambda x: jnp.broadcast_to(x, (SEEDS,) + x.shape), empty)
    compiled = jax.jit(jax.vmap(run), compiler_options={"xla_backend_optimization_level": 0}).lower(
        archives, keys).compile()
    return config, task, algo_obj, compiled, archives, keys


@pytest.fixture(scope="module")
def es_setup():
    return _setup("cma_mega_es")


@pytest.fixture(scope="module")
def td3_setup():
    return _setup("cma_mega_td3_es")


def _check_improves(setup):
    config, _, algo_obj, compiled, archives, keys = setup
    assert algo_obj.evals_per_generation == 1 + 10 + 9
    state, m = compiled(archives, keys)
    qd_score = np.asarray(m["qd_score"])
    print(f"{config.algo}: qd_score per generation {qd_score.round(1).tolist()}, "
          f"restarts {np.asarray(m['num_restarts']).tolist()}")
    assert qd_score.shape == (SEEDS, GENS)
    assert np.all(qd_score[:, -1] > qd_score[:, 0])
    assert np.all(np.asarray(state.num_evals) == GENS * 20)
    assert np.all(np.asarray(state.generation) == GENS - 1)
    for k in algo_obj.sum_keys + algo_obj.mean_keys:
        assert m[k].shape == (SEEDS, GENS), k
    # theta is scored every generation and inserted unless beaten; num_inserted counts both phases
    assert np.all(np.asarray(m["num_inserted"]) <= 1 + config.batch_size)
    return state, m


def test_cma_mega_es_improves_and_is_deterministic(es_setup):
    _, _, _, compiled, archives, keys = es_setup
    state, _ = _check_improves(es_setup)
    again, _ = compiled(archives, keys)
    jax.tree.map(np.testing.assert_array_equal, again.archive, state.archive)
    # different seeds explore differently
    assert not np.array_equal(np.asarray(state.archive.fitnesses[0]), np.asarray(state.archive.fitnesses[1]))


def test_cma_mega_es_restarts_when_nothing_can_be_added(es_setup):
    """Every cell holds an unbeatable elite: no emitted solution is added, so every generation restarts,
    theta jumps to an elite and the coefficient CMA-ES is reset to its initial state."""
    _, task, algo_obj, compiled, archives, keys = es_setup
    mega = algo_obj.generation.__self__
    elites = jax.random.normal(jax.random.PRNGKey(7), (SEEDS, CELLS, task.genome_size))
    full = archives.replace(genotypes=elites, fitnesses=jnp.full((SEEDS, CELLS), 1e9, jnp.float32),
                            added_at=jnp.zeros((SEEDS, CELLS), jnp.int32))
    state, m = compiled(full, keys)
    assert np.all(np.asarray(m["num_inserted"]) == 0) and np.all(np.asarray(m["num_added_emitted"]) == 0)
    assert np.all(np.asarray(m["num_restarts"]) == 1)
    assert np.all(np.asarray(state.num_restarts) == GENS)
    fresh = mega.cmaes.init()
    for s in range(SEEDS):
        jax.tree.map(np.testing.assert_array_equal, jax.tree.map(lambda x: x[s], state.cmaes), fresh)
        assert np.any(np.all(np.asarray(state.theta[s]) == np.asarray(elites[s]), axis=1))  # theta is an elite
    # in the ordinary run the CMA-ES is not reset every generation (its step size moves)
    _, m_free = compiled(archives, keys)
    assert np.any(np.asarray(m_free["num_restarts"]) == 0)


def test_cma_mega_td3_es_improves(td3_setup):
    state, m = _check_improves(td3_setup)
    assert np.all(np.asarray(m["critic_loss"])[:, 0] == 0)  # no critic training in generation 0
    assert np.all(np.asarray(m["critic_loss"])[:, 1:] > 0)
    assert np.all(np.asarray(state.buffer.size) > 0)
    greedy = np.asarray(m["greedy_fitness"])
    assert np.all(np.isfinite(greedy))


def test_td3_objective_row_is_the_actor_loss_gradient(td3_setup):
    _, task, algo_obj, _, archives, keys = td3_setup
    mega = algo_obj.generation.__self__
    n, num = 300, mega.config.num_samples
    k_obs, k_act, k_theta, k_jac = jax.random.split(jax.random.PRNGKey(11), 4)
    k_random, k_pg = jax.random.split(k_jac)
    eps = mirrored_noise(jax.random.PRNGKey(2), num, task.genome_size)
    f, d = jnp.arange(num, dtype=jnp.float32), jnp.linspace(0, 1, num)[:, None]

    @jax.jit
    def compute(archive, key):
        state = mega.init_state(archive, key)
        obs = jax.random.normal(k_obs, (n, task.obs_size))
        items = Transition(obs=obs, action=jax.random.uniform(k_act, (n, task.action_size), minval=-1, maxval=1),
                           reward=jnp.ones(n), next_obs=obs, terminated=jnp.zeros(n))
        theta = state.theta + 0.1 * jax.random.normal(k_theta, state.theta.shape)
        state = state.replace(buffer=add_valid(state.buffer, items, jnp.ones(n, bool)), theta=theta)
        critic = state.td3["critic"]
        batch = state.buffer.sample(k_pg, mega.config.pg_batch_size)

        def actor_loss(g):  # -mean Q1(s, pi_g(s)), written out
            q = mega.td3.critic.apply(critic, batch.obs, jax.vmap(task.policy, (None, 0))(g, batch.obs))
            return -jnp.mean(q[..., 0])

        expected = jax.grad(actor_loss)(theta)
        got = td3_objective_gradient(mega.td3, critic, state.buffer, theta, k_pg, mega.config.pg_batch_size)
        jac = mega.jacobian(state, eps, f, d, k_jac, False)
        jac0 = mega.jacobian(state, eps, f, d, k_jac, True)  # generation 0: random-normal objective row
        return expected, got, jac, jac0, theta

    expected, got, jac, jac0, theta = compute(jax.tree.map(lambda x: x[0], archives), keys[0])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert float(jnp.linalg.norm(expected)) > 0
    # the jacobian's objective row is its unit vector; the measure rows are ES estimates
    assert jac.shape == (2, task.genome_size)
    np.testing.assert_allclose(jac[0], unit(expected), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(jnp.linalg.norm(jac, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(jac0[0], unit(jax.random.normal(k_random, theta.shape)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jac0[1], jac[1])


def test_rank_sorts_status_value_index_descending_as_pyribs():
    """pyribs 0.4 / dqd-rl: ``ranking_data.sort(reverse=True)`` over ``(status, value, i)`` tuples, so equal
    (status, value) pairs put the LATER solution first."""
    mega = qd.CMAMEGA(types.SimpleNamespace(descriptor_size=1), qd.CMAMEGAConfig(batch_size=40, mu=10))
    rng = np.random.default_rng(0)
    status = rng.integers(0, 3, 40)
    value = rng.choice([-1.5, 0.0, 2.0, 3.25], 40).astype(np.float32)  # a few values: many ties
    value[:3] = -np.inf  # dropped candidates (NOT_ADDED, -inf) rank last
    status[:3] = NOT_ADDED
    info = AddInfo(status=jnp.asarray(status, jnp.int32), value=jnp.asarray(value), inserted=jnp.zeros(40, bool),
                   cell=jnp.zeros(40, jnp.int32), valid=jnp.ones(40, bool))
    expected = [i for _, _, i in sorted(zip(status.tolist(), value.tolist(), range(40)), reverse=True)]
    assert np.asarray(mega.rank(info)).tolist() == expected
    assert expected[-3:] == [2, 1, 0]


def test_greedy_actor_is_inserted_before_the_cma_es_solutions(td3_setup, es_setup):
    """The study inserts the greedy TD3 actor first: a CMA-ES solution in the greedy actor's (empty) cell is then
    compared with it (here NOT_ADDED) instead of being NEW; the ranking reads the 8 solutions only."""
    _, task, algo_obj, _, archives, _ = td3_setup
    mega = algo_obj.generation.__self__
    assert mega.config.population_size == 8
    thetas = jnp.arange(8.0)[:, None] * jnp.ones((8, task.genome_size))
    greedy = jnp.full((task.genome_size,), -1.0)
    batch = mega.emission_batch(types.SimpleNamespace(td3={"actor": greedy}), thetas)
    np.testing.assert_array_equal(batch, jnp.concatenate([greedy[None], thetas]))
    f = jnp.array([5.0, 3.0, 3.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    d = jnp.array([0.05, 0.05, 0.5, 0.5, 0.95, 0.95, 0.95, 0.95, 0.95])[:, None]  # cells 0, 0, 4, 4, 7...
    archive, info = jax.tree.map(lambda x: x[0], archives).add(batch, f, d)
    mine = mega.emitted_info(info)
    assert info.status.tolist() == [NEW, NOT_ADDED, NEW, NOT_ADDED, NEW] + [NOT_ADDED] * 4
    assert mine.value.tolist() == [-2.0, 3.0, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    # NEW (3.0) > NEW (0.0) > NOT_ADDED ties at 0.0, later first > NOT_ADDED ties at -2.0, later first
    assert np.asarray(mega.rank(mine)).tolist() == [1, 3, 7, 6, 5, 4, 2, 0]
    np.testing.assert_array_equal(archive.genotypes[0], greedy)
    es_mega = es_setup[2].generation.__self__  # CMA-MEGA (ES): the batch is the solutions alone
    np.testing.assert_array_equal(es_mega.emission_batch(None, thetas[:es_mega.config.population_size]),
                                  thetas[:es_mega.config.population_size])


def test_configs():
    for algo in ("cma_mega_es", "cma_mega_td3_es"):
        c = qd_configs.get_config(f"{algo}/hopper")
        assert c.batch_size == 99 and c.cma_mega.num_samples == 100 and c.cma_mega.mu == 49
        assert c.cma_mega.sample_sigma == 0.02 and c.cma_mega.num_critic_training_steps == 600
        assert c.cma_mega.pg_batch_size == 65_536 and c.total_evals // 200 == 5000
        q = qd_configs.get_config(f"{algo}/hopper/quick")
        assert q.total_evals % (1 + q.cma_mega.num_samples + q.batch_size) == 0
    mega_cfg = qd.cma_mega.mega_config(qd_configs.get_config("cma_mega_td3_es/hopper"), td3=True)
    assert mega_cfg.population_size == 98 and mega_cfg.evals_per_generation == 200
    assert not mega_cfg.abs_objective and mega_cfg.restart_rule == "no_improvement"
    assert mega_cfg.cma_es_update == "dqd_rl"  # the study's CMA-ES; evosax's as an option
    c = qd_configs.get_config("cma_mega_es/hopper")
    c.cma_mega.cma_es_update = "evosax"
    assert qd.cma_mega.mega_config(c, td3=False).cma_es_update == "evosax"
    c.cma_mega.cma_es_update = "pycma"
    with pytest.raises(ValueError, match="cma_es_update must be one of dqd_rl, evosax"):
        qd.cma_mega.mega_config(c, td3=False)
