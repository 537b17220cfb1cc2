"""Denoising: predicting the added noise with squared error is a Gaussian likelihood (diffusion in miniature).

A diffusion model is trained on noisy samples ``u = x_clean + sigma * eps`` to predict the noise
``eps`` that was added, with the mean squared error ``|eps - eps_hat(u)|^2``. That loss is the
negative log-likelihood of Gaussian noise on ``eps``, so the training run is an MLE:

.. math::

    \\varepsilon = \\hat\\varepsilon_\\theta(u) + e,\\qquad e \\sim N(0, s),\\qquad
    -\\log p(\\varepsilon \\mid u) = \\frac{|\\varepsilon - \\hat\\varepsilon_\\theta(u)|^2}{2 s^2} + \\log(s\\sqrt{2\\pi}).

Here the observation ``x`` *is* the noise ``eps`` (shape ``(N, 2)``) and the input ``u`` is the
noisy sample; ``eps_hat(u) = b + u @ W`` is linear, so the MLE of ``(b, W)`` is least squares of
``eps`` on ``[1, u]`` and the MLE of each output's noise scale is ``sqrt(RSS_d / N)``. The MAP
under ``Normal(0, 5)`` priors is ridge regression (weight decay).

The clean data are Gaussian, ``x_clean ~ N(m, S)``, and then the linear denoiser is not an
approximation but the optimum (Tweedie's formula): the best prediction of the noise and what is
left unexplained are

.. math::

    E[\\varepsilon \\mid u] = \\sigma (S + \\sigma^2 I)^{-1}(u - m),\\qquad
    \\mathrm{Var}[\\varepsilon \\mid u] = I - \\sigma^2 (S + \\sigma^2 I)^{-1},

which give ``TRUTH`` for ``W``, ``b`` and the two noise scales. ``-eps_hat(u) / sigma`` estimates
the score ``grad log p_sigma(u)`` of the noised data, the quantity a diffusion sampler follows. A
real diffusion model makes ``eps_hat`` a network and also conditions on ``sigma`` (many noise
levels); replacing ``b + u @ W`` by, say, ``jnp.tanh(u @ W1 + b1) @ W2 + b2`` changes nothing else in
the program, and every solver still applies.

``ALTERNATIVES``: the L1 loss (Laplace noise), which some diffusion models train with, and a
Student-t; LOO should prefer the Gaussian, the true conditional distribution of the noise.

Run: ``python models/denoising.py`` or ``probmodels report models/denoising.py``.
"""

import numpy as np
import numpyro.distributions as dist

from probmodels import noise, observe, param

D = 2
SIGMA = 0.8  # the noise level of the forward process
M = np.array([1.0, -0.5])  # mean of the clean data
S = np.array([[1.0, 0.6], [0.6, 0.5]])  # covariance of the clean data

_K = SIGMA * np.linalg.inv(S + SIGMA**2 * np.eye(D))  # E[eps | u] = K (u - m); K is symmetric
TRUTH = {
    "W": _K.T,  # eps_hat = b + u @ W
    "b": -M @ _K.T,
    "scale": np.sqrt(np.diag(np.eye(D) - SIGMA**2 * np.linalg.inv(S + SIGMA**2 * np.eye(D)))),
}


def denoiser(eps):
    """The linear noise predictor under the noise model ``eps(scale)`` on its error."""

    def program(u, x=None):
        b = param("b", prior=dist.Normal(0.0, 5.0), shape=(D,))
        W = param("W", prior=dist.Normal(0.0, 5.0), shape=(D, D))
        scale = param("scale", prior=dist.HalfNormal(2.0), shape=(D,))
        x_hat = b + u @ W  # eps_hat(u)
        return observe("x", x_hat + eps(scale), obs=x)

    return program


program = denoiser(lambda s: noise.Gaussian(s))  # the MSE loss
ALTERNATIVES = {
    "Laplace (L1 loss)": denoiser(lambda s: noise.Laplace(s)),
    "Student-t": denoiser(lambda s: noise.StudentT(df=4.0, scale=s)),
}


def data(n: int = 200, seed: int = 0) -> dict:
    """``n`` clean points from ``N(M, S)``, noised at level ``SIGMA``: ``u`` the noisy points,
    ``x`` the standard-normal noise that was added."""
    rng = np.random.default_rng(seed)
    x_clean = rng.multivariate_normal(M, S, size=n)
    eps = rng.normal(size=(n, D))
    return {"u": x_clean + SIGMA * eps, "x": eps}


if __name__ == "__main__":
    from probmodels.report import report

    report(__file__, out="report-denoising")
