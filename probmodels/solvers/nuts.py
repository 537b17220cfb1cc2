r"""Full posterior inference with numpyro's NUTS kernel, on the unconstrained program.

numpyro's functional NUTS kernel (``numpyro.infer.hmc.hmc(algo="NUTS")``, the kernel of
``MCMC(NUTS(...))``) is driven by one compiled function per program, layout and sampler
settings: warm-up and sampling are one ``lax.scan`` in one ``jax.jit`` (the kernel is traced and
compiled once), and the data arrays are arguments, so a second fit on new data of the same
shapes compiles nothing. (``numpyro.infer.MCMC`` re-traces its loop on every ``run``.) Chains:
``chain_method="parallel"`` (the default) splits them over the CPU devices probmodels sets up
at import, one per core (``_config.py``), each device running its share one after the other
(``shard_map`` of a ``lax.map``: one compiled program, every core busy); ``"sequential"`` runs
them one after the other on one device, and ``"vectorized"`` ``vmap``-s them in lockstep, which
measured slower on CPU both to compile (tracing a ``vmap`` of NUTS's nested while loops is slow)
and to run (vmapped chains wait for the longest trajectory of the four), see
``benchmarks/RESULTS.md``. With one core, or chains that no device count divides, parallel is
sequential; ``diagnostics["chain_method"]`` says what ran.

Warm-up (``adaptation=``): ``"gradient"``, the default for a diagonal mass matrix, is nutpie's
scheme (``_adapt.py``): the inverse mass matrix is :math:`\sqrt{\mathrm{Var}(z) /
\mathrm{Var}(\nabla \log p)}`, from the draws and their gradients, refreshed after every draw in
overlapping windows. On the benchmark's neural-network regression it gives 10x the effective
sample size of ``"windowed"``, Stan's scheme (numpyro's ``NUTS`` default: the variance of the draws
in doubling windows), which ``dense_mass=True`` uses. The adapted mass matrices are in
``diagnostics["inverse_mass_matrix"]``, one per chain.

Chains start at the program's starting point (``init``, else the prior
median, else 0 unconstrained), jittered by ``uniform(-init_jitter, init_jitter)`` in the
unconstrained space so that r-hat can see chains disagree (values given in ``init`` are not
jittered).
"""

from __future__ import annotations

from functools import partial

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from numpyro.infer.hmc import hmc

from ._adapt import grad_adapted_chain
from ._common import SolverResult, Timer, check_options
from ._objective import Objective

__all__ = ["solve_nuts", "NUTS_DEFAULTS", "sampler_warnings"]

NUTS_DEFAULTS = dict(
    init=None,
    seed=0,
    chains=4,
    warmup=1000,
    draws=1000,
    target_accept=0.8,
    max_tree_depth=10,
    dense_mass=False,
    adaptation=None,
    chain_method="parallel",
    init_jitter=0.5,
)
_CHAIN_METHODS = ("parallel", "sequential", "vectorized")
_ADAPTATIONS = ("gradient", "windowed")


def adaptation_of(opts: dict) -> str:
    """The warm-up scheme: ``"gradient"`` (nutpie's, diagonal mass) unless a dense mass is asked for."""
    kind = opts.get("adaptation")
    if kind is None:
        return "windowed" if opts["dense_mass"] else "gradient"
    if kind not in _ADAPTATIONS:
        raise ValueError(f"fit(method='nuts'): adaptation must be one of {_ADAPTATIONS}, got {kind!r}")
    if kind == "gradient" and opts["dense_mass"]:
        raise ValueError(
            "fit(method='nuts'): adaptation='gradient' sets a diagonal mass matrix; with dense_mass=True "
            "use adaptation='windowed' (Stan's windowed covariance estimate) or leave adaptation unset"
        )
    return kind


def _sampler(obj: Objective, opts: dict):
    """The compiled ``run(keys, starts, arrays)`` for these settings (built once, cached)."""
    warmup, draws = int(opts["warmup"]), int(opts["draws"])
    target, depth, dense = float(opts["target_accept"]), int(opts["max_tree_depth"]), bool(opts["dense_mass"])
    method = opts["chain_method"]
    adaptation = adaptation_of(opts)
    key = ("nuts", warmup, draws, target, depth, dense, method, adaptation, int(opts["chains"]) if method == "parallel" else None)
    cache = obj.fns["solvers"]
    if key in cache:
        return cache[key]
    log_joint = partial(obj.fns["log_joint_raw"], priors=True, jacobian=True)

    def potential_fn_gen(arrays):
        return lambda z: -log_joint(z, arrays)

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")

    def record(s, step):
        return (s.z, s.diverging, s.num_steps, s.accept_prob, s.energy, s.potential_energy, step)

    def windowed_chain(rng_key, z0, arrays):
        state = init_kernel(
            z0,
            num_warmup=warmup,
            target_accept_prob=target,
            max_tree_depth=depth,
            dense_mass=dense,
            model_args=(arrays,),
            rng_key=rng_key,
        )

        def transition(s, _):
            new = sample_kernel(s, model_args=(arrays,))
            return new, record(new, s.adapt_state.step_size)

        # one scan over warm-up and draws (the kernel adapts while its counter is below
        # num_warmup): NUTS is traced and compiled once
        last, out = jax.lax.scan(transition, state, None, length=warmup + draws)
        return jax.tree.map(lambda v: v[warmup:], out) + (last.adapt_state.inverse_mass_matrix,)

    def gradient_chain(rng_key, z0, arrays):
        return grad_adapted_chain(
            potential_fn_gen, init_kernel, sample_kernel, rng_key, z0, arrays,
            warmup=warmup, draws=draws, target=target, depth=depth, record=record,
        )

    chain = gradient_chain if adaptation == "gradient" else windowed_chain

    def one_by_one(keys, starts, arrays):
        return jax.lax.map(lambda a: chain(a[0], a[1], arrays), (keys, starts))

    if method == "vectorized":
        run = jax.vmap(chain, in_axes=(0, 0, None))
    elif method == "parallel" and parallel_devices(int(opts["chains"])) > 1:
        # the chains split over CPU devices (one per core), each device running its share one
        # after the other: one compiled program, every core busy
        n_dev = parallel_devices(int(opts["chains"]))
        mesh = Mesh(np.asarray(jax.local_devices(backend="cpu")[:n_dev]), ("chain",))
        run = jax.shard_map(one_by_one, mesh=mesh, in_specs=(P("chain"), P("chain"), P()), out_specs=P("chain"), check_vma=False)
    else:
        run = one_by_one
    cache[key] = jax.jit(run)
    return cache[key]


def parallel_devices(chains: int) -> int:
    """CPU devices the chains are split over: the most, up to one per device, that divides
    ``chains`` evenly (1: sequential on one device)."""
    try:
        n = len(jax.local_devices(backend="cpu"))
    except RuntimeError:  # pragma: no cover - no CPU backend
        return 1
    return max(k for k in range(1, min(n, chains) + 1) if chains % k == 0)


def _starts(obj: Objective, chains: int, jitter: float, seed: int):
    z0 = np.asarray(obj.z0)
    if jitter <= 0:
        return np.tile(z0, (chains, 1))
    u = np.asarray(jax.random.uniform(jax.random.PRNGKey(seed + 7919), (chains, obj.dim), minval=-jitter, maxval=jitter))
    # Values the user gave in init are used as given (as Stan does): a jitter of 0.5 on the
    # unconstrained scale knows nothing of a parameter whose size is 1e-4.
    given = np.concatenate(
        [np.full(int(np.prod(s["zshape"], dtype=int)), s["name"] in obj.init_names) for s in obj.sites]
    )
    starts = z0[None] + np.where(given[None], 0.0, u)
    lp = np.asarray([obj.fns["log_joint"](jnp.asarray(z), obj.arrays) for z in starts])
    starts[~np.isfinite(lp)] = z0
    return starts


def sampler_warnings(n_div, n_total, max_rhat, min_bulk, min_tail, chains, depth_hits, max_depth):
    """Warnings with counts, shares, the likely cause and the remedy."""
    out = []
    if n_div:
        out.append(
            f"{n_div} of {n_total} draws ({100 * n_div / n_total:.1f}%) diverged after warm-up: "
            "the posterior has regions of high curvature the sampler cannot follow, so it may be "
            "biased; raise target_accept (e.g. 0.95) or reparameterize (for a hierarchical "
            "scale, the non-centred form)"
        )
    if np.isfinite(max_rhat) and max_rhat > 1.01:
        out.append(
            f"r-hat is {max_rhat:.3f} (> 1.01): the chains disagree, so they have not mixed; run "
            "longer (warmup=, draws=) or look for multimodality or an unidentified parameter"
        )
    if np.isfinite(min_bulk) and min_bulk < 100 * chains:
        out.append(
            f"the bulk effective sample size is {min_bulk:.0f} (< 100 per chain x {chains} "
            "chains): posterior means and sds are imprecise; draw more (draws=) or reparameterize"
        )
    if np.isfinite(min_tail) and min_tail < 100 * chains:
        out.append(
            f"the tail effective sample size is {min_tail:.0f} (< 100 per chain x {chains} "
            "chains): interval endpoints are imprecise; draw more (draws=)"
        )
    if depth_hits:
        out.append(
            f"{depth_hits} of {n_total} draws ({100 * depth_hits / n_total:.1f}%) hit the maximum "
            f"tree depth ({max_depth}): the sampler is taking many small steps (strong "
            "correlations or very different scales); reparameterize or raise max_tree_depth"
        )
    return out


def solve_nuts(obj: Objective, method: str, options: dict) -> SolverResult:
    opts = check_options(method, options, NUTS_DEFAULTS)
    chains, draws_n = int(opts["chains"]), int(opts["draws"])
    for name in ("chains", "warmup", "draws"):
        if int(opts[name]) < (1 if name != "warmup" else 0):
            raise ValueError(f"fit(method='nuts'): {name} must be positive, got {opts[name]}")
    if not 0.0 < float(opts["target_accept"]) < 1.0:
        raise ValueError(f"fit(method='nuts'): target_accept must be in (0, 1), got {opts['target_accept']}")
    if opts["chain_method"] not in _CHAIN_METHODS:
        raise ValueError(f"fit(method='nuts'): chain_method must be one of {_CHAIN_METHODS}, got {opts['chain_method']!r}")
    run = _sampler(obj, opts)
    starts = _starts(obj, chains, float(opts["init_jitter"]), int(opts["seed"]))
    keys = jax.random.split(jax.random.PRNGKey(int(opts["seed"])), chains)
    with Timer() as timer:
        out = run(keys, jnp.asarray(starts), obj.arrays)
        zs, div, nsteps, accept, energy, pe, step, inv_mass = (np.asarray(a) for a in out)
    extra = {"diverging": div, "num_steps": nsteps, "accept_prob": accept, "energy": energy,
             "potential_energy": pe, "adapt_state.step_size": step}
    nat = obj.natural_draws(jnp.asarray(zs.reshape(-1, obj.dim)))
    draws = {k: np.asarray(v).reshape((chains, draws_n) + np.shape(v)[1:]) for k, v in nat.items()}

    latent = {s["name"]: draws[s["name"]] for s in obj.sites}
    ds = az.convert_to_dataset({k: v for k, v in latent.items()})
    rhat = az.rhat(ds)
    ess_bulk = az.ess(ds, method="bulk")
    ess_tail = az.ess(ds, method="tail")
    max_rhat = float(np.nanmax([np.nanmax(rhat[k].values) for k in latent])) if chains > 1 else float("nan")
    min_bulk = float(np.nanmin([np.nanmin(ess_bulk[k].values) for k in latent]))
    min_tail = float(np.nanmin([np.nanmin(ess_tail[k].values) for k in latent]))
    diverging = extra["diverging"].astype(bool)
    n_div = int(diverging.sum())
    max_depth = int(opts["max_tree_depth"])
    depth_hits = int(np.sum(extra["num_steps"] >= 2**max_depth - 1))
    warnings = []
    flat = [s["name"] for s in obj.sites if s["flat"]]
    if flat:
        warnings.append(
            f"{', '.join(flat)} {'has a flat (improper) prior' if len(flat) == 1 else 'have flat (improper) priors'}: "
            "the posterior is proper only if the likelihood makes it so, which is the user's to "
            "check (a proper prior removes the doubt)"
        )
    warnings += sampler_warnings(
        n_div, chains * draws_n, max_rhat, min_bulk, min_tail, chains, depth_hits, max_depth
    )
    converged = not (n_div or (np.isfinite(max_rhat) and max_rhat > 1.01) or min_bulk < 100 * chains)

    estimate = {k: v.mean(axis=(0, 1)) for k, v in latent.items()}
    stderr = {k: v.reshape((-1,) + v.shape[2:]).std(axis=0, ddof=1) for k, v in latent.items()}
    depth = np.floor(np.log2(extra["num_steps"] + 1)).astype(int)
    sample_stats = dict(
        diverging=diverging,
        energy=extra["energy"],
        lp=-extra["potential_energy"],
        n_steps=extra["num_steps"],
        tree_depth=depth,
        acceptance_rate=extra["accept_prob"],
        step_size=extra["adapt_state.step_size"],
    )
    diagnostics = dict(
        converged=bool(converged),
        warnings=warnings,
        divergences=n_div,
        max_rhat=max_rhat,
        min_ess_bulk=min_bulk,
        min_ess_tail=min_tail,
        tree_depth_hits=depth_hits,
        adaptation=adaptation_of(opts),
        chain_method=(
            f"parallel ({parallel_devices(chains)} CPU devices)"
            if opts["chain_method"] == "parallel" and parallel_devices(chains) > 1
            else ("sequential" if opts["chain_method"] == "parallel" else opts["chain_method"])
        ),
        inverse_mass_matrix=inv_mass,
        compile_s=timer.compile_s,
        run_s=timer.run_s,
        wall_s=timer.wall_s,
    )
    return SolverResult(
        method=method,
        estimate=estimate,
        stderr=stderr,
        draws=draws,
        zdraws=zs,
        diagnostics=diagnostics,
        objective=obj,
        sample_stats=sample_stats,
        attrs=dict(posterior_kind="NUTS draws (numpyro)"),
    )
