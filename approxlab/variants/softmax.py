"""Softmax attention, the exact reference: κ = exp(s), a_ij = exp(s_ij) / Σ_l exp(s_il).

Explicit form: the masked, max-subtracted softmax of the similarity matrix. Efficient form:
``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient / math backend).
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
import torch.nn.functional as F

from ._expression import D, KernelExpression, s


def similarity_function(s):
    """κ(s) = exp(s) for a number, numpy array, torch tensor or sympy expression."""
    if isinstance(s, torch.Tensor):
        return torch.exp(s)
    if isinstance(s, sp.Basic):
        return sp.exp(s)
    return np.exp(s)


def softmax_attention(q, k, v, *, causal: bool, scale: float) -> torch.Tensor:
    """SDPA: the exact attention, never materialising N×N on its fused backends."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)


class Softmax:
    """The exact reference as the symbolic side and the plots see it (it has no feature kernel)."""

    name = "softmax"
    family = "exact"
    label = "softmax"
    color = "#0173b2"
    marker = "o"
    linestyle = "-"
    similarity_function = staticmethod(similarity_function)

    def kernel_expression(self, dim: int = 2) -> KernelExpression:
        """κ = exp(s): entire, not rational, so no finite degree; its explicit form costs N²·D."""
        n, dv = sp.symbols("N D_v", positive=True)
        kappa = similarity_function(s)
        return KernelExpression(
            "softmax", {}, kappa, kappa, (), (s,), True, features=sp.Symbol("N"),
            note="exact reference; explicit N×N form", cost=n ** 2 * D,
            no_degree="exp(s) is entire and not rational: exp(s_1)/Σ_l exp(s_l) has no finite (numerator, "
                      "denominator) degree")
