"""Peer side of the learning-parity benchmark: Brax's own PPO trainer, eval returns vs env steps per seed.

Runs inside the `benchmarks/_peers/brax_ppo` virtualenv (see setup_peers.sh), never inside rlland's own
environment. Prints exactly ONE JSON line to stdout; every other message goes to stderr. Called by
`benchmarks/learning_parity.py`.

Configured exactly as `brax_ppo.py` (same arguments and `train_kwargs` mapping: one unroll of ``num_envs`` envs x
``unroll_length`` steps per iteration, ``batch_size = num_envs / num_minibatches`` sequences per minibatch,
``num_updates_per_batch = epochs``), except that it evaluates and learns with these settings:

* ``num_evals = T / eval_interval + 1`` (brax evaluates at step 0, then after every ``eval_interval`` env steps;
  T / eval_interval must be a whole number of iterations each), ``run_evals=True``,
  ``num_eval_envs = --eval_episodes``, ``deterministic_eval=True`` (the mode of the policy, as rlland evaluates);
  brax's Evaluator runs one ``episode_length`` episode per eval env from a random reset and sums rewards until
  the first done (``eval/episode_reward``, the mean over the eval envs, is what brax reports per evaluation);
* ``--normalize_observations`` and ``--reward_scaling`` as given (the throughput script fixes them off / 1).

Seeds are sequential ``ppo.train`` calls (seed = --seed + i): brax's trainer cannot be vmapped. JAX's persistent
compilation cache (a fresh temp dir) makes calls after the first load the compiled programs.

Output: ``eval_steps`` [E+1] (0 first), ``eval_returns`` [S][E+1] (brax's per-evaluation mean over the eval
envs), ``per_seed_wall_s``, the exact config.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from importlib import metadata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brax_ppo as base  # noqa: E402  (the throughput script's argument mapping)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--eval_interval", type=int, required=True, help="env steps between evaluations")
    p.add_argument("--eval_episodes", type=int, default=10)
    p.add_argument("--normalize_observations", action="store_true")
    p.add_argument("--reward_scaling", type=float, default=1.0)
    own, rest = p.parse_known_args(argv)
    a = base.parse_args(rest)
    a.eval_interval, a.eval_episodes = own.eval_interval, own.eval_episodes
    a.normalize_observations, a.reward_scaling = own.normalize_observations, own.reward_scaling
    if a.num_timesteps % a.steps_per_iteration or a.eval_interval % a.steps_per_iteration:
        p.error(f"--num_timesteps and --eval_interval must be multiples of {a.steps_per_iteration} "
                "(env steps per brax training step)")
    if a.eval_interval < 1 or a.num_timesteps % a.eval_interval:
        p.error(f"--num_timesteps ({a.num_timesteps}) must be a multiple of --eval_interval ({a.eval_interval})")
    if a.eval_episodes < 1:
        p.error("--eval_episodes must be >= 1")
    a.num_evals = a.num_timesteps // a.eval_interval + 1
    return a


def train_kwargs(a) -> dict:
    kw = base.train_kwargs(a)
    kw.update(num_evals=a.num_evals, run_evals=True, num_eval_envs=a.eval_episodes, deterministic_eval=True,
              normalize_observations=a.normalize_observations, reward_scaling=a.reward_scaling)
    return kw


def main(argv=None):
    a = parse_args(argv)
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        import jax

        cache_dir = tempfile.mkdtemp(prefix="brax_ppo_jaxcache_")
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

        from brax import envs
        from brax.training.agents.ppo import networks as ppo_networks
        from brax.training.agents.ppo import train as ppo
        from flax import linen

        factory = functools.partial(ppo_networks.make_ppo_networks, policy_hidden_layer_sizes=a.hidden,
                                    value_hidden_layer_sizes=a.hidden, activation=getattr(linen, a.activation))
        kwargs = train_kwargs(a)
        env = envs.get_environment(a.env, backend=a.backend)

        steps, returns, walls = None, [], []
        for i in range(a.num_seeds):
            curve = []
            t0 = time.perf_counter()
            ppo.train(env, network_factory=factory, seed=a.seed + i,
                      progress_fn=lambda step, m: curve.append((int(step), float(m["eval/episode_reward"]))),
                      **kwargs)
            walls.append(round(time.perf_counter() - t0, 3))
            print(f"brax ppo seed {a.seed + i}: {walls[-1]} s, final eval {curve[-1][1]:.1f}", flush=True)
            s = [c[0] for c in curve]
            if steps is not None and s != steps:
                raise RuntimeError(f"seed {a.seed + i} evaluated at {s}, seed {a.seed} at {steps}")
            if s[-1] != a.env_steps_per_seed:
                raise RuntimeError(f"brax ran {s[-1]} env steps, expected {a.env_steps_per_seed}")
            steps = s
            returns.append([c[1] for c in curve])
        shutil.rmtree(cache_dir, ignore_errors=True)

        cfg = dict(kwargs)
        cfg.update(env=a.env, backend=a.backend, network_factory="make_ppo_networks",
                   policy_hidden_layer_sizes=list(a.hidden), value_hidden_layer_sizes=list(a.hidden),
                   activation=a.activation, distribution_type="tanh_normal (brax default)",
                   noise_std="scalar, state-independent, init 1.0 (brax default)",
                   kernel_init="lecun_uniform (brax default)", adam_eps="1e-8 (optax default)")
        out = {
            "peer": "brax_ppo", "version": metadata.version("brax"), "jax": jax.__version__,
            "jaxlib": metadata.version("jaxlib"), "device": str(jax.devices()[0].platform), "algo": "ppo",
            "env": a.env, "backend": a.backend, "num_seeds": a.num_seeds, "seed": a.seed,
            "total_timesteps": a.num_timesteps, "env_steps_per_seed": a.env_steps_per_seed,
            "seeds_sequential": True, "per_seed_wall_s": walls, "run_s": round(sum(walls), 3),
            "eval_steps": steps, "eval_returns": returns, "config": cfg,
        }
    print(json.dumps(out), file=real_stdout, flush=True)


if __name__ == "__main__":
    main()
