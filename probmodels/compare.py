"""Point estimates set against posteriors: ``compare(fits)``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from .fit import HDI_PROB, Fit
from .partitioned import is_partitioned

__all__ = ["compare", "log_predictive_density", "heldout"]


def compare(fits: dict, prob: float = HDI_PROB) -> pd.DataFrame:
    """One table of every fit's estimates, one row per scalar parameter.

    Parameters
    ----------
    fits : dict
        label -> :class:`Fit` (e.g. ``{"MLE": mle, "MAP": map_, "NUTS": post}``), all of the same
        program.
    prob : float
        The interval probability (0.94, ArviZ's default).

    Returns
    -------
    pandas.DataFrame
        One row per scalar param, then one per scalar latent (for mle/map their conditional
        modes and sds; ``attrs["latent"]`` lists those rows). Columns are ``(label, quantity)``: ``estimate``, ``se (observed)`` / ``se (sandwich)``
        (point fits) or ``sd`` (posteriors), and the interval (``wald_3%``/``wald_97%`` for
        mle/map, ``hdi_3%``/``hdi_97%`` otherwise). When an MLE is among the fits, each posterior
        fit also gets ``shift_from_mle_sd`` (``(posterior mean - MLE) / posterior sd``) and
        ``mle_in_hdi``.

    Examples
    --------
    >>> probmodels.compare({"MLE": mle, "NUTS": post})  # doctest: +SKIP
    """
    if not isinstance(fits, dict) or not fits:
        raise TypeError("compare: give a non-empty dict {label: Fit}")
    for k, f in fits.items():
        if not isinstance(f, Fit):
            raise TypeError(f"compare: fits[{k!r}] is a {type(f).__name__}, not a probmodels Fit")
    labels = None
    for k, f in fits.items():
        if labels is None:
            labels, first = f.labels(), k
        elif f.labels() != labels:
            raise ValueError(
                f"compare: fits[{k!r}] has parameters {f.labels()} but fits[{first!r}] has {labels}; "
                "compare fits of the same program"
            )
    mle = next((f for f in fits.values() if f.method == "mle"), None)
    pct = (f"{100 * (1 - prob) / 2:g}%", f"{100 * (1 + prob) / 2:g}%")
    cols = {}
    for k, f in fits.items():
        est, se = f.flat(f.estimate), f.flat(f.stderr)
        lo, hi = f.interval(prob)
        cols[(k, "estimate")] = est
        if f.is_point:
            cols[(k, f"se ({f.diagnostics.get('stderr', 'observed')})")] = se
            cols[(k, f"wald_{pct[0]}")] = lo
            cols[(k, f"wald_{pct[1]}")] = hi
        else:
            cols[(k, "sd")] = se
            cols[(k, f"hdi_{pct[0]}")] = lo
            cols[(k, f"hdi_{pct[1]}")] = hi
            if mle is not None:
                m = mle.flat(mle.estimate)
                with np.errstate(divide="ignore", invalid="ignore"):
                    cols[(k, "shift_from_mle_sd")] = (est - m) / se
                cols[(k, "mle_in_hdi")] = (m >= lo) & (m <= hi)
    df = pd.DataFrame(cols, index=pd.Index(labels, name="param"))
    df.columns = pd.MultiIndex.from_tuples(df.columns, names=["fit", "quantity"])
    df.attrs["methods"] = {k: f.method for k, f in fits.items()}
    # the rows of latent sites (after the params'): conditional modes for mle/map
    latent = fits[first].latent
    df.attrs["latent"] = [lab for lab in labels if lab.split("[")[0] in latent]
    return df


def log_predictive_density(fit: Fit, model=None, data: dict | None = None, *, rows=None) -> np.ndarray:
    """Per-observation log predictive density of new data under a fit.

    Point fits (mle, map) score the plug-in predictive ``log p(x_i | theta_hat)``; posterior fits
    (laplace, vi, nuts) the posterior predictive ``log (1/S) sum_s p(x_i | theta_s)`` over their
    draws.

    Parameters
    ----------
    fit : Fit
    model : callable
        The program the fit solved.
    data : dict
        New data for the program (inputs and observations), e.g. a held-out part.
    rows : array of int, optional
        Instead of ``model`` and ``data``: score these rows of the fit's own data, e.g. those a
        fit with ``weights`` held out (weight 0). Same numbers as scoring them as new data, with
        the functions the fit already compiled.

    Returns
    -------
    array of shape (number of new observations,)
        A ``dask.array`` chunked like the rows when ``data`` holds dask arrays (partitioned
        rows; the program must then observe one value per row).
    """
    if is_partitioned(data):  # dask arrays: scored chunk by chunk on the cluster
        from .solvers._partitioned import partitioned_scores

        return partitioned_scores(fit, model, data, "lpd")
    if not fit.is_point and fit.draws is None:
        raise ValueError(f"log_predictive_density: the {fit.method} fit has no draws")
    if rows is not None:
        flat = fit.pointwise_log_likelihood()[:, _columns(fit, np.asarray(rows))]
    else:
        flat = fit.pointwise_log_likelihood(data, model=model)
    # (numpy: JAX would compile a kernel per shape for a reduction this small)
    return logsumexp(flat, axis=0) - np.log(flat.shape[0])


def _columns(fit: Fit, rows: np.ndarray) -> np.ndarray:
    """The columns of ``fit.pointwise_log_likelihood()`` that hold the observations of ``rows``
    (indices along the first axis of every observed site), in the order a fit on those rows
    would list them."""
    cols, offset = [], 0
    for name, x in fit.observed.items():
        shape = np.shape(x)
        if not shape or (rows.size and rows.max() >= shape[0]):
            raise ValueError(f"log_predictive_density(rows=...): observe({name!r}) has no row {int(rows.max())}")
        k = int(np.prod(shape[1:], dtype=int))
        cols.append(offset + (rows[:, None] * k + np.arange(k)).ravel())
        offset += int(np.prod(shape, dtype=int))
    return np.concatenate(cols)


def heldout(fits: dict, model, test: dict | None = None, *, rows=None) -> pd.DataFrame:
    """The held-out comparison: each fit's log predictive density on ``test`` (a fit with
    ``weights``: on ``rows`` of its own data, held out by weight 0; see
    :func:`log_predictive_density`).

    Columns: ``predictive`` (plug-in or posterior), ``lpd`` (summed), ``lpd_per_obs``, ``se`` (the
    standard error of the summed lpd from the per-observation spread) and ``diff_vs_mle`` with its
    paired standard error, when an MLE is among the fits.
    """
    table, point = {}, {}
    for label, f in fits.items():
        if not f.is_point and f.draws is None:
            continue  # a posterior method that returned no draws (its warnings say why)
        if rows is not None and f.weights is not None:  # held out by weight 0
            lpd = log_predictive_density(f, rows=rows)
        else:
            lpd = log_predictive_density(f, model, test)
        point[label] = lpd
        n = len(lpd)
        table[label] = {
            "method": f.method,
            "predictive": "plug-in" if f.is_point else "posterior",
            "lpd": float(lpd.sum()),
            "lpd_per_obs": float(lpd.mean()),
            "se": float(np.sqrt(n) * lpd.std(ddof=1)) if n > 1 else np.nan,
        }
    mle = next((k for k, f in fits.items() if f.method == "mle"), None)
    if mle is not None:
        for label in table:
            d = point[label] - point[mle]
            table[label]["diff_vs_mle"] = float(d.sum())
            table[label]["diff_se"] = float(np.sqrt(len(d)) * d.std(ddof=1)) if len(d) > 1 else np.nan
    df = pd.DataFrame(table).T
    df.index.name = "fit"
    return df
