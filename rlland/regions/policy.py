"""Glue between rlland agents / snapshots and the region metrics (Cohan et al. 2022, reference B.1-B.2).

Everything here is written for ONE seed (one policy's ``params``); batches of seeds come from ``jax.vmap`` over
the seed axis of a snapshot (``runs.load_snapshot(run_dir, step).params``), episodes from a vmap over keys.

Which layers: a region is an activation pattern of the actor's hidden ReLU neurons (the policy MLP only, action
head excluded, as the reference's ``mlp_extractor.policy_net``). :func:`actor_layers` reads them through the agent
contract (:class:`rlland.types.AgentLike`): ``agent.actor_layers(params)`` gives the hidden ``(W, b)`` layers on
normalised inputs and ``agent.actor_activation()`` their activation; where they live in the param tree is the
network's own declaration (``TRUNK``, see :mod:`rlland.networks`; :func:`actor_trunk` reports it).

Only ReLU actors have linear regions in this sense; another activation raises ValueError (train with
``--config.agent.activation=relu``; PPO's default is tanh).

Observation normalisation (agent config ``normalize_observations``; ``params["obs_norm"]`` is a
:class:`rlland.normalization.RunningStats`): the network sees ``z = clip((s - mean) / sqrt(var + 1e-8), -10, 10)``.
Two equivalent ways are offered:

* ``actor_layers(agent, params)`` (default ``fold_obs_norm=True``) folds the affine part into the first layer,
  ``W'_0 = W_0 / std[:, None]``, ``b'_0 = b_0 - (mean / std) @ W_0``, so the layers take RAW states - the safe
  default for any caller of :mod:`rlland.regions`;
* ``actor_layers(agent, params, fold_obs_norm=False)`` + ``input_normalizer(agent, params) -> (mean, std)`` keeps
  the network's own first layer and lets :func:`rlland.regions.trajectory_metrics` normalise (so that its
  ``length_normalized`` is the reference's length in normalised space). :func:`policy_trajectory_metrics` and
  :func:`policy_line_counts` do this.

Both ignore the clip at +-10 (deliberate): the regions are those of the MLP on the unclipped normalised input,
which is the network's own partition wherever no component of a state is more than 10 running stds from the
running mean (the reference's VecNormalize used ``clip_obs=inf``). :func:`clipped_states` counts the states
where the clip is active, so a result affected by it is visible (the experiment stores it).

Which normaliser, and which origin (Cohan et al.'s protocol, ``compute_metrics.py`` / ``randomized_metric_helper.py``;
reference B.2). The reference counts a snapshot's fixed and current trajectories under that snapshot's own
VecNormalize statistics, but its random trajectories and random lines under the BEST checkpoint's statistics, one
normaliser for every snapshot; and its "origin" lines pass through the raw zero state normalised with those
statistics, ``-mean / std``, not through the origin of the normalised input space. Every function here takes an
optional ``normalizer=(mean, std)`` (default: the params' own, :func:`input_normalizer`) and
:func:`policy_line_counts` an ``origin`` (:data:`ORIGINS`: ``"raw"``, the reference's, or ``"input"``, the
origin of the network's input space). The difference matters most at initialisation: the biases are 0, so every
line through the input-space origin meets every first-layer hyperplane at that one point and a one-hidden-layer
net shows exactly 2 regions on it, while the reference's line (through ``-mean / std``) shows up to ``n + 1``.
:mod:`rlland.regions.analysis` chooses the reference's protocol by default (config ``normalizer`` and
``line_origin``).

Trajectories (:func:`collect_trajectory`): one episode from ``env.reset`` as a fixed-length scan of ``length``
steps; ``states[t]`` is the observation acted on at step t, ``mask[t]`` is True until the episode ends (the
terminal observation is excluded, as in the reference; after the end the env autoresets and those states are
masked out). Policies: ``"deterministic"`` (``agent.act(..., deterministic=True)``, the reference's default),
``"stochastic"`` (the agent's sampling policy) or ``"random"`` (uniform actions in [-1, 1], the reference's
random trajectories). The kind may also be its index in :data:`POLICIES` as a traced int (:func:`policy_index`),
so one compiled kernel collects every kind. :func:`policy_params` keeps the part of the params that acting and the
metrics need (``actor`` and ``obs_norm``), for stacking many snapshots cheaply.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rlland.normalization import fold_input_normalizer
from rlland.regions.layers import validate_layers
from rlland.regions.counting import count_on_line, count_on_segment
from rlland.regions.trajectory import LineCounts, TrajectoryMetrics, trajectory_metrics

__all__ = [
    "POLICIES",
    "ORIGINS",
    "PolicyTrajectory",
    "actor_trunk",
    "require_relu",
    "actor_layers",
    "input_normalizer",
    "policy_index",
    "policy_params",
    "collect_trajectory",
    "clipped_states",
    "policy_trajectory_metrics",
    "policy_line_counts",
    "snapshot_region_metrics",
]

POLICIES = ("deterministic", "stochastic", "random")
ORIGINS = ("raw", "input")  # "origin" lines: through the raw zero state normalised (the reference) | input-space 0
CLIP = 10.0  # RunningStats.normalize's default clip
_NORM_EPS = 1e-8  # RunningStats.normalize: sqrt(var + 1e-8)


class PolicyTrajectory(NamedTuple):
    """One episode: ``states`` ``(T, d)`` raw observations, ``mask`` ``(T,)`` bool (False after the end)."""

    states: jax.Array
    mask: jax.Array


def actor_trunk(agent) -> str:
    """Path of the actor's hidden-layer MLP inside its param dict, as the network declares it (``TRUNK``).

    Informational (e.g. ``"_Head_0/MLP_0"`` for TD3 / PPO actors, ``"MLP_0"`` for SAC's): :func:`actor_layers` reads
    the layers through ``agent.actor_layers(params)``, which uses the same declaration."""
    trunk = getattr(getattr(agent, "actor", None), "TRUNK", None)
    if not isinstance(trunk, str):
        raise TypeError(f"actor_trunk: the actor {type(getattr(agent, 'actor', None)).__name__} of "
                        f"{type(agent).__name__} declares no TRUNK (see rlland.networks)")
    return trunk


def require_relu(agent) -> None:
    """ValueError unless ``agent.actor_activation()`` is ``"relu"`` (only ReLU actors have these linear regions)."""
    act = agent.actor_activation()
    if act != "relu":
        raise ValueError(f"linear regions need a ReLU actor, but the actor of {type(agent).__name__} uses activation "
                         f"{act!r}; train it with --config.agent.activation=relu")


def _uses_obs_norm(agent) -> bool:
    return bool(agent.config.get("normalize_observations", False))


def input_normalizer(agent, params) -> tuple[jax.Array, jax.Array]:
    """``(mean, std)`` with the network input ``(s - mean) / std`` (clip ignored, see the module docstring).

    Identity ``(0, 1)`` when the agent does not normalise observations. ``std = sqrt(var + 1e-8)`` exactly as
    :meth:`RunningStats.normalize`. One seed's params (vmap for many).
    """
    d = agent.env.observation_size
    if not _uses_obs_norm(agent):
        return jnp.zeros((d,), jnp.float32), jnp.ones((d,), jnp.float32)
    stats = params["obs_norm"]
    return stats.mean, jnp.sqrt(stats.var + _NORM_EPS)


def actor_layers(agent, params, *, fold_obs_norm: bool = True) -> list[tuple[jax.Array, jax.Array]]:
    """The actor's hidden ``(W, b)`` layers (W of shape (in, out)), the input of :mod:`rlland.regions`.

    Args:
      agent: an agent (:class:`rlland.types.AgentLike`: TD3 / SAC / PPO) with a ReLU actor (ValueError
        otherwise).
      params: ONE seed's params dict (``state.params``: ``"actor"`` and ``"obs_norm"``); vmap for many.
      fold_obs_norm: when the agent normalises observations, fold the normaliser into the first layer so that
        the layers take raw states (default). With False the layers take normalised inputs; pair them with
        :func:`input_normalizer`. Without observation normalisation both are the same.
    """
    require_relu(agent)
    try:
        layers = agent.actor_layers(params)
    except (KeyError, TypeError) as err:
        actor = params.get("actor", {}) if isinstance(params, dict) else params
        keys = list(actor.get("params", actor)) if isinstance(actor, dict) else type(actor).__name__
        raise ValueError(f"actor_layers: no trunk of hidden layers in params['actor'] (top-level keys {keys}); "
                         "pass one seed's full params dict (state.params)") from err
    layers = validate_layers(layers, agent.env.observation_size)
    if fold_obs_norm and _uses_obs_norm(agent):
        mean, std = input_normalizer(agent, params)
        layers = fold_input_normalizer(layers, mean, std)
    return layers


POLICY_KEYS = ("actor", "obs_norm")


def policy_params(params: dict) -> dict:
    """The part of an agent's params that acting and the region metrics read: ``{"actor", "obs_norm"}``.

    TD3 / SAC / PPO ``act`` and :func:`actor_layers` use nothing else, so stacking many snapshots needs only this
    (critics, targets and temperatures are dropped). Works on seed-batched params too."""
    missing = [k for k in POLICY_KEYS if k not in params]
    if missing:
        raise ValueError(f"params lack {missing}; expected an agent's params dict with keys {POLICY_KEYS} "
                         f"(got {sorted(params)})")
    return {k: params[k] for k in POLICY_KEYS}


def _action(agent, params, obs, key, mode):
    """Action for ``mode`` = index into POLICIES; a traced index lets one compiled kernel serve every kind."""
    def deterministic(k):
        return agent.act(params, obs, k, deterministic=True).astype(jnp.float32)

    def stochastic(k):
        return agent.act(params, obs, k, deterministic=False).astype(jnp.float32)

    def random(k):
        return jax.random.uniform(k, (agent.env.action_size,), jnp.float32, -1.0, 1.0)

    if isinstance(mode, int):
        return (deterministic, stochastic, random)[mode](key)
    return jax.lax.switch(mode, (deterministic, stochastic, random), key)


def policy_index(policy) -> Any:
    """``POLICIES.index(policy)`` for a name; an int (or traced int array) is passed through."""
    if isinstance(policy, str):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        return POLICIES.index(policy)
    return policy


def collect_trajectory(agent, params, env, key, length: int, policy="deterministic") -> PolicyTrajectory:
    """One episode of at most ``length`` steps as fixed-shape ``states (length, d)`` and ``mask (length,)``.

    Args:
      agent, params: the policy (one seed's params; vmap for many). ``params`` is unused for ``"random"``.
      env: the environment (e.g. ``agent.env``, or one made with ``fixed_start=True``).
      key: start state and action noise (split per step).
      length: scan length (static); an episode that lasts longer is cut, one that ends earlier is masked.
      policy: ``"deterministic"``, ``"stochastic"`` or ``"random"``; or its index in :data:`POLICIES` as a
        traced int, so that one compiled kernel serves every kind.
    ``states[t]`` is the observation acted on at step t; ``mask[t]`` is False once a step before t terminated or
    truncated the episode (the terminal observation itself is not included, reference B.2).
    """
    length = int(length)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    mode = policy_index(policy)
    k_reset, k_steps = jax.random.split(key)

    def one(carry, k):
        state, alive = carry
        k_act, k_env = jax.random.split(k)
        obs = state.obs
        state, out = env.step(state, _action(agent, params, obs, k_act, mode), k_env)
        return (state, alive & ~(out.terminated | out.truncated)), (obs, alive)

    _, (states, mask) = jax.lax.scan(one, (env.reset(k_reset), jnp.ones((), bool)), jax.random.split(k_steps, length))
    return PolicyTrajectory(states.astype(jnp.float32), mask)


def _normalizer(agent, params, normalizer):
    """``normalizer`` if given, else the params' own :func:`input_normalizer`."""
    return input_normalizer(agent, params) if normalizer is None else tuple(normalizer)


def clipped_states(agent, params, states, mask=None, normalizer=None) -> jax.Array:
    """Number of valid states with a normalised component beyond the +-10 clip (0 without normalisation);
    ``normalizer=(mean, std)`` replaces the params' own."""
    if not _uses_obs_norm(agent):
        return jnp.zeros((), jnp.int32)
    mean, std = _normalizer(agent, params, normalizer)
    out = jnp.any(jnp.abs((states - mean) / std) > CLIP, axis=-1)
    if mask is not None:
        out = out & mask
    return jnp.sum(out.astype(jnp.int32))


def policy_trajectory_metrics(agent, params, states, mask=None, *, max_pieces: int = 64,
                              piece_patterns: bool = True, normalizer=None) -> TrajectoryMetrics:
    """:func:`rlland.regions.trajectory_metrics` of raw ``states`` ``(T, d)`` under the actor of ``params``.

    Layers unfolded + the params' normaliser (or ``normalizer=(mean, std)``, e.g. a reference snapshot's, see the
    module docstring), so ``length`` is on raw states and ``length_normalized`` on the network's (unclipped)
    inputs, as the reference. One trajectory, one seed: vmap for more.
    """
    mean, std = _normalizer(agent, params, normalizer)
    return trajectory_metrics(actor_layers(agent, params, fold_obs_norm=False), states, mean=mean, std=std,
                              mask=mask, max_pieces=max_pieces, piece_patterns=piece_patterns)


def policy_line_counts(agent, params, key, states, mask=None, *, num_lines: int, through: str = "origin",
                       origin: str = "raw", normalizer=None, segment_length=None,
                       max_pieces: int = 1024) -> LineCounts:
    """Region counts on lines through a state and the origin (or the states' mean), reference B.2.

    Each of ``num_lines`` lines passes through a valid state drawn uniformly (with replacement) from
    ``states[mask]`` and through the anchor (``through``): the origin (``"origin"``) or the mean of the valid
    states (``"mean"``), all in normalised input space. The origin is the raw zero state normalised,
    ``-mean / std`` (``origin="raw"``, the reference's), or the origin of the network's input space
    (``origin="input"``); without observation normalisation both are 0. States are normalised with the params'
    normaliser or ``normalizer=(mean, std)`` (the reference: the best checkpoint's for every snapshot). Counted on
    the infinite line (or on a segment of ``segment_length`` centred on the anchor). As
    :func:`rlland.regions.state_line_counts`, with a mask for padded trajectories and the normaliser applied.
    """
    if through not in ("origin", "mean"):
        raise ValueError(f"through must be 'origin' or 'mean', got {through!r}")
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, got {origin!r}")
    states = jnp.asarray(states)
    if states.ndim != 2 or states.shape[1] != agent.env.observation_size:
        raise ValueError(f"states must have shape (T, {agent.env.observation_size}), got {states.shape}")
    mask = jnp.ones(states.shape[:1], bool) if mask is None else jnp.asarray(mask, bool)
    if mask.shape != states.shape[:1]:
        raise ValueError(f"mask must have shape {states.shape[:1]}, got {mask.shape}")
    layers = actor_layers(agent, params, fold_obs_norm=False)
    mean, std = _normalizer(agent, params, normalizer)
    zero = (0.0 - mean) / std if origin == "raw" else jnp.zeros_like(mean)
    return _line_counts(key, layers, (states - mean) / std, mask, zero, None if segment_length is None else
                        jnp.asarray(segment_length), num_lines=int(num_lines), through=through,
                        max_pieces=int(max_pieces))


@functools.partial(jax.jit, static_argnames=("num_lines", "through", "max_pieces"))
def _line_counts(key, layers, x, mask, zero, segment_length, num_lines, through, max_pieces) -> LineCounts:
    w = mask.astype(x.dtype)
    # uniform over the valid states (all of them if none is valid, which only happens for an empty trajectory)
    logits = jnp.where(jnp.any(mask), jnp.log(w), jnp.zeros_like(w))
    picked = x[jax.random.categorical(key, logits, shape=(num_lines,))]
    anchor = zero.astype(x.dtype) if through == "origin" else (w @ x) / jnp.maximum(w.sum(), 1.0)
    diff = picked - anchor
    norm = jnp.linalg.norm(diff, axis=-1, keepdims=True)
    u = jnp.where(norm > 0, diff / jnp.where(norm > 0, norm, 1.0), 0.0)
    anchors = jnp.broadcast_to(anchor, u.shape)
    if segment_length is None:
        res = jax.vmap(lambda a, d: count_on_line(layers, a, a + d, max_pieces=max_pieces))(anchors, u)
    else:
        half = 0.5 * segment_length.astype(x.dtype)
        res = jax.vmap(lambda a, d: count_on_segment(layers, a - half * d, a + half * d, max_pieces=max_pieces))(
            anchors, u)
    return LineCounts(res.count, res.overflow, anchors, u)


def _over_episodes(fn, trajectory: PolicyTrajectory, episode_batch: int):
    """``fn(states, mask)`` over the leading episode axis: vmap, or ``lax.map`` in batches to bound memory."""
    if episode_batch and episode_batch < trajectory.states.shape[0]:
        return jax.lax.map(lambda sm: fn(*sm), (trajectory.states, trajectory.mask), batch_size=int(episode_batch))
    return jax.vmap(fn)(trajectory.states, trajectory.mask)


def snapshot_region_metrics(agent, params, trajectories: dict[str, PolicyTrajectory], line_states: PolicyTrajectory,
                            key, *, num_lines: int, max_pieces: int = 64, line_max_pieces: int = 1024,
                            piece_patterns: bool = True, episode_batch: int = 0, normalizers=None,
                            line_normalizer=None, line_origin: str = "raw") -> dict:
    """Every region metric of one policy (one seed of one snapshot); vmap over seeds.

    Args:
      agent, params: the policy (one seed's params).
      trajectories: name -> :class:`PolicyTrajectory` with a leading episode axis ``(E, T, d)`` / ``(E, T)``
        (e.g. ``{"fixed": ..., "current": ..., "random": ...}``), raw states.
      line_states: the states the lines are drawn through (a :class:`PolicyTrajectory`, any leading axes).
      key: for the lines (the "origin" and "mean" families get independent draws).
      normalizers: name -> ``(mean, std)`` for the trajectories that are normalised otherwise than with the
        params' own normaliser (the reference: ``{"random": best checkpoint's}``); line_normalizer: the same for
        the lines; line_origin: :data:`ORIGINS` (module docstring).
      num_lines, line_max_pieces: lines per family, buffer per line. max_pieces: buffer per trajectory segment.
      episode_batch: > 0: compute the trajectories' metrics ``episode_batch`` episodes at a time (``lax.map``)
        instead of all at once, to bound memory (about ``T * max_pieces * n`` bytes per episode).
    Returns:
      ``{name: {"metrics": TrajectoryMetrics [E], "clipped_states": [E]}, ..., "lines": {"origin": LineCounts,
      "mean": LineCounts}}`` (counts ``(num_lines,)``).
    """
    out = {}
    normalizers = dict(normalizers or {})
    unknown = sorted(set(normalizers) - set(trajectories))
    if unknown:
        raise ValueError(f"normalizers for {unknown}, which are not trajectories ({sorted(trajectories)})")
    for name, traj in trajectories.items():
        def one(states, mask, norm=normalizers.get(name)):
            m = policy_trajectory_metrics(agent, params, states, mask, max_pieces=max_pieces,
                                          piece_patterns=piece_patterns, normalizer=norm)
            return {"metrics": m, "clipped_states": clipped_states(agent, params, states, mask, norm)}

        out[name] = _over_episodes(one, traj, episode_batch)
    d = line_states.states.shape[-1]
    flat_states, flat_mask = line_states.states.reshape(-1, d), line_states.mask.reshape(-1)
    k_origin, k_mean = jax.random.split(key)
    out["lines"] = {through: policy_line_counts(agent, params, k, flat_states, flat_mask, num_lines=num_lines,
                                                through=through, origin=line_origin, normalizer=line_normalizer,
                                                max_pieces=line_max_pieces)
                    for through, k in (("origin", k_origin), ("mean", k_mean))}
    return out
