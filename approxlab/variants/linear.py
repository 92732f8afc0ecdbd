"""ELU linear attention (Katharopoulos et al., 2020): κ(q, k) = φ(q)·φ(k), φ(x) = elu(x) + 1 > 0.

On the positive orthant φ(x) = x + 1, so κ = x·y + Σx + Σy + D is affine in s = x·y: the row
weights are a rational function of degree (1, 1) in the similarities. Inputs are the scaled
x = q·√scale (``scale=1`` gives the paper's form).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import KernelVariant


def elu_feature(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = elu(x) + 1 (the + 1 in place outside autograd: one buffer)."""
    f = F.elu(x)
    return f.add_(1.0) if not f.requires_grad else f + 1.0


class Linear(KernelVariant):
    """No parameters: φ(x) = elu(x) + 1 on the scaled inputs."""

    name = "linear"

    def features(self, x):
        return elu_feature(x), None

    def kernel(self, x, y):
        return elu_feature(x) @ elu_feature(y).transpose(-1, -2), None
