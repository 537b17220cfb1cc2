"""The report's workflow sections: criteria, prior sensitivity (with a finding per flagged
parameter), the prior predictive check and a predictive figure for every method.

Each section reads only the public workflow (``Fit.predict``, ``Fit.to_arviz``, ``criteria``,
``sensitivity``, ``prior_predictive``); a section that does not apply to the model (a flat
parameter has no prior predictive; no posterior fit, no sensitivity) becomes a note that says why.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np

from .criteria import criteria
from .predict import constant_data
from .sensitivity import sensitivity

__all__ = ["workflow_tables", "workflow_figures", "posterior_fit", "band_arrays", "draw_bands"]

GRID = 121


def posterior_fit(fits: dict):
    """``(label, fit)`` of the posterior the sections use: a sampler's, else any posterior with draws."""
    ordered = sorted(fits.items(), key=lambda kv: kv[1].kind != "sampler")
    for label, f in ordered:
        if not f.is_point and f.draws is not None:
            return label, f
    return None, None


def workflow_tables(rep) -> None:
    """Adds ``criteria`` and ``sensitivity`` to ``rep.tables``, sensitivity findings to
    ``rep.findings``, and notes for what could not be computed."""
    usable = {k: f for k, f in rep.fits.items() if f.is_point or f.draws is not None}
    if usable:
        try:
            rep.tables["criteria"] = criteria(usable)
        except ValueError as err:
            rep.notes.append(f"no criteria table: {err}")
    label, post = posterior_fit(rep.fits)
    if post is None:
        rep.notes.append("no prior sensitivity: it reweights a posterior, and no posterior method was run")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = sensitivity(post)
    rep.tables["sensitivity"] = table
    flagged = table[table["diagnosis"] != "-"]
    for param, row in flagged.iterrows():
        if row["diagnosis"] == "prior-data conflict":
            text = (
                f"{param}: prior-data conflict. Strengthening or weakening the prior moves its "
                f"posterior (prior sensitivity {row['prior']:.2f}) and so does the data "
                f"({row['likelihood']:.2f}): the two disagree about where it lies. Check the prior "
                "against what the data say (a prior centred elsewhere, or too narrow)."
            )
        else:
            text = (
                f"{param}: strong prior, weak likelihood. The prior decides its posterior "
                f"(prior sensitivity {row['prior']:.2f}) while the data barely move it "
                f"({row['likelihood']:.2f}): report it as prior-driven, or collect data that inform it."
            )
        rep.findings.append(("prior sensitivity", label, text))
    if flagged.empty:
        rep.findings.append(("prior sensitivity", None, "none found"))
    if table.attrs.get("unreliable"):
        rep.findings.append(("prior sensitivity", label, table.attrs["unreliable"]))


def workflow_figures(rep, program, data, observed, prior_figure=None, draw=None) -> dict:
    """The prior predictive check (``prior_figure``, drawn by the report's helper or
    :func:`probmodels._report_helper.prior_figure`) and the predictive figure per method.
    ``draw(name, arrays)``, when given, draws the bands from their numbers (the report hands
    that to its helper process) and returns what it returns in place of the figure."""
    figs = {}
    if prior_figure is not None:
        figs["prior_predictive"] = prior_figure
    fits = {k: f for k, f in rep.fits.items() if f.is_point or f.draws is not None}
    if fits:
        u_key = _one_input(next(iter(fits.values())), observed)
        try:
            if u_key:
                try:
                    arrays = band_arrays(fits, u_key, data, observed)
                except (ValueError, TypeError):  # (an input that is no axis: the eight schools'
                    u_key = None  # standard errors; their PPCs instead)
            if not u_key:
                figs["predictive"] = _ppcs(fits, observed)
            else:
                figs["predictive"] = draw_bands(**arrays) if draw is None else draw("bands", arrays)
        except (ValueError, TypeError) as err:  # a program predict cannot serve: said, not fatal
            rep.notes.append(f"no predictive figure: {err}")
    return figs


def _one_input(fit, observed):
    """The name of the only array input, when it is one-dimensional along the observations."""
    inputs = constant_data(fit)
    obs = fit.observed.get(observed)
    if len(inputs) != 1 or obs is None:
        return None
    k, v = next(iter(inputs.items()))
    return k if np.ndim(v) == 1 and np.ndim(obs) == 1 and len(v) == len(obs) and np.issubdtype(v.dtype, np.floating) else None


def band_arrays(fits, u_key, data, observed) -> dict:
    """What :func:`draw_bands` draws: each method's bands on a grid over the input (numbers)."""
    u = np.asarray(data[u_key], dtype=float)
    grid = np.linspace(u.min(), u.max(), GRID)
    new = {k: v for k, v in data.items() if k != observed and not (isinstance(v, np.ndarray) and k != u_key)}
    new[u_key] = grid
    panels = []
    for label, f in fits.items():
        # the same number of draws for every method: one compiled predictive for all of them; a
        # point fit without its Gaussian approximation (see its warnings) gives the plug-in only
        n = 1000 if f.draws is None else min(1000, _n_draws(f))
        p = f.predict(new, draws=n, parameter_uncertainty=f.is_point and f.draws is not None)
        s = p.summary(prob=0.9)
        bands = {k: np.asarray(s[k]) for k in ("mean", "mean_low", "mean_high", "obs_low", "obs_high")}
        panels.append((label, bool(f.is_point), bands))
    return dict(u=u, x=np.asarray(data[observed]), grid=grid, u_key=u_key, panels=panels)


def draw_bands(u, x, grid, u_key, panels):
    """The predictive figure of :func:`band_arrays`' numbers (in the report's helper process, or here)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2), sharey=True, squeeze=False)
    for ax, (label, is_point, s) in zip(axes[0], panels):
        ax.plot(u, x, "o", color="0.5", ms=2.5, zorder=1)
        ax.fill_between(grid, s["obs_low"], s["obs_high"], color="C0", alpha=0.18, lw=0, label="90% new x")
        ax.fill_between(grid, s["mean_low"], s["mean_high"], color="C0", alpha=0.45, lw=0, label="90% predictor")
        ax.plot(grid, s["mean"], color="C0", lw=1.4, label="mean")
        ax.set_title(f"{label} ({'Wald + plug-in' if is_point else 'posterior'})", fontsize=9)
        ax.set_xlabel(u_key)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Predictions over the input's range: band of the predictor and of a new observation")
    fig.tight_layout()
    return fig


def _n_draws(f):
    return int(np.prod(np.shape(next(iter(f.draws.values())))[:2]))


def _ppcs(fits, observed):
    """A posterior (plug-in for point fits) predictive check per method."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(fits), figsize=(3.6 * len(fits), 3.0), squeeze=False)
    for ax, (label, f) in zip(axes[0], fits.items()):
        idata = f.to_arviz()
        if "posterior_predictive" not in idata.groups():
            ax.set_title(f"{label}: too many replicates")
            continue
        pp = idata.posterior_predictive
        n = int(np.prod([pp.sizes["chain"], pp.sizes["draw"]]))
        az.plot_ppc(idata, num_pp_samples=min(50, n), ax=ax, var_names=[observed] if observed in pp else None, legend=False, random_seed=0)
        ax.set_title(f"{label} ({'plug-in' if f.is_point else 'posterior'})", fontsize=9)
    fig.suptitle("Predictive checks: replicated against observed data, per method")
    fig.tight_layout()
    return fig
