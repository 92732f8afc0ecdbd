"""Linear attention from a feature map: the efficient (chunked) forms, linear in N.

The explicit reference forms they are tested against live in :mod:`approxlab.core.naive`.

A kernel variant supplies feature maps with κ(q, k) = φ_q(q) · φ_k(k). Each map returns
``(f, log_scale)`` with the true feature φ(x) = f · exp(log_scale): the log scale lets exp-based
features (Performer) stay finite. A per-query scale cancels in the row normalisation and is ignored;
per-key scales are carried exactly (running maximum, as in online softmax).

Explicit form (reference, builds N×N):
    a_ij = κ_ij / Σ_{l ∈ row i} κ_il,      o = a v
Efficient form (never builds N×N, linear in N):
    non-causal:  o_i = φ(q_i) S / φ(q_i) z,   S = Σ_j φ(k_j) v_jᵀ,  z = Σ_j φ(k_j)
    causal:      chunks of C positions; inside a chunk the masked C×C block, across chunks the
                 prefix state (S, z), so the cost is O(N·C·F + N·F·Dv). Without key scales every
                 chunk of a pass runs at once (exclusive cumsum of the chunk states, ``_causal_parallel``);
                 with them (Performer) chunk after chunk, rescaling by the running maximum
                 (``_causal_sequential``).
A row whose kernel mass Σ_l κ_il is exactly zero (possible for ``relu``) gets zero weights and output.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch

from . import budget
from .naive import causal_mask, safe_divide
from .protocol import FeatureMap
from .states import chunk_prefix_states, chunked

# positions per causal chunk of the torch forms, by feature width F: (largest F, chunk length) pairs in
# order, the fastest length measured for each width (see causal_chunk). figures/causal_chunk.csv, N = 4096,
# B·H = 8, D = 64, float32, 2 threads, C = 32 … 512: F = 64 and 128 are fastest at C = 128 (64 within 4 %;
# 512 costs 1.7-2.1×), F = 266 … 4096 at C = 64 (128 is 5-26 % slower: the C×C block and the per-chunk
# states grow with C·F). The fused kernel keeps its own (approxlab.core.fused.DEFAULT_CHUNK).
CAUSAL_CHUNKS = ((128, 128), (float("inf"), 64))
BACKENDS = ("torch", "triton")
# the non-causal pass takes keys in blocks of about this many feature elements (rows × features ×
# batch·heads; 4 MiB in float32), but never fewer than _MIN_BLOCK_ROWS rows (wide feature maps like Taylor's
# pay a per-block cost to build their features). figures/noncausal_blocks.csv (N = 16384, B·H = 8, D = 64,
# float32, freed memory kept as in every bench timing): F = 64 is fastest at 1024-2048 rows (this gives 2048;
# 512 rows are 5-18 % slower, 128 rows 1.8×), F = 266 at 512 rows (this gives 512; 2048 rows are 1.7×)
_BLOCK_ELEMENTS = 2**20
_MIN_BLOCK_ROWS = 512
# elements held at once by one pass of the chunk-parallel causal form (features, per-chunk states, C×C blocks)
_PASS_ELEMENTS = 2**22
# memory: feature-sized buffers a block holds at once (its features, a feature map's intermediate, the other
# side's block), and the most one block's features may take: half the state, or this floor
_FEATURE_COPIES = 3
_FEATURE_FLOOR_BYTES = 256 * 2**20


def causal_chunk(feature_width: int) -> int:
    """The causal chunk length C for feature width F: the first entry of :data:`CAUSAL_CHUNKS` whose
    width bound is ≥ F. The table holds the fastest C per width measured on this project's CPU
    (``approxlab bench --chunk-sizes``, ``figures/causal_chunk.csv``; a test checks the table against it)."""
    return next(chunk for width, chunk in CAUSAL_CHUNKS if feature_width <= width)


def noncausal_block(feature_width: int, batch_heads: int) -> int:
    """Rows per key/query block of the non-causal pass: about ``_BLOCK_ELEMENTS`` feature elements, at least
    ``_MIN_BLOCK_ROWS`` (measured: ``figures/noncausal_blocks.csv``; a test holds the choice to it)."""
    return max(_MIN_BLOCK_ROWS, _BLOCK_ELEMENTS // max(1, feature_width * batch_heads))


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision inputs are computed in float32 (sums over N overflow float16); others as given."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def row_condition(query_map: FeatureMap, key_map: FeatureMap, q: torch.Tensor, k: torch.Tensor, *,
                  causal: bool = False) -> torch.Tensor:
    """Condition number of each row's kernel sum in the feature basis (…, Nq):

        cond_i = Σ_l Σ_f |φ_q(q_i)_f| |φ_k(k_l)_f| e^{c_l} / |Σ_l φ_q(q_i)·φ_k(k_l) e^{c_l}|

    The efficient form sums feature products, so its rounding error is about ε·F·cond_i relative to the
    row's output scale, whatever the order of summation. Non-negative features (linear, relu,
    performer's positive map, elu/relu HLA) have cond = 1; signed features (odd Taylor orders, s^p and
    minimax through monomials, trig features) cancel when κ ≪ Σ|terms|, e.g. s^p for a key nearly
    perpendicular to the query (inf where the row sum is exactly 0). Builds N×N: a diagnostic.
    """
    entries = q.shape[:-1].numel() * k.shape[-2]
    budget.require(4 * entries * q.element_size(), f"row_condition's N×N matrices (B·H·Nq·Nk = {entries:,} entries "
                                                   "each, four at once: a diagnostic; pass fewer rows of q)")
    fq, _ = query_map(q)
    fk, ck = key_map(k)
    absolute, signed = fq.abs() @ fk.abs().transpose(-1, -2), fq @ fk.transpose(-1, -2)
    weights = None
    if ck is not None:
        weights = ck.unsqueeze(-2).expand(signed.shape)
    mask = causal_mask(*signed.shape[-2:], signed.device) if causal else None
    if weights is not None:
        if mask is not None:
            weights = weights.masked_fill(~mask, float("-inf"))
        weights = torch.exp(weights - weights.amax(-1, keepdim=True))
        absolute, signed = absolute * weights, signed * weights
    if mask is not None:
        absolute, signed = absolute.masked_fill(~mask, 0.0), signed.masked_fill(~mask, 0.0)
    return absolute.sum(-1) / signed.sum(-1).abs()


# ----------------------------------------------------------------------------------------------
# efficient form
# ----------------------------------------------------------------------------------------------
def efficient_attention(
    query_map: FeatureMap,
    key_map: FeatureMap,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool,
    chunk_size: Optional[int] = None,
    feature_width: Optional[int] = None,
    backend: str = "torch",
    label: str = "the feature map",
) -> torch.Tensor:
    """o = normalised φ_q(Q) φ_k(K)ᵀ V without forming N×N; see the module docstring.

    ``chunk_size``: causal chunk length, or rows per key/query block when non-causal (None: the
    measured default for the feature width, shortened for wide feature maps so a block's features fit
    the memory budget). ``feature_width`` (F) sizes the key blocks and the state
    before anything is allocated; it is probed from one key when not given. ``label`` names the kernel
    and its size parameter in a :class:`~approxlab.core.budget.MemoryBudgetError`.
    ``backend="triton"``: the causal form in one fused kernel (:mod:`approxlab.core.fused`; feature maps
    without a per-key scale); the non-causal form is the same torch GEMMs for either backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if feature_width is None:
        feature_width = key_map(k[..., :1, :])[0].shape[-1]
    if chunk_size is not None:  # a chunk or block longer than the sequence is the sequence
        chunk_size = max(1, min(chunk_size, max(q.shape[-2], k.shape[-2])))
    batch_heads, dv, itemsize = q.shape[:-2].numel(), v.shape[-1], v.element_size()

    def check_work(chunk: int = 0) -> None:  # after the memory plan, before any work
        budget.require_work(efficient_flops(batch_heads, q.shape[-2], k.shape[-2], q.shape[-1], dv, feature_width,
                                            chunk),
                            f"{label}, (B·H, Nq, Nk, D, Dv) = ({batch_heads}, {q.shape[-2]}, {k.shape[-2]}, "
                            f"{q.shape[-1]}, {dv}){', causal' if causal else ''}")

    if causal and backend == "triton":
        check_work(chunk_size or causal_chunk(feature_width))
        return _causal_fused(query_map, key_map, q, k, v, chunk_size)
    if causal:
        preferred = chunk_size or causal_chunk(feature_width)
        chunk = block_rows(q.shape[-2], feature_width, batch_heads, dv, itemsize, preferred=preferred, label=label)
        if chunk_size is not None and chunk < chunk_size:  # an explicit chunk length is kept, if the budget allows
            block_rows(chunk_size, feature_width, batch_heads, dv, itemsize, preferred=chunk_size, label=label,
                       rows=chunk_size)
            chunk = chunk_size
        check_work(chunk)
        return _causal(query_map, key_map, q, k, v, chunk, feature_width)
    preferred = chunk_size or noncausal_block(feature_width, batch_heads)
    rows = block_rows(max(k.shape[-2], q.shape[-2]), feature_width, batch_heads, dv, itemsize, preferred=preferred,
                      label=label)
    check_work()
    return _noncausal(query_map, key_map, q, k, v, rows)


def efficient_flops(batch_heads: int, nq: int, nk: int, head_dim: int, dv: int, feature_width: int,
                    chunk: int = 0) -> float:
    """Estimated floating-point operations of the efficient form (checked against the work budget):

        2·B·H·(Nq + Nk)·F·(D + Dv + 1)  +  2·B·H·N·C·(F + Dv)   (the second term causal, chunks of C)

    the feature maps (taken as a D → F projection per row, an upper estimate for most maps), the state
    updates and read-outs (F·(Dv + 1) per row each way), and the causal C × C blocks inside each chunk.
    """
    flops = 2.0 * batch_heads * (nq + nk) * feature_width * (head_dim + dv + 1)
    if chunk:
        flops += 2.0 * batch_heads * nq * min(chunk, nq) * (feature_width + dv)
    return flops


def block_rows(n: int, feature_width: int, batch_heads: int, dv: int, itemsize: int, *, preferred: int,
               label: str, rows: Optional[int] = None) -> int:
    """Rows per block of features (≤ ``preferred``), checked against the memory budget.

    A pass holds the state S and normaliser (B·H·F·(Dv+1)), one block's update of the same size, and
    ``_FEATURE_COPIES`` blocks of features (rows · B·H·F); a block's features take at most half the state
    (or ``_FEATURE_FLOOR_BYTES``), so wide maps (HLA's D^p, Taylor's C(D+p, p)) run in short blocks with a
    peak near twice the state. ``rows`` given: check that many rows instead of choosing.
    """
    state = batch_heads * feature_width * (dv + 1) * itemsize
    row = _FEATURE_COPIES * batch_heads * feature_width * itemsize
    need = 2 * state + row * (rows or 1)
    what = (f"{label}: the state (B·H·F·(Dv+1) = {batch_heads}·{feature_width:,}·{dv + 1}) and "
            + (f"a chunk of {rows} rows of features" if rows else "one row of features"))
    budget.require(need, what)
    if rows:
        return rows
    fit = (budget.get_memory_budget() - 2 * state) // row
    cap = max(state // 2, _FEATURE_FLOOR_BYTES) // row
    return int(max(1, min(n, preferred, fit, cap)))


def _accumulate(total: Optional[torch.Tensor], part: torch.Tensor) -> torch.Tensor:
    """total + part, in place when autograd does not need ``total`` (one state-sized buffer less)."""
    if total is None:
        return part
    if torch.is_grad_enabled() and (total.requires_grad or part.requires_grad):
        return total + part
    return total.add_(part)


def _causal_fused(query_map, key_map, q, k, v, chunk_size):
    from . import fused

    if not fused.available():
        raise RuntimeError("backend='triton' needs triton and a CUDA device (or TRITON_INTERPRET=1 on CPU)")
    if q.dtype not in fused.DTYPES:
        raise TypeError(f"backend='triton' takes float32, float16 or bfloat16 q, k, v, got {q.dtype}; "
                        "use backend='torch' for float64")
    fq, _ = query_map(q)
    fk, ck = key_map(k)
    if ck is not None:
        raise ValueError("backend='triton' takes feature maps without a per-key scale (not performer); "
                         "use backend='torch'")
    return fused.causal_linear_triton(fq, fk, v, chunk_size=chunk_size or fused.DEFAULT_CHUNK)


def _project(f: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """f · z per row: (…, n, F) with (…, F) -> (…, n) (einsum: a one-column bmm is several times slower on CPU)."""
    return torch.einsum("...nf,...f->...n", f, z)


def _divide(num: torch.Tensor, den: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Row outputs num_i / den_i with num (…, n, Dv) and den (…, n), into ``out`` when given."""
    return safe_divide(num, den.unsqueeze(-1), out)


def _output(q: torch.Tensor, v: torch.Tensor) -> Optional[torch.Tensor]:
    """The (…, Nq, Dv) output that blocks write into, or None under autograd (blocks are concatenated)."""
    if torch.is_grad_enabled() and (q.requires_grad or v.requires_grad):
        return None
    return torch.empty(*q.shape[:-1], v.shape[-1], dtype=v.dtype, device=v.device)


def _noncausal(query_map, key_map, q, k, v, step):
    nk, nq = k.shape[-2], q.shape[-2]
    # state S = Σ_j φ(k_j) v_jᵀ (…, F, Dv) and normaliser z = Σ_j φ(k_j) (…, F); with key scales both are
    # held relative to exp(running max)
    state = normaliser = running_max = None
    for start in range(0, nk, step):
        fk, ck = key_map(k[..., start : start + step, :])
        vb = v[..., start : start + step, :]
        if ck is None:
            kz = fk.sum(-2)
        else:  # carry exp(c_j − running max) exactly
            block_max = ck.amax(-1)
            new_max = block_max if running_max is None else torch.maximum(running_max, block_max)
            if state is not None:
                rescale = torch.exp(running_max - new_max)
                state, normaliser = state * rescale[..., None, None], normaliser * rescale[..., None]
            weight = torch.exp(ck - new_max[..., None])  # (…, n): cheaper to scale v than the (n, F) features
            vb = vb * weight[..., None]
            kz = (weight.unsqueeze(-2) @ fk).squeeze(-2)
            running_max = new_max
        state, normaliser = _accumulate(state, fk.transpose(-1, -2) @ vb), _accumulate(normaliser, kz)
        del fk
    out, outputs = _output(q, v), []
    for start in range(0, nq, step):
        fq, _ = query_map(q[..., start : start + step, :])
        block = None if out is None else out[..., start : start + step, :]
        outputs.append(_divide(fq @ state, _project(fq, normaliser), block))
    return out if out is not None else torch.cat(outputs, dim=-2)


def _causal(query_map, key_map, q, k, v, chunk_size, feature_width):
    """Chunk-parallel without key scales when a pass holds at least two chunks; chunk after chunk otherwise
    (key scales, or states so wide that the per-chunk states of a pass would dominate memory)."""
    _, scale = key_map(k[..., :1, :])
    if scale is None and _chunks_per_pass(v, chunk_size, feature_width) > 1:
        return _causal_parallel(query_map, key_map, q, k, v, chunk_size, feature_width)
    return _causal_sequential(query_map, key_map, q, k, v, chunk_size)


def _chunks_per_pass(v, chunk_size, feature_width):
    n, dv = v.shape[-2], v.shape[-1]
    batch_heads = max(1, v.numel() // max(1, n * dv))
    f = feature_width
    per_chunk = batch_heads * chunk_size * (2 * f + f * dv // chunk_size + chunk_size + dv)
    return max(1, _PASS_ELEMENTS // per_chunk)


def _causal_parallel(query_map, key_map, q, k, v, chunk_size, feature_width):
    """Chunk-parallel causal form for feature maps without a key scale (the form of fla's naive chunk op).

    Rows go in passes of several chunks; inside a pass every chunk c at once:
        kv_c = φ(K_c)ᵀ V_c,   S_<c = S_prev + Σ_{c' < c} kv_c'    (exclusive cumsum over chunks)
        o_c  = [tril(φ(Q_c) φ(K_c)ᵀ) V_c + φ(Q_c) S_<c] / [rowsum tril(…) + φ(Q_c)·z_<c]
    so a pass is a handful of batched GEMMs instead of a dozen tensor ops per chunk.
    """
    n = v.shape[-2]
    rows = chunk_size * _chunks_per_pass(v, chunk_size, feature_width)
    state = normaliser = None  # S = Σ φ(k_j) v_jᵀ and z = Σ φ(k_j) over the previous passes
    out, outputs = _output(q, v), []
    for start in range(0, n, rows):
        sl = slice(start, start + rows)
        length = min(rows, n - start)
        fq, fk, vb = (chunked(x, chunk_size) for x in (query_map(q[..., sl, :])[0], key_map(k[..., sl, :])[0],
                                                        v[..., sl, :]))  # (…, chunks, C, ·)
        prefix, prefix_z, total, total_z = chunk_prefix_states(fk, vb)
        if state is not None:
            prefix, prefix_z = _accumulate(prefix, state.unsqueeze(-3)), _accumulate(prefix_z, normaliser.unsqueeze(-2))
            total, total_z = _accumulate(total, state), _accumulate(total_z, normaliser)
        block = (fq @ fk.transpose(-1, -2)).tril_()  # (…, chunks, C, C), j <= i
        num = _accumulate(block @ vb, fq @ prefix)
        den = _accumulate(block.sum(-1), _project(fq, prefix_z))
        if out is None:
            outputs.append(_divide(num, den).flatten(-3, -2)[..., :length, :])
        elif length == num.shape[-3] * chunk_size:  # no padding: divide straight into the output
            _divide(num, den, out[..., sl, :].unflatten(-2, num.shape[-3:-1]))
        else:
            out[..., sl, :].copy_(_divide(num, den).flatten(-3, -2)[..., :length, :])
        state, normaliser = total, total_z
    return out if out is not None else torch.cat(outputs, dim=-2)


def _causal_sequential(query_map, key_map, q, k, v, chunk_size):
    n = q.shape[-2]
    # prefix state S = Σ_{j < chunk} φ(k_j) v_jᵀ and z = Σ_{j < chunk} φ(k_j), scaled by exp(−prev_max)
    # when keys carry a scale
    state = normaliser = prev_max = None
    out, outputs = _output(q, v), []
    for start in range(0, n, chunk_size):
        sl = slice(start, start + chunk_size)
        fq, _ = query_map(q[..., sl, :])
        fk, ck = key_map(k[..., sl, :])
        vc = v[..., sl, :]
        block = (fq @ fk.transpose(-1, -2)).tril_()  # (…, C, C), j <= i
        if ck is None:
            num, den = block @ vc, block.sum(-1)
            if state is not None:
                num = _accumulate(num, fq @ state)
                den = _accumulate(den, _project(fq, normaliser))
            state = _accumulate(state, fk.transpose(-1, -2) @ vc)
            normaliser = _accumulate(normaliser, fk.sum(-2))
        else:
            # row max m_i = max(prev, max_{j<=i} c_j): every exponent below is <= 0
            row_max = torch.cummax(ck, dim=-1).values
            if prev_max is not None:
                row_max = torch.maximum(row_max, prev_max[..., None])
            # exp(c_j − m_i) for j <= i; masked to −inf before exp, as a later key's exp(c_j − m_i) may
            # overflow and the mask would then meet it as 0 · inf in the backward pass
            exponent = ck.unsqueeze(-2) - row_max.unsqueeze(-1)
            above = torch.ones(exponent.shape[-2:], dtype=torch.bool, device=exponent.device).triu(1)
            decay = torch.exp(exponent.masked_fill(above, float("-inf")))
            block = block * decay
            num, den = block @ vc, block.sum(-1)
            end_max = row_max[..., -1]
            if state is not None:
                carry = torch.exp(prev_max[..., None] - row_max)  # exp(m_prev − m_i)
                num = num + (fq @ state) * carry[..., None]
                den = den + _project(fq, normaliser) * carry
            weight = torch.exp(ck - end_max[..., None])
            kv, kz = fk.transpose(-1, -2) @ (vc * weight[..., None]), (weight.unsqueeze(-2) @ fk).squeeze(-2)
            if state is None:
                state, normaliser = kv, kz
            else:
                rescale = torch.exp(prev_max - end_max)
                state = state * rescale[..., None, None] + kv
                normaliser = normaliser * rescale[..., None] + kz
            prev_max = end_max
        outputs.append(_divide(num, den, None if out is None else out[..., sl, :]))
    return out if out is not None else torch.cat(outputs, dim=-2)
