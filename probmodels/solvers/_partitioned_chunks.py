"""What runs on the workers for data partitioned by rows: the per-chunk functions of a program.

:class:`ChunkProgram` carries a program, its static data, the in-memory arrays and the layout of
``z`` to the workers (it pickles); each worker process compiles its functions on first use, once
per program, kind and chunk shape, and keeps them. The kinds: ``terms`` (a chunk's negative
log-likelihood with its gradient and Hessian, for Newton's passes), ``scores`` (per-observation
scores, for the sandwich's meat), ``lpd`` (the log predictive density streamed over draws) and
``pointwise`` (``log p(x_i | z_s)`` per draw and row).
"""

from __future__ import annotations

import hashlib
import math
import uuid

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from numpyro.primitives import Messenger

from .._config import jit
from ..partitioned import TRACE_LOCK
from ._objective import Objective, _DictUnravel, _list_unravel, _log_joint, _pointwise
from ._optimize import hessian_of

__all__ = ["ChunkProgram", "ScoreChunk", "as_traced", "combine"]

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
# the first call of a compiled function per argument shape (the one that traces) holds
# partitioned.TRACE_LOCK (numpyro's handler stack is one global list); the rest run freely
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

    def _run(self, kind: str, z, *args):
        key = (self.token, kind)
        sig = (key, np.shape(z), tuple((k, np.shape(v), np.asarray(v).dtype.str) for a in args for k, v in sorted(a.items())))
        if sig in _TRACED:
            return _WORKER_FNS[key](z, *args)
        with TRACE_LOCK:
            if key not in _WORKER_FNS:
                _WORKER_FNS[key] = _build(self, kind)
            out = _WORKER_FNS[key](z, *args)
            _TRACED.add(sig)
        return out

    def terms(self, block: dict, offset: int, z) -> dict:
        """The chunk's ``L_c``, gradient and Hessian at ``z``, its non-finite data (the count of
        rows and the first global one) and what was read. The chunk's arrays go to the compiled
        function as stored (float32 stays float32 until inside it, where the conversion to
        float64 and the finiteness check fuse with the first use: no float64 copy is made)."""
        rows = {k: np.asarray(v) for k, v in block.items()}
        n = len(next(iter(rows.values()))) if rows else 0
        out = {"rows": n, "nbytes": int(sum(v.nbytes for v in rows.values()))}
        v, g, h, bad, first = (np.asarray(a) for a in self._run("terms", np.asarray(z, np.float64), self.fixed, rows))
        if int(bad) > 0:
            d = len(z)
            return {**out, "bad_rows": int(bad), "first_bad_row": float(offset + int(first)), "value": np.nan,
                    "grad": np.zeros(d), "hess": np.zeros((d, d)), "first_nonfinite_chunk": np.inf}
        first = np.inf if np.isfinite(v) else float(offset)
        return {**out, "bad_rows": 0, "first_bad_row": np.inf, "value": v, "grad": g, "hess": h, "first_nonfinite_chunk": first}

    def meat(self, block: dict, offset: int, z) -> dict:
        """``sum_i s_i s_i^T`` of the chunk's per-observation scores (the sandwich's meat)."""
        arrays, out = self._arrays(block, offset)
        s = np.asarray(self._run("scores", np.asarray(z, np.float64), arrays))
        return {**out, "meat": s.T @ s}

    def lpd(self, data: dict, zs, n_draws: int):
        """Per-observation ``log (1/S) sum_s p(x_i | z_s)`` on one chunk, streamed over the
        draws ``_LPD_BATCH`` at a time (a (draws x rows) array of a large chunk would not fit)."""
        arrays = {k: as_traced(v) for k, v in data.items() if k not in self.static}
        return np.asarray(self._run("lpd", zs, arrays)) - math.log(n_draws)

    def pointwise(self, data: dict, zs):
        """``log p(x_i | z_s)``, ``(draws, values)`` on one chunk, every observed site's values
        flattened in program order (as ``Fit.pointwise_log_likelihood``)."""
        arrays = {k: as_traced(v) for k, v in data.items() if k not in self.static}
        return np.asarray(self._run("pointwise", zs, arrays))

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
            arrays[k] = as_traced(v)
        rows = len(next(iter(block.values()))) if block else 0
        return arrays, {"rows": rows, "nbytes": nbytes, "bad_rows": bad_rows, "first_bad_row": first}


def as_traced(v):
    """As ``_objective._split_data`` converts an array: floats to float64, booleans to int64."""
    v = np.asarray(v)
    if v.dtype.kind == "f":
        return v.astype(np.float64, copy=False)
    if v.dtype.kind == "b":
        return v.astype(np.int64)
    return v


def _traced_dtype(v):
    """:func:`as_traced` inside a compiled function."""
    if jnp.issubdtype(v.dtype, jnp.floating):
        return v.astype(jnp.float64)
    if v.dtype == jnp.bool_:
        return v.astype(jnp.int64)
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
        # one compiled call: value, gradient and Hessian (reverse over reverse, as hessian_of),
        # and the rows with non-finite values (their count, the first one)
        def terms(z, fixed, rows):
            a = {**fixed, **{k: _traced_dtype(v) for k, v in rows.items()}}
            ok = jnp.ones(next(iter(rows.values())).shape[0], bool)
            for v in rows.values():
                if jnp.issubdtype(v.dtype, jnp.floating):
                    ok = ok & jnp.all(jnp.isfinite(v).reshape(v.shape[0], -1), axis=1)
            return nll(z, a), jax.grad(nll)(z, a), hessian_of(lambda y: nll(y, a))(z), jnp.sum(~ok), jnp.argmin(ok)

        return jit(terms)
    if kind == "scores":
        return jit(jax.jacfwd(flat_pointwise))
    if kind == "pointwise":
        return jit(jax.vmap(flat_pointwise, in_axes=(0, None)))

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


def combine(*parts: dict) -> dict:
    """Partial results of several chunks: sums, and the first (smallest) global row or chunk
    offset where the ``first_*`` entries are concerned."""
    out = dict(parts[0])
    for p in parts[1:]:
        for k, v in p.items():
            out[k] = min(out[k], v) if k.startswith("first_") else out[k] + v
    return out


class ScoreChunk:
    """Picklable per-chunk call of :meth:`ChunkProgram.lpd` (``kind="lpd"``) or
    :meth:`ChunkProgram.pointwise` (``kind="pointwise"``) at the draws ``zs``."""

    def __init__(self, prog: ChunkProgram, zs, kind: str):
        self.prog, self.zs, self.kind = prog, np.asarray(zs, np.float64), kind

    def __call__(self, data):
        if self.kind == "lpd":
            return self.prog.lpd(data, self.zs, len(self.zs))
        return self.prog.pointwise(data, self.zs)
