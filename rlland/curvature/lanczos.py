"""Lanczos tridiagonalisation with full reorthogonalisation, and top-k eigenpairs of a symmetric operator.

The operator is given only through ``matvec`` (pytree -> pytree), typically a Hessian-vector product of an
RL loss (:func:`rlland.curvature.hvp` / :func:`rlland.curvature.linearized_hvp`). Everything is a pure
function of one key and one parameter pytree: ``jax.vmap`` over keys and over (params, key) gives seeds
and snapshots, and ``jax.jit`` of a wrapper compiles once (loop counts are static Python ints).

Algorithm (Lanczos 1950; Golub & Van Loan, *Matrix Computations*, 4th ed., Alg. 10.1.1 with complete
reorthogonalisation, section 10.3.1). With ``q_0 = v / ||v||``, for ``j = 0 .. m-1``::

    w       = A q_j
    w      -= Q_j^T (Q_j w)        # twice ("CGS2"), Q_j = [q_0 .. q_j]; this also removes alpha_j q_j and
    w      -= Q_j^T (Q_j w)        #   beta_{j-1} q_{j-1}, so the basis stays orthonormal to working precision
    alpha_j = q_j . A q_j ,  beta_j = ||w|| ,  q_{j+1} = w / beta_j

giving ``A Q^T = Q^T T + w e_m^T`` with ``T = tridiag(beta, alpha, beta)``. The eigenvalues of ``T``
(Ritz values) approximate the extremal eigenvalues of ``A``; Ritz vectors are ``S^T Q``.

Breakdown: if ``beta_j <= sqrt(n) * eps * max_i ||A q_i||`` the Krylov space is (numerically) invariant.
We then set ``beta_j = 0`` and continue from a fresh random vector orthogonalised against ``Q`` (the
standard restart). ``T`` becomes block-diagonal, all its eigenvalues are still Rayleigh-Ritz values of ``A``
on an orthonormal basis, and nothing is divided by zero, so there are no NaNs (e.g. a matrix with few
distinct eigenvalues, or ``A = 0``).

Peers: google/spectral-density ``lanczos_alg`` (same full reorthogonalisation, but a Python loop and
float32 only; it no longer runs on current JAX), matfree ``decomp.tridiag_sym(reortho="full")`` (an
Arnoldi-based implementation without breakdown handling, used as the cross-check in the tests). The
subspace study (B.2) instead calls SciPy ``eigsh`` (implicitly restarted ARPACK) with ``which="LA"``,
``k=100``, ``ncv = max(2k+1, 20)``; our default ``num_iters`` is that Krylov dimension, but we do not
restart, so for tight convergence of the k-th pair use a larger ``num_iters`` and check
``return_residuals``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from rlland.curvature.flat import flatten_operator
from rlland.validation import static_int

PyTree = Any

__all__ = ["LanczosResult", "lanczos_tridiag", "lanczos_eigh", "tridiag_flat", "tridiag_matrix"]

_HI = lax.Precision.HIGHEST  # keep reorthogonalisation in full precision on accelerators (no TF32/bf16 passes)
_WHICH = ("LA", "SA", "LM")


class LanczosResult(NamedTuple):
    """Output of :func:`lanczos_tridiag` (all flat, in ``ravel_pytree`` order).

    Attributes:
      basis: ``[m, n]`` orthonormal Lanczos vectors ``Q`` (rows).
      diag: ``[m]`` diagonal ``alpha`` of ``T``.
      offdiag: ``[m-1]`` off-diagonal ``beta`` of ``T`` (zero where a breakdown restarted the iteration).
      residual_norm: ``||w||`` after the last step, so ``A Q^T = Q^T T + w e_m^T`` with ``||w||`` this value.
    """

    basis: jax.Array
    diag: jax.Array
    offdiag: jax.Array
    residual_norm: jax.Array


def tridiag_flat(matvec_flat: Callable[[jax.Array], jax.Array], v0: jax.Array, num_iters: int, key) -> LanczosResult:
    """``num_iters`` Lanczos steps (module docstring) of a flat operator ``[n] -> [n]`` from ``v0`` [n]; no
    argument checks (:func:`lanczos_tridiag` is the checked pytree version). ``key`` draws breakdown restarts."""
    n = v0.shape[0]
    dtype = v0.dtype
    m = num_iters
    eps = jnp.finfo(dtype).eps
    tiny = jnp.finfo(dtype).tiny
    breakdown_factor = jnp.sqrt(jnp.asarray(n, dtype)) * eps

    v0_norm = jnp.linalg.norm(v0)
    q0 = v0 / jnp.where(v0_norm > 0, v0_norm, 1)
    # A zero start vector (impossible for the random starts we draw, possible for a user's v0) is replaced
    # by e_0 rather than producing NaNs.
    q0 = jnp.where(v0_norm > 0, q0, jnp.zeros_like(v0).at[0].set(1))

    basis = jnp.zeros((m, n), dtype).at[0].set(q0)
    diag = jnp.zeros((m,), dtype)
    betas = jnp.zeros((m,), dtype)  # betas[j] couples q_j and q_{j+1}; betas[m-1] is the final residual norm

    def project_out(Q, x):
        x = x - jnp.matmul(jnp.matmul(Q, x, precision=_HI), Q, precision=_HI)
        return x - jnp.matmul(jnp.matmul(Q, x, precision=_HI), Q, precision=_HI)

    def body(j, carry):
        Q, diag, betas, anorm = carry
        q = Q[j]
        w = matvec_flat(q)
        anorm = jnp.maximum(anorm, jnp.linalg.norm(w))
        alpha = jnp.vdot(q, w)
        # rows > j of Q are still zero, so projecting on all of Q is projecting on span(q_0..q_j)
        w = project_out(Q, w)
        beta = jnp.linalg.norm(w)
        broke = beta <= breakdown_factor * anorm

        def restart(_):
            r = jax.random.normal(jax.random.fold_in(key, j), (n,), dtype)
            r = project_out(Q, r)
            return r / jnp.maximum(jnp.linalg.norm(r), tiny)

        def proceed(_):
            return w / jnp.where(broke, 1, beta)

        q_next = lax.cond(broke, restart, proceed, None)
        beta = jnp.where(broke, jnp.zeros_like(beta), beta)
        Q = Q.at[j + 1].set(q_next, mode="drop")  # no row m: the last step only yields the residual
        return Q, diag.at[j].set(alpha), betas.at[j].set(beta), anorm

    init = (basis, diag, betas, jnp.zeros((), dtype))
    basis, diag, betas, _ = lax.fori_loop(0, m, body, init)
    return LanczosResult(basis=basis, diag=diag, offdiag=betas[:-1], residual_norm=betas[-1])


def tridiag_matrix(diag: jax.Array, offdiag: jax.Array) -> jax.Array:
    """The dense ``[m, m]`` ``T = tridiag(offdiag, diag, offdiag)`` of a :class:`LanczosResult`."""
    return jnp.diag(diag) + jnp.diag(offdiag, 1) + jnp.diag(offdiag, -1)


def lanczos_tridiag(matvec: Callable[[PyTree], PyTree], v0: PyTree, num_iters: int, key) -> LanczosResult:
    """Run ``num_iters`` Lanczos steps with full reorthogonalisation from the start vector ``v0``.

    The building block of :func:`lanczos_eigh` and the stochastic-Lanczos-quadrature tools; see the module
    docstring for the recurrence and breakdown handling. Uses exactly ``num_iters`` matvecs.

    Args:
      matvec: symmetric linear operator, pytree -> pytree shaped like ``v0``.
      v0: start vector (pytree); it is normalised internally.
      num_iters: Krylov dimension ``m`` (static), ``1 <= m <= n``.
      key: PRNG key, used only to draw restart vectors after a breakdown.

    Returns:
      :class:`LanczosResult` with the flat ``[m, n]`` basis and the tridiagonal ``T`` (float32, or float64
      when ``v0`` is float64).
    """
    op = flatten_operator(matvec, v0)
    num_iters = static_int("num_iters", num_iters)
    if num_iters > op.n:
        raise ValueError(f"num_iters={num_iters} exceeds the operator dimension n={op.n} (need num_iters <= n)")
    v0_flat = ravel_pytree(v0)[0].astype(op.dtype)
    return tridiag_flat(op.matvec, v0_flat, num_iters, key)


def lanczos_eigh(
    matvec: Callable[[PyTree], PyTree],
    like: PyTree,
    k: int,
    key,
    num_iters: int | None = None,
    which: str = "LA",
    return_flat: bool = False,
    return_residuals: bool = False,
):
    """Top-k eigenpairs of a symmetric operator (e.g. a loss Hessian) by Lanczos with full reorthogonalisation.

    Runs ``m = num_iters`` Lanczos steps from a random Gaussian start vector, diagonalises the ``m x m``
    tridiagonal ``T = S diag(theta) S^T`` and returns the selected Ritz pairs ``(theta_i, S[:, i]^T Q)``.
    This replaces the reference's ``scipy.sparse.linalg.eigsh(LinearOperator(n, n, HVP), k, which="LA")``
    (Schneider et al. 2024, B.2), jittable and vmappable; each eigenvector's sign is fixed so that its
    largest-magnitude entry is positive (eigenvectors are defined only up to sign).

    Args:
      matvec: symmetric operator, pytree -> pytree shaped like ``like`` (e.g.
        ``functools.partial(hvp, loss_fn, params)`` or ``linearized_hvp(loss_fn, params)``).
      like: pytree with the operator's input structure (usually ``params``). Its dtype sets the working
        precision: float64 leaves give float64 (needs ``jax.enable_x64``), anything else float32.
      k: number of eigenpairs (static), ``1 <= k <= num_iters``.
      key: PRNG key for the start vector (and breakdown restarts); vmap over keys for several seeds.
      num_iters: Krylov dimension ``m`` (static), ``k <= m <= n``; ``None`` gives ``min(n, max(2k+1, 20))``,
        SciPy's default ``ncv`` used by the reference. Costs ``m`` matvecs, ``O(m^2 n)`` flops and an
        ``[m, n]`` basis in memory.
      which: ``"LA"`` largest algebraic (the reference; negative curvature ignored), returned in
        descending order; ``"LM"`` largest magnitude, returned by descending ``|lambda|``; ``"SA"``
        smallest algebraic, returned ascending.
      return_flat: return eigenvectors as a flat ``[k, n]`` array in ``ravel_pytree(like)`` order instead
        of a pytree shaped like ``like`` with a leading ``k`` axis.
      return_residuals: also return ``[k]`` Ritz residual norms ``|beta_m S[m-1, i]| = ||A y_i - theta_i
        y_i||`` (exact-arithmetic identity); small values relative to ``|theta_i|`` mean converged pairs.

    Returns:
      ``(eigenvalues [k], eigenvectors)`` or ``(eigenvalues, eigenvectors, residuals)``.

    Raises:
      ValueError: unless ``1 <= k <= num_iters <= n``, or for an unknown ``which``.
    """
    op = flatten_operator(matvec, like)
    k = static_int("k", k)
    if num_iters is None:
        num_iters = min(op.n, max(2 * k + 1, 20))
    num_iters = static_int("num_iters", num_iters)
    if not k <= num_iters <= op.n:
        raise ValueError(
            f"lanczos_eigh needs k <= num_iters <= n, got k={k}, num_iters={num_iters}, n={op.n} "
            "(n = number of parameters in `like`)"
        )
    if which not in _WHICH:
        raise ValueError(f"which must be one of {_WHICH}, got {which!r}")

    key_start, key_restart = jax.random.split(key)
    v0 = jax.random.normal(key_start, (op.n,), op.dtype)
    res = tridiag_flat(op.matvec, v0, num_iters, key_restart)

    theta, S = jnp.linalg.eigh(tridiag_matrix(res.diag, res.offdiag))  # ascending
    if which == "LA":
        order = jnp.argsort(theta, descending=True)[:k]
    elif which == "SA":
        order = jnp.argsort(theta)[:k]
    else:  # "LM"
        order = jnp.argsort(jnp.abs(theta), descending=True)[:k]
    eigvals = theta[order]
    S_k = S[:, order]  # [m, k]
    vecs = jnp.matmul(S_k.T, res.basis, precision=_HI)  # [k, n]
    # deterministic sign: largest-magnitude entry positive
    pivot = jnp.take_along_axis(vecs, jnp.argmax(jnp.abs(vecs), axis=1)[:, None], axis=1)
    sign = jnp.where(pivot < 0, -1, 1).astype(vecs.dtype)
    vecs = vecs * sign

    if not return_flat:
        vecs = jax.vmap(op.unravel)(vecs.astype(op.like_dtype))
    if return_residuals:
        residuals = jnp.abs(res.residual_norm * S_k[-1, :])
        return eigvals, vecs, residuals
    return eigvals, vecs
