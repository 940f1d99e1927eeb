"""Statistics of a post-update return distribution (PURD): mean, std, quantiles, mode, LTP, CVaR.

Source: Rahn et al., "Policy Optimization in a Noisy Neighborhood" (NeurIPS 2023); reference
``landscapes-and-subspaces.md`` A.5 (``improve_ltp/util/stats_util.py``, ``td3_reject_ltp.py``).

Every function takes the returns of ONE PURD, shape [N] (N post-update returns of one snapshot of one seed), and
is jittable and vmappable: batches over seeds / snapshots / hyperparameters come from ``jax.vmap``. Shapes and
loop-like settings (``num_bins``, ``qs`` in :func:`summarize`, the conventions) are static; scalar settings
(``threshold``, ``alpha``, ``pre_update_return``) are traced, so a sweep over them is a vmap.

Integer or half-precision returns are cast to float32; float32/float64 are kept (the original's returns are
float32). Use the UNDISCOUNTED returns for LTP/CVaR (reference A.4 QUIRK).

Sign of the reference value (mode or pre-update return). "Below 50% of X" only means "a large drop" when X > 0.
The original code applies ``R < threshold * X`` whatever the sign of X; for X < 0 the cut ``0.5 X`` lies ABOVE X,
so the LTP counts every return worse than half of a negative mode (typically well over half of the PURD). The
static argument ``sign_convention`` of :func:`ltp` / :func:`ltp_relative` / :func:`summarize` says what to do:

* ``"scale"`` (default, the original): cut = ``threshold * X``;
* ``"magnitude"``: cut = ``X - (1 - threshold) * |X|`` (a drop of ``1 - threshold`` times the magnitude of X;
  identical to ``"scale"`` for X >= 0, and ``1.5 X`` for X < 0 at threshold 0.5);
* ``"positive_only"``: as ``"scale"`` when X > 0, NaN otherwise (LTP declared undefined).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

_SIGN_CONVENTIONS = ("scale", "magnitude", "positive_only")
DEFAULT_QS = (0.05, 0.25, 0.5, 0.75, 0.95)


def _check_returns(returns) -> jax.Array:
    r = jnp.asarray(returns)
    if r.ndim != 1:
        raise ValueError(f"expected the returns of one PURD, shape [N] (use jax.vmap for batches), got {r.shape}")
    if r.shape[0] < 1:
        raise ValueError("expected at least one return, got an empty array")
    if not jnp.issubdtype(r.dtype, jnp.floating) or jnp.finfo(r.dtype).bits < 32:
        r = r.astype(jnp.float32)
    return r


def _check_sign_convention(sign_convention: str) -> None:
    if sign_convention not in _SIGN_CONVENTIONS:
        raise ValueError(f"sign_convention must be one of {_SIGN_CONVENTIONS}, got {sign_convention!r}")


def _check_unit_interval(name: str, value, low_open: bool) -> None:
    """Range check for concrete values; traced values (inside jit / vmap) cannot be checked and are let through."""
    if isinstance(value, jax.core.Tracer):
        return
    v = np.asarray(value, dtype=np.float64)
    ok = np.all((v > 0.0) if low_open else (v >= 0.0)) and np.all(v <= 1.0)
    if not ok:
        raise ValueError(f"{name} must be in {'(0, 1]' if low_open else '[0, 1]'}, got {value}")


@jax.jit
def mean(returns) -> jax.Array:
    """Mean of the PURD, ``R.mean()`` (reference A.5: the "PURD mean" logged by Algorithm 1)."""
    return jnp.mean(_check_returns(returns))


@functools.partial(jax.jit, static_argnames=("ddof",))
def std(returns, *, ddof: int = 0) -> jax.Array:
    """Standard deviation of the PURD; ``ddof=0`` (population, numpy's default) unless told. The original repo
    has no std code (reference A.5), so this is our convention."""
    r = _check_returns(returns)
    if ddof >= r.shape[0]:
        raise ValueError(f"std needs N > ddof, got N = {r.shape[0]}, ddof = {ddof}")
    return jnp.std(r, ddof=ddof)


@jax.jit
def quantiles(returns, qs) -> jax.Array:
    """Quantiles of the PURD at levels ``qs`` (scalar or 1-D, each in [0, 1]) with linear interpolation (the
    numpy / jnp default, ``method="linear"``, as the reference's CVaR uses). Shape of ``qs``. Out-of-range
    levels give NaN."""
    r = _check_returns(returns)
    qs = jnp.asarray(qs, dtype=r.dtype)
    if qs.ndim > 1:
        raise ValueError(f"qs must be a scalar or 1-D, got shape {qs.shape}")
    return jnp.quantile(r, qs, method="linear")


def _histogram_edges(r: jax.Array, num_bins: int) -> jax.Array:
    """Bin edges of ``numpy.histogram(r, bins=num_bins)``: equal width over [min r, max r], widened to
    [v - 0.5, v + 0.5] when all returns equal v; computed like ``numpy.linspace`` (start + i * step, in the
    dtype of r, last edge set to max exactly)."""
    lo, hi = jnp.min(r), jnp.max(r)
    same = lo == hi
    lo = jnp.where(same, lo - 0.5, lo)
    hi = jnp.where(same, hi + 0.5, hi)
    # Bit-exactness with numpy (which rounds the division, the product and the sum separately) needs care under
    # jit: XLA rewrites a division by a constant into a multiplication by its reciprocal, and LLVM contracts
    # ``i * step + lo`` into one FMA; either moves edges by an ulp. Both are blocked by making each operand a
    # select the compiler cannot fold (``lo == lo`` is False for NaN; ``isnan``); the selects never change a value.
    # (optimization_barrier does not help: it is removed before code generation.)
    n = jnp.where(lo == lo, jnp.asarray(num_bins, r.dtype), jnp.asarray(1, r.dtype))
    step = (hi - lo) / n
    offsets = jnp.arange(num_bins + 1, dtype=r.dtype) * step
    offsets = jnp.where(jnp.isnan(offsets), jnp.zeros_like(offsets), offsets)
    edges = offsets + lo
    return edges.at[-1].set(hi)


def _mode(r: jax.Array, num_bins: int, floor: bool) -> jax.Array:
    edges = _histogram_edges(r, num_bins)
    # numpy.histogram semantics: bin j is [e_j, e_{j+1}) and the last bin is closed [e_{n-1}, e_n].
    idx = jnp.searchsorted(edges, r, side="right", method="compare_all") - 1
    idx = jnp.clip(idx, 0, num_bins - 1)
    counts = jnp.zeros((num_bins,), jnp.int32).at[idx].add(1)
    j = jnp.argmax(counts)  # first maximum on ties, like numpy.argmax
    total = edges[j] + edges[j + 1]
    m = jnp.floor_divide(total, 2) if floor else total / 2
    finite = jnp.isfinite(edges[0]) & jnp.isfinite(edges[-1])
    return jnp.where(finite, m, jnp.nan).astype(r.dtype)


@functools.partial(jax.jit, static_argnames=("num_bins", "floor"))
def mode(returns, *, num_bins: int = 100, floor: bool = True) -> jax.Array:
    """Mode of the PURD, exactly as in the reference (A.5, ``get_perf_and_metric``):

    ``hist, edges = numpy.histogram(R, bins=100)`` (100 equal-width bins over [min R, max R], the last bin closed
    on the right, a constant R binned over [R - 0.5, R + 0.5]); ``j = argmax(hist)`` (the FIRST fullest bin on
    ties); ``mode = (edges[j] + edges[j + 1]) // 2``, i.e. the FLOOR of the bin midpoint (a QUIRK of the original
    that we keep by default: it rounds the mode down to an integer, which matters only for small-scale returns;
    ``floor=False`` gives the plain midpoint).

    Edges are computed in the dtype of the returns with numpy's operations and rounding, so the histogram is
    bit-identical to numpy's (tested on CPU, under jit and vmap, including returns that sit exactly on edges).
    Where numpy raises instead: non-finite returns give NaN; a range too narrow for 100 distinct edges in the
    dtype (e.g. a constant 1e6 in float32) still gives the floored midpoint of the fullest bin, about the value.
    """
    if num_bins < 1:
        raise ValueError(f"num_bins must be a positive int, got {num_bins}")
    return _mode(_check_returns(returns), num_bins, floor)


def _cut(reference: jax.Array, threshold, sign_convention: str) -> jax.Array:
    if sign_convention == "magnitude":
        return reference - (1.0 - threshold) * jnp.abs(reference)
    cut = threshold * reference
    if sign_convention == "positive_only":
        cut = jnp.where(reference > 0, cut, jnp.nan)
    return cut


def _fraction_below(r: jax.Array, cut: jax.Array) -> jax.Array:
    frac = jnp.mean((r < cut).astype(r.dtype))  # strict inequality, as in the reference
    return jnp.where(jnp.isnan(cut), jnp.nan, frac)


@functools.partial(jax.jit, static_argnames=("num_bins", "floor", "sign_convention"))
def ltp(returns, threshold=0.5, *, num_bins: int = 100, floor: bool = True, sign_convention: str = "scale"):
    """Left-tail probability relative to the PURD mode (reference A.5):

    ``LTP = (1/N) #{i : R_i < threshold * mode(R)}``, threshold 0.5, STRICT inequality, ``mode`` as in
    :func:`mode` (floored bin midpoint). Relative to the PURD mode, NOT to the pre-update return (for that see
    :func:`ltp_relative`). For a negative mode see the module docstring (``sign_convention``; the default
    ``"scale"`` is the original's ``R < 0.5 * mode`` whatever the sign). NaN if the mode is NaN.
    """
    _check_sign_convention(sign_convention)
    r = _check_returns(returns)
    m = _mode(r, num_bins, floor)
    return _fraction_below(r, _cut(m, jnp.asarray(threshold, r.dtype), sign_convention))


@functools.partial(jax.jit, static_argnames=("sign_convention",))
def ltp_relative(returns, pre_update_return, threshold=0.5, *, sign_convention: str = "scale"):
    """Left-tail probability relative to the pre-update return ``J(theta)`` (not in the original code; the paper's
    wording suggests it, the code uses the mode, see :func:`ltp`):

    ``(1/N) #{i : R_i < threshold * pre_update_return}``, strict inequality, threshold 0.5. For a negative
    pre-update return see the module docstring (``sign_convention``).
    """
    _check_sign_convention(sign_convention)
    r = _check_returns(returns)
    pre = jnp.asarray(pre_update_return, r.dtype)
    if pre.ndim != 0:
        raise ValueError(f"pre_update_return must be a scalar (vmap for batches), got shape {pre.shape}")
    return _fraction_below(r, _cut(pre, jnp.asarray(threshold, r.dtype), sign_convention))


def _cvar(r: jax.Array, alpha) -> jax.Array:
    q = jnp.quantile(r, alpha, method="linear")
    return q + jnp.mean(jnp.minimum(r - q, 0.0)) / alpha


@jax.jit
def _cvar_jit(returns, alpha):
    r = _check_returns(returns)
    return _cvar(r, jnp.asarray(alpha, r.dtype))


def cvar(returns, alpha=0.1) -> jax.Array:
    """Lower-tail CVaR_alpha of the PURD: the Rockafellar-Uryasev estimator used by the reference (A.5,
    ``stats_util.purd_cvar``):

    ``q = quantile(R, alpha)`` (linear interpolation, numpy default), ``CVaR = q + mean(min(R - q, 0)) / alpha``.

    Rounding / ties. No sample count is rounded: with ``R_(0) <= ... <= R_(N-1)`` sorted, q sits at position
    ``alpha (N - 1)``, and
    ``CVaR = q - (1 / (alpha N)) * sum_{i : R_i < q} (q - R_i)``.
    When ``k = alpha N`` is an integer (e.g. N = 1000, alpha = 0.1) this is EXACTLY the mean of the k smallest
    returns, ties included (q lies in [R_(k-1), R_(k)], so exactly those k samples lie below it, and samples equal
    to q add 0). Otherwise it interpolates between the floor(alpha N) and ceil(alpha N) tails (it is the CVaR of
    the empirical distribution evaluated at the interpolated quantile, not a mean over round(alpha N) samples).
    ``alpha = 1`` gives the mean. ``alpha`` is traced; it must lie in (0, 1].
    """
    _check_unit_interval("alpha", alpha, low_open=True)  # only when alpha is a Python number (not traced)
    return _cvar_jit(returns, alpha)


def summarize(
    returns,
    pre_update_return=None,
    alpha=0.1,
    *,
    threshold=0.5,
    qs: tuple[float, ...] = DEFAULT_QS,
    num_bins: int = 100,
    floor_mode: bool = True,
    sign_convention: str = "scale",
    ddof: int = 0,
) -> dict[str, jax.Array]:
    """All PURD statistics in one dict (each as in its own function above):

    ``mean``, ``std`` (ddof 0), ``min``, ``max``, ``quantiles`` (shape [len(qs)], at the static levels ``qs``,
    default 5/25/50/75/95%), ``mode`` (floored midpoint of the fullest of 100 bins), ``ltp`` (R < threshold *
    mode), ``cvar`` (lower tail, alpha 0.1), and, only when ``pre_update_return`` is given, ``pre_update_return``
    and ``ltp_relative`` (R < threshold * pre_update_return). The key set depends only on whether
    ``pre_update_return`` is None, so the dict is a fixed pytree under jit / vmap / scan.
    """
    _check_sign_convention(sign_convention)
    _check_unit_interval("alpha", alpha, low_open=True)  # only when alpha is a Python number (not traced)
    qs = tuple(float(q) for q in qs)
    for q in qs:
        _check_unit_interval("each of qs", q, low_open=False)
    return _summarize_jit(
        returns, pre_update_return, alpha, threshold, qs=qs, num_bins=num_bins, floor_mode=floor_mode,
        sign_convention=sign_convention, ddof=ddof,
    )


@functools.partial(jax.jit, static_argnames=("qs", "num_bins", "floor_mode", "sign_convention", "ddof"))
def _summarize_jit(returns, pre_update_return, alpha, threshold, *, qs, num_bins, floor_mode, sign_convention, ddof):
    r = _check_returns(returns)
    if ddof >= r.shape[0]:
        raise ValueError(f"std needs N > ddof, got N = {r.shape[0]}, ddof = {ddof}")
    if num_bins < 1:
        raise ValueError(f"num_bins must be a positive int, got {num_bins}")
    thr = jnp.asarray(threshold, r.dtype)
    m = _mode(r, num_bins, floor_mode)
    out = {
        "mean": jnp.mean(r),
        "std": jnp.std(r, ddof=ddof),
        "min": jnp.min(r),
        "max": jnp.max(r),
        "quantiles": jnp.quantile(r, jnp.asarray(qs, r.dtype), method="linear"),
        "mode": m,
        "ltp": _fraction_below(r, _cut(m, thr, sign_convention)),
        "cvar": _cvar(r, jnp.asarray(alpha, r.dtype)),
    }
    if pre_update_return is not None:
        pre = jnp.asarray(pre_update_return, r.dtype)
        if pre.ndim != 0:
            raise ValueError(f"pre_update_return must be a scalar (vmap for batches), got shape {pre.shape}")
        out["pre_update_return"] = pre
        out["ltp_relative"] = _fraction_below(r, _cut(pre, thr, sign_convention))
    return out
