"""Seeded inputs the benchmarks and the numerical studies draw: iid N(0, 1) q, k, v, and q, k whose
similarities fill a range [−R, R]."""

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


def range_filling_qkv(R: float, n: int, seed: int, head_dim: int = 4, heads: int = 4):
    """q, k, v (1, heads, n, head_dim) float64 with q, k of norm √(R·√D) and random directions, so that
    s = q·k/√D = R cos θ fills [−R, R]; v iid N(0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, heads, n, head_dim, generator=gen, dtype=torch.float64) for _ in range(3))
    rho = math.sqrt(R * math.sqrt(head_dim))
    return q / q.norm(dim=-1, keepdim=True) * rho, k / k.norm(dim=-1, keepdim=True) * rho, v
