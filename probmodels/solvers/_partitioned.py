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
which two or three steps usually reach the optimum; the last step is taken without a verifying
pass when the Newton decrement before it bounds the one after it below the tolerance.

mle, map and laplace go through the usual solvers (``point.optimize`` hands the optimisation to
:meth:`Engine.optimize`); vi with ``batch_size`` draws each chunk of SVI steps from a pool of
rows drawn uniformly (with replacement) across all chunks; nuts is refused.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
import uuid

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from numpyro.primitives import Messenger

from .._config import jit
from ..partitioned import RowPartition
from ._common import Timer
from ._objective import Objective, _DictUnravel, _list_unravel, _log_joint, _pointwise
from ._optimize import OptResult, _scaled_eigen, _trust_region_step, hessian_of

__all__ = ["partitioned_objective", "PartitionedObjective", "Engine", "head_objective", "partitioned_log_predictive_density"]

# rows of the start's fit: 20 sqrt(N), at least 20,000 (point.py's subset; 50 per parameter for
# the at most 200 parameters here) and at most 1,000,000. The start lies ~sqrt(N / n) standard
# errors from the optimum and Newton's contraction is ~1 / sqrt(N), so the decrement after the
# first step, ~sqrt(N) / n, stays the same as N grows: three passes at any N
_SAMPLE_N = (20_000, 20.0, 1_000_000)
_SAMPLE_CHUNKS = 8  # ... drawn from at most 8 chunks chosen at random (a read of 8 chunks, not all)
_POOL_MAX = 2_000_000  # rows fetched per chunk of minibatch SVI steps (at most)
_MAX_DIM = 200  # a D x D Hessian per chunk: Newton's limit in point.py
_DTOL = 1e-10  # Newton's decrement test, as _optimize.newton
_LPD_BATCH = 8  # draws per step of the streamed log predictive density


class _LikelihoodOnly(Messenger):
    """Zero weight on every latent site: the log density of a chunk is its log-likelihood
    (observed sites and the program's own factors), with priors counted once, in ``G``."""

    def process_message(self, msg):
        if msg["type"] == "sample" and not msg["is_observed"]:
            msg["scale"] = 0.0


# ---------------------------------------------------------------------------------------------
# what runs on the workers

_WORKER_FNS: dict = {}  # (program token, kind) -> compiled function, one per worker process
# numpyro's handler stack is one global list: two threads tracing a program at once (the threaded
# scheduler, a worker with several threads) would interleave their handlers. The first call of a
# compiled function per argument shape (the one that traces) holds this lock; the rest run freely.
_TRACE_LOCK = threading.Lock()
_TRACED: set = set()


class ChunkProgram:
    """The per-chunk functions of one program, picklable: the program, its static data, the
    in-memory arrays and the layout of ``z``. The compiled functions are built on first use in
    each process and kept by ``token``."""

    def __init__(self, obj: Objective, fixed: dict):
        self.model, self.static = obj.model, obj.static
        self.fixed = {k: np.asarray(v) for k, v in fixed.items()}
        self.layout = tuple((s["name"], tuple(s["zshape"])) for s in obj.sites)
        self.who = f"fit({obj.name})"
        try:
            import cloudpickle

            blob = cloudpickle.dumps((self.model, self.static, self.fixed, self.layout))
            self.token = hashlib.sha1(blob).hexdigest()
        except Exception:  # an unpicklable program still runs on the threaded scheduler
            self.token = uuid.uuid4().hex

    def __dask_tokenize__(self):
        return self.token

    def _run(self, kind: str, z, arrays: dict):
        key = (self.token, kind)
        sig = (key, np.shape(z), tuple((k, np.shape(v), np.asarray(v).dtype.str) for k, v in sorted(arrays.items())))
        if sig in _TRACED:
            return _WORKER_FNS[key](z, arrays)
        with _TRACE_LOCK:
            if key not in _WORKER_FNS:
                _WORKER_FNS[key] = _build(self, kind)
            out = _WORKER_FNS[key](z, arrays)
            _TRACED.add(sig)
        return out

    def terms(self, block: dict, offset: int, z) -> dict:
        """The chunk's ``L_c``, gradient and Hessian at ``z``, its non-finite data (counts and
        the first global row per array) and what was read."""
        arrays, out = self._arrays(block, offset)
        d = len(z)
        if out["bad_rows"] > 0:
            return {**out, "value": np.nan, "grad": np.zeros(d), "hess": np.zeros((d, d)), "first_nonfinite_chunk": np.inf}
        v, g, h = (np.asarray(a) for a in self._run("terms", np.asarray(z, np.float64), arrays))
        first = np.inf if np.isfinite(v) else float(offset)
        return {**out, "value": v, "grad": g, "hess": h, "first_nonfinite_chunk": first}

    def meat(self, block: dict, offset: int, z) -> dict:
        """``sum_i s_i s_i^T`` of the chunk's per-observation scores (the sandwich's meat)."""
        arrays, out = self._arrays(block, offset)
        s = np.asarray(self._run("scores", np.asarray(z, np.float64), arrays))
        return {**out, "meat": s.T @ s}

    def lpd(self, data: dict, zs, n_draws: int):
        """Per-observation ``log (1/S) sum_s p(x_i | z_s)`` on one chunk, streamed over the
        draws ``_LPD_BATCH`` at a time (a (draws x rows) array of a large chunk would not fit)."""
        arrays = {k: _as_traced(v) for k, v in data.items() if k not in self.static}
        return np.asarray(self._run("lpd", zs, arrays)) - math.log(n_draws)

    def _arrays(self, block, offset):
        arrays, bad_rows, first, nbytes = dict(self.fixed), 0, np.inf, 0
        for k, v in block.items():
            v = np.asarray(v)
            nbytes += v.nbytes
            if v.dtype.kind == "f":
                ok = np.isfinite(v).reshape(len(v), -1).all(axis=1)
                if not ok.all():
                    bad_rows += int((~ok).sum())
                    first = min(first, float(offset + int(np.argmin(ok))))
            arrays[k] = _as_traced(v)
        rows = len(next(iter(block.values()))) if block else 0
        return arrays, {"rows": rows, "nbytes": nbytes, "bad_rows": bad_rows, "first_bad_row": first}


def _as_traced(v):
    """As ``_objective._split_data`` converts an array: floats to float64, booleans to int64."""
    v = np.asarray(v)
    if v.dtype.kind == "f":
        return v.astype(np.float64, copy=False)
    if v.dtype.kind == "b":
        return v.astype(np.int64)
    return v


def _build(prog: ChunkProgram, kind: str):
    shapes = [shape for _, shape in prog.layout]
    names = tuple(name for name, _ in prog.layout)
    unravel = _DictUnravel(_list_unravel(shapes, [np.float64] * len(shapes)), names)
    model, static = _LikelihoodOnly(prog.model), prog.static
    key = (prog.model, "partitioned", prog.token)

    def nll(z, arrays):
        return -_log_joint(model, static, unravel, key, z, arrays, priors=False, jacobian=False)

    def flat_pointwise(z, arrays):
        return jnp.concatenate([jnp.ravel(v) for v in _pointwise(prog.model, static, unravel, z, arrays).values()])

    if kind == "terms":
        # one compiled call: value, gradient and Hessian (reverse over reverse, as hessian_of)
        return jit(lambda z, a: (nll(z, a), jax.grad(nll)(z, a), hessian_of(lambda y: nll(y, a))(z)))
    if kind == "scores":
        return jit(jax.jacfwd(flat_pointwise))

    def lpd(zs, arrays):
        batch = jax.vmap(lambda z: flat_pointwise(z, arrays))
        n = zs.shape[0]
        pad = (-n) % _LPD_BATCH
        zp = jnp.concatenate([zs, jnp.repeat(zs[-1:], pad, axis=0)]).reshape(-1, _LPD_BATCH, zs.shape[1])
        keep = (jnp.arange(n + pad) < n).reshape(-1, _LPD_BATCH)

        def step(acc, zb_keep):
            zb, kb = zb_keep
            ll = jnp.where(kb[:, None], batch(zb), -jnp.inf)
            return jnp.logaddexp(acc, logsumexp(ll, axis=0)), None

        size = flat_pointwise(zs[0], arrays).shape[0]
        acc, _ = jax.lax.scan(step, jnp.full(size, -jnp.inf), (zp, keep))
        return acc

    return jit(lpd)


def _combine(*parts: dict) -> dict:
    """Partial results of several chunks: sums, and the first (smallest) global row or chunk
    offset where the ``first_*`` entries are concerned."""
    out = dict(parts[0])
    for p in parts[1:]:
        for k, v in p.items():
            out[k] = min(out[k], v) if k.startswith("first_") else out[k] + v
    return out


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
        tot = eng.part.reduce(eng.program.meat, np.asarray(z), combine=_combine)
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
        tot = self.part.reduce(self.program.terms, np.asarray(z, np.float64), combine=_combine)
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
            res, loglik, final, trail = _newton(evaluate, z0, float(opts["gtol"]), max_iter)
        info = dict(self.info)
        # the Newton decrement (in standard errors) at every point a pass evaluated
        info.update(optimizer="newton", start=start, decrements=[float(f"{t:.3g}") for t in trail])
        if final is not None:
            info["last_step"] = (
                f"taken without a verifying pass: the Newton decrement before it, {final:.2g}, "
                f"bounds the one after it by ({final:.2g} / (1 - {final:.2g}))^2 < {_DTOL:g}"
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
        return {**obj.arrays, **{key: jax.device_put(_as_traced(v)) for key, v in got.items()}}

    def log_predictive_density(self, template: Objective, zs):
        """A dask array of the per-observation log predictive density at the draws ``zs``,
        chunked like the rows (``template``: the program on the first rows, for the layout)."""
        from ..partitioned import map_rows

        rows0 = len(next(iter(template.arrays[k] for k in self.part.rows)))
        if template.n_obs != rows0:
            raise ValueError(
                "log_predictive_density: on partitioned data the program must observe one value "
                f"per row ({template.n_obs} values on {rows0} rows here); score it in memory"
            )
        fn = _LpdChunk(self.program, np.asarray(zs, np.float64))
        return map_rows(fn, {**self.part.fixed, **self.part.rows}, who="log_predictive_density")


class _LpdChunk:
    """Picklable per-chunk call of :meth:`ChunkProgram.lpd`."""

    def __init__(self, prog, zs):
        self.prog, self.zs = prog, zs

    def __call__(self, data):
        return self.prog.lpd(data, self.zs, len(self.zs))


def _global_terms(template: Objective, priors: bool, jacobian: bool):
    """``G`` (the data-free part: priors and the log-Jacobian) with its gradient and Hessian,
    compiled once per program: the log density with every observation weighted by 0."""
    key = ("partitioned_global", priors, jacobian)
    cache = template.fns["solvers"]
    if key not in cache:
        raw = template.fns["log_joint_raw"]

        def g(z, arrays):
            return -raw(z, arrays, None, 0.0, priors=priors, jacobian=jacobian)

        cache[key] = jit(lambda z, a: (g(z, a), jax.grad(g)(z, a), hessian_of(lambda y: g(y, a))(z)))
    return cache[key]


_eigen = jit(_scaled_eigen)
_tr_step = jit(_trust_region_step)


def _newton(evaluate, z0, gtol: float, max_iter: int):
    """Newton's method with a trust region in Marquardt's scaling (as ``_optimize.newton``), one
    ``evaluate`` (a pass over the rows: value, gradient, Hessian) per step.

    Stops at a Newton decrement ``lambda <= 1e-10`` (standard errors); or, one pass earlier,
    after a full Newton step from a point whose decrement bounds the next one below ``1e-10``
    (:func:`_next_decrement`): Newton's error is squared at each step near the optimum, and for
    a log-likelihood of N observations the constant shrinks like 1 / sqrt(N) (measured at
    N = 300,000: decrements 8.4, 0.11, 2.9e-5, 2.1e-12, a contraction of ~2.5e-3). Returns (OptResult, the log-likelihood at the last pass, the decrement before an
    unverified last step or None)."""
    z = np.asarray(z0, np.float64)
    f, g, h, loglik = evaluate(z)
    radius, it, evals, status, final, last, trail = None, 0, 1, 1, None, np.zeros_like(z), []
    while True:
        d, ev, v, c = (np.asarray(a) for a in _eigen(h, g))
        top = max(float(np.max(np.abs(ev))), 1e-300)
        pd, psd = ev[0] > 1e-12 * top, ev[0] > -1e-8 * top
        dec = float(np.sqrt(np.abs(np.sum(c**2 / ev)))) if pd else np.inf
        trail.append(dec)
        if not (np.isfinite(f) and np.all(np.isfinite(g)) and np.all(np.isfinite(h))):
            status = 3
            break
        if (pd and dec <= _DTOL) or (not pd and psd and np.max(np.abs(g)) <= gtol * max(1.0, abs(f))):
            status = 0
            break
        if it >= max_iter:
            status = 1
            break
        if radius is None:  # the whole Newton step first (see _optimize.newton)
            newton_len = float(np.linalg.norm(c / ev)) if pd else np.inf
            radius = max(100.0, 1.0001 * newton_len) if np.isfinite(newton_len) else 100.0
        p, step = (np.asarray(a) for a in _tr_step(d, ev, v, c, radius))
        step = float(step)
        pred = -(g @ p + 0.5 * p @ h @ p)
        if pd and step < radius and _next_decrement(trail) <= _DTOL:
            z, f, g, final, last, it, status = z + p, f - pred, g + h @ p, dec, p, it + 1, 0
            break
        f_new, g_new, h_new, ll_new = evaluate(z + p)
        it, evals = it + 1, evals + 1
        actual = f - f_new
        rho = actual / pred if pred > 0 else -np.inf
        unresolved = pred < 1e-12 * max(1.0, abs(f))
        ok = bool(np.isfinite(f_new) and np.all(np.isfinite(g_new)) and np.all(np.isfinite(h_new)) and pred > 0 and (rho > 1e-4 or unresolved))
        if not ok or (rho < 0.25 and not unresolved):
            radius = 0.25 * min(step, radius)
        elif rho > 0.75 and step > 0.99 * radius:
            radius = 2.0 * radius
        if ok:
            z, f, g, h, loglik, last = z + p, f_new, g_new, h_new, ll_new, p
        if radius < 1e-12:
            status = 2
            break
    res = OptResult(
        z=z, value=np.asarray(f), grad=np.asarray(g), hess=np.asarray(h), n_iter=np.asarray(it),
        grad_norm=np.asarray(float(np.max(np.abs(g)))), status=np.asarray(status), last_step=last,
        n_hess=np.asarray(evals),
    )
    return res, loglik, final, trail


def _next_decrement(trail) -> float:
    """A bound on the Newton decrement after a full Newton step from the last point of ``trail``
    (the decrements so far): ``(l / (1 - l))^2`` for a self-concordant objective, or ten times
    the quadratic contraction ``l_k / l_{k-1}^2`` seen so far (the largest) times ``l^2``."""
    dec = trail[-1]
    if not dec < 1e-2:
        return np.inf
    bound = (dec / (1.0 - dec)) ** 2
    rates = [b / a**2 for a, b in zip(trail[:-1], trail[1:]) if 0 < a < np.inf and b < a]
    if rates:
        bound = min(bound, 10.0 * max(rates) * dec**2)
    return bound


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


def head_objective(model, data: dict, rows: int = 1000):
    """An in-memory objective on the first ``rows`` rows of partitioned ``data`` (the layout of
    the program's parameters) and its :class:`Engine` for passes over all rows."""
    part = RowPartition(data, who="log_predictive_density")
    head = part.take(np.arange(min(rows, part.n_rows)))
    template = Objective(model, {**part.fixed, **head})
    fixed_arrays = {k: v for k, v in template.arrays.items() if k not in part.rows}
    return template, Engine(part, ChunkProgram(template, fixed_arrays), fixed_arrays, 0, 0)


def partitioned_log_predictive_density(fit, model, data: dict):
    """:func:`probmodels.compare.log_predictive_density` on partitioned ``data``: a dask array
    chunked like the rows, each chunk scored on the cluster at the fit's estimate or draws."""
    new, engine = head_objective(model, data)
    old = fit._result.objective
    if [s["name"] for s in new.sites] != [s["name"] for s in old.sites] or new.dim != old.dim:
        raise ValueError(
            "log_predictive_density: the new data changes the program's parameters "
            f"({[s['name'] for s in new.sites]} vs {[s['name'] for s in old.sites]}); "
            "parameters must not depend on the number of observations"
        )
    if fit.is_point:
        z = fit._result.zhat[None]
    else:
        if fit._result.zdraws is None:
            raise ValueError(f"log_predictive_density: the {fit.method} fit has no draws")
        z = fit._result.zdraws.reshape(-1, new.dim)
    return engine.log_predictive_density(new, z)
