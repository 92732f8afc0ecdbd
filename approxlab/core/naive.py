"""The explicit (reference) forms: the N×N attention matrix, built and row-normalised.

    softmax:  a_ij = exp(s_ij) / Σ_{l ∈ row i} exp(s_il)
    kernel:   a_ij = κ_ij / Σ_{l ∈ row i} κ_il,          o = a v

These forms are the oracle every efficient form (:mod:`approxlab.core.chunk`,
:mod:`approxlab.core.fused`) is tested against. A row whose kernel mass Σ_l κ_il is exactly zero
(possible for ``relu``) gets zero weights and output.
"""

from __future__ import annotations

from typing import Optional

import torch


def safe_divide(num: torch.Tensor, den: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """num / den, with 0 where den == 0 (a row with no kernel mass); written into ``out`` when given
    (a slice of the output, so blocks need no concatenation) and autograd is not recording."""
    zero = den == 0
    if not (torch.is_grad_enabled() and (num.requires_grad or den.requires_grad)):
        result = torch.div(num, den, out=out) if out is not None else num / den  # no autograd: one division
        return result.masked_fill_(zero, 0.0) if bool(zero.any()) else result  # den is small: cheap to test
    if not bool(zero.any()):  # den is small: cheap to test; no zero: the plain quotient (one full-size op)
        result = num / den
    else:
        result = torch.where(zero, torch.zeros_like(num), num / torch.where(zero, torch.ones_like(den), den))
    if out is not None:
        out.copy_(result)
    return result


def causal_mask(nq: int, nk: int, device, offset: int = 0) -> torch.Tensor:
    """Boolean (Nq, Nk) mask, True where key j may be seen by query row i (j <= i + offset)."""
    return torch.ones(nq, nk, dtype=torch.bool, device=device).tril(offset)


def normalise_logits(logits: torch.Tensor, *, causal: bool = False, offset: int = 0) -> torch.Tensor:
    """Softmax weights exp(s_ij) / Σ_l exp(s_il) over the allowed keys (rows start at ``offset``)."""
    if causal:
        mask = causal_mask(logits.shape[-2], logits.shape[-1], logits.device, offset)
        logits = logits.masked_fill(~mask, float("-inf"))
    return torch.softmax(logits, dim=-1)


def normalise_kernel(
    kernel: torch.Tensor, col_log_scale: Optional[torch.Tensor] = None, *, causal: bool = False, offset: int = 0
) -> torch.Tensor:
    """Row-normalise an unnormalised kernel matrix K (…, Nq, Nk) into attention weights.

    With ``col_log_scale`` c (…, Nk) the true kernel is K_ij · exp(c_j); it is rescaled per row by
    exp(c_j − max_{l allowed} c_l), which cancels in the normalisation and keeps every factor ≤ 1.
    """
    nq, nk = kernel.shape[-2:]
    mask = causal_mask(nq, nk, kernel.device, offset) if causal else None
    if col_log_scale is not None:
        c = col_log_scale.unsqueeze(-2)  # (…, 1, Nk): the same factor for every row unless a mask differs per row
        if mask is not None:
            c = c.expand(kernel.shape).masked_fill(~mask, float("-inf"))
        cmax = c.amax(-1, keepdim=True)
        kernel = kernel * torch.exp(c - cmax)
    if mask is not None:
        kernel = kernel.masked_fill(~mask, 0.0)
    return safe_divide(kernel, kernel.sum(-1, keepdim=True))
