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

import contextlib
import warnings as _warnings
from functools import partial
from typing import NamedTuple

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from numpyro.infer.hmc import hmc
from numpyro.infer.util import ParamInfo

from .. import _progress
from .._config import jit
from ._adapt import grad_adapted_chain
from ._common import SolverResult, Timer, check_options
from ._objective import Objective
from .base import DIVERGENCES, ESS, OTHER, RHAT, Finding, SimFit, Solver, thin

__all__ = ["solve_nuts", "batched_nuts", "NutsRun", "is_converged", "NUTS_DEFAULTS", "sampler_warnings", "SOLVER"]

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


class NutsRun(NamedTuple):
    """What a NUTS run keeps, per chain and draw (leading axes ``(chains, draws)``), and the
    adapted inverse mass matrix per chain."""

    z: jax.Array
    diverging: jax.Array
    num_steps: jax.Array
    accept_prob: jax.Array
    energy: jax.Array
    potential_energy: jax.Array
    step_size: jax.Array
    inverse_mass_matrix: jax.Array


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


def _sampler_key(opts: dict) -> tuple:
    method = opts["chain_method"]
    return (
        "nuts", int(opts["warmup"]), int(opts["draws"]), float(opts["target_accept"]), int(opts["max_tree_depth"]),
        bool(opts["dense_mass"]), method, adaptation_of(opts), int(opts["chains"]) if method == "parallel" else None,
        _progress.wanted(),  # a program with progress callbacks is another program
    )


def _sampler(obj: Objective, opts: dict):
    """The compiled ``run(keys, starts, arrays)`` for these settings (built once, cached); a
    chain's start is one point or (jittered start, fallback), see ``start_info``."""
    warmup, draws = int(opts["warmup"]), int(opts["draws"])
    target, depth, dense = float(opts["target_accept"]), int(opts["max_tree_depth"]), bool(opts["dense_mass"])
    method = opts["chain_method"]
    adaptation = adaptation_of(opts)
    key = _sampler_key(opts)
    cache = obj.fns["solvers"]
    if key in cache:
        return cache[key]
    log_joint = partial(obj.fns["log_joint_raw"], priors=True, jacobian=True)

    def potential_fn_gen(arrays):
        return lambda z: -log_joint(z, arrays)

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")
    show = _progress.wanted()

    def kernel_of(rng_key):
        """The transition, reporting progress every 2% of a chain (told apart by its key)."""
        if not show:
            return sample_kernel

        def kernel(s, model_args):
            new = sample_kernel(s, model_args=model_args)
            _progress.tick(rng_key, new.i, warmup + draws)
            return new

        return kernel

    def start_info(start, arrays):
        """``ParamInfo(z, potential, gradient)`` at a chain's start: ``start`` is one point, or
        (jittered, fallback), taken in that order where the log density and gradient are finite."""
        vg = jax.value_and_grad(potential_fn_gen(arrays))
        if start.ndim == 1:
            return ParamInfo(start, *vg(start))
        pes, gs = jax.vmap(vg)(start)
        i = jnp.where(jnp.isfinite(pes[0]) & jnp.all(jnp.isfinite(gs[0])), 0, 1)
        return ParamInfo(start[i], pes[i], gs[i])

    def record(s, step):  # (NutsRun's fields but the mass matrix)
        return (s.z, s.diverging, s.num_steps, s.accept_prob, s.energy, s.potential_energy, step)

    def windowed_chain(rng_key, start, arrays):
        state = init_kernel(
            start_info(start, arrays),
            num_warmup=warmup,
            target_accept_prob=target,
            max_tree_depth=depth,
            dense_mass=dense,
            model_args=(arrays,),
            rng_key=rng_key,
        )

        def transition(s, _):
            new = kernel_of(rng_key)(s, model_args=(arrays,))
            return new, record(new, s.adapt_state.step_size)

        # one scan over warm-up and draws (the kernel adapts while its counter is below
        # num_warmup): NUTS is traced and compiled once
        last, out = jax.lax.scan(transition, state, None, length=warmup + draws)
        return NutsRun(*jax.tree.map(lambda v: v[warmup:], out), last.adapt_state.inverse_mass_matrix)

    def gradient_chain(rng_key, start, arrays):
        return NutsRun(*grad_adapted_chain(
            init_kernel, kernel_of(rng_key), rng_key, start_info(start, arrays), arrays,
            warmup=warmup, draws=draws, target=target, depth=depth, record=record,
        ))

    chain = gradient_chain if adaptation == "gradient" else windowed_chain

    def one_by_one(keys, starts, arrays):
        return jax.lax.map(lambda a: chain(a[0], a[1], arrays), (keys, starts))

    if method == "vectorized":
        run = jax.vmap(chain, in_axes=(0, 0, None))
    elif method == "parallel" and parallel_devices(int(opts["chains"])) > 1:
        # the chains split over CPU devices (one per core), each device running its share one
        # after the other: one compiled program, every core busy
        n_dev = parallel_devices(int(opts["chains"]))
        mesh = Mesh(np.asarray(jax.local_devices()[:n_dev]), ("chain",))
        run = jax.shard_map(one_by_one, mesh=mesh, in_specs=(P("chain"), P("chain"), P()), out_specs=P("chain"), check_vma=False)
    else:
        run = one_by_one
    cache[key] = run  # traced inside _seeded's program
    return cache[key]


def parallel_devices(chains: int) -> int:
    """CPU devices the chains are split over: the most, up to one per device, that divides
    ``chains`` evenly (1: sequential on one device, and always on an accelerator)."""
    if jax.default_backend() != "cpu":
        return 1  # an accelerator runs the chains on itself, one after the other
    n = len(jax.local_devices())
    return max(k for k in range(1, min(n, chains) + 1) if chains % k == 0)


def _seeded(obj: Objective, opts: dict, compiled: bool = True):
    """``run(seed, z0, amplitude, arrays)``: the compiled sampler (``compiled=False``: the same
    function uncompiled, to be traced into another program) with its keys and starts
    computed inside the one program (as eager JAX calls each would compile a kernel of its own:
    0.3 to 0.5 s of a first fit in all).

    Chain ``c`` gets key ``split(PRNGKey(seed), chains)[c]`` and starts at ``z0 + u`` with ``u ~
    uniform(-amplitude, amplitude)`` from ``PRNGKey(seed + 7919)`` (the starts ``calibrate``
    draws), or at ``z0`` where the log density there is not finite.
    """
    chains = int(opts["chains"])
    key = ("nuts_seeded", chains, _sampler_key(opts), compiled)
    cache = obj.fns["solvers"]
    if key in cache:
        return cache[key]
    if compiled:
        cache[key] = jit(_seeded(obj, opts, compiled=False))
        return cache[key]
    core = _sampler(obj, opts)

    def run(seed, z0, amplitude, arrays):
        keys = jax.random.split(jax.random.PRNGKey(seed), chains)
        u = jax.random.uniform(jax.random.PRNGKey(seed + 7919), (chains, z0.shape[0]), z0.dtype, -1.0, 1.0)
        # each chain gets (jittered start, z0): it starts at z0 where the log density or its
        # gradient at the jittered start is not finite (decided inside the chain, on the gradient
        # it computes anyway)
        starts = jnp.stack([z0[None] + u * amplitude[None], jnp.broadcast_to(z0, (chains, z0.shape[0]))], axis=1)
        return core(keys, starts, arrays)

    cache[key] = run
    return cache[key]


def chain_diagnostics(latent: dict, chains: int) -> tuple[float, float, float]:
    """(max r-hat, min bulk ESS, min tail ESS) over every coordinate of the (chain, draw, ...)
    arrays: ArviZ's ``rhat`` and ``ess`` on each coordinate's (chain, draw) array, as
    ``az.rhat(dataset)`` computes them but without building an xarray dataset (whose first use
    in a process imports dask where it is installed: 0.4 s of a first fit)."""
    rhats, bulk, tail = [], [], []
    for v in latent.values():
        flat = np.asarray(v, dtype=float).reshape(v.shape[0], v.shape[1], -1)
        for j in range(flat.shape[2]):
            a = flat[:, :, j]
            with np.errstate(all="ignore"), _warnings.catch_warnings():
                _warnings.simplefilter("ignore")
                if chains > 1:
                    rhats.append(float(az.rhat(a)))
                bulk.append(float(az.ess(a, method="bulk")))
                tail.append(float(az.ess(a, method="tail")))
    nanmax = lambda x: float(np.nanmax(x)) if np.any(np.isfinite(x)) else float("nan")  # noqa: E731
    nanmin = lambda x: float(np.nanmin(x)) if np.any(np.isfinite(x)) else float("nan")  # noqa: E731
    return (nanmax(rhats) if chains > 1 else float("nan")), nanmin(bulk), nanmin(tail)


def sampler_warnings(n_div, n_total, max_rhat, min_bulk, min_tail, chains, depth_hits, max_depth):
    """Warnings with counts, shares, the likely cause and the remedy."""
    out = []
    if n_div:
        out.append(Finding(
            DIVERGENCES,
            f"{n_div} of {n_total} draws ({100 * n_div / n_total:.1f}%) diverged after warm-up: "
            "the posterior has regions of high curvature the sampler cannot follow, so it may be "
            "biased; raise target_accept (e.g. 0.95) or reparameterize (for a hierarchical "
            "scale, the non-centred form)",
        ))
    if np.isfinite(max_rhat) and max_rhat > 1.01:
        out.append(Finding(
            RHAT,
            f"r-hat is {max_rhat:.3f} (> 1.01): the chains disagree, so they have not mixed; run "
            "longer (warmup=, draws=) or look for multimodality or an unidentified parameter",
        ))
    if np.isfinite(min_bulk) and min_bulk < 100 * chains:
        out.append(Finding(
            ESS,
            f"the bulk effective sample size is {min_bulk:.0f} (< 100 per chain x {chains} "
            "chains): posterior means and sds are imprecise; draw more (draws=) or reparameterize",
        ))
    if np.isfinite(min_tail) and min_tail < 100 * chains:
        out.append(Finding(
            ESS,
            f"the tail effective sample size is {min_tail:.0f} (< 100 per chain x {chains} "
            "chains): interval endpoints are imprecise; draw more (draws=)",
        ))
    if depth_hits:
        out.append(Finding(
            OTHER,
            f"{depth_hits} of {n_total} draws ({100 * depth_hits / n_total:.1f}%) hit the maximum "
            f"tree depth ({max_depth}): the sampler is taking many small steps (strong "
            "correlations or very different scales); reparameterize or raise max_tree_depth",
        ))
    return out


def _amplitude(obj: Objective, opts: dict) -> np.ndarray:
    """The start jitter per coordinate of z. Values the user gave in init are used as given (as
    Stan does): a jitter of 0.5 on the unconstrained scale knows nothing of a parameter whose
    size is 1e-4."""
    given = np.concatenate([np.full(int(np.prod(s["zshape"], dtype=int)), s["name"] in obj.init_names) for s in obj.sites])
    return np.where(given, 0.0, max(float(opts["init_jitter"]), 0.0))


def is_converged(n_div: int, max_rhat: float, min_bulk: float, chains: int) -> bool:
    """The one definition of a converged NUTS run: no divergence, r-hat at most 1.01 (where there
    are several chains) and a bulk ESS of at least 100 per chain."""
    return not (n_div or (np.isfinite(max_rhat) and max_rhat > 1.01) or min_bulk < 100 * chains)


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
    run = _seeded(obj, opts)
    amplitude = _amplitude(obj, opts)
    bar = _progress.ChainProgress(chains, int(opts["warmup"]), draws_n) if _progress.wanted() else contextlib.nullcontext()
    with Timer() as timer, bar:
        out = NutsRun(*(np.asarray(a) for a in run(np.int64(int(opts["seed"])), np.asarray(obj.z0), amplitude, obj.arrays)))
        zs = out.z
        nat = obj.natural_draws(zs.reshape((-1, obj.dim)))
    draws = {k: np.asarray(v).reshape((chains, draws_n) + np.shape(v)[1:]) for k, v in nat.items()}

    latent = {s["name"]: draws[s["name"]] for s in obj.sites}
    max_rhat, min_bulk, min_tail = chain_diagnostics(latent, chains)
    diverging = out.diverging.astype(bool)
    n_div = int(diverging.sum())
    max_depth = int(opts["max_tree_depth"])
    depth_hits = int(np.sum(out.num_steps >= 2**max_depth - 1))
    warnings = []
    flat = [s["name"] for s in obj.sites if s["flat"]]
    if flat:
        warnings.append(Finding(
            OTHER,
            f"{', '.join(flat)} {'has a flat (improper) prior' if len(flat) == 1 else 'have flat (improper) priors'}: "
            "the posterior is proper only if the likelihood makes it so, which is the user's to "
            "check (a proper prior removes the doubt)",
        ))
    warnings += sampler_warnings(
        n_div, chains * draws_n, max_rhat, min_bulk, min_tail, chains, depth_hits, max_depth
    )
    converged = is_converged(n_div, max_rhat, min_bulk, chains)

    estimate = {k: v.mean(axis=(0, 1)) for k, v in latent.items()}
    stderr = {k: v.reshape((-1,) + v.shape[2:]).std(axis=0, ddof=1) for k, v in latent.items()}
    depth = np.floor(np.log2(out.num_steps + 1)).astype(int)
    sample_stats = dict(
        diverging=diverging,
        energy=out.energy,
        lp=-out.potential_energy,
        n_steps=out.num_steps,
        tree_depth=depth,
        acceptance_rate=out.accept_prob,
        step_size=out.step_size,
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
        inverse_mass_matrix=out.inverse_mass_matrix,
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


def batched_nuts(obj: Objective, observed: str, xs, seeds, options: dict, n_draws: int):
    """NUTS on many data sets in one compiled call (``calibrate``): every chain of every data set
    in lockstep (``jax.vmap``), chain ``c`` of data set ``j`` with the keys and starts that
    ``fit(seed=seeds[j])`` gives it. A :class:`SimFit` each, with ``n_draws`` evenly thinned
    draws; converged as ``solve_nuts`` has it (:func:`is_converged`)."""
    opts = check_options("nuts", options, NUTS_DEFAULTS)
    chains = int(opts["chains"])
    # simulations are vmapped: chains one after the other inside each (not split over devices)
    run = _seeded(obj, dict(opts, chain_method="sequential") if opts["chain_method"] == "parallel" else opts, compiled=False)
    axes = {k: (0 if k == observed else None) for k in obj.arrays}
    key = ("nuts_batched", tuple(sorted(axes.items())), run)
    if key not in obj.fns["solvers"]:
        obj.fns["solvers"][key] = jit(jax.vmap(run, in_axes=(0, None, None, axes)))
    run_all = obj.fns["solvers"][key]
    arrays = {**obj.arrays, observed: jnp.asarray(np.stack(xs))}
    ran = run_all(np.asarray(seeds, dtype=np.int64), np.asarray(obj.z0), _amplitude(obj, opts), arrays)
    zs, div = np.asarray(ran.z), np.asarray(ran.diverging)
    out = []
    for j in range(len(seeds)):
        one = {**obj.arrays, observed: arrays[observed][j]}
        flat_z = zs[j].reshape(-1, obj.dim)
        nat = obj.fns["natural_batch"](np.asarray(flat_z), one)
        latent = {s["name"]: np.asarray(nat[s["name"]]).reshape((chains, -1) + s["shape"]) for s in obj.sites}
        max_rhat, min_bulk, _ = chain_diagnostics(latent, chains)
        draws = np.concatenate([v.reshape(flat_z.shape[0], -1) for v in latent.values()], axis=1)
        converged = is_converged(int(div[j].sum()), max_rhat, min_bulk, chains)
        out.append(SimFit(draws.mean(0), draws.std(0, ddof=1), thin(draws, n_draws), converged))
    return out


def _solve(obj: Objective, options: dict) -> SolverResult:
    return solve_nuts(obj, "nuts", options)


SOLVER = Solver(
    name="nuts", label="NUTS", kind="sampler", defaults=NUTS_DEFAULTS, solve=_solve, batched=batched_nuts,
    quick={"warmup": 300, "draws": 300, "chains": 2},
)
