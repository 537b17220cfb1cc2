"""A ``Fit`` outlives its process: pickling, and NetCDF files through ArviZ.

A fit holds its program's compiled functions (closures, which do not pickle). What is kept is
its numbers: the method, estimates, standard errors, covariance, draws, diagnostics (warnings
included) and the parameters' layout and coordinates, with the ``InferenceData`` of
``to_arviz()``. A restored fit (unpickled or loaded) answers everything that reads those
(``estimate``, ``stderr``, ``draws``, ``diagnostics``, ``cov``, ``summary()``, ``repr``,
``to_arviz()``, ``compare``); it does not hold the program.

On disk the fit is its ``InferenceData`` as NetCDF (``az.from_netcdf`` reads it as any other)
with the rest as JSON in the posterior group's attribute ``probmodels_fit``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

__all__ = ["save", "load", "state", "restore"]

_ATTR = "probmodels_fit"
_VERSION = 1
_SITE_KEYS = ("name", "shape", "zshape", "param", "flat", "prior", "dims")


@dataclass
class _Layout:
    """What a restored fit knows of its program: the name, the parameters' layout and
    coordinates, the observations (stands in for the solver's ``Objective``)."""

    name: str
    sites: list
    coords: dict
    observed: dict
    n_obs: int

    def site_labels(self, name, shape):
        from .solvers._objective import site_labels

        return site_labels(name, tuple(shape), self.sites, self.coords)


@dataclass
class _Restored:
    """Stands in for the solver's result in a restored fit: plain numbers, no program."""

    method: str
    objective: _Layout
    draws: dict | None
    sample_stats: dict | None = None
    attrs: dict = field(default_factory=dict)
    cov: np.ndarray | None = None
    zdraws: None = None
    zhat: None = None

    def materialize(self):
        return self


def _encode(v):
    from .solvers.base import Finding

    if isinstance(v, Finding):  # a warning keeps its category (the report groups by it)
        return {"__finding__": v.category, "text": v.text}
    if isinstance(v, np.ndarray):
        return {"__ndarray__": v.tolist(), "dtype": v.dtype.str, "shape": list(v.shape)}
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, tuple):
        return [_encode(x) for x in v]
    if hasattr(v, "_asdict"):
        return _encode(dict(v._asdict()))
    if isinstance(v, dict):
        return {str(k): _encode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_encode(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)  # a warning object, a constraint...: its text


def _decode(v):
    if isinstance(v, dict):
        if "__ndarray__" in v:
            return np.asarray(v["__ndarray__"], dtype=np.dtype(v["dtype"])).reshape(v["shape"])
        if "__finding__" in v:
            from .solvers.base import Finding

            return Finding(v["__finding__"], v["text"])
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def state(fit, log_likelihood: bool = True, posterior_predictive: bool = True) -> dict:
    """Everything a restored fit needs, as numpy arrays, plain values and an InferenceData."""
    idata = fit.to_arviz(log_likelihood=log_likelihood, posterior_predictive=posterior_predictive)
    return dict(state_light(fit), draws=fit.draws, sample_stats=fit._result.sample_stats, idata=idata)


def _layout_of(obj) -> dict:
    return dict(
        name=obj.name,
        sites=[{k: s.get(k) for k in _SITE_KEYS} for s in obj.sites],
        coords=dict(getattr(obj, "coords", None) or {}),
        observed={k: np.asarray(v) for k, v in obj.observed.items()},
        n_obs=int(obj.n_obs),
    )


def restore(st: dict):
    """A ``Fit`` from :func:`state` (what unpickling calls)."""
    from .fit import Fit

    lay = st["layout"]
    sites = [dict(s, shape=tuple(s["shape"]), zshape=tuple(s["zshape"]), dims=tuple(s["dims"]) if s.get("dims") else None) for s in lay["sites"]]
    layout = _Layout(lay["name"], sites, dict(lay["coords"]), dict(lay["observed"]), int(lay["n_obs"]))
    r = _Restored(st["method"], layout, st["draws"], st.get("sample_stats"), dict(st.get("attrs") or {}), st.get("cov"))
    f = Fit(
        method=st["method"],
        estimate={k: np.asarray(v) for k, v in st["estimate"].items()},
        stderr={k: np.asarray(v) for k, v in st["stderr"].items()},
        diagnostics=st["diagnostics"],
        _result=r,
    )
    idata = st["idata"]
    f._cache["draws"] = st["draws"]
    # a restored fit has no program to compute groups from: to_arviz serves what was saved,
    # less the groups a call leaves out
    for ll in (True, False):
        for pp in (True, False):
            kept = idata if ll else _without(idata, "log_likelihood")
            f._cache[("idata", ll, pp)] = kept if pp else _without(kept, "posterior_predictive")
    if st.get("cov") is not None:
        f._cache["cov"] = _cov_frame(f, np.asarray(st["cov"], dtype=float))
    return f


def _without(idata, group):
    import arviz as az

    if group not in idata.groups():
        return idata
    return az.InferenceData(attrs=dict(idata.attrs), **{g: getattr(idata, g) for g in idata.groups() if g != group})


def save(fit, path: str, *, draws: bool = True, log_likelihood: bool = True):
    """Write ``fit`` as NetCDF: its InferenceData plus the rest as JSON (see the module)."""
    netcdf_data(fit, draws=draws, log_likelihood=log_likelihood).to_netcdf(str(path))
    return path


def netcdf_data(fit, *, draws: bool = True, log_likelihood: bool = True):
    """The InferenceData :func:`save` writes (the report has its helper process write it)."""
    st = state(fit, log_likelihood) if draws else _state_without_draws(fit)
    idata = st.pop("idata")
    st.pop("draws")
    meta = dict(st, has_draws=bool(draws and fit.draws is not None))
    idata = idata.copy()
    idata.posterior.attrs[_ATTR] = json.dumps(_encode(meta))
    return idata


def _state_without_draws(fit) -> dict:
    """The state of a fit kept as its estimate (one draw) and covariance: what a point fit's
    tables show, without the draws of its Gaussian approximation."""
    import arviz as az

    st = state_light(fit)
    # its attributes and observed data only: any InferenceData the fit already made has them
    made = [v for k, v in fit._cache.items() if isinstance(k, tuple) and k[0] == "idata"]
    full = made[0] if made else fit.to_arviz(log_likelihood=False, posterior_predictive=False)
    posterior = {k: np.asarray(v)[None, None] for k, v in fit.estimate.items()}
    obj = fit._result.objective
    dims = {s["name"]: list(s["dims"]) for s in obj.sites if s.get("dims")}
    coords = dict(getattr(obj, "coords", None) or {}) or None
    groups = dict(posterior=az.convert_to_dataset(posterior, coords=coords, dims=dims))
    if "observed_data" in full.groups():
        groups["observed_data"] = full.observed_data
    idata = az.InferenceData(attrs=dict(full.attrs), **groups)
    idata.posterior.attrs.update(full.posterior.attrs)
    idata.posterior.attrs["posterior_kind"] = "the estimate only (saved with draws=False)"
    st["idata"] = idata
    return st


def state_light(fit) -> dict:
    """:func:`state` without the draws and InferenceData (which cost the draws to make)."""
    r = fit._result
    return dict(
        version=_VERSION,
        method=fit.method,
        estimate=dict(fit.estimate),
        stderr=dict(fit.stderr),
        diagnostics=dict(fit.diagnostics),
        draws=None,
        sample_stats=None,
        attrs=dict(r.attrs),
        cov=fit.cov.to_numpy(),
        layout=_layout_of(r.objective),
    )


def load(path: str):
    """A ``Fit`` from a file written by :func:`save`."""
    import arviz as az

    # eager: the file is read and closed (lazy loading keeps it open, and a later save to the
    # same path could not overwrite it)
    with az.rc_context({"data.load": "eager"}):
        idata = az.from_netcdf(str(path))
    text = idata.posterior.attrs.get(_ATTR)
    if text is None:
        raise ValueError(
            f"probmodels.load: {path} is an InferenceData without a probmodels fit in it (no "
            f"'{_ATTR}' attribute); read it with arviz.from_netcdf, or write it with Fit.save"
        )
    meta = _decode(json.loads(text))
    if int(meta.get("version", 0)) > _VERSION:
        raise ValueError(f"probmodels.load: {path} was written by a newer probmodels (format {meta['version']})")
    names = [s["name"] for s in meta["layout"]["sites"]]
    draws = None
    if meta.pop("has_draws"):
        keep = [k for k in idata.posterior.data_vars]
        draws = {k: np.asarray(idata.posterior[k].values) for k in keep}
        draws = {k: draws[k] for k in names + [k for k in keep if k not in names]}
    sample_stats = None
    if "sample_stats" in idata.groups():
        sample_stats = {k: np.asarray(v.values) for k, v in idata.sample_stats.data_vars.items()}
    st = dict(meta, draws=draws, sample_stats=sample_stats, idata=idata)
    return restore(st)


def _cov_frame(fit, cov):
    import pandas as pd

    labels = fit.labels()
    return pd.DataFrame(cov, index=pd.Index(labels, name="param"), columns=labels)
