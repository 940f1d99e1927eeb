"""Exact region-counting throughput of rlland.regions against a plain NumPy per-neuron loop (issue 14).

The network is a 64-64 ReLU policy on hopper's observations (``rlland.envs.make("hopper")``, spring backend:
11-dim): rlland's PPO actor (``hidden_sizes=(64, 64)``, ``activation="relu"``, orthogonal init) with its biases
drawn from N(0, ``--bias_std``^2) in place of the init's zeros, so that it looks like a trained net (zero biases
put every first-layer hyperplane through the origin, and lines through the origin then meet 2 regions). Its hidden
layers come from ``regions.actor_layers`` and take raw observations.

Items counted (each exactly, counts compared between the two sides):

* (a) trajectory segments: consecutive states ``[s_t, s_t+1]`` of ``--episodes`` episodes of that policy
  (stochastic actions) rolled out with ``regions.collect_trajectory`` on hopper for at most ``--length`` steps;
  only pairs inside one episode (both states before the end), counted on ``t in [0, 1]``;
* (b) long random lines: the infinite lines through the origin and a uniformly drawn visited state (the
  reference's "origin" random lines), counted on ``t in (-inf, inf)``.

rlland side: ``regions.count_segments`` / ``regions.count_lines`` (host-side batches: a first pass with a small
buffer over every item, the overflowing items again with 4x larger buffers; exact). For each batch size the first
call (compiles of every buffer size and batch bucket it needs, plus one run) is reported apart, then the median of
``--repeats`` calls. Also reported at the largest batch: one static buffer, ``jit(vmap(count_on_segment /
count_on_line, max_pieces=--fixed_pieces))``, with how many items overflow it.

NumPy side: :func:`numpy_count`, the algorithm of the study's ``regions_counting_1d.py`` (Cohan et al. 2022,
reference B.2, after Hanin & Rolnick): a Python list of intervals, each with its affine map, split neuron by neuron
(one dot product per neuron and interval), float64, with rlland's rules for a crossing near a bound and for a
region (``rlland.regions.counting`` docstring) so that the counts must be equal. It is timed on the first
``--numpy_items`` items of each set (median of ``--repeats`` runs); items/s is per item, so it does not depend on
the batch size. Speedup = rlland items/s / NumPy items/s; target >= 100x.

Writes benchmarks/results/<date>-<machine>-regions.json and its own block of benchmarks/RESULTS.md
(benchmarks/report.py); ``--no_write`` prints only.

    .venv/bin/python benchmarks/regions_throughput.py                                    # the recorded run
    .venv/bin/python benchmarks/regions_throughput.py --episodes 16 --segment_batches 256 \\
        --line_batches 32 --numpy_items 20 --no_write                                      # smoke
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from importlib import metadata

import rlland  # noqa: F401  (sets rlland's XLA flags before JAX starts its backend)

import jax
import jax.numpy as jnp
import numpy as np

from rlland import agents, envs, regions
from rlland.regions.counting import INSIDE_ULPS

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

BLOCK = "regions_throughput"
TARGET = 100.0  # rlland items/s / NumPy items/s
HEADER = """## Region-counting throughput

Written by `benchmarks/regions_throughput.py` (its docstring says what is measured). Exact 1-D region counts of a
64-64 ReLU policy on hopper observations: rlland's `regions.count_segments` / `regions.count_lines` against a
plain NumPy per-neuron loop (the study's `regions_counting_1d.py` algorithm), the same counts on both sides.
Target (issue 14): at least 100x the NumPy loop.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    p.add_argument("--env", default="hopper")
    p.add_argument("--backend", default="spring")
    p.add_argument("--hidden", type=ints, default=[64, 64])
    p.add_argument("--bias_std", type=float, default=0.1, help="std of the policy's random biases")
    p.add_argument("--episodes", type=int, default=128, help="rolled-out episodes (segments come from these)")
    p.add_argument("--length", type=int, default=200, help="max steps per episode")
    p.add_argument("--segment_batches", type=ints, default=[256, 1024, 4096], help="segments per call")
    p.add_argument("--line_batches", type=ints, default=[64, 256, 1024], help="lines per call")
    p.add_argument("--numpy_items", type=int, default=200, help="segments timed with the NumPy loop "
                   "(lines: a tenth of it, at least 3)")
    p.add_argument("--fixed_pieces", type=int, default=64, help="buffer of the one-static-buffer comparison "
                   "(lines: 4x)")
    p.add_argument("--seed", type=int, default=0)
    add_report_args(p)
    a = p.parse_args(argv)
    check_repeats(p, a)
    return a


# -- the NumPy reference ---------------------------------------------------------------------------------------
EPS = INSIDE_ULPS * float(np.finfo(np.float32).eps)  # rlland's crossing tolerance (float32 kernels)


def _near(t: float, bound: float) -> bool:
    return bool(np.isfinite(bound)) and abs(t - bound) <= EPS * max(1.0, abs(bound))


def _inner(lo: float, hi: float) -> float:
    if np.isfinite(lo) and np.isfinite(hi):
        return 0.5 * lo + 0.5 * hi
    if np.isfinite(hi):
        return hi - 1 - abs(hi)
    if np.isfinite(lo):
        return lo + 1 + abs(lo)
    return 0.0


class Interval:
    """A piece ``[lo, hi]`` of the line with the affine map ``h(t) = t a + c`` of the current layer's input, the
    neurons of the current layer switched off on it, and the activation bits of the layers before."""

    def __init__(self, lo, hi, a, c, off, bits):
        self.lo, self.hi, self.a, self.c, self.off, self.bits = lo, hi, a, c, off, bits

    def split(self, w_n, b_n, n, parent_lo, parent_hi):
        """Neuron ``n`` (``z = t (a . w_n) + (c . w_n + b_n)``) on this interval: one or two intervals."""
        slope = float(np.dot(self.a, w_n))
        icpt = float(np.dot(self.c, w_n) + b_n)
        if slope != 0:
            t = -icpt / slope
            # a crossing is a new breakpoint iff strictly inside this interval and not within float error of
            # the bounds of the layer-(k-1) piece it lies in (rlland's rule for zero-bias neurons)
            if self.lo < t < self.hi and not (_near(t, parent_lo) or _near(t, parent_hi)):
                left = Interval(self.lo, t, self.a, self.c, self.off + ([n] if slope > 0 else []), self.bits)
                right = Interval(t, self.hi, self.a, self.c, self.off + ([] if slope > 0 else [n]), self.bits)
                return [left, right]
        if _inner(self.lo, self.hi) * slope + icpt <= 0:
            return [Interval(self.lo, self.hi, self.a, self.c, self.off + [n], self.bits)]
        return [self]

    def next_layer(self, w, b):
        on = np.ones(w.shape[1], bool)
        on[self.off] = False
        return Interval(self.lo, self.hi, (self.a @ w) * on, (self.c @ w + b) * on, [], self.bits + on.tobytes())


def numpy_count(layers, p0, p1, unbounded: bool = False) -> int:
    """Regions met by ``x(t) = p0 + t (p1 - p0)``, ``t in [0, 1]`` (or the whole line): intervals split neuron by
    neuron, layer by layer (the study's ``count_regions_1d``), then ``1 + number of pattern changes``."""
    p0 = np.asarray(p0, np.float64)
    a = np.asarray(np.asarray(p1, np.float32) - np.asarray(p0, np.float32), np.float64)  # rlland's direction
    t_lo, t_hi = (-np.inf, np.inf) if unbounded else (0.0, 1.0)
    intervals = [Interval(t_lo, t_hi, a, p0, [], b"")]
    for w, b in layers:
        w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
        out = []
        for parent in intervals:
            pieces = [parent]
            for n in range(w.shape[1]):
                pieces = [q for piece in pieces for q in piece.split(w[:, n], b[n], n, parent.lo, parent.hi)]
            out += [piece.next_layer(w, b) for piece in pieces]
        intervals = out
    return 1 + sum(x.bits != y.bits for x, y in zip(intervals[:-1], intervals[1:]))


# -- data ------------------------------------------------------------------------------------------------------
def build(a):
    """The policy's layers, the trajectory segments (p0, p1) and the lines (through 0 and a visited state)."""
    t0 = time.perf_counter()
    env = envs.make(a.env, backend=a.backend)
    agent = agents.make("ppo", env, dict(hidden_sizes=tuple(a.hidden), activation="relu"))
    k_nets, k_bias, k_roll, k_lines = jax.random.split(jax.random.PRNGKey(a.seed), 4)
    params = agent.init_networks(*jax.random.split(k_nets))
    leaves, tree = jax.tree.flatten(params["actor"])
    keys = jax.random.split(k_bias, len(leaves))
    leaves = [a.bias_std * jax.random.normal(k, x.shape, x.dtype) if x.ndim == 1 else x for k, x in zip(keys, leaves)]
    params = dict(params, actor=jax.tree.unflatten(tree, leaves))
    layers = [(np.asarray(w), np.asarray(b)) for w, b in regions.actor_layers(agent, params)]
    log(f"{a.env} ({a.backend}): observation size {env.observation_size}; policy layers "
        f"{[w.shape for w, _ in layers]} ({time.perf_counter() - t0:.1f}s)")

    t0 = time.perf_counter()
    roll = jax.jit(jax.vmap(lambda k: regions.collect_trajectory(agent, params, env, k, a.length, "stochastic")))
    traj = jax.device_get(roll(jax.random.split(k_roll, a.episodes)))
    states, mask = np.asarray(traj.states), np.asarray(traj.mask)
    pair = mask[:, :-1] & mask[:, 1:]
    p0, p1 = states[:, :-1][pair], states[:, 1:][pair]
    log(f"rolled out {a.episodes} episodes (<= {a.length} steps, compile + run {time.perf_counter() - t0:.1f}s): "
        f"{len(p0)} segments, mean episode {mask.sum(1).mean():.0f} steps")
    need = max(a.segment_batches)
    if len(p0) < need:
        reps = -(-need // len(p0))
        log(f"WARNING: {len(p0)} segments < largest batch {need}: the segments are repeated {reps} times")
        p0, p1 = np.tile(p0, (reps, 1)), np.tile(p1, (reps, 1))
    visited = states[mask]
    idx = np.asarray(jax.random.randint(k_lines, (max(a.line_batches),), 0, len(visited)))
    lines = (np.zeros((len(idx), states.shape[-1]), np.float32), visited[idx])
    data = dict(env_observation_size=int(env.observation_size), num_segments=int(pair.sum()),
                mean_episode_steps=float(mask.sum(1).mean()))
    return layers, {"segments": (p0, p1), "lines": lines}, data


# -- measurement -----------------------------------------------------------------------------------------------
def bench_kind(a, layers, kind, p0, p1):
    unbounded = kind == "lines"
    batched = regions.count_lines if unbounded else regions.count_segments
    single = regions.count_on_line if unbounded else regions.count_on_segment
    batches = a.line_batches if unbounded else a.segment_batches
    num_np = max(3, a.numpy_items // 10) if unbounded else a.numpy_items

    rows = []
    for n in batches:
        x0, x1 = p0[:n], p1[:n]
        t0 = time.perf_counter()
        res = batched(layers, x0, x1)
        first = time.perf_counter() - t0
        t = timed(lambda: batched(layers, x0, x1), a.repeats)
        assert not res.overflow.any(), "count_segments / count_lines must not overflow"
        counts = res.count
        rows.append(dict(batch=n, first_call_s=first, median_s=t["median_s"], times_s=t["times_s"],
                         items_per_s=n / t["median_s"], mean_count=float(counts.mean()),
                         max_count=int(counts.max())))
        log(f"{kind}: batch {n}: first call {first:.2f}s, median {t['median_s'] * 1e3:.1f} ms = "
            f"{n / t['median_s']:,.0f} items/s; regions per item mean {counts.mean():.1f}, max {counts.max()}")

    # one static buffer for every item of the largest batch
    n = max(batches)
    fixed = a.fixed_pieces * (4 if unbounded else 1)
    fn = jax.jit(jax.vmap(lambda x, y: single(layers, x, y, max_pieces=fixed)))
    x0, x1 = jnp.asarray(p0[:n]), jnp.asarray(p1[:n])
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(x0, x1))
    first = time.perf_counter() - t0
    t = timed(lambda: jax.block_until_ready(fn(x0, x1)), a.repeats)
    over = np.asarray(out.overflow)
    exact = regions.count_lines(layers, p0[:n], p1[:n]) if unbounded else regions.count_segments(layers, p0[:n], p1[:n])
    agree = bool(np.array_equal(np.asarray(out.count)[~over], exact.count[~over]))
    fixed_row = dict(batch=n, max_pieces=fixed, first_call_s=first, median_s=t["median_s"],
                     items_per_s=n / t["median_s"], overflowed=int(over.sum()), agrees_where_exact=agree)
    log(f"{kind}: one static buffer of {fixed} pieces, batch {n}: {n / t['median_s']:,.0f} items/s, "
        f"{over.sum()} of {n} overflow; counts agree where exact: {agree}")

    # the NumPy loop on the first items, checked against rlland's counts
    ref = [numpy_count(layers, p0[i], p1[i], unbounded) for i in range(num_np)]
    t = timed(lambda: [numpy_count(layers, p0[i], p1[i], unbounded) for i in range(num_np)], a.repeats)
    ours = exact.count[:num_np]
    mismatches = int(np.sum(np.asarray(ref) != ours))
    np_rate = num_np / t["median_s"]
    log(f"{kind}: NumPy loop {np_rate:,.1f} items/s on {num_np} items; count mismatches {mismatches}")
    for r in rows:
        r["speedup"] = r["items_per_s"] / np_rate
    fixed_row["speedup"] = fixed_row["items_per_s"] / np_rate
    return dict(rows=rows, fixed=fixed_row, numpy=dict(items=num_np, median_s=t["median_s"], times_s=t["times_s"],
                                                       items_per_s=np_rate, mismatches=mismatches))


# -- report ----------------------------------------------------------------------------------------------------
def _met(x):
    return f"{fmt(x, 0)}x ({'met' if x >= TARGET else 'MISSED'})"


def markdown(report: dict) -> str:
    a = report["args"]
    L = run_header(report)
    L += [f"- **Network**: PPO actor {report['layer_shapes']} ReLU (orthogonal init, biases ~ N(0, {a['bias_std']}^2)) "
          f"on `{a['env']}` ({a['backend']}) observations of size {report['data']['env_observation_size']}, raw.",
          f"- **Segments**: consecutive states of {a['episodes']} stochastic episodes of that policy (rlland rollout, "
          f"<= {a['length']} steps, mean {report['data']['mean_episode_steps']:.0f}): "
          f"{report['data']['num_segments']} segments, t in [0, 1]. **Lines**: infinite lines through the origin and "
          "a random visited state.",
          f"- rlland: `regions.count_segments` / `count_lines` (first pass with a small buffer, overflowing items "
          f"again with 4x buffers, exact); first call (compiles + one run) apart, then the median of "
          f"{a['repeats']} calls. NumPy: the study's per-neuron interval loop (float64), median of {a['repeats']} runs "
          "on the first items; equal counts required.", ""]
    for kind in ("segments", "lines"):
        k = report[kind]
        npk = k["numpy"]
        L += [f"#### {kind.capitalize()}", "",
              f"NumPy loop: {fmt(npk['items_per_s'], 1)} {kind}/s ({npk['items']} {kind}, count mismatches with "
              f"rlland: {npk['mismatches']}).", "",
              f"| batch | first call s | median s | {kind}/s | regions per item (mean / max) | ÷ NumPy (≥ 100x) |",
              "|---:|---:|---:|---:|---:|---:|"]
        for r in k["rows"]:
            L.append(f"| {r['batch']} | {fmt(r['first_call_s'], 2)} | {fmt(r['median_s'], 3)} | "
                     f"{fmt(r['items_per_s'], 0)} | {fmt(r['mean_count'])} / {r['max_count']} | {_met(r['speedup'])} |")
        f = k["fixed"]
        L += ["", f"One static buffer (`jit(vmap({'count_on_line' if kind == 'lines' else 'count_on_segment'}, "
              f"max_pieces={f['max_pieces']}))`, batch {f['batch']}): {fmt(f['items_per_s'], 0)} {kind}/s "
              f"({fmt(f['speedup'], 0)}x NumPy), {f['overflowed']} of {f['batch']} overflow (flagged, not exact); "
              f"first call {fmt(f['first_call_s'], 2)} s.", ""]
    return "\n".join(L)


def main(argv=None):
    a = parse_args(argv)
    report = start_report("regions_throughput.py", a, argv, json_suffix="-regions")
    layers, items, data = build(a)
    report.update(layer_shapes=[list(w.shape) for w, _ in layers], data=data)
    for kind in ("segments", "lines"):
        report[kind] = bench_kind(a, layers, kind, *items[kind])
    report["versions"]["numpy"] = metadata.version("numpy")
    finish_report(report, a, markdown, block=BLOCK, header=HEADER)


if __name__ == "__main__":
    main()
