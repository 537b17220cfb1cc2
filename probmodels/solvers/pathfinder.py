"""Pathfinder: Gaussian approximations along L-BFGS paths, pooled and importance-resampled.

Multi-path Pathfinder (Zhang, Carpenter, Gelman and Vehtari, 2022, "Pathfinder: Parallel
quasi-Newton variational inference", JMLR 23(306)), on the unconstrained posterior
``log p(x, T(z)) + log|dT/dz|``:

1. each of ``paths`` runs of optax's L-BFGS (zoom line search) starts at the program's starting
   point jittered by ``uniform(-init_radius, init_radius)`` and records its iterates ``z_l`` and
   gradients;
2. at every iterate the L-BFGS inverse Hessian (the paper's diagonal estimate ``alpha`` and the
   last ``history`` curvature pairs with ``s^T y > 0``) gives a Gaussian
   ``q_l = N(z_l + H_l grad log p(z_l), H_l)``; the ``q_l`` with the largest ELBO (estimated
   from ``elbo_draws`` draws) is the path's approximation;
3. ``draws`` draws from each path's ``q`` are pooled and importance-weighted against the
   *mixture* of the paths' Gaussians, ``q_mix = (1/P) sum_p q_p`` (the density the pooled draws
   actually come from: weighting each draw by its own path's density, as blackjax and Stan do,
   misstates the weights where the paths overlap), Pareto-smoothed (PSIS), and ``draws`` of them
   resampled with those weights.

``diagnostics["pareto_k"]`` is the k-hat of those weights with the meaning it has for laplace and
vi (< 0.5 good, 0.5-0.7 usable, > 0.7 not to be trusted, with the warnings of
``_common.psis``); ``diagnostics["ess"]`` is the importance sampling effective sample size of the
pooled draws (Kish), with a warning that the approximation is not to be trusted where it is
under half the draws returned (the weights concentrate on a few draws: the Gaussians miss the
posterior's shape, and the resampled draws repeat a few of them).
``.estimate`` and ``.stderr`` are the self-normalised importance-weighted moments of the pooled
draws (less noisy than the resampled ones).

Written on optax's L-BFGS rather than taken from blackjax (an optional dependency that probmodels
would have to pin): probmodels keeps the L-BFGS trajectory, the curvature-pair test and the
weights against the mixture under its own control. The inverse Hessian is formed densely
(``O(D^2)`` per iterate): meant for programs of up to a few hundred parameters.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
from jax.scipy.special import logsumexp

from .._config import jit
from ._common import SolverResult, Timer, check_options, psis, reweight
from ._objective import Objective
from .base import APPROXIMATION, CONVERGENCE, Finding, Solver

__all__ = ["solve_pathfinder", "PATHFINDER_DEFAULTS", "SOLVER"]

PATHFINDER_DEFAULTS = dict(
    init=None,
    seed=0,
    paths=4,
    draws=1000,
    history=6,
    elbo_draws=25,
    max_iter=1000,
    init_radius=2.0,
)
# an importance-sampling ESS under half the draws returned: those draws repeat a few pooled
# ones, and the estimates lean on a handful of weights (on eight schools, where the Gaussians are
# 0.5-0.9 posterior sd off in mu, the ESS was 20-240 of 4000 with k-hat 0.68-1.1; on a Gaussian
# posterior, 95% of the pooled draws)
_MIN_ESS = 0.5
_REL_TOL = 1e-10  # L-BFGS stops when the objective changes by less than this, relatively
_MAX_DIM = 3000  # dense D x D inverse Hessians at every iterate


def _recover_alpha(alpha, s, y):
    """The diagonal of the inverse Hessian estimate after the pair (s, y) (the paper's Algorithm
    3; y is the change of the gradient of -log p). Pairs without positive curvature are
    skipped (``ok`` False)."""
    b = jnp.dot(y, s)
    ok = b > 1e-12 * jnp.linalg.norm(y)
    a = jnp.sum(alpha * y**2)
    c = jnp.sum(s**2 / alpha)
    inv = a / (b * alpha) + y**2 / b - (a * s**2) / (b * c * alpha**2)
    new = 1.0 / inv
    ok = ok & jnp.all(jnp.isfinite(new)) & jnp.all(new > 0)
    return jnp.where(ok, new, alpha), ok


def _inverse_hessian(alpha, S, Y, mask):
    """``H``: BFGS updates of ``diag(alpha)`` by the accepted pairs among the last ``history``
    (rows of S, Y, oldest first); the dense form of the paper's L-BFGS factors."""

    def update(h, pair):
        s, y, m = pair
        rho = 1.0 / jnp.where(m, jnp.dot(y, s), 1.0)
        v = jnp.eye(h.shape[0]) - rho * jnp.outer(s, y)
        new = v @ h @ v.T + rho * jnp.outer(s, s)
        return jnp.where(m, new, h), None

    h, _ = jax.lax.scan(update, jnp.diag(alpha), (S, Y, mask))
    return 0.5 * (h + h.T)


def _path_fn(obj: Objective, history: int, max_iter: int, elbo_draws: int, n_draws: int):
    """``path(key, z_init, arrays)``: one Pathfinder path (vmapped over paths by the caller)."""
    log_joint = partial(obj.fns["log_joint_raw"], priors=True, jacobian=True)
    dim = obj.dim

    def path(key, z_init, arrays):
        f = lambda z: -log_joint(z, arrays)  # noqa: E731
        opt = optax.lbfgs(memory_size=history)
        value_and_grad = optax.value_and_grad_from_state(f)
        f0, g0 = jax.value_and_grad(f)(z_init)
        zs = jnp.zeros((max_iter + 1, dim)).at[0].set(z_init)
        gs = jnp.zeros((max_iter + 1, dim)).at[0].set(g0)

        def body(carry):
            z, state, zs, gs, i, f_old, _ = carry
            value, grad = value_and_grad(z, state=state)
            updates, state = opt.update(grad, state, z, value=value, grad=grad, value_fn=f)
            z = optax.apply_updates(z, updates)
            f_new, g_new = otu.tree_get(state, "value"), otu.tree_get(state, "grad")
            zs, gs = zs.at[i + 1].set(z), gs.at[i + 1].set(g_new)
            small = jnp.abs(f_old - f_new) <= _REL_TOL * jnp.maximum(1.0, jnp.abs(f_new))
            return z, state, zs, gs, i + 1, f_new, small

        def more(carry):
            _, _, _, gs, i, f_old, small = carry
            finite = jnp.isfinite(f_old) & jnp.all(jnp.isfinite(gs[i]))
            return (i < max_iter) & ~small & finite

        carry = (z_init, opt.init(z_init), zs, gs, jnp.asarray(0), f0, jnp.asarray(False))
        _, _, zs, gs, n, f_last, small = jax.lax.while_loop(more, body, carry)
        finished = small & jnp.isfinite(f_last)

        # the inverse Hessian estimate at every iterate 1..n (rows beyond n are ignored)
        s_all, y_all = jnp.diff(zs, axis=0), jnp.diff(gs, axis=0)

        def alpha_step(alpha, sy):
            new, ok = _recover_alpha(alpha, *sy)
            return new, (new, ok)

        _, (alphas, oks) = jax.lax.scan(alpha_step, jnp.ones(dim), (s_all, y_all))
        k_elbo, k_draw = jax.random.split(key)

        def candidate(l):
            """q at iterate l + 1 and its ELBO (pairs l - history + 1 ... l)."""
            rows = l - history + 1 + jnp.arange(history)
            valid = (rows >= 0) & oks[jnp.clip(rows, 0)]
            h = _inverse_hessian(alphas[l], s_all[jnp.clip(rows, 0)], y_all[jnp.clip(rows, 0)], valid)
            chol = jnp.linalg.cholesky(h)
            mean = zs[l + 1] - h @ gs[l + 1]
            eps = jax.random.normal(jax.random.fold_in(k_elbo, l), (elbo_draws, dim))
            z = mean + eps @ chol.T
            log_q = _log_normal(eps, chol)
            log_p = jax.vmap(lambda v: log_joint(v, arrays))(z)
            elbo = jnp.mean(log_p - log_q)
            ok = (l < n) & jnp.all(jnp.isfinite(chol)) & jnp.isfinite(elbo)
            return jnp.where(ok, elbo, -jnp.inf), mean, chol

        def scan_best(l, acc):
            # only the iterates the run reached (a while loop: under vmap, as many as the longest
            # path); the best q is carried, so that candidate is traced once
            elbo, mean, chol = candidate(l)
            better = elbo > acc[0]
            return tuple(jnp.where(better, new, old) for new, old in zip((elbo, l, mean, chol), acc))

        start = (jnp.asarray(-jnp.inf), jnp.asarray(0), jnp.zeros(dim), jnp.eye(dim))
        best_elbo, best, mean, chol = jax.lax.fori_loop(0, n, scan_best, start)
        eps = jax.random.normal(k_draw, (n_draws, dim))
        return dict(
            z=mean + eps @ chol.T, mean=mean, chol=chol, elbo=best_elbo, best=best + 1, n_iter=n,
            finished=finished, start=z_init,
        )

    return path


def _log_normal(eps, chol):
    """log N(mean + L eps; mean, L L^T) from the standard normal draws eps."""
    dim = chol.shape[0]
    return -0.5 * jnp.sum(eps**2, axis=-1) - jnp.sum(jnp.log(jnp.diag(chol))) - 0.5 * dim * jnp.log(2 * jnp.pi)


def _runner(obj: Objective, opts: dict):
    """The compiled multi-path run (cached per program and settings)."""
    key = ("pathfinder", int(opts["paths"]), int(opts["history"]), int(opts["max_iter"]), int(opts["elbo_draws"]), int(opts["draws"]))
    cache = obj.fns["solvers"]
    if key not in cache:
        path = _path_fn(obj, int(opts["history"]), int(opts["max_iter"]), int(opts["elbo_draws"]), int(opts["draws"]))
        paths = int(opts["paths"])

        def run(seed, z0, amplitude, arrays):
            keys = jax.random.split(jax.random.PRNGKey(seed), paths + 1)
            u = jax.random.uniform(keys[0], (paths, z0.shape[0]), z0.dtype, -1.0, 1.0)
            out = jax.vmap(path, in_axes=(0, 0, None))(keys[1:], z0[None] + u * amplitude[None], arrays)
            # every pooled draw under every path's Gaussian: the mixture density q_mix
            pooled = out["z"].reshape(-1, z0.shape[0])

            def log_q(mean, chol):
                eps = jax.scipy.linalg.solve_triangular(chol, (pooled - mean).T, lower=True).T
                return _log_normal(eps, chol)

            each = jax.vmap(log_q)(out["mean"], out["chol"])  # (paths, pooled)
            usable = jnp.isfinite(out["elbo"])[:, None]
            each = jnp.where(usable, each, -jnp.inf)
            log_mix = logsumexp(each, axis=0) - jnp.log(jnp.sum(usable))
            return out, pooled, log_mix

        cache[key] = jit(run)
    return cache[key]


def solve_pathfinder(obj: Objective, method: str, options: dict) -> SolverResult:
    """Multi-path Pathfinder; see the module docstring."""
    opts = check_options(method, options, PATHFINDER_DEFAULTS)
    for name in ("paths", "draws", "history", "elbo_draws", "max_iter"):
        if int(opts[name]) < 1:
            raise ValueError(f"fit(method='pathfinder'): {name} must be a positive integer, got {opts[name]}")
    if obj.dim > _MAX_DIM:
        raise ValueError(
            f"fit(method='pathfinder'): {obj.dim} unconstrained parameters; the dense inverse Hessians "
            f"are meant for up to {_MAX_DIM}: use method='vi' or 'laplace'"
        )
    given = np.concatenate([np.full(int(np.prod(s["zshape"], dtype=int)), s["name"] in obj.init_names) for s in obj.sites])
    amplitude = np.where(given, 0.0, max(float(opts["init_radius"]), 0.0))
    run = _runner(obj, opts)
    seed, n_draws = int(opts["seed"]), int(opts["draws"])
    with Timer() as timer:
        out, pooled, log_mix = run(np.int64(seed), np.asarray(obj.z0), amplitude, obj.arrays)
        out = jax.tree_util.tree_map(np.asarray, out)
        pooled, log_mix = np.asarray(pooled), np.asarray(log_mix)

    warnings = []
    usable = np.isfinite(out["elbo"])
    n_paths = len(usable)
    if not usable.any():
        warnings.append(Finding(
            CONVERGENCE,
            "no Pathfinder path found a Gaussian with a finite ELBO (the L-BFGS runs failed at "
            "their starts or their curvature estimates were not positive definite): give init=... "
            "or use method='laplace' or 'nuts'",
        ))
        nan = {s["name"]: np.full(s["shape"], np.nan) for s in obj.sites}
        return _result(obj, method, nan, dict(nan), None, None, warnings, out, timer, float("nan"), float("nan"), False)
    if not usable.all():
        warnings.append(Finding(
            CONVERGENCE,
            f"{int((~usable).sum())} of {n_paths} Pathfinder paths found no Gaussian with a finite ELBO; "
            "the draws come from the others",
        ))
        keep = np.repeat(usable, n_draws)
        pooled, log_mix = pooled[keep], log_mix[keep]
    unfinished = int((~out["finished"] & usable).sum())
    if unfinished:
        warnings.append(Finding(
            CONVERGENCE,
            f"{unfinished} of {n_paths} L-BFGS paths stopped at max_iter={int(opts['max_iter'])} before the "
            "objective settled; raise max_iter=",
        ))
    k, lw, pwarn = psis(obj, pooled, log_mix, "Pathfinder")
    warnings += pwarn
    w = np.exp(lw - np.max(lw))
    w /= w.sum()
    ess = float(1.0 / np.sum(w**2))
    if ess < _MIN_ESS * n_draws and not k > 0.7:
        warnings.append(Finding(
            APPROXIMATION,
            f"the Pathfinder approximation is not to be trusted here: its importance weights "
            f"concentrate on few draws (effective sample size {ess:.0f} of {len(w)} pooled draws, "
            f"under half the {n_draws} draws returned, which repeat them), so the Gaussians miss "
            "the posterior's shape and the reweighting cannot correct it; use method='nuts'",
        ))
    nat_pooled = obj.natural_draws(pooled)
    estimate, stderr = {}, {}
    for s in obj.sites:
        v = np.asarray(nat_pooled[s["name"]]).reshape(len(w), -1)
        mean = w @ v
        var = w @ (v - mean) ** 2
        estimate[s["name"]] = mean.reshape(s["shape"])
        stderr[s["name"]] = np.sqrt(var * len(w) / max(len(w) - 1, 1)).reshape(s["shape"])
    draws = {k2: np.asarray(v)[None] for k2, v in nat_pooled.items()}
    # draws chosen with the smoothed weights, n_draws of them (from the pooled paths x draws)
    draws, zdraws = reweight(draws, pooled[None], lw, seed)
    idx = np.linspace(0, zdraws.shape[1] - 1, n_draws).round().astype(int)
    draws = {k2: v[:, idx] for k2, v in draws.items()}
    zdraws = zdraws[:, idx]
    converged = bool(usable.all() and not unfinished)
    return _result(obj, method, estimate, stderr, draws, zdraws, warnings, out, timer, k, ess, converged)


def _result(obj, method, estimate, stderr, draws, zdraws, warnings, out, timer, k, ess, converged):
    diagnostics = dict(
        converged=converged,
        warnings=warnings,
        pareto_k=float(k),
        ess=ess,
        paths=dict(
            iterations=[int(v) for v in out["n_iter"]],
            best_iteration=[int(v) for v in out["best"]],
            elbo=[float(v) for v in out["elbo"]],
        ),
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
        attrs=dict(posterior_kind="multi-path Pathfinder: L-BFGS Gaussians pooled and PSIS-resampled (unconstrained space)"),
    )


def _solve(obj: Objective, options: dict) -> SolverResult:
    return solve_pathfinder(obj, "pathfinder", options)


SOLVER = Solver(
    name="pathfinder", label="Pathfinder", kind="approximation", defaults=PATHFINDER_DEFAULTS, solve=_solve,
    report_default=False,
)
