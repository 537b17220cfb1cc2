"""Robust regression: a line through data with 10% gross outliers.

The built-in example of `probmodels report`. Student-t noise (df = 4) absorbs the outliers; the
Gaussian alternative, whose loss is the squared error, is dragged by them, and LOO says so.
"""

import numpy as np
import numpyro.distributions as dist

from probmodels import noise, observe, param

TRUTH = {"intercept": 1.0, "slope": 2.0}


def program(u, x=None):
    slope = param("slope", prior=dist.Normal(0.0, 10.0))
    intercept = param("intercept", prior=dist.Normal(0.0, 10.0))
    scale = param("scale", prior=dist.HalfNormal(5.0))
    return observe("x", intercept + slope * u + noise.StudentT(df=4.0, scale=scale), obs=x)


def gaussian(u, x=None):
    slope = param("slope", prior=dist.Normal(0.0, 10.0))
    intercept = param("intercept", prior=dist.Normal(0.0, 10.0))
    scale = param("scale", prior=dist.HalfNormal(5.0))
    return observe("x", intercept + slope * u + noise.Gaussian(scale), obs=x)


ALTERNATIVES = {"Gaussian noise": gaussian}


def data(n: int = 60, seed: int = 1) -> dict:
    """``n`` points on the line (noise sd 0.5), 10% of them shifted by +6 to +10."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-2.0, 2.0, size=n)
    x = TRUTH["intercept"] + TRUTH["slope"] * u + rng.normal(scale=0.5, size=n)
    bad = rng.choice(n, size=n // 10, replace=False)
    x[bad] += rng.uniform(6.0, 10.0, size=bad.size)
    return {"u": u, "x": x}
