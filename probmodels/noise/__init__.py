"""The noise-model catalogue: every training loss is the negative log-likelihood of a noise model.

A noise model is ``p(x | x_hat)``: a numpyro distribution, the textbook loss it induces, and the
point predictor that loss makes optimal. Two kinds:

* **additive** (location families): ``x = x_hat + eps``. Write ``x_hat + noise.Gaussian(scale)``
  and hand it to :func:`probmodels.observe`. Gaussian, Laplace, StudentT, Cauchy, Logistic,
  Huber and :class:`Mixture`.
* **link** (the prediction is a parameter of the distribution, on the scale a network outputs):
  ``noise.Bernoulli(logits=x_hat)``, ``Binomial(total_count, logits=)``, ``Categorical(logits=)``,
  ``Poisson(log_rate=)``, ``NegativeBinomial(log_rate=, concentration=)``,
  ``Gamma(log_mean=, shape=)``.

Every noise model has ``nll(x, x_hat)`` and ``loss(x, x_hat)``, both per observation and
unreduced, with ``nll = a * loss + c(x)``, ``a > 0`` and ``c`` free of ``x_hat``; ``loss_name``;
``predictor``; and ``distribution(x_hat)``. :func:`for_loss` goes from a loss's name to its noise
model, and refuses losses that are no likelihood.

Any scale may be an array computed by the program (heteroscedastic noise, "learning the noise"):
it broadcasts against ``x_hat``.
"""

from ._base import Additive, Link, NoiseModel, Noisy
from .additive import Cauchy, Gaussian, Huber, HuberDistribution, Laplace, LaplaceNoise, Logistic, Mixture, StudentT
from .link import Bernoulli, Binomial, Categorical, Gamma, NegativeBinomial, Poisson
from .losses import LOSSES, for_loss

__all__ = [
    "NoiseModel",
    "Additive",
    "Link",
    "Noisy",
    "Gaussian",
    "Laplace",
    "LaplaceNoise",
    "StudentT",
    "Cauchy",
    "Logistic",
    "Huber",
    "Mixture",
    "Bernoulli",
    "Binomial",
    "Categorical",
    "Poisson",
    "NegativeBinomial",
    "Gamma",
    "HuberDistribution",
    "for_loss",
    "LOSSES",
]
