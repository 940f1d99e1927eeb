"""Agents: pure-functional TD3, SAC and PPO kernels for one seed (vmap for many).

    agent = agents.make("td3", env, config=None)      # None -> agents.default_config("td3")
    state = agent.init(key)                            # jax.vmap(agent.init)(keys) for many seeds
    state, metrics = agent.step(state)                 # one iteration: collect, then update(s)
    action = agent.act(state.params, obs, key, deterministic=True)

Losses (``critic_loss``, ``actor_loss``, ...) and single update steps (``critic_update``, ``actor_update``, ...)
are methods taking (params, batch, key, hparams), for the analyses to call directly.
"""
from __future__ import annotations

import ml_collections

from rlland.agents import ppo, sac, td3
from rlland.agents.base import Agent
from rlland.envs import Env

REGISTRY = {"td3": (td3.TD3, td3.default_config), "sac": (sac.SAC, sac.default_config),
            "ppo": (ppo.PPO, ppo.default_config)}


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def _lookup(name: str):
    if name not in REGISTRY:
        raise ValueError(f"unknown algorithm {name!r}; valid: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def default_config(name: str) -> ml_collections.ConfigDict:
    """The return-landscapes study's defaults for ``name`` (reference A.1, A.2)."""
    return _lookup(name)[1]()


def make(name: str, env: Env, config: ml_collections.ConfigDict | dict | None = None) -> Agent:
    """Build an agent; ``config`` entries override the defaults and unknown keys are refused."""
    cls, defaults = _lookup(name)
    merged = defaults()
    if config is not None:
        unknown = set(dict(config)) - set(merged.keys())
        if unknown:
            raise ValueError(f"{name}: unknown config keys {sorted(unknown)}; valid keys: {sorted(merged.keys())}")
        merged.update(dict(config))
    return cls(env, merged)


__all__ = ["Agent", "default_config", "make", "names"]
