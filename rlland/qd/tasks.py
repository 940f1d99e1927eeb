"""Brax QD tasks: locomotion with foot-contact descriptors, scored for a whole population in one rollout.

Task (dqd-rl QDGym, reference C.1; QDax brax tasks ``*_uni``, reference D), ported to ``brax.envs``:
  * fitness = undiscounted episode return ``sum_{t < T_end} r_t``, where ``T_end`` is the first step whose
    transition terminates (inclusive) or the episode length; rewards after termination are ignored.
  * descriptor_k = fraction of steps ``t < T_end`` after which foot k touches the ground,
    ``(1 / T_end) sum_{t < T_end} contact_k(s_{t+1})`` in [0, 1] (QDGym: ``sum_t feet_contact_t / T``
    read at the final step). QDax averages the contact of the state BEFORE each step (so it counts the
    reset state and not the final state); we follow the study's after-step count.
  * feet: hopper [foot], walker2d [foot, foot_left], halfcheetah [bfoot, ffoot] (QDGym's back and front
    foot), ant [4 foot spheres, in XML order: left (front-left), right (front-right), third (back-left),
    fourth (back-right)].

Foot contact: for the flat floor plane of these models, the signed distance of a foot geom to the floor is
computed from the link transforms ``pipeline_state.x`` (sphere: ``n.(c - p0) - r``; capsule: the minimum
over its two end spheres), and a foot is in contact when the distance is ``<= 0``. This is exactly the
``dist`` that MJX's plane-sphere / plane-capsule colliders produce (``mujoco.mjx`` collision_primitive),
i.e. what ``pipeline_state.contact`` holds when the env is built with ``debug=True`` and what QDax's
FeetContactWrapper thresholds (``contact.dist <= 0`` for contacts of the foot link). Computing it directly
avoids ``debug=True``, which makes the spring pipeline run the whole collision detection a second time
every step, and it works for every brax pipeline (spring, positional, generalized, mjx: the pipeline state of
each holds the link transforms ``x``). The test suite checks it against the ``debug=True`` contacts, and the
mjx pipeline's own contacts. The backends are `rlland.envs.BACKENDS`, those of ``envs.make``. (QDax's ant feet
are the brax-v1 link names ``$ Body 4/7/10/13``, which brax 0.14's ant does not have; we use the foot geoms.)

Policy (study, reference C.1): MLP obs -> hidden... -> act, tanh hidden and tanh output, Xavier-uniform
weights and zero biases, no observation normalisation; the genome is the flat parameter vector (see
`QDTask.unflatten` for the layout). Observation sizes are Brax's (hopper 11, walker2d 17, halfcheetah 17,
ant 27), not PyBullet's, so genome sizes differ from the study's (hopper 18,947 there).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from brax import envs as brax_envs
from brax import math as brax_math

from rlland.envs.brax_core import BACKENDS

TASK_NAMES = ("hopper", "walker2d", "halfcheetah", "ant")
_ALIASES = {f"{n}_uni": n for n in TASK_NAMES}
FEET_GEOMS = {
    "hopper": ("foot_geom",),
    "walker2d": ("foot_geom", "foot_left_geom"),
    "halfcheetah": ("bfoot", "ffoot"),
    "ant": ("left_foot_geom", "right_foot_geom", "third_foot_geom", "fourth_foot_geom"),
}
FLOOR_GEOM = "floor"
# Archive grids of the study (reference C.1); descriptors in [0, 1] for all tasks.
STUDY_GRID_SHAPES = {"hopper": (1000,), "walker2d": (32, 32), "halfcheetah": (32, 32), "ant": (6, 6, 6, 6)}

_SPHERE = int(mujoco.mjtGeom.mjGEOM_SPHERE)
_CAPSULE = int(mujoco.mjtGeom.mjGEOM_CAPSULE)


class Transitions(flax.struct.PyTreeNode):
    """Per-step data of scored episodes, leaves ``(n, T, ...)``, for an off-policy critic (TD3).

    ``next_obs`` is the true next observation (the terminal one at termination). ``valid`` is False for
    steps after the first termination; those must not be stored (their contents are unspecified: the
    fallen body keeps being simulated, possibly to NaN), and masks must use ``where``, not a product. ``termination`` marks the transition that
    ended the episode by failure; ``truncation`` marks the last step of an episode that reached the length
    limit without terminating. Flags are float32 (0/1), ``valid`` is bool.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    termination: jax.Array
    truncation: jax.Array
    valid: jax.Array


def _resolve_name(name: str) -> str:
    base = _ALIASES.get(name, name)
    if base not in TASK_NAMES:
        raise ValueError(f"unknown QD task {name!r}; valid names: {', '.join(TASK_NAMES)} "
                         f"(or the QDax aliases {', '.join(_ALIASES)})")
    return base


@dataclasses.dataclass(frozen=True, eq=False)
class QDTask:
    """A Brax QD task bound to a policy architecture. Build with `make_task`.

    Static configuration (Python values closed over when a kernel is built): name, env, episode_length,
    hidden_sizes, random_init, return_transitions.
    """

    name: str
    env: Any
    episode_length: int
    hidden_sizes: tuple[int, ...]
    random_init: bool
    return_transitions: bool
    obs_size: int
    action_size: int
    _foot_body: np.ndarray = dataclasses.field(repr=False)
    _foot_pos: np.ndarray = dataclasses.field(repr=False)
    _foot_quat: np.ndarray = dataclasses.field(repr=False)
    _foot_radius: np.ndarray = dataclasses.field(repr=False)
    _foot_half_length: np.ndarray = dataclasses.field(repr=False)
    _floor_pos: np.ndarray = dataclasses.field(repr=False)
    _floor_normal: np.ndarray = dataclasses.field(repr=False)

    # ------------------------------------------------------------------ sizes
    @property
    def descriptor_size(self) -> int:
        return len(self._foot_body)

    @property
    def descriptor_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(minval, maxval)``: descriptors are fractions, so ``[0, 1]`` in every dimension."""
        return np.zeros(self.descriptor_size, np.float32), np.ones(self.descriptor_size, np.float32)

    @property
    def study_grid_shape(self) -> tuple[int, ...]:
        """The archive grid the study used for this task (reference C.1)."""
        return STUDY_GRID_SHAPES[self.name]

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return (self.obs_size, *self.hidden_sizes, self.action_size)

    @property
    def genome_size(self) -> int:
        s = self.layer_sizes
        return sum(s[i] * s[i + 1] + s[i + 1] for i in range(len(s) - 1))

    # ------------------------------------------------------------------ policy genome
    def unflatten(self, genome: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
        """Flat genome -> ``[(W_0, b_0), ...]`` with ``W_l`` of shape ``(in, out)``.

        Layout: for each layer in order, ``W_l`` row-major (``in * out`` entries) then ``b_l`` (``out``).
        """
        genome = jnp.asarray(genome)
        if genome.shape[-1] != self.genome_size:
            raise ValueError(f"genome has {genome.shape[-1]} entries, task {self.name!r} expects {self.genome_size}")
        layers, o = [], 0
        s = self.layer_sizes
        for i in range(len(s) - 1):
            n_in, n_out = s[i], s[i + 1]
            w = genome[..., o:o + n_in * n_out].reshape(genome.shape[:-1] + (n_in, n_out))
            o += n_in * n_out
            b = genome[..., o:o + n_out]
            o += n_out
            layers.append((w, b))
        return layers

    def flatten(self, layers: Sequence[tuple[jax.Array, jax.Array]]) -> jax.Array:
        """Inverse of `unflatten` (for one genome)."""
        return jnp.concatenate([jnp.concatenate([w.reshape(-1), b.reshape(-1)]) for w, b in layers])

    def init_genomes(self, key: jax.Array, n: int) -> jax.Array:
        """``(n, genome_size)`` genomes: Xavier-uniform weights ``U(+-sqrt(6 / (in + out)))``, zero biases
        (the study's ``xavier_uniform_`` init, reference C.1)."""
        s = self.layer_sizes
        limits = np.concatenate([
            np.concatenate([np.full(s[i] * s[i + 1], math.sqrt(6.0 / (s[i] + s[i + 1]))), np.zeros(s[i + 1])])
            for i in range(len(s) - 1)
        ]).astype(np.float32)
        u = jax.random.uniform(key, (int(n), self.genome_size), minval=-1.0, maxval=1.0)
        return u * jnp.asarray(limits)

    def policy(self, genome: jax.Array, obs: jax.Array) -> jax.Array:
        """Deterministic action ``tanh(... tanh(obs W_0 + b_0) ... W_L + b_L)`` in ``[-1, 1]^act``."""
        return apply_layers(self.unflatten(genome), obs)

    # ------------------------------------------------------------------ descriptors
    def foot_floor_distance(self, pipeline_state: Any) -> jax.Array:
        """Signed distance of each foot geom to the floor plane (negative = penetrating), ``(num_feet,)``."""
        x = pipeline_state.x
        body = jnp.asarray(self._foot_body)
        link_pos, link_rot = x.pos[body], x.rot[body]
        centre = link_pos + jax.vmap(brax_math.rotate)(jnp.asarray(self._foot_pos), link_rot)
        rot = jax.vmap(brax_math.quat_mul)(link_rot, jnp.asarray(self._foot_quat))
        axis = jax.vmap(brax_math.rotate, (None, 0))(jnp.array([0.0, 0.0, 1.0]), rot)
        n, p0 = jnp.asarray(self._floor_normal), jnp.asarray(self._floor_pos)
        half = jnp.asarray(self._foot_half_length)[:, None]
        # elementwise products, not a matmul: no reduced-precision (TF32) dot near the contact threshold
        heights = jnp.stack([jnp.sum((centre + axis * half - p0) * n, -1),
                             jnp.sum((centre - axis * half - p0) * n, -1)], axis=-1)
        return jnp.min(heights, axis=-1) - jnp.asarray(self._foot_radius)

    def feet_contact(self, pipeline_state: Any) -> jax.Array:
        """``(num_feet,)`` float32, 1 where the foot touches the floor (distance <= 0)."""
        return (self.foot_floor_distance(pipeline_state) <= 0.0).astype(jnp.float32)

    # ------------------------------------------------------------------ evaluation
    def rollout(self, genome: jax.Array, key: jax.Array, return_transitions: bool | None = None, *,
                obs_norm: tuple[jax.Array, jax.Array] | None = None, action_noise: float = 0.0,
                return_obs_stats: bool = False) -> dict:
        """One episode of ``episode_length`` steps (``lax.scan``) for ONE genome.

        ``key`` draws the start state when ``random_init`` (otherwise the start is the noiseless reset and
        the key is unused). Returns a dict: fitness, descriptor, episode_length (steps before and including
        termination), and transitions (`Transitions`, leaves ``(T, ...)``) if requested.

        ME-ES options (reference C.3; the defaults leave the rollout unchanged, bit for bit):
          obs_norm: ``(mean, std)``: the policy sees ``(obs - mean) / std`` (no clip, as dqd-rl's GymControl).
          action_noise: ``a + action_noise * N(0, I)`` after the tanh (dqd-rl: 0.01 in ES samples); the noise
            key is split from ``key`` (the start state then uses the other half).
          return_obs_stats: also return ``obs_sum``, ``obs_sumsq`` ``(obs,)`` and ``obs_count`` over the raw
            observations acted on before termination (for running normalisation statistics).
        """
        want = self.return_transitions if return_transitions is None else bool(return_transitions)
        env, T = self.env, self.episode_length
        noisy = action_noise > 0.0
        if noisy:
            key, noise_key = jax.random.split(key)
        state = env.reset(key if self.random_init else jax.random.PRNGKey(0))
        # cut the genome into layers once: inside the scan XLA copies every slice at every step (measured:
        # -25% evaluations/s for a batch of 256 128x128 hopper policies, benchmarks/RESULTS.md)
        layers = self.unflatten(genome)

        def step(carry, t):
            state, alive = carry
            obs_in = state.obs if obs_norm is None else (state.obs - obs_norm[0]) / obs_norm[1]
            action = apply_layers(layers, obs_in)
            if noisy:
                action = action + action_noise * jax.random.normal(jax.random.fold_in(noise_key, t), action.shape)
            nxt = env.step(state, action)
            term = nxt.done > 0.5
            out = {
                "reward": nxt.reward,
                "contact": self.feet_contact(nxt.pipeline_state),
                "alive": alive,
            }
            if return_obs_stats:
                out["obs"] = state.obs
            if want:
                out["transition"] = Transitions(
                    obs=state.obs,
                    action=action,
                    reward=nxt.reward,
                    next_obs=nxt.obs,
                    termination=(alive & term).astype(jnp.float32),
                    truncation=(alive & ~term & (t == T - 1)).astype(jnp.float32),
                    valid=alive,
                )
            return (nxt, alive & ~term), out

        _, out = jax.lax.scan(step, (state, jnp.array(True)), jnp.arange(T))
        alive = out["alive"]
        length = jnp.sum(alive).astype(jnp.int32)
        result = {
            # where, not multiply: steps after termination may hold NaN physics
            "fitness": jnp.sum(jnp.where(alive, out["reward"], 0.0)),
            "descriptor": jnp.sum(jnp.where(alive[:, None], out["contact"], 0.0), axis=0) / jnp.maximum(length, 1),
            "episode_length": length,
        }
        if want:
            result["transitions"] = out["transition"]
        if return_obs_stats:
            obs = jnp.where(alive[:, None], out["obs"], 0.0)
            result.update(obs_sum=jnp.sum(obs, 0), obs_sumsq=jnp.sum(obs * obs, 0), obs_count=length)
        return result

    def score(self, genomes: jax.Array, key: jax.Array, return_transitions: bool | None = None, **rollout_kwargs):
        """Evaluate a population: ``(fitnesses (n,), descriptors (n, num_feet), extras)``.

        One ``vmap`` over genomes of `rollout`; each genome gets its own start-state key (split from
        ``key``) when ``random_init``. ``extras`` holds ``episode_length`` (n,) and, if
        ``return_transitions`` (default: the task's setting), ``transitions`` with leaves ``(n, T, ...)``
        — memory ``n * T * (2 obs + act + 4)`` floats. ``rollout_kwargs`` (``obs_norm``, ``action_noise``,
        ``return_obs_stats``) go to `rollout`; the observation sums come back in ``extras``.
        """
        genomes = jnp.asarray(genomes)
        if genomes.ndim != 2 or genomes.shape[1] != self.genome_size:
            raise ValueError(f"genomes must be (n, {self.genome_size}) for task {self.name!r}, got {genomes.shape}")
        keys = jax.random.split(key, genomes.shape[0])
        res = jax.vmap(lambda g, k: self.rollout(g, k, return_transitions, **rollout_kwargs))(genomes, keys)
        extras = {k: v for k, v in res.items() if k not in ("fitness", "descriptor")}
        return res["fitness"], res["descriptor"], extras


def apply_layers(layers: Sequence[tuple[jax.Array, jax.Array]], obs: jax.Array) -> jax.Array:
    """The tanh MLP of a `QDTask` genome, from its `QDTask.unflatten` layers."""
    h = obs
    for w, b in layers:
        h = jnp.tanh(h @ w + b)
    return h


def make_task(
    name: str,
    *,
    episode_length: int = 1000,
    hidden_sizes: Sequence[int] = (128, 128),
    random_init: bool = False,
    backend: str = "spring",
    return_transitions: bool = False,
    **env_kwargs,
) -> QDTask:
    """Build a QD task over ``brax.envs``.

    Args:
      name: one of `TASK_NAMES` ("hopper", "walker2d", "halfcheetah", "ant"; QDax's "<name>_uni" also
        accepted).
      episode_length: fixed number of steps per evaluation (the study: 1000).
      hidden_sizes: policy hidden widths (the study: (128, 128)).
      random_init: False: deterministic start (the env is built with ``reset_noise_scale=0``); True: the
        env's default reset noise with a fresh key per evaluation (the study's "new env seed for each
        episode").
      backend: brax pipeline, one of `BACKENDS` (`rlland.envs.BACKENDS`: "spring" (default), "positional",
        "generalized", "mjx"), as ``rlland.envs.make``.
      return_transitions: default for `QDTask.score` (costs ``n * T`` transitions of memory).
      **env_kwargs: passed to the brax env constructor (e.g. ``terminate_when_unhealthy``).
    """
    base = _resolve_name(name)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    episode_length = int(episode_length)
    if episode_length < 1:
        raise ValueError(f"episode_length must be >= 1, got {episode_length}")
    hidden_sizes = tuple(int(h) for h in hidden_sizes)
    if any(h < 1 for h in hidden_sizes):
        raise ValueError(f"hidden_sizes must be positive ints, got {hidden_sizes}")
    if "reset_noise_scale" in env_kwargs and not random_init:
        raise ValueError("reset_noise_scale given with random_init=False (which forces it to 0)")
    if not random_init:
        env_kwargs["reset_noise_scale"] = 0.0
    env = brax_envs.get_environment(base, backend=backend, **env_kwargs)
    # brax's `env.observation_size` runs a full (eager) reset on every access: read it once, abstractly.
    obs_size = int(jax.eval_shape(env.reset, jax.random.PRNGKey(0)).obs.shape[-1])

    mj = env.sys.mj_model
    gids = []
    for g in FEET_GEOMS[base]:
        gid = mujoco.mj_name2id(mj, mujoco.mjtObj.mjOBJ_GEOM, g)
        if gid < 0:
            raise ValueError(f"foot geom {g!r} not found in brax's {base} model")
        if int(mj.geom_type[gid]) not in (_SPHERE, _CAPSULE):
            raise ValueError(f"foot geom {g!r} of {base} is neither a sphere nor a capsule")
        gids.append(gid)
    gids = np.asarray(gids)
    floor = mujoco.mj_name2id(mj, mujoco.mjtObj.mjOBJ_GEOM, FLOOR_GEOM)
    if floor < 0 or int(mj.geom_bodyid[floor]) != 0:
        raise ValueError(f"{base}: expected a world-fixed floor plane named {FLOOR_GEOM!r}")
    floor_quat = np.asarray(mj.geom_quat[floor], np.float32)
    floor_normal = np.asarray(brax_math.rotate(jnp.array([0.0, 0.0, 1.0]), jnp.asarray(floor_quat)), np.float32)
    is_capsule = np.asarray(mj.geom_type[gids]) == _CAPSULE
    return QDTask(
        name=base,
        env=env,
        episode_length=episode_length,
        hidden_sizes=hidden_sizes,
        random_init=bool(random_init),
        return_transitions=bool(return_transitions),
        obs_size=obs_size,
        action_size=int(env.action_size),
        _foot_body=(np.asarray(mj.geom_bodyid[gids]) - 1).astype(np.int32),  # brax link = mujoco body - 1
        _foot_pos=np.asarray(mj.geom_pos[gids], np.float32),
        _foot_quat=np.asarray(mj.geom_quat[gids], np.float32),
        _foot_radius=np.asarray(mj.geom_size[gids, 0], np.float32),
        _foot_half_length=np.where(is_capsule, mj.geom_size[gids, 1], 0.0).astype(np.float32),
        _floor_pos=np.asarray(mj.geom_pos[floor], np.float32),
        _floor_normal=floor_normal,
    )
