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
from .cosformer import Cosformer, has_positions, with_positions
from .hedgehog import Hedgehog
from .t2r import T2R

seal_builtins()
#: the built-in variants (:func:`variant_names` also lists registered ones)
VARIANTS = ("softmax",) + tuple(KERNELS)


def inputs_for(variant, q, k):
    """(q, k) as ``variant`` takes them: with positions appended (:func:`with_positions`) for a positional
    kernel such as cosFormer, unchanged otherwise. Studies that put every variant on the same q, k
    call this so that cosFormer sees positions 0..N−1, not two content coordinates read as angles. Inputs that
    carry positions already (both q and k, :func:`~approxlab.variants.cosformer.has_positions`) are returned
    as given; every public entry point goes through this, so plain and positioned inputs give one answer."""
    variant = check_variant(variant)
    if not is_positional(variant):
        return q, k
    carried = has_positions(q), has_positions(k)
    if all(carried):  # already appended (with_positions): used as given
        return q, k
    if any(carried):
        raise ValueError(f"{kernel_name(variant)} reads positions from the last two coordinates of q and k: "
                         f"{'q' if carried[0] else 'k'} carries them (with_positions) but "
                         f"{'k' if carried[0] else 'q'} does not; pass both plain or both from with_positions")
    return with_positions(q, k)


def is_positional(variant) -> bool:
    """True for a kernel that reads token positions from two coordinates appended to q and k (cosFormer)."""
    cls = KERNELS.get(variant) if isinstance(variant, str) else variant if isinstance(variant, type) else type(variant)
    return bool(getattr(cls, "positional", False)) or bool(getattr(getattr(variant, "obj", None), "positional", False))


__all__ = [
    "VARIANTS", "KERNELS", "build_kernel", "register_kernel", "unregister_kernel", "variant_names", "kernel_name",
    "check_variant", "check_params", "is_kernel", "is_softmax", "as_kernel", "needs_head_dim", "parameters_doc",
    "similarity_of", "calibrate", "KernelVariant", "Linear", "Relu", "Performer", "Taylor", "Polynomial", "HLA",
    "Minimax", "PowerSeriesKernel", "gaussian_projection", "Hyperbolic", "FavorPP", "FavorSharp", "DPFP",
    "RandomMaclaurin", "Cosformer", "Hedgehog", "T2R", "inputs_for", "is_positional", "with_positions", "has_positions",
]
