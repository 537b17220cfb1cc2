"""Point estimates set against posteriors: ``compare(fits)``."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.scipy.special import logsumexp

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


def log_predictive_density(fit: Fit, model, data: dict) -> np.ndarray:
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
    flat = jnp.asarray(fit.pointwise_log_likelihood(data, model=model))
    return np.asarray(logsumexp(flat, axis=0) - jnp.log(flat.shape[0]))


def heldout(fits: dict, model, test: dict) -> pd.DataFrame:
    """The held-out comparison: each fit's log predictive density on ``test``.

    Columns: ``predictive`` (plug-in or posterior), ``lpd`` (summed), ``lpd_per_obs``, ``se`` (the
    standard error of the summed lpd from the per-observation spread) and ``diff_vs_mle`` with its
    paired standard error, when an MLE is among the fits.
    """
    rows, point = {}, {}
    for label, f in fits.items():
        if not f.is_point and f.draws is None:
            continue  # a posterior method that returned no draws (its warnings say why)
        lpd = log_predictive_density(f, model, test)
        point[label] = lpd
        n = len(lpd)
        rows[label] = {
            "method": f.method,
            "predictive": "plug-in" if f.is_point else "posterior",
            "lpd": float(lpd.sum()),
            "lpd_per_obs": float(lpd.mean()),
            "se": float(np.sqrt(n) * lpd.std(ddof=1)) if n > 1 else np.nan,
        }
    mle = next((k for k, f in fits.items() if f.method == "mle"), None)
    if mle is not None:
        for label in rows:
            d = point[label] - point[mle]
            rows[label]["diff_vs_mle"] = float(d.sum())
            rows[label]["diff_se"] = float(np.sqrt(len(d)) * d.std(ddof=1)) if len(d) > 1 else np.nan
    df = pd.DataFrame(rows).T
    df.index.name = "fit"
    return df
