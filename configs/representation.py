"""Representation-collapse study (Moalla et al. 2024; reference ``representation-regions-qd.md`` part A).

Two kinds of config in one file:

* analysis (``experiments/representation.py``, i.e. ``rlland.representation.analysis.analyse_run``):
  ``--config=configs/representation.py`` (the study's plasticity probe: 4 envs x 1000 steps of the initial
  policy, 4 epochs, minibatch 64) or ``:quick`` (a CPU look);
* training (``experiments/train.py``): ``--config=configs/representation.py:train/<env>`` is PPO
  (``configs/train.py:ppo/<env>``) with the representation diagnostics logged on every iteration and snapshots at
  step 0 and every evaluation (31 points, so the plasticity probe has the initial policy and a curve);
  ``train/<env>/pfo`` adds PFO with the study's coefficient 1 (tanh networks; use 10 for relu,
  ``--config.agent.pfo_coef=10``); ``train/<env>/pfo_all`` the all-layers variant. ``train/quick`` is a
  CPU-sized run on inverted_pendulum (the quickstart with diagnostics and a step-0 snapshot).

    python experiments/train.py --config=configs/representation.py:train/ant/pfo --config.num_seeds=5
    python experiments/representation.py --run_dir=runs/representation-ppo-ant-pfo

The diagnostics are logged every ``LOG_EVERY`` = 10 iterations (the default log frequency; ``train/quick``: every
iteration, its chunks are 5 iterations long): ``metrics.h5`` keeps the nanmean over each chunk of 61 iterations, so
each stored point averages 6-7 logged iterations, and the logging costs at most 10% of training throughput
(``benchmarks/diagnostics_overhead.py``). Under the driver's vmap over the named seed axis the every-k gate is a
real branch, so the iterations that do not log pay nothing (see ``rlland.representation.diagnostics``).
"""
import importlib.util
import os

import ml_collections

LOG_EVERY = 10  # the default log frequency of the representation diagnostics (PPO iterations)


def _train_configs():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")
    spec = importlib.util.spec_from_file_location("rlland_configs_train", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def study() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        steps=(),  # snapshot steps to probe, e.g. --config.steps="(0, 1998848)"; empty = every snapshot
        seeds=(),  # seed indices, e.g. --config.seeds="(0, 1)"; empty = every seed of the run
        seed=0,  # probe keys: fold_in(fold_in(PRNGKey(seed), 0x706c6173), seed_index), the same for every step
        plasticity=dict(
            enabled=True,
            num_envs=4, num_steps=1000,  # data: 4 x 1000 = 4000 observations (reference A.5, MuJoCo)
            epochs=4, minibatch_size=64,
            learning_rate=-1.0, max_grad_norm=-1.0,  # < 0: the run's training values
            # data policy: "snapshot0" (the run's step-0 snapshot, the original protocol), "twin" (the freshly
            # initialised target network), "auto" (snapshot0 when the run has a step-0 snapshot, else twin)
            data="auto",
        ),
        snapshot_batch=1,  # snapshots per compiled call (vmapped with the seeds; 0 = all at once); the h5 is written after each
        figures=True,
    ))


def quick() -> ml_collections.ConfigDict:
    c = study()
    c.plasticity.num_steps = 250
    c.plasticity.epochs = 2
    return c


def train(env: str, variant: str = "") -> ml_collections.ConfigDict:
    t = _train_configs()
    c = t.quickstart() if env == "quick" else t.ppo(env)
    per_iter = c.agent.num_envs * c.agent.unroll_length
    if env != "quick":
        c.snapshot_steps = tuple(i * c.eval_interval for i in range(c.total_steps // c.eval_interval + 1))
        c.run_dir = f"runs/representation-ppo-{env}" + (f"-{variant}" if variant else "")
    else:
        c.snapshot_steps = (0,) + tuple(c.snapshot_steps) + (c.total_steps,)
        c.run_dir = "runs/representation-quick" + (f"-{variant}" if variant else "")
    assert all(s % per_iter == 0 for s in c.snapshot_steps)
    c.agent.log_every = 1 if env == "quick" else LOG_EVERY
    c.agent.log_samples = 2048
    if variant == "pfo":
        c.agent.pfo, c.agent.pfo_coef = "last", 1.0
    elif variant == "pfo_all":
        c.agent.pfo, c.agent.pfo_coef = "all", 1.0
    elif variant:
        raise ValueError(f"unknown training variant {variant!r}; valid: '', 'pfo', 'pfo_all'")
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if not arg or arg == "study":
        return study()
    if arg == "quick":
        return quick()
    parts = arg.split("/")
    if parts[0] == "train" and len(parts) in (2, 3):
        return train(parts[1], parts[2] if len(parts) == 3 else "")
    raise ValueError(f"config argument must be study, quick, train/<env> or train/<env>/<pfo|pfo_all>, got {arg!r}")
