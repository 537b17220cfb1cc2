"""``fit(..., weights=w)``: frequency weights, as statsmodels' ``freq_weights``."""

import numpy as np
import numpyro.distributions as dist
import pytest
import statsmodels.api as sm

import probmodels
from probmodels import noise, observe, param
from probmodels.compare import log_predictive_density
from probmodels.solvers._objective import trace_count


def robust_line(u, x=None):
    slope = param("slope", dist.Normal(0.0, 10.0))
    intercept = param("intercept")
    scale = param("scale", prior=dist.HalfNormal(5.0))
    return observe("x", intercept + slope * u + noise.StudentT(df=4.0, scale=scale), obs=x)


def poisson_glm(u, x=None):
    w = param("w", shape=(2,))
    return observe("x", noise.Poisson(log_rate=w[0] + w[1] * u), obs=x)


@pytest.fixture(scope="module")
def line_data():
    rng = np.random.default_rng(7)
    u = rng.normal(size=40)
    x = 1.0 + 2.0 * u + rng.standard_t(4, size=40)
    return {"u": u, "x": x}, rng.integers(0, 4, size=40)


@pytest.mark.parametrize("method", ["mle", "map", "laplace"])
def test_integer_weights_equal_repeated_rows(line_data, method):
    data, w = line_data
    rep = np.repeat(np.arange(len(w)), w)
    a = probmodels.fit(robust_line, data, method, weights=w)
    b = probmodels.fit(robust_line, {k: v[rep] for k, v in data.items()}, method)
    # the same optimum of the same objective (sum_i w_i l_i = the repeated rows' sum): equal to
    # the optimiser's tolerance, and so are the inverse-Hessian standard errors
    for k in a.estimate:
        np.testing.assert_allclose(a.estimate[k], b.estimate[k], rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(a.stderr[k], b.stderr[k], rtol=1e-6)
    if a.is_point:  # n = sum(w) in BIC, the weighted log-likelihood
        ca, cb = a.criteria(), b.criteria()
        assert ca["n"] == cb["n"] == int(w.sum())
        np.testing.assert_allclose([ca["log_likelihood"], ca["bic"]], [cb["log_likelihood"], cb["bic"]], rtol=1e-10)


def test_zero_one_weights_equal_the_subset_and_compile_nothing_new(line_data):
    data, _ = line_data
    n = len(data["x"])
    keep = np.arange(n) % 5 != 0
    test = np.flatnonzero(~keep)
    full = probmodels.fit(robust_line, data, "mle", weights=np.ones(n))
    plain = probmodels.fit(robust_line, data, "mle")
    for k in full.estimate:  # weights 1: the unweighted fit exactly (x * 1.0 == x)
        assert np.array_equal(full.estimate[k], plain.estimate[k])
    before = trace_count(robust_line)
    held = probmodels.fit(robust_line, data, "mle", weights=keep.astype(float))
    assert trace_count(robust_line) == before  # the full-data fit's programs, reused
    sub = probmodels.fit(robust_line, {k: v[keep] for k, v in data.items()}, "mle")
    for k in held.estimate:  # the same optimum: to the optimiser's tolerance
        np.testing.assert_allclose(held.estimate[k], sub.estimate[k], rtol=1e-7, atol=1e-9)
    # held-out rows scored in place equal them scored as new data
    lpd_rows = log_predictive_density(held, rows=test)
    lpd_new = log_predictive_density(sub, robust_line, {k: v[test] for k, v in data.items()})
    np.testing.assert_allclose(lpd_rows, lpd_new, rtol=1e-7)
    assert held.model is robust_line and sorted(held.data) == ["u", "x"]


def test_poisson_weights_match_statsmodels_freq_weights():
    rng = np.random.default_rng(3)
    u = rng.normal(size=60)
    x = rng.poisson(np.exp(0.3 + 0.5 * u)).astype(float)
    w = rng.integers(1, 5, size=60)
    ref = sm.GLM(x, sm.add_constant(u), family=sm.families.Poisson(), freq_weights=w).fit()
    f = probmodels.fit(poisson_glm, {"u": u, "x": x}, "mle", weights=w)
    # statsmodels' IRLS converges to ~1e-8 relative; the standard errors from the same
    # information matrix
    np.testing.assert_allclose(f.estimate["w"], ref.params, rtol=1e-6)
    np.testing.assert_allclose(f.stderr["w"], ref.bse, rtol=1e-6)
    np.testing.assert_allclose(f.criteria()["log_likelihood"], ref.llf, rtol=1e-8)


@pytest.mark.parametrize(
    "weights, words",
    [
        (np.ones(39), "40"),
        (np.ones((40, 1)), "one-dimensional"),
        (np.r_[np.ones(39), -1.0], "negative"),
        (np.r_[np.ones(39), np.nan], "NaN"),
        (np.zeros(40), "every weight is 0"),
    ],
)
def test_bad_weights_are_named(line_data, weights, words):
    data, _ = line_data
    with pytest.raises(ValueError, match="weights") as err:
        probmodels.fit(robust_line, data, "mle", weights=weights)
    assert words in str(err.value)


def test_weights_refused_where_they_would_be_wrong(line_data):
    data, w = line_data
    with pytest.raises(ValueError, match="batch_size"):
        probmodels.fit(robust_line, data, "vi", weights=w, batch_size=10)
    post = probmodels.fit(robust_line, data, "laplace", weights=w)
    with pytest.raises(ValueError, match="repeated"):
        post.criteria()
    with pytest.raises(ValueError, match="repeated"):
        probmodels.sensitivity(post)


def two_sites(u, x=None, c=None):
    b = param("b")
    a = param("a")
    observe("x", b * u + noise.Gaussian(1.0), obs=x)
    return observe("c", noise.Poisson(log_rate=a + 0.3 * u), obs=c)


def test_weighted_sandwich_equals_repeated_rows_with_two_sites():
    """Huber-White with weights: each site's per-row scores carry their row's weight (the meat is
    sum_i w_i s_i s_i^T over every site), equal to the sandwich of the data with rows repeated."""
    rng = np.random.default_rng(3)
    u = rng.normal(size=30)
    data = {"u": u, "x": 1.5 * u + rng.standard_t(3, size=30), "c": rng.poisson(2.0, size=30).astype(float)}
    w = rng.integers(0, 4, size=30)
    rep = np.repeat(np.arange(30), w)
    a = probmodels.fit(two_sites, data, "mle", weights=w, stderr="sandwich")
    b = probmodels.fit(two_sites, {k: v[rep] for k, v in data.items()}, "mle", stderr="sandwich")
    # the same optimum to Newton's tolerance (decrement 1e-10 standard errors): SEs to 1e-8
    for k in ("a", "b"):
        np.testing.assert_allclose(a.estimate[k], b.estimate[k], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(a.stderr[k], b.stderr[k], rtol=1e-8)
