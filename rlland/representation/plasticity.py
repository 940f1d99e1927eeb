"""The plasticity ("capacity") probe of Moalla et al. 2024: how well can a snapshot still fit a new function?

Reference ``representation-regions-qd.md`` A.5 (``capacity.py``, ``configs/capacity.yaml``), for ONE snapshot of
ONE seed (vmap over seeds; loop or vmap over snapshots with the SAME key so every snapshot fits the same data and
the same targets, as the original, which collects the data and computes the targets once):

1. data: ``num_envs`` x ``num_steps`` observations collected by the INITIAL policy (stochastic actions, the env's
   autoreset). MuJoCo setting of the study: 4 x 1000 = 4000 samples, 4 epochs.
2. targets: a freshly initialised twin (same classes, new random parameters: ``fit_random=True``); its policy
   distribution and value on the data.
3. fit the snapshot's actor AND critic jointly, ``loss = mean KL(pi_target || pi_snapshot) + mean (V_snapshot -
   V_target)^2`` (backward on the sum), with a FRESH Adam per network (the training learning rate, betas
   (0.9, 0.999), the training ``adam_eps``, gradient clipping at the training ``max_grad_norm`` per network, no
   lr anneal), ``epochs`` passes in minibatches of ``minibatch_size`` sampled without replacement, drop_last.
4. plasticity = the losses of the LAST minibatch of the LAST epoch (``policy_loss``, ``value_loss``; higher =
   less plasticity), the loss on that minibatch before its optimiser step, as the original logs it.

Decisions where the reference leaves room (documented deviations):

* "the initial policy": by default the rollouts are of the fresh twin itself, i.e. of a freshly initialised policy
  (same distribution as the run's checkpoint-0 policy, not the same network). Pass ``data_params`` (e.g. the
  run's step-0 snapshot) to collect with that policy instead, which is the original's exact protocol;
  :func:`rlland.representation.analysis.analyse_run` does so when the run has a step-0 snapshot.
* observation normalisation: the snapshot keeps its own (frozen) observation statistics, part of the function
  being fitted; the twin has fresh statistics (identity up to clipping), so the targets do not depend on the
  snapshot. The original normalises observations in the env with statistics shared by all checkpoints.
* Adam ``eps``: the training optimiser's (``agent.config.adam_eps``, 1e-5 for rlland's PPO); the original uses
  torch's default 1e-8, which is also its training value.
* minibatch size: the study uses its training minibatch (64 on MuJoCo); rlland's PPO trains on minibatches of
  thousands, so ``minibatch_size`` is an explicit argument with the study's MuJoCo value as default.

Also returned (not in the original's final metric, cheap): ``policy_loss_initial`` / ``value_loss_initial`` and
``policy_loss_final`` / ``value_loss_final``, the losses on the whole dataset before and after fitting.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from rlland.seed_axis import ENV_AXIS

Params = Any


def collect_observations(env, policy: Callable[[jax.Array, jax.Array], jax.Array], key: jax.Array,
                         num_envs: int, num_steps: int) -> jax.Array:
    """Observations [num_steps * num_envs, obs_dim] of ``num_envs`` envs run for ``num_steps`` steps each with
    ``policy(obs [E, obs_dim], key) -> actions [E, act_dim]`` (autoreset: episodes that end restart)."""
    k_reset, k_steps = jax.random.split(key)
    state = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs))

    def one(state, k):
        k_act, k_env = jax.random.split(k)
        obs = state.obs
        state, _ = jax.vmap(env.step, axis_name=ENV_AXIS)(state, policy(obs, k_act), jax.random.split(k_env, num_envs))
        return state, obs

    _, obs = jax.lax.scan(one, state, jax.random.split(k_steps, num_steps))
    return obs.reshape((-1,) + obs.shape[2:])


def fit_losses(policy_fn, value_fn, params: Params, target_params: Params, obs: jax.Array):
    """(mean KL(pi_target || pi_params), mean (V_params - V_target)^2) on ``obs``; the targets carry no gradient."""
    target_pi = policy_fn(jax.lax.stop_gradient(target_params), obs)
    target_v = jax.lax.stop_gradient(value_fn(target_params, obs))
    policy_loss = jnp.mean(target_pi.kl_divergence(policy_fn(params, obs)))
    value_loss = jnp.mean(jnp.square(value_fn(params, obs) - target_v))
    return policy_loss, value_loss


def fit_to_targets(policy_fn, value_fn, params: Params, target_params: Params, obs: jax.Array, key: jax.Array, *,
                   epochs: int, minibatch_size: int, learning_rate, max_grad_norm=None, adam_eps: float = 1e-8,
                   trainable: Sequence[str] = ("actor", "critic")) -> dict[str, jax.Array]:
    """Fit ``params[trainable]`` to the twin ``target_params`` on ``obs`` (steps 3-4 of the module docstring).

    ``policy_fn(params, obs) -> distrax distribution`` (with a registered KL), ``value_fn(params, obs) -> [N]``.
    One fresh Adam (b1 0.9, b2 0.999, ``adam_eps``) per entry of ``trainable``, each with global-norm clipping at
    ``max_grad_norm`` (None: no clipping). ``learning_rate`` and ``max_grad_norm`` are traced. Returns the
    last-minibatch losses and the full-data losses before and after fitting.
    """
    n = obs.shape[0]
    num_mb = n // minibatch_size
    if num_mb < 1:
        raise ValueError(f"plasticity: {n} samples are fewer than one minibatch of {minibatch_size}")
    if epochs < 1:
        raise ValueError(f"plasticity: epochs must be >= 1, got {epochs}")
    missing = [k for k in trainable if k not in params]
    if missing:
        raise ValueError(f"plasticity: params have no {missing} (keys: {sorted(params)})")

    def tx():
        adam = optax.adam(learning_rate, b1=0.9, b2=0.999, eps=adam_eps)
        return adam if max_grad_norm is None else optax.chain(optax.clip_by_global_norm(max_grad_norm), adam)

    nets = {k: params[k] for k in trainable}
    opt_state = {k: tx().init(v) for k, v in nets.items()}

    def loss(nets, mb):
        p, v = fit_losses(policy_fn, value_fn, params | nets, target_params, mb)
        return p + v, (p, v)

    def step(carry, mb):
        nets, opt_state = carry
        grads, (p, v) = jax.grad(loss, has_aux=True)(nets, mb)
        new_nets, new_opt = {}, {}
        for k in nets:
            updates, new_opt[k] = tx().update(grads[k], opt_state[k], nets[k])
            new_nets[k] = optax.apply_updates(nets[k], updates)
        return (new_nets, new_opt), (p, v)

    def epoch(carry, k):
        perm = jax.random.permutation(k, n)[: num_mb * minibatch_size]  # without replacement, drop_last
        mbs = obs[perm].reshape((num_mb, minibatch_size) + obs.shape[1:])
        return jax.lax.scan(step, carry, mbs)

    p0, v0 = fit_losses(policy_fn, value_fn, params, target_params, obs)
    (nets, _), (p, v) = jax.lax.scan(epoch, (nets, opt_state), jax.random.split(key, epochs))
    p1, v1 = fit_losses(policy_fn, value_fn, params | nets, target_params, obs)
    return {"policy_loss": p[-1, -1], "value_loss": v[-1, -1], "policy_loss_initial": p0, "value_loss_initial": v0,
            "policy_loss_final": p1, "value_loss_final": v1}


def plasticity(agent, snapshot_params: Params, key: jax.Array, *, hparams: dict | None = None,
               data_params: Params | None = None, num_envs: int = 4, num_steps: int = 1000, epochs: int = 4,
               minibatch_size: int = 64, learning_rate=None, max_grad_norm=None) -> dict[str, jax.Array]:
    """The plasticity probe (reference A.5) of one snapshot of a PPO-style agent, for one seed.

    Args:
      agent: an agent with ``policy(params, obs)`` (a distrax distribution), ``value(params, obs)``,
        ``act(params, obs, key, deterministic)``, ``init_networks(k_actor, k_critic)`` and ``env`` (rlland's PPO).
      snapshot_params: the snapshot's ``params`` (``{"actor", "critic", "obs_norm"}``) for ONE seed.
      key: the twin's init, the data and the minibatch order all come from it; reuse the same key across a seed's
        snapshots so that they fit the same targets on the same data.
      hparams: the run's traced hyperparameters (``state.hparams``) for the learning rate and ``max_grad_norm``;
        None: the agent's config values.
      data_params: params of the policy that collects the data; None: the fresh twin (a freshly initialised
        policy). Pass the run's step-0 snapshot for the original protocol.
      num_envs, num_steps, epochs, minibatch_size: static (reference MuJoCo values: 4, 1000, 4, 64).
      learning_rate, max_grad_norm: override the training values (traced).

    Returns float32 scalars: ``policy_loss`` and ``value_loss`` (the last minibatch of the last epoch: THE
    plasticity metrics), ``policy_loss_initial`` / ``value_loss_initial`` / ``policy_loss_final`` /
    ``value_loss_final`` (whole dataset, before / after fitting). Vmappable over seeds (``snapshot_params``,
    ``key``, ``hparams``, ``data_params``).
    """
    for attr in ("policy", "value", "act", "init_networks", "env"):
        if not hasattr(agent, attr):
            raise TypeError(f"plasticity needs a PPO-style agent with `{attr}` (a policy distribution and a state "
                            f"value), got {type(agent).__name__}")
    hp = agent.hparams() if hparams is None else hparams
    lr = hp["learning_rate"] if learning_rate is None else learning_rate
    mgn = hp.get("max_grad_norm") if max_grad_norm is None else max_grad_norm
    k_actor, k_critic, k_data, k_fit = jax.random.split(key, 4)
    twin = agent.init_networks(k_actor, k_critic)
    collector = twin if data_params is None else data_params
    obs = collect_observations(agent.env, lambda o, k: agent.act(collector, o, k, deterministic=False), k_data,
                               num_envs, num_steps)
    out = fit_to_targets(agent.policy, agent.value, snapshot_params, twin, obs, k_fit, epochs=epochs,
                         minibatch_size=minibatch_size, learning_rate=lr, max_grad_norm=mgn,
                         adam_eps=float(agent.config.get("adam_eps", 1e-8)))
    return {k: v.astype(jnp.float32) for k, v in out.items()}
