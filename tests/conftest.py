"""Test-session setup: without a GPU, Triton kernels run under Triton's CPU interpreter, so the fused
kernels are checked on every machine. The variable must be set before ``triton`` is first imported.

Fixture ``script``: a loader of the repository's ``scripts/NAME.py`` as a module (they are not a package)."""

import importlib.util
import os
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def script():
    """``script("readme_times")``: scripts/readme_times.py, imported afresh."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
