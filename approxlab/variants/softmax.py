"""Softmax attention, the exact reference: κ = exp(s), a_ij = exp(s_ij) / Σ_l exp(s_il).

Explicit form: the masked, max-subtracted softmax of the similarity matrix. Efficient form:
``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient / math backend).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def similarity_function(s):
    """κ(s) = exp(s) (numpy, torch or sympy input)."""
    try:
        import sympy

        if isinstance(s, sympy.Basic):
            return sympy.exp(s)
    except ImportError:  # pragma: no cover
        pass
    return torch.exp(s) if isinstance(s, torch.Tensor) else __import__("numpy").exp(s)


def softmax_attention(q, k, v, *, causal: bool, scale: float) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
