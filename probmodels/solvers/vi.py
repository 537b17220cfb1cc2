"""Variational inference: numpyro's SVI with an automatic Gaussian guide on the unconstrained space.

``guide="normal"`` is mean-field (``AutoNormal``), ``"multivariate_normal"`` full-rank
(``AutoMultivariateNormal``). The guide starts at the Laplace approximation (the mode of the
unconstrained posterior and its curvature), so the optimisation only corrects it. Adam runs in
compiled chunks at a constant learning rate until the ELBO stops improving (the drop between
two chunk means is within two standard errors), then the learning rate is annealed over four
more chunks so that the final parameters do not carry Adam's step noise. The ELBO trace is in
``diagnostics["elbo"]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoMultivariateNormal, AutoNormal
from numpyro.optim import optax_to_numpyro

from ._common import SolverResult, Timer, check_options, gaussian_log_density, psis, reweight
from ._objective import Objective
from ._zmodel import zmodel
from .laplace import identity_mask, laplace_q

__all__ = ["solve_vi", "VI_DEFAULTS"]

VI_DEFAULTS = dict(
    init=None,
    seed=0,
    guide="normal",
    steps=20000,
    learning_rate=0.01,
    draws=4000,
    num_particles=1,
    chunk=500,
    psis=False,
)
_GUIDES = {"normal": AutoNormal, "multivariate_normal": AutoMultivariateNormal}
_ANNEAL = (0.3, 0.09, 0.027, 0.0081)


def _svi(obj: Objective, guide_kind: str, num_particles: int):
    key = ("svi", guide_kind, num_particles)
    cache = obj.fns["solvers"]
    if key not in cache:
        model = zmodel(obj)
        guide = _GUIDES[guide_kind](model)
        optim = optax_to_numpyro(optax.inject_hyperparams(optax.adam)(learning_rate=1e-2))
        svi = SVI(model, guide, optim, Trace_ELBO(num_particles=num_particles))

        def chunk(state, arrays, n):
            def step(s, _):
                return svi.update(s, arrays=arrays)

            return jax.lax.scan(step, state, None, length=n)

        cache[key] = dict(svi=svi, guide=guide, chunk=jax.jit(chunk, static_argnums=2))
    return cache[key]


def _with(state, *, lr=None, params=None):
    """The SVI state with a new learning rate or new (unconstrained) guide parameters."""
    i, (p, opt_state) = state.optim_state
    if lr is not None:
        hyper = dict(opt_state.hyperparams)
        hyper["learning_rate"] = jnp.asarray(lr, dtype=jnp.asarray(hyper["learning_rate"]).dtype)
        opt_state = opt_state._replace(hyperparams=hyper)
    if params is not None:
        p = {**p, **params}
    return state._replace(optim_state=(i, (p, opt_state)))


def _start_params(obj, guide, arrays, guide_kind, z, h, cov):
    """Unconstrained guide parameters of the Laplace approximation (loc at the mode)."""
    tr = handlers.trace(handlers.seed(guide, 0)).get_trace(arrays=arrays)
    constraint = {k: s["kwargs"].get("constraint") for k, s in tr.items() if s["type"] == "param"}
    out = {}
    if guide_kind == "normal":
        out["z_auto_loc"] = jnp.asarray(z)
        if h is not None and np.all(np.diag(h) > 0):
            out["z_auto_scale"] = biject_to(constraint["z_auto_scale"]).inv(jnp.asarray(1.0 / np.sqrt(np.diag(h))))
    else:
        out["auto_loc"] = jnp.asarray(z)
        if cov is not None:
            chol = np.linalg.cholesky(0.5 * (cov + cov.T))
            out["auto_scale_tril"] = biject_to(constraint["auto_scale_tril"]).inv(jnp.asarray(chol))
    return out


def solve_vi(obj: Objective, method: str, options: dict) -> SolverResult:
    opts = check_options(method, options, VI_DEFAULTS)
    guide_kind = opts["guide"]
    if guide_kind not in _GUIDES:
        raise ValueError(f"fit(method='vi'): guide must be one of {sorted(_GUIDES)}, got {guide_kind!r}")
    chunk_n = int(opts["chunk"])
    steps = int(opts["steps"])
    if steps < chunk_n * (len(_ANNEAL) + 2):
        raise ValueError(
            f"fit(method='vi'): steps={steps} is too few for chunks of {chunk_n} (need at least "
            f"{chunk_n * (len(_ANNEAL) + 2)}); lower chunk= or raise steps="
        )
    lr0 = float(opts["learning_rate"])

    res, cov, ok_laplace, lwarn, ltimer, _ = laplace_q(obj, {"init": opts["init"]}, method)
    warnings = []
    h = None
    if cov is not None:
        h = np.linalg.inv(cov)

    setup = _svi(obj, guide_kind, int(opts["num_particles"]))
    svi, guide, chunk = setup["svi"], setup["guide"], setup["chunk"]
    with Timer() as timer:
        state = svi.init(jax.random.PRNGKey(int(opts["seed"])), arrays=obj.arrays)
        state = _with(state, lr=lr0, params=_start_params(obj, guide, obj.arrays, guide_kind, res.z, h, cov))
        losses, plateau = [], False
        budget = steps - chunk_n * len(_ANNEAL)
        done = 0
        while done + chunk_n <= budget:
            state, loss = chunk(state, obj.arrays, chunk_n)
            loss = np.asarray(loss)
            losses.append(loss)
            done += chunk_n
            if len(losses) >= 2:
                a, b = losses[-2], losses[-1]
                se = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / chunk_n)
                if a.mean() - b.mean() < 2.0 * se:
                    plateau = True
                    break
        for factor in _ANNEAL:
            state = _with(state, lr=lr0 * factor)
            state, loss = chunk(state, obj.arrays, chunk_n)
            losses.append(np.asarray(loss))
            done += chunk_n
        params = svi.get_params(state)
        zs = guide.sample_posterior(jax.random.PRNGKey(int(opts["seed"]) + 1), params, sample_shape=(int(opts["draws"]),))["z"]
        zs = np.asarray(zs)
        nat = obj.natural_draws(jnp.asarray(zs))
        draws = {k: np.asarray(v)[None] for k, v in nat.items()}

    elbo = -np.concatenate(losses)
    if not np.all(np.isfinite(elbo[-chunk_n:])):
        warnings.append("the ELBO is not finite at the end of the optimisation: the fit failed; lower learning_rate=")
        plateau = False
    elif not plateau:
        warnings.append(
            f"the ELBO was still improving after {done - chunk_n * len(_ANNEAL)} steps (the "
            f"last chunk means differ by more than two standard errors); raise steps= (now {steps})"
        )

    # Exact moments of q where the transform is the identity; draw moments elsewhere.
    if guide_kind == "normal":
        q_mean = np.asarray(params["z_auto_loc"])
        q_sd = np.asarray(params["z_auto_scale"])
        q_chol = np.diag(q_sd)
    else:
        q_mean = np.asarray(params["auto_loc"])
        q_chol = np.asarray(params["auto_scale_tril"])
        q_sd = np.sqrt(np.sum(q_chol**2, axis=1))
    pareto_k, lw, pwarn = psis(obj, zs, gaussian_log_density(zs, q_mean, q_chol), "VI")
    warnings += pwarn
    zs = zs[None]
    if opts["psis"]:
        draws, zs = reweight(draws, zs, lw, int(opts["seed"]))
    ident = identity_mask(obj) & (not opts["psis"])
    estimate, stderr = {}, {}
    i = j = 0
    for s in obj.sites:
        k = s["name"]
        nz = int(np.prod(s["zshape"], dtype=int))
        nn = int(np.prod(s["shape"], dtype=int))
        if ident[j : j + nn].all():
            estimate[k] = q_mean[i : i + nz].reshape(s["shape"])
            stderr[k] = q_sd[i : i + nz].reshape(s["shape"])
        else:
            estimate[k] = draws[k][0].mean(axis=0)
            stderr[k] = draws[k][0].std(axis=0, ddof=1)
        i += nz
        j += nn

    diagnostics = dict(
        converged=bool(plateau),
        warnings=warnings + ([w for w in lwarn] if not ok_laplace else []),
        steps=done,
        elbo=elbo,
        final_elbo=float(np.mean(elbo[-chunk_n:])),
        guide=guide_kind,
        pareto_k=pareto_k,
        compile_s=timer.compile_s + ltimer.compile_s,
        run_s=timer.run_s + ltimer.run_s,
        wall_s=timer.wall_s + ltimer.wall_s,
    )
    return SolverResult(
        method=method,
        estimate=estimate,
        stderr=stderr,
        draws=draws,
        zdraws=zs,
        diagnostics=diagnostics,
        objective=obj,
        attrs=dict(posterior_kind=f"variational approximation ({guide_kind} guide on the unconstrained space)"),
    )
