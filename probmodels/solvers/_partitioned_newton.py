"""Newton's method on partitioned rows: one pass over the data (value, gradient and Hessian
summed over the chunks) per step, in Marquardt's scaling with a trust region as
``_optimize.newton``.

The last step may go without a verifying pass when that pass could change nothing that is
reported: the Newton decrement after the step is bounded below ``_DTOL`` (the estimate) and the
Hessian at the new point is predicted to differ from the one in hand by less than ``_HTOL``
relative (the standard errors, which come from that Hessian). Otherwise one more pass evaluates
the Hessian at the returned estimate.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._config import jit
from ._optimize import OptResult, _scaled_eigen, _trust_region_step

__all__ = ["NewtonRun", "newton", "DTOL"]

DTOL = 1e-10  # Newton's decrement test, as _optimize.newton
# the largest predicted relative change of the Hessian (scaled by its diagonal) over an
# unverified last step: standard errors (its inverse's root) within ~5e-10 relative of those at
# the estimate, 20 times inside the 1e-8 to which they must equal an in-memory fit. At 1e8 rows
# the change over the third step is ~5e-10, so a fit there takes 3 passes instead of 4.
_HTOL = 1e-9


class NewtonRun(NamedTuple):
    """The result of :func:`newton`: the optimum (``res.hess`` is the Hessian at ``res.z``
    unless ``final`` is set), the log-likelihood at the last pass, the decrement before an
    unverified last step (None when every point was evaluated), the Newton decrement at every
    evaluated point, and the predicted relative change of the Hessian over the last step."""

    res: OptResult
    loglik: float
    final: float | None
    trail: list
    hess_change: float


_eigen = jit(_scaled_eigen)
_tr_step = jit(_trust_region_step)


def newton(evaluate, z0, gtol: float, max_iter: int):
    """Newton's method with a trust region in Marquardt's scaling, one ``evaluate`` (a pass
    over the rows: value, gradient, Hessian, log-likelihood) per step.

    Stops at a Newton decrement ``lambda <= 1e-10`` (standard errors); or, one pass earlier,
    after a full Newton step from a point whose decrement bounds the next one below ``1e-10``
    (:func:`_next_decrement`) and over which the Hessian is predicted to change by less than
    ``_HTOL`` (:func:`_hess_change`): the standard errors are then those at the estimate to that
    precision. Newton's error is squared at each step near the optimum, and for a log-likelihood
    of N observations the constant shrinks like 1 / sqrt(N) (measured at N = 300,000:
    decrements 8.4, 0.11, 2.9e-5, 2.1e-12, a contraction of ~2.5e-3); the Hessian's relative
    change over a step of ``lambda`` standard errors is ~``lambda / sqrt(N)`` (6e-8 over the
    step of 2.9e-5 at N = 240,000: verified there; ~3e-9 at N = 1e8)."""
    z = np.asarray(z0, np.float64)
    f, g, h, loglik = evaluate(z)
    radius, it, evals, status, final, last, trail = None, 0, 1, 1, None, np.zeros_like(z), []
    rate = np.inf  # the Hessian's relative change per scaled unit of the last accepted step
    change = np.inf
    while True:
        d, ev, v, c = (np.asarray(a) for a in _eigen(h, g))
        top = max(float(np.max(np.abs(ev))), 1e-300)
        pd, psd = ev[0] > 1e-12 * top, ev[0] > -1e-8 * top
        dec = float(np.sqrt(np.abs(np.sum(c**2 / ev)))) if pd else np.inf
        trail.append(dec)
        if not (np.isfinite(f) and np.all(np.isfinite(g)) and np.all(np.isfinite(h))):
            status = 3
            break
        if (pd and dec <= DTOL) or (not pd and psd and np.max(np.abs(g)) <= gtol * max(1.0, abs(f))):
            status = 0
            break
        if it >= max_iter:
            status = 1
            break
        if radius is None:  # the whole Newton step first (see _optimize.newton)
            newton_len = float(np.linalg.norm(c / ev)) if pd else np.inf
            radius = max(100.0, 1.0001 * newton_len) if np.isfinite(newton_len) else 100.0
        p, step = (np.asarray(a) for a in _tr_step(d, ev, v, c, radius))
        step = float(step)
        pred = -(g @ p + 0.5 * p @ h @ p)
        change = _hess_change(rate, p, d)
        if pd and step < radius and _next_decrement(trail) <= DTOL and change <= _HTOL:
            z, f, g, final, last, it, status = z + p, f - pred, g + h @ p, dec, p, it + 1, 0
            break
        f_new, g_new, h_new, ll_new = evaluate(z + p)
        it, evals = it + 1, evals + 1
        actual = f - f_new
        rho = actual / pred if pred > 0 else -np.inf
        unresolved = pred < 1e-12 * max(1.0, abs(f))
        ok = bool(np.isfinite(f_new) and np.all(np.isfinite(g_new)) and np.all(np.isfinite(h_new)) and pred > 0 and (rho > 1e-4 or unresolved))
        if not ok or (rho < 0.25 and not unresolved):
            radius = 0.25 * min(step, radius)
        elif rho > 0.75 and step > 0.99 * radius:
            radius = 2.0 * radius
        if ok:
            rate = _hess_rate(h, h_new, p)
            z, f, g, h, loglik, last = z + p, f_new, g_new, h_new, ll_new, p
        if radius < 1e-12:
            status = 2
            break
    res = OptResult(
        z=z, value=np.asarray(f), grad=np.asarray(g), hess=np.asarray(h), n_iter=np.asarray(it),
        grad_norm=np.asarray(float(np.max(np.abs(g)))), status=np.asarray(status), last_step=last,
        n_hess=np.asarray(evals),
    )
    return NewtonRun(res, loglik, final, trail, float(change) if final is not None else 0.0)


def _next_decrement(trail) -> float:
    """A bound on the Newton decrement after a full Newton step from the last point of ``trail``
    (the decrements so far): ``(l / (1 - l))^2`` for a self-concordant objective, or ten times
    the quadratic contraction ``l_k / l_{k-1}^2`` seen so far (the largest) times ``l^2``."""
    dec = trail[-1]
    if not dec < 1e-2:
        return np.inf
    bound = (dec / (1.0 - dec)) ** 2
    rates = [b / a**2 for a, b in zip(trail[:-1], trail[1:]) if 0 < a < np.inf and b < a]
    if rates:
        bound = min(bound, 10.0 * max(rates) * dec**2)
    return bound



def _scaled(h):
    s = np.sqrt(np.abs(np.diag(h)))
    return np.where(s > 0, s, 1.0)


def _hess_rate(h, h_new, p) -> float:
    """The Hessian's change over the step ``p`` (relative, in the scaling of its diagonal) per
    unit of the step's length in that scaling (standard errors, roughly)."""
    s = _scaled(h)
    rel = float(np.max(np.abs(h_new - h) / np.outer(s, s)))
    length = float(np.linalg.norm(p * s))
    return rel / length if length > 0 else np.inf


def _hess_change(rate: float, p, d) -> float:
    """The predicted relative change of the Hessian over the step ``p``: the last step's rate
    (a third derivative that stays about constant near the optimum) times ``p``'s scaled length;
    ``d`` is the Hessian's scaling, the root of its diagonal (``_scaled_eigen``'s). Infinite before any step was measured."""
    if not np.isfinite(rate):
        return np.inf
    return rate * float(np.linalg.norm(np.asarray(p) * np.asarray(d)))
