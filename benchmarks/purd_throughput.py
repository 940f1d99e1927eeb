"""PURD throughput: post-update return samples/s against a bare vmapped rollout of the same policy.

For one TD3 snapshot (a 256-256 actor on a Brax task, its replay buffer filled by ``--warmup`` uniform-random
env steps) this measures, at every chunk size c of ``--chunks``:

* **PURD**: ``rlland.landscape.post_update_returns`` with ``--samples`` samples in chunks of c (one TD3 actor
  Adam step on its own minibatch per sample, ``--operator td3_actor_step``, or Gaussian parameter noise,
  ``param_noise``), then one deterministic episode of ``--episode_length`` steps per updated policy;
* **bare**: the same number of episodes of the snapshot's own policy, ``jax.lax.map(episode, keys,
  batch_size=c)``: the same rollout with one shared set of weights and no update: the limit PURD can approach.

Both start each episode from a random start state (``fixed_start=False``), not the study's fixed start: with a
fixed start and a deterministic policy every bare episode is the same computation, which XLA evaluates once
(a measured 0.00 s for 128 episodes), so the bare side would not be a rollout at all. The start state costs one
reset per episode either way.

samples/s = samples / median seconds; env steps/s = samples x episode_length / median (the episode scan runs
its full length; steps past the end are masked, as in ``rlland.evaluate.episode``). Ratio = PURD / bare at
the same c; target >= 0.8 at c >= 256 (issue 14). Compile time apart, medians of ``--repeats`` calls.

    .venv/bin/python benchmarks/purd_throughput.py                              # the recorded CPU run
    .venv/bin/python benchmarks/purd_throughput.py --samples 128 --chunks 64,128 --episode_length 20 --no_write
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import (  # noqa: E402  (the benchmarks' shared reporting: machine, versions, load, RESULTS.md blocks)
    add_report_args,
    check_repeats,
    finish_report,
    fmt,
    log,
    run_header,
    start_report,
    timed,
)

from rlland import agents, envs, evaluate  # noqa: E402
from rlland.landscape import operators, purd  # noqa: E402

BLOCK, TARGET, TARGET_FROM = "purd_throughput", 0.8, 256
HEADER = f"""## PURD throughput

Written by `benchmarks/purd_throughput.py` (its docstring says what is timed). PURD samples/s against a bare
rollout of the same snapshot's policy (same env, same episode length, same chunk size, no update, one shared set
of weights). Target (issue 14): PURD >= {TARGET} of the bare rate at chunk sizes >= {TARGET_FROM}.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="hopper")
    p.add_argument("--backend", default="spring")
    p.add_argument("--episode_length", type=int, default=200)
    p.add_argument("--samples", type=int, default=1024, help="PURD samples per call")
    p.add_argument("--chunks", default="64,128,256,512,1024", help="comma-separated chunk sizes")
    p.add_argument("--operator", choices=["td3_actor_step", "param_noise"], default="td3_actor_step")
    p.add_argument("--noise_scale", type=float, default=0.01, help="param_noise operator")
    p.add_argument("--warmup", type=int, default=2048, help="random env steps that fill the snapshot's buffer")
    p.add_argument("--seed", type=int, default=0)
    add_report_args(p)
    a = p.parse_args(argv)
    check_repeats(p, a)
    a.chunks = sorted({int(c) for c in a.chunks.split(",") if c.strip()})
    if not a.chunks or min(a.chunks) < 1 or max(a.chunks) > a.samples:
        p.error(f"--chunks must be integers in [1, --samples={a.samples}], got {a.chunks}")
    return a


def snapshot(a):
    """A TD3 state whose buffer holds ``--warmup`` uniform-random transitions (the operator samples from it)."""
    env = envs.make(a.env, backend=a.backend, episode_length=a.episode_length)
    agent = agents.make("td3", env, {"warmup_steps": a.warmup, "buffer_capacity": max(a.warmup, 256)})
    state = jax.jit(agent.init)(jax.random.PRNGKey(a.seed))
    state = jax.jit(lambda s: jax.lax.fori_loop(0, a.warmup, lambda _, x: agent.step(x)[0], s))(state)
    return agent, jax.block_until_ready(state)


def kernels(agent, state, a, chunk: int):
    """``(purd_fn, bare_fn)``, each ``key -> returns [samples]``, jitted."""
    return_fn = purd.policy_returns(agent, fixed_start=False, episode_length=a.episode_length)
    update_fn = (operators.td3_actor_step(agent, state) if a.operator == "td3_actor_step"
                 else operators.param_noise(a.noise_scale))
    size = None if chunk >= a.samples else chunk

    def purd_fn(key):
        return purd.post_update_returns(update_fn, return_fn, state.params, key, a.samples, size)["undiscounted"]

    def bare_fn(key):
        keys = jax.random.split(key, a.samples)
        return jax.lax.map(lambda k: return_fn(state.params, k).undiscounted, keys, batch_size=size)

    return jax.jit(purd_fn), jax.jit(bare_fn)


def measure(fn, key, repeats: int) -> dict:
    t0 = time.perf_counter()
    compiled = fn.lower(key).compile()
    compile_s = time.perf_counter() - t0
    out = timed(lambda: jax.block_until_ready(compiled(key)), repeats)
    return out | {"compile_s": compile_s}


def bench(a) -> list[dict]:
    agent, state = snapshot(a)
    key, rows = jax.random.PRNGKey(a.seed + 1), []
    for chunk in a.chunks:
        purd_fn, bare_fn = kernels(agent, state, a, chunk)
        row = {"chunk": chunk}
        for name, fn in (("purd", purd_fn), ("bare", bare_fn)):  # side by side, same key
            r = measure(fn, key, a.repeats)
            r["samples_per_s"] = a.samples / r["median_s"]
            r["env_steps_per_s"] = r["samples_per_s"] * a.episode_length
            row[name] = r
            log(f"chunk {chunk} {name}: compile {r['compile_s']:.1f}s, median {r['median_s']:.2f}s, "
                f"{r['samples_per_s']:,.0f} samples/s, {r['env_steps_per_s']:,.0f} env steps/s")
        row["ratio"] = row["purd"]["samples_per_s"] / row["bare"]["samples_per_s"]
        rows.append(row)
    return rows


def markdown(report: dict) -> str:
    a = report["args"]
    lines = run_header(report)
    lines += [f"- **Setting**: TD3 actor 256-256 on `{a['env']}` ({a['backend']}), episode length "
              f"{a['episode_length']} from random starts, {a['samples']:,} samples per call, operator `{a['operator']}`, buffer of "
              f"{a['warmup']:,} random transitions; medians of {a['repeats']} runs, compile apart.", "",
              "| chunk | PURD compile s | PURD median s | PURD samples/s | PURD env steps/s | bare median s | "
              "bare samples/s | bare env steps/s | PURD ÷ bare | target |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in report["rows"]:
        p, b = r["purd"], r["bare"]
        target = ("met" if r["ratio"] >= TARGET else "MISSED") if r["chunk"] >= TARGET_FROM else "—"
        lines.append(f"| {r['chunk']} | {fmt(p['compile_s'])} | {fmt(p['median_s'], 2)} | "
                     f"{fmt(p['samples_per_s'], 0)} | {fmt(p['env_steps_per_s'], 0)} | {fmt(b['median_s'], 2)} | "
                     f"{fmt(b['samples_per_s'], 0)} | {fmt(b['env_steps_per_s'], 0)} | {fmt(r['ratio'], 2)} | "
                     f"{target} |")
    return "\n".join(lines + [""])


def main(argv=None):
    a = parse_args(argv)
    report = start_report("purd_throughput.py", a, argv, json_suffix="-purd")
    report["rows"] = bench(a)
    finish_report(report, a, markdown, block=BLOCK, header=HEADER)


if __name__ == "__main__":
    main()
