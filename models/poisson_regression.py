"""Count regression with overdispersion: negative-binomial noise against Poisson noise.

Counts ``x`` whose log-mean is linear in one input, ``x_hat = intercept + slope * u``, simulated
with more spread than a Poisson allows: a negative binomial (NB2) with mean ``mu = exp(x_hat)``
and concentration ``r = 2``, so ``Var x = mu + mu^2 / r`` instead of ``mu`` (a Gamma-distributed
rate per observation, mixed into a Poisson, gives exactly this). The program uses negative-binomial
noise and learns ``r`` (statsmodels calls ``1 / r`` alpha); its negative log-likelihood is the
loss ``(x + r) log(r + e^x_hat) - x x_hat`` plus ``c(x, r) = lgamma(x + 1) + lgamma(r) -
lgamma(x + r) - r log r``, free of the prediction but not of ``r``: learning the noise needs the
whole likelihood, not only the loss. The alternative is Poisson noise, whose negative
log-likelihood is the Poisson loss ``e^x_hat - x x_hat`` plus ``log x!``.

Both models give a consistent mean curve, but the Poisson model believes the counts are far
less variable than they are: its standard errors are too small, its posterior too narrow, and
its predictive distribution puts too little mass on zeros and on large counts. LOO
(``az.compare``) scores exactly that, the predictive density of each count given all the others,
and prefers the negative binomial by several standard errors of the difference. The Poisson fit's
effective number of parameters ``p_loo`` also comes out well above its 2 parameters, the usual
sign of a misspecified noise model (a few counts it cannot explain move its posterior).

Run: ``python models/poisson_regression.py`` or ``probmodels report models/poisson_regression.py``.
"""

import numpy as np
import numpyro.distributions as dist

from probmodels import noise, observe, param

TRUTH = {"intercept": 1.0, "slope": 0.8, "concentration": 2.0}


def count_regression(counts):
    """The same log-linear mean under the count noise model ``counts(x_hat)``."""

    def program(u, x=None):
        intercept = param("intercept", prior=dist.Normal(0.0, 5.0))
        slope = param("slope", prior=dist.Normal(0.0, 5.0))
        x_hat = intercept + slope * u  # log-mean
        return observe("x", counts(x_hat), obs=x)

    return program


def negative_binomial(x_hat):
    """NB2 noise with a learned concentration (Gamma(2, 0.2) prior: mean 10, Poisson-like a priori)."""
    concentration = param("concentration", prior=dist.Gamma(2.0, 0.2))
    return noise.NegativeBinomial(log_rate=x_hat, concentration=concentration)


def poisson(x_hat):
    return noise.Poisson(log_rate=x_hat)


program = count_regression(negative_binomial)
ALTERNATIVES = {"Poisson": count_regression(poisson)}


def data(n: int = 200, seed: int = 4) -> dict:
    """``n`` NB2 counts at ``TRUTH`` (a Gamma-Poisson mixture), inputs uniform on [-1, 1]."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1.0, 1.0, size=n)
    mu = np.exp(TRUTH["intercept"] + TRUTH["slope"] * u)
    r = TRUTH["concentration"]
    x = rng.poisson(rng.gamma(shape=r, scale=mu / r))
    return {"u": u, "x": x}


if __name__ == "__main__":
    from probmodels.report import report

    report(__file__, out="report-poisson_regression")
