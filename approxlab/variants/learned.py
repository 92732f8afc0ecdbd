"""Learned feature maps, fitted by distillation from softmax attention (:func:`approxlab.analysis.distill.distill`).

Hedgehog (Zhang, Bhatia, Kumbong, Ré, "The Hedgehog & the Porcupine: Expressive Linear Attentions with
Softmax Mimicry", ICLR 2024): a trainable linear layer followed by the exponential, on both signs,
    φ(x) = [exp(xW + b), exp(−xW − b)]                (2F features, > 0; W ∈ R^{D×F}, b ∈ R^F)
trained so that φ(q)·φ(k) weights mimic the softmax weights (cross-entropy between the rows). The
public code (lolcats) normalises each half with a softmax over the features; that multiplies a key's
features by a key-dependent factor and so changes the kernel; here the map is the paper's
exponential, carried stably as (f, log scale) like FAVOR+.

T2R (Kasai, Peng, Zhang, Yogatama, Ilharco, Pappas, Mao, Chen, Smith, "Finetuning Pretrained
Transformers into RNNs", EMNLP 2021): φ(x) = relu(xW + b) (F features, ≥ 0; a row whose features
are all zero gets zero weights, the engine's convention).

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
        check_tensor(weight, "weight", ndim=2, finite=not weight.requires_grad)
        if weight.shape[0] != head_dim:
            raise ValueError(f"weight must be ({head_dim}, F), got {tuple(weight.shape)}")
        if bias is None:
            bias = torch.zeros(weight.shape[1], dtype=weight.dtype)
        check_tensor(bias, "bias", ndim=1, finite=not bias.requires_grad)
        if bias.shape[0] != weight.shape[1]:
            raise ValueError(f"bias must have {weight.shape[1]} entries (the columns of weight), got {bias.shape[0]}")
        self.weight, self.bias = weight, bias  # kept as given (they may require grad while being fitted)

    def _linear(self, x):
        return x @ self.weight.to(device=x.device, dtype=x.dtype) + self.bias.to(device=x.device, dtype=x.dtype)


class Hedgehog(_Learned):
    """φ(x) = [exp(xW + b), exp(−xW − b)] (module doc), as (f ≤ 1, log scale)."""

    name = "hedgehog"

    def __init__(self, head_dim: int, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None):
        super().__init__(head_dim, weight, bias)

    def features(self, x):
        u = self._linear(x)
        logits = torch.cat([u, -u], dim=-1)
        top = logits.amax(-1)
        return torch.exp(logits - top[..., None]), top

    def num_features(self, head_dim: int) -> int:
        return 2 * self.weight.shape[1]


class T2R(_Learned):
    """φ(x) = relu(xW + b) (module doc)."""

    name = "t2r"

    def __init__(self, head_dim: int, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None):
        super().__init__(head_dim, weight, bias)

    def features(self, x):
        return torch.relu(self._linear(x)), None

    def num_features(self, head_dim: int) -> int:
        return self.weight.shape[1]
