"""Many processes on jax.distributed (issue 19): two CPU processes x two host devices each, a local coordinator,
``experiments/train.py --distributed`` on a 2-point x 2-seed sweep (4 members, one per global device).

Both processes are killed (SIGKILL, right after their first checkpoint, at the same point of the run so the
test does not depend on timing) and launched again; the resumed run must equal a 1-process run of the same
config in this process. Four process launches in all (two at a time), every wait with a timeout.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from rlland import checkpoint, runs, sharding, train
from rlland.sinks import read_h5

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = str(jax.config.jax_compilation_cache_dir or REPO / ".jax_cache")
TIMEOUT = 300

OVERRIDES = ["--config.num_seeds=2", "--config.env.episode_length=5", "--config.agent.hidden_sizes=(16,16)",
             "--config.agent.num_envs=2", "--config.agent.batch_size=8", "--config.agent.buffer_capacity=128",
             "--config.agent.warmup_steps=16", "--config.total_steps=96", "--config.eval_interval=32",
             "--config.eval_episodes=3", "--config.checkpoint_interval=32", "--config.keep_checkpoints=3",
             "--config.snapshot_steps=(32,64)", "--config.wandb.mode=disabled", "--config.progress=False",
             "--config.sweep.learning_rate=(0.001,0.003)"]

# One process of the run: the test session's compilation cache; with RLLAND_TEST_KILL_AFTER=<step>, SIGKILL
# itself right after that checkpoint is written (after a barrier: every process has finished writing it).
WORKER = textwrap.dedent("""
    import os, runpy, signal, sys
    import rlland, jax
    jax.config.update("jax_compilation_cache_dir", os.environ["RLLAND_JAX_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    kill_after = int(os.environ.get("RLLAND_TEST_KILL_AFTER", "0"))
    if kill_after:
        from rlland import checkpoint, distributed
        save = checkpoint.Checkpoints.save
        def save_then_die(self, step, *args, **kwargs):
            save(self, step, *args, **kwargs)
            if step == kill_after:
                distributed.barrier("test: checkpoint written everywhere")
                os.kill(os.getpid(), signal.SIGKILL)
        checkpoint.Checkpoints.save = save_then_die
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch(run_dir: Path, log_dir: Path, tag: str, **extra_env) -> list[tuple[subprocess.Popen, Path]]:
    """Two processes of experiments/train.py --distributed (2 host devices each), stdout+stderr to files."""
    port = free_port()
    xla = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    env = dict(os.environ, XLA_FLAGS=xla, RLLAND_JAX_CACHE=CACHE_DIR, WANDB_MODE="disabled", **extra_env)
    procs = []
    for i in range(2):
        log = log_dir / f"{tag}-{i}.log"
        with open(log, "w") as f:  # a file, not a pipe: a full pipe would block the child
            procs.append((subprocess.Popen(
                [sys.executable, "-c", WORKER, "experiments/train.py", "--config=configs/train.py:td3/probe_action",
                 *OVERRIDES, f"--run_dir={run_dir}", "--distributed", f"--coordinator_address=localhost:{port}",
                 "--num_processes=2", f"--process_id={i}"], cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT),
                log))
    return procs


def wait_all(procs) -> list[int]:
    deadline = time.monotonic() + TIMEOUT
    codes = []
    try:
        for proc, log in procs:
            try:
                codes.append(proc.wait(timeout=max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pytest.fail(f"a process did not finish in {TIMEOUT}s: {log.read_text()[-3000:]}")
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    return codes


def test_two_processes_killed_and_resumed_equal_one_process(tmp_path):
    run_dir = tmp_path / "distributed"
    killed = launch(run_dir, tmp_path, "killed", RLLAND_TEST_KILL_AFTER="32")
    codes = wait_all(killed)
    assert codes == [-signal.SIGKILL] * 2, [log.read_text()[-3000:] for _, log in killed]
    assert checkpoint.Checkpoints(str(run_dir), read_only=True).steps() == [32]  # it really died mid-way

    resumed = launch(run_dir, tmp_path, "resumed")
    codes = wait_all(resumed)
    logs = [log.read_text() for _, log in resumed]
    assert codes == [0, 0], [text[-3000:] for text in logs]
    assert all(f"resuming {run_dir} from env step 32" in text for text in logs)
    assert "point 1 (learning_rate=0.003): final eval return per seed" in logs[0]
    assert "final eval return" not in logs[1]  # only process 0 reports (and writes metrics.h5, figures, wandb)

    # the same config in this one process (one device, or what this session has)
    config = runs.read_config(str(run_dir))
    reference = train.run(config, run_dir=str(tmp_path / "reference"))
    abstract = sharding.with_sharding(runs.abstract_state(runs.build(config)[1], 4), 4)
    step, state, host = checkpoint.Checkpoints(str(run_dir), read_only=True).restore_latest(abstract)
    assert step == 96
    # Tolerance: each device runs a batch of 1 member here and XLA may order float32 reductions differently for
    # a batch of 1 than of 4 (test_train's four-device test); the cross-device reductions are boolean ORs (exact)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(reference.state)):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(host["train/steps"], reference.train_steps)
    data, attrs = read_h5(run_dir / "metrics.h5")
    expected, _ = read_h5(tmp_path / "reference" / "metrics.h5")
    assert sorted(data) == sorted(expected)
    for k in data:
        np.testing.assert_allclose(data[k], expected[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert data["eval/returns"].shape == (2, 2, 3, 3)
    assert json.loads(attrs["config"])["sweep"] == {"learning_rate": [0.001, 0.003]}
    assert (run_dir / "figures" / "learning_curve.png").exists()
