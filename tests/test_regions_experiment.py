"""Linear regions of agents and training runs (rlland.regions.policy, rlland.regions.analysis).

Unit tests use a toy 2-D core (no Brax): ``actor_layers`` must reproduce each actor type's hidden features (with and
without observation normalisation, folded or not), ``collect_trajectory`` must mask after the episode ends, and the
plane / state-plane figures must be written. A module fixture trains a tiny ReLU PPO run with ``train.run``
(the study's 1-D car, ``car1d``, 50-step episodes, 8-8 nets, 2 seeds, 2 snapshots) and runs the analysis on it with
its default buffers and the study's protocol; every stored count is compared with a direct
``regions.trajectory_metrics`` call with a buffer that cannot overflow, under the normaliser the protocol names
(each snapshot's own for the fixed and current trajectories, the last snapshot's for the random ones and the
lines, whose "origin" is the raw zero state normalised); the buffer-doubling retry is tested on its own with a
fake analysis.
"""
import importlib.util
import os
import pathlib
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import agents, regions, train, runs
from rlland.envs import Env, car
from rlland.normalization import RunningStats
from rlland.regions import analysis

ROOT = pathlib.Path(__file__).resolve().parents[1]
_CPU_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
FAST = _CPU_FAST_COMPILE if jax.default_backend() == "cpu" else None
STEPS, SEEDS, EPISODE = (32, 64), 2, 50


def load_module(name, rel):
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


regions_config = load_module("configs_regions", "configs/regions.py")
train_config = load_module("configs_train", "configs/train.py")


def relu_forward(layers, x):
    pres = []
    for w, b in layers:
        pres.append(x @ w + b)
        x = jnp.maximum(pres[-1], 0.0)
    return x, pres


# ----------------------------------------------------------------------------------------------- toy agents


class PointCore:
    """2-D point: obs (x, v); v += 0.2 a, x += 0.2 v; terminates on the 4th step (t == 3)."""

    observation_size = 2
    action_size = 1

    def reset(self, key):
        obs = jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0)
        return (jnp.zeros((), jnp.int32), obs), obs

    def step(self, inner, action):
        t, (x, v) = inner[0], inner[1]
        v = v + 0.2 * action[0]
        obs = jnp.stack([x + 0.2 * v, v])
        return (t + 1, obs), obs, -jnp.abs(obs[0]), t >= 3


POINT = Env(PointCore(), "point", episode_length=20)
TOY = dict(hidden_sizes=(8, 8), activation="relu")
OFF_POLICY = dict(TOY, num_envs=1, batch_size=4, buffer_capacity=8, warmup_steps=0)


def toy_agent(name, normalize):
    cfg = dict(OFF_POLICY if name != "ppo" else dict(TOY, num_envs=2, unroll_length=2, num_minibatches=1),
               normalize_observations=normalize)
    return agents.make(name, POINT, cfg)


def toy_params(agent, key, normalize):
    k_actor, k_mean, k_var = jax.random.split(key, 3)
    stats = RunningStats.create(POINT.observation_size)
    if normalize:
        stats = RunningStats(mean=0.5 * jax.random.normal(k_mean, (2,)),
                             var=jax.random.uniform(k_var, (2,), minval=0.5, maxval=3.0), count=jnp.asarray(10.0))
    return {"actor": agent.actor.init(k_actor, jnp.zeros((1, POINT.observation_size))), "obs_norm": stats}


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("name,trunk", [("td3", "_Head_0/MLP_0"), ("sac", "MLP_0"), ("ppo", "_Head_0/MLP_0")])
def test_actor_layers_reproduce_hidden_features(name, trunk, normalize):
    agent = toy_agent(name, normalize)
    assert regions.actor_trunk(agent) == trunk
    params = toy_params(agent, jax.random.PRNGKey(1), normalize)
    obs = jax.random.normal(jax.random.PRNGKey(2), (32, 2))  # within the normaliser's +-10 clip
    _, feats = agent.actor.apply(params["actor"], agent.normalize(params, obs), with_features=True)
    raw_layers = regions.actor_layers(agent, params)  # folded: takes raw states
    assert [w.shape for w, _ in raw_layers] == [(2, 8), (8, 8)]
    post, pres = relu_forward(raw_layers, obs)
    np.testing.assert_allclose(post, feats["post"], rtol=1e-5, atol=1e-5)
    for got, want in zip(pres, feats["hidden_pre"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    mean, std = regions.input_normalizer(agent, params)
    post_n, _ = relu_forward(regions.actor_layers(agent, params, fold_obs_norm=False), (obs - mean) / std)
    np.testing.assert_allclose(post_n, feats["post"], rtol=1e-5, atol=1e-5)
    if not normalize:
        np.testing.assert_array_equal(mean, 0.0)
        np.testing.assert_array_equal(std, 1.0)
    # exact counts agree in raw space (folded layers) and in input space (normaliser handed to the metrics)
    states = obs[:12]
    folded = regions.trajectory_metrics(raw_layers, states, max_pieces=81)
    unfolded = regions.policy_trajectory_metrics(agent, params, states, max_pieces=81)
    assert int(folded.num_transitions) == int(unfolded.num_transitions) > 0
    np.testing.assert_allclose(folded.length, unfolded.length, rtol=1e-6)
    assert int(regions.clipped_states(agent, params, states)) == 0


def test_actor_layers_refuses_non_relu_and_bad_params():
    agent = agents.make("ppo", POINT, dict(hidden_sizes=(8, 8), num_envs=2, unroll_length=2, num_minibatches=1))
    params = toy_params(agent, jax.random.PRNGKey(0), False)
    with pytest.raises(ValueError, match="ReLU actor"):
        regions.actor_layers(agent, params)
    relu = toy_agent("td3", False)
    with pytest.raises(ValueError, match="no trunk"):
        regions.actor_layers(relu, {"actor": {"params": {}}, "obs_norm": params["obs_norm"]})
    with pytest.raises(ValueError, match="policy must be one of"):
        regions.collect_trajectory(relu, params, POINT, jax.random.PRNGKey(0), 4, "greedy")
    with pytest.raises(ValueError, match="through must be"):
        regions.policy_line_counts(relu, toy_params(relu, jax.random.PRNGKey(0), False), jax.random.PRNGKey(0),
                                   jnp.zeros((4, 2)), num_lines=2, through="median")


@pytest.fixture(scope="module")
def toy_trajectories():
    """A TD3 toy actor for 2 seeds (vmapped) and its trajectories of every kind, 8 steps (episodes last 4)."""
    agent = toy_agent("td3", True)
    keys = jax.random.split(jax.random.PRNGKey(3), SEEDS)
    params = jax.vmap(lambda k: toy_params(agent, k, True))(keys)

    @partial(jax.jit, compiler_options=FAST)
    def collect(params, key):  # one scan for every kind: the policy index is traced (and vmapped)
        per_seed = lambda pr, k, mode: regions.collect_trajectory(agent, pr, POINT, k, 8, mode)  # noqa: E731
        modes = jnp.arange(len(regions.POLICIES))
        out = jax.vmap(jax.vmap(per_seed, in_axes=(0, 0, None)), in_axes=(None, None, 0))(
            params, jax.random.split(key, SEEDS), modes)
        return {p: jax.tree.map(lambda x: x[i], out) for i, p in enumerate(regions.POLICIES)}

    return agent, params, collect(params, jax.random.PRNGKey(4))


def test_collect_trajectory_masks_after_the_end(toy_trajectories):
    agent, params, trajs = toy_trajectories
    for policy, t in trajs.items():
        assert t.states.shape == (SEEDS, 8, 2) and t.mask.shape == (SEEDS, 8)
        # the toy episode terminates on its 4th step: 4 states (the terminal observation excluded), then padding
        np.testing.assert_array_equal(t.mask, np.tile([True] * 4 + [False] * 4, (SEEDS, 1)), err_msg=policy)
    det, rnd = trajs["deterministic"], trajs["random"]
    # same keys: same start state; the dynamics follow the policy's actions (v_{t+1} = v_t + 0.2 a_t)
    np.testing.assert_array_equal(det.states[:, 0], rnd.states[:, 0])
    for s in range(SEEDS):
        p = jax.tree.map(lambda x: x[s], params)
        a = agent.act(p, det.states[s, :3], None, deterministic=True)[:, 0]
        np.testing.assert_allclose(det.states[s, 1:4, 1], det.states[s, :3, 1] + 0.2 * a, rtol=1e-5, atol=1e-6)
    assert not np.allclose(det.states[:, 1:4], rnd.states[:, 1:4])


def test_line_counts_draw_only_valid_states(toy_trajectories):
    agent, params, trajs = toy_trajectories
    p = jax.tree.map(lambda x: x[0], params)
    t = trajs["random"]
    mean, std = regions.input_normalizer(agent, p)
    x = (t.states[0] - mean) / std  # the network's inputs
    lc = regions.policy_line_counts(agent, p, jax.random.PRNGKey(6), t.states[0], t.mask[0], num_lines=16,
                                    through="mean", max_pieces=81)
    anchor = np.asarray(x[:4]).mean(0)  # the mean of the 4 valid states only
    np.testing.assert_allclose(lc.anchors, np.broadcast_to(anchor, (16, 2)), rtol=1e-5, atol=1e-6)
    # each line passes through one of the 4 valid states, not through the padding after the episode
    u = (np.asarray(x) - anchor) / np.linalg.norm(np.asarray(x) - anchor, axis=-1, keepdims=True)
    match = np.abs(np.einsum("ld,td->lt", np.asarray(lc.directions), u) - 1.0) < 1e-5  # [lines, T]
    assert np.all(match[:, :4].any(-1))
    assert np.asarray(lc.counts).min() >= 1 and not np.asarray(lc.overflow).any()


def test_snapshot_metrics_take_a_reference_normalizer(toy_trajectories):
    """snapshot_region_metrics: trajectories named in ``normalizers`` and the lines use the given normaliser (the
    study's protocol: the reference snapshot's), the others the params' own; the origin is -mean / std of the
    lines' normaliser. The analysis config refuses unknown protocol choices."""
    agent, params, trajs = toy_trajectories
    p = jax.tree.map(lambda x: x[0], params)
    ref = regions.input_normalizer(agent, jax.tree.map(lambda x: x[1], params))  # another normaliser as reference
    own = regions.input_normalizer(agent, p)
    t = trajs["random"]  # [E = 2, T, d]
    kw = dict(num_lines=4, max_pieces=81, line_max_pieces=81)
    key = jax.random.PRNGKey(8)
    both = {"fixed": t, "random": t}
    out = regions.snapshot_region_metrics(agent, p, both, t, key, normalizers={"random": ref}, line_normalizer=ref,
                                          **kw)
    for name, norm in (("fixed", own), ("random", ref)):
        for e in range(2):
            m = regions.policy_trajectory_metrics(agent, p, t.states[e], t.mask[e], max_pieces=81, normalizer=norm)
            assert int(m.num_transitions) == int(out[name]["metrics"].num_transitions[e]), (name, e)
            np.testing.assert_allclose(m.length_normalized, out[name]["metrics"].length_normalized[e], rtol=1e-6)
    assert not np.allclose(out["fixed"]["metrics"].length_normalized, out["random"]["metrics"].length_normalized)
    np.testing.assert_allclose(out["lines"]["origin"].anchors[0], -ref[0] / ref[1], rtol=1e-6)
    legacy = regions.snapshot_region_metrics(agent, p, both, t, key, line_origin="input", **kw)
    np.testing.assert_array_equal(legacy["lines"]["origin"].anchors, 0.0)
    np.testing.assert_array_equal(legacy["random"]["metrics"].num_transitions, out["fixed"]["metrics"].num_transitions)
    with pytest.raises(ValueError, match="not trajectories"):
        regions.snapshot_region_metrics(agent, p, both, t, key, normalizers={"current": ref}, **kw)
    for key_name, bad in (("normalizer", "best"), ("line_origin", "mean"), ("plane.frame", "tilted")):
        c = regions_config.study()
        c.update_from_flattened_dict({key_name: bad})
        with pytest.raises(ValueError, match=key_name):
            analysis.check_config(c)


def test_exact_counts_doubles_overflowing_buffers():
    """The analysis's retry: a buffer that overflows is doubled (capped at the bound) until nothing does."""
    calls = []

    def compute(mp, lp):  # a fake analysis whose segments need 20 pieces and lines 50
        calls.append((mp, lp))
        m = regions.TrajectoryMetrics(*([np.zeros(2)] * 10), overflow=np.array([False, mp < 20]))
        line = regions.LineCounts(np.ones(3), np.array([lp < 50, False, False]), None, None)
        return {k: {"metrics": m} for k in analysis.KINDS} | {"lines": {"origin": line, "mean": line}}

    out, mp, lp = analysis.exact_counts(compute, 8, 16, 81, log=lambda msg: None)
    assert calls == [(8, 16), (16, 32), (32, 64)] and (mp, lp) == (32, 64)
    calls.clear()
    _, mp, lp = analysis.exact_counts(compute, 8, 16, 12, log=lambda msg: None)  # the bound cannot overflow
    assert calls == [(8, 12), (12, 12)] and (mp, lp) == (12, 12)


def test_plane_and_state_plane_figures(toy_trajectories, tmp_path):
    agent, params, trajs = toy_trajectories
    p = jax.tree.map(lambda x: x[0], params)
    t = jax.tree.map(lambda x: np.asarray(x[:, None]), trajs["deterministic"])  # [S, E=1, T, d]
    plane_c = regions_config.quick().plane
    plane_c.resolution = 24
    plane_c.gridlines = False  # (exact grid-line counting is tested in test_regions.py)
    data, attrs, part = analysis.plane_analysis(agent, p, t.states[0], t.mask[0], plane_c, seed=0, step=7)
    assert data["plane/region_ids"].shape == (24, 24) and int(data["plane/num_regions"]) >= 1
    # the exact polygons: at least the regions the grid shows, stored as vertices + offsets tiling the square
    n_exact, off = int(data["plane/num_regions_exact"]), data["plane/polygons/offsets"]
    assert n_exact >= int(data["plane/num_regions"]) and attrs["plane.frame"] == "study"
    assert off[0] == 0 and off[-1] == len(data["plane/polygons/vertices"]) and np.all(np.diff(off) >= 3)
    area = sum(regions.polygon_area(data["plane/polygons/vertices"][a:b]) for a, b in zip(off[:-1], off[1:]))
    assert area == pytest.approx(4.0, rel=1e-9)
    assert sorted(set(data["plane/polygons/region_ids"].tolist())) == list(range(n_exact))
    e_t = np.asarray(attrs["plane.anchor_indices"])
    assert np.all(t.mask[0][e_t[:, 0], e_t[:, 1]])
    paths = analysis.plane_figures(agent, p, part, t.states[0], t.mask[0], str(tmp_path), plane_c, seed=0,
                                   step=7)
    assert [os.path.basename(x) for x in paths] == ["regions_plane_seed0_step7.png",
                                                    "regions_state_plane_seed0_step7.png"]
    assert all(os.path.getsize(x) > 0 for x in paths)


# ------------------------------------------------------------------------------------ the run analysis


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    c = train_config.base("ppo", car.NAME)
    c.env.episode_length = EPISODE
    c.agent.update(hidden_sizes=(8, 8), activation="relu", num_envs=4, unroll_length=8, num_minibatches=2,
                   epochs=1, normalize_observations=True)  # per-snapshot normalisers: the protocol matters
    c.num_seeds = SEEDS
    c.total_steps = STEPS[-1]
    c.eval_interval = c.checkpoint_interval = STEPS[-1]
    c.eval_episodes = 1
    c.snapshot_steps = STEPS
    c.wandb.mode = "disabled"
    c.progress = False
    path = str(tmp_path_factory.mktemp("ppo_run"))
    train.run(c, run_dir=path)
    return path


@pytest.fixture(scope="module")
def result(run_dir):
    c = regions_config.get_config("quick")
    c.length = 0  # the run's 50-step episodes
    c.num_episodes.random = 2
    c.num_lines = 8
    c.plane.resolution = 32
    c.plane.gridlines = False  # (exact grid-line counting is tested in test_regions.py)
    path = analysis.analyse_run(c, run_dir, verbose=False, compiler_options=FAST)
    data, attrs = analysis.read_h5(path)
    return c, data, attrs


def test_h5_layout(result):
    c, d, attrs = result
    S, N, T, D = SEEDS, len(STEPS), EPISODE, 2
    assert list(d["steps"]) == list(STEPS) and list(d["seeds"]) == [0, 1]
    assert attrs["rlland_layout"] == "regions" and attrs["algo"] == "ppo" and attrs["num_neurons"] == 16
    assert attrs["config.num_lines"] == 8 and attrs["length"] == T and attrs["fixed_step"] == STEPS[-1]
    assert attrs["config.normalizer"] == "reference" and attrs["config.line_origin"] == "raw"
    for kind, E in (("fixed", 1), ("current", 1), ("random", 2)):
        for name in analysis.METRICS:
            assert d[f"{kind}/{name}"].shape == (S, N), (kind, name)
            assert d[f"{kind}/episodes/{name}"].shape == (S, N, E), (kind, name)
        assert not d[f"{kind}/episodes/overflow"].any()
    assert d["fixed/states"].shape == (S, 1, T, D) and d["random/states"].shape == (S, 2, T, D)
    assert d["current/states"].shape == (S, N, 1, T, D) and d["current/mask"].shape == (S, N, 1, T)
    for through in ("origin", "mean"):
        counts = d[f"lines/{through}/counts"]
        assert counts.shape == (S, N, 8) and counts.min() >= 1 and counts.max() <= 81
        assert not d[f"lines/{through}/overflow"].any()
        np.testing.assert_allclose(d[f"lines/{through}/mean"], counts.mean(-1))
    assert list(d["max_pieces/segments"]) == [64, 64] and list(d["max_pieces/lines"]) == [64, 64]
    assert d["plane/region_ids"].shape == (32, 32) and int(d["plane/num_regions"]) >= 1
    assert int(d["plane/num_regions_gridlines"]) == -1  # not requested
    assert int(d["plane/num_regions_exact"]) >= int(d["plane/num_regions"])
    idx = np.asarray(attrs["plane.anchor_indices"])
    np.testing.assert_array_equal(d["plane/anchors_raw"], d["fixed/states"][0][idx[:, 0], idx[:, 1]])


def test_densities_finite_and_nonnegative(result):
    _, d, _ = result
    for kind in analysis.KINDS:
        for name in ("density", "density_per_neuron", "density_normalized", "length", "transitions"):
            v = d[f"{kind}/{name}"]
            assert np.all(np.isfinite(v)) and np.all(v >= 0), (kind, name)
        np.testing.assert_allclose(d[f"{kind}/episodes/density_per_neuron"] * 16, d[f"{kind}/episodes/density"],
                                   rtol=1e-5)
    # the fixed trajectory is the last snapshot's deterministic episode: a full 50 steps, 2-D states
    assert np.all(d["fixed/mask"].sum(-1) >= 2)


def test_transitions_equal_direct_trajectory_metrics(result, run_dir):
    """Every count, recomputed under the study's protocol: the fixed and current trajectories under each snapshot's
    own normaliser, the random trajectories and the lines under the reference (last, fixed_step) snapshot's."""
    c, d, _ = result
    _, _, agent = runs.load_run(run_dir)
    last = runs.load_snapshot(run_dir, STEPS[-1]).params
    line_keys = analysis.analysis_keys(c.seed, range(SEEDS))["lines"]
    own_vs_ref = []
    for j, step in enumerate(STEPS):
        params = runs.load_snapshot(run_dir, step).params
        for s in range(SEEDS):
            p = runs.select_seed(params, s)
            layers = regions.actor_layers(agent, p, fold_obs_norm=False)
            own = regions.input_normalizer(agent, p)
            ref = regions.input_normalizer(agent, runs.select_seed(last, s))
            own_vs_ref.append(float(np.abs(np.asarray(own[0]) - np.asarray(ref[0])).max()))
            trajs = {"fixed": (d["fixed/states"][s], d["fixed/mask"][s], own),
                     "current": (d["current/states"][s, j], d["current/mask"][s, j], own),
                     "random": (d["random/states"][s], d["random/mask"][s], ref)}
            for kind, (states, masks, (mean, std)) in trajs.items():
                for e in range(states.shape[0]):
                    m = regions.trajectory_metrics(layers, states[e], mask=masks[e], mean=mean, std=std,
                                                   max_pieces=81)  # prod(8 + 1, 8 + 1): cannot overflow
                    where = (kind, step, s, e)
                    assert not bool(m.overflow)
                    assert int(m.num_transitions) == d[f"{kind}/episodes/transitions"][s, j, e], where
                    assert int(m.num_regions_pieces) == d[f"{kind}/episodes/unique_patterns"][s, j, e], where
                    np.testing.assert_allclose(m.length, d[f"{kind}/episodes/length"][s, j, e], rtol=1e-6)
            # the lines: the same draws (the analysis's keys), the reference normaliser, the raw zero state
            k_origin, k_mean = jax.random.split(line_keys[s])
            flat = d["fixed/states"][s].reshape(-1, 2), d["fixed/mask"][s].reshape(-1)
            for through, k in (("origin", k_origin), ("mean", k_mean)):
                lc = regions.policy_line_counts(agent, p, k, *flat, num_lines=8, through=through, normalizer=ref,
                                                max_pieces=81)
                np.testing.assert_array_equal(lc.counts, d[f"lines/{through}/counts"][s, j], err_msg=(through, s, j))
    assert max(own_vs_ref) > 1e-3  # the snapshots' normalisers differ: the protocol is tested, not a no-op


def test_figures_written(result, run_dir):
    names = ["regions_density.png", "regions_lines.png", f"regions_plane_seed0_step{STEPS[-1]}.png",
             f"regions_state_plane_seed0_step{STEPS[-1]}.png"]  # the car's 2-D state plane
    for name in names:
        path = os.path.join(run_dir, "figures", name)
        assert os.path.isfile(path) and os.path.getsize(path) > 1000, name


def test_rerun_skips_and_a_lost_snapshot_is_recomputed_alone(result, run_dir, tmp_path, capsys):
    """regions.h5 is written per snapshot: a re-run with the same settings computes nothing, and a file that lost a
    snapshot (an interrupted analysis) gets that snapshot alone recomputed, with the counts of the full run."""
    import shutil

    c, d, _ = result
    c = c.copy_and_resolve_references()
    c.figures = False
    c.plane.enabled = False
    copy = str(tmp_path / "run")
    shutil.copytree(run_dir, copy)
    path = os.path.join(copy, analysis.FILE_NAME)
    datasets, attrs = analysis.read_raw(path)
    analysis.analyse_run(c, copy, verbose=True, compiler_options=FAST)
    assert f"steps {list(STEPS)}: already in" in capsys.readouterr().out
    assert analysis.read_raw(path)[0].keys() == datasets.keys()

    lost = STEPS[0]  # as if the analysis had been killed before this snapshot was written
    analysis.write_h5(path, {k: v for k, v in datasets.items() if not k.startswith(f"step_{lost}/")
                             and k != "steps"} | {"steps": np.asarray(STEPS[1:])},
                      {k: v for k, v in attrs.items() if not k.startswith(f"step_{lost}.")})
    analysis.analyse_run(c, copy, verbose=True, compiler_options=FAST)
    out = capsys.readouterr().out
    assert f"steps {list(STEPS[1:])}: already in" in out and f"step {lost} (" in out
    again = analysis.read_h5(path)[0]
    for kind in analysis.KINDS:  # integer counts are exact; lengths are float sums over the same states
        for name in ("transitions", "unique_patterns", "timesteps"):
            np.testing.assert_array_equal(again[f"{kind}/episodes/{name}"], d[f"{kind}/episodes/{name}"])
        np.testing.assert_allclose(again[f"{kind}/episodes/length"], d[f"{kind}/episodes/length"], rtol=1e-6)
    for through in ("origin", "mean"):
        np.testing.assert_array_equal(again[f"lines/{through}/counts"], d[f"lines/{through}/counts"])
