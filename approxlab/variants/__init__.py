"""Every attention variant, one module each, registered by the ``@register_kernel`` decorator in its own
module; ``build_kernel`` turns a name (or a kernel object) and parameters into a kernel;
``register_kernel`` adds a name every entry point accepts (see :mod:`approxlab.core.protocol`)."""

from __future__ import annotations

from ..core.protocol import KernelVariant
from ._projections import gaussian_projection
from ._registry import (
    KERNELS, as_kernel, build_kernel, calibrate, check_params, check_variant, is_kernel, is_softmax, kernel_name,
    needs_head_dim, parameters_doc, register_kernel, seal_builtins, similarity_of, unregister_kernel, variant_names,
)
from .power_series import PowerSeriesKernel

# the built-in variants, in the order VARIANTS lists them: importing a module registers its variant
from .linear import Linear
from .relu import Relu
from .performer import Performer
from .taylor import Taylor
from .polynomial import Polynomial
from .hla import HLA
from .minimax import Minimax
from .hyperbolic import Hyperbolic
from .favorpp import FavorPP
from .favorsharp import FavorSharp
from .dpfp import DPFP
from .maclaurin import RandomMaclaurin
from .cosformer import Cosformer, with_positions
from .hedgehog import Hedgehog
from .t2r import T2R

seal_builtins()
#: the built-in variants (:func:`variant_names` also lists registered ones)
VARIANTS = ("softmax",) + tuple(KERNELS)


def inputs_for(variant, q, k):
    """(q, k) as ``variant`` takes them: with positions appended (:func:`with_positions`) for a positional
    kernel such as cosFormer, unchanged otherwise. Studies that put every variant on the same q, k
    call this so that cosFormer sees positions 0..N−1, not two content coordinates read as angles."""
    variant = check_variant(variant)
    cls = KERNELS.get(variant) if isinstance(variant, str) else variant if isinstance(variant, type) else type(variant)
    return with_positions(q, k) if getattr(cls, "positional", False) else (q, k)


__all__ = [
    "VARIANTS", "KERNELS", "build_kernel", "register_kernel", "unregister_kernel", "variant_names", "kernel_name",
    "check_variant", "check_params", "is_kernel", "is_softmax", "as_kernel", "needs_head_dim", "parameters_doc",
    "similarity_of", "calibrate", "KernelVariant", "Linear", "Relu", "Performer", "Taylor", "Polynomial", "HLA",
    "Minimax", "PowerSeriesKernel", "gaussian_projection", "Hyperbolic", "FavorPP", "FavorSharp", "DPFP",
    "RandomMaclaurin", "Cosformer", "Hedgehog", "T2R", "inputs_for", "with_positions",
]
