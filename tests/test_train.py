"""The experiment driver (issue 3): ``train.run``, checkpoints and exact resume after a kill, snapshots, metrics.h5,
wandb offline runs, figures, bad input, the CLI, sharding the seed axis and vmap over seeds.

Every run is tiny (probe tasks, hidden (16, 16), buffers of a few hundred transitions, ~100 env steps) and the
configs share their static shapes, so each kernel compiles once per process and later processes (the CLI
subprocesses) load it from the persistent compilation cache set up in conftest.py.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

from rlland import checkpoint, sharding, train, runs
from rlland.sinks import read_h5

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = str(jax.config.jax_compilation_cache_dir or REPO / ".jax_cache")

_spec = importlib.util.spec_from_file_location("rlland_train_configs", REPO / "configs" / "train.py")
configs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(configs)

# The tiny TD3 run, as CLI overrides and as a config (they must stay the same: tests compare the two).
TD3_OVERRIDES = {
    "num_seeds": 2, "env.episode_length": 5, "agent.hidden_sizes": (16, 16), "agent.num_envs": 2,
    "agent.batch_size": 8, "agent.buffer_capacity": 128, "agent.warmup_steps": 16, "total_steps": 96,
    "eval_interval": 32, "eval_episodes": 3, "checkpoint_interval": 32, "keep_checkpoints": 3,
    "snapshot_steps": (32, 64), "wandb.mode": "disabled", "progress": False,
}


def _apply(config, overrides: dict):
    for path, value in overrides.items():
        *parents, leaf = path.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config


def tiny_td3(**overrides):
    return _apply(_apply(configs.get_config("td3/probe_action"), TD3_OVERRIDES), overrides)


def tiny_ppo(**overrides):
    c = configs.get_config("ppo/probe_action")
    c.env.episode_length = 5
    c.agent.update(hidden_sizes=(16, 16), num_envs=4, unroll_length=8, num_minibatches=2, epochs=1)
    c.update(num_seeds=2, total_steps=96, eval_interval=32, eval_episodes=3, checkpoint_interval=32,
             snapshot_steps=(64,), progress=False)
    c.wandb.mode = "disabled"
    return _apply(c, overrides)


def cli_args(config_arg: str, overrides: dict) -> list[str]:
    return [f"--config=configs/train.py:{config_arg}"] + [
        f"--config.{k}={v}" if not isinstance(v, tuple) else f"--config.{k}=({','.join(map(str, v))},)"
        for k, v in overrides.items()]


# -- helpers --------------------------------------------------------------------------------------------------
def leaves_equal(a, b) -> bool:
    """Same tree structure and every leaf bitwise equal (NaNs in the same places)."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    return ta == tb and all(np.asarray(x).dtype == np.asarray(y).dtype and
                            np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True) for x, y in zip(la, lb))


def assert_tree_close(a, b, rtol, atol):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol)


def h5_equal(path_a, path_b):
    a, _ = read_h5(path_a)
    b, _ = read_h5(path_b)
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k], equal_nan=True), k


def latest_state(run_dir):
    """(step, state, host) of the newest checkpoint of ``run_dir``."""
    config, _, agent = runs.load_run(str(run_dir))
    abstract = sharding.with_sharding(runs.abstract_state(agent, config.num_seeds), config.num_seeds)
    return checkpoint.Checkpoints(str(run_dir), read_only=True).restore_latest(abstract)


def restore_step(run_dir, step):
    config, _, agent = runs.load_run(str(run_dir))
    abstract = sharding.with_sharding(runs.abstract_state(agent, config.num_seeds), config.num_seeds)
    ckpts = checkpoint.Checkpoints(str(run_dir), read_only=True)
    out = ckpts.manager.restore(step, args=checkpoint.ocp.args.Composite(
        state=checkpoint.ocp.args.StandardRestore(checkpoint.to_dict(abstract))))
    return checkpoint.from_dict(abstract, out["state"])


def tree_digest(root) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256), to show that nothing on disk changed."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


# A driver for subprocesses: the persistent compilation cache of this test session, an optional pause after each
# checkpoint save (so a kill lands between checkpoints however loaded the machine is), then the CLI script.
DRIVER = textwrap.dedent("""
    import os, runpy, sys, time
    import rlland, jax
    jax.config.update("jax_compilation_cache_dir", os.environ["RLLAND_JAX_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    pause = float(os.environ.get("RLLAND_TEST_PAUSE_AFTER_CHECKPOINT", "0"))
    if pause:
        from rlland import checkpoint
        save = checkpoint.Checkpoints.save
        def paused(self, *args, **kwargs):
            save(self, *args, **kwargs)
            time.sleep(pause)
        checkpoint.Checkpoints.save = paused
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def subprocess_env(**extra) -> dict:
    env = dict(os.environ, RLLAND_JAX_CACHE=CACHE_DIR, WANDB_MODE="disabled", WANDB_SILENT="true")
    env.update(extra)
    return env


def cli(args, env=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, "experiments/train.py", *args], cwd=REPO,
                          env=env or subprocess_env(), capture_output=True, text=True, **kwargs)


# -- module-scoped runs ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def td3_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("td3") / "run"
    return train.run(tiny_td3(), run_dir=str(run_dir))


@pytest.fixture(scope="module")
def td3_four_seeds(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("td3x4") / "run"
    return train.run(tiny_td3(num_seeds=4, snapshot_steps=()), run_dir=str(run_dir))


# -- 1. runs, results, metrics.h5, figures --------------------------------------------------------------------
def _check_result(result, config):
    S, E = config.num_seeds, config.total_steps // config.eval_interval
    chunk = train.chunk_steps(config, None)
    C = config.total_steps // chunk
    assert result.eval_returns.shape == (S, E, config.eval_episodes)
    assert result.eval_return_mean.shape == (S, E)
    np.testing.assert_array_equal(result.eval_steps, np.arange(1, E + 1) * config.eval_interval)
    np.testing.assert_array_equal(result.train_steps, np.arange(1, C + 1) * chunk)
    assert result.train_metrics and all(v.shape == (S, C) for v in result.train_metrics.values())
    assert np.all(np.isfinite(result.eval_returns))
    assert result.compile_seconds > 0
    # the state is seed-batched and has trained for total_steps (env_steps counts every env of a seed)
    np.testing.assert_array_equal(result.state.env_steps, np.full(S, config.total_steps))
    assert all(np.shape(x)[0] == S for x in jax.tree.leaves(result.state))

    run_dir = Path(result.run_dir)
    data, attrs = read_h5(run_dir / "metrics.h5")
    np.testing.assert_array_equal(data["eval/returns"], result.eval_returns)
    np.testing.assert_array_equal(data["eval/return_mean"], result.eval_returns.mean(-1))
    np.testing.assert_array_equal(data["eval/steps"], result.eval_steps)
    np.testing.assert_array_equal(data["train/steps"], result.train_steps)
    for k, v in result.train_metrics.items():
        np.testing.assert_array_equal(data[f"train/{k}"], v)
    assert json.loads(attrs["config"])["algo"] == config.algo
    assert json.loads((run_dir / "config.json").read_text())["num_seeds"] == S
    png = run_dir / "figures" / "learning_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert checkpoint.Checkpoints(str(run_dir), read_only=True).steps()[-1] == config.total_steps
    assert runs.snapshot_steps(str(run_dir)) == sorted(config.snapshot_steps)


def test_td3_run_results_h5_and_figure(td3_run):
    _check_result(td3_run, tiny_td3())
    # the seeds differ (fold_in keys), and the two seeds' eval returns are not all identical
    p = jax.tree.leaves(td3_run.state.params["actor"])[0]
    assert not np.array_equal(p[0], p[1])
    assert {"critic_loss", "actor_loss", "episode_return", "episodes"} <= set(td3_run.train_metrics)


def test_ppo_run_results_h5_and_figure(tmp_path):
    config = tiny_ppo()
    result = train.run(config, run_dir=str(tmp_path / "ppo"))
    assert type(result.state).__name__ == "PPOState"
    _check_result(result, config)
    snap = runs.load_snapshot(str(tmp_path / "ppo"), 64)
    assert type(snap) is type(result.state) and snap.env_steps.tolist() == [64, 64]


def test_separate_evaluation_env(tmp_path):
    """config.eval_env: the training task with other settings. probe_time_limit pays 1 per step until the time
    limit, so an evaluation return is exactly the evaluation env's episode length (3 here, 5 in training)."""
    config = tiny_td3(total_steps=32, snapshot_steps=(), checkpoint_interval=32, **{"env.name": "probe_time_limit"})
    config.eval_env.episode_length = 3
    result = train.run(config, run_dir=str(tmp_path / "eval_env"))
    np.testing.assert_array_equal(result.eval_returns, 3.0)
    assert 5.0 in result.train_metrics["episode_return"]  # training episodes still end at 5 steps
    config.eval_env.update(episode_length=0, fixed_start=True)
    env, _, _, eval_env = train.build_checked(config)
    assert (eval_env.episode_length, eval_env.fixed_start, env.fixed_start) == (5, True, False)
    default_env, _, _, default_eval = train.build_checked(tiny_td3())
    assert default_eval is default_env  # no settings: evaluate on the training env itself
    config.eval_env.frame_skip = 2
    with pytest.raises(ValueError, match=r"config.eval_env: unknown keys \['frame_skip'\]"):
        train.validate(config)


# -- 2. resume after SIGKILL, bitwise ---------------------------------------------------------------------------
def test_cli_killed_and_resumed_run_is_bitwise_identical(tmp_path):
    """Killed after its first checkpoint and resumed: state, checkpoints, snapshots and metrics.h5 bitwise equal
    to an uninterrupted run, and the offline wandb runs of both sessions hold every logged row."""
    overrides = dict(TD3_OVERRIDES, total_steps=192, keep_checkpoints=2, **{"wandb.mode": "offline"})
    args = cli_args("td3/probe_action", overrides)
    killed, log = tmp_path / "killed", tmp_path / "killed.log"
    wandb_env = {**wandb_home(tmp_path), "WANDB_MODE": "offline"}
    with open(log, "w") as err:  # a file, not a pipe: a full pipe would block the child
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, "experiments/train.py", *args, f"--run_dir={killed}"],
                                cwd=REPO, env=subprocess_env(RLLAND_TEST_PAUSE_AFTER_CHECKPOINT="3", **wandb_env),
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 240
        while not (killed / "checkpoints").is_dir() or not any(p.name.isdigit()
                                                                for p in (killed / "checkpoints").iterdir()):
            assert proc.poll() is None, f"the run ended before its first checkpoint: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    steps = checkpoint.Checkpoints(str(killed), read_only=True).steps()
    assert steps and steps[-1] < overrides["total_steps"], steps  # it really died mid-way

    out = cli(args + [f"--run_dir={killed}"], env=subprocess_env(**wandb_env), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"resuming {killed} from env step {steps[-1]}" in out.stdout
    assert "final eval return per seed" in out.stdout

    # the same config, uninterrupted, in this process
    config = runs.read_config(str(killed))
    config.wandb.mode = "disabled"
    reference = train.run(config, run_dir=str(tmp_path / "reference"))
    step_a, state_a, host_a = latest_state(killed)
    step_b, state_b, host_b = latest_state(tmp_path / "reference")
    assert step_a == step_b == overrides["total_steps"]
    assert leaves_equal(state_a, state_b)
    assert leaves_equal(state_a, reference.state)
    assert leaves_equal(host_a, host_b)
    h5_equal(killed / "metrics.h5", tmp_path / "reference" / "metrics.h5")
    for s in overrides["snapshot_steps"]:
        assert leaves_equal(runs.load_snapshot(str(killed), s),
                            runs.load_snapshot(str(tmp_path / "reference"), s))

    # wandb: both sessions logged to the same id per seed (one offline folder each); the resumed session holds
    # every row of metrics.h5 (the kill may have kept the first session's rows from reaching its file), and any
    # row the killed session did write equals the resumed one's
    histories = wandb_histories(killed)
    rid = runs.run_id(str(killed))
    assert sorted(histories) == [f"{rid}-seed0", f"{rid}-seed1"]
    assert all(len(sessions) == 2 for sessions in histories.values())
    for seed in range(2):
        killed_session, resumed_session = histories[f"{rid}-seed{seed}"]
        rows: dict[int, dict] = {}
        for h in resumed_session:
            rows.setdefault(h["_step"], {}).update(h)
        for h in killed_session:
            assert all(rows[h["_step"]][k] == v for k, v in h.items() if k[0] != "_"), h["_step"]
        train_rows = sorted(s for s, r in rows.items() if "train/critic_loss" in r)
        np.testing.assert_array_equal(train_rows, reference.train_steps)
        np.testing.assert_array_equal(np.float32([rows[s]["train/critic_loss"] for s in train_rows]),
                                      reference.train_metrics["critic_loss"][seed])
        eval_rows = sorted(s for s, r in rows.items() if "eval/return_mean" in r)
        np.testing.assert_array_equal(eval_rows, reference.eval_steps)
        np.testing.assert_array_equal(np.float32([rows[s]["eval/return_mean"] for s in eval_rows]),
                                      reference.eval_return_mean[seed])


# -- 3. snapshots ---------------------------------------------------------------------------------------------
def test_snapshot_is_the_state_at_that_step(td3_run, tmp_path):
    run_dir = td3_run.run_dir
    stopped = train.run(tiny_td3(total_steps=64), run_dir=str(tmp_path / "stopped"))
    snap = runs.load_snapshot(run_dir, 64)
    assert type(snap) is type(td3_run.state)
    assert not train.buffer_wraps(tiny_td3(), runs.build(tiny_td3())[1])  # 96 steps into 128 slots
    np.testing.assert_array_equal(snap.buffer.size, [64, 64])
    np.testing.assert_array_equal(snap.buffer.cursor, [64, 64])
    assert leaves_equal(snap, stopped.state)  # params, optimiser, targets, buffer (data included), keys, ...
    _, _, agent = runs.load_run(run_dir)  # a prebuilt agent, and params only (no replay data restored)
    assert leaves_equal(runs.load_snapshot(run_dir, 64, agent, params_only=True), stopped.state.params)
    # the final buffer holds more, so the view was cut at the snapshot's size
    assert int(td3_run.state.buffer.size[0]) == 96
    # the snapshot stored no replay data (it borrows from the latest checkpoint)
    assert checkpoint._manager(os.path.join(run_dir, "snapshots"), read_only=True, item_handlers=
                               checkpoint.ocp.StandardCheckpointHandler()).item_metadata(64)["buffer"].keys() \
        == {"cursor", "size"}

    one = runs.select_seed(snap, 1)
    assert type(one) is type(snap)
    assert np.shape(one.buffer.size) == () and int(one.buffer.size) == 64
    for x, y in zip(jax.tree.leaves(one), jax.tree.leaves(stopped.state)):
        np.testing.assert_array_equal(x, np.asarray(y)[1])
    with pytest.raises(ValueError, match="available"):
        runs.load_snapshot(run_dir, 48)


def test_snapshot_of_a_wrapping_buffer_is_exact(tmp_path):
    # the tiny run's own 128 slots (its kernels are compiled already): 192 steps wrap them, the snapshot at 160 is of
    # a wrapped buffer (cursor 32) and the last 32 steps overwrite part of it
    config = tiny_td3(total_steps=192, snapshot_steps=(160,), keep_checkpoints=1)
    train.run(config, run_dir=str(tmp_path / "wrap"))
    stopped = train.run(tiny_td3(total_steps=160), run_dir=str(tmp_path / "stopped"))
    snap = runs.load_snapshot(str(tmp_path / "wrap"), 160)
    np.testing.assert_array_equal(snap.buffer.size, [128, 128])
    np.testing.assert_array_equal(snap.buffer.cursor, [32, 32])
    assert leaves_equal(snap, stopped.state)
    final = latest_state(tmp_path / "wrap")[1]
    assert not np.array_equal(final.buffer.data.obs, snap.buffer.data.obs) or \
        not np.array_equal(final.buffer.data.action, snap.buffer.data.action)  # the final buffer was overwritten


def test_snapshot_refuses_an_inexact_buffer_view(td3_run, tmp_path):
    """A snapshot without replay data needs a checkpoint at least as new as it whose buffer has not wrapped."""
    run_dir = tmp_path / "run"
    shutil.copytree(td3_run.run_dir, run_dir)
    for step in (64, 96):  # leave only the checkpoint at 32: older than the snapshot at 64
        shutil.rmtree(run_dir / "checkpoints" / str(step))
    assert runs.load_snapshot(str(run_dir), 32).buffer.size.tolist() == [32, 32]
    with pytest.raises(ValueError, match="older than the snapshot"):
        runs.load_snapshot(str(run_dir), 64)


# -- 4. bad input ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"env.name": "probe_nonexistent"}, r"unknown environment .*valid names: .*probe_constant"),
    ({"algo": "ddpg"}, r"unknown algorithm 'ddpg'; valid: td3, sac, ppo"),
    ({"agent.learning_rate": -1e-3}, r"learning_rate must be > 0"),
    ({"eval_interval": 33}, r"multiples of the env steps per iteration \(2\)"),
    ({"agent.batch_size": 256}, r"batch_size \(256\) is larger than buffer_capacity \(128\)"),
    ({"num_seeds": 0}, r"num_seeds must be > 0"),
    ({"total_steps": 100}, r"total_steps \(100\) must be a multiple of the chunk"),
    ({"wandb.mode": "online!"}, r"wandb.mode must be"),
    ({"agent.buffer_capacity": 10**12}, r"2 replay buffers needs .* GiB but only .* free"),
])
def test_invalid_config_fails_before_writing(tmp_path, change, message):
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        train.run(tiny_td3(**change), run_dir=str(run_dir))
    assert not run_dir.exists()


def test_invalid_config_leaves_an_existing_run_untouched(td3_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(td3_run.run_dir, run_dir)
    before = tree_digest(run_dir)
    with pytest.raises(ValueError, match="learning_rate"):
        train.run(tiny_td3(**{"agent.learning_rate": -1.0}), run_dir=str(run_dir))
    assert tree_digest(run_dir) == before


def test_unwritable_run_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="not writable"):
        train.run(tiny_td3(), run_dir=str(blocker / "run"))
    if os.geteuid() != 0:  # root writes through permissions
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="not writable"):
            train.run(tiny_td3(), run_dir=str(locked / "run"))


def test_different_config_is_refused_unless_forced(td3_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(td3_run.run_dir, run_dir)
    before = tree_digest(run_dir)
    with pytest.raises(ValueError, match=r"different config \(differs in \['agent'\]\).*force"):
        train.run(tiny_td3(**{"agent.learning_rate": 1e-3}), run_dir=str(run_dir))
    with pytest.raises(ValueError, match=r"differs in \['seed'\]"):
        train.run(tiny_td3(seed=7), run_dir=str(run_dir))
    assert tree_digest(run_dir) == before
    # the same config resumes a finished run without changing its results
    again = train.run(tiny_td3(), run_dir=str(run_dir))
    assert leaves_equal(again.state, td3_run.state)
    np.testing.assert_array_equal(again.eval_returns, td3_run.eval_returns)
    # forced: accepted, and config.json says what it now holds
    forced = train.run(tiny_td3(**{"agent.learning_rate": 1e-3}), run_dir=str(run_dir), force=True)
    assert json.loads((run_dir / "config.json").read_text())["agent"]["learning_rate"] == 1e-3
    assert forced.train_steps[-1] == 96


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(td3_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(td3_run.run_dir, run_dir)
    data_files = [p for p in (run_dir / "checkpoints" / "96" / "state").rglob("*") if p.is_file()
                  and p.parent.name == "d"]
    assert data_files
    for p in data_files:  # truncate the array data of the newest checkpoint
        p.write_bytes(p.read_bytes()[:7])
    with pytest.warns(UserWarning, match="checkpoint at step 96 could not be restored") as record:
        result = train.run(tiny_td3(), run_dir=str(run_dir))
    assert any("checkpoints.failed" in str(w.message) for w in record)
    # resumed from 64 and recomputed 96: the same results as the intact run
    assert leaves_equal(result.state, td3_run.state)
    h5_equal(run_dir / "metrics.h5", Path(td3_run.run_dir) / "metrics.h5")
    # the bad checkpoint was kept aside (not deleted) and step 96 was written again, intact
    assert (run_dir / "checkpoints.failed" / "96" / "state").is_dir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step, state, _ = latest_state(run_dir)
    assert step == 96 and leaves_equal(state, td3_run.state)


def test_no_restorable_checkpoint_is_an_error_not_a_restart(td3_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(td3_run.run_dir, run_dir)
    for p in (run_dir / "checkpoints").rglob("_METADATA"):
        p.write_text("garbage")
    before = tree_digest(run_dir)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="could be restored.*nothing was moved"):
        train.run(tiny_td3(), run_dir=str(run_dir))
    assert tree_digest(run_dir) == before  # metrics, checkpoints, snapshots: all as they were


# -- 5. CLI ----------------------------------------------------------------------------------------------------
def test_cli_mistyped_override_lists_valid_keys():
    out = cli(["--config=configs/train.py:td3/probe_constant", "--config.agent.learning_rat=1e-3"], timeout=120)
    assert out.returncode != 0
    assert "unknown key 'learning_rat'" in out.stderr
    assert "valid keys in config.agent:" in out.stderr and "learning_rate" in out.stderr
    assert "batch_size" in out.stderr and "Traceback" not in out.stderr


def test_study_default_configs():
    for arg in ("td3/inverted_pendulum", "sac/inverted_pendulum"):
        c = configs.get_config(arg)
        assert c.total_steps == 1_000_000 and c.eval_interval == 10_000 and c.wandb.mode == "offline"
        assert tuple(c.snapshot_steps) == tuple(range(50_000, 1_000_000, 100_000))
    assert train.validate(configs.get_config("td3/inverted_pendulum"))[2] == 10_000  # chunk: gcd of the stops
    quick = configs.get_config()  # the README's default run
    _, agent, chunk = train.validate(quick)
    assert quick.algo == "ppo" and quick.num_seeds > 1 and quick.total_steps % chunk == 0
    relu = configs.get_config("ppo_relu/inverted_pendulum")  # the linear-regions preset: PPO as the study's
    assert (relu.algo, relu.agent.activation, relu.agent.normalize_observations) == ("ppo", "relu", True)
    assert relu.total_steps == configs.get_config("ppo/inverted_pendulum").total_steps
    assert train.validate(relu)[1].actor.activation == "relu"
    with pytest.raises(ValueError, match="<algo>/<env>"):
        configs.get_config("td3")


# -- 6. wandb offline ------------------------------------------------------------------------------------------
def _wandb_records(path: Path):
    """Records of a ``.wandb`` file: a 7-byte header, then LevelDB-log framing (32 KiB blocks; each chunk has a
    4-byte CRC, 2-byte length, 1-byte type: 1 full, 2 first, 3 middle, 4 last) around protobuf ``Record``s."""
    from wandb.proto import wandb_internal_pb2

    buf = path.read_bytes()
    assert buf[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(buf):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(buf[pos + 4:pos + 6], "little"), buf[pos + 6]
        data, pos = buf[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending + data if kind == 4 else data)
            yield record
        elif kind == 2:
            pending = data
        elif kind == 3:
            pending += data


def wandb_home(tmp_path) -> dict[str, str]:
    """wandb's cache/config/data folders inside the test's tmp_path (nothing written to the user's home)."""
    return {var: str(tmp_path / "wandb_home")
            for var in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR")}


def wandb_histories(run_dir: Path, group: str | None = None) -> dict[str, list[list[dict]]]:
    """``{wandb run id: [history rows of each offline session]}`` of ``run_dir/wandb`` (optionally asserting
    every run's group). Sessions are in time order (the folders are ``offline-run-<time>-<id>``); a killed
    session's file can hold no record at all."""
    out: dict[str, list[list[dict]]] = {}
    for f in sorted((run_dir / "wandb").glob("offline-run-*/*.wandb")):
        records = list(_wandb_records(f))
        for r in records:
            if r.WhichOneof("record_type") == "run":
                assert r.run.run_id == f.parent.name.split("-", 3)[3]
                assert group is None or r.run.run_group == group
        out.setdefault(f.parent.name.split("-", 3)[3], []).append(
            [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
             for r in records if r.WhichOneof("record_type") == "history"])
    return out


def test_wandb_offline_one_run_per_seed(tmp_path, monkeypatch):
    for var, value in wandb_home(tmp_path).items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run_dir = tmp_path / "exp"
    result = train.run(tiny_td3(**{"wandb.mode": "offline"}), run_dir=str(run_dir))
    rid = runs.run_id(str(run_dir))
    histories = wandb_histories(run_dir, group=f"exp-{rid}")
    assert sorted(histories) == [f"{rid}-seed0", f"{rid}-seed1"]
    assert all(len(sessions) == 1 for sessions in histories.values())
    seen = {int(i.rsplit("seed", 1)[1]): sessions[0] for i, sessions in histories.items()}
    for seed, history in seen.items():
        evals = [(h["_step"], h["eval/return_mean"]) for h in history if "eval/return_mean" in h]
        assert [s for s, _ in evals] == result.eval_steps.tolist()
        np.testing.assert_array_equal(np.float32([v for _, v in evals]), result.eval_return_mean[seed])
        np.testing.assert_array_equal(np.float32([h["train/critic_loss"] for h in history]),
                                      result.train_metrics["critic_loss"][seed])
    assert seen[0] != seen[1]


# -- 7. sharding over 4 (forced host) devices ------------------------------------------------------------------
SHARDED = textwrap.dedent("""
    import json, os, sys
    import rlland, jax
    jax.config.update("jax_compilation_cache_dir", os.environ["RLLAND_JAX_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from rlland import runs, train
    config = runs.read_config(sys.argv[1])
    result = train.run(config, run_dir=sys.argv[2])
    leaf = jax.tree.leaves(result.state.params)[0]
    print(json.dumps({"devices": jax.device_count(), "leaf_devices": len(leaf.sharding.device_set),
                      "spec": list(getattr(leaf.sharding, "spec", ())),
                      "shard_shapes": sorted({tuple(s.data.shape) for s in leaf.addressable_shards}),
                      "xla_flags": os.environ["XLA_FLAGS"]}))
""")


def test_four_devices_shard_the_seed_axis(td3_four_seeds, tmp_path):
    xla_flags = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    out = subprocess.run([sys.executable, "-c", SHARDED, os.path.join(td3_four_seeds.run_dir),
                          str(tmp_path / "sharded")], cwd=REPO, env=subprocess_env(XLA_FLAGS=xla_flags),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["devices"] == 4 and info["leaf_devices"] == 4
    assert info["spec"] == ["seed"]
    assert len(info["shard_shapes"]) == 1 and info["shard_shapes"][0][0] == 1  # one seed per device
    assert "--xla_cpu_enable_concurrency_optimized_scheduler=false" in info["xla_flags"]
    # the same per-seed results as the 1-device run of the same config (restored here, on one device).
    # Tolerance: XLA may fuse and order float32 reductions differently for a batch of 1 than of 4; 1e-5 relative.
    step, sharded_state, _ = latest_state(tmp_path / "sharded")
    assert step == 96
    assert_tree_close(sharded_state, td3_four_seeds.state, rtol=1e-5, atol=1e-6)
    data, _ = read_h5(tmp_path / "sharded" / "metrics.h5")
    np.testing.assert_allclose(data["eval/returns"], td3_four_seeds.eval_returns, rtol=1e-5, atol=1e-6)
    # a run checkpointed on 4 devices resumes on 1 (total_steps may grow on resume)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        longer = train.run(tiny_td3(num_seeds=4, snapshot_steps=(), total_steps=128),
                           run_dir=str(tmp_path / "sharded"))
    assert not [w for w in caught if "could not be restored" in str(w.message)]
    np.testing.assert_array_equal(longer.train_steps, [32, 64, 96, 128])
    np.testing.assert_array_equal(longer.eval_returns[:, :3], data["eval/returns"])


# -- 8. vmap over seeds ----------------------------------------------------------------------------------------
def test_seed_zero_of_a_batch_equals_a_single_seed_run(td3_four_seeds, tmp_path):
    single = train.run(tiny_td3(num_seeds=1, snapshot_steps=()), run_dir=str(tmp_path / "one"))
    keys = runs.seed_keys(tiny_td3(num_seeds=4))
    np.testing.assert_array_equal(keys[0], runs.seed_keys(tiny_td3(num_seeds=1))[0])
    assert len({tuple(np.asarray(k).tolist()) for k in keys}) == 4
    # Tolerance as above: a vmapped batch of 4 and of 1 may round float32 reductions differently.
    assert_tree_close(runs.select_seed(td3_four_seeds.state, 0), runs.select_seed(single.state, 0),
                      rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(td3_four_seeds.eval_returns[:1], single.eval_returns, rtol=1e-5, atol=1e-6)
    # and seed 1 is a different seed
    assert not np.allclose(jax.tree.leaves(td3_four_seeds.state.params["actor"])[0][1],
                           jax.tree.leaves(single.state.params["actor"])[0][0])
