"""Peer side of the MinAtar benchmark: a PureJaxRL-style PPO (single file) on a gymnax MinAtar game.

A faithful re-implementation of ``purejaxrl/ppo.py`` (luchris429/purejaxrl, the discrete-action PPO its MinAtar
results use): ``make_train(config) -> train(rng)``, gymnax env with PureJaxRL's ``FlattenObservationWrapper`` and
``LogWrapper``, vmapped over ``NUM_ENVS``; separate actor / critic MLPs (orthogonal init sqrt(2), actor head 0.01,
critic head 1.0), ``distrax.Categorical``; GAE by a reverse scan; ``UPDATE_EPOCHS`` epochs of ``NUM_MINIBATCHES``
shuffled minibatches; clipped surrogate, CLIPPED value loss, entropy bonus; ``optax.chain(clip_by_global_norm,
adam(lr, eps=1e-5))`` with linear annealing; everything in one ``lax.scan`` over ``NUM_UPDATES``. Peer code, not a
dependency of rlland: it runs in ``benchmarks/_peers/rejax`` (gymnax, flax, optax, distrax; see setup_peers.sh).

Protocol (as rejax_offpolicy.py): ``train = jax.jit(jax.vmap(make_train(config)))`` over ``--num_seeds`` keys,
compile apart (``compile_s``), ``--repeats`` timed calls (``run_s``). Prints ONE JSON line to stdout.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from importlib import metadata
from typing import NamedTuple


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="Breakout-MinAtar")
    p.add_argument("--num_seeds", type=int, default=1)
    p.add_argument("--num_envs", type=int, default=64)
    p.add_argument("--num_steps", type=int, default=128)
    p.add_argument("--num_updates", type=int, default=2, help="PPO iterations per timed call")
    p.add_argument("--update_epochs", type=int, default=4)
    p.add_argument("--num_minibatches", type=int, default=8)
    p.add_argument("--hidden", default="64,64")
    p.add_argument("--activation", default="relu")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    a.hidden = tuple(int(h) for h in a.hidden.split(",") if h)
    return a


def make_train(config):
    import distrax
    import flax.linen as nn
    import gymnax
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax.linen.initializers import constant, orthogonal
    from flax.training.train_state import TrainState

    class FlattenObservationWrapper:  # purejaxrl/wrappers.py
        def __init__(self, env):
            self._env = env

        def __getattr__(self, name):
            return getattr(self._env, name)

        def reset(self, key, params=None):
            obs, state = self._env.reset(key, params)
            return jnp.reshape(obs, (-1,)), state

        def step(self, key, state, action, params=None):
            obs, state, reward, done, info = self._env.step(key, state, action, params)
            return jnp.reshape(obs, (-1,)), state, reward, done, info

    class LogEnvState(NamedTuple):
        env_state: object
        episode_returns: jax.Array
        episode_lengths: jax.Array
        returned_episode_returns: jax.Array
        returned_episode_lengths: jax.Array
        timestep: jax.Array

    class LogWrapper:  # purejaxrl/wrappers.py
        def __init__(self, env):
            self._env = env

        def __getattr__(self, name):
            return getattr(self._env, name)

        def reset(self, key, params=None):
            obs, env_state = self._env.reset(key, params)
            return obs, LogEnvState(env_state, 0.0, 0, 0.0, 0, 0)

        def step(self, key, state, action, params=None):
            obs, env_state, reward, done, info = self._env.step(key, state.env_state, action, params)
            new_return = state.episode_returns + reward
            new_length = state.episode_lengths + 1
            state = LogEnvState(env_state, new_return * (1 - done), new_length * (1 - done),
                                state.returned_episode_returns * (1 - done) + new_return * done,
                                state.returned_episode_lengths * (1 - done) + new_length * done,
                                state.timestep + 1)
            info = dict(info, returned_episode_returns=state.returned_episode_returns, returned_episode=done)
            return obs, state, reward, done, info

    act = getattr(nn, config["ACTIVATION"])

    class ActorCritic(nn.Module):  # purejaxrl/ppo.py
        action_dim: int

        @nn.compact
        def __call__(self, x):
            a = x
            for h in config["HIDDEN"]:
                a = act(nn.Dense(h, kernel_init=orthogonal(np.sqrt(2)), bias_init=constant(0.0))(a))
            logits = nn.Dense(self.action_dim, kernel_init=orthogonal(0.01), bias_init=constant(0.0))(a)
            c = x
            for h in config["HIDDEN"]:
                c = act(nn.Dense(h, kernel_init=orthogonal(np.sqrt(2)), bias_init=constant(0.0))(c))
            v = nn.Dense(1, kernel_init=orthogonal(1.0), bias_init=constant(0.0))(c)
            return distrax.Categorical(logits=logits), jnp.squeeze(v, axis=-1)

    class Transition(NamedTuple):
        done: jax.Array
        action: jax.Array
        value: jax.Array
        reward: jax.Array
        log_prob: jax.Array
        obs: jax.Array

    env, env_params = gymnax.make(config["ENV_NAME"])
    env = LogWrapper(FlattenObservationWrapper(env))
    minibatch = config["NUM_ENVS"] * config["NUM_STEPS"] // config["NUM_MINIBATCHES"]

    def linear_schedule(count):
        frac = 1.0 - (count // (config["NUM_MINIBATCHES"] * config["UPDATE_EPOCHS"])) / config["NUM_UPDATES"]
        return config["LR"] * frac

    def train(rng):
        network = ActorCritic(env.action_space(env_params).n)
        rng, _rng = jax.random.split(rng)
        params = network.init(_rng, jnp.zeros(env.observation_space(env_params).shape).reshape(-1))
        tx = optax.chain(optax.clip_by_global_norm(config["MAX_GRAD_NORM"]),
                         optax.adam(learning_rate=linear_schedule, eps=1e-5))
        train_state = TrainState.create(apply_fn=network.apply, params=params, tx=tx)
        rng, _rng = jax.random.split(rng)
        obsv, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(_rng, config["NUM_ENVS"]),
                                                                 env_params)

        def _update_step(runner_state, unused):
            def _env_step(runner_state, unused):
                train_state, env_state, last_obs, rng = runner_state
                rng, _rng = jax.random.split(rng)
                pi, value = network.apply(train_state.params, last_obs)
                action = pi.sample(seed=_rng)
                log_prob = pi.log_prob(action)
                rng, _rng = jax.random.split(rng)
                obsv, env_state, reward, done, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                    jax.random.split(_rng, config["NUM_ENVS"]), env_state, action, env_params)
                return (train_state, env_state, obsv, rng), (Transition(done, action, value, reward, log_prob,
                                                                        last_obs), info)

            runner_state, (traj_batch, info) = jax.lax.scan(_env_step, runner_state, None, config["NUM_STEPS"])
            train_state, env_state, last_obs, rng = runner_state
            _, last_val = network.apply(train_state.params, last_obs)

            def _get_advantages(gae_and_next_value, transition):
                gae, next_value = gae_and_next_value
                delta = transition.reward + config["GAMMA"] * next_value * (1 - transition.done) - transition.value
                gae = delta + config["GAMMA"] * config["GAE_LAMBDA"] * (1 - transition.done) * gae
                return (gae, transition.value), gae

            _, advantages = jax.lax.scan(_get_advantages, (jnp.zeros_like(last_val), last_val), traj_batch,
                                         reverse=True, unroll=16)
            targets = advantages + traj_batch.value

            def _update_epoch(update_state, unused):
                def _update_minbatch(train_state, batch_info):
                    traj, gae, targets = batch_info

                    def _loss_fn(params):
                        pi, value = network.apply(params, traj.obs)
                        log_prob = pi.log_prob(traj.action)
                        value_clipped = traj.value + (value - traj.value).clip(-config["CLIP_EPS"], config["CLIP_EPS"])
                        value_loss = 0.5 * jnp.maximum(jnp.square(value - targets),
                                                       jnp.square(value_clipped - targets)).mean()
                        ratio = jnp.exp(log_prob - traj.log_prob)
                        gae_n = (gae - gae.mean()) / (gae.std() + 1e-8)
                        loss_actor = -jnp.minimum(ratio * gae_n, jnp.clip(ratio, 1.0 - config["CLIP_EPS"],
                                                                          1.0 + config["CLIP_EPS"]) * gae_n).mean()
                        entropy = pi.entropy().mean()
                        return loss_actor + config["VF_COEF"] * value_loss - config["ENT_COEF"] * entropy

                    grads = jax.grad(_loss_fn)(train_state.params)
                    return train_state.apply_gradients(grads=grads), None

                train_state, traj_batch, advantages, targets, rng = update_state
                rng, _rng = jax.random.split(rng)
                batch_size = minibatch * config["NUM_MINIBATCHES"]
                permutation = jax.random.permutation(_rng, batch_size)
                batch = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]),
                                     (traj_batch, advantages, targets))
                shuffled = jax.tree.map(lambda x: jnp.take(x, permutation, axis=0), batch)
                minibatches = jax.tree.map(lambda x: x.reshape([config["NUM_MINIBATCHES"], -1] + list(x.shape[1:])),
                                           shuffled)
                train_state, _ = jax.lax.scan(_update_minbatch, train_state, minibatches)
                return (train_state, traj_batch, advantages, targets, rng), None

            update_state = (train_state, traj_batch, advantages, targets, rng)
            update_state, _ = jax.lax.scan(_update_epoch, update_state, None, config["UPDATE_EPOCHS"])
            train_state, rng = update_state[0], update_state[-1]
            return (train_state, env_state, last_obs, rng), info["returned_episode_returns"].mean()

        rng, _rng = jax.random.split(rng)
        runner_state, metric = jax.lax.scan(_update_step, (train_state, env_state, obsv, _rng), None,
                                            config["NUM_UPDATES"])
        return {"runner_state": runner_state, "metrics": metric}

    return train


def main(argv=None):
    a = parse_args(argv)
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        import jax

        config = {"LR": a.lr, "NUM_ENVS": a.num_envs, "NUM_STEPS": a.num_steps, "NUM_UPDATES": a.num_updates,
                  "UPDATE_EPOCHS": a.update_epochs, "NUM_MINIBATCHES": a.num_minibatches, "GAMMA": 0.99,
                  "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "ENT_COEF": 0.01, "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5,
                  "ACTIVATION": a.activation, "HIDDEN": a.hidden, "ENV_NAME": a.env}
        train = jax.jit(jax.vmap(make_train(config)))
        base = jax.random.PRNGKey(a.seed)
        keys = [jax.random.split(jax.random.fold_in(base, r), a.num_seeds) for r in range(a.repeats)]
        t0 = time.perf_counter()
        compiled = train.lower(keys[0]).compile()
        compile_s = time.perf_counter() - t0
        run_s, out = [], None
        for r in range(a.repeats):
            t0 = time.perf_counter()
            out = jax.block_until_ready(compiled(keys[r]))
            run_s.append(time.perf_counter() - t0)
        steps = a.num_updates * a.num_envs * a.num_steps
        med = statistics.median(run_s)
        finite = all(bool(jax.numpy.isfinite(x).all()) for x in jax.tree.leaves(out["runner_state"][0].params))
        result = {"peer": "purejaxrl-style ppo (benchmarks/peers/purejaxrl_ppo_minatar.py)",
                  "gymnax": metadata.version("gymnax"), "jax": jax.__version__, "flax": metadata.version("flax"),
                  "device": str(jax.devices()[0].platform), "env": a.env, "num_seeds": a.num_seeds,
                  "env_steps_per_seed": steps, "compile_s": round(compile_s, 4), "run_s": [round(x, 4) for x in run_s],
                  "median_run_s": round(med, 4), "env_steps_per_s": a.num_seeds * steps / med,
                  "params_finite": finite, "config": {k: list(v) if isinstance(v, tuple) else v
                                                      for k, v in config.items()}}
    print(json.dumps(result), file=real_stdout, flush=True)


if __name__ == "__main__":
    main()
