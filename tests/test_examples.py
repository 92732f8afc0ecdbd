"""The tutorial notebook executes (nbclient, a fresh kernel) and its report-card figure displays inline."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "bring_your_own_kernel.ipynb"


def test_tutorial_notebook_executes_and_shows_its_figure(monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # as in a user's Jupyter
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:  # run from scratch: the committed outputs must not count
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the report card, shown once
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert "image/png" in last.outputs[0]["data"]
    agreement = [c for c in nb.cells if c.cell_type == "code"][2].outputs[0]["data"]["text/plain"]
    assert float(agreement) <= 1e-10
