"""The Laplace approximation: a Gaussian at the mode of the unconstrained posterior.

``q(z) = N(z_hat, H^-1)`` with ``z_hat`` the mode of ``log p(x, T(z)) + log|dT/dz|`` (the
log-Jacobian is part of that density, as in Stan's ``laplace``) and ``H`` its Hessian there;
draws are mapped back to the natural space. Exact when the posterior of ``z`` is Gaussian.
Where a parameter's transform is the identity, the estimate and standard error are q's exact
mean and sd; elsewhere they come from the mapped draws. ``diagnostics["pareto_k"]`` grades the
approximation by PSIS (k-hat of ``p/q``); ``psis=True`` returns draws importance-resampled with
the smoothed weights (and moments from them).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from ._common import (
    SolverResult,
    check_options,
    format_labels,
    gaussian_draws,
    gaussian_log_density,
    inverse_hessian,
    psis,
    reweight,
    split_flat,
)
from ._objective import Objective
from ._optimize import STATUS
from .base import APPROXIMATION, CONVERGENCE, IDENTIFICATION, OTHER, Finding, SimFit, Solver
from .point import POINT_DEFAULTS, newton_batch, optimize

__all__ = ["solve_laplace", "laplace_q", "LaplaceQ", "identity_mask", "batched_laplace", "LAPLACE_DEFAULTS", "SOLVER"]

LAPLACE_DEFAULTS = dict(init=None, seed=0, draws=4000, gtol=1e-9, max_iter=None, optimizer="auto", psis=False)


def identity_mask(obj: Objective) -> np.ndarray:
    """Per natural coordinate (site order): is the site's transform the identity?"""
    from ._objective import _is_real

    out = []
    for s in obj.sites:
        out += [_is_real(s["support"]) and s["zshape"] == s["shape"]] * int(np.prod(s["shape"], dtype=int))
    return np.asarray(out, bool)


class LaplaceQ(NamedTuple):
    """The Laplace approximation ``q = N(result.z, cov)`` and what went wrong."""

    result: object  # the optimiser's OptResult (numpy): the mode is result.z
    cov: np.ndarray | None  # the inverse Hessian; None where there is no Gaussian approximation
    ok: bool
    warnings: list
    timer: object
    info: dict  # the optimizer that ran


def laplace_q(obj: Objective, opts: dict, method: str) -> LaplaceQ:
    """The mode and inverse Hessian of the unconstrained posterior, with what went wrong."""
    popts = {**POINT_DEFAULTS, **{k: v for k, v in opts.items() if k in POINT_DEFAULTS}}
    opt = optimize(obj, priors=True, jacobian=True, opts=popts, method=method)
    res, h, timer, notes, opt_info = opt.result, opt.hessian, opt.timer, opt.notes, opt.info
    drop, lam, center = opt.l1.names, opt.l1.lam, opt.l1.center
    warnings = [n for n in notes if not n.startswith("note: ")]
    ok = int(res.status) == 0
    if not ok:
        warnings.append(Finding(
            CONVERGENCE,
            f"the mode search stopped after {int(res.n_iter)} iterations: {STATUS[int(res.status)]} "
            f"(largest gradient entry {float(res.grad_norm):.3g}); the Gaussian is centred at a "
            "point that is not the mode. Give init=... or max_iter=...",
        ))
    cov = None
    if h is None:
        warnings.append(Finding(OTHER, f"{obj.dim} unconstrained parameters: too many for a dense Hessian"))
        ok = False
    else:
        cov, singular, negative = inverse_hessian(obj, h)
        if singular or negative:
            ok = False
            parts = []
            if singular:
                parts.append(f"singular along {format_labels(singular)} (not identified)")
            if negative:
                parts.append(f"not positive definite along {format_labels(negative)} (the point is no maximum)")
            warnings.append(Finding(
                IDENTIFICATION if singular else CONVERGENCE,
                "the Hessian of the log posterior at the mode is " + " and ".join(parts)
                + ": there is no Gaussian approximation, and no draws are returned. Add a "
                "proper prior or reparameterise",
            ))
            cov = None
    if drop:
        kink = (lam > 0) & (res.z == center)
        if kink.any():
            warnings.append(Finding(
                APPROXIMATION,
                f"{format_labels([obj.labels[i] for i in np.flatnonzero(kink)])} sit at the kink "
                "of their Laplace prior; the Gaussian approximation ignores the kink and is poor there",
            ))
    return LaplaceQ(res, cov, ok, warnings, timer, opt_info)


def solve_laplace(obj: Objective, method: str, options: dict) -> SolverResult:
    opts = check_options(method, options, LAPLACE_DEFAULTS)
    q = laplace_q(obj, opts, method)
    res, cov, ok, warnings, timer, opt_info = q.result, q.cov, q.ok, q.warnings, q.timer, q.info
    z = res.z
    zdraws = draws = None
    natural_mode = {k: np.asarray(v) for k, v in obj.natural(z).items()}
    estimate = {s["name"]: natural_mode[s["name"]] for s in obj.sites}
    stderr = {k: np.full(np.shape(v), np.nan) for k, v in estimate.items()}
    pareto_k = float("nan")
    if cov is not None:
        zdraws, draws = gaussian_draws(obj, z, cov, int(opts["draws"]), int(opts["seed"]))
        chol = np.linalg.cholesky(0.5 * (cov + cov.T))
        pareto_k, lw, pwarn = psis(obj, zdraws[0], gaussian_log_density(zdraws[0], z, chol), "Laplace")
        warnings += pwarn
        if opts["psis"]:
            draws, zdraws = reweight(draws, zdraws, lw, int(opts["seed"]))
        ident = identity_mask(obj) & (not opts["psis"])
        mean_d = {s["name"]: draws[s["name"]][0].mean(axis=0) for s in obj.sites}
        sd_d = {s["name"]: draws[s["name"]][0].std(axis=0, ddof=1) for s in obj.sites}
        exact_mean = split_flat(obj, np.where(ident, _flat_natural(obj, z), np.nan))
        exact_sd = split_flat(obj, np.where(ident, _zsd_as_natural(obj, cov), np.nan))
        for s in obj.sites:
            k = s["name"]
            estimate[k] = np.where(np.isnan(exact_mean[k]), mean_d[k], exact_mean[k])
            stderr[k] = np.where(np.isnan(exact_sd[k]), sd_d[k], exact_sd[k])
    diagnostics = dict(
        converged=bool(ok),
        warnings=warnings,
        iterations=int(res.n_iter),
        **({"hessians": int(res.n_hess)} if opt_info["optimizer"] == "newton" else {}),
        grad_norm=float(res.grad_norm),
        **opt_info,
        mode=natural_mode,
        pareto_k=pareto_k,
        compile_s=timer.compile_s,
        run_s=timer.run_s,
        wall_s=timer.wall_s,
    )
    return SolverResult(
        method=method,
        estimate=estimate,
        stderr=stderr,
        draws=draws,
        zdraws=zdraws,
        diagnostics=diagnostics,
        objective=obj,
        attrs=dict(posterior_kind="Laplace approximation: N(mode, inverse Hessian) in the unconstrained space"),
    )


def _flat_natural(obj, z):
    nat = obj.natural(z)
    return np.concatenate([np.ravel(np.asarray(nat[s["name"]])) for s in obj.sites])


def _zsd_as_natural(obj, cov):
    """sqrt(diag(cov_z)) placed on natural coordinates (meaningful only where T is the identity)."""
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    out, i = [], 0
    for s in obj.sites:
        nz = int(np.prod(s["zshape"], dtype=int))
        nn = int(np.prod(s["shape"], dtype=int))
        out.append(sd[i : i + nz] if nz == nn else np.full(nn, np.nan))
        i += nz
    return np.concatenate(out)


def batched_laplace(obj: Objective, observed: str, xs, seeds, options: dict, n_draws: int):
    """The Laplace approximation of many data sets in one vmapped Newton run (``calibrate``):
    a :class:`SimFit` each, with ``n_draws`` draws of q; converged as ``solve_laplace`` has it
    (the mode search converged and the Hessian is positive definite). None where the program
    cannot be batched."""
    opts = check_options("laplace", options, LAPLACE_DEFAULTS)
    batch = newton_batch(obj, observed, xs, priors=True, jacobian=True, gtol=opts["gtol"], max_iter=opts["max_iter"])
    if batch is None:
        return None
    res, arrays = batch
    names = {s["name"] for s in obj.sites}
    out = []
    for j, seed in enumerate(seeds):
        z, h = res.z[j], res.hess[j]
        one = {**obj.arrays, observed: arrays[observed][j]}
        est = np.concatenate([np.ravel(np.asarray(v)) for k, v in obj.fns["natural"](np.asarray(z), one).items() if k in names])
        cov_z, singular, negative = inverse_hessian(obj, h)
        converged = int(res.status[j]) == 0 and not singular and not negative
        if not np.all(np.isfinite(cov_z)):
            out.append(SimFit(est, np.full_like(est, np.nan), None, False))
            continue
        chol = np.linalg.cholesky(0.5 * (cov_z + cov_z.T))
        zs = z[None] + np.asarray(jax.random.normal(jax.random.PRNGKey(int(seed)), (n_draws, obj.dim))) @ chol.T
        nat = obj.fns["natural_batch"](np.asarray(zs), one)
        draws = np.concatenate([np.asarray(nat[s["name"]]).reshape(n_draws, -1) for s in obj.sites], axis=1)
        out.append(SimFit(draws.mean(0), draws.std(0, ddof=1), draws, converged))
    return out


def _solve(obj: Objective, options: dict) -> SolverResult:
    return solve_laplace(obj, "laplace", options)


SOLVER = Solver(
    name="laplace", label="Laplace", kind="approximation", defaults=LAPLACE_DEFAULTS, solve=_solve, batched=batched_laplace
)
