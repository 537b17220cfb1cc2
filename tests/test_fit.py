"""The Fit, its ArviZ conversion, the comparison table, determinism and compile caching."""

import arviz as az
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats as st

import probmodels
from probmodels import noise, observe, param
from probmodels.solvers._objective import trace_count


def line(u, x=None):
    slope = param("slope", dist.Normal(0.0, 10.0))
    intercept = param("intercept", dist.Normal(0.0, 10.0))
    scale = param("scale", dist.HalfNormal(5.0))
    return observe("x", intercept + slope * u + noise.Gaussian(scale), obs=x)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    u = rng.normal(size=40)
    return {"u": u, "x": 0.5 + 1.5 * u + rng.normal(scale=0.8, size=40)}


@pytest.fixture(scope="module")
def fits(data):
    return {
        "MLE": probmodels.fit(line, data, "mle"),
        "MAP": probmodels.fit(line, data, "map"),
        "Laplace": probmodels.fit(line, data, "laplace"),
        "VI": probmodels.fit(line, data, "vi"),
        "NUTS": probmodels.fit(line, data, "nuts", chains=2, warmup=500, draws=500),
    }


def test_fit_fields(fits):
    for label, f in fits.items():
        assert set(f.estimate) == {"slope", "intercept", "scale"}
        assert set(f.stderr) == set(f.estimate)
        assert f.diagnostics["converged"] and isinstance(f.diagnostics["warnings"], list), label
        assert f.diagnostics["compile_s"] >= 0 and f.diagnostics["run_s"] >= 0
        chains = 2 if label == "NUTS" else 1
        assert f.draws["slope"].shape[0] == chains
    n = fits["NUTS"].diagnostics
    assert {"divergences", "max_rhat", "min_ess_bulk"} <= set(n)


def test_to_arviz_groups_and_loo(fits, data):
    idata = fits["NUTS"].to_arviz()
    assert {"posterior", "sample_stats", "observed_data", "log_likelihood"} <= set(idata.groups())
    assert idata.posterior["slope"].shape == (2, 500)
    assert idata.log_likelihood["x"].shape == (2, 500, 40)
    assert idata.attrs["probmodels_method"] == "nuts"
    # the pointwise log-likelihood is the Gaussian log density at each draw (scipy reference)
    p = idata.posterior
    ref = st.norm.logpdf(data["x"], p["intercept"].values[0, 0] + p["slope"].values[0, 0] * data["u"], p["scale"].values[0, 0])
    np.testing.assert_allclose(idata.log_likelihood["x"].values[0, 0], ref, rtol=1e-10)
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo)
    np.testing.assert_allclose(idata.observed_data["x"].values, data["x"])
    mle = fits["MLE"].to_arviz()
    assert "Gaussian approximation" in mle.posterior.attrs["posterior_kind"]
    assert "sample_stats" not in mle.groups()


def test_netcdf_roundtrip(fits, tmp_path):
    path = tmp_path / "nuts.nc"
    fits["NUTS"].to_arviz().to_netcdf(path)
    back = az.from_netcdf(path)
    np.testing.assert_array_equal(back.posterior["slope"].values, fits["NUTS"].draws["slope"])


def test_compare_table(fits):
    df = probmodels.compare(fits)
    assert list(df.index) == ["slope", "intercept", "scale"]
    mle, nuts = fits["MLE"], fits["NUTS"]
    assert df[("MLE", "estimate")]["slope"] == mle.estimate["slope"]
    assert df[("MLE", "se (observed)")]["slope"] == mle.stderr["slope"]
    # Wald 94%: estimate +- z_0.97 se
    z = st.norm.ppf(0.97)
    np.testing.assert_allclose(df[("MLE", "wald_97%")]["slope"], mle.estimate["slope"] + z * mle.stderr["slope"])
    # HDI from ArviZ on the NUTS draws
    hdi = az.hdi(nuts.draws["slope"].ravel(), hdi_prob=0.94)
    np.testing.assert_allclose([df[("NUTS", "hdi_3%")]["slope"], df[("NUTS", "hdi_97%")]["slope"]], hdi)
    shift = (nuts.estimate["slope"] - mle.estimate["slope"]) / nuts.stderr["slope"]
    np.testing.assert_allclose(df[("NUTS", "shift_from_mle_sd")]["slope"], shift)
    assert df[("NUTS", "mle_in_hdi")].all()
    with pytest.raises(TypeError, match="not a probmodels Fit"):
        probmodels.compare({"x": 1})


def test_summary_and_repr(fits):
    s = fits["NUTS"].summary()
    assert {"mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "r_hat"} <= set(s.columns)
    assert list(fits["MLE"].summary().columns) == ["estimate", "se (observed)", "wald_3%", "wald_97%"]
    assert "slope" in repr(fits["MAP"]) and "converged=True" in repr(fits["MAP"])


def test_same_seed_same_numbers(data):
    for method, kw in [("nuts", dict(chains=2, warmup=200, draws=200)), ("vi", {}), ("laplace", {})]:
        a = probmodels.fit(line, data, method, seed=5, **kw)
        b = probmodels.fit(line, data, method, seed=5, **kw)
        np.testing.assert_array_equal(a.draws["slope"], b.draws["slope"])
    c = probmodels.fit(line, data, "laplace", seed=6)
    assert not np.array_equal(a.draws["slope"], c.draws["slope"])  # the seed is used


def test_new_data_same_shapes_compiles_nothing(data, fits):
    from probmodels._config import compile_seconds

    probmodels.fit(line, data, "vi", guide="multivariate_normal")
    before, compiles = trace_count(line), compile_seconds()[1]
    other = {"u": data["u"] * 2, "x": data["x"] + 1}
    for method in ("mle", "map", "laplace", "vi"):
        probmodels.fit(line, other, method, seed=3)
    probmodels.fit(line, other, "vi", guide="multivariate_normal", seed=4)
    f = probmodels.fit(line, other, "nuts", chains=2, warmup=500, draws=500)
    assert trace_count(line) == before
    # not even an eager kernel: every XLA program of these fits was compiled by the first ones
    assert compile_seconds()[1] == compiles
    assert f.diagnostics["compile_s"] < 0.05


def test_public_namespace():
    import types

    assert sorted(probmodels.__all__) == sorted(
        ["param", "latent", "observe", "noise", "priors", "plots", "fit", "Fit", "METHODS", "load", "compare", "report",
         "calibrate", "Prediction", "prior_predictive", "criteria", "sensitivity", "clear_compiled"]
    )
    assert callable(probmodels.report) and callable(probmodels.fit)
    # anything else public is a submodule (imported by someone), never an accidental export
    extra = {k for k in dir(probmodels) if not k.startswith("_")} - set(probmodels.__all__)
    assert all(isinstance(getattr(probmodels, k), types.ModuleType) for k in extra), extra


def test_clear_compiled_releases_memory_maps(data):
    """clear_compiled drops the compiled programs (their memory mappings go back to the kernel)
    and a later fit traces the program again and gives the same numbers."""
    import os

    def maps():
        with open(f"/proc/{os.getpid()}/maps") as fh:
            return sum(1 for _ in fh)

    def closure(u, x=None):  # a new program: its own compiled solvers
        b = param("b", dist.Normal(0.0, 10.0))
        return observe("x", b * u + noise.Gaussian(1.0), obs=x)

    before_fit = maps()
    first = probmodels.fit(closure, data, "mle")
    after_fit = maps()
    assert probmodels.clear_compiled() >= 1
    assert maps() < after_fit - (after_fit - before_fit) // 2  # most of the fit's mappings are gone
    traces = trace_count(closure)
    again = probmodels.fit(closure, data, "mle")
    assert trace_count(closure) > traces
    np.testing.assert_array_equal(again.estimate["b"], first.estimate["b"])
