"""Environments by suite: `make(name, ...)` returns an `Env` over a Brax, MinAtar, DM Control or probe task.

    env = envs.make("brax/hopper")                  # Brax (bare names are Brax aliases: "hopper")
    env = envs.make("minatar/breakout")             # MinAtar through gymnax: discrete actions, 10x10xC images
    env = envs.make("dmc/cheetah_run")              # DM Control through MuJoCo Playground (MJX)
    state = env.reset(key)
    state, step = env.step(state, action, key)      # step.terminated / step.truncated / step.final_obs
    env.action_space                                # ActionSpace(kind="continuous" | "discrete", size)

Every suite goes through the same `Env` (time limit -> truncation, the core's own end -> termination, the true
final observation, fresh-key autoreset, ``fixed_start`` for evaluation) and stays a pure function of its key,
vmappable over envs and seeds. MinAtar needs ``pip install -e '.[minatar]'`` (gymnax) and DM Control
``pip install -e '.[dmc]'`` (MuJoCo Playground); both are in ``.[dev]``.

``episode_length=None`` is the suite's own limit: Brax 1000, MinAtar gymnax's ``max_steps_in_episode`` (1000;
freeway 2500), DM Control 1000, probes `PROBE_EPISODE_LENGTH`.
"""
from __future__ import annotations

from rlland.envs import car
from rlland.envs import dmc_core, minatar_core
from rlland.envs.adapter import Core, Env, EnvState, Step
from rlland.envs.brax_core import BACKENDS, BraxCore, brax_names
from rlland.envs.probes import PROBES, ProbeCore
from rlland.envs.spaces import ActionSpace

PROBE_EPISODE_LENGTH = 5
BRAX_EPISODE_LENGTH = 1000
SUITES = ("brax", "minatar", "dmc")


def suite_names(suite: str) -> tuple[str, ...]:
    """The task names of one suite, without the ``<suite>/`` prefix; ImportError when the suite is not
    installed."""
    if suite == "brax":
        return brax_names()
    if suite == "minatar":
        if not minatar_core.available():
            raise ImportError(f"MinAtar tasks need gymnax: {minatar_core.INSTALL_HINT}")
        return tuple(minatar_core.GAMES)
    if suite == "dmc":
        return tuple(sorted(dmc_core.tasks()))
    raise ValueError(f"unknown suite {suite!r}; valid: {', '.join(SUITES)}")


def names() -> tuple[str, ...]:
    """Every valid name: ``<suite>/<task>`` of each installed suite, the bare Brax aliases and the probes."""
    out = []
    for suite in SUITES:
        try:
            out += [f"{suite}/{n}" for n in suite_names(suite)]
        except ImportError:
            pass
    return tuple(out) + brax_names() + tuple(PROBES)


def _valid_names() -> str:
    parts = []
    for suite in SUITES:
        try:
            parts.append(f"{suite}/: {', '.join(suite_names(suite))}")
        except ImportError as err:
            parts.append(f"{suite}/: not installed ({err})")
    return "; ".join(parts) + f" (bare Brax names are aliases of brax/<name>); probes: {', '.join(PROBES)}"


def split_name(name: str) -> tuple[str, str]:
    """``"minatar/breakout"`` -> ``("minatar", "breakout")``; a bare Brax name -> ``("brax", name)``; a probe ->
    ``("probe", name)``. ValueError (listing the valid names per suite) for anything else."""
    if name in PROBES:
        return "probe", name
    suite, sep, task = name.partition("/")
    if not sep:
        suite, task = "brax", name
    if suite not in SUITES:
        raise ValueError(f"unknown environment {name!r} (unknown suite {suite!r}); valid names: {_valid_names()}")
    try:
        ok = task in suite_names(suite)
    except ImportError as err:
        raise ValueError(f"environment {name!r}: {err}") from None
    if not ok:
        raise ValueError(f"unknown environment {name!r}; valid names: {_valid_names()}")
    return suite, task


def from_preset(env: str) -> str:
    """A config preset's env part -> an env name: ``minatar_breakout`` -> ``minatar/breakout``, ``dmc_cheetah_run``
    -> ``dmc/cheetah_run`` (``configs/train.py:<algo>/<env>`` has one slash); anything else as it is."""
    for suite in SUITES:
        if env.startswith(suite + "_"):
            return f"{suite}/{env[len(suite) + 1:]}"
    return env


def make(name: str, backend: str = "spring", episode_length: int | None = None, fixed_start: bool = False,
         **env_kwargs) -> Env:
    """Build an `Env`.

    Args:
      name: ``<suite>/<task>`` with suite ``brax`` (``brax.envs``), ``minatar`` (asterix, breakout, freeway,
        seaquest, space_invaders) or ``dmc`` (MuJoCo Playground's DM Control suite: cheetah_run, finger_spin,
        walker_walk, cartpole_swingup, ...); a bare Brax name (``hopper``: an alias of ``brax/hopper``, and the
        Env keeps the name as given); or a probe task (``rlland.envs.PROBES``).
      backend: Brax physics backend, one of `BACKENDS` (Brax only; DM Control's MJX implementation is the env
        kwarg ``impl``).
      episode_length: time limit; reaching it truncates (not terminates) the episode. None: the suite's own
        (module docstring).
      fixed_start: every reset returns the same start state (Brax: reset noise 0 where the task has a
        ``reset_noise_scale``; otherwise the start drawn from a constant key).
      **env_kwargs: passed to the Brax environment's constructor / gymnax's ``EnvParams`` / Playground's config.
    """
    if name == car.NAME:  # the 1-D car of Cohan et al. 2022 (rlland.envs.car)
        return car.make(episode_length, fixed_start, **env_kwargs)
    suite, task = split_name(name)
    if suite == "probe":
        if env_kwargs:
            raise ValueError(f"probe task {name!r} takes no env kwargs, got {sorted(env_kwargs)}")
        return Env(ProbeCore(name), name, episode_length or PROBE_EPISODE_LENGTH, fixed_start)
    if suite == "minatar":
        core = minatar_core.MinAtarCore(task, **env_kwargs)
        return Env(core, name, episode_length or core.default_episode_length, fixed_start)
    if suite == "dmc":
        core = dmc_core.DMCCore(task, **env_kwargs)
        return Env(core, name, episode_length or core.default_episode_length, fixed_start)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    return Env(BraxCore(task, backend, fixed_start, **env_kwargs), name, episode_length or BRAX_EPISODE_LENGTH,
               fixed_start)


__all__ = ["ActionSpace", "BACKENDS", "Core", "Env", "EnvState", "PROBES", "SUITES", "Step", "from_preset", "make",
           "names", "split_name", "suite_names"]
