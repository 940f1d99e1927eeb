"""Tests for rlland.curvature: HVPs, Lanczos, Hutchinson, SLQ, subspace metrics.

float64 checks run inside ``jax.enable_x64(True)`` (a context manager in jax 0.10), never globally.
Reference values come from numpy/scipy on dense matrices and from matfree on the same start vectors.
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse.linalg as spla
from jax.flatten_util import ravel_pytree
from matfree import decomp, eig, funm, stochtrace

from rlland import curvature

x64 = partial(jax.enable_x64, True)

# ---------------------------------------------------------------------------------------------- problems

SHAPES = {"w1": (3, 5), "b1": (5,), "w2": (5, 2), "b2": (2,)}  # n = 32


def mlp_loss(params, x, y):
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    out = h @ params["w2"] + params["b2"]
    return 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=-1))


def make_problem(seed, dtype):
    """Tiny tanh-MLP regression loss; returns (params, loss_fn) in ``dtype``."""
    rng = np.random.default_rng(seed)
    params = {k: jnp.asarray(rng.normal(size=s) * 0.8, dtype) for k, s in SHAPES.items()}
    x = jnp.asarray(rng.normal(size=(16, 3)), dtype)
    y = jnp.asarray(rng.normal(size=(16, 2)), dtype)
    return params, partial(mlp_loss, x=x, y=y)


def sym_matrix(seed, n):
    m = np.random.default_rng(seed).normal(size=(n, n))
    return (m + m.T) / 2


@pytest.fixture(scope="module")
def truth():
    """Dense float64 Hessian (numpy) of the MLP loss at the seed-0 parameters, its eigenvalues (descending)
    and eigenvectors (columns)."""
    with x64():
        params, loss = make_problem(0, jnp.float64)
        H = np.asarray(jax.jit(partial(curvature.dense_hessian, loss))(params))
    w, U = np.linalg.eigh(H)
    return H, w[::-1], U[:, ::-1]


TRACES = []  # one entry per trace of the shared jitted kernels below: (kernel, dtype, static args)


@partial(jax.jit, static_argnames=("which",))
def mlp_eigh(params, key, which="LA"):
    """Top-4 Hessian eigenpairs of the MLP loss (data of seed 0) at ``params``: one compiled kernel per dtype."""
    TRACES.append(("mlp", params["w1"].dtype, which))
    _, loss = make_problem(0, params["w1"].dtype)
    matvec = curvature.linearized_hvp(loss, params)
    return curvature.lanczos_eigh(matvec, params, 4, key, num_iters=24, which=which)


@partial(jax.jit, static_argnames=("which",))
def dense_eigh(A, key, which="LA"):
    """Top-6 eigenpairs of a dense [32, 32] matrix (an argument, so one compile serves many matrices)."""
    TRACES.append(("dense", A.dtype, which))
    like = jnp.zeros(32, A.dtype)
    return curvature.lanczos_eigh(lambda v: A @ v, like, 6, key, num_iters=32, which=which, return_flat=True)[:2]


# ---------------------------------------------------------------------------------------------- HVP


def test_hvp_equals_dense_hessian_times_v():
    with x64():
        params, loss = make_problem(0, jnp.float64)
        rng = np.random.default_rng(7)
        v = {k: jnp.asarray(rng.normal(size=s)) for k, s in SHAPES.items()}

        @jax.jit
        def all_products(params, v):
            matvec = curvature.linearized_hvp(loss, params)
            return curvature.dense_hessian(loss, params), curvature.hvp(loss, params, v), matvec(v), matvec(params)

        H, hv, lin_v, lin_p = all_products(params, v)
        assert H.shape == (32, 32) and H.dtype == jnp.float64
        np.testing.assert_allclose(H, H.T, atol=1e-12)
        expected = H @ ravel_pytree(v)[0]
        assert jax.tree_util.tree_structure(hv) == jax.tree_util.tree_structure(params)
        np.testing.assert_allclose(ravel_pytree(hv)[0], expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ravel_pytree(lin_v)[0], expected, rtol=1e-10, atol=1e-12)
        # the linearisation is reusable across vectors
        np.testing.assert_allclose(ravel_pytree(lin_p)[0], H @ ravel_pytree(params)[0], rtol=1e-10)


def test_dense_hessian_of_quadratic_and_size_guard():
    with x64():
        A = sym_matrix(3, 7)
        b = np.arange(7.0)

        def loss(p):
            x = ravel_pytree(p)[0]
            return 0.5 * x @ A @ x + b @ x

        params = {"a": jnp.ones(3), "b": jnp.zeros((2, 2))}  # ravel order: a (3), then b (4)
        H = jax.jit(partial(curvature.dense_hessian, loss))(params)
        np.testing.assert_allclose(H, A, atol=1e-12)
        with pytest.raises(ValueError, match="max_params"):
            curvature.dense_hessian(loss, params, max_params=5)


# ---------------------------------------------------------------------------------------------- Lanczos


def test_lanczos_float64_matches_numpy_and_scipy(truth):
    H, w, U = truth
    with x64():
        params, loss = make_problem(0, jnp.float64)
        result = mlp_eigh(params, jax.random.key(0))
        vals, vecs, res = result[:3]
        assert isinstance(result, curvature.EighResult) and bool(result.converged.all())
        assert int(result.num_matvecs) == 24  # converged in the first cycle: no restart
        assert vals.dtype == jnp.float64 and vals.shape == (4,)
        assert jax.tree_util.tree_structure(vecs) == jax.tree_util.tree_structure(params)
        assert vecs["w1"].shape == (4, 3, 5)
        np.testing.assert_allclose(vals, w[:4], rtol=1e-4)
        assert np.all(np.diff(vals) <= 0)  # descending
        assert np.all(np.asarray(res) < 1e-6 * np.abs(w[0]))  # converged Ritz pairs

        # scipy eigsh on the same LinearOperator (which="LA", as the reference)
        unravel = ravel_pytree(params)[1]
        hvp_flat = jax.jit(lambda x: ravel_pytree(curvature.hvp(loss, params, unravel(x)))[0])
        op = spla.LinearOperator((32, 32), matvec=lambda x: np.asarray(hvp_flat(jnp.asarray(x.ravel()))), dtype=float)
        sp_vals = np.sort(spla.eigsh(op, k=4, which="LA", tol=1e-12)[0])[::-1]
        np.testing.assert_allclose(vals, sp_vals, rtol=1e-4)

        # eigenvectors up to sign, for well-separated eigenvalues
        V = np.asarray(jax.vmap(lambda t: ravel_pytree(t)[0])(vecs))
        gaps = np.minimum(np.abs(w[:4] - w[1:5]), np.abs(w[:4] - np.r_[np.inf, w[:3]]))
        separated = gaps > 1e-2 * np.abs(w[0])
        assert separated.sum() >= 2, "test problem should have separated top eigenvalues"
        cos = np.abs(np.sum(V * U[:, :4].T, axis=1))
        assert np.all(cos[separated] > 1 - 1e-6), cos
        np.testing.assert_allclose(V @ V.T, np.eye(4), atol=1e-10)
        # the sign convention: the largest-magnitude entry of each vector is positive
        assert np.all(V[np.arange(4), np.argmax(np.abs(V), axis=1)] > 0)


def test_lanczos_float32(truth):
    _, w, _ = truth
    params, _ = make_problem(0, jnp.float32)
    vals, vecs, _ = mlp_eigh(params, jax.random.key(0))[:3]
    assert vals.dtype == jnp.float32 and vecs["w1"].dtype == jnp.float32
    np.testing.assert_allclose(vals, w[:4], rtol=1e-3)


def test_lanczos_vmap_over_keys_and_params(truth):
    with x64():
        keys = jax.random.split(jax.random.key(1), 3)
        params0, _ = make_problem(0, jnp.float64)
        scaled = [jax.tree_util.tree_map(lambda x: x * (1 + 0.1 * i), params0) for i in range(3)]
        stack = lambda ps: jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *ps)  # noqa: E731
        batched = jax.vmap(mlp_eigh)
        # 3 keys, same parameters (seeds), then 3 parameter sets with their own keys (snapshots)
        for plist in ([params0] * 3, scaled):
            vals_b, vecs_b = batched(stack(plist), keys)[:2]
            assert vals_b.shape == (3, 4) and vecs_b["w1"].shape == (3, 4, 3, 5)
            for i in range(3):
                vals_i, vecs_i = mlp_eigh(plist[i], keys[i])[:2]
                np.testing.assert_allclose(vals_b[i], vals_i, rtol=1e-10)
                for leaf_b, leaf_i in zip(jax.tree_util.tree_leaves(vecs_b), jax.tree_util.tree_leaves(vecs_i)):
                    np.testing.assert_allclose(leaf_b[i], leaf_i, atol=1e-7)
        # and the snapshot results are the right ones
        _, loss = make_problem(0, jnp.float64)
        hess = jax.jit(partial(curvature.dense_hessian, loss))
        for i in range(3):
            w_i = np.linalg.eigvalsh(np.asarray(hess(scaled[i])))[::-1]
            np.testing.assert_allclose(vals_b[i], w_i[:4], rtol=1e-4)
        np.testing.assert_allclose(vals_b[0], truth[1][:4], rtol=1e-4)
        assert not np.allclose(vals_b[0], vals_b[2], rtol=1e-2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lanczos_breakdown_repeated_and_zero(dtype):
    """A matrix with 3 distinct eigenvalues makes the Krylov space invariant after 3 steps (beta = 0); the
    iteration must restart and still find the repeated eigenvalues, with no NaNs; A = 0 breaks down at once."""
    diag = np.repeat([3.0, 1.0, -2.0], [10, 12, 10])  # n = 32
    with jax.enable_x64(dtype == "float64"):
        D = jnp.diag(jnp.asarray(diag, dtype))
        vals, V = dense_eigh(D, jax.random.key(3))
        assert vals.dtype == dtype
        assert np.all(np.isfinite(vals)) and np.all(np.isfinite(V))
        np.testing.assert_allclose(vals, [3] * 6, atol=1e-5)
        np.testing.assert_allclose(V @ V.T, np.eye(6), atol=1e-5)
        np.testing.assert_allclose(V @ D - vals[:, None] * V, 0, atol=1e-4)  # A v = lambda v
        assert np.all(np.abs(V[:, 10:]) < 1e-5)  # inside the lambda = 3 eigenspace
        zvals, zV = dense_eigh(jnp.zeros((32, 32), dtype), jax.random.key(0))
        assert np.all(np.isfinite(zV)) and np.all(zvals == 0)
        np.testing.assert_allclose(zV @ zV.T, np.eye(6), atol=1e-5)


def test_lanczos_largest_magnitude_and_smallest():
    with x64():
        A = sym_matrix(9, 32)
        w = np.linalg.eigvalsh(A)
        A = A - 30 * np.outer(np.ones(32), np.ones(32)) / 32  # push one direction far negative
        w = np.linalg.eigvalsh(A)
        assert abs(w[0]) > abs(w[-1])
        lm, V = dense_eigh(jnp.asarray(A), jax.random.key(0), which="LM")
        np.testing.assert_allclose(lm, sorted(w, key=lambda x: -abs(x))[:6], rtol=1e-9)
        np.testing.assert_allclose(np.asarray(V) @ A, lm[:, None] * np.asarray(V), atol=1e-8)
        sa, _ = dense_eigh(jnp.asarray(A), jax.random.key(0), which="SA")
        np.testing.assert_allclose(sa, w[:6], rtol=1e-9)


def test_kernels_compile_once_per_signature():
    """The shared kernels above are traced once per (dtype, which), however many keys, parameter sets or
    matrices they see (the earlier tests call them many times; TRACES records every trace)."""
    with x64():
        p1, _ = make_problem(1, jnp.float64)
        p2, _ = make_problem(2, jnp.float64)
        mlp_eigh(p1, jax.random.key(5))
        before = len(TRACES)
        a = mlp_eigh(p2, jax.random.key(6))[0]
        b = mlp_eigh(p1, jax.random.key(7))[0]
    assert len(TRACES) == before  # new params and keys: no retrace
    assert len(TRACES) == len(set(TRACES)), TRACES
    assert not np.allclose(a, b)


def test_lanczos_validation():
    like = {"a": jnp.zeros(5)}
    mv = lambda v: v  # noqa: E731
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="k <= num_iters <= n"):
        curvature.lanczos_eigh(mv, like, 4, key, num_iters=3)
    with pytest.raises(ValueError, match="k <= num_iters <= n"):
        curvature.lanczos_eigh(mv, like, 2, key, num_iters=6)
    with pytest.raises(ValueError, match="k must be >= 1"):
        curvature.lanczos_eigh(mv, like, 0, key, num_iters=3)
    with pytest.raises(ValueError, match="which"):
        curvature.lanczos_eigh(mv, like, 1, key, num_iters=3, which="BE")
    with pytest.raises(TypeError):
        curvature.lanczos_eigh(mv, {"a": jnp.zeros(5, jnp.int32)}, 1, key, num_iters=3)
    with pytest.raises(ValueError, match="num_iters"):
        curvature.lanczos_tridiag(mv, like, 6, key)
    # the default num_iters is min(n, max(2k + 1, 20)): valid for n = 5 (traced only, nothing compiled)
    out = jax.eval_shape(lambda k: curvature.lanczos_eigh(mv, like, 2, k), key)
    assert out.eigenvalues.shape == (2,) and out.eigenvectors["a"].shape == (2, 5) and out.residuals.shape == (2,)
    assert out.converged.shape == (2,) and out.converged.dtype == bool and out.num_matvecs.shape == ()
    with pytest.raises(ValueError, match="max_matvecs"):
        curvature.lanczos_eigh(mv, like, 2, key, num_iters=4, max_matvecs=3)
    with pytest.raises(ValueError, match="tol"):
        curvature.lanczos_eigh(mv, like, 2, key, num_iters=4, tol=-1.0)


def test_lanczos_matches_matfree():
    """Same start vector -> same tridiagonal T and basis as matfree.decomp.tridiag_sym(reortho="full"), the same
    Ritz values as matfree.eig.eigh_partial."""
    with x64():
        n, m = 32, 12
        A = jnp.asarray(sym_matrix(11, n))
        v0 = jnp.asarray(np.random.default_rng(12).normal(size=n))

        @jax.jit
        def both(A, v0):
            matvec = lambda v: A @ v  # noqa: E731
            ours = curvature.lanczos_tridiag(matvec, v0, m, jax.random.key(0))
            theirs = decomp.tridiag_sym(m, materialize=False)(matvec, v0)
            mf_full, _ = eig.eigh_partial(decomp.tridiag_sym(n))(matvec, v0)
            return ours, theirs, mf_full

        ours, theirs, mf_full = both(A, v0)
        np.testing.assert_allclose(ours.diag, theirs.J_small[0], rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(ours.offdiag, theirs.J_small[1], rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(jnp.abs(ours.basis @ theirs.Q_tall.T), np.eye(m), atol=1e-9)
        # with a full Krylov space both recover the exact top eigenvalues
        ours_full, V = dense_eigh(A, jax.random.key(1))
        np.testing.assert_allclose(ours_full, np.sort(mf_full)[::-1][:6], rtol=1e-9)
        np.testing.assert_allclose(ours_full, np.linalg.eigvalsh(A)[::-1][:6], rtol=1e-9)


# ---------------------------------------------------------------------------------------------- trace, SLQ


def test_hutchinson_trace_within_standard_error_and_matches_matfree():
    """Rademacher probes: Var(z^T A z) = 2 (||A||_F^2 - sum_i A_ii^2), so the mean of N probes has standard
    error se = sqrt(that / N). We accept |estimate - tr A| < 4 se (two-sided CLT tail ~6e-5 for a fresh key;
    the key is fixed, so the test is deterministic). Diagonal matrices have zero variance: exact."""
    with x64():
        n, N = 50, 400
        A = jnp.asarray(sym_matrix(5, n) + 0.3 * np.eye(n))
        d = jnp.arange(1.0, 11.0)
        like = {"x": jnp.zeros((5, 10))}
        unravel = ravel_pytree(like)[1]
        key = jax.random.key(4)

        @jax.jit
        def estimates(A, d):
            matvec = lambda v: unravel(A @ ravel_pytree(v)[0])  # noqa: E731
            est, samples = curvature.hutchinson_trace(matvec, like, key, N, return_samples=True)
            batched = curvature.hutchinson_trace(matvec, like, key, N, batch_size=64)
            mf = stochtrace.estimator_monte_carlo(stochtrace.monte_carlo_trace(), stochtrace.sampler_signs(like, num=N))
            diag = curvature.hutchinson_trace(lambda v: d * v, d, key, 3)
            return est, samples, batched, mf(matvec, key), diag

        est, samples, batched, mf, diag = estimates(A, d)
        se = np.sqrt(2 * (np.sum(np.asarray(A) ** 2) - np.sum(np.diag(A) ** 2)) / N)
        assert abs(est - np.trace(A)) < 4 * se, (float(est), np.trace(A), se)
        assert samples.shape == (N,)
        np.testing.assert_allclose(np.std(samples) / np.sqrt(N), se, rtol=0.25)  # the variance formula holds
        np.testing.assert_allclose(batched, est, rtol=1e-12)  # batching does not change the probes
        np.testing.assert_allclose(mf, est, rtol=1e-10)  # matfree with the same Rademacher draws
        np.testing.assert_allclose(diag, 55.0, rtol=1e-12)  # zero variance for diagonal operators


def test_spectral_density_diagonal_mass_at_eigenvalues():
    """For A = diag(d), a normalised Rademacher probe has v_i^2 = 1/n, so the SLQ weights on each distinct
    eigenvalue are exactly multiplicity / n: the smoothed density puts that mass around each eigenvalue."""
    eigs, mult = np.array([-1.0, 0.5, 2.0]), np.array([4, 8, 4])
    d = jnp.asarray(np.repeat(eigs, mult), jnp.float32)  # n = 16
    grid = jnp.linspace(-3.0, 4.0, 1401)
    sigma = 0.05

    @jax.jit
    @jax.vmap  # seeds by vmap
    def slq(key):
        _, phi = curvature.spectral_density(lambda v: d * v, d, key, 8, 3, grid, sigma)
        _, normed = curvature.spectral_density(lambda v: d * v, d, key, 8, 3, grid[:700], sigma, normalize=True)
        nodes, weights = curvature.slq_quadrature(lambda v: d * v, d, key, 8, 3)
        return phi, normed, nodes, weights

    dens, normed, nodes, weights = slq(jax.random.split(jax.random.key(0), 2))
    assert dens.shape == (2, 1401) and nodes.shape == weights.shape == (2, 3, 8) and np.all(np.isfinite(dens))
    g = np.asarray(grid)
    for phi in np.asarray(dens):
        assert abs(np.trapezoid(phi, g) - 1) < 1e-3
        for lam, frac in zip(eigs, mult / 16):
            window = np.abs(g - lam) < 6 * sigma
            assert abs(np.trapezoid(phi[window], g[window]) - frac) < 2e-3
        assert g[np.argmax(phi)] == pytest.approx(0.5, abs=0.01)
    np.testing.assert_allclose(weights.sum(axis=-1), 1, atol=1e-5)
    np.testing.assert_allclose(16 * np.mean(np.sum(weights * nodes, axis=-1), axis=-1), float(d.sum()), atol=1e-4)
    assert np.all(np.abs(np.trapezoid(normed, g[:700], axis=-1) - 1) < 1e-5)  # grid stops at 0.5: renormalised
    with pytest.raises(ValueError, match="sigma"):
        curvature.spectral_density(lambda v: d * v, d, jax.random.key(0), 8, 3, grid, 0.0)
    with pytest.raises(ValueError, match="grid"):
        curvature.spectral_density(lambda v: d * v, d, jax.random.key(0), 8, 3, grid[None], 0.1)


def test_slq_matches_matfree_and_dense():
    """Full-depth SLQ (m = n) on a dense symmetric matrix: the estimate of tr exp(A/4) equals
    matfree.funm.monte_carlo_funm_sym on the same probes, the density is the kernel sum over the nodes and
    weights, and it matches the exact eigenvalues smoothed with the same kernel within Monte-Carlo error
    (E[tau] = 1/n per eigenvalue; 64 probes)."""
    with x64():
        n, P, sig = 30, 64, 0.5
        A = jnp.asarray(sym_matrix(21, n))
        w = np.linalg.eigvalsh(np.asarray(A))
        like = jnp.zeros(n)
        key = jax.random.key(8)
        grid = jnp.linspace(w[0] - 3, w[-1] + 3, 400)

        @jax.jit
        def run(A):
            matvec = lambda v: A @ v  # noqa: E731
            nodes, weights = curvature.slq_quadrature(matvec, like, key, n, P, batch_size=None)
            _, phi = curvature.spectral_density(matvec, like, key, n, P, grid, sig, batch_size=None)
            exp4 = funm.dense_funm_sym_eigh(lambda x: jnp.exp(x / 4))
            integrand = funm.monte_carlo_funm_sym(exp4, decomp.tridiag_sym(n))
            theirs = stochtrace.estimator_monte_carlo(integrand, stochtrace.sampler_signs(like, num=P))
            return nodes, weights, phi, theirs(matvec, jax.random.split(key)[0])

        nodes, weights, phi, theirs = run(A)
        assert nodes.shape == weights.shape == (P, n)
        np.testing.assert_allclose(weights.sum(axis=1), 1, atol=1e-10)
        np.testing.assert_allclose(np.sort(nodes[0]), w, atol=1e-8)  # full depth: nodes are the eigenvalues
        ours = n * np.mean(np.sum(weights * np.exp(nodes / 4), axis=1))
        np.testing.assert_allclose(ours, theirs, rtol=1e-9)
        assert abs(ours - np.sum(np.exp(w / 4))) < 0.1 * np.sum(np.exp(w / 4))
        g = np.asarray(grid)
        kernel = lambda x: np.exp(-0.5 * ((g[None] - x[:, None]) / sig) ** 2) / (sig * np.sqrt(2 * np.pi))  # noqa: E731
        np.testing.assert_allclose(phi, np.asarray(weights).ravel() @ kernel(np.asarray(nodes).ravel()) / P, atol=1e-10)
        phi_true = np.mean(kernel(w), axis=0)
        assert abs(np.trapezoid(phi, g) - 1) < 1e-3
        assert np.max(np.abs(phi - phi_true)) < 0.15 * np.max(phi_true)


# ---------------------------------------------------------------------------------------------- subspaces


def orthonormal_rows(seed, k, n):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, k)))
    return q.T  # [k, n]


def test_subspace_overlap_identities():
    Q = orthonormal_rows(0, 12, 20)
    V = Q[:6]
    np.testing.assert_allclose(curvature.subspace_overlap(V, V), np.ones(6), atol=1e-6)
    np.testing.assert_allclose(curvature.subspace_overlap(Q[:6], Q[6:]), np.zeros(6), atol=1e-6)
    half = curvature.subspace_overlap(Q[[0, 1, 2, 3]], Q[[0, 1, 6, 7]], ks=[4])
    np.testing.assert_allclose(half, [0.5], atol=1e-6)
    # rotations inside the subspace do not change it; the overlap is symmetric
    R = orthonormal_rows(1, 6, 6)
    np.testing.assert_allclose(curvature.subspace_overlap(V, R @ V, ks=6), 1.0, atol=1e-6)
    W = orthonormal_rows(2, 5, 20)
    np.testing.assert_allclose(curvature.subspace_overlap(V, W), curvature.subspace_overlap(W, V), atol=1e-6)
    # pytree bases (leading k axis) give the same numbers as flat ones
    tree_V = {"a": jnp.asarray(V[:, :8]).reshape(6, 2, 4), "b": jnp.asarray(V[:, 8:])}
    np.testing.assert_allclose(curvature.subspace_overlap(tree_V, W), curvature.subspace_overlap(V, W), atol=1e-6)
    with pytest.raises(ValueError, match="1 <= k <= 5"):
        curvature.subspace_overlap(V, W, ks=[6])


def test_gradient_subspace_fraction():
    Q = orthonormal_rows(3, 10, 20)
    V = Q[:5]
    coeff = np.array([0.0, 3.0, 0.0, 4.0, 0.0])
    g = coeff @ V  # inside span(V): ||g||^2 = 25
    frac = curvature.gradient_subspace_fraction(g, V)
    np.testing.assert_allclose(frac, [0, 9 / 25, 9 / 25, 1, 1], atol=1e-6)
    np.testing.assert_allclose(curvature.gradient_subspace_fraction(g, V, ks=[2, 5]), [9 / 25, 1], atol=1e-6)
    assert curvature.gradient_subspace_fraction(g, V, ks=5).shape == ()
    np.testing.assert_allclose(curvature.gradient_subspace_fraction(Q[7], V), np.zeros(5), atol=1e-6)
    # pytree gradient with a pytree basis over the same parameters
    def split(x):
        return {"w": jnp.asarray(x[..., :12]).reshape(*x.shape[:-1], 3, 4), "b": jnp.asarray(x[..., 12:])}

    np.testing.assert_allclose(curvature.gradient_subspace_fraction(split(g), split(V)), frac, atol=1e-6)
    # zero gradient -> NaN (documented), inside jit too
    zero = jax.jit(curvature.gradient_subspace_fraction)(jnp.zeros(20), V)
    assert np.all(np.isnan(zero))
    with pytest.raises(ValueError, match="n=19"):
        curvature.gradient_subspace_fraction(jnp.zeros(19), V)
    # random baseline: average over random subspaces approaches k/n
    assert curvature.random_subspace_baseline(5, 20) == 0.25
    with pytest.raises(ValueError):
        curvature.random_subspace_baseline(21, 20)
    Vs = jnp.asarray(np.stack([orthonormal_rows(100 + s, 5, 20) for s in range(200)]))
    mean_frac = jnp.mean(jax.vmap(curvature.gradient_subspace_fraction, in_axes=(None, 0))(g, Vs), axis=0)
    np.testing.assert_allclose(mean_frac, np.arange(1, 6) / 20, atol=0.03)


def test_merge_eigenbases():
    A = orthonormal_rows(4, 3, 6)  # actor: n_a = 6
    B = orthonormal_rows(5, 2, 4)  # critic: n_b = 4
    vals, vecs = curvature.merge_eigenbases(jnp.array([5.0, 2.0, 1.0]), A, jnp.array([4.0, 2.0]), B)
    np.testing.assert_allclose(vals, [5, 4, 2, 2, 1])
    expected = np.zeros((5, 10))
    expected[0, :6], expected[1, 6:], expected[2, 6:], expected[3, :6], expected[4, :6] = A[0], B[0], B[1], A[1], A[2]
    np.testing.assert_allclose(vecs, expected)  # the tie at 2 goes to the critic (b), as in the reference
    np.testing.assert_allclose(vecs @ vecs.T, np.eye(5), atol=1e-6)
    v3, top3 = curvature.merge_eigenbases(jnp.array([5.0, 2.0, 1.0]), A, jnp.array([4.0, 2.0]), B, k=3)
    np.testing.assert_allclose(top3, expected[:3])
    # pytree in, pytree out: (actor tree, critic tree) with a leading k axis, ravel order [actor | critic]
    tree_a = {"w": jnp.asarray(A).reshape(3, 2, 3)}
    _, tree = curvature.merge_eigenbases(
        jnp.array([5.0, 2.0, 1.0]), tree_a, jnp.array([4.0, 2.0]), B, k=3, return_flat=False
    )
    assert tree[0]["w"].shape == (3, 2, 3) and tree[1].shape == (3, 4)
    np.testing.assert_allclose(jax.vmap(lambda t: ravel_pytree(t)[0])(tree), top3)
    # a gradient of the combined loss lies fully in the merged basis when each block does
    g = np.concatenate([A[0], 2 * B[1]])
    np.testing.assert_allclose(curvature.gradient_subspace_fraction(g, vecs)[-1], 1.0, atol=1e-6)
