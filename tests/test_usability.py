"""What a user touches: pandas data, names (dims and coords), Fit.cov, pickling and NetCDF,
progress, and errors that say what to do. References: statsmodels (cov_params on its shipped
data), ArviZ (coords), a pickle and NetCDF round trip (equal numbers), a subprocess's stderr."""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import numpyro.distributions as dist
import pandas as pd
import pytest
import statsmodels.api as sm

import probmodels
from probmodels import noise, observe, param
from probmodels.report import report, split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECTOR = sm.datasets.spector.load_pandas()
FEATURES = list(SPECTOR.exog.columns)  # GPA, TUCE, PSI


def logit(u, x=None):
    w = param("w", shape=(u.shape[1],), dims=("feature",))
    b = param("b")
    return observe("x", noise.Bernoulli(logits=b + u @ w), obs=x)


def poisson(u, x=None):
    w = param("w", shape=(u.shape[1],))
    b = param("b")
    return observe("x", noise.Poisson(log_rate=b + u @ w), obs=x)


def line(u, x=None):
    a = param("a", dist.Normal(0.0, 10.0))
    b = param("b", dist.Normal(0.0, 10.0))
    s = param("s", dist.HalfNormal(5.0))
    return observe("x", a + b * u + noise.Gaussian(s), obs=x)


@pytest.fixture(scope="module")
def line_data():
    rng = np.random.default_rng(0)
    u = rng.normal(size=60)
    return {"u": u, "x": 1.0 + 2.0 * u + rng.normal(size=60)}


@pytest.fixture(scope="module")
def logit_mle():
    return probmodels.fit(logit, {"u": SPECTOR.exog, "x": SPECTOR.endog}, "mle", coords={"feature": FEATURES})


@pytest.fixture(scope="module")
def line_nuts(line_data):
    return probmodels.fit(line, line_data, "nuts", chains=2, warmup=200, draws=200, seed=1)


def _same_diagnostics(a, b):
    assert set(a) == set(b)
    for k in a:
        if isinstance(a[k], np.ndarray) or isinstance(b[k], np.ndarray):
            np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)
        elif isinstance(a[k], float) and np.isnan(a[k]):
            assert np.isnan(b[k]), k
        else:
            assert a[k] == b[k], k


# -- defects ------------------------------------------------------------------------------------


def test_report_split_and_figures_take_pandas(tmp_path):
    """Defect: the 80/20 split kept every row of a DataFrame/Series (the held-out lpd was the
    in-sample one) and the figures' Predictive call failed on a Series."""
    data = {"u": SPECTOR.exog, "x": SPECTOR.endog}
    train, test = split(data, "x")
    assert train["u"].shape == (26, 3) and test["u"].shape == (6, 3) and test["x"].shape == (6,)
    rows = np.asarray(SPECTOR.exog)
    assert not any((rows == r).all(axis=1).sum() == 0 for r in test["u"])  # real rows, held out
    spec = tmp_path / "pandas_spec.py"
    spec.write_text(textwrap.dedent('''
        """Spector: a logistic regression on pandas data."""
        import statsmodels.api as sm
        import numpyro.distributions as dist
        from probmodels import noise, observe, param

        def program(u, x=None):
            w = param("w", dist.Normal(0, 5), shape=(3,))
            b = param("b", dist.Normal(0, 20))
            return observe("x", noise.Bernoulli(logits=b + u @ w), obs=x)

        def data():
            d = sm.datasets.spector.load_pandas()
            return {"u": d.exog, "x": d.endog}
    '''))
    rep = report(str(spec), methods=["mle", "laplace"], quiet=True)
    assert "ppc" in rep.figures  # the Predictive call of the figures took the Series
    # the held-out lpd is on the 6 held-out rows: not the full-data log-likelihood of the MLE
    assert abs(rep.tables["heldout"].loc["MLE", "lpd"] - rep.fits["MLE"].diagnostics["log_likelihood"]) > 1.0


def test_numpy_integer_scalar_is_a_static_size():
    """Defect: G = grp.max() + 1 (an np.int64) was traced and refused as a shape."""
    grp = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 3])
    x = np.arange(10.0)

    def groups(g, G, x=None):
        a = param("a", shape=(G,))
        return observe("x", a[g] + noise.Gaussian(1.0), obs=x)

    f = probmodels.fit(groups, {"g": grp, "G": grp.max() + 1, "x": x}, "mle")
    # closed form: each group's mean
    np.testing.assert_allclose(f.estimate["a"], [np.mean(x[grp == k]) for k in range(4)], rtol=1e-10)


def test_chain_methods_reproduce_and_agree_in_distribution(line_data, line_nuts):
    """Defect: the README promised 'parallel' gives the draws of 'sequential'. What holds: the
    same seed and chain method reproduce bit for bit; the methods agree in distribution."""
    again = probmodels.fit(line, line_data, "nuts", chains=2, warmup=200, draws=200, seed=1)
    for k in line_nuts.draws:
        np.testing.assert_array_equal(again.draws[k], line_nuts.draws[k])
    seq = probmodels.fit(line, line_data, "nuts", chains=2, warmup=200, draws=200, seed=1, chain_method="sequential")
    for k in ("a", "b"):
        # 400 draws each, ESS >= 100 (checked below): the difference of means is within 5 of its
        # Monte Carlo standard errors combined (a failure probability below 1e-6)
        mcse = np.hypot(line_nuts.stderr[k], seq.stderr[k]) / np.sqrt(100)
        assert abs(line_nuts.estimate[k] - seq.estimate[k]) < 5 * mcse
    assert min(line_nuts.diagnostics["min_ess_bulk"], seq.diagnostics["min_ess_bulk"]) >= 100
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert "the same draws as" not in readme and "bit for bit" in readme


# -- Fit.cov, pickling, NetCDF ---------------------------------------------------------------


def test_cov_equals_statsmodels_logit(logit_mle):
    # statsmodels Logit on the same data: cov_params() is the inverse observed information; both
    # optimisers stop at a gradient ~1e-10, far inside 1e-6
    ref = sm.Logit(SPECTOR.endog, sm.add_constant(SPECTOR.exog, prepend=False)).fit(disp=0, tol=1e-12).cov_params()
    cov = logit_mle.cov
    assert list(cov.index) == ["w[GPA]", "w[TUCE]", "w[PSI]", "b"]
    np.testing.assert_allclose(cov.to_numpy(), ref.to_numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), logit_mle.summary().iloc[:, 1], rtol=1e-12)


@pytest.mark.parametrize("kind", ["observed", "sandwich"])
def test_cov_equals_statsmodels_poisson(kind):
    # statsmodels Poisson on its shipped cpunish data (executions by state), nonrobust or HC0
    d = sm.datasets.cpunish.load_pandas()
    u = d.exog[["INCOME", "PERPOVERTY", "PERBLACK"]].copy()
    u["INCOME"] = u["INCOME"] / 10000.0
    f = probmodels.fit(poisson, {"u": u, "x": d.endog}, "mle", stderr=kind)
    model = sm.Poisson(d.endog, sm.add_constant(u, prepend=False))
    ref = model.fit(disp=0, tol=1e-12, cov_type="nonrobust" if kind == "observed" else "HC0").cov_params()
    np.testing.assert_allclose(f.cov.to_numpy(), ref.to_numpy(), rtol=1e-6, atol=1e-10)


def test_posterior_cov_is_the_draws_covariance(line_nuts):
    flat = np.stack([line_nuts.draws[k].ravel() for k in ("a", "b", "s")], axis=1)
    np.testing.assert_allclose(line_nuts.cov.to_numpy(), np.cov(flat, rowvar=False), rtol=1e-12)


def _round_trips(a, b):
    assert b.method == a.method and repr(b) == repr(a)
    for k in a.estimate:
        np.testing.assert_array_equal(b.estimate[k], a.estimate[k])
        np.testing.assert_array_equal(b.stderr[k], a.stderr[k])
    if a.draws is None:
        assert b.draws is None
    else:
        assert set(b.draws) == set(a.draws)
        for k in a.draws:
            np.testing.assert_array_equal(b.draws[k], a.draws[k])
    _same_diagnostics(a.diagnostics, b.diagnostics)
    pd.testing.assert_frame_equal(b.cov, a.cov)
    pd.testing.assert_frame_equal(b.summary(), a.summary())
    for k in a.to_arviz().posterior.data_vars:
        np.testing.assert_array_equal(b.to_arviz().posterior[k].values, a.to_arviz().posterior[k].values)


def test_pickle_round_trip(logit_mle, line_nuts):
    for f in (logit_mle, line_nuts):
        _round_trips(f, pickle.loads(pickle.dumps(f)))


def test_netcdf_round_trip(tmp_path, logit_mle, line_nuts):
    for f in (logit_mle, line_nuts):
        path = tmp_path / f"{f.method}.nc"
        f.save(path)
        g = probmodels.load(path)
        _round_trips(f, g)
        f.save(path)  # the loaded fit holds no open file: the path can be written again
        _round_trips(f, pickle.loads(pickle.dumps(g)))
    table = probmodels.compare({"MLE": probmodels.load(tmp_path / "mle.nc"), "again": logit_mle})
    np.testing.assert_array_equal(table["MLE"]["estimate"], table["again"]["estimate"])
    g = probmodels.load(tmp_path / "nuts.nc")
    assert "log_likelihood" in g.to_arviz().groups()
    # warnings keep their categories: perfect separation (statsmodels' textbook case)
    u = np.array([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])
    sep = probmodels.fit(logit, {"u": u[:, None], "x": (u > 0).astype(float)}, "mle")
    assert sep.diagnostics["warnings"]
    sep.save(tmp_path / "sep.nc")
    back = probmodels.load(tmp_path / "sep.nc").diagnostics["warnings"]
    assert [(w.category, str(w)) for w in back] == [(w.category, str(w)) for w in sep.diagnostics["warnings"]]
    with pytest.raises(ValueError, match="without a probmodels fit"):
        line_nuts.to_arviz().to_netcdf(tmp_path / "plain.nc")
        probmodels.load(tmp_path / "plain.nc")


# -- names: dims and coords, DataFrames as data ---------------------------------------------


def test_coords_label_tables_and_arviz(logit_mle):
    assert list(logit_mle.summary().index[:3]) == ["w[GPA]", "w[TUCE]", "w[PSI]"]
    idata = logit_mle.to_arviz()
    assert list(idata.posterior["w"].dims) == ["chain", "draw", "feature"]
    assert list(idata.posterior.coords["feature"].values) == FEATURES
    # ArviZ selects by the label
    np.testing.assert_array_equal(idata.posterior["w"].sel(feature="PSI").values, logit_mle.draws["w"][..., 2])
    assert list(probmodels.compare({"MLE": logit_mle}).index[:3]) == ["w[GPA]", "w[TUCE]", "w[PSI]"]


def test_dataframe_as_data_and_bad_coords():
    # the DataFrame's columns are the program's arguments; statsmodels OLS as the reference
    d = sm.datasets.fair.load_pandas().data.iloc[:300]

    def ols(rate_marriage, age, affairs=None):
        a = param("a")
        b = param("b", shape=(2,), dims=("term",))
        s = param("s", support="positive")
        return observe("affairs", a + b[0] * rate_marriage + b[1] * age + noise.Gaussian(s), obs=affairs)

    f = probmodels.fit(ols, d[["rate_marriage", "age", "affairs"]], "mle", coords={"term": ["rate_marriage", "age"]})
    ref = sm.OLS(d["affairs"], sm.add_constant(d[["rate_marriage", "age"]])).fit()
    np.testing.assert_allclose(f.estimate["b"], ref.params[["rate_marriage", "age"]], rtol=1e-8)
    assert "b[rate_marriage]" in f.summary().index
    with pytest.raises(ValueError, match="coords\\['term'\\] has 3 labels but param\\('b'\\) has 2"):
        probmodels.fit(ols, d[["rate_marriage", "age", "affairs"]], "mle", coords={"term": ["x", "y", "z"]})
    with pytest.raises(ValueError, match="misspelling"):
        probmodels.fit(ols, d[["rate_marriage", "age", "affairs"]], "mle", coords={"terms": ["x", "y"]})
    with pytest.raises(ValueError, match="dims \\('term', 'other'\\) name 2 axes"):
        probmodels.fit(lambda u, x=None: param("c", shape=(2,), dims=("term", "other")), {"u": 1.0}, "mle")


# -- progress ---------------------------------------------------------------------------------


PROGRESS_SCRIPT = '''
import sys
import numpy as np, numpyro.distributions as dist, probmodels
from probmodels import noise, observe, param
def line(u, x=None):
    a = param("a", dist.Normal(0.0, 10.0))
    s = param("s", dist.HalfNormal(5.0))
    return observe("x", a * u + noise.Gaussian(s), obs=x)
u = np.linspace(-1, 1, 30)
data = {"u": u, "x": 2 * u + np.sin(9 * u)}
auto = probmodels.fit(line, data, "nuts", chains=2, warmup=100, draws=100)  # stderr is a pipe: off
probmodels.fit(line, data, "vi", steps=3000)
print("AUTO DONE", file=sys.stderr, flush=True)
on = probmodels.fit(line, data, "nuts", chains=2, warmup=100, draws=100, progress=True)
assert all(np.array_equal(on.draws[k], auto.draws[k]) for k in on.draws)  # callbacks change no draw
probmodels.fit(line, data, "vi", steps=3000, progress=True)
'''


def test_progress_on_stderr(tmp_path):
    script = tmp_path / "progress.py"
    script.write_text(PROGRESS_SCRIPT)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))  # this checkout
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    auto, forced = res.stderr.split("AUTO DONE")
    assert "chain 1" not in auto and "VI: " not in auto  # auto: off where nobody watches
    assert "chain 1 warmup" in forced and "chain 2 sampling 100/100" in forced, forced[-2000:]
    assert "VI: " in forced and "steps done" in forced


# -- messages ---------------------------------------------------------------------------------


def test_messages_say_what_to_do(line_data):
    with pytest.raises(TypeError, match="wrong order; write fit\\(model, data, 'mle'\\)"):
        probmodels.fit(line, "mle", line_data)
    u = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "flag": [True, False, True, False]})
    with pytest.raises(TypeError, match="boolean column\\(s\\) \\['flag'\\].*cast with .astype\\(float\\)"):
        probmodels.fit(logit, {"u": u, "x": np.array([0, 1, 0, 1])}, "mle")
    bad = dict(line_data, x=np.r_[line_data["x"][:-1], np.nan])
    with pytest.raises(ValueError, match="first at index 59; drop") as e:
        probmodels.fit(line, bad, "mle")
    assert "np.int64" not in str(e.value)
    counts = np.r_[np.arange(19.0), -1.0]
    with pytest.raises(ValueError, match="non-negative integers.*first at index 19 \\(value -1.0\\)"):
        probmodels.fit(poisson, {"u": np.ones((20, 1)), "x": counts}, "mle")

    def scale_prior(u, x=None):
        s = param("s", dist.Normal(0.0, 1.0))
        return observe("x", u + noise.Gaussian(s), obs=x)

    with pytest.raises(ValueError, match="param\\('s'\\) with prior Normal\\(loc=0.0, scale=1.0\\)"):
        probmodels.fit(scale_prior, line_data, "map")

    def traced_size(g, x=None):
        a = param("a", shape=(g.max() + 1,))
        return observe("x", a[g] + noise.Gaussian(1.0), obs=x)

    with pytest.raises(TypeError, match="pass the size as data"):
        probmodels.fit(traced_size, {"g": np.array([0, 1, 1]), "x": np.ones(3)}, "mle")

    def flat(u, x=None):
        b = param("b")
        return observe("x", b * u + noise.Gaussian(1.0), obs=x)

    with pytest.raises(ValueError, match="parameter\\(s\\) \\['b'\\] have no prior"):
        probmodels.calibrate(flat, {"u": np.ones(5)}, "mle", n_sims=2)


# -- the report -------------------------------------------------------------------------------


def test_report_for_a_new_user(tmp_path):
    """A model file importing a module beside it, COORDS, --methods mle,map with ALTERNATIVES
    (no NUTS run), a timing table that sums to the total, findings collapsed, small files."""
    (tmp_path / "helper_terms.py").write_text("def linear(u, w, b):\n    return b + u @ w\n")
    (tmp_path / "spec.py").write_text(textwrap.dedent('''
        """Spector with names."""
        import numpyro.distributions as dist
        import statsmodels.api as sm
        from probmodels import noise, observe, param
        from helper_terms import linear

        COORDS = {"feature": ["GPA", "TUCE", "PSI"]}

        def program(u, x=None):
            w = param("w", dist.Normal(0, 5), shape=(3,), dims=("feature",))
            b = param("b", dist.Normal(0, 20))
            return observe("x", noise.Bernoulli(logits=linear(u, w, b)), obs=x)

        def heavier(u, x=None):
            b = param("b", dist.Normal(0, 20))
            return observe("x", noise.Bernoulli(logits=b + 0.0 * u[:, 0]), obs=x)

        ALTERNATIVES = {"intercept only": heavier}

        def data():
            d = sm.datasets.spector.load_pandas()
            return {"u": d.exog, "x": d.endog}
    '''))
    out = tmp_path / "out"
    rep = report(str(tmp_path / "spec.py"), out=str(out), methods=["mle", "map"], quiet=True)
    assert not rep.alternative_fits and "loo" not in rep.tables
    assert any("add nuts or laplace to --methods" in n for n in rep.notes)
    assert "w[GPA]" in rep.tables["comparison"].index
    t = rep.timings
    assert abs(sum(v for k, v in t.items() if k != "total") - t["total"]) < 1e-9
    assert t["other"] < 0.05 * t["total"]  # the rows listed account for the time
    md = (out / "report.md").read_text()
    assert md.count("none found") == 1
    g = probmodels.load(str(out / "fit_mle.nc"))
    assert g.to_arviz().posterior.sizes["draw"] == 1 and os.path.getsize(out / "fit_mle.nc") < 100_000
    np.testing.assert_array_equal(g.estimate["w"], rep.fits["MLE"].estimate["w"])


def test_the_command_leaves_out_only_jax_teardown():
    """The ``probmodels`` command runs the exit handlers before its quick exit, less JAX's
    (it destroys the backends, which the exit frees anyway), and keeps that one while JAX's
    distributed runtime is up (it shuts the runtime down)."""
    script = textwrap.dedent(
        """
        import atexit, sys
        import jax, jax.numpy as jnp
        from jax._src import distributed, xla_bridge
        from probmodels import cli
        jnp.ones(3).sum().block_until_ready()  # a backend in use
        ran = []
        atexit.register(lambda: ran.append("ours"))
        if sys.argv[1] == "up":
            distributed.global_state.client = object()  # (a runtime "up")
        cli._skip_jax_teardown()
        distributed.global_state.client = None
        atexit._run_exitfuncs()
        print(ran, xla_bridge._default_backend is not None)
        """
    )
    out = {
        state: subprocess.run([sys.executable, "-c", script, state], capture_output=True, text=True, timeout=300).stdout.strip()
        for state in ("down", "up")
    }
    assert out == {"down": "['ours'] True", "up": "['ours'] False"}, out
