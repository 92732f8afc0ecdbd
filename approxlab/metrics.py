"""Row-wise divergences between attention weights, and output error on the scale of the values.

    TV(a_i, b_i)  = ½ Σ_j |a_ij − b_ij|
    KL(a_i ‖ b_i) = Σ_j a_ij log(a_ij / b_ij)
    H(a_i)        = −Σ_j a_ij log a_ij            (H / log N_i is the normalised entropy)
    err_i         = ‖o_i − ô_i‖ / rms_j ‖v_j‖     (relative to ‖v‖, not ‖o‖: ‖o_softmax‖ shrinks
                                                  like 1/√N for high-entropy rows, ‖v‖ does not)
"""

from __future__ import annotations


import torch

from .attention import attention_weights
from .variants import kernel_name


def row_tv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 0.5 * (a - b).abs().sum(-1)


def row_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per row; terms with p = 0 contribute 0, q = 0 < p gives inf."""
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)


def row_entropy(a: torch.Tensor) -> torch.Tensor:
    return -torch.xlogy(a, a).sum(-1)


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


def row_divergence(q, k, variants, *, reference="softmax", causal=False, scale=None, block=None,
                   reference_params=None, params=None, max_rows=None):
    """Per-row TV, KL and entropy of each variant against ``reference`` (explicit weights), in query blocks.

    ``variants``: a variant (name, kernel object or KernelVariant subclass) or a list of them;
    ``params``: {name: kwargs}. Returns {name: dict} (kernel objects keyed by their name) of
    (B, H, Nq) float64 tensors: ``tv``, ``kl`` (reference ‖ variant), ``entropy`` (of the reference
    rows) and ``log_n`` (log of the number of keys each row sees). Memory O(block · Nk); the default
    block keeps block · Nk · B · H ≤ 2²³ (64 MiB per float64 matrix): each block recomputes the key
    features, so blocks much smaller than that are 3–4× slower for feature kernels at N = 4096.
    ``max_rows``: evaluate only that many query rows (evenly spaced runs, :func:`sample_rows`), an
    unbiased sample of the row means at long N; the result then also holds ``rows`` (their indices).
    """
    single = isinstance(variants, str) or not isinstance(variants, (list, tuple))
    chosen = [variants] if single else list(variants)
    names = [kernel_name(v) for v in chosen]
    if len(set(names)) != len(names):
        raise ValueError(f"variants must have distinct names, got {names}")
    params = params or {}
    parts = {name: {"tv": [], "kl": []} for name in names}
    entropy = []
    nq = q.shape[-2]
    if block is None:
        block = max(1, min(nq, 2**23 // max(1, k.shape[-2] * q.shape[0] * q.shape[1])))
    segments = sample_rows(nq, max_rows)
    row_index = torch.cat([torch.arange(seg.start, seg.stop) for seg in segments])
    blocks = [slice(b, min(b + block, seg.stop)) for seg in segments for b in range(seg.start, seg.stop, block)]
    for rows in blocks:
        ref = attention_weights(q, k, reference, causal=causal, scale=scale, rows=rows, **(reference_params or {})).double()
        ref_entropy = row_entropy(ref)
        entropy.append(ref_entropy)
        for name, variant in zip(names, chosen):
            approx = attention_weights(q, k, variant, causal=causal, scale=scale, rows=rows,
                                       **params.get(name, {})).double()
            parts[name]["tv"].append(row_tv(ref, approx))
            parts[name]["kl"].append(-ref_entropy - torch.xlogy(ref, approx).sum(-1))
    entropy = torch.cat(entropy, dim=-1)
    n_keys = (row_index + 1).double() if causal else torch.full((len(row_index),), float(k.shape[-2]))
    log_n = torch.log(n_keys).expand_as(entropy)
    result = {name: {"tv": torch.cat(d["tv"], -1), "kl": torch.cat(d["kl"], -1), "entropy": entropy, "log_n": log_n,
                     "rows": row_index} for name, d in parts.items()}
    return result[names[0]] if single else result
