"""Fused causal linear attention: a Triton kernel for the chunked causal form, beside its reference.

Given features φ_q = fq, φ_k = fk (…, N, F) and values v (…, N, Dv), causal linear attention is

    o_i = Σ_{j≤i} (fq_i·fk_j) v_j / Σ_{j≤i} fq_i·fk_j          (0 where the denominator is 0)

:func:`causal_linear_reference` computes it with the masked N×N matrix (the reference form).
:func:`causal_linear_triton` is the chunk-parallel form (the design of flash-linear-attention's chunk
kernels): with chunks c of T rows,

    states (torch, batched GEMM + cumsum):  S_<c = Σ_{c' < c} fk_c'ᵀ v_c',   z_<c = Σ_{c' < c} Σ_rows fk_c'
    outputs (one Triton kernel, a program per chunk × batch·head × value block):
        o_c = [tril(fq_c fk_cᵀ) v_c + fq_c S_<c] / [rowsum tril(fq_c fk_cᵀ) + fq_c·z_<c]

so the C×C block never leaves the chip and every chunk runs in parallel; the prefix states cost
(N/T)·F·Dv floats per head in float32. Features without a per-key scale only (linear, relu and other
plain feature maps, F ≤ 256); the engine keeps the torch path for the rest. Runs on CUDA, or on CPU
under Triton's interpreter (``TRITON_INTERPRET=1`` set before ``triton`` is imported), which is how
the tests check it without a GPU.
"""

from __future__ import annotations

import torch

from .checks import check_int
from .naive import normalise_kernel
from .states import chunk_prefix_states, chunked

MAX_FEATURES = 256
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
DEFAULT_CHUNK = 64


def causal_linear_reference(fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The masked N×N form: a = tril(fq fkᵀ) row-normalised (:func:`approxlab.core.naive.normalise_kernel`), o = a v,
    in float32 or wider."""
    work = torch.promote_types(fq.dtype, torch.float32)
    weights = normalise_kernel(fq.to(work) @ fk.to(work).transpose(-1, -2), causal=True)
    return (weights @ v.to(work)).to(v.dtype)


def available() -> bool:
    """True when Triton imports and can run here (a CUDA device, or the interpreter)."""
    import os

    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


def _check(fq, fk, v):
    if fq.shape != fk.shape or fq.shape[:-1] != v.shape[:-1] or fq.ndim != 4:
        raise ValueError(f"fq, fk must be (B, H, N, F) and v (B, H, N, Dv) with matching B, H, N; got "
                         f"{tuple(fq.shape)}, {tuple(fk.shape)}, {tuple(v.shape)}")
    if fq.shape[-1] > MAX_FEATURES:
        raise ValueError(f"each program of the fused kernel holds an F × 64 state tile on chip: "
                         f"F <= {MAX_FEATURES}, got {fq.shape[-1]}")
    if not (fq.device == fk.device == v.device):
        raise ValueError("fq, fk, v must be on one device")
    for name, x in (("fq", fq), ("fk", fk), ("v", v)):
        if x.dtype not in DTYPES:
            raise TypeError(f"{name} must be float32, float16 or bfloat16, got {x.dtype}")


def causal_linear_triton(fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor, *, chunk_size: int = DEFAULT_CHUNK,
                         block_v: int = 64, exact_float32: bool = True) -> torch.Tensor:
    """Causal linear attention, chunk-parallel: prefix states in torch, outputs in one Triton launch.

    Accumulates in float32 whatever the input dtype; ``exact_float32`` keeps float32 products in IEEE
    precision (off: TF32 tensor cores on GPUs that have them, about 1e-3 relative). Returns v's dtype.
    """
    _check(fq, fk, v)
    chunk_size, block_v = check_int(chunk_size, "chunk_size", minimum=1), check_int(block_v, "block_v", minimum=1)
    import triton

    from .fused_triton import chunk_output_fwd as kernel

    b, h, n, f = fq.shape
    dv = v.shape[-1]
    block_t = max(16, triton.next_power_of_2(chunk_size))
    fq, fk, v = (x.reshape(b * h, n, x.shape[-1]).contiguous() for x in (fq, fk, v))
    state, normaliser, _, _ = chunk_prefix_states(chunked(fk.float(), block_t), chunked(v.float(), block_t))
    out = torch.empty_like(v)
    block_f = max(16, triton.next_power_of_2(f))
    block_v = max(16, min(triton.next_power_of_2(block_v), triton.next_power_of_2(dv)))
    grid = (state.shape[1], b * h, triton.cdiv(dv, block_v))
    kernel[grid](fq, fk, v, state, normaliser, out, n, f, dv,
                 fq.stride(0), fq.stride(1), v.stride(0), v.stride(1),
                 state.stride(0), state.stride(1), state.stride(2), normaliser.stride(0), normaliser.stride(1),
                 out.stride(0), out.stride(1),
                 BLOCK_T=block_t, BLOCK_F=block_f, BLOCK_V=block_v, IEEE=bool(exact_float32))
    return out.reshape(b, h, n, dv)
