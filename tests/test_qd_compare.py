"""The algorithm-comparison figure (rlland.qd.plotting.compare_runs, experiments/qd_compare.py) on two tiny
synthetic runs in the driver's qd.h5 layout (no compilation)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rlland.sinks import write_h5
from rlland.qd import plotting as qd_plotting

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _write_run(run_dir, algo, evals, qd, elites, max_fit, f_min):
    os.makedirs(run_dir, exist_ok=True)
    qd, elites, max_fit = (np.asarray(v, float) for v in (qd, elites, max_fit))
    history = {"evaluations": np.asarray(evals), "qd_score": qd, "num_elites": elites, "coverage": elites / 10,
               "max_fitness": max_fit, "generations": np.arange(np.shape(evals)[1])}
    write_h5(os.path.join(run_dir, "qd.h5"), history, {"config": json.dumps({"algo": algo}), "f_min": f_min})
    return run_dir


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    ninf = -np.inf
    a = _write_run(str(root / "a"), "map_elites", [[0, 100, 200]] * 2, [[0, 10, 20], [0, 12, 30]],
                   [[0, 1, 2], [0, 1, 3]], [[ninf, 5, 6], [ninf, 4, 8]], f_min=-10.0)
    # PGA-ME in two run directories (2 + 1 seeds), the second on a finer grid and with another f_min
    b1 = _write_run(str(root / "b1"), "pga_me", [[0, 100, 200]] * 2, [[0, 20, 40], [0, 20, 40]],
                    [[0, 2, 4], [0, 2, 4]], [[ninf, 7, 9], [ninf, 7, 9]], f_min=-10.0)
    b2 = _write_run(str(root / "b2"), "pga_me", [[0, 50, 100, 150, 200, 250]], [[0, 5, 10, 15, 20, 25]],
                    [[0, 1, 1, 1, 1, 1]], [[ninf, 1, 2, 3, 4, 5]], f_min=-5.0)
    return a, b1, b2


def test_load_runs_groups_and_reoffsets(run_dirs):
    groups = qd_plotting.load_runs(run_dirs)
    assert sorted(groups) == ["map_elites", "pga_me"]
    np.testing.assert_array_equal(groups["map_elites"]["qd_score"], [[0, 10, 20], [0, 12, 30]])
    pga = groups["pga_me"]
    assert pga["num_runs"] == 2 and pga["qd_score"].shape == (3, 3)
    np.testing.assert_array_equal(pga["evaluations"], [0, 100, 200])
    # b2 re-offset from f_min -5 to -10: qd + num_elites * 5, read at evaluations 0, 100, 200
    np.testing.assert_array_equal(pga["qd_score"][2], [0, 10 + 5, 20 + 5])
    np.testing.assert_array_equal(pga["max_fitness"][2, 1:], [2, 4])


def test_compare_runs_figure_and_summary(run_dirs, tmp_path):
    fig, summary = qd_plotting.compare_runs(run_dirs, title="tiny")
    assert len(fig.axes) == 3
    assert [len(ax.get_lines()) for ax in fig.axes] == [2 + 2 + 3] * 3  # mean + per-seed lines per algorithm
    assert summary["map_elites"]["seeds"] == 2 and summary["pga_me"]["seeds"] == 3
    np.testing.assert_allclose(summary["map_elites"]["qd_score"][0], 25.0)
    np.testing.assert_allclose(summary["pga_me"]["coverage"][0], (0.4 + 0.4 + 0.1) / 3)
    path = qd_plotting.save(fig, str(tmp_path / "cmp.png"))
    assert os.path.getsize(path) > 0
    with pytest.raises(ValueError, match="labels"):
        qd_plotting.compare_runs(run_dirs, labels=["x"])


def test_compare_script(run_dirs, tmp_path):
    out = str(tmp_path / "fig.png")
    res = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "qd_compare.py"),
                          f"--run_dirs={','.join(run_dirs)}", f"--out={out}", "--labels=ME,PGA,PGA"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    assert os.path.exists(out)
    assert "ME (2 seeds)" in res.stdout and "PGA (3 seeds)" in res.stdout
