"""Peer side of the training-throughput benchmark: rejax TD3 / SAC on a Brax env.

Runs inside the `benchmarks/_peers/rejax` virtualenv (see setup_peers.sh), never
inside rlland's own environment. Prints exactly ONE JSON line to stdout; every
other message (warnings, brax/jax chatter) goes to stderr.

Protocol (rejax's own multi-seed recipe, README "vmap over seeds"):
    train = jax.jit(jax.vmap(algo.train))
    compiled = train.lower(keys).compile()        # -> compile_s
    for r in range(repeats): compiled(keys_r) + block_until_ready  # -> run_s

Parameter mapping to rejax 0.1.3 fields (read from rejax/algos/{td3,sac,mixins}.py;
full discussion in benchmarks/peers/README.md):
  --num_envs E            -> num_envs
  --batch_size            -> batch_size
  --buffer_size           -> buffer_size
  --learning_starts L     -> fill_buffer (updates run while global_step > L)
  --updates_per_step U    -> num_epochs = U * E (gradient updates per collect of E transitions)
  --hidden 256,256        -> SAC: hidden_layer_sizes; TD3: actor/critic .clone(hidden_layer_sizes=...)
                             (TD3.create_agent hard-codes (64, 64) and rejects an override)
  activation relu         -> SAC: agent_kwargs.activation; TD3: actor_kwargs/critic_kwargs.activation
  --total_timesteps T     -> total_timesteps, eval_freq = T (one outer scan step)
  evaluation              -> skip_initial_evaluation=True and eval_callback replaced by a no-op that
                             returns ts.global_step (rejax's default evaluates 128 full episodes)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import time
from importlib import metadata


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=["td3", "sac"], required=True)
    p.add_argument("--env", default="hopper")
    p.add_argument("--backend", default="spring")
    p.add_argument("--num_seeds", type=int, default=1)
    p.add_argument("--total_timesteps", type=int, required=True)
    p.add_argument("--learning_starts", type=int, default=1000)
    p.add_argument("--num_envs", type=int, default=1)
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--activation", default="relu")
    p.add_argument("--buffer_size", type=int, default=1_000_000)
    p.add_argument("--updates_per_step", type=float, default=1.0)
    p.add_argument("--episode_length", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    # Learning hyperparameters: irrelevant for throughput, set to the usual TD3/SAC values.
    p.add_argument("--learning_rate", type=float, default=3e-4)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--tau", type=float, default=0.005, help="rejax polyak = 1 - tau")
    p.add_argument("--policy_delay", type=int, default=2, help="TD3 only")
    p.add_argument("--exploration_noise", type=float, default=0.1, help="TD3 only")
    p.add_argument("--target_noise", type=float, default=0.2, help="TD3 only")
    p.add_argument("--target_noise_clip", type=float, default=0.5, help="TD3 only")
    a = p.parse_args(argv)
    a.hidden = tuple(int(h) for h in a.hidden.split(",") if h)
    if a.num_seeds < 1 or a.total_timesteps < 1 or a.repeats < 1:
        p.error("num_seeds, total_timesteps and repeats must be >= 1")
    epochs = a.updates_per_step * a.num_envs
    if abs(epochs - round(epochs)) > 1e-9 or round(epochs) < 1:
        p.error("updates_per_step * num_envs must be a positive integer (rejax num_epochs)")
    a.num_epochs = int(round(epochs))
    return a


def rejax_config(a) -> dict:
    """The kwargs passed to rejax's Algorithm.create (all static/traced fields we set)."""
    cfg = dict(
        env=f"brax/{a.env}",
        env_params={"backend": a.backend, "episode_length": a.episode_length},
        num_envs=a.num_envs,
        total_timesteps=a.total_timesteps,
        eval_freq=a.total_timesteps,
        skip_initial_evaluation=True,
        buffer_size=a.buffer_size,
        fill_buffer=a.learning_starts,
        batch_size=a.batch_size,
        num_epochs=a.num_epochs,
        learning_rate=a.learning_rate,
        gamma=a.gamma,
        polyak=1.0 - a.tau,
        target_update_freq=1,
        num_critics=2,
        normalize_observations=False,
        normalize_rewards=False,
    )
    if a.algo == "td3":
        cfg.update(
            policy_delay=a.policy_delay,
            exploration_noise=a.exploration_noise,
            target_noise=a.target_noise,
            target_noise_clip=a.target_noise_clip,
            actor_kwargs={"activation": a.activation},
            critic_kwargs={"activation": a.activation},
        )
    else:
        cfg.update(
            hidden_layer_sizes=a.hidden,
            agent_kwargs={"activation": a.activation},
        )
    return cfg


def expected_updates(a) -> dict:
    """Gradient-update counts per seed, replaying rejax 0.1.3's loop structure exactly.

    TD3 (td3.py): outer scan ceil(T/eval_freq) x fori_loop ceil(eval_freq/(E*policy_delay))
    train_iterations; each = policy_delay x train_critic [collect E transitions at
    pre-collect global_step g; if g > fill_buffer: num_epochs critic updates] then,
    if post-iteration global_step > fill_buffer, num_epochs actor updates (on the last
    critic step's minibatches), then one polyak update of both targets.
    SAC (sac.py): ceil(T/eval_freq) x ceil(eval_freq/E) train_iterations; each collects E
    transitions, then if post-collect global_step > fill_buffer: num_epochs x (actor,
    critic, alpha) updates, then one polyak update of the critic target.
    """
    E, L, K = a.num_envs, a.learning_starts, a.num_epochs
    outer = math.ceil(a.total_timesteps / a.total_timesteps)  # eval_freq = T -> 1
    if a.algo == "td3":
        d = a.policy_delay
        iters = outer * math.ceil(a.total_timesteps / (E * d))
        critic = sum(K for i in range(iters) for j in range(d) if (i * d + j) * E > L)
        actor = sum(K for i in range(iters) if (i + 1) * d * E > L)
        steps = iters * d * E
        return dict(env_steps=steps, critic=critic, actor=actor, alpha=0, train_iterations=iters)
    iters = outer * math.ceil(a.total_timesteps / E)
    n = sum(K for i in range(iters) if (i + 1) * E > L)
    return dict(env_steps=iters * E, critic=n, actor=n, alpha=n, train_iterations=iters)


def build(a):
    import jax
    from flax import linen as nn
    from rejax import SAC, TD3

    cls = TD3 if a.algo == "td3" else SAC
    algo = cls.create(**rejax_config(a))
    if a.algo == "td3":
        # TD3.create_agent passes hidden_layer_sizes=(64, 64) *and* **actor_kwargs, so a
        # hidden_layer_sizes entry in actor_kwargs raises "multiple values for keyword".
        algo = algo.replace(
            actor=algo.actor.clone(hidden_layer_sizes=a.hidden),
            critic=algo.critic.clone(hidden_layer_sizes=a.hidden),
        )
    assert algo.actor.activation is getattr(nn, a.activation)

    # Evaluation off: rejax always calls eval_callback once per outer scan step
    # (here exactly once, at the end). Replace the default (128 full episodes) by a no-op.
    algo = algo.replace(eval_callback=lambda algo_, ts, rng: ts.global_step)
    return algo, jax


def main(argv=None):
    a = parse_args(argv)
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        algo, jax = build(a)
        train = jax.jit(jax.vmap(algo.train))
        base = jax.random.PRNGKey(a.seed)
        keys = [jax.random.split(jax.random.fold_in(base, r), a.num_seeds) for r in range(a.repeats)]

        t0 = time.perf_counter()
        compiled = train.lower(keys[0]).compile()
        compile_s = time.perf_counter() - t0

        run_s, ts = [], None
        for r in range(a.repeats):
            t0 = time.perf_counter()
            ts, evaluation = compiled(keys[r])
            jax.block_until_ready((ts, evaluation))
            run_s.append(time.perf_counter() - t0)

        exp = expected_updates(a)
        measured = dict(
            env_steps=int(ts.global_step[0]),
            critic=int(ts.critic_ts.step[0]),
            actor=int(ts.actor_ts.step[0]),
            alpha=int(ts.alpha_ts.step[0]) if a.algo == "sac" else 0,
        )
        for k, v in measured.items():
            if v != exp[k]:
                raise RuntimeError(f"{k}: rejax did {v} per seed, our replay of its loop says {exp[k]}")

        med = statistics.median(run_s)
        finite = all(bool(jax.numpy.isfinite(x).all()) for x in jax.tree.leaves(
            (ts.actor_ts.params, ts.critic_ts.params)))
        cfg = {k: v for k, v in rejax_config(a).items() if not k.endswith("_kwargs")}
        cfg.update(
            actor_hidden_layer_sizes=list(algo.actor.hidden_layer_sizes),
            critic_hidden_layer_sizes=list(algo.critic.hidden_layer_sizes),
            activation=algo.actor.activation.__name__,
            eval_callback="no-op returning ts.global_step (called once, at the end)",
            critic_updates_per_env_step=a.num_epochs / a.num_envs,
            actor_updates_per_env_step=a.num_epochs / a.num_envs / (a.policy_delay if a.algo == "td3" else 1),
        )
        out = {
            "peer": "rejax",
            "version": metadata.version("rejax"),
            "jax": jax.__version__,
            "jaxlib": metadata.version("jaxlib"),
            "brax": metadata.version("brax"),
            "flax": metadata.version("flax"),
            "device": str(jax.devices()[0].platform),
            "algo": a.algo,
            "env": a.env,
            "backend": a.backend,
            "num_seeds": a.num_seeds,
            "total_timesteps": a.total_timesteps,
            "env_steps_per_seed": exp["env_steps"],
            "compile_s": round(compile_s, 4),
            "run_s": [round(x, 4) for x in run_s],
            "median_run_s": round(med, 4),
            "env_steps_per_s": a.num_seeds * a.total_timesteps / med,
            "updates_per_s": a.num_seeds * exp["critic"] / med,
            "critic_updates_per_seed": exp["critic"],
            "actor_updates_per_seed": exp["actor"],
            "alpha_updates_per_seed": exp["alpha"],
            "params_finite": finite,
            "config": cfg,
        }
    print(json.dumps(out), file=real_stdout, flush=True)


if __name__ == "__main__":
    main()
