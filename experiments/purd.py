"""Post-update return distributions (PURDs) of a run's snapshots (Rahn et al. 2023; reference A.4).

    python experiments/purd.py --run_dir=runs/td3-hopper-seed0
    python experiments/purd.py --run_dir=runs/td3-hopper-seed0 --config.steps="(50000, 550000)" \
        --config.seeds="(0, 1)" --config.num_samples=1000 --config.chunk_size=100 --config.operator=param_noise

For every selected snapshot step, all selected seeds are one ``jit(vmap(...))`` over the seed axis; samples run in
chunks of ``chunk_size``. Writes ``<run_dir>/purd.h5`` (layout in :mod:`rlland.landscape.io`; group
``<operator>/step_<step>`` with ``undiscounted`` / ``discounted`` [num_seeds, num_samples] and ``pre_update``
[num_seeds]; the config as file attributes) and ``<run_dir>/figures/purd_step_<step>.png``.

Operators (``config.operator``): ``default`` (TD3 / SAC actor step, PPO update: the study's), ``td3_actor_step``,
``sac_actor_step``, ``ppo_update``, ``param_noise`` (scale ``noise_scale``); ``k`` > 1 chains k updates.
Sample keys: ``fold_in(fold_in(PRNGKey(config.seed), step), seed)``, so a seed's PURD does not depend on which
other seeds are selected.
"""
import os

import jax
import ml_collections
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from rlland import landscape, runs


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        steps=(),  # snapshot steps, e.g. --config.steps="(50000, 550000)"; empty = every snapshot
        seeds=(),  # seed indices, e.g. --config.seeds="(0, 1)"; empty = every seed
        operator="default", learning_rate=-1.0,  # < 0: the snapshot's learning rate
        noise_scale=3e-4, k=1, num_samples=1000, chunk_size=100, seed=0,
        eval=dict(deterministic=True, fixed_start=True, episode_length=0, gamma=0.99, num_episodes=1),
        alpha=0.1,  # CVaR level of the printed summary
    ))


_CONFIG = config_flags.DEFINE_config_dict("config", get_config(), "PURD settings")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory written by experiments/train.py", required=True)

OPERATORS = {"td3_actor_step": landscape.td3_actor_step, "sac_actor_step": landscape.sac_actor_step,
             "ppo_update": landscape.ppo_update, "default": landscape.default_operator}


def return_fn(agent, c):
    e = c.eval
    return landscape.policy_returns(agent, deterministic=e.deterministic, gamma=e.gamma, fixed_start=e.fixed_start,
                                    episode_length=e.episode_length or None, num_episodes=e.num_episodes)


def update_builder(c):
    """``(agent, snapshot) -> update_fn`` for the configured operator."""
    if c.operator == "param_noise":
        return lambda agent, snap: landscape.k_steps(landscape.param_noise(c.noise_scale), c.k)
    if c.operator not in OPERATORS:
        raise ValueError(f"unknown operator {c.operator!r}; valid: {', '.join(OPERATORS)}, param_noise")
    kwargs = {"learning_rate": c.learning_rate} if c.learning_rate >= 0 else {}
    return lambda agent, snap: landscape.k_steps(OPERATORS[c.operator](agent, snap, **kwargs), c.k)


def select_seeds(states, seeds, num_seeds):
    seeds = list(range(num_seeds)) if not seeds else [int(s) for s in seeds]
    bad = [s for s in seeds if not 0 <= s < num_seeds]
    if bad:
        raise ValueError(f"seeds {bad} are not in the run (it has {num_seeds} seeds)")
    return jax.tree.map(lambda x: x[np.asarray(seeds)], states), seeds


def seed_keys(c, step, seeds):
    root = jax.random.fold_in(jax.random.PRNGKey(c.seed), step)
    return jax.vmap(lambda s: jax.random.fold_in(root, s))(np.asarray(seeds))


def main(argv):
    del argv
    c, run_dir = _CONFIG.value, _RUN_DIR.value
    run_config, _, agent = runs.load_run(run_dir)
    steps = [int(s) for s in c.steps] or runs.snapshot_steps(run_dir)
    if not steps:
        raise ValueError(f"{run_dir} has no snapshots")
    rf, build = return_fn(agent, c), update_builder(c)

    def purd(snap, key):
        out = landscape.post_update_returns(build(agent, snap), rf, snap.params, key, c.num_samples,
                                            c.chunk_size or None)
        return out | {"pre_update": rf(snap.params, key).undiscounted}

    purd = jax.jit(jax.vmap(purd))
    results = {}
    for step in steps:
        states, seeds = select_seeds(runs.load_snapshot(run_dir, step, agent), c.seeds, run_config.num_seeds)
        out = jax.device_get(purd(states, seed_keys(c, step, seeds)))
        results[f"{c.operator}/step_{step}"] = dict(out, attrs={"step": step, "seeds": seeds})
        for i, s in enumerate(seeds):
            r = out["undiscounted"][i]
            print(f"step {step} seed {s}: pre-update {out['pre_update'][i]:.2f}  PURD mean {r.mean():.2f} "
                  f"std {r.std():.2f}  LTP {float(landscape.ltp(r)):.3f}  "
                  f"CVaR_{c.alpha} {float(landscape.cvar(r, c.alpha)):.2f}")
        _figure(run_dir, step, seeds, out)
    path = os.path.join(run_dir, "purd.h5")
    landscape.write_purd_h5(path, results, {"run_dir": os.path.abspath(run_dir), "config": c.to_dict()})
    print(f"wrote {path}")


def _figure(run_dir, step, seeds, out):
    from rlland import plotting

    fig, ax = plotting.plt.subplots(figsize=(6, 4))
    for i, s in enumerate(seeds):
        line = ax.hist(out["undiscounted"][i], bins=50, histtype="step", label=f"seed {s}")[2][0]
        ax.axvline(out["pre_update"][i], ls="--", lw=1, color=line.get_edgecolor())
    ax.set(xlabel="post-update return (undiscounted)", ylabel="samples", title=f"PURD at step {step}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    plotting.save(fig, os.path.join(run_dir, "figures", f"purd_step_{step}.png"))


if __name__ == "__main__":
    app.run(main)
