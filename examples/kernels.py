"""A kernel that is not part of approxlab, written against its kernel protocol (``approxlab.variants``).

    approxlab report expmap --import examples/kernels.py --compare-degree 1 --out figures   # its report card

The plain positive exponential feature map, with no projection: φ(x)_d = exp(x_d), so

    κ(x, y) = φ(x)·φ(y) = Σ_d exp(x_d + y_d) > 0,

F = D features, as many as a degree-1 kernel (elu + 1, relu). κ is not a function of s = x·y alone (it
depends on the entries, not on their products), so sympy derives no degree for it and the card measures
its δ on rows instead. It is the activation of Hedgehog-style learned feature maps taken without the
learned projection: HazyResearch/lolcats, ``src/model/feature_map.py``, class ``ExpHalfspace``
(exp(x − max_d x), "as in arXiv:2402.04347", i.e. Zhang, Bhatia, Kumbong & Ré, "The Hedgehog & the
Porcupine", ICLR 2024), which applies it after a trained per-head projection.

Written stably as in the protocol's example: f = exp(x − max_d x_d) ≤ 1 and log_scale = max_d x_d per
row; ``kernel`` sums exp(x_d + y_d) over d directly, so the explicit form is an independent reference.
"""

from __future__ import annotations

import torch

import approxlab


class ExpMap(approxlab.KernelVariant):
    """φ(x)_d = exp(x_d): κ(x, y) = Σ_d exp(x_d + y_d) (module docstring)."""

    name = "expmap"

    def features(self, x):
        top = x.amax(-1)
        return torch.exp(x - top[..., None]), top

    def kernel(self, x, y):
        """Σ_d exp(x_d − max x + y_d − max y), one d at a time (no feature product); the query's max
        cancels per row, the key's is returned as the column log scale."""
        x = x - x.amax(-1, keepdim=True)
        top = y.amax(-1)
        y = y - top[..., None]
        matrix = sum(torch.exp(x[..., :, None, d] + y[..., None, :, d]) for d in range(x.shape[-1]))
        return matrix, top

    def feature_width(self, head_dim):
        return head_dim


approxlab.register_kernel("expmap", ExpMap, replace=True)
