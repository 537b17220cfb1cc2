"""Heteroscedastic regression: learning the noise, a noise scale that depends on the input.

A line whose scatter grows with ``u``: the mean and the log of the noise scale are both linear in
``u``,

    x = intercept + slope * u + eps,    eps ~ Normal(0, s(u)),
    log s(u) = log_scale_intercept + log_scale_slope * u .

The noise model is Gaussian with an array of scales computed by the program, one per observation,
so the negative log-likelihood is a *weighted* squared error plus a log-scale term,

    sum_i (x_i - x_hat_i)^2 / (2 s(u_i)^2) + log s(u_i) + const,

and the fit learns the weights: where the noise is large, the points count for less. Ordinary
least squares (one scale for all, the alternative ``"one scale"``) gives a similar line with the
wrong uncertainty: too wide where the data are precise and too narrow where they are not, so its
predictive density is worse at both ends of the range of ``u``, and LOO prefers the learned
noise by a wide margin. Normal(0, 5) priors on the mean's coefficients and Normal(0, 2) on the
log-scale's (LogNormal(0, 2) on the one scale) are weak: MLE, MAP and the posterior nearly agree.

Run: ``python models/heteroscedastic_regression.py`` or
``probmodels report models/heteroscedastic_regression.py``.
"""

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from probmodels import noise, observe, param

TRUTH = {"intercept": 1.0, "slope": 2.0, "log_scale_intercept": -1.0, "log_scale_slope": 0.7}


def program(u, x=None):
    intercept = param("intercept", prior=dist.Normal(0.0, 5.0))
    slope = param("slope", prior=dist.Normal(0.0, 5.0))
    log_scale_intercept = param("log_scale_intercept", prior=dist.Normal(0.0, 2.0))
    log_scale_slope = param("log_scale_slope", prior=dist.Normal(0.0, 2.0))
    x_hat = intercept + slope * u
    scale = jnp.exp(log_scale_intercept + log_scale_slope * u)  # one scale per observation
    return observe("x", x_hat + noise.Gaussian(scale), obs=x)


def one_scale(u, x=None):
    """The same line with one noise scale for every observation (least squares)."""
    intercept = param("intercept", prior=dist.Normal(0.0, 5.0))
    slope = param("slope", prior=dist.Normal(0.0, 5.0))
    scale = param("scale", prior=dist.LogNormal(0.0, 2.0))
    return observe("x", intercept + slope * u + noise.Gaussian(scale), obs=x)


ALTERNATIVES = {"one scale": one_scale}


def data(n: int = 150, seed: int = 5) -> dict:
    """``n`` draws from the program at ``TRUTH``, inputs uniform on [-2, 2]."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-2.0, 2.0, size=n)
    scale = np.exp(TRUTH["log_scale_intercept"] + TRUTH["log_scale_slope"] * u)
    x = TRUTH["intercept"] + TRUTH["slope"] * u + rng.normal(scale=scale)
    return {"u": u, "x": x}


if __name__ == "__main__":
    from probmodels.report import report

    report(__file__, out="report-heteroscedastic_regression")
