"""Peer side of the MAP-Elites throughput benchmark: QDax 0.5.0 MAPElites on a Brax foot-contact task.

Runs inside the `benchmarks/_peers/qdax` virtualenv (see setup_peers.sh), never inside rlland's own
environment. Prints exactly ONE JSON line to stdout; every other message (warnings, brax/jax chatter)
goes to stderr.

Protocol (QDax's own recipe, `MAPElites.scan_update` under `jax.lax.scan`):
    state = jit(vmap(map_elites.init))(population, centroids, keys)     # not timed (generation 0)
    run = jit(vmap(lambda s: lax.scan(map_elites.scan_update, s, (), length=K)))
    compiled = run.lower(state).compile()                               # -> compile_s
    for r in range(repeats): compiled(fresh state r) + block_until_ready  # -> run_s
The 1-seed case is vmapped too (a leading seed axis of size 1), as on rlland's side.

Parameter mapping to QDax 0.5.0 (read from qdax/tasks/brax/v2/{__init__,env_creators}.py,
qdax/core/{map_elites,emitters/standard_emitters,emitters/mutation_operators}.py; full discussion in
benchmarks/README.md, section "MAP-Elites throughput"):
  --env hopper --backend spring   -> qdax.tasks.brax.v2.create("hopper_uni", episode_length, backend=...)
                                     (QDax's own feet-contact task: brax env with debug=True, FeetContactWrapper,
                                     EpisodeWrapper, AutoResetWrapper, StateDescriptorResetWrapper), scored by
                                     create_brax_scoring_fn(..., descriptor_extractor["hopper_uni"])
  --episode_length 100            -> episode_length (scan of 100 env steps per evaluation)
  --random_init off               -> deterministic=True (one fixed start state, QDax's default); on ->
                                     deterministic=False (env.reset with a fresh key per evaluation)
  --hidden 128,128 --activation tanh
                                  -> MLP(layer_sizes=(128, 128, act), activation=tanh, final_activation=tanh,
                                     kernel_init=xavier_uniform) (rlland's QD policy: tanh hidden and output,
                                     Xavier-uniform weights, zero biases)
  --batch_size 256                -> MixingEmitter(batch_size=256)
  --emitter gaussian --sigma s    -> MixingEmitter(mutation_fn=x + s * N(0, I), variation_percentage=0.0):
                                     QDax ships no Gaussian mutation, so it is the one-line mutation_fn below
                                     (= rlland's gaussian_emitter)
  --emitter iso_line              -> MixingEmitter(variation_fn=isoline_variation(iso_sigma, line_sigma),
                                     variation_percentage=1.0) (= rlland's iso_line_emitter)
  --grid 1000                     -> compute_euclidean_centroids((1000,), 0, 1) (QDax looks cells up by
                                     nearest centroid; rlland's grid archive indexes directly; same cells)
  --generations K                 -> scan length K; evaluations per run = K * batch_size per seed
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import sys
import time
from importlib import metadata


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="hopper", help="base Brax env; QDax's task is <env>_uni (feet contact)")
    p.add_argument("--backend", default="spring")
    p.add_argument("--episode_length", type=int, default=100)
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--generations", type=int, required=True, help="K generations per timed run (one lax.scan)")
    p.add_argument("--grid", default="1000", help="grid shape, comma-separated (hopper: 1000)")
    p.add_argument("--hidden", default="128,128")
    p.add_argument("--activation", default="tanh")
    p.add_argument("--emitter", choices=["gaussian", "iso_line"], default="gaussian")
    p.add_argument("--sigma", type=float, default=0.02, help="gaussian emitter")
    p.add_argument("--iso_sigma", type=float, default=0.005, help="iso_line emitter")
    p.add_argument("--line_sigma", type=float, default=0.05, help="iso_line emitter")
    p.add_argument("--random_init", action="store_true",
                   help="a fresh random start state per evaluation (QDax deterministic=False)")
    p.add_argument("--num_seeds", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    a.hidden = tuple(int(h) for h in a.hidden.split(",") if h)
    a.grid = tuple(int(g) for g in a.grid.split(",") if g)
    if min(a.num_seeds, a.generations, a.repeats, a.batch_size, a.episode_length) < 1:
        p.error("num_seeds, generations, repeats, batch_size and episode_length must be >= 1")
    return a


def build(a):
    import jax
    import jax.numpy as jnp
    from flax import linen as nn

    import qdax.tasks.brax.v2 as environments
    from qdax.core.containers.mapelites_repertoire import compute_euclidean_centroids
    from qdax.core.emitters.mutation_operators import isoline_variation
    from qdax.core.emitters.standard_emitters import MixingEmitter
    from qdax.core.map_elites import MAPElites
    from qdax.core.neuroevolution.mdp_utils import init_population_controllers
    from qdax.core.neuroevolution.networks.networks import MLP
    from qdax.tasks.brax.v2.env_creators import create_brax_scoring_fn
    from qdax.utils.metrics import default_qd_metrics

    env_name = f"{a.env}_uni"
    env = environments.create(env_name, episode_length=a.episode_length, backend=a.backend)
    activation = getattr(nn, a.activation)
    policy = MLP(layer_sizes=a.hidden + (env.action_size,), activation=activation,
                 kernel_init=jax.nn.initializers.xavier_uniform(), final_activation=activation)
    scoring_fn = create_brax_scoring_fn(
        env, policy, environments.descriptor_extractor[env_name], jax.random.key(a.seed + 12345),
        episode_length=a.episode_length, deterministic=not a.random_init)

    if a.emitter == "gaussian":
        sigma = a.sigma

        def gaussian_mutation(x, key):
            leaves, treedef = jax.tree.flatten(x)
            keys = jax.random.split(key, len(leaves))
            return jax.tree.unflatten(treedef, [v + sigma * jax.random.normal(k, v.shape, v.dtype)
                                                for v, k in zip(leaves, keys)])

        emitter = MixingEmitter(mutation_fn=gaussian_mutation, variation_fn=None, variation_percentage=0.0,
                                batch_size=a.batch_size)
    else:
        emitter = MixingEmitter(
            mutation_fn=None,
            variation_fn=functools.partial(isoline_variation, iso_sigma=a.iso_sigma, line_sigma=a.line_sigma),
            variation_percentage=1.0, batch_size=a.batch_size)

    metrics_fn = functools.partial(default_qd_metrics,
                                   qd_offset=environments.reward_offset[env_name] * a.episode_length)
    map_elites = MAPElites(scoring_function=scoring_fn, emitter=emitter, metrics_function=metrics_fn)
    lo, hi = env.descriptor_limits
    centroids = compute_euclidean_centroids(grid_shape=a.grid, minval=float(jnp.min(lo)), maxval=float(jnp.max(hi)))
    if centroids.shape != (int(jnp.prod(jnp.array(a.grid))), env.descriptor_length):
        raise ValueError(f"grid {a.grid} does not fit the {env.descriptor_length}-D descriptor of {env_name}")

    def init_one(key):
        k_pop, k_init, k_run = jax.random.split(key, 3)
        population = init_population_controllers(policy, env, a.batch_size, k_pop)
        repertoire, emitter_state, _ = map_elites.init(population, centroids, k_init)
        return repertoire, emitter_state, k_run

    def run_one(carry):
        carry, metrics = jax.lax.scan(map_elites.scan_update, carry, (), length=a.generations)
        return carry, metrics

    info = dict(env_name=env_name, env=env, policy=policy, centroids=centroids)
    return jax, jax.jit(jax.vmap(init_one)), jax.jit(jax.vmap(run_one)), info


def main(argv=None):
    a = parse_args(argv)
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        t0 = time.perf_counter()
        jax, init, run, info = build(a)
        import jax.numpy as jnp
        base = jax.random.key(a.seed)

        def fresh(r):
            keys = jax.random.split(jax.random.fold_in(base, 1000 * a.num_seeds + r), a.num_seeds)
            return jax.block_until_ready(init(keys))

        state = fresh(0)
        init_s = time.perf_counter() - t0  # env construction + init compile + scoring the initial population

        load_before = os.getloadavg()
        t0 = time.perf_counter()
        compiled = run.lower(state).compile()
        compile_s = time.perf_counter() - t0

        run_s, out_state, metrics = [], None, None
        for r in range(a.repeats):
            state = fresh(r + 1)
            t0 = time.perf_counter()
            out_state, metrics = jax.block_until_ready(compiled(state))
            run_s.append(time.perf_counter() - t0)
        load_after = os.getloadavg()

        # checks: K generations per seed ran (metrics have a [seeds, K] axis), the archive is sane
        repertoire = out_state[0]
        qd = {k: jnp.asarray(v) for k, v in metrics.items()}
        if qd["coverage"].shape != (a.num_seeds, a.generations):
            raise RuntimeError(f"metrics shape {qd['coverage'].shape}, expected {(a.num_seeds, a.generations)}")
        fit = repertoire.fitnesses.reshape(a.num_seeds, -1)  # QDax 0.5.0 stores (num_centroids, 1)
        filled = fit > -jnp.inf
        num_elites = [int(x) for x in filled.sum(axis=-1)]
        finite = bool(jnp.all(jnp.where(filled, jnp.isfinite(fit), True)))
        genome_size = sum(int(x.size) for x in jax.tree.leaves(info["policy"].init(
            jax.random.key(0), jnp.zeros((1, info["env"].observation_size)))))
        med = statistics.median(run_s)
        evals = a.num_seeds * a.generations * a.batch_size
        cfg = dict(
            task=info["env_name"], env_factory="qdax.tasks.brax.v2.create (debug=True, FeetContactWrapper, "
            "EpisodeWrapper, AutoResetWrapper, StateDescriptorResetWrapper)",
            scoring="qdax.tasks.brax.v2.env_creators.create_brax_scoring_fn",
            deterministic=not a.random_init,
            descriptor_extractor="get_feet_contact_proportion",
            policy=f"MLP(layer_sizes={list(a.hidden) + [int(info['env'].action_size)]}, activation={a.activation}, "
                   f"final_activation={a.activation}, kernel_init=xavier_uniform)",
            genome_size=genome_size,
            emitter=(f"MixingEmitter(mutation_fn=x + {a.sigma} * N(0, I), variation_percentage=0.0)"
                     if a.emitter == "gaussian" else
                     f"MixingEmitter(isoline_variation(iso_sigma={a.iso_sigma}, line_sigma={a.line_sigma}), "
                     "variation_percentage=1.0)"),
            centroids=f"compute_euclidean_centroids({list(a.grid)}, 0, 1)",
            num_centroids=int(info["centroids"].shape[0]),
            metrics="default_qd_metrics (every generation)",
            loop="jit(vmap(lambda c: lax.scan(MAPElites.scan_update, c, (), length=K)))",
        )
        out = {
            "peer": "qdax",
            "version": metadata.version("qdax"),
            "jax": jax.__version__,
            "jaxlib": metadata.version("jaxlib"),
            "brax": metadata.version("brax"),
            "flax": metadata.version("flax"),
            "device": str(jax.devices()[0].platform),
            "algo": "map_elites",
            "env": a.env,
            "task": info["env_name"],
            "backend": a.backend,
            "num_seeds": a.num_seeds,
            "generations": a.generations,
            "batch_size": a.batch_size,
            "episode_length": a.episode_length,
            "evals_per_seed": a.generations * a.batch_size,
            "init_s": round(init_s, 4),
            "compile_s": round(compile_s, 4),
            "run_s": [round(x, 4) for x in run_s],
            "median_run_s": round(med, 4),
            "evals_per_s": evals / med,
            "env_steps_per_s": evals * a.episode_length / med,
            "num_elites": num_elites,
            "final_coverage_percent": [float(x) for x in qd["coverage"][:, -1]],
            "final_max_fitness": [float(x) for x in qd["max_fitness"][:, -1]],
            "fitness_finite": finite,
            "load_before": load_before,
            "load_after": load_after,
            "config": cfg,
        }
    print(json.dumps(out), file=real_stdout, flush=True)


if __name__ == "__main__":
    main()
