"""Gradient-subspace fraction, subspace overlap, the random baseline, and actor/critic eigenbasis merging.

Schneider et al., "Identifying Policy Gradient Subspaces", ICLR 2024 (reference
``landscapes-and-subspaces.md`` B.2-B.4). Eigenbases are either flat ``[k, n]`` arrays (rows are
vectors, in ``ravel_pytree`` order) or pytrees whose leaves carry a leading ``k`` axis (what
:func:`rlland.curvature.lanczos_eigh` returns); gradients are flat ``[n]`` arrays or parameter pytrees.
Both are flattened the same way (leaf order of ``jax.tree_util.tree_leaves``, each leaf row-major), so a
pytree gradient and a pytree basis over the same parameters always line up.

All functions assume orthonormal basis rows (Lanczos/``eigh`` output); they do not re-orthonormalise.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

PyTree = Any

__all__ = ["gradient_subspace_fraction", "subspace_overlap", "random_subspace_baseline", "merge_eigenbases"]

_HI = lax.Precision.HIGHEST


def _flat_basis(eigvecs, name: str = "eigvecs") -> jax.Array:
    """``[k, n]`` from a flat basis or a pytree of leaves with a leading ``k`` axis."""
    leaves = jax.tree_util.tree_leaves(eigvecs)
    if not leaves:
        raise ValueError(f"{name} is empty")
    leaves = [jnp.asarray(x) for x in leaves]
    if any(x.ndim == 0 for x in leaves):
        raise ValueError(f"{name}: every leaf needs a leading k axis (one row per basis vector)")
    ks = {x.shape[0] for x in leaves}
    if len(ks) != 1:
        raise ValueError(f"{name}: leaves disagree on the leading k axis: {sorted(ks)}")
    (k,) = ks
    dtype = jnp.result_type(*leaves)
    return jnp.concatenate([x.reshape(k, -1).astype(dtype) for x in leaves], axis=1)


def _flat_vector(grad) -> jax.Array:
    return ravel_pytree(grad)[0]


def _resolve_ks(ks, kmax: int, name: str):
    """Returns (indices array, scalar?) for ks (None -> 1..kmax)."""
    if ks is None:
        return None, False
    scalar = isinstance(ks, numbers.Integral)
    ks_list = [int(ks)] if scalar else [int(k) for k in ks]
    bad = [k for k in ks_list if not 1 <= k <= kmax]
    if bad:
        raise ValueError(f"{name}: every k in ks must satisfy 1 <= k <= {kmax} (basis size), got {bad}")
    return jnp.asarray(ks_list) - 1, scalar


def gradient_subspace_fraction(grad, eigvecs, ks: int | Sequence[int] | None = None) -> jax.Array:
    """Fraction of the gradient inside the top-k eigenspace: ``S_frac(k) = ||V_k^T g||^2 / ||g||^2``.

    Schneider et al. 2024, B.3 (``||V_k V_k^T g||^2 / ||g||^2``, equal for orthonormal ``V_k``); ``V_k`` is
    the first ``k`` rows of ``eigvecs`` (ordered by eigenvalue, as returned), ``g`` the full flattened
    gradient. Values lie in [0, 1] up to rounding (not clipped). The expected value for a random
    ``k``-dimensional subspace is :func:`random_subspace_baseline` ``= k/n``.

    Args:
      grad: gradient, flat ``[n]`` or a pytree over the same parameters as ``eigvecs``.
      eigvecs: basis, flat ``[K, n]`` or a pytree with a leading ``K`` axis.
      ks: ``None`` for every ``k = 1..K`` (returns ``[K]``), a sequence of ints (returns ``[len(ks)]``,
        e.g. the study's ``[1, 2, 5, 10, 20, 50, 100]``), or one int (returns a scalar).

    For the reference's ``estimated_gradient`` variant (mean over minibatches of the per-minibatch
    fraction, a mean of ratios), ``jax.vmap`` this over the minibatch gradients and average the result.

    Returns:
      The fraction(s). A zero gradient (``||g|| = 0``) gives NaN: the fraction is undefined, and NaN keeps
      it out of ``nanmean`` aggregates instead of raising inside ``jit``.

    Raises:
      ValueError: if ``n`` differs between ``grad`` and ``eigvecs`` or a ``k`` is outside ``1..K``.
    """
    V = _flat_basis(eigvecs)
    g = _flat_vector(grad)
    if g.shape[0] != V.shape[1]:
        raise ValueError(f"grad has n={g.shape[0]} entries but eigvecs vectors have n={V.shape[1]}")
    dtype = jnp.result_type(V.dtype, g.dtype)
    V, g = V.astype(dtype), g.astype(dtype)
    coeffs = jnp.matmul(V, g, precision=_HI)
    captured = jnp.cumsum(coeffs**2)
    total = jnp.vdot(g, g)
    frac = jnp.where(total > 0, captured / jnp.where(total > 0, total, 1), jnp.nan)
    idx, scalar = _resolve_ks(ks, V.shape[0], "gradient_subspace_fraction")
    if idx is None:
        return frac
    out = frac[idx]
    return out[0] if scalar else out


def subspace_overlap(eigvecs_a, eigvecs_b, ks: int | Sequence[int] | None = None) -> jax.Array:
    """Overlap of two top-k subspaces: ``S_overlap(k) = ||A_k^T B_k||_F^2 / k``.

    Schneider et al. 2024, B.4: ``(1/k) sum_{i<=k} ||P_{A_k} b_i||^2`` with ``P = A_k^T A_k`` for row bases;
    1 for identical subspaces, 0 for orthogonal ones, 0.5 when half the directions are shared; a random
    pair has expectation ``k/n`` (:func:`random_subspace_baseline`). Symmetric in ``a`` and ``b``.

    Args:
      eigvecs_a, eigvecs_b: bases over the same ``n`` parameters, flat ``[K, n]`` or pytrees with a leading
        ``K`` axis (``K`` may differ; ``k`` runs up to the smaller one).
      ks: ``None`` for every ``k = 1..min(Ka, Kb)``, a sequence of ints, or one int (scalar result).
    """
    A = _flat_basis(eigvecs_a, "eigvecs_a")
    B = _flat_basis(eigvecs_b, "eigvecs_b")
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"eigvecs_a has n={A.shape[1]} but eigvecs_b has n={B.shape[1]}")
    K = min(A.shape[0], B.shape[0])
    dtype = jnp.result_type(A.dtype, B.dtype)
    M = jnp.matmul(A[:K].astype(dtype), B[:K].astype(dtype).T, precision=_HI)  # [K, K] = A_K B_K^T
    C = jnp.cumsum(jnp.cumsum(M**2, axis=0), axis=1)
    overlap = jnp.diagonal(C) / jnp.arange(1, K + 1, dtype=dtype)  # ||M[:k, :k]||_F^2 / k
    idx, scalar = _resolve_ks(ks, K, "subspace_overlap")
    if idx is None:
        return overlap
    out = overlap[idx]
    return out[0] if scalar else out


def random_subspace_baseline(k, n):
    """``k / n``: the expected gradient-subspace fraction (and overlap) for a uniformly random k-dim subspace.

    For a fixed unit vector ``g`` and a random k-dim subspace of ``R^n`` (Haar), ``E ||P g||^2 = k/n``
    (B.3, the rebuttal baseline). Works elementwise on arrays.
    """
    if isinstance(k, numbers.Integral) and isinstance(n, numbers.Integral):
        if n < 1 or not 0 <= k <= n:
            raise ValueError(f"random_subspace_baseline needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
        return k / n
    return jnp.asarray(k) / jnp.asarray(n)


def merge_eigenbases(eigvals_a, eigvecs_a, eigvals_b, eigvecs_b, k: int | None = None, return_flat: bool = True):
    """The "combined" eigenbasis of two parameter blocks (actor ``a``, critic ``b``), merged by eigenvalue.

    Reference B.2 (``HessianEigenCachedCalculator.collect_top_eigenvectors``): every actor vector is
    zero-padded on the critic parameters and every critic vector on the actor parameters, giving vectors
    over the concatenated parameters ``[a params, b params]`` (= ``ravel_pytree((params_a, params_b))``
    order); the two lists are merged by descending eigenvalue, the reference's "take the next largest
    from either". Ties go to ``b`` as in the reference (it takes the actor only on a strict ``>``).
    Inputs need not be pre-sorted (we sort the concatenation; for sorted inputs this is the same merge).
    The result is the top-k eigenbasis of the block-diagonal Hessian ``diag(H_a, H_b)``; the cross terms
    are ignored, as in the reference. Differences from the reference code: it returns the eigenvalues of
    both lists untruncated while the vectors are cut at ``num_eigenvectors``, and it indexes past the end
    of the critic list once that is exhausted; here eigenvalues and vectors are the same ``k`` pairs.

    Args:
      eigvals_a, eigvecs_a: ``[Ka]`` eigenvalues and basis (flat ``[Ka, na]`` or pytree with leading axis).
      eigvals_b, eigvecs_b: the same for the second block.
      k: keep the top ``k`` merged pairs (static); ``None`` keeps all ``Ka + Kb``.
      return_flat: flat ``[k, na + nb]`` eigenvectors (default), or a pytree ``(tree_a, tree_b)`` with a
        leading ``k`` axis, shaped like ``(eigvecs_a[0], eigvecs_b[0])``, when ``False``.

    Returns:
      ``(eigvals [k] descending, eigvecs)``.
    """
    A = _flat_basis(eigvecs_a, "eigvecs_a")
    B = _flat_basis(eigvecs_b, "eigvecs_b")
    la, lb = jnp.asarray(eigvals_a), jnp.asarray(eigvals_b)
    if la.shape != (A.shape[0],) or lb.shape != (B.shape[0],):
        raise ValueError(
            f"eigenvalue counts must match the bases: got eigvals {la.shape}/{lb.shape} for bases with "
            f"{A.shape[0]}/{B.shape[0]} vectors"
        )
    ka, na = A.shape
    kb, nb = B.shape
    total = ka + kb
    if k is None:
        k = total
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= total:
        raise ValueError(f"k must be an int with 1 <= k <= {total} (Ka + Kb), got {k!r}")
    dtype = jnp.result_type(A.dtype, B.dtype)
    a_pad = jnp.concatenate([A.astype(dtype), jnp.zeros((ka, nb), dtype)], axis=1)  # [ka, na + nb]
    b_pad = jnp.concatenate([jnp.zeros((kb, na), dtype), B.astype(dtype)], axis=1)  # [kb, na + nb]
    padded = jnp.concatenate([b_pad, a_pad], axis=0)  # b rows first: a stable sort then breaks ties to b
    vals = jnp.concatenate([lb, la]).astype(jnp.result_type(la.dtype, lb.dtype))
    order = jnp.argsort(vals, descending=True, stable=True)[:k]
    vals, vecs = vals[order], padded[order]
    if return_flat:
        return vals, vecs
    like = (
        jax.tree_util.tree_map(lambda x: jnp.asarray(x)[0], eigvecs_a),
        jax.tree_util.tree_map(lambda x: jnp.asarray(x)[0], eigvecs_b),
    )
    _, unravel = ravel_pytree(like)
    flat_like_dtype = ravel_pytree(like)[0].dtype
    return vals, jax.vmap(unravel)(vecs.astype(flat_like_dtype))
