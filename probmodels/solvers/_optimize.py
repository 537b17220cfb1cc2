"""Optimisers for the point solvers, each one ``jax.lax.while_loop`` (one compile, no Python loop).

* :func:`newton`: a damped Newton method on the exact Hessian, the Levenberg-Marquardt way:
  the step solves ``(H + mu D) p = -g`` with ``D`` Marquardt's diagonal scaling, ``mu`` adapted
  from the ratio of actual to predicted decrease (Marquardt's factor of 10). Affine-invariant near the
  optimum (quadratic convergence, as statsmodels' Newton), robust far from it (nonlinear least
  squares from a poor start, indefinite Hessians). With an L1 term ``sum lam_j |z_j - c_j|`` (a
  Laplace prior) it is a proximal Newton method: the step minimises the quadratic model plus the
  L1 term by coordinate descent, which lands on exact zeros as a lasso does.
* :func:`lbfgs`: optax's L-BFGS with its zoom line search, for programs with many parameters
  (a neural network), where the Hessian is too large to form at every step.

Newton without an L1 term stops when the Newton decrement ``sqrt(g^T H^-1 g)`` is below ``dtol``
(1e-10): the distance to the optimum measured in the metric of the Hessian, which for a negative
log-likelihood is in standard errors. That test is scale-free (a gradient entry of a parameter of
size 1e-4 is 1e4 times larger than of one of size 1). Where the Hessian is not positive definite,
and for L-BFGS and the L1 case, the test is that the largest entry of the (minimum-norm sub-)
gradient is at most ``gtol * max(1, |f|)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

__all__ = ["OptResult", "newton", "lbfgs", "hessian_of", "STATUS"]

STATUS = {
    0: "converged",
    1: "reached the iteration limit",
    2: "could not decrease the objective further (the step collapsed)",
    3: "the objective or its gradient is not finite",
}


class OptResult(NamedTuple):
    z: jax.Array
    value: jax.Array  # the composite objective f(z) + L1 term
    grad: jax.Array  # gradient of the smooth part
    hess: jax.Array  # Hessian of the smooth part (newton), or a 0x0 placeholder (lbfgs)
    n_iter: jax.Array
    grad_norm: jax.Array  # inf-norm of the minimum-norm subgradient
    status: jax.Array
    last_step: jax.Array


def hessian_of(f):
    """The Hessian as reverse-over-reverse (``jacrev(grad)``): on GLM objectives it measured 3x
    faster than ``jax.hessian``'s forward-over-reverse (5.5 vs 15 ms, N = 100,000, d = 21), whose
    batched tangents are pushed through every elementwise operation of the likelihood."""
    return jax.jacrev(jax.grad(f))


def _l1(z, lam, center):
    return jnp.sum(lam * jnp.abs(z - center))


def _subgradient(z, g, lam, center):
    """The minimum-norm element of the subdifferential of ``f + sum lam |z - c|``."""
    at_kink = (z == center) & (lam > 0)
    shrunk = jnp.sign(g) * jnp.maximum(jnp.abs(g) - lam, 0.0)
    return jnp.where(at_kink, shrunk, g + lam * jnp.sign(z - center))


def _cholesky_step(a, g):
    chol = jnp.linalg.cholesky(a)  # NaN when a is not positive definite: the step is rejected
    return -jax.scipy.linalg.cho_solve((chol, True), g)


def _prox_cd_step(a, g, z, lam, center, sweeps=200):
    """argmin_p g.p + p.A.p/2 + sum lam |z + p - c| by cyclic coordinate descent."""
    d = z.shape[0]
    w0 = z - center
    diag = jnp.diag(a)

    def sweep(carry):
        p, ap, _, k = carry

        def coord(j, c):
            p, ap, change = c
            aj = diag[j]
            b = g[j] + ap[j] - aj * p[j]
            u = aj * w0[j] - b
            w = jnp.sign(u) * jnp.maximum(jnp.abs(u) - lam[j], 0.0) / aj
            pj = w - w0[j]
            delta = pj - p[j]
            return p.at[j].set(pj), ap + a[:, j] * delta, jnp.maximum(change, jnp.abs(delta))

        p, ap, change = jax.lax.fori_loop(0, d, coord, (p, ap, 0.0))
        return p, ap, change, k + 1

    def more(carry):
        p, _, change, k = carry
        return (k < sweeps) & (change > 1e-14 * (1.0 + jnp.max(jnp.abs(p))))

    p0 = jnp.zeros_like(z)
    p, _, _, _ = jax.lax.while_loop(more, sweep, (p0, jnp.zeros_like(z), jnp.inf, 0))
    return jnp.where(jnp.all(diag > 0), p, jnp.nan)


def newton(fun, z0, args, lam, center, gtol, max_iter, *, has_l1: bool, dtol: float = 1e-10) -> OptResult:
    """Minimise ``fun(z, args) + sum lam |z - center|`` by damped (proximal) Newton.

    Parameters
    ----------
    fun : callable
        The smooth part, ``fun(z, args) -> scalar``; traced once.
    z0 : array (D,)
    lam, center : arrays (D,)
        The L1 weights (0 where there is none) and centres.
    gtol : float
        Stop when ``max |subgradient| <= gtol * max(1, |F|)``.
    dtol : float
        Or (no L1 term) when the Newton decrement ``sqrt(g^T H^-1 g) <= dtol``.
    max_iter : int
    has_l1 : bool (static)
        Whether any ``lam`` is non-zero (chooses the step solver).
    """
    f = lambda z: fun(z, args)  # noqa: E731
    value_and_grad = jax.value_and_grad(f)
    hessian = hessian_of(f)

    def derivatives(z):
        v, g = value_and_grad(z)
        h = hessian(z)
        return v, g, 0.5 * (h + h.T)

    def tol(value):
        return gtol * jnp.maximum(1.0, jnp.abs(value))

    def done(z, g, h, value):
        gn = jnp.max(jnp.abs(_subgradient(z, g, lam, center)))
        small = gn <= tol(value)
        if not has_l1:
            # Where the Hessian is positive definite the decrement decides (scale-free); the
            # gradient test is the fallback where it is not (singular or indefinite).
            chol = jnp.linalg.cholesky(h)
            dec = g @ jax.scipy.linalg.cho_solve((chol, True), g)
            small = jnp.where(jnp.isfinite(dec), jnp.sqrt(jnp.abs(dec)) <= dtol, small)
        return gn, small

    f0, g0, h0 = derivatives(z0)
    value0 = f0 + _l1(z0, lam, center)
    gn0, small0 = done(z0, g0, h0, value0)
    finite0 = jnp.isfinite(value0) & jnp.all(jnp.isfinite(g0)) & jnp.all(jnp.isfinite(h0))
    status0 = jnp.where(~finite0, 3, jnp.where(small0, 0, -1))
    state0 = (z0, value0, g0, h0, jnp.asarray(1e-8), jnp.asarray(2.0), 0, status0, gn0, jnp.zeros_like(z0))

    def body(state):
        z, value, g, h, mu, nu, it, _, _, last = state
        dh = jnp.abs(jnp.diag(h))
        scale = jnp.maximum(dh, 1e-10 * jnp.max(dh) + 1e-300)
        a = h + mu * jnp.diag(scale)
        if has_l1:
            p = _prox_cd_step(a, g, z, lam, center)
        else:
            p = _cholesky_step(a, g)
        z_new = z + p
        value_new = f(z_new) + _l1(z_new, lam, center)
        pred = -(g @ p + 0.5 * p @ h @ p) + _l1(z, lam, center) - _l1(z_new, lam, center)
        actual = value - value_new
        rho = actual / pred
        # Below ~1e-12 |F| the objective cannot tell a good step from a bad one (rounding);
        # there the quadratic model is trusted, as it is at a minimum.
        unresolved = pred < 1e-12 * jnp.maximum(1.0, jnp.abs(value))
        ok = jnp.all(jnp.isfinite(p)) & jnp.isfinite(value_new) & (pred > 0) & ((rho > 1e-4) | unresolved)

        g_new, h_new = jax.lax.cond(
            ok, lambda: derivatives(z_new)[1:], lambda: (g, h)
        )
        z_next = jnp.where(ok, z_new, z)
        value_next = jnp.where(ok, value_new, value)
        # Marquardt's schedule (down by up to 10 after a good step, up by 10 after a rejected
        # one): a rejected step costs one function evaluation, a slow recovery costs Hessians.
        shrink = jnp.where(rho > 0.25, jnp.maximum(0.1, 1.0 - (2.0 * rho - 1.0) ** 3), 1.0)
        mu_next = jnp.where(ok, jnp.maximum(mu * shrink, 1e-15), jnp.maximum(10.0 * mu, 1e-4))
        nu_next = nu
        gn, small = done(z_next, g_new, h_new, value_next)
        finite = jnp.all(jnp.isfinite(g_new)) & jnp.all(jnp.isfinite(h_new))
        status = jnp.where(
            ~finite,
            3,
            jnp.where(
                small,
                0,
                jnp.where(it + 1 >= max_iter, 1, jnp.where(mu_next > 1e20, 2, -1)),
            ),
        )
        last_next = jnp.where(ok, p, last)
        return (z_next, value_next, g_new, h_new, mu_next, nu_next, it + 1, status, gn, last_next)

    z, value, g, h, _, _, it, status, gn, last = jax.lax.while_loop(
        lambda s: s[7] < 0, body, state0
    )
    return OptResult(z, value, g, h, it, gn, status, last)


def lbfgs(fun, z0, args, gtol, max_iter, *, memory_size: int = 20) -> OptResult:
    """Minimise a smooth ``fun(z, args)`` with optax's L-BFGS (zoom line search)."""
    f = lambda z: fun(z, args)  # noqa: E731
    opt = optax.lbfgs(memory_size=memory_size)
    value_and_grad = optax.value_and_grad_from_state(f)

    def body(carry):
        z, state, _, last = carry
        value, grad = value_and_grad(z, state=state)
        updates, state = opt.update(grad, state, z, value=value, grad=grad, value_fn=f)
        z_new = optax.apply_updates(z, updates)
        return z_new, state, value, updates

    def more(carry):
        _, state, value, _ = carry
        it = otu.tree_get(state, "count")
        grad = otu.tree_get(state, "grad")
        gn = jnp.max(jnp.abs(grad))
        ok = jnp.isfinite(otu.tree_get(state, "value"))
        return (it == 0) | ((it < max_iter) & (gn > gtol * jnp.maximum(1.0, jnp.abs(value))) & ok)

    state0 = opt.init(z0)
    z, state, _, last = jax.lax.while_loop(more, body, (z0, state0, jnp.asarray(jnp.inf), jnp.zeros_like(z0)))
    value, grad = jax.value_and_grad(f)(z)
    gn = jnp.max(jnp.abs(grad))
    it = otu.tree_get(state, "count")
    status = jnp.where(
        ~(jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))),
        3,
        jnp.where(gn <= gtol * jnp.maximum(1.0, jnp.abs(value)), 0, jnp.where(it >= max_iter, 1, 2)),
    )
    return OptResult(z, value, grad, jnp.zeros((0, 0)), it, gn, status, last)
