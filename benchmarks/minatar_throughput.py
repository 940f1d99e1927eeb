"""PPO on MinAtar and DM Control env steps: rlland against rejax and a PureJaxRL-style PPO, side by side.

**MinAtar** (``--game``, default breakout): PPO training env steps/s at N seeds (``--seeds 1,8,32``), each seed
PureJaxRL's MinAtar PPO setting (64 envs x 128 steps, 4 epochs of 8 minibatches, an MLP ``--hidden`` ReLU on the
flattened 10x10xC image), ``--updates`` PPO iterations per timed call:

* **rlland**: ``rlland.train.make_chunk`` (``jit(vmap(scan(agent.step)), axis_name="seed")``, the driver's kernel)
  of ``ppo`` with that config on ``minatar/<game>`` (rlland's gymnax core: ``Env``'s fresh-key autoreset);
* **rlland CNN**: the same with the ``ppo/minatar_<game>`` preset's CNN torso (16 3x3 filters, dense 128), for
  scale (no peer runs it);
* **rejax**: rejax 0.1.3's PPO (``benchmarks/peers/rejax_ppo_minatar.py``, its own venv and its gymnax 0.0.9);
* **PureJaxRL-style**: ``benchmarks/peers/purejaxrl_ppo_minatar.py``, a single-file copy of ``purejaxrl/ppo.py``
  (same venv as rejax).

Each: compile apart, median of ``--repeats`` timed calls on fresh states; env steps/s = N * iterations * 8192 /
median. The peers differ from rlland where their PPOs do (PureJaxRL clips the value loss, both use one optimiser
for actor and critic and gymnax's own autoreset); the work per env step is otherwise the same.

**DM Control** (``--dmc``, default cheetah_run), measured in the same run: bare env steps/s (``vmap(env.step)``
with uniform-random actions over 1 and ``--dmc_envs`` envs, compile apart, medians) against training env steps/s of
SAC (the ``sac/dmc_<task>`` preset's agent: 256-256, one env, one update per env step from the first step: no
warm-up, so every timed step is a training step) and of PPO (``--dmc_envs`` envs x 16 steps, MLP 64-64).

    .venv/bin/python benchmarks/minatar_throughput.py                       # the recorded run (needs the peers)
    .venv/bin/python benchmarks/minatar_throughput.py --seeds 1 --no_peers --no_write --dmc_steps 100
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import (  # noqa: E402  (the benchmarks' shared reporting: machine, versions, load, RESULTS.md blocks)
    ROOT,
    add_report_args,
    check_repeats,
    finish_report,
    fmt,
    log,
    run_header,
    run_peer_command,
    start_report,
    timed,
    versions,
)

from rlland import agents, envs, train  # noqa: E402
from env_step import rlland_fn  # noqa: E402  (the bare random-action rollout, timed as in env_step.py)

BLOCK = "minatar_throughput"
HEADER = """## MinAtar PPO and DM Control env steps

Written by `benchmarks/minatar_throughput.py` (its docstring says what is timed): PPO on a gymnax MinAtar game at
1, 8, 32 seeds against rejax's PPO and a PureJaxRL-style PPO (each peer in its own venv), and DM Control (MuJoCo
Playground, MJX) env steps/s bare vs in SAC / PPO training, in one run.
"""
PEER_PY = os.path.join(ROOT, "benchmarks", "_peers", "rejax", "bin", "python")
SETUP = "bash benchmarks/peers/setup_peers.sh rejax"
GAMES = {"breakout": "Breakout-MinAtar", "asterix": "Asterix-MinAtar", "freeway": "Freeway-MinAtar",
         "space_invaders": "SpaceInvaders-MinAtar", "seaquest": "Seaquest-MinAtar"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--game", default="breakout", choices=sorted(GAMES))
    p.add_argument("--seeds", default="1,8,32")
    p.add_argument("--updates", type=int, default=1, help="PPO iterations (of 64 x 128 env steps) per timed call")
    p.add_argument("--hidden", default="64,64")
    p.add_argument("--no_cnn", action="store_true", help="skip rlland's CNN rows")
    p.add_argument("--no_peers", action="store_true")
    p.add_argument("--peer_timeout", type=float, default=1800)
    p.add_argument("--dmc", default="cheetah_run", help="DM Control task ('' to skip)")
    p.add_argument("--dmc_envs", type=int, default=32)
    p.add_argument("--dmc_steps", type=int, default=1000, help="env steps per seed of each DMC timed call")
    p.add_argument("--seed", type=int, default=0)
    add_report_args(p, repeats=3)
    a = p.parse_args(argv)
    check_repeats(p, a)
    a.seeds = sorted({int(s) for s in a.seeds.split(",") if s.strip()})
    a.hidden = tuple(int(h) for h in a.hidden.split(",") if h)
    return a


PPO_MINATAR = dict(num_envs=64, unroll_length=128, num_minibatches=8, epochs=4, learning_rate=5e-4, clip_eps=0.2,
                   ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5, activation="relu")


def time_agent(agent, iterations: int, n: int, repeats: int, seed: int) -> dict:
    """Compile ``make_chunk(agent, iterations)`` for n seeds, then the median of ``repeats`` calls on fresh
    states (init not timed)."""
    init, fn = jax.jit(jax.vmap(agent.init)), train.make_chunk(agent, iterations)
    calls = [0]

    def fresh():
        calls[0] += 1
        return jax.block_until_ready(init(jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), calls[0]), n)))

    t0 = time.perf_counter()
    compiled = fn.lower(fresh()).compile()
    compile_s = time.perf_counter() - t0
    times, state = [], None
    for _ in range(repeats):
        s = fresh()
        t0 = time.perf_counter()
        state = jax.block_until_ready(compiled(s))[0]
        times.append(time.perf_counter() - t0)
    steps = int(np.asarray(state.env_steps)[0])
    med = float(np.median(times))
    finite = all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(state.params)
                 if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating))
    return dict(compile_s=compile_s, times_s=times, median_s=med, env_steps_per_seed=steps,
                env_steps_per_s=n * steps / med, params_finite=finite)


def peer(script: str, n: int, a) -> dict:
    cmd = [PEER_PY, os.path.join(ROOT, "benchmarks", "peers", script), "--env", GAMES[a.game], "--num_seeds", str(n),
           "--num_updates", str(a.updates), "--hidden", ",".join(map(str, a.hidden)), "--repeats", str(a.repeats),
           "--seed", str(a.seed)]
    return run_peer_command(cmd, f"{script} N={n}", SETUP, a.peer_timeout)


def bench_minatar(a) -> list[dict]:
    env = envs.make(f"minatar/{a.game}")
    mlp = agents.make("ppo", env, PPO_MINATAR | dict(hidden_sizes=a.hidden))
    cnn = agents.make("ppo", env, PPO_MINATAR | dict(network="cnn", conv_features=(16,), hidden_sizes=(128,)))
    rows = []
    for n in a.seeds:
        row = {"seeds": n}
        impls = [("rlland", lambda: time_agent(mlp, a.updates, n, a.repeats, a.seed))]
        if not a.no_cnn:
            impls.append(("rlland_cnn", lambda: time_agent(cnn, a.updates, n, a.repeats, a.seed)))
        if not a.no_peers:
            impls += [("rejax", lambda: peer("rejax_ppo_minatar.py", n, a)),
                      ("purejaxrl", lambda: peer("purejaxrl_ppo_minatar.py", n, a))]
        for name, fn in impls:
            r = fn()
            row[name] = r
            log(f"minatar/{a.game} N={n} {name}: compile {r['compile_s']:.1f}s, "
                f"median {r.get('median_s', r.get('median_run_s')):.3f}s, {r['env_steps_per_s']:,.0f} env steps/s")
        rows.append(row)
    return rows


def bench_dmc(a) -> list[dict]:
    env = envs.make(f"dmc/{a.dmc}")
    rows = []
    for n in sorted({1, a.dmc_envs}):
        fn, key = rlland_fn(env, n, a.dmc_steps, named=True), jax.random.PRNGKey(a.seed)
        t0 = time.perf_counter()
        compiled = fn.lower(key).compile()
        compile_s = time.perf_counter() - t0
        r = timed(lambda: jax.block_until_ready(compiled(key)), a.repeats) | {"compile_s": compile_s}
        r["env_steps_per_s"] = n * a.dmc_steps / r["median_s"]
        rows.append({"what": f"bare env.step, {n} env{'s' if n > 1 else ''}", "envs": n} | r)
        log(f"dmc/{a.dmc} bare N={n}: {r['env_steps_per_s']:,.0f} env steps/s")
    sac = agents.make("sac", env, dict(warmup_steps=0, buffer_capacity=max(a.dmc_steps, 1000)))
    r = time_agent(sac, a.dmc_steps, 1, a.repeats, a.seed)
    rows.append({"what": "SAC training (256-256, 1 env, 1 update per env step)", "envs": 1} | r)
    log(f"dmc/{a.dmc} SAC: {r['env_steps_per_s']:,.0f} env steps/s")
    ppo = agents.make("ppo", env, dict(num_envs=a.dmc_envs, unroll_length=16, num_minibatches=4, epochs=4))
    iters = max(1, a.dmc_steps // 16)
    r = time_agent(ppo, iters, 1, a.repeats, a.seed)
    rows.append({"what": f"PPO training ({a.dmc_envs} envs x 16 steps, 4 x 4 minibatches, 64-64)",
                 "envs": a.dmc_envs} | r)
    log(f"dmc/{a.dmc} PPO: {r['env_steps_per_s']:,.0f} env steps/s")
    return rows


def markdown(report: dict) -> str:
    a = report["args"]
    lines = run_header(report)
    lines += [f"- **MinAtar setting**: `minatar/{a['game']}`, PPO 64 envs x 128 steps per seed, 4 epochs x 8 "
              f"minibatches, MLP {a['hidden']} ReLU on the flattened image (rlland CNN: 16 3x3 filters + dense 128), "
              f"{a['updates']} iterations ({a['updates'] * 8192:,} env steps per seed) per timed call; medians of "
              f"{a['repeats']} calls, compile apart. Peers: rejax 0.1.3 PPO and the PureJaxRL-style single file, in "
              f"`benchmarks/_peers/rejax`.", "",
              "| seeds | rlland env steps/s | rejax | PureJaxRL-style | rlland ÷ rejax | rlland ÷ PureJaxRL | "
              "rlland CNN | compile s (rlland / rejax / PureJaxRL) |",
              "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in report["minatar"]:
        get = lambda k: r[k]["env_steps_per_s"] if k in r else None  # noqa: E731
        ratio = lambda k: get("rlland") / get(k) if get(k) else None  # noqa: E731
        comp = " / ".join(fmt(r[k]["compile_s"], 1) if k in r else "—" for k in ("rlland", "rejax", "purejaxrl"))
        lines.append(f"| {r['seeds']} | {fmt(get('rlland'), 0)} | {fmt(get('rejax'), 0)} | {fmt(get('purejaxrl'), 0)} | "
                     f"{fmt(ratio('rejax'), 2)} | {fmt(ratio('purejaxrl'), 2)} | {fmt(get('rlland_cnn'), 0)} | {comp} |")
    if report.get("dmc"):
        lines += ["", f"- **DM Control**: `dmc/{a['dmc']}` (MuJoCo Playground, MJX `impl=jax`), "
                      f"{a['dmc_steps']} env steps per env per timed call; medians of {a['repeats']}.", "",
                  "| what | envs | env steps/s | compile s |", "|---|---:|---:|---:|"]
        for r in report["dmc"]:
            lines.append(f"| {r['what']} | {r['envs']} | {fmt(r['env_steps_per_s'], 0)} | {fmt(r['compile_s'], 1)} |")
    return "\n".join(lines + [""])


def main(argv=None):
    a = parse_args(argv)
    report = start_report("minatar_throughput.py", a, argv, json_suffix="-minatar")
    report["versions"] = versions(("gymnax", "playground", "mujoco-mjx"))  # the suites' packages too
    report["minatar"] = bench_minatar(a)
    report["dmc"] = bench_dmc(a) if a.dmc else []
    finish_report(report, a, markdown, block=BLOCK, header=HEADER)


if __name__ == "__main__":
    main()
