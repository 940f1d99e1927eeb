"""PURD statistics (rlland.landscape.stats) against hand-computed values and the reference formulas (A.5)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import landscape


def _numpy_mode(R):
    # The reference's definition (landscapes-and-subspaces.md A.5), restated with numpy.
    hist, edges = np.histogram(R, bins=100)
    j = np.argmax(hist)
    return (edges[j] + edges[j + 1]) // 2


def _numpy_cvar(R, alpha):
    # Rockafellar-Uryasev with numpy's default (linear) quantile, as in the reference (A.5).
    q = np.quantile(R, alpha)
    return q + np.mean(np.minimum(R - q, 0)) / alpha


def f32(x):
    return np.asarray(x, np.float32)


# ------------------------------------------------------------------------------------------------- mode


def test_mode_hand_made():
    # range [0, 100] -> 100 bins of width 1; bin [1, 2) holds three returns; midpoint 1.5 floors to 1.
    assert float(landscape.mode(f32([0, 1, 1, 1, 100]))) == 1.0
    # floor=False gives the plain midpoint.
    assert float(landscape.mode(f32([0, 1, 1, 1, 100]), floor=False)) == 1.5


def test_mode_ties_take_first_bin():
    # bins 0, 50 and 99 each hold two returns: the first fullest bin wins (numpy.argmax).
    assert float(landscape.mode(f32([0, 0, 50, 50, 100, 100]))) == 0.0
    assert float(landscape.mode(f32([100, 100, 50, 50, 0, 0]))) == 0.0  # order does not matter


def test_mode_bin_edges():
    # A return on an interior edge goes to the bin on its right: 2 -> [2, 3) -> midpoint 2.5 -> 2 (not 1).
    assert float(landscape.mode(f32([0, 2, 2, 100]))) == 2.0
    # The maximum goes to the last bin, closed on the right: [99, 100] -> 99.5 -> 99.
    assert float(landscape.mode(f32([0, 5, 5, 100, 100, 100]))) == 99.0
    # Negative returns: [-100, 0] -> the fullest bin [-1, 0] (holds -1 x3 and 0); midpoint -0.5 floors to -1.
    assert float(landscape.mode(f32([-100, -1, -1, -1, 0]))) == -1.0


def test_mode_constant_returns():
    # numpy widens a constant range to [v - 0.5, v + 0.5]; compare with numpy exactly.
    for v in (7.0, -3.0, 0.0, 2.5):
        R = np.full(9, v, np.float32)
        assert float(landscape.mode(R)) == float(_numpy_mode(R))
    assert float(landscape.mode(np.full(9, 2.5, np.float32))) == 2.0


def test_mode_matches_numpy_bitwise_under_jit_and_vmap():
    rng = np.random.default_rng(0)
    batch = np.stack(
        [rng.normal(1000, 300, 500), rng.integers(-50, 50, 500), np.round(rng.normal(0, 3, 500), 1),
         rng.exponential(5, 500) * -1, rng.integers(0, 7, 500) * 0.25, rng.normal(0, 1e-3, 500)]
        * 4
    ).astype(np.float32)
    batch[6:12] += rng.normal(0, 1, (6, 1)).astype(np.float32)
    got = np.asarray(jax.jit(jax.vmap(landscape.mode))(batch))
    want = np.array([_numpy_mode(R) for R in batch])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.asarray(landscape.mode(batch[2])), want[2])


def test_mode_nonfinite_is_nan():
    assert np.isnan(float(landscape.mode(f32([1, 2, np.inf]))))
    assert np.isnan(float(landscape.mode(f32([1, np.nan, 3]))))
    assert np.isnan(float(landscape.ltp(f32([1, np.nan, 3]))))


# ------------------------------------------------------------------------------------------------- LTP


def test_ltp_strict_inequality():
    # mode: bin [4, 5) -> 4; cut 0.5 * 4 = 2; returns strictly below 2 are 0 and 1 (2 itself does not count).
    R = f32([0, 1, 2, 4, 4, 4, 100])
    assert float(landscape.mode(R)) == 4.0
    assert float(landscape.ltp(R)) == pytest.approx(2 / 7)
    assert float(landscape.ltp(R, threshold=0.75)) == pytest.approx(3 / 7)  # cut 3: 0, 1, 2


def test_ltp_negative_mode_conventions():
    R = f32([-100, -1, -1, -1, 0])  # mode -1 (see above)
    # reference ("scale"): cut 0.5 * -1 = -0.5 lies above the mode: -100 and the three -1 count.
    assert float(landscape.ltp(R)) == pytest.approx(0.8)
    # "magnitude": cut -1 - 0.5 * 1 = -1.5: only -100 counts.
    assert float(landscape.ltp(R, sign_convention="magnitude")) == pytest.approx(0.2)
    assert np.isnan(float(landscape.ltp(R, sign_convention="positive_only")))
    # positive mode: all conventions agree.
    R = f32([0, 1, 2, 4, 4, 4, 100])
    vals = [float(landscape.ltp(R, sign_convention=c)) for c in ("scale", "magnitude", "positive_only")]
    assert vals == pytest.approx([2 / 7] * 3)
    with pytest.raises(ValueError, match="sign_convention"):
        landscape.ltp(R, sign_convention="abs")


def test_ltp_relative():
    R = f32(np.arange(1, 11))
    assert float(landscape.ltp_relative(R, 10.0)) == pytest.approx(0.4)  # cut 5: 1..4
    assert float(landscape.ltp_relative(R, 10.0, threshold=0.25)) == pytest.approx(0.2)  # cut 2.5
    Rn = -R  # -1 .. -10
    assert float(landscape.ltp_relative(Rn, -4.0)) == pytest.approx(0.8)  # cut -2 (strict): -3 .. -10
    assert float(landscape.ltp_relative(Rn, -4.0, sign_convention="magnitude")) == pytest.approx(0.4)  # cut -6
    assert np.isnan(float(landscape.ltp_relative(Rn, -4.0, sign_convention="positive_only")))
    with pytest.raises(ValueError, match="scalar"):
        landscape.ltp_relative(R, f32([1, 2]))


# ------------------------------------------------------------------------------------------------- CVaR


def test_cvar_integer_alpha_n_is_mean_of_worst():
    R = f32([5, 3, 8, 1, 9, 2, 7, 4, 6, 10])
    assert float(landscape.cvar(R, 0.1)) == pytest.approx(1.0, abs=1e-5)  # alpha N = 1: the minimum
    assert float(landscape.cvar(R, 0.2)) == pytest.approx(1.5, abs=1e-5)  # alpha N = 2
    assert float(landscape.cvar(R, 0.5)) == pytest.approx(3.0, abs=1e-5)
    assert float(landscape.cvar(R, 1.0)) == pytest.approx(5.5, abs=1e-5)  # alpha = 1: the mean


def test_cvar_ties():
    R = f32([5, 1, 5, 1, 5, 5, 1, 5, 5, 5])  # three 1s, seven 5s
    assert float(landscape.cvar(R, 0.2)) == pytest.approx(1.0, abs=1e-5)  # two worst: 1, 1
    assert float(landscape.cvar(R, 0.3)) == pytest.approx(1.0, abs=1e-5)
    assert float(landscape.cvar(R, 0.5)) == pytest.approx((3 * 1 + 2 * 5) / 5, abs=1e-5)
    assert float(landscape.cvar(f32([4, 4, 4, 4]), 0.25)) == pytest.approx(4.0)


def test_cvar_non_integer_alpha_n_by_hand():
    R = f32(np.arange(1, 11))
    # alpha = 0.15: q at position 0.15 * 9 = 1.35 -> q = 2.35; below q: 1 and 2 -> sum (q - R) = 1.7;
    # CVaR = 2.35 - 1.7 / (0.15 * 10) = 1.216666...
    assert float(landscape.cvar(R, 0.15)) == pytest.approx(2.35 - 1.7 / 1.5, abs=1e-5)


def test_cvar_matches_reference_formula():
    rng = np.random.default_rng(1)
    R = rng.normal(500, 200, (8, 1000)).astype(np.float32)
    alphas = np.array([0.1, 0.05, 0.3, 0.123, 0.5, 0.01, 0.2, 0.9], np.float32)
    got = np.asarray(jax.vmap(landscape.cvar)(R, alphas))
    want = np.array([_numpy_cvar(r.astype(np.float64), a) for r, a in zip(R, alphas.astype(np.float64))])
    np.testing.assert_allclose(got, want, rtol=2e-5)
    # alpha N integer: the mean of the alpha N smallest.
    np.testing.assert_allclose(got[0], np.sort(R[0])[:100].mean(), rtol=1e-5)


def test_cvar_alpha_validation():
    with pytest.raises(ValueError, match="alpha"):
        landscape.cvar(f32([1, 2, 3]), 0.0)
    with pytest.raises(ValueError, match="alpha"):
        landscape.cvar(f32([1, 2, 3]), 1.5)


# ------------------------------------------------------------------------------------------------- rest


def test_mean_std_quantiles():
    R = f32([1, 2, 3, 4])
    assert float(landscape.mean(R)) == pytest.approx(2.5)
    assert float(landscape.std(R)) == pytest.approx(np.std([1, 2, 3, 4]))
    assert float(landscape.std(R, ddof=1)) == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    np.testing.assert_allclose(
        np.asarray(landscape.quantiles(R, [0.0, 0.1, 0.5, 1.0])), np.quantile([1, 2, 3, 4], [0, 0.1, 0.5, 1]),
        rtol=1e-6,
    )
    assert landscape.quantiles(R, 0.5).shape == ()


def test_input_validation():
    with pytest.raises(ValueError, match=r"shape \[N\]"):
        landscape.mean(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        landscape.mode(np.zeros((0,), np.float32))
    # integer returns are accepted (cast to float32)
    assert landscape.mode(np.array([0, 1, 1, 100])).dtype == jnp.float32


def test_summarize_and_vmap():
    rng = np.random.default_rng(2)
    R = rng.normal(1000, 300, (5, 400)).astype(np.float32)
    pre = np.full((5,), 1100.0, np.float32)
    s = landscape.summarize(R[0])
    assert set(s) == {"mean", "std", "min", "max", "quantiles", "mode", "ltp", "cvar"}
    assert s["quantiles"].shape == (5,)
    batched = jax.vmap(landscape.summarize)(R, pre)
    assert set(batched) == set(s) | {"pre_update_return", "ltp_relative"}
    assert float(batched["ltp"][0]) == float(landscape.ltp(R[0]))
    assert float(batched["cvar"][0]) == pytest.approx(float(landscape.cvar(R[0], 0.1)), rel=1e-6)
    for i in range(5):
        row = landscape.summarize(R[i], pre[i])
        for k in row:
            np.testing.assert_allclose(np.asarray(batched[k][i]), np.asarray(row[k]), rtol=1e-6, err_msg=k)
        assert float(row["mode"]) == float(_numpy_mode(R[i]))
        assert float(row["ltp"]) == pytest.approx(np.mean(R[i] < 0.5 * _numpy_mode(R[i])))
        assert float(row["ltp_relative"]) == pytest.approx(np.mean(R[i] < 550.0))
        assert float(row["cvar"]) == pytest.approx(_numpy_cvar(R[i].astype(np.float64), 0.1), rel=2e-5)
    # a sweep over alpha is a vmap (alpha is traced)
    cv = jax.vmap(lambda a: landscape.summarize(R[0], alpha=a)["cvar"])(jnp.array([0.1, 0.2]))
    np.testing.assert_allclose(np.asarray(cv), [_numpy_cvar(R[0].astype(np.float64), a) for a in (0.1, 0.2)],
                               rtol=2e-5)
