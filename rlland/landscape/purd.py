"""Post-update return distributions (PURD): sample many independent updates of one policy, roll each out once.

Source: Rahn et al., "Policy Optimization in a Noisy Neighborhood" (NeurIPS 2023); reference
``landscapes-and-subspaces.md`` A.4 (``eval_policy/experiments/policy_variance.py``).

For a snapshot with parameters theta, sample i (i = 0 .. N-1) is

    k_i = split(key, N)[i],   (k_update_i, k_return_i) = split(k_i)
    theta_i' = update_fn(theta, k_update_i)          e.g. one TD3 actor step on its own minibatch
    R_i      = return_fn(theta_i', k_return_i)        e.g. one deterministic fixed-start episode

and the PURD is {R_i}. ``update_fn`` and ``return_fn`` are plain functions (DESIGN principle 7): the operators in
:mod:`rlland.landscape.operators` build ``update_fn`` from an agent and a snapshot, :func:`policy_returns` builds
``return_fn`` from an agent, and any user function with the same signature works.

Everything is for ONE snapshot of ONE seed; batches of seeds / snapshots / hyperparameters come from ``jax.vmap``
over the snapshot (build the operator INSIDE the vmapped function, so it closes over the traced snapshot)::

    def purd(snapshot, key):
        return post_update_returns(td3_actor_step(agent, snapshot), policy_returns(agent), snapshot.params,
                                   key, num_samples=1000, chunk_size=100)
    returns = jax.jit(jax.vmap(purd))(snapshots, keys)      # dict of [num_seeds, 1000]

Differences from the original code:

* every sample gets its own keys for everything random in it (minibatch, reparameterisation noise, rollout); the
  original broadcast one SAC noise key over a chunk (A.4 QUIRK), fixed here;
* chunking (``chunk_size``) only bounds memory: the keys of sample i do not depend on the chunking, so chunked and
  unchunked results agree;
* both returns are kept side by side: ``undiscounted`` (what LTP / CVaR should use; the original's main dataset was
  the DISCOUNTED one, A.4 QUIRK) and ``discounted`` with the textbook ``sum_t gamma^t r_t`` (the original weighted
  the first reward by gamma, see :mod:`rlland.evaluate`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from rlland.validation import positive_int
import jax
import jax.numpy as jnp

if TYPE_CHECKING:  # rlland.envs pulls in brax: imported where used, so `from rlland import landscape` stays light
    from rlland.envs import Env

UpdateFn = Callable[[Any, jax.Array], Any]  # (params, key) -> params'
ReturnFn = Callable[[Any, jax.Array], Any]  # (params, key) -> rlland.evaluate.EpisodeResult


def _as_returns(result) -> dict[str, jax.Array]:
    if isinstance(result, Mapping) and "undiscounted" in result and "discounted" in result:
        und, disc = result["undiscounted"], result["discounted"]
    elif hasattr(result, "undiscounted") and hasattr(result, "discounted"):
        und, disc = result.undiscounted, result.discounted
    else:
        raise TypeError("return_fn must return an rlland.evaluate.EpisodeResult (or anything with `undiscounted` "
                        f"and `discounted` fields), got {type(result).__name__}")
    und, disc = jnp.asarray(und), jnp.asarray(disc)
    if und.shape != () or disc.shape != ():
        raise ValueError("return_fn must return scalar returns for ONE updated policy, got shapes "
                         f"{und.shape} and {disc.shape}")
    return {"undiscounted": und, "discounted": disc}


def post_update_returns(update_fn: UpdateFn, return_fn: ReturnFn, params, key: jax.Array, num_samples: int,
                        chunk_size: int | None = None) -> dict[str, jax.Array]:
    """PURD samples of ``params`` under ``update_fn``: ``dict(undiscounted=[N], discounted=[N])``.

    Sample i applies ``update_fn(params, k_update_i)`` then ``return_fn(params', k_return_i)`` (formula in the
    module docstring). Samples run vectorised: all ``num_samples`` at once with ``jax.vmap`` when ``chunk_size`` is
    None, else ``jax.lax.map(..., batch_size=chunk_size)`` (a sequential scan over chunks of ``chunk_size`` vmapped
    samples plus one vmapped remainder), so memory grows with ``chunk_size``, not ``num_samples`` (the original's
    ``batch_size``, A.4). ``num_samples`` and ``chunk_size`` are static. Pure and traceable: jit it, vmap it over
    seeds / snapshots.
    """
    num_samples = positive_int("num_samples", num_samples)
    return post_update_returns_at(update_fn, return_fn, params, purd_sample_keys(key, num_samples), chunk_size)


def purd_sample_keys(key: jax.Array, num_samples: int) -> jax.Array:
    """The ``[N, 2]`` sample keys of :func:`post_update_returns`: ``k_i = split(key, N)[i]``. A host loop over
    blocks of these keys (:func:`post_update_returns_at` on ``keys[a:b]``) gives the same samples as one call,
    e.g. to write results or show progress between blocks."""
    return jax.random.split(key, positive_int("num_samples", num_samples))


def post_update_returns_at(update_fn: UpdateFn, return_fn: ReturnFn, params, keys: jax.Array,
                           chunk_size: int | None = None) -> dict[str, jax.Array]:
    """PURD samples for given sample keys ``[B, 2]`` (rows of :func:`purd_sample_keys`): sample ``i`` is
    ``return_fn(update_fn(params, k_update_i), k_return_i)`` with ``(k_update_i, k_return_i) = split(keys[i])``,
    vmapped (``chunk_size`` None) or ``lax.map`` in vmapped chunks. ``dict(undiscounted=[B], discounted=[B])``."""
    if chunk_size is not None:
        chunk_size = positive_int("chunk_size", chunk_size)
        if chunk_size >= keys.shape[0]:
            chunk_size = None
    if not callable(update_fn) or not callable(return_fn):
        raise TypeError("update_fn and return_fn must be callables (params, key) -> ...")

    def one(k):
        k_update, k_return = jax.random.split(k)
        return _as_returns(return_fn(update_fn(params, k_update), k_return))

    if chunk_size is None:
        return jax.vmap(one)(keys)
    return jax.lax.map(one, keys, batch_size=chunk_size)


def evaluation_env(env: "Env", fixed_start: bool = True, episode_length: int | None = None,
                   start_noise: float | None = None) -> "Env":
    """``env`` with the evaluation protocol: fixed start (default; reference A.4: reset noise 0, default pose,
    zero velocity) or random starts, and an optional new time limit. Reuses the env's dynamics; a Brax task is
    rebuilt with ``reset_noise_scale=0`` when a fixed start is asked for (constructor kwargs other than the
    backend are not carried over: pass your own ``Env`` to :func:`policy_returns` for those).

    ``start_noise`` = s (static; the original's ``init_state`` perturbation, A.4): random starts with the task's
    reset noise scaled by s, ``qpos = q0 + U(-s a, s a)``, ``qvel = U(-s a, s a)`` with ``a`` the task's default
    ``reset_noise_scale`` (0.1 halfcheetah / ant, 0.005 hopper / walker2d: the original's vendored Brax had the
    same ``a`` and the factor s as ``init_state_noise_scale``). s = 1 is the training start distribution.
    """
    import inspect

    from rlland.envs import BraxCore, Env

    length = env.episode_length if episode_length is None else positive_int("episode_length", episode_length)
    core = env.core
    if start_noise is not None:
        default = (inspect.signature(type(core.env).__init__).parameters.get("reset_noise_scale")
                   if isinstance(core, BraxCore) else None)
        if default is None or not isinstance(default.default, float):
            raise ValueError(f"start_noise needs a Brax task with a reset_noise_scale, {env.name!r} has none")
        if not float(start_noise) >= 0:
            raise ValueError(f"start_noise must be >= 0, got {start_noise}")
        kwargs = {k: v for k, v in core.env_kwargs.items() if k != "reset_noise_scale"}
        core = BraxCore(env.name, core.env.backend, False, reset_noise_scale=float(start_noise) * default.default,
                        **kwargs)
        return Env(core, env.name, length, False)
    if bool(fixed_start) != env.fixed_start and isinstance(core, BraxCore):
        core = BraxCore(env.name, core.env.backend, fixed_start=bool(fixed_start))
    return Env(core, env.name, length, bool(fixed_start))


def perturbed_policy(agent, params, deterministic: bool = True, action_noise: float = 0.0,
                     param_noise: float = 0.0):
    """``policy(obs, key) -> action`` of ``agent`` with ``params``, optionally perturbed at EVERY step (the
    original's ``action`` and ``parameter`` noise types, reference A.4):

        theta_t = theta + param_noise * N(0, I)  on the actor (a fresh draw per step, every leaf its own key)
        a_t     = act(theta_t, s_t) + action_noise * N(0, I)          (the env clips to [-1, 1])

    Both scales are static Python floats (0 = off, no extra draw).
    """
    from rlland import evaluate
    from rlland.landscape.operators import param_noise as noise_fn

    if not action_noise and not param_noise:
        return evaluate.agent_policy(agent, params, deterministic)
    if action_noise and getattr(getattr(agent.env, "action_space", None), "discrete", False):
        raise ValueError(f"action_noise is Gaussian noise on continuous actions; {agent.env.name!r} has discrete "
                         f"actions (use param_noise)")
    perturb = noise_fn(param_noise) if param_noise else None

    def policy(obs, key):
        k_params, k_act, k_noise = jax.random.split(key, 3)
        p = perturb(params, k_params) if perturb is not None else params
        action = agent.act(p, obs, k_act, deterministic=deterministic)
        if action_noise:
            action = action + action_noise * jax.random.normal(k_noise, jnp.shape(action), jnp.result_type(action))
        return action

    return policy


def policy_returns(agent, env: "Env | None" = None, deterministic: bool = True, gamma: float = 0.99, *,
                   fixed_start: bool = True, episode_length: int | None = None,
                   num_episodes: int = 1, action_noise: float = 0.0, param_noise: float = 0.0,
                   start_noise: float | None = None) -> ReturnFn:
    """``return_fn(params, key) -> EpisodeResult`` evaluating ``agent``'s policy with ``params``.

    Default = the study's protocol (reference A.4): the DETERMINISTIC policy (TD3 mu(s), SAC tanh(mean), PPO
    mean), ONE episode from the FIXED start state, counted until its first end, so the return is a deterministic
    function of the parameters. Options: ``deterministic=False`` (TD3: Gaussian exploration noise of the config;
    SAC / PPO: a policy sample), ``fixed_start=False`` (fresh random starts from the key), ``episode_length``
    (time limit of the evaluation episode), ``num_episodes > 1`` (average of that many independent episodes, e.g.
    the original's ``td3_opt_with_action`` used 10 noisy rollouts per updated policy), ``gamma`` (discounted return
    ``sum_t gamma^t r_t``), and the original's in-rollout perturbations (A.4 noise types; static):
    ``action_noise`` / ``param_noise`` (Gaussian noise on the action / the actor's parameters at every step,
    :func:`perturbed_policy`) and ``start_noise`` (random starts with the task's reset noise scaled by s,
    :func:`evaluation_env`).

    ``env`` is used as given (only ``episode_length`` overrides its limit); when None it is derived from
    ``agent.env`` with :func:`evaluation_env` (``fixed_start``, ``episode_length``, ``start_noise``).
    """
    from rlland import evaluate
    from rlland.envs import Env

    num_episodes = positive_int("num_episodes", num_episodes)
    if env is None:
        env = evaluation_env(agent.env, fixed_start, episode_length, start_noise)
    elif episode_length is not None:
        env = Env(env.core, env.name, positive_int("episode_length", episode_length), env.fixed_start)

    def return_fn(params, key):
        policy = perturbed_policy(agent, params, deterministic, action_noise, param_noise)
        if num_episodes == 1:
            return evaluate.episode(env, policy, key, gamma)
        return jax.tree.map(jnp.mean, evaluate.episodes(env, policy, key, num_episodes, gamma))

    return return_fn
