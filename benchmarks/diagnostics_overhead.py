"""What PPO's representation diagnostics cost: training throughput with them off, at the default log frequency and
on every iteration, side by side in one run.

Setting (as ``train_throughput.py``'s PPO): spring hopper, 64 envs per seed, unroll 16, 4 minibatches, 4 epochs,
64-64 tanh networks, one seed, ``--steps`` env steps per run, every diagnostic group on (``log_metrics`` = all of
``rlland.agents.ppo.LOG_GROUPS``, ``log_samples`` 2048 >= the 1024-row batch, so the whole batch is used). For each
log frequency (``log_every`` 0 = off, the default ``configs/representation.py:train/<env>`` uses, 1) it measures:

* compile time of the training chunk ``train.make_chunk`` (``.lower(state).compile()``), wall and process CPU
  seconds (the CPU seconds are less sensitive to other processes on the machine);
* the median of ``--repeats`` (>= 3) timed calls, each on a fresh state, the frequencies interleaved repeat by
  repeat so that a change in the machine's load hits all of them alike; env steps/s = steps / median;
* overhead = (env steps/s off) / (env steps/s with diagnostics) - 1; target: <= 10% at the default frequency.

The thread settings that matter here are recorded with the results: XLA's (``XLA_FLAGS``) and the BLAS threads of
the LAPACK that jaxlib calls on CPU (scipy's OpenBLAS: ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``).

    .venv/bin/python benchmarks/diagnostics_overhead.py                        # full run, writes RESULTS.md
    .venv/bin/python benchmarks/diagnostics_overhead.py --steps 65536 --no_write   # smoke
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import add_report_args, check_repeats, finish_report, fmt, log, run_header, start_report  # noqa: E402

from rlland import agents, configs, envs, train  # noqa: E402
from rlland.agents.ppo import LOG_GROUPS  # noqa: E402

BLOCK = "diagnostics_overhead"
NUM_ENVS, UNROLL, MINIBATCHES, EPOCHS, HIDDEN = 64, 16, 4, 4, (64, 64)
TARGET = 0.10
THREAD_VARS = ("XLA_FLAGS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
HEADER = """## Diagnostics overhead

Written by `benchmarks/diagnostics_overhead.py`: PPO training throughput on spring hopper (64 envs, unroll 16,
4 minibatches, 4 epochs, 64-64 tanh, 1 seed) with the representation diagnostics off, at the default log frequency
(`configs/representation.py:train/<env>`) and on every iteration; medians of interleaved repeats, compile times
apart. Overhead = throughput off / throughput with diagnostics - 1; target <= 10% at the default frequency.
"""


def default_log_every(env: str) -> int:
    return int(configs.load("representation", f"train/{env}").agent.log_every)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="hopper")
    p.add_argument("--backend", default="spring")
    p.add_argument("--episode_length", type=int, default=1000)
    p.add_argument("--steps", type=int, default=524_288,
                   help=f"env steps per timed run (a multiple of {NUM_ENVS * UNROLL}); the default takes ~10-30 s")
    p.add_argument("--log_every", default=None,
                   help="comma-separated log frequencies (0 = off); default: 0, the preset's default, 1")
    p.add_argument("--seed", type=int, default=0)
    add_report_args(p)
    a = p.parse_args(argv)
    check_repeats(p, a)
    per_iter = NUM_ENVS * UNROLL
    if a.steps < per_iter or a.steps % per_iter:
        p.error(f"--steps must be a positive multiple of {per_iter}, got {a.steps}")
    a.default_log_every = default_log_every(a.env)
    a.log_every = ([0, a.default_log_every, 1] if a.log_every is None
                   else [int(x) for x in a.log_every.split(",") if x.strip()])
    a.log_every = list(dict.fromkeys(a.log_every))  # order kept, duplicates dropped
    if 0 not in a.log_every or min(a.log_every) < 0:
        p.error("--log_every must include 0 (the baseline) and be >= 0")
    return a


class Kernel:
    """The compiled chunk of one log frequency and its timed calls on fresh states."""

    def __init__(self, env, log_every: int, iterations: int, seed: int):
        self.agent = agents.make("ppo", env, dict(
            hidden_sizes=HIDDEN, activation="tanh", num_envs=NUM_ENVS, unroll_length=UNROLL,
            num_minibatches=MINIBATCHES, epochs=EPOCHS, normalize_observations=False, log_every=log_every,
            log_metrics=LOG_GROUPS))
        self.log_every, self.seed, self.calls = log_every, seed, 0
        self._init = jax.jit(jax.vmap(self.agent.init))
        self._fn = train.make_chunk(self.agent, iterations)

    def fresh_state(self):
        self.calls += 1
        return jax.block_until_ready(self._init(jax.random.split(jax.random.PRNGKey(self.seed + self.calls), 1)))

    def compile(self) -> dict:
        state = self.fresh_state()
        t0, c0 = time.perf_counter(), time.process_time()
        self.compiled = self._fn.lower(state).compile()
        return {"compile_s": time.perf_counter() - t0, "compile_cpu_s": time.process_time() - c0}

    def run(self) -> float:
        state = self.fresh_state()
        t0 = time.perf_counter()
        state, metrics = jax.block_until_ready(self.compiled(state))
        seconds = time.perf_counter() - t0
        if not bool(np.all(np.asarray(metrics["finite"]))):
            raise RuntimeError(f"log_every={self.log_every}: non-finite parameters or losses")
        if self.log_every and not np.isfinite(np.asarray(metrics["repr/start/actor_post/approximate_rank"])).all():
            raise RuntimeError(f"log_every={self.log_every}: the diagnostics were not logged")
        return seconds


def main(argv=None):
    a = parse_args(argv)
    report = start_report("diagnostics_overhead.py", a, argv, json_suffix="-diagnostics")
    report["threads"] = {k: os.environ.get(k, "(unset)") for k in THREAD_VARS}
    report["threads"]["cpu_count"] = os.cpu_count()
    log(f"threads: {report['threads']}")
    env = envs.make(a.env, backend=a.backend, episode_length=a.episode_length)
    iterations = a.steps // (NUM_ENVS * UNROLL)
    kernels, rows = {}, {}
    for le in a.log_every:
        kernels[le] = Kernel(env, le, iterations, a.seed)
        rows[le] = dict(log_every=le, **kernels[le].compile(), run_s=[])
        log(f"log_every={le}: compiled in {rows[le]['compile_s']:.1f}s ({rows[le]['compile_cpu_s']:.1f}s CPU)")
    for r in range(a.repeats):  # interleaved: every frequency once per repeat
        for le in a.log_every:
            t = kernels[le].run()
            rows[le]["run_s"].append(t)
            log(f"repeat {r + 1}/{a.repeats} log_every={le}: {t:.2f}s ({a.steps / t:,.0f} env steps/s)")
    off = a.steps / statistics.median(rows[0]["run_s"])
    for row in rows.values():
        row["median_run_s"] = statistics.median(row["run_s"])
        row["env_steps_per_s"] = a.steps / row["median_run_s"]
        row["overhead"] = off / row["env_steps_per_s"] - 1
        row["default"] = row["log_every"] == a.default_log_every
    report["rows"] = list(rows.values())
    report["target"] = TARGET
    default = rows.get(a.default_log_every)
    report["target_met"] = None if default is None else bool(default["overhead"] <= TARGET)
    finish_report(report, a, markdown, block=BLOCK, header=HEADER)


def markdown(report: dict) -> str:
    a = report["args"]
    lines = run_header(report)
    t = report["threads"]
    lines += [f"- **Threads**: {os.cpu_count()} CPUs; " + ", ".join(f"`{k}={t[k]}`" for k in THREAD_VARS) + ".",
              f"- {a['steps']:,} env steps per run ({a['steps'] // (NUM_ENVS * UNROLL)} PPO iterations), median of "
              f"{a['repeats']} interleaved runs; default log frequency `log_every={a['default_log_every']}`.", "",
              "| diagnostics | compile s (CPU s) | median run s | env steps/s | overhead |",
              "|---|---|---|---|---|"]
    for row in report["rows"]:
        le = row["log_every"]
        name = "off" if le == 0 else f"every {le}" + (" (default)" if row["default"] else "")
        overhead = "—" if le == 0 else f"{100 * row['overhead']:+.1f}%"
        lines.append(f"| {name} | {fmt(row['compile_s'])} ({fmt(row['compile_cpu_s'])}) | {fmt(row['median_run_s'], 2)} "
                     f"| {fmt(row['env_steps_per_s'])} | {overhead} |")
    met = report["target_met"]
    lines += ["", f"Target overhead <= {100 * report['target']:.0f}% at the default frequency: "
              + ("**met**" if met else "**missed**" if met is not None else "not measured (default not in the run)")
              + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
