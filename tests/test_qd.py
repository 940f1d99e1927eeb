"""Tests for rlland.qd: archive insertion vs a naive loop, tessellations, metrics, emitters, MAP-Elites, Brax tasks."""
import dataclasses
import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import qd
from rlland.qd.archive import IMPROVE_EXISTING, NEW, NOT_ADDED


# ----------------------------------------------------------------------------------------------- helpers
def naive_add(arch, geno, fit, desc, *, centroids, lo, hi, step, offset=0.0, mode="sequential"):
    """Reference: insert candidates one by one in batch order (pyribs 0.4 semantics), numpy float64.

    ``arch`` = dict(fit (C,), desc (C, m), geno (C, k), added (C,)), modified in place. ``mode="batch"``
    compares every candidate with the archive before the batch (statuses only; insertion stays sequential).
    """
    fit, desc = np.asarray(fit, np.float64), np.asarray(desc, np.float64)
    num_cells = len(arch["fit"])
    before = arch["fit"].copy()
    owner = np.full(num_cells, -1)
    status, value, cells = [], [], []
    for i in range(len(fit)):
        f, d = fit[i], desc[i]
        if not np.isfinite(f) or np.any(np.isnan(d)) or np.any(d < lo) or np.any(d > hi):
            status.append(NOT_ADDED), value.append(-np.inf), cells.append(num_cells)
            continue
        c = int(np.argmin(np.sum((centroids - d) ** 2, axis=1)))
        cells.append(c)
        inc = arch["fit"][c] if mode == "sequential" else before[c]
        if inc == -np.inf:
            status.append(NEW), value.append(f - offset)
        elif f > inc:
            status.append(IMPROVE_EXISTING), value.append(f - inc)
        else:
            status.append(NOT_ADDED), value.append(f - inc)
        if f > arch["fit"][c]:
            arch["fit"][c], arch["desc"][c], arch["geno"][c], arch["added"][c] = f, d, geno[i], step
            owner[c] = i
    inserted = np.zeros(len(fit), bool)
    inserted[owner[owner >= 0]] = True
    return np.array(status), np.array(value), inserted, np.array(cells)


def random_batch(rng, batch, m):
    fit = rng.randint(0, 4, batch).astype(np.float64)  # small integer set: many ties
    fit[rng.rand(batch) < 0.08] = np.nan
    fit[rng.rand(batch) < 0.04] = -np.inf
    fit[rng.rand(batch) < 0.04] = np.inf
    desc = rng.uniform(-0.15, 1.15, (batch, m))  # some out of [0, 1]
    desc[rng.rand(batch) < 0.05, 0] = np.nan
    return fit, desc


def toy_score(genotypes, key):
    """Cheap deterministic 'task': descriptor = sigmoid of the first two genes, fitness = -||x - 1||^2."""
    del key
    return -jnp.sum((genotypes - 1.0) ** 2, axis=-1), jax.nn.sigmoid(3.0 * genotypes[:, :2]), {}


# ----------------------------------------------------------------------------------------------- tessellations
def test_grid_centroids_and_index_are_consistent():
    shape, lo, hi = (3, 4, 5), np.array([0.0, -1.0, 2.0]), np.array([1.0, 1.0, 4.0])
    c = qd.grid_centroids(shape, lo, hi)
    assert c.shape == (60, 3)
    np.testing.assert_array_equal(qd.grid_index(c, shape, lo, hi), np.arange(60))
    np.testing.assert_allclose(c[0], lo + (hi - lo) / np.array(shape) / 2, rtol=1e-6)
    np.testing.assert_allclose(c[-1], hi - (hi - lo) / np.array(shape) / 2, rtol=1e-6)
    pts = jax.random.uniform(jax.random.PRNGKey(0), (500, 3), minval=lo, maxval=hi)
    np.testing.assert_array_equal(qd.grid_index(pts, shape, lo, hi), qd.nearest_centroid(pts, c))
    # upper bound belongs to the last cell, row-major order
    assert int(qd.grid_index(jnp.array([hi]), shape, lo, hi)[0]) == 59
    assert int(qd.grid_index(jnp.array([[0.0, -1.0, 3.99]]), shape, lo, hi)[0]) == 4
    # fractions k / 1000 in float32 land in cell k thanks to pyribs' epsilon (the study's hopper: 1000 steps,
    # 1000 cells); without it 251 / 1000 -> 0.25099999 would fall in cell 250
    fracs = np.arange(1001, dtype=np.float32) / np.float32(1000)
    np.testing.assert_array_equal(qd.grid_index(fracs[:, None], (1000,), 0.0, 1.0), np.minimum(np.arange(1001), 999))
    with pytest.raises(ValueError, match="maxval > minval"):
        qd.grid_centroids((2,), 1.0, 0.0)


def test_cvt_centroids_spread_and_deterministic():
    key, other = jax.random.PRNGKey(3), jax.random.PRNGKey(4)
    # one compiled kernel, vmapped over keys: (key, key, other)
    cs = jax.jit(jax.vmap(lambda k: qd.cvt_centroids(16, 2, 0.0, 1.0, k, num_samples=2000, num_iters=20)))(
        jnp.stack([key, key, other]))
    assert cs.shape == (3, 16, 2)
    assert bool(jnp.all((cs >= 0.0) & (cs <= 1.0)))
    np.testing.assert_array_equal(cs[0], cs[1])  # same key -> same centroids
    assert float(jnp.abs(cs[0] - cs[2]).max()) > 1e-3
    samples = jax.random.uniform(jax.random.PRNGKey(5), (4000, 2))
    for c in (cs[0], cs[2]):
        counts = np.bincount(np.asarray(qd.nearest_centroid(samples, c)), minlength=16)
        assert counts.min() > 0.25 * 4000 / 16, counts  # every cell gets a fair share, none empty
    with pytest.raises(ValueError, match="num_samples"):
        qd.cvt_centroids(100, 2, 0.0, 1.0, key, num_samples=50)


# ----------------------------------------------------------------------------------------------- archive
@pytest.mark.parametrize("kind", ["grid", "cvt"])
@pytest.mark.parametrize("mode", ["sequential", "batch"])
def test_add_matches_naive_loop(kind, mode):
    rng = np.random.RandomState(0 if kind == "grid" else 1)
    m, batch, k = 2, 48, 3
    like = {"w": jnp.zeros(k), "id": jnp.zeros((), jnp.int32)}
    if kind == "grid":
        archive = qd.Archive.grid((3, 3), 0.0, 1.0, like)
    else:
        archive = qd.Archive.empty(jnp.asarray(rng.rand(7, m), jnp.float32), like, minval=0.0, maxval=1.0)
    centroids = np.asarray(archive.centroids, np.float64)
    ref = dict(fit=np.full(archive.num_cells, -np.inf), desc=np.zeros((archive.num_cells, m)),
               geno=np.zeros((archive.num_cells, k)), added=np.full(archive.num_cells, -1))
    add = jax.jit(lambda a, g, f, d, s: a.add(g, f, d, step=s, new_cell_offset=0.5, status_mode=mode))
    for rnd in range(4):
        fit, desc = random_batch(rng, batch, m)
        ids = np.arange(batch) + 1000 * rnd
        geno = {"w": jnp.asarray(rng.randn(batch, k), jnp.float32), "id": jnp.asarray(ids, jnp.int32)}
        desc32 = np.asarray(desc, np.float32)
        status, value, inserted, cells = naive_add(
            ref, np.asarray(geno["w"]), fit, desc32.astype(np.float64), centroids=centroids, lo=0.0, hi=1.0,
            step=rnd, offset=0.5, mode=mode)
        archive, info = add(archive, geno, jnp.asarray(fit, jnp.float32), jnp.asarray(desc32), rnd)
        np.testing.assert_array_equal(info.cell, cells)
        np.testing.assert_array_equal(info.status, status)
        np.testing.assert_allclose(info.value, value, rtol=1e-6)
        np.testing.assert_array_equal(info.inserted, inserted)
        np.testing.assert_array_equal(archive.fitnesses, ref["fit"])
        np.testing.assert_array_equal(archive.added_at, ref["added"])
        filled = np.isfinite(ref["fit"])
        np.testing.assert_allclose(np.asarray(archive.genotypes["w"])[filled], ref["geno"][filled], rtol=1e-6)
        np.testing.assert_allclose(np.asarray(archive.descriptors)[filled], ref["desc"][filled], rtol=1e-6)
        # the stored id is the lowest-index candidate among a cell's best (ties: lowest batch index)
        written = np.asarray(info.cell)[np.asarray(info.inserted)]
        assert len(set(written.tolist())) == len(written)
        np.testing.assert_array_equal(np.asarray(archive.genotypes["id"])[written], ids[np.asarray(info.inserted)])
    assert 0 < int(archive.num_elites) <= archive.num_cells


def test_add_ties_and_strict_improvement():
    archive = qd.Archive.grid((2,), 0.0, 1.0, jnp.zeros(()))
    d = jnp.array([[0.1], [0.2], [0.3], [0.9]])
    archive, info = archive.add(jnp.array([0.0, 1.0, 2.0, 3.0]), jnp.array([5.0, 7.0, 7.0, 1.0]), d)
    assert archive.genotypes.tolist() == [1.0, 3.0]  # tie 7 vs 7: lowest batch index wins
    assert info.status.tolist() == [NEW, IMPROVE_EXISTING, NOT_ADDED, NEW]
    assert info.inserted.tolist() == [False, True, False, True]
    # an equal fitness does not replace the incumbent; NaN, out-of-range, -inf and +inf are dropped
    archive, info = archive.add(jnp.array([9.0, 9.0, 9.0, 9.0, 9.0]), jnp.array([7.0, jnp.nan, 9.0, -jnp.inf, jnp.inf]),
                                jnp.array([[0.4], [0.8], [1.5], [0.7], [0.1]]))
    assert archive.genotypes.tolist() == [1.0, 3.0] and archive.fitnesses.tolist() == [7.0, 1.0]
    assert info.valid.tolist() == [True, False, False, False, False]
    assert info.cell.tolist() == [0, 2, 2, 2, 2]
    assert info.value.tolist() == [0.0, -np.inf, -np.inf, -np.inf, -np.inf]
    assert info.status.tolist() == [NOT_ADDED] * 5
    # out_of_bounds="clip" keeps out-of-range descriptors in the border cell (pyribs GridArchive)
    clip = qd.Archive.grid((2,), 0.0, 1.0, jnp.zeros(()), out_of_bounds="clip")
    clip, info = clip.add(jnp.array([4.0]), jnp.array([2.0]), jnp.array([[1.5]]))
    assert info.cell.tolist() == [1] and clip.genotypes.tolist() == [0.0, 4.0]


def test_add_rejects_bad_shapes():
    archive = qd.Archive.grid((2, 2), 0.0, 1.0, jnp.zeros(3))
    with pytest.raises(ValueError, match="descriptors"):
        archive.add(jnp.zeros((4, 3)), jnp.zeros(4), jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="genotypes leaf"):
        archive.add(jnp.zeros((4, 2)), jnp.zeros(4), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="status_mode"):
        archive.add(jnp.zeros((4, 3)), jnp.zeros(4), jnp.zeros((4, 2)), status_mode="bogus")
    with pytest.raises(ValueError, match="grid_shape"):
        qd.Archive.empty(qd.grid_centroids((2, 2), 0, 1), jnp.zeros(3), grid_shape=(3, 2), minval=0, maxval=1)


def test_extras_metadata_stored():
    archive = qd.Archive.grid((4,), 0.0, 1.0, jnp.zeros(2), extras_like={"length": jnp.zeros((), jnp.int32)})
    archive, _ = archive.add(jnp.ones((2, 2)), jnp.array([1.0, 2.0]), jnp.array([[0.1], [0.9]]), step=7,
                             extras={"length": jnp.array([10, 20], jnp.int32)})
    assert archive.extras["length"].tolist() == [10, 0, 0, 20]
    assert archive.added_at.tolist() == [7, -1, -1, 7]
    with pytest.raises(ValueError, match="extras"):
        archive.add(jnp.ones((1, 2)), jnp.array([1.0]), jnp.array([[0.1]]))


def test_sample_returns_only_filled_cells():
    archive = qd.Archive.grid((16,), 0.0, 1.0, jnp.zeros(()))
    d = jnp.array([[0.01], [0.5], [0.99]])
    archive, _ = archive.add(jnp.array([10.0, 20.0, 30.0]), jnp.array([1.0, 2.0, 3.0]), d)
    cells = archive.sample_indices(jax.random.PRNGKey(0), 3000)
    assert set(np.asarray(cells).tolist()) == {0, 8, 15}
    counts = np.bincount(np.asarray(cells), minlength=16)[[0, 8, 15]]
    assert counts.min() > 800  # uniform over the 3 elites
    assert set(np.asarray(archive.sample(jax.random.PRNGKey(1), 100)).tolist()) <= {10.0, 20.0, 30.0}


def test_metrics_by_hand_both_conventions():
    archive = qd.Archive.grid((4,), 0.0, 1.0, jnp.zeros(()))
    archive, _ = archive.add(jnp.zeros(2), jnp.array([1.0, 3.0]), jnp.array([[0.1], [0.6]]))
    study = qd.metrics(archive, f_min=-2.0, max_objective=10.0)
    assert float(study["qd_score"]) == (1 + 2) + (3 + 2)
    assert float(study["normalized_qd_score"]) == pytest.approx(8.0 / (4 * 12.0))
    qdax = qd.metrics(archive, offset=5.0)
    assert float(qdax["qd_score"]) == (1 + 5) + (3 + 5)
    for out in (study, qdax):
        assert float(out["coverage"]) == 0.5  # a fraction, not QDax's percentage
        assert float(out["max_fitness"]) == 3.0 and float(out["mean_fitness"]) == 2.0
        assert float(out["min_fitness"]) == 1.0 and int(out["num_elites"]) == 2
    np.testing.assert_allclose(float(qd.metrics(archive, f_min=-5.0)["qd_score"]), float(qdax["qd_score"]))
    empty = qd.metrics(qd.Archive.grid((4,), 0.0, 1.0, jnp.zeros(())), f_min=0.0)
    assert float(empty["qd_score"]) == 0.0 and float(empty["coverage"]) == 0.0
    assert float(empty["max_fitness"]) == -np.inf
    with pytest.raises(ValueError, match="exactly one"):
        qd.metrics(archive)
    with pytest.raises(ValueError, match="exactly one"):
        qd.metrics(archive, f_min=0.0, offset=0.0)


def test_emitters():
    archive = qd.Archive.grid((8,), 0.0, 1.0, jnp.zeros(50))
    parents = jnp.stack([jnp.full(50, 1.0), jnp.full(50, -1.0)])
    archive, _ = archive.add(parents, jnp.array([1.0, 2.0]), jnp.array([[0.1], [0.9]]))
    key = jax.random.PRNGKey(0)
    x = qd.gaussian_emitter(archive, key, 400, qd.GaussianHParams(sigma=0.1))
    assert x.shape == (400, 50)
    resid = x - jnp.sign(x.mean(axis=1, keepdims=True))  # parent is +-1 everywhere
    assert abs(float(resid.std()) - 0.1) < 0.01 and abs(float(resid.mean())) < 0.01
    np.testing.assert_array_equal(x, qd.gaussian_emitter(archive, key, 400, qd.GaussianHParams(sigma=0.1)))
    # Iso+LineDD with iso 0: offspring lie on the line through the two parents; defaults from the study
    y = qd.iso_line_emitter(archive, key, 400, qd.IsoLineHParams(iso_sigma=0.0, line_sigma=0.5))
    assert bool(jnp.all(jnp.abs(y - y[:, :1]) < 1e-6))  # x_i + t (x_j - x_i) is constant across genes here
    assert float(jnp.std(y[:, 0])) > 0.1
    assert qd.IsoLineHParams().iso_sigma == 0.005 and qd.IsoLineHParams().line_sigma == 0.05
    assert qd.GaussianHParams().sigma == 0.02
    z = qd.iso_line_emitter(archive, key, 400)
    assert float(jnp.std(z - jnp.round(z))) < 0.2  # small variation around the parents with the defaults


# ----------------------------------------------------------------------------------------------- MAP-Elites (toy task)
_TOY_METRICS = functools.partial(qd.metrics, f_min=-100.0)
_TOY_STEP = dict(score_fn=toy_score, emitter=qd.gaussian_emitter, batch_size=16, metrics_fn=_TOY_METRICS)


def _toy_run(key):
    archive = qd.Archive.grid((5, 5), 0.0, 1.0, jnp.zeros(4))
    k0, k1, k2 = jax.random.split(key, 3)
    state, m0 = qd.map_elites_init(archive, jax.random.normal(k0, (16, 4)), k1, score_fn=toy_score,
                                   emitter_hparams=qd.GaussianHParams(sigma=0.3), metrics_fn=_TOY_METRICS)
    state, ms = qd.map_elites_chunk(state, k2, 12, **_TOY_STEP)
    return state, m0, ms


@pytest.fixture(scope="module")
def toy_runs():
    single = jax.jit(_toy_run)
    keys = jax.random.split(jax.random.PRNGKey(7), 2)
    return single, keys, jax.jit(jax.vmap(_toy_run))(keys)


def test_map_elites_toy_improves_and_is_deterministic(toy_runs):
    single, keys, _ = toy_runs
    state, m0, ms = single(keys[0])
    assert float(ms["qd_score"][-1]) > float(m0["qd_score"])
    assert bool(jnp.all(jnp.diff(ms["qd_score"]) >= 0))
    np.testing.assert_allclose(float(ms["qd_score"][-1]), float(_TOY_METRICS(state.archive)["qd_score"]))
    assert int(state.generation) == 12 and int(state.num_evals) == 16 * 13
    assert ms["coverage"].shape == (12,) and bool(jnp.all(jnp.diff(ms["coverage"]) >= 0))
    assert float(ms["max_fitness"][-1]) >= float(m0["max_fitness"])
    assert int(state.archive.added_at.max()) <= 12 and int(ms["num_inserted"].sum()) > 0
    again, _, _ = single(keys[0])
    jax.tree.map(np.testing.assert_array_equal, again, state)  # same seed -> same archive


def test_map_elites_vmap_over_seeds_equals_single_runs(toy_runs):
    single, keys, (vstate, _, vms) = toy_runs
    assert vstate.archive.fitnesses.shape == (2, 25)
    for i in range(2):
        state, _, ms = single(keys[i])
        np.testing.assert_array_equal(vstate.archive.filled[i], state.archive.filled)
        np.testing.assert_array_equal(vstate.archive.added_at[i], state.archive.added_at)
        np.testing.assert_allclose(vstate.archive.fitnesses[i], state.archive.fitnesses, rtol=1e-5)
        np.testing.assert_allclose(vstate.archive.genotypes[i], state.archive.genotypes, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(vms["num_elites"][i], ms["num_elites"])
    # per-seed metrics from a seed-batched archive
    per_seed = qd.metrics(vstate.archive, f_min=-100.0)
    assert per_seed["qd_score"].shape == (2,)
    single_qd = qd.metrics(single(keys[1])[0].archive, f_min=-100.0)["qd_score"]
    np.testing.assert_allclose(per_seed["qd_score"][1], single_qd, rtol=1e-5)


# ----------------------------------------------------------------------------------------------- Brax task (hopper)
T, POP = 50, 8


@pytest.fixture(scope="module")
def hopper():
    task = qd.make_task("hopper", episode_length=T, hidden_sizes=(8, 8))
    # one compiled scoring kernel (with transitions) serves every hopper test
    score = jax.jit(functools.partial(task.score, return_transitions=True))
    genomes = task.init_genomes(jax.random.PRNGKey(0), POP) * 3.0  # bigger weights: more varied gaits
    fit, desc, extras = score(genomes, jax.random.PRNGKey(1))
    return task, score, genomes, fit, desc, extras


def test_task_errors_and_genome_layout(hopper):
    with pytest.raises(ValueError, match="hopper, walker2d, halfcheetah, ant"):
        qd.make_task("hoppr")
    with pytest.raises(ValueError, match="episode_length"):
        qd.make_task("hopper", episode_length=0)
    assert inspect.signature(qd.make_task).parameters["hidden_sizes"].default == (128, 128)  # the study's
    task = dataclasses.replace(hopper[0], hidden_sizes=(128, 128))
    assert task.layer_sizes == (11, 128, 128, 3)
    assert task.genome_size == 11 * 128 + 128 + 128 * 128 + 128 + 128 * 3 + 3
    task = dataclasses.replace(hopper[0], hidden_sizes=(6, 5))
    g = task.init_genomes(jax.random.PRNGKey(0), 2)
    assert g.shape == (2, 11 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3)
    layers = task.unflatten(g[0])
    assert [w.shape for w, _ in layers] == [(11, 6), (6, 5), (5, 3)]
    assert all(float(jnp.abs(b).max()) == 0.0 for _, b in layers)
    for (w, _), (n_in, n_out) in zip(layers, [(11, 6), (6, 5), (5, 3)]):
        lim = np.sqrt(6 / (n_in + n_out))  # Xavier uniform
        assert float(jnp.abs(w).max()) <= lim and float(jnp.abs(w).max()) > 0.5 * lim
    np.testing.assert_array_equal(task.flatten(layers), g[0])
    a = task.policy(g[0], jnp.ones(11) * 5)
    np.testing.assert_allclose(a, jnp.tanh(jnp.tanh(jnp.tanh(jnp.ones(11) * 5 @ layers[0][0]) @ layers[1][0])
                                           @ layers[2][0]), rtol=1e-6)
    with pytest.raises(ValueError, match="genomes must be"):
        task.score(g[:, :10], jax.random.PRNGKey(0))
    for name, size in (("walker2d", 2), ("halfcheetah", 2), ("ant_uni", 4)):
        assert qd.make_task(name, episode_length=5).descriptor_size == size


def test_task_descriptors_and_transitions(hopper):
    task, score, genomes, fit, desc, extras = hopper
    assert fit.shape == (POP,) and desc.shape == (POP, 1)
    assert bool(jnp.all((desc >= 0) & (desc <= 1)))
    length = np.asarray(extras["episode_length"])
    assert np.all((length >= 1) & (length <= T))
    assert len(set(np.round(np.asarray(desc[:, 0]), 4).tolist())) > 1  # the descriptor varies
    tr = extras["transitions"]
    assert tr.obs.shape == (POP, T, task.obs_size) and tr.action.shape == (POP, T, task.action_size)
    valid = np.asarray(tr.valid)
    np.testing.assert_array_equal(valid.sum(1), length)
    np.testing.assert_allclose(np.where(valid, tr.reward, 0).sum(1), fit, rtol=1e-5)
    term, trunc = np.asarray(tr.termination), np.asarray(tr.truncation)
    assert np.all(term.sum(1) + trunc.sum(1) == 1)  # every episode ends exactly once
    np.testing.assert_array_equal(trunc[:, -1], (length == T) & (term[:, -1] == 0))
    np.testing.assert_array_equal(term.sum(1) == 1, (length < T) | (term[:, -1] == 1))
    np.testing.assert_array_equal(tr.next_obs[:, :-1], tr.obs[:, 1:])
    # deterministic start: another key gives the same scores
    fit2, desc2, _ = score(genomes, jax.random.PRNGKey(99))
    np.testing.assert_array_equal(fit2, fit)
    np.testing.assert_array_equal(desc2, desc)


def test_task_matches_manual_rollout_with_debug_contacts(hopper):
    """Fitness = plain reward sum until done; descriptor = QDax's contact rule on debug=True contacts."""
    from brax import envs as brax_envs

    task, _, genomes, fit, desc, extras = hopper
    env = brax_envs.get_environment("hopper", backend="spring", reset_noise_scale=0.0, debug=True)
    foot_link = task.env.sys.link_names.index("foot")

    @jax.jit
    def manual_step(state, genome):
        state = env.step(state, task.policy(genome, state.obs))
        c = state.pipeline_state.contact
        return state, jnp.any((c.link_idx[1] == foot_link) & (c.dist <= 0))

    start = jax.jit(env.reset)(jax.random.PRNGKey(5))
    for i in range(3):
        state, ret, contacts, n = start, 0.0, 0.0, 0
        for _ in range(T):
            state, contact = manual_step(state, genomes[i])
            ret += float(state.reward)
            contacts += float(contact)
            n += 1
            if float(state.done) > 0:
                break
        assert n == int(extras["episode_length"][i])
        np.testing.assert_allclose(float(fit[i]), ret, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(float(desc[i, 0]), contacts / n, atol=1e-6)


def test_map_elites_raises_qd_score_on_hopper(hopper):
    task, score, genomes, fit, desc, _ = hopper
    archive = qd.Archive.grid((10,), 0.0, 1.0, jnp.zeros(task.genome_size))
    state, m0 = qd.map_elites_init(archive, genomes, jax.random.PRNGKey(1), score_fn=score,
                                   emitter_hparams=qd.GaussianHParams(sigma=0.1))
    qd0 = float(qd.metrics(state.archive, f_min=-float(T))["qd_score"])
    # eager steps around the already-compiled scoring kernel (the scan form is covered by the toy tests)
    key = jax.random.PRNGKey(2)
    for _ in range(6):
        key, sub = jax.random.split(key)
        state, m = qd.map_elites_step(state, sub, score_fn=score, emitter=qd.gaussian_emitter, batch_size=POP)
    qd1 = float(qd.metrics(state.archive, f_min=-float(T))["qd_score"])
    assert qd1 > qd0, (qd0, qd1)
    assert int(state.num_evals) == POP * 7
    assert float(m["max_fitness"]) >= float(m0["max_fitness"])


def test_task_on_the_mjx_backend():
    """``make_task(..., backend="mjx")`` as ``envs.make``: episodes score, and the foot-floor distance the
    descriptor thresholds is the distance of the mjx pipeline's own foot-floor contacts (at the start states; one
    compiled kernel, the mjx step is costly to compile on a CPU)."""
    import mujoco

    task = qd.make_task("hopper", episode_length=3, hidden_sizes=(4,), backend="mjx", random_init=True)
    assert task.env.backend == "mjx"
    mj = task.env.sys.mj_model
    foot = mujoco.mj_name2id(mj, mujoco.mjtObj.mjOBJ_GEOM, "foot_geom")
    floor = mujoco.mj_name2id(mj, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    genomes = task.init_genomes(jax.random.PRNGKey(0), 2) * 3.0

    @jax.jit
    def run(genomes, key):
        fit, desc, extras = task.score(genomes, key)

        def distances(k):
            ps = task.env.reset(k).pipeline_state
            c = ps.contact
            pair = ((c.geom1 == foot) & (c.geom2 == floor)) | ((c.geom1 == floor) & (c.geom2 == foot))
            return task.foot_floor_distance(ps)[0], jnp.min(jnp.where(pair, c.dist, jnp.inf))

        ours, theirs = jax.vmap(distances)(jax.random.split(key, 8))
        return fit, desc, extras["episode_length"], ours, theirs

    fit, desc, length, ours, theirs = run(genomes, jax.random.PRNGKey(1))
    assert np.all(np.isfinite(fit)) and np.all((desc >= 0) & (desc <= 1)) and np.all((length >= 1) & (length <= 3))
    assert np.all(np.isfinite(theirs))  # the foot-floor pair is among the mjx contacts
    assert np.ptp(np.asarray(ours)) > 0  # random starts: different distances
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    with pytest.raises(ValueError, match="spring, positional, generalized, mjx"):
        qd.make_task("hopper", backend="warp")
