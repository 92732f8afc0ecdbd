"""Swap any approxlab variant into a transformers model: :mod:`approxlab.analysis.hf` (the home of the code)."""

from .analysis.hf import *  # noqa: F401,F403
from .analysis.hf import __all__  # noqa: F401
