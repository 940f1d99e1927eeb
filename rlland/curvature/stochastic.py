"""Randomised spectral summaries of a symmetric operator: Hutchinson trace and SLQ spectral density.

Both take ``matvec`` (pytree -> pytree, e.g. a loss-Hessian-vector product), the pytree ``like`` it acts
on, and one PRNG key; probe counts and Lanczos depths are static ints. They are PyHessian's ``.trace()``
and ``.density()`` (Yao et al. 2020) as pure, jittable, vmappable functions (vmap over keys for seeds, over
``(params, key)`` for snapshots).
"""
from __future__ import annotations

import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

from rlland.curvature.flat import flatten_operator
from rlland.curvature.lanczos import tridiag_flat, tridiag_matrix
from rlland.validation import static_int

PyTree = Any

__all__ = ["hutchinson_trace", "slq_quadrature", "spectral_density"]


def _map(f, xs, batch_size):
    if batch_size is None:
        return jax.vmap(f)(xs)
    return lax.map(f, xs, batch_size=static_int("batch_size", batch_size))


def hutchinson_trace(
    matvec: Callable[[PyTree], PyTree],
    like: PyTree,
    key,
    num_samples: int,
    *,
    batch_size: int | None = None,
    return_samples: bool = False,
):
    """Hutchinson's trace estimator with Rademacher probes.

    ``tr(A) ~= (1/N) sum_{s=1..N} z_s^T A z_s`` with ``z_s`` i.i.d. uniform on ``{-1, +1}^n`` (Hutchinson
    1989; PyHessian ``hessian.trace``). Unbiased; for symmetric ``A`` one probe has variance
    ``2 (||A||_F^2 - sum_i A_ii^2)``, so the standard error is ``sqrt(that / N)`` (zero for diagonal ``A``).
    Difference from PyHessian: it stops when the running mean changes by less than ``tol`` (a data-dependent
    loop count, not vmappable); here ``num_samples`` is fixed, and ``return_samples=True`` gives the
    per-probe values so callers can compute the standard error ``std(samples) / sqrt(N)``.

    Args:
      matvec: symmetric operator, pytree -> pytree shaped like ``like``.
      like: pytree the operator acts on (usually ``params``); float64 leaves give a float64 estimate.
      key: PRNG key for the probes.
      num_samples: number of probes ``N`` (static, >= 1).
      batch_size: probes per vectorised batch (``lax.map``); ``None`` evaluates all probes in one ``vmap``
        (memory ``N`` x one matvec).
      return_samples: also return the ``[N]`` per-probe values ``z_s^T A z_s``.

    Returns:
      The scalar estimate, or ``(estimate, samples)``.
    """
    op = flatten_operator(matvec, like)
    num_samples = static_int("num_samples", num_samples)
    probes = jax.random.rademacher(key, (num_samples, op.n), op.dtype)
    samples = _map(lambda z: jnp.vdot(z, op.matvec(z)), probes, batch_size)
    estimate = jnp.mean(samples)
    return (estimate, samples) if return_samples else estimate


def slq_quadrature(
    matvec: Callable[[PyTree], PyTree],
    like: PyTree,
    key,
    num_iters: int,
    num_probes: int,
    *,
    batch_size: int | None = 1,
):
    """Stochastic Lanczos quadrature nodes and weights (Lin, Saad & Yang 2016; Ghorbani et al. 2019).

    For each probe ``v_p = z_p / sqrt(n)`` (``z_p`` Rademacher, as PyHessian), ``m = num_iters`` Lanczos
    steps with full reorthogonalisation give ``T_p = S_p diag(theta_p) S_p^T``; the nodes are ``theta_p``
    and the weights ``tau_p = S_p[0, :]**2`` (they sum to 1). Then for any ``f``,
    ``v_p^T f(A) v_p ~= sum_j tau_pj f(theta_pj)`` (Gauss quadrature, exact for polynomials of degree
    ``<= 2m-1``), so ``tr f(A) ~= n * mean_p sum_j tau_pj f(theta_pj)`` and the spectral density is
    ``phi(t) ~= mean_p sum_j tau_pj delta(t - theta_pj)``. After a Lanczos breakdown the restarted block
    contributes nodes with zero weight.

    Args:
      matvec, like: the operator and the pytree it acts on (see :func:`hutchinson_trace`).
      key: PRNG key for the probes (and breakdown restarts).
      num_iters: Lanczos steps ``m`` per probe (static), ``1 <= m <= n``.
      num_probes: number of probes ``P`` (static). The probes are
        ``jax.random.rademacher(jax.random.split(key)[0], (P, n))``, the same draws as
        ``matfree.stochtrace.sampler_signs(like, num=P)`` at that key (used to cross-check against matfree).
      batch_size: probes run together (``lax.map``); the default 1 runs them one after another, keeping one
        ``[m, n]`` basis in memory; ``None`` vmaps all probes (``P`` bases).

    Returns:
      ``(nodes, weights)``, both ``[P, m]``.
    """
    op = flatten_operator(matvec, like)
    num_iters = static_int("num_iters", num_iters)
    num_probes = static_int("num_probes", num_probes)
    if num_iters > op.n:
        raise ValueError(f"num_iters={num_iters} exceeds the operator dimension n={op.n} (need num_iters <= n)")
    key_probes, key_restart = jax.random.split(key)
    probes = jax.random.rademacher(key_probes, (num_probes, op.n), op.dtype)
    restart_keys = jax.random.split(key_restart, num_probes)

    def one(args):
        z, k = args
        res = tridiag_flat(op.matvec, z, num_iters, k)
        theta, S = jnp.linalg.eigh(tridiag_matrix(res.diag, res.offdiag))
        return theta, S[0, :] ** 2

    return _map(one, (probes, restart_keys), batch_size)


def spectral_density(
    matvec: Callable[[PyTree], PyTree],
    like: PyTree,
    key,
    num_iters: int,
    num_probes: int,
    grid,
    sigma,
    *,
    normalize: bool = False,
    batch_size: int | None = 1,
):
    """Gaussian-smoothed spectral density of a symmetric operator by stochastic Lanczos quadrature.

    ``phi_sigma(t) = (1/P) sum_p sum_j tau_pj N(t; theta_pj, sigma^2)`` with the nodes/weights of
    :func:`slq_quadrature` and ``N`` the Gaussian pdf (Ghorbani, Krishnan & Xiao 2019, eq. 5; PyHessian
    ``density``/``density_generate``; google/spectral-density ``tridiag_to_density``). It integrates to 1
    over the real line, hence to about 1 over a grid that covers the spectrum by a few ``sigma``.

    Deliberate differences from PyHessian / google/spectral-density: ``grid`` is given by the caller (a
    static shape, so results of several seeds or snapshots share one grid under ``vmap``) instead of being
    ``linspace(min - 0.01, max + 0.01, 10000)`` of the probes' own nodes; ``sigma`` is the kernel standard
    deviation as given, not ``sigma_squared * max(1, lambda_max - lambda_min)`` used as a variance; and the
    density is not renormalised to unit mass on the grid unless ``normalize=True`` (their behaviour), so
    mass outside the grid stays visible.

    Args:
      matvec, like, key, num_iters, num_probes, batch_size: as in :func:`slq_quadrature`.
      grid: 1-D array of evaluation points ``t``.
      sigma: kernel standard deviation (> 0; may be traced).
      normalize: divide by the trapezoidal integral over ``grid``.

    Returns:
      ``(grid, density)``, both shaped like ``grid``.
    """
    grid = jnp.asarray(grid)
    if grid.ndim != 1 or grid.shape[0] < 2:
        raise ValueError(f"grid must be a 1-D array with at least 2 points, got shape {grid.shape}")
    if isinstance(sigma, numbers.Real) and not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    nodes, weights = slq_quadrature(matvec, like, key, num_iters, num_probes, batch_size=batch_size)
    grid = grid.astype(nodes.dtype)
    sigma = jnp.asarray(sigma, nodes.dtype)
    nodes = nodes.reshape(-1)
    weights = weights.reshape(-1) / num_probes
    z = (grid[None, :] - nodes[:, None]) / sigma
    kernel = jnp.exp(-0.5 * z**2) / (sigma * jnp.sqrt(2 * jnp.pi).astype(nodes.dtype))
    density = jnp.matmul(weights, kernel, precision=lax.Precision.HIGHEST)
    if normalize:
        density = density / jnp.trapezoid(density, grid)
    return grid, density
