"""DeepMind Control Suite tasks (Tassa et al., 2018) in MJX through MuJoCo Playground, as a `Core`
(``pip install -e '.[dmc]'``).

MuJoCo Playground (Zakka et al., 2025; package ``playground``, module ``mujoco_playground``) re-implements the DM
Control suite on MJX and ships its model files (``dm_control_suite/xmls``), so nothing is downloaded at run time
(only its locomotion and manipulation suites fetch mujoco_menagerie, and rlland never loads them). Task names are
Playground's in snake case: ``CheetahRun`` -> ``dmc/cheetah_run``, ``FingerSpin`` -> ``dmc/finger_spin``.

The core calls the raw ``MjxEnv.reset`` / ``step`` (no Playground or Brax wrappers), so `Env` owns the time limit
(Playground's ``episode_length``, 1000 for every suite task, is only `default_episode_length`) and the
autoreset. DM Control tasks never end on their own: Playground's ``done`` is 1 only when the physics went NaN,
which is what ``terminated`` reports (an episode otherwise always ends by truncation, and value targets
bootstrap through it). Actions are continuous in [-1, 1] (every suite actuator's ctrlrange). The reset draws its
random pose from the reset key (a fixed start: the pose of key 0). The MJX implementation is ``impl="jax"``
(Playground's default is ``"warp"``, an NVIDIA-GPU kernel that neither runs on CPU nor vmaps like plain JAX);
pass ``impl=...`` or any other Playground config key as an env kwarg to override it.
"""
from __future__ import annotations

import re

import jax
import jax.numpy as jnp

from rlland import quiet
from rlland.envs.spaces import continuous

INSTALL_HINT = "pip install -e '.[dmc]' (MuJoCo Playground)"
DEFAULT_IMPL = "jax"


def _suite():
    try:
        with quiet.imports():  # mujoco.mjx prints "Failed to import warp" on machines without its GPU kernels
            from mujoco_playground import dm_control_suite
    except ImportError as err:
        raise ImportError(f"DM Control tasks need MuJoCo Playground: {INSTALL_HINT}") from err
    quiet.filter_warnings()
    return dm_control_suite


def available() -> bool:
    try:
        _suite()
    except ImportError:
        return False
    return True


def snake(name: str) -> str:
    """``CheetahRun`` -> ``cheetah_run`` (Playground's CamelCase task name in rlland's spelling)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def tasks() -> dict[str, str]:
    """rlland name -> Playground name, for every DM Control task Playground registers."""
    return {snake(n): n for n in _suite().ALL_ENVS}


class DMCCore:
    """One Playground DM Control task; ``env_kwargs`` override its Playground config (``impl`` defaults to
    ``"jax"``)."""

    def __init__(self, task: str, **env_kwargs):
        names = tasks()
        if task not in names:
            raise ValueError(f"unknown DM Control task {task!r}; valid: {', '.join(sorted(names))}")
        suite = _suite()
        config = suite.get_default_config(names[task])
        unknown = set(env_kwargs) - set(config.keys()) - {"impl"}
        if unknown:
            raise ValueError(f"dmc/{task}: unknown env kwargs {sorted(unknown)}; valid: {sorted(config.keys())}")
        self.task = task
        self.env_kwargs = {"impl": DEFAULT_IMPL} | dict(env_kwargs)
        config.update(self.env_kwargs)
        self.default_episode_length = int(config.episode_length)
        with quiet.imports():
            self.env = suite.load(names[task], config=config)
        if not isinstance(self.env.observation_size, int):
            raise ValueError(f"dmc/{task}: observations are {self.env.observation_size}, not a flat vector")
        self.observation_size = int(self.env.observation_size)
        self.action_space = continuous(self.env.action_size)
        self.action_size = self.action_space.size
        # shapes of the state's leaves, for the zero-size ones (pack)
        self.leaf_shapes = [x.shape for x in jax.tree.leaves(jax.eval_shape(self.env.reset, jax.random.PRNGKey(0)))]

    def pack(self, state):
        """MJX's Data holds zero-size arrays (e.g. ``act`` of a task without actuator states), which orbax refuses to
        checkpoint: each is kept as zeros of its shape with every 0 replaced by 1, and sliced back by `unpack`."""
        def one(x):
            x = jnp.asarray(x, jnp.asarray(x).dtype)  # Python floats (cheetah's time=0.0) as strongly typed arrays
            return x if x.size else jnp.zeros(tuple(max(d, 1) for d in x.shape), x.dtype)

        return jax.tree.map(one, state)

    def unpack(self, inner):
        leaves, treedef = jax.tree.flatten(inner)
        return treedef.unflatten([x[tuple(slice(0, d) for d in shape)] if 0 in shape else x
                                  for x, shape in zip(leaves, self.leaf_shapes)])

    def reset(self, key: jax.Array):
        state = self.env.reset(key)
        return self.pack(state), state.obs

    def step(self, inner, action):
        state = self.env.step(self.unpack(inner), action)
        return self.pack(state), state.obs, state.reward, state.done

    def metrics(self, inner) -> dict:
        """Playground's ``state.metrics`` of a state (reward terms where the task logs any; often empty)."""
        return dict(inner.metrics)
