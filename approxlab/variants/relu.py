"""ReLU linear attention: κ(q, k) = relu(q)·relu(k) ≥ 0.

κ can be exactly zero for a whole row (no positive coordinate shared with any key); such a row has
no kernel mass and gets zero weights and zero output, rather than dividing by an epsilon that would
bias every other row. Since relu is positively homogeneous, the scale cancels in the weights.
"""

from __future__ import annotations

import sympy as sp
import torch

from ..core.protocol import KernelVariant
from ._expression import D, KernelExpression, vector_expression
from ._registry import register_kernel


def relu(t):
    """φ(t) = max(0, t) in sympy."""
    return sp.Max(0, t)


@register_kernel
class Relu(KernelVariant):
    r"""ReLU linear attention: φ(x) = relu(x) ≥ 0 (no parameters); rows without kernel mass get zero output.

    Notes
    -----
    κ(x, y) = relu(x)·relu(y) can be exactly 0 for a whole row; such a row gets zero weights and output
    instead of an ε in the denominator that would bias every other row. relu is positively homogeneous, so
    the scale cancels in the weights. Feature width F = D; weights rational of degree (1, 1).

    Examples
    --------
    >>> import torch
    >>> from approxlab.variants import Relu
    >>> Relu().features(torch.tensor([[-1.0, 2.0]]))[0]
    tensor([[0., 2.]])
    """

    name = "relu"
    family = "small feature maps"
    label = "ReLU"
    color = "#029e73"

    def features(self, x):
        return torch.relu(x), None

    def kernel_expression(self, dim: int = 2) -> KernelExpression:
        """Σ_d relu(x_d) relu(y_d), F = D; linear in the key on the positive orthant."""
        return vector_expression(relu, dim, features=D)
