"""The main job: ``probmodels report`` on shipped model files, its files, numbers and HTML."""

import os
import shutil
import subprocess
import sys
import textwrap

import arviz as az
import pandas as pd
import pytest

import probmodels
from probmodels.report import report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(model, out):
    cmd = [sys.executable, "-m", "probmodels", "report", os.path.join(ROOT, "models", model), "--out", str(out), "--quick"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    out = tmp_path_factory.mktemp("linear")
    res = run_cli("linear_regression.py", out)
    assert "] NUTS: fitting" in res.stderr and "done in" in res.stderr  # progress on the terminal
    return out


@pytest.fixture(scope="module")
def robust(tmp_path_factory):
    out = tmp_path_factory.mktemp("robust")
    run_cli("robust_regression.py", out)
    return out


def test_report_files(linear):
    names = set(os.listdir(linear))
    for f in ["report.html", "report.md", "comparison.csv", "heldout.csv", "forest.png", "densities.png", "trace.png", "rank.png", "ppc.png", "penalty_geometry.png"]:
        assert f in names, f
    for method in ["mle", "map", "laplace", "vi", "nuts"]:
        idata = az.from_netcdf(os.path.join(linear, f"fit_{method}.nc"))
        assert idata.attrs["probmodels_method"] == method
        # the files keep what the report shows: a point fit's estimate (one draw), the
        # approximations' draws, NUTS's draws with their log-likelihood (LOO)
        assert ("log_likelihood" in idata.groups()) == (method == "nuts")
        assert idata.posterior.sizes["draw"] == (1 if method in ("mle", "map") else 300 if method == "nuts" else 4000)
        loaded = probmodels.load(os.path.join(linear, f"fit_{method}.nc"))
        assert loaded.method == method and loaded.summary().shape[0] == 22
    md = open(os.path.join(linear, "report.md")).read()
    assert "## Findings" in md and "## Held-out comparison" in md and "![forest](forest.png)" in md


def test_report_numbers(linear):
    table = pd.read_csv(os.path.join(linear, "comparison.csv"), index_col=0)
    # every coefficient's 94% NUTS interval... covers its true value in most cases (20 + 2 params)
    inside = (table["NUTS hdi_3%"] <= table["truth value"]) & (table["truth value"] <= table["NUTS hdi_97%"])
    assert inside[table["truth value"].notna()].mean() >= 0.8
    held = pd.read_csv(os.path.join(linear, "heldout.csv"), index_col=0)
    # 21 coefficients on 48 training points: the plug-in MLE predictive (scale sqrt(RSS/N), RSS on
    # 27 degrees of freedom) is overconfident; the posterior predictive must win by a wide margin
    assert held.loc["NUTS", "lpd"] - held.loc["MLE", "lpd"] > 5.0, held
    assert held.loc["Laplace", "lpd"] > held.loc["MLE", "lpd"]
    assert set(held["predictive"]) == {"plug-in", "posterior"}


def test_noise_model_selection(robust):
    loo = pd.read_csv(os.path.join(robust, "loo.csv"), index_col=0)
    assert set(loo.index) == {"program", "Gaussian", "Laplace", "Huber", "Mixture"}
    # with 10% gross outliers, Student-t (the program) and the mixture beat Gaussian noise by far
    assert loo.loc["Gaussian", "elpd_diff"] > 4 * loo.loc["Gaussian", "dse"]
    assert loo.index[0] in ("program", "Mixture")
    assert "pareto_k_over_0.7" in loo.columns
    html = open(os.path.join(robust, "report.html")).read()
    assert "Noise-model selection" in html and "penalty geometry" in html


def _chromium():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name) and shutil.which("chromedriver"):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_html_renders_in_a_real_browser(robust, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = _chromium()
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        driver.get("file://" + os.path.join(robust, "report.html"))
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);"
        )
        assert len(images) >= 6
        for alt, complete, w, h in images:
            assert complete and w > 100 and h > 100, (alt, w, h)
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
        assert driver.title.startswith("Robust regression")
        driver.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").stat().st_size > 50_000
    finally:
        driver.quit()


PATHOLOGIES = '''
import numpy as np
import numpyro.distributions as dist
from probmodels import noise, observe, param

def program(u, x=None):
    b = param("b")
    w = param("w", shape=(u.shape[1],))
    return observe("x", noise.Bernoulli(logits=b + u @ w), obs=x)

def data():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(40, 2))
    return {"u": u, "x": (u[:, 0] > 0).astype(float)}
'''

BOUNDARY = '''
import numpy as np
from probmodels import noise, observe, param

def program(sigma, x=None):
    mu = param("mu")
    tau = param("tau", support="positive")
    return observe("x", mu + noise.Gaussian((tau**2 + sigma**2) ** 0.5), obs=x)

def data():
    return {"sigma": np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0] * 2),
            "x": np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0] * 2)}
'''

UNIDENTIFIED = '''
import numpy as np
from probmodels import noise, observe, param

def program(u, x=None):
    a = param("a")
    b = param("b")
    return observe("x", (a + b) * u + noise.Gaussian(1.0), obs=x)

def data():
    u = np.linspace(-1, 1, 20)
    return {"u": u, "x": 2 * u + np.sin(7 * u)}
'''


@pytest.mark.parametrize(
    "source,category,words",
    [
        (PATHOLOGIES, "perfect separation", "does not exist: perfect separation"),
        (BOUNDARY, "estimate on the boundary", "tau lies on the boundary"),
        (UNIDENTIFIED, "unidentified parameters", "a, b are not identified"),
    ],
    ids=["separation", "boundary", "unidentified"],
)
def test_pathologies_become_findings(tmp_path, source, category, words):
    path = tmp_path / "spec.py"
    path.write_text(textwrap.dedent(source))
    rep = report(str(path), methods=["mle"], quiet=True)
    hits = [text for cat, label, text in rep.findings if cat == category and label == "MLE"]
    assert hits and words in hits[0], rep.findings
    others = [cat for cat, label, _ in rep.findings if label is None]
    assert len(others) >= len(set(c for c, _, _ in rep.findings)) - 3


def test_bad_model_file(tmp_path):
    path = tmp_path / "empty.py"
    path.write_text("x = 1\n")
    with pytest.raises(ValueError, match="defines no program"):
        report(str(path), quiet=True)
    with pytest.raises(FileNotFoundError):
        report(str(tmp_path / "missing.py"), quiet=True)
    with pytest.raises(ValueError, match="unknown method"):
        report(None, methods=["mcmc"], quiet=True)


SMALL = '''
"""A line with Student-t noise."""
import numpy as np
import numpyro.distributions as dist
from probmodels import noise, observe, param

def program(u, x=None):
    slope = param("slope", dist.Normal(0.0, 10.0))
    intercept = param("intercept", dist.Normal(0.0, 10.0))
    scale = param("scale", dist.HalfNormal(5.0))
    return observe("x", intercept + slope * u + noise.StudentT(df=4.0, scale=scale), obs=x)

def data():
    rng = np.random.default_rng(0)
    u = np.linspace(-2, 2, 30)
    return {"u": u, "x": 1.0 + 0.5 * u + rng.standard_t(4, size=30)}
'''


def test_report_compiles_nothing_twice(tmp_path, monkeypatch):
    """Every program a report runs is compiled (or read from the persistent cache) once, and the
    held-out refits (weights 0 on the held-out rows) compile nothing: they run the full-data fits'
    executables. Counted by JAX's own compilation-cache keys (a hash of the lowered program and
    the compile options), which JAX logs for every compile it looks up."""
    import collections
    import importlib
    import logging

    from probmodels import _config

    report_module = importlib.import_module("probmodels.report")  # (the module, not the function)

    if _config.cache_dir is None:
        pytest.skip("JAX's persistent compilation cache is off (PROBMODELS_CACHE_DIR=off): no cache keys to count")
    keys = []

    class Keys(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if " with key " in msg and ("cache hit" in msg or "CACHE MISS" in msg):
                keys.append((msg.split("'")[1], msg.rsplit(" with key ", 1)[1]))

    marks = {}
    for name in ("split_rows", "heldout"):  # called right before the refits and after them
        original = getattr(report_module, name)

        def marked(*args, _name=name, _original=original, **kwargs):
            marks.setdefault(_name, len(keys))
            return _original(*args, **kwargs)

        monkeypatch.setattr(report_module, name, marked)
    # JAX's cache, and probmodels' own for the programs it loads without lowering (_programs.py)
    loggers = [logging.getLogger("jax._src.compiler"), logging.getLogger("probmodels._programs")]
    handler, levels = Keys(level=logging.DEBUG), [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        path = tmp_path / "line.py"
        path.write_text(SMALL)
        rep = report(str(path), quick=True, quiet=True)
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)
    assert "heldout" in rep.tables and len(keys) > 10  # the report ran and its compiles were seen
    repeated = [name for (name, key), n in collections.Counter(keys).items() if n > 1]
    assert not repeated, f"compiled more than once: {repeated}"
    assert marks["heldout"] == marks["split_rows"], keys[marks["split_rows"] : marks["heldout"]]


def test_an_input_that_is_no_axis_gets_predictive_checks():
    """The eight schools' one array input is each school's standard error, not an axis to draw
    bands over (predict on a grid of them cannot broadcast with the eight school effects): the
    predictive figure is a predictive check per method instead of a note."""
    rep = report(os.path.join(ROOT, "models", "hierarchical.py"), methods=["mle", "laplace"], quick=True, quiet=True, helper=False)
    assert "predictive" in rep.figures
    assert not [n for n in rep.notes if "no predictive figure" in n], rep.notes
    titles = [ax.get_title() for ax in rep.figures["predictive"].axes]
    assert titles == ["MLE (plug-in)", "Laplace (posterior)"]
