"""ME-ES (rlland.qd.me_es): novelty and cell selection by hand on a tiny archive, the folded genome against the
normalised policy on the hopper, and tiny runs through the QD driver on the toy task of tests/qd_toy.py (QD score
rises, explore and exploit alternate, same seed -> same archive, an interrupted run resumes exactly, archived
genomes rescore). Kernels are compiled at XLA backend optimisation level 0 and shared through module-scoped
fixtures (the runs of one config hit the driver's build cache).

The driver runs use the toy task (patched in as ``driver.make_task``; the driver and ME-ES are unchanged): they
test ME-ES's logic and its state through the driver's checkpoints, which only call the task's interface
(``score`` with the observation normaliser, action noise and observation statistics, the genome layout). A
hopper rollout costs ~10 s of compile per kernel; the real task's normalised rollout is checked by
test_folded_genome_scores_like_normalised_policy, the driver on the hopper in tests/test_qd_driver.py."""
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rlland  # noqa: F401  (before any JAX computation)
from rlland import qd
from rlland.sinks import read_h5
from rlland.qd import driver, me_es

import qd_toy

_spec = importlib.util.spec_from_file_location(
    "qd_configs", os.path.join(os.path.dirname(__file__), "..", "configs", "qd.py"))
qd_configs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(qd_configs)

BATCH, STEPS, GENS = 16, 2, 9


def tiny_config():
    c = qd_configs.get_config("me_es/hopper/quick")
    c.task.update(name="toy", episode_length=30, hidden_sizes=(8, 8), random_init=False)  # deterministic starts
    c.archive.grid_shape = (10,)
    c.batch_size = BATCH
    c.total_evals = BATCH * GENS  # generation 0 (x0's evaluation + the first ES step) then 8 more
    c.generations_per_chunk = 1  # one history column per generation
    c.me_es.update(nb_consecutive_steps=STEPS, sigma=0.1)
    c.robustness.update(num_episodes=0, every_chunk=False)
    c.num_seeds = 2
    c.wandb.mode = "disabled"
    c.progress = False
    c.compiler_options = {"xla_backend_optimization_level": 0}
    return c


@pytest.fixture(scope="module", autouse=True)
def toy_driver():
    """The driver builds its task with `qd_toy.make_task` in this module (config.task.name = "toy")."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(driver, "make_task", qd_toy.make_task)
        yield


# ------------------------------------------------------------------------------------------------ by hand
@pytest.fixture(scope="module")
def tiny_archive():
    archive = qd.Archive.grid((10,), 0.0, 1.0, jnp.zeros(1))
    desc = jnp.array([[0.12], [0.31], [0.74]])
    archive, _ = archive.add(jnp.zeros((3, 1)), jnp.array([1.0, 3.0, 2.0]), desc)
    return archive


def test_novelty_by_hand(tiny_archive):
    a = tiny_archive
    # k = 2 nearest filled descriptors (0.12, 0.31, 0.74); empty cells are ignored
    got = me_es.novelty(jnp.array([[0.0], [0.5]]), a.descriptors, a.filled, k=2)
    np.testing.assert_allclose(got, [(0.12 + 0.31) / 2, (0.19 + 0.24) / 2], rtol=1e-5)
    # k larger than the archive: all 3 neighbours
    np.testing.assert_allclose(me_es.novelty(jnp.array([[0.0]]), a.descriptors, a.filled, k=10),
                               [(0.12 + 0.31 + 0.74) / 3], rtol=1e-5)
    # a cell's own novelty excludes itself
    nov = me_es.cell_novelty(a, k=2)
    cells = np.asarray(a.cell_index(jnp.array([[0.12], [0.31], [0.74]])))
    np.testing.assert_allclose(np.asarray(nov)[cells], [(0.19 + 0.62) / 2, (0.19 + 0.43) / 2, (0.43 + 0.62) / 2],
                               rtol=1e-5)
    assert np.all(np.asarray(nov)[np.setdiff1d(np.arange(10), cells)] == 0)


def test_selection_rules_by_hand(tiny_archive):
    a, key = tiny_archive, jax.random.PRNGKey(0)
    cells = np.asarray(a.cell_index(jnp.array([[0.12], [0.31], [0.74]])))
    nov = np.asarray(me_es.cell_novelty(a, k=10))[cells]
    p = np.asarray(me_es.selection_probs("novelty_bias", key, a, a.fitnesses, jnp.zeros(10, jnp.int32), 10))
    np.testing.assert_allclose(p[cells], 0.1 / 3 + 0.9 * nov / nov.sum(), rtol=1e-5)
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-6)
    # best2inlast5_or_best with fewer than 5 cells: the cell with the best training return
    best_train = jnp.full(10, -jnp.inf).at[cells].set(jnp.array([5.0, -2.0, 7.0]))
    p = np.asarray(me_es.selection_probs("best2inlast5_or_best", key, a, best_train, jnp.zeros(10, jnp.int32), 10))
    np.testing.assert_array_equal(p, np.eye(10)[cells[2]])


def test_best2inlast5_picks_among_two_best_recent():
    archive = qd.Archive.grid((10,), 0.0, 1.0, jnp.zeros(1))
    desc = jnp.arange(10, dtype=jnp.float32)[:, None] / 10 + 0.05
    archive, _ = archive.add(jnp.zeros((10, 1)), jnp.zeros(10), desc)
    best_train = jnp.array([9.0, 0, 0, 0, 0, 3.0, 1.0, 4.0, 2.0, 0.5])
    discovered = jnp.arange(10, dtype=jnp.int32)  # cell i discovered i-th: the last 5 are cells 5..9
    seen = set()
    for i in range(40):
        p = np.asarray(me_es.selection_probs("best2inlast5_or_best", jax.random.PRNGKey(i), archive, best_train,
                                             discovered, 10))
        seen.add(tuple(np.flatnonzero(p)))
        if len(np.flatnonzero(p)) == 2:  # proportional to b + 1 - min(b) = b + 1 among cells 7 and 5
            np.testing.assert_allclose(p[[5, 7]], np.array([4.0, 5.0]) / 9.0, rtol=1e-5)
    assert seen == {(0,), (5, 7)}  # the overall best, or the two best of the five last discovered


# ------------------------------------------------------------------------------------------------ folding
def test_folded_genome_scores_like_normalised_policy():
    task = qd.make_task("hopper", episode_length=40, hidden_sizes=(8, 8), random_init=True)
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(3), 4)
    theta = task.init_genomes(k1, 1)[0] * 2.0
    mean = jax.random.normal(k2, (task.obs_size,)) * 0.5
    std = jnp.exp(jax.random.normal(k3, (task.obs_size,)) * 0.5)
    folded = me_es.fold_genome(task, theta, mean, std)
    obs = jax.random.normal(k4, (5, task.obs_size))
    np.testing.assert_allclose(jax.vmap(lambda o: task.policy(folded, o))(obs),
                               jax.vmap(lambda o: task.policy(theta, (o - mean) / std))(obs), rtol=1e-5, atol=1e-6)
    score = jax.jit(lambda g, k, m, s: (task.score(g, k), task.score(g, k, obs_norm=(m, s))))
    (f_fold, d_fold, _), _ = score(folded[None], k4, mean, std)
    _, (f_norm, d_norm, _) = score(theta[None], k4, mean, std)
    np.testing.assert_allclose(f_fold, f_norm, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(d_fold, d_norm, atol=1e-6)


# ------------------------------------------------------------------------------------------------ runs
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("me_es")
    config = tiny_config()
    a = driver.run(config, run_dir=str(root / "a"))
    b = driver.run(config, run_dir=str(root / "b"))
    part = driver.run(config, run_dir=str(root / "r"), max_chunks=3)  # interrupted mid-chain ...
    assert not part.complete
    resumed = driver.run(config, run_dir=str(root / "r"))  # ... and resumed from its checkpoint
    return config, a, b, resumed


def test_me_es_raises_qd_score_and_counts_evals(runs):
    a = runs[1]
    data, _ = read_h5(os.path.join(a.run_dir, "qd.h5"))
    assert a.complete and data["generations"].tolist() == list(range(GENS + 1))
    np.testing.assert_array_equal(data["evaluations"], [list(range(0, BATCH * (GENS + 1), BATCH))] * 2)
    qd_score = data["qd_score"]
    assert np.all(qd_score[:, 1] > 0)  # x0 inserted at generation 0
    assert np.all(qd_score[:, -1] > qd_score[:, 1]), qd_score  # improved over the first generation
    # one archive evaluation per generation: at most one insertion each
    assert np.all(data["num_inserted"][:, 1:] <= 1) and np.all(data["num_inserted"][:, 1] == 1)
    assert np.all(np.isfinite(data["batch_max_fitness"][:, 2:]))


def test_explore_and_exploit_alternate(runs):
    a = runs[1]
    data, _ = read_h5(os.path.join(a.run_dir, "qd.h5"))
    gens = np.arange(GENS)
    # a new start cell every STEPS generations; the first chain exploits, then robin alternation
    np.testing.assert_array_equal(data["num_chains"][:, 1:], [(gens % STEPS == 0).astype(int)] * 2)
    expected = ((gens // STEPS) % 2).astype(float)
    np.testing.assert_array_equal(data["explore_fraction"][:, 2:], [expected[1:]] * 2)  # gen 0 is not averaged


def test_same_seed_same_archive(runs):
    _, a, b, _ = runs
    jax.tree.map(np.testing.assert_array_equal, a.state.algo.archive, b.state.algo.archive)
    np.testing.assert_array_equal(a.state.algo.theta, b.state.algo.theta)
    # the seeds differ from each other
    assert not np.array_equal(np.asarray(a.state.algo.theta[0]), np.asarray(a.state.algo.theta[1]))


def test_archived_genomes_are_plain_and_rescore(runs):
    """Archived genomes are plain task genomes (normaliser folded in): with deterministic starts, ``task.score``
    (no normaliser, no action noise) gives back every elite's archived fitness and descriptor."""
    config, a = runs[:2]
    task = driver.make_task(config)
    archive = jax.tree.map(lambda x: np.asarray(x)[0], a.state.algo.archive)  # seed 0
    cells = np.flatnonzero(archive.fitnesses > -np.inf)
    assert len(cells) >= 2
    f, d, _ = jax.jit(task.score)(jnp.asarray(archive.genotypes[cells]), jax.random.PRNGKey(7))
    np.testing.assert_allclose(f, archive.fitnesses[cells], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(d, archive.descriptors[cells], atol=1e-6)


def test_resume_reproduces_the_run(runs):
    _, a, _, resumed = runs
    assert resumed.complete
    jax.tree.map(np.testing.assert_array_equal, resumed.state.algo, a.state.algo)  # archive, theta, Adam, stats
    for k in ("qd_score", "num_inserted", "explore_fraction"):
        np.testing.assert_array_equal(resumed.history[k], a.history[k], err_msg=k)
