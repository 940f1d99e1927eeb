"""Policy-gradient-subspace analysis of a training run (rlland.curvature.analysis and .run_analysis).

A module fixture trains a tiny TD3 run with ``train.run`` (probe_observation, 8-8 nets, 2 seeds, snapshots at two
steps; the 64-slot buffer wraps, so snapshots keep their replay data), and a second one runs the experiment on it
with k = 5. The actor has n = 97 parameters and num_iters = 128 is clipped to 97, so its Lanczos run spans the
whole space and must reproduce the dense Hessian's eigenvalues; the critic (n = 210) uses 128 steps.
"""
import importlib.util
import os
import pathlib
import shutil
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import agents, curvature, envs, train, runs
from rlland.curvature import analysis, layout, run_analysis

ROOT = pathlib.Path(__file__).resolve().parents[1]
_CPU_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
FAST = _CPU_FAST_COMPILE if jax.default_backend() == "cpu" else None
K, STEPS, SEEDS = 5, (64, 128), 2


def load_module(name, rel):
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


subspaces_config = load_module("configs_subspaces", "configs/subspaces.py")
train_config = load_module("configs_train", "configs/train.py")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    c = train_config.base("td3", "probe_observation")
    c.env.episode_length = None
    c.agent.update(hidden_sizes=(8, 8), num_envs=2, batch_size=16, buffer_capacity=64, warmup_steps=16,
                   learning_rate=1e-3)
    c.num_seeds = SEEDS
    c.total_steps = STEPS[-1]
    c.eval_interval = c.checkpoint_interval = STEPS[0]
    c.eval_episodes = 2
    c.snapshot_steps = STEPS
    c.wandb.mode = "disabled"
    c.progress = False
    path = str(tmp_path_factory.mktemp("td3_run"))
    train.run(c, run_dir=path)
    return path


SLQ_ITERS = 12


def analysis_config(**overrides):
    c = subspaces_config.get_config()
    c.k, c.num_iters, c.figure_ks = K, 128, (1, K)
    c.slq.num_iters = SLQ_ITERS
    c.update(overrides)
    return c


@pytest.fixture(scope="module")
def result(run_dir):
    c = analysis_config()
    path = run_analysis.analyse_run(c, run_dir, verbose=False, compiler_options=FAST)
    data, attrs = layout.read_h5(path)
    return c, data, attrs


LOSSES = ("policy_loss", "value_function_loss", "combined_loss")
LEVELS = (1, 2, 5)  # the study's ks clipped to k = 5


def test_h5_has_the_documented_datasets(result):
    c, d, attrs = result
    assert list(d["steps"]) == list(STEPS) and list(d["seeds"]) == [0, 1]
    assert list(d["num_samples"]) == [64, 64]  # the whole (full) buffer
    assert attrs["rlland_layout"] == "subspaces" and attrs["config.k"] == K and attrs["algo"] == "td3"
    assert list(attrs["config.ks"]) == list(curvature.SUBSPACE_KS)
    n = {"policy_loss": 97, "value_function_loss": 210, "combined_loss": 307}
    for loss in LOSSES:
        assert list(d[f"ks/{loss}"]) == list(LEVELS)
        assert int(d[f"num_parameters/{loss}"]) == n[loss]
        assert d[f"eigenvalues/{loss}"].shape == (SEEDS, len(STEPS), K)
        for name in (f"loss/{loss}", f"gradient_norm/{loss}"):
            assert d[name].shape == (SEEDS, len(STEPS)) and np.all(np.isfinite(d[name]))
        for k in LEVELS:
            for gradient in ("true_gradient", "estimated_gradient"):
                assert d[f"gradient_subspace_fraction_{k:03d}evs/{gradient}/{loss}"].shape == (SEEDS, len(STEPS))
            np.testing.assert_allclose(d[f"random_subspace_baseline_{k:03d}evs/{loss}"], k / n[loss], rtol=1e-6)
            for t1 in STEPS:
                assert d[f"overlaps_top{k:03d}_checkpoint{t1:07d}/{loss}"].shape == (SEEDS, len(STEPS))
        assert f"gradient_subspace_fraction_010evs/true_gradient/{loss}" not in d  # k = 10 > 5 eigenvectors
    for loss in LOSSES[:2]:
        assert d[f"eigenvalue_residuals/{loss}"].shape == (SEEDS, len(STEPS), K)
        assert d[f"eigenvalue_converged/{loss}"].shape == (SEEDS, len(STEPS), K)
        assert d[f"num_matvecs/{loss}"].shape == (SEEDS, len(STEPS))
    assert "eigenvalue_converged/combined_loss" not in d and "num_matvecs/combined_loss" not in d
    assert attrs["rlland_layout_version"] == 3 and attrs["settings"] == layout.settings(c, [0, 1])
    assert attrs["config.losses"] == "study" and attrs["config.low_sample"]
    # the study's four fraction variants (B.3, B.5 names), the low-sample eigenvalues, the SLQ quadrature
    for loss in LOSSES:
        assert d[f"low_sample/eigenvalues/{loss}"].shape == (SEEDS, len(STEPS), K)
        for k in LEVELS:
            for gradient in ("true_gradient", "estimated_gradient"):
                f = d[f"low_sample/gradient_subspace_fraction_{k:03d}evs/{gradient}/{loss}"]
                assert f.shape == (SEEDS, len(STEPS)) and np.all((f >= 0) & (f <= 1 + 1e-5))
    for loss in LOSSES[:2]:
        assert np.all(d[f"low_sample/eigenvalue_converged/{loss}"])
        nodes, weights = d[f"slq_nodes/{loss}"], d[f"slq_weights/{loss}"]
        assert nodes.shape == weights.shape == (SEEDS, len(STEPS), 1, SLQ_ITERS)
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-4)  # Gauss quadrature weights
        # the extreme Ritz values bracket the top Lanczos eigenvalue from below (within the SLQ run's accuracy)
        assert np.all(nodes.max(-1)[..., 0] <= d[f"eigenvalues/{loss}"][..., 0] * (1 + 1e-3) + 1e-6)
    # the low-sample Hessian is another matrix (2048 resampled transitions vs the 64-transition buffer)
    assert not np.allclose(d["low_sample/eigenvalues/value_function_loss"], d["eigenvalues/value_function_loss"])


def test_fractions_in_unit_interval_and_nondecreasing_in_k(result):
    _, d, _ = result
    for loss in LOSSES:
        for gradient in ("true_gradient", "estimated_gradient"):
            f = np.stack([d[f"gradient_subspace_fraction_{k:03d}evs/{gradient}/{loss}"] for k in LEVELS], -1)
            assert np.all(np.isfinite(f)), (loss, gradient)
            assert f.min() >= 0.0 and f.max() <= 1.0 + 1e-5, (loss, gradient, f)
            assert np.all(np.diff(f, axis=-1) >= -1e-6), (loss, gradient, f)
        # the gradient concentrates in the top curvature directions: above the random k/n baseline
        assert np.all(d[f"gradient_subspace_fraction_005evs/true_gradient/{loss}"] >
                      d[f"random_subspace_baseline_005evs/{loss}"])


def test_overlaps(result):
    _, d, _ = result
    for loss in LOSSES:
        for k in LEVELS:
            first = d[f"overlaps_top{k:03d}_checkpoint{STEPS[0]:07d}/{loss}"]
            last = d[f"overlaps_top{k:03d}_checkpoint{STEPS[1]:07d}/{loss}"]
            np.testing.assert_allclose(first[:, 0], 1.0, atol=1e-4)  # a snapshot with itself
            np.testing.assert_allclose(last[:, 1], 1.0, atol=1e-4)
            assert np.all(np.isnan(last[:, 0]))  # t2 < t1: not defined
            assert np.all((first[:, 1] >= -1e-6) & (first[:, 1] <= 1 + 1e-5))
            assert np.all(first[:, 1] < 1.0 - 1e-4)  # training moved the subspace


def test_eigenvalues_descending(result):
    _, d, _ = result
    for loss in LOSSES:
        ev = d[f"eigenvalues/{loss}"]
        assert np.all(np.isfinite(ev)) and np.all(np.diff(ev, axis=-1) <= 1e-6 * np.abs(ev).max())
    # combined = merge of the two lists: its top eigenvalue is the larger top eigenvalue of the two blocks
    top = np.maximum(d["eigenvalues/policy_loss"][..., 0], d["eigenvalues/value_function_loss"][..., 0])
    np.testing.assert_allclose(d["eigenvalues/combined_loss"][..., 0], top)


def test_hessian_eigenvalues_match_dense_hessian(run_dir, result):
    """The stored eigenvalues (seed 0, first snapshot) are those of the dense Hessian of the same objective,
    rebuilt here from the same key: TD3's actor loss w.r.t. the actor only (Krylov space = whole space), and
    the critic loss w.r.t. the critic (128 of 210 steps)."""
    _, d, _ = result
    _, _, agent = runs.load_run(run_dir)
    state = runs.select_seed(runs.load_snapshot(run_dir, STEPS[0]), 0)
    key = run_analysis.snapshot_keys(0, STEPS[0], [0, 1])[0]
    k_data, _ = jax.random.split(key)  # analyse_snapshot's split

    @partial(jax.jit, compiler_options=FAST)
    def dense(state, k_data):
        objectives = analysis.agent_objectives(agent, state, k_data, num_samples=64,
                                               losses=curvature.study_losses("td3", agent))
        actor = objectives["policy_loss"]
        # the policy objective is a function of the actor's parameters only (critic held fixed) ...
        assert jax.tree.structure(actor.params) == jax.tree.structure(state.params["actor"])
        # ... and it is the study's TD3 actor loss -mean Q1(s, mu(s)) on the whole (full) buffer
        batch = jax.tree.map(lambda x: x[:64], state.buffer.data)
        q1 = agent.critic.apply(state.params["critic"], batch.obs,
                                agent.actor.apply(state.params["actor"], batch.obs))[..., 0]
        losses = actor.loss(actor.params), -q1.mean()
        hessians = {name: curvature.dense_hessian(o.loss, o.params) for name, o in objectives.items()}
        return losses, hessians

    (ours, direct), hessians = dense(state, k_data)
    np.testing.assert_allclose(ours, direct, rtol=1e-5)
    for loss, H in hessians.items():
        H = np.asarray(H, np.float64)
        np.testing.assert_allclose(H, H.T, atol=1e-4 * np.abs(H).max())
        dense_top = np.linalg.eigvalsh((H + H.T) / 2)[::-1][:K]
        np.testing.assert_allclose(d[f"eigenvalues/{loss}"][0, 0], dense_top, rtol=2e-3,
                                   atol=2e-4 * abs(dense_top[0]))


def test_figures_exist(run_dir, result):
    for name in ("subspaces_eigenspectrum", "subspaces_fraction", "subspaces_overlap", "subspaces_density"):
        path = os.path.join(run_dir, "figures", f"{name}.png")
        assert os.path.getsize(path) > 10_000


def test_bad_settings_raise(run_dir, result):
    with pytest.raises(ValueError, match="num_iters"):
        run_analysis.analyse_run(analysis_config(num_iters=3), run_dir, verbose=False)
    with pytest.raises(ValueError, match="overlap_steps"):
        run_analysis.analyse_run(analysis_config(overlap_steps=(7,)), run_dir, verbose=False)
    with pytest.raises(ValueError, match="not available"):
        run_analysis.analyse_run(analysis_config(steps=(65,)), run_dir, verbose=False)
    with pytest.raises(ValueError, match="seeds"):
        run_analysis.analyse_run(analysis_config(seeds=(0, 2)), run_dir, verbose=False)
    with pytest.raises(ValueError, match="k"):
        analysis.resolve_subspace_sizes(10, 0, 10)
    ppo = agents.make("ppo", envs.make("probe_observation", episode_length=None),
                      dict(hidden_sizes=(4,), num_envs=2, unroll_length=2, num_minibatches=2))
    state = ppo.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="chunk_size"):
        analysis.agent_objectives(ppo, state, jax.random.PRNGKey(1), 8, chunk_size=4)
    with pytest.raises(ValueError, match="minibatching"):
        analysis.agent_objectives(ppo, state, jax.random.PRNGKey(1), 8, num_minibatches=4)


def test_ppo_snapshot_on_fresh_rollouts():
    """PPO: the big batch is whole chained rollouts (>= num_samples), the minibatches one training rollout split
    in the agent's minibatches; one jit(vmap) over 2 seeds gives fractions in [0, 1], nondecreasing in k."""
    ppo = agents.make("ppo", envs.make("probe_observation", episode_length=None),
                      dict(hidden_sizes=(4,), num_envs=4, unroll_length=3, num_minibatches=2))
    assert analysis.on_policy_rollouts(ppo, 25) == 3  # 12 samples per rollout
    states = jax.vmap(ppo.init)(jax.random.split(jax.random.PRNGKey(0), 2))

    def one(state, key):
        objectives = analysis.agent_objectives(ppo, state, key, num_samples=25)
        return (objectives["policy_loss"].minibatches[0].obs,
                analysis.analyse_snapshot(ppo, state, key, k=3, num_iters=8, ks=(1, 3, 100), num_samples=25))

    minibatch_obs, out = jax.jit(jax.vmap(one), compiler_options=FAST)(states,
                                                                      jax.random.split(jax.random.PRNGKey(1), 2))
    assert minibatch_obs.shape == (2, 2, 6, 1)  # [seed, minibatch, sample, obs]
    batch = jax.eval_shape(lambda s, k: analysis.on_policy_batch(ppo, s.params, s.env_state, k, s.hparams, 3),
                           runs.select_seed(states, 0), jax.random.PRNGKey(2))
    assert batch.obs.shape == (36, 1)  # 3 chained rollouts x 3 steps x 4 envs
    assert set(out) == set(LOSSES)
    for loss, o in out.items():
        assert o["eigenvalues"].shape == (2, 3)
        assert np.all(np.diff(np.asarray(o["eigenvalues"]), axis=-1) <= 1e-6)
        for gradient in ("true_gradient", "estimated_gradient"):
            f = np.asarray(o[gradient])
            assert f.shape == (2, 2)  # levels (1, 3): 100 > k is dropped
            assert np.all((f >= 0) & (f <= 1 + 1e-5)) and np.all(np.diff(f, axis=-1) >= -1e-6), (loss, f)


def test_h5_stores_convergence(result):
    """Residuals, converged flags and HVP counts of every solve: the actor's Lanczos run spans its whole space (97
    steps, exact), the critic's converges k = 5 pairs within its first 128-step cycle or a few restarts."""
    c, d, _ = result
    for loss in LOSSES[:2]:
        converged, hvps = d[f"eigenvalue_converged/{loss}"], d[f"num_matvecs/{loss}"]
        assert converged.dtype == bool and hvps.dtype == np.int64
        assert np.all(converged)
        scale = np.max(np.abs(d[f"eigenvalues/{loss}"]), axis=-1, keepdims=True)
        assert np.all(d[f"eigenvalue_residuals/{loss}"] <= c.tol * scale)
    assert np.all(d["num_matvecs/policy_loss"] == 97)
    hvps = d["num_matvecs/value_function_loss"]
    p = K + (128 - K) // 2  # vectors kept at a restart
    assert np.all((hvps >= 128) & ((hvps - 128) % (128 - p) == 0) & (hvps <= 128 + 20 * (128 - p))), hvps


def test_convergence_warnings_one_line_per_unconverged_seed():
    host = {"policy_loss": {"converged": np.array([[True, True], [True, False]]),
                            "residuals": np.array([[0.0, 0.0], [0.0, 0.5]]),
                            "eigenvalues": np.array([[2.0, 1.0], [2.0, 1.0]]), "num_matvecs": np.array([40, 60])},
            "combined_loss": {"eigenvalues": np.ones((2, 2))}}
    lines = run_analysis.convergence_warnings(128, [3, 7], host, 1e-4)
    assert len(lines) == 1 and "step 128 seed 7" in lines[0] and "policy_loss 1 of 2" in lines[0]
    assert "0.25" in lines[0] and "60 HVPs" in lines[0]
    host["policy_loss"] |= {"low_sample_converged": np.array([[False, True], [True, True]]),
                            "low_sample_residuals": np.array([[0.4, 0.0], [0.0, 0.0]]),
                            "low_sample_eigenvalues": np.array([[4.0, 1.0], [2.0, 1.0]]),
                            "low_sample_num_matvecs": np.array([80, 60])}
    lines = run_analysis.convergence_warnings(128, [3, 7], host, 1e-4)
    assert len(lines) == 2 and "seed 3: " in lines[0] and "low-sample policy_loss 1 of 2" in lines[0]
    assert "0.1 after 80 HVPs" in lines[0] and "low-sample" not in lines[1]


def assert_same_datasets(a, b):
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_rerun_skips_finished_snapshots(run_dir, result, tmp_path, capsys):
    """A finished file: a re-run (figures off, which is not a setting) computes nothing. An interrupted one (the
    file holds the first snapshot only): the re-run computes the second snapshot alone, its overlap with the
    first from the stored basis of the first, and ends with the same file as the uninterrupted run."""
    c, d, attrs = result
    copy = str(shutil.copytree(run_dir, tmp_path / "run"))
    for step in STEPS:  # every step is an overlap reference step: its basis is kept beside the h5
        assert os.path.exists(layout.basis_path(copy, step))
    config = analysis_config(figures=False)
    path = run_analysis.analyse_run(config, copy, compiler_options=FAST)
    log = capsys.readouterr().out
    assert log.count("with these settings, skipped") == len(STEPS), log
    again, again_attrs = layout.read_h5(path)
    assert again_attrs["compile_seconds"] == 0 and again_attrs["run_seconds"] == 0
    assert_same_datasets(again, d)

    full = layout.results_of(d)
    first = layout.Results({STEPS[0]: full.per_step[STEPS[0]]}, {STEPS[0]: full.num_samples[STEPS[0]]},
                           {key: v for key, v in full.overlaps.items() if key[1] == STEPS[0]}, full.num_parameters)
    layout.write_h5(path, layout.collect(first, [0, 1], c.ks), attrs)
    os.remove(layout.basis_path(copy, STEPS[1]))  # an interrupted run had not written it yet
    run_analysis.analyse_run(config, copy, compiler_options=FAST)
    log = capsys.readouterr().out
    assert f"step {STEPS[0]}: already in" in log and f"step {STEPS[1]} ({SEEDS} seeds" in log, log
    resumed, resumed_attrs = layout.read_h5(path)
    assert resumed_attrs["compile_seconds"] > 0
    assert_same_datasets(resumed, d)
    # other settings: nothing is reused
    assert layout.previous_results(path, layout.settings(analysis_config(tol=1e-3), [0, 1])) is None
    assert layout.previous_results(path, layout.settings(config, [0])) is None


def test_study_losses_equal_the_study_formulas_on_a_fixed_batch():
    """The subspace study's losses (B.1; rlland.curvature.study_losses), written out here from the networks'
    apply functions on one fixed batch: SAC critic 0.5 * sum_i MSE(Q_i, y), TD3 actor -mean Q1, PPO critic
    vf_coef * MSE(R, V) and PPO actor the clipped surrogate with advantages normalised over the batch."""
    from rlland.agents.ppo import Batch
    from rlland.buffers import Transition

    env = envs.make("probe_observation", episode_length=None)
    key = jax.random.PRNGKey(3)
    k_obs, k_act, k_r, k_next, k_term, k_loss, k_init = jax.random.split(key, 7)
    n = 32
    obs = jax.random.normal(k_obs, (n, 1))
    batch = Transition(obs=obs, action=jax.random.uniform(k_act, (n, 1), minval=-1, maxval=1),
                       reward=jax.random.normal(k_r, (n,)), next_obs=jax.random.normal(k_next, (n, 1)),
                       terminated=(jax.random.uniform(k_term, (n,)) < 0.2).astype(np.float32))
    small = dict(hidden_sizes=(8, 8), num_envs=2, batch_size=16, buffer_capacity=64, warmup_steps=16)

    sac = agents.make("sac", env, small)
    hp = sac.hparams()
    p = sac.init_params(k_init, hp)  # parameters only: no buffer or env states needed
    study = curvature.study_losses("sac", sac)
    next_action, next_logp = sac.policy(p, batch.next_obs).sample_and_log_prob(seed=k_loss)
    alpha = np.exp(p["log_alpha"])
    next_q = sac.critic.apply(p["target_critic"], batch.next_obs, next_action).min(-1)
    y = batch.reward + hp["gamma"] * (1 - batch.terminated) * (next_q - alpha * next_logp)
    q = sac.critic.apply(p["critic"], batch.obs, batch.action)
    expected = 0.5 * sum(np.mean((q[:, i] - y) ** 2) for i in range(2))
    np.testing.assert_allclose(study["critic_loss"](p, batch, k_loss, hp)[0], expected, rtol=1e-5)
    np.testing.assert_allclose(study["critic_loss"](p, batch, k_loss, hp)[0],
                               0.5 * sac.critic_loss(p, batch, k_loss, hp)[0], rtol=1e-6)  # rlland's is 2x
    np.testing.assert_array_equal(study["actor_loss"](p, batch, k_loss, hp)[0], sac.actor_loss(p, batch, k_loss, hp)[0])

    td3 = agents.make("td3", env, small)
    hp = td3.hparams()
    study = curvature.study_losses("td3", td3)
    for i in range(10):  # an initialisation where Q1 is not the minimum everywhere, so -Q1 and -min differ
        p = td3.init_params(jax.random.fold_in(k_init, i), hp)
        q = td3.critic.apply(p["critic"], batch.obs, td3.actor.apply(p["actor"], batch.obs))
        if np.any(q[:, 0] > q[:, 1]):
            break
    np.testing.assert_allclose(study["actor_loss"](p, batch, None, hp)[0], -q[:, 0].mean(), rtol=1e-6)
    assert not np.isclose(study["actor_loss"](p, batch, None, hp)[0], td3.actor_loss(p, batch, None, hp)[0])
    np.testing.assert_array_equal(study["critic_loss"](p, batch, k_loss, hp)[0],
                                  td3.critic_loss(p, batch, k_loss, hp)[0])  # sum_i MSE in both

    ppo = agents.make("ppo", env, dict(hidden_sizes=(8,), num_envs=2, unroll_length=2, num_minibatches=1))
    hp = ppo.hparams()
    p = ppo.init_networks(*jax.random.split(k_init))
    study = curvature.study_losses("ppo", ppo)
    adv, target = jax.random.normal(k_r, (n,)), jax.random.normal(k_next, (n,))
    action = jax.random.normal(k_act, (n, 1))
    logp_old = ppo.policy(p, obs).log_prob(action) + 0.3 * jax.random.normal(k_term, (n,))  # ratios != 1
    pb = Batch(obs=obs, action=action, logp=logp_old, value=jnp.zeros(n), advantage=adv, target=target)
    value = ppo.value(p, obs)
    np.testing.assert_allclose(study["critic_loss"](p, pb, None, hp)[0],
                               hp["vf_coef"] * np.mean((np.asarray(value) - np.asarray(target)) ** 2), rtol=1e-5)
    ratio = np.exp(np.asarray(ppo.policy(p, obs).log_prob(action) - logp_old))
    a = (np.asarray(adv) - np.mean(adv)) / (np.std(np.asarray(adv)) + 1e-8)
    eps = float(hp["clip_eps"])
    surrogate = -np.mean(np.minimum(ratio * a, np.clip(ratio, 1 - eps, 1 + eps) * a))
    entropy = float(ppo.policy(p, obs).entropy().mean())
    np.testing.assert_allclose(study["actor_loss"](p, pb, None, hp)[0], surrogate - hp["ent_coef"] * entropy,
                               rtol=1e-5, atol=1e-6)
    assert curvature.study_losses("ppo", ppo, "agent") is None
    with pytest.raises(ValueError, match="losses must be one of"):
        curvature.study_losses("ppo", ppo, "sb3")


def test_non_finite_losses_and_empty_buffers_are_refused_naming_snapshot_and_seed(run_dir):
    host = {"policy_loss": {"loss": np.array([1.0, 2.0])}, "value_function_loss": {"loss": np.array([1.0, np.nan])}}
    with pytest.raises(ValueError, match="snapshot 128 seed 7: non-finite value_function_loss"):
        run_analysis.check_finite_losses(128, [3, 7], host)
    run_analysis.check_finite_losses(128, [3, 7], {"policy_loss": {"loss": np.array([1.0, 2.0])}})
    states = runs.load_snapshot(run_dir, STEPS[0])
    empty = states.replace(buffer=states.buffer.replace(size=states.buffer.size.at[1].set(0)))
    with pytest.raises(ValueError, match=f"snapshot {STEPS[0]} seed 1: the replay buffer is empty"):
        run_analysis.resolve_num_samples(analysis_config(), runs.load_run(run_dir)[2], empty, STEPS[0], [0, 1])
