"""Robust regression: which noise model do the data support?

A line through data with 10% gross outliers. The program uses Student-t noise; its alternatives
are Gaussian (least squares), Laplace (least absolute deviations), Huber and a contamination
mixture 0.9 N(0, s) + 0.1 N(0, 10 s). MLE, MAP and the posterior agree on the Student-t line; LOO
ranks the noise models, and the penalty geometry shows why least squares is dragged away.

Run: ``python models/robust_regression.py`` or ``probmodels report models/robust_regression.py``.
"""

import numpy as np
import numpyro.distributions as dist

from probmodels import noise, observe, param

TRUTH = {"intercept": 1.0, "slope": 2.0}


def line(eps):
    """The same line under the noise model ``eps(scale)``."""

    def program(u, x=None):
        slope = param("slope", prior=dist.Normal(0.0, 10.0))
        intercept = param("intercept", prior=dist.Normal(0.0, 10.0))
        scale = param("scale", prior=dist.HalfNormal(5.0))
        return observe("x", intercept + slope * u + eps(scale), obs=x)

    return program


program = line(lambda s: noise.StudentT(df=4.0, scale=s))
ALTERNATIVES = {
    "Gaussian": line(lambda s: noise.Gaussian(s)),
    "Laplace": line(lambda s: noise.Laplace(s)),
    "Huber": line(lambda s: noise.Huber(1.345, s)),
    "Mixture": line(lambda s: noise.Mixture([noise.Gaussian(s), noise.Gaussian(10.0 * s)], [0.9, 0.1])),
}


def data(n: int = 80, seed: int = 0) -> dict:
    """``n`` points on the line (noise sd 0.5); 10% of them shifted by +8 to +12."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-2.0, 2.0, size=n)
    x = TRUTH["intercept"] + TRUTH["slope"] * u + rng.normal(scale=0.5, size=n)
    bad = rng.choice(n, size=n // 10, replace=False)
    x[bad] += rng.uniform(8.0, 12.0, size=bad.size)
    return {"u": u, "x": x}


if __name__ == "__main__":
    from probmodels.report import report

    report(__file__, out="report-robust_regression")
