"""The linear-regions study's protocol (Cohan et al. 2022; issue 17 item 4) and the 1-D car.

* the car (`rlland.envs.car`): one step of the study's dynamics and reward by hand, resets in range, no
  termination, truncation by the time limit, the speed clip and its penalty;
* "origin" lines: at initialisation (biases 0) every line through the origin of the normalised input space meets
  exactly 2 regions, while the study's line, through the raw zero state normalised (``-mean / std``), meets more;
* the plane's frames: the study's square (``e1`` towards the first anchor) and rlland's earlier one have the same
  centre and size, and each one's exact polygon count equals an independent brute-force count (distinct patterns
  on a fine float64 numpy grid) on the same fixed anchors;
* exact polygons: areas tile the square, each polygon's pattern is the one at its centroid, one polygon per
  pattern also with zero biases (no slivers where a layer-2 hyperplane runs along a layer-1 one).

The analysis's use of one reference normaliser for random trajectories and lines is checked on a trained run in
``tests/test_regions_experiment.py``.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import agents, envs, regions
from rlland.envs import car
from rlland.normalization import RunningStats


def _net(rng, in_dim, widths, bias_scale=0.3):
    layers, d = [], in_dim
    for w in widths:
        layers.append(((rng.normal(size=(d, w)) / np.sqrt(d)).astype(np.float32),
                       (bias_scale * rng.normal(size=w)).astype(np.float32)))
        d = w
    return layers


def _patterns_np(layers, x):
    h, bits = np.asarray(x, np.float64), []
    for w, b in layers:
        z = h @ np.asarray(w, np.float64) + np.asarray(b, np.float64)
        bits.append(z > 0)
        h = np.maximum(z, 0)
    return np.concatenate(bits, axis=-1)


def _grid_count(layers, origin, e1, e2, resolution):
    """Distinct activation patterns on a resolution^2 grid of the square [-1, 1]^2 (float64 numpy)."""
    g = np.linspace(-1.0, 1.0, resolution)
    uu, vv = np.meshgrid(g, g)
    x = origin + uu.reshape(-1, 1) * e1 + vv.reshape(-1, 1) * e2
    return len(np.unique(np.packbits(_patterns_np(layers, x), axis=1), axis=0))


# ------------------------------------------------------------------------------------------------- the car


def test_car_dynamics_reward_and_time_limit():
    env = envs.make(car.NAME, episode_length=3)
    assert (env.observation_size, env.action_size, env.episode_length) == (2, 1, 3)
    starts = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 256)).obs
    assert np.all(np.abs(starts[:, 0]) <= 1.0) and np.all(np.abs(starts[:, 1]) <= 0.1)
    assert starts[:, 0].std() > 0.3 and starts[:, 1].std() > 0.03  # U(-1, 1), U(-0.1, 0.1)

    step = jax.jit(env.step)
    state = env.reset(jax.random.PRNGKey(1))
    x, v = (float(s) for s in state.obs)
    for t, a in enumerate((0.5, 3.0, -0.25)):  # 3.0 is clipped to 1 by Env.step
        state, out = step(state, jnp.array([a]), jax.random.PRNGKey(2 + t))
        a = min(a, 1.0)
        x, v = x + 0.2 * v + 0.5 * 0.04 * a, v + 0.2 * a
        np.testing.assert_allclose(out.final_obs, [x, v], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(out.reward, 1 - 0.01 * abs(100 - x) - 0.001 * abs(a), atol=1e-6)
        assert not bool(out.terminated) and bool(out.truncated) == (t == 2)  # the time limit truncates

    slow = envs.make(car.NAME, episode_length=10, max_speed=0.05)  # the speed clip and its penalty
    state, out = slow.step(slow.reset(jax.random.PRNGKey(3)), jnp.array([1.0]), jax.random.PRNGKey(4))
    assert float(out.final_obs[1]) == pytest.approx(0.05)
    x = float(out.final_obs[0])
    np.testing.assert_allclose(out.reward, 1 - 0.01 * abs(100 - x) - 0.001 - 0.01, atol=1e-6)
    with pytest.raises(ValueError, match="dt > 0"):
        envs.make(car.NAME, dt=0.0)


# ------------------------------------------------------------------------------------- origin lines


def test_origin_lines_at_initialisation():
    """At initialisation (zero biases) a line through the input-space origin meets exactly 2 regions; the study's
    line through the raw zero state normalised (-mean / std, not 0) meets more."""
    env = envs.make(car.NAME, episode_length=10)
    agent = agents.make("td3", env, dict(hidden_sizes=(8, 8), activation="relu", normalize_observations=True,
                                         num_envs=1, batch_size=4, buffer_capacity=8, warmup_steps=0))
    stats = RunningStats(mean=jnp.array([40.0, 2.0]), var=jnp.array([900.0, 16.0]), count=jnp.asarray(100.0))
    params = {"actor": agent.actor.init(jax.random.PRNGKey(0), jnp.zeros((1, 2))), "obs_norm": stats}
    layers = regions.actor_layers(agent, params, fold_obs_norm=False)
    assert all(np.all(np.asarray(b) == 0) for _, b in layers)  # the premise: biases are 0 at initialisation
    states = jnp.stack([jnp.linspace(-1.0, 100.0, 32), jnp.linspace(0.1, 8.0, 32)], -1)
    key = jax.random.PRNGKey(1)
    kw = dict(num_lines=16, through="origin", max_pieces=81)
    legacy = regions.policy_line_counts(agent, params, key, states, origin="input", **kw)
    study = regions.policy_line_counts(agent, params, key, states, **kw)  # origin="raw" is the default
    np.testing.assert_array_equal(legacy.counts, 2)
    np.testing.assert_array_equal(legacy.anchors, 0.0)
    mean, std = regions.input_normalizer(agent, params)
    np.testing.assert_allclose(study.anchors, np.broadcast_to(-mean / std, (16, 2)), rtol=1e-6)
    assert np.all(np.asarray(study.counts) > 2) and not np.asarray(study.overflow).any()
    # the same line under another normaliser (the study: the best checkpoint's for every snapshot)
    other = (mean + 1.0, 2.0 * std)
    moved = regions.policy_line_counts(agent, params, key, states, normalizer=other, **kw)
    np.testing.assert_allclose(moved.anchors[0], -other[0] / other[1], rtol=1e-6)


# ------------------------------------------------------------------------------------ frames and polygons


@pytest.mark.parametrize("frame", regions.FRAMES)
def test_frame_exact_polygons_match_brute_force(frame):
    rng = np.random.default_rng(1)
    layers = _net(rng, 3, (6, 6))
    anchors = rng.normal(size=(3, 3)).astype(np.float32)
    f = regions.plane_frame(anchors, frame=frame)
    o, e1, e2, uv = (np.asarray(x, np.float64) for x in (f.origin, f.e1, f.e2, f.anchors_uv))
    r = float(f.radius)
    np.testing.assert_allclose(np.linalg.norm(anchors - o, axis=1), r, rtol=1e-5)  # the circumcentre
    np.testing.assert_allclose([np.linalg.norm(e1), np.linalg.norm(e2)], 1.25 * r, rtol=1e-5)
    assert abs(e1 @ e2) < 1e-5 * (e1 @ e1)
    np.testing.assert_allclose(o + uv[:, :1] * e1 + uv[:, 1:] * e2, anchors, atol=1e-5)
    if frame == "study":  # get_sample_plane: e1 = 1.25 (a - O), e2 on the side of a - b orthogonal to e1
        np.testing.assert_allclose(uv[0], [0.8, 0.0], atol=1e-5)
        assert (anchors[0] - anchors[1]) @ e2 > 0
    else:  # rlland's earlier frame: e1 along b - a
        np.testing.assert_allclose(uv[1, 1] - uv[0, 1], 0.0, atol=1e-5)
        assert (anchors[1] - anchors[0]) @ e1 > 0

    exact = regions.plane_polygons(layers, f)
    assert exact.num_regions == len(exact.polygons)  # one polygon per pattern
    np.testing.assert_allclose(exact.areas.sum(), 4.0, rtol=1e-9)
    assert exact.areas.min() > 0
    centroids = np.stack([p.mean(0) for p in exact.polygons])
    np.testing.assert_array_equal(_patterns_np(layers, o + centroids[:, :1] * e1 + centroids[:, 1:] * e2),
                                  exact.patterns)
    # independent count: distinct patterns on a fine grid. Every polygon holds a disc around its centroid wider than
    # a grid cell's half-diagonal (checked), so each region holds a grid point and the counts must agree
    resolution = 1000
    spacing = 2.0 / (resolution - 1)
    for poly in exact.polygons:
        edges = np.roll(poly, -1, axis=0) - poly
        normals = np.stack([-edges[:, 1], edges[:, 0]], -1) / np.linalg.norm(edges, axis=1, keepdims=True)
        assert np.abs(np.sum((poly.mean(0) - poly) * normals, axis=1)).min() > spacing / np.sqrt(2)
    assert exact.num_regions == _grid_count(layers, o, e1, e2, resolution)
    grid = regions.plane_partition(layers, anchors, resolution=60, frame=frame, max_pieces=63)
    assert int(grid.num_regions) <= int(grid.num_regions_gridlines) <= exact.num_regions


def test_frames_meet_different_regions():
    """The same anchors, the two frames: same circle, rotated squares, so other regions (issue 17's 81 vs 75)."""
    rng = np.random.default_rng(1)
    layers = _net(rng, 3, (6, 6))
    anchors = rng.normal(size=(3, 3)).astype(np.float32)
    counts = {frame: regions.plane_polygons(layers, regions.plane_frame(anchors, frame=frame)).num_regions
              for frame in regions.FRAMES}
    assert counts == {"study": 32, "rlland": 33}  # each checked by brute force above


def test_exact_polygons_zero_biases_and_state_plane():
    rng = np.random.default_rng(5)
    layers = _net(rng, 2, (8, 8), bias_scale=0.0)  # every hyperplane of layer 1 through the origin
    exact = regions.state_plane_polygons(layers, ((-1.0, 2.0), (-0.5, 1.5)))
    assert exact.num_regions == len(exact.polygons)
    np.testing.assert_allclose(exact.areas.sum(), 3.0 * 2.0, rtol=1e-9)
    assert exact.areas.min() > 1e-6 * 6.0
    # with a normaliser folded in, the polygons are drawn in raw coordinates
    mean, std = np.array([10.0, -2.0]), np.array([4.0, 0.5])
    raw = regions.state_plane_polygons(layers, ((0.0, 20.0), (-3.0, -1.0)), mean=mean, std=std)
    centroids = np.stack([p.mean(0) for p in raw.polygons])
    np.testing.assert_array_equal(_patterns_np(layers, (centroids - mean) / std), raw.patterns)
    with pytest.raises(ValueError, match="2-D state space"):
        regions.state_plane_polygons(_net(rng, 3, (4,)), ((0, 1), (0, 1)))
    with pytest.raises(ValueError, match="box"):
        regions.polygon_regions(layers, np.zeros(2), np.eye(2)[0], np.eye(2)[1], box=((1, 0), (0, 1)))
