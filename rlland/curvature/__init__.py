"""Curvature of RL losses: Hessian-vector products, Lanczos eigenpairs, trace, spectral density, subspaces.

Tools for the policy-gradient-subspace study (Schneider et al., ICLR 2024; reference
``landscapes-and-subspaces.md`` part B) and PyHessian-style spectrum analysis, as pure functions that take
a loss or an operator (``loss_fn(params) -> scalar``, ``matvec(v) -> H v`` on pytrees) and one PRNG key.
Loop counts (``k``, ``num_iters``, ``num_probes``, ``num_samples``) are static Python ints; seeds and
snapshots come from ``jax.vmap`` over keys and ``(params, key)``.

    from functools import partial
    from rlland import curvature
    matvec = curvature.linearized_hvp(partial(loss, batch=batch), params)
    eig = curvature.lanczos_eigh(matvec, params, k=100, key=key, tol=1e-4)  # thick-restart Lanczos
    eig.converged.all(), eig.num_matvecs                                    # per-pair flags, HVPs used
    frac = curvature.gradient_subspace_fraction(grad, eig.eigenvectors, ks=[1, 2, 5, 10, 20, 50, 100])

Modules: ``hvp`` (hvp, linearized_hvp, dense_hessian), ``lanczos`` (lanczos_tridiag, lanczos_eigh -> EighResult),
``stochastic`` (hutchinson_trace, slq_quadrature, spectral_density), ``subspace``
(gradient_subspace_fraction, subspace_overlap, random_subspace_baseline, merge_eigenbases), ``flat`` (a pytree
operator as a flat one), ``analysis`` (actor/critic objectives of a training snapshot, their eigenbases and
gradient-subspace fractions: ``analyse_snapshot`` for one seed), ``study_losses`` (the subspace study's loss
definitions, the analysis default). A whole run (not imported here, as it loads runs
and draws figures): ``run_analysis.analyse_run`` (every snapshot, seeds vmapped; ``experiments/subspaces.py``),
``layout`` (its ``subspaces.h5``), ``figures``.
"""
from rlland.curvature.analysis import (
    SUBSPACE_KS,
    SUBSPACE_LOSSES,
    Objective,
    agent_objectives,
    analyse_snapshot,
    objective_gradients,
    objective_spectrum,
    off_policy_objectives,
    on_policy_batch,
    on_policy_objectives,
    on_policy_rollouts,
    part_loss,
    replay_batch,
    replay_minibatches,
    objective_matvec,
    resolve_subspace_sizes,
    snapshot_subspaces,
    subspace_fractions,
)
from rlland.curvature.study_losses import LOSS_DEFINITIONS, study_losses
from rlland.curvature.hvp import dense_hessian, hvp, linearized_hvp
from rlland.curvature.lanczos import EighResult, LanczosResult, lanczos_eigh, lanczos_tridiag
from rlland.curvature.stochastic import hutchinson_trace, slq_quadrature, spectral_density
from rlland.curvature.subspace import (
    gradient_subspace_fraction,
    merge_eigenbases,
    random_subspace_baseline,
    subspace_overlap,
)

__all__ = [
    "hvp",
    "linearized_hvp",
    "dense_hessian",
    "lanczos_eigh",
    "EighResult",
    "lanczos_tridiag",
    "LanczosResult",
    "hutchinson_trace",
    "slq_quadrature",
    "spectral_density",
    "gradient_subspace_fraction",
    "subspace_overlap",
    "random_subspace_baseline",
    "merge_eigenbases",
    # analysis of training snapshots (rlland.curvature.analysis)
    "SUBSPACE_KS",
    "SUBSPACE_LOSSES",
    "Objective",
    "part_loss",
    "resolve_subspace_sizes",
    "objective_matvec",
    "objective_spectrum",
    "objective_gradients",
    "subspace_fractions",
    "snapshot_subspaces",
    "replay_batch",
    "replay_minibatches",
    "on_policy_batch",
    "on_policy_rollouts",
    "off_policy_objectives",
    "on_policy_objectives",
    "agent_objectives",
    "analyse_snapshot",
    # the subspace study's loss definitions (rlland.curvature.study_losses)
    "LOSS_DEFINITIONS",
    "study_losses",
]
