"""Point fits on large data: Newton started from a subset's fit, then chord steps with the
subset's Hessian scaled to N (probmodels.solvers.point._subsample_start). The start only changes
how fast the optimum is reached, never which: estimates and standard errors are checked against
statsmodels on the full data, and against the same fit with the start switched off.

Tolerances: Newton stops at a decrement of 1e-10 (standard errors) on the exact Hessian, and
statsmodels' Newton at 1e-8 on the parameters, so estimates agree to ~1e-9 absolute here
(coefficients of order 1, standard errors ~3e-3); standard errors are the inverse observed
information at points that close, so 1e-6 relative.
"""

import numpy as np
import numpyro.distributions as dist
import pytest
import statsmodels.api as sm

import probmodels
from probmodels import noise, observe, param
from probmodels.solvers import point

N, D = 250_000, 4


def logistic(u, x=None):
    b = param("b")
    w = param("w", shape=(u.shape[1],))
    return observe("x", noise.Bernoulli(logits=b + u @ w), obs=x)


def gaussian(u, x=None):
    b = param("b")
    w = param("w", shape=(u.shape[1],))
    s = param("s", support="positive")
    return observe("x", b + u @ w + noise.Gaussian(s), obs=x)


def _data(kind, seed=0, rare=False):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(N, D))
    if rare:  # a binary input that is 1 in 5 rows: a 20,000-row subset most likely misses them all
        u[:, -1] = 0.0
        u[rng.choice(N, 5, replace=False), -1] = 1.0
    w = np.array([0.8, -0.5, 0.3, 1.2])
    eta = 0.2 + u @ w
    if kind == "logistic":
        x = (rng.random(N) < 1 / (1 + np.exp(-eta))).astype(float)
    else:
        x = eta + 1.7 * rng.normal(size=N)
    return dict(u=u, x=x)


def _est(f):
    return np.r_[f.estimate["b"], f.estimate["w"]], np.r_[f.stderr["b"], f.stderr["w"]]


@pytest.mark.parametrize("kind", ["logistic", "gaussian"])
def test_subset_start_reaches_the_full_data_mle(kind):
    data = _data(kind)
    f = probmodels.fit(logistic if kind == "logistic" else gaussian, data, "mle")
    assert f.diagnostics["converged"], f.diagnostics
    assert f.diagnostics["optimizer"] == "newton"
    assert f.diagnostics["start"].startswith("the fit to a random 20000 of the 250000 observations")
    # the chord steps took it to the optimum: Newton's own steps were (almost) not needed
    assert f.diagnostics["iterations"] <= 1
    X = sm.add_constant(data["u"])
    if kind == "logistic":
        ref = sm.Logit(data["x"], X).fit(disp=0, tol=1e-12, maxiter=100)
        est, se = _est(f)
        np.testing.assert_allclose(est, ref.params, rtol=0, atol=1e-9)
        np.testing.assert_allclose(se, ref.bse, rtol=1e-6)
    else:
        ref = sm.OLS(data["x"], X).fit()
        est, se = _est(f)
        np.testing.assert_allclose(est, ref.params, rtol=0, atol=1e-9)
        # MLE of the scale divides by N (OLS' bse by N - p): rescale OLS' standard errors
        np.testing.assert_allclose(se, ref.bse * np.sqrt((N - D - 1) / N), rtol=1e-6)
        np.testing.assert_allclose(f.estimate["s"], np.sqrt(ref.ssr / N), rtol=1e-9)
    # deterministic: the same subset, the same numbers
    g = probmodels.fit(logistic if kind == "logistic" else gaussian, data, "mle")
    assert np.array_equal(_est(f)[0], _est(g)[0])


def test_unrepresentative_subset_falls_back():
    # the subset misses the 5 rows with the rare input: its coefficient is unidentified there
    # (singular Hessian), so there is no chord matrix and Newton starts at z0 on the full data
    data = _data("logistic", seed=1, rare=True)
    f = probmodels.fit(logistic, data, "mle")
    assert "start" not in f.diagnostics, f.diagnostics["start"]
    ref = sm.Logit(data["x"], sm.add_constant(data["u"])).fit(disp=0, tol=1e-12, maxiter=100)
    est, se = _est(f)
    # the rare coefficient rests on 5 observations: compare it to its own standard error
    np.testing.assert_allclose(est[:-1], ref.params[:-1], rtol=0, atol=1e-9)
    assert abs(est[-1] - ref.params[-1]) < 1e-7 * ref.bse[-1]
    np.testing.assert_allclose(se, ref.bse, rtol=1e-6)


def logistic_prior(u, x=None):
    b = param("b")
    w = param("w", dist.Normal(0.0, 0.01), shape=(u.shape[1],))  # strong enough to matter at N
    return observe("x", noise.Bernoulli(logits=b + u @ w), obs=x)


@pytest.mark.parametrize("method", ["mle", "map"])
def test_same_answer_without_the_start(monkeypatch, method):
    data = _data("logistic", seed=2)
    f = probmodels.fit(logistic_prior, data, method)
    assert "start" in f.diagnostics
    monkeypatch.setattr(point, "_SUBSAMPLE_MIN_RATIO", 10**9)  # switch the subset start off
    g = probmodels.fit(logistic_prior, data, method)
    assert "start" not in g.diagnostics
    (a, sa), (b, sb) = _est(f), _est(g)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    np.testing.assert_allclose(sa, sb, rtol=1e-8)
