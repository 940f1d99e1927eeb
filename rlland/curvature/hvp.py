"""Hessian-vector products and small dense Hessians of a scalar loss over a parameter pytree.

All three functions take ``loss_fn(params) -> scalar``: close over the minibatch, the target networks and
anything else that must stay fixed (``functools.partial(loss, batch=batch)``), and ``stop_gradient`` any
bootstrap target, so that the Hessian is that of one well-defined objective (reference
``peer-libraries.md`` section 7; the subspace study differentiates its losses with fixed data and constant
critic targets, ``landscapes-and-subspaces.md`` B.1-B.2). They compute the exact Hessian, not a
Gauss-Newton approximation, as the reference does (B.2: ``autograd.grad(g, params, grad_outputs=v)``).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
from jax.flatten_util import ravel_pytree

PyTree = Any

__all__ = ["hvp", "linearized_hvp", "dense_hessian"]


def hvp(loss_fn: Callable[[PyTree], jax.Array], params: PyTree, v: PyTree) -> PyTree:
    """Hessian-vector product ``H(params) v`` by forward-over-reverse autodiff.

    ``H v = d/dt grad L(params + t v) |_{t=0} = jax.jvp(jax.grad(L), (params,), (v,))[1]``
    (JAX autodiff cookbook; the same exact HVP as PyHessian and Schneider et al. 2024, B.2).

    Args:
      loss_fn: scalar loss of the parameter pytree (batch and targets closed over).
      params: the point at which the Hessian is taken.
      v: tangent pytree with the same structure, shapes and dtypes as ``params``.

    Returns:
      ``H v`` as a pytree shaped like ``params``. Cost: about two gradient evaluations.
    """
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def linearized_hvp(loss_fn: Callable[[PyTree], jax.Array], params: PyTree) -> Callable[[PyTree], PyTree]:
    """Return ``matvec(v) = H(params) v`` that reuses one ``jax.linearize`` of ``grad(loss_fn)``.

    ``jax.linearize(jax.grad(L), params)`` evaluates the gradient once and stores the linearisation, so
    each later product only runs the tangent (forward) pass. Use it when many vectors meet the same
    Hessian (Lanczos, Hutchinson, SLQ). The stored residuals cost memory of the order of one forward pass.
    The result is a plain function of a pytree; it may be passed as ``matvec`` to :func:`lanczos_eigh`,
    :func:`hutchinson_trace` and :func:`spectral_density`, and it is safe to build inside ``jit``/``vmap``.
    """
    _, matvec = jax.linearize(jax.grad(loss_fn), params)
    return matvec


def dense_hessian(loss_fn: Callable[[PyTree], jax.Array], params: PyTree, *, max_params: int = 10_000) -> jax.Array:
    """The full ``[n, n]`` Hessian of ``loss_fn`` at ``params``, for small parameter counts.

    Rows and columns follow ``jax.flatten_util.ravel_pytree(params)`` order, so
    ``dense_hessian(L, p) @ ravel_pytree(v)[0] == ravel_pytree(hvp(L, p, v))[0]``. Computed as
    ``jax.hessian`` (``jacfwd(jacrev)``) of the loss of the flat vector, i.e. ``n`` HVPs at once; this is the
    "explicit" route of the reference (B.2, ``torch.autograd.functional.hessian`` then ``eigh``) and is
    meant for tests and tiny networks.

    Args:
      loss_fn: scalar loss of the parameter pytree.
      params: parameter pytree with ``n`` scalar entries in total.
      max_params: refuse ``n > max_params`` (memory grows as ``n**2``); raise it deliberately if needed.

    Raises:
      ValueError: if ``n > max_params``.
    """
    flat, unravel = ravel_pytree(params)
    n = flat.shape[0]
    if n > max_params:
        raise ValueError(
            f"dense_hessian: params have n={n} entries, above max_params={max_params}; the [n, n] Hessian "
            "would need n**2 memory. Use hvp / lanczos_eigh instead, or pass a larger max_params."
        )
    return jax.hessian(lambda x: loss_fn(unravel(x)))(flat)
