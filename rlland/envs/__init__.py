"""Environments: `make(name, ...)` returns an `Env` over a Brax task or a probe task.

    env = envs.make("inverted_pendulum", backend="spring", episode_length=1000)
    state = env.reset(key)
    state, step = env.step(state, action, key)   # step.terminated / step.truncated / step.final_obs
"""
from __future__ import annotations

from rlland.envs import car
from rlland.envs.adapter import Core, Env, EnvState, Step
from rlland.envs.brax_core import BACKENDS, BraxCore, brax_names
from rlland.envs.probes import PROBES, ProbeCore

PROBE_EPISODE_LENGTH = 5


def names() -> tuple[str, ...]:
    return brax_names() + tuple(PROBES)


def make(name: str, backend: str = "spring", episode_length: int | None = 1000, fixed_start: bool = False,
         **env_kwargs) -> Env:
    """Build an `Env`.

    Args:
      name: a Brax task (``brax.envs``) or a probe task (``rlland.envs.PROBES``).
      backend: Brax physics backend, one of `BACKENDS` (ignored by probe tasks).
      episode_length: time limit; reaching it truncates (not terminates) the episode. None for a probe task
        means `PROBE_EPISODE_LENGTH`.
      fixed_start: every reset returns the same start state (reset noise 0 where the task has a
        ``reset_noise_scale``; otherwise the start drawn from a constant key).
      **env_kwargs: passed to the Brax environment's constructor.
    """
    if name == car.NAME:  # the 1-D car of Cohan et al. 2022 (rlland.envs.car)
        return car.make(episode_length, fixed_start, **env_kwargs)
    if name in PROBES:
        if env_kwargs:
            raise ValueError(f"probe task {name!r} takes no env kwargs, got {sorted(env_kwargs)}")
        return Env(ProbeCore(name), name, episode_length or PROBE_EPISODE_LENGTH, fixed_start)
    if name not in brax_names():
        raise ValueError(f"unknown environment {name!r}; valid names: {', '.join(names())}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if episode_length is None:
        raise ValueError("a Brax task needs an episode_length")
    return Env(BraxCore(name, backend, fixed_start, **env_kwargs), name, episode_length, fixed_start)


__all__ = ["BACKENDS", "Core", "Env", "EnvState", "PROBES", "Step", "make", "names"]
