"""The five studies end to end (rlland.studies, experiments/study.py): each smoke study writes a well-formed
report (sections, finite numbers, figures that exist and are embedded in the html, verdicts computed from the
numbers), a finished study re-run recomputes nothing, a study whose last stages were lost redoes only those, and
the paper configs parse, match the papers' budgets and fit an 80 GB accelerator per the drivers' memory checks.

One module-scoped fixture per study (parametrized), tiny settings: the smoke presets of configs/study.py."""
import os
import re

import numpy as np
import pytest

from rlland import buffers, configs, train
from rlland.qd import driver as qd_driver
from rlland.studies import STUDIES, pipeline, report, stages

SECTIONS = ("## Setting", "## Measured numbers", "## Claims", "## Figures", "## Reproduce")


@pytest.fixture(scope="module", params=STUDIES)
def study(request, tmp_path_factory):
    c = configs.load("study", f"{request.param}/smoke")
    c.progress = False
    run_dir = str(tmp_path_factory.mktemp(request.param) / "study")
    out = pipeline.run(c, run_dir=run_dir)
    return c, run_dir, out


def test_smoke_study_writes_a_well_formed_report(study):
    c, run_dir, out = study
    md = open(out["report.md"]).read()
    page = open(out["report.html"]).read()
    positions = [md.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert "python experiments/study.py --config=configs/study.py:" + f"{c.study}/smoke" in md
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert images and all(os.path.getsize(os.path.join(run_dir, p)) > 0 for p in images)
    assert page.count("src='data:image/png;base64,") == len(images) and "src='figures" not in page
    r = pipeline.module(c.study).report(c, run_dir)  # the report's numbers, as the stage built them
    for title, table in r.tables.items():
        for name, values in table.items():
            assert np.all(np.isfinite(np.asarray(values, float))), (title, name, values)
    assert r.claims
    for claim in r.claims:
        assert np.all(np.isfinite(np.asarray(claim.values, float))), (claim.claim, claim.values)
        assert claim.verdict == report.verdict(claim.values, claim.null, claim.direction)
        assert f"**{claim.verdict}**" in md
        assert out["report"][claim.statistic]["verdict"] == claim.verdict


def test_finished_study_recomputes_nothing(study):
    c, run_dir, _ = study
    files = {p: os.path.getmtime(p) for p in _files(run_dir)}
    again = pipeline.run(c, run_dir=run_dir)
    assert again["_ran"] == []
    assert {p: os.path.getmtime(p) for p in _files(run_dir)} == files


def test_lost_stages_are_redone_and_only_those(study):
    c, run_dir, _ = study
    names = [s.name for s in pipeline.module(c.study).stages(c, run_dir)]
    lost = [names[-1], "report"]
    for name in lost:
        os.remove(stages.marker_path(run_dir, name))
    # finished stages stay finished: the trainings' outputs are not rewritten (the redone analysis stage finds
    # its snapshots in its h5 file and skips them; some analyses rewrite that file with the same results)
    h5 = {p: os.path.getmtime(p) for p in _files(run_dir) if os.path.basename(p) in ("metrics.h5", "qd.h5")}
    again = pipeline.run(c, run_dir=run_dir)
    assert again["_ran"] == lost
    assert {p: os.path.getmtime(p) for p in h5} == h5


def _files(run_dir):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(run_dir) for f in fs
                  if f.endswith((".h5", ".png", ".md", ".html")))


def test_a_changed_config_is_refused(study, tmp_path):
    c, run_dir, _ = study
    if c.study != STUDIES[0]:
        pytest.skip("checked once")
    c2 = configs.load("study", f"{c.study}/smoke")
    c2.reductions = ("changed",)
    with pytest.raises(ValueError, match="different config"):
        pipeline.run(c2, run_dir=run_dir)


def test_verdicts_follow_the_numbers():
    assert report.verdict([1.0, 1.2, 1.1]) == "agree"  # 1.1 +- 0.25
    assert report.verdict([1.0, -0.9, 2.0]) == "partly"
    assert report.verdict([-1.0, -2.0]) == "disagree"
    assert report.verdict([-1.0, -1.1, -1.2], direction="less") == "agree"
    assert report.verdict([np.nan]) == "n/a"
    assert report.verdict([0.5]) == "partly"  # one seed: no interval
    mean, half, n = report.t_interval([1.0, 2.0, 3.0, np.nan])
    assert n == 3 and mean == 2.0 and half == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)


def test_stage_markers_are_written_after_the_stage(tmp_path):
    calls = []

    def ok(progress):
        progress(0.5)
        calls.append("ok")
        return {"x": 1}

    def fail(progress):
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        stages.run_stages(str(tmp_path), [stages.Stage("a", ok), stages.Stage("b", fail)], progress=False)
    assert stages.finished(str(tmp_path), "a")["result"] == {"x": 1} and stages.finished(str(tmp_path), "b") is None
    out = stages.run_stages(str(tmp_path), [stages.Stage("a", ok), stages.Stage("b", ok)], progress=False)
    assert calls == ["ok", "ok"] and out["_ran"] == ["b"] and out["a"] == {"x": 1}


# -- the paper configs --------------------------------------------------------------------------------------
@pytest.fixture
def accelerator_80gb(monkeypatch):
    """The drivers' memory check (rlland.buffers.check_fits) against an 80 GB accelerator's memory."""
    monkeypatch.setattr(buffers, "available_bytes", lambda: 80 * 10**9)


@pytest.mark.parametrize("name", STUDIES)
def test_paper_configs_match_the_papers_and_fit_80gb(name, accelerator_80gb):
    c = configs.load("study", f"{name}/paper")
    assert c.study == name and c.scale == "paper"
    if name == "return_landscapes":  # reference A.1, A.4, A.6, A.7 (README settings)
        t = c.train.td3
        assert (t.env.name, t.num_seeds, t.total_steps) == ("halfcheetah", 20, 1_000_000)
        assert tuple(t.snapshot_steps) == tuple(range(50_000, 1_000_000, 100_000))
        assert c.purd.num_samples == 1000 and c.purd.noise_scale == 3e-4
        assert (c.interpolate.num_points, c.interpolate.num_samples) == (100, 100)
        assert (c.reject.max_steps, c.reject.num_samples, c.reject.num_repeats) == (40, 1000, 10)
    elif name == "pg_subspaces":  # reference B.0-B.4
        assert c.subspaces.k == 100 and c.subspaces.num_samples == 0 and c.subspaces.tol == 1e-4
        assert c.train.sac.total_steps == 1_000_000 and abs(c.train.ppo.total_steps - 1_000_000) < 5_000
        assert (c.train.ppo.agent.unroll_length, c.train.ppo.agent.epochs) == (2048, 10)
        assert 2048 // c.train.ppo.agent.num_minibatches == 64
    elif name == "representation":  # reference A.7 (MuJoCo), A.5
        for t in c.train.values():
            assert abs(t.total_steps - 5_000_000) < 5_000 and t.num_seeds == 5
            assert t.agent.num_envs * t.agent.unroll_length == 2048 and 2048 // t.agent.num_minibatches == 64
            # A.1 TanhNormal policy, A.7 one clipped Adam per network with torch's eps and lr 3e-4
            assert (t.agent.policy, t.agent.clip_per_network, t.agent.adam_eps) == ("tanh_gaussian", True, 1e-8)
            assert (t.agent.learning_rate, t.agent.max_grad_norm, t.agent.vf_coef) == (3e-4, 0.5, 0.5)
        assert [c.train[k].agent.epochs for k in ("low_epochs", "high_epochs")] == [10, 20]
        assert c.train.high_epochs_pfo.agent.pfo_coef == 1.0 and len(c.train.low_epochs.snapshot_steps) == 41
        p = c.plasticity.plasticity
        assert (p.num_envs, p.num_steps, p.epochs) == (4, 1000, 4)
    elif name == "linear_regions":  # reference B.1-B.4
        t = c.train.ppo_relu
        assert tuple(t.agent.hidden_sizes) == (16,) and len(t.snapshot_steps) == 32
        assert c.regions.num_lines == 100 and c.regions.num_episodes.random == 10 and c.regions.length == 0
    else:  # reference C.1-C.3
        assert len(c.qd) == 20
        for q in c.qd.values():
            assert q.total_evals == 1_000_000 and q.num_seeds == 5 and q.task.episode_length == 1000
            assert tuple(q.task.hidden_sizes) == (128, 128)
    for t in c.get("train", {}).values():
        train.validate(t)  # builds the env and agent, raises if the seeds' buffers / rollouts do not fit
    for label in ("pga_me__hopper", "cma_mega_td3_es__ant") if name == "dqd" else ():
        q = c.qd[label]
        setup = qd_driver.build(q)
        buffers.check_fits(setup.buffer_bytes * q.num_seeds, f"{label} replay buffers")
        assert setup.num_generations * qd_driver.make_algo(setup.task, q, setup.metrics_fn).evals_per_generation \
            == 1_000_000


def test_cli_resumes_a_finished_study(study):
    """experiments/study.py on a finished smoke study: nothing runs, the verdicts and the report are printed."""
    import subprocess
    import sys

    c, run_dir, _ = study
    if c.study != STUDIES[0]:
        pytest.skip("checked once")
    root = os.path.join(os.path.dirname(__file__), "..")
    proc = subprocess.run([sys.executable, "experiments/study.py", f"--config=configs/study.py:{c.study}/smoke",
                           f"--run_dir={run_dir}", "--config.progress=False"], cwd=root, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stages run now: none" in proc.stdout and "report.html" in proc.stdout
