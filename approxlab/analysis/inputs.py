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


def held_out_qkv(source: str, n: int, *, heads: int = 4, head_dim: int = 32, calibration_seed: int = 10_000):
    """(q, k, v) to measure on and an independent (q, k) to fit on, each (1, H, N, D) float64.

    ``source`` is ``"minilm"`` (every head of all-MiniLM-L6 as one batch of layers·heads heads: the second
    window of the standard-library text to measure on, the first to fit on; the ``real`` extra) or
    ``"tau=T"`` (iid N(0, 1) q, k, v with q and k scaled by the temperature T, and a second draw from
    ``calibration_seed`` to fit on).
    """
    if source == "minilm":
        from . import real_heads

        found = real_heads.extract_heads(real_heads.stdlib_text(), seq_len=n, num_chunks=2)
        flat = lambda t, c: t[:, c].reshape(1, -1, *t.shape[-2:])  # noqa: E731  (layers·heads as heads)
        return (flat(found.q, 1), flat(found.k, 1), flat(found.v, 1)), (flat(found.q, 0), flat(found.k, 0))
    if not (isinstance(source, str) and source.startswith("tau=")):
        raise ValueError(f"source must be 'minilm' or 'tau=T', got {source!r}")
    tau = float(source.split("=", 1)[1])
    q, k, v = gaussian_qkv(1, heads, n, head_dim, seed=0, draw_dtype=torch.float64)
    qc, kc, _ = gaussian_qkv(1, heads, n, head_dim, seed=calibration_seed, draw_dtype=torch.float64)
    return (q * tau, k * tau, v), (qc * tau, kc * tau)
