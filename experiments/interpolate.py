"""PURDs along linear interpolation paths between snapshots (Rahn et al. 2023; reference A.6).

    python experiments/interpolate.py --run_dir=runs/td3-hopper-seed0
    python experiments/interpolate.py --run_dir=runs/td3-hopper-seed0 --config.pairs="('0:50000-0:550000',)" \
        --config.num_points=100 --config.num_samples=100 --config.noise_scale=3e-4

Pairs: ``config.pairs`` as ``"seedA:stepA-seedB:stepB"`` strings (B from ``--run_dir_b`` when given, else the same
run), or, when empty, every unordered pair of ``config.steps`` (default: all snapshots) for each seed of
``config.seeds`` (default: all), B's seed being A's (``same_seed``) or the next one. The path is
``(1 - a) A + a B`` (actor and observation statistics), a in linspace(0, 1, num_points); at every point the PURD uses
Gaussian parameter noise of scale ``noise_scale`` on the actor (3e-4 as in the study; 0 with ``num_samples=1``
gives the plain return curve), with the same sample keys at every point (common random numbers).

Writes ``<run_dir>/interpolation.h5`` (layout in :mod:`rlland.landscape.io`: group
``seed<a>_step<sa>__seed<b>_step<sb>`` with ``undiscounted`` / ``discounted`` [num_points, num_samples] and
``alphas``; config as attributes) and ``<run_dir>/figures/interpolation.png``.
"""
import itertools
import os

import jax
import ml_collections
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from rlland import landscape, runs


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        pairs=(),  # "seedA:stepA-seedB:stepB" strings; empty = pairs of `steps` within `seeds`
        steps=(), seeds=(), same_seed=True,
        num_points=100, num_samples=100, noise_scale=3e-4, chunk_size=100, points_chunk_size=0,
        common_random_numbers=True, seed=0,
        eval=dict(deterministic=True, fixed_start=True, episode_length=0, gamma=0.99, num_episodes=1),
    ))


_CONFIG = config_flags.DEFINE_config_dict("config", get_config(), "interpolation settings")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory of policy A (results are written here)",
                               required=True)
_RUN_DIR_B = flags.DEFINE_string("run_dir_b", None, "run directory of policy B (default: --run_dir)")


def parse_pair(text: str) -> tuple[int, int, int, int]:
    try:
        a, b = text.split("-")
        (sa, ta), (sb, tb) = a.split(":"), b.split(":")
        return int(sa), int(ta), int(sb), int(tb)
    except ValueError:
        raise ValueError(f"a pair must look like 'seedA:stepA-seedB:stepB' (e.g. '0:50000-0:550000'), got {text!r}")


def make_pairs(c, run_config, steps_available) -> list[tuple[int, int, int, int]]:
    if c.pairs:
        return [parse_pair(p) for p in c.pairs]
    steps = [int(s) for s in c.steps] or steps_available
    seeds = [int(s) for s in c.seeds] or list(range(run_config.num_seeds - (0 if c.same_seed else 1)))
    return [(s, ta, s if c.same_seed else s + 1, tb) for s in seeds for ta, tb in itertools.combinations(steps, 2)]


def main(argv):
    del argv
    c, run_dir = _CONFIG.value, _RUN_DIR.value
    run_dir_b = _RUN_DIR_B.value or run_dir
    run_config, _, agent = runs.load_run(run_dir)
    pairs = make_pairs(c, run_config, runs.snapshot_steps(run_dir))
    if not pairs:
        raise ValueError("no pairs to interpolate: give config.pairs, or at least two snapshot steps")
    e = c.eval
    rf = landscape.policy_returns(agent, deterministic=e.deterministic, gamma=e.gamma, fixed_start=e.fixed_start,
                                  episode_length=e.episode_length or None, num_episodes=e.num_episodes)

    @jax.jit
    def path(params_a, params_b, key):
        return landscape.interpolation_purd(
            landscape.param_noise(c.noise_scale), rf, params_a, params_b, key, c.num_points, c.num_samples,
            c.chunk_size or None, common_random_numbers=c.common_random_numbers,
            points_chunk_size=c.points_chunk_size or None)

    cache = {}

    def params(rd, seed, step):
        if (rd, step) not in cache:
            cache[(rd, step)] = runs.load_snapshot(rd, step, agent if rd == run_dir else None,
                                                         params_only=True)
        return runs.select_seed(cache[(rd, step)], seed)

    results = {}
    for sa, ta, sb, tb in pairs:
        key = jax.random.PRNGKey(c.seed)
        for x in (sa, ta, sb, tb):
            key = jax.random.fold_in(key, x)
        out = jax.device_get(path(params(run_dir, sa, ta), params(run_dir_b, sb, tb), key))
        name = f"seed{sa}_step{ta}__seed{sb}_step{tb}"
        results[name] = dict(out, attrs={"seed_a": sa, "step_a": ta, "seed_b": sb, "step_b": tb,
                                         "run_dir_b": os.path.abspath(run_dir_b)})
        mean = out["undiscounted"].mean(-1)
        print(f"{name}: mean return at A {mean[0]:.2f}, B {mean[-1]:.2f}, min along the path {mean.min():.2f} "
              f"(a = {out['alphas'][mean.argmin()]:.2f})")
    path_h5 = os.path.join(run_dir, "interpolation.h5")
    landscape.write_interpolation_h5(path_h5, results, {"run_dir": os.path.abspath(run_dir), "config": c.to_dict()})
    print(f"wrote {path_h5}")
    _figure(run_dir, results)


def _figure(run_dir, results):
    from rlland import plotting

    fig, ax = plotting.plt.subplots(figsize=(6, 4))
    for name, out in results.items():
        r = out["undiscounted"]
        line = ax.plot(out["alphas"], r.mean(-1), lw=1.5, label=name)[0]
        ax.fill_between(out["alphas"], np.quantile(r, 0.1, -1), np.quantile(r, 0.9, -1), alpha=0.2,
                        color=line.get_color())
    ax.set(xlabel="a  (policy = (1 - a) A + a B)", ylabel="post-update return (mean, 10-90%)")
    if len(results) <= 10:
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    plotting.save(fig, os.path.join(run_dir, "figures", "interpolation.png"))


if __name__ == "__main__":
    app.run(main)
