"""The ``layers`` argument of :mod:`rlland.regions`: checks, widths and the worst-case number of pieces.

``layers`` is a list of ``(W, b)`` pairs for the hidden layers, ``W`` of shape ``(in, out)``, ``b`` of shape
``(out,)``; ``h_{k+1} = relu(h_k @ W_k + b_k)`` (the output head excluded, as Cohan et al. 2022, reference B.2,
who take the policy MLP's hidden layers only).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import jax
import jax.numpy as jnp

__all__ = ["validate_layers", "validate_point", "hidden_widths", "num_hidden_neurons", "pieces_upper_bound"]


def _shape(x: Any) -> tuple[int, ...] | str:
    try:
        return tuple(jnp.shape(x))
    except Exception:  # pragma: no cover - exotic leaves
        return f"<{type(x).__name__}>"


def _describe(layers: Any) -> str:
    try:
        return "[" + ", ".join(f"(W {_shape(w)}, b {_shape(b)})" for w, b in layers) + "]"
    except Exception:
        return repr(type(layers))


def validate_layers(layers: Any, in_dim: int | None = None) -> list[tuple[jax.Array, jax.Array]]:
    """Check that ``layers`` is a non-empty list of ``(W, b)`` with chaining shapes; return it as a list.

    Raises ``ValueError`` listing every layer's shapes when W is not 2-D, ``b`` is not ``(W.shape[1],)``,
    consecutive layers do not chain (``W_{k+1}.shape[0] != W_k.shape[1]``), or the first layer's input
    dimension differs from ``in_dim``. Works on tracers (only static shapes are read), so it also runs
    inside ``jit``/``vmap``, where a seed axis has already been stripped.
    """
    if not isinstance(layers, (list, tuple)) or len(layers) == 0:
        raise ValueError(
            "layers must be a non-empty list of (W, b) pairs for the hidden layers, W of shape (in, out); "
            f"got {type(layers).__name__}"
        )
    out: list[tuple[jax.Array, jax.Array]] = []
    for k, layer in enumerate(layers):
        if not isinstance(layer, (list, tuple)) or len(layer) != 2:
            raise ValueError(f"layers[{k}] must be a (W, b) pair; got {type(layer).__name__}")
        out.append((layer[0], layer[1]))
    desc = _describe(out)
    prev = None
    for k, (w, b) in enumerate(out):
        ws, bs = _shape(w), _shape(b)
        if len(ws) != 2:
            hint = " (a leading seed/snapshot axis? map it with jax.vmap)" if len(ws) == 3 else ""
            raise ValueError(f"layers[{k}]: W must have shape (in, out), got {ws}{hint}; layers = {desc}")
        if len(bs) != 1 or bs[0] != ws[1]:
            raise ValueError(
                f"layers[{k}]: b must have shape ({ws[1]},) to match W {ws}, got {bs}; layers = {desc}"
            )
        if prev is not None and ws[0] != prev:
            raise ValueError(
                f"layers[{k}]: W in-dim {ws[0]} does not chain with layers[{k - 1}] out-dim {prev}; "
                f"layers = {desc}"
            )
        prev = ws[1]
    first_in = _shape(out[0][0])[0]
    if in_dim is not None and in_dim != first_in:
        raise ValueError(
            f"input dimension {in_dim} does not match the first layer's in-dim {first_in}; layers = {desc}"
        )
    return out


def validate_point(x: Any, layers: Sequence[tuple[Any, Any]], name: str) -> None:
    """Raise ``ValueError`` unless ``x`` has shape ``(in_dim,)`` of the first layer."""
    in_dim = _shape(layers[0][0])[0]
    xs = _shape(x)
    if xs != (in_dim,):
        hint = " (batches: map with jax.vmap)" if len(xs) == 2 and xs[-1] == in_dim else ""
        raise ValueError(
            f"{name} must have shape ({in_dim},) = the first layer's in-dim, got {xs}{hint}; "
            f"layers = {_describe(layers)}"
        )


def hidden_widths(layers: Sequence[tuple[Any, Any]]) -> tuple[int, ...]:
    """Static widths (out-dims) of the hidden layers."""
    return tuple(int(_shape(w)[1]) for w, _ in layers)


def num_hidden_neurons(layers: Sequence[tuple[Any, Any]]) -> int:
    """Total number of hidden neurons n = sum of the hidden widths (the normaliser of Cohan et al.'s density)."""
    return int(sum(hidden_widths(layers)))


def pieces_upper_bound(layers_or_widths: Sequence[Any]) -> int:
    """Worst-case number of pieces of any line or segment: ``prod_k (width_k + 1)``.

    Why: within one piece of layer k-1's partition every layer-k pre-activation is affine in t, so each of
    the ``width_k`` neurons crosses zero at most once there; a piece is cut into at most ``width_k + 1``.
    The bound is attained only by contrived nets; trained and random nets sit far below it (one hidden
    layer: exactly ``width + 1`` on an infinite line in general position).
    """
    widths = [int(w) if isinstance(w, numbers.Integral) else int(_shape(w[0])[1]) for w in layers_or_widths]
    return int(math.prod(w + 1 for w in widths))
