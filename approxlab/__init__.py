"""approxlab: linear attention as approximation theory.

Every attention variant in torch with an explicit (N×N) and an efficient (linear in N) form, the
symbolic rational degree of each kernel, its best-possible error, Performer feature counts, and
benchmarks — each figure computable from a notebook.
"""

from .attention import Attention, attention, attention_weights, explicit_attention
from .budget import MemoryBudgetError, get_memory_budget, memory_budget, set_memory_budget
from .variants import VARIANTS, build_kernel

__version__ = "0.1.0"

__all__ = ["VARIANTS", "attention", "attention_weights", "explicit_attention", "Attention", "build_kernel",
           "MemoryBudgetError", "get_memory_budget", "memory_budget", "set_memory_budget"]
