"""Fused causal linear attention: one Triton kernel for the chunked causal form, beside its reference.

Given features φ_q = fq, φ_k = fk (…, N, F) and values v (…, N, Dv), causal linear attention is

    o_i = Σ_{j≤i} (fq_i·fk_j) v_j / Σ_{j≤i} fq_i·fk_j          (0 where the denominator is 0)

:func:`causal_linear_reference` computes it with the masked N×N matrix (the reference form).
:func:`causal_linear_triton` is the chunked form in one kernel launch per (value block, batch·head):
for chunks of T rows it keeps the prefix state S = Σ_{j<chunk} fk_j v_jᵀ (F × Dv) and z = Σ fk_j in
registers, so the Python-level chunk loop of :mod:`approxlab.engine` (about 15 launches per chunk,
which on a GPU costs more than the arithmetic) becomes a single launch:

    num = tril(fq_c fk_cᵀ) v_c + fq_c S,   den = rowsum tril(fq_c fk_cᵀ) + fq_c·z,
    S  += fk_cᵀ v_c,                        z  += Σ_rows fk_c.

Features without a per-key scale only (linear, relu and other plain feature maps, F ≤ 256); the
engine keeps the torch path for the rest. Runs on CUDA, or on CPU under Triton's interpreter
(``TRITON_INTERPRET=1`` set before ``triton`` is imported), which is how the tests check it without a GPU.
"""

from __future__ import annotations

import torch

from .engine import causal_mask, safe_divide

MAX_FEATURES = 256
DEFAULT_CHUNK = 64


def causal_linear_reference(fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The masked N×N form: a = tril(fq fkᵀ), o = a v / rowsum(a), in float32 or wider."""
    work = torch.promote_types(fq.dtype, torch.float32)
    n = fq.shape[-2]
    a = (fq.to(work) @ fk.to(work).transpose(-1, -2)).masked_fill(~causal_mask(n, n, fq.device), 0.0)
    return safe_divide(a @ v.to(work), a.sum(-1, keepdim=True)).to(v.dtype)


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
        raise ValueError(f"the fused kernel holds the F × Dv state in registers: F <= {MAX_FEATURES}, got {fq.shape[-1]}")
    if not (fq.device == fk.device == v.device):
        raise ValueError("fq, fk, v must be on one device")
    for name, x in (("fq", fq), ("fk", fk), ("v", v)):
        if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise TypeError(f"{name} must be float32, float16 or bfloat16, got {x.dtype}")


_KERNEL = None


def _kernel():
    """Build the Triton kernel on first use (so importing approxlab never needs triton)."""
    global _KERNEL
    if _KERNEL is not None:
        return _KERNEL
    import triton
    import triton.language as tl

    @triton.jit
    def causal_linear_fwd(Q, K, V, O, n, num_features, value_dim,
                          stride_qb, stride_qn, stride_vb, stride_vn, stride_ob, stride_on,
                          BLOCK_T: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_V: tl.constexpr,
                          IEEE: tl.constexpr):
        bh = tl.program_id(1)
        offs_t = tl.arange(0, BLOCK_T)
        offs_f = tl.arange(0, BLOCK_F)
        offs_v = tl.program_id(0) * BLOCK_V + tl.arange(0, BLOCK_V)
        f_ok = offs_f < num_features
        v_ok = offs_v < value_dim
        state = tl.zeros([BLOCK_F, BLOCK_V], dtype=tl.float32)
        normaliser = tl.zeros([BLOCK_F], dtype=tl.float32)
        for start in range(0, n, BLOCK_T):
            rows = start + offs_t
            r_ok = rows < n
            qk_mask = r_ok[:, None] & f_ok[None, :]
            q = tl.load(Q + bh * stride_qb + rows[:, None] * stride_qn + offs_f[None, :], mask=qk_mask, other=0.0)
            k = tl.load(K + bh * stride_qb + rows[:, None] * stride_qn + offs_f[None, :], mask=qk_mask, other=0.0)
            v = tl.load(V + bh * stride_vb + rows[:, None] * stride_vn + offs_v[None, :],
                        mask=r_ok[:, None] & v_ok[None, :], other=0.0)
            q, k, v = q.to(tl.float32), k.to(tl.float32), v.to(tl.float32)
            if IEEE:
                a = tl.dot(q, tl.trans(k), input_precision="ieee")
            else:
                a = tl.dot(q, tl.trans(k))
            a = tl.where(offs_t[:, None] >= offs_t[None, :], a, 0.0)
            if IEEE:
                num = tl.dot(a, v, input_precision="ieee") + tl.dot(q, state, input_precision="ieee")
            else:
                num = tl.dot(a, v) + tl.dot(q, state)
            den = tl.sum(a, axis=1) + tl.sum(q * normaliser[None, :], axis=1)
            safe = tl.where(den == 0.0, 1.0, den)
            out = tl.where(den[:, None] == 0.0, 0.0, num / safe[:, None])
            tl.store(O + bh * stride_ob + rows[:, None] * stride_on + offs_v[None, :],
                     out.to(O.dtype.element_ty), mask=r_ok[:, None] & v_ok[None, :])
            if IEEE:
                state += tl.dot(tl.trans(k), v, input_precision="ieee")
            else:
                state += tl.dot(tl.trans(k), v)
            normaliser += tl.sum(k, axis=0)

    _KERNEL = (triton, causal_linear_fwd)
    return _KERNEL


def causal_linear_triton(fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor, *, chunk_size: int = DEFAULT_CHUNK,
                         block_v: int = 64, exact_float32: bool = True) -> torch.Tensor:
    """Causal linear attention in one Triton launch per (value block, batch·head); see the module docstring.

    Accumulates in float32 whatever the input dtype; ``exact_float32`` keeps float32 products in IEEE
    precision (off: TF32 tensor cores on GPUs that have them, about 1e-3 relative). Returns v's dtype.
    """
    _check(fq, fk, v)
    triton, kernel = _kernel()
    b, h, n, f = fq.shape
    dv = v.shape[-1]
    fq, fk, v = (x.reshape(b * h, n, x.shape[-1]).contiguous() for x in (fq, fk, v))
    out = torch.empty_like(v)
    block_f = max(16, triton.next_power_of_2(f))
    block_v = max(16, min(triton.next_power_of_2(block_v), triton.next_power_of_2(dv)))
    block_t = max(16, triton.next_power_of_2(chunk_size))
    grid = (triton.cdiv(dv, block_v), b * h)
    kernel[grid](fq, fk, v, out, n, f, dv, fq.stride(0), fq.stride(1), v.stride(0), v.stride(1),
                 out.stride(0), out.stride(1), BLOCK_T=block_t, BLOCK_F=block_f, BLOCK_V=block_v,
                 IEEE=bool(exact_float32))
    return out.reshape(b, h, n, dv)
