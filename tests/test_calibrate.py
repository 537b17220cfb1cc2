"""Simulation-based calibration: both directions, Wald coverage, and a dask cluster."""

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import stats

import probmodels
from probmodels import noise, observe, param
from probmodels.calibrate import _sim_seed, _simulate

U = np.linspace(-1.0, 1.0, 20)


def line(u, x=None):
    a = param("a", dist.Normal(0.0, 1.0))
    b = param("b", dist.Normal(0.0, 1.0))
    s = param("s", dist.HalfNormal(1.0))
    return observe("x", a + b * u + noise.Gaussian(s), obs=x)


def line_known_scale(u, x=None):
    a = param("a", dist.Normal(0.0, 1.0))
    b = param("b", dist.Normal(0.0, 1.0))
    return observe("x", a + b * u + noise.Gaussian(0.5), obs=x)


def line_wrong_scale(u, x=None):
    # the noise scale assumed 4x too small: posteriors 4x too narrow
    a = param("a", dist.Normal(0.0, 1.0))
    b = param("b", dist.Normal(0.0, 1.0))
    return observe("x", a + b * u + noise.Gaussian(0.125), obs=x)


NUTS = dict(chains=2, warmup=200, draws=200)


def test_nuts_is_calibrated():
    # calibrate counts a NUTS fit converged as fit does (no divergence, r-hat <= 1.01, bulk ESS
    # >= 100 per chain): 2 x 200 draws reach that for only half the simulations, 2 x 600 for all
    cal = probmodels.calibrate(line, {"u": U}, "nuts", n_sims=100, seed=0, chains=2, warmup=300, draws=600)
    assert cal.passed, cal
    assert cal.converged.mean() > 0.95
    # ranks among L = 99 thinned draws live in 0..99
    assert cal.ranks.values.min() >= 0 and cal.ranks.values.max() <= 99


def test_laplace_is_calibrated_where_it_is_exact():
    # known noise scale: the posterior of (a, b) is Gaussian and the Laplace approximation exact
    cal = probmodels.calibrate(line_known_scale, {"u": U}, "laplace", n_sims=100, seed=1)
    assert cal.passed, cal


def test_misspecified_inference_fails():
    cal = probmodels.calibrate(line_known_scale, {"u": U}, "laplace", n_sims=100, seed=1, fit_model=line_wrong_scale)
    assert not cal.passed
    # 95% intervals 4x too narrow cover ~ P(|Z| < 1.96 / 4) = 38%, far outside the band
    assert (cal.coverage["95%"] < 0.6).all(), cal.coverage
    assert (cal.uniformity["p_value"] < 1e-6).all()


def test_mean_field_vi_on_a_correlated_posterior_fails():
    # inputs far from 0 make intercept and slope strongly correlated a posteriori (corr ~ -0.95);
    # a mean-field guide then matches the conditional, not the marginal, sds: intervals too
    # narrow by sqrt(1 - 0.95^2) ~ 0.3 (closed form for a Gaussian target)
    u = U + 3.0
    cal = probmodels.calibrate(line_known_scale, {"u": u}, "vi", n_sims=40, seed=2)
    assert not cal.passed, cal
    assert (cal.coverage["95%"] < 0.8).all(), cal.coverage


def gaussian_sample(n, x=None):
    mu = param("mu", dist.Normal(0.0, 1.0))
    s = param("s", dist.HalfNormal(1.0))
    return observe("x", mu + jnp.zeros(n) + noise.Gaussian(s), obs=x)


def wald_mean_coverage(n):
    # closed form: mu_hat +- 1.96 sigma_hat / sqrt(n) with sigma_hat^2 = RSS / n covers mu with
    # probability P(|t_{n-1}| < 1.96 sqrt((n - 1) / n))
    return 2 * stats.t.cdf(1.959964 * np.sqrt((n - 1) / n), n - 1) - 1


def test_mle_wald_under_covers_in_small_samples():
    n_sims = 400
    cal5 = probmodels.calibrate(gaussian_sample, {"n": 5}, "mle", n_sims=n_sims, seed=3)
    cal200 = probmodels.calibrate(gaussian_sample, {"n": 200}, "mle", n_sims=n_sims, seed=3)
    band = 3 * np.sqrt(0.95 * 0.05 / n_sims)
    # n = 5: 84.6% in theory; Monte Carlo sd sqrt(.85 x .15 / 400) = 1.8%
    assert abs(cal5.coverage.loc["mu", "95%"] - wald_mean_coverage(5)) < 3 * np.sqrt(0.85 * 0.15 / n_sims)
    assert cal5.coverage.loc["mu", "95%"] < 0.95 - band
    # n = 200: 94.8% in theory, inside the band
    assert abs(cal200.coverage.loc["mu", "95%"] - 0.95) < band


def test_batched_nuts_equals_separate_fits():
    sims = _simulate(line, {"u": U}, "x", 2, 4)
    cal = probmodels.calibrate(line, {"u": U}, "nuts", n_sims=2, seed=4, **NUTS)
    for i in range(2):
        f = probmodels.fit(line, {"u": U, "x": sims["x"][i]}, "nuts", seed=_sim_seed(4, i), **NUTS)
        # the same chains (keys, starts) in a vmapped program, which rounds differently: the
        # trajectories drift apart (chaotically) by up to their Monte Carlo error, so the means
        # agree within 4 standard errors of a difference of two such estimates
        sd = np.array([f.stderr[k] for k in "abs"])
        mcse = sd * np.sqrt(2.0 / f.diagnostics["min_ess_bulk"])
        assert np.all(np.abs(cal.estimate.loc[i, ["a", "b", "s"]].values - [f.estimate[k] for k in "abs"]) < 4 * mcse)


def test_dask_cluster_gives_the_same_ranks():
    distributed = pytest.importorskip("distributed")
    local = probmodels.calibrate(line, {"u": U}, "nuts", n_sims=8, seed=5, batch_size=4, **NUTS)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            remote = probmodels.calibrate(line, {"u": U}, "nuts", n_sims=8, seed=5, batch_size=4, executor=client, **NUTS)
    np.testing.assert_array_equal(local.ranks.values, remote.ranks.values)


def test_calibrate_refuses_flat_priors_and_given_observations():
    def flat(u, x=None):
        a = param("a")
        return observe("x", a + noise.Gaussian(1.0) + 0 * u, obs=x)

    with pytest.raises(ValueError, match="no prior"):
        probmodels.calibrate(flat, {"u": U}, "mle", n_sims=3)
    with pytest.raises(ValueError, match="observations are simulated"):
        probmodels.calibrate(line, {"u": U, "x": U}, "mle", n_sims=3)
