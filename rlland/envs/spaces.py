"""Action spaces: what an `Env` accepts as an action, part of the adapter contract.

* ``continuous``: a float vector of shape ``(size,)``; `Env.step` clips it to [-1, 1] (every continuous core,
  Brax and MuJoCo Playground alike, is normalised to that box).
* ``discrete``: an integer index in ``{0, ..., size - 1}`` of shape ``()`` (gymnax's ``spaces.Discrete``); never
  clipped or rescaled, only cast to int32.

Agents read ``env.action_space`` to build their policy head (PPO: a Gaussian for continuous, a categorical for
discrete) and refuse a space they cannot act in (TD3 and SAC: continuous only).
"""
from __future__ import annotations

from typing import NamedTuple

KINDS = ("continuous", "discrete")


class ActionSpace(NamedTuple):
    kind: str  # "continuous" | "discrete"
    size: int  # continuous: action dimension; discrete: number of actions

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of ONE action: ``(size,)`` continuous, ``()`` discrete."""
        return (self.size,) if self.kind == "continuous" else ()

    @property
    def discrete(self) -> bool:
        return self.kind == "discrete"


def continuous(size: int) -> ActionSpace:
    if int(size) < 1:
        raise ValueError(f"a continuous action space needs size >= 1, got {size}")
    return ActionSpace("continuous", int(size))


def discrete(n: int) -> ActionSpace:
    if int(n) < 2:
        raise ValueError(f"a discrete action space needs >= 2 actions, got {n}")
    return ActionSpace("discrete", int(n))


def of_core(core) -> ActionSpace:
    """A core's declared ``action_space``, else continuous of its ``action_size`` (Brax, continuous probes)."""
    space = getattr(core, "action_space", None)
    if space is None:
        return continuous(core.action_size)
    if space.kind not in KINDS:
        raise ValueError(f"unknown action space kind {space.kind!r}; valid: {', '.join(KINDS)}")
    return space
