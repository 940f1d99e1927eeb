"""SAC (Haarnoja et al., 2018) as in the return-landscapes study (reference A.1, ``jaxrl`` SAC learner).

Policy: tanh-squashed Gaussian with state-dependent log-std bounded to [-10, 2].
Critic:  a' ~ pi(.|s'),  y = r + gamma * (1 - terminated) * (min(Q1_t, Q2_t)(s', a') - alpha * log pi(a'|s'))
         L_Q = mean((Q1(s, a) - y)^2 + (Q2(s, a) - y)^2)           (no 1/2 factor, as in the study)
Actor:   a~ = tanh(mu(s) + sigma(s) * eps),  L_pi = mean(alpha * log pi(a~|s) - min(Q1, Q2)(s, a~))
Alpha:   alpha = exp(log_alpha),  L_alpha = alpha * (H - H_target),  H = -mean(log pi(a~|s)) held constant;
         alpha starts at ``init_temperature`` (1.0) and H_target = ``target_entropy`` (-|A| / 2 when None).
r is the replay buffer's reward (``reward_scaling`` times the env's), normalised when ``normalize_rewards``
(`rlland.agents.base`).
Order per update, as in the study: critic, actor (with the updated critic), temperature, Polyak target critic.

Where the study's code differs: each seed samples its own minibatch and its own reparameterisation noise (the
study's PURD broadcast one noise draw to all samples), and truncation bootstraps from the true final observation.
"""
from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import ml_collections

from rlland import networks
from rlland.agents.base import HParams, adam, descend, polyak
from rlland.agents.off_policy import OffPolicyAgent


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        hidden_sizes=(256, 256), activation="relu", num_envs=1, batch_size=256, buffer_capacity=1_000_000,
        warmup_steps=10_000, updates_per_step=1, normalize_observations=False,
        # orthogonal initialiser scales (networks.py): the study's sqrt(2) on every layer (the log-std head: 1.0)
        hidden_init_scale=2.0 ** 0.5, actor_output_scale=2.0 ** 0.5, critic_output_scale=2.0 ** 0.5,
        # learning-rate schedule over env steps and reward transform (agents/base.py)
        lr_schedule="constant", lr_schedule_steps=0, normalize_rewards=False, reward_scaling=1.0,
        learning_rate=3e-4, gamma=0.99, tau=0.005, init_temperature=1.0,
        target_entropy=ml_collections.FieldReference(None, field_type=float),
        # representation diagnostics (off_policy.py): every log_every iterations (0 = off), log_samples transitions
        log_every=0, log_samples=1024, log_metrics=("ranks", "dead_units"),
    ))


def tanh_gaussian(mean, log_std) -> distrax.Distribution:
    return distrax.Transformed(distrax.MultivariateNormalDiag(mean, jnp.exp(log_std)), distrax.Block(distrax.Tanh(), 1))


class SAC(OffPolicyAgent):
    name = "sac"
    HPARAMS = ("learning_rate", "gamma", "tau", "init_temperature", "target_entropy", "reward_scaling")
    POSITIVE = OffPolicyAgent.POSITIVE + ("init_temperature",)

    def __init__(self, env, config):
        if config.target_entropy is None:
            config = ml_collections.ConfigDict(config.to_dict())
            config.target_entropy = -env.action_size / 2.0
        super().__init__(env, config)
        c = config
        self.actor = networks.TanhGaussianActor(env.action_size, tuple(c.hidden_sizes), c.activation,
                                                c.hidden_init_scale, c.actor_output_scale)
        self.critic = networks.TwinQCritic(tuple(c.hidden_sizes), c.activation, c.hidden_init_scale,
                                           c.critic_output_scale)

    def init_params(self, key, hp):
        k_actor, k_critic = jax.random.split(key)
        obs, act = jnp.zeros((1, self.env.observation_size)), jnp.zeros((1, self.env.action_size))
        critic = self.critic.init(k_critic, obs, act)
        return {"actor": self.actor.init(k_actor, obs), "critic": critic, "target_critic": critic,
                "log_alpha": jnp.log(hp["init_temperature"])}

    def init_opt_state(self, params, hp):
        tx = adam(hp)
        return {k: tx.init(params[k]) for k in ("actor", "critic", "log_alpha")}

    def policy(self, params, obs) -> distrax.Distribution:
        return tanh_gaussian(*self.actor.apply(params["actor"], self.normalize(params, obs)))

    def act(self, params, obs, key=None, deterministic=True, hp=None):
        """tanh(mean) when deterministic (the study's temperature-0 action), else a sample of pi(.|s)."""
        if deterministic:
            return jnp.tanh(self.actor.apply(params["actor"], self.normalize(params, obs))[0])
        return self.policy(params, obs).sample(seed=key)

    def explore(self, params, obs, key, hp):
        return self.act(params, obs, key, deterministic=False)

    # -- losses ---------------------------------------------------------------------------------------------
    def critic_loss(self, params, batch, key, hp: HParams):
        next_action, next_logp = self.policy(params, batch.next_obs).sample_and_log_prob(seed=key)
        next_obs, obs = self.normalize(params, batch.next_obs), self.normalize(params, batch.obs)
        next_q = self.critic.apply(params["target_critic"], next_obs, next_action).min(-1)
        alpha = jnp.exp(params["log_alpha"])
        reward = self.normalize_reward(params, batch.reward)  # the buffer holds scaled rewards
        target = reward + hp["gamma"] * (1.0 - batch.terminated) * (next_q - alpha * next_logp)
        target = jax.lax.stop_gradient(target)
        q = self.critic.apply(params["critic"], obs, batch.action)
        loss = ((q - target[:, None]) ** 2).sum(-1).mean()
        return loss, {"critic_loss": loss, "q_mean": q.mean()}

    def actor_loss(self, params, batch, key, hp: HParams):
        action, logp = self.policy(params, batch.obs).sample_and_log_prob(seed=key)
        q = self.critic.apply(params["critic"], self.normalize(params, batch.obs), action).min(-1)
        alpha = jax.lax.stop_gradient(jnp.exp(params["log_alpha"]))
        loss = (alpha * logp - q).mean()
        return loss, {"actor_loss": loss, "entropy": -logp.mean()}

    def temperature_loss(self, params, entropy, hp: HParams):
        loss = jnp.exp(params["log_alpha"]) * (jax.lax.stop_gradient(entropy) - hp["target_entropy"])
        return loss, {"temperature_loss": loss, "alpha": jnp.exp(params["log_alpha"])}

    # -- single update steps ---------------------------------------------------------------------------------
    def critic_update(self, params, opt_state, batch, key, hp):
        return descend("critic", lambda p: self.critic_loss(p, batch, key, hp), params, opt_state, adam(hp))

    def actor_update(self, params, opt_state, batch, key, hp):
        return descend("actor", lambda p: self.actor_loss(p, batch, key, hp), params, opt_state, adam(hp))

    def temperature_update(self, params, opt_state, entropy, hp):
        return descend("log_alpha", lambda p: self.temperature_loss(p, entropy, hp), params, opt_state,
                       adam(hp))

    def target_update(self, params, hp):
        return params | {"target_critic": polyak(params["target_critic"], params["critic"], hp["tau"])}

    def zero_metrics(self):
        return {k: jnp.zeros(()) for k in ("critic_loss", "q_mean", "actor_loss", "entropy", "temperature_loss",
                                           "alpha")}

    def update(self, params, opt_state, batch, key, hp, update_index):
        k_critic, k_actor = jax.random.split(key)
        params, opt_state, m_critic = self.critic_update(params, opt_state, batch, k_critic, hp)
        params, opt_state, m_actor = self.actor_update(params, opt_state, batch, k_actor, hp)
        params, opt_state, m_temp = self.temperature_update(params, opt_state, m_actor["entropy"], hp)
        return self.target_update(params, hp), opt_state, m_critic | m_actor | m_temp
