"""The plasticity probe (reference A.5) and its run-level analysis (rlland.representation.analysis) on a tiny
PPO run.

The run: ``train.run`` of PPO on probe_observation (8-8 tanh nets, 8 envs x 8 steps, 2 seeds, 4 iterations) with
the diagnostics logged on every iteration and snapshots at steps 0, 128 and 256; the probe then runs with 2 envs
x 32 steps, 2 epochs of minibatches of 16.
"""
import importlib.util
import os
import pathlib

import jax
import numpy as np
import pytest

from rlland import agents, envs, representation, train
from rlland import sinks
from rlland.representation import analysis

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROBE = dict(num_envs=2, num_steps=32, epochs=2, minibatch_size=16)
SMALL = dict(hidden_sizes=(8, 8), num_envs=8, unroll_length=8, num_minibatches=2, epochs=2, learning_rate=3e-3)
STEPS = (0, 128, 256)


def load_module(name, rel):
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


config_module = load_module("configs_representation", "configs/representation.py")
train_config = load_module("configs_train", "configs/train.py")


@pytest.fixture(scope="module")
def agent():
    return agents.make("ppo", envs.make("probe_observation"), SMALL)


@pytest.fixture(scope="module")
def probe(agent):
    fn = jax.jit(jax.vmap(lambda p, k, hp: representation.plasticity(agent, p, k, hparams=hp, **PROBE)))
    return fn


def test_plasticity_finite_and_vmaps_over_seeds(agent, probe):
    states = jax.vmap(agent.init)(jax.random.split(jax.random.PRNGKey(0), 2))
    out = jax.device_get(probe(states.params, jax.random.split(jax.random.PRNGKey(1), 2), states.hparams))
    assert set(out) == {"policy_loss", "value_loss", "policy_loss_initial", "value_loss_initial",
                        "policy_loss_final", "value_loss_final"}
    for k, v in out.items():
        assert v.shape == (2,) and v.dtype == np.float32 and np.all(np.isfinite(v)), k
        assert np.all(v >= 0), k
    assert out["policy_loss"][0] != out["policy_loss"][1]  # the seeds have their own twins and data
    # it fits (the value; the fresh PPO policy heads output means ~0.01, so the KL starts ~1e-5 and Adam's
    # steps are noise-sized there)
    assert np.all(out["value_loss_final"] < out["value_loss_initial"])


def test_plasticity_of_the_twin_itself_is_zero(agent, probe):
    """A snapshot equal to the twin (same key split as the probe's) fits nothing: every loss is 0 up to rounding.

    Not exactly 0: the snapshot's outputs (the targets) and the twin's are two forward passes of the same weights
    that XLA may compile differently (fusion order depends on the compile mode; a fresh clone with a cold cache
    gave 8.9e-16), so they agree to float32 rounding; a squared error of such differences is far below 1e-10,
    while any real fitting would give losses of order 1e-3 and up (see the test above)."""
    keys = jax.random.split(jax.random.PRNGKey(2), 2)
    twins = jax.vmap(lambda k: agent.init_networks(*jax.random.split(k, 4)[:2]))(keys)
    hp = jax.vmap(lambda _: agent.hparams())(keys)
    out = jax.device_get(probe(twins, keys, hp))
    for k, v in out.items():
        np.testing.assert_array_less(np.abs(v), 1e-10, err_msg=k)


def test_plasticity_needs_a_value_critic():
    td3 = agents.make("td3", envs.make("probe_observation"), dict(hidden_sizes=(4,), buffer_capacity=16,
                                                                  batch_size=4))
    with pytest.raises(TypeError, match="PPO-style"):
        representation.plasticity(td3, {}, jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    c = config_module.train("quick")
    assert c.agent.log_every == 1 and 0 in c.snapshot_steps
    c.env.name, c.env.episode_length = "probe_observation", None
    c.agent.update(SMALL | dict(log_samples=32))
    c.num_seeds, c.total_steps = 2, STEPS[-1]
    c.eval_interval = c.checkpoint_interval = 128
    c.eval_episodes = 2
    c.snapshot_steps = STEPS
    c.wandb.mode, c.progress = "disabled", False
    path = str(tmp_path_factory.mktemp("ppo_run"))
    train.run(c, run_dir=path)
    return path


def test_experiment_on_a_tiny_run(run_dir):
    c = config_module.get_config("quick")
    c.plasticity.update(PROBE)
    path = analysis.analyse_run(c, run_dir, verbose=False)
    d, attrs = analysis.read_h5(path)
    assert list(d["steps"]) == list(STEPS) and list(d["seeds"]) == [0, 1]
    assert attrs["rlland_layout"] == "representation" and attrs["data"] == "snapshot0" and attrs["algo"] == "ppo"
    for k in ("policy_loss", "value_loss", "policy_loss_initial", "value_loss_final"):
        v = d[f"plasticity/{k}"]
        assert v.shape == (2, len(STEPS)) and np.all(np.isfinite(v)), k
    for name in ("representation_seed0.png", "representation_seed1.png", "representation.png"):
        assert os.path.getsize(os.path.join(run_dir, "figures", name)) > 0
    # the training-time curves the figures draw: logged on every iteration, so every chunk mean is finite
    m, _ = sinks.read_h5(os.path.join(run_dir, "metrics.h5"))
    for k in ("repr/start/actor_post/approximate_rank", "repr/start/critic_post/dead_units",
              "repr/drift/actor_pre", "repr/end/kl_k3"):
        assert m[f"train/{k}"].shape == (2, 2) and np.all(np.isfinite(m[f"train/{k}"])), k


def test_config_arguments():
    assert config_module.get_config().plasticity.num_steps == 1000
    assert config_module.get_config("train/ant/pfo").agent.pfo_coef == 1.0
    assert config_module.get_config("train/ant/pfo_all").agent.pfo == "all"
    c = config_module.get_config("train/ant")
    assert c.snapshot_steps[0] == 0 and c.snapshot_steps[-1] == c.total_steps and c.agent.pfo_coef == 0.0
    with pytest.raises(ValueError, match="config argument"):
        config_module.get_config("ant")


def test_analysis_is_resumable(run_dir, monkeypatch):
    """representation.h5 is written after each snapshot; a re-run probes only what is missing or was probed with
    other settings; read errors name the file and the step."""
    c = config_module.get_config("quick")
    c.plasticity.update(PROBE)
    c.figures = False
    path = os.path.join(run_dir, analysis.FILE_NAME)
    if os.path.exists(path):
        os.remove(path)
    probed = []
    real_batches, real_load = analysis.probe_batches, analysis.runs.load_snapshot

    def spy(c, run_dir, run_config, agent, steps, *args):
        probed.append(list(steps))
        return real_batches(c, run_dir, run_config, agent, steps, *args)

    monkeypatch.setattr(analysis, "probe_batches", spy)

    def dies_at_256(run_dir, step, *args, **kwargs):  # the run is killed while loading its last snapshot
        if step == 256:
            raise KeyboardInterrupt
        return real_load(run_dir, step, *args, **kwargs)

    monkeypatch.setattr(analysis.runs, "load_snapshot", dies_at_256)
    with pytest.raises(KeyboardInterrupt):
        analysis.analyse_run(c, run_dir, verbose=False)
    d, attrs = analysis.read_h5(path)  # the snapshots done before the kill are there
    assert list(d["steps"]) == [0, 128] and d["plasticity/policy_loss"].shape == (2, 2)
    first = d["plasticity/policy_loss"].copy()
    monkeypatch.setattr(analysis.runs, "load_snapshot", real_load)
    analysis.analyse_run(c, run_dir, verbose=False)
    assert probed[-1] == [256]  # resumed: only the missing snapshot
    d, _ = analysis.read_h5(path)
    assert list(d["steps"]) == list(STEPS) and np.array_equal(d["plasticity/policy_loss"][:, :2], first)
    analysis.analyse_run(c, run_dir, verbose=False)
    assert probed[-1] == [256] and len(probed) == 2  # everything there: nothing probed
    c.plasticity.epochs = 1  # another setting: every snapshot again, and the table is the new one
    analysis.analyse_run(c, run_dir, verbose=False)
    assert probed[-1] == list(STEPS)
    d, attrs = analysis.read_h5(path)
    assert '"epochs": 1' in attrs["settings"] and not np.array_equal(d["plasticity/policy_loss"][:, :2], first)
    # read errors name the file (and the step)
    datasets, attrs = analysis.read_raw(path)
    del datasets["step_128/plasticity/value_loss"]
    analysis.write_h5(path, datasets, attrs)
    with pytest.raises(ValueError, match=f"{path}: snapshot step 128"):
        analysis.read_h5(path)
    with open(path, "wb") as f:
        f.write(b"not hdf5")
    with pytest.raises(OSError, match=path):
        analysis.analyse_run(c, run_dir, verbose=False)
