"""Predictions for new inputs and replicated data: ``Fit.predict``, ``Prediction``, ``prior_predictive``.

Every function here runs the unchanged program under numpyro's handlers: ``substitute`` puts a
draw of the parameters (natural space) in place, a handler turns the observation sites into
simulations (``obs`` dropped), ``seed`` feeds the noise, and ``vmap`` runs all draws in one
compiled call. The noise is drawn with XLA's RngBitGenerator keys (``"rbg"``), 2-4 times
faster on CPU than threefry, when every noise model samples by a closed-form transform of
uniforms (Gaussian, Bernoulli, Categorical, Laplace, Logistic, Cauchy, Student-t); a program with
a rejection sampler (Poisson, Binomial, ...) draws with threefry. The same seed gives the same
draws. The compiled functions are kept per program and static data, so a second call with
inputs of the same shapes compiles nothing (:func:`trace_count` counts the traces).

The ``location`` of an observation is its noise model's predictor at each draw,
``noise.inverse_link(x_hat)``: the mean function for additive noise, the probability for
Bernoulli and Binomial, the class probabilities for Categorical, the rate for Poisson.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd
from numpyro import handlers
from numpyro.primitives import Messenger
from scipy.special import ndtri

from ._config import jit
from .program import _MARK, OBSERVE
from .solvers._objective import is_flat, is_loglik_site, split_data, static_key

__all__ = [
    "Prediction",
    "predict",
    "prior_predictive",
    "replicates",
    "log_prior",
    "constant_data",
    "trace_count",
    "PLUG_IN_DRAWS",
    "quantiles",
]

PLUG_IN_DRAWS = 4000  # a point fit's predictive draws when none are asked for (laplace's default)
_TRACES: collections.Counter = collections.Counter()
_CACHE: "collections.OrderedDict[tuple, dict]" = collections.OrderedDict()
_CACHE_SIZE = 64
_REPLICATED = "_probmodels_replicated"
# The noise is drawn from XLA's RngBitGenerator ("rbg": 2-4x faster than threefry on CPU, where
# generating 4e7 numbers dominates a prediction) when every simulated site's sampler is a
# closed-form transform of uniforms (below); any other sampler (Poisson, Binomial, gamma-based:
# rejection loops, which JAX refuses or runs pathologically slowly with batched rbg keys) makes
# the program draw with threefry, decided once per program at its first prediction.
_FAST_RNG, _SAFE_RNG = "rbg", "threefry2x32"


def _fast_samplers() -> set:
    from .noise.additive import _StudentT  # its gamma draws loop on threefry keys of their own

    return {
        c.sample
        for c in (dist.Normal, dist.BernoulliLogits, dist.BernoulliProbs, dist.CategoricalLogits,
                  dist.CategoricalProbs, dist.Laplace, dist.Logistic, dist.Cauchy, _StudentT)
    }


def trace_count(model=None) -> int:
    """How many times JAX traced the predictive functions of ``model`` (or of every program)."""
    return sum(v for k, v in _TRACES.items() if model is None or k[0] is model)


class _Simulate(Messenger):
    """Every observation site becomes a simulation: its ``obs`` is dropped (the site is sampled
    from its noise model) and it is marked so that the trace can find it."""

    def process_message(self, msg):
        if msg["type"] != "sample" or msg["name"].startswith("_") or isinstance(msg["fn"], dist.Unit):
            return
        if msg["is_observed"] or (msg["infer"] or {}).get(_MARK) == OBSERVE:
            msg["is_observed"] = False
            msg["value"] = None
            msg["infer"] = {**(msg["infer"] or {}), _REPLICATED: True}


def _location(site):
    """The noise model's predictor at a simulated site, broadcast to the site's shape (plus a
    class axis for vector predictors such as softmax probabilities)."""
    fn, infer = site["fn"], site["infer"]
    shape = tuple(fn.batch_shape + fn.event_shape)
    if infer.get("x_hat") is not None and infer.get("noise") is not None:
        loc = jnp.asarray(infer["noise"].inverse_link(infer["x_hat"]))
    else:  # a plain numpyro observation: its distribution's mean
        try:
            loc = jnp.asarray(fn.mean)
        except (NotImplementedError, AttributeError):
            loc = jnp.full(shape, jnp.nan)
    if loc.ndim > len(shape) or (loc.ndim == len(shape) and shape and loc.shape[-1] != shape[-1] and loc.shape[-1] > 1):
        return jnp.broadcast_to(loc, shape + loc.shape[-1:])
    return jnp.broadcast_to(loc, shape)


def _eta(site):
    """``x_hat`` on the scale the noise model receives (logits, log-rate, the mean function)."""
    fn, x_hat = site["fn"], site["infer"].get("x_hat")
    shape = tuple(fn.batch_shape + fn.event_shape)
    x_hat = jnp.asarray(x_hat)
    return jnp.broadcast_to(x_hat, shape + x_hat.shape[len(shape):] if x_hat.ndim > len(shape) else shape)


def _simulated(tr):
    return {k: s for k, s in tr.items() if s["type"] == "sample" and s["infer"].get(_REPLICATED)}


def _functions(model, static, names, shapes):
    """The compiled predictive functions of one program, static data and parameter layout."""
    key = (model, static_key(static), tuple(names), tuple(shapes))
    fns = _CACHE.get(key)
    if fns is not None:
        _CACHE.move_to_end(key)
        return fns
    sizes = [int(np.prod(s, dtype=int)) for s in shapes]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)

    def trace(values, rng_key, arrays):
        m = _Simulate(handlers.substitute(model, data=values))
        return handlers.trace(handlers.seed(m, rng_key)).get_trace(**static, **arrays)

    order = []  # the observation sites in trace order (JAX returns dicts sorted by key)

    def one(values, rng_key, arrays):
        tr = _simulated(trace(values, rng_key, arrays))
        order[:] = list(tr)
        return {k: s["value"] for k, s in tr.items()}, {k: _location(s) for k, s in tr.items()}

    def per_draw(values, seed, arrays, impl):
        _TRACES[key] += 1  # runs only when JAX traces this function
        n = jax.tree_util.tree_leaves(values)[0].shape[0]
        keys = jax.random.split(jax.random.key(seed, impl=impl), n)
        return jax.vmap(one, in_axes=(0, 0, None))(values, keys, arrays)

    def probe(values, arrays):
        """True when every simulated site of the program samples without loops (see _FAST_RNG)."""
        fast = []

        def run(v, a):
            tr = _simulated(trace(v, jax.random.key(0, impl=_SAFE_RNG), a))
            fast.append(all(getattr(type(s["fn"]), "sample", None) in samplers for s in tr.values()))
            return 0.0

        samplers = _fast_samplers()
        abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x)), (values, arrays))
        jax.eval_shape(run, *abstract)
        return bool(fast and fast[0])

    def shared(values, seed, arrays, n, impl):
        _TRACES[key] += 1
        keys = jax.random.split(jax.random.key(seed, impl=impl), n)
        x, loc = jax.vmap(one, in_axes=(None, 0, None))(values, keys, arrays)
        return x, {k: v[0] for k, v in loc.items()}  # the location is the same at every draw

    def unflatten(theta):
        return {k: jnp.reshape(theta[offsets[i] : offsets[i + 1]], shapes[i]) for i, k in enumerate(names)}

    def delta(theta, cov, zq, arrays):
        """The Wald band of the predictor by the delta method on the link scale (statsmodels'
        ``GLM.get_prediction``): ``eta +- z se(eta)`` mapped through the inverse link; the
        standard error of the predictor is ``|d mu / d eta| se(eta)`` (from its own Jacobian)."""
        _TRACES[key] += 1

        def eta_mu(t):
            tr = _simulated(trace(unflatten(t), jax.random.PRNGKey(0), arrays))
            return {k: (_eta(s), _location(s)) for k, s in tr.items()}, {k: s["infer"].get("noise") for k, s in tr.items()}

        values, noises = eta_mu(theta)
        jac = jax.jacfwd(lambda t: eta_mu(t)[0])(theta)
        out = {}
        for k, (eta, mu) in values.items():
            if noises[k] is None:
                raise ValueError(
                    f"predict: observation site {k!r} is not a probmodels observe() site, so it has "
                    "no x_hat for a Wald band; write it with observe(name, noise..., obs=x)"
                )
            j_eta, j_mu = (jnp.reshape(a, (-1, theta.size)) for a in jac[k])
            se_eta = jnp.sqrt(jnp.sum((j_eta @ cov) * j_eta, axis=1)).reshape(eta.shape)
            se_mu = jnp.sqrt(jnp.sum((j_mu @ cov) * j_mu, axis=1)).reshape(mu.shape)
            if eta.shape == mu.shape:  # a scalar, increasing inverse link (identity, sigmoid, exp)
                lo, hi = noises[k].inverse_link(eta - zq * se_eta), noises[k].inverse_link(eta + zq * se_eta)
            else:  # a vector link (softmax): the band on the predictor's own scale
                lo, hi = jnp.clip(mu - zq * se_mu, 0.0, 1.0), jnp.clip(mu + zq * se_mu, 0.0, 1.0)
            out[k] = (mu, se_mu, lo, hi)
        return out

    def log_terms(values, arrays):
        """Per draw: the log prior density of every latent site (summed over its elements)."""
        _TRACES[key] += 1

        def one_lp(v):
            tr = handlers.trace(handlers.seed(handlers.substitute(model, data=v), 0)).get_trace(**static, **arrays)
            return {k: jnp.sum(tr[k]["fn"].log_prob(tr[k]["value"])) for k in names}

        return jax.lax.map(one_lp, values, batch_size=256)

    fns = dict(
        per_draw=jit(per_draw, static_argnames=("impl",)),
        shared=jit(shared, static_argnames=("n", "impl")),
        delta=jit(delta),
        log_prior=jit(log_terms),
        order=order,
        probe=probe,
        impl=None,  # the random number generator, chosen at the first simulation
    )
    _CACHE[key] = fns
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return fns


def _simulate(fns, which, *args, **kwargs):
    """Call the predictive function ``which`` ("per_draw" or "shared") with the program's random
    number generator (chosen by an abstract trace at its first simulation, see ``_FAST_RNG``)."""
    if fns["impl"] is None:
        values, arrays = args[0], args[2]
        one = values if which == "shared" else jax.tree_util.tree_map(lambda v: v[0], values)
        fns["impl"] = _FAST_RNG if fns["probe"](one, arrays) else _SAFE_RNG
    return fns[which](*args, impl=fns["impl"], **kwargs)


def _fit_functions(fit, static):
    sites = fit.parameter_sites
    return _functions(fit.model, static, [s["name"] for s in sites], [tuple(s["shape"]) for s in sites])


def _flat_draws(fit, names):
    """Natural-space draws with chains and draws merged: ``({name: (S, *shape)}, (chains, draws))``."""
    d = fit.draws
    lead = np.shape(d[names[0]])[:2]
    return {k: np.asarray(d[k]).reshape((-1,) + np.shape(d[k])[2:]) for k in names}, lead


def _thin(values, lead, n, where):
    """``n`` draws evenly spaced over all chains (``lead`` kept when ``n`` is None)."""
    total = int(np.prod(lead))
    if n is None:
        return values, lead
    n = _count(n, where)
    if n > total:
        raise ValueError(f"{where}: draws={n} but the fit has {total} draws; ask for at most {total}")
    idx = np.linspace(0, total - 1, n).round().astype(int)
    return {k: v[idx] for k, v in values.items()}, (1, n)


def _count(n, where):
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{where}: draws must be a positive whole number, got {n!r}")
    return int(n)


@dataclass(frozen=True)
class Prediction:
    """Predictions of a fit for new inputs: one result per observation site.

    Attributes
    ----------
    method : str
        The fit's method.
    kind : str
        ``"posterior"`` (one predictive draw per posterior draw), ``"plug-in"`` (the predictive
        at theta-hat) or ``"plug-in + parameter uncertainty"`` (point fits with a Wald band).
    sites : tuple of str
        The observation sites, in trace order.
    inputs : dict
        The array inputs the predictions were made for.

    With one observation site, ``draws`` and ``location`` are its arrays; with several,
    ``prediction["site"]`` is the prediction of one site (``draws`` and ``location`` then ask
    for it), while ``summary()`` stacks the sites (index ``(site, row)``) and ``to_arviz()`` holds
    them all.
    """

    method: str
    kind: str
    sites: tuple
    inputs: dict
    _draws: dict = field(repr=False)
    _location: dict = field(repr=False)
    # point fits with parameter uncertainty: prob -> {site: (mean, se, low, high)}, the Wald band
    _wald: object = field(default=None, repr=False)

    def __getitem__(self, site: str) -> "Prediction":
        if site not in self.sites:
            raise KeyError(f"Prediction: no observation site {site!r}; the sites are {list(self.sites)}")
        return Prediction(
            self.method, self.kind, (site,), self.inputs, {site: self._draws[site]},
            {site: self._location[site]}, self._wald,
        )

    def _one(self, what: str):
        if len(self.sites) != 1:
            raise ValueError(
                f"Prediction.{what}: the program has {len(self.sites)} observation sites "
                f"({', '.join(self.sites)}); use prediction[site].{what}"
            )
        return getattr(self, f"_{what}")[self.sites[0]]

    @property
    def draws(self) -> np.ndarray:
        """New observations, ``(chains, draws, *obs_shape)``."""
        return self._one("draws")

    @property
    def location(self) -> np.ndarray:
        """The noise model's predictor at each draw (``(chains, draws, *obs_shape)``; a class
        axis more for Categorical). For a plug-in prediction it is the same at every draw."""
        return self._one("location")

    def summary(self, prob: float = 0.9) -> pd.DataFrame:
        """One row per new observation: ``mean``, ``sd``, ``mean_low``, ``mean_high``,
        ``obs_low``, ``obs_high``.

        ``mean`` is the predictive mean of the predictor (posterior fits: its mean over the
        draws; point fits: its value at theta-hat) and ``sd`` its standard error (the sd over the
        draws; the delta-method standard error with ``parameter_uncertainty``; 0 for the plug-in).
        ``mean_low``/``mean_high`` bound the predictor (equal-tailed quantiles of the draws; the
        Wald band on the link scale mapped through the inverse link, as statsmodels'
        ``GLM.get_prediction``, for point fits with parameter uncertainty; ``mean`` itself for
        the plug-in), ``obs_low``/``obs_high`` a new observation (equal-tailed quantiles of the
        predictive draws). Several sites: the tables stacked, index ``(site, row)``.
        """
        if not 0 < prob < 1:
            raise ValueError(f"Prediction.summary: prob must be in (0, 1), got {prob}")
        wald = None if self._wald is None else self._wald(prob)
        frames = {site: self._site_summary(site, prob, wald) for site in self.sites}
        if len(frames) == 1:
            return next(iter(frames.values()))
        return pd.concat(frames, names=["site"])

    def _site_summary(self, site, prob, wald):
        a = (1 - prob) / 2
        x = np.asarray(self._draws[site])
        x = x.reshape((-1,) + x.shape[2:])
        loc = np.asarray(self._location[site])
        obs_lo, obs_hi = quantiles(x, [a, 1 - a])
        if self.kind == "posterior":
            loc = loc.reshape((-1,) + loc.shape[2:])
            mean, sd = loc.mean(axis=0), loc.std(axis=0, ddof=1)
            lo, hi = np.quantile(loc, [a, 1 - a], axis=0)
        elif wald is not None:
            mean, sd, lo, hi = (np.asarray(v) for v in wald[site])
        else:
            mean = loc[0, 0]
            sd, lo, hi = np.zeros_like(mean), mean, mean
        if np.ndim(mean) > np.ndim(obs_lo):  # a class axis: one row per (observation, class)
            k = np.shape(mean)[-1]
            obs_lo, obs_hi = (np.repeat(v[..., None], k, axis=-1) for v in (obs_lo, obs_hi))
        cols = dict(mean=mean, sd=sd, mean_low=lo, mean_high=hi, obs_low=obs_lo, obs_high=obs_hi)
        shape = np.shape(mean)
        if len(shape) == 1:
            index = pd.RangeIndex(shape[0], name="row")
        else:
            index = pd.MultiIndex.from_tuples(list(np.ndindex(*shape)))
        df = pd.DataFrame({k: np.ravel(np.asarray(v, dtype=float)) for k, v in cols.items()}, index=index)
        df.attrs.update(method=self.method, kind=self.kind, prob=prob)
        return df

    def to_arviz(self) -> az.InferenceData:
        """ArviZ's ``predictions`` (the draws, named like the observation sites) and
        ``predictions_constant_data`` (the new inputs)."""
        return az.from_dict(
            predictions={k: np.asarray(v) for k, v in self._draws.items()},
            predictions_constant_data={k: np.asarray(v) for k, v in self.inputs.items()},
            attrs=dict(probmodels_method=self.method, prediction_kind=self.kind),
        )


_COUNTED_RANGE = 32  # whole-number draws spanning at most this many values: quantiles by counting


def quantiles(x, probs) -> np.ndarray:
    """``np.quantile(x, probs, axis=0)`` (its default linear interpolation between order
    statistics), by counting when ``x`` holds whole numbers over a short range (Bernoulli,
    Binomial and small Poisson draws): one comparison pass per value instead of a partial sort,
    ten times faster on millions of draws."""
    x = np.asarray(x)
    if x.dtype.kind not in "biu" or x.shape[0] < 2 or x.size == 0:
        return np.quantile(x, probs, axis=0)
    lo, hi = int(x.min()), int(x.max())
    if hi - lo > _COUNTED_RANGE:
        return np.quantile(x, probs, axis=0)
    n = x.shape[0]
    # at_most[v - lo] = how many draws of each column are <= v, for v in lo .. hi - 1
    at_most = np.stack([np.count_nonzero(x <= v, axis=0) for v in range(lo, hi)]) if hi > lo else None

    def order_statistic(j):  # the (j+1)-th smallest: lo + #{v : at most j draws are <= v}
        if at_most is None:
            return np.full(x.shape[1:], float(lo))
        return lo + np.count_nonzero(at_most <= j, axis=0).astype(float)

    out = []
    for h in np.quantile(np.arange(n, dtype=float), probs):  # numpy's virtual index (n - 1) p
        j = int(np.floor(h))
        t = h - j
        a = order_statistic(j)
        b = order_statistic(min(j + 1, n - 1))
        # numpy's _lerp, so that the result is the same number
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)
    return np.stack(out)


def predict(fit, data=None, *, draws=None, seed=0, parameter_uncertainty=False) -> Prediction:
    """Predictions of a fit for new inputs (see :meth:`probmodels.Fit.predict`)."""
    where = f"predict({fit.method})"
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"{where}: seed must be an integer, got {seed!r}")
    from .partitioned import is_partitioned, predict_rows  # (partitioned imports this module)

    engine = getattr(fit._result.objective, "partitioned", None)
    if data is None and engine is not None:  # the fitted rows, on the cluster
        data = {**engine.part.fixed, **engine.part.rows}
    if is_partitioned(data):  # dask arrays: chunk by chunk, results chunked like the rows
        return predict_rows(fit, data, draws=draws, seed=seed, parameter_uncertainty=parameter_uncertainty, where=where)
    static, arrays = _inputs(fit, data, where)
    try:
        return _predict(fit, static, arrays, draws, seed, parameter_uncertainty, where)
    except (TypeError, ValueError) as e:
        mismatch = _shape_mismatch(fit, arrays, where)
        if mismatch:
            raise ValueError(f"{mismatch} (the program failed on them: {e})") from e
        raise


def _predict(fit, static, arrays, draws, seed, parameter_uncertainty, where):
    fns = _fit_functions(fit, static)
    names = [s["name"] for s in fit.parameter_sites]
    seed_arr = np.uint32(seed)
    wald, kind = None, "posterior"
    if fit.is_point and not parameter_uncertainty:
        kind = "plug-in"
        n = PLUG_IN_DRAWS if draws is None else _count(draws, where)
        lead = (1, n)
        est = {k: np.asarray(fit.estimate[k]) for k in names}
        x, loc = _simulate(fns, "shared", est, seed_arr, arrays, n=n)
        loc = {k: np.broadcast_to(np.asarray(v), lead + np.shape(v)) for k, v in loc.items()}
    else:
        if fit.is_point:
            wald = _wald(fit, fns, names, arrays, where)
            kind = "plug-in + parameter uncertainty"
        elif fit.draws is None:
            raise ValueError(f"{where}: the {fit.method} fit has no draws (see its warnings)")
        values, lead = _thin(*_flat_draws(fit, names), draws, where)
        x, loc = _simulate(fns, "per_draw", values, seed_arr, arrays)
        loc = {k: np.asarray(v).reshape(lead + np.shape(v)[1:]) for k, v in loc.items()}
    x = {k: np.asarray(x[k]).reshape(lead + np.shape(x[k])[1:]) for k in fns["order"]}
    if not x:
        raise ValueError(f"{where}: the program has no observation site to predict")
    inputs = {k: np.asarray(v) for k, v in arrays.items()}
    return Prediction(fit.method, kind, tuple(x), inputs, x, loc, wald)


def _inputs(fit, data, where):
    """``(static, arrays)`` of the new inputs (the fitted data when ``data`` is None)."""
    if data is None:
        data = fit.data
    elif not isinstance(data, dict):
        example = ", ".join(f"{k!r}: ..." for k in fit.data if k not in fit.observed)
        raise TypeError(
            f"{where}: data must be a dict of the program's keyword arguments (the new inputs), "
            f"e.g. {{{example}}}; got {type(data).__name__}"
        )
    return split_data(fit.model, data, where)


def _shape_mismatch(fit, arrays, where):
    """The new array inputs whose shape differs from the fitted one's beyond the first (row)
    axis, in words; "" when every one matches."""
    bad = []
    for k, v in arrays.items():
        old = fit.data.get(k)
        if old is None or not hasattr(old, "shape"):
            continue
        new_shape, old_shape = tuple(np.shape(v)), tuple(np.shape(old))
        if len(new_shape) != len(old_shape) or new_shape[1:] != old_shape[1:]:
            bad.append(f"data[{k!r}] has shape {new_shape}, the fitted data[{k!r}] had {old_shape}")
    if not bad:
        return ""
    return f"{where}: " + "; ".join(bad) + "; new inputs must match the fitted ones in every axis but the first (rows)"


def _wald(fit, fns, names, arrays, where):
    """prob -> the delta-method band of a point fit (one compiled call per probability)."""
    cov = fit.point_cov
    if cov is None or fit.draws is None or not np.all(np.isfinite(np.diag(cov))):
        raise ValueError(
            f"{where}: parameter_uncertainty=True needs the fit's standard errors (its Gaussian "
            "approximation), which this fit does not have (see its warnings); use "
            "parameter_uncertainty=False for the plug-in predictive"
        )
    theta = np.concatenate([np.ravel(np.asarray(fit.estimate[k])) for k in names])

    def band(prob):
        zq = float(ndtri(0.5 + prob / 2))
        return {k: tuple(np.asarray(a) for a in v) for k, v in fns["delta"](theta, cov, zq, arrays).items()}

    return band


# ---------------------------------------------------------------------------------------------
# the groups Fit.to_arviz adds: posterior_predictive, log_prior, constant_data

_MAX_REPLICATE_CELLS = 100_000_000  # draws x observations: 0.8 GB of float64


def _posterior_values(fit, names):
    """The draws of the posterior group (chains merged) and their ``(chains, draws)``; a bare
    point fit's one "draw" at the estimate."""
    if fit.draws is None:
        return {k: np.asarray(fit.estimate[k])[None] for k in names}, (1, 1)
    return _flat_draws(fit, names)


def replicates(fit, seed: int = 0) -> dict:
    """Replicated observations at the fitted inputs, one per draw of the posterior group
    (``(chains, draws, *obs_shape)`` per observation site): posterior fits simulate at each draw,
    mle/map at theta-hat (the plug-in predictive), as many as the posterior group has draws.
    None when draws x observations would exceed 1e8 values."""
    static, arrays = _inputs(fit, None, "replicates")
    fns = _fit_functions(fit, static)
    names = [s["name"] for s in fit.parameter_sites]
    values, lead = _posterior_values(fit, names)
    n_obs = sum(int(np.size(v)) for v in fit.observed.values())
    if int(np.prod(lead)) * n_obs > _MAX_REPLICATE_CELLS:
        return None
    if fit.is_point:
        est = {k: np.asarray(fit.estimate[k]) for k in names}
        x, _ = _simulate(fns, "shared", est, np.uint32(seed), arrays, n=int(np.prod(lead)))
    else:
        x, _ = _simulate(fns, "per_draw", values, np.uint32(seed), arrays)
    return {k: np.asarray(v).reshape(lead + np.shape(v)[1:]) for k, v in x.items()}


def log_prior(fit) -> dict:
    """Per draw of the posterior group, the log prior density of every latent site (summed over
    its elements; 0 for a flat parameter): ``{name: (chains, draws)}``, ArviZ's ``log_prior``."""
    static, arrays = _inputs(fit, None, "log_prior")
    fns = _fit_functions(fit, static)
    names = [s["name"] for s in fit.parameter_sites]
    values, lead = _posterior_values(fit, names)
    lp = fns["log_prior"](values, arrays)
    return {k: np.asarray(v).reshape(lead) for k, v in lp.items()}


def constant_data(fit) -> dict:
    """The fitted array inputs, the observations left out (an array equal to an observed site's
    values is taken for that observation)."""
    observed = [np.asarray(v) for v in fit.observed.values()]
    out = {}
    for k, v in fit.data.items():
        if not isinstance(v, np.ndarray):
            continue
        if any(o.shape == v.shape and np.array_equal(o, v) for o in observed):
            continue
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------
# prior predictive

_PRIOR_CACHE: "collections.OrderedDict[tuple, object]" = collections.OrderedDict()


class _NoFlat(Messenger):
    """A prior predictive needs a prior on every latent site: a flat one is named in the error."""

    def __init__(self, fn, where):
        self.where = where
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and not msg["is_observed"] and msg["value"] is None and is_flat(msg["fn"]):
            raise ValueError(
                f"{self.where}: parameter {msg['name']!r} has no prior (flat over its support), so "
                "the program has no prior predictive; give it a proper prior "
                f"(param({msg['name']!r}, prior=...)) to simulate from the prior"
            )


def prior_predictive(model, data, draws: int = 1000, seed: int = 0) -> az.InferenceData:
    """Simulate parameters from their priors and observations from the noise models.

    Parameters
    ----------
    model : callable
        A probmodels program.
    data : dict
        Its keyword arguments: the inputs, with or without the observation.
    draws : int
        Number of simulations.
    seed : int

    Returns
    -------
    arviz.InferenceData
        ``prior`` (latent and deterministic sites), ``prior_predictive`` (the observation sites,
        simulated) and ``observed_data`` when the observation is given; shapes
        ``(1, draws, ...)``.

    Raises
    ------
    ValueError
        When a parameter has no prior (flat): it has no prior predictive; the error names it.

    Examples
    --------
    >>> idata = probmodels.prior_predictive(line, {"u": u, "x": x}, draws=500)  # doctest: +SKIP
    >>> az.plot_ppc(idata, group="prior")  # doctest: +SKIP
    """
    name = getattr(model, "__name__", repr(model))
    where = f"prior_predictive({name})"
    n = _count(draws, where)
    static, arrays = split_data(model, data)
    key = (model, static_key(static))
    run = _PRIOR_CACHE.get(key)
    if run is None:

        def one(rng_key, arrays):
            tr = handlers.trace(handlers.seed(_Simulate(_NoFlat(model, where)), rng_key)).get_trace(**static, **arrays)
            sim = {k: s["value"] for k, s in _simulated(tr).items()}
            latent = {
                k: s["value"]
                for k, s in tr.items()
                if (s["type"] == "sample" and not s["is_observed"] and not s["infer"].get(_REPLICATED))
                or s["type"] == "deterministic"
            }
            return latent, sim

        def observed(arrays):
            tr = handlers.trace(handlers.seed(model, 0)).get_trace(**static, **arrays)
            return {k: s["value"] for k, s in tr.items() if s["type"] == "sample" and s["is_observed"] and is_loglik_site(s)}

        def run(seed, arrays, n):
            _TRACES[key] += 1
            return jax.vmap(one, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(seed), n), arrays)

        run = dict(sim=jit(run, static_argnames=("n",)), observed=jit(observed))
        _PRIOR_CACHE[key] = run
        while len(_PRIOR_CACHE) > _CACHE_SIZE:
            _PRIOR_CACHE.popitem(last=False)
    latent, sim = run["sim"](np.uint32(seed), arrays, n=n)
    groups = dict(
        prior={k: np.asarray(v)[None] for k, v in latent.items()},
        prior_predictive={k: np.asarray(v)[None] for k, v in sim.items()},
    )
    obs = run["observed"](arrays)
    if obs:
        groups["observed_data"] = {k: np.asarray(v) for k, v in obs.items()}
    dims = {k: [f"{k}_dim_{i}" for i in range(np.ndim(v) - 2)] for k, v in groups["prior_predictive"].items()}
    return az.from_dict(**groups, dims=dims, attrs=dict(probmodels_model=name))
