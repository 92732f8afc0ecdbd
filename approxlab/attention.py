"""The public attention API: one call per form, every variant, (B, H, N, D) tensors as in SDPA.

    attention(q, k, v, variant, causal=False, scale=None, **params)   -> (B, H, Nq, Dv)   efficient form
    attention_weights(q, k, variant, causal=False, scale=None, **params) -> (B, H, Nq, Nk) explicit form

The similarity is s = q·k · scale (scale = 1/√D by default); kernel variants see x = q·√scale and
y = k·√scale, so x·y = s. Half-precision inputs are computed in float32 and returned in their dtype.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import budget, engine
from ._checks import check_finite_result, check_int, check_qkv, check_similarity_range, resolve_scale
from .variants import VARIANTS, build_kernel
from .variants.softmax import softmax_attention


def _prepare(q, k, v, variant, causal, scale):
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    magnitudes = check_qkv(q, k, v, causal=causal)
    scale = resolve_scale(scale, q.shape[-1])
    check_similarity_range(magnitudes, q.shape[-1], scale, engine.compute_dtype(q.dtype), variant)
    return scale


def attention(q, k, v, variant: str = "softmax", *, causal: bool = False, scale: float | None = None,
              chunk_size: int | None = None, backend: str = "torch", **params) -> torch.Tensor:
    """Efficient form of ``variant``: never allocates N×N (softmax: SDPA), linear in N for kernels.

    ``backend="triton"`` runs the causal form as one fused Triton kernel (see :mod:`approxlab.fused`).
    ``chunk_size``: positions per causal chunk (None: the backend's default).
    """
    scale = _prepare(q, k, v, variant, causal, scale)
    if backend not in engine.BACKENDS:
        raise ValueError(f"backend must be one of {list(engine.BACKENDS)}, got {backend!r}")
    if variant == "softmax":
        out = softmax_attention(q, k, v, causal=causal, scale=scale)
    else:
        if chunk_size is not None:
            chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
        kernel = build_kernel(variant, q.shape[-1], **params)
        out = kernel_attention(kernel, q, k, v, causal=causal, scale=scale, chunk_size=chunk_size, backend=backend)
    return check_finite_result(out, q, k, scale, variant, engine.compute_dtype(q.dtype))


def kernel_attention(kernel, q, k, v, *, causal: bool, scale: float, chunk_size: int | None = None,
                     backend: str = "torch") -> torch.Tensor:
    """The efficient form for an already-built kernel variant, without input checks (what
    :func:`attention` runs after checking; what the benchmarks compile)."""
    work = engine.compute_dtype(q.dtype)
    root = math.sqrt(scale)

    def scaled(feature_map):  # x = q·√scale (in the working dtype) per block, while the block is in cache
        return lambda x: feature_map(x.to(work) * root)

    out = engine.efficient_attention(
        scaled(kernel.query_features), scaled(kernel.key_features), q, k, v.to(work),
        causal=causal, chunk_size=chunk_size, num_features=kernel.num_features(q.shape[-1]), backend=backend,
        label=kernel.describe_size(q.shape[-1]),
    )
    return out.to(q.dtype)


def attention_weights(q, k, variant: str = "softmax", *, causal: bool = False, scale: float | None = None,
                      rows: slice | None = None, **params) -> torch.Tensor:
    """Explicit normalised weights a (B, H, Nq, Nk) of ``variant``, from its kernel's definition.

    ``rows=slice(a, b)`` returns only query rows a..b−1 (all keys, causal mask kept), so row metrics
    can be computed block by block without N×N memory.
    """
    scale = _prepare(q, k, None, variant, causal, scale)
    offset = 0
    if rows is not None:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError(f"rows must be a contiguous slice, got {rows!r}")
        offset = range(q.shape[-2])[rows].start if len(range(q.shape[-2])[rows]) else 0
        q = q[..., rows, :]
    work = engine.compute_dtype(q.dtype)
    budget.require(3 * q.shape[:-1].numel() * k.shape[-2] * torch.finfo(work).bits // 8,
                   f"the explicit form's weights (B·H·Nq·Nk = {q.shape[:-1].numel() * k.shape[-2]:,} entries, "
                   "with the kernel matrix and mask; rows=slice(...) computes a block of rows)")
    root = math.sqrt(scale)
    if variant == "softmax":
        matrix, col_log_scale = (q.to(work) @ k.to(work).transpose(-1, -2)) * scale, None
        weights = engine.normalise_logits(matrix, causal=causal, offset=offset)
    else:
        kernel = build_kernel(variant, q.shape[-1], **params)
        matrix, col_log_scale = kernel.kernel(q.to(work) * root, k.to(work) * root)
        weights = engine.normalise_kernel(matrix, col_log_scale, causal=causal, offset=offset)
    return check_finite_result(weights, q, k, scale, variant, work).to(q.dtype)


def explicit_attention(q, k, v, variant: str = "softmax", *, causal: bool = False, scale: float | None = None,
                       **params) -> torch.Tensor:
    """Reference output a @ v from the explicit weights (N×N memory)."""
    check_qkv(q, k, v, causal=causal)
    weights = attention_weights(q, k, variant, causal=causal, scale=scale, **params)
    work = engine.compute_dtype(q.dtype)
    return (weights.to(work) @ v.to(work)).to(q.dtype)


class Attention(nn.Module):
    """Drop-in module: ``Attention("performer", num_features=128)(q, k, v)`` → (B, H, N, Dv).

    Kernel parameters are fixed at construction, so repeated calls use the same kernel.
    """

    def __init__(self, variant: str = "softmax", *, causal: bool = False, scale: float | None = None, **params):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
        self.variant, self.causal, self.scale, self.params = variant, causal, scale, params

    def forward(self, q, k, v):
        return attention(q, k, v, self.variant, causal=self.causal, scale=self.scale, **self.params)

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.params.items() if not isinstance(v, torch.Tensor))
        return f"{self.variant!r}, causal={self.causal}{extra}"
