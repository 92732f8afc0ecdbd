"""Window hybrids: exact exp(s) on the nearby keys, a kernel on the others, one shared denominator.

LoLCATs (Zhang, Arora, Chalamala, Wu, Spector, Singhal, Ramesh, Linderman, Ré, "LoLCATs: On Low-Rank
Linearizing of Large Language Models", ICLR 2025, arXiv 2410.10254, Sec. 3.2) keeps softmax on a sliding
window of 64 keys and a Hedgehog feature map on the keys before it, under one denominator, with a learned
per-head weight on the window part; Based (Arora et al., "Simple linear attention language models balance
the recall-throughput tradeoff", ICML 2024) pairs Taylor-2 linear attention with window attention. Here,
for a query i with window W(i) and the other allowed keys O(i),

    κ_ij = γ · exp(s_ij)          j ∈ W(i)        (s = q·k · scale, exact)
    κ_ij = κ(q_i, k_j)            j ∈ O(i)        (the inner kernel: hedgehog, linear, taylor, performer, …)
    a_ij = κ_ij / Σ_l κ_il                          (one shared denominator)

    W(i) = {j : i − w < j ≤ i}   (causal: the previous w keys, the diagonal included)
    W(i) = {j : |i − j| < w}     (non-causal)

w = 0 is the inner kernel alone; w ≥ N is softmax (γ cancels). γ > 0 (``window_weight``) is one number
or one per head. The default γ = 1 is not neutral: it sets exp(s) against the inner kernel's absolute scale,
which for an unfitted map can be far off (Hedgehog at W = I sums 2D exponentials), and a hybrid with a
mismatched γ can be farther from softmax than its kernel alone. Fit γ first: :func:`fit_window_weight`
(closed form, per head) or :func:`approxlab.analysis.distill.distill` with ``window=`` (with the map). The kernel part must be the *true* κ, with the per-query factor a plain linear attention
may drop because it cancels there (FAVOR+'s exp(−‖x‖²/2)): :func:`exact_query_features`. LoLCATs' code
multiplies γ by exp(s − max_{W(i)} s) instead, so its effective window weight varies with each row's largest
logit; here both parts are on the absolute scale of κ, and each row is rescaled by one reference
(the larger of the two parts' log maxima) before anything is exponentiated.

Explicit form (:meth:`Window.explicit_kernel`, the reference): the N×N matrix above. Efficient form
(:meth:`Window.efficient`, no N×N), cost O(N·(C + 2w)·D + N·F·Dv) for row chunks of C:
  window part   per chunk of C rows, the C × (C + 2w − 1) band of logits, exp(s − row max);
  kernel part   the keys j ≤ i − w (and, non-causal, j ≥ i + w by the same pass on the reversed sequence):
                a causal linear attention whose keys lag the queries by w positions; prefix state
                S = Σ φ(k_j) e^{c_j − M} v_jᵀ carried with the running maximum M of the key log scales c_j
                (as online softmax), the chunk's own lagged keys in a C × C triangle.
Each part returns its numerator, denominator and per-row log reference; they are added after rescaling to
the larger reference, so no part overflows and nothing is subtracted (no cancellation). A causal row never
reads a later key. Memory: the state B·H·F·(Dv + 1) and the band B·H·C·(C + 2w) are checked against the
budget (:mod:`approxlab.budget`) before allocation.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from ..core import budget
from ..core.checks import check_int
from ..core.protocol import KernelVariant
from ._registry import register_kernel

#: rows per chunk of the efficient form (band and triangle blocks)
DEFAULT_CHUNK = 64


def exact_query_features(kernel, x: torch.Tensor):
    """φ_q(x) as (f, log scale) with the per-query factor kept (FAVOR+'s ``query_features`` leaves its
    exp(−‖x‖²/2) out, as it cancels in a pure kernel's normalisation but not in a hybrid's)."""
    exact = getattr(kernel, "exact_query_features", None)
    return exact(x) if callable(exact) else kernel.query_features(x)


def true_kernel(kernel, x: torch.Tensor, y: torch.Tensor):
    """(K, row_log, col_log) with κ(x_i, y_j) = K_ij · exp(row_log_i + col_log_j) exactly (log scales may be
    None). A kernel with a closed-form ``kernel`` and no query scale uses it (an independent reference)."""
    fq, cq = exact_query_features(kernel, x)
    if cq is None and type(kernel).kernel is not KernelVariant.kernel:
        matrix, ck = kernel.kernel(x, y)
        return matrix, None, ck
    fk, ck = kernel.key_features(y)
    return fq @ fk.transpose(-1, -2), cq, ck


def window_masks(nq: int, nk: int, window: int, *, causal: bool, offset: int = 0, device=None):
    """Boolean (Nq, Nk) masks (inside, outside): query row r is position offset + r, key column j position j;
    inside = W(i) (module doc), outside = the allowed keys not in W(i)."""
    i = torch.arange(nq, device=device)[:, None] + offset
    j = torch.arange(nk, device=device)[None, :]
    diff = i - j
    allowed = diff >= 0 if causal else torch.ones_like(diff, dtype=torch.bool)
    inside = allowed & (diff < window) & (diff > -window)
    return inside, allowed & ~inside


@register_kernel
class Window(KernelVariant):
    """window: w (0 = the inner kernel alone); kernel: the inner kernel outside the window (a name or a
    kernel object; default "hedgehog"); window_weight: γ > 0, a number or one per head (a tensor (H,)), on
    exp(s) inside the window; kernel_params: the inner kernel's parameters."""

    name = "window"
    label = "window hybrid"
    color = "#882255"
    marker = "P"
    size_parameter = "window"

    def __init__(self, head_dim: int, window: int = 64, kernel="hedgehog", window_weight=1.0,
                 kernel_params: Optional[dict] = None):
        from ._registry import build_kernel, is_softmax

        self.head_dim = check_int(head_dim, "head_dim", minimum=1)
        self.window = check_int(window, "window", minimum=0)
        if isinstance(kernel, str) and is_softmax(kernel):
            raise ValueError("kernel must be a kernel variant, not softmax (window ≥ N already gives softmax)")
        if isinstance(kernel, Window) or (isinstance(kernel, type) and issubclass(kernel, Window)) \
                or kernel == Window.name:
            raise ValueError("kernel must not itself be a window hybrid")
        if kernel_params is not None and not isinstance(kernel_params, dict):
            raise TypeError(f"kernel_params must be a dict of the inner kernel's parameters, got {kernel_params!r}")
        self.inner = build_kernel(kernel, head_dim, **(kernel_params or {}))
        self.window_weight = self._check_weight(window_weight)

    @staticmethod
    def _check_weight(weight):
        if isinstance(weight, torch.Tensor):
            if weight.ndim != 1 or weight.numel() == 0:
                raise ValueError(f"window_weight as a tensor must be one weight per head (H,), got shape "
                                 f"{tuple(weight.shape)}")
            values = weight.detach()
            if not torch.isfinite(values).all() or (values <= 0).any():
                raise ValueError("window_weight must be finite and > 0 for every head")
            return weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"window_weight must be a finite number > 0 or a tensor (H,) of them, got {weight!r}")
        return float(weight)

    # ------------------------------------------------------------------ protocol
    def features(self, x):
        raise TypeError("a window hybrid is not a feature product φ(q)·φ(k): its forms are explicit_kernel and "
                        "efficient (approxlab.attention and attention_weights call them)")

    def kernel(self, x, y):
        raise TypeError("a window hybrid depends on positions: call explicit_kernel(x, y, causal=..., offset=...)")

    def kernel_expression(self, dim: int = 2):
        """κ = γ·exp(s) on the window, the inner kernel outside: exp(s) is not rational, so the row is not."""
        import sympy as sp

        from ._expression import KernelExpression, s

        gamma, gap, w = sp.Symbol("gamma", positive=True), sp.Symbol("|i-j|", nonnegative=True), sp.Symbol("w")
        inner = sp.Function(r"\kappa_{\mathrm{" + self.inner.name + "}}")(s)
        return KernelExpression(
            "", {}, sp.Piecewise((gamma * sp.exp(s), gap < w), (inner, True)), gamma * sp.exp(s), (), (s,), True,
            features=sp.Symbol("F"), note="γ·exp(s) within the window, the inner kernel outside; one denominator",
            no_degree="κ = γ·exp(s) on the keys within the window (exact softmax there) and the inner kernel "
                      "outside: exp(s) is not rational, so neither is the hybrid row")

    def feature_width(self, head_dim: int) -> int:
        """The inner kernel's F (the state is F × Dv, as for the kernel alone)."""
        return self.inner.feature_width(head_dim)

    def describe_size(self, head_dim: int) -> str:
        return f"window={self.window} + {self.inner.describe_size(head_dim)}"

    def log_weight(self, heads: int, like: torch.Tensor, trailing: int):
        """log γ as a number, or (H, 1, …) with ``trailing`` ones to broadcast against (…, H, ·…·)."""
        if isinstance(self.window_weight, float):
            return math.log(self.window_weight)
        w = self.window_weight.to(device=like.device, dtype=like.dtype)
        if w.numel() != heads:
            raise ValueError(f"window_weight has {w.numel()} entries (one per head) but the inputs have {heads} heads")
        return torch.log(w).reshape(-1, *([1] * trailing))

    # ------------------------------------------------------------------ explicit form
    def explicit_kernel(self, x: torch.Tensor, y: torch.Tensor, *, causal: bool, offset: int = 0):
        """(K, row_log) with the hybrid κ_ij = K_ij · exp(row_log_i) (module doc), K = 0 off the allowed
        keys; query row r is at position offset + r. Builds Nq × Nk: the reference."""
        nq, nk = x.shape[-2], y.shape[-2]
        inside, outside = window_masks(nq, nk, self.window, causal=causal, offset=offset, device=x.device)
        logits = x @ y.transpose(-1, -2)
        logits = logits + self.log_weight(_heads(x), logits, 2)
        matrix, cq, ck = true_kernel(self.inner, x, y)
        neg = torch.tensor(-math.inf, dtype=x.dtype, device=x.device)
        col = torch.zeros_like(matrix) if ck is None else ck.unsqueeze(-2).expand(matrix.shape)
        ref_window = torch.where(inside, logits, neg).amax(-1)
        ref_kernel = torch.where(outside, col, neg).amax(-1)
        if cq is not None:
            ref_kernel = ref_kernel + cq
        ref = torch.maximum(ref_window, ref_kernel)
        ref = torch.where(torch.isfinite(ref), ref, torch.zeros_like(ref))
        row = ref.unsqueeze(-1)
        window_part = torch.exp(torch.where(inside, logits - row, neg))
        kernel_log = col - row + (0 if cq is None else cq.unsqueeze(-1))
        kernel_part = torch.where(outside, matrix * torch.exp(torch.where(outside, kernel_log, neg)),
                                  torch.zeros_like(matrix))
        return window_part + kernel_part, ref

    # ------------------------------------------------------------------ efficient form
    def efficient(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, *, causal: bool,
                  chunk_size: Optional[int] = None) -> torch.Tensor:
        """o = a v without N×N (module doc); x, y, v (…, N, ·) with x·y = s, Nq = Nk."""
        if x.shape[-2] != y.shape[-2]:
            raise ValueError(f"a window hybrid needs query and key positions to agree: Nq = Nk, got "
                             f"{x.shape[-2]} and {y.shape[-2]}")
        chunk = check_int(chunk_size or DEFAULT_CHUNK, "chunk_size", minimum=1)
        n = x.shape[-2]
        chunk = min(chunk, n)
        self._check_memory(x, v, chunk)
        parts = [self._window_part(x, y, v, chunk, causal)]
        if self.window < n:
            parts.append(_lagged_kernel(self.inner, x, y, v, self.window, chunk))
            if not causal:  # keys j ≥ i + max(w, 1) (w = 0: the diagonal is already in the first pass)
                flip = lambda t: t.flip(-2)  # noqa: E731  keys j ≥ i + w are keys j' ≤ i' − w reversed
                num, den, ref = _lagged_kernel(self.inner, flip(x), flip(y), flip(v), max(self.window, 1), chunk)
                parts.append((flip(num), den.flip(-1), ref.flip(-1)))
        ref = parts[0][2]
        for _, _, r in parts[1:]:
            ref = torch.maximum(ref, r)
        ref = torch.where(torch.isfinite(ref), ref, torch.zeros_like(ref))
        num = den = 0
        for p_num, p_den, p_ref in parts:
            factor = torch.exp(p_ref - ref)  # exp(−inf) = 0 for a part with no keys in the row
            num = num + p_num * factor.unsqueeze(-1)
            den = den + p_den * factor
        zero = den == 0
        return torch.where(zero.unsqueeze(-1), torch.zeros_like(num),
                           num / torch.where(zero, torch.ones_like(den), den).unsqueeze(-1))

    def _check_memory(self, x, v, chunk):
        batch_heads, itemsize = x.shape[:-2].numel(), x.element_size()
        f, dv = self.inner.feature_width(x.shape[-1]), v.shape[-1]
        band = chunk + 2 * min(self.window, x.shape[-2])
        need = itemsize * batch_heads * (4 * f * (dv + 1) + 4 * chunk * band + 4 * chunk * f + 2 * x.shape[-2] * (dv + 2))
        budget.require(need, f"window hybrid ({self.describe_size(x.shape[-1])}): the states B·H·F·(Dv+1) = "
                             f"{batch_heads}·{f:,}·{dv + 1}, a band of {chunk}×{band} logits per chunk and the output")

    def _window_part(self, x, y, v, chunk, causal):
        """(num, den, ref) of γ exp(s) over W(i), per chunk of rows: the band of keys around the chunk."""
        n, w = x.shape[-2], self.window
        if w == 0:
            shape = x.shape[:-1]
            return (torch.zeros(*shape, v.shape[-1], dtype=v.dtype, device=v.device),
                    torch.zeros(shape, dtype=x.dtype, device=x.device),
                    torch.full(shape, -math.inf, dtype=x.dtype, device=x.device))
        nums, dens, refs = [], [], []
        log_gamma = self.log_weight(_heads(x), x, 1)
        for start in range(0, n, chunk):
            end = min(start + chunk, n)
            lo, hi = max(0, start - w + 1), end if causal else min(n, end + w - 1)
            logits = x[..., start:end, :] @ y[..., lo:hi, :].transpose(-1, -2)
            inside, _ = window_masks(end - start, hi - lo, w, causal=causal, offset=start - lo, device=x.device)
            logits = logits.masked_fill(~inside, -math.inf)
            top = logits.amax(-1)  # finite: the diagonal is in every window
            p = torch.exp(logits - top.unsqueeze(-1))
            nums.append(p @ v[..., lo:hi, :])
            dens.append(p.sum(-1))
            refs.append(top)
        ref = torch.cat(refs, -1)
        return torch.cat(nums, -2), torch.cat(dens, -1), ref + log_gamma


def _heads(x: torch.Tensor) -> int:
    """H of (B, H, N, D) inputs (1 for inputs without a head axis)."""
    return x.shape[-3] if x.ndim >= 3 else 1


def _lagged_kernel(kernel, x, y, v, lag, chunk):
    """Σ_{j ≤ i − lag} κ(x_i, y_j) [v_j, 1] as (num, den, ref) with the sum = [num, den]·e^{ref_i} (ref = −inf
    for a row with no such key). Chunks of rows [s, e): the prefix state over keys j < s − lag (relative to the
    running maximum M of the key log scales), and the triangle of keys s − lag ≤ j < e − lag with j ≤ i − lag."""
    n = x.shape[-2]
    lead = x.shape[:-2]
    dv = v.shape[-1]
    state = normaliser = None
    run_max = torch.full(lead, -math.inf, dtype=x.dtype, device=x.device)
    nums, dens, refs = [], [], []
    neg = -math.inf
    for start in range(0, n, chunk):
        end = min(start + chunk, n)
        fq, cq = exact_query_features(kernel, x[..., start:end, :])
        lo, hi = max(0, start - lag), max(0, end - lag)
        rows = end - start
        num = torch.zeros(*lead, rows, dv, dtype=v.dtype, device=v.device)
        den = torch.zeros(*lead, rows, dtype=x.dtype, device=x.device)
        ref = run_max.unsqueeze(-1).expand(*lead, rows)
        if hi > lo:
            fk, ck = kernel.key_features(y[..., lo:hi, :])
            ck = torch.zeros(fk.shape[:-1], dtype=x.dtype, device=x.device) if ck is None else ck
            # row r (position start + r) sees block key l (position lo + l) when lo + l ≤ start + r − lag
            seen = torch.ones(rows, hi - lo, dtype=torch.bool, device=x.device).tril(start - lag - lo)
            col = ck.unsqueeze(-2).expand(*lead, rows, hi - lo).masked_fill(~seen, neg)
            ref = torch.maximum(ref, col.amax(-1))
        finite = torch.isfinite(ref)
        safe = torch.where(finite, ref, torch.zeros_like(ref))
        if state is not None:
            carry = torch.exp(run_max.unsqueeze(-1) - safe)  # 0 where the prefix was empty
            num = num + (fq @ state) * carry.unsqueeze(-1)
            den = den + torch.einsum("...nf,...f->...n", fq, normaliser) * carry
        if hi > lo:
            weight = torch.exp(col - safe.unsqueeze(-1))  # masked entries: exp(−inf) = 0
            block = (fq @ fk.transpose(-1, -2)) * weight
            num = num + block @ v[..., lo:hi, :]
            den = den + block.sum(-1)
            # fold keys lo..hi−1 into the prefix state (they are seen by every later chunk's rows)
            state, normaliser, run_max = _fold_keys(state, normaliser, run_max, fk, ck, v[..., lo:hi, :])
        nums.append(num)
        dens.append(den)
        refs.append(torch.where(finite, ref + (0 if cq is None else cq), ref))
    return torch.cat(nums, -2), torch.cat(dens, -1), torch.cat(refs, -1)


def _fold_keys(state, normaliser, run_max, fk, ck, v):
    """Add a block of keys (features fk with log scales ck, values v) to the running state S = Σ φ(k_j) v_jᵀ
    and normaliser z = Σ φ(k_j), both kept relative to the running maximum of the key scales (as online
    softmax does), so no factor exceeds 1. Returns the new (S, z, maximum)."""
    new_max = torch.maximum(run_max, ck.amax(-1))
    scale_new = torch.exp(ck - new_max.unsqueeze(-1))
    kv = fk.transpose(-1, -2) @ (v * scale_new.unsqueeze(-1))
    kz = (scale_new.unsqueeze(-2) @ fk).squeeze(-2)
    if state is None:
        return kv, kz, new_max
    rescale = torch.exp(run_max - new_max)
    return state * rescale[..., None, None] + kv, normaliser * rescale[..., None] + kz, new_max


def kernel_sums(kernel, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, *, causal: bool,
                chunk_size: Optional[int] = None):
    """The unnormalised sums of a feature kernel, Σ_j κ(x_i, y_j) [v_j, 1] over the allowed keys, as
    (num, den, ref) with the sums = [num, den] · e^{ref_i}: the true κ (the query's factor kept), so sums of
    different kernels (or feature groups) can be added after rescaling to a common reference. O(N·F·Dv)."""
    chunk = check_int(chunk_size or DEFAULT_CHUNK, "chunk_size", minimum=1)
    if causal:
        return _lagged_kernel(kernel, x, y, v, 0, chunk)
    lead, n = x.shape[:-2], y.shape[-2]
    state = normaliser = None
    run_max = torch.full(lead, -math.inf, dtype=x.dtype, device=x.device)
    for start in range(0, n, chunk):
        fk, ck = kernel.key_features(y[..., start:start + chunk, :])
        ck = torch.zeros(fk.shape[:-1], dtype=x.dtype, device=x.device) if ck is None else ck
        state, normaliser, run_max = _fold_keys(state, normaliser, run_max, fk, ck, v[..., start:start + chunk, :])
    nums, dens, refs = [], [], []
    for start in range(0, x.shape[-2], chunk):
        fq, cq = exact_query_features(kernel, x[..., start:start + chunk, :])
        nums.append(fq @ state)
        dens.append(torch.einsum("...nf,...f->...n", fq, normaliser))
        ref = run_max.unsqueeze(-1).expand(fq.shape[:-1])
        refs.append(ref if cq is None else ref + cq)
    return torch.cat(nums, -2), torch.cat(dens, -1), torch.cat(refs, -1)


def fit_window_weight(q: torch.Tensor, k: torch.Tensor, *, window: int, kernel="hedgehog",
                      kernel_params: Optional[dict] = None, causal: bool = False,
                      scale: Optional[float] = None) -> torch.Tensor:
    """One window weight per head, γ_h = exp(Σ b_ij g_ij / Σ b_ij) over the keys outside the window, with
    g = log κ − s the inner kernel's log-error and b the softmax weights: the softmax-weighted centre of the
    kernel's log-offset, which puts the window's g = log γ − log γ = 0 where the outside keys' mass sits (the
    hybrid bound, :func:`approxlab.analysis.theory.hybrid_tv_bound`, grows as [ℓ, h] moves away from 0).

    q, k (B, H, N, D) are a calibration set (fit on one window of text, use on another, so a causal pass
    never sees its own future). Returns a float64 tensor (H,); 1 for a head without outside keys or where the
    kernel is not positive on them. Builds N×N: calibration-sized inputs.
    """
    from ..core.checks import check_qkv, resolve_scale

    check_qkv(q, k, None, causal=causal)
    scale = resolve_scale(scale, q.shape[-1])
    probe = Window(q.shape[-1], window=window, kernel=kernel, kernel_params=kernel_params)
    root = math.sqrt(scale)
    x, y = q.double() * root, k.double() * root
    logits = x @ y.transpose(-1, -2)
    _, outside = window_masks(x.shape[-2], y.shape[-2], probe.window, causal=causal, device=x.device)
    matrix, cq, ck = true_kernel(probe.inner, x, y)
    positive = matrix > 0
    g = torch.where(positive, matrix.clamp_min(torch.finfo(torch.float64).tiny).log(), torch.zeros_like(matrix))
    if cq is not None:
        g = g + cq.unsqueeze(-1)
    if ck is not None:
        g = g + ck.unsqueeze(-2)
    g = g - logits
    allowed = outside.expand(g.shape) & positive
    # weight every outside pair by its softmax weight in the full row (b_ij), per head
    full = torch.softmax(logits if not causal else logits.masked_fill(
        ~torch.ones(x.shape[-2], y.shape[-2], dtype=torch.bool, device=x.device).tril(), -math.inf), -1)
    weight = torch.where(allowed, full, torch.zeros_like(full))
    heads = list(range(x.ndim - 3)) + [x.ndim - 2, x.ndim - 1]  # every axis but the heads
    total = weight.sum(dim=heads)
    centre = (weight * torch.where(allowed, g, torch.zeros_like(g))).sum(dim=heads)
    return torch.where(total > 0, torch.exp(centre / torch.where(total > 0, total, torch.ones_like(total))),
                       torch.ones_like(total))
