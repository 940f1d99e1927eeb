"""The representation study's PPO options (reference A.1, A.3, A.7 of representation-regions-qd.md): tanh-Gaussian
head, Adam betas, Adam reset, per-network clipping, shared trunk, gradient / weight norm metrics.

Tiny: the 1-d probe envs, 8-8 nets, 8 envs x 8 steps; one compiled training run per option set (module fixtures).
"""
import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rlland import agents, envs, networks
from rlland.agents import ppo as ppo_module

K = 4
SMALL = dict(hidden_sizes=(8, 8), num_envs=8, unroll_length=8, num_minibatches=2, epochs=2, learning_rate=3e-3)


@pytest.fixture(scope="module")
def env():
    return envs.make("probe_observation")


def train(agent, k=K, seed=0):
    """K iterations of one seed, jitted: (final state, metrics [K])."""
    @jax.jit
    def run(key):
        return jax.lax.scan(lambda s, _: agent.step(s), agent.init(key), None, k)

    return jax.device_get(run(jax.random.PRNGKey(seed)))


@pytest.fixture(scope="module")
def tanh_run(env):
    agent = agents.make("ppo", env, SMALL | dict(policy="tanh_gaussian", log_every=2, log_samples=32,
                                                  log_metrics=("diversity", "kl", "trust_region")))
    return agent, *train(agent)


# -- 1. tanh-Gaussian head ------------------------------------------------------------------------------------------
def test_tanh_log_prob_matches_closed_form_and_scale_depends_on_state(env, tanh_run):
    agent, state, _ = tanh_run
    obs = jnp.array([[1.0], [-1.0], [0.3]])

    @jax.jit
    def probe(params):
        pi = agent.policy(params, obs)
        action, logp = agent.sample(pi, jax.random.PRNGKey(1))
        u = jnp.arctanh(action)
        closed = (jax.scipy.stats.norm.logpdf(u, pi.loc, pi.scale_diag) - jnp.log1p(-action ** 2)).sum(-1)
        ref = distrax.Transformed(distrax.Normal(pi.loc, pi.scale_diag), distrax.Tanh()).log_prob(action).sum(-1)
        edge = pi.log_prob(jnp.full((3, 1), 1.0 - ppo_module.ACTION_EPS))
        stoch = agent.act(params, jnp.ones((256, 1)), jax.random.PRNGKey(2), deterministic=False)
        return dict(action=action, logp=logp, closed=closed, ref=ref, loc=pi.loc, scale=pi.scale_diag, edge=edge,
                    det=agent.act(params, obs), stoch=stoch)

    assert isinstance(agent.policy(state.params, obs), ppo_module.TanhNormal)
    r = jax.device_get(probe(state.params))
    assert np.all(np.abs(r["action"]) < 1.0) and np.all(np.abs(r["stoch"]) < 1.0)
    np.testing.assert_allclose(r["logp"], r["closed"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r["logp"], r["ref"], rtol=1e-5, atol=1e-5)
    assert abs(r["scale"][0, 0] - r["scale"][1, 0]) > 1e-4  # state-dependent scale after training
    assert np.all(r["scale"] > networks.TanhGaussianActor.SOFTPLUS_MIN)
    assert np.all(np.isfinite(r["edge"]))  # a stored action at the clip edge has a finite log-prob
    np.testing.assert_allclose(r["det"], np.tanh(r["loc"]), rtol=1e-6)  # deterministic action = tanh(mean)


def test_tanh_training_finite_with_diagnostics(tanh_run):
    _, state, m = tanh_run
    assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(state.params))
    assert np.all(np.isfinite(m["entropy"])) and np.all(np.isfinite(m["pg_loss"]))
    logged = slice(0, None, 2)
    assert np.all(m["repr/start/policy_variance"][logged] > 0)  # the scale (and mean) vary across states
    kl = m["repr/end/kl_analytic"][logged]
    assert np.all(np.isfinite(kl)) and np.all(kl >= 0)


def test_tanh_rejects_discrete_and_unknown_policy(env):
    with pytest.raises(ValueError, match="tanh_gaussian' is for continuous"):
        agents.make("ppo", envs.make("probe_discrete_bandit"), SMALL | dict(policy="tanh_gaussian"))
    with pytest.raises(ValueError, match="config.policy must be one of"):
        agents.make("ppo", env, SMALL | dict(policy="beta"))


# -- 2-4, 6. optimiser options and the gradient / weight norm metrics ------------------------------------------------
OPT = SMALL | dict(adam_b1=0.5, adam_b2=0.8)


@pytest.fixture(scope="module")
def one_minibatch(env):
    """An agent with non-default betas, its initial state and the first minibatch of its first rollout."""
    agent = agents.make("ppo", env, OPT)

    @jax.jit
    def first(key):
        state = agent.init(key)
        _, traj, _ = agent.rollout(state.params, state.env_state, jax.random.PRNGKey(4))
        batch = agent.make_batch(state.params, traj, state.hparams)
        return state, batch, jax.tree.map(lambda x: x[: x.shape[0] // SMALL["num_minibatches"]], batch)

    return agent, *first(jax.random.PRNGKey(3))


def global_norm(tree):
    return float(np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in jax.tree.leaves(tree))))


def test_norm_metrics_and_betas_match_hand_computation(one_minibatch):
    agent, state, _, mb = one_minibatch
    key, hp = jax.random.PRNGKey(5), state.hparams
    nets = {k: state.params[k] for k in ("actor", "critic")}
    grads = jax.jit(jax.grad(lambda n: agent.loss(state.params | n, mb, key, hp)[0]))(nets)
    params, opt_state, m = jax.jit(agent.minibatch_update)(state.params, state.opt_state, mb, key, hp)
    total = global_norm(grads)
    for net in ("actor", "critic"):
        g = global_norm(grads[net])
        np.testing.assert_allclose(m[f"grad_norm/{net}"], g, rtol=1e-4)
        np.testing.assert_allclose(m[f"grad_norm/{net}_clipped"], g * min(1.0, float(hp["max_grad_norm"]) / total),
                                   rtol=1e-4)
        step = jax.tree.map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64), params[net], nets[net])
        np.testing.assert_allclose(m[f"grad_norm/{net}_applied"], global_norm(step), rtol=1e-3)
    # betas reach optax: after one step from zero moments, mu = (1 - b1) g_clipped and nu = (1 - b2) g_clipped^2
    scale = min(1.0, float(hp["max_grad_norm"]) / total)
    mu = optax.tree_utils.tree_get(opt_state, "mu")
    nu = optax.tree_utils.tree_get(opt_state, "nu")
    for got, want in ((mu, jax.tree.map(lambda g: (1 - OPT["adam_b1"]) * g * scale, grads)),
                      (nu, jax.tree.map(lambda g: (1 - OPT["adam_b2"]) * (g * scale) ** 2, grads))):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))


def test_weight_norms_logged(tanh_run):
    _, state, m = tanh_run
    for net in ("actor", "critic"):
        assert m[f"weight_norm/{net}"].shape == (K,)
        np.testing.assert_allclose(m[f"weight_norm/{net}"][-1], global_norm(state.params[net]), rtol=1e-5)
        assert np.all(m[f"grad_norm/{net}_clipped"] <= m[f"grad_norm/{net}"] * (1 + 1e-6))


def test_adam_reset_update_equals_fresh_optimiser(env, one_minibatch):
    _, state, batch, _ = one_minibatch
    key = jax.random.PRNGKey(6)
    agent = agents.make("ppo", env, OPT | dict(adam_reset=True))
    update = jax.jit(agent.update_epochs)
    _, stale_opt, _ = update(state.params, state.opt_state, batch, key, state.hparams)
    assert optax.tree_utils.tree_get(stale_opt, "count") > 0 and global_norm(
        optax.tree_utils.tree_get(stale_opt, "mu")) > 0  # a used optimiser state goes in
    fresh_opt = agent.tx(state.hparams).init({k: state.params[k] for k in ("actor", "critic")})
    stale = update(state.params, stale_opt, batch, key, state.hparams)[:2]
    fresh = update(state.params, fresh_opt, batch, key, state.hparams)[:2]
    for a, b in zip(jax.tree.leaves(stale), jax.tree.leaves(fresh)):
        np.testing.assert_array_equal(a, b)  # exact: the incoming state is discarded, the same program runs


def test_per_network_clipping_isolates_the_actor(env, one_minibatch):
    """A huge critic gradient shrinks the actor's clipped gradient (and Adam step) under joint clipping only."""
    _, state, _, _ = one_minibatch
    nets = {k: state.params[k] for k in ("actor", "critic")}
    hp = state.hparams
    grads = {"actor": jax.tree.map(lambda x: jnp.full_like(x, 0.01), nets["actor"]),
             "critic": jax.tree.map(lambda x: jnp.full_like(x, 1e6), nets["critic"])}
    calm = grads | {"critic": jax.tree.map(lambda x: 0.01 * jnp.ones_like(x), nets["critic"])}
    assert global_norm(grads["actor"]) < float(hp["max_grad_norm"])

    def actor_steps(per_network):
        agent = agents.make("ppo", env, OPT | dict(clip_per_network=per_network))

        @jax.jit
        def step(g):
            tx = agent.tx(hp)
            updates, _ = tx.update(g, tx.init(nets), nets)
            norms = agent.grad_norms(g, nets, nets, hp)
            return optax.global_norm(updates["actor"]), norms["grad_norm/actor_clipped"], norms["grad_norm/critic_clipped"]

        return [tuple(map(float, step(g))) for g in (grads, calm)]

    (sep, sep_clip, sep_critic), (sep_calm, _, _) = actor_steps(True)
    (joint, joint_clip, _), (joint_calm, _, _) = actor_steps(False)
    np.testing.assert_allclose(sep_critic, float(hp["max_grad_norm"]), rtol=1e-6)  # min(max_norm, ||g_critic||)
    np.testing.assert_allclose(sep, sep_calm, rtol=1e-6)  # per network: the critic does not touch the actor
    np.testing.assert_allclose(sep_clip, global_norm(grads["actor"]), rtol=1e-5)
    np.testing.assert_allclose(joint_calm, sep_calm, rtol=1e-6)
    assert joint < 0.01 * sep  # joint: the actor's gradient is scaled by max_norm / ||g|| ~ 1e-8, Adam's step with it
    assert joint_clip < 1e-6 * sep_clip


def test_optimiser_options_validated(env):
    with pytest.raises(ValueError, match="adam_b2 must lie in"):
        agents.make("ppo", env, SMALL | dict(adam_b2=1.0))


# -- 5. shared trunk ------------------------------------------------------------------------------------------------
def test_shared_trunk_one_torso_trains_finitely_with_every_option(env):
    """Actor and critic on one torso (the critic a value head only); trained with all the study's options on."""
    agent = agents.make("ppo", env, SMALL | dict(shared_trunk=True, policy="tanh_gaussian", adam_b2=0.9,
                                                 adam_reset=True, clip_per_network=True))
    obs = jnp.array([[1.0], [-1.0]])

    @jax.jit
    def start(key):  # the value's gradient w.r.t. the actor's parameters: it reaches the (one) torso
        params = agent.init(key).params
        return params, jax.grad(lambda p: agent.value(params | {"actor": p}, obs).sum())(params["actor"])

    features = jax.jit(lambda p: (agent.policy_features(p, obs), agent.value_features(p, obs)))
    params, g = start(jax.random.PRNGKey(0))
    critic = params["critic"]["params"]
    assert list(critic) == ["Dense_0"] and critic["Dense_0"]["kernel"].shape == (SMALL["hidden_sizes"][-1], 1)
    assert global_norm(networks.hidden_layers(g, networks.TanhGaussianActor.TRUNK)) > 0
    state, m = train(agent)
    assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(state.params))
    assert all(np.all(np.isfinite(v)) for v in m.values())
    feats = jax.device_get(features(state.params))
    np.testing.assert_array_equal(feats[0]["post"], feats[1]["post"])  # the critic's features are the trunk's
    assert np.abs(np.asarray(state.params["critic"]["params"]["Dense_0"]["kernel"])
                  - np.asarray(critic["Dense_0"]["kernel"])).max() > 0  # the head trained
