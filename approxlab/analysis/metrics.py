"""Row-wise divergences between attention weights, and output error on the scale of the values.

    TV(a_i, b_i)  = ½ Σ_j |a_ij − b_ij|
    KL(a_i ‖ b_i) = Σ_j a_ij log(a_ij / b_ij)
    H(a_i)        = −Σ_j a_ij log a_ij            (H / log N_i is the normalised entropy)
    err_i         = ‖o_i − ô_i‖ / rms_j ‖v_j‖     (relative to ‖v‖, not ‖o‖: ‖o_softmax‖ shrinks
                                                  like 1/√N for high-entropy rows, ‖v‖ does not)

and the best-possible error of any F-feature (rank ≤ F) attention against given weights,
:func:`low_rank_bound` (Eckart–Young–Mirsky).
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral

import torch

from ..core.budget import get_memory_budget
from ..core.checks import check_int, check_tensor
from ..api import attention_weight_blocks, key_feature_bytes
from ..variants import inputs_for, kernel_name


def row_sum64(x: torch.Tensor) -> torch.Tensor:
    """Σ_j x_ij in float64 (float64 result): the terms converted, then summed. The same bits as
    ``x.sum(-1, dtype=torch.float64)``, which for float32 terms converts each term inside the reduction,
    unvectorised, and was measured the slower of the two on CPU (torch 2.13)."""
    return x.double().sum(-1)


def row_tv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """½ Σ_j |a_ij − b_ij| per row, summed in float64 (float64 result) whatever the weights' dtype.

    The differences are formed in the weights' own dtype (the promoted dtype of ``a`` and ``b``): for
    float32 weights each |a − b| is rounded once (relative error ≤ 2⁻²⁴), so the TV is within about 1e-7
    (relative) of the TV of the same weights in float64, at a sixth of the memory traffic."""
    return 0.5 * row_sum64((a - b).abs_())


def low_rank_bound(p: torch.Tensor, features) -> dict[str, torch.Tensor]:
    """The best-possible error of any attention with ``features`` = F features against weights ``p``.

    ``p``: attention weights (…, N, N) of self-attention, non-causal (e.g. softmax); ``features``: F ≥ 1,
    an int or a sequence of them. Returns float64 tensors (…) for an int, (…, len(F)) for a sequence:

    - ``frobenius`` = sqrt(Σ_{i>F} σ_i(P)²) = min_{rank A ≤ F} ‖A − P‖_F   (Eckart–Young; exact)
    - ``nuclear``   = Σ_{i>F} σ_i(P)          = min_{rank A ≤ F} ‖A − P‖_*   (Mirsky 1960; exact)
    - ``tv``        = nuclear / (2N): a lower bound on the mean row TV of every rank-≤F matrix A
    - ``tv_frobenius`` = frobenius / (2N) ≤ ``tv``: the same bound through the Frobenius norm

    Why it binds every F-feature linear attention: its weights are A = D⁻¹ Φ_q Φ_kᵀ with Φ_q, Φ_k of
    F columns and D diagonal (the row normalisation, whatever its ε or zero rows), so rank A ≤ F. With
    R = A − P and r_i its rows, R = Σ_i e_i r_iᵀ is a sum of rank-one terms of nuclear norm ‖r_i‖₂, so
    ‖R‖_* ≤ Σ_i ‖r_i‖₂ (triangle inequality); and ½‖r_i‖₁ ≥ ½‖r_i‖₂. Hence
        mean_i TV(a_i, p_i) = (1/2N) Σ_i ‖r_i‖₁ ≥ ‖R‖_* / 2N ≥ Σ_{i>F} σ_i / 2N
                            ≥ sqrt(Σ_{i>F} σ_i²) / 2N.
    The norm bounds are attained by the truncated SVD, which need not be an attention matrix (rows
    summing to 1, entries ≥ 0), so ``frobenius`` is the exact best of a larger class, and ``tv`` is a
    lower bound, loose by up to the ℓ1/ℓ2 factors. A map's Frobenius ratio ‖A − P‖_F / ``frobenius``
    is ≥ 1 for every F-feature map. Causal masking does not keep the rank (the masked A is not low
    rank), so the bound is for non-causal attention only.
    """
    ndim = p.ndim if isinstance(p, torch.Tensor) and p.ndim >= 2 else 2  # any batch dims, then (N, N)
    check_tensor(p, "p", ndim=ndim, layout="(..., N, N)")
    if p.shape[-1] != p.shape[-2] or p.shape[-1] == 0:
        raise ValueError("p must be square self-attention weights (..., N, N) with N ≥ 1, "
                         f"got shape {tuple(p.shape)}")
    single = isinstance(features, Integral) or not isinstance(features, Iterable)
    fs = [check_int(f, "features", minimum=1) for f in ([features] if single else list(features))]
    if not fs:
        raise ValueError("features must hold at least one feature count")
    n = p.shape[-1]
    sigma = torch.linalg.svdvals(p.detach().double())  # (…, N), descending
    sq = sigma.pow(2)
    # tails Σ_{i>F}: suffix sums, with Σ over an empty tail (F ≥ N) = 0
    zero = torch.zeros_like(sigma[..., :1])
    tail = torch.cat([sigma.flip(-1).cumsum(-1).flip(-1), zero], -1)
    tail_sq = torch.cat([sq.flip(-1).cumsum(-1).flip(-1), zero], -1)
    idx = torch.tensor([min(f, n) for f in fs])
    nuclear = tail[..., idx].clamp_min(0.0)
    frobenius = tail_sq[..., idx].clamp_min(0.0).sqrt()
    out = {"frobenius": frobenius, "nuclear": nuclear, "tv": nuclear / (2 * n), "tv_frobenius": frobenius / (2 * n)}
    return {key: val[..., 0] for key, val in out.items()} if single else out


def row_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per row; terms with p = 0 contribute 0, q = 0 < p gives inf."""
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)


def row_entropy(a: torch.Tensor) -> torch.Tensor:
    """−Σ_j a_ij log a_ij per row (0 log 0 = 0), summed in float64 (float64 result)."""
    return -row_sum64(torch.xlogy(a, a))


def row_cross_entropy(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """−Σ_j p_ij log q_ij per row, summed in float64; terms with p = 0 contribute 0 (``xlogy``), q = 0 < p
    gives inf, a negative q under p > 0 gives NaN. KL(p ‖ q) = this − H(p).

    Computed as log q times p in the weights' dtype (a vectorised log: ``xlogy`` is six times slower on
    float32 CPU tensors); the rare rows where that meets 0 · log 0 (NaN) are recomputed with ``xlogy``.
    For float32 weights the per-row value is within about 1e-7 · Σ_j p_ij |log q_ij| of the float64 one."""
    p, q = torch.broadcast_tensors(p, q)
    out = -row_sum64(torch.log(q.to(torch.promote_types(p.dtype, q.dtype))).mul_(p))
    redo = torch.isnan(out)
    if bool(redo.any()):
        out[redo] = -row_sum64(torch.xlogy(p[redo], q[redo]))
    return out


def value_scale(v: torch.Tensor) -> torch.Tensor:
    """rms_j ‖v_j‖ per (batch, head): (…, 1)."""
    return v.pow(2).sum(-1).mean(-1, keepdim=True).sqrt()


def output_error(o: torch.Tensor, o_ref: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """‖o_i − ô_i‖ / rms_j ‖v_j‖ per row (…, N)."""
    return (o.double() - o_ref.double()).norm(dim=-1) / value_scale(v.double())


def sample_rows(n: int, max_rows: int | None, segments: int = 8) -> list[slice]:
    """All rows as one slice, or ``max_rows`` rows in ``segments`` evenly spaced contiguous runs."""
    if max_rows is None or n <= max_rows:
        return [slice(0, n)]
    run = max(1, max_rows // segments)
    starts = torch.linspace(0, n - run, segments).round().long().unique().tolist()
    return [slice(s, s + run) for s in starts]


#: share of the memory budget that :func:`row_divergence` lets its variants' key features take together
KEY_FEATURES_SHARE = 1 / 2


def kept_key_features(q, k, variants, names, params, *, causal=False, scale=None) -> dict:
    """{name: keep} for :func:`~approxlab.api.attention_weight_blocks` when all ``variants`` yield their blocks
    together: the largest key features first (the dearest to recompute for every block), while they fit in
    :data:`KEY_FEATURES_SHARE` of the memory budget together; the others are recomputed per block."""
    sizes = {name: key_feature_bytes(*inputs_for(variant, q, k), variant, causal=causal, scale=scale,
                                     **params.get(name, {})) for name, variant in zip(names, variants)}
    room, keep = KEY_FEATURES_SHARE * get_memory_budget(), {}
    for name in sorted(sizes, key=sizes.get, reverse=True):
        keep[name] = 0 < sizes[name] <= room
        room -= sizes[name] if keep[name] else 0
    return keep


def row_divergence(q, k, variants, *, reference="softmax", causal=False, scale=None, block=None,
                   reference_params=None, params=None, max_rows=None):
    """Per-row TV, KL and entropy of each variant against ``reference`` (explicit weights), in query blocks.

    ``variants``: a variant (name, kernel object or KernelVariant subclass) or a list of them;
    ``params``: {name: kwargs}; a positional kernel (cosFormer) gets q, k with positions appended
    (:func:`~approxlab.variants.inputs_for`). Returns {name: dict} (kernel objects keyed by their name) of
    (B, H, Nq) float64 tensors: ``tv``, ``kl`` (reference ‖ variant), ``entropy`` (of the reference
    rows) and ``log_n`` (log of the number of keys each row sees). Memory O(block · Nk) plus the feature
    kernels' key features, made once where they fit in :data:`KEY_FEATURES_SHARE` of the memory budget together
    (largest first, :func:`kept_key_features`) and per block otherwise; the default
    block keeps block · Nk · B · H ≤ 2²¹ (16 MiB per float64 matrix, under glibc's largest mmap
    threshold, so freed blocks are reused instead of faulted in again: at N = 4096 on 2048 rows this
    measured 2× faster than 2²³).
    Weights stay in their dtype (float32 for float32 inputs) and every row sum is taken in float64
    (:func:`row_tv`, :func:`row_cross_entropy`, :func:`row_entropy`): within about 1e-7 (relative) of the
    same weights converted to float64 first, at a sixth of the time.
    ``max_rows``: evaluate only that many query rows (evenly spaced runs, :func:`sample_rows`), an
    unbiased sample of the row means at long N; the result then also holds ``rows`` (their indices).
    """
    single = isinstance(variants, str) or not isinstance(variants, (list, tuple))
    chosen = [variants] if single else list(variants)
    names = [kernel_name(v) for v in chosen]
    if len(set(names)) != len(names):
        raise ValueError(f"variants must have distinct names, got {names}")
    if not names:
        raise ValueError("variants must name at least one variant, got an empty list")
    params = params or {}
    if not isinstance(params, dict) or set(params) - set(names):
        raise ValueError(f"params must be a dict keyed by the variants' names {names}, got keys "
                         f"{sorted(params) if isinstance(params, dict) else params!r}")
    for label, value in (("block", block), ("max_rows", max_rows)):
        if value is not None:
            check_int(value, label, minimum=1)
    parts = {name: {"tv": [], "kl": []} for name in names}
    entropy = []
    nq = q.shape[-2]
    if block is None:
        block = max(1, min(nq, 2**21 // max(1, k.shape[-2] * q.shape[0] * q.shape[1])))
    segments = sample_rows(nq, max_rows)
    row_index = torch.cat([torch.arange(seg.start, seg.stop) for seg in segments])
    blocks = [slice(b, min(b + block, seg.stop)) for seg in segments for b in range(seg.start, seg.stop, block)]
    keep = kept_key_features(q, k, chosen, names, params, causal=causal, scale=scale)
    references = attention_weight_blocks(q, k, reference, blocks, causal=causal, scale=scale,
                                         **(reference_params or {}))
    approximations = [attention_weight_blocks(*inputs_for(variant, q, k), variant, blocks, causal=causal, scale=scale,
                                              keep_key_features=keep[name], **params.get(name, {}))
                      for name, variant in zip(names, chosen)]
    for ref, *approx_blocks in zip(references, *approximations):  # weights in their dtype, row sums in float64
        ref_entropy = row_entropy(ref)
        entropy.append(ref_entropy)
        for name, approx in zip(names, approx_blocks):
            parts[name]["tv"].append(row_tv(ref, approx))
            parts[name]["kl"].append(row_cross_entropy(ref, approx) - ref_entropy)
    entropy = torch.cat(entropy, dim=-1)
    n_keys = (row_index + 1).double() if causal else torch.full((len(row_index),), float(k.shape[-2]))
    log_n = torch.log(n_keys).expand_as(entropy)
    result = {name: {"tv": torch.cat(d["tv"], -1), "kl": torch.cat(d["kl"], -1), "entropy": entropy, "log_n": log_n,
                     "rows": row_index} for name, d in parts.items()}
    return result[names[0]] if single else result
