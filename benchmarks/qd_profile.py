"""Where a MAP-Elites generation's time goes (the pieces of benchmarks/qd_throughput.py's setting, each jitted alone).

    .venv/bin/python benchmarks/qd_profile.py

hopper foot contact, episode 100, 128x128 tanh policies, batch 256, grid 1000: median of 5 calls of
``task.score`` (with and without the foot-contact descriptor), the Gaussian emitter, drawing the emitter's
256 x genome normals alone, ``Archive.add`` alone (archive donated, as in the scan), and K = 20 generations of
``qd.map_elites_chunk`` per call with the real scoring and with scoring replaced by a constant-cost stand-in
(random fitnesses and descriptors: what the generation costs besides the rollouts). It also counts the copies of
the archive's genotype store in the compiled chunk (a copy per generation would be a full 1000 x genome move).
Prints milliseconds per call (per generation for the chunks).
"""
import rlland  # noqa: F401  (XLA flags before JAX starts)

import functools
import re
import time

import jax
import jax.numpy as jnp
import numpy as np

from rlland import qd

B, K, GRID = 256, 20, 1000


def bench(name, f, *args, n=5, per=1, donate=()):
    f = jax.jit(f, donate_argnums=donate)
    fresh = (lambda: jax.tree.map(jnp.copy, args)) if donate else (lambda: args)
    jax.block_until_ready(f(*fresh()))
    ts = []
    for _ in range(n):
        a = jax.block_until_ready(fresh())
        t = time.perf_counter()
        jax.block_until_ready(f(*a))
        ts.append(time.perf_counter() - t)
    print(f"{name}: {np.median(ts) * 1e3 / per:.1f} ms", flush=True)
    return f


def main():
    task = qd.make_task("hopper", episode_length=100, hidden_sizes=(128, 128))
    genomes = task.init_genomes(jax.random.PRNGKey(0), B)
    bench(f"task.score of {B}", lambda g, k: task.score(g, k), genomes, jax.random.PRNGKey(1))
    contact = task.feet_contact
    object.__setattr__(task, "feet_contact", lambda ps: jnp.zeros(task.descriptor_size))
    bench(f"task.score of {B} without foot contacts", lambda g, k: task.score(g, k), genomes, jax.random.PRNGKey(1))
    object.__setattr__(task, "feet_contact", contact)
    f, d, _ = jax.jit(task.score)(genomes, jax.random.PRNGKey(1))
    archive, _ = qd.Archive.grid((GRID,), 0.0, 1.0, jnp.zeros(task.genome_size)).add(genomes, f, d)
    bench(f"gaussian_emitter of {B}", lambda a, k: qd.gaussian_emitter(a, k, B, qd.GaussianHParams(0.02)),
          archive, jax.random.PRNGKey(2))
    bench(f"normals {B} x {task.genome_size}", lambda k: jax.random.normal(k, (B, task.genome_size)),
          jax.random.PRNGKey(3))
    bench(f"Archive.add of {B} (donated)", lambda a, g, f_, d_: a.add(g, f_ + 1.0, d_)[0], archive, genomes, f, d,
          donate=(0,))

    def stand_in(g, k):  # what a generation costs besides the rollouts: same outputs, no env
        kf, kd = jax.random.split(k)
        return (jax.random.normal(kf, (B,)), jax.random.uniform(kd, (B, task.descriptor_size)), None)

    state, _ = qd.map_elites_init(archive, genomes, jax.random.PRNGKey(4), score_fn=task.score,
                                  emitter_hparams=qd.GaussianHParams(0.02))
    for label, score_fn in (("real scoring", task.score), ("stand-in scoring", stand_in)):
        chunk = functools.partial(qd.map_elites_chunk, num_steps=K, score_fn=score_fn, emitter=qd.gaussian_emitter,
                                  batch_size=B)
        compiled = bench(f"map_elites_chunk of {K} generations, {label}, per generation", chunk, state,
                         jax.random.PRNGKey(5), per=K, donate=(0,))
        hlo = compiled.lower(state, jax.random.PRNGKey(5)).compile().as_text()
        store = f"f32[{GRID},{task.genome_size}]"
        copies = [ln for ln in hlo.splitlines() if re.search(rf"= {re.escape(store)}\S* copy\(", ln)]
        print(f"  copies of the {store} genotype store in the compiled chunk ({label}): {len(copies)}", flush=True)


if __name__ == "__main__":
    main()
