"""PURD sampling, update operators, interpolation, h5 files and CVaR-rejection training (rlland.landscape).

Everything runs on a tiny contextual-bandit-like task with tiny TD3 / SAC / PPO agents. Each agent's kernels are
compiled once per module: a fixture trains it (one jitted ``lax.scan`` of ``agent.step``) and one jitted "suite"
per agent computes every quantity the tests of that agent compare, so the file stays CPU-cheap.

Task ("track"): obs ~ U(-1, 1), reward -(a - obs / 2)^2, next obs ~ U(-1, 1), 3-step episodes cut by the time
limit. Unlike the built-in probes, its observations VARY across transitions (so different minibatches give
different TD3 actor gradients: probe_action's constant observation would give every minibatch the same gradient)
and its return depends on the policy (so PURDs are not constant). With ``fixed_start=True`` the start observation
and the observation sequence are fixed, so a deterministic policy's return is a deterministic function of its
parameters.
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import agents, landscape
from rlland.envs import Env
from rlland.landscape import reject as reject_module

# Compile cheaply on CPU (tiny kernels: compile time dominates run time); the tests compare results of the same
# compiled kernels, never against other optimisation levels.
_CPU_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
jit = partial(jax.jit, compiler_options=_CPU_FAST_COMPILE if jax.default_backend() == "cpu" else None)

NUM_SAMPLES = 8  # PURD samples in every test (8 with chunk 3 exercises the vmapped remainder of lax.map)
LR = 1e-2  # a large lr, so that one step moves the returns visibly


class TrackCore:
    observation_size = 1
    action_size = 1

    def reset(self, key):
        k_obs, k_next = jax.random.split(key)
        obs = jax.random.uniform(k_obs, (1,), minval=-1.0, maxval=1.0)
        return (obs, k_next), obs

    def step(self, inner, action):
        obs, key = inner
        k_obs, k_next = jax.random.split(key)
        next_obs = jax.random.uniform(k_obs, (1,), minval=-1.0, maxval=1.0)
        return (next_obs, k_next), next_obs, -(action[0] - 0.5 * obs[0]) ** 2, jnp.bool_(False)


ENV = Env(TrackCore(), "track", episode_length=3)
OFF_POLICY = dict(hidden_sizes=(16, 16), num_envs=2, batch_size=16, buffer_capacity=128, warmup_steps=32,
                  learning_rate=1e-3)
SNAPSHOT_EVERY, NUM_SNAPSHOTS = 30, 5  # off-policy training: 150 steps (300 transitions: the buffer wraps)


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def index(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def train_snapshots(agent, key, every, num):
    """``num`` snapshots, one after every ``every`` agent steps, stacked on a leading axis."""
    def chunk(s, _):
        s, _ = jax.lax.scan(lambda s, _: agent.step(s), s, None, length=every)
        return s, s

    return jax.lax.scan(chunk, agent.init(key), None, length=num)[1]


# ------------------------------------------------------------------------------------------------------ TD3


@pytest.fixture(scope="module")
def td3():
    """TD3 and its snapshots [2 seeds, NUM_SNAPSHOTS]."""
    agent = agents.make("td3", ENV, OFF_POLICY)
    snaps = jit(jax.vmap(lambda k: train_snapshots(agent, k, SNAPSHOT_EVERY, NUM_SNAPSHOTS)))(
        jax.random.split(jax.random.PRNGKey(0), 2))
    return agent, snaps


@pytest.fixture(scope="module")
def td3_suite(td3):
    """Everything the TD3 tests compare. Each jitted function is compiled once and called where it can be."""
    agent, snaps = td3
    rf = landscape.policy_returns(agent)
    user_fn = lambda p, k: p | {"actor": jax.tree.map(lambda x: 0.5 * x, p["actor"])}

    def purd(snap, key, lr, chunk_size=None):
        op = landscape.td3_actor_step(agent, snap, learning_rate=lr)
        return landscape.post_update_returns(op, rf, snap.params, key, NUM_SAMPLES, chunk_size)

    purd_jit = jit(purd)
    purd_vmapped = jit(jax.vmap(purd, in_axes=(0, 0, None)))

    @jit
    def operators(snap, key):
        params = snap.params
        op = landscape.td3_actor_step(agent, snap, learning_rate=LR)
        k0, k1 = jax.random.split(key)
        p1, extra1 = op.step(params, op.extra, k0)
        p2, _ = op.step(p1, extra1, k1)
        return {"op_params": jax.vmap(op, in_axes=(None, 0))(params, jax.random.split(key, 4)),
                "k2": landscape.k_steps(op, 2)(params, key), "k2_by_hand": p2,
                "twice_from_snapshot_state": op(op(params, k0), k1),
                "extra_count": (op.extra["actor"][0].count, extra1["actor"][0].count)}

    @jit
    def user(snap, key):
        return (landscape.post_update_returns(user_fn, rf, snap.params, key, NUM_SAMPLES),
                rf(user_fn(snap.params, key), key).undiscounted, rf(snap.params, key).undiscounted)

    snap, key = index(snaps, (0, -1)), jax.random.PRNGKey(1)
    seeds = index(snaps, (slice(None), -1))
    history = index(snaps, (0, slice(NUM_SNAPSHOTS - 2, None)))
    two_keys = jax.random.split(key, 2)
    user_purd, user_pre, pre = user(snap, key)
    return operators(snap, key) | {
        "pre": pre, "user": user_purd, "user_pre": user_pre,
        "purd": purd_jit(snap, key, LR),
        "purd_lr0": purd_jit(snap, key, 0.0),
        "purd_chunked": jit(partial(purd, chunk_size=3))(snap, key, LR),
        "seeds_vmapped": purd_vmapped(seeds, two_keys, LR),
        "seeds_looped": [purd_jit(index(seeds, i), two_keys[i], LR) for i in range(2)],
        "snapshots_vmapped": purd_vmapped(history, two_keys, LR),
        "snapshots_looped": [purd_jit(index(history, i), two_keys[i], LR) for i in range(2)],
        "op_params_again": operators(snap, key)["op_params"],
    }


def test_td3_samples_are_independent(td3_suite):
    actors = td3_suite["op_params"]["actor"]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not leaves_equal(index(actors, i), index(actors, j)), (i, j)
    assert leaves_equal(td3_suite["op_params"], td3_suite["op_params_again"])  # same keys, same result
    und = np.asarray(td3_suite["purd"]["undiscounted"])
    assert und.shape == (NUM_SAMPLES,) and len(np.unique(und)) > 1
    # only the actor moves: critic, targets and observation statistics are passed through
    for part in ("critic", "target_actor", "target_critic", "obs_norm"):
        assert all(np.all(x == x[:1]) for x in jax.tree.leaves(td3_suite["op_params"][part])), part


def test_td3_learning_rate_zero_returns_the_pre_update_return(td3_suite):
    pre = np.asarray(td3_suite["pre"])
    for kind in ("undiscounted", "discounted"):
        assert td3_suite["purd_lr0"][kind].shape == (NUM_SAMPLES,)
    np.testing.assert_array_equal(td3_suite["purd_lr0"]["undiscounted"], np.full(NUM_SAMPLES, pre))
    assert not np.any(np.asarray(td3_suite["purd"]["undiscounted"]) == pre)  # lr > 0 changes every sample


def test_chunking_gives_the_same_samples(td3_suite):
    for kind in ("undiscounted", "discounted"):
        np.testing.assert_array_equal(td3_suite["purd_chunked"][kind], td3_suite["purd"][kind])


@pytest.mark.parametrize("axis", ["seeds", "snapshots"])
def test_vmap_over_seeds_and_snapshots_equals_separate_calls(td3_suite, axis):
    vmapped, looped = td3_suite[f"{axis}_vmapped"], td3_suite[f"{axis}_looped"]
    assert vmapped["undiscounted"].shape == (2, NUM_SAMPLES)
    for i in range(2):
        for kind in ("undiscounted", "discounted"):
            np.testing.assert_allclose(vmapped[kind][i], looped[i][kind], rtol=1e-6, atol=1e-7)
    assert not np.allclose(vmapped["undiscounted"][0], vmapped["undiscounted"][1])


def test_user_update_fn(td3_suite):
    np.testing.assert_array_equal(td3_suite["user"]["undiscounted"],
                                  np.full(NUM_SAMPLES, np.asarray(td3_suite["user_pre"])))
    assert td3_suite["user_pre"] != td3_suite["pre"]


def test_k_steps_chains_steps_with_a_continuing_optimiser_state(td3_suite):
    np.testing.assert_allclose(*(np.concatenate([np.ravel(x) for x in jax.tree.leaves(td3_suite[k]["actor"])])
                                 for k in ("k2", "k2_by_hand")), rtol=1e-6, atol=1e-8)
    built = landscape.k_steps(landscape.td3_actor_step, 2)
    assert getattr(built, "_rlland_update_builder", False)
    count0, count1 = td3_suite["extra_count"]
    assert int(count1) == int(count0) + 1
    # restarting the second step from the snapshot's Adam state is a different update
    assert not leaves_equal(td3_suite["k2"]["actor"], td3_suite["twice_from_snapshot_state"]["actor"])


def test_k_steps_of_a_plain_update_fn_and_bad_k():
    params = {"actor": {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.zeros(3)}, "critic": jnp.ones(2)}
    noise, key = landscape.param_noise(0.1), jax.random.PRNGKey(3)
    k0, k1 = jax.random.split(key)
    out = jit(landscape.k_steps(noise, 2))(params, key)
    np.testing.assert_allclose(jax.tree.leaves(out["actor"])[0], jax.tree.leaves(noise(noise(params, k0), k1)[
        "actor"])[0], rtol=1e-6)
    assert landscape.k_steps(noise, 1) is noise
    with pytest.raises(ValueError, match="positive int"):
        landscape.k_steps(noise, 0)


def test_param_noise(td3):
    _, snaps = td3
    params = index(snaps, (0, -1)).params
    key = jax.random.PRNGKey(4)
    assert leaves_equal(jit(landscape.param_noise(0.0))(params, key), params)
    noisy = jit(landscape.param_noise(1e-2))(params, key)
    assert leaves_equal(noisy["critic"], params["critic"])
    deltas = jax.tree.map(lambda a, b: (a - b) / 1e-2, noisy["actor"], params["actor"])
    biases = [d for d in jax.tree.leaves(deltas) if d.shape == (16,)]
    assert len(biases) == 2 and not np.allclose(biases[0], biases[1])  # own key per leaf (QUIRK fixed)
    assert all(np.all(np.asarray(d) != 0) for d in jax.tree.leaves(deltas))
    assert 0.5 < np.std(np.concatenate([np.ravel(d) for d in jax.tree.leaves(deltas)])) < 1.5


def test_evaluation_protocol_options(td3):
    agent, snaps = td3
    env = landscape.evaluation_env(ENV)
    assert env.fixed_start and env.episode_length == ENV.episode_length and env.core is ENV.core
    env = landscape.evaluation_env(ENV, fixed_start=False, episode_length=7)
    assert not env.fixed_start and env.episode_length == 7
    params, key = index(snaps, (0, -1)).params, jax.random.PRNGKey(9)
    rf = landscape.policy_returns(agent, deterministic=False, fixed_start=False, episode_length=2, num_episodes=3)
    out = jit(jax.vmap(rf, in_axes=(None, 0)))(params, jax.random.split(key, 2))
    assert np.all(out.length == 2) and out.undiscounted[0] != out.undiscounted[1]  # random starts and actions


def test_bad_arguments(td3):
    agent, snaps = td3
    snap = index(snaps, (0, -1))
    rf = landscape.policy_returns(agent)
    op = landscape.td3_actor_step(agent, snap)
    with pytest.raises(ValueError, match="num_samples"):
        landscape.post_update_returns(op, rf, snap.params, jax.random.PRNGKey(0), 0)
    with pytest.raises(TypeError, match="num_samples"):
        landscape.post_update_returns(op, rf, snap.params, jax.random.PRNGKey(0), 2.5)
    with pytest.raises(TypeError, match="EpisodeResult"):
        landscape.post_update_returns(lambda p, k: p, lambda p, k: 1.0, jnp.zeros(2), jax.random.PRNGKey(0), 2)
    with pytest.raises(ValueError, match="sac"):
        landscape.sac_actor_step(agent, snap)
    with pytest.raises(TypeError, match="buffer"):
        landscape.td3_actor_step(agent, {"opt_state": snap.opt_state, "hparams": snap.hparams})
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        landscape.td3_actor_step(agent, snap, hparams={"clip_eps": 0.1})
    with pytest.raises(ValueError, match="multiple of check_interval"):
        landscape.reject_train(agent, snap, jax.random.PRNGKey(0), 5, 2)
    with pytest.raises(ValueError, match="heuristic"):
        landscape.reject_train(agent, snap, jax.random.PRNGKey(0), 2, 1, heuristic="mean")


# ------------------------------------------------------------------------------------------------- SAC / PPO


@pytest.fixture(scope="module")
def sac_suite():
    agent = agents.make("sac", ENV, OFF_POLICY)
    rf = landscape.policy_returns(agent)

    @jit
    def suite(key):
        snap = index(train_snapshots(agent, key, 100, 1), 0)
        op, op0 = (landscape.sac_actor_step(agent, snap, learning_rate=lr) for lr in (LR, 0.0))
        purd = lambda op: landscape.post_update_returns(op, rf, snap.params, key, NUM_SAMPLES)
        return {"pre": rf(snap.params, key).undiscounted, "purd": purd(op), "purd_lr0": purd(op0),
                "op_params": jax.vmap(op, in_axes=(None, 0))(snap.params, jax.random.split(key, 4))}

    return suite(jax.random.PRNGKey(5))


@pytest.fixture(scope="module")
def ppo_suite():
    agent = agents.make("ppo", ENV, dict(hidden_sizes=(16, 16), num_envs=4, unroll_length=4, num_minibatches=2,
                                         epochs=2, learning_rate=1e-3))
    rf = landscape.policy_returns(agent)

    @jit
    def suite(key):
        snap = index(train_snapshots(agent, key, 20, 1), 0)
        op, op0 = (landscape.ppo_update(agent, snap, learning_rate=lr) for lr in (LR, 0.0))
        purd = lambda op: landscape.post_update_returns(op, rf, snap.params, key, NUM_SAMPLES)
        # the original's operator: one step on the first half of a fresh rollout's batch, clip 0.1
        mb = landscape.ppo_minibatch_step(agent, snap, learning_rate=LR)
        k_roll, k_update = jax.random.split(key)
        _, traj, _ = agent.rollout(snap.params, snap.env_state, k_roll)
        hp = snap.hparams | {"learning_rate": jnp.float32(LR), "max_grad_norm": jnp.float32(0.1)}
        batch = agent.make_batch(snap.params, traj, hp)
        by_hand = {f"{half}": agent.minibatch_update(snap.params, snap.opt_state, jax.tree.map(
            lambda x: x[:rows], batch), k_update, hp)[0] for half, rows in (("half", 8), ("all", 16))}
        return {"pre": rf(snap.params, key).undiscounted, "purd": purd(op), "purd_lr0": purd(op0),
                "op_params": jax.vmap(op, in_axes=(None, 0))(snap.params, jax.random.split(key, 4)),
                "mb": mb(snap.params, key), "mb_by_hand": by_hand,
                "mb_unclipped": landscape.ppo_minibatch_step(agent, snap, learning_rate=LR, max_grad_norm=None)(
                    snap.params, key)}

    return suite(jax.random.PRNGKey(6))


@pytest.mark.parametrize("name", ["sac", "ppo"])
def test_sac_ppo_samples_independent_and_lr0_exact(name, sac_suite, ppo_suite):
    suite = {"sac": sac_suite, "ppo": ppo_suite}[name]
    actors = suite["op_params"]["actor"]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not leaves_equal(index(actors, i), index(actors, j)), (i, j)
    np.testing.assert_array_equal(suite["purd_lr0"]["undiscounted"], np.full(NUM_SAMPLES, np.asarray(suite["pre"])))
    assert len(np.unique(np.asarray(suite["purd"]["undiscounted"]))) > 1
    if name == "sac":  # the temperature is frozen
        assert np.all(suite["op_params"]["log_alpha"] == suite["op_params"]["log_alpha"][0])
    else:  # PPO updates the critic too
        critics = suite["op_params"]["critic"]
        assert not leaves_equal(index(critics, 0), index(critics, 1))


def test_ppo_minibatch_step_is_one_clipped_step_on_the_first_half(ppo_suite):
    """The original PPO PURD operator (A.4 QUIRKs kept): one Adam step on rows 0 .. B/2 - 1 of the rollout's
    flattened batch (16 rows: 4 steps x 4 envs) with the gradient clipped at global norm 0.1."""
    mb, by_hand = ppo_suite["mb"], ppo_suite["mb_by_hand"]
    for part in ("actor", "critic"):
        for x, y in zip(jax.tree.leaves(mb[part]), jax.tree.leaves(by_hand["half"][part])):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    assert not leaves_equal(mb["actor"], by_hand["all"]["actor"])  # not the whole batch
    assert not leaves_equal(mb["actor"], ppo_suite["mb_unclipped"]["actor"])  # the 0.1 clip acted


def test_in_rollout_perturbations(td3):
    """No update, the snapshot's own policy: deterministic fixed-start returns are one number; action noise and
    per-step parameter noise (the original's ``action`` and ``parameter`` types) spread them; start-state noise
    needs a task with a reset noise scale."""
    agent, snaps = td3
    snap = index(snaps, (0, -1))

    @jit
    def purds(params, key):
        return {name: landscape.post_update_returns(landscape.no_update, landscape.policy_returns(agent, **kw),
                                                    params, key, NUM_SAMPLES)["undiscounted"]
                for name, kw in (("none", {}), ("action", {"action_noise": 0.3}), ("param", {"param_noise": 0.3}))}

    out = purds(snap.params, jax.random.PRNGKey(4))
    assert len(np.unique(np.asarray(out["none"]))) == 1
    for name in ("action", "param"):
        assert len(np.unique(np.asarray(out[name]))) == NUM_SAMPLES, name
    with pytest.raises(ValueError, match="reset_noise_scale"):
        landscape.policy_returns(agent, start_noise=1.0)


# --------------------------------------------------------------------------------------------- interpolation


@pytest.fixture(scope="module")
def interpolation(td3):
    agent, snaps = td3
    a, b = index(snaps, (0, -1)).params, index(snaps, (1, -1)).params
    rf = landscape.policy_returns(agent)

    @jit
    def run(key, scale):
        noise = landscape.param_noise(scale)
        return (landscape.interpolation_purd(noise, rf, a, b, key, 4, NUM_SAMPLES, chunk_size=3),
                landscape.post_update_returns(noise, rf, a, key, NUM_SAMPLES),
                rf(a, key).undiscounted, rf(b, key).undiscounted)

    key = jax.random.PRNGKey(7)
    return a, b, run(key, 0.0), run(key, 1e-2)


def test_interpolate_endpoints_and_shapes(interpolation):
    a, b, _, _ = interpolation
    for part in ("actor", "obs_norm"):
        assert leaves_equal(landscape.interpolate(a, b, 0.0)[part], a[part])
        assert leaves_equal(landscape.interpolate(a, b, 1.0)[part], b[part])
    assert leaves_equal(landscape.interpolate(a, b, 1.0)["critic"], a["critic"])  # not part of the policy
    mid = landscape.interpolate(a, b, 0.25, parts=None)
    np.testing.assert_allclose(jax.tree.leaves(mid["critic"])[0],
                               0.75 * jax.tree.leaves(a["critic"])[0] + 0.25 * jax.tree.leaves(b["critic"])[0],
                               rtol=1e-6, atol=1e-7)
    path = landscape.interpolate(a, b, jnp.linspace(0.0, 1.0, 3))
    assert jax.tree.leaves(path["actor"])[0].shape[0] == 3
    assert leaves_equal(index(path["actor"], 2), b["actor"])
    with pytest.raises(ValueError, match="scalar or a 1-D"):
        landscape.interpolate(a, b, jnp.zeros((2, 2)))


def test_interpolation_purd(interpolation):
    _, _, (flat, _, ret_a, ret_b), (noisy, purd_a, _, _) = interpolation
    assert flat["undiscounted"].shape == (4, NUM_SAMPLES) and flat["alphas"].shape == (4,)
    np.testing.assert_array_equal(flat["alphas"], np.linspace(0.0, 1.0, 4, dtype=np.float32))
    np.testing.assert_array_equal(flat["undiscounted"][0], np.full(NUM_SAMPLES, ret_a))
    np.testing.assert_array_equal(flat["undiscounted"][-1], np.full(NUM_SAMPLES, ret_b))
    assert ret_a != ret_b
    # point 0 is A with the same sample keys as a plain PURD of A (common random numbers across points)
    np.testing.assert_allclose(noisy["undiscounted"][0], purd_a["undiscounted"], rtol=1e-6)
    assert len(np.unique(np.asarray(noisy["undiscounted"][1]))) > 1


def test_h5_round_trip(interpolation, tmp_path):
    _, _, (flat, _, _, _), _ = interpolation
    path = tmp_path / "interp.h5"
    config = {"num_points": 4, "agent": {"name": "td3", "hidden_sizes": (16, 16)}, "note": None, "runs": ["a", "b"]}
    landscape.write_interpolation_h5(path, {"seed0/step150__seed1/step150": dict(flat, attrs={"seed_a": 0})}, config)
    landscape.write_interpolation_h5(path, {"other": np.zeros((4, 2))}, config)  # appended, first pair kept
    groups, attrs, group_attrs = landscape.read_h5(path)
    g = groups["seed0/step150__seed1/step150"]
    np.testing.assert_array_equal(g["undiscounted"], flat["undiscounted"])
    np.testing.assert_array_equal(g["discounted"], flat["discounted"])
    np.testing.assert_array_equal(g["alphas"], flat["alphas"])
    assert groups["other"]["undiscounted"].shape == (4, 2) and groups["other"]["alphas"].shape == (4,)
    assert group_attrs["seed0/step150__seed1/step150"] == {"seed_a": 0}
    assert attrs["num_points"] == 4 and attrs["agent.name"] == "td3" and attrs["note"] is None
    assert attrs["runs"] == ["a", "b"] and list(attrs["agent.hidden_sizes"]) == [16, 16]
    assert attrs["rlland_layout"] == "interpolation"
    with pytest.raises(ValueError, match="num_points, num_samples"):
        landscape.write_interpolation_h5(path, {"bad": np.zeros(3)})
    landscape.write_purd_h5(tmp_path / "purd.h5", {"td3_actor_step/step150": {"undiscounted": np.ones((2, 5)),
                                                                             "discounted": np.ones((2, 5))}})
    groups, attrs, _ = landscape.read_h5(tmp_path / "purd.h5")
    assert groups["td3_actor_step/step150"]["discounted"].shape == (2, 5) and attrs["rlland_layout"] == "purd"


# ----------------------------------------------------------------------------------------------- rejection

CHECKS, INTERVAL = 6, 1  # with these keys the "cvar" rule rejects some proposals and accepts others


@pytest.fixture(scope="module")
def rejection(td3):
    """reject_train on 2 seeds (vmapped) with three rules sharing one compiled kernel: code 0 = the "cvar" rule,
    1 = reject everything, 2 = the "none" rule (the built-in string rules are checked in test_heuristic_rules)."""
    agent, snaps = td3
    states = index(snaps, (slice(None), -1))

    @jit
    def run(states, keys, code):
        rule = lambda new, last: jnp.select([code == 0, code == 1], [new["cvar"] < last["cvar"], True], False)
        return jax.vmap(lambda s, k: landscape.reject_train(agent, s, k, CHECKS * INTERVAL, INTERVAL, rule,
                                                            num_samples=NUM_SAMPLES))(states, keys)

    keys = jax.random.split(jax.random.PRNGKey(8), 2)
    return states, {name: run(states, keys, code) for code, name in enumerate(("cvar", "all", "none"))}


def test_heuristic_rules():
    new, last = {"cvar": 1.0, "ltp": 0.2, "mean": 0.0}, {"cvar": 2.0, "ltp": 0.1, "mean": 5.0}
    assert bool(reject_module._decide("cvar", new, last)) and bool(reject_module._decide("ltp", new, last))
    assert not bool(reject_module._decide("none", new, last))
    assert not bool(reject_module._decide("cvar", last, new)) and not bool(reject_module._decide("ltp", last, new))
    assert not bool(reject_module._decide("cvar", last, last))  # ties are accepted


def test_reject_none_accepts_everything(rejection):
    states, runs = rejection
    final, curves = runs["none"]
    assert curves["accepted"].shape == (2, CHECKS + 1) and np.all(curves["accepted"])
    # (allclose, not equal: at XLA's lowest optimisation level, used here to compile fast, a statistic feeding two
    # outputs may be computed twice with a different summation order: a last-bit difference)
    np.testing.assert_allclose(curves["cvar"], curves["proposal_cvar"], rtol=1e-6)
    np.testing.assert_array_equal(curves["proposals"][0], np.arange(CHECKS + 1) * INTERVAL)
    np.testing.assert_array_equal(final.env_steps, states.env_steps + CHECKS * INTERVAL * OFF_POLICY["num_envs"])
    assert not leaves_equal(final.buffer.data, states.buffer.data)


def test_reject_cvar_never_accepts_a_worse_cvar(rejection):
    _, runs = rejection
    _, c = runs["cvar"]
    cvar, prop, acc = (np.asarray(c[k]) for k in ("cvar", "proposal_cvar", "accepted"))
    assert np.all(np.diff(cvar, axis=1) >= 0)
    assert acc[:, 1:].any() and not acc[:, 1:].all()  # the rule was exercised both ways
    np.testing.assert_array_equal(acc[:, 1:], prop[:, 1:] >= cvar[:, :-1])
    np.testing.assert_allclose(cvar[:, 1:], np.where(acc[:, 1:], prop[:, 1:], cvar[:, :-1]), rtol=1e-6)
    np.testing.assert_array_equal(cvar[:, 0], runs["none"][1]["cvar"][:, 0])  # same root PURD


def test_rejection_restores_the_state_exactly(rejection):
    states, runs = rejection
    final, curves = runs["all"]
    assert not np.any(curves["accepted"][:, 1:])
    assert np.all(curves["cvar"] == curves["cvar"][:, :1])
    # everything goes back: networks, optimiser states, counters, env states, and the replay buffer's data,
    # cursor and size (each proposal wrote 2 transitions into a wrapped-around buffer)
    assert leaves_equal(final, states)
