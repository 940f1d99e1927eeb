"""The one environment interface rlland's kernels use, over any `Core` (a Brax env or a probe task).

A core knows only dynamics: ``reset(key) -> (inner, obs)`` and ``step(inner, action) -> (inner, obs, reward,
terminated)``. `Env` adds what RL correctness needs and Brax's own wrappers get wrong:

* termination and truncation are separate flags (truncation = the time limit was hit and the episode did not
  terminate on that step), so value targets bootstrap through a time limit but not through a termination;
* the true observation s_{t+1} is returned as ``final_obs`` even when the episode ends, and ``obs`` is the
  first observation of the next episode;
* autoreset draws a FRESH start state from the key given to ``step`` (Brax's AutoResetWrapper replays one cached
  start state per env slot, which biases return distributions), and only when needed: the reset is a
  `rlland.seed_axis.seed_cond` over the env and seed vmap axes (``ENV_AXIS``, ``SEED_AXIS``), so a batch whose
  vmaps name them computes start states only on steps where some env ended (unnamed vmaps: every step);
* ``fixed_start=True`` makes every reset return the same start state (reset noise 0 where the task supports it),
  the evaluation protocol of the return-landscapes study (reference A.4);
* a core's per-step diagnostics (Brax's ``state.metrics``: reward terms such as ``reward_forward``,
  ``reward_ctrl``, ``reward_healthy``, and positions/velocities) come back as ``Step.metrics`` (a dict of scalars,
  those of the step taken, before any reset; empty for a core without an optional ``metrics(inner)`` method);
* the action space is part of the contract (`rlland.envs.spaces`): ``env.action_space`` is continuous (a
  ``(size,)`` float vector, clipped to [-1, 1]) or discrete (an int index of shape ``()``, never clipped);
  a core declares it as ``action_space`` (default: continuous of ``action_size``);
* observations are flat float vectors of ``observation_size``; a core whose observations are images (MinAtar's
  10 x 10 x C grids) flattens them and declares ``observation_shape`` (default ``(observation_size,)``) for the
  networks that reshape them (`rlland.networks.CNN`);
* a core with stochastic dynamics (MinAtar spawns enemies at random) sets ``stochastic = True`` and takes a key,
  ``step(inner, action, key)``: `Env.step` splits its key into the dynamics' and the reset's (deterministic
  cores get the whole key for the reset, as before, so their streams are unchanged).

The same contract holds for every suite (Brax, MinAtar via gymnax, DM Control via MuJoCo Playground, probe
tasks); each core leaves time limits to `Env` (gymnax's and Playground's own limits are not used) and reports
only its task's own termination.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
from flax import struct

from rlland.envs.spaces import ActionSpace, of_core
from rlland.seed_axis import ENV_AXIS, SEED_AXIS, seed_cond


class Core(Protocol):
    observation_size: int
    action_size: int  # continuous: the action dimension; discrete: the number of actions

    def reset(self, key: jax.Array) -> tuple[Any, jax.Array]: ...

    def step(self, inner: Any, action: jax.Array) -> tuple[Any, jax.Array, jax.Array, jax.Array]: ...

    # optional: ``metrics(inner) -> dict[str, scalar]``, the step's diagnostics (see Step.metrics);
    # ``action_space`` (an `ActionSpace`; default continuous of action_size); ``observation_shape`` (default
    # (observation_size,)); ``stochastic = True`` with ``step(inner, action, key)`` (see the module docstring)


class EnvState(struct.PyTreeNode):
    inner: Any  # the core's own state (a brax State for Brax tasks)
    obs: jax.Array  # observation the agent acts on
    time: jax.Array  # steps taken in the current episode
    episode_return: jax.Array  # undiscounted return of the current episode so far


class Step(NamedTuple):
    """What one environment step reports. ``final_obs`` is s_{t+1} before any reset: bootstrap from it."""

    obs: jax.Array  # observation to act on next (the reset observation if the episode ended)
    reward: jax.Array
    terminated: jax.Array  # bool: the MDP ended (no bootstrap)
    truncated: jax.Array  # bool: time limit hit without termination (bootstrap from final_obs)
    final_obs: jax.Array
    episode_return: jax.Array  # return of the episode that ended on this step (0 where none did)
    metrics: dict = {}  # the core's per-step diagnostics (Brax's state.metrics), of the step taken


class Env:
    """Time limit, fresh-key autoreset and fixed starts over a `Core`. Pure functions; vmap for batches."""

    def __init__(self, core: Core, name: str, episode_length: int, fixed_start: bool = False):
        if int(episode_length) < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        self.core = core
        self.name = name
        self.episode_length = int(episode_length)
        self.fixed_start = bool(fixed_start)
        self.observation_size = int(core.observation_size)
        self.observation_shape = tuple(int(d) for d in getattr(core, "observation_shape", (self.observation_size,)))
        self.action_space: ActionSpace = of_core(core)
        self.action_size = self.action_space.size
        self.stochastic = bool(getattr(core, "stochastic", False))

    def __repr__(self) -> str:
        return (f"Env({self.name!r}, episode_length={self.episode_length}, fixed_start={self.fixed_start}, "
                f"obs={self.observation_size}, act={self.action_space.kind}:{self.action_size})")

    def reset(self, key: jax.Array) -> EnvState:
        if self.fixed_start:
            key = jax.random.PRNGKey(0)
        inner, obs = self.core.reset(key)
        return EnvState(inner=inner, obs=obs, time=jnp.zeros((), jnp.int32),
                        episode_return=jnp.zeros((), jnp.float32))

    def step(self, state: EnvState, action: jax.Array, key: jax.Array, autoreset: bool = True
             ) -> tuple[EnvState, Step]:
        """Advance one step. Continuous actions are clipped to [-1, 1]; discrete ones are int indices, cast to
        int32 and passed as they are. ``key`` seeds the reset if the episode ends (and, for a stochastic core,
        the step's dynamics: ``k_dynamics, k_reset = split(key)``).

        ``autoreset=False`` (static) skips the reset: the state goes on from the end of the episode, which is
        what a single-episode evaluation wants (it ignores everything after the end and should not pay for a
        reset at every step)."""
        action = jnp.asarray(action)
        space = self.action_space
        if action.shape != space.shape:
            raise ValueError(f"{self.name}: expected a {space.kind} action of shape {space.shape} for one env "
                             f"(vmap for batches), got {action.shape}")
        action = action.astype(jnp.int32) if space.discrete else jnp.clip(action, -1.0, 1.0)
        if self.stochastic:
            k_dynamics, key = jax.random.split(key)
            inner, obs, reward, terminated = self.core.step(state.inner, action, k_dynamics)
        else:
            inner, obs, reward, terminated = self.core.step(state.inner, action)
        metrics = dict(self.core.metrics(inner)) if hasattr(self.core, "metrics") else {}
        reward = jnp.asarray(reward, jnp.float32)
        terminated = jnp.asarray(terminated).astype(bool)
        time = state.time + 1
        truncated = (time >= self.episode_length) & ~terminated
        done = terminated | truncated
        episode_return = state.episode_return + reward
        next_state = EnvState(inner=inner, obs=obs, time=time, episode_return=episode_return)
        if autoreset:  # a real branch unless some env of the batch ended: no start state drawn at every step
            next_state = seed_cond(done, lambda s: self.reset(key), lambda s: s, next_state,
                                   axis_name=(ENV_AXIS, SEED_AXIS))
        return next_state, Step(obs=next_state.obs, reward=reward, terminated=terminated, truncated=truncated,
                                final_obs=obs, episode_return=jnp.where(done, episode_return, 0.0),
                                metrics=metrics)
