"""The marginal likelihood of the params with every ``latent`` site integrated out (Laplace).

For a program with params ``theta`` and latents ``u`` (unconstrained), ``f(theta, u) = -log p(x,
u | theta)`` (the log-Jacobian of each constrained latent's transform always, since the integral
is taken on the unconstrained scale), the point solvers maximise the Laplace approximation (as
lme4's ``glmer``, glmmTMB and TMB do), plus the params' log prior for MAP: it does not involve
the latents, so it is added outside the inner solve under a traced weight (0 for MLE), and the
marginal MLE and MAP run one compiled program

.. math::

    -\\log L(\\theta) \\approx f(\\theta, \\hat u) + \\tfrac12 \\log\\det H_{uu}(\\theta, \\hat u)
    - \\tfrac{n_u}2 \\log 2\\pi, \\qquad \\hat u(\\theta) = \\arg\\min_u f(\\theta, u),

exact when ``f`` is quadratic in ``u`` (Gaussian latents in a Gaussian model).

* **Inner solve.** ``u_hat(theta)`` by a Levenberg-damped Newton iteration on ``u`` (one
  ``lax.while_loop``), started at the latents' initial values.
* **Structure.** ``H_uu``'s sparsity pattern is read once per fit from one dense evaluation at a
  perturbed start (``n_u`` Hessian-vector products, in batches); its connected components are
  the blocks (a random intercept: ``n_u`` blocks of 1, a diagonal; an intercept and slope per
  group: blocks of 2; crossed effects: one dense block). The coordinates are coloured by their
  position in their block, so that ``H_uu`` costs ``b`` Hessian-vector products (``b`` the
  largest block), not ``n_u``, and is factored block by block (batched Cholesky).
* **Exact derivatives through the inner optimum** (implicit differentiation, as TMB).
  ``u_hat(theta)`` is a ``jax.custom_jvp``: the inner loop runs on values only, and its tangent
  is the implicit function theorem's ``du = -H_uu^{-1} (d grad_u f / d theta) dtheta`` at the
  mode, written in differentiable JAX whose own derivatives call ``u_hat`` again. So the
  gradient and the Hessian of the approximate marginal (the log-determinant needs ``d^2 u /
  d theta^2``) are exact, not finite differences.
* **Compiled once, optimised in Python.** Value, gradient and Hessian over the params (and the
  latents' conditional modes and variances) are one compiled program per configuration
  (:func:`_compiled`); the outer Newton iteration over the few params runs in Python over it
  (:func:`_newton`), as TMB's outer optimiser does.

``MarginalObjective`` is a view of the joint :class:`Objective` over the param coordinates only,
so the point solver runs on it unchanged; :func:`solve_marginal` then adds the latents'
conditional modes and standard deviations (lme4's ``ranef`` and its conditional variances).
"""

from __future__ import annotations

import numpy as np
import jax
import jax.extend
import jax.numpy as jnp
from numpyro.distributions.transforms import biject_to
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from .._config import jit
from ..program import LATENT, PARAM
from ._common import SolverResult, Timer
from ._optimize import OptResult
from ._objective import Objective, _DictUnravel, _is_real, _list_unravel

__all__ = ["MarginalObjective", "solve_marginal", "latent_structure"]

_START = "_latent_start"  # data keys of the view: traced, so a new fit of the same shapes compiles nothing
_BLOCKS = "_latent_blocks"
_COLORS = "_latent_colors"
_COMPONENT = "_latent_component"
_PROBE_BATCH = 64  # Hessian-vector products per batch in the one dense probe of H_uu
_MAX_LATENT = 10_000  # the probe costs n_u Hessian-vector products and an n_u^2 boolean pattern
_MAX_BLOCK = 4_000  # a dense block of this size: a 4000 x 4000 Cholesky per evaluation
_INNER_MAX_ITER = 200
_LOG_2PI = float(np.log(2.0 * np.pi))


def _coords(obj: Objective):
    """Indices of the param and the latent coordinates of ``z`` (numpy)."""
    kinds = []
    for s in obj.sites:
        kinds += [s["kind"]] * int(np.prod(s["zshape"], dtype=int))
    kinds = np.asarray(kinds)
    return np.flatnonzero(kinds == PARAM), np.flatnonzero(kinds == LATENT)


# ---------------------------------------------------------------------------------------------
# the latent Hessian's block structure


def _blocks_from_pattern(pattern):
    """``(idx, colors, component, kind)`` from a boolean ``(n_u, n_u)`` pattern: ``idx``
    (components x b) of coordinate indices padded with ``n_u``, ``colors`` the position of each
    coordinate in its block, ``component`` its block, ``kind`` in words."""
    n = pattern.shape[0]
    n_comp, label = connected_components(csr_matrix(pattern), directed=False)
    order = np.argsort(label, kind="stable")
    sizes = np.bincount(label, minlength=n_comp)
    b = int(sizes.max())
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n) - np.repeat(starts, sizes)
    idx = np.full((n_comp, b), n, dtype=np.int64)
    idx[label, pos] = np.arange(n)
    if b == 1:
        kind = f"diagonal ({n} latent coordinates)"
    elif n_comp == 1:
        kind = f"dense ({n} x {n})"
    else:
        kind = f"block-diagonal ({n_comp} blocks of up to {b})"
    return idx, pos, label, kind


def latent_structure(obj: Objective):
    """The block structure of ``H_uu`` (see the module docstring): ``(idx, colors, component,
    kind)``."""
    P, L = _coords(obj)
    n_u = len(L)
    if n_u > _MAX_LATENT:
        raise ValueError(
            f"fit({obj.name}): {n_u} latent coordinates, over the limit of {_MAX_LATENT} for "
            "the marginal (Laplace) point fit; use method='laplace', 'vi' or 'nuts' (they treat "
            "latents as ordinary unknowns)"
        )
    cache = obj.fns["solvers"]
    key = ("latent_probe",)
    if key not in cache:
        raw = obj.fns["log_joint_raw"]
        Lj = jnp.asarray(L)

        def probe(z, arrays):
            def grad_u(u):
                zz = z.at[Lj].set(u)
                return jax.grad(lambda w: raw(w, arrays, priors=True, jacobian=True))(zz)[Lj]

            def column(i):
                # the pattern only (n_u^2 bytes): a structural zero of autodiff is an exact 0
                h = jax.jvp(grad_u, (z[Lj],), (jax.nn.one_hot(i, n_u, dtype=z.dtype),))[1]
                return (h != 0) | ~jnp.isfinite(h), jnp.all(jnp.isfinite(h))

            pattern, finite = jax.lax.map(column, jnp.arange(n_u), batch_size=_PROBE_BATCH)
            return pattern, jnp.all(finite)

        cache[key] = jit(probe)
    # at a perturbed start: a zero of the Hessian at one point that is not structural (a
    # symmetric start) would split a block
    z0 = np.asarray(obj.z0)
    z = z0 + 0.05 * np.random.default_rng(0).standard_normal(z0.shape)
    pattern, finite = cache[key](z, obj.arrays)
    if not bool(finite):
        pattern, _ = cache[key](z0, obj.arrays)
    pattern = np.asarray(pattern)
    pattern = pattern | pattern.T
    np.fill_diagonal(pattern, True)
    idx, colors, component, kind = _blocks_from_pattern(pattern)
    if idx.shape[1] > _MAX_BLOCK:
        raise ValueError(
            f"fit({obj.name}): the latents' Hessian has a dense block of {idx.shape[1]} "
            f"coordinates, over the limit of {_MAX_BLOCK}; use method='laplace', 'vi' or 'nuts'"
        )
    return idx, colors, component, kind


# ---------------------------------------------------------------------------------------------
# block linear algebra on (components, b, b) stacks


def _gather(v, idx):
    """A latent vector as blocks (components, b), padding 0."""
    return jnp.concatenate([v, jnp.zeros((1,) + v.shape[1:], v.dtype)])[idx]


def _scatter(blocks, arrays):
    """Blocks (components, b) back to a latent vector: a gather by each coordinate's block and
    position (a scatter would not transpose under reverse mode: the padding repeats an index)."""
    return blocks[arrays[_COMPONENT], arrays[_COLORS]]


def _solve(chol, v, arrays):
    """``H^{-1} v`` from the blocks' Cholesky factors."""
    y = jax.scipy.linalg.cho_solve((chol, True), _gather(v, arrays[_BLOCKS])[..., None])[..., 0]
    return _scatter(y, arrays)


class _Fns:
    """The marginal objective's building blocks over ``theta`` (params) and ``u`` (latents);
    ``kw`` (jacobian, ...) selects the joint density's configuration, without the param priors:
    they do not involve the latents, and are added to the marginal outside the inner solve under
    a traced weight (``param_priors``), so that the marginal MLE and MAP share one program."""

    def __init__(self, joint_raw, param_priors, D, P, L, b):
        self.raw, self.D, self.P, self.L, self.b = joint_raw, D, jnp.asarray(P), jnp.asarray(L), b
        self.param_priors = param_priors
        self.n_u = len(L)
        self._joint = {}

    def _neg_joint(self, kw, z, arrays, eps):
        """``-log p(z)`` through the program's jaxpr, made once per configuration and shapes:
        the marginal's code has the joint density in it ~10 times (under jvp, vmap and grad),
        and re-running the program's Python (numpyro's handlers) at each took seconds of
        tracing; the jaxpr's primitives are replayed instead (inlined, so XLA sees one program;
        a nested ``jit`` compiled 10x slower)."""
        leaves, tree = jax.tree_util.tree_flatten((z, arrays, eps))
        key = (tuple(sorted(kw.items())), tree, tuple((jnp.shape(v), jnp.result_type(v)) for v in leaves))
        if key not in self._joint:
            raw = self.raw

            def flat(*xs):
                zz, aa, ee = jax.tree_util.tree_unflatten(tree, xs)
                return -raw(zz, aa, ee, **kw)

            specs = [jax.ShapeDtypeStruct(jnp.shape(v), jnp.result_type(v)) for v in leaves]
            self._joint[key] = jax.extend.core.jaxpr_as_fun(jax.make_jaxpr(flat)(*specs))
        return self._joint[key](*leaves)[0]

    def assemble(self, theta, u):
        z = jnp.zeros(self.D, jnp.result_type(theta, u))
        return z.at[self.P].set(theta).at[self.L].set(u)

    def f(self, theta, u, arrays, eps, kw):
        return self._neg_joint(kw, self.assemble(theta, u), _joint_arrays(arrays), eps)

    def hessian_blocks(self, theta, u, arrays, eps, kw):
        """``H_uu`` as (components, b, b) blocks from ``b`` Hessian-vector products."""
        idx, colors = arrays[_BLOCKS], arrays[_COLORS]
        grad_u = jax.grad(lambda v: self.f(theta, v, arrays, eps, kw))
        seeds = (colors[None, :] == jnp.arange(self.b)[:, None]).astype(u.dtype)

        def column(v):
            return jax.jvp(grad_u, (u,), (v,))[1]

        if self.b == 1:  # a diagonal: one product, no vmap
            hv = column(seeds[0])[None]
        elif self.b <= _PROBE_BATCH:
            hv = jax.vmap(column)(seeds)
        else:
            hv = jax.lax.map(column, seeds, batch_size=_PROBE_BATCH)
        # hv[k, i] = H[i, j] for the j of colour k in i's block
        ext = jnp.concatenate([hv, jnp.zeros((self.b, 1), hv.dtype)], axis=1)
        blocks = jnp.transpose(ext[:, idx], (1, 2, 0))  # (components, row r, colour k)
        pad = idx == self.n_u
        eye = jnp.eye(self.b, dtype=blocks.dtype)
        blocks = jnp.where(pad[:, :, None] | pad[:, None, :], eye, blocks)
        return 0.5 * (blocks + jnp.swapaxes(blocks, 1, 2)), grad_u

    def inner(self, theta, u0, arrays, eps, kw):
        """``u_hat(theta)`` by Levenberg-damped Newton (no derivatives through it). Returns ``(u,
        squared Newton decrement at u)``."""
        f = lambda v: self.f(theta, v, arrays, eps, kw)  # noqa: E731
        eye = jnp.eye(self.b)

        def newton_step(u, lam):
            blocks, grad_u = self.hessian_blocks(theta, u, arrays, eps, kw)
            g = grad_u(u)
            scale = 1.0 + jnp.abs(jnp.diagonal(blocks, axis1=1, axis2=2))
            chol = jnp.linalg.cholesky(blocks + lam * scale[:, :, None] * eye)
            p = -_solve(chol, g, arrays)
            return p, g

        def body(state):
            u, fu, lam, it, _, _ = state
            p, g = newton_step(u, lam)
            dec2 = -(g @ p)
            u_new = u + p
            f_new = f(u_new)
            ok = jnp.all(jnp.isfinite(p)) & jnp.isfinite(f_new) & (f_new <= fu + 1e-12 * jnp.abs(fu))
            u_next = jnp.where(ok, u_new, u)
            lam_next = jnp.where(ok, jnp.where(lam > 1e-10, lam / 10.0, 0.0), jnp.maximum(10.0 * lam, 1e-6))
            # converged: an undamped Newton step whose decrement (in conditional sds) is at
            # rounding level
            done = (lam == 0.0) & jnp.isfinite(dec2) & (dec2 <= 1e-20 * jnp.maximum(1.0, jnp.abs(fu)))
            return u_next, jnp.where(ok, f_new, fu), lam_next, it + 1, done, jnp.where(lam == 0.0, dec2, jnp.inf)

        def more(state):
            _, _, lam, it, done, _ = state
            return ~done & (it < _INNER_MAX_ITER) & (lam < 1e12)

        state0 = (u0, f(u0), jnp.asarray(0.0), 0, jnp.asarray(False), jnp.asarray(jnp.inf))
        u, _, _, _, _, dec2 = jax.lax.while_loop(more, body, state0)
        return u, dec2

    def mode(self, theta, arrays, eps, kw):
        """``u_hat(theta)``, differentiable to any order by the implicit function theorem."""
        key = ("mode",) + tuple(sorted(kw.items()))
        if key not in self._joint:
            self._joint[key] = self._implicit_mode(kw)
        return self._joint[key](theta, arrays, eps)

    def _implicit_mode(self, kw):
        """``u_hat`` as a ``custom_jvp``: the inner loop runs on values only, and the tangent is
        the implicit function theorem's ``du = -H_uu^{-1} (d/dtheta grad_u f) dtheta`` at the
        mode, written in differentiable JAX (its own derivatives call ``mode`` again), so the
        marginal's gradient and Hessian are exact."""

        @jax.custom_jvp
        def mode(theta, arrays, eps):
            return self.inner(theta, arrays[_START], arrays, eps, kw)[0]

        @mode.defjvp
        def mode_jvp(primals, tangents):
            theta, arrays, eps = primals
            u = mode(theta, arrays, eps)
            blocks, _ = self.hessian_blocks(theta, u, arrays, eps, kw)
            chol = jnp.linalg.cholesky(blocks)

            def grad_u(th):
                return jax.grad(lambda v: self.f(th, v, arrays, eps, kw))(u)

            cross = jax.jvp(grad_u, (theta,), (tangents[0],))[1]
            return u, -_solve(chol, cross, arrays)

        return mode

    def neg_marginal(self, theta, arrays, eps, kw, priors):
        """``-log L(theta)`` (Laplace) less ``priors`` times the params' log prior, and, as values
        only, the conditional modes, their conditional variances ``diag(H_uu^{-1})`` and the
        squared Newton decrement there."""
        u = self.mode(theta, arrays, eps, kw)
        blocks, grad_u = self.hessian_blocks(theta, u, arrays, eps, kw)
        chol = jnp.linalg.cholesky(blocks)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)))
        value = self.f(theta, u, arrays, eps, kw) + 0.5 * logdet - 0.5 * self.n_u * _LOG_2PI
        value = value - self.param_priors(self.assemble(theta, u), _joint_arrays(arrays), priors)
        sg = jax.lax.stop_gradient
        g_u = sg(grad_u(u))
        var = _scatter(jnp.diagonal(jnp.linalg.inv(sg(blocks)), axis1=1, axis2=2), arrays)
        aux = dict(u=sg(u), var=var, dec2=g_u @ _solve(sg(chol), g_u, arrays))
        return value, aux


def _marginal_fns(obj: Objective, b: int, P, L):
    """The view's function table (the keys the point solver reads), built once per program,
    layout and block size and cached with the program's functions."""
    key = ("marginal", b)
    cache = obj.fns["solvers"]
    if key in cache:
        return cache[key]
    joint = obj.fns
    latent_names = frozenset(s["name"] for s in obj.sites if s["kind"] == LATENT)
    fns_ = _Fns(joint["log_joint_raw"], joint["param_priors"], obj.dim, P, L, b)

    def kwargs(jacobian, drop, laplace_noise):
        # the latents' log-Jacobian always: the integral is over their unconstrained scale. The
        # param priors are added outside the inner solve (_Fns.neg_marginal); drop (an L1 term)
        # has none to flatten then
        jac = True if jacobian is True else latent_names
        return dict(priors=False, jacobian=jac, laplace_noise=laplace_noise)

    compiled = {}
    priors_at = jit(joint["param_priors"])

    def configured(priors, jacobian, drop=(), laplace_noise="exact"):
        kw = kwargs(jacobian, drop, laplace_noise)
        key = tuple(sorted(kw.items()))
        if key not in compiled:
            compiled[key] = _compiled(fns_, kw)
        evaluate, weight = compiled[key], float(bool(priors))
        return lambda theta, arrays: evaluate(theta, arrays, weight)

    def log_marginal(z, arrays, eps=None, obs_scale=None, *, priors=True, jacobian=True, drop=(), laplace_noise="exact"):
        """The (Laplace) marginal log density over the params, traceable (the point fit itself
        uses ``configured``'s compiled program)."""
        if obs_scale is not None:
            raise ValueError("the marginal (Laplace) objective takes no minibatches")
        eps = 0.0 if eps is None else eps
        return -fns_.neg_marginal(z, arrays, eps, kwargs(jacobian, drop, laplace_noise), priors)[0]

    param_names = [s["name"] for s in obj.sites if s["kind"] == PARAM]

    def natural(theta, arrays):
        # the params' natural values do not depend on the latents: read at the latents' start
        return joint["natural"](fns_.assemble(theta, arrays[_START]), _joint_arrays(arrays))

    def natural_flat(theta, arrays):
        nat = natural(theta, arrays)
        return jnp.concatenate([jnp.ravel(nat[k]) for k in param_names])

    def pointwise(theta, arrays):
        # no per-observation terms: the marginal log-likelihood is one number (``conditional``)
        return {}

    def conditional(theta, arrays, priors, jacobian):
        """At ``theta``, for the fit's configuration: the full ``z`` (the latents at their
        conditional modes), their conditional variances, the inner solve's squared decrement,
        the natural values and the (Laplace) marginal log-likelihood: the marginal log density
        less the params' prior and log-Jacobian terms, which do not involve the latents."""
        at = configured(priors, jacobian)(theta, arrays)
        z = np.zeros(obj.dim)
        z[P], z[L] = theta, at["u"]
        data = _joint_arrays(arrays)
        extra = 0.0
        if jacobian:
            extra = float(joint["log_joint"](z, data, priors=priors, jacobian=True)) - float(
                joint["log_joint"](z, data, priors=False, jacobian=latent_names)
            )
        elif priors:  # (the MLE's program: the weight is an argument)
            extra = float(priors_at(z, data, 1.0))
        natural_values = joint["natural"](z, data)
        return dict(z=z, var=at["var"], dec2=at["dec2"], natural=natural_values, log_likelihood=-float(at["value"]) - extra)

    fns = dict(
        log_joint_raw=log_marginal,
        log_joint=jit(log_marginal, static_argnames=("priors", "jacobian", "drop", "laplace_noise")),
        natural=jit(natural),
        natural_jacobian=jit(jax.jacfwd(natural_flat)),
        pointwise=jit(pointwise),
        pointwise_batch=jit(lambda zs, a: jax.lax.map(lambda z: pointwise(z, a), zs)),
        conditional=conditional,
        configured=configured,
        solvers={},
    )
    cache[key] = fns
    return fns


def _compiled(fns_: _Fns, kw: dict):
    """``evaluate(theta, arrays, priors) -> dict(value, grad, hess, u, var, dec2)`` (numpy): the
    negative marginal, its exact gradient and Hessian over the params and the latents'
    conditional modes and variances, from one compiled program per configuration (``priors``,
    the weight of the param priors, is a traced input: MLE and MAP share it).

    The outer optimisation runs in Python over this program (``d`` is a handful of params; a
    step costs one call), as TMB's outer optimiser does. Traced into the point solver's compiled
    Newton loop instead, the inner solve and its derivatives appeared ~6 times (the start's
    value, gradient and Hessian and the loop's) and XLA compiled every copy (99 s for a random
    intercept on a busy 2-core machine); and calling compiled code back from inside that loop
    (a host callback) can deadlock XLA's CPU thread pool.
    """

    def everything(theta, arrays, priors):
        def value_grad(th):
            (value, aux), grad = jax.value_and_grad(lambda t: fns_.neg_marginal(t, arrays, 0.0, kw, priors), has_aux=True)(th)
            return grad, (value, grad, aux)

        hess, (value, grad, aux) = jax.jacfwd(value_grad, has_aux=True)(theta)
        return dict(value=value, grad=grad, hess=0.5 * (hess + hess.T), **aux)

    program = jit(everything)

    def evaluate(theta, arrays, priors):
        return jax.tree_util.tree_map(np.asarray, program(np.asarray(theta, np.float64), arrays, float(priors)))

    return evaluate


def _newton(evaluate, z0, gtol, max_iter, dtol=1e-10):
    """Newton's method on the exact Hessian with Levenberg-Marquardt damping in Marquardt's
    scaling, in Python over the compiled ``evaluate``. The tests are the point solver's: the
    Newton decrement below ``dtol`` where the Hessian is positive definite, else the largest
    gradient entry below ``gtol * max(1, |f|)`` with no negative curvature.

    Returns ``(OptResult of numpy arrays, the conditional quantities at the optimum)``."""
    at = evaluate(z0)
    z, last = np.asarray(z0, np.float64), np.zeros(len(z0))
    lam, it, n_eval, status = 0.0, 0, 1, -1
    while True:
        f, g, h = float(at["value"]), at["grad"], at["hess"]
        if not (np.isfinite(f) and np.all(np.isfinite(g)) and np.all(np.isfinite(h))):
            status = 3
            break
        dh = np.abs(np.diag(h))
        d = np.sqrt(np.maximum(dh, 1e-8 * dh.max() + 1e-300))
        ev, v = np.linalg.eigh(h / d[:, None] / d[None, :])
        c = v.T @ (g / d)
        top = max(np.max(np.abs(ev)), 1e-300)
        pd, psd = ev[0] > 1e-12 * top, ev[0] > -1e-8 * top
        small = np.max(np.abs(g)) <= gtol * max(1.0, abs(f))
        dec = np.sqrt(abs(np.sum(c**2 / ev))) if pd else np.inf
        # positive definite: the decrement decides (scale-free; a scale going to 0 keeps a
        # gradient below gtol long before it gets there); singular: the gradient test
        if (dec <= dtol) if pd else (psd and small):
            status = 0
            break
        if it >= max_iter:
            status = 1
            break
        it += 1
        # the damped step in the scaled eigenbasis; a shift past the most negative curvature
        shift = lam + (0.0 if pd else 1e-3 * top - ev[0])
        p = (v @ (-c / (ev + shift))) / d
        trial = evaluate(z + p)
        n_eval += 1
        f_new = float(trial["value"])
        ok = np.isfinite(f_new) and np.all(np.isfinite(trial["grad"])) and f_new <= f + 1e-12 * abs(f)
        if ok:
            z, at, last = z + p, trial, p
            lam = lam / 10.0 if lam > 1e-10 * top else 0.0
        else:
            lam = max(10.0 * lam, 1e-4 * top)
            if lam > 1e16 * top:
                status = 2
                break
    res = OptResult(
        z=z, value=np.asarray(at["value"]), grad=at["grad"], hess=at["hess"], n_iter=np.asarray(it),
        grad_norm=np.asarray(np.max(np.abs(at["grad"]))), status=np.asarray(status), last_step=last, n_hess=np.asarray(n_eval),
    )
    return res, at


def _joint_arrays(arrays):
    return {k: v for k, v in arrays.items() if k not in (_START, _BLOCKS, _COLORS, _COMPONENT)}


class MarginalObjective(Objective):
    """A view of a joint :class:`Objective` over its params, the latents integrated out.

    The point solver runs on it as on any objective: ``z`` holds the param coordinates only and
    ``fns["log_joint_raw"]`` is the Laplace-approximate marginal log density. ``joint`` is the
    program's own objective; ``structure`` says how ``H_uu`` was factored.
    """

    least_squares_capable = False  # (the Newton path: see Objective)

    def __init__(self, obj: Objective):  # a view: no prototype trace of its own
        P, L = _coords(obj)
        if not len(P):
            raise ValueError(
                f"fit({obj.name}): the program has latent sites {list(obj.latent)} but no params; "
                "the marginal point fit maximises over params (use method='laplace', 'vi' or 'nuts' "
                "for the latents' posterior)"
            )
        idx, colors, component, kind = latent_structure(obj)
        self.joint, self.structure = obj, kind
        self.model, self.name, self.static = obj.model, obj.name, obj.static
        self.weights = obj.weights
        self.arrays = {
            **obj.arrays,
            _START: jax.device_put(np.asarray(obj.z0)[L]),
            _BLOCKS: jax.device_put(idx),
            _COLORS: jax.device_put(colors),
            _COMPONENT: jax.device_put(np.asarray(component, np.int64)),
        }
        # a Laplace prior on a param stays in the smooth part here (its exact-zero L1 path
        # traces the program at params alone)
        self.sites = [
            {**s, "prior": "Laplace (smooth)" if s["prior"] == "Laplace" else s["prior"]}
            for s in obj.sites
            if s["kind"] == PARAM
        ]
        self.observed, self.discrete = obj.observed, {"marginal": False}
        self.laplace_noise, self.init_names = obj.laplace_noise, obj.init_names
        self.deterministic, self.n_obs, self.latent = obj.deterministic, obj.n_obs, ()
        self.param_coords, self.latent_coords = P, L
        self.z0 = jax.device_put(np.asarray(obj.z0)[P])
        self.dim = int(len(P))
        self.labels = [obj.labels[i] for i in P]
        shapes = [s["zshape"] for s in self.sites]
        self._unravel = _DictUnravel(_list_unravel(shapes, [np.float64] * len(shapes)), tuple(s["name"] for s in self.sites))
        self.key = obj.key + (("marginal", idx.shape[1]),)
        self.fns = _marginal_fns(obj, idx.shape[1], P, L)

    def observation_axis(self):
        # no subset start: the latents' count depends on the data
        return None, ()

    def optimize(self, *, priors, jacobian, opts, method):
        """The point solver's ``optimize`` for this objective (same returns): :func:`_newton` over
        the compiled marginal, then ``post`` (existence probes, natural values and their
        Jacobian) at the optimum."""
        if opts["optimizer"] not in ("auto", "newton"):
            raise ValueError(
                f"fit(method={method!r}): the marginal fit over latent sites {list(self.joint.latent)} "
                f"optimises by Newton's method; optimizer={opts['optimizer']!r} is not available"
            )
        evaluate = self.fns["configured"](priors, jacobian)
        arrays = self.arrays
        max_iter = int(opts["max_iter"] or 500)
        with Timer() as timer:
            res, _ = _newton(lambda t: evaluate(t, arrays), np.asarray(self.z0), float(opts["gtol"]), max_iter)
        fns = self.fns

        def post(z, last, jacobian=True):
            norm = np.linalg.norm(last)
            d = last / (norm if norm > 0 else 1.0)
            step = 1.0 + np.max(np.abs(z))
            probe = [float(evaluate(z + k * step * d, arrays)["value"]) for k in (1.0, 10.0)]
            return dict(
                probe=np.asarray(probe),
                natural=jax.tree_util.tree_map(np.asarray, fns["natural"](z, arrays)),
                jacobian=np.asarray(fns["natural_jacobian"](z, arrays)) if jacobian else None,
                log_likelihood=np.asarray(0.0),  # the marginal one is set by solve_marginal
            )

        zeros = np.zeros(self.dim)
        return res, res.hess, post, ((), zeros, zeros), timer, [], dict(optimizer="newton")


def solve_marginal(obj: Objective, method: str, options: dict, solve) -> SolverResult:
    """The marginal MLE or MAP of a program with latent sites: ``solve`` (the point solver) on
    the :class:`MarginalObjective`, then the latents' conditional modes and sds at the estimate.
    """
    if options.get("stderr", "observed") == "sandwich":
        raise ValueError(
            f"fit(method={method!r}): stderr='sandwich' needs independent observations; with "
            f"latent sites {list(obj.latent)} they are dependent within a group (use the default "
            "stderr='observed')"
        )
    view = MarginalObjective(obj)
    res = solve(view, method, options)
    P, L = view.param_coords, view.latent_coords
    at = view.fns["conditional"](np.asarray(res.zhat), view.arrays, method == "map", bool(options.get("jacobian", False)))
    at = jax.tree_util.tree_map(np.asarray, at)
    z, sd_z = at["z"], np.sqrt(np.clip(at["var"], 0.0, None))

    estimate, stderr, notes, i = {}, {}, [], 0
    for s in obj.sites:
        n = int(np.prod(s["zshape"], dtype=int))
        name = s["name"]
        if s["kind"] == PARAM:
            estimate[name], stderr[name] = res.estimate[name], res.stderr[name]
        else:
            estimate[name] = np.asarray(at["natural"][name])
            k = np.searchsorted(L, i)
            sd = sd_z[k : k + n].reshape(s["zshape"])
            if not _is_real(s["support"]):
                sd = _natural_sd(s, z[i : i + n].reshape(s["zshape"]), sd)
            stderr[name] = sd
        i += n

    diagnostics = dict(res.diagnostics)
    diagnostics["warnings"] = list(diagnostics["warnings"])
    if not np.isfinite(at["dec2"]) or at["dec2"] > 1e-12:
        diagnostics["converged"] = False
        diagnostics["warnings"].append(
            f"the conditional modes of the latents {list(obj.latent)} were not found at the estimate "
            f"(Newton decrement^2 {float(at['dec2']):.3g}): the Laplace approximation there is not valid"
        )
    diagnostics["log_likelihood"] = float(at["log_likelihood"])
    diagnostics["latent"] = list(obj.latent)
    diagnostics["latent_hessian"] = view.structure
    diagnostics["notes"] = list(diagnostics.get("notes", [])) + [
        f"latent sites {list(obj.latent)} integrated out by the Laplace approximation at their "
        f"conditional modes (their Hessian: {view.structure}); log_likelihood is the marginal one "
        f"and counts {view.dim} params, not the {len(L)} latent coordinates"
    ]
    # the natural covariance over every site: the params' block; the latents' rows NaN (their
    # conditional sds are in stderr)
    cov = None
    if res.cov is not None:
        n_nat = sum(int(np.prod(s["shape"], dtype=int)) for s in obj.sites)
        kinds = np.concatenate([[s["kind"] == PARAM] * int(np.prod(s["shape"], dtype=int)) for s in obj.sites])
        cov = np.full((n_nat, n_nat), np.nan)
        cov[np.ix_(kinds, kinds)] = res.cov
    attrs = dict(res.attrs, posterior_kind="none", latent="conditional modes and sds at the estimate")
    return SolverResult(
        method=method,
        estimate=estimate,
        stderr=stderr,
        draws=None,
        zdraws=None,
        diagnostics=diagnostics,
        objective=obj,
        attrs=attrs,
        cov=cov,
        zhat=np.asarray(z),
    )


def _natural_sd(site, z, sd):
    """A constrained latent's conditional sd in the natural space, by the delta method through an
    elementwise transform (NaN for a transform over vectors, a simplex)."""
    t = biject_to(site["support"])
    if site["shape"] != site["zshape"]:
        return np.full(site["shape"], np.nan)
    slope = jax.jvp(t, (jnp.asarray(z),), (jnp.ones_like(jnp.asarray(z)),))[1]
    return np.abs(np.asarray(slope)) * sd
