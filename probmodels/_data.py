"""Data at the boundary: pandas objects and numpy scalars turned into what the solvers take, once.

Every entry point that takes a program's data (``fit``, the report's split and figures,
``calibrate``) calls :func:`as_data` first, so a pandas ``DataFrame`` of inputs and a ``Series`` of
observations reach every solver, ``Predictive`` call and train/test split as numpy arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_data", "as_array", "first_index"]


def _is_pandas(v) -> bool:
    return type(v).__module__.split(".")[0] == "pandas" and hasattr(v, "to_numpy")


def as_array(v, where: str):
    """A pandas Series/DataFrame as a numpy array (booleans mixed with numbers are an error that
    says what to write); anything else unchanged."""
    if not _is_pandas(v):
        return v
    import pandas as pd

    if isinstance(v, pd.DataFrame):
        kinds = {c: v[c].dtype.kind for c in v.columns}
        bools = [c for c, k in kinds.items() if k == "b"]
        others = [c for c, k in kinds.items() if k != "b"]
        text = [c for c, k in kinds.items() if k not in "biuf"]
        if text:
            raise TypeError(
                f"{where} has non-numeric column(s) {[str(c) for c in text]}; encode them as "
                "numbers first (pd.get_dummies(..., dtype=float) or .cat.codes)"
            )
        if bools and others:
            raise TypeError(
                f"{where} mixes boolean column(s) {[str(c) for c in bools]} (what pd.get_dummies "
                "gives) with numeric ones; cast with .astype(float)"
            )
        return v.to_numpy(dtype=np.float64) if others and any(k == "f" for k in kinds.values()) else v.to_numpy()
    if isinstance(v, pd.Series):
        if v.dtype.kind not in "biuf":
            raise TypeError(
                f"{where} is a Series of dtype {v.dtype}; data must be numeric (encode "
                "categories with .cat.codes or pd.factorize)"
            )
        return v.to_numpy()
    return np.asarray(v)


def as_data(data, where: str = "fit"):
    """The program's data as a dict of numpy arrays and Python scalars.

    A pandas ``DataFrame`` is a dict of its columns (the program's arguments); in a dict, Series
    and DataFrames become numpy arrays; numpy integer scalars become Python ints (static sizes,
    as a Python int is: ``G = grp.max() + 1`` can be a shape).
    """
    if _is_pandas(data) and hasattr(data, "columns"):
        data = {str(c): data[c] for c in data.columns}
    if not isinstance(data, dict):
        return data
    out = {}
    for k, v in data.items():
        if isinstance(v, np.integer) or (isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iu"):
            v = int(v)
        elif isinstance(v, np.bool_):
            v = bool(v)
        else:
            v = as_array(v, f"{where}: data[{k!r}]")
        out[k] = v
    return out



def first_index(mask) -> str:
    """Where the first True of ``mask`` is, as people write it: ``7`` or ``(3, 1)`` (plain ints,
    not numpy's ``np.int64(7)``)."""
    mask = np.asarray(mask)
    if mask.ndim == 0:
        return "()"
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))
    return str(idx[0]) if len(idx) == 1 else str(idx)
