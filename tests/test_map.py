"""MAP against scikit-learn's Ridge and Lasso, and the Beta-Bernoulli closed form.

A Normal(0, tau) prior on the weights with Gaussian noise of known scale sigma makes the MAP the
ridge estimate with alpha = sigma^2 / tau^2; a Laplace(0, b) prior makes it the lasso with
alpha = sigma^2 / (b N) (scikit-learn's 1/(2N) scaling of the squared error).
"""

import numpy as np
import numpyro.distributions as dist
import pytest
from sklearn.linear_model import Lasso, Ridge

import probmodels
from probmodels import noise, observe, param

SIGMA = 0.8


def ridge(u, tau, x=None):
    intercept = param("intercept")  # flat: not penalised, as scikit-learn's intercept
    w = param("w", dist.Normal(0.0, tau), shape=(u.shape[1],))
    return observe("x", intercept + u @ w + noise.Gaussian(SIGMA), obs=x)


def lasso(u, b, x=None):
    intercept = param("intercept")
    w = param("w", dist.Laplace(0.0, b), shape=(u.shape[1],))
    return observe("x", intercept + u @ w + noise.Gaussian(SIGMA), obs=x)


def test_ridge(rng):
    u = rng.normal(size=(80, 6))
    x = 1.0 + u @ rng.normal(size=6) + rng.normal(scale=SIGMA, size=80)
    tau = 0.3
    fit = probmodels.fit(ridge, {"u": u, "tau": tau, "x": x}, "map")
    ref = Ridge(alpha=SIGMA**2 / tau**2, fit_intercept=True, tol=1e-14, solver="cholesky").fit(u, x)
    np.testing.assert_allclose(fit.estimate["w"], ref.coef_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(fit.estimate["intercept"], ref.intercept_, rtol=1e-7)
    # closed form: the MAP's curvature is U^T U / sigma^2 + I / tau^2 (intercept unpenalised)
    uc = np.column_stack([np.ones(80), u])
    prec = uc.T @ uc / SIGMA**2 + np.diag([0.0] + [1 / tau**2] * 6)
    np.testing.assert_allclose(fit.stderr["w"], np.sqrt(np.diag(np.linalg.inv(prec)))[1:], rtol=1e-7)


@pytest.mark.parametrize("b", [0.05, 0.01])
def test_lasso_exact_zeros(rng, b):
    n = 100
    u = rng.normal(size=(n, 8))
    coef = np.array([2.0, -1.5, 0, 0, 0.8, 0, 0, 0])
    x = 0.5 + u @ coef + rng.normal(scale=SIGMA, size=n)
    fit = probmodels.fit(lasso, {"u": u, "b": b, "x": x}, "map")
    ref = Lasso(alpha=SIGMA**2 / (b * n), fit_intercept=True, tol=1e-14, max_iter=1_000_000).fit(u, x)
    w = fit.estimate["w"]
    # the same zeros, exactly (a proximal step, not a smoothed |w|)
    assert np.array_equal(w == 0.0, ref.coef_ == 0.0), (w, ref.coef_)
    assert (w == 0).sum() >= 2
    # coordinate descent at tol 1e-14 vs our subgradient at 1e-9 x |objective|
    np.testing.assert_allclose(w, ref.coef_, atol=1e-7)
    np.testing.assert_allclose(fit.estimate["intercept"], ref.intercept_, atol=1e-7)
    # standard errors of exact zeros are undefined, not a number
    assert np.all(np.isnan(fit.stderr["w"][w == 0])) and np.all(np.isfinite(fit.stderr["w"][w != 0]))


def beta_bernoulli(x=None):
    p = param("p", dist.Beta(2.0, 3.0))
    return observe("x", noise.Bernoulli(probs=p), obs=x)


def test_beta_bernoulli_modes(rng):
    x = (rng.uniform(size=40) < 0.3).astype(float)
    k, n = x.sum(), 40
    mle = probmodels.fit(beta_bernoulli, {"x": x}, "mle")
    map_ = probmodels.fit(beta_bernoulli, {"x": x}, "map")
    # closed form k/n; the optimiser stops within 1e-10 standard errors (Newton decrement)
    np.testing.assert_allclose(mle.estimate["p"], k / n, atol=1e-9 * mle.stderr["p"])
    # closed form: se = sqrt(p (1 - p) / n)
    np.testing.assert_allclose(mle.stderr["p"], np.sqrt(k / n * (1 - k / n) / n), rtol=1e-7)
    # closed form: the Beta(a + k, b + n - k) mode, (a + k - 1) / (a + b + n - 2)
    np.testing.assert_allclose(map_.estimate["p"], (2 + k - 1) / (5 + n - 2), atol=1e-9 * map_.stderr["p"])


def exponential_only(x):
    t = param("t", dist.Exponential(1.0))
    return observe("x", 0.0 * t + noise.Gaussian(1.0), obs=x)


def test_jacobian_switch():
    # the Exponential(1) density has its mode at 0 in the natural space; the density of log t
    # (t e^-t) has its mode at t = 1
    x = np.zeros(3)
    on = probmodels.fit(exponential_only, {"x": x}, "map", jacobian=True)
    np.testing.assert_allclose(on.estimate["t"], 1.0, atol=1e-6)
    off = probmodels.fit(exponential_only, {"x": x}, "map")
    assert off.estimate["t"] < 1e-6
    assert any("boundary" in w for w in off.diagnostics["warnings"])
