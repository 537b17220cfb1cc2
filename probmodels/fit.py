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

import arviz as az
import numpy as np
import pandas as pd

from .solvers._common import SolverResult
from .solvers._objective import Objective
from .solvers.laplace import solve_laplace
from .solvers.nuts import solve_nuts
from .solvers.point import solve_point
from .solvers.vi import solve_vi

__all__ = ["fit", "Fit", "METHODS"]

_SOLVERS = {
    "mle": solve_point,
    "map": solve_point,
    "laplace": solve_laplace,
    "vi": solve_vi,
    "nuts": solve_nuts,
}
METHODS = tuple(_SOLVERS)
_POINT = ("mle", "map")
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
    method : {"mle", "map", "laplace", "vi", "nuts"}
        ``mle`` ignores every prior (flat over its support); ``map`` uses them. Both give the mode
        in the natural space and standard errors from the inverse observed information
        (``stderr="sandwich"`` for Huber-White with mle; ``jacobian=True`` for the mode of the
        unconstrained posterior with map). ``laplace``: a Gaussian at the mode of the
        unconstrained posterior. A program with ``latent`` sites: mle and map maximise the
        marginal likelihood with the latents integrated out (Laplace; ``joint=True`` for the joint
        mode), the other methods sample the latents with the params. ``vi``: SVI with a mean-field (``guide="normal"``) or full-rank
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
    if method not in _SOLVERS:
        raise ValueError(f"fit: unknown method {method!r}; use one of {', '.join(METHODS)}")
    init = options.get("init")
    if init is not None and not isinstance(init, dict):
        raise TypeError("fit: init must be a dict {parameter name: natural-space value}")
    obj = Objective(model, data, init=init)
    result = _SOLVERS[method](obj, method, dict(options))
    return Fit._from(result)


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
        ``grad_norm``; for VI the ``elbo`` trace.
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
    def latent(self) -> tuple:
        """The program's ``latent`` sites (integrated out by mle/map, sampled by the posterior
        methods); every other site is a param."""
        return tuple(getattr(self._result.objective, "latent", ()))

    def _sites(self):
        """The sites in table order: the params, then the latents (listed apart)."""
        sites = self._result.objective.sites
        return [s for s in sites if s.get("kind") != "latent"] + [s for s in sites if s.get("kind") == "latent"]

    @property
    def is_point(self) -> bool:
        return self.method in _POINT

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
        for s in self._sites():
            out += obj.site_labels(s["name"], s["shape"])
        return out

    def _flat(self, d):
        return np.concatenate([np.ravel(np.asarray(d[s["name"]])) for s in self._sites()])

    def interval(self, prob: float = HDI_PROB):
        """Per scalar parameter, the ``prob`` interval: Wald for mle/map, HDI of the draws otherwise."""
        est, se = self._flat(self.estimate), self._flat(self.stderr)
        if self.is_point:
            from scipy.special import ndtri  # scipy is a dependency of arviz

            zq = float(ndtri(0.5 + prob / 2))
            return est - zq * se, est + zq * se
        if self.draws is None:
            return np.full_like(est, np.nan), np.full_like(est, np.nan)
        flat = np.concatenate(
            [np.asarray(self.draws[s["name"]]).reshape(-1, int(np.prod(s["shape"], dtype=int))) for s in self._sites()],
            axis=1,
        )
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
            if self.method == "nuts":
                s = az.summary(self.to_arviz(log_likelihood=False), var_names=[x["name"] for x in self._result.objective.sites], kind="diagnostics")
                df = df.join(s[["ess_bulk", "ess_tail", "r_hat"]])
        df.index.name = "param"
        df.attrs["method"] = self.method
        # the latents' rows (after the params'): for mle/map their conditional modes and sds
        obj = self._result.objective
        df.attrs["latent"] = [lab for s in self._sites() if s.get("kind") == "latent" for lab in obj.site_labels(s["name"], s["shape"])]
        return df

    def __repr__(self) -> str:
        d = self.diagnostics
        head = f"Fit(method={self.method!r}, model={self.model_name!r}, converged={d.get('converged')})"
        summary = self.summary()
        latent = summary.attrs["latent"]
        with pd.option_context("display.width", 120, "display.max_columns", 20, "display.precision", 4):
            table = summary.drop(index=latent).to_string()
        lines = [head, table]
        if latent:
            how = "integrated out; their conditional modes and sds" if self.is_point else "sampled with the params; their posterior means and sds"
            lines.append(f"latent: {', '.join(self.latent)} ({len(latent)} values, {how} are in summary())")
        warnings = d.get("warnings") or []
        if warnings:
            lines.append(f"{len(warnings)} warning(s):")
            lines += [f"  - {w}" for w in warnings]
        return "\n".join(lines)
