"""Representation metrics (rlland.representation) on constructed inputs with hand-computable answers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import representation as rep


def with_spectrum(s, n, seed=0):
    """An [n, len(s)] matrix whose singular values are exactly s: U diag(s) V^T with orthonormal U, V."""
    rng = np.random.default_rng(seed)
    d = len(s)
    U, _ = np.linalg.qr(rng.normal(size=(n, d)))
    V, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (U * np.asarray(s, np.float64)) @ V.T


def erank_by_hand(s):
    p = np.asarray(s, np.float64) / np.sum(s)
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


# ------------------------------------------------------------------------------------------------- ranks

# N = 100 (sqrt N = 10). Chosen so that every rank differs and no threshold is close:
#   approximate rank: s^2 = 1600, 900, 400, 25, 16, 0.25, 0.0025 (total 2941.25; 99% = 2911.84):
#                     cumsum 2900 < 2911.84 <= 2925 -> 4
#   srank:            s sum 99.55, 99% = 98.55: cumsum 95 < 98.55 <= 99 -> 5
#   feature rank:     s / 10 > 0.01 <=> s > 0.1: 40, 30, 20, 5, 4, 0.5 -> 6
#   matrix rank:      tol = 40 * 100 * 2^-23 = 4.8e-4: all but the exact 0 -> 7
SPECTRUM = [40.0, 30.0, 20.0, 5.0, 4.0, 0.5, 0.05, 0.0]


@pytest.fixture(scope="module")
def spectrum_matrix():
    return with_spectrum(SPECTRUM, 100).astype(np.float32)


def test_ranks_on_known_spectrum(spectrum_matrix):
    F = spectrum_matrix
    assert float(rep.approximate_rank(F)) == 4
    assert float(rep.srank(F)) == 5
    assert float(rep.feature_rank(F)) == 6
    assert float(rep.matrix_rank(F)) == 7
    assert float(rep.effective_rank(F)) == pytest.approx(erank_by_hand(SPECTRUM), rel=1e-4)
    np.testing.assert_allclose(np.asarray(rep.singular_values(F, top_m=3)), [40, 30, 20], rtol=1e-5)
    assert rep.singular_values(F).shape == (8,)


def test_all_ranks_matches_individual_functions(spectrum_matrix):
    F = spectrum_matrix
    out = rep.all_ranks(F)
    assert bool(out["valid"])
    for name, fn in [("effective_rank", rep.effective_rank), ("approximate_rank", rep.approximate_rank),
                     ("srank", rep.srank), ("feature_rank", rep.feature_rank), ("matrix_rank", rep.matrix_rank)]:
        assert float(out[name]) == pytest.approx(float(fn(F)), rel=1e-6), name
        assert out[name].dtype == jnp.float32
    assert float(out["lambda_1"]) == pytest.approx(4.0, rel=1e-5)  # 40 / sqrt(100)
    assert float(out["lambda_2"]) == pytest.approx(3.0, rel=1e-5)
    assert abs(float(out["lambda_N"])) < 1e-5
    np.testing.assert_allclose(np.asarray(out["singular_values"]), [40, 30, 20], rtol=1e-5)
    # thresholds are arguments: 90% of s^2 is reached at k = 3 (2900 >= 2647.1), 85% of s at k = 3 (90 >= 84.6)
    out = rep.all_ranks(F, threshold=0.9, delta=0.15, epsilon=0.45)
    assert (float(out["approximate_rank"]), float(out["srank"]), float(out["feature_rank"])) == (3, 3, 4)


def test_identity_and_rank_r():
    eye = np.eye(8, dtype=np.float32)
    out = rep.all_ranks(eye)
    for name in ("effective_rank", "approximate_rank", "srank", "feature_rank", "matrix_rank"):
        assert float(out[name]) == pytest.approx(8.0, rel=1e-5), name
    # rank-3 product of Gaussian matrices: 3 nonzero singular values, all far above the cutoffs.
    rng = np.random.default_rng(1)
    F = (rng.normal(size=(64, 3)) @ rng.normal(size=(3, 10))).astype(np.float32)
    out = rep.all_ranks(F)
    assert float(out["matrix_rank"]) == 3
    assert float(out["feature_rank"]) == 3
    assert 1.0 <= float(out["approximate_rank"]) <= 3 and 1.0 <= float(out["srank"]) <= 3
    assert 1.0 < float(out["effective_rank"]) <= 3.0 + 1e-3


def test_zero_matrix_has_rank_zero():
    out = rep.all_ranks(np.zeros((16, 4), np.float32))
    for name in ("effective_rank", "approximate_rank", "srank", "feature_rank", "matrix_rank"):
        assert float(out[name]) == 0.0, name


def test_fewer_samples_than_dims_is_nan_and_flagged():
    F = np.ones((3, 5), np.float32)
    out = rep.all_ranks(F, top_m=2)
    assert not bool(out["valid"])
    for k, v in out.items():
        if k != "valid":
            assert np.all(np.isnan(np.asarray(v))), k
    assert out["singular_values"].shape == (2,)
    for fn in (rep.effective_rank, rep.approximate_rank, rep.srank, rep.feature_rank, rep.matrix_rank):
        assert np.isnan(float(fn(F)))
    assert rep.singular_values(F).shape == (3,)  # singular values themselves stay defined
    # the output pytree has the same structure for valid and invalid shapes
    assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(rep.all_ranks(np.ones((5, 3)), top_m=2))


def test_centering_option_and_input_checks():
    F = np.tile(np.arange(1.0, 5.0), (10, 1))  # identical rows: rank 1 raw, rank 0 once centred
    assert float(rep.matrix_rank(F)) == 1
    assert float(rep.matrix_rank(F, center=True)) == 0
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        rep.all_ranks(np.ones((2, 3, 4)))


def test_ranks_vmap_equals_per_matrix():
    rng = np.random.default_rng(2)
    batch = np.stack([with_spectrum(rng.uniform(0, 5, 6) ** 3, 32, seed=i) for i in range(4)]).astype(np.float32)
    got = jax.vmap(rep.all_ranks)(batch)
    for i in range(4):
        row = rep.all_ranks(batch[i])
        for k in row:
            np.testing.assert_allclose(np.asarray(got[k][i]), np.asarray(row[k]), rtol=1e-5, err_msg=k)


# ------------------------------------------------------------------------------------------------- dead units


def test_dead_units_relu_and_gelu():
    F = np.array([[0, 0, 1, 0], [0, 2, 3, 0], [0, 0, 4, 0]], np.float32)  # cols 0 and 3 never fire
    for act in ("relu", "ReLU", "gelu"):
        out = rep.dead_units(F, act)
        assert int(out["count"]) == 2 and float(out["fraction"]) == 0.5


def test_dead_units_leaky_relu():
    F = np.array([[-1, -1, 2], [-0.1, 0.0, -3], [-5, -2, 1]], np.float32)
    out = rep.dead_units(F, "leaky_relu")  # col 0 always < 0; col 1 hits 0 once (not < 0); col 2 mixed
    assert int(out["count"]) == 1 and float(out["fraction"]) == pytest.approx(1 / 3)
    assert int(rep.dead_units(F, "LeakyReLU")["count"]) == 1


def test_dead_units_tanh_uses_unbiased_std():
    # col 0 constant; col 1: two values 0.0017 apart -> unbiased std 0.0012 (alive) but biased std 0.00085;
    # col 2: 0.0013 apart -> unbiased std 0.00092 (dead); col 3 varies a lot.
    F = np.array([[0.99, 0.5, 0.2, -0.9], [0.99, 0.5017, 0.2013, 0.8]], np.float32)
    out = rep.dead_units(F, "tanh")
    assert int(out["count"]) == 2 and float(out["fraction"]) == 0.5
    assert int(rep.dead_units(F, "tanh", tanh_std_threshold=1e-2)["count"]) == 3


def test_dead_units_errors_and_vmap():
    with pytest.raises(ValueError, match="activation"):
        rep.dead_units(np.zeros((3, 2)), "sigmoid")
    with pytest.raises(ValueError, match="N >= 2"):
        rep.dead_units(np.zeros((1, 2)), "tanh")
    batch = np.zeros((3, 4, 5), np.float32)
    batch[1, :, :2] = 1.0
    batch[2, 0, :] = 1.0
    np.testing.assert_array_equal(np.asarray(jax.vmap(lambda f: rep.dead_units(f)["count"])(batch)), [5, 3, 0])


# ------------------------------------------------------------------------------------------------- norms / diversity


def test_feature_norms_by_hand():
    out = rep.feature_norms(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert float(out["norm"]) == pytest.approx(2.5)  # (5 + 0) / 2
    assert float(out["avg"]) == pytest.approx(1.75)
    assert float(out["std"]) == pytest.approx(np.std([3, 4], ddof=1) / 2)  # unbiased across dims, row mean


def test_policy_variance_and_value_diversity():
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    assert float(rep.policy_variance(probs)) == pytest.approx(0.25)  # unbiased: (0.25 + 0.25 + 0) / 2
    rng = np.random.default_rng(3)
    loc, scale = rng.normal(size=(20, 3)), rng.uniform(0.1, 1, (20, 3))
    by_hand = np.mean(np.var(np.stack([loc, scale], 1), axis=0, ddof=1))
    assert float(rep.policy_variance((loc, scale))) == pytest.approx(by_hand, rel=1e-5)
    assert float(rep.policy_variance(np.stack([loc, scale], 1))) == pytest.approx(by_hand, rel=1e-5)
    out = rep.value_diversity(np.array([1.0, 2.0, 3.0, 4.0]))
    assert float(out["avg"]) == 2.5 and float(out["std"]) == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert float(rep.value_diversity(np.array([[1.0], [2.0], [3.0], [4.0]]))["std"]) == pytest.approx(float(out["std"]))


# ------------------------------------------------------------------------------------------------- KL


def _diag_gauss_logp(a, mu, log_std):
    return np.sum(-0.5 * ((a - mu) / np.exp(log_std)) ** 2 - log_std - 0.5 * np.log(2 * np.pi), axis=-1)


def test_kl_gaussian_by_hand():
    # 1-D: p = N(0, 1), q = N(0, 2^2): KL(p||q) = log 2 + 1/8 - 1/2; KL(q||p) = -log 2 + 2 - 1/2.
    z, l2 = np.zeros(1), np.log(2.0) * np.ones(1)
    assert float(rep.kl_gaussian(z, z, z, l2)) == pytest.approx(np.log(2) + 1 / 8 - 0.5, rel=1e-6)
    assert float(rep.kl_gaussian(z, l2, z, z)) == pytest.approx(-np.log(2) + 2 - 0.5, rel=1e-6)
    # mean shift of 1 with unit variances: 1/2 per dim, summed over the last axis, batch axes kept
    out = rep.kl_gaussian(np.zeros((4, 3)), np.zeros((4, 3)), np.ones((4, 3)), np.zeros((4, 3)))
    np.testing.assert_allclose(np.asarray(out), np.full(4, 1.5), rtol=1e-6)
    assert float(rep.kl_gaussian(np.ones(3), -np.ones(3), np.ones(3), -np.ones(3))) == 0.0


def test_sample_estimators_agree_with_analytic_kl():
    # p = old, q = new, three action dims; samples from the OLD policy.
    mu_p, ls_p = np.array([0.0, 0.5, -0.2]), np.log(np.array([1.0, 0.5, 0.8]))
    mu_q, ls_q = np.array([0.3, 0.4, -0.5]), np.log(np.array([1.2, 0.45, 1.0]))
    rng = np.random.default_rng(4)
    M = 200_000
    a = mu_p + np.exp(ls_p) * rng.normal(size=(M, 3))
    logp_old = _diag_gauss_logp(a, mu_p, ls_p).astype(np.float32)
    logp_new = _diag_gauss_logp(a, mu_q, ls_q).astype(np.float32)
    exact = float(rep.kl_gaussian(mu_p, ls_p, mu_q, ls_q))
    reverse = float(rep.kl_gaussian(mu_q, ls_q, mu_p, ls_p))
    assert abs(exact - reverse) > 0.01  # the direction is testable
    # Both estimators are means of M iid terms with expectation KL(old||new) (k3: since E_old[r] = 1), so by the
    # CLT each lies within 5 standard errors of it (a 5-sigma miss has probability ~6e-7; the seed is fixed).
    log_r = logp_new.astype(np.float64) - logp_old
    se1 = np.std(-log_r) / np.sqrt(M)
    se3 = np.std(np.expm1(log_r) - log_r) / np.sqrt(M)
    k1, k3 = float(rep.kl_k1(logp_old, logp_new)), float(rep.kl_k3(logp_old, logp_new))
    assert abs(k1 - exact) < 5 * se1 + 1e-5
    assert abs(k3 - exact) < 5 * se3 + 1e-5
    assert abs(k1 - reverse) > 20 * se1  # KL(old||new), not KL(new||old)
    assert float(rep.kl_k3(logp_old, logp_old)) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        rep.kl_k1(np.zeros(3), np.zeros(4))


# ------------------------------------------------------------------------------------------------- ratio stats


def test_ratio_stats_by_hand():
    r = np.array([0.5, 0.625, 0.75, 1.0, 1.125, 1.25, 1.5, 1.375], np.float32)  # eps = 0.25, exact in binary
    out = rep.ratio_stats(r, 0.25)
    assert float(out["mean"]) == pytest.approx(r.mean()) and float(out["std"]) == pytest.approx(r.std(ddof=1))
    assert float(out["max"]) == 1.5 and float(out["min"]) == 0.5
    # strictly below 0.75: 0.5, 0.625 (0.75 itself is inside the clip range)
    assert int(out["count_below"]) == 2 and float(out["fraction_below"]) == 0.25
    assert float(out["mean_below"]) == 0.5625 and float(out["max_below"]) == 0.625 and float(out["min_below"]) == 0.5
    assert float(out["std_below"]) == pytest.approx(np.std([0.5, 0.625], ddof=1))
    # strictly above 1.25: 1.5, 1.375
    assert int(out["count_above"]) == 2 and float(out["mean_above"]) == 1.4375
    assert float(out["max_above"]) == 1.5 and float(out["min_above"]) == 1.375
    assert float(out["fraction_outside"]) == 0.5


def test_ratio_stats_empty_sets():
    r = np.array([0.9, 1.0, 1.1, 1.3], np.float32)
    out = rep.ratio_stats(r, 0.2)
    assert int(out["count_below"]) == 0 and float(out["fraction_below"]) == 0.0
    for k in ("mean_below", "std_below", "max_below", "min_below"):
        assert np.isnan(float(out[k])), k
    assert int(out["count_above"]) == 1 and float(out["mean_above"]) == pytest.approx(1.3)
    assert np.isnan(float(out["std_above"]))  # one sample: no unbiased std
    assert all(np.isfinite(float(out[k])) for k in ("mean", "std", "max", "min"))  # nothing leaks
    filled = rep.ratio_stats(r, 0.2, empty_value=0.0)
    assert float(filled["mean_below"]) == 0.0 and float(filled["max_below"]) == 0.0
    # no NaN in gradients through the masked statistics, even for an empty set
    def loss(x):
        stats = rep.ratio_stats(x, 0.2, empty_value=0.0)
        return stats["mean_below"] + stats["std_below"] + stats["mean_above"]

    np.testing.assert_allclose(np.asarray(jax.grad(loss)(jnp.asarray(r))), [0, 0, 0, 1.0])


def test_ratio_stats_vmap_over_batch_and_eps():
    rng = np.random.default_rng(5)
    r = np.exp(rng.normal(0, 0.3, (3, 50))).astype(np.float32)
    eps = np.array([0.1, 0.2, 0.3], np.float32)
    got = jax.vmap(rep.ratio_stats)(r, eps)
    for i in range(3):
        row = rep.ratio_stats(r[i], eps[i])
        for k in row:
            np.testing.assert_allclose(np.asarray(got[k][i]), np.asarray(row[k]), rtol=1e-6, err_msg=k)
        assert int(row["count_below"]) == int(np.sum(r[i] < 1 - eps[i]))


# ------------------------------------------------------------------------------------------------- training route


def numpy_ranks(s, n):
    """The five ranks from singular values s (descending, float64), in numpy, with the reference's thresholds."""
    s = np.asarray(s, np.float64)
    p = s / s.sum()
    crossed = lambda v: int(np.sum(~(np.cumsum(v) >= 0.99 * v.sum())) + 1)
    return {"effective_rank": float(np.exp(-np.sum(p[p > 0] * np.log(p[p > 0])))),
            "approximate_rank": crossed(s * s), "srank": crossed(s), "feature_rank": int(np.sum(s / np.sqrt(n) > 0.01)),
            "matrix_rank": int(np.sum(s > s[0] * max(n, len(s)) * np.finfo(np.float32).eps))}


def representative_features(rng, n=1024, d=64):
    """Feature matrices of the kinds training produces, float32: healthy tanh / relu layers, collapsed ones (dead
    relu units, saturated tanh units that duplicate each other, nearly dead units with std 1e-4, duplicated
    columns), large pre-activations and a graded spectrum reaching 5e-8 s_max."""
    pre = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.5
    relu = np.maximum(pre, 0)
    relu[:, :24] = 0  # dead units
    relu[:, 24:30] = relu[:, 30:36]  # duplicated columns
    tanh = np.tanh(pre)
    tanh[:, :20] = np.sign(rng.normal(size=20))  # saturated: +-1 columns, rank-deficient together
    tanh[:, 20:26] = 0.999 * np.sign(rng.normal(size=6)) + 1e-4 * rng.normal(size=(n, 6))  # nearly dead
    U, _ = np.linalg.qr(rng.normal(size=(n, d)))
    V, _ = np.linalg.qr(rng.normal(size=(d, d)))
    graded = (U * np.logspace(0, -7.3, d)) @ V.T * 100
    return {"tanh": np.tanh(pre), "relu_collapsed": relu, "tanh_collapsed": tanh, "pre_large": 30 * pre,
            "graded": graded}


def test_training_route_ranks_equal_numpy_svd():
    """diagnostics.rank_summary (Householder QR in XLA, then a D x D SVD) gives the ranks of numpy's float64 SVD of
    the same float32 matrix, including rank-deficient ones where the Gram route sqrt(eigvalsh(F^T F)) in float32
    would not (its errors reach sqrt(eps) s_max ~ 3e-4 s_max, above matrix_rank's tolerance N eps s_max)."""
    from rlland.representation import diagnostics

    rng = np.random.default_rng(7)
    summary = jax.jit(diagnostics.rank_summary)
    for name, F in representative_features(rng).items():
        F = F.astype(np.float32)
        s = np.linalg.svd(F.astype(np.float64), compute_uv=False)
        want = numpy_ranks(s, F.shape[0])
        # a fair comparison: no threshold within float32 rounding of a singular value (the integer ranks are the
        # same for s perturbed by 1e-5 relative)
        for scale in (1 - 1e-5, 1 + 1e-5):
            nudged = numpy_ranks(s * np.r_[scale, np.ones(len(s) - 1)], F.shape[0])
            assert all(nudged[k] == want[k] for k in want if k != "effective_rank"), name
        got = {k: float(v) for k, v in summary(F).items()}
        for k in ("approximate_rank", "srank", "feature_rank", "matrix_rank"):
            assert got[k] == want[k], (name, k, got[k], want[k])
        assert got["effective_rank"] == pytest.approx(want["effective_rank"], rel=1e-5), name
        assert got["lambda_1"] == pytest.approx(s[0] / np.sqrt(F.shape[0]), rel=1e-5), name
        np.testing.assert_allclose(np.asarray(diagnostics.tall_singular_values(F)), s, rtol=0, atol=2e-6 * s[0],
                                   err_msg=name)
    assert numpy_ranks(np.linalg.svd(representative_features(rng)["relu_collapsed"], compute_uv=False),
                       1024)["matrix_rank"] == 34  # the collapsed cases are rank-deficient: 64 - 24 dead - 6 copies


def test_householder_r_is_a_qr_factor():
    from rlland.representation import diagnostics

    rng = np.random.default_rng(8)
    F = rng.normal(size=(40, 6)).astype(np.float32)
    R = np.asarray(diagnostics.householder_r(F))
    assert np.allclose(np.tril(R, -1), 0)
    np.testing.assert_allclose(R.T @ R, F.T @ F, rtol=1e-4, atol=1e-4)  # R^T R = F^T F (F = QR, Q orthonormal)
    F[:, 3] = 0  # a zero column is reflected onto nothing and stays zero
    assert np.allclose(np.asarray(diagnostics.householder_r(F))[:, 3], 0)
    with pytest.raises(ValueError, match="N >= D"):
        diagnostics.householder_r(np.ones((3, 5), np.float32))
