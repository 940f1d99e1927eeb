"""The QD driver (rlland.qd.driver), robustness, heatmaps and configs/qd.py.

One tiny MAP-Elites config (2 seeds vmapped) is run three times: uninterrupted, and interrupted after one chunk
then resumed; the archives and every logged metric must be identical. The kernels are compiled at XLA backend
optimisation level 0 (``config.compiler_options``) and shared by the three runs.

The driver runs use the toy task of tests/qd_toy.py (patched in as ``driver.make_task`` for ``config.task.name ==
"toy"``; the driver is unchanged): what is tested here (chunking, checkpoints and resumption, the logged metrics,
robustness re-evaluations, figures, archive files, sweeps, CVT archives) only calls the task's interface. A
hopper rollout costs ~10 s of compile per kernel (here three: generation, per-chunk and final robustness); the
hopper itself is tested in tests/test_qd.py, an algorithm kernel on it in tests/test_qd_pga.py."""
import dataclasses
import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest

from rlland import qd
from rlland.sinks import read_h5
from rlland.qd import driver
from rlland.qd import plotting as qd_plotting

import qd_toy

_spec = importlib.util.spec_from_file_location(
    "qd_configs", os.path.join(os.path.dirname(__file__), "..", "configs", "qd.py"))
qd_configs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(qd_configs)

BATCH, GENS_PER_CHUNK = 8, 4


def tiny_config():
    c = qd_configs.get_config("map_elites/hopper/quick")
    c.task.update(name="toy", episode_length=20, hidden_sizes=(8, 8))  # random starts, as the hopper's
    c.archive.grid_shape = (8,)
    c.batch_size = BATCH
    c.total_evals = BATCH * 7  # 7 generations (0 = the initial population) in chunks of 4: the 2nd has one idle
    c.generations_per_chunk = GENS_PER_CHUNK
    c.checkpoint_every = 1
    c.emitter.sigma = 0.2
    c.robustness.update(num_episodes=3, every_chunk=True, block_size=4)  # 8 cells in 2 blocks
    c.num_seeds = 2
    c.wandb.mode = "disabled"
    c.progress = False
    c.compiler_options = {"xla_backend_optimization_level": 0}
    return c


@pytest.fixture(scope="module", autouse=True)
def toy_driver():
    """The driver builds ``config.task.name == "toy"`` with `qd_toy.make_task` in this module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(driver, "make_task", qd_toy.make_task)
        yield


# ----------------------------------------------------------------------------------------------- driver
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("qd")
    config = tiny_config()
    full = driver.run(config, run_dir=str(root / "full"))
    part = driver.run(config, run_dir=str(root / "resumed"), max_chunks=1)
    part_gen = np.asarray(part.state.algo.generation).tolist()
    resumed = driver.run(config, run_dir=str(root / "resumed"))
    return config, full, part, part_gen, resumed


def test_driver_resumes_exactly(runs):
    _, full, part, part_gen, resumed = runs
    assert full.complete and resumed.complete and not part.complete
    assert part_gen == [GENS_PER_CHUNK - 1] * 2  # stopped after the first chunk (generations 0 .. 3)
    assert np.asarray(resumed.state.algo.generation).tolist() == [6, 6]
    jax.tree.map(np.testing.assert_array_equal, resumed.state, full.state)  # bit-identical archives and keys
    assert sorted(resumed.history) == sorted(full.history)
    for k in full.history:
        np.testing.assert_array_equal(resumed.history[k], full.history[k], err_msg=k)


def test_driver_writes_metrics_robustness_and_figures(runs):
    config, full, _, _, _ = runs
    data, attrs = read_h5(os.path.join(full.run_dir, "qd.h5"))
    assert data["generations"].tolist() == [0, 4, 7]
    np.testing.assert_array_equal(data["evaluations"], [[0, 32, 56]] * 2)
    for k in ("qd_score", "coverage", "max_fitness", "mean_fitness", "num_inserted", "robustness"):
        assert data[k].shape == (2, 3), k
    assert np.all(data["qd_score"][:, 0] == 0) and np.all(data["coverage"][:, 0] == 0)  # the study's leading 0
    assert np.all(data["qd_score"][:, 2] > data["qd_score"][:, 1])  # MAP-Elites improves on the first chunk
    assert np.all((data["coverage"][:, 1:] > 0) & (data["coverage"][:, 1:] <= 1))
    assert np.all(data["num_inserted"][:, 1] >= data["num_elites"][:, 1])
    np.testing.assert_allclose(data["qd_score"][:, -1],
                               np.asarray(qd.metrics(full.archive, f_min=config.f_min)["qd_score"]), rtol=1e-6)
    assert config.f_min == -0.9 * 20  # QDax's hopper offset x episode length (the hopper config's; toy returns >= 0)
    assert json.loads(attrs["config"])["algo"] == "map_elites" and attrs["compile_seconds"] > 0
    # robustness: NaN before any chunk, then finite; the best elite is what was re-evaluated
    assert np.all(np.isnan(data["robustness"][:, 0])) and np.all(np.isfinite(data["robustness"][:, 1:]))
    np.testing.assert_allclose(data["best_fitness"][:, -1], data["max_fitness"][:, -1])
    np.testing.assert_allclose(data["robustness"], data["best_reevaluated"] - data["best_fitness"], rtol=1e-5)
    assert data["final/mean_elite_robustness"].shape == (2,)
    assert np.all(np.isfinite(data["final/mean_elite_robustness"]))
    filled = np.isfinite(data["final/fitnesses"])
    assert np.array_equal(np.isfinite(data["final/cell_robustness"]), filled)
    assert data["final/best_returns"].shape == (2, 3) and np.all(np.isfinite(data["final/best_returns"]))
    figs = sorted(os.listdir(os.path.join(full.run_dir, "figures")))
    assert figs == ["archive_seed0.png", "archive_seed1.png", "qd_curves.png"]
    for f in figs:
        with open(os.path.join(full.run_dir, "figures", f), "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert len(os.listdir(os.path.join(full.run_dir, "checkpoints"))) <= config.keep_checkpoints
    # the final archive with its elites' genotypes, read back as an Archive (all seeds, or one)
    loaded = qd.load_archive(full.run_dir)
    assert loaded.grid_shape == (8,) and loaded.out_of_bounds == full.archive.out_of_bounds
    jax.tree.map(np.testing.assert_array_equal, loaded, jax.device_get(full.archive))
    assert np.abs(np.asarray(loaded.genotypes)[np.isfinite(data["final/fitnesses"])]).max() > 0
    one = qd.load_archive(os.path.join(full.run_dir, "archive.h5"), seed=1)
    jax.tree.map(np.testing.assert_array_equal, one, jax.tree.map(lambda x: np.asarray(x)[1], full.archive))
    with pytest.raises(ValueError, match="out of range"):
        qd.load_archive(full.run_dir, seed=2)
    with pytest.raises(FileNotFoundError, match="no archive.h5 in run directory"):
        qd.load_archive(os.path.dirname(full.run_dir))


def test_driver_refuses_a_different_config_and_bad_budgets(runs):
    config, full, _, _, _ = runs
    other = tiny_config()
    other.emitter.sigma = 0.5
    with pytest.raises(ValueError, match="different config"):
        driver.run(other, run_dir=full.run_dir)
    bad = tiny_config()
    bad.total_evals = BATCH * 7 + 1
    with pytest.raises(ValueError, match="multiple of the evaluations per generation"):
        driver.build(bad)
    bad = tiny_config()
    bad.algo = "cma_me"
    with pytest.raises(ValueError, match="map_elites, pga_me"):
        driver.build(bad)
    bad = tiny_config()
    bad.archive.grid_shape = (4, 4)
    with pytest.raises(ValueError, match="descriptors"):
        driver.build(bad)


def test_driver_builds_a_cvt_archive(tmp_path):
    """config.archive.kind = "cvt": the driver's seeds start from one nearest-centroid archive of num_cells CVT
    centroids (from cvt_seed); the generations only call Archive.add / sample, which test_qd.py checks on CVT
    archives, so only the init kernel is compiled here. A CVT archive round-trips through archive.h5."""
    config = tiny_config()
    config.archive.update(kind="cvt", num_cells=6, cvt_samples=600, cvt_iters=5, cvt_seed=3)
    setup = driver.build(config)
    init, _, _ = driver.kernels(setup)
    state, _ = init(jax.random.split(jax.random.PRNGKey(0), 2))
    archive = state.algo.archive
    assert archive.grid_shape is None and archive.centroids.shape == (2, 6, 1)
    expected = qd.cvt_centroids(6, 1, 0.0, 1.0, jax.random.PRNGKey(3), num_samples=600, num_iters=5)
    np.testing.assert_allclose(archive.centroids[0], expected, rtol=1e-6)
    np.testing.assert_array_equal(archive.centroids[1], archive.centroids[0])  # one tessellation for all seeds
    one = jax.tree.map(lambda x: x[0], archive)
    d = jnp.array([[0.1], [0.5], [0.9]])
    one, _ = one.add(jnp.ones((3, one.genotypes.shape[-1])), jnp.array([1.0, 2.0, 3.0]), d)
    path = qd.save_archive(str(tmp_path / "cvt.h5"), one)
    loaded = qd.load_archive(path)
    assert loaded.grid_shape is None and int(loaded.num_elites) == 3
    jax.tree.map(np.testing.assert_array_equal, loaded, one)
    with pytest.raises(ValueError, match="holds one seed"):
        qd.load_archive(path, seed=0)
    default = tiny_config()  # num_cells 0: as many cells as grid_shape
    default.archive.update(kind="cvt", cvt_samples=100, cvt_iters=2)
    assert driver.archive_builder(default, driver.make_task(default))().centroids.shape == (8, 1)
    default.archive.cvt_samples = 7
    with pytest.raises(ValueError, match="cvt_samples must be >= 8"):
        driver.build(default)
    bad = tiny_config()
    bad.archive.kind = "voronoi"
    with pytest.raises(ValueError, match="config.archive.kind must be one of grid, cvt"):
        driver.build(bad)


# the study's batch per algorithm (reference C.2-C.3): CMA-MEGA's emission batch (1 + 100 + 99 = 200 evaluations
# per generation), ME-ES's 100 workers x 2 mirrored rollouts
STUDY_BATCH = {"map_elites": 100, "pga_me": 100, "cma_mega_es": 99, "cma_mega_td3_es": 99, "me_es": 200}


def test_configs_carry_the_study_settings():
    assert set(STUDY_BATCH) == set(qd_configs.ALGOS) == set(driver.ALGOS)
    for algo in qd_configs.ALGOS:
        for task, grid in (("hopper", (1000,)), ("walker2d", (32, 32)), ("halfcheetah", (32, 32)),
                           ("ant", (6, 6, 6, 6))):
            c = qd_configs.get_config(f"{algo}/{task}")
            assert tuple(c.archive.grid_shape) == grid and tuple(c.archive.grid_shape) == qd.STUDY_GRID_SHAPES[task]
            assert c.archive.kind == "grid" and c.archive.num_cells == 0  # CVT: as many cells as the grid
            assert (c.total_evals, c.batch_size, c.task.episode_length) == (1_000_000, STUDY_BATCH[algo], 1000)
            assert tuple(c.task.hidden_sizes) == (128, 128) and c.task.random_init
            assert c.f_min == pytest.approx(-qd.QDAX_REWARD_OFFSET[task] * 1000)
    c = qd_configs.get_config("cma_mega_td3_es/hopper")
    assert (c.cma_mega.num_samples, c.cma_mega.sample_sigma, c.cma_mega.mu) == (100, 0.02, 49)
    assert (c.cma_mega.num_critic_training_steps, c.cma_mega.pg_batch_size) == (600, 65_536)
    assert driver.num_chunks(c) == 50  # 1e6 / 200 = 5000 generations, 100 per chunk
    c = qd_configs.get_config("me_es/hopper")
    assert driver.num_chunks(c) == 100  # 5000 ES iterations of 200 rollouts, 50 per chunk
    c = qd_configs.get_config("pga_me/walker2d")
    assert (c.pga.num_critic_training_steps, c.pga.num_pg_training_steps, c.pga.proportion_ga) == (300, 10, 0.5)
    assert c.emitter.sigma == 0.02 and c.robustness.num_episodes == 10
    assert driver.num_chunks(c) == 100  # 10,000 generations (the initial population is the first), 100 per chunk
    assert qd_configs.get_config("quick").algo == "pga_me"
    with pytest.raises(ValueError, match="algo"):
        qd_configs.get_config("pga_me")
    with pytest.raises(ValueError, match="unknown QD task"):
        qd_configs.get_config("pga_me/humanoid")


# ----------------------------------------------------------------------------------------------- robustness
@dataclasses.dataclass(frozen=True)
class NoisyTask:
    """Return = genome[0] + u(start key), u uniform in [0, 1): robustness is known in closed form."""

    random_init: bool = True

    def rollout(self, genome, key, return_transitions=False):
        return {"fitness": genome[0] + jax.random.uniform(key)}


def test_robustness_by_hand():
    task = NoisyTask()
    archive = qd.Archive.grid((5,), 0.0, 1.0, jnp.zeros(2))
    genomes = jnp.array([[1.0, 0.0], [5.0, 0.0], [3.0, 0.0]])
    archive, _ = archive.add(genomes, jnp.array([1.2, 5.9, 3.0]), jnp.array([[0.1], [0.5], [0.9]]))
    key, n = jax.random.PRNGKey(0), 4
    u = jax.vmap(jax.random.uniform)(qd.robustness.episode_keys(key, n))
    out = qd.mean_elite_robustness(task, archive, key, n, block_size=2, f_min=-1.0, max_objective=9.0)
    expected = np.array([1.0 - 1.2, np.nan, 5.0 - 5.9, np.nan, 3.0 - 3.0]) + float(u.mean())
    np.testing.assert_allclose(out["cell_robustness"], expected, rtol=1e-6)  # same episodes for every elite
    np.testing.assert_allclose(out["mean_elite_robustness"], np.nanmean(expected), rtol=1e-6)
    np.testing.assert_allclose(out["normalized_mean_elite_robustness"], np.nanmean(expected) / 10.0, rtol=1e-6)
    np.testing.assert_allclose(out["cell_returns"][2], 5.0 + u, rtol=1e-6)
    unblocked = qd.mean_elite_robustness(task, archive, key, n)
    np.testing.assert_allclose(unblocked["cell_robustness"], out["cell_robustness"], rtol=1e-6)
    best = qd.best_elite_robustness(task, archive, key, n)
    np.testing.assert_allclose(best["robustness"], 5.0 + float(u.mean()) - 5.9, rtol=1e-6)
    assert float(best["best_fitness"]) == pytest.approx(5.9)
    empty = qd.best_elite_robustness(task, qd.Archive.grid((5,), 0.0, 1.0, jnp.zeros(2)), key, n)
    assert np.isnan(float(empty["robustness"]))
    with pytest.raises(ValueError, match="random_init"):
        qd.best_elite_robustness(NoisyTask(random_init=False), archive, key, n)
    with pytest.raises(ValueError, match="num_episodes"):
        qd.reevaluate(task, genomes, key, 0)


# ----------------------------------------------------------------------------------------------- heatmaps
def random_archive(shape, seed=0, fill=0.6):
    rng = np.random.RandomState(seed)
    archive = qd.Archive.grid(shape, 0.0, 1.0, jnp.zeros(1))
    n = int(np.prod(shape) * 2)
    archive, _ = archive.add(jnp.zeros((n, 1)), jnp.asarray(rng.randn(n), jnp.float32),
                             jnp.asarray(rng.rand(n, len(shape)) * (rng.rand(n, 1) < fill + 0.2), jnp.float32))
    return archive


@pytest.mark.parametrize("shape", [(30,), (8, 6), (3, 4, 5), (3, 3, 4, 4)])
def test_heatmaps_write_pngs(shape, tmp_path):
    archive = random_archive(shape)
    fig = qd_plotting.archive_heatmap(archive, title=f"{len(shape)}-D")
    if len(shape) == 4:  # a grid of 2-D slices: one panel per (d0, d1) bin, plus the colour bar
        assert len(fig.axes) == shape[0] * shape[1] + 1
        assert fig.axes[0].images[0].get_array().shape == (shape[3], shape[2])
    path = qd_plotting.save(fig, str(tmp_path / "h.png"))
    img = plt.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.05  # not blank
    # empty cells are NaN (drawn grey), the rest the archived fitnesses
    grid = qd_plotting.grid_image(archive.fitnesses, shape)
    assert np.array_equal(np.isnan(grid).ravel(), ~np.asarray(archive.filled))


def test_heatmap_seed_batch_cvt_and_errors(tmp_path):
    archives = jax.tree.map(lambda *x: jnp.stack(x), random_archive((4, 4), 0), random_archive((4, 4), 1))
    paths = qd_plotting.save_archive_heatmaps(archives, str(tmp_path), title="two seeds")
    assert [os.path.basename(p) for p in paths] == ["archive_seed0.png", "archive_seed1.png"]
    cvt = qd.Archive.empty(jax.random.uniform(jax.random.PRNGKey(0), (20, 2)), jnp.zeros(1), minval=0.0, maxval=1.0)
    cvt, _ = cvt.add(jnp.zeros((10, 1)), jnp.arange(10.0), jax.random.uniform(jax.random.PRNGKey(1), (10, 2)))
    qd_plotting.save(qd_plotting.archive_heatmap(cvt), str(tmp_path / "cvt.png"))
    curves = qd_plotting.qd_curves(np.array([8, 16, 24]),
                                   {"qd_score": np.random.rand(2, 3), "coverage": np.ones((2, 3))})
    qd_plotting.save(curves, str(tmp_path / "curves.png"))
    assert all(os.path.getsize(tmp_path / f) > 1000 for f in ("cvt.png", "curves.png"))
    with pytest.raises(ValueError, match="1 to 4 descriptors"):
        qd_plotting.heatmap(np.zeros(32), (2, 2, 2, 2, 2))
    with pytest.raises(ValueError, match="do not fill"):
        qd_plotting.heatmap(np.zeros(5), (2, 2))
    with pytest.raises(ValueError, match="ONE seed"):
        qd_plotting.archive_heatmap(archives)


def test_driver_sweeps_a_traced_parameter(runs, tmp_path):
    """Issue 19: MAP-Elites' sigma swept (``config.sweep``, 2 points x 1 seed) is a batch of 2 members running
    the kernels of the plain 2-seed run above (sigma lives in the state): member 1 (sigma 0.2) equals that run's
    seed 0 bit for bit, member 0 (sigma 0.1) is another run; qd.h5 carries [point, seed, ...]."""
    config, full, _, _, _ = runs
    c = tiny_config()
    c.num_seeds = 1
    c.sweep.sigma = (0.1, 0.2)
    swept = driver.run(c, run_dir=str(tmp_path / "sweep"))
    np.testing.assert_array_equal(swept.state.algo.emitter_hparams.sigma, np.float32([0.1, 0.2]))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a)[1], np.asarray(b)[0]),
                 swept.state, full.state)
    data, _ = read_h5(os.path.join(swept.run_dir, "qd.h5"))
    np.testing.assert_array_equal(data["sweep/sigma"], [0.1, 0.2])
    assert data["qd_score"].shape == (2, 1, 3) and data["final/fitnesses"].shape == (2, 1, 8)
    for k, v in full.history.items():
        if k != "generations":
            np.testing.assert_array_equal(data[k][1, 0], v[0], err_msg=k)
    assert not np.array_equal(data["final/fitnesses"][0, 0], data["final/fitnesses"][1, 0])
    bad = qd_configs.get_config("cma_mega_es/hopper/quick")
    bad.sweep.mu = (3, 7)
    with pytest.raises(ValueError, match="cma_mega_es keeps no traced hyperparameters"):
        driver.sweep_points(bad, None)
    with pytest.raises(ValueError, match="unknown hyperparameter; traced ones: sigma"):
        bad = tiny_config()
        bad.sweep.sigmaa = (0.1, 0.2)  # not in the config's sweep section: ml_collections takes it in Python
        driver.run(bad, run_dir=str(tmp_path / "bad"))
