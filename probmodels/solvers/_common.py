"""What every solver shares: the result record, option checking, the Hessian's inverse with its
failure modes named, Gaussian draws mapped to the natural space, timing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from .._config import compile_seconds
from ._objective import Objective
from .base import APPROXIMATION, Finding

__all__ = [
    "SolverResult",
    "psis",
    "gaussian_log_density",
    "check_options",
    "Timer",
    "inverse_hessian",
    "natural_moments",
    "gaussian_draws",
    "split_flat",
    "format_labels",
]


@dataclass
class SolverResult:
    """What a solver hands to :class:`probmodels.Fit` (plain numpy arrays)."""

    method: str
    estimate: dict
    stderr: dict
    draws: dict | None
    zdraws: np.ndarray | None
    diagnostics: dict
    objective: Objective
    sample_stats: dict | None = None
    attrs: dict = field(default_factory=dict)
    cov: np.ndarray | None = None  # natural-space covariance of the point fits (flat, site order)
    zhat: np.ndarray | None = None  # the point estimate in the unconstrained space (mle, map)
    # mle/map: () -> (zdraws, draws), made on first use (a warm point fit need not pay for them)
    lazy_draws: object = None

    def materialize(self):
        """Fill ``draws`` and ``zdraws`` from ``lazy_draws`` (once)."""
        if self.lazy_draws is not None:
            self.zdraws, self.draws = self.lazy_draws()
            self.lazy_draws = None
        return self


def check_options(method: str, options: dict, defaults: dict) -> dict:
    """The solver's options with defaults filled in; an unknown option is an error."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(
            f"fit(method={method!r}): unknown option(s) {unknown}; {method} takes "
            f"{sorted(defaults)}"
        )
    return {**defaults, **options}


class Timer:
    """Wall time and JAX compile time (trace + lower + compile) of a block."""

    def __enter__(self):
        self._c0 = compile_seconds()[0]
        self._n0 = compile_seconds()[1]
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall_s = time.perf_counter() - self._t0
        self.compile_s = compile_seconds()[0] - self._c0
        self.n_compiles = compile_seconds()[1] - self._n0
        self.run_s = max(self.wall_s - self.compile_s, 0.0)
        return False


def format_labels(labels) -> str:
    seen = []
    for lab in labels:
        if lab not in seen:
            seen.append(lab)
    return ", ".join(seen)


_SINGULAR_MARGIN = 100.0


def inverse_hessian(obj: Objective, h: np.ndarray):
    """Invert the Hessian of ``-log p`` in the unconstrained space, naming what fails.

    The Hessian is first scaled to unit |diagonal| (so that parameters on wildly different scales
    are not mistaken for unidentified ones); directions whose scaled eigenvalue is within
    ``100 D eps`` (relative to the largest; the float64 resolution of the eigenvalues) of 0 are
    singular (as are those between ``-1e-8`` relative and 0: the optimiser's own resolution), below
    ``-1e-8`` negative. Coordinates that load on such a
    direction get NaN variances; the rest come from the pseudo-inverse, which is exact for the
    identified (estimable) coordinates.

    Returns
    -------
    cov : (D, D) array with NaN rows/columns for the failing coordinates
    singular, negative : lists of coordinate labels
    """
    h = 0.5 * (np.asarray(h) + np.asarray(h).T)
    d = np.abs(np.diag(h))
    # Scale by |diagonal| (a negative diagonal is negative curvature, not a flat direction);
    # an exactly zero diagonal is a coordinate the objective does not curve in at all.
    flat = ~(d > 1e-300)
    s = np.where(flat, 1.0, 1.0 / np.sqrt(np.where(flat, 1.0, d)))
    hs = h * s[:, None] * s[None, :]
    hs[flat, :] = 0.0
    hs[:, flat] = 0.0
    evals, evecs = np.linalg.eigh(hs)
    top = max(np.max(np.abs(evals)), 1e-300)
    # What the data determine: the scaled Hessian's entries carry rounding errors of ~eps x its
    # largest eigenvalue (float64, eps = 2.2e-16), so its eigenvalues are resolved from 0 to about
    # D eps top (Weyl's inequality); a margin of 100 over that is the band of "not determined".
    # An eigenvalue above it is curvature the data give, however small the residuals make the
    # standard errors (a sum of three exponentials fitted to rounding level has a scaled
    # condition number of ~1e8 and finite, certified standard deviations).
    # Negative curvature must be clear (below -1e-8 relative, the optimiser's band): an optimum
    # reached to a Newton decrement of 1e-10 leaves curvatures of that order along a symmetry
    # (a rotation), which are neither data nor a saddle.
    tol = _SINGULAR_MARGIN * len(d) * np.finfo(np.float64).eps * top
    null = (evals <= tol) & (evals >= -1e-8 * top)
    neg = evals < -1e-8 * top
    good = ~(null | neg)
    inv = (evecs[:, good] / evals[good]) @ evecs[:, good].T
    cov = inv * s[:, None] * s[None, :]

    def loads(mask):
        if not mask.any():
            return np.zeros(len(d), bool)
        v = np.abs(evecs[:, mask])
        return np.any(v > 1e-6 * v.max(axis=0, keepdims=True), axis=1)

    sing = (loads(null) | flat) & ~loads(neg)
    negc = loads(neg)
    bad = sing | negc
    cov[bad, :] = np.nan
    cov[:, bad] = np.nan
    labels = obj.labels
    return cov, [labels[i] for i in np.flatnonzero(sing)], [labels[i] for i in np.flatnonzero(negc)]


def split_flat(obj: Objective, flat, lead=()):
    """A flat natural vector (site order) back into a dict of arrays."""
    out, i = {}, 0
    for s in obj.sites:
        n = int(np.prod(s["shape"], dtype=int))
        out[s["name"]] = np.asarray(flat[..., i : i + n]).reshape(lead + s["shape"])
        i += n
    return out


def natural_moments(obj: Objective, z, cov_z, arrays=None, jac=None):
    """Natural-space covariance by the delta method: ``J cov_z J^T``, ``J = dT/dz`` (``jac``
    where the caller has it)."""
    if jac is None:
        jac = obj.fns["natural_jacobian"](np.asarray(z), obj.arrays if arrays is None else arrays)
    jac = np.asarray(jac)
    cov = jac @ np.nan_to_num(cov_z) @ jac.T
    # A NaN coordinate of z poisons every natural coordinate that depends on it.
    nan_z = np.isnan(np.diag(cov_z))
    poisoned = np.any(np.abs(jac[:, nan_z]) > 0, axis=1) if nan_z.any() else np.zeros(jac.shape[0], bool)
    cov[poisoned, :] = np.nan
    cov[:, poisoned] = np.nan
    return cov


def gaussian_draws(obj: Objective, z, cov_z, n: int, seed: int):
    """``n`` draws from ``N(z, cov_z)`` mapped to the natural space, as ``(1, n, ...)`` arrays."""
    chol = np.linalg.cholesky(0.5 * (cov_z + cov_z.T))
    # numpy's generator: the same numbers for the same seed, and no XLA compile (0.2 s) per shape
    eps = np.random.default_rng(seed).standard_normal((n, len(z)))
    zs = np.asarray(z)[None, :] + eps @ chol.T
    nat = obj.natural_draws(zs)
    draws = {k: np.asarray(v)[None] for k, v in nat.items()}
    return zs[None], draws


def gaussian_log_density(zs, mean, chol):
    """``log N(z; mean, L L^T)`` for each row of ``zs`` (numpy)."""
    y = np.linalg.solve(chol, (np.asarray(zs) - mean).T)
    return -0.5 * np.sum(y**2, axis=0) - np.sum(np.log(np.diag(chol))) - 0.5 * len(mean) * np.log(2 * np.pi)


def psis(obj: Objective, zs, log_q, method: str):
    """Pareto-smoothed importance sampling of ``p(z, x) / q(z)`` over draws from ``q``.

    The approximation grades itself (Yao, Vehtari, Simpson and Gelman, 2018, "Yes, but did it
    work?"): k-hat < 0.5 good, 0.5 to 0.7 usable, > 0.7 do not trust it. Uses ArviZ's
    ``psislw``. Constant log-weights (an exact approximation) make ``psislw`` return inf; that
    case is recognised and reported as k-hat = -inf.

    Returns (k-hat, normalised smoothed log-weights, warnings).
    """
    import arviz as az

    zs = np.asarray(zs)
    if obj.partitioned is not None:  # each draw's log density would be a pass over all rows
        return float("nan"), np.full(len(zs), -np.log(len(zs))), []
    log_p = np.asarray(obj.fns["log_joint_batch"](np.asarray(zs), obj.arrays))
    log_w = log_p - np.asarray(log_q)
    warnings = []
    finite = np.isfinite(log_w)
    if not finite.all():
        warnings.append(Finding(
            APPROXIMATION,
            f"{int((~finite).sum())} of {len(log_w)} draws of the {method} approximation fall where "
            "the log density is not finite: the approximation leaves the posterior's support",
        ))
        log_w = np.where(finite, log_w, -np.inf)
    spread = np.ptp(log_w[finite]) if finite.any() else np.inf
    if spread <= 1e-9 * (1.0 + np.abs(np.mean(log_w[finite]))):
        k = -np.inf
        lw = np.full(len(log_w), -np.log(len(log_w)))
    else:
        lw, k = az.psislw(log_w)
        k = float(k)
    if k > 0.7:
        warnings.append(Finding(
            APPROXIMATION,
            f"Pareto k-hat of the {method} approximation is {k:.2f} (> 0.7): its importance "
            "weights p/q have so heavy a tail that the approximation cannot be trusted, nor "
            "corrected by reweighting; use method='nuts'",
        ))
    elif k > 0.5:
        warnings.append(Finding(
            APPROXIMATION,
            f"Pareto k-hat of the {method} approximation is {k:.2f} (0.5 to 0.7): usable, but "
            "means and intervals may be off; psis=True reweights the draws, method='nuts' is exact",
        ))
    return k, np.asarray(lw), warnings


def reweight(draws: dict, zs, lw, seed: int):
    """Importance resampling with the smoothed weights: draws that follow p instead of q."""
    n = len(lw)
    w = np.exp(np.asarray(lw) - np.max(lw))
    w /= w.sum()
    idx = np.asarray(jax.random.choice(jax.random.PRNGKey(seed + 104729), n, (n,), p=jnp.asarray(w)))
    return {k: np.asarray(v)[:, idx] for k, v in draws.items()}, np.asarray(zs)[:, idx]
