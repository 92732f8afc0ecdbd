"""ReLU linear attention: κ(q, k) = relu(q)·relu(k) ≥ 0.

κ can be exactly zero for a whole row (no positive coordinate shared with any key); such a row has
no kernel mass and gets zero weights and zero output, rather than dividing by an epsilon that would
bias every other row. Since relu is positively homogeneous, the scale cancels in the weights.
"""

from __future__ import annotations

import torch

from ..core.protocol import KernelVariant
from ._registry import register_kernel


@register_kernel
class Relu(KernelVariant):
    """No parameters: φ(x) = relu(x); rows without kernel mass get zero output."""

    name = "relu"

    def features(self, x):
        return torch.relu(x), None
