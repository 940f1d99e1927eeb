"""Curvature throughput: HVP cost and top-k Hessian eigenpairs of a TD3 actor loss, rlland vs SciPy eigsh + PyTorch.

The problem (issue 14): the TD3 actor loss ``L(theta) = -mean_s Q(s, tanh(mu_theta(s)))`` of a 17-256-256-6 ReLU
actor (71,942 parameters; the critic 23-256-256-1 is held fixed) on 4,096 observations, weights drawn like
PyTorch's ``nn.Linear`` default (uniform +-1/sqrt(fan_in)) and observations N(0, 1), all from ``--seed``. Its
Hessian w.r.t. the actor is what the subspace study (Schneider et al. 2024, B.2) diagonalises.

(a) HVP / gradient cost ratio (target <= 3): the median time of one ``jax.grad`` of the loss and of one HVP,
    both as ``--calls`` chained calls inside one jitted ``fori_loop`` (so dispatch is not timed), for the
    forward-over-reverse ``rlland.curvature.hvp`` and for ``linearized_hvp`` (one ``jax.linearize`` reused, what
    the eigensolver iterates; its one-off linearisation is inside the timed loop, amortised over the calls).
(b) top ``--k`` eigenpairs at relative residual ``--tol``: ``rlland.curvature.lanczos_eigh`` (thick-restart
    Lanczos over ``linearized_hvp``, jitted, compile time apart, median of ``--repeats`` calls) against the
    study's approach, ``scipy.sparse.linalg.eigsh(LinearOperator(n, n, HVP), k, which="LA", tol, maxiter=500)``
    over a PyTorch HVP (``benchmarks/peers/torch_eigsh.py`` in ``benchmarks/_peers/torch``), on the SAME weights
    and data (passed as an .npz). Both answers are then checked here the same way, in float64: the true residual
    ``r_i = ||H y_i - theta_i y_i||`` of every returned pair; converged = ``r_i <= tol * max|theta|`` (rlland's
    criterion, the relative backward error); ``max r_i / |theta_i|`` (ARPACK's own, per-pair criterion); the
    eigenvalue agreement between the two and the overlap of their top-k subspaces ``||V^T W||_F^2 / k``; and
    ``H @ probe`` of both sides (same operator?). Target: rlland faster at equal accuracy, i.e. a lower median wall
    time with every pair of both sides converged by the true residual.

    .venv/bin/python benchmarks/curvature_throughput.py --peers              # the recorded run (~8 min on 2 CPU cores)
    .venv/bin/python benchmarks/curvature_throughput.py --hidden 64,64 --samples 1024 --k 20 --peers --no_write
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from functools import partial

import rlland  # noqa: F401  (sets rlland's XLA flags before JAX starts its backend)

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from rlland import curvature

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
)

PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "peers", "torch_eigsh.py")
PEER_PYTHON = os.path.join(ROOT, "benchmarks", "_peers", "torch", "bin", "python")
BLOCK = "curvature_throughput"
TARGET_RATIO = 3.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--obs_dim", type=int, default=17)
    p.add_argument("--act_dim", type=int, default=6)
    p.add_argument("--hidden", default="256,256", help="actor and critic hidden widths (ReLU)")
    p.add_argument("--samples", type=int, default=4096, help="observations in the loss")
    p.add_argument("--k", type=int, default=100, help="eigenpairs")
    p.add_argument("--tol", type=float, default=1e-4, help="relative residual tolerance (both sides)")
    p.add_argument("--num_iters", type=int, default=0, help="rlland basis size per cycle (0: 2k+1, eigsh's ncv)")
    p.add_argument("--max_matvecs", type=int, default=0, help="rlland HVP budget (0: lanczos_eigh's default)")
    p.add_argument("--calls", type=int, default=20, help="chained grad / HVP calls per timed repeat in (a)")
    p.add_argument("--peers", action="store_true", help="also run SciPy eigsh over PyTorch HVPs")
    p.add_argument("--peer_repeats", type=int, default=None, help="eigsh repeats (default --repeats)")
    p.add_argument("--peer_timeout", type=float, default=3600)
    p.add_argument("--seed", type=int, default=0)
    add_report_args(p)
    a = p.parse_args(argv)
    try:
        a.hidden = tuple(int(h) for h in a.hidden.split(",") if h.strip())
    except ValueError:
        p.error("--hidden must be comma-separated integers")
    check_repeats(p, a)
    if min(a.obs_dim, a.act_dim, a.samples, a.k, a.calls, *a.hidden) < 1:
        p.error("sizes must be >= 1")
    a.peer_repeats = a.peer_repeats or a.repeats
    return a


# -- the problem ---------------------------------------------------------------------------------------------
def make_problem(a) -> dict[str, np.ndarray]:
    """Weights (PyTorch nn.Linear default init) and data as numpy float32: ``actor_<i>``, ``critic_<i>`` (W [in,
    out], b [out] alternating), ``obs`` [samples, obs_dim], ``probe`` [n] (a unit vector for the same-operator
    check). The same file goes to the peer."""
    rng = np.random.default_rng(a.seed)
    out = {}
    for name, sizes in (("actor", (a.obs_dim, *a.hidden, a.act_dim)), ("critic", (a.obs_dim + a.act_dim, *a.hidden, 1))):
        i = 0
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1 / np.sqrt(fan_in)
            out[f"{name}_{i}"] = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)
            out[f"{name}_{i + 1}"] = rng.uniform(-bound, bound, (fan_out,)).astype(np.float32)
            i += 2
    out["obs"] = rng.normal(size=(a.samples, a.obs_dim)).astype(np.float32)
    n = sum(v.size for k, v in out.items() if k.startswith("actor_"))
    probe = rng.normal(size=n)
    out["probe"] = (probe / np.linalg.norm(probe)).astype(np.float32)
    return out


def layers(problem, prefix: str) -> list:
    return [problem[f"{prefix}{i}"] for i in range(len([k for k in problem if k.startswith(prefix)]))]


def mlp(params, x, tanh_out: bool):
    n = len(params) // 2
    for i in range(n):
        x = x @ params[2 * i] + params[2 * i + 1]
        x = jax.nn.relu(x) if i < n - 1 else (jnp.tanh(x) if tanh_out else x)
    return x


def actor_loss(actor, critic, obs):
    """TD3's actor loss ``-mean Q1(s, mu(s))`` (reference B.1), the critic a constant."""
    return -jnp.mean(mlp(critic, jnp.concatenate([obs, mlp(actor, obs, True)], axis=-1), False))


# -- (a) HVP / gradient cost ---------------------------------------------------------------------------------
def chained(step, calls: int):
    """``jit(x0 -> fori_loop(calls, step))``: each call's input depends on the previous output."""
    return jax.jit(lambda x0, *args: jax.lax.fori_loop(0, calls, lambda i, x: step(x, *args), x0))


def bench_costs(a, actor, critic, obs) -> dict:
    unit = lambda t: jax.tree.map(lambda x: x / ravel_pytree(t)[0].std(), t)  # noqa: E731  (keeps v bounded)

    def grad_step(params, critic, obs):  # a tiny step keeps the data dependence without changing the cost
        g = jax.grad(actor_loss)(params, critic, obs)
        return jax.tree.map(lambda p, d: p - 1e-12 * d, params, g)

    def hvp_step(v, actor, critic, obs):
        return unit(curvature.hvp(partial(actor_loss, critic=critic, obs=obs), actor, v))

    def linearized(v, actor, critic, obs):  # one linearisation, `calls` tangent passes
        matvec = curvature.linearized_hvp(partial(actor_loss, critic=critic, obs=obs), actor)
        return jax.lax.fori_loop(0, a.calls, lambda i, v: unit(matvec(v)), v)

    v0 = jax.tree.map(lambda x: jnp.ones_like(x), actor)
    kernels = {"grad": (chained(grad_step, a.calls), (actor, critic, obs)),
               "hvp": (chained(hvp_step, a.calls), (v0, actor, critic, obs)),
               "linearized_hvp": (jax.jit(linearized), (v0, actor, critic, obs))}
    out = {}
    for name, (fn, args) in kernels.items():
        compiled = fn.lower(*args).compile()
        jax.block_until_ready(compiled(*args))  # warm-up
        t = timed(lambda: jax.block_until_ready(compiled(*args)), a.repeats)
        out[name] = dict(per_call_s=t["median_s"] / a.calls, times_s=t["times_s"])
        log(f"(a) {name}: {1e3 * out[name]['per_call_s']:.2f} ms per call (median of {a.repeats} x {a.calls})")
    for name in ("hvp", "linearized_hvp"):
        out[f"{name}_over_grad"] = out[name]["per_call_s"] / out["grad"]["per_call_s"]
    return out


# -- (b) eigenpairs ------------------------------------------------------------------------------------------
def bench_rlland(a, actor, critic, obs) -> tuple[dict, np.ndarray, np.ndarray]:
    def top_k(actor, critic, obs, key):
        matvec = curvature.linearized_hvp(partial(actor_loss, critic=critic, obs=obs), actor)
        return curvature.lanczos_eigh(matvec, actor, a.k, key, num_iters=a.num_iters or None, tol=a.tol,
                                      max_matvecs=a.max_matvecs or None, return_flat=True)

    key = jax.random.PRNGKey(a.seed)
    t0 = time.perf_counter()
    compiled = jax.jit(top_k).lower(actor, critic, obs, key).compile()
    compile_s = time.perf_counter() - t0
    result = jax.block_until_ready(compiled(actor, critic, obs, key))  # warm-up (allocations), not timed
    run = timed(lambda: jax.block_until_ready(compiled(actor, critic, obs, key)), a.repeats)
    log(f"(b) rlland lanczos_eigh: {run['median_s']:.2f}s median, {int(result.num_matvecs)} HVPs, "
        f"{int(np.sum(result.converged))}/{a.k} flagged converged (compile {compile_s:.1f}s)")
    row = dict(compile_s=compile_s, run_s=run["times_s"], median_run_s=run["median_s"],
               num_matvecs=int(result.num_matvecs), flagged_converged=int(np.sum(result.converged)),
               reported_max_relative_residual=float(np.max(result.residuals) / np.max(np.abs(result.eigenvalues))))
    return row, np.asarray(result.eigenvalues), np.asarray(result.eigenvectors)


def run_peer(a, problem_path: str, out_path: str) -> dict:
    cmd = [PEER_PYTHON, PEER_SCRIPT, "--problem", problem_path, "--out", out_path, "--k", str(a.k), "--tol",
           str(a.tol), "--repeats", str(a.peer_repeats), "--calls", str(a.calls)]
    return run_peer_command(cmd, "peer torch + scipy eigsh", "bash benchmarks/peers/setup_peers.sh torch",
                            a.peer_timeout)


def accuracy(problem, eigenvalues, eigenvectors, tol: float) -> dict:
    """True residuals of the pairs in float64 (exact HVPs of the float32 weights and vectors)."""
    with jax.enable_x64(True):
        f64 = lambda xs: [jnp.asarray(x, jnp.float64) for x in xs]  # noqa: E731
        actor, critic = f64(layers(problem, "actor_")), f64(layers(problem, "critic_"))
        obs = jnp.asarray(problem["obs"], jnp.float64)
        unravel = ravel_pytree(actor)[1]
        hvp = jax.jit(jax.vmap(lambda v, actor, critic, obs: ravel_pytree(curvature.hvp(
            partial(actor_loss, critic=critic, obs=obs), actor, unravel(v)))[0], in_axes=(0, None, None, None)))
        V = np.asarray(eigenvectors, np.float64)
        HV = np.concatenate([np.asarray(hvp(jnp.asarray(V[i:i + 10]), actor, critic, obs))
                             for i in range(0, len(V), 10)])
    theta = np.asarray(eigenvalues, np.float64)
    r = np.linalg.norm(HV - theta[:, None] * V, axis=1)
    scale = np.max(np.abs(theta))
    return dict(max_relative_residual=float(np.max(r) / scale), converged=int(np.sum(r <= tol * scale)),
                max_per_pair_relative_residual=float(np.max(r / np.abs(theta))),
                lambda_max=float(theta[0]), lambda_k=float(theta[-1]))


def agreement(vals_a, vecs_a, vals_b, vecs_b) -> dict:
    k = min(len(vals_a), len(vals_b))
    da, db = np.asarray(vals_a[:k], np.float64), np.asarray(vals_b[:k], np.float64)
    overlap = float(curvature.subspace_overlap(np.asarray(vecs_a[:k]), np.asarray(vecs_b[:k]), ks=k))
    return dict(max_abs_diff_over_lambda_max=float(np.max(np.abs(da - db)) / np.max(np.abs(da))),
                max_relative_diff=float(np.max(np.abs(da - db) / np.abs(db))), subspace_overlap=overlap)


# -- output --------------------------------------------------------------------------------------------------
def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "MISSED")


def markdown(report: dict) -> str:
    a, c, r = report["args"], report["costs"], report["rlland"]
    L = run_header(report)
    L += [f"- **Problem**: TD3 actor loss `-mean Q(s, tanh(mu(s)))`, actor {report['layer_sizes']} ReLU "
          f"({report['num_parameters']:,} parameters), critic fixed, {a['samples']:,} observations; k = {a['k']}, "
          f"tol = {a['tol']:g} on the relative residual `r_i / lambda_1`, `r_i = ||H y_i - theta_i y_i||` (rlland's "
          f"criterion; `r_i / theta_i` is ARPACK's), seed {a['seed']}.",
          f"- (a) per-call medians of {a['repeats']} timed loops of {a['calls']} chained calls inside one jit; (b) "
          f"medians of {a['repeats']} calls, compile apart; accuracy from float64 HVPs of the returned pairs.", "",
          "#### (a) HVP / gradient cost (target <= 3)", "",
          "| | ms per call | ÷ gradient |", "|---|---:|---:|",
          f"| `jax.grad` | {fmt(1e3 * c['grad']['per_call_s'], 2)} | 1 |",
          f"| `curvature.hvp` (forward-over-reverse) | {fmt(1e3 * c['hvp']['per_call_s'], 2)} | "
          f"{fmt(c['hvp_over_grad'], 2)} ({_met(c['hvp_over_grad'] <= TARGET_RATIO)}) |",
          f"| `curvature.linearized_hvp` (what Lanczos iterates) | {fmt(1e3 * c['linearized_hvp']['per_call_s'], 2)} | "
          f"{fmt(c['linearized_hvp_over_grad'], 2)} ({_met(c['linearized_hvp_over_grad'] <= TARGET_RATIO)}) |"]
    p = report.get("peer")
    if p:
        L.append(f"| PyTorch HVP (`autograd.grad` of the create_graph gradient) | {fmt(1e3 * p['hvp_s'], 2)} | "
                 f"{fmt(p['hvp_over_grad'], 2)} (÷ PyTorch's gradient, {fmt(1e3 * p['grad_s'], 2)} ms) |")
    L += ["", f"#### (b) top-{a['k']} eigenpairs at tol {a['tol']:g}", "",
          "| solver | compile s | median wall s | HVPs | converged (true residual) | max r_i / lambda_1 | "
          "max r_i / theta_i | lambda_1 | lambda_k |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [("rlland `lanczos_eigh` (thick restart)", r)] + ([("SciPy `eigsh` + PyTorch HVP (the study's)", p)]
                                                             if p else [])
    for name, row in rows:
        acc = row["accuracy"]
        L.append(f"| {name} | {fmt(row.get('compile_s'))} | {fmt(row['median_run_s'], 2)} | {row['num_matvecs']} | "
                 f"{acc['converged']}/{a['k']} | {acc['max_relative_residual']:.2e} | "
                 f"{acc['max_per_pair_relative_residual']:.2e} | {acc['lambda_max']:.5g} | {acc['lambda_k']:.5g} |")
    if p:
        g = report["agreement"]
        L += ["", f"- Agreement: max |theta_rlland - theta_eigsh| / lambda_1 = {g['max_abs_diff_over_lambda_max']:.2e} "
              f"(per pair, relative: {g['max_relative_diff']:.2e}); top-{a['k']} subspace overlap "
              f"{g['subspace_overlap']:.6f}; same operator: ||H p (jax) - H p (torch)|| / ||H p|| = "
              f"{report['probe_relative_difference']:.1e}; ARPACK converged: {p['arpack_converged']}.",
              f"- **Target** (rlland faster at equal accuracy): speed-up {fmt(report['speedup'], 2)}x, "
              f"{_met(report['target_met'])}.",
              f"- Peer: torch {p['torch']}, scipy {p['scipy']}, numpy {p['numpy']}, {p['threads']} threads; "
              f"`{p['command']}`."]
    L.append("")
    return "\n".join(L)


HEADER = """## Curvature throughput

Written by `benchmarks/curvature_throughput.py` (see its docstring): (a) HVP / gradient cost of the TD3 actor loss
(target <= 3), (b) top-100 Hessian eigenpairs at relative residual 1e-4, rlland's thick-restart Lanczos against
the subspace study's SciPy `eigsh` over a PyTorch HVP on the same weights and data (target: rlland faster at equal
accuracy, issue 14).
"""


def main(argv=None):
    a = parse_args(argv)
    report = start_report("curvature_throughput.py", a, argv, json_suffix="-curvature")
    problem = make_problem(a)
    actor = [jnp.asarray(x) for x in layers(problem, "actor_")]
    critic = [jnp.asarray(x) for x in layers(problem, "critic_")]
    obs = jnp.asarray(problem["obs"])
    n = int(ravel_pytree(actor)[0].shape[0])
    report.update(num_parameters=n, layer_sizes=[a.obs_dim, *a.hidden, a.act_dim])
    log(f"problem: actor {report['layer_sizes']} ({n:,} parameters), {a.samples} samples, k={a.k}, tol={a.tol:g}")

    report["costs"] = bench_costs(a, actor, critic, obs)
    row, vals, vecs = bench_rlland(a, actor, critic, obs)
    row["accuracy"] = accuracy(problem, vals, vecs, a.tol)
    report["rlland"] = row
    log(f"(b) rlland true residuals: {row['accuracy']}")
    if a.peers:
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(os.path.join(tmp, "problem.npz"), **problem)
            peer = run_peer(a, os.path.join(tmp, "problem.npz"), os.path.join(tmp, "out.npz"))
            out = dict(np.load(os.path.join(tmp, "out.npz")))
        peer["accuracy"] = accuracy(problem, out["eigenvalues"], out["eigenvectors"], a.tol)
        report["peer"] = peer
        report["agreement"] = agreement(vals, vecs, out["eigenvalues"], out["eigenvectors"])
        unravel = ravel_pytree(actor)[1]
        hp = np.asarray(ravel_pytree(curvature.hvp(partial(actor_loss, critic=critic, obs=obs), actor,
                                                   unravel(jnp.asarray(problem["probe"]))))[0])
        report["probe_relative_difference"] = float(np.linalg.norm(hp - out["hvp_probe"]) / np.linalg.norm(hp))
        report["speedup"] = peer["median_run_s"] / row["median_run_s"]
        equal_accuracy = row["accuracy"]["converged"] == a.k and peer["accuracy"]["converged"] == a.k
        report["target_met"] = bool(equal_accuracy and report["speedup"] > 1)
        log(f"(b) eigsh: {peer['median_run_s']:.2f}s median, {peer['num_matvecs']} HVPs; true residuals "
            f"{peer['accuracy']}; agreement {report['agreement']}; speed-up {report['speedup']:.2f}x")
    finish_report(report, a, markdown, block=BLOCK, header=HEADER)


if __name__ == "__main__":
    main()
