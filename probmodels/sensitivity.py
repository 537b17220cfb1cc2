"""What did the prior do? Power-scaling sensitivity of a posterior fit: ``sensitivity(fit)``.

Power-scaling (Kallioinen, Paananen, Bürkner and Vehtari 2024, "Detecting and diagnosing
prior and likelihood sensitivity with power-scaling"; priorsense's ``powerscale_sensitivity``):
raise the prior (or the likelihood) to a power ``alpha`` near 1, reweight the posterior draws by
importance sampling (``w = p^(alpha - 1)``, Pareto-smoothed), and measure how far each marginal
moves, by the cumulative Jensen-Shannon distance per unit of ``log alpha``. ArviZ's ``psens``
computes it on the fit's ``log_prior`` and ``log_likelihood`` groups; this module adds the
diagnosis, labels each scalar parameter, and grades the reweighting by its Pareto k.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd

from .fit import Fit

__all__ = ["sensitivity", "THRESHOLD"]

THRESHOLD = 0.05  # priorsense's and ArviZ's threshold for a sensitive marginal


def sensitivity(fit: Fit, delta: float = 0.01) -> pd.DataFrame:
    """Prior and likelihood power-scaling sensitivity of every scalar parameter.

    Parameters
    ----------
    fit : Fit
        A posterior fit (laplace, vi, nuts): the draws are reweighted.
    delta : float
        The power is ``alpha = 1 +- delta`` (ArviZ's default, 0.01).

    Returns
    -------
    pandas.DataFrame
        Indexed by parameter label: ``prior`` and ``likelihood`` (the sensitivities: CJS
        distance per unit of ``log alpha``), ``diagnosis`` (``"prior-data conflict"`` when both
        exceed 0.05, ``"strong prior / weak likelihood"`` when only the prior does, ``"-"``
        otherwise), and ``pareto_k_prior`` / ``pareto_k_likelihood``, the Pareto k of the
        importance weights (above 0.7 the reweighting, hence the sensitivity, is unreliable; -inf
        where the weights are constant, e.g. every prior flat). ``attrs["unreliable"]`` says so
        in words when a k passes 0.7.

    Raises
    ------
    ValueError
        For point fits (mle, map), which have no posterior to reweight.

    Examples
    --------
    >>> post = probmodels.fit(model, data, "nuts")  # doctest: +SKIP
    >>> probmodels.sensitivity(post)  # doctest: +SKIP
    """
    if not isinstance(fit, Fit):
        raise TypeError(f"sensitivity: expected a probmodels Fit, got {type(fit).__name__}")
    if fit.is_point:
        raise ValueError(
            f"sensitivity: a {fit.method} fit is a point estimate, with no posterior to power-scale; "
            "fit the program with a posterior method (method='nuts', or 'laplace' / 'vi') and "
            "pass that fit"
        )
    if fit.draws is None:
        raise ValueError(f"sensitivity: the {fit.method} fit has no draws (see its warnings)")
    if fit.weights is not None and not np.all(fit.weights == 1.0):
        raise ValueError(
            f"sensitivity: the {fit.method} fit has frequency weights other than 1, and the "
            "likelihood power-scaled here is the unweighted one; fit the data with the rows repeated"
        )
    idata = _for_psens(fit)
    names = [s["name"] for s in fit.parameter_sites]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ's Pareto k warnings: graded below, per component
        prior = az.psens(idata, component="prior", var_names=names, delta=delta)
        lik = az.psens(idata, component="likelihood", var_names=names, delta=delta)
    labels, p, q = fit.labels(), [], []
    for s in fit.parameter_sites:
        # (psens returns a DataArray, not a Dataset, when there is one variable)
        p.append(np.ravel((prior if len(names) == 1 else prior[s["name"]]).values))
        q.append(np.ravel((lik if len(names) == 1 else lik[s["name"]]).values))
    df = pd.DataFrame({"prior": np.concatenate(p), "likelihood": np.concatenate(q)}, index=pd.Index(labels, name="param"))
    both = (df["prior"] > THRESHOLD) & (df["likelihood"] > THRESHOLD)
    df["diagnosis"] = np.where(both, "prior-data conflict", np.where(df["prior"] > THRESHOLD, "strong prior / weak likelihood", "-"))
    lp = sum(idata.log_prior[k].values for k in idata.log_prior.data_vars)
    ll = idata.log_likelihood["log_lik"].values.sum(axis=-1)
    df["pareto_k_prior"] = _pareto_k(lp, delta)
    df["pareto_k_likelihood"] = _pareto_k(ll, delta)
    bad = [c for c in ("prior", "likelihood") if df[f"pareto_k_{c}"].iloc[0] > 0.7]
    df.attrs["method"] = fit.method
    df.attrs["unreliable"] = (
        f"the power-scaled {' and '.join(bad)} reweighting has Pareto k above 0.7: its "
        "sensitivities are not reliable; refit with more draws" if bad else ""
    )
    return df


def _for_psens(fit):
    """posterior (latent sites), log_prior and one pooled log-likelihood variable."""
    full = fit.to_arviz(posterior_predictive=False)
    names = [s["name"] for s in fit.parameter_sites]
    ll = full.log_likelihood
    c, d = full.posterior[names[0]].shape[:2]
    pooled = np.concatenate([ll[k].values.reshape(c, d, -1) for k in ll.data_vars], axis=2)
    idata = az.InferenceData(
        posterior=full.posterior[names],
        log_likelihood=az.dict_to_dataset({"log_lik": pooled}),
    )
    idata.add_groups(log_prior=full.log_prior)
    return idata


def _pareto_k(log_component, delta):
    """The larger Pareto k of the weights ``p^(alpha - 1)`` at ``alpha = 1 -+ delta``."""
    lc = np.ravel(np.asarray(log_component, dtype=float))
    if np.ptp(lc) <= 1e-12 * (1.0 + np.abs(lc).max()):
        return -np.inf  # constant weights: the reweighting is exact (psislw would say inf)
    ks = []
    for alpha in (1 - delta, 1 + delta):
        _, k = az.psislw((alpha - 1.0) * lc)
        ks.append(float(k))
    return max(ks)
