"""Where a TD3 / SAC training iteration's time goes, at one seed (issue 14 item 5, issue 16 item 5).

For each algorithm, on the setting of ``benchmarks/train_throughput.py`` (hopper, spring, 256-256 ReLU, batch 256,
one env, one update per env step, buffer 100,000), the replay buffer is first filled past the warm-up (untimed),
then each piece below runs as ``jit(vmap(scan(piece, T), axis_name="seed"))`` over one seed, as the driver runs
the whole step; compile apart, medians of ``--repeats`` calls, microseconds per iteration:

* ``step``: ``agent.step`` (collect + ``updates_per_step`` updates, what the driver scans);
* ``collect``: one env step with the exploration policy and the buffer insert;
* ``train``: sampling a minibatch and one update (``agent.train``);
* ``update (fixed batch)``: ``agent.update`` on one minibatch held fixed (the gradient work alone);
* ``sample``: ``buffer.sample`` of one minibatch.

``--scheduler both`` re-runs the whole profile in a subprocess with XLA's CPU concurrency-optimised scheduler ON
(``import rlland`` turns it off unless the user sets it), to measure what the workaround costs these kernels.

    .venv/bin/python benchmarks/offpolicy_profile.py --algos td3,sac --iterations 2000 --repeats 5 --scheduler both
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import rlland  # noqa: F401  (XLA flags before JAX starts)

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import add_report_args, check_repeats, finish_report, fmt, run_header, start_report, timed  # noqa: E402

from rlland import agents, envs  # noqa: E402
from rlland.seed_axis import SEED_AXIS  # noqa: E402

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"
BLOCK = "offpolicy_profile"
PIECES = ("step", "collect", "train", "update (fixed batch)", "sample")
HEADER = """## Off-policy iteration profile

Written by `benchmarks/offpolicy_profile.py` (its docstring says what each piece is). Microseconds per training
iteration of one seed, each piece compiled and timed alone; `scheduler on` = XLA's concurrency-optimised CPU
scheduler, which `import rlland` turns off (the PPO-rollout deadlock workaround).
"""


def scanned(fn, iterations: int):
    """``jit(vmap(scan(fn)))`` over a batch of one seed, returning the final carry."""
    def run(carry):
        return jax.lax.scan(lambda c, _: (fn(c), None), carry, None, length=iterations)[0]
    return jax.jit(jax.vmap(run, axis_name=SEED_AXIS))


def median_us(fn, arg, iterations: int, repeats: int) -> float:
    compiled = fn.lower(arg).compile()
    jax.block_until_ready(compiled(arg))  # warm
    return timed(lambda: jax.block_until_ready(compiled(arg)), repeats)["median_s"] / iterations * 1e6


def profile(algo: str, iterations: int, repeats: int) -> dict:
    env = envs.make("hopper", backend="spring", episode_length=1000)
    agent = agents.make(algo, env, dict(hidden_sizes=(256, 256), activation="relu", num_envs=1, batch_size=256,
                                        buffer_capacity=100_000, warmup_steps=1000, updates_per_step=1,
                                        normalize_observations=False))
    state = jax.vmap(agent.init)(jax.random.split(jax.random.PRNGKey(0), 1))
    state = scanned(lambda s: agent.step(s)[0], 1100)(state)  # past the warm-up: every timed step updates
    batch = jax.vmap(lambda s: s.buffer.sample(jax.random.PRNGKey(1), 256))(state)

    def update_fixed(c):
        params, opt_state, n = c
        params, opt_state, _ = agent.update(params, opt_state, batch_one, jax.random.PRNGKey(2),
                                            state_one.hparams, n)
        return params, opt_state, n + 1

    state_one = jax.tree.map(lambda x: x[0], state)
    batch_one = jax.tree.map(lambda x: x[0], batch)
    def sample(c):
        buffer, key, acc = c
        key, k = jax.random.split(key)
        return buffer, key, acc + buffer.sample(k, 256).reward.sum()

    pieces = {
        "step": (scanned(lambda s: agent.step(s)[0], iterations), state),
        "collect": (scanned(lambda s: agent.collect(s)[0], iterations), state),
        "train": (scanned(lambda s: agent.train(s)[0], iterations), state),
        "update (fixed batch)": (scanned(update_fixed, iterations), (state.params, state.opt_state, state.updates)),
        "sample": (scanned(sample, iterations), (state.buffer, state.key, jnp.zeros(1))),
    }
    out = {}
    for name, (fn, arg) in pieces.items():
        out[name] = median_us(fn, arg, iterations, repeats)
        print(f"{algo} {name}: {out[name]:.1f} us/iteration", file=sys.stderr, flush=True)
    return out


def markdown(report: dict) -> str:
    lines = run_header(report)
    lines += ["| algo | XLA scheduler | " + " | ".join(f"{p} us" for p in PIECES) + " | update ÷ step |",
              "|---|---|" + "---:|" * (len(PIECES) + 1)]
    for mode, results in report["results"].items():
        for algo, r in results.items():
            if algo == "xla_flags":
                continue
            lines.append(f"| {algo} | {mode} | " + " | ".join(fmt(r[p], 0) for p in PIECES)
                         + f" | {fmt(r['update (fixed batch)'] / r['step'], 2)} |")
    return "\n".join(lines + [""])


def measure_in_subprocess(a, mode: str) -> dict:
    """The profile in a fresh process with the scheduler flag set before JAX starts."""
    flags = os.environ.get("XLA_FLAGS", "").replace(f"{FLAG}=false", "").replace(f"{FLAG}=true", "")
    env = dict(os.environ, XLA_FLAGS=f"{flags} {FLAG}={'true' if mode == 'on' else 'false'}".strip())
    cmd = [sys.executable, __file__, "--algos", a.algos, "--iterations", str(a.iterations), "--repeats",
           str(a.repeats), "--child"]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algos", default="td3,sac")
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--scheduler", choices=("off", "on", "both"), default="both",
                   help="XLA's concurrency-optimised CPU scheduler: off (rlland's default), on, or both")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    add_report_args(p, repeats=5)
    a = p.parse_args(argv)
    check_repeats(p, a)
    if a.child:  # one measurement, JSON on stdout
        results = {algo: profile(algo, a.iterations, a.repeats) for algo in a.algos.split(",")}
        print(json.dumps(dict(results, xla_flags=os.environ.get("XLA_FLAGS", ""))))
        return
    report = start_report("offpolicy_profile.py", a, argv, json_suffix="-offpolicy-profile")
    modes = ("off", "on") if a.scheduler == "both" else (a.scheduler,)
    report["results"] = {mode: measure_in_subprocess(a, mode) for mode in modes}
    finish_report(report, a, markdown, block=BLOCK, header=HEADER)


if __name__ == "__main__":
    main()
