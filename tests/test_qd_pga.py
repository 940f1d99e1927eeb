"""PGA-ME (rlland.qd.pga): masked replay insertion, PG variation ascends Q1, and on a short hopper task: the QD
score rises over the initial archive, the same seed gives the same archive, the state checkpoints exactly; on a
cheap toy task (tests/qd_toy.py): vmap over 2 seeds equals 2 single runs.

Compile budget: one Brax program (3 seeds vmapped, shared by the hopper tests) and two small toy programs, all
compiled at XLA backend optimisation level 0 (about half the CPU compile time; these runs are tiny)."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import qd
from rlland.buffers import ReplayBuffer
from rlland.qd.genome_td3 import add_valid
from rlland.qd.pga import PGAME, PGAConfig, PGAHParams

from qd_toy import ToyTask

T, POP, GENS = 50, 16, 5
F_MIN = -float(T)
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def make_run(task, grid, config, hparams):
    pga = PGAME(task, config, metrics_fn=functools.partial(qd.metrics, f_min=F_MIN))

    def run(key):
        k0, k1, k2 = jax.random.split(key, 3)
        archive = qd.Archive.grid(grid, 0.0, 1.0, jnp.zeros(task.genome_size))
        genomes = task.init_genomes(k0, config.batch_size)
        state, m0 = pga.init(archive, genomes * 3.0 if task.name == "hopper" else genomes, k1, hparams)
        state, ms = pga.chunk(state, k2, GENS)
        return state, m0, ms

    return pga, run


# ----------------------------------------------------------------------------------------------- cheap pieces
def test_add_valid_stores_only_valid_items_in_order():
    buf = ReplayBuffer.empty(7, {"x": jnp.zeros(2)})
    items = {"x": jnp.stack([jnp.arange(5.0), -jnp.arange(5.0)], 1).at[1].set(jnp.nan)}
    valid = jnp.array([True, False, True, True, False])
    buf = add_valid(buf, items, valid)
    assert int(buf.size) == 3 and int(buf.cursor) == 3
    np.testing.assert_array_equal(buf.data["x"][:3, 0], [0.0, 2.0, 3.0])
    assert bool(jnp.all(jnp.isfinite(buf.data["x"])))  # the NaN (invalid) item was never written
    buf = add_valid(buf, {"x": jnp.full((5, 2), 9.0)}, jnp.array([True] * 5))  # wraps: 3 + 5 > 7
    assert int(buf.size) == 7 and int(buf.cursor) == 1
    np.testing.assert_array_equal(buf.data["x"][:, 0], [9.0, 2.0, 3.0, 9.0, 9.0, 9.0, 9.0])
    with pytest.raises(ValueError, match="capacity"):
        add_valid(buf, {"x": jnp.zeros((8, 2))}, jnp.ones(8, bool))


def test_config_defaults_and_validation():
    c = PGAConfig()
    assert (c.batch_size, c.num_ga, c.num_pg) == (100, 50, 49)  # study: 50 GA + 49 PG + 1 greedy
    assert (c.num_critic_training_steps, c.num_pg_training_steps, c.replay_buffer_size) == (300, 10, 1_000_000)
    assert (c.transitions_batch_size, c.critic_hidden_sizes, c.policy_delay) == (256, (256, 256), 2)
    p = PGAHParams()
    assert (p.critic_learning_rate, p.greedy_learning_rate, p.policy_learning_rate) == (3e-4, 3e-4, 1e-3)
    assert (p.iso_sigma, p.line_sigma, p.policy_noise, p.noise_clip, p.gamma, p.tau) == (
        0.005, 0.05, 0.2, 0.5, 0.99, 0.005)
    with pytest.raises(ValueError, match="multiple of policy_delay"):
        PGAConfig(num_critic_training_steps=301)
    with pytest.raises(ValueError, match="greedy actor"):
        PGAConfig(batch_size=4, proportion_ga=1.0)
    with pytest.raises(ValueError, match="proportion_ga"):
        PGAConfig(proportion_ga=1.5)
    with pytest.raises(TypeError, match="PGAConfig"):
        PGAME(ToyTask(), {"batch_size": 4})


# ----------------------------------------------------------------------------------------------- hopper
SMALL = PGAConfig(batch_size=POP, num_critic_training_steps=20, num_pg_training_steps=3,
                  replay_buffer_size=POP * T * (GENS + 1), transitions_batch_size=64, critic_hidden_sizes=(32, 32))


@pytest.fixture(scope="module")
def hopper_pga():
    task = qd.make_task("hopper", episode_length=T, hidden_sizes=(8, 8))
    pga, run = make_run(task, (10,), SMALL, PGAHParams(iso_sigma=0.05, line_sigma=0.1))
    k0, k1 = jax.random.split(jax.random.PRNGKey(3))
    keys = jnp.stack([k0, k1, k0])  # seed 0 twice: same seed -> same archive, and no cross-seed leakage
    out = jax.jit(jax.vmap(run), compiler_options=FAST_COMPILE)(keys)
    return task, pga, out


def test_pga_me_raises_qd_score_on_hopper(hopper_pga):
    task, pga, (state, m0, ms) = hopper_pga
    for s in range(2):
        assert float(ms["qd_score"][s, -1]) > float(m0["qd_score"][s]), (m0["qd_score"], ms["qd_score"])
        assert bool(jnp.all(jnp.diff(ms["qd_score"][s]) >= 0))
    assert state.generation.tolist() == [GENS] * 3
    assert state.num_evals.tolist() == [POP * (GENS + 1)] * 3
    np.testing.assert_array_equal(ms["num_inserted_ga"] + ms["num_inserted_pg"] + ms["greedy_inserted"],
                                  ms["num_inserted"])
    assert int(ms["num_inserted_pg"].sum()) > 0  # policy-gradient offspring reach the archive
    # the critic trained: finite losses, updates counted, greedy actor moved away from its target
    assert bool(jnp.all(jnp.isfinite(ms["critic_loss"]))) and bool(jnp.all(ms["critic_loss"] > 0))
    assert state.critic_updates.tolist() == [GENS * SMALL.num_critic_training_steps] * 3
    assert float(jnp.abs(state.td3["actor"] - state.td3["target_actor"]).max()) > 0
    np.testing.assert_array_equal(ms["greedy_fitness"][:, -1] > -jnp.inf, True)
    # the buffer holds only valid (pre-termination) steps: finite data, at most T per episode, untouched tail
    size = np.asarray(state.buffer.size)
    assert np.all((size > POP) & (size <= POP * T * (GENS + 1)))
    np.testing.assert_array_equal(ms["buffer_size"][:, -1], size)
    for s in range(2):
        obs = np.asarray(state.buffer.data.obs[s])
        assert np.all(np.isfinite(obs[:size[s]])) and np.all(obs[size[s]:] == 0)
        assert set(np.unique(state.buffer.data.terminated[s])) <= {0.0, 1.0}


def test_pga_me_same_seed_same_archive(hopper_pga):
    _, _, (state, m0, ms) = hopper_pga
    row = lambda tree, i: jax.tree.map(lambda x: x[i], tree)  # noqa: E731
    jax.tree.map(np.testing.assert_array_equal, row(state, 2), row(state, 0))
    jax.tree.map(np.testing.assert_array_equal, row(ms, 2), row(ms, 0))
    assert not np.array_equal(state.archive.fitnesses[0], state.archive.fitnesses[1])  # another seed differs


def test_pg_variation_ascends_q1(hopper_pga):
    _, pga, (state, _, _) = hopper_pga
    one = jax.tree.map(lambda x: x[0], state)
    parent = one.archive.genotypes[jnp.argmax(one.archive.fitnesses)]
    batch = one.buffer.sample(jax.random.PRNGKey(0), 2048)

    @jax.jit
    def q1_gain(lr):
        hparams = one.hparams.replace(policy_learning_rate=lr)
        child = pga.pg_variation(one.td3["critic"], one.buffer, parent, jax.random.PRNGKey(1), hparams)
        q1 = lambda g: -pga.td3.actor_loss({"actor": g, "critic": one.td3["critic"]}, batch, None, {})[0]  # noqa
        return q1(child) - q1(parent), jnp.abs(child - parent).max()

    gain, moved = q1_gain(jnp.float32(1e-3))
    assert float(moved) > 0 and float(gain) > 0, (gain, moved)
    gain0, moved0 = q1_gain(jnp.float32(0.0))  # the learning rate is traced: 0 leaves the genome unchanged
    assert float(moved0) == 0.0 and abs(float(gain0)) < 1e-6


def test_pga_state_checkpoints_exactly(hopper_pga, tmp_path):
    from rlland.checkpoint import Checkpoints

    _, _, (state, _, _) = hopper_pga
    ckpts = Checkpoints(str(tmp_path))
    ckpts.save(GENS, state, {"x": np.arange(3)})
    step, restored, host = ckpts.restore_latest(jax.eval_shape(lambda: state))
    assert step == GENS and host["x"].tolist() == [0, 1, 2]
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    jax.tree.map(np.testing.assert_array_equal, restored, state)


# ----------------------------------------------------------------------------------------------- toy task
def test_pga_me_vmap_over_seeds_equals_single_runs():
    task = ToyTask()
    config = dataclasses.replace(SMALL, batch_size=8, replay_buffer_size=8 * 8 * (GENS + 1),
                                 transitions_batch_size=32, critic_hidden_sizes=(16,))
    _, run = make_run(task, (4, 4), config, PGAHParams())
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    vstate, _, vms = jax.jit(jax.vmap(run), compiler_options=FAST_COMPILE)(keys)
    single = jax.jit(run, compiler_options=FAST_COMPILE)
    for i in range(2):
        s, _, ms = single(keys[i])
        np.testing.assert_array_equal(vstate.archive.filled[i], s.archive.filled)
        np.testing.assert_array_equal(vstate.archive.added_at[i], s.archive.added_at)
        np.testing.assert_allclose(vstate.archive.fitnesses[i], s.archive.fitnesses, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(vstate.archive.genotypes[i], s.archive.genotypes, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(vstate.td3["actor"][i], s.td3["actor"], rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(vstate.buffer.size[i], s.buffer.size)
        np.testing.assert_allclose(vms["qd_score"][i], ms["qd_score"], rtol=1e-5)
    assert vms["num_inserted_pg"].sum() > 0
