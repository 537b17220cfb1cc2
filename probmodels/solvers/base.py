"""The contract every method follows: a :class:`Solver` (a NamedTuple of pure functions and the
facts the layers above ask: label, kind, defaults), and a :class:`Finding` (a warning with a
category).

In the style of blackjax's ``SamplingAlgorithm`` and optax's ``GradientTransformation``: a
method is data, not a class hierarchy. Each solver module ends with its ``SOLVER`` (point.py with
two, ``MLE`` and ``MAP``); :data:`probmodels.solvers.REGISTRY` collects them, and ``fit``,
``compare``, ``report``, the CLI and ``calibrate`` read labels, kinds and defaults from it, never
from literals. A new method is one module and one registry entry.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

import numpy as np

__all__ = [
    "Solver",
    "SimFit",
    "Finding",
    "KINDS",
    "CATEGORIES",
    "SEPARATION",
    "EXISTENCE",
    "BOUNDARY",
    "IDENTIFICATION",
    "CONVERGENCE",
    "DIVERGENCES",
    "RHAT",
    "ESS",
    "APPROXIMATION",
    "OTHER",
    "category_of",
    "thin",
]

KINDS = ("point", "approximation", "sampler")


class Solver(NamedTuple):
    """One inference method.

    Attributes
    ----------
    name : str
        The ``method`` string of :func:`probmodels.fit`.
    label : str
        Its name in tables and reports (``"MLE"``, ``"NUTS"``).
    kind : {"point", "approximation", "sampler"}
        ``point``: a mode with Wald standard errors (``.draws`` from its Gaussian approximation);
        ``approximation``: draws from an approximate posterior (graded by PSIS); ``sampler``:
        draws from the posterior itself (MCMC, with r-hat and ESS).
    defaults : Mapping
        Every option with its default; an option not here is an error.
    solve : callable
        ``solve(objective, options) -> SolverResult``.
    batched : callable, optional
        ``batched(objective, observed, xs, seeds, options, n_draws) -> list[SimFit] or None``:
        the fits of many data sets ``xs`` of the observation ``observed`` in one compiled call,
        for :func:`probmodels.calibrate`, with the same checks as ``solve`` (one definition of
        "converged"); None where this program cannot be batched (the caller then fits one data
        set after another).
    quick : Mapping
        Options of a short preview run (``report(quick=True)``).
    report_default : bool
        Whether ``report`` and the CLI fit it when no methods are named (an established method;
        a newer one is fitted when asked for, ``--methods ...,pathfinder``).
    """

    name: str
    label: str
    kind: str
    defaults: Mapping
    solve: Callable
    batched: Callable | None = None
    quick: Mapping = {}
    report_default: bool = True


class SimFit(NamedTuple):
    """A batched fit of one simulated data set, flat in site order (``Fit.labels()``)."""

    estimate: np.ndarray
    stderr: np.ndarray
    draws: np.ndarray | None  # (L, P) thinned posterior draws; None for point fits
    converged: bool


def thin(draws: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws spread evenly over the leading (flattened chains x draws) axis."""
    idx = np.linspace(0, draws.shape[0] - 1, n).round().astype(int)
    return draws[idx]


# ---------------------------------------------------------------------------------------------
# findings

SEPARATION = "perfect separation"
EXISTENCE = "MLE or MAP does not exist"
BOUNDARY = "estimate on the boundary"
IDENTIFICATION = "unidentified parameters"
CONVERGENCE = "non-convergence"
DIVERGENCES = "NUTS divergences"
RHAT = "r-hat"
ESS = "effective sample size"
APPROXIMATION = "approximation quality (Pareto k)"
OTHER = "other"
#: the categories in the order a report lists them (``OTHER`` last)
CATEGORIES = (SEPARATION, EXISTENCE, BOUNDARY, IDENTIFICATION, CONVERGENCE, DIVERGENCES, RHAT, ESS, APPROXIMATION, OTHER)


class Finding(str):
    """A warning on a fit: its text (for people) and its ``category`` (for code).

    A ``Finding`` is a ``str`` (its text), so ``diagnostics["warnings"]`` stays a list of strings;
    the report groups by ``category``, never by the wording, which is free to improve.

    Examples
    --------
    >>> w = Finding(RHAT, "r-hat is 1.05 (> 1.01): the chains disagree")
    >>> w.category, w.startswith("r-hat")
    ('r-hat', True)
    """

    def __new__(cls, category: str, text: str):
        if category not in CATEGORIES:
            raise ValueError(f"Finding: unknown category {category!r}; use one of {CATEGORIES}")
        self = super().__new__(cls, text)
        self.category = category
        return self

    @property
    def text(self) -> str:
        return str.__str__(self)

    def __reduce__(self):  # (str's own pickling would call Finding(text))
        return (Finding, (self.category, self.text))

    def __repr__(self) -> str:
        return f"Finding({self.category!r}, {self.text!r})"


def category_of(warning) -> str:
    """A warning's category: its own for a :class:`Finding`, ``OTHER`` for a plain string."""
    return getattr(warning, "category", OTHER)
