"""Post-update-CVaR rejection training from a snapshot (Rahn et al. 2023, Algorithm 1; reference A.7).

    python experiments/reject.py --run_dir=runs/td3-hopper-seed0 --config.step=50000
    python experiments/reject.py --run_dir=runs/td3-hopper-seed0 --config.step=50000 --config.heuristic=none \
        --config.seeds="(0, 1)" --config.num_repeats=10 --config.max_steps=40 --config.num_samples=1000

Every selected seed's snapshot is repeated ``num_repeats`` times (independent rejection runs: the study's "reject
seeds") and all of them run as one ``jit(vmap(reject_train))``. Writes ``<run_dir>/reject.h5`` (layout in
:mod:`rlland.landscape.io`: group ``<heuristic>/step_<step>`` with every curve as [num_seeds * num_repeats,
num_checks + 1], seed-major; config as attributes) and ``<run_dir>/figures/reject_step_<step>.png`` (the curves of
every heuristic written so far for that step, so run ``cvar`` and ``none`` to compare).
"""
import functools
import os

import jax
import ml_collections
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from rlland import landscape, runs


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        step=-1,  # snapshot step; < 0 = the first snapshot
        seeds=(), num_repeats=1,
        max_steps=40, check_interval=1, heuristic="cvar", alpha=0.1, threshold=0.5,
        num_samples=1000, chunk_size=100, learning_rate=-1.0,  # PURD actor-step lr; < 0 = the snapshot's
        seed=0,
        eval=dict(deterministic=True, fixed_start=True, episode_length=0, gamma=0.99, num_episodes=1),
    ))


_CONFIG = config_flags.DEFINE_config_dict("config", get_config(), "rejection-training settings")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory written by experiments/train.py", required=True)


def main(argv):
    del argv
    c, run_dir = _CONFIG.value, _RUN_DIR.value
    run_config, _, agent = runs.load_run(run_dir)
    available = runs.snapshot_steps(run_dir)
    step = available[0] if c.step < 0 and available else c.step
    states = runs.load_snapshot(run_dir, step, agent)
    seeds = [int(s) for s in c.seeds] or list(range(run_config.num_seeds))
    if c.num_repeats < 1 or any(not 0 <= s < run_config.num_seeds for s in seeds):
        raise ValueError(f"need num_repeats >= 1 and seeds in [0, {run_config.num_seeds}), got {c.num_repeats}, "
                         f"{seeds}")
    index = np.repeat(np.asarray(seeds), c.num_repeats)
    states = jax.tree.map(lambda x: x[index], states)
    root = jax.random.fold_in(jax.random.PRNGKey(c.seed), step)
    keys = jax.vmap(lambda s, r: jax.random.fold_in(jax.random.fold_in(root, s), r))(
        index, np.tile(np.arange(c.num_repeats), len(seeds)))

    e = c.eval
    rf = landscape.policy_returns(agent, deterministic=e.deterministic, gamma=e.gamma, fixed_start=e.fixed_start,
                                  episode_length=e.episode_length or None, num_episodes=e.num_episodes)
    builder = (functools.partial(landscape.default_operator, learning_rate=c.learning_rate)
               if c.learning_rate >= 0 else landscape.default_operator)
    run = jax.jit(jax.vmap(lambda s, k: landscape.reject_train(
        agent, s, k, c.max_steps, c.check_interval, c.heuristic, c.alpha, c.num_samples, return_fn=rf,
        update_builder=builder, chunk_size=c.chunk_size or None, threshold=c.threshold)[1]))
    curves = jax.device_get(run(states, keys))
    acc = curves["accepted"][:, 1:]
    print(f"step {step}, heuristic {c.heuristic}: accepted {acc.mean():.0%} of {acc.size} checks; "
          f"CVaR_{c.alpha} {curves['cvar'][:, 0].mean():.2f} -> {curves['cvar'][:, -1].mean():.2f}, "
          f"PURD mean {curves['mean'][:, 0].mean():.2f} -> {curves['mean'][:, -1].mean():.2f} (averaged over runs)")
    path = os.path.join(run_dir, "reject.h5")
    name = f"{c.heuristic}/step_{step}"
    landscape.write_reject_h5(path, {name: dict(curves, attrs={"step": step, "seeds": index.tolist(),
                                                               "num_repeats": c.num_repeats})},
                              {"run_dir": os.path.abspath(run_dir), "config": c.to_dict()})
    print(f"wrote {path}")
    _figure(run_dir, path, step)


def _figure(run_dir, path, step):
    from rlland import plotting

    groups, _, _ = landscape.read_h5(path)
    mine = {k.split("/")[0]: v for k, v in groups.items() if k.endswith(f"/step_{step}")}
    fig, axes = plotting.plt.subplots(1, 2, figsize=(10, 4))
    for heuristic, curves in sorted(mine.items()):
        for ax, stat in zip(axes, ("cvar", "mean")):
            plotting.seed_curves(ax, curves["proposals"][0], curves[stat], label=heuristic)
    for ax, stat in zip(axes, ("PURD CVaR (last accepted)", "PURD mean (last accepted)")):
        ax.set(xlabel="proposed updates", ylabel=stat)
        ax.legend(fontsize="small")
    fig.tight_layout()
    plotting.save(fig, os.path.join(run_dir, "figures", f"reject_step_{step}.png"))


if __name__ == "__main__":
    app.run(main)
