"""What every agent shares: static vs traced configuration, validation, the optimiser, Polyak averaging, the
learning-rate schedule and the reward transform.

An agent is built from an ml_collections config. Keys listed in ``HPARAMS`` are scalar hyperparameters: they are
copied into ``state.hparams`` as float32 arrays, so ``jax.vmap(agent.init)(keys, hparams)`` sweeps them without a
recompile. Every other key is static (sets a shape or a loop count) and is closed over when the agent is built.

Settings every agent has (peers' names in brackets):

* initialiser scales (static): ``hidden_init_scale``, ``actor_output_scale``, ``critic_output_scale``, the gains of
  the orthogonal initialisers of the hidden layers and of the two networks' output layers (`rlland.networks`).
* learning-rate schedule: ``lr_schedule`` (static, "constant" or "linear") over ``lr_schedule_steps`` env steps
  (static); the traced ``learning_rate`` is the initial value. "linear" (cleanrl's PPO ``anneal_lr``, SB3's
  ``linear_schedule``) uses ``lr_t = learning_rate * max(0, 1 - t / lr_schedule_steps)`` with t the seed's env steps
  when the iteration starts (PPO: before its rollout, so cleanrl's ``frac = 1 - (update - 1) / num_updates``
  exactly when ``lr_schedule_steps`` is the run's total; TD3/SAC: after the iteration's env steps, SB3's
  ``progress_remaining``), for every optimiser of the agent (SAC's temperature included, as in SB3).
  `Agent.hparams_at` gives the hyperparameters in force at a step; the losses and single update steps take
  whatever ``hp`` they are given (the analyses pass ``state.hparams``, i.e. the initial learning rate).
* reward transform (`Agent.reward`): ``s = reward_scaling * r`` (traced ``reward_scaling``, Brax's
  ``reward_scaling``), then, when ``normalize_rewards`` (static; SB3 ``VecNormalize(norm_reward=True)``, purejaxrl
  ``NormalizeVecReward``), ``s / sqrt(var(R) + 1e-8)`` clipped to [-10, 10], var(R) the running variance of every
  env's discounted return of s, ``R_t = gamma * R_{t-1} + s_t`` (reset to 0 after an episode ends), kept in
  ``params["reward_norm"]`` (`rlland.agents.rewards.ReturnNormalizer`); normalising makes the scaling cancel (up to
  the 1e-8). TD3/SAC scale rewards as they enter the replay buffer (the buffer holds s; a ``--force`` change of
  ``reward_scaling`` applies to new transitions) and normalise them in the critic target with the statistics
  current at the update (as SB3's off-policy sampling does); PPO transforms them before GAE, after the rollout's
  returns entered the statistics. Logged episode returns are the env's. Scaling in the loss instead (Brax) was
  measured to break bitwise identity of the default (reward_scaling = 1) TD3/SAC training: XLA compiles the
  critic target differently (parameters 3e-8 apart after 40 updates).
"""
from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from rlland.envs import Env

Params = Any
HParams = dict[str, jax.Array]
LR_SCHEDULES = ("constant", "linear")


def learning_rate_at(learning_rate: jax.Array, env_steps: jax.Array, schedule: str, steps: int) -> jax.Array:
    """The scheduled learning rate after ``env_steps`` env steps: ``learning_rate`` ("constant") or
    ``learning_rate * max(0, 1 - env_steps / steps)`` ("linear"; optax's ``linear_schedule`` to 0 over
    ``steps``). See the module docstring for the sources."""
    if schedule == "constant":
        return learning_rate
    if schedule == "linear":
        return optax.linear_schedule(learning_rate, 0.0, steps)(env_steps)
    raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}; got {schedule!r}")


def polyak(target: Params, online: Params, tau: jax.Array) -> Params:
    """target <- tau * online + (1 - tau) * target."""
    return jax.tree.map(lambda t, o: tau * o + (1.0 - tau) * t, target, online)


def adam(hp: HParams, eps: float = 1e-8, max_grad_norm: jax.Array | None = None, b1: float = 0.9,
         b2: float = 0.999) -> optax.GradientTransformation:
    """Adam with a traced learning rate (and optional global-norm clipping). Built inside traced code: the state
    layout does not depend on the values, so one compiled kernel serves every learning rate. ``b1``, ``b2``: the
    moment decays (Kingma & Ba's defaults, torch's and the studies' 0.9, 0.999; PPO's ``adam_b1`` / ``adam_b2``
    set them, e.g. the representation study's (0.9, 0.9) intervention, reference A.7)."""
    tx = optax.adam(hp["learning_rate"], b1=b1, b2=b2, eps=eps)
    return tx if max_grad_norm is None else optax.chain(optax.clip_by_global_norm(max_grad_norm), tx)


def apply_grads(tx: optax.GradientTransformation, grads: Params, opt_state: Any, params: Params):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def descend(part: str, loss_fn, params: dict, opt_state: dict, tx: optax.GradientTransformation):
    """One optimiser step on ``params[part]`` for ``loss_fn(params) -> (loss, metrics)``."""
    grads, metrics = jax.grad(lambda x: loss_fn(params | {part: x}), has_aux=True)(params[part])
    new, opt = apply_grads(tx, grads, opt_state[part], params[part])
    return params | {part: new}, opt_state | {part: opt}, metrics


class Agent:
    """Base class. Subclasses set ``name``, ``HPARAMS`` and ``POSITIVE`` and implement init / step / act."""

    name: ClassVar[str]
    is_off_policy: ClassVar[bool]  # replay buffer + critic/actor losses (TD3, SAC), or on-policy rollouts (PPO)
    HPARAMS: ClassVar[tuple[str, ...]]  # traced scalar hyperparameters
    POSITIVE: ClassVar[tuple[str, ...]] = ()  # keys (static or traced) that must be > 0
    UNIT: ClassVar[tuple[str, ...]] = ()  # keys that must lie in [0, 1]
    ACTION_KINDS: ClassVar[tuple[str, ...]] = ("continuous",)  # the action spaces (rlland.envs.spaces) it acts in
    # the run's last iteration (0-based), set by the driver (`rlland.train`) before it compiles: the representation
    # diagnostics always log it (`rlland.representation.diagnostics.logs_at`, reference A.4); -1 = not known
    final_iteration: int = -1

    def __init__(self, env: Env, config: ml_collections.ConfigDict):
        kind = getattr(getattr(env, "action_space", None), "kind", "continuous")
        if kind not in self.ACTION_KINDS:
            raise ValueError(f"{self.name}: {getattr(env, 'name', env)!r} has {kind} actions; {self.name} acts in "
                             f"{' or '.join(self.ACTION_KINDS)} action spaces only (PPO does both)")
        self.env = env
        self.config = config
        self._validate()

    def _validate(self) -> None:
        c = self.config
        for k in self.POSITIVE:
            if not c[k] > 0:
                raise ValueError(f"{self.name}: config.{k} must be > 0, got {c[k]}")
        for k in self.UNIT:
            if not 0.0 <= c[k] <= 1.0:
                raise ValueError(f"{self.name}: config.{k} must lie in [0, 1], got {c[k]}")
        for k in ("hidden_sizes",):
            if k in c and (len(c[k]) == 0 or min(c[k]) < 1):
                raise ValueError(f"{self.name}: config.{k} must be a non-empty list of positive widths, got {c[k]}")
        if not c.hidden_init_scale > 0:
            raise ValueError(f"{self.name}: config.hidden_init_scale must be > 0, got {c.hidden_init_scale}")
        for k in ("actor_output_scale", "critic_output_scale"):
            if not (np.isfinite(c[k]) and c[k] >= 0):
                raise ValueError(f"{self.name}: config.{k} must be a finite number >= 0, got {c[k]}")
        if c.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"{self.name}: config.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got "
                             f"{c.lr_schedule!r}")
        if c.lr_schedule != "constant" and (int(c.lr_schedule_steps) != c.lr_schedule_steps
                                            or c.lr_schedule_steps < 1):
            raise ValueError(f"{self.name}: config.lr_schedule={c.lr_schedule!r} needs lr_schedule_steps, a positive "
                             f"int of env steps (e.g. the run's total_steps), got {c.lr_schedule_steps}")
        if not c.reward_scaling > 0:
            raise ValueError(f"{self.name}: config.reward_scaling must be > 0, got {c.reward_scaling}")

    def hparams(self, **overrides) -> HParams:
        """The traced hyperparameters from the config (as float32 scalars), with optional overrides."""
        unknown = set(overrides) - set(self.HPARAMS)
        if unknown:
            raise ValueError(f"{self.name}: unknown hyperparameters {sorted(unknown)}; traced ones: {self.HPARAMS}")
        for k, v in overrides.items():  # concrete values are checked here; traced ones (inside vmap) cannot be
            if k in self.POSITIVE and not isinstance(v, jax.core.Tracer) and not np.all(np.asarray(v) > 0):
                raise ValueError(f"{self.name}: hyperparameter {k} must be > 0, got {v}")
        values = {k: self.config[k] for k in self.HPARAMS} | overrides
        return {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}

    def _resolve_hparams(self, hparams: HParams | None) -> HParams:
        return self.hparams() if hparams is None else {k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()}

    def hparams_at(self, hp: HParams, env_steps: jax.Array) -> HParams:
        """``hp`` with the learning rate the schedule gives after ``env_steps`` env steps (``hp`` itself, the same
        object, for ``lr_schedule="constant"``)."""
        c = self.config
        if c.lr_schedule == "constant":
            return hp
        return hp | {"learning_rate": learning_rate_at(hp["learning_rate"], env_steps, c.lr_schedule,
                                                       int(c.lr_schedule_steps))}

    def schedule_metrics(self, hp: HParams) -> dict:
        """``{"learning_rate": ...}`` when the learning rate is scheduled (logged per chunk), else nothing."""
        return {} if self.config.lr_schedule == "constant" else {"learning_rate": hp["learning_rate"]}

    def scale_reward(self, reward: jax.Array, hp: HParams) -> jax.Array:
        """``reward_scaling * r``: what the replay buffer stores (TD3/SAC) and what PPO's GAE and the return
        statistics see."""
        return hp["reward_scaling"] * reward

    def normalize_reward(self, params: Params, reward: jax.Array) -> jax.Array:
        """A (scaled) reward divided by the running return std and clipped when ``normalize_rewards``, else itself."""
        return params["reward_norm"].normalize(reward) if self.config.normalize_rewards else reward

    def reward(self, params: Params, reward: jax.Array, hp: HParams) -> jax.Array:
        """The reward a loss sees for an env reward ``r`` (module docstring)."""
        return self.normalize_reward(params, self.scale_reward(reward, hp))

    # -- the agent contract (rlland.types.AgentLike): what analyses call -----------------------------------
    def normalize(self, params: Params, obs: jax.Array) -> jax.Array:
        """The network input for raw observations (running statistics when ``normalize_observations``)."""
        return params["obs_norm"].normalize(obs) if self.config.get("normalize_observations", False) else obs

    def actor_layers(self, params: Params) -> list[tuple[jax.Array, jax.Array]]:
        """The actor's hidden (W, b) layers, W (in, out); they act on ``normalize(params, obs)``."""
        return self.actor.layers(params["actor"])

    def actor_activation(self) -> str:
        return self.actor.activation

    def policy_features(self, params: Params, obs: jax.Array) -> dict:
        """The actor's features (``pre``, ``post``, ``hidden_pre``) for raw observations ``obs``."""
        return self.actor.apply(params["actor"], self.normalize(params, obs), with_features=True)[1]

    def value_features(self, params: Params, obs: jax.Array, action: jax.Array | None = None) -> dict:
        """The critic's features for raw observations (and actions, for Q critics: both heads on axis 0)."""
        args = (self.normalize(params, obs),) if action is None else (self.normalize(params, obs), action)
        return self.critic.apply(params["critic"], *args, with_features=True)[1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(env={self.env.name!r})"
