"""The learning-parity benchmark's matched settings and statistics (benchmarks/learning_parity.py, issue 16 item 1).

No training here: the peer scripts' own argument parsers (stdlib only, importable without the peer venvs) read the
command the benchmark builds, and the values they hand to rejax / brax are checked against the rlland agent
config of the same piece; the bootstrap intervals are checked on numbers whose answer is known.
"""
from __future__ import annotations

import importlib.util
import math
import pathlib
import sys

import numpy as np
import pytest

from rlland import agents, bootstrap, envs

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_module(name, rel):
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))  # the peer scripts import their throughput siblings
parity = load_module("learning_parity", "benchmarks/learning_parity.py")
rejax_learning = load_module("rejax_learning", "benchmarks/peers/rejax_learning.py")
brax_learning = load_module("brax_ppo_learning", "benchmarks/peers/brax_ppo_learning.py")
rejax_base = sys.modules["rejax_offpolicy"]
brax_base = sys.modules["brax_ppo"]


@pytest.fixture(scope="module")
def hopper():
    return envs.make("hopper", backend="spring", episode_length=1000)


@pytest.mark.parametrize("scale", sorted(parity.PRESETS))
@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_rejax_receives_the_rlland_settings(scale, algo, hopper):
    s = parity.piece_settings(scale, "hopper", algo)
    cfg = parity.rlland_agent_config(s, hopper.action_size)
    agent = agents.make(algo, hopper, cfg)  # the keys exist and validate
    a = rejax_learning.parse_args(parity.peer_command(s, 5, 0)[2:])
    rj = rejax_base.rejax_config(a)
    c = agent.config
    assert a.hidden == tuple(c.hidden_sizes) and a.activation == c.activation == "relu"
    assert (rj["batch_size"], rj["buffer_size"], rj["fill_buffer"]) == (c.batch_size, c.buffer_capacity,
                                                                         c.warmup_steps)
    assert rj["num_epochs"] == c.updates_per_step * c.num_envs and rj["num_envs"] == c.num_envs == 1
    assert rj["learning_rate"] == pytest.approx(c.learning_rate) and rj["gamma"] == pytest.approx(c.gamma)
    assert rj["polyak"] == pytest.approx(1 - c.tau)
    assert rj["total_timesteps"] == s["steps"] and a.eval_interval == s["eval_interval"]
    assert a.total_timesteps % a.eval_interval == 0 and a.eval_episodes == s["eval_episodes"]
    assert not rj["normalize_observations"] and not c.normalize_observations
    assert not rj["normalize_rewards"] and not c.normalize_rewards and c.reward_scaling == 1.0
    if algo == "td3":
        assert (rj["policy_delay"], rj["exploration_noise"], rj["target_noise"], rj["target_noise_clip"]) == \
            pytest.approx((c.policy_delay, c.exploration_noise, c.policy_noise, c.noise_clip))
    else:  # rejax SAC: alpha starts at exp(0) = 1 and targets entropy -|A|
        assert c.init_temperature == 1.0 and c.target_entropy == -hopper.action_size


@pytest.mark.parametrize("scale", sorted(parity.PRESETS))
def test_brax_ppo_receives_the_rlland_settings(scale, hopper):
    s = parity.piece_settings(scale, "hopper", "ppo")
    c = agents.make("ppo", hopper, parity.rlland_agent_config(s, hopper.action_size)).config
    a = brax_learning.parse_args(parity.peer_command(s, 5, 0)[2:])
    kw = brax_learning.train_kwargs(a)
    assert a.hidden == tuple(c.hidden_sizes) and a.activation == c.activation == "tanh"
    assert (kw["num_envs"], kw["unroll_length"], kw["num_minibatches"], kw["num_updates_per_batch"]) == \
        (c.num_envs, c.unroll_length, c.num_minibatches, c.epochs)
    # brax's iteration is batch_size * num_minibatches sequences of unroll_length: one unroll of every env
    assert kw["batch_size"] * kw["num_minibatches"] * kw["unroll_length"] == c.num_envs * c.unroll_length
    pairs = dict(learning_rate="learning_rate", discounting="gamma", gae_lambda="gae_lambda",
                 clipping_epsilon="clip_eps", entropy_cost="ent_coef", vf_loss_coefficient="vf_coef",
                 max_grad_norm="max_grad_norm", reward_scaling="reward_scaling")
    for brax_key, ours in pairs.items():
        assert kw[brax_key] == pytest.approx(c[ours]), brax_key
    assert kw["normalize_observations"] and c.normalize_observations and c.adam_eps == 1e-8
    assert kw["normalize_advantage"] and kw["deterministic_eval"] and kw["run_evals"]
    assert kw["num_timesteps"] == s["steps"] == a.env_steps_per_seed
    assert kw["num_evals"] - 1 == s["steps"] // s["eval_interval"] and kw["num_eval_envs"] == s["eval_episodes"]
    assert s["eval_interval"] % (c.num_envs * c.unroll_length) == 0


def test_every_preset_piece_is_consistent():
    for scale in parity.PRESETS:
        for task in parity.TASKS:
            for algo in parity.ALGOS:
                s = parity.piece_settings(scale, task, algo)
                assert s["steps"] == s["eval_interval"] * parity.PRESETS[scale]["eval_points"]
    with pytest.raises(ValueError, match="even"):
        parity.piece_settings("cpu", "hopper", "td3", {"td3": 20_010})
    assert parity.piece_settings("cpu", "hopper", "sac", {"hopper/sac": 40_000})["steps"] == 40_000


def test_bootstrap_intervals():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    m = bootstrap.mean_interval(x, num_resamples=4000, seed=1)
    assert m.estimate == 3.0 and 1.0 <= m.low < 3.0 < m.high <= 5.0
    assert bootstrap.mean_interval(x, seed=1) == bootstrap.mean_interval(x, seed=1)  # reproducible
    same = bootstrap.mean_interval([2.0, 2.0, np.nan, 2.0])  # NaN (a diverged seed) left out
    assert same == (2.0, 2.0, 2.0)
    r = bootstrap.ratio_interval(2 * x, x, num_resamples=4000)
    assert r.estimate == pytest.approx(2.0) and r.low < 2.0 < r.high
    assert bootstrap.ratio_interval([4.0, 4.0], [2.0, 2.0]) == (2.0, 2.0, 2.0)
    undefined = bootstrap.ratio_interval(x, [-1.0, 3.0])  # a resampled denominator mean of -1
    assert undefined.estimate == pytest.approx(3.0) and math.isnan(undefined.low) and math.isnan(undefined.high)
    with pytest.raises(ValueError, match="no finite"):
        bootstrap.mean_interval([np.nan])
    with pytest.raises(ValueError, match="level"):
        bootstrap.mean_interval(x, level=1.0)


def test_met_is_the_peer_interval_or_above():
    def piece(finals):
        return dict(eval_steps=[10, 20], eval_returns=[[[0.0], [f]] for f in finals])

    peer = piece([100.0, 110.0, 120.0])
    assert parity.compare(piece([100.0, 105.0, 110.0]), peer)["met"]  # 105 is inside [100, 120]
    assert parity.compare(piece([500.0, 600.0, 700.0]), peer)["met"]  # above
    assert not parity.compare(piece([10.0, 20.0, 30.0]), peer)["met"]
    brax_like = dict(eval_steps=[0, 10, 20], eval_returns=[[5.0, 0.0, 100.0], [5.0, 0.0, 120.0]])
    steps, ret = parity.curves(brax_like)  # brax's step-0 evaluation is dropped
    assert steps.tolist() == [10, 20] and ret.tolist() == [[0.0, 100.0], [0.0, 120.0]]
