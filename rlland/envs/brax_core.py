"""Brax tasks as a `Core` (dynamics only; time limits and resets live in `Env`)."""
from __future__ import annotations

import inspect

import jax

from rlland import quiet

with quiet.imports():  # mujoco.mjx prints "Failed to import warp" without the GPU-only warp package
    from brax import envs as brax_envs
quiet.filter_warnings()

BACKENDS = ("spring", "positional", "generalized", "mjx")


def brax_names() -> tuple[str, ...]:
    return tuple(sorted(brax_envs._envs))  # brax keeps its registry private; there is no public list


class BraxCore:
    """Wraps one ``brax.envs`` environment (``name`` bare or ``brax/<name>``). ``fixed_start`` sets
    ``reset_noise_scale=0`` where the task has it."""

    def __init__(self, name: str, backend: str, fixed_start: bool = False, **env_kwargs):
        name = name.removeprefix("brax/")
        cls = brax_envs._envs[name]
        if fixed_start and "reset_noise_scale" in inspect.signature(cls.__init__).parameters:
            env_kwargs.setdefault("reset_noise_scale", 0.0)
        self.env_kwargs = dict(env_kwargs)
        self.env = brax_envs.get_environment(name, backend=backend, **env_kwargs)
        self.observation_size = self.env.observation_size
        self.action_size = self.env.action_size

    def reset(self, key: jax.Array):
        state = self.env.reset(key)
        return state, state.obs

    def step(self, inner, action):
        state = self.env.step(inner, action)
        return state, state.obs, state.reward, state.done

    def metrics(self, inner) -> dict:
        """Brax's ``state.metrics`` of a state (reward terms, positions, velocities; empty for some tasks)."""
        return dict(inner.metrics)
