"""Least squares inside the point solvers: Levenberg-Marquardt on the residuals of Gaussian noise.

Where every observation of a program has Gaussian noise, ``x = f_theta(u) + eps``, with one
learned scale shared by all of them (or fixed scales), the negative log-likelihood is
``n log s + RSS(b) / (2 s^2)`` (or ``sum (r_i / s_i)^2 / 2``): a least-squares problem in the
location parameters ``b``, with the scale profiled out (``s^2 = RSS / n``). A generic Newton method
on ``(b, log s)`` suffers where the residuals are small (the Hessian scales as ``1 / s^2`` and a
trust region in ``(b, log s)`` stops where two terms of a sum coincide); MINPACK's ``lmder`` and
scipy's ``trf`` do not, because they work on the residual Jacobian and scale the step by its
columns. :func:`levenberg_marquardt` is that method (More's trust-region formulation, the step
from the singular value decomposition of the column-scaled Jacobian, so that nothing squares the
Jacobian's condition number); :func:`least_squares_start` finds the structure from the program
(no change to it) and returns the start it gives: the least-squares optimum in ``b`` and the
profiled scale. The point solver then takes exact Newton steps on the full likelihood from there,
so that the optimum and its standard errors are the ones the observed information defines.

Only where the predictions are nonlinear in the parameters: a linear model is solved by the first
Newton step already.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.extend.core import Var

from .._config import jit
from ._common import _SINGULAR_MARGIN
from ._objective import Objective, _base, _is_loglik_site, _trace_at

__all__ = ["LeastSquares", "LMResult", "structure", "levenberg_marquardt", "least_squares_start", "identified_elsewhere"]

# the dense residual Jacobian (n x p) of the least-squares path: above this many entries the
# generic Newton (whose Hessian is p x p) is used
_MAX_JACOBIAN = 20_000_000


class LeastSquares(NamedTuple):
    """The least-squares structure of a program: which coordinates of ``z`` the predictions
    depend on, and which one is the learned scale (``-1``: fixed scales, the residuals divided
    by them)."""

    loc: tuple
    scale: int


class LMResult(NamedTuple):
    b: jax.Array
    rss: jax.Array  # the sum of squared (scaled) residuals at b
    n_iter: jax.Array
    status: jax.Array  # 0 converged, 1 iteration limit, 3 not finite at the start


def _parts(obj: Objective, info: dict):
    """``(x, loc, scale)`` of every observed site, flattened and concatenated; ``info["ok"]``
    says (when JAX traces it) whether every one is a plain Gaussian."""
    model, static, unravel = obj.model, obj.static, obj.unravel

    def parts(z, arrays):
        tr = _trace_at(model, static, unravel, z, arrays)
        xs, locs, scales, ok = [], [], [], True
        for site in tr.values():
            if not _is_loglik_site(site):
                continue
            base = _base(site["fn"])
            # a plain Normal: no mask, no numpyro.handlers.scale, no other density
            # (frequency weights, all 1 where this path is taken: see Objective)
            scaled = site.get("scale") is not None and not site["infer"].get("probmodels_weights")
            if type(base) is not dist.Normal or scaled:
                ok = False
                continue
            shape = jnp.shape(site["value"])
            xs.append(jnp.ravel(site["value"]))
            locs.append(jnp.ravel(jnp.broadcast_to(base.loc, shape)))
            scales.append(jnp.ravel(jnp.broadcast_to(base.scale, shape)))
        info["ok"] = ok and bool(xs)
        if not info["ok"]:
            empty = jnp.zeros(1)
            return empty, empty, empty
        return jnp.concatenate(xs), jnp.concatenate(locs), jnp.concatenate(scales)

    return parts


def structure(obj: Objective) -> LeastSquares | None:
    """The least-squares structure of the program (for MLE, or MAP with flat priors), or None
    where there is none or the predictions are linear in the parameters.

    First from the program's trace alone (no compile): every observation a plain ``Normal``, and
    the predictions' polynomial degree in ``z`` (:func:`_degree`); an affine prediction ends it
    there. Then from two points (the start ``z0`` and ``z0`` moved by a fixed, irregular offset): the
    Jacobians of the predictions and of the noise scales say which coordinates each depends on
    (they must be disjoint, cover every coordinate, and the scale must be one learned value
    shared by every observation, or fixed); the predictions' Jacobian differs between the two
    points only if they are nonlinear. Computed once per program, static data and layout."""
    cache = obj.fns["solvers"]
    if ("lsq", "structure") in cache:
        return cache[("lsq", "structure")]
    found = None
    if not obj.least_squares_capable or obj.laplace_noise or obj.dim == 0 or not all(s["param"] for s in obj.sites):
        cache[("lsq", "structure")] = None
        return None
    info = {}
    parts = _parts(obj, info)
    # a trace without a compile says whether the observations are Gaussian and whether the
    # predictions are affine in z: a linear model pays nothing more (Newton's first step is exact)
    jaxpr = jax.make_jaxpr(lambda z: parts(z, obj.arrays)[1])(obj.z0)
    if not info.get("ok") or _degree(jaxpr.jaxpr, [1])[0] <= 1:
        cache[("lsq", "structure")] = None
        return None

    def probe(z, arrays):
        def ls(z):
            _, loc, scale = parts(z, arrays)
            return loc, scale

        return ls(z), jax.jacfwd(ls)(z)

    n_entries = obj.n_obs * obj.dim
    if n_entries <= _MAX_JACOBIAN:
        z0 = np.asarray(obj.z0)
        z1 = z0 + 0.3 * (1.0 + 0.37 * np.arange(obj.dim) / max(obj.dim, 1))
        fn = jit(probe)
        (loc0, scale0), (jl0, js0) = jax.tree_util.tree_map(np.asarray, fn(z0, obj.arrays))
        if info.get("ok"):
            (_, scale1), (jl1, js1) = jax.tree_util.tree_map(np.asarray, fn(z1, obj.arrays))
            found = _classify(obj, scale0, scale1, jl0, jl1, js0, js1)
    cache[("lsq", "structure")] = found
    return found


# primitives that are linear in each argument, and those linear in their first argument alone
# (the rest of their arguments indices or shapes); any other primitive of a varying argument
# makes the result nonlinear
_ADDITIVE = frozenset(
    "add add_any sub neg reshape broadcast_in_dim squeeze expand_dims slice concatenate transpose "
    "convert_element_type reduce_sum copy copy_p rev pad real cumsum".split()
)
_FIRST = frozenset("gather dynamic_slice".split())
_PRODUCT = frozenset(("mul", "dot_general"))


def _degree(jaxpr, degrees) -> list:
    """The polynomial degree (0 constant, 1 affine, 2 anything else) of each output of ``jaxpr``
    in its inputs of the given degrees: a structural test of linearity, on the trace alone."""
    env = {}

    def read(a):
        return env.get(a, 0) if isinstance(a, Var) else 0

    for v, d in zip(jaxpr.invars, degrees):
        env[v] = d
    for eqn in jaxpr.eqns:
        ds = [read(a) for a in eqn.invars]
        name = eqn.primitive.name
        sub = next((eqn.params[k] for k in ("jaxpr", "call_jaxpr", "fun_jaxpr") if k in eqn.params), None)
        if max(ds, default=0) == 0:
            out = [0] * len(eqn.outvars)
        elif sub is not None:
            out = _degree(getattr(sub, "jaxpr", sub), ds)
        else:
            if name in _ADDITIVE:
                d = max(ds)
            elif name in _PRODUCT:
                d = sum(ds)
            elif name == "div":
                d = ds[0] if ds[1] == 0 else 2
            elif name in _FIRST:
                d = ds[0] if max(ds[1:], default=0) == 0 else 2
            elif name == "select_n":
                d = max(ds[1:]) if ds[0] == 0 else 2
            else:
                d = 2
            out = [min(d, 2)] * len(eqn.outvars)
        for v, d in zip(eqn.outvars, out):
            env[v] = min(d, 2)
    return [read(v) for v in jaxpr.outvars]


def _classify(obj, scale0, scale1, jl0, jl1, js0, js1):
    def uses(j0, j1):
        return np.any((j0 != 0) & np.isfinite(j0), axis=0) | np.any((j1 != 0) & np.isfinite(j1), axis=0)

    loc, sc = uses(jl0, jl1), uses(js0, js1)
    if np.any(loc & sc) or not np.all(loc | sc) or sc.sum() > 1 or loc.sum() > scale0.size:
        return None
    if sc.sum() == 1:
        for s in (scale0, scale1):
            if not (np.all(np.isfinite(s)) and np.ptp(s) <= 1e-12 * np.max(np.abs(s))):
                return None  # not one scale shared by every observation
    elif not np.all(np.isfinite(scale0) & (scale0 > 0)):
        return None
    a, b = jl0[:, loc], jl1[:, loc]
    top = max(np.max(np.abs(a)), 1e-300)
    linear = np.all(np.isfinite(b)) and np.max(np.abs(a - b)) <= 1e-10 * top
    if linear:
        return None
    return LeastSquares(tuple(int(i) for i in np.flatnonzero(loc)), int(np.flatnonzero(sc)[0]) if sc.any() else -1)


def _lm_step(s, ur, delta):
    """The trust-region step in the column-scaled coordinates: ``q(nu) = -s (U^T r) / (s^2 + nu)``
    with ``nu >= 0`` such that ``||q|| <= delta`` (the Gauss-Newton step, minimum-norm over the
    numerical rank, where it fits), found by bisection on ``log nu``. Returns ``(q, nu)``."""
    rank_tol = jnp.max(s) * s.shape[0] * jnp.finfo(s.dtype).eps
    valid = s > rank_tol
    gn = jnp.where(valid, -ur / jnp.where(valid, s, 1.0), 0.0)
    fits = jnp.linalg.norm(gn) <= delta

    def q(nu):
        return -s * ur / (s**2 + nu)

    hi = jnp.linalg.norm(s * ur) / delta + 1e-300
    lo = hi * 1e-30

    def bisect(_, ab):
        a, b = ab
        mid = jnp.sqrt(a * b)
        big = jnp.linalg.norm(q(mid)) > delta
        return jnp.where(big, mid, a), jnp.where(big, b, mid)

    _, nu = jax.lax.fori_loop(0, 110, bisect, (lo, hi))
    return jnp.where(fits, gn, q(nu)), jnp.where(fits, 0.0, nu)


def levenberg_marquardt(resid, b0, max_iter, ftol=1e-13, xtol=1e-13, factor=1.0) -> LMResult:
    """Minimise ``||resid(b)||^2`` by Levenberg-Marquardt in More's trust-region form, as
    MINPACK's ``lmder`` (its radius schedule included): the Jacobian (exact, forward mode) scaled
    by its column norms (the largest seen so far, so that parameters of size 1e-4 and 1e3 weigh
    alike), the step on the boundary of the trust region ``||D p|| <= delta`` from the scaled
    Jacobian's SVD (nothing squares its condition number), the radius from the ratio of actual to
    predicted reduction. The first radius is ``factor ||D b0||`` with ``factor = 1`` as in
    scipy's ``trf`` (MINPACK's 100 lets the first step from BoxBOD's far start onto the plateau
    where ``exp(-b2 u)`` vanishes). Stops as ``lmder`` does: relative reductions, actual and predicted,
    below ``ftol``, or a radius below ``xtol ||D b||``. One ``lax.while_loop`` (vmappable: the
    multi-start fits)."""
    jac = jax.jacfwd(resid)
    r0 = resid(b0)
    j0 = jac(b0)
    f0 = jnp.linalg.norm(r0)
    diag0 = jnp.linalg.norm(j0, axis=0)
    diag0 = jnp.where(diag0 > 0, diag0, 1.0)
    xnorm0 = jnp.linalg.norm(diag0 * b0)
    delta0 = jnp.where(xnorm0 > 0, factor * xnorm0, factor)
    finite0 = jnp.isfinite(f0) & jnp.all(jnp.isfinite(j0))
    state0 = (b0, r0, j0, f0, diag0, delta0, 0, jnp.where(finite0, -1, 3))

    def body(state):
        b, r, j, f, diag, delta, it, _ = state
        u, s, vt = jnp.linalg.svd(j / diag, full_matrices=False)
        q, nu = _lm_step(s, u.T @ r, delta)
        pnorm = jnp.linalg.norm(q)
        delta = jnp.where(it == 0, jnp.minimum(delta, pnorm), delta)  # lmder: the first step sets it
        p = (vt.T @ q) / diag
        b_new = b + p
        r_new = resid(b_new)
        f_new = jnp.linalg.norm(r_new)
        # lmder's reductions, relative to ||r||^2
        fs = jnp.where(f > 0, f, 1.0)
        actual = jnp.where(0.1 * f_new < f, 1.0 - (f_new / fs) ** 2, -1.0)
        jp = jnp.linalg.norm(s * q) / fs
        damp = jnp.sqrt(nu) * pnorm / fs
        pred = jp**2 + 2.0 * damp**2
        dirder = -(jp**2 + damp**2)
        rho = jnp.where(pred > 0, actual / jnp.where(pred > 0, pred, 1.0), 0.0)
        ok = jnp.isfinite(f_new) & (rho >= 1e-4)
        j_new = jax.lax.cond(ok, lambda: jac(b_new), lambda: j)
        ok = ok & jnp.all(jnp.isfinite(j_new))
        temp = jnp.where(actual >= 0, 0.5, 0.5 * dirder / (dirder + 0.5 * actual))
        temp = jnp.where((0.1 * f_new >= f) | ~jnp.isfinite(f_new) | (temp < 0.1), 0.1, temp)
        delta_new = jnp.where(
            rho <= 0.25, temp * jnp.minimum(delta, 10.0 * pnorm), jnp.where((nu == 0) | (rho >= 0.75), 2.0 * pnorm, delta)
        )
        b_next = jnp.where(ok, b_new, b)
        f_next = jnp.where(ok, f_new, f)
        j_next = jnp.where(ok, j_new, j)
        diag_next = jnp.maximum(diag, jnp.linalg.norm(j_next, axis=0))
        small = (jnp.abs(actual) <= ftol) & (pred <= ftol) & (rho <= 2.0)
        tiny = delta_new <= xtol * jnp.linalg.norm(diag_next * b_next)
        done = small | tiny | (f_next == 0.0)
        status = jnp.where(done, 0, jnp.where(it + 1 >= max_iter, 1, -1))
        return (b_next, jnp.where(ok, r_new, r), j_next, f_next, diag_next, delta_new, it + 1, status)

    b, _, _, f, _, _, it, status = jax.lax.while_loop(lambda s: s[7] < 0, body, state0)
    return LMResult(b, f**2, it, status)


def least_squares_start(obj: Objective, lsq: LeastSquares, max_iter: int = 1000):
    """A traceable ``start(z0, arrays) -> (z, LMResult, dtol)``: Levenberg-Marquardt in the
    location coordinates from ``z0``, then the learned scale set to its profile optimum
    ``sqrt(RSS / n)`` (by Newton's method on ``log scale`` in its unconstrained coordinate: one
    step for the usual ``exp`` transform), and the Newton decrement float64 can resolve there.

    That decrement: each residual carries a rounding error of ~eps (|x| + |x_hat|), which moves
    the optimum by up to ``||eps (|x| + |x_hat|) / s||`` standard errors (the decrement of that
    perturbation); a factor 16 covers the few operations of a prediction. Where residuals are at
    rounding level (a sum of exponentials fitted to 13 digits, s ~ 1e-13) it is ~0.1, and no
    float64 point has a smaller one; for ordinary residuals it is far below Newton's 1e-10."""
    info = {}
    parts = _parts(obj, info)
    idx = jnp.asarray(lsq.loc)

    def start(z0, arrays):
        def full(b):
            return z0.at[idx].set(b)

        def resid(b):
            x, loc, scale = parts(full(b), arrays)
            r = x - loc
            return r if lsq.scale >= 0 else r / scale

        res = levenberg_marquardt(resid, z0[idx], max_iter)
        z = full(res.b)
        if lsq.scale >= 0:
            n = resid(res.b).shape[0]
            target = 0.5 * jnp.log(res.rss / n)

            def log_scale(t):
                return jnp.log(parts(z.at[lsq.scale].set(t), arrays)[2][0])

            def newton(_, t):
                v, d = jax.value_and_grad(log_scale)(t)
                t_new = t - (v - target) / jnp.where(d != 0, d, 1.0)
                return jnp.where(jnp.isfinite(t_new) & (d != 0), t_new, t)

            # RSS = 0 (an exact fit): the scale's MLE is 0, on the boundary; leave it to Newton
            t = jnp.where(res.rss > 0, jax.lax.fori_loop(0, 20, newton, z[lsq.scale]), z[lsq.scale])
            z = z.at[lsq.scale].set(t)
        x, loc, scale = parts(z, arrays)
        floor = 16.0 * jnp.finfo(jnp.float64).eps * jnp.linalg.norm((jnp.abs(x) + jnp.abs(loc)) / scale)
        return z, res, jnp.where(jnp.isfinite(floor), floor, 0.0)

    return start


def identified_elsewhere(obj: Objective, lsq: LeastSquares, z) -> bool:
    """Whether the residual Jacobian has full column rank at a point near ``z`` (moved by a
    fixed, irregular offset of 5% of each coordinate's size): then a singular information at
    ``z`` is a property of that point (two terms of the model coincide: a saddle), not of the
    model (an unidentified model is singular everywhere)."""
    key = ("lsq", "jacobian", lsq)
    cache = obj.fns["solvers"]
    if key not in cache:
        parts = _parts(obj, {})
        idx = jnp.asarray(lsq.loc)

        def jacobian(z, arrays):
            return jax.jacfwd(lambda b: parts(z.at[idx].set(b), arrays)[1])(z[idx])

        cache[key] = jit(jacobian)
    z = np.asarray(z, np.float64)
    moved = z + 0.05 * np.maximum(np.abs(z), 1.0) * np.cos(1.0 + 2.3 * np.arange(z.size))
    j = np.asarray(cache[key](moved, obj.arrays))
    if not np.all(np.isfinite(j)):
        return False
    norms = np.linalg.norm(j, axis=0)
    if np.any(norms == 0):
        return False
    s = np.linalg.svd(j / norms, compute_uv=False)
    return bool(s[-1] > _SINGULAR_MARGIN * max(j.shape) * np.finfo(np.float64).eps * s[0])
