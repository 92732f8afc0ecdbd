"""The Examples sections of the public modules run as doctests (tiny sizes: seconds)."""

import doctest
import importlib

import pytest

MODULES = [
    "approxlab.api",
    "approxlab.variants._registry",
    "approxlab.variants._expression",
    "approxlab.analysis.symbolic.kernels",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
