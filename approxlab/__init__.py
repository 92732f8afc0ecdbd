"""approxlab: linear attention as approximation theory.

Every attention variant in torch with an explicit (N×N) and an efficient (linear in N) form, the
symbolic rational degree of each kernel, its best-possible error, Performer feature counts, and
benchmarks — each figure computable from a notebook. Bring your own kernel: see
:mod:`approxlab.variants` (the protocol), :func:`register_kernel` and :func:`report`.
"""

from .api import Attention, attention, attention_weights, explicit_attention, unchecked_kernel_attention
from .core.budget import (
    MemoryBudgetError, WorkBudgetError, get_memory_budget, get_work_budget, memory_budget, set_memory_budget,
    set_work_budget, work_budget,
)
from .variants import (
    VARIANTS, KernelVariant, build_kernel, kernel_name, register_kernel, unregister_kernel, variant_names,
)

__version__ = "0.1.0"


def report(kernel, **options):
    """The report card of ``kernel`` (a name, a kernel object, or a KernelVariant subclass with its
    parameters as keyword arguments): a :class:`approxlab.experiments.report_card.ReportCard` with ``summary``
    (headline numbers), ``data`` (tidy DataFrame of every part), ``figure`` and ``save(outdir)``.

    Options: ``profile`` ("small": seconds, "quick", "full"), ``real`` (None: the all-MiniLM-L6 part
    when the ``real`` extra is installed), ``compare_degree`` (degree for the best polynomial /
    rational when sympy derives none), ``parts`` (subset of agreement, symbolic, delta, bridge, real,
    speed), ``device``, ``progress``. Full description: :mod:`approxlab.experiments.report_card`."""
    from .experiments.report_card import report as _report

    return _report(kernel, **options)


__all__ = ["VARIANTS", "attention", "attention_weights", "explicit_attention", "unchecked_kernel_attention", "Attention",
           "build_kernel", "KernelVariant", "register_kernel", "unregister_kernel", "variant_names", "kernel_name",
           "report", "MemoryBudgetError", "get_memory_budget", "memory_budget", "set_memory_budget",
           "WorkBudgetError", "get_work_budget", "work_budget", "set_work_budget"]
