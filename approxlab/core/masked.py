"""Attention under a mask: key padding, the causal triangle aligned bottom-right (a KV cache's queries
are the last Nq of Nk positions), a general mask on the explicit form, and the recurrent state that
decodes one token at a time. What a real model's attention call needs (:mod:`approxlab.analysis.hf`).

    efficient:  o_i = Σ_{j allowed} φ(q_i)·φ(k_j) v_j / Σ_{j allowed} φ(q_i)·φ(k_j)   (φ(k_j) = 0 for a padded key)
    explicit:   a_ij = κ_ij e^{c_j + b_ij − m_i} / Σ_l κ_il e^{c_l + b_il − m_i}      (b: the mask's log-weight)
    recurrent:  S_t = S_{t−1} + φ(k_t) v_tᵀ,  z_t = z_{t−1} + φ(k_t),  o_t = φ(q_t) S_t / φ(q_t)·z_t
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from . import chunk as engine
from .naive import causal_mask, safe_divide


@dataclass
class MaskPlan:
    """What a mask asks of one attention call.

    causal: the causal triangle, bottom-right aligned (query i sees keys j ≤ i + Nk − Nq).
    key_padding: (B, Nk) bool, True for a key every query may see; None when all may.
    bias: (B or 1, H or 1, Nq, Nk) float log-weight added to every similarity (0 allowed, −inf masked),
        for a mask that is neither; None otherwise. With a bias, ``causal`` and ``key_padding`` are unused.
    keys: how many leading keys the call uses (transformers' sdpa convention for a causal call with no
        mask and Nk > Nq > 1: a static cache's empty tail); None: all.
    """

    causal: bool = False
    key_padding: Optional[torch.Tensor] = None
    bias: Optional[torch.Tensor] = None
    keys: Optional[int] = None


# ----------------------------------------------------------------------------------------------
def padded_keys(k: torch.Tensor, key_padding: Optional[torch.Tensor]) -> torch.Tensor:
    """k with one more coordinate: 1 for a key that may be seen, 0 for a padded one (the key map reads it,
    so the engine's blocks and chunks carry the mask with the keys)."""
    keep = torch.ones(k.shape[:-1], dtype=k.dtype, device=k.device) if key_padding is None else \
        key_padding[:, None, :].to(k.dtype).expand(k.shape[:-1])
    return torch.cat([k, keep[..., None]], dim=-1)


def feature_maps(kernel, root: float, work: torch.dtype):
    """(query map, key map) on scaled inputs; the key map reads the padding coordinate of
    :func:`_padded_keys` and gives a padded key zero features and the least log scale."""

    def query_map(x):
        return kernel.query_features(x.to(work) * root)

    def key_map(y):
        keep = y[..., -1] > 0
        f, c = kernel.key_features(y[..., :-1].to(work) * root)
        f = f * keep[..., None].to(f.dtype)
        if c is not None:
            c = c.masked_fill(~keep, torch.finfo(c.dtype).min)
        return f, c

    return query_map, key_map


def masked_attention(kernel, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float,
                     causal: bool = False, key_padding: Optional[torch.Tensor] = None,
                     chunk_size: Optional[int] = None) -> torch.Tensor:
    """Efficient form of a kernel with key padding and bottom-right causal alignment (linear in Nk).

    Parameters
    ----------
    kernel : KernelVariant
        A built kernel (:func:`approxlab.build_kernel`).
    q, k, v : torch.Tensor
        (B, H, Nq, D), (B, H, Nk, D), (B, H, Nk, Dv); Nq ≤ Nk when ``causal``.
    scale : float
        Similarity scale: s = q·k·scale.
    causal : bool
        Query i (of Nq) sees keys j ≤ i + Nk − Nq (a KV cache's alignment; the usual mask when Nq = Nk).
    key_padding : (B, Nk) bool tensor, optional
        False for a key no query may see.
    chunk_size : int, optional
        As for :func:`approxlab.attention`.

    Returns
    -------
    torch.Tensor
        (B, H, Nq, Dv) in q's dtype (computed in float32 for half precision).

    Notes
    -----
    o_i = Σ_{j allowed} φ(q_i)·φ(k_j) v_j / Σ_{j allowed} φ(q_i)·φ(k_j); a padded key gets φ(k_j) = 0,
    so it leaves numerator and denominator alike. With Nq < Nk the causal form runs over Nk positions,
    the queries placed at the last Nq (the first Nk − Nq outputs are not kept); its cost is that of the
    KV cache it reads, O(Nk·F·Dv). A row with no kernel mass gets zero output (the engine's rule).
    """
    nq, nk = q.shape[-2], k.shape[-2]
    if causal and nq > nk:
        raise ValueError(f"causal attention needs Nq ≤ Nk (queries are the last Nq positions), got Nq={nq}, Nk={nk}")
    work = engine.compute_dtype(q.dtype)
    root = math.sqrt(scale)
    if callable(getattr(kernel, "efficient", None)):  # an estimator with its own efficient form (window hybrids)
        if key_padding is not None:
            raise ValueError(f"{getattr(kernel, 'name', kernel)!r} runs its own efficient form, which takes no "
                             "key-padding mask; run the batch without padding, or use the explicit form")
        x = q.to(work) * root
        if causal and nq < nk:  # dummy queries at the first Nk − Nq positions keep the positions aligned
            x = torch.cat([x.new_zeros(*x.shape[:-2], nk - nq, x.shape[-1]), x], dim=-2)
        out = kernel.efficient(x, k.to(work) * root, v.to(work), causal=causal, chunk_size=chunk_size)
        return out[..., out.shape[-2] - nq:, :].to(q.dtype)
    query_map, key_map = feature_maps(kernel, root, work)
    if key_padding is None:  # no padding coordinate to carry
        k_in = k

        def key_map(y):
            return kernel.key_features(y.to(work) * root)
    else:
        k_in = padded_keys(k, key_padding)
    if causal and nq < nk:
        q = torch.cat([q.new_zeros(*q.shape[:-2], nk - nq, q.shape[-1]), q], dim=-2)
    out = engine.efficient_attention(
        query_map, key_map, q, k_in, v.to(work), causal=causal, chunk_size=chunk_size,
        feature_width=kernel.feature_width(q.shape[-1]), label=kernel.describe_size(q.shape[-1]),
    )
    return out[..., out.shape[-2] - nq:, :].to(q.dtype)


def _allowed_log_weights(plan: MaskPlan, batch_heads: tuple, nq: int, nk: int, device) -> Optional[torch.Tensor]:
    """The plan as a log-weight (…, Nq, Nk): 0 where allowed, −inf where not (None: all allowed)."""
    if plan.bias is not None:
        return plan.bias.to(device)
    allowed = None
    if plan.causal:
        allowed = causal_mask(nq, nk, device, offset=nk - nq)
    if plan.key_padding is not None:
        keep = plan.key_padding[:, None, None, :].to(device)
        allowed = keep if allowed is None else keep & allowed
    if allowed is None:
        return None
    zero = torch.zeros((), dtype=torch.float32, device=device)
    return torch.where(allowed, zero, float("-inf"))


def masked_weights(kernel, q: torch.Tensor, k: torch.Tensor, *, scale: float, plan: MaskPlan) -> torch.Tensor:
    """Explicit normalised weights (B, H, Nq, Nk) under a :class:`MaskPlan` (N×N memory): the reference
    for :func:`masked_attention`, and the only form for a general mask.

    Parameters
    ----------
    kernel : KernelVariant or None
        A built kernel; None for softmax.
    q, k : torch.Tensor
        (B, H, Nq, D), (B, H, Nk, D); half precision is computed in float32, and the weights returned in
        the working dtype.
    scale : float
        Similarity scale: s = q·k·scale.
    plan : MaskPlan

    Returns
    -------
    torch.Tensor

    Notes
    -----
    a_ij = κ_ij e^{c_j + b_ij − m_i} / Σ_l κ_il e^{c_l + b_il − m_i}, with c the kernel's per-key log scale,
    b the plan's log-weight (0 allowed, −inf masked, or a float bias) and m_i = max_l (c_l + b_il) over the
    row; softmax: κ_ij e^{c_j} = e^{s_ij}. A row with no allowed key (or no kernel mass) is zero.
    """
    work = engine.compute_dtype(q.dtype)
    q, k = q.to(work), k.to(work)
    nq, nk = q.shape[-2], k.shape[-2]
    bias = _allowed_log_weights(plan, q.shape[:2], nq, nk, q.device)
    if kernel is None:
        logits = (q @ k.transpose(-1, -2)) * scale
        if bias is not None:
            logits = logits + bias.to(work)
        top = logits.amax(-1, keepdim=True)
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        weights = torch.exp(logits - top)
        return safe_divide(weights, weights.sum(-1, keepdim=True))
    root = math.sqrt(scale)
    if callable(getattr(kernel, "explicit_kernel", None)):  # window hybrids: their own masked kernel matrix
        matrix, _ = kernel.explicit_kernel(q * root, k * root, causal=plan.causal and plan.bias is None,
                                           offset=nk - nq)
        if bias is not None:
            matrix = matrix * torch.exp(bias.to(work))
        return safe_divide(matrix, matrix.sum(-1, keepdim=True))
    matrix, log_scale = kernel.kernel(q * root, k * root)
    log_w = torch.zeros((), dtype=work, device=q.device) if log_scale is None else log_scale[..., None, :]
    if bias is not None:
        log_w = log_w + bias.to(work)
    if log_w.ndim:
        log_w = log_w.expand(matrix.shape)
        top = log_w.amax(-1, keepdim=True)
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        matrix = matrix * torch.exp(log_w - top)
    return safe_divide(matrix, matrix.sum(-1, keepdim=True))


# ----------------------------------------------------------------------------------------------
# recurrent decoding
# ----------------------------------------------------------------------------------------------
@dataclass
class RecurrentState:
    """The state of one causal kernel-attention layer after ``count`` tokens.

    S = Σ_j φ(k_j) v_jᵀ e^{c_j − m} (B, H, F, Dv), z = Σ_j φ(k_j) e^{c_j − m} (B, H, F), m = max_j c_j
    (B, H) for kernels whose key features carry a log scale c (FAVOR+, Hedgehog), else None. ``last_key``
    is the newest key seen: a call continues this state only when its cache holds that key at that place.
    """

    state: torch.Tensor
    normaliser: torch.Tensor
    log_max: Optional[torch.Tensor]
    count: int
    last_key: torch.Tensor

    @classmethod
    def start(cls, key_map, k_aug: torch.Tensor, v: torch.Tensor, last_key: torch.Tensor) -> "RecurrentState":
        """The state after every key of ``k_aug`` (with its padding coordinate) and ``v``."""
        f, c = key_map(k_aug)
        if c is None:
            log_max = None
        else:
            log_max = c.amax(-1)
            weight = torch.exp(c - log_max[..., None])
            f = f * weight[..., None]
        return cls(f.transpose(-1, -2) @ v, f.sum(-2), log_max, k_aug.shape[-2], last_key)

    def step(self, fq: torch.Tensor, fk: torch.Tensor, ck: Optional[torch.Tensor], v: torch.Tensor) -> torch.Tensor:
        """Add one key (fk (B, H, F), log scale ck (B, H) or None, value v (B, H, Dv)), then read the
        output of the query features fq (B, H, F): φ(q)·S / φ(q)·z."""
        if ck is not None:
            new_max = torch.maximum(self.log_max, ck)
            rescale = torch.exp(self.log_max - new_max)
            self.state = self.state * rescale[..., None, None]
            self.normaliser = self.normaliser * rescale[..., None]
            fk = fk * torch.exp(ck - new_max)[..., None]
            self.log_max = new_max
        self.state = self.state + fk[..., :, None] * v[..., None, :]
        self.normaliser = self.normaliser + fk
        self.count += 1
        num = (fq[..., None, :] @ self.state).squeeze(-2)
        den = (fq * self.normaliser).sum(-1)
        return safe_divide(num, den[..., None])


