"""Point solvers: the mode of the likelihood (MLE) or of the posterior density (MAP).

Both optimise in the unconstrained space ``z`` (so supports are never left) but, unless
``jacobian=True``, *without* the log-Jacobian: the mode found is the mode in the natural space
(the MLE of a Gaussian scale is ``sqrt(RSS / N)`` exactly). Standard errors come from the inverse
observed information in the natural space (the delta method through the transform, exact at a
stationary point), or from the Huber-White sandwich with ``stderr="sandwich"``.

Gaussian programs nonlinear in their parameters (MLE, or MAP with flat priors) are solved first
as least squares, by Levenberg-Marquardt on the residual Jacobian with the noise scale profiled
out (``_lsq``), then by Newton on the full likelihood. ``starts=K`` runs the optimiser from K
starting points in one vmapped program and keeps the best optimum. ``converged`` is True only
where Newton's decrement is zero to tolerance and the Hessian is not indefinite, nor singular
where the model determines the parameters elsewhere (two terms of a sum coinciding).

Laplace priors on real parameters with fixed location and scale are not smoothed: they enter as an
L1 term handled by the proximal Newton step, so MAP reaches the exact zeros of the lasso.

The compiled optimiser takes the weights of the priors and of the log-Jacobian as arguments
(:class:`Switches`), so MLE, MAP and Laplace (which reuses it) compile it once per program and
data shapes; only Laplace priors' L1 term (``drop``) makes a program of its own.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._config import jit
from ._common import (
    SolverResult,
    Timer,
    check_options,
    format_labels,
    gaussian_draws,
    inverse_hessian,
    natural_moments,
    split_flat,
)
from . import _lsq
from ._objective import WEIGHTS, Objective, _base, _is_real, weighted_sum
from ._optimize import STATUS, chord, hessian_of, lbfgs, newton
from .base import BOUNDARY, CONVERGENCE, EXISTENCE, IDENTIFICATION, OTHER, SEPARATION, Finding, Solver

__all__ = ["solve_point", "optimize", "Optimum", "L1Terms", "Switches", "switches", "newton_batch", "POINT_DEFAULTS", "MLE", "MAP", "SOLVERS"]

POINT_DEFAULTS = dict(
    init=None,
    seed=0,
    gtol=1e-9,
    max_iter=None,
    optimizer="auto",
    stderr="observed",
    draws=4000,
    jacobian=False,
    starts=1,
    joint=False,
)
_NEWTON_MAX_DIM = 200
_HESSIAN_MAX_DIM = 3000


# ---------------------------------------------------------------------------------------------
# the L1 part of Laplace priors


def _l1_terms(obj: Objective):
    """Laplace priors on ``param`` sites with constant location and scale, as L1 weights on z.

    Returns (names, lam, center, learned): ``learned`` names the Laplace priors whose location or
    scale is computed from other parameters (these stay in the smooth part).
    """
    names = [
        s["name"] for s in obj.sites if s["param"] and s["prior"] == "Laplace" and _is_real(s["support"])
    ]
    lam, center = np.zeros(obj.dim), np.zeros(obj.dim)
    if not names:
        return (), lam, center, []
    values, jac = _l1_prior_fns(obj, tuple(names))
    z0 = obj.z0
    at = values(z0, obj.arrays)
    moved = [jac(z0, obj.arrays), jac(z0 + 0.37, obj.arrays)]
    learned = [n for n in names if any(np.any(np.asarray(j[n][i]) != 0) for j in moved for i in (0, 1))]
    offsets = np.cumsum([0] + [int(np.prod(s["zshape"], dtype=int)) for s in obj.sites])
    where = {s["name"]: offsets[k] for k, s in enumerate(obj.sites)}
    fixed = []
    for n in names:
        if n in learned:
            continue
        loc, scale = (np.ravel(np.asarray(a)) for a in at[n])
        lam[where[n] : where[n] + loc.size] = 1.0 / scale
        center[where[n] : where[n] + loc.size] = loc
        fixed.append(n)
    return tuple(fixed), lam, center, learned


def _l1_prior_fns(obj: Objective, names: tuple):
    """Jitted (loc, scale) of the named Laplace priors at z, and their derivatives in z."""
    key = ("l1_priors", names)
    cache = obj.fns["solvers"]
    if key not in cache:
        from ._objective import _trace_at

        shapes = {s["name"]: s["shape"] for s in obj.sites}

        def f(z, arrays):
            tr = _trace_at(obj.model, obj.static, obj.unravel, z, arrays)
            out = {}
            for n in names:
                b = _base(tr[n]["fn"])
                out[n] = (jnp.broadcast_to(b.loc, shapes[n]), jnp.broadcast_to(b.scale, shapes[n]))
            return out

        cache[key] = (jit(f), jit(jax.jacfwd(f)))
    return cache[key]


# ---------------------------------------------------------------------------------------------
# the optimisation


class L1Terms(NamedTuple):
    """The Laplace priors handled as an L1 term ``sum lam |z - center|`` (see ``_l1_terms``)."""

    names: tuple
    lam: np.ndarray
    center: np.ndarray


class Optimum(NamedTuple):
    """What :func:`optimize` returns."""

    result: object  # OptResult, as numpy
    hessian: np.ndarray | None  # of the smooth objective at result.z (None: too many parameters)
    # post(z, last_step, jacobian=True): one compiled call giving the objective at the existence
    # probes, the natural values, their Jacobian and the log-likelihood at z
    post: object
    l1: L1Terms
    timer: Timer
    notes: list  # warnings, and notes prefixed "note: "
    info: dict  # {"optimizer": kind}, plus "start" where Newton started from a subset's fit


_SMOOTHING = tuple(10.0 ** -k for k in range(1, 11))  # eps for Laplace noise, 1e-1 ... 1e-10


class Switches(NamedTuple):
    """The traced inputs that choose the objective of one compiled optimiser: the smoothing
    ``eps`` of Laplace noise (ignored unless ``laplace_noise="smooth"``), the weight of the
    ``param`` priors (0: MLE, 1: MAP) and of the log-Jacobian (1: Laplace, ``map(jacobian=True)``).
    As arguments rather than constants of the trace, they let MLE, MAP and Laplace on one program
    and data shapes run the same executables, and the smoothing continuation compile once."""

    eps: float
    priors: float
    jacobian: float


def switches(eps, priors: bool, jacobian: bool) -> Switches:
    """:class:`Switches` as Python floats (one abstract signature: a NumPy scalar would retrace)."""
    return Switches(float(eps), float(bool(priors)), float(bool(jacobian)))


def _solver(obj: Objective, kind: str, drop: tuple, has_l1: bool, laplace_noise: str):
    """Compiled optimiser, Hessian and objective for one configuration (cached per program).

    Every function takes ``sw``, a :class:`Switches` (Laplace noise's smoothing and the weights
    of the priors and of the log-Jacobian), as a traced argument: MLE, MAP and Laplace share
    these programs. ``drop`` (the Laplace priors handled as an L1 term) changes the program and
    stays in the key; it is empty for MLE and for MAP without Laplace priors."""
    key = (kind, drop, has_l1, laplace_noise)
    solvers = obj.fns["solvers"]
    if key not in solvers:
        raw = obj.fns["log_joint_raw"]

        def neg_log_joint(z, args):
            arrays, sw = args
            return -raw(z, arrays, sw.eps, priors=sw.priors, jacobian=sw.jacobian, drop=drop, laplace_noise=laplace_noise)

        if kind == "newton":

            def run(z0, arrays, sw, lam, center, gtol, max_iter, reuse=True, dtol=1e-10, floor=1e-8):
                args = (arrays, sw)
                return newton(
                    neg_log_joint, z0, args, lam, center, gtol, max_iter, has_l1=has_l1, reuse=reuse, dtol=dtol,
                    floor=floor,
                )

        else:

            def run(z0, arrays, sw, lam, center, gtol, max_iter):
                return lbfgs(neg_log_joint, z0, (arrays, sw), gtol, max_iter)

        fns = obj.fns  # (not obj: the cache must not keep the first fit's data alive)

        def post(z, last, arrays, sw, lam, center, jacobian=True):
            """What a point fit reports at its optimum, in one compiled call: the objective at
            two probe points along the last step (does the optimum exist?), the natural values,
            their Jacobian (delta method; ``jacobian=False`` where there are no standard errors:
            it costs D forward passes) and the log-likelihood."""

            def objective(y):
                return neg_log_joint(y, (arrays, sw)) + jnp.sum(lam * jnp.abs(y - center))

            norm = jnp.linalg.norm(last)
            d = last / jnp.where(norm > 0, norm, 1.0)
            step = 1.0 + jnp.max(jnp.abs(z))
            return dict(
                probe=jnp.stack([objective(z + step * d), objective(z + 10.0 * step * d)]),
                natural=fns["natural"](z, arrays),
                jacobian=fns["natural_jacobian"](z, arrays) if jacobian else None,
                log_likelihood=weighted_sum(fns["pointwise"](z, arrays), arrays.get(WEIGHTS)),
            )

        run_jit = jit(run)
        solvers[key] = dict(
            # traceable, for the compositions below (least squares first, several starts)
            run_raw=functools.partial(run, reuse=False) if kind == "newton" else run,
            post=jit(post, static_argnames=("jacobian",)),
            run=run_jit,
            # without Newton's Hessian reuse: for small data (a Hessian is cheap there), under
            # vmap (calibrate's batched fits), where a batched cond computes both of its branches
            # (a Hessian and the update at every step), and from a start next to the optimum (the
            # subset start of a large data set, where Newton takes 0-2 steps): the reuse would
            # only add 0.1-0.2 s of compile
            run_plain=jit(functools.partial(run, reuse=False)) if kind == "newton" else run_jit,
            chord=jit(lambda z0, arrays, sw, chol, max_iter: chord(neg_log_joint, z0, (arrays, sw), chol, max_iter)),
            hessian=jit(lambda z, arrays, sw: hessian_of(neg_log_joint)(z, (arrays, sw))),
            grad=jit(lambda z, arrays, sw: jax.grad(neg_log_joint)(z, (arrays, sw))),
            value=jit(lambda z, arrays, sw: neg_log_joint(z, (arrays, sw))),
        )
    return solvers[key]


def _as_optimum(out) -> Optimum:
    """An :class:`Optimum` from another optimiser's ``(result, hessian, post, (names, lam,
    center), timer, notes, info)``."""
    if isinstance(out, Optimum):
        return out
    res, h, post, l1, timer, notes, info = out
    return Optimum(res, h, post, L1Terms(*l1), timer, notes, info)


def optimize(obj: Objective, *, priors: bool, jacobian: bool, opts: dict, method: str):
    """Run the optimiser.

    Laplace noise has a piecewise-linear log-likelihood: it is smoothed by ``eps`` and ``eps``
    taken from 1e-1 to 1e-10 (relative to the noise scale), each stage started at the last
    solution, and the Hessian is then its Fisher information (see ``noise.LaplaceNoise``).

    Returns an :class:`Optimum`.
    """
    if obj.partitioned is not None:  # rows on a dask cluster: Newton, one pass per step
        return _as_optimum(obj.partitioned.optimize(obj, priors=priors, jacobian=jacobian, opts=opts, method=method))
    own = getattr(obj, "optimize", None)  # an objective with its own optimiser (_marginal.py)
    if own is not None:
        return _as_optimum(own(priors=priors, jacobian=jacobian, opts=opts, method=method))
    notes = []
    if priors:
        drop, lam, center, learned = _l1_terms(obj)
        for name in learned:
            notes.append(Finding(
                OTHER,
                f"the Laplace prior of {name!r} has a location or scale computed from other "
                "parameters, so it is optimised as a smooth term: its MAP may sit near 0 "
                "rather than exactly at 0",
            ))
    else:
        drop, lam, center = (), np.zeros(obj.dim), np.zeros(obj.dim)
    kind = opts["optimizer"]
    if kind not in ("auto", "newton", "lbfgs"):
        raise ValueError(f"fit(method={method!r}): optimizer must be 'auto', 'newton' or 'lbfgs', got {kind!r}")
    if kind == "auto":
        kind = "newton" if (obj.dim <= _NEWTON_MAX_DIM or drop) else "lbfgs"
    if kind == "lbfgs" and drop:
        raise ValueError(
            f"fit(method={method!r}): Laplace priors on {list(drop)} make the objective "
            "non-smooth; optimizer='lbfgs' cannot reach their exact zeros (use 'newton')"
        )
    max_iter = int(opts["max_iter"] or (500 if kind == "newton" else 20000))
    smooth = bool(obj.laplace_noise)
    fns = _solver(obj, kind, drop, bool(drop), "smooth" if smooth else "exact")
    info = dict(optimizer=kind)
    args = (np.asarray(lam, np.float64), np.asarray(center, np.float64), float(opts["gtol"]), max_iter)
    # Newton's Hessian reuse saves a few Hessians per fit and costs 0.1-0.2 s of compile once
    # per data shape: only where a Hessian is dear (about (data size) x D work)
    reuse = sum(int(np.size(a)) for a in obj.arrays.values()) * obj.dim >= _REUSE_MIN_WORK
    starts = opts["starts"]
    if isinstance(starts, (bool, np.bool_)) or not isinstance(starts, (int, np.integer)) or starts < 1:
        raise ValueError(
            f"fit(method={method!r}): starts must be a positive integer (how many starting points "
            f"to optimise from), got {starts!r}"
        )
    starts = int(starts)
    with Timer() as timer:
        # the least-squares path: Gaussian noise, MLE (or MAP with flat priors), predictions
        # nonlinear in the parameters (a linear model is solved by Newton's first step)
        lsq = None
        if kind == "newton" and not drop and not smooth and not jacobian and (not priors or all(s["flat"] for s in obj.sites)):
            lsq = _lsq.structure(obj)
        if starts > 1:
            zs = _draw_starts(obj.z0, starts, int(opts["seed"]))
            batched = _batched(fns, obj, lsq)
            n_iter = 0
            for eps in _SMOOTHING if smooth else (0.0,):
                out = batched(zs, obj.arrays, switches(eps, priors, jacobian), *args)
                res_b = out[0] if lsq is not None else out
                zs, n_iter = res_b.z, n_iter + np.asarray(res_b.n_iter)
            res_b = res_b._replace(n_iter=n_iter)
            res, info["starts"], i = _best(res_b)
            if lsq is not None:
                info["least_squares_iterations"] = int(np.asarray(out[1].n_iter)[i])
            if smooth:
                h = None  # the Fisher information, below
            else:
                h = res.hess
        elif smooth:
            z, iters, hessians = obj.z0, 0, 0
            for eps in _SMOOTHING:
                res = fns["run" if reuse else "run_plain"](z, obj.arrays, switches(eps, priors, jacobian), *args)
                z, iters, hessians = res.z, iters + int(res.n_iter), hessians + int(res.n_hess)
            res = jax.tree_util.tree_map(np.asarray, res._replace(n_iter=iters, n_hess=hessians))
        elif lsq is not None:
            eps = 0.0
            res, lm = _from_least_squares(fns, obj, lsq)(obj.z0, obj.arrays, switches(eps, priors, jacobian), *args)
            res = jax.tree_util.tree_map(np.asarray, res)
            info["least_squares_iterations"] = int(lm.n_iter)
            h = res.hess
        else:
            eps = 0.0
            z0 = obj.z0
            if kind == "newton" and not drop:
                start = _subsample_start(obj, priors, jacobian, fns, args)
                if start is not None:
                    z0, n_sub, chol = start
                    z0, n_chord = fns["chord"](z0, obj.arrays, switches(eps, priors, jacobian), chol, 50)
                    info["start"] = (
                        f"the fit to a random {n_sub} of the {obj.n_obs} observations, then "
                        f"{int(n_chord)} chord steps with its Hessian scaled to all of them"
                    )
            run = fns["run_plain"] if ("start" in info or not reuse) else fns["run"]
            res = jax.tree_util.tree_map(np.asarray, run(z0, obj.arrays, switches(eps, priors, jacobian), *args))
            h = res.hess
        if smooth:
            fisher = _solver(obj, kind, drop, bool(drop), "fisher")
            h = np.asarray(fisher["hessian"](np.asarray(res.z), obj.arrays, switches(0.0, priors, jacobian)))
            notes.append(
                f"note: {', '.join(obj.laplace_noise)}: Laplace noise has no second derivative; the "
                "standard errors use its Fisher information (as least-absolute-deviations theory does)"
            )
        sw = switches(eps, priors, jacobian)  # the objective's last configuration (eps)
        if kind == "lbfgs":
            h = np.asarray(fns["hessian"](np.asarray(res.z), obj.arrays, sw)) if obj.dim <= _HESSIAN_MAX_DIM else None
            if h is not None:
                res, h = _newton_polish(obj, fns, res, h, sw)

    def post(z, last, jacobian=True):
        out = fns["post"](np.asarray(z), np.asarray(last), obj.arrays, sw, args[0], args[1], jacobian=jacobian)
        return jax.tree_util.tree_map(np.asarray, out)

    return Optimum(res, h, post, L1Terms(drop, lam, center), timer, notes, info)


def _draw_starts(z0, k: int, seed: int) -> np.ndarray:
    """``k`` starting points: ``z0`` and ``k - 1`` drawn around it on the unconstrained scale,
    ``z0 + max(|z0|, 1) N(0, 1)`` coordinate by coordinate (relative to the start's own size,
    so a rate of 1e-4 and an amplitude of 500 are both moved by their own order of magnitude)."""
    z0 = np.asarray(z0, np.float64)
    noise = np.random.default_rng(seed).standard_normal((k - 1, z0.size))
    return np.vstack([z0[None], z0 + np.maximum(np.abs(z0), 1.0) * noise])


def _from_least_squares(fns: dict, obj: Objective, lsq):
    """Compiled: Levenberg-Marquardt on the residuals (the scale profiled out), then Newton on
    the full likelihood from there; returns (OptResult, LMResult)."""
    key = ("least_squares", lsq)
    if key not in fns:
        fns[key] = jit(_lsq_then_newton(fns, obj, lsq))
    return fns[key]


def _lsq_then_newton(fns, obj, lsq):
    start = _lsq.least_squares_start(obj, lsq)
    run = fns["run_raw"]

    def run_lsq(z0, arrays, sw, lam, center, gtol, max_iter):
        z, lm, floor = start(z0, arrays)
        return run(z, arrays, sw, lam, center, gtol, max_iter, dtol=jnp.maximum(1e-10, floor), floor=1e-30), lm

    return run_lsq


def _batched(fns: dict, obj: Objective, lsq):
    """Compiled: the optimiser vmapped over a leading axis of starting points (one compile for
    any number of starts; Newton without its Hessian reuse, whose ``cond`` would compute both
    branches under ``vmap``)."""
    key = ("batched", lsq)
    if key not in fns:
        one = _lsq_then_newton(fns, obj, lsq) if lsq is not None else fns["run_raw"]
        fns[key] = jit(jax.vmap(one, in_axes=(0,) + (None,) * 6))
    return fns[key]


def _best(res_b):
    """The best of a batch of optimiser results: the lowest objective among the converged ones
    (among all finite ones where none converged), and how many starts reached it (converged, and
    within 1e-8 relative of its objective): ``(result, count, index)``."""
    res_b = jax.tree_util.tree_map(np.asarray, res_b)
    value = np.where(np.isfinite(res_b.value), res_b.value, np.inf)
    ok = res_b.status == 0
    pool = np.where(ok, value, np.inf) if ok.any() else value
    i = int(np.argmin(pool))
    best = value[i]
    reached = int(np.sum(ok & (value <= best + 1e-8 * max(1.0, abs(best)))))
    res = jax.tree_util.tree_map(lambda a: a[i] if np.ndim(a) else a, res_b)
    return res, reached, i

# Hessian reuse from (data elements) x (parameters) of 1e6: a Gaussian regression with N = 10,000,
# d = 5 (a Hessian ~0.2 ms); the report's examples (N = 60) compile without it
_REUSE_MIN_WORK = 1_000_000
_SUBSAMPLE_MIN_RATIO = 10  # subsample start when N >= 10 n_sub ...
_SUBSAMPLE_N = 20_000  # ... n_sub = max(20,000, 50 x parameters)


def _subsample_start(obj, priors, jacobian, fns, args):
    """A start for Newton on a large data set: ``(z, n_sub, L)``, the same fit on a random
    subset of ``n_sub`` observations and the Cholesky factor of its Hessian scaled by
    ``N / n_sub``, or None.

    Each Newton step on all N observations costs a Hessian, ~D passes over the data (0.5 s at
    N = 1e6, D = 51), and from ``z = 0`` Newton needs ~6 of them. The subset's optimum lies
    within ~sqrt(N / n_sub) standard errors of the full one, and chord steps from there with
    the scaled subset Hessian (a gradient each) shrink the error ~20-fold per step, so that
    Newton's own test, on the exact Hessian, usually passes at once: one full Hessian instead of
    six or seven. Only where the observed arrays share one leading (observation) axis, the
    data arrays of that length are subset along it, and the subset has the same parameters;
    the subset's optimum is used only when it lowers the full objective (a subset can be
    separated, or unrepresentative of a time series) and its Hessian is positive definite:
    otherwise Newton starts at ``z0`` as before."""
    n, keys = obj.observation_axis()
    n_sub = max(_SUBSAMPLE_N, 50 * obj.dim)
    if n is None or n < _SUBSAMPLE_MIN_RATIO * n_sub:
        return None
    idx = np.sort(np.random.default_rng(0).choice(n, n_sub, replace=False))
    try:
        small = Objective(obj.model, obj.rows(idx, keys))
    except Exception:  # a program whose other inputs must match N: no subset start
        return None
    if small.labels != obj.labels:
        return None
    sw = switches(0.0, priors, jacobian)
    sfns = _solver(small, "newton", (), False, "exact")
    res = sfns["run_plain"](obj.z0, small.arrays, sw, *args)
    if int(res.status) != 0:
        return None
    z = np.asarray(res.z)
    f0 = float(fns["value"](obj.z0, obj.arrays, sw))
    f1 = float(fns["value"](z, obj.arrays, sw))
    if not (np.isfinite(f1) and f1 < f0):
        return None
    # the likelihood's curvature grows with N: the subset's Hessian scaled by N / n_sub
    # approximates the full one (a prior's part is overweighted, which only slows the chord
    # steps; Newton takes over when they slow)
    h = np.asarray(res.hess) * (n / n_sub)
    try:
        chol = np.linalg.cholesky(0.5 * (h + h.T))
    except np.linalg.LinAlgError:
        return None
    return z, n_sub, chol


def _newton_polish(obj, fns, res, h, sw, steps=3):
    """L-BFGS stops at a gradient of ~1e-9 |f|, which for hundreds of parameters leaves errors of
    ~1e-7; the Hessian is computed for the standard errors anyway, so a few Newton steps with it
    take the optimum to machine precision (quadratic convergence)."""
    z, value = np.asarray(res.z), float(res.value)
    g = np.asarray(fns["grad"](np.asarray(z), obj.arrays, sw))
    for _ in range(steps):
        try:
            chol = np.linalg.cholesky(0.5 * (h + h.T))
        except np.linalg.LinAlgError:
            break  # not positive definite: leave it to the warnings
        p = -np.linalg.solve(chol.T, np.linalg.solve(chol, g))
        new = float(fns["value"](np.asarray(z + p), obj.arrays, sw))
        if not np.isfinite(new) or new > value + 1e-12 * abs(value):
            break
        z, value = z + p, new
        g = np.asarray(fns["grad"](np.asarray(z), obj.arrays, sw))
        h = np.asarray(fns["hessian"](np.asarray(z), obj.arrays, sw))
        if np.sqrt(abs(g @ np.linalg.solve(0.5 * (h + h.T), g))) < 1e-10:
            break
    gn = float(np.max(np.abs(g)))
    status = 0 if (int(res.status) == 0 or np.sqrt(abs(g @ np.linalg.lstsq(h, g, rcond=None)[0])) < 1e-8) else int(res.status)
    return res._replace(z=z, value=np.asarray(value), grad=g, grad_norm=np.asarray(gn), status=np.asarray(status)), h


# ---------------------------------------------------------------------------------------------
# what went wrong


def _existence(obj, res, probe):
    """Does the optimum exist? Probe the objective along the last step direction.

    A perfect separation (logistic regression) or a likelihood unbounded on the boundary
    (a variance going to 0) lets the optimiser run off to infinity in ``z`` while the gradient
    becomes tiny. Beyond the stopping point the objective then still decreases along the
    direction of the last steps; at a true optimum it increases in every direction.

    Returns (diverging labels, kind) with kind in {None, "infinite", "unbounded", "boundary"}.
    """
    p = res.last_step
    norm = np.linalg.norm(p)
    if not np.isfinite(norm) or norm == 0.0:
        return [], None
    d = p / norm
    f0 = float(res.value)
    # the objective at z + (1 + max |z|) d and z + 10 (1 + max |z|) d
    f1, f2 = (float(v) for v in probe)
    eps = 1e-12 * abs(f0) + 1e-300  # relative: under separation the objective itself tends to 0
    if not (np.isfinite(f1) and f1 < f0 - eps):
        return [], None
    lab = [obj.labels[i] for i in np.flatnonzero(np.abs(d) > 0.05)]
    constrained = _constrained_coords(obj)
    to_boundary = bool(np.any(constrained[np.abs(d) > 0.05]))
    linear = np.isfinite(f2) and (f1 - f2) > 0.5 * 9.0 * (f0 - f1)  # keeps falling at the same rate
    if to_boundary:
        return lab, ("unbounded" if linear or not np.isfinite(f2) else "boundary")
    return lab, "infinite"


def _verb(labels, one: str, many: str) -> str:
    """Singular or plural, by how many distinct parameters ``labels`` names."""
    return one if len(set(lab.split("[")[0] for lab in labels)) == 1 and len(set(labels)) == 1 else many


def _constrained_coords(obj):
    out = []
    for s in obj.sites:
        n = int(np.prod(s["zshape"], dtype=int))
        out += [not _is_real(s["support"])] * n
    return np.asarray(out, bool)


def _separation(obj, z):
    """Observations a discrete noise model fits with probability > 1 - 1e-6 (separation)."""
    counts = []
    ll = obj.fns["pointwise_batch"](np.asarray(z)[None], obj.arrays)
    for name, v in ll.items():
        if obj.discrete[name]:
            v = np.asarray(v[0])
            if obj.weights is not None and v.ndim and v.shape[0] == obj.weights.size:
                v = v[obj.weights > 0]  # a row of weight 0 is not in the fit
            counts.append((name, int(np.sum(v > -1e-6)), v.size))
    return counts


def _boundary_params(obj, z):
    """Natural-space parameters whose unconstrained coordinate is so large that the value sits on
    the boundary of its support (within ~1e-7 relative)."""
    constrained = _constrained_coords(obj)
    hit = constrained & (np.abs(z) > 16.0)
    return [obj.labels[i] for i in np.flatnonzero(hit)]


# ---------------------------------------------------------------------------------------------
# the point fit


def solve_point(obj: Objective, method: str, options: dict) -> SolverResult:
    """MLE (``priors=False``) or MAP; see the module docstring. A program with ``latent`` sites
    gets the marginal fit (latents integrated out, ``_marginal.py``) unless ``joint=True`` asks
    for the joint mode over params and latents together."""
    opts = check_options(method, options, POINT_DEFAULTS)
    if getattr(obj, "latent", ()) and not opts["joint"]:
        from ._marginal import solve_marginal

        return solve_marginal(obj, method, options, solve_point)
    priors = method == "map"
    if not priors and not obj.observed:
        raise ValueError(f"fit({obj.name}, method='mle'): the program observes nothing (no observe(..., obs=x)), so there is no likelihood")
    jacobian = bool(opts["jacobian"])
    if jacobian and not priors:
        raise ValueError("fit(method='mle'): jacobian=True is for method='map' (the mode of the unconstrained posterior)")
    if opts["stderr"] not in ("observed", "sandwich"):
        raise ValueError(f"fit(method={method!r}): stderr must be 'observed' or 'sandwich', got {opts['stderr']!r}")

    opt = optimize(obj, priors=priors, jacobian=jacobian, opts=opts, method=method)
    res, h, post, timer, notes, opt_info = opt.result, opt.hessian, opt.post, opt.timer, opt.notes, opt.info
    drop, lam, center = opt.l1.names, opt.l1.lam, opt.l1.center
    warnings = [n for n in notes if not n.startswith("note: ")]
    notes = [n[len("note: "):] for n in notes if n.startswith("note: ")]
    z = res.z
    converged = int(res.status) == 0
    if not converged:
        warnings.append(Finding(
            CONVERGENCE,
            f"the optimiser stopped after {int(res.n_iter)} iterations without converging: "
            f"{STATUS[int(res.status)]}; the largest gradient entry is {float(res.grad_norm):.3g} "
            f"(tolerance {opts['gtol']:g} x max(1, |objective|)). Give a better start (init=...) "
            "or more iterations (max_iter=...)",
        ))

    # Does the optimum exist at all?
    what = "MLE" if method == "mle" else "MAP"
    at = post(z, res.last_step, jacobian=h is not None)
    diverging, kind_exist = _existence(obj, res, at["probe"])
    if kind_exist == "infinite":
        converged = False
        sep = [(n, k, t) for n, k, t in _separation(obj, z) if k > 0]
        if sep:
            detail = "; ".join(f"{k} of {t} observations of {n!r} ({100 * k / t:.1f}%)" for n, k, t in sep)
            warnings.append(Finding(
                SEPARATION,
                f"the {what} does not exist: perfect separation. {detail} are fitted with "
                f"probability > 1 - 1e-6 and the objective keeps decreasing as "
                f"{format_labels(diverging)} grow without bound, so their estimates and standard "
                "errors are meaningless. A prior (method='map' with a Normal or Student-t prior) "
                "or a penalty gives finite estimates",
            ))
        else:
            warnings.append(Finding(
                EXISTENCE,
                f"the {what} does not exist: the objective keeps decreasing as "
                f"{format_labels(diverging)} run off to infinity. A prior (method='map') or a "
                "reparameterisation gives finite estimates",
            ))
    elif kind_exist == "unbounded":
        converged = False
        if method == "mle":
            remedy = "A prior that keeps them away from it (method='map') gives finite estimates"
        else:
            remedy = (
                "The posterior density has no mode there: use a prior that vanishes at the boundary, "
                "a non-centred parameterization (hierarchical scales), or a posterior method (nuts)"
            )
        density = "likelihood" if method == "mle" else "posterior density"
        warnings.append(Finding(
            EXISTENCE,
            f"the {what} does not exist: the {density} increases without bound as "
            f"{format_labels(diverging)} {_verb(diverging, 'approaches', 'approach')} the boundary "
            f"of {_verb(diverging, 'its', 'their')} support. {remedy}",
        ))
    boundary = _boundary_params(obj, z)
    inverse = inverse_hessian(obj, h) if h is not None else None
    if inverse is not None:
        # far out on the unconstrained scale but curved there (a noise scale of 1e-13 fitted to
        # residuals at rounding level): a determined value, not a boundary. On the log scale the
        # curvature at an interior optimum is about the number of observations that inform the
        # value (2 N for a Gaussian scale); towards a boundary it vanishes with the value (e^z)
        curved = {obj.labels[i] for i in range(obj.dim) if h[i, i] >= 0.5}
        boundary = [lab for lab in boundary if lab in inverse[1] or lab in inverse[2] or lab not in curved]
    if boundary and kind_exist != "unbounded":
        warnings.append(Finding(
            BOUNDARY,
            f"{format_labels(boundary)} {_verb(boundary, 'lies', 'lie')} on the boundary of "
            f"{_verb(boundary, 'its', 'their')} support: the {what} sits there (e.g. a variance at "
            "0), a Gaussian approximation and Wald interval around it are not valid, and a plug-in "
            "predictive gives the boundary (almost) zero probability",
        ))

    # Standard errors.
    stderr_kind = opts["stderr"]
    cov_z = None
    if h is None:
        warnings.append(Finding(
            OTHER,
            f"standard errors not computed: {obj.dim} unconstrained parameters, over the limit "
            f"of {_HESSIAN_MAX_DIM} for a dense Hessian",
        ))
    else:
        cov_z, singular, negative = inverse
        # At a boundary the curvature in z vanishes because the estimate sits at z -> +-inf: that
        # is the boundary finding above, not an unidentified parameter or a saddle.
        singular = [lab for lab in singular if lab not in boundary]
        negative = [lab for lab in negative if lab not in boundary]
        info = "observed information" if method == "mle" else "Hessian of the negative log posterior"
        # A singular information where the model determines the parameters elsewhere (two terms
        # of a sum coincide): a stationary point, not an optimum
        lsq = _lsq.structure(obj) if singular and not drop else None
        collapsed = lsq is not None and _lsq.identified_elsewhere(obj, lsq, z)
        if collapsed or negative:
            converged = False
        if collapsed:
            warnings.append(Finding(
                CONVERGENCE,
                f"not an optimum: the {info} is singular along {format_labels(singular)} at the "
                "point found, though the model determines them at other values (two terms of the "
                "model coincide there: a saddle or ridge of the likelihood, where the optimiser's "
                "steps cannot separate them); their standard errors are NaN. Optimise from several "
                "starting points (fit(..., starts=8)) or from a start away from it (init=...)",
            ))
        elif singular:
            remedy = "add a prior (method='map')" if method == "mle" else "give them priors that break the tie"
            warnings.append(Finding(
                IDENTIFICATION,
                f"the {info} is singular: {format_labels(singular)} are not identified "
                "(collinear inputs, parameters the likelihood does not depend on, or a symmetry "
                "such as a rotation or a sign flip); their standard errors are NaN. Drop or "
                "combine them, fix the symmetry (e.g. a triangular or ordered parameter), or "
                f"{remedy}",
            ))
        if negative:
            warnings.append(Finding(
                CONVERGENCE,
                f"the {info} is not positive definite along {format_labels(negative)}: the point "
                "found is not a minimum (a saddle, or not converged); their standard errors are NaN. "
                "Optimise from several starting points (fit(..., starts=8)) or from a start away "
                "from it (init=...)",
            ))
        if stderr_kind == "sandwich":
            if method != "mle":
                raise ValueError("fit(method='map'): stderr='sandwich' is for method='mle'")
            meat = obj.score_outer(z)
            cov_z = cov_z @ meat @ cov_z
    if drop and cov_z is not None:
        at_zero = (lam > 0) & (z == center)
        if at_zero.any():
            cov_z[at_zero, :] = np.nan
            cov_z[:, at_zero] = np.nan

    estimate = at["natural"]
    latent = {s["name"]: estimate[s["name"]] for s in obj.sites}
    cov_nat = natural_moments(obj, z, cov_z, jac=at["jacobian"]) if cov_z is not None else None
    if cov_nat is not None:
        stderr = split_flat(obj, np.sqrt(np.clip(np.diag(cov_nat), 0.0, None)))
    else:
        stderr = {k: np.full(np.shape(v), np.nan) for k, v in latent.items()}

    lazy = None
    n = int(opts["draws"] or 0)
    has_draws = bool(n and cov_z is not None and np.all(np.isfinite(cov_z)) and converged and not boundary)
    if has_draws:
        seed = int(opts["seed"])
        lazy = lambda: gaussian_draws(obj, z, cov_z, n, seed)  # noqa: E731

    diagnostics = dict(
        converged=bool(converged),
        warnings=warnings,
        notes=notes,
        iterations=int(res.n_iter),
        **({"hessians": int(res.n_hess)} if opt_info["optimizer"] == "newton" else {}),
        grad_norm=float(res.grad_norm),
        objective=float(res.value),
        log_likelihood=float(at["log_likelihood"]),
        **opt_info,
        status=STATUS[int(res.status)],
        stderr=stderr_kind,
        compile_s=timer.compile_s,
        run_s=timer.run_s,
        wall_s=timer.wall_s,
    )
    if jacobian:
        diagnostics["jacobian"] = True
    attrs = dict(
        posterior_kind=(
            "Gaussian approximation: N(z_hat, inverse Hessian) in the unconstrained space, whose "
            "delta-method image is N(estimate, inverse information); not a posterior"
            if has_draws
            else "none"
        ),
        stderr=stderr_kind,
    )
    return SolverResult(
        method=method,
        estimate=latent,
        stderr=stderr,
        draws=None,
        zdraws=None,
        lazy_draws=lazy,
        diagnostics=diagnostics,
        objective=obj,
        attrs=attrs,
        cov=cov_nat,
        zhat=np.asarray(z),
    )


def newton_batch(obj: Objective, observed: str, xs, *, priors: bool, jacobian: bool, gtol: float, max_iter: int | None):
    """Newton's method on many data sets at once (``jax.vmap`` over the observation ``observed``,
    one compiled call): ``(OptResult with a leading data-set axis, as numpy; the batched
    arrays)``, or None where the program cannot be batched (Laplace noise needs its smoothing
    continuation, Laplace priors their L1 term)."""
    if obj.laplace_noise or (priors and _l1_terms(obj)[0]):
        return None
    fns = _solver(obj, "newton", (), False, "exact")
    axes = {k: (0 if k == observed else None) for k in obj.arrays}
    arrays = {**obj.arrays, observed: jnp.asarray(np.stack(xs))}
    zeros = jnp.zeros(obj.dim)
    run = jax.vmap(fns["run_plain"], in_axes=(None, axes, None, None, None, None, None))
    res = run(obj.z0, arrays, switches(0.0, priors, jacobian), zeros, zeros, float(gtol), int(max_iter or 500))
    return jax.tree_util.tree_map(np.asarray, res), arrays


def _solve_mle(obj: Objective, options: dict) -> SolverResult:
    return solve_point(obj, "mle", options)


def _solve_map(obj: Objective, options: dict) -> SolverResult:
    return solve_point(obj, "map", options)


MLE = Solver(name="mle", label="MLE", kind="point", defaults=POINT_DEFAULTS, solve=_solve_mle)
MAP = Solver(name="map", label="MAP", kind="point", defaults=POINT_DEFAULTS, solve=_solve_map)
SOLVERS = (MLE, MAP)
