"""Fits that cannot be trusted say so: separation, unidentified parameters, boundaries,
non-convergence."""

import numpy as np
import numpyro.distributions as dist
import statsmodels.api as sm

import probmodels
from probmodels import noise, observe, param


def logistic(u, x=None):
    intercept = param("intercept")
    w = param("w", shape=(u.shape[1],))
    return observe("x", noise.Bernoulli(logits=intercept + u @ w), obs=x)


def logistic_prior(u, x=None):
    intercept = param("intercept", dist.Normal(0.0, 5.0))
    w = param("w", dist.Normal(0.0, 2.5), shape=(u.shape[1],))
    return observe("x", noise.Bernoulli(logits=intercept + u @ w), obs=x)


def test_perfect_separation_is_explained(rng):
    u = rng.normal(size=(60, 2))
    x = (u[:, 0] > 0).astype(float)  # u[:, 0] separates the classes perfectly
    fit = probmodels.fit(logistic, {"u": u, "x": x}, "mle")
    assert not fit.diagnostics["converged"]
    msg = " ".join(fit.diagnostics["warnings"])
    assert "does not exist" in msg and "separation" in msg and "w[0]" in msg
    assert "60 of 60" in msg
    assert "warning" in repr(fit) and "separation" in repr(fit)
    # a prior makes the MAP exist
    map_ = probmodels.fit(logistic_prior, {"u": u, "x": x}, "map")
    assert map_.diagnostics["converged"] and np.all(np.isfinite(map_.stderr["w"]))


def test_collinear_inputs_named(rng):
    u = rng.normal(size=(100, 3))
    u = np.column_stack([u, u[:, 1]])  # w[3] duplicates w[1]
    x = 1.0 + u[:, 0] + rng.normal(size=100)

    def line(u, x=None):
        w = param("w", shape=(4,))
        b = param("b")
        return observe("x", b + u @ w + noise.Gaussian(1.0), obs=x)

    fit = probmodels.fit(line, {"u": u, "x": x}, "mle")
    msg = " ".join(fit.diagnostics["warnings"])
    assert "singular" in msg and "w[1]" in msg and "w[3]" in msg
    assert "w[0]" not in msg and "w[2]" not in msg
    assert np.isnan(fit.stderr["w"][1]) and np.isnan(fit.stderr["w"][3])
    # the identified coordinates keep exact standard errors: OLS on the reduced design
    ref = sm.OLS(x, sm.add_constant(u[:, :3])).fit()
    np.testing.assert_allclose(fit.stderr["w"][[0, 2]], ref.bse[[1, 3]] * 1.0 / np.sqrt(ref.scale), rtol=1e-6)
    np.testing.assert_allclose(fit.stderr["b"], ref.bse[0] / np.sqrt(ref.scale), rtol=1e-6)


def eight_schools_marginal(sigma, x=None):
    # theta_j integrated out: x_j ~ N(mu, sqrt(tau^2 + sigma_j^2)); its MLE of tau is 0
    mu = param("mu")
    tau = param("tau", support="positive")
    return observe("x", mu + noise.Gaussian((tau**2 + sigma**2) ** 0.5), obs=x)


def test_boundary_estimate_found():
    # Rubin's eight schools: the marginal likelihood of tau is largest at tau = 0
    x = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
    fit = probmodels.fit(eight_schools_marginal, {"sigma": sigma, "x": x}, "mle")
    assert fit.estimate["tau"] < 1e-4
    msg = " ".join(fit.diagnostics["warnings"])
    assert "tau" in msg and "boundary" in msg
    # closed form at tau = 0: mu is the precision-weighted mean
    w = 1 / sigma**2
    np.testing.assert_allclose(fit.estimate["mu"], np.sum(w * x) / np.sum(w), rtol=1e-6)


def one_point(x):
    loc = param("loc", dist.Normal(0.0, 100.0))
    s = param("s", support="positive")
    return observe("x", loc + noise.Gaussian(s), obs=x)


def test_single_point_scale_unbounded():
    # one observation: the Gaussian likelihood grows without bound as s -> 0 at loc = x
    fit = probmodels.fit(one_point, {"x": np.array([1.3])}, "mle", init={"loc": 1.0})
    assert not fit.diagnostics["converged"]
    msg = " ".join(fit.diagnostics["warnings"])
    assert "does not exist" in msg and "s" in msg


def test_iteration_limit_reported(rng):
    u = rng.normal(size=(50, 2))
    x = (rng.uniform(size=50) < 0.5).astype(float)
    fit = probmodels.fit(logistic, {"u": u, "x": x}, "mle", max_iter=1)
    assert not fit.diagnostics["converged"]
    assert "iteration" in fit.diagnostics["warnings"][0] and "gradient" in fit.diagnostics["warnings"][0]
