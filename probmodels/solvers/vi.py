"""Variational inference: numpyro's SVI with a Gaussian guide on the unconstrained space.

``guide="normal"`` is mean-field (numpyro's ``AutoNormal`` on the one vector ``z``: loc and a
softplus-positive scale), ``"multivariate_normal"`` full-rank (``AutoMultivariateNormal``'s loc
and scaled-unit-lower-Cholesky factor). The guides are written out rather than taken from
numpyro's autoguides, whose set-up runs the model eagerly (about 150 small eager compiles, half
of a first fit): the SVI state, its learning rate and start are built in one compiled call, the
draws of q in another. The guide starts at the Laplace approximation (the mode of the
unconstrained posterior and its curvature), so the optimisation only corrects it. Adam runs in
compiled chunks at a constant learning rate until the ELBO stops improving (the drop between
two chunk means is within two standard errors), then the learning rate is annealed over four
more chunks and the iterates of the last one averaged (Polyak-Ruppert), so that the final
parameters do not carry Adam's step noise. The ELBO trace is in ``diagnostics["elbo"]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.handlers import replay, seed
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.util import compute_log_probs
from numpyro.optim import optax_to_numpyro

from .. import _progress
from .._config import jit
from ._common import SolverResult, Timer, check_options, gaussian_log_density, psis, reweight
from ._objective import Objective
from ._zmodel import zmodel
from .base import CONVERGENCE, OTHER, Finding, Solver
from .laplace import identity_mask, laplace_q

__all__ = ["solve_vi", "VI_DEFAULTS", "SOLVER"]

VI_DEFAULTS = dict(
    init=None,
    seed=0,
    guide="normal",
    steps=20000,
    learning_rate=0.01,
    draws=4000,
    num_particles=1,
    chunk=None,
    psis=False,
    batch_size=None,
)
_INIT_SCALE = 0.1  # the autoguides' default


def _normal_guide(dim):
    """Mean-field Gaussian q(z) (``AutoNormal``'s parameters and constraints)."""

    def guide(arrays, obs_scale=None):
        loc = numpyro.param("z_auto_loc", jnp.zeros(dim))
        scale = numpyro.param("z_auto_scale", jnp.full(dim, _INIT_SCALE), constraint=constraints.softplus_positive)
        numpyro.sample("z", dist.Normal(loc, scale).to_event(1))

    return guide


def _mvn_guide(dim):
    """Full-rank Gaussian q(z) (``AutoMultivariateNormal``'s parameters and constraints)."""

    def guide(arrays, obs_scale=None):
        loc = numpyro.param("auto_loc", jnp.zeros(dim))
        tril = numpyro.param("auto_scale_tril", _INIT_SCALE * jnp.eye(dim), constraint=constraints.scaled_unit_lower_cholesky)
        numpyro.sample("z", dist.MultivariateNormal(loc, scale_tril=tril))

    return guide


_GUIDES = {"normal": _normal_guide, "multivariate_normal": _mvn_guide}
_ANNEAL = (0.3, 0.09, 0.027, 0.0081)


class _SortedTraceELBO(Trace_ELBO):
    """numpyro's ``Trace_ELBO`` for the z-model and its guides (no mutable state), with the
    per-site terms ``log p - log q`` summed in sorted site order. numpyro sums them over a
    ``set`` of site names, whose order changes with the process's hash seed, and so did the
    compiled SVI program and its persistent-cache key: a miss, and a fresh compile, in about
    every other process. (The z-model has two sites, so the sum itself is the same number.)"""

    def loss_with_mutable_state(self, rng_key, param_map, model, guide, *args, **kwargs):
        def one(key):
            model_seed, guide_seed = jax.random.split(key)
            guide_lp, guide_trace = compute_log_probs(seed(guide, guide_seed), args, kwargs, param_map)
            model_lp, _ = compute_log_probs(replay(seed(model, model_seed), guide_trace), args, kwargs, param_map)
            names = sorted(set(model_lp) | set(guide_lp))
            terms = [model_lp.get(n, jnp.array(0.0)) - guide_lp.get(n, jnp.array(0.0)) for n in names]
            return sum(terms, start=jnp.array(0.0))

        if self.num_particles == 1:
            return {"loss": -one(rng_key), "mutable_state": None}
        elbos = self.vectorize_particles_fn(one, jax.random.split(rng_key, self.num_particles))
        return {"loss": -jnp.mean(elbos), "mutable_state": None}


def _svi(obj: Objective, guide_kind: str, num_particles: int, minibatch=None):
    """The compiled SVI functions of one program and settings (cached): its chunk of steps, the
    start state, the draws of q and the constrained parameters.

    ``minibatch = (per-observation keys, N, B)``: each step draws B of the N observations
    (uniformly, with replacement: O(B) per step, where a permutation of 10 million indices is not),
    indexes every per-observation array with the same indices, and scales the log-likelihood by
    N / B, which keeps the ELBO's gradient unbiased."""
    key = ("svi", guide_kind, num_particles, minibatch)
    cache = obj.fns["solvers"]
    if key not in cache:
        model = zmodel(obj)
        guide = _GUIDES[guide_kind](obj.dim)
        optim = optax_to_numpyro(optax.inject_hyperparams(optax.adam)(learning_rate=1e-2))
        svi = SVI(model, guide, optim, _SortedTraceELBO(num_particles=num_particles))
        if minibatch is None:

            def chunk(state, arrays, rng, n):
                def step(s, _):
                    s, loss = svi.update(s, arrays=arrays)
                    return s, (loss, svi.optim.get_params(s.optim_state))

                state, (losses, path) = jax.lax.scan(step, state, None, length=n)
                return state, rng, losses, jax.tree_util.tree_map(lambda a: a.mean(0), path)

        else:
            keys, n_total, b = minibatch
            scale = n_total / b

            def chunk(state, arrays, rng, n):
                def step(carry, _):
                    s, k = carry
                    k, sub = jax.random.split(k)
                    # (the rows at hand: all N in memory, a pool drawn from them on a cluster)
                    idx = jax.random.randint(sub, (b,), 0, arrays[keys[0]].shape[0])
                    batch = {name: (v[idx] if name in keys else v) for name, v in arrays.items()}
                    s, loss = svi.update(s, arrays=batch, obs_scale=scale)
                    return (s, k), (loss, svi.optim.get_params(s.optim_state))

                (state, rng), (losses, path) = jax.lax.scan(step, (state, rng), None, length=n)
                return state, rng, losses, jax.tree_util.tree_map(lambda a: a.mean(0), path)

        def init(seed, arrays, obs_scale, lr, start):
            # the SVI state at the start values (constrained), with learning rate lr, and the key
            # of the minibatch draws: one compiled call (numpyro's init, eager, compiles every op)
            key = jax.random.PRNGKey(seed)
            kw = {} if minibatch is None else {"obs_scale": obs_scale}
            state = svi.init(key, arrays=arrays, init_params=start, **kw)
            return _with(state, lr=lr), jax.random.PRNGKey(seed + 2)

        def draw_q(seed, params, n):
            eps = jax.random.normal(jax.random.PRNGKey(seed), (n, obj.dim))
            if guide_kind == "normal":
                return params["z_auto_loc"] + eps * params["z_auto_scale"]
            return params["auto_loc"] + eps @ params["auto_scale_tril"].T

        cache[key] = dict(
            chunk=jit(chunk, static_argnums=3), init=jit(init), draw_q=jit(draw_q, static_argnums=2),
            params=jit(svi.get_params),  # (constrained; eager, the transforms compile their ops)
        )
    return cache[key]


def _minibatch(obj: Objective, batch_size: int):
    """(per-observation data keys, N, B) for minibatch VI, or an error that says why not."""
    n, keys = obj.observation_axis()
    if n is None:
        lengths = {k: (np.shape(v)[0] if np.ndim(v) else None) for k, v in obj.observed.items()}
        raise ValueError(
            f"fit(method='vi', batch_size=...): the observations {lengths} must share one leading "
            "(observation) axis to be subsampled"
        )
    if not 1 <= batch_size < n:
        raise ValueError(f"fit(method='vi'): batch_size must be between 1 and N - 1 = {n - 1}, got {batch_size}")
    return keys, n, int(batch_size)


def _with(state, *, lr=None, params=None):
    """The SVI state with a new learning rate or new (unconstrained) guide parameters."""
    i, (p, opt_state) = state.optim_state
    if lr is not None:
        hyper = dict(opt_state.hyperparams)
        # (numpy, not jnp.asarray: an eager conversion compiles a kernel)
        hyper["learning_rate"] = np.asarray(lr, dtype=hyper["learning_rate"].dtype) if not isinstance(lr, jax.Array) else lr.astype(hyper["learning_rate"].dtype)
        opt_state = opt_state._replace(hyperparams=hyper)
    if params is not None:
        p = {**p, **params}
    return state._replace(optim_state=(i, (p, opt_state)))


def _start_params(guide_kind, z, h, cov):
    """Guide parameters (constrained) of the Laplace approximation: loc at the mode; the scales
    from the Hessian's diagonal (mean-field) or the covariance's Cholesky factor (full rank)
    where it has them, else the guides' defaults."""
    dim = len(z)
    if guide_kind == "normal":
        scale = 1.0 / np.sqrt(np.diag(h)) if h is not None and np.all(np.diag(h) > 0) else np.full(dim, _INIT_SCALE)
        return {"z_auto_loc": np.asarray(z, np.float64), "z_auto_scale": np.asarray(scale, np.float64)}
    chol = np.linalg.cholesky(0.5 * (cov + cov.T)) if cov is not None else _INIT_SCALE * np.eye(dim)
    return {"auto_loc": np.asarray(z, np.float64), "auto_scale_tril": np.asarray(chol, np.float64)}


def solve_vi(obj: Objective, method: str, options: dict) -> SolverResult:
    opts = check_options(method, options, VI_DEFAULTS)
    guide_kind = opts["guide"]
    if guide_kind not in _GUIDES:
        raise ValueError(f"fit(method='vi'): guide must be one of {sorted(_GUIDES)}, got {guide_kind!r}")
    # the ELBO's plateau is judged between chunks: minibatch ELBOs are noisier, so longer chunks
    chunk_n = int(opts["chunk"] or (500 if opts["batch_size"] is None else 2000))
    steps = int(opts["steps"])
    if steps < chunk_n * (len(_ANNEAL) + 2):
        raise ValueError(
            f"fit(method='vi'): steps={steps} is too few for chunks of {chunk_n} (need at least "
            f"{chunk_n * (len(_ANNEAL) + 2)}); lower chunk= or raise steps="
        )
    lr0 = float(opts["learning_rate"])

    warnings, notes = [], []
    minibatch = None if opts["batch_size"] is None else _minibatch(obj, int(opts["batch_size"]))
    if minibatch is None:
        q = laplace_q(obj, {"init": opts["init"]}, method)
        z_start, cov = q.result.z, q.cov
        h = None if cov is None else np.linalg.inv(cov)
    else:
        # Large data: the start is the Laplace approximation on a random subset of n_sub
        # observations, its covariance shrunk by n_sub / N (the likelihood's curvature grows with
        # N; at the sizes where minibatches pay, the prior's share is negligible). The full-data
        # Laplace would cost D passes over all the data per Newton step.
        keys, n_total, b = minibatch
        n_sub = min(n_total - 1, max(20 * b, 5000))
        idx = np.asarray(jax.random.randint(jax.random.PRNGKey(int(opts["seed"]) + 3), (n_sub,), 0, n_total))
        q = laplace_q(Objective(obj.model, obj.rows(idx, keys), init=opts["init"]), {"init": opts["init"]}, method)
        z_start = q.result.z
        cov = None if q.cov is None else q.cov * (n_sub / n_total)
        h = None if cov is None else np.linalg.inv(cov)
        notes.append(f"minibatch VI: {b} of {n_total} observations per step (indices shared by {', '.join(keys)}), log-likelihood scaled by N/B = {n_total / b:g}")
        small = {k: (v[: min(b, n_total)] if k in keys else v) for k, v in obj.arrays.items()}

    setup = _svi(obj, guide_kind, int(opts["num_particles"]), minibatch)
    chunk = setup["chunk"]
    with Timer() as timer:
        state, rng = setup["init"](
            np.int64(int(opts["seed"])),
            obj.arrays if minibatch is None else small,
            np.float64(1.0 if minibatch is None else n_total / b),
            np.float64(lr0),
            _start_params(guide_kind, z_start, h, cov),
        )
        losses, plateau = [], False
        budget = steps - chunk_n * len(_ANNEAL)
        done = 0
        bar = _progress.StepProgress(steps) if _progress.wanted() else None

        def rows(k):
            # partitioned rows: each chunk of steps draws its minibatches from a fresh pool of
            # rows drawn uniformly across all chunks of the data (each step's rows stay uniform)
            if obj.partitioned is None:
                return obj.arrays
            return obj.partitioned.minibatch_pool(obj, chunk_n * minibatch[2], int(opts["seed"]), k)

        while done + chunk_n <= budget:
            state, rng, loss, _ = chunk(state, rows(len(losses)), rng, chunk_n)
            loss = np.asarray(loss)
            losses.append(loss)
            done += chunk_n
            if bar is not None:
                bar.update(done, -float(loss[-1]))
            if len(losses) >= 2:
                a, b = losses[-2], losses[-1]
                se = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / chunk_n)
                if a.mean() - b.mean() < 2.0 * se:
                    plateau = True
                    break
        for factor in _ANNEAL:
            state = _with(state, lr=lr0 * factor)
            state, rng, loss, averaged = chunk(state, rows(len(losses)), rng, chunk_n)
            losses.append(np.asarray(loss))
            done += chunk_n
        if bar is not None:
            bar.close(done, -float(losses[-1][-1]))
        # Polyak-Ruppert: the average of the last chunk's iterates, not the last (noisy) one
        state = _with(state, params=averaged)
        params = setup["params"](state)
        zs = np.asarray(setup["draw_q"](np.int64(int(opts["seed"]) + 1), params, int(opts["draws"])))
        # natural values of the draws; with minibatches, on a slice of the data (parameters do not
        # depend on it; per-observation deterministic sites are then for that slice only)
        nat = obj.fns["natural_batch"](np.asarray(zs), obj.arrays if minibatch is None else small)
        draws = {k: np.asarray(v)[None] for k, v in nat.items()}

    elbo = -np.concatenate(losses)
    if not np.all(np.isfinite(elbo[-chunk_n:])):
        warnings.append(Finding(CONVERGENCE, "the ELBO is not finite at the end of the optimisation: the fit failed; lower learning_rate="))
        plateau = False
    elif not plateau:
        warnings.append(Finding(
            CONVERGENCE,
            f"the ELBO was still improving after {done - chunk_n * len(_ANNEAL)} steps (the "
            f"last chunk means differ by more than two standard errors); raise steps= (now {steps})",
        ))

    # Exact moments of q where the transform is the identity; draw moments elsewhere.
    if guide_kind == "normal":
        q_mean = np.asarray(params["z_auto_loc"])
        q_sd = np.asarray(params["z_auto_scale"])
        q_chol = np.diag(q_sd)
    else:
        q_mean = np.asarray(params["auto_loc"])
        q_chol = np.asarray(params["auto_scale_tril"])
        q_sd = np.sqrt(np.sum(q_chol**2, axis=1))
    if minibatch is None:
        pareto_k, lw, pwarn = psis(obj, zs, gaussian_log_density(zs, q_mean, q_chol), "VI")
        warnings += pwarn
    else:
        pareto_k, lw = float("nan"), None
        notes.append("Pareto k not computed: it needs the full-data log density at every draw")
        if opts["psis"]:
            raise ValueError("fit(method='vi'): psis=True needs the full-data log density at every draw; not with batch_size")
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
        warnings=warnings + (
            [Finding(OTHER, f"the Laplace approximation VI starts from failed ({w.split(':')[0]}); VI started at the mode with unit scales") for w in q.warnings]
            if not q.ok
            else []
        ),
        steps=done,
        elbo=elbo,
        final_elbo=float(np.mean(elbo[-chunk_n:])),
        guide=guide_kind,
        pareto_k=pareto_k,
        notes=notes,
        batch_size=None if minibatch is None else minibatch[2],
        compile_s=timer.compile_s + (q.timer.compile_s if q.timer else 0.0),
        run_s=timer.run_s + (q.timer.run_s if q.timer else 0.0),
        wall_s=timer.wall_s + (q.timer.wall_s if q.timer else 0.0),
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


def _solve(obj: Objective, options: dict) -> SolverResult:
    return solve_vi(obj, "vi", options)


SOLVER = Solver(name="vi", label="VI", kind="approximation", defaults=VI_DEFAULTS, solve=_solve, quick={"steps": 6000})
