"""Peer side of the training-throughput benchmark: Brax's own PPO trainer on a Brax env.

Runs inside the `benchmarks/_peers/brax_ppo` virtualenv (see setup_peers.sh), never
inside rlland's own environment. Prints exactly ONE JSON line to stdout; every
other message goes to stderr.

`brax.training.agents.ppo.train` takes a Python int seed, jits/pmaps internally
and has host-side effects, so it cannot be vmapped over seeds: N seeds are N
sequential calls. That IS the peer's behaviour and is reported as such.

Timing protocol:
  first_call_s : one warm-up call (seed = --seed). It includes everything a user pays
                 on the first call in a fresh process: env construction, tracing,
                 XLA compilation of reset / training_epoch, and the training run itself.
  run_s[r]     : wall time of repeat r = N sequential train() calls (seeds
                 seed+1+r*N ... seed+(r+1)*N), i.e. "time to train N seeds".
  ppo.train builds fresh closures + a fresh jax.pmap on every call, so JAX's in-memory
  caches miss and every call re-traces AND re-compiles. To measure what the brief
  calls "later calls" (compiled once, then run), the default --jax_cache fresh turns on
  JAX's persistent compilation cache in a new temp dir: the warm-up call fills it and
  later calls load the executables from it (they still re-trace and re-lower, which
  is part of the peer's per-seed cost). --jax_cache off is the out-of-the-box
  behaviour: every seed pays full compilation again. brax's own `training/walltime`
  (time inside training_epoch calls, including that pmap's compile or cache load)
  is reported per call.

Parameter mapping (brax 0.14.2 ppo/train.py; full discussion in README.md):
  one iteration ("training_step") collects  batch_size * num_minibatches * unroll_length
  transitions, as  (batch_size*num_minibatches/num_envs) sequential unrolls of
  num_envs envs x unroll_length steps; the (batch_size*num_minibatches) sequences of
  length unroll_length are shuffled and split into num_minibatches minibatches of
  batch_size sequences, for num_updates_per_batch epochs.
  Ours: num_envs*unroll_length transitions/iteration split into num_minibatches
  => brax batch_size = num_envs // num_minibatches, num_updates_per_batch = epochs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from importlib import metadata


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="hopper")
    p.add_argument("--backend", default="spring")
    p.add_argument("--num_seeds", type=int, default=1)
    p.add_argument("--num_timesteps", type=int, required=True)
    p.add_argument("--num_envs", type=int, default=64)
    p.add_argument("--unroll_length", type=int, default=16)
    p.add_argument("--num_minibatches", type=int, default=4)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--hidden", default="64,64")
    p.add_argument("--activation", default="tanh")
    p.add_argument("--episode_length", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=1,
                   help="repeats of the N-seed sequence after the warm-up call")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jax_cache", choices=["off", "fresh"], default="fresh",
                   help="fresh: enable JAX's persistent compilation cache in a new temp dir, so "
                        "calls after the warm-up load compiled executables instead of recompiling")
    # Learning hyperparameters: irrelevant for throughput, set to common PPO values.
    p.add_argument("--learning_rate", type=float, default=3e-4)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--gae_lambda", type=float, default=0.95)
    p.add_argument("--clip_eps", type=float, default=0.2)
    p.add_argument("--entropy_cost", type=float, default=0.0)
    p.add_argument("--vf_coef", type=float, default=0.5)
    p.add_argument("--max_grad_norm", type=float, default=0.5)
    a = p.parse_args(argv)
    a.hidden = tuple(int(h) for h in a.hidden.split(",") if h)
    if a.num_seeds < 1 or a.num_timesteps < 1 or a.repeats < 1:
        p.error("num_seeds, num_timesteps and repeats must be >= 1")
    if a.num_envs % a.num_minibatches:
        p.error("num_envs must be divisible by num_minibatches (brax batch_size = num_envs / num_minibatches)")
    a.batch_size = a.num_envs // a.num_minibatches
    a.steps_per_iteration = a.batch_size * a.num_minibatches * a.unroll_length
    a.iterations = math.ceil(a.num_timesteps / a.steps_per_iteration)
    a.env_steps_per_seed = a.iterations * a.steps_per_iteration
    return a


def train_kwargs(a) -> dict:
    """Exact keyword arguments given to brax.training.agents.ppo.train (besides env, factory, seed)."""
    return dict(
        num_timesteps=a.num_timesteps,
        episode_length=a.episode_length,
        action_repeat=1,
        num_envs=a.num_envs,
        unroll_length=a.unroll_length,
        batch_size=a.batch_size,
        num_minibatches=a.num_minibatches,
        num_updates_per_batch=a.epochs,
        num_evals=1,          # -> num_evals_after_init = 1: one training_epoch (a single lax.scan)
        run_evals=False,      # no Evaluator rollouts at all; progress_fn gets training metrics
        log_training_metrics=False,
        num_resets_per_eval=0,
        normalize_observations=False,
        reward_scaling=1.0,
        learning_rate=a.learning_rate,
        discounting=a.gamma,
        gae_lambda=a.gae_lambda,
        clipping_epsilon=a.clip_eps,
        entropy_cost=a.entropy_cost,
        vf_loss_coefficient=a.vf_coef,
        max_grad_norm=a.max_grad_norm,
        normalize_advantage=True,
        bootstrap_on_timeout=False,
    )


def main(argv=None):
    a = parse_args(argv)
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        import jax

        cache_dir = None
        if a.jax_cache == "fresh":
            cache_dir = tempfile.mkdtemp(prefix="brax_ppo_jaxcache_")
            jax.config.update("jax_compilation_cache_dir", cache_dir)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

        from brax import envs
        from brax.training.agents.ppo import networks as ppo_networks
        from brax.training.agents.ppo import train as ppo
        from flax import linen

        activation = getattr(linen, a.activation)
        factory = functools.partial(
            ppo_networks.make_ppo_networks,
            policy_hidden_layer_sizes=a.hidden,
            value_hidden_layer_sizes=a.hidden,
            activation=activation,
        )
        kwargs = train_kwargs(a)
        env = envs.get_environment(a.env, backend=a.backend)

        def one_call(seed):
            info = {}

            def progress(step, metrics):
                info["step"] = int(step)
                info["brax_walltime_s"] = float(metrics.get("training/walltime", float("nan")))
                info["brax_sps"] = float(metrics.get("training/sps", float("nan")))

            t0 = time.perf_counter()
            _, params, _ = ppo.train(env, network_factory=factory, seed=seed, progress_fn=progress, **kwargs)
            jax.block_until_ready(params)
            info["wall_s"] = time.perf_counter() - t0
            if info.get("step") != a.env_steps_per_seed:
                raise RuntimeError(f"brax ran {info.get('step')} env steps, expected {a.env_steps_per_seed}")
            return info

        first = one_call(a.seed)
        runs, calls = [], []
        for r in range(a.repeats):
            t0 = time.perf_counter()
            infos = [one_call(a.seed + 1 + r * a.num_seeds + i) for i in range(a.num_seeds)]
            runs.append(time.perf_counter() - t0)
            calls.append(infos)

        med = statistics.median(runs)
        updates_per_seed = a.iterations * a.epochs * a.num_minibatches
        cfg = dict(kwargs)
        cfg.update(
            env=a.env,
            backend=a.backend,
            network_factory="make_ppo_networks",
            policy_hidden_layer_sizes=list(a.hidden),
            value_hidden_layer_sizes=list(a.hidden),
            activation=a.activation,
            distribution_type="tanh_normal (brax default)",
            num_training_steps_per_epoch=a.iterations,
            env_steps_per_iteration=a.steps_per_iteration,
            minibatch_transitions=a.batch_size * a.unroll_length,
            jax_cache=a.jax_cache,
        )
        out = {
            "peer": "brax_ppo",
            "version": metadata.version("brax"),
            "jax": jax.__version__,
            "jaxlib": metadata.version("jaxlib"),
            "flax": metadata.version("flax"),
            "device": str(jax.devices()[0].platform),
            "algo": "ppo",
            "env": a.env,
            "backend": a.backend,
            "num_seeds": a.num_seeds,
            "total_timesteps": a.num_timesteps,
            "env_steps_per_seed": a.env_steps_per_seed,
            "seeds_sequential": True,
            "jax_cache": a.jax_cache,
            "first_call_s": round(first["wall_s"], 4),
            "first_call_brax_walltime_s": round(first["brax_walltime_s"], 4),
            "run_s": [round(x, 4) for x in runs],
            "median_run_s": round(med, 4),
            "per_call_s": [[round(c["wall_s"], 4) for c in infos] for infos in calls],
            "per_call_brax_walltime_s": [[round(c["brax_walltime_s"], 4) for c in infos] for infos in calls],
            "env_steps_per_s": a.num_seeds * a.env_steps_per_seed / med,
            "updates_per_s": a.num_seeds * updates_per_seed / med,
            "updates_per_seed": updates_per_seed,
            "config": cfg,
        }
        if cache_dir is not None:
            shutil.rmtree(cache_dir, ignore_errors=True)
    print(json.dumps(out), file=real_stdout, flush=True)


if __name__ == "__main__":
    main()
