"""Figures: ArviZ draws every plot it has (forest, trace, rank, posterior, PPC) from
``Fit.to_arviz()``; this module draws what it lacks."""

from __future__ import annotations

import jax
import numpy as np

from ._config import jit
from .noise import Additive, NoiseModel

__all__ = ["plot_penalty_geometry"]


def plot_penalty_geometry(noise_models, residual=None, ax=None):
    """Each noise model's negative log-likelihood against the residual, and its influence.

    Left: ``nll(r) - nll(0)`` for ``r = x - x_hat`` (the penalty a residual costs: quadratic for
    Gaussian, linear for Laplace, Huber's bend, Student-t's flattening). Right: the influence
    function ``d nll / d r``, how hard one observation pulls on the fit (bounded for Huber,
    redescending for Student-t and Cauchy).

    Parameters
    ----------
    noise_models : dict or list
        ``{label: noise model}`` or a list of additive noise models.
    residual : array, optional
        The residual grid (default ``linspace(-6, 6, 601)``).
    ax : pair of matplotlib Axes, optional

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> from probmodels import noise
    >>> from probmodels.plots import plot_penalty_geometry
    >>> fig = plot_penalty_geometry([noise.Gaussian(1.0), noise.Laplace(1.0), noise.Huber(1.345)])
    """
    import matplotlib.pyplot as plt

    if not isinstance(noise_models, dict):
        noise_models = {f"{type(m).__name__} ({m.loss_name})": m for m in noise_models}
    if not noise_models:
        raise ValueError("plot_penalty_geometry: give at least one noise model")
    for label, m in noise_models.items():
        if not isinstance(m, NoiseModel):
            raise TypeError(f"plot_penalty_geometry: {label!r} is a {type(m).__name__}, not a noise model")
        if not isinstance(m, Additive):
            raise ValueError(
                f"plot_penalty_geometry: {label!r} is a link noise model ({type(m).__name__}); "
                "penalty geometry is drawn over the residual x - x_hat of additive noise models"
            )
        if not np.all(np.isfinite(np.asarray(getattr(m, "scale", 1.0) if getattr(m, "scale", None) is not None else 1.0))):
            raise ValueError(f"plot_penalty_geometry: {label!r} needs a concrete scale")
    r = np.linspace(-6.0, 6.0, 601) if residual is None else np.asarray(residual, dtype=float)
    if ax is None:
        fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    else:
        fig = ax[0].figure
    curves = _curves(list(noise_models.values()))(r)  # (NumPy in: jnp.asarray would compile a program of its own)
    for label, (value, influence) in zip(noise_models, curves):
        ax[0].plot(r, np.asarray(value), label=label, lw=2)
        ax[1].plot(r, np.asarray(influence), label=label, lw=2)
    ax[0].set(xlabel="residual r = x - x_hat", ylabel="nll(r) - nll(0)", title="penalty: negative log-likelihood")
    ax[1].set(xlabel="residual r = x - x_hat", ylabel="d nll / d r", title="influence of one observation")
    top = max(line.get_ydata()[np.abs(r) <= 3].max() for line in ax[0].lines)
    ax[0].set_ylim(-0.05 * top, 1.1 * top)
    for a in ax:
        a.axhline(0.0, color="0.6", lw=0.8)
        a.axvline(0.0, color="0.6", lw=0.8)
        a.grid(alpha=0.3)
    ax[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def _curves(models):
    """One compiled function of the residual grid: per noise model, ``nll(r) - nll(0)`` and
    ``d nll / d r`` (evaluated op by op, the same curves cost a compile of every small kernel)."""

    def curves(r):
        out = []
        for m in models:
            nll = lambda t, m=m: m.nll(t, 0.0)  # noqa: E731
            out.append((jax.vmap(nll)(r) - nll(0.0), jax.vmap(jax.grad(nll))(r)))
        return out

    return jit(curves)
