"""Simulation-based calibration: can the intervals of a method be trusted on this model?

Draw parameters from the prior, simulate data with the program itself, fit, and look where the
true parameter falls (Talts, Betancourt, Simpson, Vehtari and Gelman, 2018):

* posterior methods (laplace, vi, nuts): the rank of the truth among ``L`` thinned posterior
  draws is uniform on ``{0, ..., L}`` when the inference is right;
* point methods (mle, map): the Wald interval's "rank", ``u = Phi((theta - theta_hat) / se)``, is
  uniform when the Wald approximation is right.

Fits are batched by the solvers' own ``batched`` forms (the registry's), which apply the single
fit's checks (one definition of "converged" per method): NUTS and the Laplace approximation run
``jax.vmap``-ed over a batch of simulated data sets in one compiled call (NUTS: every chain of
every data set at once), and the batches share the machine's cores. MLE, MAP, VI and Pathfinder
run one compiled fit after another (a
vmapped optimiser runs every data set for as many iterations as the slowest needs, and measured
slower than consecutive compiled fits, 1.8 ms each for a small GLM). Batches can be
spread over a cluster with any ``concurrent.futures.Executor``-like object (``submit`` returning
futures with ``result``), e.g. a ``dask.distributed.Client``. Every simulation's randomness comes
from ``(seed, simulation index)``, so a run gives the same ranks wherever its batches run.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import numpy as np
import pandas as pd
from numpyro.infer import Predictive
from scipy import stats

from ._data import as_data
from .fit import METHODS, fit
from .solvers import REGISTRY, Objective, SimFit
from .solvers.base import thin

__all__ = ["calibrate", "Calibration"]

LEVELS = (0.5, 0.8, 0.95)


@dataclass
class Calibration:
    """The result of :func:`calibrate`.

    Attributes
    ----------
    method : str
    ranks : DataFrame
        One row per simulation, one column per scalar parameter: the rank of the truth among
        ``n_draws`` posterior draws (0 ... n_draws), or for mle/map ``u = Phi((truth - est)/se)``.
    n_draws : int or None
        ``L``, the number of thinned draws ranks are taken among (None for mle/map).
    uniformity : DataFrame
        Per parameter: the chi-square statistic of the binned ranks (``bins`` bins), its p-value.
    coverage : DataFrame
        Per parameter, the share of simulations whose central 50/80/95% interval covers the truth,
        with the Monte Carlo band of the 95% one, ``0.95 +- z sqrt(0.95 x 0.05 / n_sims)``, ``z``
        simultaneous over the parameters (Bonferroni, 1%).
    truth, estimate : DataFrame
        The simulated parameters and the fits' estimates.
    converged : array of bool
    seconds : float
        Wall time of the fits.
    """

    method: str
    ranks: pd.DataFrame
    n_draws: int | None
    uniformity: pd.DataFrame
    coverage: pd.DataFrame
    truth: pd.DataFrame
    estimate: pd.DataFrame
    converged: np.ndarray
    seconds: float
    bins: int
    notes: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No parameter fails the uniformity test at the 1% level, Bonferroni-corrected, and every
        95% coverage is inside its Monte Carlo band."""
        k = len(self.uniformity)
        ok_u = bool((self.uniformity["p_value"] > 0.01 / k).all())
        cov = self.coverage
        ok_c = bool(((cov["95%"] >= cov["95% band low"]) & (cov["95%"] <= cov["95% band high"])).all())
        return ok_u and ok_c

    def pit(self) -> pd.DataFrame:
        """The ranks scaled to (0, 1) (probability integral transform values)."""
        if self.n_draws is None:
            return self.ranks
        return (self.ranks + 0.5) / (self.n_draws + 1)

    def plot(self, params=None, ax=None):
        """ECDF-difference plots of the PIT values with simultaneous 95% bands (ArviZ's
        ``plot_ecdf``), one panel per parameter."""
        import arviz as az
        import matplotlib.pyplot as plt

        params = list(self.ranks.columns) if params is None else list(params)
        if ax is None:
            cols = min(3, len(params))
            rows = int(np.ceil(len(params) / cols))
            fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
            axes = axes.ravel()
        else:
            axes = np.atleast_1d(ax)
            fig = axes[0].figure
        pit = self.pit()
        for a, p in zip(axes, params):
            az.plot_ecdf(pit[p].values, cdf=stats.uniform.cdf, difference=True, confidence_bands=True, ax=a, rvs=stats.uniform.rvs, random_state=0)
            a.set_title(f"{p}  (p = {self.uniformity.loc[p, 'p_value']:.2g})")
        for a in axes[len(params) :]:
            a.axis("off")
        fig.suptitle(f"SBC: {self.method}, {len(self.ranks)} simulations (ECDF difference, 95% band)")
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        with pd.option_context("display.width", 120, "display.precision", 3):
            return (
                f"Calibration(method={self.method!r}, n_sims={len(self.ranks)}, passed={self.passed}, "
                f"{self.seconds:.1f} s)\nuniformity:\n{self.uniformity}\ncoverage:\n{self.coverage}"
            )


# ---------------------------------------------------------------------------------------------
# simulation


def _simulate(model, data_inputs, observed, n_sims, seed):
    """Parameters from the prior and data from the program, all simulations at once."""
    try:
        sims = Predictive(model, num_samples=n_sims)(jax.random.PRNGKey(seed), **data_inputs)
    except NotImplementedError:
        flat = _flat_params(model, data_inputs)
        raise ValueError(
            f"calibrate: parameter(s) {flat} have no prior (flat), so there is nothing to draw "
            "them from; simulation-based calibration needs a proper prior on every parameter "
            "(give each param(...) a prior)"
        ) from None
    if observed not in sims:
        raise ValueError(f"calibrate: the program simulates no {observed!r}; pass observed= (the observation's name)")
    return {k: np.asarray(v) for k, v in sims.items()}


def _flat_params(model, data_inputs) -> list:
    """The names of the program's flat (prior-less) parameters, found by one trace in which each
    flat site takes a zero of its support instead of a draw (a flat density cannot be sampled)."""
    from numpyro import handlers
    from numpyro.distributions.transforms import biject_to

    from .solvers._objective import _is_flat

    found = []

    def value(site):
        if site["type"] != "sample" or site["is_observed"]:
            return None
        fn = site["fn"]
        if not _is_flat(fn):
            return None
        found.append(site["name"])
        t = biject_to(fn.support)
        return t(jax.numpy.zeros(t.inverse_shape(fn.batch_shape + fn.event_shape)))

    try:
        handlers.trace(handlers.seed(handlers.substitute(model, substitute_fn=value), 0)).get_trace(**data_inputs)
    except Exception:  # noqa: BLE001  (the names found before a failure are still the answer)
        pass
    return found


# ---------------------------------------------------------------------------------------------
# batched fits: one chunk of simulations


class _Chunk(NamedTuple):
    """One batch of simulated data sets and how to fit them (shipped to an executor)."""

    model: object
    fit_model: object
    data_inputs: dict
    observed: str
    xs: list
    indices: list
    method: str
    options: dict
    seed: int
    n_draws: int


def _run_chunk(chunk: _Chunk) -> list:
    """Fit one batch of simulated data sets: the solver's own batched form where it has one and
    the program allows it, else one ``fit`` after another; module-level so executors can ship
    it. A :class:`SimFit` per data set."""
    solver = REGISTRY[chunk.method]
    seeds = [_sim_seed(chunk.seed, i) for i in chunk.indices]
    if solver.batched is not None:
        obj = Objective(chunk.fit_model, {**chunk.data_inputs, chunk.observed: chunk.xs[0]}, init=chunk.options.get("init"))
        out = solver.batched(obj, chunk.observed, chunk.xs, seeds, chunk.options, chunk.n_draws)
        if out is not None:
            return out
    options = chunk.options
    if solver.kind == "point":
        options = {"draws": 0, **options}  # the Wald interval needs no draws
    out = []
    for x, s in zip(chunk.xs, seeds):
        f = fit(chunk.fit_model, {**chunk.data_inputs, chunk.observed: x}, chunk.method, **{**options, "seed": s})
        draws = None if f.is_point or f.draws is None else thin(f.flat_draws(), chunk.n_draws)
        out.append(SimFit(f.flat(f.estimate), f.flat(f.stderr), draws, bool(f.diagnostics["converged"])))
    return out


def _sim_seed(seed, i):
    return int(np.asarray(jax.random.randint(jax.random.fold_in(jax.random.PRNGKey(seed), i), (), 0, 2**31 - 1)))


# ---------------------------------------------------------------------------------------------
# the calibration


def calibrate(
    model,
    data_inputs: dict,
    method: str = "nuts",
    n_sims: int = 100,
    seed: int = 0,
    *,
    observed: str = "x",
    fit_model=None,
    n_draws: int = 99,
    batch_size: int = 25,
    executor=None,
    **options,
) -> Calibration:
    """Simulation-based calibration of ``method`` on ``model``.

    Parameters
    ----------
    model : callable
        The program; every parameter needs a proper prior (the truth is drawn from it).
    data_inputs : dict
        The program's arguments except the observation (the inputs ``u``).
    method : str
        One of :data:`probmodels.METHODS`.
    n_sims : int
        The number of simulated data sets.
    seed : int
    observed : str
        The observation's argument name (default ``"x"``).
    fit_model : callable, optional
        Fit with another program than the one that simulates (a deliberately misspecified
        inference, e.g. a wrong noise scale); the parameters must be the same.
    n_draws : int
        ``L``: ranks are taken among ``L`` evenly thinned posterior draws (0 ... L).
    batch_size : int
        Simulations per batch: one compiled, vmapped call for NUTS and Laplace (chains of all its
        data sets in lockstep), consecutive fits for mle, map and vi; one executor task each.
    executor : concurrent.futures.Executor-like, optional
        Runs the batches (``executor.submit(fn, arg).result()``); a ``dask.distributed.Client``
        spreads them over a cluster. By default the batches share this machine's cores (a thread
        pool, after the first batch has compiled).
    **options
        Passed to the method (``chains``, ``warmup``, ``draws``, ``steps``, ...).

    Returns
    -------
    Calibration

    Examples
    --------
    >>> cal = probmodels.calibrate(line, {"u": u}, "nuts", n_sims=100, warmup=300, draws=300)  # doctest: +SKIP
    >>> cal.passed, cal.coverage  # doctest: +SKIP
    """
    if method not in METHODS:
        raise ValueError(f"calibrate: unknown method {method!r}; use one of {', '.join(METHODS)}")
    if int(n_sims) < 2:
        raise ValueError(f"calibrate: n_sims must be at least 2, got {n_sims}")
    data_inputs = as_data(data_inputs, "calibrate")
    if observed in data_inputs:
        raise ValueError(f"calibrate: data_inputs has {observed!r}; give only the inputs, the observations are simulated")
    fit_model = fit_model or model
    n_sims = int(n_sims)
    sims = _simulate(model, data_inputs, observed, n_sims, seed)
    probe = Objective(fit_model, {**data_inputs, observed: sims[observed][0]})
    flat = [s["name"] for s in probe.sites if s["flat"]]
    if flat and fit_model is model:
        raise ValueError(f"calibrate: {flat} have no prior; simulation-based calibration draws the truth from the prior")
    missing = [s["name"] for s in probe.sites if s["name"] not in sims]
    if missing:
        raise ValueError(f"calibrate: the fitted program's parameters {missing} are not simulated by the model")
    names = [site["name"] for site in probe.sites]
    labels = [lab for site in probe.sites for lab in probe.site_labels(site["name"], site["shape"])]
    truth = np.stack([np.concatenate([np.ravel(sims[k][i]) for k in names]) for i in range(n_sims)])

    chunks = [list(range(a, min(a + int(batch_size), n_sims))) for a in range(0, n_sims, int(batch_size))]
    payloads = [
        _Chunk(model, fit_model, data_inputs, observed, [sims[observed][i] for i in idx], idx, method, dict(options), seed, n_draws)
        for idx in chunks
    ]
    t0 = time.perf_counter()
    if executor is None and REGISTRY[method].batched is not None:
        # The first batch compiles; the rest share the machine's cores (JAX releases the GIL
        # while compiled code runs; the other methods are Python-bound and gain nothing).
        results = [_run_chunk(payloads[0])]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            results += list(pool.map(_run_chunk, payloads[1:]))
    elif executor is None:
        results = [_run_chunk(p) for p in payloads]
    else:
        futures = [executor.submit(_run_chunk, p) for p in payloads]
        results = [f.result() for f in futures]
    seconds = time.perf_counter() - t0
    results = [r for chunk in results for r in chunk]

    est = np.stack([r.estimate for r in results])
    se = np.stack([r.stderr for r in results])
    converged = np.array([r.converged for r in results])
    point = REGISTRY[method].kind == "point"
    if point:
        with np.errstate(divide="ignore", invalid="ignore"):
            ranks = stats.norm.cdf((truth - est) / se)
        L = None
    else:
        draws = np.stack([r.draws for r in results])  # (n_sims, L, P)
        ranks = np.sum(draws < truth[:, None, :], axis=1).astype(float)
        L = n_draws
    bins = 10 if n_sims >= 50 else 5
    uniformity = _uniformity(ranks, L, bins, labels)
    coverage = _coverage(truth, est, se, draws if not point else None, labels, n_sims)
    notes = []
    if not converged.all():
        notes.append(f"{int((~converged).sum())} of {n_sims} fits did not converge (or diverged)")
    return Calibration(
        method=method,
        ranks=pd.DataFrame(ranks, columns=labels),
        n_draws=L,
        uniformity=uniformity,
        coverage=coverage,
        truth=pd.DataFrame(truth, columns=labels),
        estimate=pd.DataFrame(est, columns=labels),
        converged=converged,
        seconds=seconds,
        bins=bins,
        notes=notes,
    )


def _uniformity(ranks, L, bins, labels):
    rows = {}
    for j, lab in enumerate(labels):
        r = ranks[:, j]
        r = r[np.isfinite(r)]
        if L is None:
            b = np.minimum((r * bins).astype(int), bins - 1)
        else:
            b = np.minimum((r * bins / (L + 1)).astype(int), bins - 1)
        counts = np.bincount(b, minlength=bins)
        chi2, p = stats.chisquare(counts)
        rows[lab] = {"chi2": float(chi2), "p_value": float(p), "n": int(len(r))}
    df = pd.DataFrame(rows).T
    df.index.name = "param"
    return df


def _coverage(truth, est, se, draws, labels, n_sims):
    # simultaneous over the parameters: Bonferroni at the 1% level, as the uniformity test
    z_band = stats.norm.ppf(1 - 0.01 / (2 * len(labels)))
    rows = {}
    for j, lab in enumerate(labels):
        row = {}
        for level in LEVELS:
            if draws is None:
                z = stats.norm.ppf(0.5 + level / 2)
                lo, hi = est[:, j] - z * se[:, j], est[:, j] + z * se[:, j]
            else:
                lo = np.quantile(draws[:, :, j], 0.5 - level / 2, axis=1)
                hi = np.quantile(draws[:, :, j], 0.5 + level / 2, axis=1)
            inside = (truth[:, j] >= lo) & (truth[:, j] <= hi)
            row[f"{int(100 * level)}%"] = float(np.mean(inside))
        band = z_band * np.sqrt(0.95 * 0.05 / n_sims)
        row["95% band low"], row["95% band high"] = 0.95 - band, 0.95 + band
        rows[lab] = row
    df = pd.DataFrame(rows).T
    df.index.name = "param"
    return df
