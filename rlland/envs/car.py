"""Car1D: the 1-D car of Cohan et al. 2022, a 2-D state space where a policy's linear regions can be drawn.

Source: the study's ``envs/toy_envs.py`` ``Car1DEnv1`` (gym id ``Car1DEnv-v1``, ``max_episode_steps=1000``;
reference ``representation-regions-qd.md`` B.1), re-implemented as a pure-JAX `rlland.envs.Core`. The state is
observed as is, ``s = (x, v)`` (position, velocity); the action is the acceleration ``a`` in [-1, 1] (`Env.step`
clips it, as SB3 clips PPO's actions to the Box). With ``dt = 0.2``, target ``X = 100`` and speed limit
``V = 100``::

    x' = x + dt v + dt^2 a / 2
    v' = clip(v + dt a, -V, V)
    r  = 1 - 0.01 |X - x'| - 0.001 |a| - 0.01 [ | |v'| - V | < 1e-3 ]

(reward on the new position, as the study's ``step``). The car never terminates: episodes end by the time limit
(`Env`'s ``episode_length``, the study's 1000 steps), a truncation. Reset: ``x ~ U(-1, 1)``, ``v ~ U(-0.1, 0.1)``.
``dt``, ``target`` and ``max_speed`` are constructor arguments (``envs.make("car1d", dt=0.1)``); the defaults are
the study's. The study's picture of the state plane (``visualize_2d.py``) spans ``x in [-50, 150]``,
``v in [-20, 20]`` (:data:`STATE_PLANE_BOUNDS`).

Reaching the target from rest takes about ``2 sqrt(X / a_max) / dt = 100`` steps (full acceleration, then full
braking, earning about 50 on the way) and standing still there earns 1 per step: about 950 per 1000-step episode.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

NAME = "car1d"
STATE_PLANE_BOUNDS = ((-50.0, 150.0), (-20.0, 20.0))  # the study's visualize_2d.py grid: (x range, v range)


class CarCore:
    """`rlland.envs.Core` of the 1-D car (module docstring); ``inner`` is the state ``(x, v)``, also the obs."""

    observation_size = 2
    action_size = 1

    def __init__(self, dt: float = 0.2, target: float = 100.0, max_speed: float = 100.0):
        if not (dt > 0 and max_speed > 0):
            raise ValueError(f"car1d needs dt > 0 and max_speed > 0, got dt={dt}, max_speed={max_speed}")
        self.dt, self.target, self.max_speed = float(dt), float(target), float(max_speed)

    def reset(self, key):
        k_x, k_v = jax.random.split(key)
        x = jax.random.uniform(k_x, (), jnp.float32, -1.0, 1.0)
        v = jax.random.uniform(k_v, (), jnp.float32, -0.1, 0.1)
        obs = jnp.stack([x, v])
        return obs, obs

    def step(self, inner, action):
        x, v = inner[0], inner[1]
        a = action[0].astype(jnp.float32)
        dt = self.dt
        x = x + dt * v + 0.5 * dt * dt * a
        v = jnp.clip(v + dt * a, -self.max_speed, self.max_speed)
        at_limit = jnp.abs(jnp.abs(v) - self.max_speed) < 1e-3
        reward = 1.0 - 1e-2 * jnp.abs(self.target - x) - 1e-3 * jnp.abs(a) - 1e-2 * at_limit.astype(jnp.float32)
        obs = jnp.stack([x, v])
        return obs, obs, reward, jnp.zeros((), bool)

    def metrics(self, inner):
        """Per-step diagnostics: the distance to the target and the speed after the step."""
        return {"distance": jnp.abs(self.target - inner[0]), "speed": jnp.abs(inner[1])}


def make(episode_length: int | None = 1000, fixed_start: bool = False, **kwargs):
    """The car as an `rlland.envs.Env` (``episode_length`` None: the study's 1000 steps); ``kwargs`` go to
    :class:`CarCore` (``dt``, ``target``, ``max_speed``)."""
    from rlland.envs.adapter import Env

    return Env(CarCore(**kwargs), NAME, episode_length or 1000, fixed_start)
