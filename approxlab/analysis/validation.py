"""Numerical validation of the efficient forms against a float64 explicit reference, in row blocks.

For one input (q, k, v) in float64 and one variant, every dtype t gives per query row i
(outputs relative to rms_j ‖v_j‖, weights as row TV):

    total    = o_eff^t          − o_softmax^64      (what a user gets)
    approx   = o_variant^64     − o_softmax^64      (the kernel's approximation error, no rounding)
    fp       = o_eff^t          − o_variant^64      (floating point: the same variant, float64 reference)
      fp_input = o_variant^64(q^t, k^t, v^t) − o_variant^64   (rounding the inputs to t)
      fp_arith = o_eff^t           − o_variant^64(q^t, k^t, v^t)  (the arithmetic of the efficient form)

The float64 references are explicit (a = normalised κ, o = a v), built ``rows`` at a time so memory is
O(block · N), never N × N. The weights-side terms (row TV: total, approx, fp) use the explicit weights
computed in t. Non-finite values are counted in the efficient outputs (entries) and in every per-row
term (rows): a NaN or inf anywhere in a row's weights or reference propagates into that row's terms.

Bridge (DESIGN.md, Lemma 2): with g_ij = log a_ij − s_ij and δ_i = ½ (max_j g_ij − min_j g_ij) over the
keys row i sees,
    TV_i(a, softmax) ≤ tanh(δ_i / 2),       ‖o_i − o_softmax,i‖ ≤ tanh(δ_i / 2) · diam_i{v_j}.
Measured in dtype t, a row violates the bridge only beyond its floating-point floor, i.e. when
    total_i > bound_i + fp_i + SLACK
(the triangle inequality makes total ≤ approx + fp, so a violation means the lemma fails in float64).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from ..core.checks import check_int, check_qkv, resolve_scale
from ..api import attention, attention_weights
from ..core.naive import causal_mask
from .metrics import row_tv, value_scale
from .theory import row_log_error, tv_bound, value_diameter
from ..variants import VARIANTS, build_kernel, is_softmax

#: dtype names accepted by :func:`validate`, in the order reported
DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: unit roundoff u = eps / 2 of each dtype (relative error of rounding one number)
UNIT_ROUNDOFF = {name: torch.finfo(dt).eps / 2 for name, dt in DTYPES.items()}
#: absolute slack of the float64 reference itself in the bridge checks (reference error ≈ 1e-13)
SLACK = 1e-10
#: error terms reported for outputs (``err_*``) and for weights (``tv_*``)
TERMS = ("total", "approx", "fp", "fp_input", "fp_arith")
TV_TERMS = ("total", "approx", "fp")
KEYS = tuple(f"err_{t}" for t in TERMS) + tuple(f"tv_{t}" for t in TV_TERMS)


def check_dtypes(dtypes: Iterable[str]) -> tuple[str, ...]:
    names = (dtypes,) if isinstance(dtypes, str) else tuple(dtypes)
    bad = [d for d in names if d not in DTYPES]
    if bad or not names:
        raise ValueError(f"dtypes must be a non-empty subset of {list(DTYPES)}, got {list(names)!r}")
    return names


def log_uniform_delta(weights: torch.Tensor, s: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """δ_i = ½ (max_j g_ij − min_j g_ij), g = log a − s, over the allowed keys (``mask`` True).

    Equals min_c max_j |log κ_ij − s_ij − c| (the per-row normalisation is such a c). A zero weight on
    an allowed key gives δ = inf (bound 1, still valid); a negative one (a signed kernel, e.g. an odd
    polynomial off its range) gives NaN: the bridge does not apply to that row. Nor does it to a row
    with no kernel mass at all (every weight 0, e.g. relu-type features at a causal row's first keys),
    which is not a distribution and whose output the efficient form sets to 0: NaN too. Shape (…, Nq).
    """
    invalid = (weights < 0) | torch.isnan(weights)
    if mask is not None:
        invalid = invalid & mask
    massless = (weights == 0).all(-1)
    delta = row_log_error(torch.log(weights.clamp_min(0)), s, mask)
    return delta.masked_fill(invalid.any(-1) | massless, math.nan)


def _nonfinite(x: torch.Tensor) -> int:
    return int((~torch.isfinite(x)).sum())


def _fixed_params(variant: str, head_dim: int, params: dict | None) -> dict:
    """The same kernel with its random matrices built once (they are rebuilt on every call otherwise)."""
    params = dict(params or {})
    if is_softmax(variant):
        return params
    fixed = getattr(build_kernel(variant, head_dim, **params), "fixed_params", None)
    return fixed(params) if callable(fixed) else params


def row_errors(q, k, v, variant: str, *, causal: bool, dtypes=tuple(DTYPES), scale: float | None = None,
               params: dict | None = None, block_elements: int = 2**22, chunk_size: int | None = None) -> dict:
    """Per-row error decomposition of ``variant`` in each dtype against the float64 references.

    q, k, v: float64 (B, H, N, D) — the exact inputs; each dtype sees them rounded. Returns
    {dtype: {KEYS: (B, H, N) float64, "bound", "delta", "diam" (÷ rms‖v‖), "nonfinite": int}}. Memory O(block · N · B · H).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    check_qkv(q, k, v, causal=causal)
    if q.dtype != torch.float64:
        raise TypeError(f"q, k, v must be float64 (the exact inputs), got {q.dtype}")
    names = check_dtypes(dtypes)
    block_elements = check_int(block_elements, "block_elements", minimum=1)
    params = _fixed_params(variant, q.shape[-1], params)
    scale = resolve_scale(scale, q.shape[-1])
    nq, nk = q.shape[-2], k.shape[-2]
    batch_heads = q.shape[0] * q.shape[1]
    block = max(1, min(nq, block_elements // max(1, nk * batch_heads)))
    opts = dict(causal=causal, scale=scale)
    extra = {} if variant == "softmax" else params

    lowered = {t: tuple(x.to(DTYPES[t]) for x in (q, k, v)) for t in names}
    efficient = {t: attention(*lowered[t], variant, chunk_size=chunk_size, **opts, **extra) for t in names}
    v_rms = value_scale(v)  # (B, H, 1)
    parts = {t: {key: [] for key in KEYS} for t in names}
    nonfinite = {t: _nonfinite(efficient[t]) for t in names}
    deltas = []
    for start in range(0, nq, block):
        rows = slice(start, min(start + block, nq))
        s = (q[..., rows, :] @ k.transpose(-1, -2)) * scale
        mask = causal_mask(s.shape[-2], nk, q.device, start) if causal else None
        soft = attention_weights(q, k, "softmax", rows=rows, **opts)
        a64 = soft if variant == "softmax" else attention_weights(q, k, variant, rows=rows, **opts, **extra)
        deltas.append(log_uniform_delta(a64, s, mask))
        o_soft, o64 = soft @ v, a64 @ v
        err_approx = (o64 - o_soft).norm(dim=-1) / v_rms
        tv_approx = row_tv(a64, soft)
        for t in names:
            ql, kl, vl = lowered[t]
            if t == "float64":
                a_in, a_t, o_in = a64, a64, o64
            else:
                a_in = attention_weights(ql.double(), kl.double(), variant, rows=rows, **opts, **extra)
                a_t = attention_weights(ql, kl, variant, rows=rows, **opts, **extra).double()
                o_in = a_in @ vl.double()
            o_t = efficient[t][..., rows, :].double()
            d = parts[t]
            d["err_total"].append((o_t - o_soft).norm(dim=-1) / v_rms)
            d["err_approx"].append(err_approx)
            d["err_fp"].append((o_t - o64).norm(dim=-1) / v_rms)
            d["err_fp_input"].append((o_in - o64).norm(dim=-1) / v_rms)
            d["err_fp_arith"].append((o_t - o_in).norm(dim=-1) / v_rms)
            d["tv_total"].append(row_tv(a_t, soft))
            d["tv_approx"].append(tv_approx)
            d["tv_fp"].append(row_tv(a_t, a64))
    delta = torch.cat(deltas, -1)
    signed = torch.isnan(delta)  # a signed kernel's row: the bridge does not apply, its bound is NaN
    bound = tv_bound(delta.masked_fill(signed, 0.0)).masked_fill(signed, math.nan)
    diam = value_diameter(v, causal=causal, block_rows=block) / v_rms
    result = {}
    for t in names:
        out = {key: torch.cat(val, -1) for key, val in parts[t].items()}
        nonfinite[t] += int((~torch.stack([torch.isfinite(x) for x in out.values()]).all(0)).sum())
        out.update(delta=delta, bound=bound, diam=diam, nonfinite=nonfinite[t])
        result[t] = out
    return result


def bridge_counts(r: dict) -> dict:
    """Rows checked (those with δ defined), rows above the bound, and rows above bound + fp floor,
    for weights and outputs.

    weights: tv_total vs tanh(δ/2) [+ tv_fp];  outputs: err_total vs tanh(δ/2)·diam [+ err_fp];
    ``lemma_violations``: float64 rows with tv_approx > tanh(δ/2) + SLACK (must be 0).
    ``ratio_max``: max_i (tv_total − tv_fp)_i / bound_i (≤ 1 when nothing is violated).
    """
    ok = ~torch.isnan(r["delta"])
    bound, out_bound = r["bound"][ok], (r["bound"] * r["diam"])[ok]
    tv, tv_fp, err, err_fp = (r[key][ok] for key in ("tv_total", "tv_fp", "err_total", "err_fp"))
    ratio = ((tv - tv_fp) / bound)[bound > 0]
    return dict(
        bridge_rows=int(ok.sum()),
        bridge_exceed_weights=int((tv > bound + SLACK).sum()),
        bridge_violations_weights=int((tv > bound + tv_fp + SLACK).sum()),
        bridge_exceed_outputs=int((err > out_bound + SLACK).sum()),
        bridge_violations_outputs=int((err > out_bound + err_fp + SLACK).sum()),
        lemma_violations=int((r["tv_approx"][ok] > bound + SLACK).sum()),
        bridge_ratio_max=float(ratio.max()) if ratio.numel() else float("nan"),
    )


def summarise(r: dict, *, bridge: bool = True) -> dict:
    """Mean and max over rows of every term, the mean bound, bridge counts (``bridge=False``: softmax)."""
    row = {}
    for key in KEYS:
        row[f"{key}_mean"] = float(r[key].mean())
        row[f"{key}_max"] = float(r[key].max())
    finite_delta = r["delta"][torch.isfinite(r["delta"])]
    ok = ~torch.isnan(r["delta"])
    row.update(
        rows=int(r["bound"].numel()), signed_rows=int((~ok).sum()),
        bound_mean=float(r["bound"][ok].mean()) if ok.any() else float("nan"),
        delta_median=float(finite_delta.median()) if finite_delta.numel() else float("inf"),
        infinite_delta_rows=int((~torch.isfinite(r["delta"])).sum()),
        diam_mean=float(r["diam"].mean()), nonfinite=int(r["nonfinite"]),
    )
    if bridge:
        row.update(bridge_counts(r))
    else:
        row.update(bridge_rows=0, bridge_exceed_weights=0, bridge_violations_weights=0, bridge_exceed_outputs=0,
                   bridge_violations_outputs=0, lemma_violations=0, bridge_ratio_max=float("nan"))
    return row


def validate(q, k, v, variant: str, *, causal: bool, dtypes=tuple(DTYPES), **kwargs) -> list[dict]:
    """One summary row per dtype (see :func:`row_errors`, :func:`summarise`); softmax skips the bridge."""
    per_row = row_errors(q, k, v, variant, causal=causal, dtypes=dtypes, **kwargs)
    return [dict(variant=variant, dtype=t, causal=causal, n=q.shape[-2], unit_roundoff=UNIT_ROUNDOFF[t],
                 **summarise(r, bridge=variant != "softmax"))
            for t, r in per_row.items()]


def problems(df) -> list[str]:
    """What must be zero in a validation table: non-finite values, bridge violations beyond the fp floor."""
    found = []
    for col in ("nonfinite", "bridge_violations_weights", "bridge_violations_outputs", "lemma_violations"):
        if col in df and df[col].fillna(0).sum() > 0:
            bad = df[df[col].fillna(0) > 0]
            where = ", ".join(f"{r.variant}/{r.dtype}/causal={r.causal}/N={r.n}" for r in bad.itertuples())
            found.append(f"{col} = {int(df[col].fillna(0).sum())} at {where}")
    return found
