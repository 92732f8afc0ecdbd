"""Kernels that are not part of approxlab, written against its kernel protocol (``approxlab.kernels``).

    approxlab report dpfp --import examples/kernels.py --out figures      # the README's report card

DPFP, "deterministic parameter-free projection" (Schlag, Irie & Schmidhuber, "Linear Transformers Are
Secretly Fast Weight Programmers", ICML 2021, eq. 33): with r = relu([x, −x]) (2D entries),
    φ_ν(x) = [r_i · r_{(i + j) mod 2D}]  for i < 2D, j = 1..ν,      dimension 2Dν,
so κ(x, y) = φ_ν(x)·φ_ν(y) ≥ 0 and it is exactly 0 for many (x, y): a kernel with exact zeros.
"""

from __future__ import annotations

import torch

import approxlab


class DPFP(approxlab.KernelVariant):
    """DPFP features of order ``nu`` (Schlag et al. 2021, eq. 33)."""

    name = "dpfp"

    def __init__(self, nu: int = 1):
        self.nu = nu

    def features(self, x):
        r = torch.relu(torch.cat([x, -x], dim=-1))
        return torch.cat([r * torch.roll(r, shifts=j, dims=-1) for j in range(1, self.nu + 1)], dim=-1), None


approxlab.register_kernel("dpfp", DPFP, replace=True)
