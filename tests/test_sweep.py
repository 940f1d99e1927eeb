"""Sweeps in one kernel (issue 19): ``config.sweep`` points x seeds as one member axis, its files on disk (the
``[point, seed, ...]`` metrics.h5, point views), the analyses reading a point, and the config checks.

The runs are test_train.py's tiny TD3 (probe task, hidden (16, 16), 96 env steps): a 2-point x 2-seed sweep is
a batch of 4 members (the kernel of test_train's four-seed run) and each point's plain run a batch of 2 (its
two-seed run), so the kernels come from the persistent compilation cache.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import h5py
import jax
import ml_collections
import numpy as np
import pytest

from rlland import checkpoint, plotting, runs, sharding, sweep, train
from rlland.sinks import read_h5

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("rlland_train_configs_sweep", REPO / "configs" / "train.py")
configs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(configs)

TINY = {"num_seeds": 2, "env.episode_length": 5, "agent.hidden_sizes": (16, 16), "agent.num_envs": 2,
        "agent.batch_size": 8, "agent.buffer_capacity": 128, "agent.warmup_steps": 16, "total_steps": 96,
        "eval_interval": 32, "eval_episodes": 3, "checkpoint_interval": 32, "keep_checkpoints": 3,
        "snapshot_steps": (32, 64), "wandb.mode": "disabled", "progress": False}
RATES = (1e-3, 3e-3)
# Batches of 4 members and of 2 seeds may round float32 reductions differently (as test_train's seed tests say):
# the per-seed results agree to 1e-5 relative, not bitwise.
RTOL, ATOL = 1e-5, 1e-6


def tiny(**overrides) -> ml_collections.ConfigDict:
    c = configs.get_config("td3/probe_action")
    for path, value in {**TINY, **overrides}.items():
        *parents, leaf = path.split(".")
        node = c
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


def tiny_sweep(**overrides):
    return tiny(**{"sweep.learning_rate": RATES, **overrides})


def assert_tree_close(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=RTOL, atol=ATOL)


def latest(run_dir, members: int):
    """(step, state, host) of the newest checkpoint of a run of ``members`` batch entries."""
    config = runs.read_config(str(run_dir))
    agent = runs.build(config)[1]
    abstract = sharding.with_sharding(runs.abstract_state(agent, members), members)
    return checkpoint.Checkpoints(str(run_dir), read_only=True).restore_latest(abstract)


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    return train.run(tiny_sweep(), run_dir=str(tmp_path_factory.mktemp("sweep") / "run"))


@pytest.fixture(scope="module")
def single_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("singles")
    return [train.run(tiny(**{"agent.learning_rate": lr}), run_dir=str(root / f"lr{lr:g}")) for lr in RATES]


# -- the points of a config (no JAX) --------------------------------------------------------------------------
def test_grid_and_zip_points():
    c = tiny(**{"sweep.learning_rate": (1e-4, 1e-3), "sweep.tau": (0.005, 0.01, 0.02)})
    grid = sweep.points(c)
    assert len(grid) == 6 and sweep.num_members(c) == 12
    assert grid[:2] == [{"learning_rate": 1e-4, "tau": 0.005}, {"learning_rate": 1e-4, "tau": 0.01}]
    with pytest.raises(ValueError, match="one length"):
        sweep.points(tiny(**{"sweep.learning_rate": (1e-4, 1e-3), "sweep.tau": (0.005, 0.01, 0.02),
                             "sweep_mode": "zip"}))
    zipped = tiny(**{"sweep.learning_rate": (1e-4, 1e-3), "sweep.tau": (0.005, 0.01), "sweep_mode": "zip"})
    assert sweep.points(zipped) == [{"learning_rate": 1e-4, "tau": 0.005}, {"learning_rate": 1e-3, "tau": 0.01}]
    np.testing.assert_array_equal(sweep.member_seeds(zipped), [0, 1, 0, 1])
    np.testing.assert_array_equal(sweep.member_points(zipped), [0, 0, 1, 1])
    assert sweep.points(tiny()) == [] and sweep.num_members(tiny()) == 2
    # a plain run's config on disk has no sweep keys (it is what it was before sweeps existed)
    assert "sweep" not in runs.jsonable(tiny()) and "sweep_mode" not in runs.jsonable(tiny())
    assert runs.jsonable(zipped)["sweep"] == {"learning_rate": [1e-4, 1e-3], "tau": [0.005, 0.01]}
    assert runs.default_run_dir(zipped).endswith("-sweep-learning_rate-tau")
    # nested driver configs (a study's) too: a study directory written before sweeps existed still resumes
    nested = runs.jsonable(ml_collections.ConfigDict({"train": {"td3": tiny()}, "qd": {"me": {"sweep": {"sigma": ()}}}}))
    assert "sweep" not in nested["train"]["td3"] and nested["qd"]["me"] == {}


@pytest.mark.parametrize("override, message", [
    ({"sweep.hidden_sizes": ((16, 16), (32, 32))}, "hidden_sizes is static .*sets a shape"),
    ({"sweep.batch_size": (8, 16)}, "batch_size is static .*sets a shape"),
    ({"sweep.learning_rate": (1e-3, 1e-3)}, "repeats a point"),
    ({"sweep.learning_rate": (1e-3, 3e-3), "sweep_mode": "diagonal"}, "sweep_mode must be one of grid, zip"),
])
def test_invalid_sweeps_are_refused_before_writing(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        train.run(tiny(**override), run_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_cli_accepts_sweep_overrides():
    from rlland import cli

    argv = ["--config.sweep.learning_rate=(1e-4,3e-4,1e-3)", "--config.num_seeds=5"]
    assert cli.unknown_override(argv, str(REPO / "configs" / "train.py") + ":td3/hopper") is None
    message = cli.unknown_override(["--config.sweep.learning_rat=(1e-4,)"], str(REPO / "configs" / "train.py"))
    assert "unknown key 'learning_rat' in config.sweep" in message


# -- one kernel, the same per-seed results --------------------------------------------------------------------
def test_sweep_equals_the_single_runs(sweep_run, single_runs):
    """Point p's seed s of the 2-point x 2-seed sweep is seed s of the plain run of point p."""
    assert sweep_run.points == [{"learning_rate": r} for r in RATES]
    assert all(np.shape(x)[0] == 4 for x in jax.tree.leaves(sweep_run.state))
    np.testing.assert_array_equal(sweep_run.state.hparams["learning_rate"], np.float32([1e-3, 1e-3, 3e-3, 3e-3]))
    for p, single in enumerate(single_runs):
        assert_tree_close(sweep.select_point(sweep_run.state, p, 2), single.state)
        np.testing.assert_allclose(sweep_run.by_point(sweep_run.eval_returns)[p], single.eval_returns,
                                   rtol=RTOL, atol=ATOL)
        for k, v in single.train_metrics.items():
            np.testing.assert_allclose(sweep_run.by_point(sweep_run.train_metrics[k])[p], v, rtol=RTOL, atol=ATOL,
                                       err_msg=k)
    # the two points really differ (a learning rate that did nothing would pass the checks above)
    a, b = (np.asarray(jax.tree.leaves(s.state.params["actor"])[0]) for s in single_runs)
    assert not np.allclose(a, b)
    # the checkpoint holds the member axis and restores
    step, state, _ = latest(sweep_run.run_dir, 4)
    assert step == 96
    assert_tree_close(state, sweep_run.state)


def test_sweep_files_carry_point_and_seed_axes(sweep_run, single_runs):
    run_dir = Path(sweep_run.run_dir)
    data, attrs = read_h5(run_dir / "metrics.h5")
    assert data["eval/returns"].shape == (2, 2, 3, 3) and data["eval/return_mean"].shape == (2, 2, 3)
    assert data["train/critic_loss"].shape == (2, 2, 3) and data["diverged_at"].shape == (2, 2)
    np.testing.assert_array_equal(data["sweep/learning_rate"], RATES)
    np.testing.assert_array_equal(data["eval/returns"].reshape(4, 3, 3), sweep_run.eval_returns)
    assert json.loads(attrs["sweep_keys"]) == ["learning_rate"]
    assert json.loads(attrs["config"])["sweep"] == {"learning_rate": list(RATES)}
    assert (run_dir / "figures" / "learning_curve.png").stat().st_size > 5000
    assert sweep.point_dirs(str(run_dir)) == [str(run_dir / "points" / "0"), str(run_dir / "points" / "1")]
    for p, single in enumerate(single_runs):
        view = run_dir / "points" / str(p)
        # the point view's config is the plain run's (but for where it lives)
        mine, theirs = (json.loads((d / "config.json").read_text()) for d in (view, Path(single.run_dir)))
        assert mine.pop("run_dir") == str(view) and theirs.pop("run_dir") == ""
        assert mine == theirs
        assert sweep.point_of(str(view))["values"] == {"learning_rate": RATES[p]}
        point_data, point_attrs = read_h5(view / "metrics.h5")
        single_data, _ = read_h5(Path(single.run_dir) / "metrics.h5")
        assert sorted(point_data) == sorted(single_data)
        for k, v in point_data.items():
            np.testing.assert_array_equal(v, data[k] if "steps" in k else data[k][p], err_msg=k)
        assert point_attrs["sweep_point"] == p and (view / "figures" / "learning_curve.png").exists()


def test_analyses_read_a_point_like_a_plain_run(sweep_run, single_runs, tmp_path):
    run_dir = sweep_run.run_dir
    with pytest.raises(ValueError, match="is a sweep of 2 points"):
        runs.load_run(run_dir)
    with pytest.raises(ValueError, match="point view of the sweep"):
        train.run(tiny_sweep(), run_dir=sweep.point_dir(run_dir, 0))
    for p, single in enumerate(single_runs):
        view = sweep.point_dir(run_dir, p)
        config, _, agent = runs.load_run(view)
        assert config.num_seeds == 2 and float(agent.hparams()["learning_rate"]) == np.float32(RATES[p])
        assert runs.snapshot_steps(view) == [32, 64]
        snap = runs.load_snapshot(view, 64, agent, config=config)  # with the replay data from the checkpoint
        assert_tree_close(snap, runs.load_snapshot(single.run_dir, 64))
        params = runs.load_snapshot(view, 32, params_only=True)
        assert_tree_close(params, runs.load_snapshot(single.run_dir, 32, params_only=True))

    calls = []

    @sweep.per_point
    def toy_analysis(c, rd):
        """What an analysis does: read the run, write an h5 file and a figure into its directory."""
        cfg, _, _ = runs.load_run(rd)
        calls.append((rd, cfg.agent.learning_rate))
        with h5py.File(os.path.join(rd, "toy.h5"), "w") as f:
            f["x"] = np.arange(3)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.set_title("toy")
        return plotting.save(fig, os.path.join(rd, "figures", "toy.png"))

    out = toy_analysis(None, run_dir)
    assert sorted(out) == sweep.point_dirs(run_dir)
    assert [lr for _, lr in calls] == list(RATES)
    for p, d in enumerate(sweep.point_dirs(run_dir)):
        with h5py.File(os.path.join(d, "toy.h5")) as f:
            assert f.attrs["sweep.point"] == p and f.attrs["sweep.learning_rate"] == RATES[p]
        assert os.path.exists(out[d])
    # a plain run passes through untouched
    assert toy_analysis(None, single_runs[0].run_dir).endswith("toy.png")
    with h5py.File(os.path.join(single_runs[0].run_dir, "toy.h5")) as f:
        assert "sweep.point" not in f.attrs

