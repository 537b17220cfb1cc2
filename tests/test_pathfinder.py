"""Pathfinder: the sixth method, one module and one registry entry."""

import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

import probmodels
from probmodels import noise, observe, param
from probmodels.solvers.base import APPROXIMATION

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
import hierarchical  # noqa: E402

# a correlated 6-d Gaussian posterior: prior N(0, S) on w, one observation x ~ N(w, I)
_rng = np.random.default_rng(0)
_A = _rng.normal(size=(6, 6))
S = _A @ _A.T + 0.5 * np.eye(6)
X6 = _rng.normal(size=6)


def gaussian6(x=None):
    w = param("w", dist.MultivariateNormal(jnp.zeros(6), jnp.asarray(S)))
    return observe("x", w + noise.Gaussian(1.0), obs=x)


def test_pathfinder_on_a_correlated_gaussian():
    f = probmodels.fit(gaussian6, {"x": X6}, "pathfinder", paths=4, draws=1000, seed=0)
    # closed form: posterior precision S^-1 + I, mean C x
    cov = np.linalg.inv(np.linalg.inv(S) + np.eye(6))
    mean, sd = cov @ X6, np.sqrt(np.diag(cov))
    assert f.draws["w"].shape == (1, 1000, 6)
    # the Gaussians are exact up to L-BFGS's curvature estimate and PSIS corrects the rest: means
    # within 0.1 sd (Monte Carlo error of ~4000 weighted draws: ~0.02 sd), sds within 10%
    assert np.all(np.abs(f.estimate["w"] - mean) < 0.1 * sd), (f.estimate["w"] - mean) / sd
    assert np.all(np.abs(f.stderr["w"] / sd - 1) < 0.1), f.stderr["w"] / sd
    d = f.draws["w"][0]
    assert np.all(np.abs(d.mean(0) - mean) < 0.15 * sd) and np.all(np.abs(d.std(0) / sd - 1) < 0.15)
    assert f.diagnostics["pareto_k"] < 0.5 and f.diagnostics["converged"]
    assert not f.diagnostics["warnings"]
    # the layers above take it as any other method
    table = probmodels.compare({"MAP": probmodels.fit(gaussian6, {"x": X6}, "map"), "Pathfinder": f})
    assert ("Pathfinder", "sd") in table.columns
    idata = f.to_arviz()
    assert idata.posterior["w"].shape == (1, 1000, 6) and "log_likelihood" in idata.groups()


def test_pathfinder_is_honest_on_eight_schools():
    d = hierarchical.data()
    ref = probmodels.fit(hierarchical.program, d, "nuts", chains=4, warmup=500, draws=1000, target_accept=0.95)
    mu, sd = float(ref.estimate["mu"]), float(ref.stderr["mu"])
    for seed in range(4):
        f = probmodels.fit(hierarchical.program, d, "pathfinder", seed=seed)
        shift = (float(f.estimate["mu"]) - mu) / sd
        # accurate (within half a posterior sd of NUTS, whose Monte Carlo error is ~0.05 sd) or it
        # says it is not to be trusted
        distrust = [
            w for w in f.diagnostics["warnings"]
            if w.category == APPROXIMATION and ("not to be trusted" in w or "cannot be trusted" in w)
        ]
        assert abs(shift) < 0.5 or distrust, (seed, shift, f.diagnostics["pareto_k"], f.diagnostics["warnings"])


def glm(u, x=None):
    a = param("a", dist.Normal(0.0, 1.0))
    b = param("b", dist.Normal(0.0, 1.0))
    return observe("x", noise.Bernoulli(logits=a + b * u), obs=x)


def test_pathfinder_sbc_on_a_logistic_glm():
    u = np.linspace(-2.0, 2.0, 40)
    cal = probmodels.calibrate(glm, {"u": u}, "pathfinder", n_sims=100, seed=0, draws=400)
    assert cal.passed, cal
    assert cal.converged.mean() > 0.95


LINE = """
import numpy as np
import numpyro.distributions as dist
from probmodels import noise, observe, param

def program(u, x=None):
    a = param("a", dist.Normal(0.0, 5.0))
    b = param("b", dist.Normal(0.0, 5.0))
    return observe("x", a + b * u + noise.Gaussian(0.5), obs=x)

def data():
    u = np.linspace(-1, 1, 30)
    return {"u": u, "x": 1.0 + 2.0 * u + 0.5 * np.sin(11 * u)}
"""


def test_report_takes_pathfinder(tmp_path):
    path = tmp_path / "line.py"
    path.write_text(LINE)
    rep = probmodels.report(str(path), methods=["mle", "pathfinder"], quiet=True)
    assert list(rep.fits) == ["MLE", "Pathfinder"]
    assert ("Pathfinder", "sd") in rep.tables["comparison"].columns
    assert "densities" in rep.figures and "heldout" in rep.tables
