"""approxlab: linear attention as approximation theory.

Every attention variant in torch with an explicit (N×N) and an efficient (linear in N) form, the
symbolic rational degree of each kernel, its best-possible error, Performer feature counts, and
benchmarks — each figure computable from a notebook. Bring your own kernel: see
:mod:`approxlab.kernels` (the protocol), :func:`register_kernel` and :func:`report`.
"""

from .attention import Attention, attention, attention_weights, explicit_attention, kernel_attention
from .variants import (
    VARIANTS, KernelVariant, build_kernel, kernel_name, register_kernel, unregister_kernel, variant_names,
)

__version__ = "0.1.0"


def report(kernel, **options):
    """The report card of a kernel (name, kernel object or KernelVariant subclass): see
    :func:`approxlab.report_card.report`."""
    from .report_card import report as _report

    return _report(kernel, **options)


__all__ = ["VARIANTS", "attention", "attention_weights", "explicit_attention", "kernel_attention", "Attention",
           "build_kernel", "KernelVariant", "register_kernel", "unregister_kernel", "variant_names", "kernel_name",
           "report"]
