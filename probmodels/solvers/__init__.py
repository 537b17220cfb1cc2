"""The solvers: one module per method over one shared objective builder (``_objective``)."""

__all__: list[str] = []
