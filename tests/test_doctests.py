"""The Examples sections of the public modules run as doctests (tiny sizes: seconds)."""

import doctest
import importlib

import pytest

MODULES = [
    "approxlab.api",
    *(f"approxlab.variants.{name}" for name in (
        "linear", "relu", "performer", "taylor", "polynomial", "hla", "minimax", "hyperbolic", "favorpp",
        "favorsharp", "dpfp", "maclaurin", "cosformer", "hedgehog", "t2r", "power_series")),
    "approxlab.variants._registry",
    "approxlab.variants._expression",
    "approxlab.analysis.symbolic.kernels",
    "approxlab.analysis.nested",
    "approxlab.variants._projections",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
