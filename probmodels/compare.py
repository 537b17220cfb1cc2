"""Point estimates set against posteriors: ``compare(fits)``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .fit import HDI_PROB, Fit

__all__ = ["compare"]


def compare(fits: dict, prob: float = HDI_PROB) -> pd.DataFrame:
    """One table of every fit's estimates, one row per scalar parameter.

    Parameters
    ----------
    fits : dict
        label -> :class:`Fit` (e.g. ``{"MLE": mle, "MAP": map_, "NUTS": post}``), all of the same
        program.
    prob : float
        The interval probability (0.94, ArviZ's default).

    Returns
    -------
    pandas.DataFrame
        Columns are ``(label, quantity)``: ``estimate``, ``se (observed)`` / ``se (sandwich)``
        (point fits) or ``sd`` (posteriors), and the interval (``wald_3%``/``wald_97%`` for
        mle/map, ``hdi_3%``/``hdi_97%`` otherwise). When an MLE is among the fits, each posterior
        fit also gets ``shift_from_mle_sd`` (``(posterior mean - MLE) / posterior sd``) and
        ``mle_in_hdi``.

    Examples
    --------
    >>> probmodels.compare({"MLE": mle, "NUTS": post})  # doctest: +SKIP
    """
    if not isinstance(fits, dict) or not fits:
        raise TypeError("compare: give a non-empty dict {label: Fit}")
    for k, f in fits.items():
        if not isinstance(f, Fit):
            raise TypeError(f"compare: fits[{k!r}] is a {type(f).__name__}, not a probmodels Fit")
    labels = None
    for k, f in fits.items():
        if labels is None:
            labels, first = f.labels(), k
        elif f.labels() != labels:
            raise ValueError(
                f"compare: fits[{k!r}] has parameters {f.labels()} but fits[{first!r}] has {labels}; "
                "compare fits of the same program"
            )
    mle = next((f for f in fits.values() if f.method == "mle"), None)
    pct = (f"{100 * (1 - prob) / 2:g}%", f"{100 * (1 + prob) / 2:g}%")
    cols = {}
    for k, f in fits.items():
        est, se = f._flat(f.estimate), f._flat(f.stderr)
        lo, hi = f.interval(prob)
        cols[(k, "estimate")] = est
        if f.is_point:
            cols[(k, f"se ({f.diagnostics.get('stderr', 'observed')})")] = se
            cols[(k, f"wald_{pct[0]}")] = lo
            cols[(k, f"wald_{pct[1]}")] = hi
        else:
            cols[(k, "sd")] = se
            cols[(k, f"hdi_{pct[0]}")] = lo
            cols[(k, f"hdi_{pct[1]}")] = hi
            if mle is not None:
                m = mle._flat(mle.estimate)
                with np.errstate(divide="ignore", invalid="ignore"):
                    cols[(k, "shift_from_mle_sd")] = (est - m) / se
                cols[(k, "mle_in_hdi")] = (m >= lo) & (m <= hi)
    df = pd.DataFrame(cols, index=pd.Index(labels, name="param"))
    df.columns = pd.MultiIndex.from_tuples(df.columns, names=["fit", "quantity"])
    df.attrs["methods"] = {k: f.method for k, f in fits.items()}
    return df
