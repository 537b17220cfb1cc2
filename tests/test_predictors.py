"""Each loss makes its predictor optimal, robust noise is robust, and Dirichlet MAP is smoothing.

The MLE of a constant model x = m + eps is the point predictor the loss makes optimal.
"""

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy.optimize import minimize_scalar

import probmodels
from probmodels import noise, observe, param


def constant(eps):
    def program(x):
        m = param("m")
        return observe("x", m + eps, obs=x)

    return program


@pytest.fixture(scope="module")
def skewed():
    # a skewed sample with outliers: mean, median and Huber estimate all differ
    rng = np.random.default_rng(11)
    return np.concatenate([rng.exponential(1.0, 99), [15.0, 22.0]])


def test_gaussian_gives_the_mean(skewed):
    fit = probmodels.fit(constant(noise.Gaussian(1.0)), {"x": skewed}, "mle")
    np.testing.assert_allclose(fit.estimate["m"], skewed.mean(), rtol=1e-10)


def test_laplace_gives_the_median(skewed):
    fit = probmodels.fit(constant(noise.Laplace(1.0)), {"x": skewed}, "mle")
    # 101 points: the median is the 51st; the smoothing ends at eps = 1e-10 x scale
    np.testing.assert_allclose(fit.estimate["m"], np.median(skewed), atol=1e-8)
    assert fit.diagnostics["converged"]


def test_laplace_with_learned_scale(skewed):
    def program(x):
        m = param("m")
        b = param("b", support="positive")
        return observe("x", m + noise.Laplace(b), obs=x)

    fit = probmodels.fit(program, {"x": skewed}, "mle")
    med = np.median(skewed)
    np.testing.assert_allclose(fit.estimate["m"], med, atol=1e-8)
    # closed form: the MLE of a Laplace scale is the mean absolute deviation from the median
    np.testing.assert_allclose(fit.estimate["b"], np.mean(np.abs(skewed - med)), rtol=1e-8)
    # and its standard error is b / sqrt(N) (Fisher information N / b^2); the location's, b / sqrt(N)
    np.testing.assert_allclose(fit.stderr["b"], fit.estimate["b"] / np.sqrt(len(skewed)), rtol=1e-6)
    np.testing.assert_allclose(fit.stderr["m"], fit.estimate["b"] / np.sqrt(len(skewed)), rtol=1e-6)


def test_huber_gives_the_huber_m_estimate(skewed):
    delta = 1.345
    fit = probmodels.fit(constant(noise.Huber(delta, 1.0)), {"x": skewed}, "mle")

    def huber_loss(m):  # the textbook Huber loss, written here independently
        r = np.abs(skewed - m)
        return np.sum(np.where(r <= delta, 0.5 * r**2, delta * r - 0.5 * delta**2))

    ref = minimize_scalar(huber_loss, bracket=(0.0, 3.0), tol=1e-12).x
    np.testing.assert_allclose(fit.estimate["m"], ref, atol=1e-7)  # scipy's Brent tolerance
    assert np.median(skewed) < fit.estimate["m"] < skewed.mean()


def test_bernoulli_gives_the_frequency():
    x = np.array([1, 0, 0, 1, 1, 0, 1, 1, 0, 1.0])

    def program(x):
        logit = param("logit")
        return observe("x", noise.Bernoulli(logits=logit), obs=x)

    fit = probmodels.fit(program, {"x": x}, "mle")
    np.testing.assert_allclose(1 / (1 + np.exp(-fit.estimate["logit"])), x.mean(), rtol=1e-9)


def test_poisson_gives_the_mean_count():
    x = np.array([0, 3, 1, 4, 2, 2, 7, 1.0])

    def program(x):
        log_rate = param("log_rate")
        return observe("x", noise.Poisson(log_rate=log_rate), obs=x)

    fit = probmodels.fit(program, {"x": x}, "mle")
    np.testing.assert_allclose(np.exp(fit.estimate["log_rate"]), x.mean(), rtol=1e-9)


# --- robustness: 10% gross outliers -------------------------------------------------------------

ROBUST = {
    "Gaussian": lambda s: noise.Gaussian(s),
    "StudentT": lambda s: noise.StudentT(4.0, s),
    "Laplace": lambda s: noise.Laplace(s),
    "Huber": lambda s: noise.Huber(1.345, s),
    "Mixture": lambda s: noise.Mixture([noise.Gaussian(s), noise.Gaussian(10.0 * s)], [0.9, 0.1]),
}


def line_with(make):
    def program(u, x=None):
        intercept = param("intercept")
        slope = param("slope")
        scale = param("scale", support="positive")
        return observe("x", intercept + slope * u + make(scale), obs=x)

    return program


def test_robust_noise_recovers_the_slope():
    # 8 data sets, each with 10% gross outliers (shifted down by 6 to 10, i.e. 20-33 noise sds)
    # on the right half of the line, so that they pull the least-squares slope down; one program
    # per noise model for all of them (a new program per data set would trace 40 programs)
    programs = {k: line_with(make) for k, make in ROBUST.items()}
    errors = {k: [] for k in ROBUST}
    for seed in range(8):
        rng = np.random.default_rng(100 + seed)
        u = rng.uniform(-1, 1, 100)
        x = 0.5 + 2.0 * u + rng.normal(scale=0.3, size=100)
        bad = rng.choice(np.flatnonzero(u > 0), 10, replace=False)
        x[bad] -= rng.uniform(6, 10, 10)
        for k, program in programs.items():
            fit = probmodels.fit(program, {"u": u, "x": x}, "mle", init={"scale": 1.0})
            assert fit.diagnostics["converged"], (k, fit.diagnostics["warnings"])
            errors[k].append(abs(fit.estimate["slope"] - 2.0))
    rmse = {k: float(np.sqrt(np.mean(np.square(v)))) for k, v in errors.items()}
    print("slope RMSE over 8 contaminated data sets:", rmse)
    # Least squares is dragged by ~1 slope unit (0.8 x 10% x mean |u| / var u); each robust
    # noise model by far less (measured: see the closing note)
    assert rmse["Gaussian"] > 0.7
    for k in ("StudentT", "Laplace", "Huber", "Mixture"):
        assert rmse[k] < rmse["Gaussian"] / 3, rmse  # Huber (least robust, monotone influence): ~1/4


# --- Dirichlet MAP is additive smoothing --------------------------------------------------------


def categorical_with_dirichlet(k, a, x=None):
    p = param("p", dist.Dirichlet(jnp.full(k, a)))
    return observe("x", noise.Categorical(probs=p), obs=x)


@pytest.mark.parametrize("a", [1.0, 1.5, 3.0])
def test_dirichlet_map_is_additive_smoothing(a):
    x = np.array([0, 0, 1, 0, 2, 0, 1, 0, 0, 3, 0, 1])
    k = 5  # category 4 never seen
    counts = np.bincount(x, minlength=k)
    fit = probmodels.fit(categorical_with_dirichlet, {"k": k, "a": a, "x": x}, "map")
    # closed form: (n_k + a - 1) / (N + K (a - 1)); a = 1 is the MLE, n_k / N (a zero included)
    expected = (counts + a - 1) / (counts.sum() + k * (a - 1))
    if a == 1.0:
        # the unseen category's MLE is 0: the boundary of the simplex, flagged
        np.testing.assert_allclose(fit.estimate["p"], expected, atol=1e-6)
        assert any("boundary" in w for w in fit.diagnostics["warnings"])
    else:
        np.testing.assert_allclose(fit.estimate["p"], expected, rtol=1e-8)
