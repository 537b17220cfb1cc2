"""Fit.criteria and probmodels.criteria (references: statsmodels Logit and GLM Poisson, ArviZ's
loo), and probmodels.sensitivity (power-scaling: a prior-data conflict flagged, a vague prior not)."""

import arviz as az
import numpy as np
import numpyro.distributions as dist
import pytest
import statsmodels.api as sm

import probmodels
from probmodels import noise, observe, param


def logit(u, x=None):
    w = param("w", dist.Normal(0.0, 5.0), shape=(u.shape[1],))
    return observe("x", noise.Bernoulli(logits=u @ w), obs=x)


def poisson_glm(u, x=None):
    w = param("w", shape=(u.shape[1],))
    return observe("x", noise.Poisson(log_rate=u @ w), obs=x)


@pytest.fixture(scope="module")
def spector():
    d = sm.datasets.spector.load_pandas()
    return {"u": sm.add_constant(d.exog).to_numpy(float), "x": d.endog.to_numpy(float)}


def test_point_criteria_equal_statsmodels(spector):
    c = probmodels.fit(logit, spector, "mle").criteria()
    ref = sm.Logit(spector["x"], spector["u"]).fit(disp=0)
    # the same maximum (Newton to ~1e-12 in log L): 1e-8 is the bar
    for ours, theirs in [("log_likelihood", ref.llf), ("aic", ref.aic), ("bic", ref.bic)]:
        assert abs(c[ours] - theirs) < 1e-8, (ours, c[ours], theirs)
    assert c["k"] == 4 and c["n"] == 32 and c["criterion"] == "AIC"
    assert c["elpd"] == pytest.approx(ref.llf - 4, abs=1e-8)
    assert c["aicc"] == pytest.approx(ref.aic + 2 * 4 * 5 / (32 - 4 - 1), abs=1e-8)

    d = sm.datasets.cpunish.load_pandas()
    exog = d.exog.copy()
    exog["VC100k96"] = np.log(exog["VC100k96"])
    u, x = sm.add_constant(exog).to_numpy(float), d.endog.to_numpy(float)
    c = probmodels.fit(poisson_glm, {"u": u, "x": x}, "mle").criteria()
    ref = sm.GLM(x, u, family=sm.families.Poisson()).fit()
    for ours, theirs in [("log_likelihood", ref.llf), ("aic", ref.aic), ("bic", ref.bic_llf)]:
        assert abs(c[ours] - theirs) < 1e-8, (ours, c[ours], theirs)


def test_posterior_criteria_and_table(spector):
    post = probmodels.fit(logit, spector, "nuts", chains=2, warmup=400, draws=500, seed=1)
    c = post.criteria()
    loo = az.loo(post.to_arviz())
    assert c["elpd_loo"] == loo.elpd_loo and c["se"] == loo.se and c["p_loo"] == loo.p_loo
    assert c["elpd"] == c["elpd_loo"] and c["criterion"] == "PSIS-LOO"
    assert c["elpd_waic"] == az.waic(post.to_arviz()).elpd_waic
    fits = {"MLE": probmodels.fit(logit, spector, "mle"), "MAP": probmodels.fit(logit, spector, "map"), "NUTS": post}
    table = probmodels.criteria(fits)
    assert list(table["elpd"]) == sorted(table["elpd"], reverse=True)
    assert table.loc["NUTS", "criterion"] == "PSIS-LOO" and table.loc["MLE", "criterion"] == "AIC"
    assert table.loc["MLE", "elpd"] == fits["MLE"].criteria()["elpd"]
    assert table["d_elpd"].iloc[0] == 0.0


def normal_mean(x=None, tau=1.0):
    mu = param("mu", dist.Normal(0.0, tau))
    return observe("x", mu + noise.Gaussian(1.0), obs=x)


def test_sensitivity_flags_prior_data_conflict():
    x = 10.0 + np.random.default_rng(0).normal(size=20)  # data at 10
    strong = probmodels.fit(normal_mean, {"x": x, "tau": 1.0}, "nuts", chains=2, warmup=400, draws=1000)
    s = probmodels.sensitivity(strong)
    assert list(s.columns[:3]) == ["prior", "likelihood", "diagnosis"]
    assert s.loc["mu", "diagnosis"] == "prior-data conflict", s
    assert s.loc["mu", "prior"] > 0.05 and s.loc["mu", "likelihood"] > 0.05
    assert s.loc["mu", "pareto_k_prior"] < 0.7
    vague = probmodels.fit(normal_mean, {"x": x, "tau": 100.0}, "nuts", chains=2, warmup=400, draws=1000)
    v = probmodels.sensitivity(vague)
    assert v.loc["mu", "prior"] < 0.05 and v.loc["mu", "diagnosis"] == "-", v
    with pytest.raises(ValueError, match="point estimate.*method='nuts'"):
        probmodels.sensitivity(probmodels.fit(normal_mean, {"x": x}, "map"))
