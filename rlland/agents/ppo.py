"""PPO (Schulman et al., 2017) as in the return-landscapes study (reference A.2, a cleanrl Brax port).

One `step` = a rollout of ``unroll_length`` steps in each of ``num_envs`` envs, truncation-aware GAE, then
``epochs`` passes over the batch in ``num_minibatches`` shuffled minibatches:

    delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)      s'_t = the TRUE next observation
    A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}         done = terminated or truncated
    L       = -mean(min(r A, clip(r, 1 - eps, 1 + eps) A)) - ent_coef * H + vf_coef * 0.5 * mean((V - R)^2)

with r = pi(a|s) / pi_old(a|s), A normalised per minibatch ((A - mean) / (std + 1e-8)), R = A + V_old, Adam
(eps 1e-5) after global-norm clipping. The Gaussian policy has a state-independent log-std; the unclipped action
is stored and the env clips it to [-1, 1].

Where the study differs: its GAE (cleanrl's) treats a time limit as a termination and bootstraps nothing at
truncation; here a truncated step bootstraps from V(s'_t) of its true final observation. Seeds are vmapped
rather than run in a Python loop, and each seed gets its own key (the study's ``random_seed`` was ignored).
"""
from __future__ import annotations

from typing import NamedTuple

import distrax
import jax
import jax.numpy as jnp
import ml_collections
from flax import struct

from rlland import networks
from rlland.agents.base import Agent, HParams, adam, apply_grads
from rlland.envs import EnvState
from rlland.normalization import RunningStats


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        hidden_sizes=(64, 64), activation="tanh", num_envs=2048, unroll_length=16, num_minibatches=2, epochs=4,
        normalize_observations=False, adam_eps=1e-5,
        learning_rate=2.6e-3, gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.0, vf_coef=2.0,
        max_grad_norm=1.0,
    ))


class Trajectory(NamedTuple):
    """A rollout, leaves [unroll_length, num_envs, ...]."""

    obs: jax.Array
    action: jax.Array
    logp: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array


class Batch(NamedTuple):
    """What the PPO losses consume, leaves [batch, ...]."""

    obs: jax.Array
    action: jax.Array
    logp: jax.Array  # log pi_old(a|s)
    value: jax.Array  # V_old(s)
    advantage: jax.Array
    target: jax.Array  # return target R = A + V_old


class PPOState(struct.PyTreeNode):
    params: dict  # "actor", "critic", "obs_norm"
    opt_state: dict
    env_state: EnvState  # leading axis num_envs
    key: jax.Array
    env_steps: jax.Array
    updates: jax.Array  # PPO iterations done
    hparams: HParams


def gae(traj: Trajectory, next_value: jax.Array, gamma, lam) -> tuple[jax.Array, jax.Array]:
    """Truncation-aware GAE over a [T, E] trajectory; ``next_value`` = V(final_obs). Returns (A, R)."""
    delta = traj.reward + gamma * (1.0 - traj.terminated) * next_value - traj.value
    carry_on = 1.0 - jnp.maximum(traj.terminated, traj.truncated)

    def back(adv_next, x):
        d, c = x
        adv = d + gamma * lam * c * adv_next
        return adv, adv

    _, adv = jax.lax.scan(back, jnp.zeros_like(delta[0]), (delta, carry_on), reverse=True)
    return adv, adv + traj.value


class PPO(Agent):
    name = "ppo"
    HPARAMS = ("learning_rate", "gamma", "gae_lambda", "clip_eps", "ent_coef", "vf_coef", "max_grad_norm")
    POSITIVE = ("learning_rate", "num_envs", "unroll_length", "num_minibatches", "epochs", "max_grad_norm",
                "adam_eps")
    UNIT = ("gamma", "gae_lambda")

    def __init__(self, env, config):
        super().__init__(env, config)
        c = config
        if (c.num_envs * c.unroll_length) % c.num_minibatches:
            raise ValueError(f"ppo: num_envs * unroll_length ({c.num_envs * c.unroll_length}) must be divisible "
                             f"by num_minibatches ({c.num_minibatches})")
        self.actor = networks.GaussianActor(env.action_size, tuple(c.hidden_sizes), c.activation)
        self.critic = networks.VCritic(tuple(c.hidden_sizes), c.activation)

    def tx(self, hp):
        return adam(hp, eps=self.config.adam_eps, max_grad_norm=hp["max_grad_norm"])

    def normalize(self, params, obs):
        return params["obs_norm"].normalize(obs) if self.config.normalize_observations else obs

    def init(self, key, hparams=None) -> PPOState:
        hp = self._resolve_hparams(hparams)
        k_actor, k_critic, k_env, k_next = jax.random.split(key, 4)
        obs = jnp.zeros((1, self.env.observation_size))
        params = {"actor": self.actor.init(k_actor, obs), "critic": self.critic.init(k_critic, obs),
                  "obs_norm": RunningStats.create(self.env.observation_size)}
        nets = {k: params[k] for k in ("actor", "critic")}
        env_state = jax.vmap(self.env.reset)(jax.random.split(k_env, self.config.num_envs))
        return PPOState(params=params, opt_state=self.tx(hp).init(nets), env_state=env_state, key=k_next,
                        env_steps=jnp.zeros((), jnp.int32), updates=jnp.zeros((), jnp.int32), hparams=hp)

    def policy(self, params, obs) -> distrax.Distribution:
        mean, log_std = self.actor.apply(params["actor"], self.normalize(params, obs))
        return distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))

    def value(self, params, obs):
        return self.critic.apply(params["critic"], self.normalize(params, obs))

    def act(self, params, obs, key=None, deterministic=True, hp=None):
        """The Gaussian mean when deterministic (the study's evaluation action), else a sample (unclipped)."""
        if deterministic:
            return self.actor.apply(params["actor"], self.normalize(params, obs))[0]
        return self.policy(params, obs).sample(seed=key)

    # -- data -----------------------------------------------------------------------------------------------
    def rollout(self, params, env_state: EnvState, key) -> tuple[EnvState, Trajectory, dict]:
        """``unroll_length`` steps of the stochastic policy in each env, from ``env_state``."""
        c = self.config

        def one(env_state, k):
            k_act, k_env = jax.random.split(k)
            obs = env_state.obs
            action, logp = self.policy(params, obs).sample_and_log_prob(seed=k_act)
            env_state, out = jax.vmap(self.env.step)(env_state, action, jax.random.split(k_env, c.num_envs))
            done = out.terminated | out.truncated
            return env_state, (Trajectory(obs, action, logp, self.value(params, obs), out.reward,
                                          out.terminated.astype(jnp.float32), out.truncated.astype(jnp.float32),
                                          out.final_obs), (out.episode_return.sum(), done.sum()))

        env_state, (traj, (ret, n)) = jax.lax.scan(one, env_state, jax.random.split(key, c.unroll_length))
        return env_state, traj, {"episode_return_sum": ret.sum(), "episodes": n.sum().astype(jnp.float32)}

    def make_batch(self, params, traj: Trajectory, hp: HParams) -> Batch:
        """GAE on a trajectory, flattened to [unroll_length * num_envs]."""
        adv, target = gae(traj, self.value(params, traj.final_obs), hp["gamma"], hp["gae_lambda"])
        flat = lambda x: x.reshape((-1,) + x.shape[2:])
        return Batch(flat(traj.obs), flat(traj.action), flat(traj.logp), flat(traj.value), flat(adv), flat(target))

    # -- losses ---------------------------------------------------------------------------------------------
    def actor_loss(self, params, batch: Batch, key, hp: HParams):
        """Clipped surrogate minus the entropy bonus, with per-minibatch advantage normalisation."""
        pi = self.policy(params, batch.obs)
        log_ratio = pi.log_prob(batch.action) - batch.logp
        ratio = jnp.exp(log_ratio)
        adv = (batch.advantage - batch.advantage.mean()) / (batch.advantage.std() + 1e-8)
        clipped = jnp.clip(ratio, 1.0 - hp["clip_eps"], 1.0 + hp["clip_eps"])
        pg_loss = -jnp.minimum(ratio * adv, clipped * adv).mean()
        entropy = pi.entropy().mean()
        return pg_loss - hp["ent_coef"] * entropy, {
            "pg_loss": pg_loss, "entropy": entropy, "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
            "clip_fraction": (jnp.abs(ratio - 1.0) > hp["clip_eps"]).mean()}

    def critic_loss(self, params, batch: Batch, key, hp: HParams):
        v_loss = 0.5 * ((self.value(params, batch.obs) - batch.target) ** 2).mean()
        return hp["vf_coef"] * v_loss, {"v_loss": v_loss}

    def loss(self, params, batch: Batch, key, hp: HParams):
        actor, m_actor = self.actor_loss(params, batch, key, hp)
        critic, m_critic = self.critic_loss(params, batch, key, hp)
        return actor + critic, m_actor | m_critic

    # -- updates --------------------------------------------------------------------------------------------
    def minibatch_update(self, params, opt_state, batch: Batch, key, hp):
        nets = {k: params[k] for k in ("actor", "critic")}
        grads, metrics = jax.grad(lambda n: self.loss(params | n, batch, key, hp), has_aux=True)(nets)
        nets, opt_state = apply_grads(self.tx(hp), grads, opt_state, nets)
        return params | nets, opt_state, metrics

    def update_epochs(self, params, opt_state, batch: Batch, key, hp):
        """``epochs`` shuffled passes of ``num_minibatches`` minibatch steps: the PPO update operator."""
        c = self.config
        n = batch.obs.shape[0]

        def epoch(carry, k):
            k_perm, k_mb = jax.random.split(k)
            perm = jax.random.permutation(k_perm, n)
            shuffled = jax.tree.map(lambda x: x[perm].reshape((c.num_minibatches, -1) + x.shape[1:]), batch)

            def minibatch(carry, xs):
                mb, k = xs
                params, opt_state, metrics = self.minibatch_update(*carry, mb, k, hp)
                return (params, opt_state), metrics

            return jax.lax.scan(minibatch, carry, (shuffled, jax.random.split(k_mb, c.num_minibatches)))

        (params, opt_state), metrics = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, c.epochs))
        return params, opt_state, jax.tree.map(jnp.mean, metrics)

    def step(self, state: PPOState) -> tuple[PPOState, dict]:
        """One iteration: rollout, GAE, update; the observation statistics are refreshed after the update so
        the rollout and the update see the same normalisation."""
        key, k_roll, k_update = jax.random.split(state.key, 3)
        env_state, traj, episodes = self.rollout(state.params, state.env_state, k_roll)
        batch = self.make_batch(state.params, traj, state.hparams)
        params, opt_state, metrics = self.update_epochs(state.params, state.opt_state, batch, k_update,
                                                        state.hparams)
        if self.config.normalize_observations:
            params = params | {"obs_norm": params["obs_norm"].update(traj.obs)}
        steps = self.config.num_envs * self.config.unroll_length
        return state.replace(params=params, opt_state=opt_state, env_state=env_state, key=key,
                             env_steps=state.env_steps + steps, updates=state.updates + 1), metrics | episodes
