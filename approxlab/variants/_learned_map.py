"""The shared part of the learned feature maps (Hedgehog, T2R): a linear layer xW + b before the activation.

Both take ``weight`` (D × F) and ``bias`` (F) explicitly: fitted parameters are data of the kernel, fixed
before any pass (no causal leak). Without them the map starts at W = I, b = 0 (the initialisation
:func:`approxlab.analysis.distill.distill` uses).
"""

from __future__ import annotations

import torch

from ..core.checks import check_int, check_tensor
from ..core.protocol import KernelVariant


class _Learned(KernelVariant):
    def __init__(self, head_dim, weight, bias):
        self.head_dim = check_int(head_dim, "head_dim", minimum=1)
        if weight is None:
            weight = torch.eye(head_dim, dtype=torch.float64)
        check_tensor(weight, "weight", ndim=2, finite=not getattr(weight, "requires_grad", False))
        if weight.shape[0] != head_dim or weight.shape[1] == 0:
            raise ValueError(f"weight must be ({head_dim}, F >= 1), got {tuple(weight.shape)}")
        if bias is None:
            bias = torch.zeros(weight.shape[1], dtype=weight.dtype)
        check_tensor(bias, "bias", ndim=1, finite=not getattr(bias, "requires_grad", False))
        if bias.shape[0] != weight.shape[1]:
            raise ValueError(f"bias must have {weight.shape[1]} entries (the columns of weight), got {bias.shape[0]}")
        self.weight, self.bias = weight, bias  # kept as given (they may require grad while being fitted)

    def _linear(self, x):
        return x @ self.weight.to(device=x.device, dtype=x.dtype) + self.bias.to(device=x.device, dtype=x.dtype)
