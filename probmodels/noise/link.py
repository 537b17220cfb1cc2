"""Link noise models: the prediction is a parameter of the distribution (logits, log-rate, log-mean)."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.scipy.special import gammaln, logsumexp
from numpyro.distributions.util import binomial

from ._base import Link, _check_positive, _concrete
from .additive import softplus

__all__ = ["Bernoulli", "Binomial", "Categorical", "Poisson", "NegativeBinomial", "Gamma"]


def _logits_from(owner, logits, probs):
    if logits is not None and probs is not None:
        raise ValueError(f"noise.{owner}: give logits= or probs=, not both")
    if probs is not None:
        return jnp.log(probs) - jnp.log1p(-jnp.asarray(probs))
    return logits


class _BernoulliLogits(dist.BernoulliLogits):
    """numpyro's BernoulliLogits with a lean log-density, ``x eta - softplus(eta)``, written
    with ``max`` and ``log1p(exp(-|eta|))`` so that it is exact for any finite logit (and a
    derivative that is right at ``eta = 0``, see ``softplus``). numpyro's
    version also guards against infinite logits, a dozen extra operations per observation that
    the Hessian of a fit pays for once per parameter."""

    def log_prob(self, value):
        eta = self.logits
        return value * eta - softplus(eta)


class Bernoulli(Link):
    r"""Bernoulli noise with logits: binary cross-entropy is its negative log-likelihood.

    .. math::

        -\log p(x \mid \eta) = \log(1 + e^{\eta}) - x\eta = \mathrm{BCE}(x, \sigma(\eta)),

    exactly (``a = 1``, ``c = 0``), computed stably for any logit. The predictor is the
    **probability** ``sigmoid(logits)``: the whole distribution.
    """

    loss_name = "bce"
    predictor = "probability P(x = 1) (the whole distribution)"

    def __init__(self, logits=None, *, probs=None):
        super().__init__(_logits_from("Bernoulli", logits, probs))

    def distribution(self, x_hat=None):
        return _BernoulliLogits(self._pred(x_hat))

    def inverse_link(self, x_hat):
        """The success probability ``sigmoid(logits)``."""
        return jax.nn.sigmoid(x_hat)

    def loss(self, x, x_hat=None):
        """Binary cross-entropy with logits ``softplus(eta) - x eta``."""
        eta = self._pred(x_hat)
        return softplus(eta) - jnp.asarray(x) * eta


class _BinomialLogits(dist.BinomialLogits):
    """numpyro's BinomialLogits with ``log_prob = log C(n, x) + x eta - n softplus(eta)``, the
    softplus written exactly for any finite logit."""

    def log_prob(self, value):
        eta, n = self.logits, self.total_count
        log_comb = gammaln(n + 1.0) - gammaln(value + 1.0) - gammaln(n - value + 1.0)
        return log_comb + value * eta - n * softplus(eta)

    def sample(self, key, sample_shape=()):
        # numpyro's sampler indexes a table by the count: counts read as floats (a column of a
        # data frame) are cast to whole numbers first
        n = jnp.round(jnp.asarray(self.total_count)).astype(jnp.int64)
        return binomial(key, self.probs, n=n, shape=sample_shape + self.batch_shape)


class Binomial(Link):
    r"""Binomial noise with ``total_count`` trials and logits.

    .. math::

        -\log p(x \mid \eta) = n\log(1 + e^\eta) - x\eta - \log\binom{n}{x},
        \qquad \mathrm{loss} = n\,\mathrm{softplus}(\eta) - x\eta

    (the summed binary cross-entropy of ``n`` trials). Predictor: the success **probability**.
    """

    loss_name = "binomial_cross_entropy"
    predictor = "success probability (the whole distribution)"

    def __init__(self, total_count=1, logits=None, *, probs=None):
        super().__init__(_logits_from("Binomial", logits, probs))
        self.total_count = total_count

    def distribution(self, x_hat=None):
        return _BinomialLogits(self._pred(x_hat), total_count=self.total_count)

    def inverse_link(self, x_hat):
        """The success probability ``sigmoid(logits)``."""
        return jax.nn.sigmoid(x_hat)

    def loss(self, x, x_hat=None):
        """``total_count * softplus(eta) - x * eta``."""
        eta = self._pred(x_hat)
        return self.total_count * softplus(eta) - jnp.asarray(x) * eta


def _labels(x, owner="Categorical"):
    """Class labels as integers; whole-number floats (labels read from a data frame) accepted,
    fractional ones refused where they are known."""
    if _concrete(x):
        arr = np.asarray(x)
        if arr.dtype.kind == "f" and np.any(arr != np.floor(arr)):
            raise ValueError(f"noise.{owner}: class labels must be whole numbers, got {arr[arr != np.floor(arr)][:3]}")
    return jnp.asarray(x).astype(jnp.int32)


class _CategoricalLogits(dist.CategoricalLogits):
    """numpyro's CategoricalLogits, taking labels stored as whole-number floats too."""

    def log_prob(self, value):
        return super().log_prob(jnp.asarray(value).astype(jnp.int32))


class Categorical(Link):
    r"""Categorical noise with logits over the last axis: softmax cross-entropy.

    .. math::

        -\log p(x \mid \eta) = \log\sum_k e^{\eta_k} - \eta_x
        = \mathrm{CE}(x, \mathrm{softmax}(\eta)),

    exactly. The predictor is the vector of **class probabilities** (the whole distribution).
    """

    loss_name = "cross_entropy"
    predictor = "class probabilities softmax(logits) (the whole distribution)"

    def __init__(self, logits=None, *, probs=None):
        if logits is not None and probs is not None:
            raise ValueError("noise.Categorical: give logits= or probs=, not both")
        if probs is not None:
            logits = jnp.log(probs)
        super().__init__(logits)

    def distribution(self, x_hat=None):
        return _CategoricalLogits(self._pred(x_hat))

    def inverse_link(self, x_hat):
        """The class probabilities ``softmax(logits)`` over the last axis."""
        return jax.nn.softmax(x_hat, axis=-1)

    def nll(self, x, x_hat=None):
        """Negative log-likelihood ``-log softmax(eta)[x]`` per observation."""
        return -self.distribution(x_hat).log_prob(_labels(x))

    def loss(self, x, x_hat=None):
        """Softmax cross-entropy ``logsumexp(eta) - eta[x]``."""
        eta = self._pred(x_hat)
        x = _labels(x)
        picked = jnp.take_along_axis(eta, x[..., None], axis=-1)[..., 0]
        return logsumexp(eta, axis=-1) - picked


class _PoissonLogRate(dist.Poisson):
    """numpyro's Poisson, with ``log_prob`` written in the log-rate so that it stays exact when
    ``exp(log_rate)`` underflows (``x log(rate)`` would be ``-inf``)."""

    def __init__(self, log_rate, *, validate_args=None):
        self.log_rate = log_rate
        super().__init__(jnp.exp(log_rate), validate_args=validate_args)

    def log_prob(self, value):
        return value * self.log_rate - jnp.exp(self.log_rate) - gammaln(value + 1.0)


class Poisson(Link):
    r"""Poisson noise with a log-rate: the Poisson loss is its negative log-likelihood.

    .. math::

        -\log p(x \mid \eta) = e^\eta - x\eta + \log x!,
        \qquad \mathrm{loss} = e^\eta - x\eta

    (PyTorch's ``PoissonNLLLoss(log_input=True)``). The predictor is the **mean count**
    ``exp(log_rate)``.
    """

    loss_name = "poisson"
    predictor = "mean count exp(log_rate)"
    _link_arg = "log_rate"

    def __init__(self, log_rate=None, *, rate=None):
        if log_rate is not None and rate is not None:
            raise ValueError("noise.Poisson: give log_rate= or rate=, not both")
        if rate is not None:
            log_rate = jnp.log(rate)
        super().__init__(log_rate)

    def distribution(self, x_hat=None):
        return _PoissonLogRate(self._pred(x_hat))

    def inverse_link(self, x_hat):
        """The mean count ``exp(log_rate)``."""
        return jnp.exp(x_hat)

    def loss(self, x, x_hat=None):
        """``exp(eta) - x * eta``."""
        eta = self._pred(x_hat)
        return jnp.exp(eta) - jnp.asarray(x) * eta


class _NegativeBinomialLogMean(dist.NegativeBinomial2):
    """numpyro's NegativeBinomial2 with the log-density written in the log-mean ``eta``:
    ``lgamma(x + r) - lgamma(r) - lgamma(x + 1) + r log r + x eta - (x + r) log(r + e^eta)``."""

    def __init__(self, log_mean, concentration, *, validate_args=None):
        self.log_mean = log_mean
        super().__init__(jnp.exp(log_mean), concentration, validate_args=validate_args)

    def log_prob(self, value):
        r, eta = self.concentration, self.log_mean
        return (
            gammaln(value + r) - gammaln(r) - gammaln(value + 1.0)
            + r * jnp.log(r) + value * eta - (value + r) * jnp.logaddexp(jnp.log(r), eta)
        )


class NegativeBinomial(Link):
    r"""Negative-binomial (NB2) noise with a log-mean and a concentration ``r``: overdispersed counts.

    ``Var x = mu + mu^2 / r``; as ``r -> inf`` it becomes Poisson.

    .. math::

        -\log p(x \mid \eta) = (x + r)\log(r + e^\eta) - x\eta + c(x, r),
        \qquad \mathrm{loss} = (x + r)\log(r + e^\eta) - x\eta .

    The predictor is the **mean count** ``exp(log_rate)``.
    """

    loss_name = "negative_binomial"
    predictor = "mean count exp(log_rate)"
    _link_arg = "log_rate"

    def __init__(self, log_rate=None, *, concentration=1.0, rate=None):
        if log_rate is not None and rate is not None:
            raise ValueError("noise.NegativeBinomial: give log_rate= or rate=, not both")
        if rate is not None:
            log_rate = jnp.log(rate)
        super().__init__(log_rate)
        self.concentration = _check_positive("NegativeBinomial", "concentration", concentration)

    def distribution(self, x_hat=None):
        return _NegativeBinomialLogMean(self._pred(x_hat), self.concentration)

    def inverse_link(self, x_hat):
        """The mean count ``exp(log_rate)``."""
        return jnp.exp(x_hat)

    def loss(self, x, x_hat=None):
        """``(x + r) log(r + exp(eta)) - x eta``."""
        eta = self._pred(x_hat)
        r = self.concentration
        x = jnp.asarray(x)
        return (x + r) * jnp.logaddexp(jnp.log(r), eta) - x * eta


class _GammaLogMean(dist.Gamma):
    """numpyro's Gamma(shape, rate = shape e^-eta) with the log-density written in ``eta``:
    ``a log a - a eta + (a - 1) log x - a x e^-eta - lgamma(a)``."""

    def __init__(self, log_mean, shape, *, validate_args=None):
        self.log_mean = log_mean
        super().__init__(shape, shape * jnp.exp(-log_mean), validate_args=validate_args)

    def log_prob(self, value):
        a, eta = self.concentration, self.log_mean
        return a * jnp.log(a) - a * eta + (a - 1.0) * jnp.log(value) - a * value * jnp.exp(-eta) - gammaln(a)


class Gamma(Link):
    r"""Gamma noise with a log link on the mean and a shape ``alpha``: positive, skewed data.

    ``x ~ Gamma(alpha, rate = alpha / mu)``, ``mu = exp(eta)``:

    .. math::

        -\log p(x \mid \eta) = \alpha\,(x e^{-\eta} + \eta) + c(x, \alpha),
        \qquad \mathrm{loss} = x e^{-\eta} + \eta,

    half the Gamma deviance up to a constant. The predictor is the **mean** ``exp(log_mean)``.
    """

    loss_name = "gamma"
    predictor = "mean exp(log_mean)"
    _link_arg = "log_mean"

    def __init__(self, log_mean=None, *, shape=1.0, mean=None):
        if log_mean is not None and mean is not None:
            raise ValueError("noise.Gamma: give log_mean= or mean=, not both")
        if mean is not None:
            log_mean = jnp.log(mean)
        super().__init__(log_mean)
        self.shape = _check_positive("Gamma", "shape", shape)

    def distribution(self, x_hat=None):
        return _GammaLogMean(self._pred(x_hat), self.shape)

    def inverse_link(self, x_hat):
        """The mean ``exp(log_mean)``."""
        return jnp.exp(x_hat)

    def loss(self, x, x_hat=None):
        """``x * exp(-eta) + eta``."""
        eta = self._pred(x_hat)
        return jnp.asarray(x) * jnp.exp(-eta) + eta


