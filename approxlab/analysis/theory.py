"""The bridge from 1-D approximation to attention error.

For one attention row with similarities s_j and a positive kernel κ_j, let g_j = log κ_j − s_j and
δ = ½(max_j g_j − min_j g_j) (the log-uniform error of κ against exp on that row). Then

    TV(a, softmax) ≤ tanh(δ/2)          (tight: two keys with g = ±δ and softmax mass 1/(e^δ+1) on
                                          the first; see :func:`tight_row`)
    ‖o − o_softmax‖ ≤ TV · diam{v_j}    (a − b = TV(μ − ν) with μ, ν probability vectors).

Kernels with exact zeros (relu, DPFP): where κ_ij = 0 for some allowed key, δ = ∞ and the bound says
nothing. Split the row into the keys with κ > 0 (P) and κ = 0 (Z); let B_Z be the softmax mass on Z
and δ_P the log-uniform error on P. Then (:func:`positive_part`)

    B_Z ≤ TV(a, softmax) ≤ B_Z + (1 − B_Z) · tanh(δ_P/2)

(a puts no mass on Z; TV = 1 − Σ_j min(a_j, b_j) and on P, b_j = (1 − B_Z) b'_j with b' softmax
renormalised on P, so TV ≤ 1 − (1 − B_Z)(1 − TV(a, b')) and TV(a, b') ≤ tanh(δ_P/2) by the bound
above). With no zeros it is the bound above; with δ_P = 0 it is an equality. A row whose kernel mass
is 0 everywhere (P empty) gets zero weights and has no bound; its share is reported.

Proof of the first: a_j/b_j = e^{g_j} Z_b/Z_a lies in [ρ e^{−δ}, ρ e^{δ}] for one ρ; TV = Σ_j (a_j − b_j)_+
is largest when the ratio takes only its two extreme values, on softmax masses B and 1 − B, which
gives TV(B) = B(u − 1)/(1 + B(u − 1)) − … maximised at B = 1/(e^δ + 1): TV = tanh(δ/2).
"""

from __future__ import annotations

import math

import torch

from ..core import chunk, naive
from ..core.checks import check_int, check_qkv, resolve_scale
from ..api import attention_weights
from .metrics import row_tv
from ..variants import build_kernel, check_variant, inputs_for


def tv_bound(delta):
    """tanh(δ/2): the largest row TV from softmax of any kernel with log-uniform error δ on the row."""
    if isinstance(delta, torch.Tensor):
        return torch.tanh(delta / 2)
    if isinstance(delta, (int, float)) and not isinstance(delta, bool):
        if math.isnan(delta) or delta < 0:
            raise ValueError(f"delta must be a non-negative number, got {delta!r}")
        return math.tanh(delta / 2)
    import numpy as np

    return np.tanh(np.asarray(delta, dtype=float) / 2)


def value_diameter(v: torch.Tensor, *, causal: bool = False, block_rows: int = 1024) -> torch.Tensor:
    """diam_i = max_{j, l seen by row i} ‖v_j − v_l‖ per (batch, head), in row blocks (memory O(block · N)).

    Non-causal: every row sees every key, shape (…, 1). Causal: the prefix diameter, shape (…, N).
    """
    block_rows = check_int(block_rows, "block_rows", minimum=1)
    n = v.shape[-2]
    parts = []
    for start in range(0, n, block_rows):
        rows = slice(start, min(start + block_rows, n))
        dist = torch.cdist(v[..., rows, :], v)
        if causal:
            dist = dist.masked_fill(~naive.causal_mask(dist.shape[-2], n, v.device, start), 0.0)
        parts.append(dist.amax(-1))
    row_max = torch.cat(parts, -1)
    if causal:
        return torch.cummax(row_max, -1).values
    return row_max.amax(-1, keepdim=True)


def output_bound(tv: torch.Tensor, v: torch.Tensor, *, causal: bool = False) -> torch.Tensor:
    """TV_i · diam{v_j : j seen by row i}: the bound on ‖o_i − o_softmax,i‖."""
    return tv * value_diameter(v, causal=causal)


def row_log_error(log_kernel: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """δ_i = ½(max_j g_ij − min_j g_ij), g = log κ − s over the allowed keys (inf if κ ≤ 0 there)."""
    g = log_kernel - logits
    if mask is not None:
        g_hi = g.masked_fill(~mask, -math.inf)
        g_lo = g.masked_fill(~mask, math.inf)
    else:
        g_hi = g_lo = g
    hi, lo = g_hi.amax(-1), g_lo.amin(-1)
    delta = 0.5 * (hi - lo)
    return torch.where(torch.isfinite(hi) & torch.isfinite(lo), delta, torch.full_like(delta, math.inf))


def _log_kernel(q, k, variant, causal, scale, params):
    """log κ_ij (−inf where κ ≤ 0), the logits s_ij and the causal mask (or None)."""
    check_variant(variant)
    check_qkv(q, k, None, causal=causal)
    scale = resolve_scale(scale, q.shape[-1])
    work = chunk.compute_dtype(q.dtype)
    q, k = q.to(work), k.to(work)
    logits = (q @ k.transpose(-1, -2)) * scale
    root = math.sqrt(scale)
    xq, xk = inputs_for(variant, q, k)  # cosFormer: positions appended (the logits stay those of q, k)
    matrix, col_log_scale = build_kernel(variant, xq.shape[-1], **params).kernel(xq * root, xk * root)
    with torch.no_grad():
        log_kernel = torch.where(matrix > 0, matrix.clamp_min(torch.finfo(work).tiny).log(),
                                 torch.full_like(matrix, -math.inf))
    if col_log_scale is not None:
        log_kernel = log_kernel + col_log_scale.unsqueeze(-2)
    mask = naive.causal_mask(q.shape[-2], k.shape[-2], q.device) if causal else None
    return log_kernel, logits, mask


def row_deltas(q, k, variant, *, causal: bool = False, scale: float | None = None, **params) -> torch.Tensor:
    """Per-row δ (B, H, Nq) of ``variant``'s kernel against exp(s), from its explicit kernel matrix
    (any positive kernel, not only functions of s: log κ_ij = log K_ij + c_j). ``variant``: a name, a
    kernel object or a KernelVariant subclass."""
    return row_log_error(*_log_kernel(q, k, variant, causal, scale, params))


def positive_part(q, k, variant, *, causal: bool = False, scale: float | None = None, **params) -> dict:
    """The bound for kernels with exact zeros (module docstring), per row (B, H, Nq):
    ``delta_positive`` δ_P over the keys with κ > 0, ``zero_mass`` B_Z (softmax mass on the keys with
    κ = 0), ``has_mass`` (some κ > 0 in the row) and ``bound_positive`` = B_Z + (1 − B_Z) tanh(δ_P/2)
    (NaN for rows without mass)."""
    log_kernel, logits, mask = _log_kernel(q, k, variant, causal, scale, params)
    allowed = torch.ones_like(logits, dtype=torch.bool) if mask is None else mask.expand_as(logits)
    positive = allowed & torch.isfinite(log_kernel)
    delta = row_log_error(log_kernel, logits, positive).double()
    softmax = naive.normalise_logits(logits.double(), causal=causal)
    zero_mass = (softmax * (allowed & ~positive)).sum(-1)
    has_mass = positive.any(-1)
    bound = torch.where(has_mass, zero_mass + (1 - zero_mass) * torch.tanh(delta / 2),
                        torch.full_like(zero_mass, math.nan))
    return dict(delta_positive=torch.where(has_mass, delta, torch.full_like(delta, math.nan)), zero_mass=zero_mass,
                has_mass=has_mass, bound_positive=bound)


def bridge_rows(q, k, v, variant, *, causal: bool = False, scale: float | None = None, **params) -> dict:
    """Per-row (B, H, Nq) δ, tanh(δ/2), measured TV of the explicit weights against softmax, the
    output error ‖o − o_softmax‖ and its bound TV · diam{v}; with the zero-aware bound of
    :func:`positive_part` (``delta_positive``, ``zero_mass``, ``has_mass``, ``bound_positive``)."""
    scale = resolve_scale(scale, q.shape[-1])
    ref = attention_weights(q, k, "softmax", causal=causal, scale=scale).double()
    approx = attention_weights(*inputs_for(variant, q, k), variant, causal=causal, scale=scale, **params).double()
    tv = row_tv(ref, approx)
    delta = row_deltas(q, k, variant, causal=causal, scale=scale, **params).double()
    vd = v.double()
    out_err = ((approx - ref) @ vd).norm(dim=-1)
    return dict(delta=delta, bound=tv_bound(delta), tv=tv, output_error=out_err,
                output_bound=output_bound(tv, vd, causal=causal),
                **positive_part(q, k, variant, causal=causal, scale=scale, **params))


def tight_row(delta: float):
    """A row attaining TV = tanh(δ/2): similarities s = (−δ, 0) and kernel values κ = (1, e^{−δ})
    (g = log κ − s = (δ, −δ)); softmax puts mass 1/(e^δ + 1) on the first key.
    Returns (s, κ) as float64 tensors."""
    if not (isinstance(delta, (int, float)) and math.isfinite(delta) and delta >= 0):
        raise ValueError(f"delta must be a finite non-negative number, got {delta!r}")
    s = torch.tensor([-delta, 0.0], dtype=torch.float64)
    kappa = torch.tensor([1.0, math.exp(-delta)], dtype=torch.float64)
    return s, kappa
