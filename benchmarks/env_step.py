"""Env step cost: rlland's `Env.step` (fresh-key autoreset) against Brax's own training wrappers.

At every batch size N of ``--batches`` this times ``--steps`` steps of N envs under uniform-random actions (one
``jit`` of a ``lax.scan``; compile apart; medians of ``--repeats`` calls):

* **rlland**: ``jax.vmap(env.step, axis_name=ENV_AXIS)``, as the agents call it: the reset is a branch taken only on
  steps where some env of the batch ended (`rlland.envs.Env`), each reset a fresh start from the step's key;
* **rlland, select**: ``jax.vmap(env.step)`` without the axis name: the reset is computed for every env at every
  step and selected (what `Env.step` did before the branch; the semantics are the same);
* **Brax**: ``brax.envs.training.wrap`` (``EpisodeWrapper + VmapWrapper + AutoResetWrapper``) over the same Brax
  environment object: the limit, since its autoreset replays one cached start state per env slot (no reset
  computed at all), which rlland does not do on purpose (fresh starts; reference A.4).

Ratio = rlland seconds / Brax seconds at the same N (target <= 1.05, issue 16). The fraction of steps on which some
env ended is reported: it is what the branch saves (none at 1.0).

    .venv/bin/python benchmarks/env_step.py                                 # the recorded CPU run
    .venv/bin/python benchmarks/env_step.py --batches 1,16 --steps 100 --no_write
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

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

from rlland import envs  # noqa: E402
from rlland.seed_axis import ENV_AXIS  # noqa: E402

BLOCK, TARGET = "env_step", 1.05
HEADER = f"""## Env step cost

Written by `benchmarks/env_step.py` (its docstring says what is timed). `Env.step` over N envs against Brax's
`EpisodeWrapper + AutoResetWrapper` on the same Brax environment. Target (issue 16): rlland <= {TARGET}x Brax's time.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="hopper")
    p.add_argument("--backend", default="spring")
    p.add_argument("--episode_length", type=int, default=1000)
    p.add_argument("--batches", default="1,32,256", help="comma-separated env batch sizes")
    p.add_argument("--steps", type=int, default=500, help="env steps per timed call")
    p.add_argument("--seed", type=int, default=0)
    add_report_args(p, repeats=5)
    a = p.parse_args(argv)
    check_repeats(p, a)
    a.batches = sorted({int(b) for b in a.batches.split(",") if b.strip()})
    return a


def rlland_fn(env, n: int, steps: int, named: bool):
    vstep = jax.vmap(env.step, axis_name=ENV_AXIS) if named else jax.vmap(env.step)

    def run(key):
        k_reset, k_steps = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(k_reset, n))

        def body(s, k):
            k_act, k_env = jax.random.split(k)
            action = jax.random.uniform(k_act, (n, env.action_size), minval=-1.0, maxval=1.0)
            s, out = vstep(s, action, jax.random.split(k_env, n))
            return s, (out.reward.sum(), jnp.any(out.terminated | out.truncated))

        _, (reward, ended) = jax.lax.scan(body, state, jax.random.split(k_steps, steps))
        return reward.sum(), ended.mean()

    return jax.jit(run)


def brax_fn(env, n: int, steps: int, episode_length: int):
    from brax.envs import training

    wrapped = training.wrap(env.core.env, episode_length=episode_length)

    def run(key):
        k_reset, k_steps = jax.random.split(key)
        state = wrapped.reset(jax.random.split(k_reset, n))

        def body(s, k):
            action = jax.random.uniform(k, (n, env.action_size), minval=-1.0, maxval=1.0)
            s = wrapped.step(s, action)
            return s, (s.reward.sum(), jnp.any(s.done > 0))

        _, (reward, ended) = jax.lax.scan(body, state, jax.random.split(k_steps, steps))
        return reward.sum(), ended.mean()

    return jax.jit(run)


def measure(fn, key, repeats: int) -> dict:
    t0 = time.perf_counter()
    compiled = fn.lower(key).compile()
    compile_s = time.perf_counter() - t0
    out = timed(lambda: jax.block_until_ready(compiled(key)), repeats)
    return out | {"compile_s": compile_s, "ended_fraction": float(compiled(key)[1])}


def bench(a) -> list[dict]:
    env = envs.make(a.env, backend=a.backend, episode_length=a.episode_length)
    key, rows = jax.random.PRNGKey(a.seed), []
    for n in a.batches:
        row = {"batch": n}
        for name, fn in (("rlland", rlland_fn(env, n, a.steps, True)), ("select", rlland_fn(env, n, a.steps, False)),
                         ("brax", brax_fn(env, n, a.steps, a.episode_length))):  # side by side, same key
            r = measure(fn, key, a.repeats)
            r["env_steps_per_s"] = n * a.steps / r["median_s"]
            row[name] = r
            log(f"N={n} {name}: compile {r['compile_s']:.1f}s, median {r['median_s']:.3f}s, "
                f"{r['env_steps_per_s']:,.0f} env steps/s, steps with an end {r['ended_fraction']:.2f}")
        row["ratio"] = row["rlland"]["median_s"] / row["brax"]["median_s"]
        row["ratio_select"] = row["select"]["median_s"] / row["brax"]["median_s"]
        rows.append(row)
    return rows


def markdown(report: dict) -> str:
    a = report["args"]
    lines = run_header(report)
    lines += [f"- **Setting**: `{a['env']}` ({a['backend']}), episode length {a['episode_length']}, uniform-random "
              f"actions, {a['steps']} steps per timed call; medians of {a['repeats']} runs, compile apart.", "",
              "| envs | steps with an end | rlland env steps/s | rlland select env steps/s | Brax env steps/s | "
              "rlland ÷ Brax time | select ÷ Brax time | target |",
              "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['batch']} | {fmt(r['rlland']['ended_fraction'], 2)} | "
                     f"{fmt(r['rlland']['env_steps_per_s'], 0)} | {fmt(r['select']['env_steps_per_s'], 0)} | "
                     f"{fmt(r['brax']['env_steps_per_s'], 0)} | {fmt(r['ratio'], 2)} | {fmt(r['ratio_select'], 2)} | "
                     f"{'met' if r['ratio'] <= TARGET else 'MISSED'} |")
    return "\n".join(lines + [""])


def main(argv=None):
    a = parse_args(argv)
    report = start_report("env_step.py", a, argv, json_suffix="-env-step")
    report["rows"] = bench(a)
    finish_report(report, a, markdown, block=BLOCK, header=HEADER)


if __name__ == "__main__":
    main()
