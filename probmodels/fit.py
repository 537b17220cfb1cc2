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

from . import _io, _progress
from .partitioned import is_partitioned
from ._data import as_data
from .solvers import REGISTRY, Objective, SolverResult
from .solvers._objective import WEIGHTS, check_weights, weighted_program

__all__ = ["fit", "Fit", "METHODS", "Site", "load"]

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
        unconstrained posterior with map); ``starts=K`` optimises from the start and K - 1
        points drawn around it on the unconstrained scale (from ``seed``), in one vmapped run,
        keeps the best optimum and reports in ``diagnostics["starts"]`` how many reached it.
        ``laplace``: a Gaussian at the mode of the unconstrained posterior. A program with
        ``latent`` sites: mle and map maximise the marginal likelihood with the latents
        integrated out (Laplace; ``joint=True`` for the joint mode), the other methods sample the
        latents with the params. ``vi``: SVI with a mean-field (``guide="normal"``) or full-rank
        (``"multivariate_normal"``) Gaussian. ``nuts``: numpyro's NUTS (``chains=4,
        warmup=1000, draws=1000, target_accept=0.8``).
    **options
        ``seed=0`` and ``init={name: value}`` (natural-space starting values) for every method,
        and the method's own (an unknown option is an error that lists them). Every method also
        takes ``coords={dim: labels}`` (labels for the dims of ``param(..., dims=...)``: tables
        show ``w[GPA]``, the InferenceData has the coordinates) and ``progress`` (True, False or
        None: on in a terminal or notebook) for NUTS's chains and VI's steps.
        ``weights`` (one number >= 0 per row of the observation): frequency weights, as
        statsmodels' ``freq_weights``: row ``i``'s log-likelihood counts ``w[i]`` times (the
        priors once), so integer weights give the fit of the data with rows repeated and 0/1
        weights the fit of a subset; a second fit with other weights of the same length
        compiles nothing new. Not with minibatches or dask data; criteria count ``n = sum(w)``.

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
    if isinstance(data, str) and not isinstance(method, str):
        raise TypeError(
            f"fit: arguments in the wrong order; write fit(model, data, {data!r}) (the data "
            "before the method)"
        )
    if not isinstance(method, str) or method not in REGISTRY:
        raise ValueError(f"fit: unknown method {method!r}; use one of {', '.join(METHODS)}")
    init = options.get("init")
    if init is not None and not isinstance(init, dict):
        raise TypeError("fit: init must be a dict {parameter name: natural-space value}")
    coords = options.pop("coords", None)
    show = _progress.resolve(options.pop("progress", None))
    weights = options.pop("weights", None)
    if weights is not None:
        if is_partitioned(data):
            raise ValueError("fit(weights=...): not with partitioned (dask) data; repeat or drop the rows instead")
        if options.get("batch_size") is not None:
            raise ValueError("fit(weights=...): not with minibatches (batch_size); fit all the rows")
        # the weights are a traced input of the program (one compiled program for every set of
        # weights of that length: the report's held-out refits reuse the full-data executables)
        model = weighted_program(model)
        data = {**as_data(data, "fit(data)"), WEIGHTS: check_weights(weights)}
    if is_partitioned(data):  # dask arrays: the passes over the rows run on the cluster
        from .solvers._partitioned import partitioned_objective

        obj = partitioned_objective(model, data, method, options)
    else:
        obj = Objective(model, data, init=init)
    if coords is not None or any(s.get("dims") for s in obj.sites):
        obj.set_coords(coords)
    with _progress.enabled(show):
        result = REGISTRY[method].solve(obj, dict(options))
    if obj.partitioned is not None:  # passes over the rows, bytes read, the scheduler
        result.diagnostics.update(obj.partitioned.info)
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
    def latent(self) -> tuple:
        """The program's ``latent`` sites (integrated out by mle/map, sampled by the posterior
        methods); every other site is a param."""
        return tuple(getattr(self._result.objective, "latent", ()))

    @property
    def is_point(self) -> bool:
        return self.kind == "point"

    @property
    def sites(self) -> tuple:
        """The fitted sites in table order, as :class:`Site` ``(name, shape, kind)``: the params
        (``kind="param"``; a plain ``numpyro.sample`` site is one too) in program order, then the
        ``latent`` sites (``kind="latent"``), listed apart."""
        sites = self._result.objective.sites
        ordered = [s for s in sites if s.get("kind") != "latent"] + [s for s in sites if s.get("kind") == "latent"]
        return tuple(Site(s["name"], tuple(s["shape"]), s.get("kind", "param")) for s in ordered)

    # -- what the workflow layer reads (predict, criteria, sensitivity) ----------------------

    @property
    def model(self):
        """The program this fit solved."""
        model = self._result.objective.model
        return getattr(model, "probmodels_program", model)  # (a weighted fit's own program)

    @property
    def data(self) -> dict:
        """The program's keyword arguments as fitted: static values and the arrays (numpy)."""
        obj = self._result.objective
        return {**obj.static, **{k: np.asarray(v) for k, v in obj.arrays.items() if k != WEIGHTS}}

    @property
    def weights(self) -> np.ndarray | None:
        """The frequency weights of the rows (``fit(..., weights=w)``), or None."""
        w = getattr(self._result.objective, "weights", None)
        return None if w is None else np.array(w)

    @property
    def observed(self) -> dict:
        """Observed site name -> the observed array."""
        return dict(self._result.objective.observed)

    @property
    def n_obs(self) -> int:
        """The number of observations (the batch size of every observation site, summed)."""
        return int(self._result.objective.n_obs)

    @property
    def parameter_sites(self) -> list[dict]:
        """One dict per unobserved site in trace order: ``name``, ``shape`` (natural), ``zshape``
        (unconstrained: its size counts the free parameters), ``param``, ``flat`` (no prior),
        ``kind`` (``"param"``, or ``"latent"`` for a ``latent`` site)."""
        return [
            {**{k: s[k] for k in ("name", "shape", "zshape", "param", "flat")}, "kind": s.get("kind", "param")}
            for s in self._result.objective.sites
        ]

    @property
    def point_cov(self) -> np.ndarray | None:
        """mle/map: the natural-space covariance of the estimate, flat in :meth:`labels` order
        (None for posterior fits and point fits without standard errors)."""
        cov = self._result.cov if self.is_point else None
        return None if cov is None else np.asarray(cov)

    # -- the workflow on a fit (probmodels.predict, probmodels.criteria) ----------------------

    def predict(self, data=None, *, draws=None, seed=0, parameter_uncertainty=False):
        """Predictions for new inputs, from the unchanged program.

        Parameters
        ----------
        data : dict, optional
            The program's keyword arguments for the new inputs, the observation omitted (or
            None); the fitted inputs when omitted.
        draws : int, optional
            Posterior fits: that many draws evenly spaced over the chains (default: every
            draw, shape ``(chains, draws)``). Point fits: the number of predictive draws (4000).
        seed : int
            Seed of the simulated noise.
        parameter_uncertainty : bool
            Point fits only: the band of the predictor is the Wald band by the delta method on
            the scale the noise model receives (``logits``, ``log_rate``, ``x_hat``), mapped
            through the inverse link (statsmodels' ``GLM.get_prediction``), and the new
            observations draw theta from the fit's Gaussian approximation. Without it: the
            plug-in predictive at theta-hat.

        Returns
        -------
        probmodels.predict.Prediction
            ``.draws``, ``.location``, ``.summary(prob=0.9)``, ``.to_arviz()``; with several
            observation sites ``prediction[site]`` is one site's. When ``data`` holds dask
            arrays chunked by rows (or the fit's did and ``data`` is None): a
            :class:`probmodels.partitioned.RowsPrediction`, whose draws and locations are dask
            arrays chunked like the rows, computed chunk by chunk with each chunk's noise
            seeded by ``(seed, chunk index)``; a chunk holds draws x rows values, so ask for
            ``draws=`` accordingly.

        Examples
        --------
        >>> new = {"u": np.linspace(0, 1, 5)}  # doctest: +SKIP
        >>> fit.predict(new).summary(prob=0.9)  # doctest: +SKIP
        """
        from .predict import predict

        return predict(self, data, draws=draws, seed=seed, parameter_uncertainty=parameter_uncertainty)

    def criteria(self):
        """Information criteria on the elpd scale (see :func:`probmodels.criteria`): for mle/map
        ``log_likelihood``, ``k``, ``n``, ``aic``, ``aicc``, ``bic`` and ``elpd`` (= log-likelihood
        - k); for posterior fits PSIS-LOO and WAIC with ``elpd`` = ``elpd_loo``."""
        from .criteria import fit_criteria

        return fit_criteria(self)

    # -- ArviZ -------------------------------------------------------------------------------

    def to_arviz(self, log_likelihood: bool = True, posterior_predictive: bool = True) -> az.InferenceData:
        """The fit as an ``arviz.InferenceData``.

        Groups: ``posterior`` (the draws), ``sample_stats`` (NUTS), ``observed_data``,
        ``log_likelihood`` (per observation, so ``az.loo`` works; computed on first request),
        ``posterior_predictive`` (replicated observations at the fitted inputs, one per draw,
        named like the observation site; plug-in replicates at theta-hat for mle/map),
        ``log_prior`` (per draw, per parameter) and ``constant_data`` (the array inputs), so that
        ``az.plot_ppc``, ``az.plot_loo_pit``, ``az.plot_bpv`` and ``az.psens`` work on it. The
        replicates are left out, with a warning, when draws x observations exceed 1e8 values;
        ``posterior_predictive=False`` leaves them out anyway.
        Attributes: the method, the point estimate (JSON), what the posterior group holds.
        """
        key = ("idata", bool(log_likelihood), bool(posterior_predictive))
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
        # rows on a cluster: observed_data and log_likelihood would bring every row into memory
        in_memory = obj.partitioned is None
        if obj.observed and in_memory:
            groups["observed_data"] = {k: np.asarray(v) for k, v in obj.observed.items()}
        if r.sample_stats is not None:
            groups["sample_stats"] = r.sample_stats
        n_cells = 0 if zdraws is None else int(np.prod(zdraws.shape[:2])) * obj.n_obs
        if not in_memory:
            attrs_note = "observed_data and log_likelihood omitted: the data are partitioned (dask); score them with log_predictive_density"
        elif log_likelihood and n_cells > _MAX_LOGLIK_CELLS:
            attrs_note = (
                f"log_likelihood omitted: {n_cells:.2e} values (draws x observations) exceed "
                f"{_MAX_LOGLIK_CELLS:.0e}; thin the draws or score a subset of the data"
            )
            log_likelihood = False
        else:
            attrs_note = ""
        if log_likelihood and zdraws is not None and obj.observed and in_memory:
            if "log_likelihood" not in self._cache:  # shared by every variant of the idata
                c, d = zdraws.shape[:2]
                ll = obj.fns["pointwise_batch"](np.asarray(zdraws.reshape(c * d, -1)), obj.arrays)
                self._cache["log_likelihood"] = {
                    k: np.asarray(v).reshape((c, d) + np.shape(v)[1:]) for k, v in ll.items()
                }
            groups["log_likelihood"] = self._cache["log_likelihood"]
        dims = {}
        for k, v in obj.observed.items():
            dims[k] = [f"{k}_dim_{i}" for i in range(np.ndim(v))]
        dims.update({s["name"]: list(s["dims"]) for s in obj.sites if s.get("dims")})
        coords = dict(getattr(obj, "coords", None) or {})
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
        extra = self._workflow_groups(posterior_predictive)
        groups.update({k: v for k, v in extra.items() if k != "log_prior"})
        idata = az.from_dict(**groups, dims=dims, coords=coords or None, attrs=attrs)
        idata.add_groups(log_prior=az.dict_to_dataset(extra["log_prior"]))
        for g in idata.groups():
            getattr(idata, g).attrs.update(attrs)
        self._cache[key] = idata
        return idata

    # -- covariance, saving --------------------------------------------------------------------

    @property
    def cov(self) -> pd.DataFrame:
        """The covariance matrix of the estimates, labelled by parameter (``w[GPA]``).

        Point fits: the inverse observed information (or the sandwich, with
        ``stderr="sandwich"``), mapped to the natural space by the delta method, as
        statsmodels' ``cov_params()``; posterior fits: the covariance of the draws.
        """
        if "cov" not in self._cache:
            labels = self.labels()
            r = self._result
            if self.is_point:
                if r.cov is None:
                    c = np.full((len(labels), len(labels)), np.nan)
                else:  # the solver's covariance is in program order; the table lists latents last
                    order = self._table_order()
                    c = np.asarray(r.cov)[np.ix_(order, order)]
            elif self.draws is None:
                c = np.full((len(labels), len(labels)), np.nan)
            else:
                c = np.atleast_2d(np.cov(self.flat_draws(), rowvar=False))
            self._cache["cov"] = pd.DataFrame(c, index=pd.Index(labels, name="param"), columns=labels)
        return self._cache["cov"].copy()

    def save(self, path: str, *, draws: bool = True, log_likelihood: bool = True):
        """Write the fit to a NetCDF file that :func:`probmodels.load` reads back as a ``Fit``.

        The file is the fit's ``InferenceData`` (``az.from_netcdf`` reads it too) with the
        method, estimates, standard errors, covariance, diagnostics, warnings and options kept as
        JSON in its attributes. ``draws=False`` keeps only the estimate (one draw) and covariance:
        for a point fit, what its tables show, without its Gaussian approximation's draws;
        ``log_likelihood=False`` leaves out the per-observation log-likelihood of the draws
        (draws x observations values, which only LOO needs).
        """
        _io.save(self, path, draws=draws, log_likelihood=log_likelihood)

    def __reduce__(self):
        # the solver's compiled functions (closures) do not pickle; a pickled Fit keeps its
        # numbers (as a loaded one does) and drops the program
        return (_io.restore, (_io.state(self),))

    def _workflow_groups(self, posterior_predictive: bool) -> dict:
        """``log_prior``, ``constant_data`` and (asked for and not too large)
        ``posterior_predictive``, from :mod:`probmodels.predict`."""
        import warnings

        from .predict import constant_data, log_prior, replicates

        if "log_prior" not in self._cache:
            self._cache["log_prior"] = log_prior(self)
        out = {"log_prior": self._cache["log_prior"]}
        if self._result.objective.partitioned is not None:
            # rows on a cluster: the in-memory arrays are a sample of them, not the fitted inputs
            return out
        const = constant_data(self)
        if const:
            out["constant_data"] = const
        if posterior_predictive and self.observed:
            if "replicates" not in self._cache:
                self._cache["replicates"] = replicates(self)
            pp = self._cache["replicates"]
            if pp is None:
                warnings.warn(
                    f"{self.method} fit of {self.model_name}: posterior_predictive left out of "
                    "to_arviz (draws x observations exceed 1e8 values); thin the draws, or pass "
                    "to_arviz(posterior_predictive=False) to leave it out without this warning",
                    RuntimeWarning,
                    stacklevel=3,
                )
            else:
                out["posterior_predictive"] = pp
        return out

    # -- tables ------------------------------------------------------------------------------

    def labels(self) -> list[str]:
        """Scalar parameter labels: ``slope``, ``w[0]``, ``w[1]``, ..."""
        obj: Objective = self._result.objective
        out = []
        for s in self.sites:
            out += obj.site_labels(s.name, s.shape)
        return out

    def _table_order(self) -> np.ndarray:
        """Positions in the solver's flat (program-order) vector of the table's entries."""
        start, i = {}, 0
        for s in self._result.objective.sites:
            start[s["name"]] = i
            i += int(np.prod(s["shape"], dtype=int))
        return np.concatenate(
            [start[s.name] + np.arange(int(np.prod(s.shape, dtype=int))) for s in self.sites]
        ).astype(int)

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
        (another must have the same parameters). With ``data`` of dask arrays (or a fit to them
        and no ``data``), a dask array chunked like the rows along its second axis, scored chunk
        by chunk on the cluster (the program must observe one value per row).
        """
        r = self._result
        old: Objective = r.objective
        if not hasattr(old, "fns"):  # a loaded or unpickled fit: its saved numbers, no program
            return self._saved_log_likelihood(data, model)
        if data is None and old.partitioned is not None:  # the fitted rows, on the cluster
            data = {**old.partitioned.part.fixed, **old.partitioned.part.rows}
        if is_partitioned(data):
            from .solvers._partitioned import partitioned_scores

            return partitioned_scores(self, model or self.model, data, "pointwise")
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

    def _saved_log_likelihood(self, data, model) -> np.ndarray:
        """:meth:`pointwise_log_likelihood` of a loaded fit: the draws' log-likelihood it was
        saved with (a posterior's, on its own data)."""
        idata = self._cache.get(("idata", True, False))
        if data is not None or model is not None or self.is_point or idata is None or "log_likelihood" not in idata.groups():
            raise ValueError(
                f"pointwise_log_likelihood: this {self.method} fit was loaded (or unpickled) and holds "
                "no program, only what was saved: the log-likelihood of a posterior's draws on its own "
                "data when saved with log_likelihood=True; refit it to score new data or a point estimate"
            )
        ll = idata.log_likelihood
        return np.concatenate([np.asarray(ll[k]).reshape(-1, int(np.prod(ll[k].shape[2:], dtype=int))) for k in ll.data_vars], axis=1)

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
                s = az.summary(self.to_arviz(log_likelihood=False, posterior_predictive=False), var_names=[x.name for x in self.sites], kind="diagnostics")
                df = df.join(s[["ess_bulk", "ess_tail", "r_hat"]])
        df.index.name = "param"
        df.attrs["method"] = self.method
        # the latents' rows (after the params'): for mle/map their conditional modes and sds
        obj = self._result.objective
        df.attrs["latent"] = [lab for s in self.sites if s.kind == "latent" for lab in obj.site_labels(s.name, s.shape)]
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


def load(path: str) -> Fit:
    """Read a fit written by :meth:`Fit.save` (NetCDF).

    The loaded ``Fit`` has the method, ``estimate``, ``stderr``, ``draws``, ``diagnostics``
    (warnings included), ``cov``, ``summary()``, ``repr``, ``to_arviz()`` and works in
    :func:`probmodels.compare`; it does not hold the program (refit to predict on new data).
    """
    return _io.load(path)
