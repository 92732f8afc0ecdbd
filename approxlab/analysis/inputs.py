"""Seeded iid N(0, 1) q, k, v: the inputs the benchmarks and the numerical studies draw."""

from __future__ import annotations

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
