"""TD3 (or SAC) training with the driver's named seed axis (`rlland.seed_axis.seed_cond` gates stay branches)
against a plain vmap (gates become selects that compute both sides).

    .venv/bin/python benchmarks/seed_gate.py td3 1      # algo, seeds

hopper, 3000 iterations, warm-up 1000, buffer 100k, study defaults otherwise; compile apart, median of 3 runs.
"""
import rlland  # noqa: F401  (XLA flags before JAX starts)

import sys
import time

import jax
import numpy as np

from rlland import agents, envs, train


def main(algo: str = "td3", seeds: int = 1, iters: int = 3000):
    env = envs.make("hopper", episode_length=1000)
    cfg = agents.default_config(algo)
    cfg.warmup_steps, cfg.buffer_capacity = 1000, 100_000
    agent = agents.make(algo, env, cfg)
    init = jax.jit(jax.vmap(agent.init))

    def chunk(state):
        state, m = jax.lax.scan(lambda s, _: agent.step(s), state, None, iters)
        return state, train._reduce(m)

    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    for name, fn in (("named seed axis (seed_cond)", train.make_chunk(agent, iters)),
                     ("plain vmap (select)", jax.jit(jax.vmap(chunk), donate_argnums=0))):
        t = time.perf_counter()
        compiled = fn.lower(init(keys)).compile()
        compile_s = time.perf_counter() - t
        runs = []
        for _ in range(3):
            s = jax.block_until_ready(init(keys))
            t = time.perf_counter()
            jax.block_until_ready(compiled(s))
            runs.append(time.perf_counter() - t)
        med = float(np.median(runs))
        print(f"{algo} N={seeds} {name}: compile {compile_s:.1f}s, median {med:.2f}s for {iters} iterations "
              f"({seeds * iters / med:.0f} env steps/s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "td3", int(sys.argv[2]) if len(sys.argv) > 2 else 1)
