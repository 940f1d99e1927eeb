"""TD3 (Fujimoto et al., 2018) as in the return-landscapes study (reference A.1, ``jaxrl`` "ddpg" learner).

Critic:  a' = clip(mu_t(s') + clip(sigma * N(0, 1), -c, c), -1, 1)
         y  = r + gamma * (1 - terminated) * min(Q1_t, Q2_t)(s', a')
         L_Q = mean((Q1(s, a) - y)^2 + (Q2(s, a) - y)^2)          (no 1/2 factor, as in the study)
Actor:   L_mu = -mean(min(Q1, Q2)(s, mu(s)))                      (``actor_q="min"``, the study's choice; "q1"
                                                                   gives the original TD3's Q1-only loss)
r is the replay buffer's reward (``reward_scaling`` times the env's), normalised when ``normalize_rewards``
(`rlland.agents.base`). Every ``policy_delay``-th update also updates the actor (with the just-updated critic) and both targets by
Polyak averaging; the first update of a run does not (the study's learner counts from 1).

Correct-by-construction choices where the study's code differs (QUIRKs in the reference):
* termination and truncation are separate: time limits bootstrap, terminations do not (same as the study's
  ``mask``) and bootstrapping uses the true final observation, not the reset observation;
* each seed samples its own minibatch indices (the study shares one index set across its 20 seeds);
* exploration noise comes from the seed's JAX key (the study draws it from numpy's global RNG);
* the target actor is part of ``params`` and so of every snapshot (the study's training did not save it).

The losses are `make_td3_losses` over the networks' apply functions (the pattern of Brax's ``make_losses`` and
QDax's ``make_td3_loss_fn``), so PGA-ME and CMA-MEGA (TD3, ES) reuse them with a genome policy as the actor.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections

from rlland import networks
from rlland.agents.base import HParams, adam, descend, polyak
from rlland.agents.off_policy import OffPolicyAgent
from rlland.seed_axis import seed_cond
from rlland.types import LossFn, Params
from rlland.validation import require_choice

ACTOR_Q = ("min", "q1")


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        # static: shapes and loop counts
        hidden_sizes=(256, 256), activation="relu", num_envs=1, batch_size=256, buffer_capacity=1_000_000,
        warmup_steps=10_000, updates_per_step=1, policy_delay=2, actor_q="min", normalize_observations=False,
        # orthogonal initialiser scales (networks.py): the study's sqrt(2) on every layer, output layers included
        hidden_init_scale=2.0 ** 0.5, actor_output_scale=2.0 ** 0.5, critic_output_scale=2.0 ** 0.5,
        # learning-rate schedule over env steps and reward transform (agents/base.py)
        lr_schedule="constant", lr_schedule_steps=0, normalize_rewards=False, reward_scaling=1.0,
        # traced hyperparameters
        learning_rate=3e-4, gamma=0.99, tau=0.005, policy_noise=0.2, noise_clip=0.5, exploration_noise=0.1,
        # representation diagnostics (off_policy.py): every log_every iterations (0 = off), log_samples transitions
        log_every=0, log_samples=1024, log_metrics=("ranks", "dead_units"),
    ))


def make_td3_losses(actor_apply: Callable, critic_apply: Callable, actor_q: str = "min",
                    normalize: Callable | None = None, reward: Callable | None = None) -> tuple[LossFn, LossFn]:
    """``(critic_loss, actor_loss)``, pure functions ``(params, batch, key, hp) -> (loss, metrics)`` (module
    docstring formulas).

    ``actor_apply(actor_params, obs) -> action`` in [-1, 1]; ``critic_apply(critic_params, obs, action)`` ->
    ``(..., 2)`` twin Q values. ``params`` holds ``actor``, ``critic``, ``target_actor``, ``target_critic``;
    ``hp`` the traced ``gamma``, ``policy_noise``, ``noise_clip`` (the critic loss; the actor loss reads none;
    ``key`` is the target-smoothing noise key, unused by the actor loss). ``actor_q``: "min" (the study) or
    "q1" (Fujimoto's TD3, PGA-ME). ``normalize(params, obs)``: the network input (identity by default).
    ``reward(params, r, hp)``: the reward in the target for a batch reward (identity by default; the agent's
    ``normalize_reward``, `rlland.agents.base`).
    """
    require_choice("td3: actor_q", actor_q, ACTOR_Q)
    normalize = normalize or (lambda params, obs: obs)
    reward = reward or (lambda params, r, hp: r)

    def critic_loss(params: Params, batch, key: jax.Array, hp: HParams):
        obs, next_obs = normalize(params, batch.obs), normalize(params, batch.next_obs)
        noise = jnp.clip(hp["policy_noise"] * jax.random.normal(key, batch.action.shape),
                         -hp["noise_clip"], hp["noise_clip"])
        next_action = jnp.clip(actor_apply(params["target_actor"], next_obs) + noise, -1.0, 1.0)
        next_q = critic_apply(params["target_critic"], next_obs, next_action).min(-1)
        r = reward(params, batch.reward, hp)
        target = jax.lax.stop_gradient(r + hp["gamma"] * (1.0 - batch.terminated) * next_q)
        q = critic_apply(params["critic"], obs, batch.action)
        loss = ((q - target[:, None]) ** 2).sum(-1).mean()
        return loss, {"critic_loss": loss, "q_mean": q.mean()}

    def actor_loss(params: Params, batch, key: jax.Array, hp: HParams):
        del key, hp
        obs = normalize(params, batch.obs)
        q = critic_apply(params["critic"], obs, actor_apply(params["actor"], obs))
        q = q.min(-1) if actor_q == "min" else q[..., 0]
        loss = -q.mean()
        return loss, {"actor_loss": loss}

    return critic_loss, actor_loss


def target_update(params: Params, tau: jax.Array) -> Params:
    """Polyak updates of both targets: ``target <- tau * online + (1 - tau) * target``."""
    return params | {"target_actor": polyak(params["target_actor"], params["actor"], tau),
                     "target_critic": polyak(params["target_critic"], params["critic"], tau)}


class TD3(OffPolicyAgent):
    name = "td3"
    HPARAMS = ("learning_rate", "gamma", "tau", "policy_noise", "noise_clip", "exploration_noise", "reward_scaling")
    POSITIVE = OffPolicyAgent.POSITIVE + ("policy_delay",)

    def __init__(self, env, config):
        super().__init__(env, config)
        if config.actor_q not in ACTOR_Q:
            raise ValueError(f"td3: config.actor_q must be 'min' or 'q1', got {config.actor_q!r}")
        c = config
        self.actor = networks.DeterministicActor(env.action_size, tuple(c.hidden_sizes), c.activation,
                                                 c.hidden_init_scale, c.actor_output_scale)
        self.critic = networks.TwinQCritic(tuple(c.hidden_sizes), c.activation, c.hidden_init_scale,
                                           c.critic_output_scale)
        self._critic_loss, self._actor_loss = make_td3_losses(self.actor.apply, self.critic.apply, c.actor_q,
                                                              normalize=self.normalize,
                                                              reward=lambda p, r, hp: self.normalize_reward(p, r))

    def init_params(self, key, hp):
        k_actor, k_critic = jax.random.split(key)
        obs, act = jnp.zeros((1, self.env.observation_size)), jnp.zeros((1, self.env.action_size))
        actor, critic = self.actor.init(k_actor, obs), self.critic.init(k_critic, obs, act)
        return {"actor": actor, "critic": critic, "target_actor": actor, "target_critic": critic}

    def init_opt_state(self, params, hp):
        tx = adam(hp)
        return {"actor": tx.init(params["actor"]), "critic": tx.init(params["critic"])}

    def act(self, params, obs, key=None, deterministic=True, hp=None):
        """mu(s), or clip(mu(s) + exploration_noise * N(0, 1), -1, 1) when not deterministic."""
        action = self.actor.apply(params["actor"], self.normalize(params, obs))
        if deterministic:
            return action
        sigma = (hp or self.hparams())["exploration_noise"]
        return jnp.clip(action + sigma * jax.random.normal(key, action.shape), -1.0, 1.0)

    def explore(self, params, obs, key, hp):
        return self.act(params, obs, key, deterministic=False, hp=hp)

    # -- losses: pure functions of (params, batch, key, hparams) -------------------------------------------
    def critic_loss(self, params, batch, key, hp: HParams):
        return self._critic_loss(params, batch, key, hp)

    def actor_loss(self, params, batch, key, hp: HParams):
        return self._actor_loss(params, batch, key, hp)

    # -- single update steps ---------------------------------------------------------------------------------
    def critic_update(self, params, opt_state, batch, key, hp):
        return descend("critic", lambda p: self.critic_loss(p, batch, key, hp), params, opt_state, adam(hp))

    def actor_update(self, params, opt_state, batch, key, hp):
        """One Adam step of the actor; no target update (the PURD operator of reference A.4)."""
        return descend("actor", lambda p: self.actor_loss(p, batch, key, hp), params, opt_state, adam(hp))

    def target_update(self, params, hp):
        return target_update(params, hp["tau"])

    def zero_metrics(self):
        return {"critic_loss": jnp.zeros(()), "q_mean": jnp.zeros(()), "actor_loss": jnp.zeros(())}

    def update(self, params, opt_state, batch, key, hp, update_index):
        params, opt_state, critic_metrics = self.critic_update(params, opt_state, batch, key, hp)

        def actor_and_targets(p, o):
            p, o, m = self.actor_update(p, o, batch, None, hp)
            return self.target_update(p, hp), o, m

        params, opt_state, actor_metrics = seed_cond(
            (update_index + 1) % self.config.policy_delay == 0, actor_and_targets,
            lambda p, o: (p, o, {"actor_loss": jnp.zeros(())}), params, opt_state)
        return params, opt_state, critic_metrics | actor_metrics
