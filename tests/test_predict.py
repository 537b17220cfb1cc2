"""Fit.predict, the Prediction, the workflow groups of to_arviz and prior_predictive.

References: statsmodels' GLM.get_prediction (delta-method bands), closed forms (the plug-in
Gaussian predictive, the conjugate Gaussian posterior predictive), scipy's densities."""

import warnings

import arviz as az
import matplotlib
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats as st
import statsmodels.api as sm

import probmodels
from probmodels import noise, observe, param
from probmodels._config import compile_seconds
from probmodels.predict import trace_count

matplotlib.use("Agg")


def binomial_glm(u, n, x=None):
    w = param("w", shape=(u.shape[1],))
    return observe("x", noise.Binomial(n, logits=u @ w), obs=x)


def poisson_glm(u, x=None):
    w = param("w", shape=(u.shape[1],))
    return observe("x", noise.Poisson(log_rate=u @ w), obs=x)


def line(u, x=None):
    slope = param("slope", dist.Normal(0.0, 10.0))
    intercept = param("intercept", dist.Normal(0.0, 10.0))
    scale = param("scale", dist.HalfNormal(5.0))
    return observe("x", intercept + slope * u + noise.Gaussian(scale), obs=x)


SIGMA, TAU = 0.7, 2.0


def conjugate(u, x=None):
    w = param("w", dist.Normal(0.0, TAU), shape=(2,))
    return observe("x", u @ w + noise.Gaussian(SIGMA), obs=x)


def two_sites(u, x=None, c=None):
    b = param("b", dist.Normal(0.0, 5.0))
    a = param("a", dist.Normal(0.0, 5.0))
    observe("x", b * u + noise.Gaussian(1.0), obs=x)
    return observe("c", noise.Poisson(log_rate=a + 0.1 * u), obs=c)


@pytest.fixture(scope="module")
def line_data():
    rng = np.random.default_rng(3)
    u = rng.normal(size=40)
    return {"u": u, "x": 0.5 + 1.5 * u + rng.normal(scale=0.8, size=40)}


def star98():
    d = sm.datasets.star98.load_pandas()
    u = sm.add_constant(d.exog).to_numpy(float)
    k = d.endog["NABOVE"].to_numpy(float)
    n = (d.endog["NABOVE"] + d.endog["NBELOW"]).to_numpy(float)
    return u, n, k


def cpunish():
    d = sm.datasets.cpunish.load_pandas()
    exog = d.exog.copy()
    exog["VC100k96"] = np.log(exog["VC100k96"])  # as statsmodels' own GLM example does
    return sm.add_constant(exog).to_numpy(float), d.endog.to_numpy(float)


def _check_bands(summary, ref):
    sf = ref.summary_frame(alpha=0.1)
    for ours, theirs in [("mean", "mean"), ("sd", "mean_se"), ("mean_low", "mean_ci_lower"), ("mean_high", "mean_ci_upper")]:
        # both are closed forms at the same MLE (agreeing to ~1e-12): 1e-6 is the bar
        np.testing.assert_allclose(summary[ours].to_numpy(), sf[theirs].to_numpy(), rtol=1e-6, atol=1e-9, err_msg=ours)


def test_binomial_glm_bands_equal_statsmodels():
    u, n, k = star98()
    fit = probmodels.fit(binomial_glm, {"u": u, "n": n, "x": k}, "mle")
    ref = sm.GLM(np.column_stack([k, n - k]), u, family=sm.families.Binomial()).fit()
    new = {"u": u[::7] * 1.02, "n": n[::7]}  # new rows: not the fitted ones
    p = fit.predict(new, parameter_uncertainty=True)
    _check_bands(p.summary(prob=0.9), ref.get_prediction(new["u"]))
    assert p.draws.shape == (1, 4000, len(new["u"])) and p.kind == "plug-in + parameter uncertainty"
    # another probability: the same standard errors, a new z (statsmodels at alpha = 0.05)
    sf95 = ref.get_prediction(new["u"]).summary_frame(alpha=0.05)
    np.testing.assert_allclose(p.summary(prob=0.95)["mean_low"], sf95["mean_ci_lower"], rtol=1e-6)


def test_poisson_glm_bands_equal_statsmodels():
    u, x = cpunish()
    fit = probmodels.fit(poisson_glm, {"u": u, "x": x}, "mle")
    ref = sm.GLM(x, u, family=sm.families.Poisson()).fit()
    p = fit.predict({"u": u}, parameter_uncertainty=True)
    _check_bands(p.summary(prob=0.9), ref.get_prediction(u))


def test_plug_in_gaussian_interval(line_data):
    fit = probmodels.fit(line, line_data, "mle")
    grid = np.linspace(-2, 2, 5)
    s = fit.predict({"u": grid}, draws=4000, seed=1).summary(prob=0.9)
    x_hat = fit.estimate["intercept"] + fit.estimate["slope"] * grid
    np.testing.assert_allclose(s["mean"], x_hat, rtol=1e-12)
    assert np.all(s["mean_low"] == s["mean"]) and np.all(s["sd"] == 0)  # plug-in: no band
    z, sigma = st.norm.ppf(0.95), float(fit.estimate["scale"])
    # MC error of a 5% quantile from 4000 draws: sqrt(.05 * .95 / 4000) / phi(z) * sigma
    se = np.sqrt(0.05 * 0.95 / 4000) / st.norm.pdf(z) * sigma
    np.testing.assert_allclose(s["obs_low"], x_hat - z * sigma, atol=4 * se)
    np.testing.assert_allclose(s["obs_high"], x_hat + z * sigma, atol=4 * se)


def test_nuts_conjugate_predictive_closed_form():
    rng = np.random.default_rng(11)
    u = np.column_stack([np.ones(30), rng.normal(size=30)])
    x = u @ np.array([1.0, -0.5]) + rng.normal(scale=SIGMA, size=30)
    post = probmodels.fit(conjugate, {"u": u, "x": x}, "nuts", chains=2, warmup=500, draws=1500, seed=2)
    # closed form: S = (U^T U / sigma^2 + I / tau^2)^-1, m = S U^T x / sigma^2
    S = np.linalg.inv(u.T @ u / SIGMA**2 + np.eye(2) / TAU**2)
    m = S @ u.T @ x / SIGMA**2
    new = np.column_stack([np.ones(4), np.array([-2.0, 0.0, 1.0, 3.0])])
    p = post.predict({"u": new}, seed=3)
    assert p.draws.shape == (2, 1500, 4) and p.kind == "posterior"
    s = p.summary(prob=0.9)
    mean, f_var = new @ m, np.einsum("ij,jk,ik->i", new, S, new)
    z = st.norm.ppf(0.95)
    ess = 1000  # a lower bound for the ESS of 3000 NUTS draws of a 2-d Gaussian posterior
    for sd_, lo, hi in [(np.sqrt(f_var), "mean_low", "mean_high"), (np.sqrt(f_var + SIGMA**2), "obs_low", "obs_high")]:
        q_se = np.sqrt(0.05 * 0.95 / ess) / st.norm.pdf(z) * sd_  # MC error of a 5% quantile
        assert np.all(np.abs(s[lo] - (mean - z * sd_)) < 5 * q_se), (lo, s[lo].to_numpy(), mean - z * sd_)
        assert np.all(np.abs(s[hi] - (mean + z * sd_)) < 5 * q_se), (hi, s[hi].to_numpy(), mean + z * sd_)
    assert np.all(np.abs(s["mean"] - mean) < 5 * np.sqrt(f_var / ess))
    np.testing.assert_allclose(s["sd"], np.sqrt(f_var), rtol=5 / np.sqrt(2 * ess))


def test_several_sites_and_arviz():
    rng = np.random.default_rng(0)
    u = rng.normal(size=25)
    data = {"u": u, "x": 2 * u + rng.normal(size=25), "c": rng.poisson(3.0, size=25).astype(float)}
    fit = probmodels.fit(two_sites, data, "laplace")
    p = fit.predict({"u": np.linspace(-1, 1, 3)})
    assert p.sites == ("x", "c")
    with pytest.raises(ValueError, match=r"2 observation sites \(x, c\).*prediction\[site\]"):
        p.draws
    assert p["c"].draws.shape == (1, 4000, 3)
    # the Poisson location is the rate exp(a + 0.1 u) at each draw
    a = fit.draws["a"][0]
    np.testing.assert_allclose(p["c"].location[0], np.exp(a[:, None] + 0.1 * np.linspace(-1, 1, 3)), rtol=1e-12)
    s = p.summary()
    assert list(s.index.get_level_values("site").unique()) == ["x", "c"]
    idata = p.to_arviz()
    assert {"predictions", "predictions_constant_data"} <= set(idata.groups())
    assert idata.predictions["c"].shape == (1, 4000, 3)
    np.testing.assert_array_equal(idata.predictions_constant_data["u"], np.linspace(-1, 1, 3))


def test_predict_compiles_once(line_data):
    fits = [probmodels.fit(line, line_data, m) for m in ("mle", "laplace")]

    def run(grid):
        for f in fits:
            f.predict({"u": grid}).summary()
        fits[0].predict({"u": grid}, parameter_uncertainty=True).summary()

    run(np.linspace(0, 1, 7))
    before, compiles = trace_count(line), compile_seconds()[1]
    run(np.linspace(-3, 3, 7) ** 2)  # new inputs, the same shape
    assert trace_count(line) == before
    assert compile_seconds()[1] == compiles  # not even an eager kernel


def test_to_arviz_workflow_groups(line_data):
    fit = probmodels.fit(line, line_data, "nuts", chains=2, warmup=300, draws=300, seed=1)
    idata = fit.to_arviz()
    assert {"posterior_predictive", "log_prior", "constant_data"} <= set(idata.groups())
    assert idata.posterior_predictive["x"].shape == (2, 300, 40)
    assert "x" not in idata.constant_data and "u" in idata.constant_data
    # log_prior at each draw: scipy's densities of the priors
    post = idata.posterior
    np.testing.assert_allclose(idata.log_prior["slope"], st.norm.logpdf(post["slope"], 0, 10), rtol=1e-12)
    np.testing.assert_allclose(idata.log_prior["scale"], st.halfnorm.logpdf(post["scale"], scale=5), rtol=1e-12)
    # the replicates at one draw are that draw's x_hat plus its noise: standardised residuals ~ N(0, 1)
    p = {k: post[k].values[..., None] for k in ("intercept", "slope", "scale")}
    r = (idata.posterior_predictive["x"].values - p["intercept"] - p["slope"] * line_data["u"]) / p["scale"]
    # 24,000 standard normals: mean within 5 / sqrt(n), sd within 0.02 (about 4 standard errors)
    assert abs(r.mean()) < 5 / np.sqrt(r.size) and abs(r.std() - 1) < 0.02
    az.plot_ppc(idata)
    az.plot_loo_pit(idata, y="x")
    az.plot_bpv(idata)
    assert "posterior_predictive" not in fit.to_arviz(posterior_predictive=False).groups()
    mle = probmodels.fit(line, line_data, "mle").to_arviz()
    pp = mle.posterior_predictive["x"].values
    assert pp.shape == mle.posterior["slope"].shape + (40,)  # plug-in replicates, one per draw


def test_replicates_cut_off(line_data, monkeypatch):
    import probmodels.predict as pred

    monkeypatch.setattr(pred, "_MAX_REPLICATE_CELLS", 1000)
    fit = probmodels.fit(line, line_data, "laplace")
    with pytest.warns(RuntimeWarning, match=r"posterior_predictive=False"):
        idata = fit.to_arviz()
    assert "posterior_predictive" not in idata.groups()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit.to_arviz(posterior_predictive=False)


def test_prior_predictive(line_data):
    idata = probmodels.prior_predictive(line, line_data, draws=2000, seed=0)
    assert {"prior", "prior_predictive", "observed_data"} <= set(idata.groups())
    assert idata.prior_predictive["x"].shape == (1, 2000, 40)
    slope = idata.prior["slope"].values.ravel()
    assert abs(slope.std() - 10.0) < 4 * 10.0 / np.sqrt(2 * 2000)  # the prior's sd, MC error
    p = {k: idata.prior[k].values[..., None] for k in ("intercept", "slope", "scale")}
    r = (idata.prior_predictive["x"].values - p["intercept"] - p["slope"] * line_data["u"]) / p["scale"]
    assert abs(r.std() - 1) < 0.01  # 80,000 standard normals  # the noise model's draws, standardised
    no_obs = probmodels.prior_predictive(line, {"u": line_data["u"]}, draws=10)
    assert "observed_data" not in no_obs.groups()

    def flat(u, x=None):
        s = param("s")
        return observe("x", s * u + noise.Gaussian(1.0), obs=x)

    with pytest.raises(ValueError, match=r"parameter 's' has no prior"):
        probmodels.prior_predictive(flat, {"u": line_data["u"]})


def test_bad_input(line_data):
    fit = probmodels.fit(line, line_data, "laplace")
    with pytest.raises(ValueError, match="draws=5000 but the fit has 4000"):
        fit.predict({"u": [0.0]}, draws=5000)
    with pytest.raises(ValueError, match="does not take"):
        fit.predict({"v": [0.0]})
    with pytest.raises(ValueError, match="parameter_uncertainty=True needs"):
        probmodels.fit(line, line_data, "mle", draws=0).predict({"u": [0.0]}, parameter_uncertainty=True)


def test_noise_generator_is_fast_where_it_can_be_and_deterministic(line_data):
    """Predictive noise comes from XLA's RngBitGenerator ("rbg") where every sampler is a transform
    of uniforms; a Poisson or Binomial site (rejection loops) makes the program use threefry."""
    from probmodels.predict import _fit_functions, _inputs

    fit = probmodels.fit(line, line_data, "laplace")
    grid = {"u": np.linspace(-1, 1, 5)}
    a, b = fit.predict(grid, seed=3), fit.predict(grid, seed=3)
    np.testing.assert_array_equal(a.draws, b.draws)
    assert not np.array_equal(a.draws, fit.predict(grid, seed=4).draws)
    assert _fit_functions(fit, _inputs(fit, grid, "t")[0])["impl"] == "rbg"

    rng = np.random.default_rng(1)
    u = rng.normal(size=30)
    data = {"u": u, "x": 2 * u + rng.normal(size=30), "c": rng.poisson(3.0, size=30).astype(float)}
    mle = probmodels.fit(two_sites, data, "mle")
    p = mle.predict({"u": np.zeros(2)}, draws=20_000, seed=5)
    assert _fit_functions(mle, _inputs(mle, {"u": np.zeros(2)}, "t")[0])["impl"] == "threefry2x32"
    rate = np.exp(float(mle.estimate["a"]))
    counts = p["c"].draws.reshape(-1)
    # mean of 40,000 Poisson(rate) counts: 5 standard errors sqrt(rate / 40,000)
    assert abs(counts.mean() - rate) < 5 * np.sqrt(rate / counts.size)
    # the Gaussian site, on threefry too (one generator per program): mean b*0 = 0, sd 1
    x = p["x"].draws.reshape(-1)
    assert abs(x.mean()) < 5 / np.sqrt(x.size) and abs(x.std() - 1.0) < 5 / np.sqrt(2 * x.size)
    np.testing.assert_array_equal(p["c"].draws, mle.predict({"u": np.zeros(2)}, draws=20_000, seed=5)["c"].draws)
    u2 = np.column_stack([np.ones(30), u])
    n = np.full(30, 5.0)
    binom = probmodels.fit(binomial_glm, {"u": u2, "n": n, "x": rng.binomial(5, 0.4, size=30).astype(float)}, "mle")
    binom.predict({"u": u2[:3], "n": n[:3]}, draws=100)
    assert _fit_functions(binom, _inputs(binom, {"u": u2[:3], "n": n[:3]}, "t")[0])["impl"] == "threefry2x32"


def test_counted_quantiles_equal_numpy():
    """Summary quantiles of whole-number draws are counted, not sorted: the same numbers as
    np.quantile (its linear interpolation), bit for bit."""
    from probmodels.predict import quantiles

    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 2, size=(400, 30)),
        rng.poisson(3.0, size=(1001, 20)),
        rng.integers(-3, 4, size=(7, 5)).astype(np.int32),
        np.ones((5, 3), int),
        rng.normal(size=(50, 4)),  # not whole numbers: numpy itself
        rng.poisson(200.0, size=(60, 3)),  # a range over 32 values: numpy itself
    ]
    for x in arrays:
        for probs in ([0.05, 0.95], [0.0, 1.0], [0.5], [0.25, 1 / 3, 0.999]):
            np.testing.assert_array_equal(quantiles(x, probs), np.quantile(x, probs, axis=0))


def test_predict_names_wrong_inputs(line_data):
    fit = probmodels.fit(line, line_data, "mle")
    with pytest.raises(TypeError, match=r"predict\(mle\): data must be a dict .*e\.g\. \{'u': \.\.\.\}; got ndarray"):
        fit.predict(np.zeros(3))
    with pytest.raises(ValueError, match=r"predict\(mle\): data\['u'\] has 1 non-finite"):
        fit.predict({"u": np.array([0.0, np.nan])})
    with pytest.raises(ValueError, match=r"predict\(mle\): data has key\(s\) \['v'\]"):
        fit.predict({"v": np.zeros(3)})
    glm = probmodels.fit(poisson_glm, {"u": np.eye(3)[[0, 1, 2, 0, 1, 2]] + 0.1, "x": np.array([1.0, 2, 3, 2, 1, 4])}, "mle")
    with pytest.raises(ValueError, match=r"data\['u'\] has shape \(4, 2\), the fitted data\['u'\] had \(6, 3\); new inputs must match"):
        glm.predict({"u": np.ones((4, 2))})
