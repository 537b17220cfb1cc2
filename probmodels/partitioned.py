"""Data partitioned by rows: ``dask.array`` values in a program's ``data``.

Every per-observation array is a ``dask.array.Array`` chunked along its first axis (rows), all
with the same row chunks; the other values stay in memory. :class:`RowPartition` checks that
layout and runs work chunk by chunk where dask is set to compute (the local threaded scheduler,
or the active ``distributed.Client``): :meth:`RowPartition.reduce` sums a per-chunk function's
results on the cluster (only the sums come back), :meth:`RowPartition.take` gathers chosen rows,
and :func:`map_rows` maps a per-chunk function to a dask array chunked like the rows (for
``predict`` and ``log_predictive_density``).

dask is imported only here and only when data hold dask arrays: the core install does not need
it (``pip install 'probmodels[dask]'`` brings dask[array], distributed and zarr).
"""

from __future__ import annotations

import sys
import threading
from typing import Callable

import numpy as np

__all__ = ["is_partitioned", "RowPartition", "map_rows", "map_row_blocks", "TRACE_LOCK"]

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
