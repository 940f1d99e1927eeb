"""MAP-Elites throughput of rlland.qd on a Brax foot-contact task, against its bare rollout limit and QDax 0.5.0.

For each number of seeds N (``--seeds 1``; e.g. ``1,4`` for the vmapped-seeds curve) this measures

* rlland MAP-Elites: ``jax.jit(jax.vmap(run))`` where ``run`` is ``qd.map_elites_chunk`` = a ``lax.scan`` of
  ``--generations`` K MAP-Elites generations (emit ``--batch_size`` offspring with the Gaussian or Iso+LineDD
  emitter, score them with ``task.score``, add them to the grid archive, archive metrics). The initial population
  (generation 0, ``map_elites_init``) is scored outside the timed call. Compile time apart
  (``.lower(state).compile()``), then the median of ``--repeats`` (>= 3) calls on fresh states, each followed by
  ``block_until_ready``. evaluations/s = N * K * batch / median; the per-seed counters of the returned state
  (``generation == K``, ``num_evals == (K + 1) * batch``) are checked.
* the bare limit: the same scoring without archive or emitter, i.e. ``jax.jit(jax.vmap(task.score))`` of
  [N, batch] random genomes (a vmapped rollout of batch policies of episode_length steps), called K times back
  to back per timed repeat (compile apart, median of repeats). MAP-Elites evaluations/s / bare evaluations/s is
  the fraction of the scoring rate that survives the archive and emitter (target: >= 0.8).
* with ``--peers``: benchmarks/peers/qdax_map_elites.py (QDax 0.5.0 ``MAPElites.scan_update`` in ``lax.scan``,
  its own ``hopper_uni`` task) in its virtualenv benchmarks/_peers/qdax, with the same task, batch, episode
  length, policy network, grid, emitter and K; ratio = rlland evaluations/s / QDax's (target: >= 1.0).

Matched configuration (see benchmarks/README.md): hopper, spring backend, episode_length 100, batch 256, policy
MLP obs -> 128 -> 128 -> act with tanh hidden and output (rlland's QD task; Xavier-uniform init on both sides),
grid of 1000 cells over the foot-contact fraction in [0, 1] (the study's hopper grid), Gaussian emitter
sigma 0.02 (the study's MAP-Elites), a fixed start state (``--random_init`` for a fresh one per evaluation).

Writes benchmarks/results/<date>-<machine>-qd.json (raw timings) and rewrites (or with ``--results_mode
append``, appends to) its own block of benchmarks/RESULTS.md (see
benchmarks/report.py); the other blocks are left as they are.

    .venv/bin/python benchmarks/qd_throughput.py --generations 20 --repeats 5 --peers   # the recorded run
    .venv/bin/python benchmarks/qd_throughput.py --generations 2 --no_write     # smoke
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from importlib import metadata

import rlland  # noqa: F401  (sets rlland's XLA flags before JAX starts its backend)

import jax
import jax.numpy as jnp
import numpy as np

from rlland import qd

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

PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "peers", "qdax_map_elites.py")
PEER_PYTHON = os.path.join(ROOT, "benchmarks", "_peers", "qdax", "bin", "python")
BLOCK = "qd_throughput"
TARGET_VS_PEER, TARGET_VS_BARE = 1.0, 0.8


# -- arguments ------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="hopper", help="QD task (rlland.qd.make_task; QDax: <env>_uni)")
    p.add_argument("--backend", default="spring")
    p.add_argument("--episode_length", type=int, default=100)
    p.add_argument("--batch_size", type=int, default=256, help="offspring scored per generation")
    p.add_argument("--generations", type=int, default=16, help="K generations per timed run (one lax.scan)")
    p.add_argument("--grid", default="", help="archive grid shape, comma-separated (default: the study's grid "
                                             "for the task, hopper 1000)")
    p.add_argument("--hidden", default="128,128", help="policy hidden widths (tanh hidden and output)")
    p.add_argument("--emitter", choices=["gaussian", "iso_line"], default="gaussian")
    p.add_argument("--sigma", type=float, default=0.02, help="gaussian emitter (the study's MAP-Elites)")
    p.add_argument("--iso_sigma", type=float, default=0.005, help="iso_line emitter")
    p.add_argument("--line_sigma", type=float, default=0.05, help="iso_line emitter")
    p.add_argument("--random_init", action="store_true", help="a fresh random start state per evaluation")
    p.add_argument("--seeds", default="1", help="comma-separated seed counts N (1 is always measured too)")
    p.add_argument("--no_bare", action="store_true", help="skip the bare-rollout (task.score only) measurement")
    p.add_argument("--peers", action="store_true", help="also run QDax (benchmarks/peers/qdax_map_elites.py)")
    p.add_argument("--peer_repeats", type=int, default=None, help="repeats passed to the peer (default --repeats)")
    p.add_argument("--peer_timeout", type=float, default=3600, help="seconds per peer subprocess")
    p.add_argument("--seed", type=int, default=0)
    add_report_args(p)
    a = p.parse_args(argv)
    try:
        a.seeds = sorted({int(s) for s in a.seeds.split(",") if s.strip()} | {1})
        a.hidden = tuple(int(h) for h in a.hidden.split(",") if h.strip())
        a.grid = tuple(int(g) for g in a.grid.split(",") if g.strip())
    except ValueError:
        p.error("--seeds, --hidden and --grid must be comma-separated integers")
    if min(a.seeds) < 1:
        p.error("--seeds must be >= 1")
    check_repeats(p, a)
    if min(a.generations, a.batch_size, a.episode_length) < 1:
        p.error("--generations, --batch_size and --episode_length must be >= 1")
    if a.peer_repeats is None:
        a.peer_repeats = a.repeats
    return a


# -- rlland kernels ------------------------------------------------------------------------------------------
def build(a):
    """(task, grid, emitter description, jit(vmap(init)), jit(vmap(run)), jit(vmap(score)))."""
    task = qd.make_task(a.env, episode_length=a.episode_length, hidden_sizes=a.hidden,
                        random_init=a.random_init, backend=a.backend)
    grid = a.grid or task.study_grid_shape
    lo, hi = task.descriptor_bounds
    if a.emitter == "gaussian":
        emitter, params = qd.gaussian_emitter, qd.GaussianHParams(sigma=a.sigma)
        desc = f"gaussian_emitter(sigma={a.sigma})"
    else:
        emitter, params = qd.iso_line_emitter, qd.IsoLineHParams(iso_sigma=a.iso_sigma, line_sigma=a.line_sigma)
        desc = f"iso_line_emitter(iso_sigma={a.iso_sigma}, line_sigma={a.line_sigma})"
    B, K = a.batch_size, a.generations

    def init_one(key):
        k_pop, k_init, k_run = jax.random.split(key, 3)
        archive = qd.Archive.grid(grid, lo, hi, jnp.zeros(task.genome_size, jnp.float32))
        state, _ = qd.map_elites_init(archive, task.init_genomes(k_pop, B), k_init, score_fn=task.score,
                                      emitter_hparams=params)
        return state, k_run

    def run_one(carry):
        state, key = carry
        return qd.map_elites_chunk(state, key, K, score_fn=task.score, emitter=emitter, batch_size=B)

    def score_one(genomes, key):
        fitnesses, descriptors, _ = task.score(genomes, key)
        return fitnesses, descriptors

    return task, tuple(grid), desc, jax.jit(jax.vmap(init_one)), jax.jit(jax.vmap(run_one)), \
        jax.jit(jax.vmap(score_one))


def bench_map_elites(a, n: int, init, run) -> dict:
    base = jax.random.PRNGKey(a.seed)

    def fresh(r):
        keys = jax.random.split(jax.random.fold_in(base, 1000 * n + r), n)
        return jax.block_until_ready(init(keys))

    t0 = time.perf_counter()
    carry = fresh(0)
    init_s = time.perf_counter() - t0
    load0 = os.getloadavg()
    log(f"map_elites N={n}: init (compile + scoring generation 0) {init_s:.1f}s; compiling jit(vmap(scan))")
    t0 = time.perf_counter()
    compiled = run.lower(carry).compile()
    compile_s = time.perf_counter() - t0
    log(f"map_elites N={n}: compiled in {compile_s:.1f}s; {a.repeats} timed runs")
    evals = n * a.generations * a.batch_size
    run_s, state, metrics = [], None, None
    for r in range(a.repeats):
        carry = fresh(r + 1)
        t0 = time.perf_counter()
        state, metrics = jax.block_until_ready(compiled(carry))
        run_s.append(time.perf_counter() - t0)
        log(f"map_elites N={n}: run {r + 1}/{a.repeats}: {run_s[-1]:.2f}s ({evals / run_s[-1]:,.0f} evals/s)")
    gens, num_evals = np.asarray(state.generation), np.asarray(state.num_evals)
    if not (gens == a.generations).all() or not (num_evals == (a.generations + 1) * a.batch_size).all():
        raise RuntimeError(f"counters: generation {gens}, num_evals {num_evals}; expected {a.generations}, "
                           f"{(a.generations + 1) * a.batch_size}")
    fit = np.asarray(state.archive.fitnesses)
    filled = fit > -np.inf
    if not np.isfinite(fit[filled]).all():
        raise RuntimeError("non-finite elite fitness")
    med = statistics.median(run_s)
    return dict(seeds=n, init_s=init_s, compile_s=compile_s, run_s=run_s, median_run_s=med,
                evals_per_seed=a.generations * a.batch_size, evals_per_s=evals / med,
                env_steps_per_s=evals * a.episode_length / med, load_before=load0, load_after=os.getloadavg(),
                generations_per_seed=gens.tolist(), num_evals_per_seed=num_evals.tolist(),
                num_elites=filled.sum(-1).tolist(),
                final_coverage=np.asarray(metrics["coverage"])[:, -1].tolist(),
                final_max_fitness=np.asarray(metrics["max_fitness"])[:, -1].tolist())


def bench_bare(a, n: int, task, score) -> dict:
    """K back-to-back calls of the compiled vmapped ``task.score`` on [n, batch] genomes per timed repeat."""
    base = jax.random.fold_in(jax.random.PRNGKey(a.seed), 7919)
    genomes = jax.vmap(lambda k: task.init_genomes(k, a.batch_size))(jax.random.split(base, n))
    keys = lambda r, i: jax.random.split(jax.random.fold_in(base, 100_000 * r + i), n)  # noqa: E731
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    compiled = score.lower(genomes, keys(0, 0)).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(genomes, keys(0, 1)))  # warm-up call (allocations), not timed
    run_s = []
    for r in range(a.repeats):
        ks = [keys(r + 1, i) for i in range(a.generations)]
        jax.block_until_ready(ks)
        t0 = time.perf_counter()
        outs = [compiled(genomes, k) for k in ks]
        jax.block_until_ready(outs)
        run_s.append(time.perf_counter() - t0)
        log(f"bare N={n}: run {r + 1}/{a.repeats}: {run_s[-1]:.2f}s for {a.generations} x score")
    med = statistics.median(run_s)
    evals = n * a.generations * a.batch_size
    return dict(seeds=n, compile_s=compile_s, run_s=run_s, median_run_s=med, calls=a.generations,
                evals_per_s=evals / med, env_steps_per_s=evals * a.episode_length / med,
                load_before=load0, load_after=os.getloadavg())


# -- peer ----------------------------------------------------------------------------------------------------
def peer_command(a, n: int, grid) -> list[str]:
    return [PEER_PYTHON, PEER_SCRIPT, "--env", a.env, "--backend", a.backend,
            "--episode_length", str(a.episode_length), "--batch_size", str(a.batch_size),
            "--generations", str(a.generations), "--grid", ",".join(map(str, grid)),
            "--hidden", ",".join(map(str, a.hidden)), "--activation", "tanh", "--emitter", a.emitter,
            "--sigma", str(a.sigma), "--iso_sigma", str(a.iso_sigma), "--line_sigma", str(a.line_sigma),
            "--num_seeds", str(n), "--repeats", str(a.peer_repeats), "--seed", str(a.seed)] + \
        (["--random_init"] if a.random_init else [])


def run_peer(a, n: int, grid) -> dict:
    return run_peer_command(peer_command(a, n, grid), f"peer qdax N={n}",
                            "bash benchmarks/peers/setup_peers.sh qdax", a.peer_timeout)


# -- output --------------------------------------------------------------------------------------------------
def _load(d):
    """1-minute load average before the compile and after the timed runs of one measurement."""
    if "load_before" not in d:
        return "—"
    return f"{d['load_before'][0]:.1f} → {d['load_after'][0]:.1f}"


def _met(x, target):
    return "—" if x is None else f"{fmt(x, 2)} ({'met' if x >= target else 'MISSED'})"


def markdown(report: dict) -> str:
    m, v, a = report["machine"], report["versions"], report["args"]
    gpu = ", ".join(m["gpu"]) if m["gpu"] else "none (CPU backend)"
    L = [f"### {report['date']} — {report['machine_slug']}", ""]
    if report["note"]:
        L += [report["note"], ""]
    emitter = report["emitter"]
    L += [
        f"- **Machine**: {m['cpu']}, {m['cores_usable']} usable cores ({m['cores']} online), {m['ram_gib']} GiB RAM, "
        f"GPU: {gpu}; JAX backend `{m['jax_backend']}`.",
        f"- **Load** (`uptime`): at start `{report['uptime_start']}`; at end `{report['uptime_end']}`.",
        f"- **Versions**: jax {v['jax']}, jaxlib {v['jaxlib']}, brax {v['brax']}, flax {v['flax']}, "
        f"rlland {v['rlland']} @ `{v['rlland_git']}`.",
        f"- **Command**: `{report['command']}`",
        f"- **Task**: `{a['env']}` foot contact ({a['backend']} backend, episode_length {a['episode_length']}, "
        f"{'random' if a['random_init'] else 'fixed'} start state), policy MLP {report['layer_sizes']} tanh "
        f"(genome {report['genome_size']:,} floats), grid {report['grid']} over [0, 1], {emitter}, batch "
        f"{a['batch_size']}, K = {a['generations']} generations per timed run "
        f"({a['generations'] * a['batch_size']:,} evaluations per seed, the initial population not timed).",
        f"- Medians of {a['repeats']} runs of each compiled kernel; compile time apart. Raw timings: "
        f"`{report['json_path']}`.",
        "",
        "| seeds | compile s | median run s | evals/s | env steps/s | ÷ bare rollout (≥ 0.8) | ÷ QDax (≥ 1.0) | "
        "1-min load before → after |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["rows"]:
        L.append(f"| {r['seeds']} | {fmt(r['compile_s'])} | {fmt(r['median_run_s'], 2)} | {fmt(r['evals_per_s'], 0)} | "
                 f"{fmt(r['env_steps_per_s'], 0)} | {_met(r.get('ratio_vs_bare'), TARGET_VS_BARE)} | "
                 f"{_met(r.get('ratio_vs_peer'), TARGET_VS_PEER)} | {_load(r)} |")
    L += ["", "*evals/s* = seeds x K x batch ÷ median run time (one evaluation = one episode of "
          f"{a['episode_length']} steps); *÷ bare rollout* = MAP-Elites evals/s ÷ the bare rollout's evals/s at the "
          "same N; *÷ QDax* = rlland evals/s ÷ QDax evals/s at the same N.", ""]
    if not a["no_bare"]:
        L += ["#### Bare limit (`jit(vmap(task.score))` of [N, batch] random genomes, K calls per timed run)", "",
              "| seeds | compile s | median run s | evals/s | env steps/s | 1-min load before → after |",
              "|---:|---:|---:|---:|---:|---|"]
        for r in report["rows"]:
            b = r["bare"]
            L.append(f"| {r['seeds']} | {fmt(b['compile_s'])} | {fmt(b['median_run_s'], 2)} | "
                     f"{fmt(b['evals_per_s'], 0)} | {fmt(b['env_steps_per_s'], 0)} | {_load(b)} |")
        L.append("")
    if a["peers"]:
        p0 = report["rows"][0]["peer"]
        L += [f"#### QDax {p0['version']} (own venv: jax {p0['jax']}, jaxlib {p0['jaxlib']}, brax {p0['brax']}, "
              f"flax {p0['flax']})", "",
              "| seeds | compile s | median run s | evals/s | env steps/s | elites after the run | 1-min load "
              "before → after |", "|---:|---:|---:|---:|---:|---:|---|"]
        for r in report["rows"]:
            p = r["peer"]
            L.append(f"| {r['seeds']} | {fmt(p['compile_s'])} | {fmt(p['median_run_s'], 2)} | "
                     f"{fmt(p['evals_per_s'], 0)} | {fmt(p['env_steps_per_s'], 0)} | "
                     f"{', '.join(map(str, p['num_elites']))} | {_load(p)} |")
        L += ["", "Peer commands:", ""] + [f"- `{r['peer']['command']}`" for r in report["rows"]] + [""]
        L.append(f"rlland elites after the run: {'; '.join(', '.join(map(str, r['num_elites'])) for r in report['rows'])} "
                 "(sanity only: both sides fill the grid, the numbers are not a quality comparison).")
        L.append("")
    return "\n".join(L)


HEADER = """## MAP-Elites throughput

Written by `benchmarks/qd_throughput.py` (see `benchmarks/README.md`, section "MAP-Elites throughput", for the
columns, the parameter mapping to QDax and the caveats). Targets (issue 8): rlland MAP-Elites at least 1.0x QDax
0.5.0 and at least 0.8 of the bare vmapped rollout rate, at the same setting.
"""


def main(argv=None):
    a = parse_args(argv)
    report = start_report("qd_throughput.py", a, argv, json_suffix="-qd")

    task, grid, emitter, init, run, score = build(a)
    report.update(grid=list(grid), emitter=emitter, genome_size=task.genome_size,
                  layer_sizes=list(task.layer_sizes))
    log(f"task {task.name}: layers {task.layer_sizes} (genome {task.genome_size}), grid {grid}, {emitter}, "
        f"batch {a.batch_size}, episode {a.episode_length}, K={a.generations}")
    rows = []
    for n in a.seeds:
        row = bench_map_elites(a, n, init, run)
        if not a.no_bare:
            log(f"bare N={n}: compiling jit(vmap(task.score)) for [{n}, {a.batch_size}] genomes")
            row["bare"] = bench_bare(a, n, task, score)
            row["ratio_vs_bare"] = row["evals_per_s"] / row["bare"]["evals_per_s"]
            log(f"N={n}: MAP-Elites {row['evals_per_s']:,.0f} evals/s, bare {row['bare']['evals_per_s']:,.0f} "
                f"evals/s: ratio {row['ratio_vs_bare']:.3f}")
        if a.peers:
            row["peer"] = run_peer(a, n, grid)
            row["ratio_vs_peer"] = row["evals_per_s"] / row["peer"]["evals_per_s"]
            log(f"N={n}: QDax {row['peer']['evals_per_s']:,.0f} evals/s (compile {row['peer']['compile_s']:.1f}s); "
                f"rlland/QDax = {row['ratio_vs_peer']:.2f}")
        rows.append(row)
    one = rows[0]
    for row in rows:
        row["scaling_vs_1_seed"] = row["evals_per_s"] / one["evals_per_s"]
    report["rows"] = rows
    report["versions"]["numpy"] = metadata.version("numpy")
    finish_report(report, a, markdown, block=BLOCK, header=HEADER)


if __name__ == "__main__":
    main()
