"""Policy-gradient subspaces of one seed's training snapshot: actor/critic Hessian eigenbases, gradient-subspace
fractions and the data they are taken on (Schneider et al., "Identifying Policy Gradient Subspaces", ICLR 2024;
reference ``landscapes-and-subspaces.md`` B.1-B.4).

Everything here is a pure function of ONE seed's state and one key: ``jax.jit(jax.vmap(...))`` over the seed axis
of a snapshot gives every seed at once (:mod:`rlland.curvature.run_analysis` does so for each of a training run's
snapshots). Sizes (k, Krylov dimension, sample counts, minibatch counts) are static Python ints; hyperparameters
come from the state's traced ``hparams``.

Two layers:

* loss-level, agent-free (design principle 7): an :class:`Objective` is one parameter block with a loss on a big
  fixed batch (``loss(x) -> scalar``, the "true loss" of B.2) and a loss on each of ``M`` stacked minibatches
  (``minibatch_loss(x, mb)``). :func:`objective_spectrum` gives its top-k Hessian eigenpairs (thick-restart
  Lanczos with full reorthogonalisation over exact forward-over-reverse HVPs, converged to a relative residual
  ``tol`` or flagged), :func:`objective_gradients` the true and minibatch
  gradients, :func:`subspace_fractions` the true- and estimated-gradient fractions, and
  :func:`snapshot_subspaces` all of it for several objectives, plus the "combined" loss (B.2: actor and critic
  bases merged by eigenvalue, zero-padded to all parameters). A user with their own network builds Objectives.
* agent adapters: :func:`off_policy_objectives` (TD3 / SAC, replay data), :func:`on_policy_objectives` (PPO,
  fresh rollouts), :func:`agent_objectives` (dispatch) and :func:`analyse_snapshot` (objectives + spectra +
  fractions for one seed's snapshot state: the function to vmap).

The losses (B.1): ``policy_loss`` is the agent's ``actor_loss`` differentiated w.r.t. ``params["actor"]`` ONLY and
``value_function_loss`` its ``critic_loss`` w.r.t. ``params["critic"]`` ONLY, every other entry of ``params``
(critic in the actor loss, targets, temperature, observation statistics) held at its snapshot value. So the actor
Hessian never sees critic parameters and the actor-loss gradient has no critic component, as the reference's
detached critic copies ensure; critic targets are constants (``stop_gradient`` in the agents' losses). The cross
(actor-critic) Hessian block is never formed, as in the reference.

Which losses: the agent's ``actor_loss`` / ``critic_loss`` unless ``losses`` gives others with the same
convention; :mod:`rlland.curvature.study_losses` has the subspace study's (the run analysis's default), which
differ from rlland's training losses in scale (SAC critic, PPO critic) and in the TD3 actor's Q head.

Low-sample Hessian (B.2): each adapter also gives the objective's loss on its minibatches concatenated (one batch
of ``M x B`` samples, about 2048, one fixed noise draw), whose eigenbasis gives the study's ``low_sample``
fraction variants (:func:`snapshot_subspaces` with ``low_sample=True``).

Fixed noise (so that each Hessian is that of one well-defined deterministic objective, B.2 "the loss is computed
ONCE"): every loss gets one fixed key per batch: TD3's target-policy smoothing noise and SAC's sampled next
actions (critic) and reparameterisation noise (actor) are one draw per sample, held fixed across all HVPs. As in
the agents' updates, the critic and actor of a batch use different keys (one split).

Data:

* TD3 / SAC (B.2 "off-policy"): the big batch is ``num_samples`` distinct transitions drawn uniformly WITHOUT
  replacement from the valid part of the snapshot's replay buffer; ``num_samples = buffer.size`` is the whole
  valid buffer (the reference's choice). Minibatches: ``num_minibatches`` (default ``2048 // minibatch_size``, 8
  for batch 256 as in the reference) of ``minibatch_size`` (default the agent's ``batch_size``) transitions,
  sampled uniformly with replacement like the training minibatches, each with its own noise key.
* PPO (B.2 "on-policy"): ``num_rollouts`` fresh rollouts of the agent's ``unroll_length`` steps in its
  ``num_envs`` envs, chained in time from the snapshot's env states with the snapshot's stochastic policy, then
  GAE (the agent's gamma / lambda, truncation-aware) over the whole chained horizon by ``agent.make_batch``:
  ``num_rollouts * unroll_length * num_envs`` samples. Minibatches: one more fresh rollout of the training size
  from the snapshot's env states (another key), shuffled and split into the agent's ``num_minibatches``, i.e.
  the batch and minibatches the next PPO update would use. QUIRK: the reference built this minibatch buffer
  with gae_lambda=1 and gamma=0.99 (SB3 defaults), not the agent's values; we use the agent's.
  The PPO actor loss normalises advantages over the batch it is given (the whole big batch for the true loss,
  each minibatch for the estimated gradient), as the reference does; ratio = 1 at the snapshot (fresh data).

Observation normalisation statistics are frozen at the snapshot's (reference: VecNormalize ``training=False``).

Memory: the true-loss HVPs are linearised once (``linearized_hvp``), which stores the forward activations of the
big batch: about ``num_samples x (sum of layer widths) x 4 bytes x a few`` per seed and loss, times the number
of seeds vmapped. For the study's 10^6-sample batches with 256-256 nets use ``chunk_size`` (off-policy): the
loss becomes the mean of equal-size chunk losses under ``jax.checkpoint`` and HVPs are recomputed
(``hvp``), so memory is per chunk. Chunking is exact for the off-policy losses (means over samples) except that
each chunk draws its own fixed noise; it is refused for PPO, whose actor loss normalises advantages per batch.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from rlland.curvature.hvp import hvp, linearized_hvp
from rlland.curvature.lanczos import lanczos_eigh
from rlland.curvature.stochastic import slq_quadrature
from rlland.curvature.subspace import gradient_subspace_fraction, merge_eigenbases
from rlland.validation import static_int

PyTree = Any

__all__ = [
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
]

SUBSPACE_KS = (1, 2, 5, 10, 20, 50, 100)  # the reference's top_eigenvec_levels (B.3)
# the reference's loss names (B.5): actor loss, critic loss, and their sum with the merged eigenbasis
SUBSPACE_LOSSES = ("policy_loss", "value_function_loss", "combined_loss")
_PARTS = {"policy_loss": ("actor", "actor_loss"), "value_function_loss": ("critic", "critic_loss")}


class Objective(NamedTuple):
    """One parameter block's losses at a snapshot.

    Attributes:
      params: the block's parameters (a pytree) at which Hessian and gradients are taken.
      loss: ``loss(x) -> scalar``: the loss of the block's parameters ``x`` on the big fixed batch, with fixed
        noise and everything else closed over. Its Hessian and "true gradient" are analysed.
      minibatch_loss: ``minibatch_loss(x, mb) -> scalar`` on one minibatch ``mb`` (one slice of ``minibatches``).
      minibatches: pytree whose leaves have a leading ``M`` axis (minibatch data and per-minibatch keys).
      low_sample_loss: optional ``loss(x) -> scalar`` on the CONCATENATION of the minibatches' data (one fixed
        noise draw), whose Hessian is the study's "low_sample" one (B.2); None: no low-sample variant.
    """

    params: PyTree
    loss: Callable[[PyTree], jax.Array]
    minibatch_loss: Callable[[PyTree, Any], jax.Array]
    minibatches: Any
    low_sample_loss: Callable[[PyTree], jax.Array] | None = None


def part_loss(loss_fn: Callable, params: dict, part: str, batch: Any, key, hp) -> Callable[[PyTree], jax.Array]:
    """``x -> loss_fn(params | {part: x}, batch, key, hp)[0]``: an agent loss as a function of one block only.

    ``loss_fn`` follows the agents' convention ``(params, batch, key, hparams) -> (loss, metrics)``. Only
    ``params[part]`` varies; every other entry is a constant of the returned closure, so its gradient and
    Hessian are those w.r.t. that block alone (B.1 block structure).
    """
    if part not in params:
        raise ValueError(f"params has no entry {part!r}; entries: {sorted(params)}")
    return lambda x: loss_fn(params | {part: x}, batch, key, hp)[0]


def _chunked(loss_of_batch: Callable[[Any, Any], jax.Array], batch, key, chunk_size: int):
    """``mean_c loss_of_batch(chunk_c, fold_in(key, c))`` over equal chunks, each under ``jax.checkpoint``."""
    n = jax.tree.leaves(batch)[0].shape[0]
    if n % chunk_size:
        raise ValueError(f"chunk_size={chunk_size} must divide the number of samples {n}")
    num = n // chunk_size
    chunks = jax.tree.map(lambda x: x.reshape((num, chunk_size) + x.shape[1:]), batch)
    keys = jax.vmap(partial(jax.random.fold_in, key))(jnp.arange(num))
    body = jax.checkpoint(lambda xs: loss_of_batch(*xs))
    return jax.lax.map(body, (chunks, keys)).mean()


def resolve_subspace_sizes(n: int, k: int, num_iters: int, ks: Sequence[int] = SUBSPACE_KS):
    """``(k, num_iters, ks)`` for a block of ``n`` parameters: each clipped to what ``n`` allows.

    ``k`` eigenpairs need ``k <= num_iters`` Lanczos steps in ``n`` dimensions; both are clipped to ``n``,
    and ``ks`` (the levels at which fractions and overlaps are reported) to ``<= k``.

    Raises:
      ValueError: for ``k < 1``, ``num_iters < k``, or a level in ``ks`` below 1.
    """
    n, k, num_iters = static_int("n", n), static_int("k", k), static_int("num_iters", num_iters)
    if num_iters < k:
        raise ValueError(f"num_iters ({num_iters}) must be >= k ({k}): Lanczos needs at least k steps for k pairs")
    ks = [static_int("ks entry", x) for x in ks]
    k_eff = min(k, n)
    return k_eff, min(num_iters, n), tuple(sorted({x for x in ks if x <= k_eff}))


def objective_matvec(loss: Callable[[PyTree], jax.Array], params: PyTree, linearize: bool = True):
    """The exact Hessian-vector product of ``loss`` at ``params``: one ``jax.linearize`` of the gradient reused
    for every product (``linearize``; stores the forward pass) or recomputed per product (``hvp``)."""
    return linearized_hvp(loss, params) if linearize else partial(hvp, loss, params)


def objective_spectrum(objective: Objective, k: int, key, num_iters: int, linearize: bool = True,
                       tol: float = 1e-4, max_matvecs: int | None = None, matvec=None):
    """Top-k (largest algebraic, descending) Hessian eigenpairs of ``objective.loss`` at ``objective.params``.

    Thick-restart Lanczos (:func:`rlland.curvature.lanczos_eigh`, ``which="LA"`` as the reference's
    ``eigsh(which="LA", tol=1e-4)``, B.2) over exact HVPs, until every pair has ``||H y - theta y|| <= tol *
    max|theta|`` or ``max_matvecs`` HVPs are spent. ``k`` and ``num_iters`` are used as given (see
    :func:`resolve_subspace_sizes` to clip them to the block size).

    Args:
      linearize: reuse one ``jax.linearize`` of the gradient for every HVP (fast; stores the forward pass), or
        recompute each HVP (``hvp``; needed to keep chunked losses' memory per chunk).
      tol, max_matvecs: as in :func:`rlland.curvature.lanczos_eigh` (``None``: its default budget).
      matvec: the HVP to use (default :func:`objective_matvec` of the objective's loss).

    Returns:
      :class:`rlland.curvature.EighResult` with flat ``[k, n]`` eigenvectors in ``ravel_pytree(params)`` order, the
      residual norms, the per-pair ``converged`` flags and the number of HVPs used.
    """
    if matvec is None:
        matvec = objective_matvec(objective.loss, objective.params, linearize)
    return lanczos_eigh(matvec, objective.params, k, key, num_iters=num_iters, which="LA", tol=tol,
                        max_matvecs=max_matvecs, return_flat=True)


def objective_gradients(objective: Objective):
    """``(loss, g [n], G [M, n])``: the big-batch loss value, its gradient ("true gradient", B.3) and the gradient
    on each minibatch, all flat in ``ravel_pytree(objective.params)`` order."""
    loss, g = jax.value_and_grad(objective.loss)(objective.params)
    G = jax.vmap(lambda mb: ravel_pytree(jax.grad(objective.minibatch_loss)(objective.params, mb))[0])(
        objective.minibatches)
    return loss, ravel_pytree(g)[0], G


def subspace_fractions(true_gradient, minibatch_gradients, eigvecs, ks: Sequence[int]):
    """True- and estimated-gradient subspace fractions at the levels ``ks`` (reference B.3).

    ``true = ||V_k^T g||^2 / ||g||^2`` for the big-batch gradient ``g``; ``estimated`` = the MEAN over minibatches
    of the per-minibatch fraction (a mean of ratios, as the reference; NaN minibatches, i.e. zero gradients, are
    left out with ``nanmean``).

    Args:
      true_gradient: ``[n]``; minibatch_gradients: ``[M, n]``; eigvecs: ``[K, n]`` orthonormal rows by
        descending eigenvalue; ks: levels ``<= K``.

    Returns:
      ``(true [len(ks)], estimated [len(ks)])``.
    """
    ks = list(ks)
    true = gradient_subspace_fraction(true_gradient, eigvecs, ks)
    per_mb = jax.vmap(lambda g: gradient_subspace_fraction(g, eigvecs, ks))(minibatch_gradients)
    return true, jnp.nanmean(per_mb, axis=0)


def snapshot_subspaces(objectives: dict[str, Objective], key, k: int, num_iters: int,
                       ks: Sequence[int] = SUBSPACE_KS, combined: bool = True, linearize: bool = True,
                       tol: float = 1e-4, max_matvecs: int | None = None, low_sample: bool = False,
                       slq_probes: int = 0, slq_iters: int = 0) -> dict:
    """Eigenbases and gradient-subspace fractions of several objectives (one seed, one snapshot).

    For each ``name`` in ``objectives`` (e.g. ``policy_loss``, ``value_function_loss``): the top-k Hessian
    eigenpairs (``k`` and ``num_iters`` clipped to the block size by :func:`resolve_subspace_sizes`), the
    true- and estimated-gradient fractions at the levels in ``ks`` that do not exceed the clipped ``k``, the loss
    value and the true gradient's norm. With ``combined`` and exactly the two losses ``policy_loss`` and
    ``value_function_loss``, also ``combined_loss`` (B.2-B.3): the two bases zero-padded and merged by
    eigenvalue (:func:`merge_eigenbases`, top ``min(k, Ka + Kc)``), against the gradient of the sum of the two
    losses over all parameters, ``[g_actor ; g_critic]`` (each loss has zero gradient on the other block),
    per minibatch likewise (both objectives must share their minibatches, as the adapters' do).

    ``low_sample`` (B.2-B.3, the study's 2 other fraction variants): the same eigensolve on each objective's
    ``low_sample_loss`` (the concatenated minibatch data, about 2048 samples), and the true and estimated gradients'
    fractions in THAT basis (``low_sample_*`` fields; combined: the two low-sample bases merged). So the four
    variants are {true, estimated} gradient x {Hessian of the big batch, low-sample Hessian}.

    ``slq_probes`` > 0: the Hessian's spectral density by stochastic Lanczos quadrature
    (:func:`rlland.curvature.slq_quadrature`; PyHessian's ``density``, Ghorbani et al. 2019) with ``slq_probes``
    Rademacher probes of ``min(slq_iters, n)`` Lanczos steps each: ``slq_nodes`` / ``slq_weights`` ``[P, m]``
    (density ``phi(t) = mean_p sum_j w_pj delta(t - node_pj)``), for the two blocks.

    Returns:
      ``{name: {"eigenvalues" [k], "eigenvectors" [k, n], "true_gradient" [len(ks_name)],
      "estimated_gradient" [len(ks_name)], "loss" [], "gradient_norm" [], and for the two blocks (not the
      combined loss) "residuals" [k], "converged" [k] (bool) and "num_matvecs" [] (HVPs used)}}``, where ``ks_name``
      is the clipped tuple :func:`resolve_subspace_sizes` gives for that block; with ``low_sample`` also
      ``low_sample_eigenvalues`` [k], ``low_sample_true_gradient``, ``low_sample_estimated_gradient`` (and for the
      blocks ``low_sample_residuals``, ``low_sample_converged``, ``low_sample_num_matvecs``); with SLQ
      ``slq_nodes``, ``slq_weights``. ``tol`` / ``max_matvecs``: the eigensolver's (:func:`objective_spectrum`).
    """
    if not objectives:
        raise ValueError("objectives is empty")
    slq_probes = static_int("slq_probes", slq_probes) if slq_probes else 0
    out, grads, low_bases = {}, {}, {}
    keys = dict(zip(objectives, jax.random.split(key, len(objectives))))
    for name, obj in objectives.items():
        k_eig, k_low, k_slq = jax.random.split(keys[name], 3)
        n = ravel_pytree(obj.params)[0].shape[0]
        k_eff, m_eff, ks_eff = resolve_subspace_sizes(n, k, num_iters, ks)
        matvec = objective_matvec(obj.loss, obj.params, linearize)
        eig = objective_spectrum(obj, k_eff, k_eig, m_eff, tol=tol, max_matvecs=max_matvecs, matvec=matvec)
        vals, vecs = eig.eigenvalues, eig.eigenvectors
        loss, g, G = objective_gradients(obj)
        true, est = subspace_fractions(g, G, vecs, ks_eff)
        grads[name] = (g, G)
        out[name] = {"eigenvalues": vals, "eigenvectors": vecs, "residuals": eig.residuals,
                     "converged": eig.converged, "num_matvecs": eig.num_matvecs, "true_gradient": true,
                     "estimated_gradient": est, "loss": loss, "gradient_norm": jnp.linalg.norm(g)}
        if low_sample:
            if obj.low_sample_loss is None:
                raise ValueError(f"low_sample needs objectives with a low_sample_loss; {name!r} has none")
            low = objective_spectrum(obj._replace(loss=obj.low_sample_loss), k_eff, k_low, m_eff, tol=tol,
                                     max_matvecs=max_matvecs)
            true_low, est_low = subspace_fractions(g, G, low.eigenvectors, ks_eff)
            low_bases[name] = (low.eigenvalues, low.eigenvectors)
            out[name] |= {"low_sample_eigenvalues": low.eigenvalues, "low_sample_residuals": low.residuals,
                          "low_sample_converged": low.converged, "low_sample_num_matvecs": low.num_matvecs,
                          "low_sample_true_gradient": true_low, "low_sample_estimated_gradient": est_low}
        if slq_probes:
            nodes, weights = slq_quadrature(matvec, obj.params, k_slq, min(static_int("slq_iters", slq_iters), n),
                                            slq_probes)
            out[name] |= {"slq_nodes": nodes, "slq_weights": weights}
    if combined and set(objectives) == {"policy_loss", "value_function_loss"}:
        a, c = out["policy_loss"], out["value_function_loss"]
        k_comb = min(k, a["eigenvalues"].shape[0] + c["eigenvalues"].shape[0])
        vals, vecs = merge_eigenbases(a["eigenvalues"], a["eigenvectors"], c["eigenvalues"], c["eigenvectors"],
                                      k=k_comb)
        (ga, Ga), (gc, Gc) = grads["policy_loss"], grads["value_function_loss"]
        if Ga.shape[0] != Gc.shape[0]:
            raise ValueError("combined_loss needs the actor and critic objectives to share their minibatches")
        g, G = jnp.concatenate([ga, gc]), jnp.concatenate([Ga, Gc], axis=1)
        ks_eff = tuple(x for x in sorted(set(int(x) for x in ks)) if x <= k_comb)
        true, est = subspace_fractions(g, G, vecs, ks_eff)
        out["combined_loss"] = {"eigenvalues": vals, "eigenvectors": vecs, "true_gradient": true,
                                "estimated_gradient": est, "loss": a["loss"] + c["loss"],
                                "gradient_norm": jnp.linalg.norm(g)}
        if low_sample:
            (va, Va), (vc, Vc) = low_bases["policy_loss"], low_bases["value_function_loss"]
            vals_low, vecs_low = merge_eigenbases(va, Va, vc, Vc, k=k_comb)
            true_low, est_low = subspace_fractions(g, G, vecs_low, ks_eff)
            out["combined_loss"] |= {"low_sample_eigenvalues": vals_low, "low_sample_true_gradient": true_low,
                                     "low_sample_estimated_gradient": est_low}
    return out


# -- data ------------------------------------------------------------------------------------------------------
def replay_batch(buffer, key, num_samples: int):
    """``num_samples`` distinct transitions, uniformly without replacement, from the valid part of ``buffer``.

    With ``num_samples == buffer.size`` this is the whole valid buffer (in a random order, which no mean-type
    loss sees). ``num_samples`` is static; asking for more than ``buffer.size`` repeats nothing but takes
    invalid slots, so callers check ``num_samples <= size`` on the host (``run_analysis.resolve_num_samples``).
    """
    num_samples = static_int("num_samples", num_samples)
    if num_samples > buffer.capacity:
        raise ValueError(f"num_samples ({num_samples}) exceeds the buffer capacity ({buffer.capacity})")
    valid = jnp.arange(buffer.capacity) < buffer.size
    scores = jnp.where(valid, jax.random.uniform(key, (buffer.capacity,)), 2.0)  # invalid slots sort last
    idx = jnp.argsort(scores)[:num_samples]
    return jax.tree.map(lambda d: d[idx], buffer.data)


def replay_minibatches(buffer, key, num_minibatches: int, minibatch_size: int):
    """``[M, B]`` transitions: ``M`` independent uniform minibatches (with replacement), as training samples."""
    keys = jax.random.split(key, static_int("num_minibatches", num_minibatches))
    return jax.vmap(lambda k: buffer.sample(k, static_int("minibatch_size", minibatch_size)))(keys)


def on_policy_batch(agent, params, env_state, key, hp, num_rollouts: int):
    """Fresh on-policy data: ``num_rollouts`` chained ``agent.rollout`` calls from ``env_state`` with the
    (stochastic) policy of ``params``, then ``agent.make_batch`` (GAE over the whole chained horizon of
    ``num_rollouts * unroll_length`` steps): a batch of ``num_rollouts * unroll_length * num_envs`` samples."""
    num_rollouts = static_int("num_rollouts", num_rollouts)

    def one(env_state, k):
        env_state, traj, _ = agent.rollout(params, env_state, k)
        return env_state, traj

    _, trajs = jax.lax.scan(one, env_state, jax.random.split(key, num_rollouts))  # leaves [R, T, E, ...]
    traj = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), trajs)  # [R * T, E, ...]
    return agent.make_batch(params, traj, hp)


def _concatenated(minibatches):
    """``[M, B, ...]`` minibatch data as one ``[M * B, ...]`` batch (the study's low-sample Hessian data)."""
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), minibatches)


def _objectives(agent, params, hp, batch, batch_keys, minibatches, minibatch_keys, loss_of_batch=None, losses=None,
                low_keys=None):
    """Objectives for the two blocks; ``*_keys`` are [2] (critic, actor) and [M, 2] key arrays; ``losses``
    overrides the agent's ``critic_loss`` / ``actor_loss`` (e.g. `rlland.curvature.study_losses`); ``low_keys``
    [2]: the low-sample losses' noise keys (None: no low-sample loss)."""
    out = {}
    low_batch = _concatenated(minibatches) if low_keys is not None else None
    for i, (name, (part, method)) in enumerate(
            [("value_function_loss", _PARTS["value_function_loss"]), ("policy_loss", _PARTS["policy_loss"])]):
        loss_fn = (losses or {}).get(method) or getattr(agent, method)
        if loss_of_batch is None:
            big = part_loss(loss_fn, params, part, batch, batch_keys[i], hp)
        else:
            big = loss_of_batch(loss_fn, part, batch_keys[i])

        def mb_loss(x, mb, loss_fn=loss_fn, part=part, i=i):
            data, keys = mb
            return loss_fn(params | {part: x}, data, keys[i], hp)[0]

        low = None if low_keys is None else part_loss(loss_fn, params, part, low_batch, low_keys[i], hp)
        out[name] = Objective(params=params[part], loss=big, minibatch_loss=mb_loss,
                              minibatches=(minibatches, minibatch_keys), low_sample_loss=low)
    return {"policy_loss": out["policy_loss"], "value_function_loss": out["value_function_loss"]}


def off_policy_objectives(agent, state, key, num_samples: int, num_minibatches: int = 0, minibatch_size: int = 0,
                          chunk_size: int = 0, losses: dict | None = None) -> dict[str, Objective]:
    """``policy_loss`` / ``value_function_loss`` Objectives of a TD3 / SAC snapshot (one seed) on replay data.

    Args:
      agent: the run's agent (``actor_loss`` / ``critic_loss`` with the (params, batch, key, hp) convention).
      state: one seed's snapshot state (``params``, ``buffer``, ``hparams``).
      key: data and noise key (split here: subsample, big-batch noise, minibatch sampling, minibatch noise).
      num_samples: size of the big batch (static), at most the buffer's valid size; ``buffer.size`` = the
        whole valid buffer.
      num_minibatches: minibatches for the estimated gradient; 0 -> ``max(1, 2048 // minibatch_size)``.
      minibatch_size: 0 -> the agent's ``batch_size``.
      chunk_size: 0 -> no chunking; else the big-batch loss is the mean over chunks of this size (see module
        docstring), which must divide ``num_samples``.
      losses: ``{"critic_loss", "actor_loss"}`` in place of the agent's (`rlland.curvature.study_losses`).

    Each objective also has its ``low_sample_loss``: the loss on the M minibatches concatenated (B.2).
    """
    c = agent.config
    minibatch_size = minibatch_size or int(c.batch_size)
    num_minibatches = num_minibatches or max(1, 2048 // minibatch_size)
    k_sub, k_noise, k_mb, k_mb_noise, k_low = jax.random.split(key, 5)
    batch = replay_batch(state.buffer, k_sub, num_samples)
    minibatches = replay_minibatches(state.buffer, k_mb, num_minibatches, minibatch_size)
    params, hp = state.params, state.hparams

    def chunked_loss(loss_fn, part, k):
        return lambda x: _chunked(lambda b, kk: loss_fn(params | {part: x}, b, kk, hp)[0], batch, k, chunk_size)

    loss_of_batch = chunked_loss if chunk_size and chunk_size < num_samples else None
    return _objectives(agent, params, hp, batch, jax.random.split(k_noise), minibatches,
                       jax.vmap(jax.random.split)(jax.random.split(k_mb_noise, num_minibatches)), loss_of_batch,
                       losses, jax.random.split(k_low))


def on_policy_objectives(agent, state, key, num_rollouts: int, losses: dict | None = None) -> dict[str, Objective]:
    """``policy_loss`` / ``value_function_loss`` Objectives of a PPO snapshot (one seed) on fresh rollouts.

    The big batch is :func:`on_policy_batch` with ``num_rollouts`` rollouts; the minibatches are one more rollout
    of the training size, shuffled and split into the agent's ``num_minibatches`` (see the module docstring); the
    ``low_sample_loss`` is taken on that rollout as one batch. ``losses``: as in :func:`off_policy_objectives`.
    """
    c = agent.config
    params, hp = state.params, state.hparams
    k_big, k_mb, k_perm, k_noise, k_mb_noise, k_low = jax.random.split(key, 6)
    batch = on_policy_batch(agent, params, state.env_state, k_big, hp, num_rollouts)
    fresh = on_policy_batch(agent, params, state.env_state, k_mb, hp, 1)
    n = jax.tree.leaves(fresh)[0].shape[0]
    perm = jax.random.permutation(k_perm, n)
    minibatches = jax.tree.map(lambda x: x[perm].reshape((c.num_minibatches, -1) + x.shape[1:]), fresh)
    return _objectives(agent, params, hp, batch, jax.random.split(k_noise), minibatches,
                       jax.vmap(jax.random.split)(jax.random.split(k_mb_noise, c.num_minibatches)), None, losses,
                       jax.random.split(k_low))


def agent_objectives(agent, state, key, num_samples: int, num_minibatches: int = 0, minibatch_size: int = 0,
                     chunk_size: int = 0, losses: dict | None = None) -> dict[str, Objective]:
    """The two Objectives of one seed's snapshot, for any rlland agent.

    Off-policy agents (``agent.is_off_policy``; the state has a replay ``buffer``): :func:`off_policy_objectives`
    with ``num_samples`` transitions. On-policy agents (PPO): :func:`on_policy_objectives` with
    ``ceil(num_samples / (unroll_length * num_envs))`` rollouts, so at least ``num_samples`` fresh samples (whole
    rollouts); ``num_minibatches`` / ``minibatch_size`` must be 0 there (the agent's own minibatching is used) and
    ``chunk_size`` 0. ``losses``: ``{"critic_loss", "actor_loss"}`` in place of the agent's (None: the agent's;
    `rlland.curvature.study_losses` gives the subspace study's).
    """
    num_samples = static_int("num_samples", num_samples)
    if agent.is_off_policy:
        return off_policy_objectives(agent, state, key, num_samples, num_minibatches, minibatch_size, chunk_size,
                                     losses)
    if chunk_size:
        raise ValueError("chunk_size is not supported for PPO: its actor loss normalises advantages over the "
                         "batch it is given, so chunking would change the objective; use a smaller num_samples")
    if num_minibatches or minibatch_size:
        raise ValueError("PPO uses its own minibatching (config.num_minibatches of one training rollout); "
                         "leave num_minibatches and minibatch_size at 0")
    return on_policy_objectives(agent, state, key, on_policy_rollouts(agent, num_samples), losses)


def on_policy_rollouts(agent, num_samples: int) -> int:
    """Rollouts needed for at least ``num_samples`` on-policy samples (each rollout: unroll_length * num_envs)."""
    per = int(agent.config.unroll_length) * int(agent.config.num_envs)
    return max(1, math.ceil(static_int("num_samples", num_samples) / per))


def analyse_snapshot(agent, state, key, *, k: int, num_iters: int, ks: Sequence[int] = SUBSPACE_KS,
                     num_samples: int, num_minibatches: int = 0, minibatch_size: int = 0, chunk_size: int = 0,
                     combined: bool = True, tol: float = 1e-4, max_matvecs: int | None = None,
                     losses: dict | None = None, low_sample: bool = False, slq_probes: int = 0,
                     slq_iters: int = 0) -> dict:
    """Everything the subspace study computes for one seed's snapshot: the function to ``jit(vmap(...))``.

    ``key`` is split into ``(k_data, k_eig)``: ``k_data`` builds :func:`agent_objectives`, ``k_eig`` starts
    Lanczos. Returns :func:`snapshot_subspaces`' dict (``policy_loss``, ``value_function_loss`` and, with
    ``combined``, ``combined_loss``). All keyword sizes are static; ``tol`` / ``max_matvecs`` go to the eigensolver
    (:func:`objective_spectrum`); ``losses`` to :func:`agent_objectives`; ``low_sample``, ``slq_probes``,
    ``slq_iters`` to :func:`snapshot_subspaces`.
    """
    k_data, k_eig = jax.random.split(key)
    objectives = agent_objectives(agent, state, k_data, num_samples, num_minibatches, minibatch_size, chunk_size,
                                  losses)
    chunked = bool(chunk_size) and agent.is_off_policy and chunk_size < num_samples
    return snapshot_subspaces(objectives, k_eig, k, num_iters, ks, combined=combined, linearize=not chunked,
                              tol=tol, max_matvecs=max_matvecs, low_sample=low_sample, slq_probes=slq_probes,
                              slq_iters=slq_iters)
