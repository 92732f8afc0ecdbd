"""The shared part of the learned feature maps (Hedgehog, T2R): a linear layer xW + b before the activation.

Both take ``weight`` (D × F) and ``bias`` (F) explicitly: fitted parameters are data of the kernel, fixed
before any pass (no causal leak). Without them the map starts at W = I, b = 0 (the initialisation
:func:`approxlab.analysis.distill.distill` uses). ``weight`` (H × D × F) with ``bias`` (H × F) gives
each of H heads its own map (inputs (…, H, N, D)): what :func:`~approxlab.analysis.distill.distill` fits
when it fits H heads at once.
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
        per_head = isinstance(weight, torch.Tensor) and weight.ndim == 3
        check_tensor(weight, "weight", ndim=3 if per_head else 2, layout="(H, D, F)" if per_head else "(D, F)",
                     finite=not getattr(weight, "requires_grad", False))
        if weight.shape[-2] != head_dim or weight.shape[-1] == 0:
            raise ValueError(f"weight must be ({head_dim}, F >= 1), or (H, {head_dim}, F >= 1) for one map per "
                             f"head, got {tuple(weight.shape)}")
        expected = (*weight.shape[:-2], weight.shape[-1])  # (F,) or (H, F)
        if bias is None:
            bias = torch.zeros(expected, dtype=weight.dtype)
        check_tensor(bias, "bias", ndim=len(expected), layout="(H, F)" if per_head else "(F,)",
                     finite=not getattr(bias, "requires_grad", False))
        if tuple(bias.shape) != expected:
            raise ValueError(f"bias must have shape {expected} (the columns of a weight {tuple(weight.shape)}"
                             f"{' per head' if per_head else ''}), got {tuple(bias.shape)}")
        self.weight, self.bias = weight, bias  # kept as given (they may require grad while being fitted)

    @property
    def columns(self) -> int:
        """F, the columns of W (per head)."""
        return self.weight.shape[-1]

    def _linear(self, x):
        weight = self.weight.to(device=x.device, dtype=x.dtype)
        bias = self.bias.to(device=x.device, dtype=x.dtype)
        if weight.ndim == 3:  # one map per head: x (…, H, N, D) @ W (H, D, F) + b (H, 1, F)
            if x.ndim < 3 or x.shape[-3] != weight.shape[0]:
                raise ValueError(f"this map has a weight per head for {weight.shape[0]} heads; inputs (…, H, N, D) "
                                 f"have shape {tuple(x.shape)}")
            bias = bias[:, None, :]
        return x @ weight + bias
