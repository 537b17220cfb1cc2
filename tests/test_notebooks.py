"""The notebooks run: each committed notebook is re-executed with small settings
(``PROBMODELS_QUICK=1``) and must finish without an error."""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")
NOTEBOOKS = sorted(glob.glob(os.path.join(HERE, "[0-9]*.ipynb")))


def test_there_are_six_notebooks():
    assert len(NOTEBOOKS) == 6, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    monkeypatch.setenv("PROBMODELS_QUICK", "1")
    nb = nbformat.read(path, as_version=4)
    committed = sum(1 for c in nb.cells if c.cell_type == "code" and c.get("outputs"))
    assert committed > 0, "the committed notebook carries its outputs"
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": HERE}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert images >= 1, "every notebook draws at least one figure"
