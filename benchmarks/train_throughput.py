"""Training throughput of rlland's TD3, SAC and PPO kernels over batches of seeds, with peers side by side.

For each algorithm on one Brax env and each number of seeds N (``--seeds 1,8,32``) this measures

* the training kernel ``jax.jit(jax.vmap(chunk))`` from ``rlland.train.make_chunk`` (one chunk = the whole budget:
  a ``lax.scan`` of ``agent.step``): compile time apart (``.lower(state).compile()``), then the median of
  ``--repeats`` (>= 3) calls of the compiled function, each on a freshly initialised state (init not timed) and
  followed by ``block_until_ready``;
* env steps/s = N * env steps per seed / median, and gradient updates/s = N * updates per seed / median, where
  the counts are checked against the counters of the returned state:
    TD3: critic updates (one per env step after warm-up; the actor and targets update every ``policy_delay``-th);
    SAC: critic updates (each comes with one actor and one temperature update);
    PPO: minibatch gradient steps = iterations * epochs * num_minibatches;
* "N separate runs": the compiled 1-seed kernel called N times in sequence (``--separate measure``; or
  ``extrapolate`` = N x its median run time), against one vmapped batch of N: ratio = separate / vmapped
  (>= 1 means the batch is no slower than separate runs; it is reported whatever it is);
* the "bare limit": ``jax.vmap(env.step)`` with zero actions over the same [N, num_envs] batch and the same env
  steps per seed (compile apart, median of repeats), and training env steps/s divided by it;
* with ``--peers``: the peer scripts in benchmarks/peers/ (rejax 0.1.3 TD3/SAC, Brax 0.14.2 PPO), each in its own
  virtualenv under benchmarks/_peers/, with the same config and budgets; ratio = rlland env steps/s / peer's.

Matched configuration (see benchmarks/README.md and benchmarks/peers/README.md):
  TD3/SAC: hidden 256,256 ReLU, batch 256, 1 env per seed, 1 update per env step, buffer ``--buffer_size``,
           warm-up ``--warmup`` env steps, ``--offpolicy_steps`` env steps per seed.
  PPO:     64 envs per seed, unroll 16, 4 minibatches, 4 epochs, hidden 64,64 tanh, ``--ppo_steps`` env steps
           per seed (a multiple of 64 * 16 = 1024).

Writes benchmarks/results/<date>-<machine>.json (raw timings) and rewrites (or with ``--results_mode append``,
appends to) benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/train_throughput.py                                  # full default run
    .venv/bin/python benchmarks/train_throughput.py --seeds 1,2 --offpolicy_steps 2000 --warmup 1000 \\
        --ppo_steps 4096 --peers                                                     # smoke budget
"""
from __future__ import annotations

import argparse
import os
import statistics
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
    run_peer_command,
    start_report,
)

from rlland import agents, envs, train  # noqa: E402
from rlland.buffers import check_fits  # noqa: E402

BLOCK = "train_throughput"
PEERS_DIR = os.path.join(ROOT, "benchmarks", "peers")
PEER_VENVS = os.path.join(ROOT, "benchmarks", "_peers")
PPO_NUM_ENVS, PPO_UNROLL, PPO_MINIBATCHES, PPO_EPOCHS = 64, 16, 4, 4
OFF_HIDDEN, PPO_HIDDEN = (256, 256), (64, 64)


# -- arguments ------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", default="td3,sac,ppo", help="comma-separated subset of td3,sac,ppo")
    p.add_argument("--env", default="hopper")
    p.add_argument("--backend", default="spring")
    p.add_argument("--episode_length", type=int, default=1000)
    p.add_argument("--seeds", default="1,8,32", help="comma-separated seed counts N (1 is always measured too)")
    p.add_argument("--offpolicy_steps", type=int, default=50_000, help="TD3/SAC env steps per seed per run")
    p.add_argument("--warmup", type=int, default=5_000,
                   help="TD3/SAC uniform-random warm-up env steps before the first update (even, for rejax TD3)")
    p.add_argument("--buffer_size", type=int, default=100_000, help="TD3/SAC replay capacity per seed")
    p.add_argument("--ppo_steps", type=int, default=1_048_576,
                   help=f"PPO env steps per seed per run (multiple of {PPO_NUM_ENVS * PPO_UNROLL})")
    p.add_argument("--separate", choices=["measure", "extrapolate"], default="measure",
                   help="N separate runs: call the compiled 1-seed kernel N times (measure), or N x its median")
    p.add_argument("--no_bare", action="store_true", help="skip the env-only (bare limit) measurement")
    p.add_argument("--peers", action="store_true", help="also run the peer scripts (benchmarks/peers/)")
    p.add_argument("--peer_repeats", type=int, default=None,
                   help="repeats passed to the peer scripts (default: --repeats; brax PPO repeats N sequential "
                        "train() calls each)")
    p.add_argument("--peer_timeout", type=float, default=4 * 3600, help="seconds per peer subprocess")
    p.add_argument("--brax_jax_cache", choices=["fresh", "off"], default="fresh",
                   help="brax_ppo.py --jax_cache (fresh: calls after the first load compiled executables)")
    p.add_argument("--seed", type=int, default=0)
    add_report_args(p)
    a = p.parse_args(argv)
    a.algos = [x.strip() for x in a.algos.split(",") if x.strip()]
    bad = [x for x in a.algos if x not in ("td3", "sac", "ppo")]
    if bad or not a.algos:
        p.error(f"--algos must be a subset of td3,sac,ppo, got {a.algos}")
    try:
        a.seeds = sorted({int(s) for s in a.seeds.split(",") if s.strip()} | {1})
    except ValueError:
        p.error(f"--seeds must be comma-separated integers, got {a.seeds!r}")
    if min(a.seeds) < 1:
        p.error("--seeds must be >= 1")
    check_repeats(p, a)
    if a.peer_repeats is None:
        a.peer_repeats = a.repeats
    if a.peer_repeats < 1:
        p.error("--peer_repeats must be >= 1")
    if any(x in a.algos for x in ("td3", "sac")):
        if not 0 <= a.warmup < a.offpolicy_steps:
            p.error(f"need 0 <= --warmup < --offpolicy_steps, got {a.warmup}, {a.offpolicy_steps}")
        if a.offpolicy_steps % 2 or a.warmup % 2:
            p.error("--offpolicy_steps and --warmup must be even (rejax TD3 runs policy_delay=2 steps per "
                    "iteration; an odd warm-up triggers its placeholder-minibatch quirk)")
        if a.buffer_size < 256:
            p.error("--buffer_size must be >= the batch size 256")
    per_iter = PPO_NUM_ENVS * PPO_UNROLL
    if "ppo" in a.algos and (a.ppo_steps < per_iter or a.ppo_steps % per_iter):
        p.error(f"--ppo_steps must be a positive multiple of {per_iter} (64 envs x unroll 16), got {a.ppo_steps}")
    return a


# -- rlland kernels ------------------------------------------------------------------------------------------
def agent_config(algo: str, a) -> dict:
    if algo == "ppo":
        return dict(hidden_sizes=PPO_HIDDEN, activation="tanh", num_envs=PPO_NUM_ENVS, unroll_length=PPO_UNROLL,
                    num_minibatches=PPO_MINIBATCHES, epochs=PPO_EPOCHS, normalize_observations=False)
    return dict(hidden_sizes=OFF_HIDDEN, activation="relu", num_envs=1, batch_size=256,
                buffer_capacity=a.buffer_size, warmup_steps=a.warmup, updates_per_step=1,
                normalize_observations=False)


def expected_counts(algo: str, agent, a) -> dict:
    """Per-seed env steps and gradient updates of one run, from rlland's loop structure.

    Off-policy (rlland.agents.off_policy): iteration i (0-based) collects one step per env, then runs
    ``updates_per_step`` updates if the post-collect count (i + 1) * num_envs > warmup_steps. TD3's actor and
    targets update when (update_index + 1) % policy_delay == 0.
    """
    c = agent.config
    if algo == "ppo":
        iters = a.ppo_steps // (c.num_envs * c.unroll_length)
        return dict(iterations=iters, env_steps=iters * c.num_envs * c.unroll_length,
                    updates=iters * c.epochs * c.num_minibatches, state_updates=iters,
                    what="minibatch gradient steps (actor+critic, one Adam step each)")
    iters = a.offpolicy_steps // c.num_envs
    calls = sum(c.updates_per_step for i in range(iters) if (i + 1) * c.num_envs > c.warmup_steps)
    out = dict(iterations=iters, env_steps=iters * c.num_envs, updates=calls, state_updates=calls)
    if algo == "td3":
        out.update(actor_updates=calls // c.policy_delay, what="critic updates (twin Q in one loss); the actor "
                   f"and both targets update every {c.policy_delay}nd one")
    else:
        out.update(actor_updates=calls, alpha_updates=calls,
                   what="critic updates (each followed by one actor and one temperature update)")
    return out


class Kernel:
    """One compiled ``jit(vmap(chunk))`` for N seeds, and its timed calls on fresh states."""

    def __init__(self, agent, iterations: int, num_seeds: int, seed: int):
        self.agent, self.n, self.seed = agent, num_seeds, seed
        self._init = jax.jit(jax.vmap(agent.init))
        self._fn = train.make_chunk(agent, iterations)
        self._calls = 0

    def fresh_state(self):
        base = jax.random.fold_in(jax.random.PRNGKey(self.seed), 1000 * self.n + self._calls)
        self._calls += 1
        return jax.block_until_ready(self._init(jax.random.split(base, self.n)))

    def compile(self) -> float:
        state = self.fresh_state()
        t0 = time.perf_counter()
        self.compiled = self._fn.lower(state).compile()
        return time.perf_counter() - t0

    def run(self):
        """One timed call on a fresh state: (seconds, final state)."""
        state = self.fresh_state()
        t0 = time.perf_counter()
        out = jax.block_until_ready(self.compiled(state))
        return time.perf_counter() - t0, out[0]


def check_counts(algo: str, agent, state, exp: dict) -> dict:
    """Compare the returned state's counters with the expected counts; raise on a mismatch."""
    env_steps = np.asarray(state.env_steps)
    updates = np.asarray(state.updates)
    if not (env_steps == exp["env_steps"]).all():
        raise RuntimeError(f"{algo}: state.env_steps {env_steps} != expected {exp['env_steps']}")
    if not (updates == exp["state_updates"]).all():
        raise RuntimeError(f"{algo}: state.updates {updates} != expected {exp['state_updates']}")
    finite = all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(state.params)
                 if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating))
    if not finite:
        raise RuntimeError(f"{algo}: non-finite parameters after training")
    if algo != "ppo":  # Adam step counters of the optimiser states, where present
        counts = {}
        for part in ("critic", "actor", "log_alpha"):
            if part in state.opt_state:
                leaves = [np.asarray(x) for x in jax.tree.leaves(state.opt_state[part])
                          if np.asarray(x).dtype == np.int32 and np.asarray(x).ndim == 1]
                if leaves:
                    counts[part] = int(leaves[0][0])
        want = {"critic": exp["updates"], "actor": exp.get("actor_updates"), "log_alpha": exp.get("alpha_updates")}
        for k, v in counts.items():
            if want.get(k) is not None and v != want[k]:
                raise RuntimeError(f"{algo}: {k} optimiser took {v} steps, expected {want[k]}")
        return {"params_finite": finite, "optimizer_steps_per_seed": counts}
    return {"params_finite": finite}


def bare_env(env, num_envs: int, steps_per_seed: int, num_seeds: int, repeats: int, seed: int) -> dict:
    """Env-only throughput: vmap over seeds of a scan of vmap(env.step) over num_envs with zero actions."""
    iters = steps_per_seed // num_envs
    zeros = jnp.zeros((num_envs, env.action_size))

    def init(key):
        return jax.vmap(env.reset)(jax.random.split(key, num_envs)), key

    def chunk(carry):
        def one(c, _):
            es, key = c
            key, k = jax.random.split(key)
            es, out = jax.vmap(env.step)(es, zeros, jax.random.split(k, num_envs))
            return (es, key), out.reward.sum()

        carry, rewards = jax.lax.scan(one, carry, None, iters)
        return carry, rewards.sum()

    init_fn, fn = jax.jit(jax.vmap(init)), jax.jit(jax.vmap(chunk))
    state = lambda r: jax.block_until_ready(init_fn(jax.random.split(jax.random.PRNGKey(seed + 7919 + r), num_seeds)))
    s = state(0)
    t0 = time.perf_counter()
    compiled = fn.lower(s).compile()
    compile_s = time.perf_counter() - t0
    run_s = []
    for r in range(repeats):
        s = state(r + 1)
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(s))
        run_s.append(time.perf_counter() - t0)
    med = statistics.median(run_s)
    return dict(compile_s=compile_s, run_s=run_s, median_run_s=med, env_steps_per_seed=iters * num_envs,
                env_steps_per_s=num_seeds * iters * num_envs / med)


# -- peers ---------------------------------------------------------------------------------------------------
def peer_command(algo: str, n: int, a) -> list[str]:
    if algo == "ppo":
        py = os.path.join(PEER_VENVS, "brax_ppo", "bin", "python")
        return [py, os.path.join(PEERS_DIR, "brax_ppo.py"), "--env", a.env, "--backend", a.backend,
                "--num_seeds", str(n), "--num_timesteps", str(a.ppo_steps), "--num_envs", str(PPO_NUM_ENVS),
                "--unroll_length", str(PPO_UNROLL), "--num_minibatches", str(PPO_MINIBATCHES),
                "--epochs", str(PPO_EPOCHS), "--hidden", ",".join(map(str, PPO_HIDDEN)), "--activation", "tanh",
                "--episode_length", str(a.episode_length), "--repeats", str(a.peer_repeats),
                "--seed", str(a.seed), "--jax_cache", a.brax_jax_cache]
    py = os.path.join(PEER_VENVS, "rejax", "bin", "python")
    return [py, os.path.join(PEERS_DIR, "rejax_offpolicy.py"), "--algo", algo, "--env", a.env,
            "--backend", a.backend, "--num_seeds", str(n), "--total_timesteps", str(a.offpolicy_steps),
            "--learning_starts", str(a.warmup), "--num_envs", "1", "--batch_size", "256",
            "--hidden", ",".join(map(str, OFF_HIDDEN)), "--activation", "relu", "--buffer_size", str(a.buffer_size),
            "--updates_per_step", "1", "--episode_length", str(a.episode_length), "--repeats", str(a.peer_repeats),
            "--seed", str(a.seed)]


def run_peer(algo: str, n: int, a) -> dict:
    venv = "brax_ppo" if algo == "ppo" else "rejax"
    return run_peer_command(peer_command(algo, n, a), f"peer {algo} N={n}",
                            f"bash benchmarks/peers/setup_peers.sh {venv}", a.peer_timeout)


# -- the benchmark -------------------------------------------------------------------------------------------
_BARE: dict = {}  # (num_envs, env steps per seed, seeds) -> bare-env measurement


def bench_algo(algo: str, a, env) -> dict:
    agent = agents.make(algo, env, agent_config(algo, a))
    exp = expected_counts(algo, agent, a)
    num_envs = agent.config.num_envs
    per_iter = num_envs * agent.config.get("unroll_length", 1)
    iterations = exp["env_steps"] // per_iter
    log(f"== {algo}: {exp['env_steps']} env steps/seed ({iterations} iterations of {per_iter}), "
        f"{exp['updates']} {exp['what'].split(' (')[0]}/seed")
    rows, kernels = [], {}
    for n in a.seeds:
        if hasattr(agent, "buffer_bytes"):
            check_fits(agent.buffer_bytes(n), f"{n} replay buffers")
        k = Kernel(agent, iterations, n, a.seed)
        load0 = os.getloadavg()
        log(f"{algo} N={n}: compiling jit(vmap(chunk))")
        compile_s = k.compile()
        log(f"{algo} N={n}: compiled in {compile_s:.1f}s; {a.repeats} timed runs")
        run_s, state = [], None
        for r in range(a.repeats):
            t, state = k.run()
            run_s.append(t)
            log(f"{algo} N={n}: run {r + 1}/{a.repeats}: {t:.2f}s ({n * exp['env_steps'] / t:,.0f} env steps/s)")
        checks = check_counts(algo, agent, state, exp)
        med = statistics.median(run_s)
        row = dict(algo=algo, seeds=n, compile_s=compile_s, run_s=run_s, median_run_s=med,
                   env_steps_per_seed=exp["env_steps"], updates_per_seed=exp["updates"],
                   env_steps_per_s=n * exp["env_steps"] / med, updates_per_s=n * exp["updates"] / med,
                   load_before=load0, load_after=os.getloadavg(), **checks)
        kernels[n] = k
        rows.append(row)

    one = rows[0]
    assert one["seeds"] == 1
    for row in rows:
        n = row["seeds"]
        if n == 1:
            row["separate"] = None
        elif a.separate == "extrapolate":
            row["separate"] = dict(mode="extrapolate", total_s=n * one["median_run_s"], per_call_s=None)
        else:
            log(f"{algo}: {n} separate runs of the compiled 1-seed kernel")
            calls = [kernels[1].run()[0] for _ in range(n)]
            row["separate"] = dict(mode="measure", total_s=sum(calls), per_call_s=calls)
            log(f"{algo}: {n} separate runs took {sum(calls):.2f}s vs vmapped {row['median_run_s']:.2f}s")
        if row["separate"] is not None:
            row["separate"]["ratio"] = row["separate"]["total_s"] / row["median_run_s"]
            if row["separate"]["ratio"] < 1:
                log(f"WARNING {algo} N={n}: the vmapped batch took LONGER than {n} separate runs "
                    f"(ratio {row['separate']['ratio']:.2f})")
        row["scaling_vs_1_seed"] = row["env_steps_per_s"] / one["env_steps_per_s"]

    if not a.no_bare:
        for row in rows:
            n = row["seeds"]
            cache_key = (num_envs, exp["env_steps"], n)
            if cache_key in _BARE:  # TD3 and SAC share the batch shape: measure once
                bare = dict(_BARE[cache_key], shared_with=_BARE[cache_key]["algo"])
                log(f"{algo} N={n}: bare env = the {bare['shared_with']} measurement (same batch shape and steps)")
            else:
                log(f"{algo} N={n}: bare env (vmap env.step, zero actions, [{n}, {num_envs}] envs)")
                bare = dict(bare_env(env, num_envs, exp["env_steps"], n, a.repeats, a.seed), algo=algo)
                _BARE[cache_key] = bare
            row["bare"] = bare
            row["ratio_vs_bare"] = row["env_steps_per_s"] / bare["env_steps_per_s"]
            log(f"{algo} N={n}: bare env {bare['env_steps_per_s']:,.0f} env steps/s (compile "
                f"{bare['compile_s']:.1f}s); training reaches {row['ratio_vs_bare']:.3f} of it")

    if a.peers:
        for row in rows:
            peer = run_peer(algo, row["seeds"], a)
            row["peer"] = peer
            row["ratio_vs_peer"] = row["env_steps_per_s"] / peer["env_steps_per_s"]
            log(f"{algo} N={row['seeds']}: {peer['peer']} {peer['env_steps_per_s']:,.0f} env steps/s, "
                f"rlland/peer = {row['ratio_vs_peer']:.2f}")
    return dict(algo=algo, counts=exp, config=agent.config.to_dict(), rows=rows)


# -- output --------------------------------------------------------------------------------------------------
def markdown(report: dict) -> str:
    m, v, a = report["machine"], report["versions"], report["args"]
    gpu = ", ".join(m["gpu"]) if m["gpu"] else "none (CPU backend)"
    L = [f"## {report['date']} — {report['machine_slug']}", ""]
    if report["note"]:
        L += [report["note"], ""]
    L += [
        f"- **Machine**: {m['cpu']}, {m['cores_usable']} usable cores ({m['cores']} online), {m['ram_gib']} GiB RAM, "
        f"GPU: {gpu}; JAX backend `{m['jax_backend']}`.",
        f"- **Load** (`uptime`): at start `{report['uptime_start']}`; at end `{report['uptime_end']}`.",
        f"- **Versions**: jax {v['jax']}, jaxlib {v['jaxlib']}, brax {v['brax']}, flax {v['flax']}, "
        f"optax {v['optax']}, rlland {v['rlland']} @ `{v['rlland_git']}`.",
        f"- **Command**: `{report['command']}`",
        f"- **Task**: `{a['env']}` ({a['backend']} backend, episode_length {a['episode_length']}). "
        f"TD3/SAC: {a['offpolicy_steps']:,} env steps per seed per run, warm-up {a['warmup']:,}, buffer "
        f"{a['buffer_size']:,}, hidden 256,256, batch 256, 1 env per seed, 1 update per env step. "
        f"PPO: {a['ppo_steps']:,} env steps per seed per run, 64 envs per seed, unroll 16, 4 minibatches, "
        f"4 epochs, hidden 64,64.",
        f"- Medians of {a['repeats']} runs of each compiled kernel; compile time apart. N separate runs: "
        f"{'measured (the compiled 1-seed kernel called N times in sequence)' if a['separate'] == 'measure' else 'extrapolated as N x the 1-seed median'}.",
        f"- Raw timings: `{report['json_path']}`.",
        "",
        "| algo | seeds | compile s | median run s | env steps/s | updates/s | vs bare env | vs N separate | vs peer |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in report["results"]:
        for r in res["rows"]:
            sep = r.get("separate")
            L.append(f"| {r['algo']} | {r['seeds']} | {fmt(r['compile_s'])} | {fmt(r['median_run_s'], 2)} | "
                     f"{fmt(r['env_steps_per_s'], 0)} | {fmt(r['updates_per_s'], 0)} | "
                     f"{fmt(r.get('ratio_vs_bare'), 3)} | {fmt(sep['ratio'], 2) if sep else '—'} | "
                     f"{fmt(r.get('ratio_vs_peer'), 2)} |")
    L += ["",
          "updates/s counts TD3 critic updates (actor and targets every 2nd), SAC critic updates (each with one "
          "actor and one temperature update), PPO minibatch gradient steps. *vs bare env* = training env steps/s "
          "÷ env-only env steps/s at the same batch shape; *vs N separate* = time of N separate 1-seed runs ÷ "
          "time of one vmapped batch of N (≥ 1: the batch is no slower); *vs peer* = rlland env steps/s ÷ peer "
          "env steps/s at the same N.", ""]

    L += ["### Scaling curve", "",
          "| algo | seeds | vmapped batch s | N separate runs s | separate ÷ vmapped | env steps/s ÷ 1-seed |",
          "|---|---:|---:|---:|---:|---:|"]
    for res in report["results"]:
        for r in res["rows"]:
            sep = r.get("separate")
            how = "" if not sep or sep["mode"] == "measure" else " (extrap.)"
            L.append(f"| {r['algo']} | {r['seeds']} | {fmt(r['median_run_s'], 2)} | "
                     f"{(fmt(sep['total_s'], 2) + how) if sep else '—'} | {fmt(sep['ratio'], 2) if sep else '—'} | "
                     f"{fmt(r['scaling_vs_1_seed'], 2)} |")
    L.append("")

    if not a["no_bare"]:
        L += ["### Bare limit (env only: vmapped `env.step`, zero actions, same batch shape)", "",
              "| algo | seeds | envs | compile s | median run s | env steps/s | training ÷ bare |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        for res in report["results"]:
            for r in res["rows"]:
                b = r["bare"]
                envs_ = r["seeds"] * res["config"]["num_envs"]
                name = r["algo"] + (f" (= {b['shared_with']} row)" if b.get("shared_with") else "")
                L.append(f"| {name} | {r['seeds']} | {envs_} | {fmt(b['compile_s'])} | "
                         f"{fmt(b['median_run_s'], 2)} | {fmt(b['env_steps_per_s'], 0)} | {fmt(r['ratio_vs_bare'], 3)} |")
        L.append("")

    if a["peers"]:
        L += ["### Peers (same task, config and budget; each in its own venv)", "",
              "| algo | peer | seeds | jax | compile / first call s | median run s | env steps/s | updates/s | "
              "rlland ÷ peer |", "|---|---|---:|---|---:|---:|---:|---:|---:|"]
        for res in report["results"]:
            for r in res["rows"]:
                p = r["peer"]
                first = p.get("compile_s", p.get("first_call_s"))
                kind = "compile" if "compile_s" in p else "first call"
                L.append(f"| {r['algo']} | {p['peer']} {p['version']} | {r['seeds']} | {p['jax']} | "
                         f"{fmt(first)} ({kind}) | {fmt(p['median_run_s'], 2)} | {fmt(p['env_steps_per_s'], 0)} | "
                         f"{fmt(p['updates_per_s'], 0)} | {fmt(r['ratio_vs_peer'], 2)} |")
        L += ["", "Peer commands:", ""]
        for res in report["results"]:
            for r in res["rows"]:
                L.append(f"- `{r['peer']['command']}`")
        L += ["",
              "rejax counts critic updates (TD3: T-1-L per seed, one fewer than rlland's T-L); brax PPO runs its N "
              "seeds as N sequential `ppo.train` calls (it cannot be vmapped), each re-tracing and loading its "
              f"compiled program (`--jax_cache {a['brax_jax_cache']}`); its first call (compile + run) is not in "
              "the median.", ""]
    return "\n".join(L)


HEADER = """# Training throughput results

Written by `benchmarks/train_throughput.py` (see `benchmarks/README.md` for what each column means and the
caveats). Every number below was measured by that script; a run section states its machine, versions, load and
the exact command. Raw timings are in `benchmarks/results/`.
"""


def main(argv=None):
    a = parse_args(argv)
    report = start_report("train_throughput.py", a, argv)
    env = envs.make(a.env, backend=a.backend, episode_length=a.episode_length)
    report["results"] = []
    for algo in a.algos:
        report["results"].append(bench_algo(algo, a, env))
    finish_report(report, a, markdown, block=BLOCK, header=HEADER)


if __name__ == "__main__":
    main()
