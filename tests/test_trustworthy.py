"""Runs that say what happened: diverged seeds flagged and never scored, --force that loses nothing, a finished
run that does not recompile, clear one-line failures."""
from __future__ import annotations

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import checkpoint, divergence, evaluate, runs, train
from rlland.sinks import read_h5

from test_train import leaves_equal, tiny_td3, tree_digest


def poison(state, seed: int):
    """``state`` with every float parameter of ``seed`` set to NaN (a diverged seed)."""
    return state.replace(params=jax.tree.map(
        lambda x: x.at[seed].set(jnp.nan) if jnp.issubdtype(x.dtype, jnp.inexact) else x, state.params))


@pytest.fixture(scope="module")
def td3_setup():
    config = tiny_td3()
    env, agent, chunk = train.validate(config)
    iterations = chunk // train.steps_per_iteration(agent)
    state = jax.jit(jax.vmap(agent.init))(runs.seed_keys(config))
    return config, agent, train.make_chunk(agent, iterations), train.make_eval(agent, 3), state


def test_finite_checks_every_float_leaf():
    assert bool(divergence.finite({"a": jnp.ones(3), "n": jnp.arange(3)}))
    assert not bool(divergence.finite({"a": jnp.array([1.0, jnp.inf]), "n": jnp.arange(3)}))
    assert not bool(divergence.seed_is_finite({"w": jnp.ones(2)}, {"critic_loss": jnp.array([1.0, jnp.nan]),
                                                                   "episode_return": jnp.nan}))
    # NaN in a metric that is not a loss (no episode ended) is no divergence
    assert bool(divergence.seed_is_finite({"w": jnp.ones(2)}, {"episode_return": jnp.nan}))


def test_a_nan_seed_is_flagged_and_the_others_are_unchanged(td3_setup):
    config, agent, chunk, _, state = td3_setup
    clean, m_clean = chunk(jax.tree.map(jnp.copy, state))
    bad, m_bad = chunk(poison(jax.tree.map(jnp.copy, state), 1))
    assert np.asarray(m_clean["finite"]).tolist() == [True, True]
    assert np.asarray(m_bad["finite"]).tolist() == [True, False]
    assert leaves_equal(runs.select_seed(bad, 0), runs.select_seed(clean, 0))  # isolation: seed 0 bitwise


def test_a_non_finite_policy_is_never_scored(td3_setup):
    config, agent, _, eval_fn, state = td3_setup
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    healthy = np.asarray(eval_fn(state.params, keys))
    poisoned = np.asarray(eval_fn(poison(state, 1).params, keys))
    assert np.isfinite(healthy).all()
    np.testing.assert_array_equal(poisoned[0], healthy[0])
    assert np.isnan(poisoned[1]).all()
    one = evaluate.evaluate(agent, runs.select_seed(poison(state, 0).params, 0), keys[0], 2)
    assert all(np.isnan(np.asarray(x)).all() for x in one)


def test_a_diverging_run_is_marked_in_metrics_and_figure(tmp_path):
    result = train.run(tiny_td3(**{"agent.learning_rate": 1e12}), run_dir=str(tmp_path / "run"))
    assert (result.diverged_at > 0).all(), result.diverged_at
    data, _ = read_h5(str(tmp_path / "run" / "metrics.h5"))
    np.testing.assert_array_equal(data["diverged_at"], result.diverged_at)
    last = data["eval/return_mean"][:, -1]
    assert np.isnan(last).all()  # never the maximal return of a NaN state that never terminates
    assert (tmp_path / "run" / "figures" / "learning_curve.png").exists()


def test_on_divergence_stop_ends_the_run(tmp_path):
    result = train.run(tiny_td3(**{"agent.learning_rate": 1e12, "on_divergence": "stop"}),
                       run_dir=str(tmp_path / "run"))
    assert result.train_steps[-1] < 96 and (result.diverged_at > 0).any()
    with pytest.raises(ValueError, match="on_divergence must be one of continue, stop"):
        train.run(tiny_td3(on_divergence="halt"), run_dir=str(tmp_path / "other"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train.run(tiny_td3(), run_dir=str(run_dir))
    return run_dir


def test_force_with_a_changed_width_changes_nothing(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    before = tree_digest(run_dir)
    with pytest.raises(ValueError, match=r"changes the shapes.*agent.hidden_sizes: \[16, 16\] -> \[32, 32\]"):
        train.run(tiny_td3(**{"agent.hidden_sizes": (32, 32), "total_steps": 128}), run_dir=str(run_dir),
                  force=True)
    assert tree_digest(run_dir) == before  # config.json and every checkpoint untouched
    train.run(tiny_td3(), run_dir=str(run_dir))  # and the original command still resumes


def test_refusal_names_old_and_new_values(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    with pytest.raises(ValueError, match=r"agent.learning_rate: 0.0003 -> 0.001"):
        train.run(tiny_td3(**{"agent.learning_rate": 1e-3}), run_dir=str(run_dir))


def test_force_applies_a_changed_learning_rate_and_keeps_the_old_config(finished_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    old = (run_dir / "config.json").read_text()
    result = train.run(tiny_td3(**{"agent.learning_rate": 1e-3, "total_steps": 128}), run_dir=str(run_dir),
                       force=True)
    assert "learning_rate 0.0003 -> 0.001" in capsys.readouterr().out
    np.testing.assert_allclose(np.asarray(result.state.hparams["learning_rate"]), 1e-3)
    kept = [p for p in os.listdir(run_dir) if p.startswith("config.") and p != "config.json"]
    assert len(kept) == 1 and (run_dir / kept[0]).read_text() == old
    assert json.loads((run_dir / "config.json").read_text())["agent"]["learning_rate"] == 1e-3


def test_a_finished_run_returns_without_compiling(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    again = train.run(tiny_td3(), run_dir=str(run_dir))
    assert again.compile_seconds == 0.0 and again.train_steps[-1] == 96


def test_a_full_disk_is_one_line_and_a_retry_resumes(finished_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)

    def full(self, step, args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.ocp.CheckpointManager, "save", full)
    with pytest.raises(OSError, match=r"^cannot write checkpoint 128 to .*checkpoints: no space left on device$"):
        train.run(tiny_td3(total_steps=128), run_dir=str(run_dir))
    monkeypatch.undo()
    result = train.run(tiny_td3(total_steps=128), run_dir=str(run_dir))
    assert result.train_steps[-1] == 128


def test_ppo_memory_is_checked_before_anything_is_written(tmp_path):
    from test_train import tiny_ppo

    config = tiny_ppo(num_seeds=10**9)
    with pytest.raises(ValueError, match=r"PPO rollouts \(4 envs x 8 steps\) needs .* GiB.*reduce num_seeds"):
        train.run(config, run_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_run_ids_are_stable_and_not_the_basename(tmp_path):
    a, b = tmp_path / "a" / "run", tmp_path / "b" / "run"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    ia, ib = runs.run_id(str(a)), runs.run_id(str(b))
    assert ia != ib and runs.run_id(str(a)) == ia  # same basename, different wandb ids; stable on resume


def test_unreadable_files_are_named(finished_run, tmp_path):
    bad = tmp_path / "metrics.h5"
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(OSError, match=f"cannot read {bad}"):
        read_h5(str(bad))
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    for p in (run_dir / "snapshots" / "32").rglob("*"):
        if p.is_file() and p.parent.name == "d":  # truncate the array data of the snapshot
            p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(ValueError, match=f"snapshot 32 of {run_dir} could not be read"):
        runs.load_snapshot(str(run_dir), 32, params_only=True)
