"""Build the notebooks from their cell sources and execute them, outputs stored.

    python notebooks/_build.py            # all, full settings
    python notebooks/_build.py 01 03      # some

The sources live in ``notebooks/_cells/<name>.py``: cells separated by lines ``# %%`` (code) or
``# %% [markdown]`` (markdown, each line starting with ``# ``). The test suite re-executes the
committed ``.ipynb`` files with ``PROBMODELS_QUICK=1`` (small settings), see
``tests/test_notebooks.py``.
"""

from __future__ import annotations

import glob
import os
import sys

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))


def cells_of(path: str):
    text = open(path).read()
    cells, kind, lines = [], None, []

    def flush():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        elif body:
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def build(name: str, execute: bool = True, timeout: int = 1200) -> str:
    src = os.path.join(HERE, "_cells", f"{name}.py")
    nb = nbformat.v4.new_notebook()
    nb.cells = cells_of(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    out = os.path.join(HERE, f"{name}.ipynb")
    if execute:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": HERE}}).execute()
    nbformat.write(nb, out)
    return out


if __name__ == "__main__":
    names = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(HERE, "_cells", "*.py")))
    wanted = sys.argv[1:]
    for n in names:
        if not wanted or any(n.startswith(w) for w in wanted):
            print("building", n, flush=True)
            build(n)
