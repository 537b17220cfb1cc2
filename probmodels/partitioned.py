"""Data partitioned by rows: ``dask.array`` values in a program's ``data``.

Every per-observation array is a ``dask.array.Array`` chunked along its first axis (rows), all
with the same row chunks; the other values stay in memory. :class:`RowPartition` checks that
layout and runs work chunk by chunk where dask is set to compute (the local threaded scheduler,
or the active ``distributed.Client``): :meth:`RowPartition.reduce` sums a per-chunk function's
results on the cluster (only the sums come back), :meth:`RowPartition.take` gathers chosen rows,
and :func:`map_rows` maps a per-chunk function to a dask array chunked like the rows (for
``log_predictive_density`` and ``Fit.pointwise_log_likelihood``). :func:`predict_rows` is
``Fit.predict`` on such data: a :class:`RowsPrediction` of dask arrays chunked like the rows,
each chunk run through the program's compiled predictive functions (``predict._functions``),
its noise seeded by ``(seed, chunk index)`` (:func:`chunk_seed`).

Per-chunk work assumes rows that are independent given the parameters (a row's prediction or
log-likelihood depends on that row alone), as any split into chunks does; the last, shorter
chunk is padded with copies of its last row so that every chunk runs one compiled shape.

dask is imported only here and only when data hold dask arrays: the core install does not need
it (``pip install 'probmodels[dask]'`` brings dask[array], distributed and zarr).
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import pandas as pd

from .predict import Prediction, _simulate

__all__ = ["is_partitioned", "RowPartition", "map_rows", "map_row_blocks", "TRACE_LOCK", "RowsPrediction", "predict_rows", "chunk_seed"]

_FANIN = 8  # partial sums combined per reduction task (dask's own split_every default)
# numpyro's handler stack is one global list: two threads tracing a program at once (the threaded
# scheduler, a worker with several threads) would interleave their handlers. The first call of a
# compiled function per argument shape (the one that traces) holds this lock; the rest run freely.
TRACE_LOCK = threading.Lock()


def _dask_array_type():
    """``dask.array.Array`` if dask.array is imported (no dask array can exist otherwise)."""
    mod = sys.modules.get("dask.array")
    return None if mod is None else mod.Array


def is_partitioned(data) -> bool:
    """Whether ``data`` (a dict) holds any ``dask.array.Array``."""
    kind = _dask_array_type()
    return kind is not None and isinstance(data, dict) and any(isinstance(v, kind) for v in data.values())


class RowPartition:
    """The row layout of a program's data with dask arrays in it.

    Parameters
    ----------
    data : dict
        The program's keyword arguments; the dask arrays are the per-observation ones.
    who : str
        Names the caller in error messages (``fit(model)``).

    Attributes
    ----------
    rows : dict
        name -> dask array, each with one chunk along every axis but the first.
    fixed : dict
        The other (in-memory) values.
    chunks : tuple of int
        Rows per chunk; ``offsets`` the global index of each chunk's first row.
    n_rows : int
    nbytes : int
        Bytes of one pass over the rows, in their stored dtypes.
    """

    def __init__(self, data: dict, who: str = "fit"):
        kind = _dask_array_type()
        self.rows = {k: v for k, v in data.items() if isinstance(v, kind)}
        self.fixed = {k: v for k, v in data.items() if k not in self.rows}
        chunks = {}
        for k, v in self.rows.items():
            if v.ndim == 0:
                raise ValueError(f"{who}: data[{k!r}] is a 0-d dask array; give a scalar in memory instead")
            if v.dtype.kind not in "biuf":
                raise TypeError(f"{who}: data[{k!r}] has dtype {v.dtype}; data arrays must be numeric")
            if any(np.isnan(c) for c in v.chunks[0]):
                raise ValueError(
                    f"{who}: data[{k!r}] has chunks of unknown length; call .compute_chunk_sizes() first"
                )
            chunks[k] = tuple(int(c) for c in v.chunks[0])
        if len(set(chunks.values())) > 1:
            detail = "; ".join(f"{k}: {len(c)} chunks {_brief(c)}" for k, c in chunks.items())
            first = next(iter(chunks))
            raise ValueError(
                f"{who}: the dask arrays in data are chunked differently along their rows ({detail}); "
                f"every per-observation array must share the same row chunks, e.g. "
                f"v.rechunk({{0: data[{first!r}].chunks[0]}}) for each of them"
            )
        self.chunks = next(iter(chunks.values()))
        self.n_rows = int(sum(self.chunks))
        self.offsets = np.concatenate([[0], np.cumsum(self.chunks)[:-1]]).astype(np.int64)
        for k, v in self.fixed.items():
            if self.n_rows > 1 and np.ndim(v) and np.shape(v)[0] == self.n_rows and not isinstance(v, (str, bytes)):
                raise ValueError(
                    f"{who}: data[{k!r}] is in memory with {self.n_rows} rows, as many as the dask "
                    "arrays: give every per-observation array as a dask array with the same row "
                    f"chunks (dask.array.from_array(v, chunks=({{0: data[{next(iter(self.rows))!r}].chunks[0]}})))"
                )
        # one chunk across every other axis, so that a chunk of rows is one block per array
        self.rows = {
            k: (v.rechunk({i: -1 for i in range(1, v.ndim)}) if v.ndim > 1 and any(len(c) > 1 for c in v.chunks[1:]) else v)
            for k, v in self.rows.items()
        }
        self.nbytes = int(sum(v.nbytes for v in self.rows.values()))
        self._blocks = None

    def blocks(self) -> list:
        """Per chunk: ``{name: delayed block}`` (the graph that reads it, e.g. from zarr)."""
        if self._blocks is None:
            per = {k: v.to_delayed().ravel() for k, v in self.rows.items()}
            self._blocks = [{k: per[k][i] for k in per} for i in range(len(self.chunks))]
        return self._blocks

    def reduce(self, fn: Callable, *args, combine: Callable = None):
        """``combine`` of ``fn(block, offset, *args)`` over every chunk, summed on the cluster
        in a tree of ``_FANIN``-way partial sums: only the total comes back. ``fn`` returns a dict
        of arrays (summed elementwise unless ``combine`` says otherwise)."""
        import dask

        combine = combine or _sum_dicts
        fn_d = dask.delayed(fn, pure=True)
        parts = [fn_d(b, int(o), *args) for b, o in zip(self.blocks(), self.offsets)]
        comb = dask.delayed(combine, pure=True)
        while len(parts) > 1:
            parts = [comb(*parts[i : i + _FANIN]) if len(parts[i : i + _FANIN]) > 1 else parts[i] for i in range(0, len(parts), _FANIN)]
        return dask.compute(parts[0])[0]

    def take(self, idx) -> dict:
        """The rows ``idx`` (global indices, any order, repeats allowed) of every dask array, as
        numpy arrays: each chunk that holds some of them sends only those rows."""
        import dask

        idx = np.asarray(idx, np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_rows):
            raise IndexError(f"row indices must lie in [0, {self.n_rows})")
        uniq, inverse = np.unique(idx, return_inverse=True)
        which = np.searchsorted(self.offsets, uniq, side="right") - 1
        take = dask.delayed(_take_rows, pure=True)
        parts = [take(self.blocks()[c], uniq[which == c] - self.offsets[c]) for c in np.unique(which)]
        got = dask.compute(*parts)
        out = {k: np.concatenate([g[k] for g in got]) if got else np.asarray(self.rows[k][:0]) for k in self.rows}
        return {k: v[inverse] for k, v in out.items()}


def _take_rows(block: dict, local) -> dict:
    return {k: np.asarray(v)[local] for k, v in block.items()}


def _sum_dicts(*parts: dict) -> dict:
    out = dict(parts[0])
    for p in parts[1:]:
        for k, v in p.items():
            out[k] = out[k] + v
    return out


def _brief(chunks) -> str:
    return str(chunks) if len(chunks) <= 4 else f"({chunks[0]}, {chunks[1]}, ..., {chunks[-1]})"


def map_rows(fn: Callable, data: dict, *, per_row: tuple = (), dtype=np.float64, lead: tuple = (), pad: bool = False, who: str = "map_rows"):
    """``fn`` applied to each chunk of rows of ``data``, as a dask array chunked like the rows.

    Parameters
    ----------
    fn : callable
        ``fn(chunk_data) -> array of shape (*lead, rows in the chunk, *per_row)``, where
        ``chunk_data`` is ``data`` with every dask array replaced by its chunk (numpy) and the
        in-memory values as they are. It runs on the workers: it must pickle.
    data : dict
        The program's data with dask arrays chunked by rows (see :class:`RowPartition`).
    per_row : tuple
        The shape of ``fn``'s output per row.
    dtype : numpy dtype
        The output's dtype.
    lead : tuple
        The shape of ``fn``'s output before its row axis (e.g. draws).
    pad : bool
        Pad every shorter chunk (the last) to the largest chunk's rows with copies of its last
        row, and drop those rows from ``fn``'s output: a compiled ``fn`` then sees one shape.
        Only for ``fn`` whose rows are independent (a row's output depends on that row alone).

    Returns
    -------
    dask.array.Array
        Shape ``(*lead, n_rows, *per_row)``, with the rows' chunks; nothing is computed yet.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> data = {"u": da.ones((10, 2), chunks=(4, 2)), "k": 3.0}
    >>> map_rows(lambda d: d["u"].sum(axis=1) * d["k"], data).compute()[:2]
    array([6., 6.])
    """
    part = RowPartition(data, who=who)
    return map_row_blocks(_Single(fn), part, {"out": (tuple(lead), tuple(per_row), dtype)}, pad=pad)["out"]


class _Single:
    """``fn(chunk_data)`` as a :func:`map_row_blocks` function of one output."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, chunk, index):
        return {"out": self.fn(chunk)}


def map_row_blocks(fn: Callable, part: RowPartition, specs: dict, *, pad: bool = True) -> dict:
    """Several outputs of one per-chunk function, each a dask array chunked like the rows.

    ``fn(chunk_data, chunk_index) -> {name: array}`` runs once per chunk (a task; the outputs
    are its parts). ``specs``: ``name -> (lead, per_row, dtype)``, the output's shape being
    ``(*lead, rows, *per_row)``. ``pad``: as :func:`map_rows`. Returns ``{name: dask array}``,
    nothing computed.
    """
    import dask
    import dask.array as da

    size = max(part.chunks)
    axes = {name: len(spec[0]) for name, spec in specs.items()}
    # keys unique to this call (fn may hold draws too large to hash into a token)
    call = dask.delayed(_call_chunk, pure=False)
    pieces = {name: [] for name in specs}
    for i, (b, n) in enumerate(zip(part.blocks(), part.chunks)):
        got = call(fn, part.fixed, b, i, size if pad else n, axes)
        for name, (lead, per_row, dtype) in specs.items():
            pieces[name].append(da.from_delayed(got[name], shape=(*lead, n, *per_row), dtype=dtype))
    return {name: da.concatenate(p, axis=axes[name]) for name, p in pieces.items()}


def _call_chunk(fn, fixed, block, index, size, axes):
    arrays = {k: np.asarray(v) for k, v in block.items()}
    n = len(next(iter(arrays.values())))
    if 0 < n < size:  # the last row repeated: every chunk has one shape
        arrays = {k: np.concatenate([v, np.repeat(v[-1:], size - n, axis=0)]) for k, v in arrays.items()}
    out = fn({**fixed, **arrays}, index)
    return {k: np.asarray(v)[(slice(None),) * axes[k] + (slice(0, n),)] for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# predictions on partitioned rows (Fit.predict)


def chunk_seed(seed: int, index: int) -> np.uint32:
    """The seed of chunk ``index``'s simulations: a hash of ``(seed, index)`` (numpy's
    ``SeedSequence``), so that each chunk's draws depend on the chunk alone, not on the scheduler
    or the order in which chunks run."""
    return np.uint32(np.random.SeedSequence([int(seed) % 2**32, int(index)]).generate_state(1)[0])


_CALLED: set = set()  # signatures of compiled calls made (traced) in this process


def _call_once_locked(sig, f, *args, **kw):
    """``f(*args, **kw)``, the first call per ``sig`` (the one that traces) under TRACE_LOCK."""
    if sig in _CALLED:
        return f(*args, **kw)
    with TRACE_LOCK:
        out = f(*args, **kw)
        _CALLED.add(sig)
    return out


@dataclass
class _PredictChunk:
    """One chunk's predictions (picklable): the program's compiled predictive functions
    (:func:`probmodels.predict._functions`, built once per worker process) on the chunk's rows.

    ``mode``: ``"shared"`` (the plug-in predictive at ``values``, ``n`` draws), ``"per_draw"``
    (one simulation per draw in ``values``) or ``"delta"`` (the Wald band at ``theta`` with
    ``cov``, quantile ``zq``). Outputs: ``x:site`` and ``loc:site`` shaped ``lead + (rows, ...)``
    (``loc`` without ``lead`` for ``shared``), ``wald:site:i`` for the band's four arrays.
    """

    model: Callable
    names: list
    shapes: list
    mode: str
    seed: int = 0
    values: dict = None
    n: int = None
    lead: tuple = ()
    theta: np.ndarray = None
    cov: np.ndarray = None
    zq: float = None

    def functions(self, chunk: dict):
        from .predict import _functions
        from .solvers._objective import split_data

        static, arrays = split_data(self.model, chunk)
        return _functions(self.model, static, self.names, self.shapes), arrays

    def __call__(self, chunk: dict, index: int) -> dict:
        fns, arrays = self.functions(chunk)
        sig = (self.mode, id(fns), self.n, tuple((k, np.shape(v), str(v.dtype)) for k, v in sorted(arrays.items())))
        if self.mode == "delta":
            band = _call_once_locked(sig, fns["delta"], self.theta, self.cov, self.zq, arrays)
            return {f"wald:{k}:{i}": np.asarray(a) for k, v in band.items() for i, a in enumerate(v)}
        seed = chunk_seed(self.seed, index)
        if self.mode == "shared":
            x, loc = _call_once_locked(sig, _simulate, fns, "shared", self.values, seed, arrays, n=self.n)
        else:
            x, loc = _call_once_locked(sig, _simulate, fns, "per_draw", self.values, seed, arrays)
            loc = {k: np.asarray(v).reshape(self.lead + np.shape(v)[1:]) for k, v in loc.items()}
        out = {f"x:{k}": np.asarray(v).reshape(self.lead + np.shape(v)[1:]) for k, v in x.items()}
        return {**out, **{f"loc:{k}": np.asarray(v) for k, v in loc.items()}}

    def shapes_of(self, fns, shaped: dict):
        """The outputs' shapes for one chunk of ``shaped`` (``jax.ShapeDtypeStruct`` rows), from
        the program's trace alone (nothing is computed or read)."""
        import jax

        with TRACE_LOCK:
            if self.mode == "delta":
                return jax.eval_shape(lambda a: fns["delta"](self.theta, self.cov, self.zq, a), shaped)
            if self.mode == "shared":
                return jax.eval_shape(lambda a: _simulate(fns, "shared", self.values, np.uint32(0), a, n=self.n), shaped)
            return jax.eval_shape(lambda a: _simulate(fns, "per_draw", self.values, np.uint32(0), a), shaped)


def predict_rows(fit, data: dict, *, draws=None, seed=0, parameter_uncertainty=False, where="predict"):
    """:func:`probmodels.predict.predict` on partitioned ``data``: a :class:`RowsPrediction`
    whose arrays are dask arrays chunked like the rows (the draws' axes first), computed chunk
    by chunk where dask computes, with one compiled function for every chunk (the last, shorter
    one padded) and each chunk's noise seeded by ``(seed, chunk index)``."""
    import dask.array as da
    import jax

    from . import predict as pr
    from .solvers._objective import split_data

    part = RowPartition(data, who=where)
    size = max(part.chunks)
    names = [s["name"] for s in fit.parameter_sites]
    shapes = [tuple(s["shape"]) for s in fit.parameter_sites]
    one_row = {k: np.zeros((1,) + v.shape[1:], v.dtype) for k, v in part.rows.items()}
    static, arrays = split_data(fit.model, {**part.fixed, **one_row})
    shaped = {k: jax.ShapeDtypeStruct((size,) + tuple(v.shape[1:]), v.dtype) if k in part.rows else v for k, v in arrays.items()}
    fns = pr._fit_functions(fit, static)
    wald = None
    if fit.is_point and not parameter_uncertainty:
        kind, n = "plug-in", pr.PLUG_IN_DRAWS if draws is None else pr._count(draws, where)
        est = {k: np.asarray(fit.estimate[k]) for k in names}
        lead = (1, n)
        job = _PredictChunk(fit.model, names, shapes, "shared", seed, est, n, lead)
    else:
        kind = "posterior"
        if fit.is_point:
            kind = "plug-in + parameter uncertainty"
            pr._wald(fit, fns, names, shaped, where)  # (its checks: the fit has standard errors)
            theta = np.concatenate([np.ravel(np.asarray(fit.estimate[k])) for k in names])
            # (zq = 1 for the shapes; each probability's band gets its own)
            delta = _PredictChunk(fit.model, names, shapes, "delta", theta=theta, cov=np.asarray(fit.point_cov), zq=1.0)
            wald = _RowsBand(delta, part, fns, shaped, size)
        elif fit.draws is None:
            raise ValueError(f"{where}: the {fit.method} fit has no draws (see its warnings)")
        values, lead = pr._thin(*pr._flat_draws(fit, names), draws, where)
        job = _PredictChunk(fit.model, names, shapes, "per_draw", seed, values, None, lead)
    x_shape, loc_shape = job.shapes_of(fns, shaped)
    order = list(fns["order"])
    if not order:
        raise ValueError(f"{where}: the program has no observation site to predict")
    specs = {}
    for k in order:
        _per_row_check(k, x_shape[k].shape[1:], size, where)
        specs[f"x:{k}"] = (lead, tuple(x_shape[k].shape[2:]), x_shape[k].dtype)
        axis = 0 if job.mode == "shared" else 1  # the rows' axis of the location
        _per_row_check(k, loc_shape[k].shape[axis:], size, where)
        specs[f"loc:{k}"] = (() if axis == 0 else lead, tuple(loc_shape[k].shape[axis + 1 :]), loc_shape[k].dtype)
    out = map_row_blocks(job, part, specs, pad=True)
    x = {k: out[f"x:{k}"] for k in order}
    loc = {k: out[f"loc:{k}"] for k in order}
    if job.mode == "shared":  # the same at every draw, as in memory (a view, nothing copied)
        loc = {k: da.broadcast_to(v[None, None], lead + v.shape) for k, v in loc.items()}
    inputs = {**{k: np.asarray(v) for k, v in arrays.items() if k not in part.rows}, **part.rows}
    return RowsPrediction(fit.method, kind, tuple(order), inputs, x, loc, wald, part.chunks)


def _per_row_check(site, shape, size, where):
    if not shape or shape[0] != size:
        raise ValueError(
            f"{where}: observation site {site!r} has shape {tuple(shape)} on a chunk of {size} "
            "rows; on partitioned data every observation site must hold one value per row (rows "
            "first); predict it in memory"
        )


class _RowsBand:
    """prob -> ``{site: (mean, se, low, high)}``, the Wald band as dask arrays chunked like the
    rows (one compiled call per chunk and probability)."""

    def __init__(self, job: _PredictChunk, part: RowPartition, fns, shaped: dict, size: int):
        self.job, self.part = job, part
        band = job.shapes_of(fns, shaped)
        self.specs = {}
        for k, arrays in band.items():
            for i, a in enumerate(arrays):
                _per_row_check(k, a.shape, size, "predict")
                self.specs[f"wald:{k}:{i}"] = ((), tuple(a.shape[1:]), a.dtype)
        self.sites = list(band)

    def __call__(self, prob: float) -> dict:
        from scipy.special import ndtri

        job = replace(self.job, zq=float(ndtri(0.5 + prob / 2)))
        out = map_row_blocks(job, self.part, self.specs, pad=True)
        return {k: tuple(out[f"wald:{k}:{i}"] for i in range(4)) for k in self.sites}


@dataclass(frozen=True)
class RowsPrediction(Prediction):
    """A :class:`probmodels.predict.Prediction` on partitioned rows: ``draws`` and ``location``
    are dask arrays, ``(chains, draws, rows, ...)`` chunked like the rows, computed when asked
    for (``.compute()``, ``np.asarray``); ``summary`` is computed chunk by chunk (each chunk's
    quantiles over the draws) and returns a pandas DataFrame of every row; ``to_arviz`` loads
    every draw into memory."""

    _chunks: tuple = field(default=(), repr=False)

    def __getitem__(self, site: str) -> "RowsPrediction":
        one = super().__getitem__(site)
        return replace(self, sites=one.sites, _draws=one._draws, _location=one._location)

    def summary(self, prob: float = 0.9) -> pd.DataFrame:
        import dask

        if not 0 < prob < 1:
            raise ValueError(f"Prediction.summary: prob must be in (0, 1), got {prob}")
        band = None if self._wald is None else self._wald(prob)
        offsets = np.concatenate([[0], np.cumsum(self._chunks)[:-1]]).astype(int)
        tasks = []
        for off, n in zip(offsets, self._chunks):
            rows = slice(int(off), int(off + n))
            draws = {k: v[:, :, rows] for k, v in self._draws.items()}
            loc = {k: v[:, :, rows] for k, v in self._location.items()}
            wald = None if band is None else {k: tuple(a[rows] for a in band[k]) for k in self.sites}
            tasks.append(dask.delayed(_chunk_summary, pure=False)(self.method, self.kind, self.sites, draws, loc, wald, prob, int(off)))
        parts = dask.compute(*tasks)
        frames = {}
        for site in self.sites:
            df = pd.concat([p[site] for p in parts])
            df.attrs.update(method=self.method, kind=self.kind, prob=prob)
            frames[site] = df
        if len(frames) == 1:
            return next(iter(frames.values()))
        return pd.concat(frames, names=["site"])


def _chunk_summary(method, kind, sites, draws, loc, wald, prob, offset) -> dict:
    """site -> the summary of one chunk's rows (numbered from ``offset``)."""
    one = Prediction(method, kind, tuple(sites), {}, draws, loc, None)
    out = {}
    for site in sites:
        df = one._site_summary(site, prob, wald)
        if isinstance(df.index, pd.MultiIndex):  # (row, element...): the rows renumbered
            df.index = df.index.set_levels(df.index.levels[0] + offset, level=0)
        else:
            df.index = pd.RangeIndex(offset, offset + len(df), name="row")
        out[site] = df
    return out
