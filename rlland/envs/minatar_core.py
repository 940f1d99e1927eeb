"""MinAtar (Young & Tian, 2019) in pure JAX through gymnax, as a `Core` (``pip install -e '.[minatar]'``).

MinAtar's five games are Atari reductions on a 10 x 10 grid with C binary channels (one per object kind):
the representation study's Atari setting at a size a CPU trains. The core uses gymnax's ``step_env`` /
``reset_env`` (no gymnax autoreset, no gymnax time limit: `Env` owns both), so ``terminated`` is the game's own end
(breakout: the ball passed the paddle; freeway never terminates, its 2500-step clock is a time limit) and gymnax's
``max_steps_in_episode`` is only `default_episode_length`. Observations are flattened to ``10 * 10 * C`` floats
in {0, 1} (``observation_shape = (10, 10, C)`` for a CNN). Actions are discrete: gymnax's minimal action set
(breakout: no-op, left, right). The dynamics draw from the step key (``stochastic``: asterix / seaquest /
space invaders spawn at random), so `Env` hands them a key split from the step's. gymnax has no sticky actions
(MinAtar's ``sticky_action_prob`` 0.1 is absent): the games are deterministic given the spawns.

Source: gymnax (Lange, 2022), ``gymnax/environments/minatar/*.py``, a port of github.com/kenjyoung/MinAtar.
"""
from __future__ import annotations

import importlib.util
import math

import jax
import jax.numpy as jnp

from rlland.envs.spaces import discrete

GAMES = {"asterix": "Asterix-MinAtar", "breakout": "Breakout-MinAtar", "freeway": "Freeway-MinAtar",
         "seaquest": "Seaquest-MinAtar", "space_invaders": "SpaceInvaders-MinAtar"}
INSTALL_HINT = "pip install -e '.[minatar]' (gymnax)"


def available() -> bool:
    return importlib.util.find_spec("gymnax") is not None


def _gymnax():
    try:
        import gymnax
    except ImportError as err:
        raise ImportError(f"MinAtar tasks need gymnax: {INSTALL_HINT}") from err
    return gymnax


class MinAtarCore:
    """One gymnax MinAtar game. ``env_kwargs`` go to gymnax's ``EnvParams`` (e.g. asterix's ``ramping``);
    gymnax's own time limit is disabled (`Env` truncates)."""

    stochastic = True

    def __init__(self, game: str, **env_kwargs):
        if game not in GAMES:
            raise ValueError(f"unknown MinAtar game {game!r}; valid: {', '.join(GAMES)}")
        self.game = game
        self.env, params = _gymnax().make(GAMES[game])
        fields = set(type(params).__dataclass_fields__)
        unknown = set(env_kwargs) - (fields - {"max_steps_in_episode"})
        if unknown:
            raise ValueError(f"minatar/{game}: unknown env kwargs {sorted(unknown)}; valid: {sorted(fields - {'max_steps_in_episode'})} "
                             f"(the time limit is make()'s episode_length)")
        self.default_episode_length = int(params.max_steps_in_episode)
        self.params = params.replace(**env_kwargs, max_steps_in_episode=2 ** 30)  # Env owns the time limit
        self.env_kwargs = dict(env_kwargs)
        self.observation_shape = tuple(int(d) for d in self.env.obs_shape)
        self.observation_size = math.prod(self.observation_shape)
        self.action_space = discrete(self.env.num_actions)
        self.action_size = self.action_space.size

    def reset(self, key: jax.Array):
        obs, state = self.env.reset_env(key, self.params)
        return _strong(state), jnp.asarray(obs, jnp.float32).reshape(-1)

    def step(self, inner, action, key):
        obs, state, reward, terminated, _ = self.env.step_env(key, inner, action, self.params)
        return _strong(state), jnp.asarray(obs, jnp.float32).reshape(-1), reward, terminated


def _strong(state):
    """gymnax's states hold Python ints and bools (``pos=4``, ``terminal=False``) whose weak types would differ
    between a reset and a step (a ``lax.cond`` / ``scan`` carry needs one type): every leaf as a strongly typed
    array of its own dtype."""
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.asarray(x).dtype), state)
