"""Information criteria on one scale for point fits and posteriors: ``Fit.criteria`` and ``criteria``.

A point fit is scored by AIC (Akaike 1974) on the elpd scale, ``log L(theta_hat) - k``: the
expected log predictive density of new data estimated by the in-sample log-likelihood less the
number of free parameters. A posterior fit is scored by PSIS-LOO (Vehtari, Gelman and Gabry
2017, ArviZ's ``loo``), whose ``elpd_loo`` estimates the same quantity. Both are on the scale
``-deviance / 2``, so ``criteria`` ranks MLE, MAP and Bayes answers of one program together.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd

from .fit import Fit

__all__ = ["criteria", "fit_criteria"]


def fit_criteria(fit: Fit) -> pd.Series:
    """The criteria of one fit (:meth:`probmodels.Fit.criteria`).

    Point fits (mle, map): ``log_likelihood`` at the estimate, ``k`` (every free parameter, a
    noise scale included, as R's ``AIC`` counts it; a simplex of K has K - 1), ``n`` (the
    observations), ``aic = -2 log L + 2k``, ``aicc = aic + 2k(k + 1) / (n - k - 1)``,
    ``bic = -2 log L + k log n`` and ``elpd = log L - k``. For map the log-likelihood is still
    the likelihood's alone (the prior is not scored).

    Posterior fits (laplace, vi, nuts): ArviZ's ``loo`` and ``waic`` on the fit's
    ``log_likelihood`` (observation sites pooled): ``elpd_loo``, ``se``, ``p_loo``,
    ``elpd_waic``, ``p_waic``, the Pareto k counts (``pareto_k_gt_0.7``, ``pareto_k_gt_1``) and
    ``elpd`` = ``elpd_loo``.
    """
    if not isinstance(fit, Fit):
        raise TypeError(f"criteria: expected a probmodels Fit, got {type(fit).__name__}")
    if fit.is_point:
        ll = float(fit.diagnostics["log_likelihood"])
        # params only: a latent site is integrated out of the (marginal) likelihood, as lme4's
        # AIC counts the variance components and not the random effects
        k = int(sum(int(np.prod(s["zshape"], dtype=int)) for s in fit.parameter_sites if s["kind"] != "latent"))
        # frequency weights: a row of weight w counts as w observations
        n = fit.n_obs if fit.weights is None else float(np.sum(fit.weights))
        n = int(n) if float(n).is_integer() else n
        aic = -2.0 * ll + 2.0 * k
        aicc = aic + 2.0 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else np.inf
        out = dict(
            criterion="AIC", log_likelihood=ll, k=k, n=n, aic=aic, aicc=aicc, bic=-2.0 * ll + k * np.log(n), elpd=ll - k
        )
        return pd.Series(out, name=fit.method, dtype=object)
    if fit.draws is None:
        raise ValueError(f"criteria: the {fit.method} fit has no draws (see its warnings), so no PSIS-LOO")
    if fit.weights is not None and not np.all(fit.weights == 1.0):
        raise ValueError(
            f"criteria: the {fit.method} fit has frequency weights other than 1; PSIS-LOO here "
            "leaves out one row, not one of its copies: fit the data with the rows repeated instead"
        )
    idata = _pooled(fit.to_arviz(posterior_predictive=False))
    with warnings.catch_warnings():
        # ArviZ's own warnings (high Pareto k, WAIC's variance) are reported as the k counts
        warnings.simplefilter("ignore")
        loo = az.loo(idata, pointwise=True)
        waic = az.waic(idata)
    k = np.asarray(loo.pareto_k)
    out = dict(
        criterion="PSIS-LOO",
        elpd_loo=float(loo.elpd_loo),
        se=float(loo.se),
        p_loo=float(loo.p_loo),
        elpd_waic=float(waic.elpd_waic),
        p_waic=float(waic.p_waic),
        **{"pareto_k_gt_0.7": int(np.sum(k > 0.7)), "pareto_k_gt_1": int(np.sum(k > 1.0))},
        n=fit.n_obs,
        elpd=float(loo.elpd_loo),
    )
    return pd.Series(out, name=fit.method, dtype=object)


def _pooled(idata):
    """One log-likelihood variable: several observation sites pooled into one (loo needs one)."""
    ll = idata.log_likelihood
    names = list(ll.data_vars)
    if len(names) == 1:
        return idata
    c, d = ll[names[0]].shape[:2]
    flat = np.concatenate([ll[k].values.reshape(c, d, -1) for k in names], axis=2)
    return az.InferenceData(posterior=idata.posterior, log_likelihood=az.dict_to_dataset({"+".join(names): flat}))


def criteria(fits: dict) -> pd.DataFrame:
    """One table of the fits' criteria, one row per fit, best ``elpd`` first.

    Parameters
    ----------
    fits : dict
        label -> :class:`Fit`, fits of the same data (the program may differ).

    Returns
    -------
    pandas.DataFrame
        ``method``, ``criterion`` (``AIC`` for mle/map, ``PSIS-LOO`` for posterior fits),
        ``elpd`` (``log L - k``, or ``elpd_loo``: one scale), ``d_elpd`` (from the best), and
        every fit's own columns (:meth:`Fit.criteria`); NaN where a column is not the fit's.

    Examples
    --------
    >>> probmodels.criteria({"MLE": mle, "MAP": map_, "NUTS": post})  # doctest: +SKIP
    """
    if not isinstance(fits, dict) or not fits:
        raise TypeError("criteria: give a non-empty dict {label: Fit}")
    n = set()
    rows = {}
    for label, f in fits.items():
        if not isinstance(f, Fit):
            raise TypeError(f"criteria: fits[{label!r}] is a {type(f).__name__}, not a probmodels Fit")
        row = fit_criteria(f).to_dict()
        n.add(row["n"])
        rows[label] = {"method": f.method, **row}
    if len(n) > 1:
        raise ValueError(
            f"criteria: the fits have different numbers of observations ({sorted(n)}); criteria "
            "compare fits of the same data"
        )
    df = pd.DataFrame(rows).T
    front = ["method", "criterion", "elpd"]
    df = df[front + [c for c in df.columns if c not in front]]
    df["elpd"] = df["elpd"].astype(float)
    df = df.sort_values("elpd", ascending=False)
    df.insert(3, "d_elpd", df["elpd"] - df["elpd"].iloc[0])
    for c in df.columns:
        if c not in ("method", "criterion"):
            df[c] = pd.to_numeric(df[c])
    df.index.name = "fit"
    return df
