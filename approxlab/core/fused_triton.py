"""The Triton source of :mod:`approxlab.core.fused` (imported only when the fused path runs)."""

import triton
import triton.language as tl


@triton.jit
def _dot(a, b, IEEE: tl.constexpr):
    """a @ b accumulated in float32; IEEE: exact float32 products (no TF32)."""
    if IEEE:
        return tl.dot(a, b, input_precision="ieee")
    return tl.dot(a, b)


@triton.jit
def chunk_output_fwd(Q, K, V, S, Z, O, n, feature_width, value_dim,
                     stride_qb, stride_qn, stride_vb, stride_vn, stride_sb, stride_sc, stride_sf,
                     stride_zb, stride_zc, stride_ob, stride_on,
                     BLOCK_T: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_V: tl.constexpr, IEEE: tl.constexpr):
    """One chunk × batch·head × value block:
    o_c = [tril(q_c k_cᵀ) v_c + q_c S_<c] / [rowsum tril(q_c k_cᵀ) + q_c·z_<c]  (0 where the denominator is 0)."""
    chunk, bh, vblock = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_t = tl.arange(0, BLOCK_T)
    offs_f = tl.arange(0, BLOCK_F)
    offs_v = vblock * BLOCK_V + tl.arange(0, BLOCK_V)
    rows = chunk * BLOCK_T + offs_t
    r_ok, f_ok, v_ok = rows < n, offs_f < feature_width, offs_v < value_dim
    qk_mask = r_ok[:, None] & f_ok[None, :]
    q = tl.load(Q + bh * stride_qb + rows[:, None] * stride_qn + offs_f[None, :], mask=qk_mask, other=0.0)
    k = tl.load(K + bh * stride_qb + rows[:, None] * stride_qn + offs_f[None, :], mask=qk_mask, other=0.0)
    v = tl.load(V + bh * stride_vb + rows[:, None] * stride_vn + offs_v[None, :],
                mask=r_ok[:, None] & v_ok[None, :], other=0.0)
    state = tl.load(S + bh * stride_sb + chunk * stride_sc + offs_f[:, None] * stride_sf + offs_v[None, :],
                    mask=f_ok[:, None] & v_ok[None, :], other=0.0)
    normaliser = tl.load(Z + bh * stride_zb + chunk * stride_zc + offs_f, mask=f_ok, other=0.0)
    q, k, v = q.to(tl.float32), k.to(tl.float32), v.to(tl.float32)
    a = _dot(q, tl.trans(k), IEEE)
    a = tl.where(offs_t[:, None] >= offs_t[None, :], a, 0.0)  # j <= i inside the chunk
    num = _dot(a, v, IEEE) + _dot(q, state, IEEE)
    den = tl.sum(a, axis=1) + tl.sum(q * normaliser[None, :], axis=1)
    safe = tl.where(den == 0.0, 1.0, den)
    out = tl.where(den[:, None] == 0.0, 0.0, num / safe[:, None])
    tl.store(O + bh * stride_ob + rows[:, None] * stride_on + offs_v[None, :],
             out.to(O.dtype.element_ty), mask=r_ok[:, None] & v_ok[None, :])
