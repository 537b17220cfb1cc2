"""The report's figures: ArviZ's plots where ArviZ has them (forest, densities, trace, rank, PPC),
and the penalty geometry of the noise models compared."""

from __future__ import annotations

import copy
from typing import NamedTuple

import arviz as az
import jax
import numpy as np
from numpyro import handlers
from numpyro.infer import Predictive

from .noise import NoiseModel
from .plots import plot_penalty_geometry

__all__ = ["all_figures", "noise_models_at", "room_below", "ppc_arrays", "draw_ppc", "FigureInputs", "PARTS"]


class FigureInputs(NamedTuple):
    """What the report hands the figures (the report decides; the figures draw)."""

    fits: dict  # label -> Fit
    posterior: tuple  # (label, Fit) whose densities and PPC are drawn, or (None, None)
    sampler: tuple  # (label, Fit) of an MCMC run for the trace and rank plots, or (None, None)
    points: dict  # label -> point Fit, marked on the densities
    truth: dict | None  # scalar label -> true value (NaN where unknown)
    program: object
    data: dict
    observed: str
    point_values: dict | None  # site -> value the program's noise models are drawn at
    alternatives: dict  # label -> (program, its estimate or None)


MAX_PANELS = 12


def _selection(f, budget=MAX_PANELS):
    """``(var_names, coords)`` showing at most ``budget`` scalar entries: whole sites while they
    fit, else the leading entries of the first site (a 196-entry matrix makes a 9000-pixel
    forest plot)."""
    sizes = {s.name: s.shape for s in f.sites}
    names, total = [], 0
    for name, shape in sizes.items():
        n = int(np.prod(shape, dtype=int))
        if total + n <= budget:
            names.append(name)
            total += n
    if names:
        return names, {}
    name, shape = next(iter(sizes.items()))
    site = next(s for s in f._result.objective.sites if s["name"] == name)
    labels = getattr(f._result.objective, "coords", None) or {}
    keep, left = {}, budget
    for d, n in enumerate(shape):
        k = max(1, min(n, int(left)))
        dim = site["dims"][d] if site.get("dims") else f"{name}_dim_{d}"  # param(..., dims=...)
        keep[dim] = list(labels.get(dim, range(n)))[:k]
        left = max(1, left // k)
    return [name], keep


PARTS = ("fits", "sampler", "noise")


def all_figures(inputs: FigureInputs, parts=PARTS) -> dict:
    """The report's figures drawn from its fits (matplotlib), by name: those of the fits
    (``"fits"``: forest, densities), of the MCMC run (``"sampler"``: trace, rank; the report
    has them drawn as soon as that fit is done, while the other methods fit) and the noise
    models' penalty geometry (``"noise"``: it needs the alternatives' estimates). The posterior
    predictive check is drawn from its numbers (:func:`ppc_arrays`, :func:`draw_ppc`)."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"all_figures: unknown parts {sorted(unknown)}; use some of {PARTS}")
    figs = {}
    if "fits" in parts:
        figs.update(_fit_figures(inputs))
    if "sampler" in parts:
        figs.update(_sampler_figures(inputs))
    if "noise" in parts:
        figs.update(_noise_figures(inputs))
    return figs


def _panels(f):
    """``(var_names, coords, entries)``: what the figures show of fit ``f`` and how many scalar
    entries that is."""
    var_names, coords = _selection(f)
    entries = int(sum(np.prod(np.shape(f.estimate[v])) for v in var_names)) if not coords else MAX_PANELS
    return var_names, coords, entries


def _fit_figures(inputs: FigureInputs) -> dict:
    figs = {}
    fits = {k: f for k, f in inputs.fits.items() if f.draws is not None}
    if fits:
        var_names, coords, entries = _panels(next(iter(inputs.fits.values())))
        idatas = [f.to_arviz(log_likelihood=False, posterior_predictive=False) for f in fits.values()]
        axes = az.plot_forest(idatas, model_names=list(fits), var_names=var_names, coords=coords, combined=True, hdi_prob=0.94, figsize=(8, 1.2 + 0.5 * entries * max(1, len(fits) / 3)))
        ax = np.ravel(axes)[0]
        ax.set_title("94% intervals: Wald (MLE, MAP; Gaussian approximation) and HDI (posteriors)")
        figs["forest"] = ax.figure

    label, post = inputs.posterior
    if post is not None:
        figs["densities"] = _densities(inputs.points, label, post, inputs.truth)
    return figs


def _sampler_figures(inputs: FigureInputs) -> dict:
    figs = {}
    sampler_label, sampler = inputs.sampler
    if sampler is not None:
        var_names, coords, entries = _panels(sampler)
        idata = sampler.to_arviz(log_likelihood=False, posterior_predictive=False)
        axes = az.plot_trace(idata, var_names=var_names, coords=coords, compact=True, figsize=(10, 1.8 * len(var_names)))
        np.ravel(axes)[0].figure.suptitle(f"{sampler_label} trace" + (" (leading entries)" if coords else ""))
        np.ravel(axes)[0].figure.tight_layout()
        figs["trace"] = np.ravel(axes)[0].figure
        axes = az.plot_rank(idata, var_names=var_names, coords=coords, figsize=(10, 2.4 * int(np.ceil(entries / 3))))
        figs["rank"] = np.ravel(axes)[0].figure
        room_below(figs["rank"], 0.6)
        figs["rank"].subplots_adjust(wspace=0.35, hspace=0.6)  # (each panel's "Chain" clear of the last)
    return figs


def room_below(fig, inches: float) -> None:
    """Room for the x-axis labels inside the canvas (ArviZ's figures put them past its bottom
    edge), so that a report renders the figure in one drawing (``render_png``): a margin set,
    not measured as ``tight_layout`` measures it (each costs a drawing's worth of text layout);
    too small a margin only makes ``render_png`` save it the slow way."""
    fig.subplots_adjust(bottom=min(0.45, inches / fig.get_figheight()))


def _noise_figures(inputs: FigureInputs) -> dict:
    figs = {}
    models = noise_models_at(inputs.program, inputs.data, inputs.point_values, "program")
    for alt_label, (alt, values) in inputs.alternatives.items():
        models.update(noise_models_at(alt, inputs.data, values, alt_label))
    additive = {k: m for k, m in models.items() if getattr(m, "additive", False)}
    if additive:
        width = 6.0 * max(_scale_of(m) for m in additive.values())
        figs["penalty_geometry"] = plot_penalty_geometry(additive, residual=np.linspace(-width, width, 601))
    return figs


def _scale_of(m) -> float:
    """A noise model's (largest) scale, for the residual range of its penalty geometry."""
    if hasattr(m, "components"):
        return max(_scale_of(c) for c in m.components)
    s = getattr(m, "scale", 1.0)
    return float(np.max(np.asarray(s))) if s is not None else 1.0


def _densities(points, label, post, truth):
    import matplotlib.pyplot as plt

    labels = post.labels()[:MAX_PANELS]
    cols = min(3, len(labels))
    rows = int(np.ceil(len(labels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    draws = post.flat_draws()
    flat = {lab: draws[:, j] for j, lab in enumerate(post.labels())}
    for ax, lab in zip(axes.ravel(), labels):
        az.plot_kde(flat[lab], ax=ax, plot_kwargs={"color": "C0"})
        ax.set_title(lab)
        for i, (mlabel, f) in enumerate(points.items()):
            est = f.flat(f.estimate)[f.labels().index(lab)]
            ax.axvline(est, color=f"C{i + 1}", lw=2.5 - i, ls=("-", ":")[i % 2], label=mlabel)
        if truth is not None:
            t = truth.get(lab, np.nan)
            if np.isfinite(t):
                ax.axvline(t, color="k", ls="--", lw=1.2, label="truth")
        ax.set_yticks([])
    for ax in axes.ravel()[len(labels) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=8)
    fig.suptitle(f"{label} posterior densities, with the MLE and MAP marked")
    fig.tight_layout()
    return fig


def ppc_arrays(program, data, observed, post, label, n=100) -> dict:
    """What :func:`draw_ppc` draws: ``n`` replicates of the observations spread over the draws
    (each a KDE line; 200 of them took twice as long to draw and render as 100, and show
    nothing more) and the observations."""
    draws = {k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) for k, v in post.draws.items() if k in post.estimate}
    total = len(next(iter(draws.values())))
    idx = np.linspace(0, total - 1, min(n, total)).astype(int)
    made = post.to_arviz()  # made for the fit's file anyway
    if "posterior_predictive" in made.groups() and observed in made.posterior_predictive:
        # the fit's own replicates (one per draw, the program's Predictive), at the same draws
        rep = np.asarray(made.posterior_predictive[observed])
        pp = rep.reshape((-1,) + rep.shape[2:])[idx][None]
    else:
        draws = {k: v[idx] for k, v in draws.items()}
        sim = Predictive(program, posterior_samples=draws, return_sites=[observed])(jax.random.PRNGKey(0), **{**data, observed: None})
        pp = np.asarray(sim[observed])[None]
    obs = np.asarray(data[observed])
    if np.issubdtype(pp.dtype, np.integer) and np.all(obs == np.round(obs)):
        obs = obs.astype(pp.dtype)  # whole-number float labels: bin them as the integer draws are
    return dict(pp=pp, obs=obs, observed=observed, label=label)


def draw_ppc(pp, obs, observed, label):
    """The posterior predictive check of :func:`ppc_arrays`' numbers (in the report's helper
    process, or here)."""
    idata = az.from_dict(posterior_predictive={observed: pp}, observed_data={observed: obs})
    ax = az.plot_ppc(idata, num_pp_samples=pp.shape[1], figsize=(8, 4), random_seed=0)
    ax = np.ravel(ax)[0]
    ax.set_title(f"posterior predictive check ({label}, {pp.shape[1]} draws)")
    room_below(ax.figure, 0.6)
    return ax.figure


def noise_models_at(program, data, values, label) -> dict:
    """The noise model of each observation of ``program``, with its parameters at ``values``
    (``{site: value}``: a point estimate) or, when None, at the starting point; array scales are
    summarised by their median (heteroscedastic noise)."""
    from .solvers import Objective

    if values is None:
        obj = Objective(program, data)
        values = {k: np.asarray(v) for k, v in obj.natural(obj.z0).items()}
    run = lambda: handlers.trace(handlers.substitute(program, data=values)).get_trace(**data)  # noqa: E731
    tr = _staged(run)
    if tr is None or any(_traced(s.get("infer", {}).get("noise")) for s in tr.values()):
        tr = run()  # (a noise parameter the program computes with JAX: its value, op by op)
    out = {}
    for name, site in tr.items():
        nm = site.get("infer", {}).get("noise")
        if nm is None:
            continue
        nm = _concrete_copy(nm)
        shown = f"{name} ~ {nm!r}".replace("noise.", "") + (f" ({nm._summary})" if getattr(nm, "_summary", "") else "")
        out[shown if label == "program" else f"{label}: {shown}"] = nm
    return out


def _staged(run):
    """``run()`` with its JAX operations staged into a jaxpr that is never compiled: run eagerly,
    each operation (numpyro building a distribution, ``jnp.asarray`` of the observations) is an
    XLA program of its own, compiled in every process (0.6 s for the report's noise models,
    most of it importing XLA's MLIR modules). What the noise models hold from the estimate
    (NumPy values, numbers) stays concrete; None when the program cannot run so."""
    got = []

    def staged():
        got.append(run())
        return 0.0

    try:
        jax.make_jaxpr(staged)()
    except Exception:  # (e.g. a Python branch on a JAX value: run it eagerly)
        return None
    return got[0]


def _traced(v) -> bool:
    """Whether ``v`` (a noise model: its attributes, its components) holds a JAX tracer."""
    if isinstance(v, jax.core.Tracer):
        return True
    if isinstance(v, (list, tuple)):
        return any(_traced(x) for x in v)
    return isinstance(v, NoiseModel) and any(_traced(x) for x in vars(v).values())


def _concrete_copy(nm):
    nm = copy.copy(nm)
    for attr in ("scale", "df", "delta"):
        v = getattr(nm, attr, None)
        if v is not None and np.ndim(v) > 0:
            setattr(nm, attr, float(np.median(np.asarray(v))))
            nm._summary = f"median {attr}"  # heteroscedastic: say which value is drawn
    if hasattr(nm, "components"):
        nm.components = [_concrete_copy(c) for c in nm.components]
        if np.ndim(nm.weights) > 1:
            nm.weights = np.asarray(nm.weights).reshape(-1, len(nm.components))[0]
    return nm
