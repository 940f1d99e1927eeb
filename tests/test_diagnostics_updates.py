"""The representation diagnostics at update resolution (issue 17; reference A.3-A.4): ``updates/...`` arrays of
`rlland.train`, the last update always logged, all-pre-activation norms, cosine drift, end - start differences.

One tiny PPO run through ``train.run`` (probe_observation, 8-8 nets, 4 envs x 8 steps = 32 env steps per iteration,
3 iterations per chunk, 3 chunks; ``log_every=3``: iterations 0, 3, 6 and the last, 8, log) and its kernel
called directly with a traced learning rate of 0 and 3e-3 (a zero learning rate leaves the features unchanged
over an update).
"""
import importlib.util
import shutil
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import networks, representation, train
from rlland.representation import diagnostics
from rlland.sinks import read_h5

_spec = importlib.util.spec_from_file_location("rlland_train_configs_updates",
                                               Path(__file__).resolve().parents[1] / "configs" / "train.py")
train_configs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_configs)

PER_ITER, K, CHUNKS, LOG_EVERY = 32, 3, 3, 3
SMALL = dict(hidden_sizes=(8, 8), num_envs=4, unroll_length=8, num_minibatches=2, epochs=2, learning_rate=3e-3,
             log_every=LOG_EVERY, log_samples=32)


def tiny_config():
    c = train_configs.get_config("ppo/probe_observation")  # observations +-1 (probe_action's are 0)
    c.env.episode_length = 5
    c.agent.update(**SMALL)
    c.update(num_seeds=2, total_steps=PER_ITER * K * CHUNKS, eval_interval=PER_ITER * K, eval_episodes=2,
             checkpoint_interval=PER_ITER * K, keep_checkpoints=3, snapshot_steps=(), progress=False)
    c.wandb.mode = "disabled"
    return c


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train.run(tiny_config(), run_dir=str(tmp_path_factory.mktemp("updates") / "run"))


def test_logged_iterations_include_first_and_last(run):
    logged = [0, 3, 6, 8]  # every LOG_EVERY-th, and the final iteration 8 (not a multiple of 3)
    np.testing.assert_array_equal(run.updates["iteration"], logged)
    np.testing.assert_array_equal(run.updates["steps"], (np.array(logged) + 1) * PER_ITER)
    rank = run.updates["repr/start/actor_post/approximate_rank"]
    # finite on every selected row, iteration 8 included: the agent's gate logged it too (NaN otherwise)
    assert rank.shape == (2, len(logged)) and np.all(np.isfinite(rank))
    # every step metric is kept at update resolution, not only the diagnostics
    assert run.updates["pg_loss"].shape == (2, len(logged))
    # the gate without a known last iteration: multiples only
    np.testing.assert_array_equal(np.flatnonzero(diagnostics.logs_at(np.arange(9), 3)), [0, 3, 6])


def test_chunk_value_is_the_nanmean_of_the_logged_updates(run):
    it = run.updates["iteration"]
    for name in ("repr/start/actor_post/approximate_rank", "repr/drift/critic_all_pre_cosine",
                 "repr/end/actor_all_pre/norm"):
        per_update, chunks = run.updates[name], run.train_metrics[name]
        assert chunks.shape == (2, CHUNKS)
        for c in range(CHUNKS):
            rows = (it >= c * K) & (it < (c + 1) * K)
            np.testing.assert_allclose(per_update[:, rows].mean(1), chunks[:, c], rtol=1e-6)


def test_metrics_h5_holds_the_update_arrays(run):
    h, _ = read_h5(f"{run.run_dir}/metrics.h5")
    np.testing.assert_array_equal(h["updates/iteration"], run.updates["iteration"])
    np.testing.assert_array_equal(h["updates/repr/end/critic_pre/srank"], run.updates["repr/end/critic_pre/srank"])


def test_resumed_run_has_the_same_update_arrays(run, tmp_path, capsys):
    """The last checkpoint removed: the run resumes from the one before and recomputes the last chunk; its
    update arrays equal the uninterrupted run's, bitwise (the history up to the checkpoint is restored)."""
    resumed = tmp_path / "run"
    shutil.copytree(run.run_dir, resumed)
    shutil.rmtree(resumed / "checkpoints" / str(PER_ITER * K * CHUNKS))
    again = train.run(tiny_config(), run_dir=str(resumed))
    assert f"from env step {PER_ITER * K * (CHUNKS - 1)}" in capsys.readouterr().out
    assert sorted(again.updates) == sorted(run.updates)
    for k, v in run.updates.items():
        np.testing.assert_array_equal(again.updates[k], v, err_msg=k)
    with h5py.File(resumed / "metrics.h5") as a, h5py.File(f"{run.run_dir}/metrics.h5") as b:
        np.testing.assert_array_equal(a["updates/repr/start/actor_pre/norm"][()], b["updates/repr/start/actor_pre/norm"][()])


def test_sweep_files_split_update_arrays_by_point(tmp_path):
    history = {"updates/iteration": np.array([0, 2]), "updates/steps": np.array([32, 96]),
               "updates/repr/x": np.arange(8.0).reshape(4, 2), "train/steps": np.array([96])}
    points = [{"learning_rate": 1e-3}, {"learning_rate": 3e-3}]
    (tmp_path / "points" / "0").mkdir(parents=True)
    (tmp_path / "points" / "1").mkdir(parents=True)
    train.write_metrics_h5(str(tmp_path / "metrics.h5"), history, {}, points, [{}, {}])
    whole, _ = read_h5(str(tmp_path / "metrics.h5"))
    assert whole["updates/repr/x"].shape == (2, 2, 2) and whole["updates/iteration"].shape == (2,)
    view, _ = read_h5(str(tmp_path / "points" / "1" / "metrics.h5"))
    np.testing.assert_array_equal(view["updates/repr/x"], [[4.0, 5.0], [6.0, 7.0]])
    np.testing.assert_array_equal(view["updates/iteration"], [0, 2])


@pytest.fixture(scope="module")
def lr_chunk(run):
    """The run's first chunk (its agent, its kernel: a persistent-cache hit) on 2 members with the run's seed-0 key:
    learning rate 0 (traced, so the positivity check does not apply) and 3e-3. Iteration 0 logs."""
    _, agent, _ = train.validate(tiny_config())
    hp = jax.vmap(lambda lr: agent.hparams() | {"learning_rate": lr})(jnp.array([0.0, 3e-3]))
    keys = jnp.repeat(jax.random.fold_in(jax.random.PRNGKey(tiny_config().seed), 0)[None], 2, axis=0)
    state = jax.jit(jax.vmap(agent.init))(keys, hp)
    out = jax.device_get(train.make_chunk(agent, K, per_update=True)(state)[1])
    return {k: v[:, ::LOG_EVERY] for k, v in out[train.UPDATES].items()}


def test_cosine_drift_is_one_without_learning_and_below_one_with(lr_chunk):
    per_update = lr_chunk
    for net in ("actor", "critic"):
        for kind in ("pre", "post", "all_pre"):
            cos, mse = per_update[f"repr/drift/{net}_{kind}_cosine"], per_update[f"repr/drift/{net}_{kind}"]
            np.testing.assert_allclose(cos[0], 1.0, atol=1e-6)
            np.testing.assert_array_equal(mse[0], 0.0)
            assert np.all(cos[1] < 1.0 - 1e-7) and np.all(mse[1] > 0), (net, kind)
    # the end - start differences: exactly 0 without learning (same parameters, same rows), nonzero with
    diff = representation.end_minus_start(per_update)
    assert "repr/diff/actor_all_pre/norm" in diff and "repr/diff/policy_variance" in diff
    assert not any(k.startswith("repr/diff/ratio") for k in diff)  # end-only metrics have no difference
    np.testing.assert_array_equal(diff["repr/diff/actor_pre/norm"][0], 0.0)
    assert np.all(diff["repr/diff/actor_pre/norm"][1] != 0)


def test_feature_cosine_and_all_pre_norms_by_hand():
    a = jnp.array([[1.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    b = jnp.array([[0.0, 2.0], [3.0, 4.0], [0.0, 0.0]])  # cosines 0, 1, 0 (a zero row counts 0, as torch's)
    np.testing.assert_allclose(representation.feature_cosine(a, b), 1.0 / 3.0, rtol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        representation.feature_cosine(a, b[:, :1])
    # the all-pre-activation norms: the concatenated hidden pre-activations [N, 16], by hand
    net = networks.MLP((8, 8), "tanh")
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    _, feats = net.apply(net.init(jax.random.PRNGKey(2), x), x)
    F = np.concatenate([np.asarray(h) for h in feats["hidden_pre"]], axis=1)
    got = diagnostics.feature_summary({"all_pre": representation.pfo_features(feats, True)}, ranks=False)
    np.testing.assert_allclose(got["all_pre/norm"], np.linalg.norm(F, axis=1).mean(), rtol=1e-5)
    np.testing.assert_allclose(got["all_pre/avg"], F.mean(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got["all_pre/std"], F.std(axis=1, ddof=1).mean(), rtol=1e-5)
