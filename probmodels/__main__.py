import probmodels_launch

from .cli import console

probmodels_launch.settle()  # (the imports are done: see probmodels_launch.imported)
console()
