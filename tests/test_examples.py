"""The example kernel (examples/kernels.py) is right and stable; the tutorial notebook executes
(nbclient, a fresh kernel) and its report-card figure displays inline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import approxlab

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOK = EXAMPLES / "bring_your_own_kernel.ipynb"


@pytest.fixture
def expmap():
    """examples/kernels.py imported as the CLI's --import does: it registers "expmap" (not a built-in name)."""
    spec = importlib.util.spec_from_file_location("_example_kernels", EXAMPLES / "kernels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module.ExpMap
    approxlab.unregister_kernel("expmap")


def test_example_kernel_is_the_exponential_map_and_both_forms_agree(expmap):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64), torch.randn(2, 7, 6, generator=gen, dtype=torch.float64)
    matrix, col_log_scale = expmap().kernel(x, y)  # K_ij up to the query's own per-row factor
    exact = torch.exp(x[..., :, None, :] + y[..., None, :, :]).sum(-1)  # Σ_d exp(x_d + y_d)
    assert torch.allclose(matrix * torch.exp(x.amax(-1)[..., :, None] + col_log_scale[..., None, :]), exact,
                          rtol=1e-13, atol=0)
    q, k, v = (torch.randn(1, 2, 67, 16, generator=gen, dtype=torch.float64) for _ in range(3))
    for factor in (1.0, 300.0):  # 300: x_d up to 530, φ(x)·φ(y) overflows float64 without the log scale
        for causal in (False, True):
            fast = approxlab.attention(factor * q, factor * k, v, "expmap", causal=causal)
            ref = approxlab.explicit_attention(factor * q, factor * k, v, expmap(), causal=causal)
            assert bool(torch.isfinite(fast).all())
            assert float((fast - ref).abs().max() / ref.abs().max()) <= 1e-10


def test_tutorial_notebook_executes_and_shows_its_figure(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
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
