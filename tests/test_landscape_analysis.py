"""The return-landscape analyses of a run directory (rlland.landscape.analysis): purd.h5 written per snapshot,
re-runs skip finished steps, the study's statistics stored, interpolation and rejection on a tiny TD3 run."""
import os
import pathlib

import numpy as np
import pytest

from rlland import configs, landscape, runs, sinks, train
from rlland.landscape import analysis, figures

from test_train import tiny_td3


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("landscape") / "run"
    train.run(tiny_td3(), run_dir=str(d))
    return str(d)


def small(name, **overrides):
    c = configs.load(name)
    c.update(dict(dict(num_samples=4, chunk_size=0), **overrides))
    return c


def test_purd_writes_each_step_with_its_statistics_and_skips_finished_steps(run_dir, capsys):
    c = small("purd")
    out = analysis.analyse_purd(c, run_dir, verbose=True)
    sid = analysis.settings_id(analysis.purd_settings(c))
    assert sorted(out) == sorted(f"default/{sid}/step_{s}" for s in runs.snapshot_steps(run_dir))
    groups, attrs, group_attrs = landscape.read_h5(f"{run_dir}/purd.h5")
    for name, d in out.items():
        r = groups[name]["undiscounted"]
        assert r.shape == (2, 4)
        np.testing.assert_allclose(groups[name]["mean"], r.mean(-1), rtol=1e-6)
        np.testing.assert_allclose(groups[name]["cvar"], [float(landscape.cvar(x, c.alpha)) for x in r], rtol=1e-6)
        np.testing.assert_array_equal(groups[name]["ltp"], [float(landscape.ltp(x)) for x in r])
        # provenance: the group carries its full settings and what the operator resolved to
        a = group_attrs[name]
        assert list(a["seeds"]) == [0, 1] and a["config.operator"] == "default"
        assert a["config.eval.action_noise"] == 0.0 and a["config.num_samples"] == 4
        assert a["resolved.operator"] == "td3_actor_step" and a["resolved.batch_size"] == 8
        np.testing.assert_allclose(a["resolved.learning_rate"], [3e-4, 3e-4], rtol=1e-6)
    assert attrs["rlland_layout"] == "purd" and attrs["algo"] == "td3"
    assert (pathlib.Path(run_dir) / "figures" / f"purd_default_{sid}_mean_vs_ltp.png").stat().st_size > 5000
    before = {k: v["undiscounted"].copy() for k, v in groups.items()}
    capsys.readouterr()
    assert analysis.analyse_purd(c, run_dir) == {}  # everything there with these settings: nothing recomputed
    assert "skipped" in capsys.readouterr().out
    other = analysis.analyse_purd(small("purd", learning_rate=0.0, seeds=(1,)), run_dir)  # other settings
    assert all(v["undiscounted"].shape == (1, 4) for v in other.values())
    groups, _, group_attrs = landscape.read_h5(f"{run_dir}/purd.h5")
    assert set(before) | set(other) == set(groups)  # the two settings coexist: nothing overwritten
    for name, v in before.items():
        np.testing.assert_array_equal(groups[name]["undiscounted"], v)
    mine = analysis.read_purd(run_dir, c)  # one setting's groups by step, the other's left out
    assert sorted(mine) == runs.snapshot_steps(run_dir)
    for step, g in mine.items():
        np.testing.assert_array_equal(g["undiscounted"], before[analysis.purd_group(c, step)])
    for name, v in other.items():  # lr 0: every sample is the pre-update return
        np.testing.assert_array_equal(v["undiscounted"], np.repeat(v["pre_update"][:, None], 4, axis=1))
        assert group_attrs[name]["config.learning_rate"] == 0.0


class Killed(Exception):
    pass


def test_a_killed_purd_run_resumes_without_recomputing_finished_snapshots(run_dir, monkeypatch):
    """The run dies while loading its second snapshot: the first is in the file; the re-run loads (and computes)
    only the second, and the file ends as one uninterrupted run would have written it."""
    c = small("purd", num_samples=3, seeds=(0,))
    steps = runs.snapshot_steps(run_dir)
    real, loaded = runs.load_snapshot, []

    def dies_on_second(rd, step, *a, **kw):
        if step == steps[1]:
            raise Killed()
        return real(rd, step, *a, **kw)

    monkeypatch.setattr(runs, "load_snapshot", dies_on_second)
    with pytest.raises(Killed):
        analysis.analyse_purd(c, run_dir, verbose=False)
    groups, _, _ = landscape.read_h5(f"{run_dir}/purd.h5")
    first, second = (analysis.purd_group(c, s) for s in steps)
    assert first in groups and second not in groups
    kept = groups[first]["undiscounted"].copy()
    monkeypatch.setattr(runs, "load_snapshot", lambda rd, step, *a, **kw: loaded.append(step) or real(rd, step, *a, **kw))
    out = analysis.analyse_purd(c, run_dir, verbose=False)
    assert loaded == [steps[1]] and list(out) == [second]
    groups, _, _ = landscape.read_h5(f"{run_dir}/purd.h5")
    np.testing.assert_array_equal(groups[first]["undiscounted"], kept)
    assert groups[second]["undiscounted"].shape == (1, 3)


def _patched(monkeypatch, change):
    real = runs.load_snapshot
    monkeypatch.setattr(runs, "load_snapshot", lambda *a, **kw: change(real(*a, **kw)))


def test_an_empty_buffer_and_a_nan_loss_are_refused_naming_snapshot_and_seed(run_dir, monkeypatch):
    step = runs.snapshot_steps(run_dir)[0]
    c = small("purd", num_samples=2, steps=(step,), seed=7)
    empty = lambda s: s.replace(buffer=s.buffer.replace(size=s.buffer.size.at[1].set(0)))
    _patched(monkeypatch, empty)
    with pytest.raises(ValueError, match=f"snapshot {step} seed 1: the replay buffer is empty"):
        analysis.analyse_purd(c, run_dir, verbose=False)
    monkeypatch.undo()
    # a NaN observation in seed 0's buffer makes its actor loss NaN, hence its updated actor and returns
    nan_obs = lambda s: s.replace(buffer=s.buffer.replace(data=s.buffer.data._replace(
        obs=s.buffer.data.obs.at[0].set(np.nan))))
    _patched(monkeypatch, nan_obs)
    with pytest.raises(ValueError, match=f"snapshot {step} seed 0: non-finite post-update returns"):
        analysis.analyse_purd(c, run_dir, verbose=False)
    monkeypatch.undo()
    groups, _, _ = landscape.read_h5(f"{run_dir}/purd.h5")
    assert analysis.purd_group(c, step) not in groups  # nothing written for a refused step


def test_purd_histograms_of_any_range(tmp_path):
    """A constant PURD, one whose spread is below float32's resolution at its scale, and one with a NaN sample:
    all plot (numpy's histogram raised 'Too many bins for data range' on the first two)."""
    cases = {"constant": np.full((1, 8), 5.0, np.float32),
             "float32_resolution": (np.float32(1000.0) + np.arange(8, dtype=np.float32) * np.float32(6.1e-5))[None],
             "with_nan": np.array([[1.0, 2.0, np.nan, 4.0]], np.float32)}
    for i, (name, r) in enumerate(cases.items()):
        edges = figures.histogram_bins(r)
        assert np.all(np.diff(edges) > 0) and edges[0] <= np.nanmin(r) and edges[-1] >= np.nanmax(r), name
        out = {"undiscounted": r, "pre_update": np.nanmax(r, -1)}
        path = analysis.purd_figure(str(tmp_path), i, [0], out, f"default/abc/step_{i}")
        assert os.path.getsize(path) > 5000, name


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path):
    path = str(tmp_path / "purd.h5")
    landscape.write_purd_h5(path, {"a": np.ones((2, 3))})
    with pytest.raises(ValueError):  # fails inside the file, after the first group is written
        landscape.write_purd_h5(path, {"b": np.ones((2, 3)), "c": {"undiscounted": np.ones(3), "x": ["?"]}})
    groups, _, _ = landscape.read_h5(path)
    assert sorted(groups) == ["a"] and groups["a"]["undiscounted"].shape == (2, 3)


def test_interpolation_and_rejection_skip_what_is_done(run_dir, capsys, monkeypatch):
    steps = runs.snapshot_steps(run_dir)
    c = small("interpolate", num_points=3, seeds=(0,))
    out = analysis.analyse_interpolation(c, run_dir)
    assert list(out) == [f"seed0_step{steps[0]}__seed0_step{steps[1]}"]
    assert next(iter(out.values()))["undiscounted"].shape == (3, 4)
    assert os.path.getsize(os.path.join(run_dir, "figures", "interpolation_heatmap.png")) > 5000
    rc = small("reject", max_steps=2, num_repeats=2)
    rc.wandb.mode = "offline"
    logged = []

    class Recorder:  # stands in for wandb: what analyse_rejection logs, one run per (seed, repeat)
        def __init__(self, run_dir, run_id, num_seeds, config, mode, project):
            logged.append((run_id, num_seeds, mode))

        def log(self, step, per_seed):
            logged.append((step, {k: np.asarray(v).copy() for k, v in per_seed.items()}))

        def finish(self):
            logged.append("finished")

    monkeypatch.setattr(sinks, "WandbSink", Recorder)
    curves = analysis.analyse_rejection(rc, run_dir)
    assert curves["cvar"].shape == (4, 3)
    assert logged[0][1:] == (4, "offline") and "-reject-cvar-step" in logged[0][0] and logged[-1] == "finished"
    assert [row[0] for row in logged[1:-1]] == [0, 1, 2]  # proposals
    for j, (_, row) in enumerate(logged[1:-1]):
        np.testing.assert_array_equal(row["PURD CVaR"], np.asarray(curves["cvar"], np.float64)[:, j])
        assert set(row) >= {"PURD mean", "PURD LTP", "PURD CVaR", "accepted"}
    capsys.readouterr()
    again = analysis.analyse_interpolation(c, run_dir)  # the same pair with the same settings: read, not recomputed
    np.testing.assert_array_equal(again[list(out)[0]]["undiscounted"], out[list(out)[0]]["undiscounted"])
    np.testing.assert_array_equal(analysis.analyse_rejection(rc, run_dir)["cvar"], curves["cvar"])
    assert capsys.readouterr().out.count("already in") == 2
    with pytest.raises(ValueError, match="seeds \\[5\\] are not in the run"):
        analysis.analyse_rejection(small("reject", max_steps=2, seeds=(5,)), run_dir)


def test_presets_name_the_original_operators_and_the_training_run(run_dir):
    c = configs.load("purd", "td3/hopper")
    assert (c.operator, c.learning_rate, c.run_dir) == ("td3_actor_step", 3e-4, "runs/td3-hopper-seed0")
    assert configs.load("purd", "sac/ant").operator == "sac_actor_step"
    p = configs.load("purd", "ppo/hopper")
    assert (p.operator, p.ppo.fraction, p.ppo.max_grad_norm) == ("ppo_minibatch_step", 0.5, 0.1)
    assert configs.load("purd", "td3/hopper/param_noise").operator == "param_noise"
    for name, key, value in (("param_noise_per_step", "param_noise", 3e-4), ("action_noise", "action_noise", 0.1),
                             ("start_noise", "start_noise", 1.0)):
        c = configs.load("purd", f"ppo/hopper/{name}")
        assert c.operator == "none" and c.eval[key] == value, name
    w = configs.load("purd", "td3/hopper/with_action_noise")
    assert (w.operator, w.eval.action_noise, w.eval.num_episodes) == ("td3_actor_step", 0.1, 10)
    with pytest.raises(ValueError, match="unknown perturbation"):
        configs.load("purd", "td3/hopper/wind")
    for name, arg in (("interpolate", "td3/hopper"), ("reject", "td3/hopper"), ("subspaces", "td3/hopper"),
                      ("subspaces", "td3/hopper/quick")):
        assert configs.load(name, arg).run_dir == "runs/td3-hopper-seed0", (name, arg)
    with pytest.raises(ValueError, match="<algo>/<env>"):
        configs.load("reject", "td3/hopper/quick")
    # --run_dir wins; else the preset's run_dir; a directory that is not a run is refused in one line
    assert runs.resolve_run_dir(run_dir, c) == run_dir
    c = configs.load("purd", "td3/hopper")
    c.run_dir = run_dir
    assert runs.resolve_run_dir(None, c) == run_dir
    with pytest.raises(ValueError, match="not a training run directory"):
        runs.resolve_run_dir(None, configs.load("purd", "td3/no_such_env"))
    with pytest.raises(ValueError, match="no run directory"):
        runs.resolve_run_dir(None, configs.load("purd"))
