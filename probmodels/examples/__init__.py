"""Built-in model-specification files (the default of `probmodels report`)."""
