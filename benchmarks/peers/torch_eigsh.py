"""Top-k Hessian eigenpairs the way the subspace study computes them: SciPy ``eigsh`` over a PyTorch HVP.

Schneider et al. 2024 (reference ``landscapes-and-subspaces.md`` B.2): the loss is computed ONCE,
``g = autograd.grad(loss, params, create_graph=True)``, ``HVP(v) = autograd.grad(g, params, grad_outputs=v,
retain_graph=True)``, and ``scipy.sparse.linalg.eigsh(LinearOperator(n, n, HVP), k, which="LA", tol, maxiter=500)``
with SciPy's default ``ncv = max(2k+1, 20)``. Called by ``benchmarks/curvature_throughput.py`` with the venv
``benchmarks/_peers/torch`` (``bash benchmarks/peers/setup_peers.sh torch``).

The problem comes from ``--problem`` (an .npz written by the benchmark): the actor layers ``actor_0 ..`` and
critic layers ``critic_0 ..`` as (W [in, out], b [out]) pairs in order, the observations ``obs`` and a probe
vector ``probe``. The loss is the TD3 actor loss ``-mean Q(s, tanh(mu(s)))`` with ReLU hidden layers, written
with the same ``x @ W + b`` layout as the JAX side, so flat parameter vectors are in the same order
(``W_0, b_0, W_1, b_1, ...``, each row-major). The critic is held fixed (only the actor's Hessian).

Protocol: ``--repeats`` timed calls, each building the loss and its gradient graph and running ``eigsh`` (the
study's whole step), medians reported; HVP and gradient times are medians of ``--calls`` timed calls. Writes the
last run's eigenvalues (descending), eigenvectors ``[k, n]`` and ``H @ probe`` to ``--out``; prints ONE JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import scipy
import scipy.sparse.linalg as spla
import torch


def layers(data, prefix: str) -> list[torch.Tensor]:
    count = len([k for k in data.files if k.startswith(prefix)])
    return [torch.tensor(data[f"{prefix}{i}"]) for i in range(count)]


def mlp(params: list[torch.Tensor], x: torch.Tensor, tanh_out: bool) -> torch.Tensor:
    n = len(params) // 2
    for i in range(n):
        x = x @ params[2 * i] + params[2 * i + 1]
        x = torch.relu(x) if i < n - 1 else (torch.tanh(x) if tanh_out else x)
    return x


def actor_loss(actor, critic, obs):
    return -mlp(critic, torch.cat([obs, mlp(actor, obs, True)], dim=-1), False).mean()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--problem", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--maxiter", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--calls", type=int, default=10, help="timed HVP and gradient calls")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    data = np.load(a.problem)
    actor = [t.requires_grad_(True) for t in layers(data, "actor_")]
    critic, obs = layers(data, "critic_"), torch.tensor(data["obs"])
    n = sum(t.numel() for t in actor)
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])  # noqa: E731

    def operator():
        """The study's LinearOperator: one loss, one create_graph gradient, HVPs through it (counted)."""
        loss = actor_loss(actor, critic, obs)
        g = torch.autograd.grad(loss, actor, create_graph=True)
        count = [0]

        def matvec(x):
            count[0] += 1
            v = torch.from_numpy(np.ascontiguousarray(x, np.float32).reshape(-1))
            vs = [c.reshape(t.shape) for c, t in zip(torch.split(v, [t.numel() for t in actor]), actor)]
            return flat(torch.autograd.grad(g, actor, grad_outputs=vs, retain_graph=True)).numpy()

        return loss, spla.LinearOperator((n, n), matvec=matvec, dtype=np.float32), count

    def timed(fn, calls):
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    grad_s = timed(lambda: torch.autograd.grad(actor_loss(actor, critic, obs), actor), a.calls)
    loss, op, _ = operator()
    probe = data["probe"].astype(np.float32)
    hvp_probe = op.matvec(probe)
    hvp_s = timed(lambda: op.matvec(probe), a.calls)

    run_s, converged = [], True
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        _, op, count = operator()
        try:
            vals, vecs = spla.eigsh(op, k=a.k, which="LA", tol=a.tol, maxiter=a.maxiter)
        except spla.ArpackNoConvergence as err:  # keep what converged, say so
            vals, vecs, converged = err.eigenvalues, err.eigenvectors, False
        run_s.append(time.perf_counter() - t0)
        print(f"eigsh: {run_s[-1]:.2f}s, {count[0]} HVPs", file=sys.stderr, flush=True)
    order = np.argsort(vals)[::-1]
    np.savez(a.out, eigenvalues=vals[order], eigenvectors=vecs[:, order].T.astype(np.float32),
             hvp_probe=hvp_probe)
    print(json.dumps(dict(
        torch=torch.__version__, scipy=scipy.__version__, numpy=np.__version__, threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(), num_parameters=n, loss=float(loss), k=a.k, tol=a.tol, maxiter=a.maxiter,
        ncv=max(2 * a.k + 1, 20), run_s=run_s, median_run_s=statistics.median(run_s), num_matvecs=count[0],
        arpack_converged=converged, num_returned=int(len(vals)), grad_s=grad_s, hvp_s=hvp_s,
        hvp_over_grad=hvp_s / grad_s)))


if __name__ == "__main__":
    main()
