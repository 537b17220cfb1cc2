"""The base classes of noise models: additive (``x_hat + eps``) and link, and a bound prediction."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

__all__ = ["NoiseModel", "Noisy", "Additive", "Link"]


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

    def inverse_link(self, x_hat):
        """The predictor as a function of the prediction ``x_hat``: the identity for additive
        noise (``x_hat`` is the mean function); the inverse link for link noise models
        (``sigmoid(logits)``, ``exp(log_rate)``, ...). :meth:`probmodels.Fit.predict` reports it
        as the ``location``."""
        return x_hat

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


