"""Additive noise models: ``x = x_hat + eps`` (location families)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.util import promote_shapes

from ._base import Additive, _check_positive, _concrete, _short
from ._sampling import gamma

__all__ = ["Gaussian", "Laplace", "LaplaceNoise", "StudentT", "Cauchy", "Logistic", "Huber", "HuberDistribution", "Mixture"]


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


_WHOLE_DF_MAX = 30  # a chi-square of up to this many degrees of freedom: a sum of squared normals


class _StudentT(dist.StudentT):
    """numpyro's StudentT drawn as ``loc + scale z sqrt(df / chi2)``. A whole number of degrees
    of freedom known when the program is written (``whole_df``, up to 30) draws the chi-square as
    the sum of that many squared standard normals, its definition: one random-number call, where
    the vectorized gamma sampler (any ``df``; ``jax.random.gamma`` is a scalar loop per element
    on a CPU) makes five and a rejection loop, which cost 1 s of XLA compilation per program and
    0.2 s of tracing under ``vmap``."""

    pytree_aux_fields = ("whole_df",)

    def __init__(self, df, loc=0.0, scale=1.0, *, validate_args=None, whole_df=None):
        self.whole_df = whole_df
        super().__init__(df, loc, scale, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + tuple(self.batch_shape)
        k_normal, k_chi2 = jax.random.split(key)
        z = jax.random.normal(k_normal, shape)
        if self.whole_df is not None:
            chi2 = jnp.sum(jax.random.normal(k_chi2, (self.whole_df,) + shape) ** 2, axis=0)
        else:
            chi2 = 2.0 * gamma(k_chi2, 0.5 * jnp.broadcast_to(self.df, shape), shape)
        return self.loc + self.scale * z * jnp.sqrt(self.df / chi2)


def _whole(df):
    """``df`` as an int when it is a concrete whole number from 1 to ``_WHOLE_DF_MAX``, else None."""
    if not _concrete(df) or np.ndim(df) != 0:
        return None
    v = float(np.asarray(df))
    return int(v) if v.is_integer() and 1 <= v <= _WHOLE_DF_MAX else None


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
        return _StudentT(self.df, loc, self.scale, whole_df=_whole(self.df))

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
    """``log(1 + exp(-|t|))``, exact for every finite ``t``. Its derivative at ``t = 0`` is JAX's
    derivative of ``|t|`` there (1): use it only in functions of ``|t|`` (where any subgradient
    gives the same total) or through :func:`softplus`."""
    return jnp.log1p(jnp.exp(-jnp.abs(t)))


@jax.custom_jvp
def softplus(t):
    """``log(1 + e^t)``, exact for every finite ``t`` (``max(t, 0) + log(1 + e^-|t|)``), with the
    derivative ``sigmoid(t)`` everywhere. Differentiating the formula itself gives 0 instead of
    1/2 at ``t = 0`` (JAX splits the tie of ``max`` but takes ``sign(0) = 1`` for ``|t|``), and
    ``t = 0`` is every logit at the usual start ``z = 0``: a wrong gradient there sends the first
    Newton step astray. The second derivative is ``sigmoid'(t)``, exact."""
    return jnp.maximum(t, 0.0) + _log1p_exp_neg_abs(t)


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (t,), (dt,) = primals, tangents
    return softplus(t), jax.nn.sigmoid(t) * dt


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


