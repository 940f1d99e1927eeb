"""Vectorised episode returns: one function for one episode, vmap for many.

A policy is any ``policy(obs, key) -> action``; ``agent_policy`` builds one from an agent and its params. The
rollout runs ``env.episode_length`` steps with a fixed-size scan and counts rewards until the first end of the
episode (the terminal step's reward included), as the study's SingleEpisodeEvalWrapper (reference A.4); the env
does not reset after the end (``autoreset=False``: nothing after it is counted, so no reset is paid for). Start
states come from the key (fresh random starts) unless the env was made with ``fixed_start=True``.

A policy whose parameters are not finite (a diverged seed) is never scored: `evaluate` returns NaN for it
(a NaN state never terminates, so it would otherwise collect the full episode's reward).

Discounting: ``discounted = sum_t gamma^t r_t``. The study's wrapper multiplied the discount before use, weighting
the first reward by gamma (QUIRK); we use the textbook definition, which differs from it by a factor gamma.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from rlland.divergence import finite
from rlland.envs import Env

Policy = Callable[[jax.Array, jax.Array], jax.Array]


class EpisodeResult(NamedTuple):
    undiscounted: jax.Array
    discounted: jax.Array
    length: jax.Array


def agent_policy(agent, params, deterministic: bool = True) -> Policy:
    return lambda obs, key: agent.act(params, obs, key, deterministic=deterministic)


def episode(env: Env, policy: Policy, key: jax.Array, gamma: float = 0.99) -> EpisodeResult:
    """Return of one episode of at most ``env.episode_length`` steps."""
    k_reset, k_steps = jax.random.split(key)

    def one(carry, k):
        state, alive, ret, disc, discount, length = carry
        k_act, k_env = jax.random.split(k)
        state, out = env.step(state, policy(state.obs, k_act), k_env, autoreset=False)
        reward = jnp.where(alive > 0, out.reward, 0.0)  # past the end the state may be anything (even NaN)
        ret, disc = ret + reward, disc + jnp.where(alive > 0, discount * out.reward, 0.0)
        length = length + alive
        alive = alive * (1.0 - (out.terminated | out.truncated))
        return (state, alive, ret, disc, discount * gamma, length), None

    init = (env.reset(k_reset), 1.0, 0.0, 0.0, 1.0, 0.0)
    (_, _, ret, disc, _, length), _ = jax.lax.scan(one, init, jax.random.split(k_steps, env.episode_length))
    return EpisodeResult(ret, disc, length)


def episodes(env: Env, policy: Policy, key: jax.Array, num_episodes: int, gamma: float = 0.99) -> EpisodeResult:
    """``num_episodes`` independent episodes (their own start and action keys), results of shape [num_episodes]."""
    return jax.vmap(lambda k: episode(env, policy, k, gamma))(jax.random.split(key, num_episodes))


def evaluate(agent, params, key: jax.Array, num_episodes: int = 10, deterministic: bool = True,
             env: Env | None = None, gamma: float = 0.99) -> EpisodeResult:
    """Episode returns of ``agent`` with ``params`` on ``env`` (default: the agent's own env); NaN (every field)
    when ``params`` holds a non-finite value."""
    result = episodes(env or agent.env, agent_policy(agent, params, deterministic), key, num_episodes, gamma)
    ok = finite(params)
    return jax.tree.map(lambda x: jnp.where(ok, x, jnp.nan), result)
