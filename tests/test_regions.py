"""Tests for rlland.regions: exact 1-D counting, trajectory metrics, plane partitions, plots.

Brute-force reference: dense sampling in float64 numpy, counting activation-pattern changes between
consecutive samples. Each change needs at least one breakpoint inside its gap, so the brute count is a
LOWER bound of the true count, with equality whenever every gap holds at most one breakpoint, which is
guaranteed when the smallest exact piece is longer than the sample spacing. The tests assert the bound
always and equality when the smallest piece exceeds twice the spacing (and check that this is the common case).
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import regions

NUM_SEEDS = 4


def _net(rng, in_dim, widths, bias_scale=0.5):
    layers, d = [], in_dim
    for w in widths:
        layers.append(
            (
                (rng.normal(size=(d, w)) / np.sqrt(d)).astype(np.float32),
                (bias_scale * rng.normal(size=w)).astype(np.float32),
            )
        )
        d = w
    return layers


def _stack(nets):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *nets)


def _unstack(layers, i):
    return [(np.asarray(w[i]), np.asarray(b[i])) for w, b in layers]


def _patterns_np(layers, x):
    h, bits = np.asarray(x, np.float64), []
    for w, b in layers:
        z = h @ np.asarray(w, np.float64) + np.asarray(b, np.float64)
        bits.append(z > 0)
        h = np.maximum(z, 0)
    return np.concatenate(bits, axis=-1)


def _direction(p0, p1):
    """The library's parametrisation x(t) = p0 + t d with d = p1 - p0 rounded in float32 (matters far out)."""
    return np.asarray(np.asarray(p1, np.float32) - np.asarray(p0, np.float32), np.float64)


def _brute_count(layers, p0, p1, ts):
    """1 + number of pattern changes between consecutive samples x(t_i) (float64; patterns bit-packed)."""
    h, codes = np.asarray(p0, np.float64)[None] + ts[:, None] * _direction(p0, p1)[None], []
    for w, b in layers:
        z = h @ np.asarray(w, np.float64) + np.asarray(b, np.float64)
        codes.append(np.packbits(z > 0, axis=1))
        h = np.maximum(z, 0)
    codes = np.concatenate(codes, axis=1)
    changed = np.flatnonzero(np.any(codes[1:] != codes[:-1], axis=1))
    return 1 + len(changed), changed


def _check_against_brute(layers, p0, p1, res, t_lo, t_hi, num_samples):
    """Brute force on [t_lo, t_hi]; returns True when equality was asserted (well-separated breakpoints)."""
    count = int(res.count)
    t = np.asarray(res.t)[: count - 1].astype(np.float64)
    assert np.all(np.isfinite(t)) and np.all(np.diff(t) > 0)
    ts = np.linspace(t_lo, t_hi, num_samples)
    spacing = ts[1] - ts[0]
    brute, changed = _brute_count(layers, p0, p1, ts)
    assert brute <= count, (brute, count)
    min_piece = np.min(np.diff(np.concatenate([[t_lo], t, [t_hi]])))
    if min_piece > 2 * spacing:
        assert brute == count, (brute, count, min_piece, spacing)
        # each exact breakpoint lies in the sample gap where the sampled pattern changes
        tol = 1e-5 * max(1.0, abs(t_lo), abs(t_hi))  # float32 breakpoints
        assert np.all(ts[changed] - tol <= t) and np.all(t <= ts[changed + 1] + tol)
        # every piece's reported pattern is the pattern at its representative point
        reps = np.asarray(res.representatives)[:count].astype(np.float64)
        pts = np.asarray(p0, np.float64) + reps[:, None] * _direction(p0, p1)
        np.testing.assert_array_equal(_patterns_np(layers, pts), np.asarray(res.patterns)[:count])
        return True
    return False


# ----------------------------------------------------------------------------------------------------
# fixtures: a few seeds per architecture, stacked so that one compiled vmap serves all seeds; the same
# jitted functions are reused across tests so that each shape compiles once.


ARCHS = {"three_layers": (3, (8, 12, 6)), "two_layers": (4, (16, 10))}
SEG_PIECES, LINE_PIECES = 128, 512
seg_fn = jax.jit(jax.vmap(lambda l, a, b: regions.segment_breakpoints(l, a, b, max_pieces=SEG_PIECES)))
line_fn = jax.jit(jax.vmap(lambda l, a, b: regions.count_on_line(l, a, b, max_pieces=LINE_PIECES, return_details=True)))


@pytest.fixture(scope="module", params=list(ARCHS))
def deep(request):
    in_dim, widths = ARCHS[request.param]
    rng = np.random.default_rng(len(widths))
    nets = [_net(rng, in_dim, widths) for _ in range(NUM_SEEDS)]
    p0 = (1.5 * rng.normal(size=(NUM_SEEDS, in_dim))).astype(np.float32)
    p1 = (1.5 * rng.normal(size=(NUM_SEEDS, in_dim))).astype(np.float32)
    stacked = _stack(nets)
    return dict(
        nets=nets, stacked=stacked, p0=p0, p1=p1, widths=widths, in_dim=in_dim,
        seg=seg_fn(stacked, p0, p1), line=line_fn(stacked, p0, p1),
    )


def _pick(res, i):
    return jax.tree.map(lambda x: x[i], res)


def _repeat(layers, num=NUM_SEEDS):
    return _stack([layers] * num)


# ----------------------------------------------------------------------------------------------------
# exact counting


def test_one_hidden_layer_infinite_line_gives_width_plus_one():
    rng = np.random.default_rng(0)
    width = 12
    nets = _stack([_net(rng, 3, (width,)) for _ in range(NUM_SEEDS)])
    p0 = rng.normal(size=(NUM_SEEDS, 3)).astype(np.float32)
    # random lines through the origin (reference B.2 sanity check: n + 1 regions), for every seed at once
    lc = jax.vmap(lambda l, k: regions.random_line_counts(k, l, jnp.zeros(3), num_lines=6, max_pieces=64))(
        nets, jax.random.split(jax.random.key(1), NUM_SEEDS)
    )
    np.testing.assert_array_equal(np.asarray(lc.counts), width + 1)
    assert not np.any(np.asarray(lc.overflow))
    layers = _unstack(nets, 0)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(lc.directions), axis=-1), 1.0, rtol=1e-5)
    sl = regions.state_line_counts(jax.random.key(2), layers, p0, num_lines=6, through="mean", max_pieces=64)
    np.testing.assert_array_equal(np.asarray(sl.counts), width + 1)
    # a finite segment of the same lines meets at most as many regions
    seg = regions.random_line_counts(
        jax.random.key(1), layers, jnp.zeros(3), num_lines=6, segment_length=1.0, max_pieces=64
    )
    assert np.all(np.asarray(seg.counts) <= width + 1) and np.all(np.asarray(seg.counts) >= 1)


def test_segment_counts_match_dense_sampling(deep):
    asserted_equal = 0
    for i, layers in enumerate(deep["nets"]):
        res = _pick(deep["seg"], i)
        assert not bool(res.overflow)
        assert int(res.count) > 2  # the segment is long enough to be interesting
        asserted_equal += _check_against_brute(layers, deep["p0"][i], deep["p1"][i], res, 0.0, 1.0, 100_001)
    assert asserted_equal >= NUM_SEEDS - 1  # the well-separated case is the common one


def test_line_counts_match_dense_sampling_and_asymptotic_patterns(deep):
    asserted_equal = 0
    windows = []
    for i, layers in enumerate(deep["nets"]):
        res = _pick(deep["line"], i)
        assert not bool(res.overflow)
        count = int(res.count)
        t = np.asarray(res.t)[: count - 1]
        lo, hi = float(t.min()) - 1.0, float(t.max()) + 1.0
        windows.append((lo, hi))
        asserted_equal += _check_against_brute(layers, deep["p0"][i], deep["p1"][i], res, lo, hi, 200_001)
        # nothing beyond the window: the end pieces' patterns hold far out (float64 numpy)
        far = np.array([lo - 1e4, lo - 1e2, lo - 1.0, hi + 1.0, hi + 1e2, hi + 1e4])
        d = _direction(deep["p0"][i], deep["p1"][i])
        pats = _patterns_np(layers, np.asarray(deep["p0"][i], np.float64) + far[:, None] * d)
        pats_res = np.asarray(res.patterns)
        np.testing.assert_array_equal(pats[:3], np.broadcast_to(pats_res[0], pats[:3].shape))
        np.testing.assert_array_equal(pats[3:], np.broadcast_to(pats_res[count - 1], pats[3:].shape))
        # the unit segment's pieces are a sub-partition of the line's
        assert int(_pick(deep["seg"], i).count) <= count <= regions.pieces_upper_bound(deep["widths"])
    assert asserted_equal >= NUM_SEEDS - 1
    # the segment over a window holding every breakpoint has exactly the line's count
    d = deep["p1"] - deep["p0"]
    lo, hi = np.array(windows, np.float32).T
    seg = seg_fn(deep["stacked"], deep["p0"] + lo[:, None] * d, deep["p0"] + hi[:, None] * d)
    np.testing.assert_array_equal(np.asarray(seg.count), np.asarray(deep["line"].count))


def test_counts_add_up_over_subdivided_segments(deep):
    layers = deep["nets"][0]
    p0, p1 = deep["p0"][0], deep["p1"][0]
    total = int(deep["seg"].count[0])
    splits = np.sort(np.random.default_rng(7).uniform(0.05, 0.95, size=NUM_SEEDS - 1))
    knots = (p0[None] + np.concatenate([[0.0], splits, [1.0]])[:, None] * (p1 - p0)[None]).astype(np.float32)
    parts = seg_fn(_repeat(layers), knots[:-1], knots[1:])
    counts = np.asarray(parts.count)
    pats = np.asarray(parts.patterns)
    # junction merges: the left part's last piece and the right part's first piece are one region
    merges = int(np.sum(np.all(pats[np.arange(NUM_SEEDS - 1), counts[:-1] - 1] == pats[1:, 0], axis=-1)))
    assert merges == len(splits)  # generic split points lie strictly inside regions
    assert total == counts.sum() - merges

    # a split point that is itself a breakpoint: neuron 0 of layer 0 switches exactly at x_0 = 0
    w0, b0 = (x.copy() for x in layers[0])
    w0[:, 0] = np.eye(deep["in_dim"], dtype=np.float32)[0]
    b0[0] = 0.0
    layers_b = [(w0, b0)] + layers[1:]
    rng = np.random.default_rng(8)
    q0, q1 = rng.normal(size=(2, deep["in_dim"])).astype(np.float32)
    q0[0], q1[0] = -1.0, 1.0
    mid = 0.5 * (q0 + q1)
    assert mid[0] == 0.0
    res = seg_fn(_repeat(layers_b), np.stack([q0, q0, mid, q0]), np.stack([q1, mid, q1, q1]))
    whole, left, right = (_pick(res, i) for i in range(3))
    assert 0.5 in set(np.asarray(whole.t)[: int(whole.count) - 1].tolist())
    # the boundary at the split is counted by neither half (pieces have positive length): no shared piece
    assert int(whole.count) == int(left.count) + int(right.count)
    last_left = np.asarray(left.patterns)[int(left.count) - 1]
    assert last_left[0] == 0 and np.asarray(right.patterns)[0, 0] == 1


def test_overflow_flag(deep):
    max_pieces = 6
    small = jax.vmap(lambda l, a, b: regions.count_on_segment(l, a, b, max_pieces=max_pieces))(
        deep["stacked"], deep["p0"], deep["p1"]
    )
    true = np.asarray(deep["seg"].count)
    over = np.asarray(small.overflow)
    np.testing.assert_array_equal(over, true > max_pieces)
    # overflowed counts are strict lower bounds (<= max_pieces < true); the others are exact
    assert np.all(np.asarray(small.count)[over] <= max_pieces)
    np.testing.assert_array_equal(np.asarray(small.count)[~over], true[~over])
    assert over.any()


def test_vmap_equals_single_calls(deep):
    # the fixture's results come from one vmap over (seed, segment); compare with one call per item
    for i, layers in enumerate(deep["nets"]):
        single = regions.segment_breakpoints(layers, deep["p0"][i], deep["p1"][i], max_pieces=SEG_PIECES)
        batched = _pick(deep["seg"], i)
        assert int(single.count) == int(batched.count) and bool(single.overflow) == bool(batched.overflow)
        np.testing.assert_allclose(np.asarray(single.t), np.asarray(batched.t), rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(single.patterns), np.asarray(batched.patterns))


def test_duplicate_breakpoints_are_counted_once():
    eye = (np.eye(2, dtype=np.float32), np.zeros(2, np.float32))
    # both neurons switch at the same t = 0.5: one breakpoint, two regions
    res = regions.count_on_segment(
        [eye], np.array([-1.0, -1.0]), np.array([1.0, 1.0]), max_pieces=8, return_details=True
    )
    assert int(res.count) == 2 and not bool(res.overflow)
    np.testing.assert_allclose(np.asarray(res.points)[0], [0.0, 0.0])
    np.testing.assert_array_equal(np.asarray(res.patterns)[:2], [[False, False], [True, True]])
    # a segment inside one region, and a segment starting exactly on a boundary
    assert int(regions.count_on_segment([eye], np.array([1.0, 1.0]), np.array([2.0, 3.0]), max_pieces=8).count) == 1
    assert int(regions.count_on_segment([eye], np.array([0.0, 1.0]), np.array([2.0, 3.0]), max_pieces=8).count) == 1
    # duplicated neurons in a second layer cross together as well
    dup = (np.array([[1.0, 1.0], [-1.0, -1.0]], np.float32), np.array([-0.5, -0.5], np.float32))
    # x = (s, -2): neuron 0 switches at s = 0; layer 2 computes relu(s) - 0.5 twice, switching at s = 0.5
    res2 = regions.count_on_line(
        [eye, dup], np.array([0.0, -2.0]), np.array([2.0, -2.0]), max_pieces=8, return_details=True
    )
    assert int(res2.count) == 3
    np.testing.assert_allclose(np.asarray(res2.t)[:2], [0.0, 0.25])
    # a degenerate "line" through two equal points is a single point: one region
    assert int(regions.count_on_line([eye, dup], np.array([1.0, 1.0]), np.array([1.0, 1.0]), max_pieces=8).count) == 1


def test_zero_bias_neurons_flip_with_the_layer_below():
    """A zero-bias layer-2 neuron fed by a single active layer-1 neuron flips exactly where that neuron does
    (z = w relu(z_1)); in floats its crossing lands an ulp either side of the layer-1 breakpoint, which a strict
    ``lo < t* < hi`` turned into a spurious sliver region in a few percent of such nets (at either XLA
    optimisation level). Every count must equal the dense-sampling count."""
    rng = np.random.default_rng(0)
    n = 300
    w1, b1 = rng.normal(size=(n, 2, 2)).astype(np.float32), rng.normal(size=(n, 2)).astype(np.float32)
    w2, b2 = rng.normal(size=(n, 2, 3)).astype(np.float32), np.zeros((n, 3), np.float32)
    p0, p1 = (2 * rng.normal(size=(n, 2))).astype(np.float32), (2 * rng.normal(size=(n, 2))).astype(np.float32)
    counts = jax.vmap(lambda a, b, c, d, x, y: regions.count_on_segment([(a, b), (c, d)], x, y, max_pieces=16).count)(
        w1, b1, w2, b2, p0, p1)
    ts = np.linspace(0.0, 1.0, 20_001)[1:-1]
    brute = [_brute_count([(w1[i], b1[i]), (w2[i], b2[i])], p0[i], p1[i], ts)[0] for i in range(n)]
    np.testing.assert_array_equal(np.asarray(counts), brute)


def test_mismatched_shapes_raise():
    rng = np.random.default_rng(0)
    layers = _net(rng, 3, (4, 5))
    p = np.zeros(3, np.float32)
    bad_chain = [layers[0], (np.zeros((6, 5), np.float32), np.zeros(5, np.float32))]
    with pytest.raises(ValueError, match=r"in-dim 6 does not chain.*out-dim 4.*\(W \(3, 4\), b \(4,\)\)"):
        regions.count_on_segment(bad_chain, p, p)
    bad_bias = [(layers[0][0], np.zeros(7, np.float32)), layers[1]]
    with pytest.raises(ValueError, match=r"b must have shape \(4,\).*got \(7,\)"):
        regions.count_on_line(bad_bias, p, p)
    with pytest.raises(ValueError, match=r"p1 must have shape \(3,\).*got \(2,\)"):
        regions.count_on_segment(layers, p, np.zeros(2, np.float32))
    with pytest.raises(ValueError, match=r"p0 must have shape \(3,\).*got \(5, 3\).*vmap"):
        regions.count_on_segment(layers, np.zeros((5, 3), np.float32), p)
    with pytest.raises(ValueError, match=r"W must have shape \(in, out\)"):
        regions.count_on_segment([(np.zeros(3), np.zeros(3))], p, p)
    with pytest.raises(ValueError, match="non-empty list"):
        regions.count_on_segment([], p, p)
    with pytest.raises(ValueError, match=r"states must have shape \(T, 3\)"):
        regions.trajectory_metrics(layers, np.zeros((10, 2), np.float32))
    with pytest.raises(ValueError, match=r"anchors must have shape \(3, 3\)"):
        regions.plane_partition(layers, np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="max_pieces must be >= 2"):
        regions.count_on_segment(layers, p, p, max_pieces=1)


# ----------------------------------------------------------------------------------------------------
# trajectory metrics


QUADRANTS = [(np.eye(2, dtype=np.float32), np.zeros(2, np.float32))]  # neurons: x > 0, y > 0
TRAJ = np.array([[-1.0, -0.5], [1.0, -0.5], [1.0, 1.0], [2.0, 2.0], [-1.0, 2.0]], np.float32)


def test_trajectory_metrics_hand_computed():
    m = regions.trajectory_metrics(QUADRANTS, TRAJ)
    # crossings: x=0 on step 0, y=0 on step 1, none on step 2, x=0 on step 3
    length = 2.0 + 1.5 + np.sqrt(2.0) + 3.0
    assert int(m.num_transitions) == 3
    assert int(m.num_regions_states) == 4  # (0,0), (1,0), (1,1), (0,1)
    assert int(m.num_regions_pieces) == 4
    assert int(m.num_timesteps) == 5 and int(m.num_neurons) == 2 and not bool(m.overflow)
    np.testing.assert_allclose(float(m.length), length, rtol=1e-6)
    np.testing.assert_allclose(float(m.length_normalized), length, rtol=1e-6)
    np.testing.assert_allclose(float(m.density), 3 / length, rtol=1e-6)
    np.testing.assert_allclose(float(m.density_per_neuron), 3 / (2 * length), rtol=1e-6)

    # normalised inputs: the boundary x_norm = 0 sits at s_x = 0.5; lengths measured on (s - mean) / std
    mean, std = np.array([0.5, 0.0], np.float32), np.array([2.0, 1.0], np.float32)
    mn = regions.trajectory_metrics(QUADRANTS, TRAJ, mean=mean, std=std)
    assert int(mn.num_transitions) == 3
    np.testing.assert_allclose(float(mn.length), length, rtol=1e-6)
    np.testing.assert_allclose(float(mn.length_normalized), 1.0 + 1.5 + np.sqrt(1.25) + 1.5, rtol=1e-6)
    np.testing.assert_allclose(float(mn.density_normalized), 3 / float(mn.length_normalized), rtol=1e-6)
    # mean x = 1.5 moves the x-boundary to s_x = 1.5: step 0 no longer crosses, steps 2 and 3 do
    ms = regions.trajectory_metrics(QUADRANTS, TRAJ, mean=np.array([1.5, 0.0], np.float32))
    assert int(ms.num_transitions) == 3  # steps 1 (y = 0), 2 and 3 (x = 1.5)
    assert int(ms.num_regions_states) == 3  # (0,0), (0,0), (0,1), (1,1), (0,1)
    assert int(ms.num_regions_pieces) == 3

    # mask: drop the last state (padding after termination)
    mask = np.array([True, True, True, True, False])
    mm = regions.trajectory_metrics(QUADRANTS, TRAJ, mask=mask)
    assert int(mm.num_transitions) == 2 and int(mm.num_regions_states) == 3 and int(mm.num_regions_pieces) == 3
    assert int(mm.num_timesteps) == 4
    np.testing.assert_allclose(float(mm.length), 2.0 + 1.5 + np.sqrt(2.0), rtol=1e-6)


def test_trajectory_metrics_vmap_over_trajectories_and_policies():
    trajs = np.stack([TRAJ, TRAJ[::-1], TRAJ * np.float32(0.1)])
    batched = jax.vmap(lambda s: regions.trajectory_metrics(QUADRANTS, s))(trajs)
    for i in range(3):
        single = regions.trajectory_metrics(QUADRANTS, trajs[i])
        for name in ("num_transitions", "num_regions_pieces", "num_regions_states"):
            assert int(getattr(batched, name)[i]) == int(getattr(single, name)), name
        np.testing.assert_allclose(float(batched.length[i]), float(single.length), rtol=1e-6)
    # policies: scaling a neuron's weights and bias by a positive factor keeps the regions
    pol = _stack([QUADRANTS, [(2 * QUADRANTS[0][0], QUADRANTS[0][1])]])
    per_policy = jax.vmap(lambda l: regions.trajectory_metrics(l, TRAJ))(pol)
    np.testing.assert_array_equal(np.asarray(per_policy.num_transitions), [3, 3])


# ----------------------------------------------------------------------------------------------------
# plane partitions and pictures


def _faces_by_lp(normals, offsets):
    """Exact faces of a line arrangement inside (-1, 1)^2: every sign vector with a Chebyshev ball r > 0."""
    from scipy.optimize import linprog

    radii = []
    norms = np.linalg.norm(normals, axis=1)
    box = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], np.float64)
    for signs in itertools.product([-1.0, 1.0], repeat=len(offsets)):
        s = np.asarray(signs)
        # s_i (n_i . x + c_i) >= r ||n_i||  <=>  -s_i n_i . x + r ||n_i|| <= s_i c_i ;  +-x_k + r <= 1
        a_ub = np.concatenate([np.c_[-s[:, None] * normals, norms], np.c_[box, np.ones(4)]])
        b_ub = np.concatenate([s * offsets, np.ones(4)])
        out = linprog([0, 0, -1], A_ub=a_ub, b_ub=b_ub, bounds=[(None, None), (None, None), (0, None)], method="highs")
        if out.status == 0 and out.x[2] > 1e-9:
            radii.append(out.x[2])
    return len(radii), min(radii)


def test_plane_partition_matches_line_arrangement_faces():
    resolution = 160
    spacing = 2.0 / (resolution - 1)
    anchors = np.array([[0.3, -0.2], [-0.5, 0.4], [0.6, 0.7]], np.float32)
    frame = regions.plane_frame(anchors)
    o, e1, e2 = (np.asarray(x, np.float64) for x in (frame.origin, frame.e1, frame.e2))
    # frame checks: anchors sit on the circle of radius 1/margin around the square's centre
    uv = np.asarray(frame.anchors_uv, np.float64)
    np.testing.assert_allclose(np.linalg.norm(uv, axis=1), 1 / 1.25, rtol=1e-5)
    np.testing.assert_allclose(o + uv[:, :1] * e1 + uv[:, 1:] * e2, anchors, atol=1e-5)
    assert abs(e1 @ e2) < 1e-5 * (e1 @ e1)

    for seed in range(20):  # first seed whose faces are all comfortably larger than a grid cell
        rng = np.random.default_rng(seed)
        layers = _net(rng, 2, (5,), bias_scale=0.3)
        w, b = (np.asarray(x, np.float64) for x in layers[0])
        normals = np.stack([e1 @ w, e2 @ w], axis=1)  # z_j(u, v) = normals_j . (u, v) + offsets_j
        offsets = o @ w + b
        corners = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], np.float64)
        vals = corners @ normals.T + offsets
        lines_in = int(np.sum((vals.min(0) < 0) & (vals.max(0) > 0)))  # lines meeting the open square
        inter = 0
        for i, j in itertools.combinations(range(len(offsets)), 2):
            x = np.linalg.solve(normals[[i, j]], -offsets[[i, j]])
            inter += int(np.all(np.abs(x) < 1))
        expected = 1 + lines_in + inter  # faces of a general-position arrangement inside a convex set
        faces, min_radius = _faces_by_lp(normals, offsets)
        assert faces == expected
        if inter >= 3 and min_radius > 2 * spacing:
            break
    else:  # pragma: no cover
        pytest.fail("no well-conditioned seed")

    part = regions.plane_partition(layers, anchors, resolution=resolution, max_pieces=32)
    assert regions.plane_polygons(layers, frame).num_regions == expected  # exact polygons: the LP's faces
    # a ball of radius > spacing / sqrt(2) holds a grid point, and one of radius > spacing / 2 meets a grid line
    assert int(part.num_regions) == expected
    assert int(part.num_regions_gridlines) == expected
    assert not bool(part.overflow)
    # each grid line is an exact 1-D count: pieces = 1 + lines crossing it inside the square
    assert part.region_ids.shape == (resolution, resolution)
    assert int(np.asarray(part.region_ids).max()) == expected - 1

    # pictures (reuse the partition, so no new compile for the grid)
    from matplotlib.figure import Figure

    fig = regions.plot_plane_regions(layers, anchors, partition=part)
    assert isinstance(fig, Figure)


def test_plot_functions_return_figures(tmp_path):
    from matplotlib.figure import Figure

    rng = np.random.default_rng(0)
    layers = _net(rng, 2, (4, 3))
    traj = np.cumsum(0.3 * rng.normal(size=(20, 2)), axis=0).astype(np.float32)
    fig = regions.plot_state_plane_trajectory(layers, traj, resolution=40, mean=traj.mean(0), std=traj.std(0))
    assert isinstance(fig, Figure)
    assert "transitions" in fig.axes[0].get_title()
    regions.save_figure(fig, tmp_path / "sub" / "traj.png")
    assert (tmp_path / "sub" / "traj.png").stat().st_size > 0
    fig2 = regions.plot_plane_regions(layers, traj[[0, 7, 13]], resolution=40)
    assert isinstance(fig2, Figure) and len(fig2.axes) == 1
    with pytest.raises(ValueError, match="2-D state space"):
        regions.plot_state_plane_trajectory(_net(rng, 3, (4,)), np.zeros((5, 3), np.float32))


def test_batch_counters_grow_the_buffer_and_match_one_large_buffer():
    """count_segments / count_lines: exact counts for every item, whatever the first buffer; the same counts as one
    call per item with a buffer that cannot overflow (itself checked against dense sampling above). The batch is
    larger than the pilot, and the first buffer is too small for many items, so the cascade's retries and its
    buffer choice for the rest both run."""
    rng = np.random.default_rng(7)
    layers = _net(rng, 5, (12, 12))
    num = regions.counting.PILOT + 44
    p0 = rng.normal(size=(num, 5)).astype(np.float32)
    p1 = (p0 + 3.0 * rng.normal(size=(num, 5))).astype(np.float32)
    bound = 13 * 13
    for batch, one in ((regions.count_segments, regions.count_on_segment), (regions.count_lines, regions.count_on_line)):
        ref = jax.vmap(lambda a, b: one(layers, a, b, max_pieces=bound))(p0, p1)
        assert not np.asarray(ref.overflow).any()
        first = jax.vmap(lambda a, b: one(layers, a, b, max_pieces=4))(p0, p1)
        assert np.asarray(first.overflow).sum() > num // 4  # the first buffer really is too small for many
        got = batch(layers, p0, p1, max_pieces=4)
        assert not got.overflow.any()
        np.testing.assert_array_equal(got.count, np.asarray(ref.count))
