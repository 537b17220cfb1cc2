"""``fit(model, data, method)``: one program, five solvers, one result type; and the ``Fit``.

The ``Fit`` is the same for every method (as blackjax's states are one shape for all kernels):
``method``, ``estimate``, ``stderr``, ``draws``, ``diagnostics``, ``summary()`` and
``to_arviz()``. ``to_arviz`` is the bridge to every ArviZ diagnostic and plot: ``posterior`` (the
draws; for mle/map draws of the Gaussian approximation, marked in the attributes),
``sample_stats`` for NUTS, ``observed_data`` and ``log_likelihood`` per observation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

import arviz as az
import numpy as np
import pandas as pd

from .solvers import REGISTRY, Objective, SolverResult

__all__ = ["fit", "Fit", "METHODS", "Site"]

METHODS = tuple(REGISTRY)
HDI_PROB = 0.94
_MAX_LOGLIK_CELLS = 400_000_000  # 3.2 GB of float64


def fit(model, data: dict, method: str, **options) -> "Fit":
    """Solve a program by ``method`` and return a :class:`Fit`.

    Parameters
    ----------
    model : callable
        A probmodels program (a numpyro model built with ``param`` and ``observe``).
    data : dict
        The program's keyword arguments (inputs ``u`` and observations ``x``). Arrays are
        checked for NaN/inf; unknown keys and missing required arguments are errors.
    method : str
        One of :data:`probmodels.METHODS` (the keys of ``probmodels.solvers.REGISTRY``).
        ``mle`` ignores every prior (flat over its support); ``map`` uses them. Both give the mode
        in the natural space and standard errors from the inverse observed information
        (``stderr="sandwich"`` for Huber-White with mle; ``jacobian=True`` for the mode of the
        unconstrained posterior with map). ``laplace``: a Gaussian at the mode of the
        unconstrained posterior. ``vi``: SVI with a mean-field (``guide="normal"``) or full-rank
        (``"multivariate_normal"``) Gaussian. ``nuts``: numpyro's NUTS (``chains=4,
        warmup=1000, draws=1000, target_accept=0.8``).
    **options
        ``seed=0`` and ``init={name: value}`` (natural-space starting values) for every method,
        and the method's own (an unknown option is an error that lists them).

    Returns
    -------
    Fit

    Examples
    --------
    >>> import numpy as np, numpyro.distributions as dist
    >>> import probmodels
    >>> from probmodels import param, observe, noise
    >>> def line(u, x=None):
    ...     slope = param("slope", dist.Normal(0.0, 10.0))
    ...     scale = param("scale", support="positive")
    ...     return observe("x", slope * u + noise.Gaussian(scale), obs=x)
    >>> u = np.linspace(0, 1, 50); x = 2 * u + np.sin(40 * u)
    >>> probmodels.fit(line, {"u": u, "x": x}, "mle").estimate["slope"].round(3)  # doctest: +SKIP
    """
    if method not in REGISTRY:
        raise ValueError(f"fit: unknown method {method!r}; use one of {', '.join(METHODS)}")
    init = options.get("init")
    if init is not None and not isinstance(init, dict):
        raise TypeError("fit: init must be a dict {parameter name: natural-space value}")
    obj = Objective(model, data, init=init)
    result = REGISTRY[method].solve(obj, dict(options))
    return Fit._from(result)


class Site(NamedTuple):
    """A fitted site: its name, its shape and ``kind`` (``"param"`` or ``"latent"``)."""

    name: str
    shape: tuple
    kind: str


@dataclass(frozen=True, eq=False, repr=False)
class Fit:
    """The result of solving a program with one method.

    Attributes
    ----------
    method : str
    estimate : dict
        name -> array: the mode for mle/map, the posterior mean otherwise.
    stderr : dict
        name -> array: from the observed information (or sandwich) for mle/map, the posterior
        sd otherwise.
    draws : dict or None
        name -> array of shape ``(chains, draws, *shape)`` (chains = 1 for laplace, vi and the
        Gaussian approximation of mle/map); deterministic sites included. None when there is no
        valid approximation.
    diagnostics : dict
        ``converged`` and ``warnings`` always; ``compile_s``, ``run_s``; for NUTS also
        ``divergences``, ``max_rhat``, ``min_ess_bulk``; for optimisers ``iterations``,
        ``grad_norm``; for VI the ``elbo`` trace. Each warning is a
        :class:`probmodels.solvers.Finding`: a ``str`` with a ``category``.

    The layers above a fit (compare, the report, calibrate) use its public accessors:
    :meth:`labels`, :attr:`sites`, :meth:`flat`, :meth:`flat_draws`,
    :meth:`pointwise_log_likelihood`, :attr:`model`, :attr:`data`, :attr:`kind`.
    """

    method: str
    estimate: dict
    stderr: dict
    diagnostics: dict
    _result: SolverResult = field(default=None)
    _cache: dict = field(default_factory=dict)

    @classmethod
    def _from(cls, r: SolverResult) -> "Fit":
        return cls(
            method=r.method,
            estimate={k: np.asarray(v) for k, v in r.estimate.items()},
            stderr={k: np.asarray(v) for k, v in r.stderr.items()},
            diagnostics=r.diagnostics,
            _result=r,
        )

    @property
    def draws(self) -> dict | None:
        """name -> ``(chains, draws, *shape)`` array, or None (see the class docstring). For
        mle/map the Gaussian approximation's draws are made on first access."""
        if "draws" not in self._cache:
            r = self._result.materialize()
            self._cache["draws"] = None if r.draws is None else {k: np.asarray(v) for k, v in r.draws.items()}
        return self._cache["draws"]

    @property
    def model_name(self) -> str:
        return self._result.objective.name

    @property
    def solver(self):
        """The method's :class:`~probmodels.solvers.Solver` (label, kind, defaults)."""
        return REGISTRY[self.method]

    @property
    def kind(self) -> str:
        """``"point"``, ``"approximation"`` or ``"sampler"`` (the solver's kind)."""
        return REGISTRY[self.method].kind

    @property
    def is_point(self) -> bool:
        return self.kind == "point"

    @property
    def model(self):
        """The program this fit solved."""
        return self._result.objective.model

    @property
    def data(self) -> dict:
        """The program's keyword arguments the fit was given (arrays as numpy/JAX arrays)."""
        obj: Objective = self._result.objective
        return {**obj.static, **obj.arrays}

    @property
    def sites(self) -> tuple:
        """The fitted sites in program order, as :class:`Site` ``(name, shape, kind)``: ``kind`` is
        ``"param"`` for a ``param`` and ``"latent"`` for any other sampled site."""
        return tuple(
            Site(s["name"], tuple(s["shape"]), "param" if s["param"] else "latent") for s in self._result.objective.sites
        )

    # -- ArviZ -------------------------------------------------------------------------------

    def to_arviz(self, log_likelihood: bool = True) -> az.InferenceData:
        """The fit as an ``arviz.InferenceData``.

        Groups: ``posterior`` (the draws), ``sample_stats`` (NUTS), ``observed_data``,
        ``log_likelihood`` (per observation, so ``az.loo`` works; computed on first request).
        Attributes: the method, the point estimate (JSON), what the posterior group holds.
        """
        key = ("idata", bool(log_likelihood))
        if key in self._cache:
            return self._cache[key]
        r = self._result
        obj: Objective = r.objective
        if self.draws is None:
            # Bare point fit: one "draw" at the estimate, marked as such.
            posterior = {k: np.asarray(v)[None, None] for k, v in self.estimate.items()}
            zdraws = None
        else:
            posterior = self.draws
            zdraws = r.materialize().zdraws
        groups = dict(posterior=posterior)
        if obj.observed:
            groups["observed_data"] = {k: np.asarray(v) for k, v in obj.observed.items()}
        if r.sample_stats is not None:
            groups["sample_stats"] = r.sample_stats
        n_cells = 0 if zdraws is None else int(np.prod(zdraws.shape[:2])) * obj.n_obs
        if log_likelihood and n_cells > _MAX_LOGLIK_CELLS:
            attrs_note = (
                f"log_likelihood omitted: {n_cells:.2e} values (draws x observations) exceed "
                f"{_MAX_LOGLIK_CELLS:.0e}; thin the draws or score a subset of the data"
            )
            log_likelihood = False
        else:
            attrs_note = ""
        if log_likelihood and zdraws is not None and obj.observed:
            c, d = zdraws.shape[:2]
            ll = obj.fns["pointwise_batch"](np.asarray(zdraws.reshape(c * d, -1)), obj.arrays)
            groups["log_likelihood"] = {
                k: np.asarray(v).reshape((c, d) + np.shape(v)[1:]) for k, v in ll.items()
            }
        dims = {}
        for k, v in obj.observed.items():
            dims[k] = [f"{k}_dim_{i}" for i in range(np.ndim(v))]
        attrs = dict(
            probmodels_method=self.method,
            probmodels_model=obj.name,
            point_estimate=json.dumps({k: np.asarray(v).tolist() for k, v in self.estimate.items()}),
            stderr=json.dumps({k: np.asarray(v).tolist() for k, v in self.stderr.items()}),
            posterior_kind=r.attrs.get("posterior_kind", ""),
            converged=int(bool(self.diagnostics.get("converged"))),
        )
        if attrs_note:
            attrs["note"] = attrs_note
        idata = az.from_dict(**groups, dims=dims, attrs=attrs)
        for g in idata.groups():
            getattr(idata, g).attrs.update(attrs)
        self._cache[key] = idata
        return idata

    # -- tables ------------------------------------------------------------------------------

    def labels(self) -> list[str]:
        """Scalar parameter labels: ``slope``, ``w[0]``, ``w[1]``, ..."""
        obj: Objective = self._result.objective
        out = []
        for s in obj.sites:
            out += obj.site_labels(s["name"], s["shape"])
        return out

    def flat(self, d: dict) -> np.ndarray:
        """A dict of per-site arrays (``estimate``, ``stderr``, a truth) as one vector in the
        order of :meth:`labels`."""
        return np.concatenate([np.ravel(np.asarray(d[s.name])) for s in self.sites])

    _flat = flat  # (the name the library used before ``flat`` was public)

    def flat_draws(self) -> np.ndarray | None:
        """The draws as one ``(chains x draws, P)`` array, columns in the order of
        :meth:`labels`; None where the fit has no draws."""
        if self.draws is None:
            return None
        return np.concatenate(
            [np.asarray(self.draws[s.name]).reshape(-1, int(np.prod(s.shape, dtype=int))) for s in self.sites], axis=1
        )

    def pointwise_log_likelihood(self, data: dict | None = None, model=None) -> np.ndarray:
        """``log p(x_i | theta_s)`` per draw ``s`` and observation ``i``: shape ``(S, n)``, every
        observed site's entries flattened in program order.

        Point fits (mle, map) are scored at the estimate (``S = 1``, the plug-in predictive);
        the others at their draws. ``data``: new data for the same program (a held-out part),
        the fit's own data by default; ``model``: the program to score with, the fit's by default
        (another must have the same parameters).
        """
        r = self._result
        old: Objective = r.objective
        new = old if data is None and model is None else Objective(model or self.model, self.data if data is None else data)
        if [s["name"] for s in new.sites] != [s["name"] for s in old.sites] or new.dim != old.dim:
            raise ValueError(
                "pointwise_log_likelihood: the new data changes the program's parameters "
                f"({[s['name'] for s in new.sites]} vs {[s['name'] for s in old.sites]}); "
                "parameters must not depend on the number of observations"
            )
        if self.is_point:
            z = r.zhat[None]
        else:
            if r.zdraws is None:
                raise ValueError(f"pointwise_log_likelihood: the {self.method} fit has no draws")
            z = r.zdraws.reshape(-1, new.dim)
        ll = new.fns["pointwise_batch"](np.asarray(z), new.arrays)
        return np.concatenate([np.asarray(v).reshape(np.shape(v)[0], -1) for v in ll.values()], axis=1)

    def interval(self, prob: float = HDI_PROB):
        """Per scalar parameter, the ``prob`` interval: Wald for mle/map, HDI of the draws otherwise."""
        est, se = self._flat(self.estimate), self._flat(self.stderr)
        if self.is_point:
            from scipy.special import ndtri  # scipy is a dependency of arviz

            zq = float(ndtri(0.5 + prob / 2))
            return est - zq * se, est + zq * se
        if self.draws is None:
            return np.full_like(est, np.nan), np.full_like(est, np.nan)
        flat = self.flat_draws()
        hdi = np.asarray([az.hdi(flat[:, j], hdi_prob=prob) for j in range(flat.shape[1])])
        return hdi[:, 0], hdi[:, 1]

    def summary(self, prob: float = HDI_PROB) -> pd.DataFrame:
        """The estimate table: one row per scalar parameter.

        Columns: ``estimate`` and ``se`` with a Wald interval for mle/map; ``mean``, ``sd`` and
        the HDI otherwise, plus ``ess_bulk``, ``ess_tail`` and ``r_hat`` for NUTS (from ArviZ).
        """
        lo, hi = self.interval(prob)
        pct = (f"{100 * (1 - prob) / 2:g}%", f"{100 * (1 + prob) / 2:g}%")
        est, se = self._flat(self.estimate), self._flat(self.stderr)
        if self.is_point:
            kind = self.diagnostics.get("stderr", "observed")
            df = pd.DataFrame(
                {"estimate": est, f"se ({kind})": se, f"wald_{pct[0]}": lo, f"wald_{pct[1]}": hi},
                index=self.labels(),
            )
        else:
            df = pd.DataFrame(
                {"mean": est, "sd": se, f"hdi_{pct[0]}": lo, f"hdi_{pct[1]}": hi}, index=self.labels()
            )
            if self.kind == "sampler":
                s = az.summary(self.to_arviz(log_likelihood=False), var_names=[x.name for x in self.sites], kind="diagnostics")
                df = df.join(s[["ess_bulk", "ess_tail", "r_hat"]])
        df.index.name = "param"
        df.attrs["method"] = self.method
        return df

    def __repr__(self) -> str:
        d = self.diagnostics
        head = f"Fit(method={self.method!r}, model={self.model_name!r}, converged={d.get('converged')})"
        with pd.option_context("display.width", 120, "display.max_columns", 20, "display.precision", 4):
            table = self.summary().to_string()
        lines = [head, table]
        warnings = d.get("warnings") or []
        if warnings:
            lines.append(f"{len(warnings)} warning(s):")
            lines += [f"  - {w}" for w in warnings]
        return "\n".join(lines)
