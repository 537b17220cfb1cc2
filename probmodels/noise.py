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

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.scipy.special import gammaln, logsumexp
from numpyro.distributions import constraints
from numpyro.distributions.util import promote_shapes

__all__ = [
    "NoiseModel",
    "Additive",
    "Link",
    "Noisy",
    "Gaussian",
    "Laplace",
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


def _concrete(v) -> bool:
    """True for values known now (numbers, numpy and concrete JAX arrays), False for tracers."""
    return not isinstance(v, jax.core.Tracer)


def _check_positive(owner: str, name: str, value):
    """Raise when a concrete noise parameter is not finite and > 0 (tracers pass through)."""
    if value is None:
        raise ValueError(f"noise.{owner}: {name} is required")
    if _concrete(value):
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"noise.{owner}: {name} must be a real number or array, got {arr.dtype}")
        bad = ~(np.isfinite(arr) & (arr > 0))
        if bad.any():
            first = arr.ravel()[int(np.argmax(bad.ravel()))]
            raise ValueError(
                f"noise.{owner}: {name} must be finite and > 0; {int(bad.sum())} value(s) are not "
                f"(first: {float(first)})"
            )
    return value


class NoiseModel:
    """Base class: a noise model ``p(x | x_hat)`` with its loss and optimal predictor.

    Subclasses set ``loss_name`` (the name :func:`for_loss` knows it by), ``predictor`` (the
    point prediction its loss makes optimal) and implement :meth:`distribution` and
    :meth:`loss`.
    """

    loss_name: str = ""
    predictor: str = ""
    additive: bool = False
    # numpy must not broadcast ``ndarray + noise`` elementwise into an object array: with this,
    # it returns NotImplemented and Python calls our __radd__.
    __array_ufunc__ = None

    def distribution(self, x_hat=None) -> dist.Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, x, x_hat=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def nll(self, x, x_hat=None):
        """Negative log-likelihood ``-log p(x | x_hat)`` per observation (unreduced)."""
        return -self.distribution(x_hat).log_prob(x)

    def _repr_args(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"noise.{type(self).__name__}({self._repr_args()})"


class Noisy:
    """An additive noise model bound to a prediction: what ``x_hat + noise.Gaussian(s)`` makes.

    Hand it to :func:`probmodels.observe`; ``distribution()`` is ``p(x | x_hat)``.
    """

    __array_ufunc__ = None  # see NoiseModel

    def __init__(self, noise: "Additive", x_hat):
        self.noise = noise
        self.x_hat = x_hat

    def distribution(self) -> dist.Distribution:
        return self.noise.distribution(self.x_hat)

    def __add__(self, other):
        if isinstance(other, NoiseModel):
            raise TypeError(
                f"{self!r} + {other!r}: a prediction takes one noise model; for a "
                "contamination model write x_hat + noise.Mixture([...], weights=[...])"
            )
        return Noisy(self.noise, self.x_hat + other)

    __radd__ = __add__

    def __repr__(self) -> str:
        return f"x_hat{list(jnp.shape(self.x_hat))} + {self.noise!r}"


class Additive(NoiseModel):
    """An additive (location-family) noise model: ``x = x_hat + eps``, ``eps ~ p(. | scale)``.

    ``x_hat + noise.Gaussian(scale)`` binds it to a prediction (a :class:`Noisy`).
    """

    additive = True

    def __init__(self, scale=1.0):
        self.scale = _check_positive(type(self).__name__, "scale", scale)

    def _location_dist(self, loc) -> dist.Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def distribution(self, x_hat=None) -> dist.Distribution:
        """``p(x | x_hat)``: the noise distribution shifted to ``x_hat`` (0 when omitted)."""
        return self._location_dist(0.0 if x_hat is None else x_hat)

    def _residual(self, x, x_hat):
        return jnp.asarray(x) - (0.0 if x_hat is None else x_hat)

    def __radd__(self, x_hat):
        if isinstance(x_hat, NoiseModel):
            return NotImplemented
        return Noisy(self, x_hat)

    def __add__(self, x_hat):
        if isinstance(x_hat, NoiseModel):
            raise TypeError(
                f"{self!r} + {x_hat!r}: a prediction takes one noise model; for a "
                "contamination model write x_hat + noise.Mixture([...], weights=[...])"
            )
        return Noisy(self, x_hat)

    def _repr_args(self) -> str:
        return f"scale={_short(self.scale)}"


def _short(v) -> str:
    if isinstance(v, (int, float)):
        return f"{v:.4g}"
    if isinstance(v, jax.core.Tracer):
        return "<traced>"
    shape = jnp.shape(v)
    return f"{float(v):.4g}" if shape == () else f"<array {shape}>"


class Gaussian(Additive):
    r"""Gaussian noise: squared error is its negative log-likelihood.

    .. math::

        -\log p(x \mid \hat x) = \frac{(x - \hat x)^2}{2 s^2} + \log(s\sqrt{2\pi})
        = \frac{1}{2 s^2}\,\mathrm{loss} + c, \qquad \mathrm{loss} = (x - \hat x)^2 .

    The loss makes the conditional **mean** optimal.

    Examples
    --------
    >>> from probmodels import noise
    >>> float(noise.Gaussian(2.0).nll(1.0, 0.0))  # 1/8 + log(2 sqrt(2 pi))
    1.73708571376...
    """

    loss_name = "mse"
    predictor = "mean"

    def _location_dist(self, loc):
        return dist.Normal(loc, self.scale)

    def loss(self, x, x_hat=None):
        """Squared error ``(x - x_hat)**2``."""
        return self._residual(x, x_hat) ** 2


class LaplaceNoise(dist.Laplace):
    """numpyro's Laplace, as the density of Laplace *noise*: point solvers recognise it.

    Its log-likelihood is piecewise linear in the prediction, so it has no Hessian: point solvers
    optimise the smoothed :meth:`smoothed` density with ``eps -> 0`` (continuation) and take
    standard errors from the Fisher information (:meth:`fisher_surrogate`)."""

    def smoothed(self, eps):
        """``|r|`` replaced by ``sqrt(r^2 + (eps s)^2) - eps s``: smooth, and within ``eps s`` of it."""
        return _SmoothedLaplace(self.loc, self.scale, eps)

    def fisher_surrogate(self):
        """A density whose Hessian in (location, scale) is Laplace's Fisher information,
        ``1 / s^2`` for each, with no cross term (its value is not the log-likelihood)."""
        return _LaplaceFisher(self.loc, self.scale)


class _SmoothedLaplace(dist.Laplace):
    def __init__(self, loc, scale, eps):
        super().__init__(loc, scale)
        self.eps = eps

    def log_prob(self, value):
        r = value - self.loc
        es = self.eps * self.scale
        return -(jnp.sqrt(r**2 + es**2) - es) / self.scale - jnp.log(2.0 * self.scale)


class _LaplaceFisher(dist.Laplace):
    def log_prob(self, value):
        r = value - self.loc
        s_fixed = jax.lax.stop_gradient(self.scale)
        return -(
            0.5 * (r / s_fixed) ** 2
            + jnp.abs(jax.lax.stop_gradient(r)) / self.scale
            + jnp.log(2.0 * self.scale)
        )


class Laplace(Additive):
    r"""Laplace noise: absolute error is its negative log-likelihood.

    .. math::

        -\log p(x \mid \hat x) = \frac{|x - \hat x|}{s} + \log(2 s),
        \qquad \mathrm{loss} = |x - \hat x| .

    The loss makes the conditional **median** optimal.
    """

    loss_name = "mae"
    predictor = "median"

    def _location_dist(self, loc):
        return LaplaceNoise(loc, self.scale)

    def loss(self, x, x_hat=None):
        """Absolute error ``|x - x_hat|``."""
        return jnp.abs(self._residual(x, x_hat))


class StudentT(Additive):
    r"""Student-t noise with ``df`` degrees of freedom: a heavy-tailed, robust loss.

    .. math::

        -\log p(x \mid \hat x) = \frac{\nu + 1}{2}\log\Big(1 + \frac{r^2}{\nu s^2}\Big) + c(\nu, s),
        \qquad r = x - \hat x,\quad \mathrm{loss} = \log\Big(1 + \frac{r^2}{\nu s^2}\Big).

    The residual is divided by ``scale`` before the loss; the influence ``d loss / d r`` goes back
    to 0 for large residuals, so gross outliers stop pulling. The predictor is the **location**
    (the mode of the noise density).
    """

    loss_name = "student_t"
    predictor = "location (mode; redescending, robust to outliers)"

    def __init__(self, df=4.0, scale=1.0):
        super().__init__(scale)
        self.df = _check_positive("StudentT", "df", df)

    def _location_dist(self, loc):
        return dist.StudentT(self.df, loc, self.scale)

    def loss(self, x, x_hat=None):
        """``log(1 + r**2 / (df * scale**2))``."""
        r = self._residual(x, x_hat)
        return jnp.log1p((r / self.scale) ** 2 / self.df)

    def _repr_args(self) -> str:
        return f"df={_short(self.df)}, scale={_short(self.scale)}"


class Cauchy(Additive):
    r"""Cauchy noise (Student-t with one degree of freedom): the Cauchy / Lorentzian loss.

    .. math::

        -\log p(x \mid \hat x) = \log\Big(1 + \frac{r^2}{s^2}\Big) + \log(\pi s),
        \qquad \mathrm{loss} = \log\Big(1 + \frac{r^2}{s^2}\Big).

    The predictor is the **location** (the median and mode; the mean does not exist).
    """

    loss_name = "cauchy"
    predictor = "location (median = mode; the mean does not exist)"

    def _location_dist(self, loc):
        return dist.Cauchy(loc, self.scale)

    def loss(self, x, x_hat=None):
        """``log(1 + (r / scale)**2)``."""
        return jnp.log1p((self._residual(x, x_hat) / self.scale) ** 2)


def _log1p_exp_neg_abs(t):
    """``log(1 + exp(-|t|))``, exact for every finite ``t``."""
    return jnp.log1p(jnp.exp(-jnp.abs(t)))


class _Logistic(dist.Logistic):
    """numpyro's Logistic with ``log_prob = -|z| - 2 log(1 + e^-|z|) - log s`` (symmetric, so
    exact for residuals of any size; ``exp(-z)`` overflows at ``z < -709``)."""

    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        return -jnp.abs(z) - 2.0 * _log1p_exp_neg_abs(z) - jnp.log(self.scale)


class Logistic(Additive):
    r"""Logistic noise: the log-cosh loss is its negative log-likelihood.

    .. math::

        -\log p(x \mid \hat x) = 2\log\cosh\Big(\frac{r}{2s}\Big) + \log(4 s),
        \qquad \mathrm{loss} = \log\cosh\Big(\frac{r}{2 s}\Big).

    Quadratic near 0 and linear in the tails (a smooth Huber). ``noise.for_loss("log_cosh")`` is
    ``Logistic(scale=0.5)``, whose loss is the textbook ``log cosh(x - x_hat)``. The predictor is
    the **mean** (= median).
    """

    loss_name = "log_cosh"
    predictor = "mean (= median)"

    def _location_dist(self, loc):
        return _Logistic(loc, self.scale)

    def loss(self, x, x_hat=None):
        """``log cosh(r / (2 scale))``, computed without overflow."""
        t = jnp.abs(self._residual(x, x_hat) / (2.0 * self.scale))
        return t + jnp.log1p(jnp.exp(-2.0 * t)) - math.log(2.0)


def _huber(t, delta):
    """Huber's function: ``t**2 / 2`` for ``|t| <= delta``, ``delta |t| - delta**2 / 2`` beyond."""
    a = jnp.abs(t)
    return jnp.where(a <= delta, 0.5 * t**2, delta * a - 0.5 * delta**2)


def _huber_log_normaliser(delta):
    r"""``log Z(delta)``, ``Z = \int exp(-huber_delta(t)) dt = sqrt(2 pi) erf(delta/sqrt 2) + 2 exp(-delta^2/2)/delta``."""
    central = jnp.log(jnp.sqrt(2.0 * jnp.pi)) + jnp.log(jax.scipy.special.erf(delta / jnp.sqrt(2.0)))
    tails = jnp.log(2.0) - 0.5 * delta**2 - jnp.log(delta)
    return jnp.logaddexp(central, tails)


class HuberDistribution(dist.Distribution):
    r"""The normalised Huber density, ``p(x) = exp(-huber_delta((x - loc)/scale)) / (scale Z(delta))``.

    .. math::

        Z(\delta) = \sqrt{2\pi}\,\operatorname{erf}(\delta/\sqrt 2) + \frac{2}{\delta} e^{-\delta^2/2}

    (a Gaussian core on ``|t| <= delta`` glued to exponential tails). numpyro has no Huber
    distribution; sampling picks the core (a truncated normal, by inverse CDF) or a tail
    (``delta + Exp(delta)``) with their exact probabilities.
    """

    arg_constraints = {
        "loc": constraints.real,
        "scale": constraints.positive,
        "delta": constraints.positive,
    }
    support = constraints.real
    reparametrized_params = ["loc", "scale"]

    def __init__(self, loc=0.0, scale=1.0, delta=1.345, *, validate_args=None):
        self.loc, self.scale, self.delta = promote_shapes(loc, scale, delta)
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(loc), jnp.shape(scale), jnp.shape(delta))
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    def log_prob(self, value):
        t = (value - self.loc) / self.scale
        return -_huber(t, self.delta) - jnp.log(self.scale) - _huber_log_normaliser(self.delta)

    def sample(self, key, sample_shape=()):
        shape = sample_shape + self.batch_shape
        k_core, k_u, k_tail, k_sign = jax.random.split(key, 4)
        delta = jnp.broadcast_to(self.delta, shape)
        log_z = _huber_log_normaliser(delta)
        p_core = jnp.exp(
            jnp.log(jnp.sqrt(2 * jnp.pi)) + jnp.log(jax.scipy.special.erf(delta / jnp.sqrt(2.0))) - log_z
        )
        ndtr, ndtri = jax.scipy.special.ndtr, jax.scipy.special.ndtri
        u = jax.random.uniform(k_u, shape, minval=1e-16, maxval=1.0)
        lo = ndtr(-delta)
        core = ndtri(lo + u * (1.0 - 2.0 * lo))
        tail = delta + jax.random.exponential(k_tail, shape) / delta
        sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), 1.0, -1.0)
        t = jnp.where(jax.random.uniform(k_core, shape) < p_core, core, sign * tail)
        return self.loc + self.scale * t

    @property
    def mean(self):
        return jnp.broadcast_to(self.loc, self.batch_shape)

    @property
    def variance(self):
        # E t^2 = [int_core t^2 phi-kernel + 2 int_delta^inf t^2 exp(-delta t + delta^2/2)] / Z
        d = self.delta
        z = jnp.exp(_huber_log_normaliser(d))
        erf = jax.scipy.special.erf(d / jnp.sqrt(2.0))
        core = jnp.sqrt(2 * jnp.pi) * erf - 2.0 * d * jnp.exp(-0.5 * d**2)
        tails = 2.0 * jnp.exp(-0.5 * d**2) * (d**2 + 2.0 * 1.0 + 2.0 / d**2) / d
        return jnp.broadcast_to(self.scale**2 * (core + tails) / z, self.batch_shape)

    def icdf(self, q):
        # Only the median is needed (initialisation); the density is symmetric about loc.
        return jnp.where(q == 0.5, self.loc, jnp.nan)


class Huber(Additive):
    r"""Huber noise: the Huber loss is its negative log-likelihood.

    .. math::

        -\log p(x \mid \hat x) = h_\delta\Big(\frac{x - \hat x}{s}\Big) + \log(s\,Z(\delta))
        = \frac{1}{s^2}\,\mathrm{loss} + c, \qquad
        \mathrm{loss} = s^2 h_\delta(r/s) = h_{\delta s}(r),

    with Huber's function ``h_d(r) = r^2/2`` for ``|r| <= d`` and ``d |r| - d^2/2`` beyond, and the
    normaliser ``Z(delta)`` of :class:`HuberDistribution`. The residual is divided by ``scale``
    before the loss, so the density integrates to 1 for every scale; ``loss`` is the textbook
    Huber loss with threshold ``delta * scale``. The predictor is the **Huber M-estimate**, between
    the mean and the median.
    """

    loss_name = "huber"
    predictor = "Huber M-estimate (between mean and median)"

    def __init__(self, delta=1.345, scale=1.0):
        super().__init__(scale)
        self.delta = _check_positive("Huber", "delta", delta)

    def _location_dist(self, loc):
        return HuberDistribution(loc, self.scale, self.delta)

    def loss(self, x, x_hat=None):
        """The Huber loss with threshold ``delta * scale``: ``scale**2 * h_delta(r / scale)``."""
        r = self._residual(x, x_hat)
        return self.scale**2 * _huber(r / self.scale, self.delta)

    def _repr_args(self) -> str:
        return f"delta={_short(self.delta)}, scale={_short(self.scale)}"


class Mixture(Additive):
    r"""A mixture of additive noise models, e.g. contamination ``0.9 N(0, 1) + 0.1 N(0, 10)``.

    .. math::

        -\log p(x \mid \hat x) = -\log \sum_k w_k\, p_k(x - \hat x).

    There is no simpler textbook loss: ``loss`` is the negative log-likelihood itself. The weights
    may be a parameter of the program (``param("w", dist.Dirichlet(...))``).

    Examples
    --------
    >>> from probmodels import noise
    >>> eps = noise.Mixture([noise.Gaussian(1.0), noise.Gaussian(10.0)], weights=[0.9, 0.1])
    """

    loss_name = "mixture_nll"
    predictor = "mode of the mixture density (the bulk component's location)"

    def __init__(self, components, weights):
        components = list(components)
        if len(components) < 2:
            raise ValueError("noise.Mixture: give at least two components")
        for c in components:
            if not isinstance(c, Additive):
                raise TypeError(
                    f"noise.Mixture: components must be additive noise models, got {c!r}"
                )
        w = weights if not _concrete(weights) else np.asarray(weights, dtype=float)
        if jnp.shape(w)[-1:] != (len(components),):
            raise ValueError(
                f"noise.Mixture: {len(components)} components but weights of shape {jnp.shape(w)}"
            )
        if _concrete(w):
            if np.any(~np.isfinite(w) | (w < 0)) or np.any(np.abs(np.sum(w, axis=-1) - 1.0) > 1e-8):
                raise ValueError(f"noise.Mixture: weights must be >= 0 and sum to 1, got {w}")
        self.components = components
        self.weights = w
        self.scale = None

    def _location_dist(self, loc):
        comps = [c._location_dist(loc) for c in self.components]
        shape = jax.lax.broadcast_shapes(*(c.batch_shape for c in comps), jnp.shape(self.weights)[:-1])
        comps = [c.expand(shape) if c.batch_shape != shape else c for c in comps]
        mixing = dist.Categorical(probs=jnp.broadcast_to(self.weights, shape + (len(comps),)))
        return dist.MixtureGeneral(mixing, comps)

    def loss(self, x, x_hat=None):
        """The mixture's negative log-likelihood (no simpler textbook form exists)."""
        return self.nll(x, x_hat)

    def _repr_args(self) -> str:
        w = self.weights
        shown = list(map(float, w)) if _concrete(w) and np.ndim(w) == 1 else _short(w)
        return f"{self.components!r}, weights={shown}"


class Link(NoiseModel):
    """A link noise model: the prediction is a parameter (logits, log-rate) of the distribution.

    Bind it by passing the prediction to the constructor (``noise.Bernoulli(logits=x_hat)``);
    ``x_hat + noise.Bernoulli()`` is an error that says so.
    """

    additive = False
    _link_arg = "logits"

    def __init__(self, x_hat=None):
        self.x_hat = x_hat

    def _pred(self, x_hat):
        if x_hat is None:
            x_hat = self.x_hat
        if x_hat is None:
            raise ValueError(
                f"noise.{type(self).__name__}: no prediction; write "
                f"noise.{type(self).__name__}({self._link_arg}=x_hat)"
            )
        return x_hat

    def __radd__(self, x_hat):
        raise TypeError(
            f"noise.{type(self).__name__} is a link noise model, not additive noise: write "
            f"observe(name, noise.{type(self).__name__}({self._link_arg}=x_hat), obs=x) "
            "instead of x_hat + noise." + type(self).__name__ + "()"
        )

    __add__ = __radd__

    def _repr_args(self) -> str:
        return "" if self.x_hat is None else f"{self._link_arg}=<{list(jnp.shape(self.x_hat))}>"


def _logits_from(owner, logits, probs):
    if logits is not None and probs is not None:
        raise ValueError(f"noise.{owner}: give logits= or probs=, not both")
    if probs is not None:
        return jnp.log(probs) - jnp.log1p(-jnp.asarray(probs))
    return logits


class _BernoulliLogits(dist.BernoulliLogits):
    """numpyro's BernoulliLogits with a lean log-density, ``x eta - softplus(eta)``, written
    with ``max`` and ``log1p(exp(-|eta|))`` so that it is exact for any finite logit. numpyro's
    version also guards against infinite logits, a dozen extra operations per observation that
    the Hessian of a fit pays for once per parameter."""

    def log_prob(self, value):
        eta = self.logits
        return value * eta - jnp.maximum(eta, 0.0) - jnp.log1p(jnp.exp(-jnp.abs(eta)))


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

    def loss(self, x, x_hat=None):
        """Binary cross-entropy with logits ``softplus(eta) - x eta``."""
        eta = self._pred(x_hat)
        return jnp.maximum(eta, 0.0) + _log1p_exp_neg_abs(eta) - jnp.asarray(x) * eta


class _BinomialLogits(dist.BinomialLogits):
    """numpyro's BinomialLogits with ``log_prob = log C(n, x) + x eta - n softplus(eta)``, the
    softplus written exactly for any finite logit."""

    def log_prob(self, value):
        eta, n = self.logits, self.total_count
        log_comb = gammaln(n + 1.0) - gammaln(value + 1.0) - gammaln(n - value + 1.0)
        return log_comb + value * eta - n * (jnp.maximum(eta, 0.0) + _log1p_exp_neg_abs(eta))


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

    def loss(self, x, x_hat=None):
        """``total_count * softplus(eta) - x * eta``."""
        eta = self._pred(x_hat)
        return self.total_count * (jnp.maximum(eta, 0.0) + _log1p_exp_neg_abs(eta)) - jnp.asarray(x) * eta


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

    def loss(self, x, x_hat=None):
        """``x * exp(-eta) + eta``."""
        eta = self._pred(x_hat)
        return jnp.asarray(x) * jnp.exp(-eta) + eta


_LIKELIHOOD_LOSSES = {
    "mse": lambda **kw: Gaussian(**{"scale": 1.0, **kw}),
    "squared_error": lambda **kw: Gaussian(**{"scale": 1.0, **kw}),
    "l2": lambda **kw: Gaussian(**{"scale": 1.0, **kw}),
    "mae": lambda **kw: Laplace(**{"scale": 1.0, **kw}),
    "absolute_error": lambda **kw: Laplace(**{"scale": 1.0, **kw}),
    "l1": lambda **kw: Laplace(**{"scale": 1.0, **kw}),
    "huber": lambda **kw: Huber(**kw),
    "log_cosh": lambda **kw: Logistic(**{"scale": 0.5, **kw}),
    "student_t": lambda **kw: StudentT(**kw),
    "cauchy": lambda **kw: Cauchy(**kw),
    "bce": lambda **kw: Bernoulli(**kw),
    "binary_cross_entropy": lambda **kw: Bernoulli(**kw),
    "log_loss": lambda **kw: Bernoulli(**kw),
    "binomial_cross_entropy": lambda **kw: Binomial(**kw),
    "cross_entropy": lambda **kw: Categorical(**kw),
    "softmax_cross_entropy": lambda **kw: Categorical(**kw),
    "poisson": lambda **kw: Poisson(**kw),
    "negative_binomial": lambda **kw: NegativeBinomial(**kw),
    "gamma": lambda **kw: Gamma(**kw),
    "gamma_deviance": lambda **kw: Gamma(**kw),
}

_NOT_LIKELIHOODS = {
    "hinge": "exp(-hinge(x, f)) cannot be normalised over x in {-1, +1} for every f: both labels "
    "get loss 0 once |f| >= 1, so it defines no conditional distribution p(x | f) (an SVM "
    "estimates a decision boundary, not probabilities)",
    "squared_hinge": "like the hinge loss, it is 0 for both labels beyond the margin, so "
    "exp(-loss) normalises to no distribution over labels",
    "margin": "a margin loss depends on x only through a margin that can be met by several labels "
    "at zero loss, so exp(-loss) is no normalised distribution over x",
    "contrastive": "a pairwise contrastive (margin) loss scores distances between pairs of "
    "embeddings, not the probability of an observation; there is no p(x | x_hat) whose negative log "
    "it is (InfoNCE is the exception: write it as Categorical noise over the batch)",
    "triplet": "the triplet loss max(0, d(a, p) - d(a, n) + m) compares distances with a margin; "
    "it is not the negative log of any normalised density of an observation",
    "gan": "a GAN discriminator/generator loss is a minimax objective between two networks, not "
    "the negative log-likelihood of the data under one model",
    "discriminator": "a GAN discriminator/generator loss is a minimax objective between two "
    "networks, not the negative log-likelihood of the data under one model",
    "score_matching": "score matching fits the gradient of the log-density and never evaluates "
    "the normalised likelihood; it is a consistent estimator, but not a negative log-likelihood",
    "focal": "the focal loss -(1 - p)^gamma log p reweights the likelihood by the model's own "
    "confidence; exp(-loss) is not a normalised distribution over labels",
    "dice": "the Dice loss is a set-overlap ratio over a whole image, not a sum of per-observation "
    "negative log-probabilities",
}

LOSSES: tuple[str, ...] = tuple(sorted(_LIKELIHOOD_LOSSES))


def for_loss(name: str, **kw) -> NoiseModel:
    """The noise model whose negative log-likelihood is the loss ``name``.

    Parameters
    ----------
    name : str
        ``"mse"``, ``"mae"``, ``"huber"``, ``"log_cosh"``, ``"student_t"``, ``"cauchy"``,
        ``"bce"``, ``"binomial_cross_entropy"``, ``"cross_entropy"``, ``"poisson"``,
        ``"negative_binomial"``, ``"gamma"`` (and aliases; see ``LOSSES``).
    **kw
        Passed to the noise model (``scale=``, ``delta=``, ``df=``, ...). ``"mse"`` is a
        unit-scale Gaussian unless ``scale`` is given.

    Returns
    -------
    NoiseModel

    Raises
    ------
    ValueError
        For a loss that is not a negative log-likelihood (hinge, margin, contrastive, triplet,
        GAN, score matching, focal, Dice), with the reason, and for an unknown name.

    Examples
    --------
    >>> from probmodels import noise
    >>> noise.for_loss("mse")
    noise.Gaussian(scale=1)
    """
    key = name.lower().replace("-", "_").replace(" ", "_")
    if key in _NOT_LIKELIHOODS:
        raise ValueError(
            f"noise.for_loss({name!r}): the {name} loss is not a negative log-likelihood: "
            f"{_NOT_LIKELIHOODS[key]}"
        )
    if key not in _LIKELIHOOD_LOSSES:
        raise ValueError(
            f"noise.for_loss({name!r}): unknown loss; known likelihood losses: {', '.join(LOSSES)}"
        )
    return _LIKELIHOOD_LOSSES[key](**kw)
