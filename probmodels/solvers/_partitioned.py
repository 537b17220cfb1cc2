"""Fits on data partitioned by rows (dask arrays): the same program, computed on the cluster.

The negative log density splits into a sum over chunks of rows plus a part free of the data:

.. math::

    f(z) = \\sum_c L_c(z) + G(z), \\qquad
    L_c = -\\log p(x_c \\mid T(z)), \\quad
    G = -\\log p(T(z)) \\; [- \\log |\\partial T / \\partial z|].

Each chunk's ``(L_c, grad, Hessian)`` comes from one compiled function (compiled once per worker
and chunk shape; JAX's persistent cache makes a worker's later compiles loads) and the sums are
formed on the cluster: only ``D x D`` numbers come back. ``G`` (priors, the log-Jacobian) is
evaluated in memory. Newton's method then takes one pass over the data per step: it starts at the
same fit on a sample of rows (as the in-memory large-N path, ``point._subsample_start``), from
which three or four passes reach the optimum with the Hessian (the standard errors) evaluated
there (``_partitioned_newton``). The per-chunk functions are in ``_partitioned_chunks``.

mle, map and laplace go through the usual solvers (``point.optimize`` hands the optimisation to
:meth:`Engine.optimize`); vi with ``batch_size`` draws each chunk of SVI steps from a pool of
rows drawn uniformly (with replacement) across all chunks; nuts is refused.
"""

from __future__ import annotations

import math
import time

import jax
import numpy as np

from .._config import jit
from ..partitioned import RowPartition
from ._common import Timer
from ._objective import Objective
from ._optimize import hessian_of
from ._partitioned_chunks import ChunkProgram, ScoreChunk, as_traced, combine
from ._partitioned_newton import DTOL, newton

__all__ = ["partitioned_objective", "PartitionedObjective", "Engine", "head_objective", "partitioned_scores"]

# rows of the start's fit: 20 sqrt(N), at least 20,000 (point.py's subset; 50 per parameter for
# the at most 200 parameters here) and at most 1,000,000. The start lies ~sqrt(N / n) standard
# errors from the optimum and Newton's contraction is ~1 / sqrt(N), so the decrement after the
# first step, ~sqrt(N) / n, stays the same as N grows: three steps at any N (and a pass at the optimum)
_SAMPLE_N = (20_000, 20.0, 1_000_000)
_SAMPLE_CHUNKS = 8  # ... drawn from at most 8 chunks chosen at random (a read of 8 chunks, not all)
_POOL_MAX = 2_000_000  # rows fetched per chunk of minibatch SVI steps (at most)
_MAX_DIM = 200  # a D x D Hessian per chunk: Newton's limit in point.py


# ---------------------------------------------------------------------------------------------
# the objective on partitioned rows


class PartitionedObjective(Objective):
    """An :class:`Objective` whose in-memory arrays are a sample of the rows (the layout, the
    start and the data-free parts are computed from it) and whose ``partitioned`` engine runs
    the passes over all rows. ``observed`` holds the observed dask arrays (lazy)."""

    least_squares_capable = False  # (the Newton path: see Objective)

    def __init__(self, template: Objective, engine: "Engine"):
        self.__dict__.update(template.__dict__)
        self.template = template
        self.partitioned = engine
        part = engine.part
        # observed sites observed through a data key of the same name: the dask arrays
        self.observed = {k: (part.rows[k] if k in part.rows else v) for k, v in template.observed.items()}
        self.n_obs = template.n_obs * part.n_rows // engine.info["start_rows"]

    def observation_axis(self):
        return self.partitioned.part.n_rows, tuple(sorted(self.partitioned.part.rows))

    def rows(self, idx, keys):
        """The program's data with the rows ``idx`` (global) of the partitioned arrays, in memory."""
        got = self.partitioned.part.take(idx)
        self.partitioned.note_read(got)
        return {**self.static, **self.partitioned.fixed_arrays, **got}

    def score_outer(self, z):
        """The sandwich's meat, one more pass over the rows at ``z``."""
        eng = self.partitioned
        tot = eng.part.reduce(eng.program.meat, np.asarray(z), combine=combine)
        eng.count_pass(tot)
        return tot["meat"]


def _sample_rows(part: RowPartition, n_sub: int, seed: int):
    """Global indices of ``n_sub`` rows drawn without replacement from up to ``_SAMPLE_CHUNKS``
    chunks chosen at random (all rows when there are no more than ``n_sub``)."""
    if part.n_rows <= n_sub:
        return np.arange(part.n_rows)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(part.chunks))[:_SAMPLE_CHUNKS]
    order = np.sort(order)
    sizes = np.asarray(part.chunks)[order]
    pool = np.concatenate([part.offsets[c] + np.arange(n) for c, n in zip(order, sizes)])
    if len(pool) <= n_sub:
        return pool
    return np.sort(rng.choice(pool, n_sub, replace=False))


def partitioned_objective(model, data: dict, method: str, options: dict) -> PartitionedObjective:
    """The objective of ``model`` on ``data`` with dask arrays, or the error that says why the
    method cannot run on partitioned rows."""
    name = getattr(model, "__name__", repr(model))
    who = f"fit({name})"
    if method == "nuts":
        raise ValueError(
            f"{who}, method='nuts': data hold dask arrays (partitioned rows), and every NUTS "
            "gradient, thousands per chain, would be a pass over all of them. Use method='laplace' "
            "(exact Newton on the cluster, a few passes), method='vi' with batch_size=... "
            "(minibatches drawn across the chunks), or nuts on a subsample of rows in memory"
        )
    if method == "vi" and options.get("batch_size") is None:
        raise ValueError(
            f"{who}, method='vi': data hold dask arrays (partitioned rows); give batch_size=... "
            "(full-batch VI would take a pass over all rows at every step)"
        )
    if options.get("psis"):
        raise ValueError(f"{who}: psis=True needs the log density of every draw on all rows; not on partitioned data")
    if options.get("optimizer", "auto") not in ("auto", "newton"):
        raise ValueError(f"{who}: on partitioned data the optimizer is Newton (one pass per step); optimizer={options['optimizer']!r} is not available")
    part = RowPartition(data, who=who)
    seed = int(options.get("seed", 0) or 0)
    sample_bytes = 0
    lo, per_root, hi = _SAMPLE_N
    n_sub = int(min(max(lo, per_root * math.sqrt(part.n_rows)), hi))
    idx = _sample_rows(part, n_sub, seed)
    sample = part.take(idx)
    sample_bytes += sum(v.nbytes for v in sample.values())
    for k, v in sample.items():
        if v.dtype.kind == "f":
            bad = ~np.isfinite(v).reshape(len(v), -1).all(axis=1)
            if bad.any():
                raise ValueError(
                    f"{who}: data[{k!r}] has non-finite values (NaN or inf), first at row "
                    f"{int(idx[np.argmax(bad)])} (found among the start's sample rows); drop or impute them"
                )
    template = Objective(model, {**part.fixed, **sample}, init=options.get("init"))
    if template.dim > _MAX_DIM:
        raise ValueError(
            f"{who}: {template.dim} unconstrained parameters; on partitioned data every chunk "
            f"returns a D x D Hessian, at most {_MAX_DIM} parameters (use method='vi' with batch_size)"
        )
    if part.n_rows < template.dim:
        raise ValueError(
            f"{who}: the data have {part.n_rows} rows, fewer than the {template.dim} parameters: "
            "the likelihood cannot identify them; more rows, fewer parameters, or priors and method='nuts' in memory"
        )
    if template.laplace_noise:
        raise ValueError(
            f"{who}: Laplace noise on {template.laplace_noise} needs a smoothing continuation (ten "
            "optimisations); not on partitioned data. Use noise.Huber or method='vi' with batch_size"
        )
    # (n_sub = 20,000 >= 50 x the at most 200 parameters: the sample identifies all of them)
    fixed_arrays = {k: v for k, v in template.arrays.items() if k not in part.rows}
    engine = Engine(part, ChunkProgram(template, fixed_arrays), fixed_arrays, len(idx), sample_bytes)
    return PartitionedObjective(template, engine)


# ---------------------------------------------------------------------------------------------
# the passes


class Engine:
    """Runs the passes over the rows and counts them (``passes``, ``bytes_read``)."""

    def __init__(self, part: RowPartition, program: ChunkProgram, fixed_arrays: dict, n_sample: int, sample_bytes: int):
        self.part, self.program = part, program
        self.fixed_arrays = fixed_arrays
        self.info = dict(passes=0, bytes_read=int(sample_bytes), rows=part.n_rows, chunks=len(part.chunks), start_rows=int(n_sample))
        self.info["scheduler"] = _scheduler_name()

    def count_pass(self, tot, seconds=None):
        self.info["passes"] += 1
        if seconds is not None:
            self.info.setdefault("pass_s", []).append(round(seconds, 3))
        self.info["bytes_read"] += int(tot["nbytes"])

    def note_read(self, arrays: dict):
        self.info["bytes_read"] += int(sum(np.asarray(v).nbytes for v in arrays.values()))

    def terms(self, z):
        """One pass: ``sum_c (L_c, grad, Hessian)`` at ``z``, or the error the data call for."""
        t = time.perf_counter()
        tot = self.part.reduce(self.program.terms, np.asarray(z, np.float64), combine=combine)
        self.count_pass(tot, time.perf_counter() - t)
        who = self.program.who
        if tot["bad_rows"] > 0:
            names = ", ".join(repr(k) for k in self.part.rows)
            raise ValueError(
                f"{who}: the partitioned data ({names}) have {int(tot['bad_rows'])} rows with "
                f"non-finite values (NaN or inf), first at row {int(tot['first_bad_row'])}; drop or impute them"
            )
        if np.isfinite(tot["first_nonfinite_chunk"]):
            start = int(tot["first_nonfinite_chunk"])
            c = int(np.searchsorted(self.part.offsets, start))
            raise ValueError(
                f"{who}: the log-likelihood of rows {start} to {start + self.part.chunks[c] - 1} "
                f"(chunk {c}) is not finite at z = {np.round(np.asarray(z), 4).tolist()}: observations "
                "outside the noise model's support, or a start where the model gives them probability 0"
            )
        return tot

    def optimize(self, obj: PartitionedObjective, *, priors: bool, jacobian: bool, opts: dict, method: str):
        """``point.optimize``'s contract on partitioned rows: Newton from the sample's fit, one
        pass per step."""
        from .point import _l1_terms, optimize

        template = obj.template
        if priors:
            drop = _l1_terms(template)[0]
            if drop:
                raise ValueError(
                    f"{self.program.who}: Laplace priors on {list(drop)} are an L1 term that the "
                    "proximal Newton step handles in memory only; on partitioned data give them a "
                    "smooth prior (Normal, StudentT) or use method='vi' with batch_size"
                )
        with Timer() as timer:
            t = time.perf_counter()
            res0, _, _, _, _, notes, _ = optimize(template, priors=priors, jacobian=jacobian, opts=opts, method=method)
            self.info["start_s"] = round(time.perf_counter() - t, 3)
            z0 = np.asarray(res0.z) if int(res0.status) == 0 else np.asarray(template.z0)
            start = f"the fit to {self.info['start_rows']} rows sampled from the chunks" if int(res0.status) == 0 else "z0 (the sample's fit failed)"
            glob = _global_terms(template, priors, jacobian)

            def evaluate(z):
                tot = self.terms(z)
                gv, gg, gh = (np.asarray(a) for a in glob(np.asarray(z), template.arrays))
                return float(tot["value"]) + float(gv), tot["grad"] + gg, tot["hess"] + gh, -float(tot["value"])

            max_iter = int(opts["max_iter"] or 50)
            run = newton(evaluate, z0, float(opts["gtol"]), max_iter)
        res, loglik, final = run.res, run.loglik, run.final
        info = dict(self.info)
        # the Newton decrement (in standard errors) at every point a pass evaluated
        info.update(optimizer="newton", start=start, decrements=[float(f"{t:.3g}") for t in run.trail])
        if final is not None:
            info["last_step"] = (
                f"taken without a verifying pass: the Newton decrement before it, {final:.2g}, "
                f"bounds the one after it by ({final:.2g} / (1 - {final:.2g}))^2 < {DTOL:g}, and the "
                f"Hessian (the standard errors) is predicted to change by {run.hess_change:.1g} relative over it"
            )
        self.info = info

        fns = template.fns

        def post(z, last, jacobian=True):
            # no existence probes (two more passes): probe = NaN skips that check
            out = dict(
                probe=np.full(2, np.nan),
                natural=jax.tree_util.tree_map(np.asarray, fns["natural"](np.asarray(z), template.arrays)),
                jacobian=np.asarray(fns["natural_jacobian"](np.asarray(z), template.arrays)) if jacobian else None,
                log_likelihood=loglik,
            )
            return out

        return res, np.asarray(res.hess), post, ((), np.zeros(obj.dim), np.zeros(obj.dim)), timer, notes, info

    def minibatch_pool(self, obj: PartitionedObjective, n: int, seed: int, k: int) -> dict:
        """``min(n, _POOL_MAX)`` rows drawn uniformly with replacement across all chunks, as the
        arrays SVI's minibatch steps index (each step's rows are then uniform over all rows)."""
        rng = np.random.default_rng([seed, 17, k])
        idx = np.sort(rng.integers(0, self.part.n_rows, min(n, _POOL_MAX)))
        got = self.part.take(idx)
        self.note_read(got)
        self.info["pools"] = self.info.get("pools", 0) + 1
        return {**obj.arrays, **{key: jax.device_put(as_traced(v)) for key, v in got.items()}}

    def scores(self, template: Objective, zs, kind: str, who: str):
        """A dask array of the per-observation log predictive density (``kind="lpd"``, rows) or
        log-likelihood (``kind="pointwise"``, draws x rows) at the draws ``zs``, chunked like the
        rows (``template``: the program on the first rows, for the layout). Every chunk runs the
        same compiled function: the last, shorter one is padded to the common chunk size."""
        from ..partitioned import map_rows

        rows0 = len(next(iter(template.arrays[k] for k in self.part.rows)))
        if template.n_obs != rows0:
            raise ValueError(
                f"{who}: on partitioned data the program must observe one value "
                f"per row ({template.n_obs} values on {rows0} rows here); score it in memory"
            )
        fn = ScoreChunk(self.program, zs, kind)
        lead = () if kind == "lpd" else (len(zs),)
        return map_rows(fn, {**self.part.fixed, **self.part.rows}, lead=lead, pad=True, who=who)


def _global_terms(template: Objective, priors: bool, jacobian: bool):
    """``G`` (the data-free part: priors and the log-Jacobian) with its gradient and Hessian,
    compiled once per program: the log density with every observation weighted by 0. The
    priors' and the log-Jacobian's weights are traced inputs (as in ``point._solver``), so MLE,
    MAP and Laplace share the program."""
    key = ("partitioned_global",)
    cache = template.fns["solvers"]
    if key not in cache:
        raw = template.fns["log_joint_raw"]

        def g(z, arrays, on):
            return -raw(z, arrays, None, 0.0, priors=on[0], jacobian=on[1])

        cache[key] = jit(lambda z, a, on: (g(z, a, on), jax.grad(g)(z, a, on), hessian_of(lambda y: g(y, a, on))(z)))
    on = (float(bool(priors)), float(bool(jacobian)))
    return lambda z, arrays: cache[key](z, arrays, on)



def _scheduler_name() -> str:
    """Where dask computes: a scheduler set in dask's config, else the default distributed
    client, else the local threads."""
    import dask

    chosen = dask.config.get("scheduler", None)
    if chosen is not None and "distributed" not in str(chosen):
        return str(chosen)
    try:
        from distributed import default_client

        return f"distributed ({default_client().scheduler.address})"
    except (ImportError, ValueError):  # no distributed, or no client
        return "threads"


def head_objective(model, data: dict, rows: int = 1000, who: str = "log_predictive_density"):
    """An in-memory objective on the first ``rows`` rows of partitioned ``data`` (the layout of
    the program's parameters) and its :class:`Engine` for passes over all rows."""
    part = RowPartition(data, who=who)
    head = part.take(np.arange(min(rows, part.n_rows)))
    template = Objective(model, {**part.fixed, **head})
    fixed_arrays = {k: v for k, v in template.arrays.items() if k not in part.rows}
    return template, Engine(part, ChunkProgram(template, fixed_arrays), fixed_arrays, 0, 0)


def partitioned_scores(fit, model, data: dict, kind: str = "lpd"):
    """:func:`probmodels.compare.log_predictive_density` (``kind="lpd"``) or
    :meth:`probmodels.Fit.pointwise_log_likelihood` (``kind="pointwise"``) on partitioned
    ``data``: a dask array chunked like the rows, each chunk scored on the cluster at the fit's
    estimate or draws."""
    who = "log_predictive_density" if kind == "lpd" else "pointwise_log_likelihood"
    new, engine = head_objective(model, data, who=who)
    old = fit._result.objective
    if [s["name"] for s in new.sites] != [s["name"] for s in old.sites] or new.dim != old.dim:
        raise ValueError(
            f"{who}: the new data changes the program's parameters "
            f"({[s['name'] for s in new.sites]} vs {[s['name'] for s in old.sites]}); "
            "parameters must not depend on the number of observations"
        )
    if fit.is_point:
        z = fit._result.zhat[None]
    else:
        if fit._result.zdraws is None:
            raise ValueError(f"{who}: the {fit.method} fit has no draws")
        z = fit._result.zdraws.reshape(-1, new.dim)
    return engine.scores(new, z, kind, who)
