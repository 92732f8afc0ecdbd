"""The shared part of the exponential random-feature variants (hyperbolic, FAVOR++, FAVOR#): their m × D
directions W (given, or drawn iid, orthogonal or simplex from a seed), the directions cast per device and
dtype, and the stabilised exponential: each feature is (f, log scale) with f ≤ 1 (the row's largest
logit subtracted); the engine carries a key's log scale exactly, so no ε is added.
"""

from __future__ import annotations

import math

import torch

from ..core.checks import check_choice, check_int, check_tensor
from ..core.protocol import KernelVariant
from ._projections import DIRECTIONS, random_directions


class _ExpRandomFeatures(KernelVariant):
    """Shared: the m × D directions W, their dtype casts, and the stabilised exponential features."""

    def __init__(self, head_dim, num_features, directions, seed, projection):
        self.head_dim = check_int(head_dim, "head_dim", minimum=1)
        if projection is not None:
            check_tensor(projection, "projection", ndim=2)
            if projection.shape[0] == 0 or projection.shape[1] != head_dim:
                raise ValueError(f"projection must be (num_features >= 1, {head_dim}), got {tuple(projection.shape)}")
            if num_features is not None and num_features != projection.shape[0]:
                raise ValueError(f"num_features={num_features} disagrees with projection rows {projection.shape[0]}")
            self.projection = projection.double()
        else:
            if num_features is None:
                num_features = max(1, int(head_dim * math.log(head_dim))) if head_dim > 1 else 1
            self.projection = random_directions(check_int(num_features, "num_features", minimum=1), head_dim,
                                                check_choice(directions, "directions", set(DIRECTIONS)), seed)
        self.num_features = self.projection.shape[0]
        self._cast: dict = {}

    def _cast_to(self, name: str, value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        key = (name, like.device, like.dtype)
        if key not in self._cast:
            self._cast[key] = value.to(device=like.device, dtype=like.dtype)
        return self._cast[key]

    @staticmethod
    def _stable_exp(logits: torch.Tensor, log_scale: torch.Tensor):
        """(exp(logits − row max), log_scale + row max): f ≤ 1, f · e^{scale} = exp(logits + log_scale)."""
        top = logits.amax(-1)
        return torch.exp(logits - top[..., None]), log_scale + top
