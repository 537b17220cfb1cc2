"""Fits on data partitioned by rows (dask arrays) on a LocalCluster of 2 worker processes.

References: the same program fitted in memory on the same rows (which test_large_n.py checks
against statsmodels). Tolerances: both Newton solvers stop within a decrement of 1e-10 standard
errors of the optimum, so estimates agree to ~1e-10 x se ~ 1e-13 here; checked to 1e-8 relative.
Standard errors: both come from the exact Hessian at the estimate (the partitioned fit takes a
last pass there: ``_partitioned_newton``), the sums over chunks and over all rows differing by
rounding (~1e-13): checked to 1e-8 relative, the issue's tolerance.
"""

import os
import threading
import time

import dask
import dask.array as da
import numpy as np
import numpyro.distributions as dist
import pytest
from distributed import Client, LocalCluster

import probmodels
from probmodels import noise, observe, param
from probmodels.compare import log_predictive_density
from probmodels.partitioned import map_rows

N, D, CHUNK = 240_000, 4, 40_000


def logistic(u, x=None):
    b = param("b", dist.Normal(0.0, 5.0))
    w = param("w", dist.Normal(0.0, 1.0), shape=(u.shape[1],))
    return observe("x", noise.Bernoulli(logits=b + u @ w), obs=x)


def gaussian(u, x=None):
    b = param("b")
    w = param("w", shape=(u.shape[1],))
    s = param("s", support="positive")
    return observe("x", b + u @ w + noise.Gaussian(s), obs=x)


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit="2GB")
    with Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def rows():
    # made where they are computed (as data read from a store are), not shipped from here
    rs = da.random.RandomState(0)
    u = rs.normal(size=(N, D), chunks=(CHUNK, D))
    eta = 0.2 + u @ np.array([0.8, -0.5, 0.3, 1.2])
    x = (rs.uniform(size=N, chunks=CHUNK) < 1 / (1 + da.exp(-eta))).astype(float)
    return dict(u=u, x=x)


@pytest.fixture(scope="module")
def data(rows):
    with dask.config.set(scheduler="threads"):
        return {k: v.compute() for k, v in rows.items()}


def _rows(d, chunk=CHUNK):
    return {k: da.from_array(v, chunks=(chunk,) + v.shape[1:]) for k, v in d.items()}


_FITS = {}


def _fit_once(where, data, method, **kw):
    """One fit per place (in memory or on rows), method and options, shared by the tests."""
    key = (where, method, tuple(sorted(kw.items())))
    if key not in _FITS:
        _FITS[key] = probmodels.fit(logistic, data, method, **kw)
    return _FITS[key]


def _in_memory(data, method, **kw):
    return _fit_once("memory", data, method, **kw)


def _on_rows(rows, method, **kw):
    return _fit_once("rows", rows, method, **kw)


def _flat(d):
    return np.r_[d["b"], d["w"]]


def _same(f, ref):
    np.testing.assert_allclose(_flat(f.estimate), _flat(ref.estimate), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(_flat(f.stderr), _flat(ref.stderr), rtol=1e-8, atol=0)
    print("max relative difference: estimate", np.max(np.abs(_flat(f.estimate) / _flat(ref.estimate) - 1)),
          "stderr", np.max(np.abs(_flat(f.stderr) / _flat(ref.stderr) - 1)))


@pytest.mark.parametrize(
    "method, kw",
    [("mle", {}), ("mle", {"stderr": "sandwich"}), ("map", {}), ("laplace", {"draws": 100})],
)
def test_equals_the_in_memory_fit(client, rows, data, method, kw):
    f = _on_rows(rows, method, **kw)
    ref = _in_memory(data, method, **kw)
    assert f.diagnostics["converged"] and ref.diagnostics["converged"]
    _same(f, ref)
    d = f.diagnostics
    # from a 20,000-row sample 8.4 standard errors away: three Newton passes (decrements 8.4,
    # 0.11, 2.9e-5) and one at the estimate (its Hessian: the standard errors), +1 for the meat
    assert d["passes"] == 4 + (kw.get("stderr") == "sandwich"), d
    assert "last_step" not in d
    assert d["bytes_read"] >= d["passes"] * (N * D + N) * 8
    assert d["scheduler"].startswith("distributed")
    assert "observed_data" not in f.to_arviz().groups()


def test_threaded_scheduler_and_a_gaussian(data, client):
    # the local threaded scheduler (no cluster), a program with a learned scale (a non-identity
    # transform: the delta method), and uneven chunks; reference: the in-memory fit
    rng = np.random.default_rng(1)
    g = dict(u=data["u"], x=data["u"] @ np.array([1.0, 2.0, -1.0, 0.5]) + 0.7 * rng.normal(size=N))
    ref = probmodels.fit(gaussian, g, "mle")
    with dask.config.set(scheduler="threads"):
        f = probmodels.fit(gaussian, _rows(g, chunk=70_000), "mle")
    assert f.diagnostics["scheduler"] == "threads"
    for k in ("b", "w", "s"):
        np.testing.assert_allclose(f.estimate[k], ref.estimate[k], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(f.stderr[k], ref.stderr[k], rtol=1e-8, atol=0)


def test_a_worker_lost_mid_fit(client, rows, data):
    client.wait_for_workers(2)
    victim = sorted(client.scheduler_info()["workers"])[0]
    killed = []

    def kill():
        # as soon as the fit's first tasks run, end one worker process (its nanny restarts it)
        t0 = time.time()
        while time.time() - t0 < 60:
            if any(client.processing().values()):
                killed.append(time.time())
                try:
                    client.run(os._exit, 1, workers=[victim])
                except Exception:  # the worker dies before it answers
                    pass
                return
            time.sleep(0.002)

    thread = threading.Thread(target=kill)
    thread.start()
    f = probmodels.fit(logistic, rows, "mle")
    done = time.time()
    thread.join()
    assert killed and killed[0] < done
    # the victim's process ended (its nanny starts a new one at a new address)
    assert victim not in client.scheduler_info()["workers"]
    _same(f, _in_memory(data, "mle"))
    client.wait_for_workers(2, timeout=120)


def test_minibatch_vi_near_the_map(client, rows, data):
    f = probmodels.fit(logistic, rows, "vi", batch_size=100, steps=12_000, seed=1)
    ref = _in_memory(data, "map")
    assert f.diagnostics["batch_size"] == 100 and f.diagnostics["pools"] >= 6
    # the posterior is ~Gaussian with sd = the MAP's standard errors (N = 240,000): VI's mean
    # within 4 of them; its sd within a factor 2 (minibatches of 100 leave stochastic-gradient
    # noise of ~30% in it; without the N / B scaling it would be sqrt(N / B) = 49 times larger)
    z = (_flat(f.estimate) - _flat(ref.estimate)) / _flat(ref.stderr)
    assert np.all(np.abs(z) < 4), z
    ratio = _flat(f.stderr) / _flat(ref.stderr)
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio


def test_log_predictive_density_and_map_rows(client, rows, data):
    for method in ("map", "laplace"):
        fit = _in_memory(data, method, **({"draws": 100} if method == "laplace" else {}))
        lpd = log_predictive_density(fit, logistic, rows)
        assert isinstance(lpd, da.Array) and lpd.chunks == rows["x"].chunks
        # reference: the same function on the data in memory
        np.testing.assert_allclose(lpd.compute(), log_predictive_density(fit, logistic, data), rtol=1e-12, atol=1e-12)
    out = map_rows(_row_sums, {"u": rows["u"], "k": 2.0}, per_row=(1,))
    assert out.chunks[0] == rows["u"].chunks[0]
    np.testing.assert_allclose(out.compute()[:, 0], 2.0 * data["u"].sum(axis=1))


def _row_sums(chunk):
    return chunk["k"] * chunk["u"].sum(axis=1, keepdims=True)


def test_refusals_name_the_remedy(rows):
    with pytest.raises(ValueError, match="every NUTS gradient.*laplace.*batch_size.*subsample"):
        probmodels.fit(logistic, rows, "nuts")
    with pytest.raises(ValueError, match="give batch_size"):
        probmodels.fit(logistic, rows, "vi")


def test_bad_partitioned_input(rows, data):
    with pytest.raises(ValueError, match="chunked differently along their rows.*rechunk"):
        probmodels.fit(logistic, {"u": rows["u"], "x": rows["x"].rechunk(60_000)}, "mle")
    with pytest.raises(ValueError, match="data\\['x'\\] is in memory with 240000 rows"):
        probmodels.fit(logistic, {"u": rows["u"], "x": data["x"]}, "mle")
    few = {"u": da.from_array(data["u"][:3], chunks=2), "x": da.from_array(data["x"][:3], chunks=2)}
    with pytest.raises(ValueError, match="3 rows, fewer than the 5 parameters"):
        probmodels.fit(logistic, few, "mle")


@pytest.mark.parametrize("key, row", [("x", 0), ("u", 123_457)])
def test_non_finite_rows_named_by_global_index(data, key, row):
    bad = {k: v.copy() for k, v in data.items()}
    bad[key][row] = np.nan
    # neither row is among the start's 20,000 sample rows (seed 0): the first pass finds them
    with dask.config.set(scheduler="threads"), pytest.raises(ValueError, match=f"1 rows with non-finite values.*first at row {row}\\b"):
        probmodels.fit(logistic, _rows(bad), "mle")


# ---------------------------------------------------------------------------------------------
# predictions and pointwise log-likelihoods on partitioned inputs


def _bernoulli_z(draws, p):
    """The standardised sum of ``draws - p`` over draws and rows: N(0, 1) when every draw is
    Bernoulli(p), independent."""
    p = np.broadcast_to(p, draws.shape)
    return float(np.sum(draws - p) / np.sqrt(np.sum(p * (1 - p))))


@pytest.mark.parametrize("method, kw", [("mle", {}), ("laplace", {"draws": 100})])
def test_predict_on_partitioned_inputs(client, rows, data, method, kw):
    fit = _in_memory(data, method, **kw)
    ref = fit.predict({"u": data["u"]}, draws=20)
    p = fit.predict({"u": rows["u"]}, draws=20)
    assert isinstance(p.draws, da.Array) and isinstance(p.location, da.Array)
    assert p.draws.chunks == ((1,), (20,), rows["u"].chunks[0]) and p.location.chunks == p.draws.chunks
    # the location is deterministic (theta-hat, or each posterior draw): the same numbers
    loc = p.location.compute()
    np.testing.assert_allclose(loc, ref.location, rtol=0, atol=1e-12)
    # the draws: Bernoulli(location) in distribution (each chunk has its own noise key), the
    # same for a seed whatever computes them (the cluster twice, the local threads)
    x = p.draws.compute()
    assert set(np.unique(x)) == {0.0, 1.0} and abs(_bernoulli_z(x, loc)) < 4
    np.testing.assert_array_equal(fit.predict({"u": rows["u"]}, draws=20).draws.compute(), x)
    with dask.config.set(scheduler="threads"):
        np.testing.assert_array_equal(p.draws.compute(), x)
    assert not np.array_equal(fit.predict({"u": rows["u"]}, draws=20, seed=1).draws.compute(), x)
    # summary, chunk by chunk: the predictor's columns equal the in-memory ones
    s, sr = p.summary(), ref.summary()
    assert list(s.index) == list(range(N)) and s.index.name == "row"
    cols = ["mean", "sd", "mean_low", "mean_high"]
    np.testing.assert_allclose(s[cols].to_numpy(), sr[cols].to_numpy(), rtol=0, atol=1e-12)


def test_predict_wald_band_and_pointwise_on_partitioned_inputs(client, rows, data):
    fit = _in_memory(data, "mle")
    p = fit.predict({"u": rows["u"]}, parameter_uncertainty=True, draws=10)
    ref = fit.predict({"u": data["u"]}, parameter_uncertainty=True, draws=10)
    assert p.kind == ref.kind == "plug-in + parameter uncertainty"
    cols = ["mean", "sd", "mean_low", "mean_high"]
    for prob in (0.9, 0.5):
        np.testing.assert_allclose(p.summary(prob)[cols].to_numpy(), ref.summary(prob)[cols].to_numpy(), rtol=0, atol=1e-10)
    # log p(x_i | theta-hat) per row, chunked like the rows on its second axis
    pl = fit.pointwise_log_likelihood(rows)
    assert isinstance(pl, da.Array) and pl.chunks == ((1,), rows["x"].chunks[0])
    np.testing.assert_allclose(pl.compute(), fit.pointwise_log_likelihood(data), rtol=0, atol=1e-12)


def test_predict_and_score_a_partitioned_fit(client, rows, data):
    # a fit to partitioned rows predicts and scores those rows when given no data; its draws
    # are the fit's own, so the reference is the same function on the data in memory
    f = _on_rows(rows, "laplace", draws=100)
    p = f.predict(draws=10)
    assert isinstance(p.location, da.Array) and p.location.shape == (1, 10, N)
    ref = f.predict(data, draws=10)  # (in memory: the same fit, the rows as numpy)
    np.testing.assert_allclose(p.location[..., ::1000].compute(), ref.location[..., ::1000], rtol=0, atol=1e-12)
    pl = f.pointwise_log_likelihood()
    assert isinstance(pl, da.Array) and pl.shape == (100, N)
    np.testing.assert_allclose(pl[:, :5].compute(), f.pointwise_log_likelihood({k: v[:5] for k, v in data.items()}), rtol=0, atol=1e-12)


def test_predict_compiles_once_for_uneven_chunks(data):
    # chunks of 70,000, 70,000, 70,000 and 30,000 rows: the last one padded, one trace
    from probmodels.predict import trace_count

    fit = _in_memory(data, "mle")
    before = trace_count(logistic)
    with dask.config.set(scheduler="threads"):
        p = fit.predict({"u": _rows(data, chunk=70_000)["u"]}, draws=3)
        loc = p.location.compute()
    assert trace_count(logistic) - before == 1
    np.testing.assert_allclose(loc, fit.predict({"u": data["u"]}, draws=3).location, rtol=0, atol=1e-12)


def pooled(u, x=None):
    m = param("m")
    return observe("x", m + 0.0 * u.sum() + noise.Gaussian(1.0), obs=x)


def test_predict_refuses_a_site_without_rows(data):
    fit = probmodels.fit(pooled, {"u": data["u"][:100], "x": np.float64(0.3)}, "mle")
    with pytest.raises(ValueError, match="observation site 'x' has shape \\(\\).*one value per row"):
        fit.predict({"u": _rows(data)["u"]})


def test_newton_skips_the_last_pass_only_when_it_changes_nothing():
    # f = z'Az/2 + c sum(cosh z) - 0.1 sum(z): gradient and Hessian in closed form; the optimum
    # from 60 plain Newton steps. From [0.1, 0] the second point's decrement (1.5e-7) bounds the
    # next below 1e-10 and the Hessian is predicted to move by 4e-12 over the step: no third
    # pass, and res.hess is within 1e-10 of the Hessian at the estimate. From [1, -1] the last
    # step is too large for that: a pass at the estimate gives its Hessian exactly.
    from probmodels.solvers._partitioned_newton import newton

    a, c = np.array([[2.0, 0.3], [0.3, 1.0]]), 1e-3

    def fgh(z):
        return 0.5 * z @ a @ z + c * np.sum(np.cosh(z)) - 0.1 * z.sum(), a @ z + c * np.sinh(z) - 0.1, a + c * np.diag(np.cosh(z))

    opt = np.zeros(2)
    for _ in range(60):
        _, g, h = fgh(opt)
        opt = opt - np.linalg.solve(h, g)
    for z0, passes, skipped in (([0.1, 0.0], 2, True), ([1.0, -1.0], 3, False)):
        calls = []

        def evaluate(z):
            calls.append(z)
            f, g, h = fgh(z)
            return f, g, h, -f

        run = newton(evaluate, np.array(z0), 1e-8, 50)
        assert len(calls) == passes and (run.final is not None) == skipped
        np.testing.assert_allclose(run.res.z, opt, rtol=0, atol=1e-10)
        np.testing.assert_allclose(run.res.hess, fgh(run.res.z)[2], rtol=1e-10, atol=0)


def two_sites(u, x=None, c=None):
    b = param("b", dist.Normal(0.0, 5.0))
    a = param("a", dist.Normal(0.0, 5.0))
    observe("x", b * u + noise.Gaussian(1.0), obs=x)
    return observe("c", noise.Poisson(log_rate=a + 0.1 * u), obs=c)


def test_predict_several_sites_on_partitioned_inputs():
    # two observation sites, 1,000 rows in chunks of 300 (the last of 100, padded), the local
    # threads: per site and stacked, the predictor's columns equal the in-memory summary's
    rng = np.random.default_rng(2)
    u = rng.normal(size=1000)
    d = {"u": u, "x": 0.7 * u + rng.normal(size=1000), "c": rng.poisson(np.exp(0.3 + 0.1 * u)).astype(float)}
    fit = probmodels.fit(two_sites, d, "laplace", draws=50)
    with dask.config.set(scheduler="threads"):
        p = fit.predict({"u": da.from_array(u, chunks=300)}, draws=50)
        ref = fit.predict({"u": u}, draws=50)
        assert p.sites == ref.sites == ("x", "c")
        one = p["c"]
        assert isinstance(one.draws, da.Array) and one.draws.chunks[2] == (300, 300, 300, 100)
        cols = ["mean", "sd", "mean_low", "mean_high"]
        np.testing.assert_allclose(one.summary()[cols].to_numpy(), ref["c"].summary()[cols].to_numpy(), rtol=0, atol=1e-12)
        s, sr = p.summary(), ref.summary()
    assert list(s.index) == list(sr.index)
    np.testing.assert_allclose(s[cols].to_numpy(), sr[cols].to_numpy(), rtol=0, atol=1e-12)
