"""Softmax attention, the exact reference: κ = exp(s), a_ij = exp(s_ij) / Σ_l exp(s_il).

Explicit form: the masked, max-subtracted softmax of the similarity matrix. Efficient form:
``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient / math backend).
"""

from __future__ import annotations

import numpy as np
import sympy
import torch
import torch.nn.functional as F


def similarity_function(s):
    """κ(s) = exp(s) for a number, numpy array, torch tensor or sympy expression."""
    if isinstance(s, torch.Tensor):
        return torch.exp(s)
    if isinstance(s, sympy.Basic):
        return sympy.exp(s)
    return np.exp(s)


def softmax_attention(q, k, v, *, causal: bool, scale: float) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
