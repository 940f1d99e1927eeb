"""Reward normalisation by the running standard deviation of the discounted return (``normalize_rewards``).

    R_t = gamma * R_{t-1} + r_t          per env, R reset to 0 after the step that ends an episode
    r'  = clip(r / sqrt(var(R) + 1e-8), -10, 10)

var(R) is the running variance of every R_t seen so far, over all envs (Chan et al.'s parallel update,
`rlland.normalization.RunningStats`). This is SB3's ``VecNormalize(norm_reward=True)`` (``ret_rms``, epsilon 1e-8,
``clip_reward=10``, returns zeroed on ``dones``, which include time limits) and purejaxrl's ``NormalizeVecReward``
(no clip there). The state lives in ``params["reward_norm"]`` so that the losses of a snapshot see the same
normalisation as training did.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rlland.normalization import RunningStats

EPS = 1e-8
CLIP = 10.0


class ReturnNormalizer(struct.PyTreeNode):
    stats: RunningStats  # of the discounted returns R_t, size 1
    returns: jax.Array  # [num_envs] each env's discounted return R in its current episode

    @classmethod
    def create(cls, num_envs: int) -> "ReturnNormalizer":
        return cls(stats=RunningStats.create(1), returns=jnp.zeros((num_envs,)))

    def update(self, reward: jax.Array, done: jax.Array, gamma: jax.Array) -> "ReturnNormalizer":
        """One step of every env (``reward``, ``done``: [num_envs]): R <- gamma R + r enters the statistics, then R is
        zeroed where the episode ended."""
        return self.update_rollout(reward[None], done[None], gamma)

    def update_rollout(self, reward: jax.Array, done: jax.Array, gamma: jax.Array) -> "ReturnNormalizer":
        """``T`` steps at once (``reward``, ``done``: [T, num_envs]); the statistics take all ``T * num_envs``
        returns in one parallel update (the same mean and variance as ``T`` single-step updates)."""
        def one(r_prev, x):
            r, d = x
            returns = gamma * r_prev + r
            return jnp.where(d, 0.0, returns), returns

        last, returns = jax.lax.scan(one, self.returns, (reward, done))
        return ReturnNormalizer(stats=self.stats.update(returns.reshape(-1, 1)), returns=last)

    def normalize(self, reward: jax.Array) -> jax.Array:
        return jnp.clip(reward / jnp.sqrt(self.stats.var[0] + EPS), -CLIP, CLIP)
