"""The return-landscape analyses of a run directory (rlland.landscape.analysis): purd.h5 written per snapshot,
re-runs skip finished steps, the study's statistics stored, interpolation and rejection on a tiny TD3 run."""
import numpy as np
import pytest

from rlland import configs, landscape, runs, train
from rlland.landscape import analysis

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
    out = analysis.analyse_purd(c, run_dir)
    assert sorted(out) == [f"default/step_{s}" for s in runs.snapshot_steps(run_dir)]
    groups, attrs, group_attrs = landscape.read_h5(f"{run_dir}/purd.h5")
    for name, d in out.items():
        r = groups[name]["undiscounted"]
        assert r.shape == (2, 4)
        np.testing.assert_allclose(groups[name]["mean"], r.mean(-1), rtol=1e-6)
        np.testing.assert_allclose(groups[name]["cvar"], [float(landscape.cvar(x, c.alpha)) for x in r], rtol=1e-6)
        assert list(group_attrs[name]["seeds"]) == [0, 1]
    assert attrs["rlland_layout"] == "purd"
    before = {k: v["undiscounted"].copy() for k, v in groups.items()}
    capsys.readouterr()
    assert analysis.analyse_purd(c, run_dir) == {}  # everything there with these settings: nothing recomputed
    assert "skipped" in capsys.readouterr().out
    other = analysis.analyse_purd(small("purd", num_samples=3, seeds=(1,)), run_dir)  # other settings: recomputed
    assert all(v["undiscounted"].shape == (1, 3) for v in other.values())
    groups, _, _ = landscape.read_h5(f"{run_dir}/purd.h5")
    assert set(before) == set(groups)


def test_a_constant_purd_still_plots(tmp_path):
    out = {"undiscounted": np.full((1, 8), 5.0), "pre_update": np.array([5.0])}
    analysis.purd_figure(str(tmp_path), 0, [0], out)
    assert (tmp_path / "figures" / "purd_step_0.png").exists()


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path):
    path = str(tmp_path / "purd.h5")
    landscape.write_purd_h5(path, {"a": np.ones((2, 3))})
    with pytest.raises(ValueError):  # fails inside the file, after the first group is written
        landscape.write_purd_h5(path, {"b": np.ones((2, 3)), "c": {"undiscounted": np.ones(3), "x": ["?"]}})
    groups, _, _ = landscape.read_h5(path)
    assert sorted(groups) == ["a"] and groups["a"]["undiscounted"].shape == (2, 3)


def test_interpolation_and_rejection_skip_what_is_done(run_dir, capsys):
    steps = runs.snapshot_steps(run_dir)
    c = small("interpolate", num_points=3, seeds=(0,))
    out = analysis.analyse_interpolation(c, run_dir)
    assert list(out) == [f"seed0_step{steps[0]}__seed0_step{steps[1]}"]
    assert next(iter(out.values()))["undiscounted"].shape == (3, 4)
    rc = small("reject", max_steps=2, num_repeats=2)
    curves = analysis.analyse_rejection(rc, run_dir)
    assert curves["cvar"].shape == (4, 3)
    capsys.readouterr()
    again = analysis.analyse_interpolation(c, run_dir)  # the same pair with the same settings: read, not recomputed
    np.testing.assert_array_equal(again[list(out)[0]]["undiscounted"], out[list(out)[0]]["undiscounted"])
    np.testing.assert_array_equal(analysis.analyse_rejection(rc, run_dir)["cvar"], curves["cvar"])
    assert capsys.readouterr().out.count("already in") == 2
    with pytest.raises(ValueError, match="seeds \\[5\\] are not in the run"):
        analysis.analyse_rejection(small("reject", max_steps=2, seeds=(5,)), run_dir)
