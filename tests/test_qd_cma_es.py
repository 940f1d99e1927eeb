"""The coefficient CMA-ES of CMA-MEGA (rlland.qd.cma_es): the study's update (dqd-rl's purecma port) against one
step computed independently in NumPy float64 from the original's formulas, its lazy eigendecomposition and
restart rules; evosax's update (the option) against evosax itself; truncation weights, convergence on a sphere
and an ill-conditioned quadratic with both rules, reset, vmap over seeds."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rlland  # noqa: F401
from rlland.qd.cma_es import CoefficientCMAES, DQDCMAState, strategy_constants, truncation_weights

DIM, POP, MU = 5, 20, 10
RULES = ("dqd_rl", "evosax")
ESS = {rule: CoefficientCMAES(dim=DIM, population_size=POP, mu=MU, sigma0=1.0, update_rule=rule) for rule in RULES}
ES = ESS["dqd_rl"]
H = jnp.diag(10.0 ** jnp.linspace(0.0, 4.0, DIM))  # condition number 1e4


def sphere(x):
    return jnp.sum((x - 1.0) ** 2, axis=-1)


def ellipsoid(x):
    return jnp.einsum("...i,ij,...j->...", x - 0.5, H, x - 0.5)


def _minimise(es, f, num_generations, keys):
    def one(key):
        def gen(state, k):
            x, state = es.ask(state, k)
            state = es.tell(state, x, jnp.argsort(f(x)))  # best (lowest) first
            return state, (f(state.mean), es.needs_restart(state))

        return jax.lax.scan(gen, es.init(), jax.random.split(key, num_generations))

    return jax.jit(jax.vmap(one))(keys)


def numpy_dqd_rl_tell(s: dict, ranked: np.ndarray, lam: int, mu: int) -> dict:
    """One dqd-rl ``CMAEvolutionStrategy.tell`` (src/emitters/opt/cma_es.py @ e227035), written out in float64
    from the original's formulas: ``s`` holds mean, sigma, C, pc, ps, invsqrt, current_eval."""
    n = len(s["mean"])
    current_eval = s["current_eval"] + lam
    w = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
    w = w / w.sum()
    mueff = w.sum() ** 2 / (w ** 2).sum()
    cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
    cs = (mueff + 2) / (n + mueff + 5)
    c1 = 2 / ((n + 1.3) ** 2 + mueff)
    cmu = min(1 - c1, 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff))
    damps = 1 + 2 * max(0, np.sqrt((mueff - 1) / (n + 1)) - 1) + cs
    parents = ranked[:mu]
    old_mean = s["mean"]
    mean = np.sum(parents * w[:, None], axis=0)
    y = mean - old_mean
    z = s["invsqrt"] @ y
    ps = (1 - cs) * s["ps"] + (np.sqrt(cs * (2 - cs) * mueff) / s["sigma"]) * z
    left = np.sum(ps ** 2) / n / (1 - (1 - cs) ** (2 * current_eval / lam))
    hsig = 1 if left < 2 + 4.0 / (n + 1) else 0
    pc = (1 - cc) * s["pc"] + hsig * np.sqrt(cc * (2 - cc) * mueff) * y
    ys = parents - old_mean
    rank_mu = np.einsum("ki,kj", ys * w[:, None], ys)
    c1a = c1 * (1 - (1 - hsig ** 2) * cc * (2 - cc))
    rank_one = c1 * np.outer(pc, pc)
    C = s["C"] * (1 - c1a - cmu * np.sum(w)) + rank_one * c1 + rank_mu * cmu / s["sigma"] ** 2
    sigma = s["sigma"] * np.exp(min(1, cs / damps * (np.sum(ps ** 2) / n - 1) / 2))
    return dict(mean=mean, sigma=sigma, C=C, pc=pc, ps=ps, current_eval=current_eval, hsig=hsig, c1=c1)


def _mid_run_state(rng, sigma=0.6, current_eval=2 * POP, ps_scale=0.3):
    """A dqd_rl state in the middle of a run: SPD C (decomposed, as ``ask`` leaves it), nonzero paths."""
    a = rng.normal(size=(DIM, DIM))
    C = a @ a.T / DIM + 0.5 * np.eye(DIM)
    vals, vecs = np.linalg.eigh(C)
    invsqrt = (vecs / np.sqrt(vals)) @ vecs.T
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    t = jnp.asarray(current_eval, jnp.int32)
    return DQDCMAState(mean=f32(rng.normal(size=DIM)), sigma=f32(sigma), C=f32(C), p_c=f32(0.4 * rng.normal(size=DIM)),
                       p_s=f32(ps_scale * np.ones(DIM)), eigvals=f32(vals), eigvecs=f32(vecs), invsqrt=f32(invsqrt),
                       condition=f32(vals.max() / vals.min()), current_eval=t, updated_eval=t)


# h_sig = 1; then a long p_s: h_sig = 0 and the step-size change capped at exp(1)
@pytest.mark.parametrize("sigma, ps_scale", [(0.6, 0.3), (2.5, 8.0)])
def test_dqd_rl_tell_matches_the_original_by_hand(sigma, ps_scale):
    rng = np.random.default_rng(0)
    state = _mid_run_state(rng, sigma=sigma, ps_scale=ps_scale)
    x = np.asarray(state.mean)[None] + sigma * rng.normal(size=(POP, DIM)) @ np.linalg.cholesky(np.asarray(state.C)).T
    order = rng.permutation(POP)
    new = jax.jit(ES.tell)(state, jnp.asarray(x, jnp.float32), jnp.asarray(order))
    s = {k: np.asarray(v, np.float64) for k, v in dict(mean=state.mean, sigma=state.sigma, C=state.C, pc=state.p_c,
                                                        ps=state.p_s, invsqrt=state.invsqrt).items()}
    ref = numpy_dqd_rl_tell(dict(s, current_eval=2 * POP), x[order].astype(np.float32).astype(np.float64), POP, MU)
    assert ref["hsig"] == (1 if ps_scale < 1 else 0)
    if ps_scale > 1:
        assert ref["sigma"] == pytest.approx(sigma * np.e, rel=1e-6)
    for name, ours in (("mean", new.mean), ("sigma", new.sigma), ("C", new.C), ("pc", new.p_c), ("ps", new.p_s)):
        np.testing.assert_allclose(np.asarray(ours), ref[name], rtol=2e-5, atol=2e-6, err_msg=name)
    assert int(new.current_eval) == ref["current_eval"] == 3 * POP
    # tell leaves the decomposition to the next ask
    np.testing.assert_array_equal(new.eigvals, state.eigvals)
    assert int(new.updated_eval) == 2 * POP
    # the rules matter: the textbook rank-one term (c_1 p_c p_c^T) is measurably another matrix here
    textbook = ref["C"] + (ref["c1"] - ref["c1"] ** 2) * np.outer(ref["pc"], ref["pc"])
    assert np.abs(textbook - ref["C"]).max() > 100 * 2e-6 + 2e-5 * np.abs(ref["C"]).max()
    # and evosax's update from the same point is another state
    evo = ESS["evosax"]
    e_state = evo.init(state.mean).replace(std=state.sigma, C=state.C, p_c=state.p_c, p_std=state.p_s)
    e_new = evo.tell(evo.ask(e_state, jax.random.PRNGKey(0))[1], jnp.asarray(x, jnp.float32), jnp.asarray(order))
    np.testing.assert_allclose(e_new.mean, new.mean, rtol=1e-5, atol=1e-6)  # the same recombination
    assert not np.allclose(np.asarray(e_new.std), np.asarray(new.sigma), rtol=1e-3)


def test_dqd_rl_constants_and_lazy_eigendecomposition():
    c = strategy_constants(2, 49)  # the study's hopper: n = 2, mu = 49
    w = np.log(49.5) - np.log(np.arange(1, 50))
    w /= w.sum()
    assert c["mu_eff"] == pytest.approx(1 / np.sum(w ** 2))
    assert c["c_1"] == pytest.approx(2 / (3.3 ** 2 + c["mu_eff"]))
    study = CoefficientCMAES(dim=2, population_size=99, mu=49)
    assert study.update_rule == "dqd_rl"
    gap = 0.5 * 2 * 99 / (c["c_1"] + c["c_mu"]) / 4  # lambda // 2 = 49 parents
    assert study.lazy_gap_evals == pytest.approx(gap) and gap < 99  # every ask after the first decomposes
    # lazy: a fresh state (current_eval 0) keeps its identity decomposition even if C changed
    state = ES.init().replace(C=jnp.diag(jnp.arange(1.0, DIM + 1)))
    _, asked = ES.ask(state, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(asked.eigvals, np.ones(DIM))
    # past the gap, ask symmetrises C by max(C, C^T), decomposes it, and samples from N(mean, sigma^2 C)
    rng = np.random.default_rng(1)
    state = _mid_run_state(rng, sigma=0.5)
    C = np.asarray(state.C, np.float64)
    skew = C + np.triu(0.05 * np.ones((DIM, DIM)), 1)  # asymmetric: max(C, C^T) puts 0.05 on both sides
    big = CoefficientCMAES(dim=DIM, population_size=20_000, mu=MU)
    state = state.replace(C=jnp.asarray(skew, jnp.float32), current_eval=jnp.asarray(100_000, jnp.int32),
                          updated_eval=jnp.asarray(0, jnp.int32))
    assert big.lazy_gap_evals < 100_000
    x, asked = jax.jit(big.ask)(state, jax.random.PRNGKey(3))
    sym = np.maximum(skew, skew.T)
    np.testing.assert_allclose(asked.C, sym, rtol=1e-6)
    np.testing.assert_allclose(np.sort(np.asarray(asked.eigvals)), np.linalg.eigvalsh(sym), rtol=1e-4)
    vals, vecs = np.linalg.eigh(sym)
    np.testing.assert_allclose(asked.invsqrt, (vecs / np.sqrt(vals)) @ vecs.T, rtol=1e-4, atol=1e-5)
    assert float(asked.condition) == pytest.approx(vals.max() / vals.min(), rel=1e-4)
    assert int(asked.updated_eval) == int(state.current_eval)
    np.testing.assert_allclose(np.cov(np.asarray(x, np.float64).T), 0.25 * sym, atol=0.04)
    np.testing.assert_allclose(np.asarray(x).mean(0), state.mean, atol=0.02)


def test_truncation_weights():
    w = np.asarray(truncation_weights(49, 99))
    assert w.shape == (99,) and np.all(w[49:] == 0) and np.all(np.diff(w[:49]) < 0)
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-6)
    raw = np.log(49.5) - np.log(np.arange(1, 50))
    np.testing.assert_allclose(w[:49], raw / raw.sum(), rtol=1e-5)
    p = CoefficientCMAES(dim=2, population_size=99, mu=49, update_rule="evosax").hparams
    np.testing.assert_allclose(p.weights, w)
    np.testing.assert_allclose(p.mu_eff, 1.0 / np.sum(w ** 2), rtol=1e-5)
    with pytest.raises(ValueError, match="dqd_rl, evosax"):
        CoefficientCMAES(dim=2, population_size=99, mu=49, update_rule="pycma")


def test_evosax_rule_matches_evosax_on_a_minimised_fitness():
    """update_rule="evosax": tell(order) == evosax's own tell on a fitness that sorts the same way (it minimises)."""
    evo = ESS["evosax"]
    state = evo.init()
    x, state = evo.ask(state, jax.random.PRNGKey(0))
    fitness = sphere(x)
    ours = evo.tell(state, x, jnp.argsort(fitness))
    theirs, _ = evo.es.tell(jax.random.PRNGKey(1), x, fitness, state, evo.hparams)
    for name in ("mean", "std", "p_std", "p_c", "C", "generation_counter"):  # best_fitness is in ranks for ours
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-5, atol=1e-7, err_msg=name)
    # the mean moves to the truncation-weighted mean of the best MU
    w = truncation_weights(MU)
    np.testing.assert_allclose(ours.mean, w @ x[jnp.argsort(fitness)[:MU]], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("f, gens, tol", [(sphere, 100, 1e-8), (ellipsoid, 150, 1e-6)])
def test_cma_es_minimises(rule, f, gens, tol):
    keys = jax.random.split(jax.random.PRNGKey(3), 3)  # three seeds, vmapped
    _, (f_mean, stop) = _minimise(ESS[rule], f, gens, keys)
    assert f_mean.shape == (3, gens)
    assert np.all(np.asarray(f_mean[:, -1]) < tol), f_mean[:, -1]
    assert not np.any(np.asarray(stop[:, :10]))  # no restart rule fires early on


@pytest.mark.parametrize("rule", RULES)
def test_restart_rules_and_reset(rule):
    es = ESS[rule]
    state = es.init()
    assert not bool(es.needs_restart(state))
    small = state.replace(std=jnp.float32(1e-12)) if rule == "evosax" else state.replace(sigma=jnp.float32(1e-12))
    assert bool(es.needs_restart(small))  # sigma sqrt(max eig) < 1e-11
    flat = jnp.diag(jnp.array([1.0, 1.0, 1.0, 1.0, 1e-15]))
    if rule == "evosax":
        assert bool(es.needs_restart(state.replace(C=flat)))  # cond > 1e14 of the current C
    else:  # the study reads the last decomposition: a new C counts once ask has decomposed it
        assert not bool(es.needs_restart(state.replace(C=flat)))
        assert bool(es.needs_restart(state.replace(condition=jnp.float32(1e15))))
        assert bool(es.needs_restart(state.replace(eigvals=jnp.full((DIM,), 1e-30))))
    assert bool(es.needs_restart(state.replace(mean=jnp.full((DIM,), jnp.nan))))  # ours: non-finite
    assert bool(es.needs_restart(state, jnp.array([3.0, 3.0, 3.0])))  # ranked value spread < 1e-12
    assert not bool(es.needs_restart(state, jnp.array([3.0, 1.0, -jnp.inf])))
    assert not bool(es.needs_restart(state, jnp.array([3.0])))  # the study needs >= 2 values
    x, moved = es.ask(state, jax.random.PRNGKey(0))
    moved = es.tell(moved, x, jnp.arange(POP))
    assert float(jnp.abs(moved.mean).sum()) > 0
    reset = es.reset(moved)
    jax.tree.map(np.testing.assert_array_equal, reset, es.init())
    np.testing.assert_array_equal(reset.C, np.eye(DIM))
    assert float(es.sigma(reset)) == 1.0 and np.all(np.asarray(reset.mean) == 0)
