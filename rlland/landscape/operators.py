"""Update operators for PURDs: builders that return ``update_fn(params, key) -> params``.

Reference: ``landscapes-and-subspaces.md`` A.4 (noise types ``td3_optimization``, ``sac_optimization``,
``ppo_optimization``, ``init_parameter``) and A.6 (parameter noise along interpolation paths).

A *snapshot* is the training state of ONE seed: an ``OffPolicyState`` / ``PPOState``, or any object or mapping
with the fields an operator reads (``opt_state`` and ``hparams`` always; ``buffer`` for the off-policy steps;
``env_state`` for PPO). The operator closes over what it needs from the snapshot (optimiser state, replay buffer,
env states, hyperparameters); the params it updates come in as the ``params`` argument (normally
``snapshot.params``, but any params dict of the same structure works, e.g. an interpolated one). The params dict
is updated in place of the ACTOR (and, for PPO, of the critic too, as a PPO update does); every other entry
(critic, targets, temperature, observation statistics) is passed through unchanged.

Stateful operators are :class:`UpdateOperator` objects: callable as ``update_fn(params, key)``, and also exposing
``step(params, extra, key) -> (params, extra)`` and the initial ``extra`` (the restored optimiser state, plus the
env states for PPO), so that :func:`k_steps` can chain steps with a CONTINUING optimiser state and env state,
exactly as training would. Builders are marked so that ``k_steps(td3_actor_step, k)`` also works (it returns a
builder).

To sweep a scalar (a learning rate, a noise scale) vmap over it: the builders take traced values.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, Callable

import jax
import jax.numpy as jnp

from rlland.validation import positive_int

_BUILDER_MARK = "_rlland_update_builder"


@dataclasses.dataclass(frozen=True)
class UpdateOperator:
    """A stateful update: ``step(params, extra, key) -> (params, extra)`` started from ``extra``.

    Calling it, ``op(params, key)``, runs one step from the initial ``extra`` and returns the new params: the
    ``update_fn`` contract of :func:`rlland.landscape.post_update_returns`.
    """

    step: Callable[[Any, Any, jax.Array], tuple[Any, Any]]
    extra: Any
    name: str = "update"

    def __call__(self, params, key):
        return self.step(params, self.extra, key)[0]


def _builder(fn):
    setattr(fn, _BUILDER_MARK, True)
    return fn


def _field(snapshot, name: str):
    if isinstance(snapshot, Mapping):
        if name in snapshot:
            return snapshot[name]
    elif hasattr(snapshot, name):
        return getattr(snapshot, name)
    raise TypeError(f"the snapshot must have a {name!r} field (an agent state for ONE seed: OffPolicyState / "
                    f"PPOState, or a mapping with params, opt_state, buffer, env_state, hparams); got "
                    f"{type(snapshot).__name__}")


def _hparams(snapshot, learning_rate, hparams) -> dict:
    hp = dict(_field(snapshot, "hparams"))
    overrides = dict(hparams or {})
    if learning_rate is not None:
        overrides["learning_rate"] = learning_rate
    unknown = set(overrides) - set(hp)
    if unknown:
        raise ValueError(f"unknown hyperparameters {sorted(unknown)}; the snapshot has {sorted(hp)}")
    return hp | {k: jnp.asarray(v, jnp.float32) for k, v in overrides.items()}


def _check_agent(agent, names: tuple[str, ...], what: str) -> None:
    name = getattr(agent, "name", None)
    if name not in names:
        raise ValueError(f"{what} needs a {' or '.join(names)} agent, got {name!r}")


def _actor_step(agent, snapshot, *, learning_rate=None, batch_size: int | None = None,
                hparams: Mapping | None = None, name: str) -> UpdateOperator:
    """One actor Adam step of an off-policy agent (``agent.actor_update``) on a minibatch of the snapshot's
    buffer, critic frozen: what :func:`td3_actor_step` and :func:`sac_actor_step` are."""
    hp = _hparams(snapshot, learning_rate, hparams)
    buffer = _field(snapshot, "buffer")
    batch_size = agent.config.batch_size if batch_size is None else positive_int("batch_size", batch_size)

    def step(params, opt_state, key):
        k_batch, k_noise = jax.random.split(key)
        batch = buffer.sample(k_batch, batch_size)
        params, opt_state, _ = agent.actor_update(params, opt_state, batch, k_noise, hp)
        return params, opt_state

    return UpdateOperator(step, _field(snapshot, "opt_state"), name)


@_builder
def td3_actor_step(agent, snapshot, *, learning_rate=None, batch_size: int | None = None,
                   hparams: Mapping | None = None) -> UpdateOperator:
    """One TD3 actor Adam step (reference A.4 ``td3_optimization``):

        B ~ Uniform(valid items of snapshot.buffer)^batch_size          (with replacement, its own key)
        theta' = Adam(theta, grad_theta -mean_{s in B} min(Q1, Q2)(s, mu_theta(s)); restored actor opt_state)

    The critic is frozen (the snapshot's ONLINE critic, as the original), there is no critic step and no target
    update. The minibatch is drawn from the snapshot's own buffer: its valid items are exactly the data present at
    snapshot time (the original re-created that view by truncating the end-of-training buffer to ``size := ckpt``;
    our snapshot holds its buffer, wrapped around or not). ``learning_rate`` defaults to the snapshot's (the
    original used 3e-4 = the training actor lr); ``batch_size`` (static) to the agent's; ``hparams`` overrides any
    other traced hyperparameter. Unlike the original's stored-empty ``masks`` (A.4 QUIRK) our buffer stores the
    true termination flags, which do not matter for an actor-only step anyway.
    """
    _check_agent(agent, ("td3",), "td3_actor_step")
    return _actor_step(agent, snapshot, learning_rate=learning_rate, batch_size=batch_size, hparams=hparams,
                       name="td3_actor_step")


@_builder
def sac_actor_step(agent, snapshot, *, learning_rate=None, batch_size: int | None = None,
                   hparams: Mapping | None = None) -> UpdateOperator:
    """One SAC actor Adam step (reference A.4 ``sac_optimization``):

        B ~ Uniform(valid items of snapshot.buffer)^batch_size,  eps ~ N(0, I) (reparameterisation)
        theta' = Adam(theta, grad_theta mean_{s in B} (alpha log pi(a~|s) - min(Q1, Q2)(s, a~)))

    with a~ = tanh(mu(s) + sigma(s) eps), the critic and the temperature alpha frozen (alpha = the snapshot's
    ``log_alpha``), and the restored actor opt_state. QUIRK fixed: the original broadcast ONE reparameterisation
    key to every sample of a chunk, so only the minibatch differed; here each sample draws its own noise (its own
    key) as well as its own minibatch. ``learning_rate`` defaults to the snapshot's (the original used the
    training actor lr, whatever ``noise_amount`` said).
    """
    _check_agent(agent, ("sac",), "sac_actor_step")
    return _actor_step(agent, snapshot, learning_rate=learning_rate, batch_size=batch_size, hparams=hparams,
                       name="sac_actor_step")


@_builder
def ppo_update(agent, snapshot, *, learning_rate=None, hparams: Mapping | None = None) -> UpdateOperator:
    """One full PPO iteration from the snapshot (reference A.4 ``ppo_optimization``, corrected):

    a fresh ``unroll_length``-step rollout of the STOCHASTIC policy (with the params being updated, normally the
    snapshot's) in all ``num_envs`` envs from the snapshot's saved env states (autoresets draw fresh start states),
    truncation-aware GAE, then the agent's whole update (``epochs`` x ``num_minibatches`` shuffled minibatch Adam
    steps on actor AND critic, global-norm clip ``max_grad_norm``) from the restored optimiser state, then (if the
    agent normalises observations) the observation-statistics refresh: exactly one ``agent.step`` on params.

    QUIRKS of the original not reproduced: it took ONE gradient step on a single minibatch (the first half of the
    flattened batch) and, through a placeholder optimiser, clipped gradients at global norm 0.1 instead of the
    training value 1.0; its autoresets returned to one cached start state. To study a single minibatch step, build
    an agent with ``epochs=1, num_minibatches=1`` over the same snapshot; the clip is ``hparams={"max_grad_norm":
    0.1}``.
    """
    if agent.is_off_policy:
        raise ValueError(f"ppo_update needs an on-policy agent (rollout / make_batch / update_epochs), got the "
                         f"off-policy {agent.name!r}")
    hp = _hparams(snapshot, learning_rate, hparams)

    def step(params, extra, key):
        opt_state, env_state = extra
        k_roll, k_update = jax.random.split(key)
        env_state, traj, _ = agent.rollout(params, env_state, k_roll)
        batch = agent.make_batch(params, traj, hp)
        params, opt_state, _ = agent.update_epochs(params, opt_state, batch, k_update, hp)
        if agent.config.normalize_observations:
            params = params | {"obs_norm": params["obs_norm"].update(traj.obs)}
        return params, (opt_state, env_state)

    return UpdateOperator(step, (_field(snapshot, "opt_state"), _field(snapshot, "env_state")), "ppo_update")


@_builder
def ppo_minibatch_step(agent, snapshot, *, fraction: float = 0.5, max_grad_norm=0.1, learning_rate=None,
                       hparams: Mapping | None = None) -> UpdateOperator:
    """The original's PPO PURD operator as it ran (reference A.4 ``ppo_optimization``, its QUIRKs kept):

    a fresh ``unroll_length``-step rollout of the stochastic policy in all ``num_envs`` envs from the snapshot's
    env states, GAE over it, then ONE Adam step (restored optimiser state) on actor and critic over the FIRST
    ``fraction`` of the flattened batch (row ``t * num_envs + env``, unshuffled: time steps ``0 .. fraction *
    unroll_length - 1`` of every env; the original: 16384 of 32768 rows), advantages normalised over that
    minibatch, gradients clipped at global norm ``max_grad_norm`` (0.1: the original's placeholder optimiser,
    where training used 1.0). ``fraction`` is static (rows = ``int(fraction * batch)``, at least 1);
    ``max_grad_norm`` traced (None keeps the snapshot's). No observation-statistics refresh (one gradient step is
    not a PPO iteration). :func:`ppo_update` is the corrected operator (a whole PPO iteration).
    """
    if agent.is_off_policy:
        raise ValueError(f"ppo_minibatch_step needs an on-policy agent (rollout / make_batch / minibatch_update), "
                         f"got the off-policy {agent.name!r}")
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    overrides = dict(hparams or {}) | ({} if max_grad_norm is None else {"max_grad_norm": max_grad_norm})
    hp = _hparams(snapshot, learning_rate, overrides)

    def step(params, extra, key):
        opt_state, env_state = extra
        k_roll, k_update = jax.random.split(key)
        env_state, traj, _ = agent.rollout(params, env_state, k_roll)
        batch = agent.make_batch(params, traj, hp)
        rows = max(1, int(float(fraction) * jax.tree.leaves(batch)[0].shape[0]))
        first = jax.tree.map(lambda x: x[:rows], batch)
        params, opt_state, _ = agent.minibatch_update(params, opt_state, first, k_update, hp)
        return params, (opt_state, env_state)

    return UpdateOperator(step, (_field(snapshot, "opt_state"), _field(snapshot, "env_state")),
                          "ppo_minibatch_step")


def no_update(params, key):
    """The identity update ``theta' = theta``: with a perturbed return function (action, per-step parameter or
    start-state noise, :func:`rlland.landscape.policy_returns`) the PURD is the return distribution of the
    snapshot's own policy under that noise (the original's ``action`` / ``parameter`` / ``init_state`` types)."""
    del key
    return params


@_builder
def default_operator(agent, snapshot, **kwargs) -> UpdateOperator:
    """The study's PURD operator for ``agent``: the actor step of an off-policy agent (``agent.is_off_policy``:
    :func:`td3_actor_step` for TD3, :func:`sac_actor_step` for SAC), else :func:`ppo_update` (keyword arguments
    are passed on)."""
    if agent.is_off_policy:
        return _actor_step(agent, snapshot, name=f"{agent.name}_actor_step", **kwargs)
    return ppo_update(agent, snapshot, **kwargs)


def param_noise(scale, part: str | None = "actor") -> Callable[[Any, jax.Array], Any]:
    """Gaussian parameter noise: ``params[part] + scale * N(0, I)`` (reference A.4 ``init_parameter``, the A.6
    interpolation PURD with scale 3e-4). ``part=None`` perturbs every leaf of ``params``.

    QUIRK fixed: the original used the SAME key for every leaf, so leaves of equal shape received identical noise;
    here every leaf gets its own key. ``scale`` may be traced (vmap over it); ``scale = 0`` returns the params
    unchanged.
    """

    def update_fn(params, key):
        target = params if part is None else _part(params, part)
        leaves, treedef = jax.tree.flatten(target)
        keys = jax.random.split(key, max(len(leaves), 1))
        noisy = [x + jnp.asarray(scale, x.dtype) * jax.random.normal(k, jnp.shape(x), x.dtype)
                 for x, k in zip(leaves, keys)]
        noisy = jax.tree.unflatten(treedef, noisy)
        return noisy if part is None else params | {part: noisy}

    return update_fn


def _part(params, part: str):
    if not isinstance(params, Mapping) or part not in params:
        raise TypeError(f"expected a params dict with a {part!r} entry (or pass part=None), got "
                        f"{type(params).__name__}" + (f" with keys {sorted(params)}" if isinstance(params, Mapping)
                                                      else ""))
    return params[part]


def k_steps(update, k: int):
    """``k`` successive updates, each with its own key (``keys = split(key, k)``, step i uses ``keys[i]``), run as
    a ``lax.scan``.

    * ``update`` an :class:`UpdateOperator` (e.g. ``td3_actor_step(agent, snap)``): the optimiser state (and PPO's
      env state) CONTINUES from step to step, as in training; the result is again an :class:`UpdateOperator`.
      For the off-policy actor steps every step draws a fresh minibatch from the frozen snapshot buffer against
      the frozen critic (no critic or target updates in between).
    * ``update`` a builder (``td3_actor_step``, ``sac_actor_step``, ``ppo_update``, or anything made by
      ``k_steps`` of one): returns a builder ``(agent, snapshot, **kw) -> k_steps(update(agent, snapshot, **kw),
      k)``.
    * ``update`` any other ``update_fn(params, key) -> params`` (e.g. :func:`param_noise`): applied ``k`` times.
    """
    if isinstance(k, bool) or not hasattr(k, "__index__") or int(k) < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    k = int(k)
    if getattr(update, _BUILDER_MARK, False):
        return _builder(functools.wraps(update)(lambda *a, **kw: k_steps(update(*a, **kw), k)))
    if not callable(update):
        raise TypeError(f"update must be an update_fn, an UpdateOperator or a builder, got {type(update).__name__}")
    if k == 1:
        return update
    if isinstance(update, UpdateOperator):
        def step(params, extra, key):
            def one(carry, key_i):
                return update.step(*carry, key_i), None

            return jax.lax.scan(one, (params, extra), jax.random.split(key, k))[0]

        return UpdateOperator(step, update.extra, f"{update.name}x{k}")

    def update_fn(params, key):
        return jax.lax.scan(lambda p, key_i: (update(p, key_i), None), params, jax.random.split(key, k))[0]

    return update_fn
