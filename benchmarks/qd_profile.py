"""Where a MAP-Elites generation's time goes (the pieces of benchmarks/qd_throughput.py's setting, each jitted alone).

    .venv/bin/python benchmarks/qd_profile.py

hopper foot contact, episode 100, 128x128 tanh policies, batch 256, grid 1000: median of 5 calls of
``task.score`` (with and without the foot-contact descriptor), the Gaussian emitter, and drawing the emitter's
256 x genome normals alone. Prints milliseconds per call.
"""
import rlland  # noqa: F401  (XLA flags before JAX starts)

import time

import jax
import jax.numpy as jnp
import numpy as np

from rlland import qd

B = 256


def bench(name, f, *args, n=5):
    f = jax.jit(f)
    jax.block_until_ready(f(*args))
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        ts.append(time.perf_counter() - t)
    print(f"{name}: {np.median(ts) * 1e3:.1f} ms", flush=True)


def main():
    task = qd.make_task("hopper", episode_length=100, hidden_sizes=(128, 128))
    genomes = task.init_genomes(jax.random.PRNGKey(0), B)
    bench(f"task.score of {B}", lambda g, k: task.score(g, k), genomes, jax.random.PRNGKey(1))
    contact = task.feet_contact
    object.__setattr__(task, "feet_contact", lambda ps: jnp.zeros(task.descriptor_size))
    bench(f"task.score of {B} without foot contacts", lambda g, k: task.score(g, k), genomes, jax.random.PRNGKey(1))
    object.__setattr__(task, "feet_contact", contact)
    f, d, _ = jax.jit(task.score)(genomes, jax.random.PRNGKey(1))
    archive, _ = qd.Archive.grid((1000,), 0.0, 1.0, jnp.zeros(task.genome_size)).add(genomes, f, d)
    bench(f"gaussian_emitter of {B}", lambda a, k: qd.gaussian_emitter(a, k, B, qd.GaussianHParams(0.02)),
          archive, jax.random.PRNGKey(2))
    bench(f"normals {B} x {task.genome_size}", lambda k: jax.random.normal(k, (B, task.genome_size)),
          jax.random.PRNGKey(3))


if __name__ == "__main__":
    main()
