"""Probe tasks: tiny pure-JAX MDPs with known values, for testing and debugging agents.

After Andy Jones' "Debugging RL, Without the Agonizing Pain" and rejax's ``tests/environments.py``. Observations
and actions are 1-D; ``inner`` is the time step t. With discount gamma the optimal values are:

==================  ==========================================================  =================================
name                dynamics                                                    known value
==================  ==========================================================  =================================
probe_constant      obs 0, reward 1, terminates after one step                  Q(s, a) = 1
probe_observation   obs +-1 at random, reward = obs, terminates after one step  Q(s, a) = s
probe_action        obs 0, reward = -(a - 0.5)^2, terminates after one step     Q(s, a) = -(a - 0.5)^2, a* = 0.5
probe_two_step      obs 0 -> reward 0 -> obs 1 -> reward 1, terminates          Q(0, a) = gamma, Q(1, a) = 1
probe_time_limit    obs 0, reward 1, never terminates, cut by the time limit    V = Q = 1 / (1 - gamma)
==================  ==========================================================  =================================

Discrete-action probes (two actions, ``action_space = discrete(2)``, the action an int index):

==========================  ===================================================  ================================
name                        dynamics                                             known value (optimal policy)
==========================  ===================================================  ================================
probe_discrete_bandit       obs 0, reward = a (1 for action 1, 0 for action 0),  Q(0, a) = a, pi*(1) = 1, V* = 1
                            terminates after one step
probe_discrete_two_step     obs 0 -> reward 0 -> obs 1 -> reward = a,            V*(1) = 1, V*(0) = gamma;
                            terminates after the second step                     pi*(1 | s=1) = 1
==========================  ===================================================  ================================

``probe_time_limit`` separates truncation from termination: an agent that treats the time limit as a terminal
state learns a value below 1 / (1 - gamma), because its observation does not reveal the time left.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from rlland.envs.spaces import continuous, discrete


class _Spec(NamedTuple):
    start_obs: Callable[[jax.Array], jax.Array]  # key -> obs
    reward: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]  # (t, obs, action) -> reward
    terminates: Callable[[jax.Array], jax.Array]  # t (before the step) -> terminated
    next_obs: Callable[[jax.Array, jax.Array], jax.Array] = lambda t, obs: obs
    num_actions: int = 0  # 0: one continuous action in [-1, 1]; n >= 2: a discrete action index in {0..n-1}


_zero = lambda key: jnp.zeros((1,))
_one_step = lambda t: jnp.bool_(True)

PROBES: dict[str, _Spec] = {
    "probe_constant": _Spec(_zero, lambda t, o, a: jnp.float32(1.0), _one_step),
    "probe_observation": _Spec(lambda key: jnp.where(jax.random.bernoulli(key), 1.0, -1.0)[None],
                               lambda t, o, a: o[0], _one_step),
    "probe_action": _Spec(_zero, lambda t, o, a: -((a[0] - 0.5) ** 2), _one_step),
    "probe_two_step": _Spec(_zero, lambda t, o, a: jnp.where(t == 0, 0.0, 1.0), lambda t: t >= 1,
                            lambda t, o: jnp.ones((1,))),
    "probe_time_limit": _Spec(_zero, lambda t, o, a: jnp.float32(1.0), lambda t: jnp.bool_(False)),
    "probe_discrete_bandit": _Spec(_zero, lambda t, o, a: a.astype(jnp.float32), _one_step, num_actions=2),
    "probe_discrete_two_step": _Spec(_zero, lambda t, o, a: jnp.where(t == 0, 0.0, a.astype(jnp.float32)),
                                     lambda t: t >= 1, lambda t, o: jnp.ones((1,)), num_actions=2),
}


class ProbeCore:
    observation_size = 1

    def __init__(self, name: str):
        self.spec = PROBES[name]
        n = self.spec.num_actions
        self.action_space = discrete(n) if n else continuous(1)
        self.action_size = self.action_space.size

    def reset(self, key):
        obs = self.spec.start_obs(key).astype(jnp.float32)
        return (jnp.zeros((), jnp.int32), obs), obs

    def step(self, inner, action):
        t, obs = inner
        next_obs = self.spec.next_obs(t, obs).astype(jnp.float32)
        return (t + 1, next_obs), next_obs, self.spec.reward(t, obs, action), self.spec.terminates(t)
