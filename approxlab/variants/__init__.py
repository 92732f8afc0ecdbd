"""Every attention variant, one module each; ``build_kernel`` turns a name and parameters into a kernel."""

from __future__ import annotations

import inspect

from .base import KernelVariant
from .feature_maps import DPFP, Cosformer, RandomMaclaurin
from .hla import HLA
from .learned import T2R, Hedgehog
from .linear import Linear
from .minimax import Minimax
from .performer import Performer, gaussian_projection
from .polynomial import Polynomial
from .power_series import PowerSeriesKernel
from .random_features import FavorPP, FavorSharp, Hyperbolic
from .relu import Relu
from .taylor import Taylor

#: kernel variants by name; ``softmax`` is the exact reference and has no feature kernel
KERNELS = {cls.name: cls for cls in (Linear, Relu, Performer, Taylor, Polynomial, HLA, Minimax,
                                     Hyperbolic, FavorPP, FavorSharp, DPFP, RandomMaclaurin, Cosformer,
                                     Hedgehog, T2R)}
VARIANTS = ("softmax",) + tuple(KERNELS)


def build_kernel(variant: str, head_dim: int, **params) -> KernelVariant:
    """The kernel of a non-softmax variant with its parameters bound (same arguments, same kernel)."""
    if variant == "softmax":
        raise ValueError("softmax has no feature kernel; call approxlab.attention(..., 'softmax')")
    if variant not in KERNELS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
    cls = KERNELS[variant]
    accepted = set(inspect.signature(cls).parameters) - {"head_dim"}
    unexpected = sorted(set(params) - accepted)
    if unexpected:
        raise TypeError(f"unexpected parameter(s) {unexpected} for variant {variant!r}; it accepts {sorted(accepted)}")
    if "head_dim" in inspect.signature(cls).parameters:
        params["head_dim"] = head_dim
    return cls(**params)


__all__ = [
    "VARIANTS", "KERNELS", "build_kernel", "KernelVariant", "Linear", "Relu", "Performer", "Taylor",
    "Polynomial", "HLA", "PowerSeriesKernel", "gaussian_projection", "Hyperbolic", "FavorPP", "FavorSharp",
    "DPFP", "RandomMaclaurin", "Cosformer", "Hedgehog", "T2R",
]
