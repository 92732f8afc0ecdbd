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

from ..core import budget, chunk, naive
from ..core.checks import check_int, check_qkv, resolve_scale
from ..api import attention_weights
from .metrics import row_tv
from ..variants import build_kernel, check_variant, inputs_for


def tv_bound(delta):
    """tanh(δ/2): the largest row TV from softmax of any kernel with log-uniform error δ on the row."""
    if isinstance(delta, torch.Tensor):
        if bool((delta < 0).any()):  # NaN (an undefined row δ) passes through as NaN
            raise ValueError("delta must be non-negative (a log-uniform error); got a negative entry")
        return torch.tanh(delta / 2)
    if isinstance(delta, (int, float)) and not isinstance(delta, bool):
        if math.isnan(delta) or delta < 0:
            raise ValueError(f"delta must be a non-negative number, got {delta!r}")
        return math.tanh(delta / 2)
    import numpy as np

    delta = np.asarray(delta, dtype=float)
    if np.any(delta < 0):  # NaN passes through as NaN
        raise ValueError("delta must be non-negative (a log-uniform error); got a negative entry")
    return np.tanh(delta / 2)


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
    entries = q.shape[:-1].numel() * k.shape[-2]
    budget.require(4 * entries * torch.finfo(work).bits // 8,
                   f"the row δ's N×N matrices (logits, kernel, its log and the error: B·H·Nq·Nk = {entries:,} entries "
                   "each; evaluate rows in blocks of q)")
    q, k = q.to(work), k.to(work)
    logits = (q @ k.transpose(-1, -2)) * scale
    root = math.sqrt(scale)
    xq, xk = inputs_for(variant, q, k)  # cosFormer: positions appended (the logits stay those of q, k)
    kernel = build_kernel(variant, xq.shape[-1], **params)
    if callable(getattr(kernel, "explicit_kernel", None)):  # window hybrids, shrinkage: (K, per-row log scale)
        matrix, col_log_scale = kernel.explicit_kernel(xq * root, xk * root, causal=causal)[0], None
    else:
        matrix, col_log_scale = kernel.kernel(xq * root, xk * root)
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


# ----------------------------------------------------------------------------------------------
# the bridge for window hybrids
# ----------------------------------------------------------------------------------------------
def hybrid_tv_bound(outside_mass, lo, hi):
    """T(B, ℓ, h): the largest TV from softmax of a window-hybrid row whose keys outside the window hold
    softmax mass B and have g_j = log κ_j − s_j − log γ in [ℓ, h].

    Parameters
    ----------
    outside_mass : array_like
        B ∈ [0, 1], the exact (softmax) attention mass on the keys outside the window.
    lo, hi : array_like
        ℓ ≤ h, the range of the kernel's log-error g over those keys, measured from the window's log weight
        log γ. ``lo`` may be −inf (the kernel is 0 on some key, e.g. relu); ``hi`` must be finite.

    Returns
    -------
    numpy.ndarray (or a float64 tensor for tensor input)
        T, broadcast over the inputs; 0 where B = 0; NaN where an input is NaN.

    Raises
    ------
    ValueError
        B outside [0, 1], ℓ > h, or h = +inf.

    Notes
    -----
    The hybrid row (:mod:`approxlab.variants.window`) has κ_j = γ e^{s_j} on the window W and the inner
    kernel κ_j on the other allowed keys O; the ratio a_j/b_j of its weights to softmax's is ρ on W and
    ρ e^{g_j} on O, for one ρ. Only the outside keys carry error. Over every row with the same (B, ℓ, h),

        TV(a, softmax) ≤ T(B, ℓ, h),

    and T is attained (:func:`tight_hybrid_row`), so it is the bound on B, ℓ and h, not only a bound. Proof:
    (1) TV = max_S (a(S) − b(S)) over key sets S. (2) For a fixed S and fixed softmax masses b_j, a(S) − b(S)
    is a ratio of two affine functions of each outside ratio u_j = e^{g_j} ∈ [e^ℓ, e^h], so monotone in each
    u_j: its maximum over the box is at a vertex, every u_j ∈ {e^ℓ, e^h}. (3) Keys with equal ratio merge
    without changing TV, so a vertex row is three keys: mass 1 − B at ratio 1, P at e^h and B − P at e^ℓ,
    P ∈ [0, B]. (4) On [0, B], a(S) − b(S) = (α + βP)/(c₀ + kP) − (μ + νP), c₀ = 1 − B + B e^ℓ,
    k = e^h − e^ℓ; its derivative (βc₀ − αk)/Z² − ν (Z = c₀ + kP) vanishes at most at Z* = √((βc₀ − αk)/ν),
    a maximum exactly when βc₀ − αk > 0 and ν > 0; otherwise the piece peaks at P = 0 or B. T is the largest
    three-key TV over those candidates, for every S.

    Consequences: (i) with ℓ ≤ 0 ≤ h, T ≤ tanh(δ_h/2), δ_h = (h − ℓ)/2: the pure bound of
    :func:`tv_bound` on the hybrid's own log-error (the window's g = 0 lies in [ℓ, h]); (ii) T → 0 with B,
    T = B·max(e^h − 1, 1 − e^ℓ) + O(B²): the window removes the kernel's error in proportion to the softmax
    mass it leaves outside; (iii) at B → 1 and γ centred (ℓ = −h), T → tanh(δ_h/2); (iv) kernel zeros
    (ℓ = −∞, ratio 0) keep T finite, unlike tanh(δ/2). The window weight matters through ℓ and h: a γ off the
    kernel's own log-offset shifts [ℓ, h] away from 0 and T grows, which is why LoLCATs learns γ per head.

    References
    ----------
    Zhang et al., "LoLCATs: On Low-Rank Linearizing of Large Language Models", arXiv 2410.10254 (the hybrid).

    Examples
    --------
    >>> float(hybrid_tv_bound(0.0, -1.0, 1.0))
    0.0
    >>> round(float(hybrid_tv_bound(1.0, -1.0, 1.0)), 6) == round(math.tanh(0.5), 6)
    True
    """
    best, _ = _hybrid_sup(outside_mass, lo, hi)
    return best


def _hybrid_sup(outside_mass, lo, hi):
    """(T, P*): the bound of :func:`hybrid_tv_bound` and the high-ratio mass P* attaining it."""
    import numpy as np

    as_tensor = isinstance(outside_mass, torch.Tensor) or isinstance(lo, torch.Tensor) or isinstance(hi, torch.Tensor)
    b, lo, hi = (np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=float)
                 for x in (outside_mass, lo, hi))
    if np.any(b < 0) or np.any(b > 1):
        raise ValueError("outside_mass must lie in [0, 1]")
    if np.any(hi < lo):
        raise ValueError("the log-error range needs lo ≤ hi")
    if np.any(np.isposinf(hi)):
        raise ValueError("hi must be finite (a finite kernel value on a finite similarity)")
    b, lo, hi = np.broadcast_arrays(b, lo, hi)
    nan = np.isnan(b) | np.isnan(lo) | np.isnan(hi)
    b, lo, hi = (np.where(nan, 0.0, x) for x in (b, lo, hi))
    low, up = np.exp(lo), np.exp(hi)
    c0, k = 1 - b + b * low, up - low
    candidates = [np.zeros_like(b), b.copy()]
    # keys 0: window (ratio 1, mass 1 − B); 1: low (ratio e^ℓ, mass B − P); 2: high (ratio e^h, mass P)
    for members in ((0,), (1,), (2,), (0, 1), (0, 2), (1, 2)):
        alpha = (1 - b) * (0 in members) + b * low * (1 in members)
        beta = up * (2 in members) - low * (1 in members)
        nu = 1.0 * (2 in members) - 1.0 * (1 in members)
        curve = beta * c0 - alpha * k
        with np.errstate(divide="ignore", invalid="ignore"):
            z_star = np.sqrt(np.where((curve > 0) & (nu > 0), curve / nu, np.nan))
            p_star = np.where(k > 0, (z_star - c0) / k, np.nan)
        candidates.append(np.clip(np.where(np.isfinite(p_star), p_star, 0.0), 0.0, b))
    best, best_p = np.zeros_like(b), np.zeros_like(b)
    for p in candidates:
        tv = _three_key_tv(b, p, low, up)
        best_p = np.where(tv > best, p, best_p)
        best = np.maximum(best, tv)
    # B = 1 with ℓ = −∞: no window mass and kernel zeros; the sup 1 is approached as P → 0 (not attained)
    best = np.where((c0 == 0) & (b > 0), 1.0, best)
    best = np.where(nan, np.nan, best)
    if as_tensor:
        return torch.from_numpy(best), torch.from_numpy(best_p)
    return (float(best) if best.ndim == 0 else best), best_p


def _three_key_tv(b, p, low, up):
    """TV between softmax masses (1 − B, B − P, P) and the same reweighted by the ratios (1, e^ℓ, e^h)."""
    import numpy as np

    masses = (1 - b, b - p, p)
    ratios = (np.ones_like(b), low, up)
    z = sum(m * r for m, r in zip(masses, ratios))
    with np.errstate(divide="ignore", invalid="ignore"):
        tv = sum(np.maximum(m * r / z - m, 0.0) for m, r in zip(masses, ratios))
    return np.where(z > 0, tv, 0.0)


def tight_hybrid_row(outside_mass: float, lo: float, hi: float):
    """A three-key row attaining :func:`hybrid_tv_bound`: (s, log_kernel, inside) float64 / bool tensors.

    Key 0 is in the window (softmax mass 1 − B, g = 0, window weight γ = 1), keys 1 and 2 outside it
    (masses B − P* and P*, g = ℓ and h), so log κ = s + g. A key of zero mass (P* ∈ {0, B}) is given the mass
    1e-300 instead; it changes nothing measurable.
    """
    if not (isinstance(outside_mass, (int, float)) and 0 < outside_mass < 1):
        raise ValueError(f"outside_mass must be a number in (0, 1), got {outside_mass!r}")
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"need finite lo ≤ hi, got {lo!r}, {hi!r}")
    _, p = _hybrid_sup(float(outside_mass), float(lo), float(hi))
    p = float(p)
    masses = torch.tensor([1 - outside_mass, outside_mass - p, p], dtype=torch.float64).clamp_min(1e-300)
    s = masses.log()
    return s, s + torch.tensor([0.0, lo, hi], dtype=torch.float64), torch.tensor([True, False, False])


def hybrid_rows(q, k, v, *, window: int, kernel="hedgehog", window_weight=1.0, kernel_params=None,
                causal: bool = False, scale: float | None = None) -> dict:
    """Per-row (B, H, Nq) check of the hybrid bound for ``Window(window, kernel, window_weight)``.

    Returns a dict of float64 tensors: ``tv`` (explicit hybrid weights vs softmax), ``outside_mass`` B,
    ``lo`` / ``hi`` (the range of g = log κ − s − log γ on the outside keys), ``bound`` T(B, ℓ, h)
    (:func:`hybrid_tv_bound`), ``pure_bound`` tanh(δ_h/2) of the whole hybrid row (the bridge without B),
    ``output_error`` ‖o − o_softmax‖ and ``output_bound`` TV·diam{v}, and ``positive`` (False where the inner
    kernel is negative on an outside key: no bound). Builds N×N: small inputs.
    """
    from ..variants.window import Window, true_kernel, window_masks

    check_qkv(q, k, v, causal=causal)
    scale = resolve_scale(scale, q.shape[-1])
    hybrid = Window(q.shape[-1], window=window, kernel=kernel, window_weight=window_weight,
                    kernel_params=kernel_params)
    root = math.sqrt(scale)
    x, y = q.double() * root, k.double() * root
    logits = x @ y.transpose(-1, -2)
    inside, outside = window_masks(q.shape[-2], k.shape[-2], hybrid.window, causal=causal, device=q.device)
    matrix, cq, ck = true_kernel(hybrid.inner, x, y)
    log_kernel = torch.where(matrix > 0, matrix.clamp_min(torch.finfo(torch.float64).tiny).log(),
                             torch.full_like(matrix, -math.inf))
    if cq is not None:
        log_kernel = log_kernel + cq.unsqueeze(-1)
    if ck is not None:
        log_kernel = log_kernel + ck.unsqueeze(-2)
    log_gamma = hybrid.log_weight(x.shape[-3] if x.ndim >= 3 else 1, logits, 2)
    g = log_kernel - logits - log_gamma
    positive = ~((matrix < 0) & outside).any(-1)
    has_outside = outside.any(-1) if outside.ndim == g.ndim else outside.expand(g.shape).any(-1)
    lo = torch.where(outside, g, torch.full_like(g, math.inf)).amin(-1)
    hi = torch.where(outside & torch.isfinite(g), g, torch.full_like(g, -math.inf)).amax(-1)
    lo = torch.where(has_outside, lo, torch.zeros_like(lo))
    hi = torch.where(has_outside & torch.isfinite(hi), hi, torch.where(has_outside, lo, torch.zeros_like(hi)))
    hi = torch.maximum(hi, torch.where(torch.isfinite(lo), lo, hi))
    softmax = naive.normalise_logits(logits, causal=causal)
    outside_mass = (softmax * outside).sum(-1).clamp(0.0, 1.0)
    bound = hybrid_tv_bound(outside_mass, lo, hi)
    bound = torch.where(positive, bound, torch.full_like(bound, math.nan))
    half_range = 0.5 * (torch.clamp(hi, min=0.0) - torch.clamp(lo, max=0.0))
    pure = torch.where(positive, torch.tanh(half_range / 2), torch.full_like(bound, math.nan))
    matrix_h, _ = hybrid.explicit_kernel(x, y, causal=causal)
    weights = naive.normalise_kernel(matrix_h, None, causal=causal)
    tv = row_tv(softmax, weights)
    vd = v.double()
    out_err = ((weights - softmax) @ vd).norm(dim=-1)
    return dict(tv=tv, outside_mass=outside_mass, lo=lo, hi=hi, bound=bound, pure_bound=pure, positive=positive,
                output_error=out_err, output_bound=output_bound(tv, vd, causal=causal))
