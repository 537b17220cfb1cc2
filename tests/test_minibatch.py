"""Minibatch VI: inputs and observations indexed together, the log-likelihood scaled by N / B."""

import resource

import numpy as np
import numpyro.distributions as dist
import pytest

import probmodels
from probmodels import noise, observe, param


def line(u, x=None):
    slope = param("slope", dist.Normal(0.0, 10.0))
    scale = param("scale", dist.HalfNormal(1.0))
    return observe("x", slope * u + noise.Gaussian(scale), obs=x)


@pytest.fixture(scope="module")
def paired():
    # x = 2 u + small noise, u symmetric around 0: with x and u indexed by different indices, the
    # slope would be ~0 (independent pairs); shared indices give 2
    rng = np.random.default_rng(0)
    u = rng.normal(size=20_000)
    return {"u": u, "x": 2.0 * u + rng.normal(scale=0.1, size=u.size)}


def test_shared_indices_and_scaling(paired):
    full = probmodels.fit(line, paired, "laplace")
    mb = probmodels.fit(line, paired, "vi", batch_size=200, seed=1)
    assert mb.diagnostics["batch_size"] == 200 and "N/B = 100" in mb.diagnostics["notes"][0]
    # closed form posterior of the slope: sd ~ scale / sqrt(sum u^2) = 0.1 / 141 = 7e-4
    sd = full.stderr["slope"]
    assert abs(mb.estimate["slope"] - 2.0) < 5 * sd
    # with the N / B scaling the posterior sd matches the full-data one; without it, it would be
    # sqrt(N / B) = 10 times larger (stochastic-gradient noise: within 25%)
    assert 0.75 < mb.stderr["slope"] / sd < 1.25, (mb.stderr["slope"], sd)
    assert 0.75 < mb.stderr["scale"] / full.stderr["scale"] < 1.25


def test_minibatch_needs_one_observation_axis(paired):
    with pytest.raises(ValueError, match="batch_size must be between 1 and N - 1"):
        probmodels.fit(line, paired, "vi", batch_size=20_000)
    with pytest.raises(ValueError, match="psis=True needs the full-data log density"):
        probmodels.fit(line, paired, "vi", batch_size=100, psis=True, steps=20000)


def logistic(u, x=None):
    b = param("b", dist.Normal(0.0, 5.0))
    w = param("w", dist.Normal(0.0, 5.0), shape=(u.shape[1],))
    return observe("x", noise.Bernoulli(logits=b + u @ w), obs=x)


@pytest.mark.slow
def test_ten_million_observations():
    n, d = 10_000_000, 5
    rng = np.random.default_rng(0)
    u = rng.standard_normal(size=(n, d))
    w = np.array([1.0, -1.0, 0.5, 0.0, 0.25])
    x = (rng.uniform(size=n) < 1 / (1 + np.exp(-(0.3 + u @ w)))).astype(float)
    fit = probmodels.fit(logistic, {"u": u, "x": x}, "vi", batch_size=10_000)
    # posterior sds ~ 1 / sqrt(n p (1 - p) var u) ~ 8e-4 (measured: the full-data MAP's are
    # 7.6e-4 to 9.0e-4): the truth within 5 of them, and sds within 30% of that
    assert np.all(np.abs(fit.estimate["w"] - w) < 5 * 9e-4), fit.estimate["w"]
    assert abs(fit.estimate["b"] - 0.3) < 5 * 9e-4
    assert np.all((fit.stderr["w"] > 0.7 * 7.6e-4) & (fit.stderr["w"] < 1.3 * 9.0e-4)), fit.stderr["w"]
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    assert peak_gb < 4.0, peak_gb  # the data are 0.48 GB; bounded, not O(draws x N)
