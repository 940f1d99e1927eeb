"""Peer side of the MinAtar benchmark: rejax's PPO on a gymnax MinAtar game.

Runs inside the `benchmarks/_peers/rejax` virtualenv (see setup_peers.sh), never inside rlland's own environment.
Prints exactly ONE JSON line to stdout; everything else goes to stderr.

Protocol (rejax's own multi-seed recipe, as rejax_offpolicy.py): ``train = jax.jit(jax.vmap(algo.train))``,
compile apart (``compile_s``), ``--repeats`` timed calls (``run_s``). Parameter mapping to rejax 0.1.3's PPO
(rejax/algos/{ppo,mixins}.py): ``--num_envs`` -> num_envs, ``--num_steps`` -> num_steps, ``--num_minibatches`` ->
num_minibatches, ``--update_epochs`` -> num_epochs, ``--hidden`` / ``--activation`` -> agent_kwargs (rejax's
discrete PPO flattens the image into an MLP), ``total_timesteps = eval_freq = num_updates * num_envs * num_steps``
(one outer scan step), evaluation off (``skip_initial_evaluation`` and a no-op ``eval_callback``; rejax's default
plays 128 full episodes).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from importlib import metadata


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


def main(argv=None):
    a = parse_args(argv)
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        import jax
        from rejax import PPO

        steps = a.num_updates * a.num_envs * a.num_steps
        cfg = dict(env=a.env, num_envs=a.num_envs, num_steps=a.num_steps, num_minibatches=a.num_minibatches,
                   num_epochs=a.update_epochs, learning_rate=a.lr, max_grad_norm=0.5, total_timesteps=steps,
                   eval_freq=steps, skip_initial_evaluation=True, gamma=0.99, gae_lambda=0.95, clip_eps=0.2,
                   ent_coef=0.01, vf_coef=0.5, normalize_observations=False, normalize_rewards=False,
                   agent_kwargs={"activation": a.activation, "hidden_layer_sizes": a.hidden})
        algo = PPO.create(**{k: (dict(v) if isinstance(v, dict) else v) for k, v in cfg.items()})
        algo = algo.replace(eval_callback=lambda algo_, ts, rng: ts.global_step)
        train = jax.jit(jax.vmap(algo.train))
        base = jax.random.PRNGKey(a.seed)
        keys = [jax.random.split(jax.random.fold_in(base, r), a.num_seeds) for r in range(a.repeats)]
        t0 = time.perf_counter()
        compiled = train.lower(keys[0]).compile()
        compile_s = time.perf_counter() - t0
        run_s, ts = [], None
        for r in range(a.repeats):
            t0 = time.perf_counter()
            ts, evaluation = jax.block_until_ready(compiled(keys[r]))
            run_s.append(time.perf_counter() - t0)
        if int(ts.global_step[0]) != steps:
            raise RuntimeError(f"rejax did {int(ts.global_step[0])} env steps per seed, expected {steps}")
        med = statistics.median(run_s)
        finite = all(bool(jax.numpy.isfinite(x).all()) for x in jax.tree.leaves(ts.actor_ts.params))
        cfg["agent_kwargs"] = {"activation": a.activation, "hidden_layer_sizes": list(a.hidden)}
        out = {"peer": "rejax", "version": metadata.version("rejax"), "gymnax": metadata.version("gymnax"),
               "jax": jax.__version__, "flax": metadata.version("flax"), "device": str(jax.devices()[0].platform),
               "env": a.env, "num_seeds": a.num_seeds, "env_steps_per_seed": steps, "compile_s": round(compile_s, 4),
               "run_s": [round(x, 4) for x in run_s], "median_run_s": round(med, 4),
               "env_steps_per_s": a.num_seeds * steps / med, "params_finite": finite, "config": cfg}
    print(json.dumps(out), file=real_stdout, flush=True)


if __name__ == "__main__":
    main()
