"""Rank metrics of a feature matrix, all computed from ONE singular value decomposition.

Source: Moalla et al. 2024, "No Representation, No Trust" (reference
``representation-regions-qd.md`` A.2, ``metrics.py compute_ranks_from_features``).

Input is one feature matrix ``F`` of shape ``[N, D]``: ``N`` samples (rows, e.g. the flattened rollout batch) and
``D`` feature dimensions (e.g. the penultimate-layer width). Batches of matrices (seeds, snapshots, feature keys)
come from ``jax.vmap``.

Conventions shared by every function here:

* ``F`` is cast to float32 before the SVD, whatever its dtype.
* The features are NOT centred by default (``center=False``), as in the study: this is the plain SVD of the raw
  features. ``center=True`` subtracts the per-dimension mean over samples first (not in the reference).
* ``s`` are the ``min(N, D)`` singular values, sorted descending.
* **N < D is invalid.** With fewer samples than dimensions the rank of ``F`` is bounded by ``N``, so every rank
  measures the batch size, not the representation; the reference logs nothing at all in that case
  (``if N < D: return {}``). Shapes are static, so here the check is static too: every metric is NaN and
  ``all_ranks(...)["valid"]`` is ``False``. Nothing crashes, and the output structure is the same for every shape.
* Ranks are returned as float32 (so that NaN can mark an invalid matrix); their values are whole numbers,
  except ``effective_rank``, which is continuous.
* **Zero matrix (QUIRK of the original code, deliberately not reproduced).** When every singular value is 0 (e.g.
  all units dead), the original returns ``effective_rank = NaN`` (0/0), ``approximate_rank = srank = 1`` (its
  ``(~crossed).sum() + 1`` never considers k = 0), ``feature_rank = matrix_rank = 0``. Here every rank is 0: the
  smallest k with ``sum_{i<=k} s_i^2 >= 0.99 * 0`` is k = 0, and a fully collapsed representation has rank 0.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

_CUTOFF = 0.01  # the reference's single constant: 1 - 99% for (2), delta for (3), epsilon for (4)


def _check_matrix(F) -> jax.Array:
    F = jnp.asarray(F)
    if F.ndim != 2:
        raise ValueError(
            f"expected one feature matrix of shape [N, D] (use jax.vmap for batches), got shape {F.shape}"
        )
    if F.shape[0] < 1 or F.shape[1] < 1:
        raise ValueError(f"feature matrix must have N >= 1 rows and D >= 1 columns, got shape {F.shape}")
    return F.astype(jnp.float32)


def _svdvals(F: jax.Array, center: bool) -> jax.Array:
    if center:
        F = F - jnp.mean(F, axis=0, keepdims=True)
    return jnp.linalg.svd(F, compute_uv=False)  # descending, length min(N, D)


def _nan() -> jax.Array:
    return jnp.array(jnp.nan, jnp.float32)


# ---------------------------------------------------------------------------------------------------------------
# Ranks from singular values (s descending). Each returns a float32 scalar.


def _effective_rank(s: jax.Array) -> jax.Array:
    total = jnp.sum(s)
    positive = total > 0
    p = s / jnp.where(positive, total, 1.0)
    # 0 * log 0 = 0 (Roy & Vetterli): p == 0 contributes nothing.
    plogp = jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)
    return jnp.where(positive, jnp.exp(-jnp.sum(plogp)), 0.0).astype(jnp.float32)


def _smallest_k_reaching(values: jax.Array, threshold) -> jax.Array:
    """Smallest k >= 0 with sum_{i<=k} values_i >= threshold * sum(values) (values >= 0, sorted descending)."""
    total = jnp.sum(values)
    crossed = jnp.cumsum(values) >= threshold * total
    k = jnp.sum(~crossed) + 1  # the reference's implementation, valid when total > 0
    return jnp.where(total > 0, k, 0).astype(jnp.float32)


def _approximate_rank(s: jax.Array, threshold) -> jax.Array:
    return _smallest_k_reaching(s * s, threshold)


def _srank(s: jax.Array, delta) -> jax.Array:
    return _smallest_k_reaching(s, 1.0 - delta)


def _feature_rank(s: jax.Array, num_samples: int, epsilon) -> jax.Array:
    return jnp.sum(s / jnp.sqrt(jnp.float32(num_samples)) > epsilon).astype(jnp.float32)


def _matrix_rank(s: jax.Array, shape: tuple[int, int], rtol) -> jax.Array:
    if rtol is None:
        rtol = max(shape) * jnp.finfo(jnp.float32).eps
    tol = s[0] * rtol
    return jnp.sum(s > tol).astype(jnp.float32)


# ---------------------------------------------------------------------------------------------------------------
# Public API


@functools.partial(jax.jit, static_argnames=("center", "top_m"))
def singular_values(F, *, center: bool = False, top_m: int | None = None) -> jax.Array:
    """Singular values of ``F`` [N, D] (float32, descending).

    Returns all ``min(N, D)`` values, or the ``top_m`` largest (padded with NaN when ``min(N, D) < top_m``).
    Unlike the ranks, these are returned for N < D too: they are well defined, only the ranks are not.
    """
    F = _check_matrix(F)
    s = _svdvals(F, center)
    if top_m is not None:
        if top_m < 1:
            raise ValueError(f"top_m must be a positive int or None, got {top_m}")
        s = s[:top_m]
        if s.shape[0] < top_m:
            s = jnp.concatenate([s, jnp.full((top_m - s.shape[0],), jnp.nan, jnp.float32)])
    return s


@functools.partial(jax.jit, static_argnames=("center",))
def effective_rank(F, *, center: bool = False) -> jax.Array:
    """Effective rank (Roy & Vetterli 2007, Def. 2.1): ``exp(-sum_i p_i log p_i)`` with ``p_i = s_i / sum_j s_j``.

    Convention ``0 log 0 = 0``. Continuous, in ``[1, min(N, D)]`` for a nonzero matrix; 0 for the zero matrix
    (the original gives NaN there). NaN when N < D.
    """
    F = _check_matrix(F)
    if F.shape[0] < F.shape[1]:
        return _nan()
    return _effective_rank(_svdvals(F, center))


@functools.partial(jax.jit, static_argnames=("center",))
def approximate_rank(F, *, threshold=0.99, center: bool = False) -> jax.Array:
    """Approximate rank, "PCA 99%" (Yang et al. 2020, Sec. 2): the smallest k with
    ``sum_{i<=k} s_i^2 >= threshold * sum_i s_i^2`` (squared singular values; threshold 0.99).

    This is the "feature rank" plotted in Moalla et al. 2024 (``SVD/approximate_rank_pca``). Despite the name, no
    mean-centring (reference A.2). NaN when N < D; 0 for the zero matrix (the original gives 1).
    """
    F = _check_matrix(F)
    if F.shape[0] < F.shape[1]:
        return _nan()
    return _approximate_rank(_svdvals(F, center), threshold)


@functools.partial(jax.jit, static_argnames=("center",))
def srank(F, *, delta=0.01, center: bool = False) -> jax.Array:
    """srank (Kumar et al. 2021, Sec. 3): the smallest k with ``sum_{i<=k} s_i >= (1 - delta) * sum_i s_i``
    (singular values, NOT squared; delta 0.01). NaN when N < D; 0 for the zero matrix (the original gives 1).
    """
    F = _check_matrix(F)
    if F.shape[0] < F.shape[1]:
        return _nan()
    return _srank(_svdvals(F, center), delta)


@functools.partial(jax.jit, static_argnames=("center",))
def feature_rank(F, *, epsilon=0.01, center: bool = False) -> jax.Array:
    """Feature rank (Lyle et al. 2022, Eqs. 4-5): ``#{i : s_i / sqrt(N) > epsilon}`` with epsilon 0.01 and N the
    number of samples (rows). NaN when N < D.
    """
    F = _check_matrix(F)
    if F.shape[0] < F.shape[1]:
        return _nan()
    return _feature_rank(_svdvals(F, center), F.shape[0], epsilon)


@functools.partial(jax.jit, static_argnames=("center",))
def matrix_rank(F, *, rtol=None, center: bool = False) -> jax.Array:
    """Numerical matrix rank: ``#{i : s_i > tol}`` with ``tol = s_1 * rtol``.

    Default ``rtol = max(N, D) * eps(float32)`` (eps = 2**-23 ~ 1.19e-7, since F is cast to float32), i.e.
    ``tol = s_max * max(N, D) * eps``: the default of ``torch.linalg.matrix_rank`` / ``numpy.linalg.matrix_rank``
    used by the reference (``pytorch_rank``; its features are float32 too). NaN when N < D.
    """
    F = _check_matrix(F)
    if F.shape[0] < F.shape[1]:
        return _nan()
    return _matrix_rank(_svdvals(F, center), F.shape, rtol)


def ranks_from_singular_values(s: jax.Array, shape: tuple[int, int], *, threshold=0.99, delta=0.01,
                               epsilon=0.01, rtol=None) -> dict[str, jax.Array]:
    """The five rank metrics and ``lambda_1`` of an ``shape = (N, D)`` matrix (N >= D) from its singular values
    ``s`` (descending), e.g. computed once by a faster route (`rlland.representation.diagnostics`); formulas as
    `all_ranks`."""
    n = shape[0]
    return {
        "effective_rank": _effective_rank(s),
        "approximate_rank": _approximate_rank(s, threshold),
        "srank": _srank(s, delta),
        "feature_rank": _feature_rank(s, n, epsilon),
        "matrix_rank": _matrix_rank(s, shape, rtol),
        "lambda_1": s[0] / jnp.sqrt(jnp.float32(n)),
    }


@functools.partial(jax.jit, static_argnames=("center", "top_m"))
def all_ranks(
    F,
    *,
    center: bool = False,
    top_m: int = 3,
    threshold=0.99,
    delta=0.01,
    epsilon=0.01,
    rtol=None,
) -> dict[str, jax.Array]:
    """Every rank metric of ``F`` [N, D] from a single SVD (reference A.2).

    Returns a dict of float32 scalars (plus one vector and one bool):

    ========================  ==================================================================================
    ``effective_rank``        Roy & Vetterli, see :func:`effective_rank` (original key ``effective_rank_vetterli``)
    ``approximate_rank``      PCA-99% on s^2, see :func:`approximate_rank` (``approximate_rank_pca``; the paper's
                              "feature rank")
    ``srank``                 Kumar et al., delta 0.01 on s, see :func:`srank` (``srank_kumar``)
    ``feature_rank``          Lyle et al., #{s_i/sqrt(N) > 0.01}, see :func:`feature_rank` (``feature_rank_lyle``)
    ``matrix_rank``           numerical rank, tol = s_1 max(N, D) eps32, see :func:`matrix_rank` (``pytorch_rank``)
    ``lambda_1``              s_1 / sqrt(N)      (as logged by the reference)
    ``lambda_2``              s_2 / sqrt(N)      (NaN when min(N, D) < 2)
    ``lambda_N``              s_min / sqrt(N), the smallest of the min(N, D) singular values
    ``singular_values``       the ``top_m`` largest raw singular values, shape [top_m] (NaN-padded)
    ``valid``                 bool, ``N >= D``; when False every entry above is NaN (the reference logs nothing)
    ========================  ==================================================================================

    Static: ``center``, ``top_m`` (a shape). Traced: ``threshold``, ``delta``, ``epsilon``, ``rtol`` (a sweep over
    them is a vmap). Vmappable over a leading batch of matrices.
    """
    F = _check_matrix(F)
    if top_m < 1:
        raise ValueError(f"top_m must be a positive int, got {top_m}")
    n, d = F.shape
    keys = ("effective_rank", "approximate_rank", "srank", "feature_rank", "matrix_rank",
            "lambda_1", "lambda_2", "lambda_N")
    if n < d:
        out = {k: _nan() for k in keys}
        out["singular_values"] = jnp.full((top_m,), jnp.nan, jnp.float32)
        out["valid"] = jnp.array(False)
        return out
    s = _svdvals(F, center)
    scaled = s / jnp.sqrt(jnp.float32(n))
    top = s[:top_m]
    if top.shape[0] < top_m:
        top = jnp.concatenate([top, jnp.full((top_m - top.shape[0],), jnp.nan, jnp.float32)])
    return {
        **ranks_from_singular_values(s, F.shape, threshold=threshold, delta=delta, epsilon=epsilon, rtol=rtol),
        "lambda_2": scaled[1] if s.shape[0] > 1 else _nan(),
        "lambda_N": scaled[-1],
        "singular_values": top,
        "valid": jnp.array(True),
    }
