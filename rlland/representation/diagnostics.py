"""Representation diagnostics logged during training: feature summaries, subsampling and the every-k gate.

The agents (``rlland.agents.ppo``, ``rlland.agents.off_policy``) call these inside their jitted ``step`` so the
metrics come out as scalar entries of the step's metrics dict, i.e. as reduced scan outputs with a seed axis
(``train/<name>`` [seed, chunk] in ``metrics.h5`` and in wandb). Reference: ``representation-regions-qd.md`` A.2
(ranks), A.3 (norms, dead units, diversity, trust region, KL), A.4 (when and on what data).

Three pieces:

* :func:`feature_summary`: the scalar metrics of one or several feature matrices [N, D] (ranks from one QR in XLA
  + one D x D SVD per matrix, :func:`tall_singular_values`, batched over matrices of the same shape: one loop and
  one LAPACK call per logging iteration for all of them; dead-unit counts for post-activations; norms);
* :func:`subsample`: a fixed-size random subset of a batch (the logging cost is bounded by ``log_samples``, not
  by the batch size);
* :func:`every`: run a metric function on the logging iterations (:func:`logs_at`: ``i % log_every == 0``, and
  the run's last iteration when the agent knows it) and return NaN (same structure, float32) on the others.

**Which iterations log** (:func:`logs_at`, reference A.4: "the first and last batch are always logged"):
``i % log_every == 0`` (so the first, i = 0) or ``i == last``, with ``last`` the run's final iteration, which
the driver (`rlland.train`) sets on the agent (``agent.final_iteration``, from ``total_steps``) before compiling.
The driver applies the same function on the host to know which rows of a chunk's per-iteration outputs are logged
ones (``updates/...`` in ``metrics.h5``).

**Cost under vmap.** ``every`` uses ``lax.cond``; with one seed it is a real branch and non-logging iterations
pay nothing. When seeds are vmapped (the driver's ``jit(vmap(scan(step)))``) the iteration counter is a per-seed
leaf of the state, so the predicate is batched and JAX lowers the cond to a ``select``: BOTH branches run on
every iteration, unless the vmap names its axis ``"seed"`` (``SEED_AXIS``; ``jax.vmap(chunk, axis_name="seed")``),
in which case ``every`` reduces the predicate over that axis and the cond stays a branch (see :func:`every`).
Either way the metrics are computed on a fixed subsample of ``log_samples`` rows, which bounds their cost
whatever the batch size. The spectra dominate that cost (8 matrices [log_samples, width] per PPO update).

**Chunk reduction and update resolution.** Non-logging iterations emit NaN. The chunk value of a metric
(``train/repr/...`` [seed, chunk]) is the mean over the LOGGED iterations of the chunk, i.e. a ``nanmean`` over
the chunk (`rlland.train`); a plain mean is NaN unless every iteration of the chunk logged (``log_every=1``).
Every logged iteration is also kept as it is (``updates/<metric>`` [seed, logged iteration], `rlland.train`).
A metric that is undefined on a logged iteration (e.g. the mean ratio below 1 - eps when no sample is below) is
NaN there too, as the reference, which does not log it.
"""
from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from rlland.representation import ranks as _ranks
from rlland.representation.norms import feature_norms
from rlland.representation.units import dead_units, supports_dead_units
from rlland.seed_axis import SEED_AXIS, seed_cond

# supports_dead_units (from units) is part of what the agents call here
__all__ = ["RANK_KEYS", "NORM_KEYS", "supports_dead_units", "householder_r", "tall_singular_values",
           "rank_summary",
           "feature_summary", "subsample", "nan_like", "logs_at", "every"]

RANK_KEYS = ("effective_rank", "approximate_rank", "srank", "feature_rank", "matrix_rank", "lambda_1")
NORM_KEYS = ("norm", "avg", "std")


def householder_r(F: jax.Array) -> jax.Array:
    """The triangular factor R [D, D] of ``F = QR`` (``F`` [N, D], N >= D), by D Householder reflections in XLA.

    Step k reflects column k onto ``e_k`` below the diagonal (Golub & Van Loan, *Matrix Computations*, Alg. 5.2.1):
    ``v = x - alpha e_k`` with ``x = F[k:, k]``, ``alpha = -sign(x_k) ||x||``, then ``F <- F - v (2 v^T F / v^T v)``.
    Backward stable like LAPACK's ``geqrf`` (``F + dF = QR`` with ``||dF|| <= c N D eps ||F||``); it is the same
    algorithm unblocked, written as one ``lax.fori_loop`` so that it runs in XLA's own threads rather than as a
    LAPACK custom call (see :func:`tall_singular_values`). R's sign convention may differ from LAPACK's (signs
    only: the singular values are the same). Float32 in, float32 out; vmappable.
    """
    F = jnp.asarray(F, jnp.float32)
    n, d = F.shape
    if n < d:
        raise ValueError(f"householder_r: needs N >= D rows, got shape {F.shape}")
    rows = jnp.arange(n)

    def reflect(k, A):
        x = jnp.where(rows >= k, jax.lax.dynamic_index_in_dim(A, k, axis=1, keepdims=False), 0.0)
        alpha = -jnp.where(x[k] >= 0, 1.0, -1.0) * jnp.linalg.norm(x)
        v = x - jnp.where(rows == k, alpha, 0.0)
        vv = jnp.vdot(v, v)  # 0 only when the column is already zero from row k on: nothing to reflect
        return A - jnp.outer(v, (v @ A) * jnp.where(vv > 0, 2.0 / jnp.where(vv > 0, vv, 1.0), 0.0))

    return jnp.triu(jax.lax.fori_loop(0, d, reflect, F)[:d])


def tall_singular_values(F: jax.Array) -> jax.Array:
    """Singular values of ``F`` [N, D] (descending, float32): for N > D those of its QR factor R [D, D]
    (:func:`householder_r`; ``s(F) = s(R)``), then a D x D SVD.

    Same values as ``jnp.linalg.svd(F)`` to float32 rounding: both steps are backward stable, so every s_i is
    within about ``c eps s_max`` (eps = 2^-23) of the exact value, far below the smallest rank threshold used here
    (``matrix_rank``'s ``max(N, D) eps s_max``). Why not the cheaper singular values from the Gram matrix,
    ``sqrt(eigvalsh(F^T F))``: squaring puts float32 rounding of size ``eps s_max^2`` on every eigenvalue, i.e.
    errors up to ``sqrt(eps) s_max ~ 3e-4 s_max`` on small singular values, which exceeds ``matrix_rank``'s
    tolerance whenever N < 1/sqrt(eps) ~ 2900 and blurs exactly the tail that dead, duplicated or nearly dead
    units create (a rank-deficient matrix would gain spurious ranks); in float64 it would be accurate, but
    float64 exists inside a jitted chunk only under a global ``jax_enable_x64`` (a scoped ``jax.enable_x64`` is
    lost when ``vmap`` re-traces the bodies of ``scan`` / ``cond``). Why not LAPACK's tall QR (the previous route):
    its ``geqrf`` runs on the BLAS threads of scipy's OpenBLAS, which oversubscribe the cores XLA is using (up to
    seconds per call on a loaded 2-core machine); the only LAPACK call left is the small D x D SVD.
    """
    F = jnp.asarray(F, jnp.float32)
    if F.shape[0] > F.shape[1]:
        F = householder_r(F)
    return jnp.linalg.svd(F, compute_uv=False)


def rank_summary(F: jax.Array) -> dict[str, jax.Array]:
    """The scalar entries of :func:`rlland.representation.all_ranks` (``RANK_KEYS``, default thresholds,
    uncentred) from :func:`tall_singular_values`; NaN when N < D, as ``all_ranks``."""
    n, d = F.shape
    if n < d:
        return {k: jnp.array(jnp.nan, jnp.float32) for k in RANK_KEYS}
    return _ranks.ranks_from_singular_values(tall_singular_values(F), (n, d))


def feature_summary(features: Mapping[str, jax.Array], *, ranks: bool = True, norms: bool = True,
                    dead_units_activation: str | None = None, post_suffix: str = "post",
                    center: bool = False) -> dict[str, jax.Array]:
    """Scalar metrics of named feature matrices ``{name: F [N, D]}``, keys ``"<name>/<metric>"``, all float32.

    * ``ranks``: ``effective_rank``, ``approximate_rank`` (the paper's "feature rank"), ``srank``,
      ``feature_rank``, ``matrix_rank`` and ``lambda_1`` = s_1/sqrt(N) (the definitions and default thresholds
      of :func:`rlland.representation.all_ranks`, uncentred unless ``center``; NaN when N < D), from
      :func:`tall_singular_values`. Matrices of the same shape share one batched QR + SVD call.
    * ``norms``: ``norm``, ``avg``, ``std`` (:func:`feature_norms`).
    * ``dead_units``: the count (reference A.3: a count, not a fraction) of dead units, for the names that end in
      ``post_suffix`` only (dead units are defined on post-activations), when ``dead_units_activation`` is given.
    """
    out: dict[str, jax.Array] = {}
    for name, F in features.items():
        if jnp.ndim(F) != 2:
            raise ValueError(f"feature_summary: {name!r} must be a feature matrix [N, D], got shape {jnp.shape(F)}")
    if ranks:
        by_shape: dict[tuple, list[str]] = {}
        for name, F in features.items():
            by_shape.setdefault(tuple(F.shape), []).append(name)
        for names in by_shape.values():
            stacked = jnp.stack([features[n].astype(jnp.float32) for n in names])
            if center:
                stacked = stacked - jnp.mean(stacked, axis=1, keepdims=True)
            r = jax.vmap(rank_summary)(stacked)
            for i, n in enumerate(names):
                out.update({f"{n}/{k}": r[k][i].astype(jnp.float32) for k in RANK_KEYS})
    for name, F in features.items():
        if norms:
            out.update({f"{name}/{k}": v.astype(jnp.float32) for k, v in feature_norms(F).items()})
        if dead_units_activation is not None and name.endswith(post_suffix):
            out[f"{name}/dead_units"] = dead_units(F, dead_units_activation)["count"].astype(jnp.float32)
    return out


def subsample(tree, key: jax.Array, num: int):
    """The rows ``idx`` of every leaf of ``tree`` (common leading axis n): ``num`` rows drawn without replacement,
    or every row, in order, when ``num >= n`` (no randomness used). ``num`` is static."""
    n = jax.tree.leaves(tree)[0].shape[0]
    if num <= 0:
        raise ValueError(f"subsample: num must be a positive int, got {num}")
    if num >= n:
        return tree
    idx = jax.random.choice(key, n, (num,), replace=False)
    return jax.tree.map(lambda x: x[idx], tree)


def nan_like(shapes) -> dict:
    """NaN float32 arrays with the shapes of ``shapes`` (a pytree of arrays or ShapeDtypeStructs)."""
    return jax.tree.map(lambda s: jnp.full(jnp.shape(s), jnp.nan, jnp.float32), shapes)


def logs_at(counter, log_every: int, last: int = -1):
    """Whether iteration ``counter`` (0-based; int, numpy or jax array) is a logging one:
    ``counter % log_every == 0`` or ``counter == last`` (the run's final iteration; -1 = none given). Reference
    A.4: the study logs at a fixed frequency and always the first and the last batch."""
    if int(log_every) < 1:
        raise ValueError(f"logs_at: log_every must be >= 1 (0 means: no diagnostics), got {log_every}")
    return (counter % int(log_every) == 0) | (counter == int(last))


def every(counter: jax.Array, log_every: int, fn: Callable[..., dict], *args, last: int = -1,
          axis_name: str | None = SEED_AXIS) -> dict:
    """``fn(*args)`` (cast to float32) on logging iterations (:func:`logs_at`: ``counter % log_every == 0`` or
    ``counter == last``), NaN everywhere otherwise.

    ``log_every`` and ``last`` are static: ``log_every`` = 1 calls ``fn`` unconditionally (no cond); >= 2 gates it
    with ``lax.cond``.

    Cost: with one seed the cond is a real branch; under a vmap over seeds named ``axis_name`` it stays one
    (`rlland.seed_axis.seed_cond`), so iterations on which no seed logs pay nothing, and each seed still gets NaN
    on its own non-logging iterations. Under an unnamed vmap both branches run every iteration.
    """
    if int(log_every) < 1:
        raise ValueError(f"every: log_every must be >= 1 (0 means: do not call every), got {log_every}")
    cast = lambda out: jax.tree.map(lambda x: jnp.asarray(x).astype(jnp.float32), out)
    if int(log_every) == 1:
        return cast(fn(*args))
    shapes = jax.eval_shape(lambda *a: cast(fn(*a)), *args)
    return seed_cond(logs_at(counter, log_every, last), lambda *a: cast(fn(*a)), lambda *a: nan_like(shapes), *args,
                     axis_name=axis_name)
