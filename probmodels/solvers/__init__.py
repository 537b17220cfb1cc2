"""The solvers: one module per method over one shared objective builder (``_objective``), each
ending with its :class:`~probmodels.solvers.base.Solver`; :data:`REGISTRY` collects them.

A new method is one module that ends with its ``SOLVER`` and one entry in the tuple below:
``fit``, ``compare``, ``report``, the CLI and ``calibrate`` read its label, kind and defaults
from the registry.
"""

from . import laplace, nuts, pathfinder, point, vi
from ._common import SolverResult
from ._objective import Objective
from .base import CATEGORIES, Finding, SimFit, Solver, category_of

__all__ = ["REGISTRY", "Solver", "SolverResult", "SimFit", "Finding", "CATEGORIES", "category_of", "Objective"]

#: method name -> :class:`Solver`, in the order tables and reports list them
REGISTRY: dict[str, Solver] = {s.name: s for s in (*point.SOLVERS, laplace.SOLVER, vi.SOLVER, nuts.SOLVER, pathfinder.SOLVER)}
