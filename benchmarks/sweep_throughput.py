"""Sweep throughput: P hyperparameter points x S seeds in one kernel (`rlland.sweep`) against P separate runs.

For one algorithm on one Brax env, a sweep of ``--points`` learning rates (log-spaced over ``--lr_range``) x
``--seeds`` seeds, this measures

* one kernel: ``rlland.train.make_chunk`` over the P x S members (the driver's kernel for a sweep; one chunk =
  ``--steps`` env steps per member), compile time apart (``.lower(state).compile()``), then the median of
  ``--repeats`` (>= 3) calls on a freshly initialised member-batched state (init not timed), each followed by
  ``block_until_ready``;
* P separate runs: the S-seed kernel (a plain run of one point; compiled once here, compile time reported) called
  once per point in sequence with that point's hyperparameters, the whole sequence timed ``--repeats`` times
  (median). Separate processes would each compile their own kernel: the "with compile" columns add P compiles
  to the separate runs and one to the sweep;
* env steps/s = P x S x env steps per member / time; ratio = separate time / one-kernel time (> 1: the sweep is
  faster). The members' results are checked to be finite.

Writes benchmarks/results/<date>-<machine>-sweep.json and rewrites (or appends to) the ``sweep_throughput`` block
of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/sweep_throughput.py                                   # TD3 hopper, 3 x 5
    .venv/bin/python benchmarks/sweep_throughput.py --points 2 --seeds 2 --steps 256 --no_write   # smoke
"""
from __future__ import annotations

import argparse
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import add_report_args, block, check_repeats, finish_report, fmt, log, run_header, start_report, timed  # noqa: E402,E501

from rlland import configs, loop, runs, sweep, train  # noqa: E402

BLOCK = "sweep_throughput"
HEADER = """## Sweep throughput

A sweep of P learning rates x S seeds as one kernel over the P x S members (`config.sweep`, `rlland.sweep`)
against P separate runs of the S-seed kernel, one per point (`benchmarks/sweep_throughput.py`; method in its
docstring). "with compile" adds one compile to the sweep and P to the separate runs (separate processes each
compile their kernel)."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", default="td3", choices=["td3", "sac", "ppo"])
    p.add_argument("--env", default="hopper")
    p.add_argument("--backend", default="spring")
    p.add_argument("--points", type=int, default=3, help="P: learning rates in the sweep")
    p.add_argument("--seeds", type=int, default=5, help="S: seeds per point")
    p.add_argument("--lr_range", default="1e-4,1e-3", help="lowest,highest learning rate (log-spaced)")
    p.add_argument("--steps", type=int, default=2048, help="env steps per member per timed call")
    p.add_argument("--warmup", type=int, default=1024, help="TD3/SAC warm-up env steps (within --steps)")
    p.add_argument("--hidden", default="256,256")
    add_report_args(p)
    a = p.parse_args(argv)
    check_repeats(p, a)
    if a.points < 2 or a.seeds < 1:
        p.error("need --points >= 2 and --seeds >= 1")
    lo, hi = (float(x) for x in a.lr_range.split(","))
    a.rates = [float(r) for r in np.geomspace(lo, hi, a.points)]
    a.hidden_sizes = tuple(int(x) for x in a.hidden.split(","))
    return a


def config_for(a, **sweep_values):
    c = configs.load("train", f"{a.algo}/{a.env}")
    c.env.backend = a.backend
    c.agent.hidden_sizes = a.hidden_sizes
    if a.algo != "ppo":
        c.agent.update(num_envs=1, warmup_steps=a.warmup, buffer_capacity=max(a.steps, 256))
    c.num_seeds = a.seeds
    for k, v in sweep_values.items():
        c.sweep[k] = tuple(v)
    return c


def main(argv=None):
    a = parse_args(argv)
    report = start_report("sweep_throughput.py", a, argv, json_suffix="-sweep")
    swept, plain = config_for(a, learning_rate=a.rates), config_for(a)
    env, agent = runs.build(plain)
    per_iter = train.steps_per_iteration(agent)
    if a.steps % per_iter:
        raise SystemExit(f"--steps must be a multiple of {per_iter} (env steps per iteration)")
    iterations = a.steps // per_iter
    points = sweep.points(swept)
    P, S, M = len(points), a.seeds, sweep.num_members(swept)

    chunk = train.make_chunk(agent, iterations)
    init_members = jax.jit(jax.vmap(agent.init))
    member_hp = sweep.member_hparams(agent.hparams, points, S)
    fresh_sweep = lambda: block(init_members(runs.member_keys(swept), member_hp))  # noqa: E731
    compiled_sweep, sweep_compile = loop.compile_chunk(chunk, fresh_sweep())
    log(f"sweep kernel ({P} x {S} = {M} members, {a.steps} env steps each): compiled in {sweep_compile:.1f}s")

    point_hps = [{k: np.broadcast_to(np.float32(v), (S,)) for k, v in agent.hparams(**p).items()} for p in points]
    fresh_points = lambda: [block(init_members(runs.seed_keys(plain), hp)) for hp in point_hps]  # noqa: E731
    compiled_point, point_compile = loop.compile_chunk(train.make_chunk(agent, iterations), fresh_points()[0])
    log(f"one point's kernel ({S} seeds): compiled in {point_compile:.1f}s")

    states, finals = [], []

    def run_sweep():
        out = block(compiled_sweep(states.pop()))
        finals.append(out[1]["finite"])

    def run_separate():
        for s in states.pop():
            block(compiled_point(s))

    sweep_times, separate_times = [], []
    for _ in range(a.repeats):  # alternate, so drifting load hits both alike
        states.append(fresh_sweep())
        sweep_times += timed(run_sweep, 1)["times_s"]
        states.append(fresh_points())
        separate_times += timed(run_separate, 1)["times_s"]
        log(f"sweep {sweep_times[-1]:.2f}s, separate {separate_times[-1]:.2f}s")
    sweep_s, separate_s = float(np.median(sweep_times)), float(np.median(separate_times))
    finite = bool(np.all(np.asarray(finals)))
    total = M * a.steps
    report["result"] = dict(
        algo=a.algo, env=a.env, backend=a.backend, points=P, seeds=S, members=M, rates=a.rates,
        env_steps_per_member=a.steps, hidden_sizes=list(a.hidden_sizes), sweep_compile_s=sweep_compile,
        point_compile_s=point_compile, sweep_s=sweep_s, separate_s=separate_s, sweep_times_s=sweep_times,
        separate_times_s=separate_times, sweep_steps_per_s=total / sweep_s, separate_steps_per_s=total / separate_s,
        ratio=separate_s / sweep_s,
        ratio_with_compile=(separate_s + P * point_compile) / (sweep_s + sweep_compile), all_finite=finite)
    finish_report(report, a, markdown, block=BLOCK, header=HEADER)


def markdown(report: dict) -> str:
    r = report["result"]
    lines = run_header(report)
    lines += [f"{r['algo'].upper()} on {r['env']} ({r['backend']}), hidden {tuple(r['hidden_sizes'])}, "
              f"{r['points']} learning rates ({', '.join(f'{x:.2g}' for x in r['rates'])}) x {r['seeds']} seeds, "
              f"{r['env_steps_per_member']:,} env steps per member per call; median of {len(r['sweep_times_s'])} "
              f"calls; every member finite: {r['all_finite']}.", "",
              "| | compile (s) | run (s) | env steps/s | run + compile (s) |",
              "|---|---|---|---|---|",
              f"| one kernel, {r['members']} members | {fmt(r['sweep_compile_s'])} | {fmt(r['sweep_s'], 2)} | "
              f"{fmt(r['sweep_steps_per_s'])} | {fmt(r['sweep_s'] + r['sweep_compile_s'], 2)} |",
              f"| {r['points']} separate runs of {r['seeds']} seeds | {fmt(r['point_compile_s'])} each | "
              f"{fmt(r['separate_s'], 2)} | {fmt(r['separate_steps_per_s'])} | "
              f"{fmt(r['separate_s'] + r['points'] * r['point_compile_s'], 2)} |", "",
              f"Separate / one kernel: **{r['ratio']:.2f}x** run time, **{r['ratio_with_compile']:.2f}x** with "
              f"compiles.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
