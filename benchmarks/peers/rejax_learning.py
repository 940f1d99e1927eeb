"""Peer side of the learning-parity benchmark: rejax TD3 / SAC on a Brax env, eval returns vs env steps per seed.

Runs inside the `benchmarks/_peers/rejax` virtualenv (see setup_peers.sh), never inside rlland's own environment.
Prints exactly ONE JSON line to stdout; every other message goes to stderr. Called by
`benchmarks/learning_parity.py`.

The training run is rejax's own multi-seed recipe, ``jax.jit(jax.vmap(algo.train))(keys)`` with the seed keys
``jax.random.split(PRNGKey(--seed), num_seeds)``, configured exactly as `rejax_offpolicy.py` (same arguments,
same `rejax_config`, same update-count check), except for the evaluation:

* ``eval_freq = --eval_interval`` env steps, ``skip_initial_evaluation=True``: rejax's outer scan evaluates after
  every ``eval_interval`` env steps (rejax then runs ``ceil(T / eval_interval)`` outer steps, so T must be a
  multiple of it; TD3 also needs it a multiple of ``policy_delay * num_envs``);
* the callback runs ``--eval_episodes`` episodes with rejax's own ``rejax.evaluate.evaluate`` (each episode from a
  fresh random reset, up to ``episode_length`` steps or the first ``done``, the terminal step's reward included)
  with the **deterministic** policy: TD3's ``make_act`` (mu(s), no noise) and, for SAC, ``tanh(mean)`` of the
  squashed Gaussian (rejax's own SAC ``make_act`` samples; rlland evaluates tanh(mean), so the peer does too);
  its key is ``fold_in(ts.rng, eval index)`` (rejax's default reuses ``ts.rng``).

Output: ``eval_steps`` [E], ``eval_returns`` [S][E][episodes] (undiscounted), ``compile_s``, ``run_s``, the
update counts (checked against the train state's counters) and the exact config.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from importlib import metadata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rejax_offpolicy as base  # noqa: E402  (the throughput script's argument mapping and update-count replay)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--eval_interval", type=int, required=True, help="env steps between evaluations")
    p.add_argument("--eval_episodes", type=int, default=10)
    own, rest = p.parse_known_args(argv)
    a = base.parse_args(rest)
    a.eval_interval, a.eval_episodes = own.eval_interval, own.eval_episodes
    if a.eval_interval < 1 or a.total_timesteps % a.eval_interval:
        p.error(f"--total_timesteps ({a.total_timesteps}) must be a multiple of --eval_interval ({a.eval_interval})")
    per_iter = a.num_envs * (a.policy_delay if a.algo == "td3" else 1)
    if a.eval_interval % per_iter:
        p.error(f"--eval_interval must be a multiple of {per_iter} (env steps per rejax train iteration)")
    if a.eval_episodes < 1:
        p.error("--eval_episodes must be >= 1")
    return a


def deterministic_act(algo, ts, jnp):
    """act(obs, rng) -> action [action_size] of the policy without exploration: TD3 mu(s) (rejax's ``make_act``
    without its ``squeeze``, which gives a 1-d task a scalar action); SAC tanh(mean), scaled to the box."""
    if algo.__class__.__name__ == "TD3":
        def act(obs, rng):
            del rng
            return algo.actor.apply(ts.actor_ts.params, jnp.expand_dims(obs, 0))[0]

        return act

    def mean_action(module, obs):
        return module.action_loc + jnp.tanh(module._action_dist(obs).mean()) * module.action_scale

    def act(obs, rng):
        del rng
        return algo.actor.apply(ts.actor_ts.params, jnp.expand_dims(obs, 0), method=mean_action)[0]

    return act


def build(a):
    import jax
    from jax import numpy as jnp
    from rejax.evaluate import evaluate

    algo, _ = base.build(a)
    a_eval = dict(eval_freq=a.eval_interval, skip_initial_evaluation=True)

    def eval_callback(algo_, ts, rng):
        key = jax.random.fold_in(rng, ts.global_step)
        _, returns = evaluate(deterministic_act(algo_, ts, jnp), key, algo_.env, algo_.env_params,
                              a.eval_episodes, algo_.env_params.max_steps_in_episode)
        return returns

    return algo.replace(eval_callback=eval_callback, **a_eval), jax


def main(argv=None):
    a = parse_args(argv)
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        algo, jax = build(a)
        train = jax.jit(jax.vmap(algo.train))
        keys = jax.random.split(jax.random.PRNGKey(a.seed), a.num_seeds)
        t0 = time.perf_counter()
        compiled = train.lower(keys).compile()
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ts, returns = jax.block_until_ready(compiled(keys))
        run_s = time.perf_counter() - t0

        # rejax runs T/eval_interval outer steps of eval_interval/(env steps per iteration) iterations: the same
        # iteration count as the throughput script's single outer step, so its replay of the loop applies
        exp = base.expected_updates(a)
        measured = dict(env_steps=int(ts.global_step[0]), critic=int(ts.critic_ts.step[0]),
                        actor=int(ts.actor_ts.step[0]),
                        alpha=int(ts.alpha_ts.step[0]) if a.algo == "sac" else 0)
        for k, v in measured.items():
            if v != exp[k]:
                raise RuntimeError(f"{k}: rejax did {v} per seed, our replay of its loop says {exp[k]}")
        n_evals = a.total_timesteps // a.eval_interval
        cfg = {k: v for k, v in base.rejax_config(a).items() if not k.endswith("_kwargs")}
        cfg.update(eval_freq=a.eval_interval, skip_initial_evaluation=True,
                   actor_hidden_layer_sizes=list(algo.actor.hidden_layer_sizes),
                   critic_hidden_layer_sizes=list(algo.critic.hidden_layer_sizes),
                   activation=algo.actor.activation.__name__,
                   eval_callback=f"rejax.evaluate.evaluate, {a.eval_episodes} episodes, deterministic policy",
                   target_entropy=float(algo.target_entropy) if a.algo == "sac" else None)
        out = {
            "peer": "rejax", "version": metadata.version("rejax"), "jax": jax.__version__,
            "jaxlib": metadata.version("jaxlib"), "brax": metadata.version("brax"),
            "device": str(jax.devices()[0].platform), "algo": a.algo, "env": a.env, "backend": a.backend,
            "num_seeds": a.num_seeds, "seed": a.seed, "total_timesteps": a.total_timesteps,
            "env_steps_per_seed": exp["env_steps"], "compile_s": round(compile_s, 3), "run_s": round(run_s, 3),
            "critic_updates_per_seed": exp["critic"], "actor_updates_per_seed": exp["actor"],
            "eval_steps": [a.eval_interval * (i + 1) for i in range(n_evals)],
            "eval_returns": jax.numpy.asarray(returns).tolist(),  # [S, E, episodes]
            "config": cfg,
        }
    print(json.dumps(out), file=real_stdout, flush=True)


if __name__ == "__main__":
    main()
