"""Seeded inputs the benchmarks, the studies and the report card draw: iid N(0, 1) q, k, v, and q, k
whose similarities fill a chosen range [−R, R]."""

from __future__ import annotations

import math

import torch


def gaussian_qkv(batch: int, heads: int, n: int, head_dim: int, *, seed: int = 0, dtype=None, device="cpu",
                 draw_dtype=torch.float32):
    """q, k, v (batch, heads, n, head_dim) with iid N(0, 1) entries (s = q·k/√D has unit variance).

    Drawn on the CPU in ``draw_dtype`` from ``seed`` (so every device sees the same numbers), then
    moved to ``device`` and cast to ``dtype`` (default: ``draw_dtype``).
    """
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, heads, n, head_dim)
    dtype = draw_dtype if dtype is None else dtype
    return tuple(torch.randn(shape, generator=gen, dtype=draw_dtype).to(device=device, dtype=dtype) for _ in range(3))


def range_inputs(R: float, n: int, seed: int, *, head_dim: int = 4, heads: int = 4):
    """float64 q, k, v (1, heads, n, head_dim) whose similarities s = q·k/√D fill [−R, R].

    q and k are iid Gaussian directions scaled to the norm ρ = (R √D)^{1/2}, so
    s = ρ² cos θ / √D = R cos θ ∈ [−R, R]; v is iid N(0, 1). The bridge study and the report card
    test kernels on exactly the range a 1-D approximation was fitted on.
    """
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, heads, n, head_dim, generator=gen, dtype=torch.float64) for _ in range(3))
    rho = math.sqrt(R * math.sqrt(head_dim))
    return q / q.norm(dim=-1, keepdim=True) * rho, k / k.norm(dim=-1, keepdim=True) * rho, v
