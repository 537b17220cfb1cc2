"""The program primitives: ``param``, ``latent`` and ``observe``.

A probmodels program is a plain numpyro model. ``param`` is a numpyro sample site marked as a
model parameter (so that MLE can ignore its prior with one handler); a parameter with no prior is
a sample site with an improper flat density over its support (``dist.ImproperUniform``), so
``trace``, ``condition`` and ``Predictive`` see it. ``observe`` is a numpyro sample site of a
noise model bound to a prediction: simulated when ``obs`` is None, conditioned on ``obs``
otherwise. ``latent`` is a numpyro sample site marked as a random quantity of the model (a group
effect): its distribution, which may depend on parameters, is part of the likelihood, so MLE and
MAP integrate it out (Laplace) and the posterior methods sample it with the parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import Distribution as _Distribution
from numpyro.distributions import constraints

from ._data import first_index
from .noise import Link, NoiseModel, Noisy

__all__ = ["param", "latent", "observe", "as_constraint", "support_text", "PARAM", "LATENT", "OBSERVE"]

PARAM = "param"
LATENT = "latent"
OBSERVE = "observe"
_MARK = "probmodels"

_SUPPORTS = {
    "real": constraints.real,
    "positive": constraints.positive,
    "nonnegative": constraints.nonnegative,
    "unit_interval": constraints.unit_interval,
    "simplex": constraints.simplex,
    "real_vector": constraints.real_vector,
    "ordered_vector": constraints.ordered_vector,
    "positive_ordered_vector": constraints.positive_ordered_vector,
    "corr_cholesky": constraints.corr_cholesky,
    "corr_matrix": constraints.corr_matrix,
    "lower_cholesky": constraints.lower_cholesky,
    "positive_definite": constraints.positive_definite,
    "circular": constraints.circular,
}


def as_constraint(support, where: str = "param"):
    """A numpyro constraint from a constraint object or its name (``"real"``, ``"positive"``, ...)."""
    if support is None:
        return constraints.real
    if isinstance(support, constraints.Constraint):
        if support.is_discrete:
            raise ValueError(f"{where}: support {support} is discrete; parameters are continuous")
        return support
    if isinstance(support, str):
        try:
            return _SUPPORTS[support]
        except KeyError:
            raise ValueError(
                f"{where}: unknown support {support!r}; use one of {', '.join(sorted(_SUPPORTS))} "
                "or a numpyro constraint"
            ) from None
    raise TypeError(f"{where}: support must be a numpyro constraint or its name, got {support!r}")


def _same_constraint(a, b) -> bool:
    if a is b:
        return True
    return type(a) is type(b) and repr(a) == repr(b)


def param(name: str, prior: dist.Distribution | None = None, *, shape=(), support=None, dims=None):
    """A model parameter ``theta``, with an optional prior.

    Parameters
    ----------
    name : str
        The site name; estimates, draws and tables use it (``w[0]``, ``w[1]``, ... for arrays).
    prior : numpyro Distribution, optional
        The prior (a regularizer for MAP; ignored by MLE). Without one the parameter is flat
        (improper) over ``support``.
    shape : tuple of int
        Makes a scalar prior i.i.d. over that shape: ``param("w", dist.Normal(0, 1), shape=(d,))``.
    support : numpyro constraint or its name, optional
        Only without a prior (the prior's support is used otherwise): ``"real"`` (default),
        ``"positive"``, ``"unit_interval"``, ``"simplex"``, ... A support may depend on other
        parameters (``constraints.interval(0, 1 - alpha)``): its transform is evaluated at the
        current values of those parameters by every solver.
    dims : tuple of str, optional
        A name per axis (PyMC's and ArviZ's convention): ``dims=("feature",)`` with
        ``fit(..., coords={"feature": names})`` labels tables (``w[GPA]``) and the
        InferenceData's coordinates.

    Returns
    -------
    The parameter's value (an array of ``shape``, or the prior's shape).

    Examples
    --------
    >>> import numpyro.distributions as dist
    >>> from probmodels import param
    >>> def program():
    ...     slope = param("slope", prior=dist.Normal(0.0, 10.0))
    ...     scale = param("scale", support="positive")
    """
    where = f"param({name!r})"
    shape = _checked_shape("param", name, shape)

    if prior is None:
        sup = as_constraint(support, where)
        if sup.event_dim and not shape:
            raise ValueError(
                f"{where}: support {sup} is over vectors; give shape=(K,) for its length"
            )
        fn = dist.ImproperUniform(sup, (), shape)
    else:
        if not isinstance(prior, dist.Distribution):
            raise TypeError(f"{where}: prior must be a numpyro distribution, got {prior!r}")
        if prior.support.is_discrete:
            raise ValueError(
                f"{where}: prior {type(prior).__name__} is discrete; parameters are continuous "
                "(sample discrete latent variables with numpyro.sample and marginalise them)"
            )
        if support is not None and not _same_constraint(as_constraint(support, where), prior.support):
            raise ValueError(
                f"{where}: support={support!r} conflicts with the prior's support "
                f"{prior.support}; a parameter with a prior takes the prior's support"
            )
        fn = _shaped_prior(prior, shape, where)
    infer = {_MARK: PARAM}
    if dims is not None:
        infer["dims"] = _check_dims(dims, shape or tuple(fn.batch_shape + fn.event_shape), where)
    return numpyro.sample(name, fn, infer=infer)


def _check_dims(dims, shape, where) -> tuple:
    dims = (dims,) if isinstance(dims, str) else tuple(dims)
    if not all(isinstance(d, str) and d for d in dims):
        raise TypeError(f"{where}: dims must be a tuple of names (str), got {dims!r}")
    if len(dims) != len(shape):
        raise ValueError(
            f"{where}: dims {dims} name {len(dims)} axes but the parameter has shape {shape}; "
            "give one name per axis"
        )
    return dims


def latent(name: str, dist, *, shape=()):
    """A random quantity of the model (a group effect ``u_j``), not a parameter.

    Its distribution, which may depend on parameters (``dist.Normal(0, tau)``), is part of the
    likelihood: ``mle`` and ``map`` integrate every latent site out by the Laplace approximation
    at its conditional mode and maximise the marginal likelihood over the parameters (as lme4's
    ``glmer`` and TMB do; exact for Gaussian latents in a Gaussian model), and report the
    latent's conditional mode and conditional sd at the estimate. ``laplace``, ``vi`` and
    ``nuts`` treat it as an ordinary unknown of the joint posterior.

    .. math::

        L(\\theta) = \\int p(x \\mid u, \\theta)\\, p(u \\mid \\theta)\\, du

    Parameters
    ----------
    name : str
        The site name.
    dist : numpyro Distribution
        The latent's distribution (continuous); it is not a prior and MLE does not ignore it.
    shape : tuple of int
        Makes a scalar distribution i.i.d. over that shape: ``latent("u", dist.Normal(0, tau),
        shape=(n_groups,))``.

    Returns
    -------
    The latent's value (an array of ``shape``, or the distribution's shape).

    Examples
    --------
    >>> import numpyro.distributions as dist
    >>> from probmodels import param, latent, observe, noise
    >>> def random_intercept(group, n_groups, u, x=None):
    ...     b = param("b", shape=(2,))
    ...     tau = param("tau", support="positive")
    ...     a = latent("a", dist.Normal(0.0, tau), shape=(n_groups,))
    ...     return observe("x", b[0] + b[1] * u + a[group] + noise.Gaussian(1.0), obs=x)
    """
    where = f"latent({name!r})"
    shape = _checked_shape("latent", name, shape)
    if not isinstance(dist, _Distribution):
        raise TypeError(
            f"{where}: dist must be a numpyro distribution (e.g. dist.Normal(0, tau)), got {dist!r}; "
            "a quantity with no distribution is a param"
        )
    if dist.support.is_discrete:
        raise ValueError(
            f"{where}: {type(dist).__name__} is discrete; latent sites are continuous (marginalise "
            "a discrete latent variable out of the program)"
        )
    return numpyro.sample(name, _shaped_prior(dist, shape, where), infer={_MARK: LATENT})


def _checked_shape(primitive, name, shape):
    """The site's name checked and its ``shape`` as a tuple of positive ints."""
    where = f"{primitive}({name!r})"
    if not isinstance(name, str) or not name:
        raise TypeError(f"{primitive}: name must be a non-empty string, got {name!r}")
    sizes = (shape,) if not isinstance(shape, (tuple, list)) else tuple(shape)
    if any(isinstance(s, jax.core.Tracer) for s in sizes):
        raise TypeError(
            f"{where}: shape {tuple(sizes)} is computed from traced data inside the program (a "
            "size such as grp.max() + 1 of a data array is not known when the program is "
            "compiled); compute it outside and pass the size as data, e.g. "
            "data={..., 'G': int(grp.max()) + 1}, with the program taking G"
        )
    try:
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: shape must be a tuple of ints, got {shape!r}") from None
    if any(s < 1 for s in shape):
        raise ValueError(f"{where}: shape {shape} has a non-positive size")
    return shape


def _shaped_prior(prior, shape, where):
    """The prior as one site of the requested shape (batch dims turned into event dims)."""
    pshape = prior.batch_shape
    if shape:
        try:
            target = jax.lax.broadcast_shapes(pshape, shape)
        except ValueError:
            target = None
        if target != shape:
            raise ValueError(
                f"{where}: the prior has batch shape {pshape}, which does not broadcast to "
                f"shape={shape}"
            )
        if pshape != shape:
            prior = prior.expand(shape)
    if prior.batch_shape:
        prior = prior.to_event(len(prior.batch_shape))
    return prior


def _first_bad(mask) -> str:
    return first_index(mask)


_SUPPORT_WORDS = {
    "Boolean": "0 or 1",
    "IntegerNonnegative": "the non-negative integers 0, 1, 2, ...",
    "IntegerPositive": "the positive integers 1, 2, ...",
    "Positive": "the positive reals (> 0)",
    "Nonnegative": "the non-negative reals (>= 0)",
    "UnitInterval": "the unit interval [0, 1]",
    "OpenInterval": "an open interval",
    "Simplex": "the simplex (non-negative, summing to 1)",
    "Real": "the reals",
}


def support_text(support) -> str:
    """A constraint in words: ``the non-negative integers 0, 1, 2, ... (IntegerNonnegative())``."""
    base = support
    while isinstance(base, constraints.independent):
        base = base.base_constraint
    words = _SUPPORT_WORDS.get(type(base).__name__.lstrip("_"))
    if words is None and type(base).__name__.lstrip("_") == "IntegerInterval":
        words = f"the integers {base.lower_bound} to {base.upper_bound}"
    return f"{words} ({support})" if words else str(support)


def observe(name: str, noisy, obs=None):
    """An observation ``x``: a noise model bound to a prediction, conditioned on ``obs``.

    Parameters
    ----------
    name : str
        The site name (the key of ``x`` in log-likelihood tables and ArviZ groups).
    noisy : Noisy or bound link noise model
        ``x_hat + noise.Gaussian(scale)`` (additive noise) or ``noise.Bernoulli(logits=x_hat)``
        (a link).
    obs : array, optional
        The observed ``x``. With ``None`` the noise is sampled and the simulated ``x`` returned.

    Returns
    -------
    ``obs``, or the simulated ``x``.

    Examples
    --------
    >>> from probmodels import observe, noise
    >>> def program(u, x=None):
    ...     return observe("x", 1.0 + 2.0 * u + noise.Gaussian(0.5), obs=x)
    """
    where = f"observe({name!r})"
    if isinstance(noisy, Noisy):
        d = noisy.distribution()
    elif isinstance(noisy, Link):
        if noisy.x_hat is None:
            raise ValueError(
                f"{where}: noise.{type(noisy).__name__}() has no prediction; write "
                f"noise.{type(noisy).__name__}({noisy._link_arg}=x_hat)"
            )
        d = noisy.distribution()
    elif isinstance(noisy, NoiseModel):
        raise TypeError(
            f"{where}: {noisy!r} is not bound to a prediction; write x_hat + {noisy!r}"
        )
    else:
        raise TypeError(
            f"{where}: expected a noise model bound to a prediction (x_hat + noise.Gaussian(s) or "
            f"noise.Bernoulli(logits=x_hat)), got {type(noisy).__name__}"
        )
    if obs is not None:
        d = _fit_to_obs(d, obs, where)
    noise_model = noisy.noise if isinstance(noisy, Noisy) else noisy
    # x_hat on the scale the noise model receives: what Fit.predict's location and its Wald band
    # are computed from
    infer = {_MARK: OBSERVE, "noise": noise_model, "x_hat": noisy.x_hat}
    return numpyro.sample(name, d, obs=obs, infer=infer)


def _fit_to_obs(d, obs, where):
    """Check ``obs`` against the noise distribution and expand a constant prediction over it."""
    obs_shape = jnp.shape(obs)
    d_shape = d.batch_shape + d.event_shape
    if obs_shape != d_shape:
        try:
            target = jax.lax.broadcast_shapes(d_shape, obs_shape)
        except ValueError:
            target = None
        if target != obs_shape or len(obs_shape) < len(d.event_shape):
            raise ValueError(
                f"{where}: obs has shape {obs_shape} but the prediction gives shape {d_shape}; "
                "they must match (or the prediction broadcast to obs); check for a stray axis "
                "such as (N, 1) against (N,)"
            )
        d = d.expand(obs_shape[: len(obs_shape) - len(d.event_shape)])
    if not isinstance(obs, jax.core.Tracer):
        arr = np.asarray(obs)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{where}: obs must be numeric, got dtype {arr.dtype}")
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(arr)
            if bad.any():
                raise ValueError(
                    f"{where}: {int(bad.sum())} non-finite values (NaN or inf) in obs (first at "
                    f"index {_first_bad(bad)}); drop or impute them"
                )
        ok = d.support(jnp.asarray(obs))
        if isinstance(ok, jax.core.Tracer):  # under a trace: checked once, at the prototype trace
            return d
        ok = np.asarray(ok)
        if ok.shape != arr.shape[: ok.ndim]:
            ok = np.broadcast_to(ok, arr.shape[: ok.ndim])
        if not ok.all():
            n_bad = int((~ok).sum())
            idx = _first_bad(~ok)
            raise ValueError(
                f"{where}: {n_bad} values of obs lie outside the support of the noise model "
                f"({support_text(d.support)}), first at index {idx}"
            )
    return d
