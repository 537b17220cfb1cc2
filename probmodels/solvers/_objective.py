"""The objective builder every solver shares.

``Objective(model, data, init)`` validates the data, traces the program once (the *prototype
trace*, at the initial values) and lays the latent sites out as one flat unconstrained vector
``z``. Its jitted functions take ``(z, data_arrays)`` as arguments, so a second fit of the same
program on new data of the same shapes compiles nothing new; they are built once per program,
static data and layout, and kept in a module-level cache.

The log density is one function with two switches, each a numpyro handler over the unchanged
program:

* ``priors=False`` (MLE): every ``param`` prior is replaced by a flat density over its support;
* ``jacobian=True`` (Laplace, VI, NUTS, ``map(jacobian=True)``): the log-determinant of the
  unconstrained -> natural transform is added, as in numpyro's ``potential_energy``.

Given as numbers instead of booleans, the two switches are traced weights (0 or 1) of those
terms: the point solvers pass them so, and MLE, MAP and Laplace on one program and data shapes
run the same compiled optimiser. A weight of 0 removes its terms exactly, derivatives included,
even where a prior's log density is not finite (``_switched_sum``).

The transform of every site is ``biject_to(site.support)`` evaluated *in the current trace*, so a
support that depends on another parameter (``interval(0, 1 - alpha)``) moves with it.
"""

from __future__ import annotations

import collections
import functools
import inspect
import weakref
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import log_density
from numpyro.primitives import Messenger

from .._config import jit
from .._data import as_data, first_index
from ..noise import LaplaceNoise
from ..program import _MARK, LATENT, OBSERVE, PARAM, support_text

__all__ = ["Objective", "WEIGHTS", "weighted_program", "check_weights", "weighted_sum", "trace_count", "site_coords", "site_labels", "prior_text", "split_data", "static_key", "is_loglik_site", "is_flat", "is_switch"]

_CACHE: "collections.OrderedDict[tuple, dict]" = collections.OrderedDict()
_CACHE_SIZE = 128
_TRACES: collections.Counter = collections.Counter()


def trace_count(model=None) -> int:
    """How many times the log density of ``model`` (or of every program) has been traced by JAX."""
    if model is None:
        return sum(_TRACES.values())
    return sum(v for k, v in _TRACES.items() if k[0] is model)


# ---------------------------------------------------------------------------------------------
# data


def _split_data(model, data, where=None):
    """Check ``data`` against the program's signature; split it into arrays and floats (traced
    arguments of the compiled code) and the rest (static: ints, strings, None, distributions,
    ... are part of the compile key). ``where`` starts the error messages (``fit(<name>)``)."""
    name = getattr(model, "__name__", repr(model))
    if not callable(model):
        raise TypeError(f"fit: the model must be a callable program, got {type(model).__name__}")
    where = where or f"fit({name})"
    data = as_data(data, where)
    if not isinstance(data, dict):
        raise TypeError(f"{where}: data must be a dict of the program's keyword arguments")
    sig = inspect.signature(model)
    params = sig.parameters
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if not has_var_kw:
        unknown = [k for k in data if k not in params]
        if unknown:
            raise ValueError(
                f"{where}: data has key(s) {unknown} that the program does not take; "
                f"its arguments are {list(params)}"
            )
    missing = [
        k
        for k, p in params.items()
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and k not in data
    ]
    if missing:
        raise ValueError(f"{where}: the program needs {missing}, which data does not give")

    static, arrays = {}, {}
    for k, v in data.items():
        arraylike = isinstance(v, (np.ndarray, jax.Array, list, tuple, float, np.floating)) or hasattr(v, "__array__")
        if not arraylike or isinstance(v, (bool, np.bool_)):
            # ints, strings, None, distributions, noise models...: static, part of the compile key
            static[k] = v
            continue
        if isinstance(v, (float, np.floating)):
            v = np.asarray(v, dtype=np.float64)
        try:
            arr = np.asarray(v)
        except Exception:
            raise TypeError(f"{where}: data[{k!r}] is not an array ({type(v).__name__})") from None
        if arr.dtype.kind not in "biuf":
            raise TypeError(
                f"{where}: data[{k!r}] has dtype {arr.dtype}; data arrays must be numeric "
                "(encode categories as integers)"
            )
        if arr.dtype.kind == "f":
            # one pass without a temporary: a sum of finite values is finite unless it overflows
            # (only then, or with a NaN or inf present, is the elementwise check made)
            if not np.isfinite(arr.sum()) and (bad := ~np.isfinite(arr)).any():
                first = first_index(bad)
                raise ValueError(
                    f"{where}: data[{k!r}] has {int(bad.sum())} non-finite values (NaN or "
                    f"inf), first at index {first}; drop or impute them"
                )
            arr = arr.astype(np.float64, copy=False)
        elif arr.dtype.kind == "b":
            arr = arr.astype(np.int64)
        # device_put copies once (the fit keeps its own data); jnp.asarray costs 2-7x more
        arrays[k] = jax.device_put(arr)
    return static, arrays


def split_data(model, data, where=None):
    """``(static, arrays)``: ``data`` checked against the program's signature and split as a fit
    splits it (arrays are NaN-checked float64 or integer JAX arrays; the rest is static);
    ``where`` names the caller in error messages (default ``fit(<program>)``)."""
    return _split_data(model, data, where)


def static_key(static):
    """A hashable key of the static data (part of every compile key)."""
    return _static_key(static)


def _static_key(static):
    items = []
    for k, v in sorted(static.items()):
        try:
            hash(v)
            items.append((k, v))
        except TypeError:
            items.append((k, ("id", id(v))))
    return tuple(items)


# ---------------------------------------------------------------------------------------------
# handlers


def _base(fn):
    while isinstance(fn, (dist.Independent, dist.ExpandedDistribution)):
        fn = fn.base_dist
    return fn


def is_flat(fn) -> bool:
    """A site with no prior: an improper flat density over its support."""
    return _is_flat(fn)


def _is_flat(fn) -> bool:
    return isinstance(_base(fn), dist.ImproperUniform)


def _median(fn):
    """The prior's median (traceable): ``icdf(0.5)`` where it is finite and in the support, else
    the mean, else the median of 101 seeded draws."""
    base = _base(fn)
    shape = fn.batch_shape + fn.event_shape
    candidates = []
    if not base.event_shape:
        try:
            candidates.append(base.icdf(jnp.asarray(0.5)))
        except (NotImplementedError, AttributeError, TypeError, ImportError):
            pass
    try:
        candidates.append(base.mean)
    except (NotImplementedError, AttributeError):
        pass
    draws = base.sample(jax.random.PRNGKey(0), (101,))
    fallback = jnp.median(draws, axis=0) if not base.event_shape else draws[0]
    value = fallback
    for c in reversed(candidates):
        c = jnp.broadcast_to(jnp.asarray(c, dtype=jnp.float64), fallback.shape)
        ok = jnp.all(jnp.isfinite(c)) & jnp.all(base.support(c))
        value = jnp.where(ok, c, value)
    return jnp.broadcast_to(value, shape)


class _Initial(Messenger):
    """Sets every latent site of the prototype trace: ``init`` values (natural space), else the
    prior's median, else 0 on the unconstrained scale (flat priors). Traceable: whether an
    ``init`` value lies in its support is recorded in ``checks`` for the caller."""

    def __init__(self, fn, init):
        self.init = init
        self.used = set()
        self.checks = {}
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample" or msg["is_observed"] or msg["value"] is not None:
            return
        name, fn = msg["name"], msg["fn"]
        if msg["infer"].get(_MARK) == OBSERVE:
            raise ValueError(
                f"fit: observe({name!r}) has no observations (obs=None); pass them in data"
            )
        if fn.support.is_discrete:
            raise ValueError(
                f"fit: site {name!r} is a discrete latent variable; marginalise it out of the "
                "program (probmodels solvers work on continuous parameters)"
            )
        shape = fn.batch_shape + fn.event_shape
        if name in self.init:
            self.used.add(name)
            try:
                value = jnp.broadcast_to(jnp.asarray(self.init[name], dtype=jnp.float64), shape)
            except ValueError:
                raise ValueError(
                    f"init[{name!r}]: shape {jnp.shape(self.init[name])} does not fit the "
                    f"parameter's shape {shape}"
                ) from None
            self.checks[f"init:{name}"] = jnp.all(fn.support(value))
        elif _is_flat(fn):
            t = biject_to(fn.support)
            value = t(jnp.zeros(t.inverse_shape(shape)))
        else:
            value = _median(fn)
        msg["value"] = value


def _prototype(model, static, init_names):
    """The prototype trace as one jitted function of the data arrays and ``init`` values.

    Returns ``(run, info)``: ``run(arrays, init) -> (z0 per site, observed values, checks)``;
    ``info`` (filled when JAX traces ``run``) holds the layout: latent sites with their shapes,
    flags and supports, the observed sites, deterministic sites and which ``init`` names matched.
    """
    info = {}

    def run(arrays, init):
        tracer = _Initial(model, init)
        tr = handlers.trace(handlers.seed(tracer, 0)).get_trace(**static, **arrays)
        sites, z0, observed, checks = [], {}, {}, dict(tracer.checks)
        discrete, event_dims, laplace_noise, supports = {}, {}, {}, {}
        for name, site in tr.items():
            if site["type"] != "sample":
                continue
            fn = site["fn"]
            if site["is_observed"]:
                if _is_loglik_site(site):
                    observed[name] = site["value"]
                    discrete[name] = bool(fn.support.is_discrete)
                    laplace_noise[name] = isinstance(_base(fn), LaplaceNoise)
                    event_dims[name] = len(fn.event_shape)
                    checks[f"obs:{name}"] = fn.support(site["value"])
                    supports[name] = fn.support
                continue
            z = biject_to(fn.support).inv(site["value"])
            z0[name] = z
            checks[f"z0:{name}"] = jnp.all(jnp.isfinite(z))
            sites.append(
                dict(
                    name=name,
                    shape=tuple(jnp.shape(site["value"])),
                    zshape=tuple(jnp.shape(z)),
                    param=site["infer"].get(_MARK) == PARAM,
                    # "latent": integrated out by the point solvers (see _marginal.py)
                    kind=LATENT if site["infer"].get(_MARK) == LATENT else PARAM,
                    flat=_is_flat(fn),
                    support=fn.support,
                    prior=type(_base(fn)).__name__,
                    dims=site["infer"].get("dims"),
                )
            )
        info.update(
            sites=sites,
            discrete=discrete,
            supports=supports,
            laplace_noise=sorted(k for k, v in laplace_noise.items() if v),
            n_obs={k: int(np.prod(tr[k]["fn"].batch_shape, dtype=int)) for k in observed},
            deterministic=[k for k, v in tr.items() if v["type"] == "deterministic"],
            used=set(tracer.used),
            latent_names=[k for k, v in tr.items() if v["type"] == "sample" and not v["is_observed"]],
        )
        # the log density at the start (finite, or the fit stops with an error that names the
        # site), in this compiled call rather than one of its own
        lp = _log_joint(model, static, dict, None, z0, arrays, priors=True, jacobian=True)
        return z0, observed, checks, lp

    return jit(run), info


_PROTOTYPES: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()


class _FlatPriors(Messenger):
    """MLE: replace ``param`` priors (all, or only those named in ``only``) by a flat density over
    the same support; the log density then has no prior term for them. With ``switched`` (a
    :class:`_Switched`), each replaced prior's log density is gathered there instead, to be added
    under a traced weight (``priors`` given as a number)."""

    def __init__(self, fn=None, only=None, switched=None, skip=()):
        self.only, self.switched, self.skip = only, switched, skip
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample" or msg["is_observed"]:
            return
        if msg["infer"].get(_MARK) != PARAM:
            return
        if self.only is not None and msg["name"] not in self.only:
            return
        fn = msg["fn"]
        if _is_flat(fn):
            return
        msg["fn"] = dist.ImproperUniform(fn.support, fn.batch_shape, fn.event_shape)
        if self.switched is not None and msg["name"] not in self.skip:
            # the value and the scale are final once the site is traced: read them then
            self.switched.priors.append((fn, msg))


class _LaplaceMode(Messenger):
    """Swap Laplace-noise observations for their smoothed density (``eps`` given) or for their
    Fisher surrogate (``eps`` None): see :class:`probmodels.noise.LaplaceNoise`."""

    def __init__(self, fn=None, eps=None):
        self.eps = eps
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample" or not msg["is_observed"]:
            return
        fn = msg["fn"]
        base = _base(fn)
        if not isinstance(base, LaplaceNoise):
            return
        shape = fn.batch_shape
        b = LaplaceNoise(jnp.broadcast_to(base.loc, shape), jnp.broadcast_to(base.scale, shape))
        new = b.smoothed(self.eps) if self.eps is not None else b.fisher_surrogate()
        if fn.event_shape:
            new = new.to_event(len(fn.event_shape))
        msg["fn"] = new


def _natural_value(z, jacobian, site):
    """substitute_fn: the site's natural value ``T(z)``, with ``T`` from its current support."""
    name = site["name"]
    if site["type"] != "sample" or site["is_observed"] or name not in z:
        return None
    fn = site["fn"]
    t = biject_to(fn.support)
    value = t(z[name])
    if _is_real(fn.support):
        return value
    # jacobian: True/False for every site, the names of the sites that get it (the latents of
    # a marginal point fit, integrated on their unconstrained scale), or a _Switched that gathers
    # the terms under a traced weight
    if isinstance(jacobian, _Switched):
        jacobian.log_dets.append(_LogDetTerm(t, z[name], value, fn, site["scale"]))
        return value
    if not isinstance(jacobian, bool):
        jacobian = name in jacobian
    if jacobian:
        numpyro.factor(f"_{name}_log_det", _log_det(t, z[name], value, fn))
    return value


def _log_det(t, z, value, fn, scale=None):
    """``log|dT/dz|`` of one site, summed over its event dims (times the site's ``scale``, for a
    term summed outside the trace: a factor site inside it gets the plates' scale itself)."""
    log_det = t.log_abs_det_jacobian(z, value)
    extra = jnp.ndim(log_det) - jnp.ndim(value) + len(fn.event_shape)
    if extra > 0:
        log_det = jnp.sum(log_det, axis=tuple(range(-extra, 0)))
    return log_det if scale is None else scale * log_det


class _Switched:
    """The terms of the log density that a traced weight switches (``priors`` or ``jacobian``
    given as numbers, not booleans), gathered during the trace and computed only inside the
    ``lax.cond`` branch that a non-zero weight takes (see :func:`_switched_sum`)."""

    def __init__(self):
        self.priors, self.log_dets = [], []


class _PriorTerm(NamedTuple):
    """A prior's log density at its site's value, as ``log_density`` counts it (its scale)."""

    fn: object
    value: object
    scale: object

    def compute(self):
        lp = self.fn.log_prob(self.value)
        return lp if self.scale is None else self.scale * lp


class _LogDetTerm(NamedTuple):
    """A site's ``log|dT/dz|`` (see :func:`_log_det`)."""

    t: object
    z: object
    value: object
    fn: object
    scale: object

    def compute(self):
        return _log_det(self.t, self.z, self.value, self.fn, self.scale)


def _terms_on(weight, terms):
    total = jnp.zeros((), jnp.float64)
    for term in terms:
        total = total + jnp.sum(term.compute())
    return (weight * total).astype(jnp.float64)


def _switched_sum(weight, terms):
    """``weight * sum(term.compute() for term in terms)``, and exactly 0 (value, gradient and
    Hessian) where ``weight == 0``.

    The terms are computed inside the branch of a ``lax.cond``, not outside a ``where`` or a
    product: a prior's log density can be -inf or NaN where the MLE goes (a point-mass prior, a
    value that rounded onto the boundary of its support, a scale that underflowed to 0), and
    ``0 * inf``, or the zero cotangent of a ``where`` times an infinite local derivative, is NaN.
    Only the taken branch runs and is differentiated (the weight is never batched, so the cond
    stays a cond under ``vmap``, ``jacfwd`` and ``jacrev``). ``1.0 * x == x``: with the weight 1
    the terms are the static switch's exactly, only summed after the rest of the log density.

    The terms enter the cond as operands, in an order that does not depend on the process
    (:func:`_canonical`), and its branch is one function per layout of them: JAX then traces each
    branch once per program and reuses it (and its derivatives) at every other trace of the
    log density in the optimiser, which halves the optimiser's trace. Terms that cannot be
    passed so (a user's distribution that is no complete pytree) are closed over instead: JAX
    turns the tracers they hold into operands, in the order the branch uses them, and traces
    the branch anew each time."""
    if not terms:
        return 0.0
    weight = jnp.asarray(weight, jnp.float64)
    try:
        leaves, on = _canonical(terms)
    except _NotCanonical:
        leaves, on = None, None
    if on is not None:
        try:
            return jax.lax.cond(weight != 0.0, on, _switched_off, weight, leaves)
        except (AttributeError, TypeError, NotImplementedError, KeyError):  # rebuilt incompletely
            pass
    return jax.lax.cond(weight != 0.0, lambda: _terms_on(weight, terms), lambda: jnp.zeros((), jnp.float64))


class _NotCanonical(Exception):
    pass


_BRANCHES: "collections.OrderedDict" = collections.OrderedDict()  # (treedef, order) -> branch


def _switched_off(weight, leaves):
    return jnp.zeros((), jnp.float64)


def _canonical(terms):
    """``(leaves, branch)``: the terms' pytree leaves sorted by their path of field names, and
    the function (one per layout, kept) that rebuilds the terms from them and sums them.

    numpyro flattens a distribution's fields in the order of a set of names, which changes with
    the process's hash seed; the lowered program, and its persistent-cache key, must not. A
    distribution whose instance holds values that are not pytree fields (a user's class without
    ``arg_constraints`` or ``pytree_data_fields``) would be rebuilt without them: such terms, and
    nodes that are not numpyro's or whose flattening is unknown, raise :class:`_NotCanonical`."""
    _check_tree(terms)
    try:
        with_path, treedef = jax.tree_util.tree_flatten_with_path(terms)
        hash(treedef)
    except Exception as err:  # (a transform without tree_flatten, unhashable aux data)
        raise _NotCanonical from err
    names = [_path_names(terms, path) for path, _ in with_path]
    order = tuple(sorted(range(len(names)), key=names.__getitem__))
    key = (treedef, order)
    on = _BRANCHES.get(key)
    if on is None:

        def on(weight, leaves):
            flat = [None] * len(leaves)
            for pos, i in enumerate(order):
                flat[i] = leaves[pos]
            return _terms_on(weight, jax.tree_util.tree_unflatten(treedef, flat))

        _BRANCHES[key] = on
        while len(_BRANCHES) > _CACHE_SIZE:
            _BRANCHES.popitem(last=False)
    return [with_path[i][1] for i in order], on


def _path_names(root, path) -> tuple:
    """A leaf's path as names: a distribution's field name where numpyro gives an index."""
    node, out = root, []
    for k in path:
        if isinstance(k, jax.tree_util.SequenceKey):
            node, name = node[k.idx], f"{k.idx:06d}"
        elif isinstance(k, jax.tree_util.GetAttrKey):
            node, name = getattr(node, k.name), k.name
        elif isinstance(k, jax.tree_util.DictKey):
            node, name = node[k.key], repr(k.key)
        elif isinstance(k, jax.tree_util.FlattenedIndexKey):
            children = node.tree_flatten()[0]
            name = type(node).gather_pytree_data_fields()[k.key] if isinstance(node, dist.Distribution) else f"{k.key:06d}"
            node = children[k.key]
        else:
            raise _NotCanonical(f"unknown pytree key {k!r}")
        out.append(name)
    return tuple(out)


def _check_tree(node):
    """Raise :class:`_NotCanonical` unless flattening ``node`` keeps everything it holds: every
    distribution in it holds only its pytree fields (a value that is none would be dropped, or
    replaced by a class attribute of that name), and every other node is numpyro's."""
    if node is None or isinstance(node, (bool, int, float, complex, np.ndarray, np.generic, jax.Array)):
        return
    if isinstance(node, (tuple, list)):
        for child in node:
            _check_tree(child)
        return
    cls = type(node)
    if isinstance(node, dist.Distribution):
        kept = set(cls.gather_pytree_data_fields()) | set(cls.gather_pytree_aux_fields())
        kept |= {"_batch_shape", "_event_shape", "_validate_args"}
        for name in vars(node):
            if name not in kept and not isinstance(getattr(cls, name, None), dist.util.lazy_property):
                raise _NotCanonical(f"{cls.__name__}.{name} is not a pytree field")
    elif not cls.__module__.startswith("numpyro.") or not hasattr(node, "tree_flatten"):
        raise _NotCanonical(f"{cls.__name__}: unknown flattening")
    try:
        children = node.tree_flatten()[0]
    except Exception as err:  # (a transform without tree_flatten)
        raise _NotCanonical from err
    for child in children:
        _check_tree(child)


def is_switch(value) -> bool:
    """Is ``priors`` / ``jacobian`` a traced weight (a number or array) rather than a static
    choice (a bool, or the names of the sites that get the log-Jacobian)?"""
    return not isinstance(value, (bool, np.bool_, frozenset, set, tuple, list))


def _is_real(support) -> bool:
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.real or support is constraints.real_vector


def is_loglik_site(site) -> bool:
    """An observed site whose log density is part of the log-likelihood (not a factor)."""
    return _is_loglik_site(site)


def _is_loglik_site(site) -> bool:
    return (
        site["type"] == "sample"
        and site["is_observed"]
        and not isinstance(site["fn"], dist.Unit)
        and not site["name"].startswith("_")
    )


# ---------------------------------------------------------------------------------------------
# the objective


class Objective:
    """A program and its data, laid out for the solvers.

    Attributes
    ----------
    name : str
        The program's name.
    static, arrays : dict
        Non-array data (part of the compile key) and array data (traced arguments).
    sites : list of dict
        One entry per latent site in trace order: ``name``, ``shape`` (natural), ``zshape``
        (unconstrained), ``param`` (a ``param`` site), ``kind`` (``"param"``, or ``"latent"`` for
        a ``latent`` site), ``flat`` (no prior), ``support``.
    observed : dict
        Observed sites: name -> observed array.
    z0 : array
        The flat unconstrained starting point.
    labels : list of str
        A label per coordinate of ``z`` (``w[3]``; for constrained vector sites the unconstrained
        coordinates are labelled by their index too).
    """

    partitioned = None  # the engine of data partitioned by rows (solvers/_partitioned.py)
    # whether the objective is the program's own sum of squared residuals where the noise is
    # Gaussian (the least-squares path, _lsq.py); not a marginal view or partitioned rows
    least_squares_capable = True
    weights = None  # frequency weights per row (fit(..., weights=w)), or None

    def __init__(self, model, data, init=None):
        self.model = model
        self.name = getattr(model, "__name__", repr(model))
        self.static, self.arrays = _split_data(model, data)
        # frequency weights (fit(..., weights=w)): a traced input of the weighted program
        weighted = getattr(model, "probmodels_program", None) is not None and WEIGHTS in self.arrays
        self.weights = np.asarray(self.arrays[WEIGHTS]) if weighted else None
        # the least-squares path solves the unweighted problem: with weights all 1 that is the
        # weighted one too
        self.least_squares_capable = type(self).least_squares_capable and (
            self.weights is None or bool(np.all(self.weights == 1.0))
        )
        init = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in dict(init or {}).items()}

        # The prototype trace: one compiled call per program, static data, init names and data
        # shapes (an eager trace would compile every small operation of the program separately).
        signature = tuple((k, v.shape, v.dtype.name) for k, v in sorted(self.arrays.items()))
        init_sig = tuple((k, v.shape) for k, v in sorted(init.items()))
        pkey = (model, _static_key(self.static), init_sig, signature)
        if pkey not in _PROTOTYPES:
            _PROTOTYPES[pkey] = _prototype(model, self.static, tuple(sorted(init)))
            while len(_PROTOTYPES) > _CACHE_SIZE:
                _PROTOTYPES.popitem(last=False)
        run, info = _PROTOTYPES[pkey]
        z0, observed, checks, lp = run(self.arrays, init)
        unused = set(init) - info["used"]
        if unused:
            raise ValueError(
                f"init: {sorted(unused)} are not latent sites of {self.name}; its parameters are "
                f"{info['latent_names']}"
            )
        self._supports = info.get("supports", {})
        self._check(checks, observed, init)

        self.sites = info["sites"]
        self.observed = {k: np.asarray(v) for k, v in observed.items()}
        self.discrete = info["discrete"]
        self.laplace_noise = info["laplace_noise"]
        self.init_names = sorted(info["used"])
        self.deterministic = info["deterministic"]
        self.n_obs = int(sum(info["n_obs"].values()))
        if not self.sites:
            raise ValueError(f"fit({self.name}): the program has no parameters to fit")
        self.latent = tuple(s["name"] for s in self.sites if s["kind"] == LATENT)

        # ravel_pytree sorts dict keys; a list keeps z in trace order (labels, tables, warnings).
        names = [s["name"] for s in self.sites]
        # (numpy, not ravel_pytree: its eager concatenate and reshape compile two kernels)
        parts = [np.asarray(z0[k]) for k in names]
        self.z0 = jax.device_put(np.concatenate([np.ravel(p) for p in parts]) if parts else np.zeros(0))
        self._unravel = _DictUnravel(_list_unravel([p.shape for p in parts], [p.dtype for p in parts]), tuple(names))
        self.dim = int(self.z0.size)
        self.coords = {}
        self._label_z()

        layout = tuple((s["name"], s["shape"], s["zshape"]) for s in self.sites)
        self.key = (model, _static_key(self.static), layout)
        self.fns = _functions(self.key, model, self.static, self._unravel, names)

        # A finite log density at the start (from the prototype trace), or an error that names
        # the site.
        if not np.isfinite(np.asarray(lp)):
            raise ValueError(self._explain_nonfinite(self.z0) + "; give init={...} where it is finite")

    def _check(self, checks, observed, init):
        """Errors for what the prototype trace found: init values or observations outside their
        support, starting values on a boundary."""
        for key, ok in checks.items():
            kind, name = key.split(":", 1)
            ok = np.asarray(ok)
            if ok.all():
                continue
            if kind == "init":
                raise ValueError(f"init[{name!r}] = {np.asarray(init[name])} lies outside the parameter's support")
            if kind == "z0":
                raise ValueError(
                    f"{self.name}: the starting value of {name!r} is on the boundary of its "
                    f"support; give init={{{name!r}: ...}} inside it"
                )
            bad = ~np.broadcast_to(ok, np.shape(observed[name])[: ok.ndim])
            idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape)) if bad.ndim else ()
            value = np.asarray(observed[name])[idx].tolist()
            where = first_index(bad)
            support = self._supports.get(name)
            raise ValueError(
                f"observe({name!r}): {int(bad.sum())} values of obs lie outside the support of "
                f"the noise model"
                + (f", {support_text(support)}" if support is not None else "")
                + f"; first at index {where} (value {value})"
            )

    # -- helpers on one point -----------------------------------------------------------------

    def unravel(self, z):
        return self._unravel(z)

    def natural(self, z):
        """Natural-space values (latent and deterministic sites) at one unconstrained point."""
        return self.fns["natural"](z, self.arrays)

    def natural_draws(self, zs):
        """Natural-space values at a batch of points (leading axis)."""
        return self.fns["natural_batch"](zs, self.arrays)

    def observation_axis(self):
        """``(N, keys)``: the length of the leading axis that every observed array shares and the
        data arrays with that leading length (indexed together when observations are
        subsampled), or ``(None, ())`` when the observed arrays share no leading axis."""
        lengths = {np.shape(v)[0] if np.ndim(v) else None for v in self.observed.values()}
        if len(lengths) != 1 or None in lengths:
            return None, ()
        n = lengths.pop()
        return n, tuple(sorted(k for k, v in self.arrays.items() if np.ndim(v) and np.shape(v)[0] == n))

    def rows(self, idx, keys):
        """The program's data (static values included) with the arrays in ``keys`` indexed by
        ``idx`` along their leading axis: a subset of the observations."""
        return {**self.static, **{k: (np.asarray(v)[idx] if k in keys else v) for k, v in self.arrays.items()}}

    def _label_z(self):
        # A label per coordinate of z; coordinates of a constrained vector site (a simplex has
        # K - 1 of them) are labelled by the site.
        self.labels = []
        for s in self.sites:
            if s["zshape"] == s["shape"]:
                self.labels += self.site_labels(s["name"], s["shape"])
            else:
                self.labels += [s["name"]] * int(np.prod(s["zshape"], dtype=int))

    def set_coords(self, coords):
        """Label the parameters' axes: ``coords={dim: labels}`` for the dims given in
        ``param(..., dims=...)`` (a dim without coords is labelled 0, 1, ...)."""
        self.coords = site_coords(self.sites, coords, self.name)
        self._label_z()

    def score_outer(self, z):
        """``S^T S`` of the per-observation scores ``S`` at ``z``: the sandwich's meat."""
        scores = np.asarray(self.fns["scores"](np.asarray(z), self.arrays))
        if self.weights is not None:  # a row of weight w is w rows: sum_i w_i s_i s_i^T
            scores = scores * np.sqrt(np.asarray(self.fns["row_weights"](np.asarray(z), self.arrays)))[:, None]
        return scores.T @ scores

    def site_labels(self, name, shape):
        return site_labels(name, shape, self.sites, self.coords)

    def _explain_nonfinite(self, z):
        """Which site makes the log density non-finite at ``z``."""
        zd = self._unravel(z)
        m = handlers.substitute(self.model, substitute_fn=partial(_natural_value, zd, False))
        tracer = handlers.trace(m)
        with numpyro.validation_enabled(False):
            try:
                tr = tracer.get_trace(**self.static, **self.arrays)
            except ValueError as e:
                raise ValueError(_blame_priors(tracer.trace, e)) from None
        for name, s in tr.items():
            if s["type"] != "sample":
                continue
            lp = jnp.sum(s["fn"].log_prob(s["value"]))
            if not bool(jnp.isfinite(lp)):
                what = "observation" if s["is_observed"] else "parameter"
                return (
                    f"{self.name}: the log density of {what} site {name!r} is {float(lp)} at the "
                    "starting values"
                )
        return f"{self.name}: the log density is not finite at the starting values"

    def init_from(self, values):
        """The flat unconstrained point for natural ``values`` (a dict over all latent sites)."""
        z = {}
        m = handlers.substitute(self.model, data=values)
        tr = handlers.trace(handlers.seed(m, 0)).get_trace(**self.static, **self.arrays)
        for s in self.sites:
            site = tr[s["name"]]
            z[s["name"]] = biject_to(site["fn"].support).inv(site["value"])
        return ravel_pytree([z[s["name"]] for s in self.sites])[0]


def site_coords(sites, coords, where="fit") -> dict:
    """``{dim: list of labels}`` for every dim of ``sites``, checked against their sizes."""
    coords = dict(coords or {})
    if not all(isinstance(k, str) for k in coords):
        raise TypeError(f"{where}: coords must be a dict {{dim name: labels}}")
    out, used, bare = {}, set(), []
    for s in sites:
        for axis, dim in enumerate(s.get("dims") or ()):
            n = s["shape"][axis]
            labels = coords.get(dim)
            if labels is None:
                bare.append(dim)
            labels = list(range(n)) if labels is None else [_plain(v) for v in np.asarray(labels).tolist()]
            if len(labels) != n:
                raise ValueError(
                    f"{where}: coords[{dim!r}] has {len(labels)} labels but param({s['name']!r}) "
                    f"has {n} entries along that dim; give one label per entry"
                )
            if dim in out and out[dim] != labels:
                raise ValueError(f"{where}: dim {dim!r} has different sizes in different parameters")
            out[dim] = labels
            used.add(dim)
    unknown = sorted(set(coords) - used)
    if unknown and bare:
        # coords for dims no parameter has are fine (one COORDS for several programs, as
        # ArviZ's), unless a dim went unlabelled beside them: most likely a misspelling
        raise ValueError(
            f"{where}: coords {unknown} name no dim of any parameter, and dim(s) "
            f"{sorted(set(bare))} have no coords; is one a misspelling of the other?"
        )
    return out


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def site_labels(name, shape, sites=(), coords=None) -> list:
    """A label per entry: ``w[0, 1]`` (ArviZ's labels), ``w[GPA]`` where the site has dims with
    coords."""
    if shape == ():
        return [name]
    dims = next((s.get("dims") for s in sites if s["name"] == name), None)
    coords = coords or {}
    if dims and all(d in coords for d in dims):
        axes = [coords[d] for d in dims]
        return [f"{name}[{', '.join(str(axes[a][j]) for a, j in enumerate(i))}]" for i in np.ndindex(*shape)]
    return [f"{name}[{', '.join(map(str, i))}]" for i in np.ndindex(*shape)]


def prior_text(fn) -> str:
    """A prior as people write it: ``Normal(loc=0.0, scale=1.0)``."""
    base = _base(fn)
    args = []
    for k in getattr(base, "arg_constraints", {}):
        v = getattr(base, k, None)
        if v is None:
            continue
        a = np.asarray(v)
        if a.size and np.all(a == a.ravel()[0]):
            args.append(f"{k}={a.ravel()[0].item()!r}")
    return f"{type(base).__name__}({', '.join(args)})"


def _blame_priors(trace, error) -> str:
    """A program that fails at its starting values (a noise model refusing a scale of 0): the
    parameters whose value there is <= 0, with their priors, so the message names the cause."""
    suspects = []
    for name, site in trace.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        v = np.asarray(site["value"])
        if v.dtype.kind == "f" and np.any(v <= 0):
            prior = "no prior (flat over the reals)" if _is_flat(site["fn"]) else f"prior {prior_text(site['fn'])}"
            suspects.append(f"param({name!r}) with {prior} starts at {v.ravel()[np.argmax(v.ravel() <= 0)].item()!r}")
    if not suspects:
        return str(error)
    return (
        f"{error}. The program fails at its starting values, where " + "; ".join(suspects)
        + ": a noise scale must be > 0, so give such a parameter a prior on the positive reals "
        "(dist.HalfNormal, dist.Exponential, dist.LogNormal) or support='positive'"
    )


def _list_unravel(shapes, dtypes):
    """Flat z -> [array of each shape], the inverse of concatenating the ravelled arrays."""
    sizes = [int(np.prod(sh, dtype=int)) for sh in shapes]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)

    def unravel(z):
        return [
            jnp.reshape(z[offsets[i] : offsets[i + 1]], shapes[i]).astype(jnp.result_type(dtypes[i], z.dtype))
            for i in range(len(shapes))
        ]

    return unravel


class _DictUnravel:
    """Flat z -> {site: unconstrained array}, in trace order."""

    def __init__(self, unravel_list, names):
        self._unravel, self.names = unravel_list, names

    def __call__(self, z_flat):
        return dict(zip(self.names, self._unravel(z_flat)))


# ---------------------------------------------------------------------------------------------
# frequency weights: fit(..., weights=w)

#: the keyword a weighted program takes its per-row weights by (a traced array input, so that a
#: fit with other weights of the same shape reuses every compiled function)
WEIGHTS = "_weights"
_WEIGHTED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class _Weighted(Messenger):
    """Frequency weights: the log-likelihood of row ``i`` of every observation site counts
    ``w[i]`` times (numpyro's ``scale``; the priors are not weighted). ``w = 1`` everywhere is the
    unweighted fit exactly (``x * 1.0 == x``); ``w`` in {0, 1} a fit on the rows with ``w = 1``."""

    def __init__(self, fn=None, weights=None):
        self.weights = weights
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample" or not msg["is_observed"] or msg["name"].startswith("_"):
            return
        if isinstance(msg["fn"], dist.Unit):  # numpyro.factor: not an observation
            return
        w, batch = self.weights, msg["fn"].batch_shape
        if not batch or batch[0] != w.shape[0]:
            raise ValueError(
                f"fit(weights=...): {w.shape[0]} weights, but observe({msg['name']!r}) has batch "
                f"shape {tuple(batch)}; give one weight per row of the observation (its first axis)"
            )
        w = jnp.reshape(w, w.shape + (1,) * (len(batch) - 1))
        if msg["scale"] is None:
            msg["infer"] = {**msg.get("infer", {}), "probmodels_weights": True}
        msg["scale"] = w if msg["scale"] is None else w * msg["scale"]


def weighted_program(model):
    """``model`` taking frequency weights by the keyword ``_weights`` (None: unweighted), one
    wrapper per program so that compiled functions keyed by the program are shared."""
    try:
        return _WEIGHTED[model]
    except (KeyError, TypeError):
        pass

    @functools.wraps(model)
    def program(*args, _weights=None, **kwargs):
        if _weights is None:
            return model(*args, **kwargs)
        with _Weighted(weights=_weights):
            return model(*args, **kwargs)

    params = list(inspect.signature(model).parameters.values())
    var_kw = [p for p in params if p.kind is p.VAR_KEYWORD]
    rest = [p for p in params if p.kind is not p.VAR_KEYWORD]
    extra = inspect.Parameter(WEIGHTS, inspect.Parameter.KEYWORD_ONLY, default=None)
    program.__signature__ = inspect.Signature(rest + [extra] + var_kw)
    program.probmodels_program = model
    try:
        _WEIGHTED[model] = program
    except TypeError:  # not weak-referenceable: a wrapper per fit (compiled anew)
        pass
    return program


def weighted_sum(pointwise: dict, weights=None):
    """The log-likelihood: the sum of the per-observation values ``pointwise`` (site -> array
    whose first axis is the rows), each row counted ``weights[i]`` times when weights are given."""
    if weights is None:
        return sum(jnp.sum(v) for v in pointwise.values())
    return sum(jnp.sum(jnp.reshape(weights, weights.shape + (1,) * (jnp.ndim(v) - 1)) * v) for v in pointwise.values())


def check_weights(weights, where="fit") -> np.ndarray:
    """``weights`` as a float64 vector, or a ``ValueError`` that names the problem."""
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{where}(weights=...): weights must be an array of numbers, one per row") from None
    if w.ndim != 1:
        raise ValueError(f"{where}(weights=...): weights must be one-dimensional (one per row of the observation), got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{where}(weights=...): {int(np.sum(~np.isfinite(w)))} weights are NaN or inf (first at index {first_index(~np.isfinite(w))})")
    if np.any(w < 0):
        raise ValueError(f"{where}(weights=...): {int(np.sum(w < 0))} weights are negative (first at index {first_index(w < 0)}); frequency weights are >= 0")
    if not np.any(w > 0):
        raise ValueError(f"{where}(weights=...): every weight is 0; at least one row must count")
    return w


class _ScaleObserved(Messenger):
    """Minibatches: the log-likelihood of a batch of B of N observations, scaled by N / B (the
    priors are not scaled), as numpyro's subsampling plates do."""

    def __init__(self, fn=None, scale=1.0):
        self.scale = scale
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["is_observed"] and not msg["name"].startswith("_"):
            msg["scale"] = self.scale if msg["scale"] is None else self.scale * msg["scale"]


def _log_joint(
    model, static, unravel, key, z_flat, arrays, eps=None, obs_scale=None, *, priors=True, jacobian=True, drop=(), laplace_noise="exact"
):
    """``log p(x, T(z))`` (+ ``log|dT/dz|`` with ``jacobian``); ``priors=False`` flattens every
    ``param`` prior, ``drop`` only the named ones (their L1 term is handled by the solver);
    ``laplace_noise="smooth"`` smooths Laplace noise by ``eps``, ``"fisher"`` swaps in its Fisher
    surrogate; ``obs_scale`` scales the log-likelihood (minibatches).

    ``priors`` and ``jacobian`` may also be numbers, traced inputs of the compiled code (the point
    solvers pass them so): the weight of the ``param`` priors other than ``drop`` (0: MLE, 1: MAP)
    and of the log-Jacobian (0 or 1), so that MLE, MAP and Laplace run one compiled program. A
    weight of 0 removes its terms exactly, derivatives included (:func:`_switched_sum`)."""
    if key is not None:  # (None: the prototype trace's own check)
        _TRACES[key] += 1  # runs only when JAX traces this function
    z = unravel(z_flat)
    switched = _Switched() if is_switch(priors) or is_switch(jacobian) else None
    m = handlers.substitute(
        model, substitute_fn=partial(_natural_value, z, switched if is_switch(jacobian) else jacobian)
    )
    if is_switch(priors):
        m = _FlatPriors(m, switched=switched, skip=frozenset(drop))
    elif not priors:
        m = _FlatPriors(m)
    elif drop:
        m = _FlatPriors(m, only=frozenset(drop))
    if obs_scale is not None:
        m = _ScaleObserved(m, obs_scale)
    if laplace_noise == "smooth":
        m = _LaplaceMode(m, eps=eps)
    elif laplace_noise == "fisher":
        m = _LaplaceMode(m, eps=None)
    # block: the program's sites stay invisible to handlers outside (SVI's and MCMC's own
    # trace and substitute see only the unconstrained model's "z").
    with handlers.block():
        logp, _ = log_density(m, (), {**static, **arrays}, {})
    if switched is not None:
        if is_switch(priors):
            terms = [_PriorTerm(fn, msg["value"], msg["scale"]) for fn, msg in switched.priors]
            logp = logp + _switched_sum(priors, terms)
        if is_switch(jacobian):
            logp = logp + _switched_sum(jacobian, switched.log_dets)
    return logp


def _param_priors(model, static, unravel, z_flat, arrays, weight):
    """``weight`` times the ``param`` priors' log density at ``T(z)``, exactly 0 (derivatives
    included) where ``weight`` is 0: the switched prior term of :func:`_log_joint` alone. The
    marginal point fit adds it outside its inner solve over the latents, which it does not
    depend on, so that the marginal MLE and MAP share that solve's compiled program."""
    switched = _Switched()
    m = _FlatPriors(handlers.substitute(model, substitute_fn=partial(_natural_value, unravel(z_flat), False)), switched=switched)
    with handlers.block():
        handlers.trace(m).get_trace(**static, **arrays)
    return _switched_sum(weight, [_PriorTerm(fn, msg["value"], msg["scale"]) for fn, msg in switched.priors])


def _trace_at(model, static, unravel, z_flat, arrays):
    z = unravel(z_flat)
    m = handlers.substitute(model, substitute_fn=partial(_natural_value, z, False))
    with handlers.block():
        return handlers.trace(m).get_trace(**static, **arrays)


def _natural(model, static, unravel, z_flat, arrays):
    tr = _trace_at(model, static, unravel, z_flat, arrays)
    return {
        k: s["value"]
        for k, s in tr.items()
        if (s["type"] == "sample" and not s["is_observed"]) or s["type"] == "deterministic"
    }


def _pointwise(model, static, unravel, z_flat, arrays):
    """Per-observation log-likelihood of every observed site (shape: the site's batch shape)."""
    tr = _trace_at(model, static, unravel, z_flat, arrays)
    return {k: s["fn"].log_prob(s["value"]) for k, s in tr.items() if _is_loglik_site(s)}


def _row_weights(pointwise, z, arrays):
    """The frequency weight of every per-observation term, laid out as the rows of ``scores``
    (each site's terms raveled, the sites concatenated): ``w[i]`` for each term of row ``i``."""
    w = arrays[WEIGHTS]
    terms = pointwise(z, arrays).values()
    return jnp.concatenate([jnp.ravel(jnp.broadcast_to(jnp.reshape(w, w.shape + (1,) * (v.ndim - 1)), v.shape)) for v in terms])


def _batched(f, batch_size=256):
    """``f(z, arrays)`` over a leading axis of ``z``, ``batch_size`` draws at a time: a vmap over
    all 4000 draws at once holds 4000 copies of every per-observation intermediate (9 GB for a
    27 x 27 transition matrix on 5000 characters)."""
    return jit(lambda zs, a: jax.lax.map(lambda z: f(z, a), zs, batch_size=batch_size))


def _functions(key, model, static, unravel, names):
    """The jitted functions of one program/static-data/layout, built once and cached."""
    fns = _CACHE.get(key)
    if fns is not None:
        _CACHE.move_to_end(key)
        return fns
    log_joint = partial(_log_joint, model, static, unravel, key)
    natural = partial(_natural, model, static, unravel)
    pointwise = partial(_pointwise, model, static, unravel)

    def flat_pointwise(z, arrays):
        return jnp.concatenate([jnp.ravel(v) for v in pointwise(z, arrays).values()])

    fns = dict(
        log_joint_raw=log_joint,
        param_priors=partial(_param_priors, model, static, unravel),
        log_joint=jit(log_joint, static_argnames=("priors", "jacobian", "drop", "laplace_noise")),
        log_joint_batch=_batched(lambda z, a: log_joint(z, a, priors=True, jacobian=True)),
        natural=jit(natural),
        natural_batch=_batched(natural),
        pointwise=jit(pointwise),
        pointwise_batch=_batched(pointwise),
        scores=jit(jax.jacfwd(flat_pointwise)),
        row_weights=jit(partial(_row_weights, pointwise)),
        natural_jacobian=jit(
            jax.jacfwd(lambda z, a: jnp.concatenate([jnp.ravel(natural(z, a)[k]) for k in names]))
        ),
        solvers={},
    )
    _CACHE[key] = fns
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return fns
