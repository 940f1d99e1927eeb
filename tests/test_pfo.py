"""PFO (reference A.6) and the representation diagnostics logged during training (A.2-A.4).

A module fixture runs a tiny PPO (probe_observation, 8-8 tanh nets, 8 envs x 8 steps) for K iterations with
``pfo="last"`` and ``log_every=2``, vmapped over 2 seeds x pfo_coef in {0, 10} (one compile; the coefficient is
traced, and both coefficients share the seeds' keys).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import agents, envs, networks, representation
from rlland.agents import ppo as ppo_module

K, SEEDS, COEFS = 6, 2, (0.0, 10.0)
SMALL = dict(hidden_sizes=(8, 8), num_envs=8, unroll_length=8, num_minibatches=2, epochs=4, learning_rate=3e-3)


@pytest.fixture(scope="module")
def env():
    return envs.make("probe_observation")


@pytest.fixture(scope="module")
def pfo_runs(env):
    agent = agents.make("ppo", env, SMALL | dict(pfo="last", log_every=2, log_samples=32))
    keys = jnp.repeat(jax.random.split(jax.random.PRNGKey(0), SEEDS), len(COEFS), axis=0)
    hp = jax.vmap(lambda c: agent.hparams() | {"pfo_coef": c})(jnp.tile(jnp.asarray(COEFS), SEEDS))

    @jax.jit
    @jax.vmap
    def run(key, hparams):
        state = agent.init(key, hparams)
        return jax.lax.scan(lambda s, _: agent.step(s), state, None, K)[1]

    metrics = jax.device_get(run(keys, hp))  # leaves [SEEDS * len(COEFS), K]
    return agent, {k: v.reshape(SEEDS, len(COEFS), K) for k, v in metrics.items()}


# -- the PFO term -------------------------------------------------------------------------------------------------
def test_pfo_loss_formula_and_features():
    net = networks.MLP((3, 5), "tanh")
    x = jax.random.normal(jax.random.PRNGKey(1), (7, 2))
    params = net.init(jax.random.PRNGKey(2), x)
    _, feats = net.apply(params, x)
    assert representation.pfo_features(feats).shape == (7, 5)
    all_pre = representation.pfo_features(feats, all_layers=True)
    np.testing.assert_array_equal(all_pre, jnp.concatenate(feats["hidden_pre"], -1))
    assert all_pre.shape == (7, 8)
    old = all_pre + jnp.arange(8.0)
    # mean over the batch of the per-sample MEAN over dims (not a sum): mean_d d^2 for d = 0..7
    np.testing.assert_allclose(representation.pfo_loss(all_pre, old), np.mean(np.arange(8.0) ** 2), rtol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        representation.pfo_loss(all_pre, old[:, :3])


def test_pfo_gradient_zero_when_features_unchanged():
    net = networks.MLP((4, 4), "tanh")
    x = jax.random.normal(jax.random.PRNGKey(3), (6, 3))
    params = net.init(jax.random.PRNGKey(4), x)
    phi = lambda p: representation.pfo_features(net.apply(p, x)[1], all_layers=True)
    old = phi(params)
    value, grad = jax.value_and_grad(lambda p: representation.pfo_loss(phi(p), old))(params)
    assert value == 0.0
    assert all(np.all(g == 0) for g in jax.tree.leaves(grad))
    moved = jax.tree.map(lambda p: p + 0.1, params)
    assert any(np.any(g != 0) for g in jax.tree.leaves(jax.grad(lambda p: representation.pfo_loss(phi(p), old))(moved)))


@pytest.mark.parametrize("mode", ["last", "all"])
def test_pfo_term_and_gradient_exactly_zero_at_update_start(env, mode):
    """On the rollout batch, with the parameters that collected it, the PFO term and its gradient are exactly 0:
    the loss gradient with pfo_coef = pfo_critic_coef = 1 equals the one with both 0, bit for bit."""
    agent = agents.make("ppo", env, SMALL | dict(pfo=mode))
    state = agent.init(jax.random.PRNGKey(5))

    @jax.jit
    def grads(state):
        _, traj, _ = agent.rollout(state.params, state.env_state, jax.random.PRNGKey(6))
        batch = agent.make_batch(state.params, traj, state.hparams)
        minibatch = jax.tree.map(lambda x: x[jax.random.permutation(jax.random.PRNGKey(7), x.shape[0])[:32]], batch)
        on = state.hparams | {"pfo_coef": jnp.float32(1.0), "pfo_critic_coef": jnp.float32(1.0)}
        nets = {k: state.params[k] for k in ("actor", "critic")}
        g = lambda hp: jax.grad(lambda n: agent.loss(state.params | n, minibatch, None, hp), has_aux=True)(nets)
        return g(on), g(state.hparams), batch

    (g_on, m_on), (g_off, _), batch = grads(state)
    width = 8 if mode == "last" else 16
    assert batch.features_old["actor"].shape == (64, width) and batch.features_old["critic"].shape == (64, width)
    assert float(m_on["pfo_loss"]) == 0.0 and float(m_on["pfo_critic_loss"]) == 0.0
    for a, b in zip(jax.tree.leaves(g_on), jax.tree.leaves(g_off)):
        np.testing.assert_array_equal(a, b)


def test_pfo_reduces_feature_drift(pfo_runs):
    """Same seeds, same keys: pfo_coef = 10 changes the actor's penultimate pre-activation less over an update
    (the logged mean squared change between the start and end of the update) than pfo_coef = 0."""
    _, m = pfo_runs
    drift = m["repr/drift/actor_pre"][:, :, ::2]  # logged iterations only, [seed, coef, iteration]
    assert np.all(np.isfinite(drift)) and np.all(drift[:, 0] > 0)
    per_seed = drift.mean(-1)
    assert np.all(per_seed[:, 1] < 0.5 * per_seed[:, 0]), per_seed
    # the PFO loss itself (without the coefficient) is logged per update and is smaller with the regulariser
    assert np.all(m["pfo_loss"][:, 1].mean(-1) < m["pfo_loss"][:, 0].mean(-1))


# -- the diagnostics --------------------------------------------------------------------------------------------
EXPECTED = [f"repr/{phase}/{net}_{kind}/{metric}" for phase in ("start", "end") for net in ("actor", "critic")
            for kind in ("pre", "post") for metric in representation.diagnostics.RANK_KEYS
            + representation.diagnostics.NORM_KEYS]
EXPECTED += [f"repr/{phase}/{net}_post/dead_units" for phase in ("start", "end") for net in ("actor", "critic")]
EXPECTED += [f"repr/{phase}/{m}" for phase in ("start", "end") for m in ("policy_variance", "value_avg", "value_std")]
EXPECTED += [f"repr/end/ratio_{s}{t}" for s in ("mean", "std", "max", "min") for t in ("", "_below", "_above")]
EXPECTED += [f"repr/end/ratio_fraction_{t}" for t in ("below", "above", "outside")]
EXPECTED += [f"repr/end/kl_{k}" for k in ("analytic", "k1", "k3")]
EXPECTED += [f"repr/drift/{net}_{k}{c}" for net in ("actor", "critic") for k in ("pre", "post", "all_pre")
             for c in ("", "_cosine")]
EXPECTED += [f"repr/{phase}/{net}_all_pre/{m}" for phase in ("start", "end") for net in ("actor", "critic")
             for m in representation.diagnostics.NORM_KEYS]


def test_logged_metrics_finite_on_logging_iterations_nan_otherwise(pfo_runs):
    _, m = pfo_runs
    assert sorted(k for k in m if k.startswith("repr/")) == sorted(EXPECTED)
    for k in EXPECTED:
        logged, skipped = m[k][..., ::2], m[k][..., 1::2]
        assert np.all(np.isnan(skipped)), k
        side = "_below" if k.endswith("_below") else "_above" if k.endswith("_above") else None
        if side and not k.startswith("repr/end/ratio_fraction"):  # undefined (NaN) when no sample is on that side
            fraction = m[f"repr/end/ratio_fraction{side}"][..., ::2]
            assert np.all(np.isfinite(logged) | (fraction == 0)), k
        else:
            assert np.all(np.isfinite(logged)), k
    # sanity: ranks within [0, width], dead-unit counts whole numbers, KL estimators close on a small update
    rank = m["repr/start/actor_post/approximate_rank"][..., ::2]
    assert np.all((rank >= 1) & (rank <= 8))
    dead = m["repr/end/critic_post/dead_units"][..., ::2]
    assert np.all(dead == np.round(dead)) and np.all((dead >= 0) & (dead <= 8))
    kl = {k: m[f"repr/end/kl_{k}"][..., ::2] for k in ("analytic", "k3")}
    assert np.all(kl["analytic"] >= 0) and np.all(kl["k3"] >= 0)


def test_defaults_unchanged(env):
    """PFO and logging are off by default: same metrics keys, no stored features, no new state."""
    agent = agents.make("ppo", env, SMALL)
    assert agent.pfo == "off" and agent.config.log_every == 0
    state = jax.eval_shape(agent.init, jax.random.PRNGKey(0))
    _, metrics = jax.eval_shape(agent.step, state)
    norms = [f"{kind}/{net}{suffix}" for net in ("actor", "critic")
             for kind, suffix in (("grad_norm", ""), ("grad_norm", "_clipped"), ("grad_norm", "_applied"),
                                  ("weight_norm", ""))]  # the optimiser's norms (test_ppo_protocol.py)
    assert sorted(metrics) == sorted(["pg_loss", "entropy", "approx_kl", "clip_fraction", "v_loss",
                                      "episode_return_sum", "episodes"] + norms)
    traj = jax.eval_shape(lambda s: agent.rollout(s.params, s.env_state, jax.random.PRNGKey(0))[1], state)
    assert traj.features is None
    assert agents.make("ppo", env, SMALL | dict(pfo_coef=1.0)).pfo == "last"  # "auto" turns it on


def test_config_errors(env):
    with pytest.raises(ValueError, match="pfo"):
        agents.make("ppo", env, SMALL | dict(pfo="off", pfo_coef=1.0))
    with pytest.raises(ValueError, match="pfo"):
        agents.make("ppo", env, SMALL | dict(pfo="sometimes"))
    with pytest.raises(ValueError, match="log_metrics"):
        agents.make("ppo", env, SMALL | dict(log_every=1, log_metrics=("ranks", "vibes")))
    with pytest.raises(ValueError, match="log_every"):
        agents.make("ppo", env, SMALL | dict(log_every=-1))
    with pytest.raises(ValueError, match="PFO is off"):
        agents.make("ppo", env, SMALL).hparams(pfo_coef=np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="log_metrics"):
        agents.make("td3", env, dict(log_every=1, log_metrics=("drift",)))
    assert set(ppo_module.LOG_GROUPS) >= {"ranks", "dead_units", "trust_region", "kl"}


def test_rank_summary_matches_all_ranks():
    """The diagnostics' QR-then-SVD ranks agree with ``all_ranks`` (one plain SVD) on constructed spectra."""
    k = jax.random.split(jax.random.PRNGKey(8), 3)
    u = jnp.linalg.qr(jax.random.normal(k[0], (200, 16)))[0]
    v = jnp.linalg.qr(jax.random.normal(k[1], (16, 16)))[0]
    mats = [u @ jnp.diag(jnp.logspace(0, -5, 16)) @ v.T,  # a known, decaying spectrum
            u[:, :5] @ jax.random.normal(k[2], (5, 16)),  # rank 5
            jnp.zeros((200, 16)), jnp.ones((8, 16))]  # zero matrix; N < D
    for F in mats:
        got = jax.jit(representation.diagnostics.rank_summary)(F)
        want = representation.all_ranks(F)
        for key in representation.diagnostics.RANK_KEYS:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert float(representation.diagnostics.rank_summary(mats[1])["matrix_rank"]) == 5


def test_subsample_and_every():
    tree = {"a": jnp.arange(10.0), "b": jnp.arange(20.0).reshape(10, 2)}
    sub = representation.subsample(tree, jax.random.PRNGKey(0), 4)
    assert sub["a"].shape == (4,) and len(set(np.asarray(sub["a"]).tolist())) == 4  # without replacement
    np.testing.assert_array_equal(sub["b"][:, 0], 2 * sub["a"])  # the same rows in every leaf
    assert representation.subsample(tree, jax.random.PRNGKey(0), 10) is tree
    fn = lambda x: {"s": x.sum(), "n": jnp.int32(3)}
    out = jax.vmap(lambda i: representation.every(i, 3, fn, jnp.ones(2)))(jnp.arange(6))
    np.testing.assert_array_equal(out["s"], [2, np.nan, np.nan, 2, np.nan, np.nan])
    assert out["n"].dtype == jnp.float32
    # under a vmap that names the seed axis the gate is a real cond (no select of the metric), and each seed
    # still gets NaN on its own non-logging iterations
    named = jax.vmap(lambda i: representation.every(i, 3, fn, jnp.ones(2)), axis_name="seed")
    np.testing.assert_array_equal(named(jnp.arange(6))["s"], out["s"])
    np.testing.assert_array_equal(named(jnp.array([3, 3]))["s"], [2, 2])
    np.testing.assert_array_equal(named(jnp.array([1, 2]))["s"], [np.nan, np.nan])
    assert "stablehlo.case" in jax.jit(named).lower(jnp.arange(2)).as_text()
    assert "stablehlo.case" not in jax.jit(jax.vmap(lambda i: representation.every(i, 3, fn, jnp.ones(2)))).lower(
        jnp.arange(2)).as_text()  # a plain vmap: the cond became a select


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_off_policy_logs_ranks(env, algo):
    agent = agents.make(algo, env, dict(hidden_sizes=(8, 8), num_envs=2, batch_size=8, buffer_capacity=64,
                                        warmup_steps=4, log_every=2, log_samples=16))
    state = jax.eval_shape(agent.init, jax.random.PRNGKey(0))
    _, metrics = jax.eval_shape(agent.step, state)
    names = [f"repr/{n}_{k}/{r}" for n in ("actor", "critic1", "critic2") for k in ("pre", "post")
             for r in representation.diagnostics.RANK_KEYS]
    names += [f"repr/{n}_post/dead_units" for n in ("actor", "critic1", "critic2")]
    assert sorted(k for k in metrics if k.startswith("repr/")) == sorted(names)
    if algo == "td3":  # one real run (SAC shares the code path in off_policy.py)
        step = jax.jit(agent.step)
        s = agent.init(jax.random.PRNGKey(1))
        logged = []
        for _ in range(4):
            s, m = step(s)
            logged.append(np.asarray([m[k] for k in names]))
        assert np.all(np.isfinite(logged[0])) and np.all(np.isfinite(logged[2]))
        assert np.all(np.isnan(logged[1])) and np.all(np.isnan(logged[3]))
