"""Every attention variant, one module each, registered by the ``@register_kernel`` decorator in its own
module; ``build_kernel`` turns a name (or a kernel object) and parameters into a kernel;
``register_kernel`` adds a name every entry point accepts (see :mod:`approxlab.core.protocol`)."""

from __future__ import annotations

from ..core.protocol import KernelVariant
from ._expression import KernelExpression, random_estimate, similarity_expression, vector_expression
from ._projections import gaussian_projection
from ._registry import (
    KERNELS, as_kernel, build_kernel, calibrate, check_params, check_variant, inputs_for, is_kernel, is_positional,
    is_softmax, kernel_name, needs_head_dim, parameters_doc, register_kernel, seal_builtins, similarity_of,
    unregister_kernel, value_text, variant_class, variant_names,
)
from .power_series import PowerSeriesKernel
from .softmax import Softmax

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
from .window import Window
from .shrinkage import Shrinkage

seal_builtins()
#: the built-in variants (:func:`variant_names` also lists registered ones)
VARIANTS = ("softmax",) + tuple(KERNELS)


__all__ = [
    "VARIANTS", "KERNELS", "build_kernel", "register_kernel", "unregister_kernel", "variant_names", "kernel_name",
    "check_variant", "check_params", "is_kernel", "is_softmax", "is_positional", "as_kernel", "needs_head_dim",
    "parameters_doc", "similarity_of", "calibrate", "variant_class", "value_text", "inputs_for", "with_positions", "has_positions",
    "KernelExpression", "similarity_expression", "vector_expression", "random_estimate", "KernelVariant", "Softmax", "Linear", "Relu", "Performer", "Taylor", "Polynomial", "HLA",
    "Minimax", "PowerSeriesKernel", "gaussian_projection", "Hyperbolic", "FavorPP", "FavorSharp", "DPFP",
    "RandomMaclaurin", "Cosformer", "Hedgehog", "T2R", "Window", "Shrinkage",
]
