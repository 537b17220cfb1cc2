"""Linear regression: least squares is the MLE, ridge the MAP, and the posterior adds the rest.

Gaussian noise with a learned scale and twenty coefficients, fitted to 60 points: a small-data
regime. The MLE is least squares and its noise scale sqrt(RSS / N) is too small for new data
(RSS has N - 21 degrees of freedom); the MAP under Normal(0, 1) priors is ridge regression; the
posterior predictive carries the uncertainty of every coefficient and of the scale, and wins on
held-out data by a wide margin.

Run: ``python models/linear_regression.py`` or ``probmodels report models/linear_regression.py``.
"""

import numpy as np
import numpyro.distributions as dist

from probmodels import noise, observe, param

D = 20
TRUTH = {"intercept": 0.5, "w": np.round(np.random.default_rng(0).normal(scale=0.5, size=D), 2), "scale": 1.0}


def program(u, x=None):
    intercept = param("intercept", prior=dist.Normal(0.0, 5.0))
    w = param("w", prior=dist.Normal(0.0, 1.0), shape=(u.shape[1],))  # ridge
    scale = param("scale", prior=dist.HalfNormal(2.0))
    return observe("x", intercept + u @ w + noise.Gaussian(scale), obs=x)


def data(n: int = 60, seed: int = 3) -> dict:
    """``n`` draws from the program at ``TRUTH``, inputs standard normal."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, D))
    x = TRUTH["intercept"] + u @ TRUTH["w"] + rng.normal(scale=TRUTH["scale"], size=n)
    return {"u": u, "x": x}


if __name__ == "__main__":
    from probmodels.report import report

    report(__file__, out="report-linear_regression")
