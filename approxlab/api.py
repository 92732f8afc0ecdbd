"""The public attention API: one call per form, every variant, (B, H, N, D) tensors as in SDPA.

    attention(q, k, v, variant, causal=False, scale=None, **params)   -> (B, H, Nq, Dv)   efficient form
    attention_weights(q, k, variant, causal=False, scale=None, **params) -> (B, H, Nq, Nk) explicit form

``variant`` is a name (``approxlab.variant_names()``: the built-in ones and those added with
``approxlab.register_kernel``), a kernel object or a ``KernelVariant`` subclass (the kernel protocol:
:mod:`approxlab.variants`). The similarity is s = q·k · scale (scale = 1/√D by default); kernel
variants see x = q·√scale and y = k·√scale, so x·y = s. Half-precision inputs are computed in
float32 and returned in their dtype.

The module is ``approxlab.api``; its functions are re-exported at the top level (``approxlab.attention``
is the function). :func:`unchecked_kernel_attention` is the efficient form without the input checks,
for callers that have checked already (the benchmarks compile it).
"""

from __future__ import annotations

import math
import weakref

import torch
from torch import nn

from .core import budget, chunk, naive
from .core.checks import (
    HeadDimError, check_features, check_finite_result, check_int, check_kernel_matrix, check_feature_width, check_qkv,
    check_similarity_range, resolve_scale,
)
from .variants import (
    KERNELS, VARIANTS, KernelVariant, build_kernel, check_params, check_variant, inputs_for, is_positional, is_softmax,
    kernel_name, needs_head_dim, value_text, variant_class,
)
from .variants.softmax import softmax_attention


def _check_causal(causal):
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    return causal


def _check_call(variant, params, chunk_size, backend):
    """Validate what does not depend on the tensors: the variant, its parameters, chunk_size, backend."""
    variant = check_variant(variant)
    check_params(variant, params)
    if backend not in chunk.BACKENDS:
        raise ValueError(f"backend must be one of {list(chunk.BACKENDS)}, got {backend!r}")
    if chunk_size is not None:  # checked for softmax too (one calling convention), where SDPA does not chunk
        chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    if is_softmax(variant) and backend != "torch":
        raise ValueError(f"backend={backend!r} applies to kernel variants; softmax runs SDPA")
    return variant, chunk_size


def _checked_inputs(q, k, v, variant, causal, scale):
    """The input checks every entry point runs once per call (the function, the module, the explicit forms):
    q, k, v themselves, positions for a positional kernel (cosFormer: appended when q and k carry none), the
    scale, and the similarity range. Returns (q, k, scale, reach) with reach = √scale · max(max|q|, max|k|),
    the largest scaled input coordinate (None for an empty batch)."""
    _check_causal(causal)
    magnitudes = check_qkv(q, k, v, causal=causal)
    scale = resolve_scale(scale, q.shape[-1])  # from the head dim as given (before any positions are appended)
    if is_positional(variant):  # positions (cos θ, sin θ) lie in [0, 1]
        if causal and q.shape[-2] < k.shape[-2]:
            raise ValueError(f"{kernel_name(variant)!r} reads positions, which inputs_for appends from 0 for the "
                             "queries; with causal Nq < Nk they are the last Nq positions: approxlab.hf places them")
        q, k = inputs_for(variant, q, k)
        magnitudes = tuple(None if m is None else max(m, 1.0) for m in magnitudes)
    if magnitudes[0] is None:  # an empty batch (B = 0 or H = 0)
        return q, k, scale, None
    check_similarity_range(magnitudes, q.shape[-1], scale, chunk.compute_dtype(q.dtype), kernel_name(variant))
    return q, k, scale, math.sqrt(scale) * max(magnitudes)


def _log_scaled(kernel, reach, work) -> bool:
    """Whether exponential-type features (elu + 1) can underflow on these inputs: a product of a query and
    a key feature reaches e^{−2·order·reach}; below the working dtype's smallest normal number over its ε the
    features are taken with their per-row log scale (:meth:`KernelVariant.log_scaled_features`)."""
    order = getattr(kernel, "exponential_order", 0)
    if not order or reach is None:
        return False
    info = torch.finfo(work)
    return 2 * order * reach > -math.log(info.tiny) + math.log(info.eps)


_VERIFIED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _is_builtin(kernel) -> bool:
    name = getattr(kernel, "name", None)
    return name in VARIANTS and type(kernel) is KERNELS.get(name)


def _verify_kernel(kernel, q, k, scale, work, name) -> None:
    """A user kernel's outputs on first use (per head dim, dtype and device): ``feature_width`` a positive integer,
    each feature map's (f, log_scale) of the right shape, dtype and device, finite, F = feature_width
    (:func:`~approxlab.core.checks.check_features`), on the first two rows of one head. Built-in kernels are
    held to the protocol by the test suite and skip this."""
    if _is_builtin(kernel) or callable(getattr(kernel, "efficient", None)):  # estimators check their own parts
        return
    key = (q.shape[-1], work, q.device)
    try:
        seen = _VERIFIED.setdefault(kernel, set())
    except TypeError:  # not weak-referenceable: checked every call (two rows)
        seen = set()
    if key in seen:
        return
    head_dim = q.shape[-1]
    width = check_feature_width(kernel.feature_width(head_dim), name, head_dim)
    root = math.sqrt(scale)
    for method, x in (("query_features", q), ("key_features", k)):
        probe = x.reshape(-1, *x.shape[-2:])[:1, :2].to(work) * root
        got = check_features(getattr(kernel, method)(probe), probe, name, method)
        if got != width:
            raise ValueError(f"kernel {name!r}: {method}(x) returned {got} features per row but feature_width("
                             f"{head_dim}) = {width}; the state and the memory plan are sized by feature_width, so "
                             "they must agree")
    seen.add(key)


def _efficient(variant, kernel_for, q, k, v, *, causal, scale, chunk_size, backend, num_features=None):
    """The efficient form behind :func:`attention` and :class:`Attention` alike: the checks of
    :func:`_checked_inputs`, the kernel (``kernel_for(head_dim)``) checked on first use, then the result checked
    for NaN/inf once. ``num_features``: the number m of random features the caller gave (F ≥ m, for
    every variant that takes one), checked against the work budget before the kernel draws its projection."""
    if v is None:
        raise TypeError("v must be a torch.Tensor (B, H, Nk, Dv), got None; attention_weights gives the weights alone")
    q, k, scale, reach = _checked_inputs(q, k, v, variant, causal, scale)
    work = chunk.compute_dtype(q.dtype)
    if isinstance(num_features, int) and not isinstance(num_features, bool) and num_features > 0:
        budget.require_work(chunk.efficient_flops(q.shape[:-2].numel(), q.shape[-2], k.shape[-2], q.shape[-1],
                                                  v.shape[-1], num_features, 64 if causal else 0),
                            f"{kernel_name(variant)} num_features={num_features:,}")
    kernel = None if is_softmax(variant) else kernel_for(q.shape[-1])
    if reach is None:  # an empty batch: an empty output, as SDPA gives
        return torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
    if kernel is None and causal and q.shape[-2] < k.shape[-2]:  # SDPA's is_causal aligns top-left
        mask = naive.causal_mask(q.shape[-2], k.shape[-2], q.device, offset=k.shape[-2] - q.shape[-2])
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    elif kernel is None:
        out = softmax_attention(q, k, v, causal=causal, scale=scale)
    else:
        _verify_kernel(kernel, q, k, scale, work, kernel_name(variant))
        out = unchecked_kernel_attention(kernel, q, k, v, causal=causal, scale=scale, chunk_size=chunk_size,
                                         backend=backend, log_scaled=_log_scaled(kernel, reach, work))
    return check_finite_result(out, q, k, scale, kernel_name(variant), work, kernel)


def attention(q, k, v, variant="softmax", *, causal: bool = False, scale: float | None = None,
              chunk_size: int | None = None, backend: str = "torch", **params) -> torch.Tensor:
    """Efficient form of ``variant``: never allocates N×N (softmax: SDPA), linear in N for kernels.

    Parameters
    ----------
    q, k : torch.Tensor
        Queries (B, H, Nq, D) and keys (B, H, Nk, D). cosFormer takes them plain (it appends positions
        0..N−1 itself) or with positions appended (:func:`~approxlab.variants.with_positions`).
    v : torch.Tensor
        Values (B, H, Nk, Dv).
    variant : str, kernel object or KernelVariant subclass, default "softmax"
        A name from :func:`approxlab.variant_names` (the built-in variants and those added with
        :func:`approxlab.register_kernel`), a kernel object, or a kernel class built with ``**params``
        (the protocol: :mod:`approxlab.core.protocol`).
    causal : bool, default False
        Query i sees keys 0..i only. With Nq < Nk the queries are the last Nq positions: query i sees keys
        j ≤ i + Nk − Nq, as with a KV cache (the cost is that of the Nk positions).
    scale : float or None
        The similarity is s = q·k · scale; None means 1/√D.
    chunk_size : int or None
        Positions per causal chunk, or rows per key/query block when non-causal (None: the engine's measured
        default; longer than the sequence: the sequence). Checked, and unused, for softmax.
    backend : {"torch", "triton"}
        "triton" runs the causal form of scale-free features as one fused kernel (:mod:`approxlab.core.fused`).
    **params
        The variant's own parameters (``num_features=256`` for ``"performer"``, ``order=2`` for ``"taylor"``,
        …): each variant's class in :mod:`approxlab.variants` documents its parameters, and
        :func:`approxlab.variants.parameters_doc` lists them all. softmax takes none.

    Returns
    -------
    torch.Tensor
        o (B, H, Nq, Dv) in the dtype of q (half precision is computed in float32). An empty batch (B = 0
        or H = 0) gives an empty output.

    Raises
    ------
    ValueError
        An unknown variant, a bad parameter value, inputs of the wrong shape.
    OverflowError
        Similarities that would overflow the working dtype (checked before computing).
    TypeError
        Parameters the variant does not take, or any for softmax.
    MemoryBudgetError
        A buffer larger than the memory budget (:func:`approxlab.set_memory_budget`).

    Notes
    -----
    With features φ_q, φ_k of the kernel κ(q, k) = φ_q(x)·φ_k(y), x = q·√scale, y = k·√scale:

        o_i = Σ_j φ_q(x_i)·φ_k(y_j) v_j / Σ_j φ_q(x_i)·φ_k(y_j) = φ_q(x_i) S / φ_q(x_i) z,

    S = Σ_j φ_k(y_j) v_jᵀ (F × Dv) and z = Σ_j φ_k(y_j), prefix sums of them when causal (chunked). Cost
    O(N·F·Dv) instead of the explicit form's O(N²·D).

    References
    ----------
    Katharopoulos et al., ICML 2020 ("Transformers are RNNs"), for the associativity that makes it linear.

    Examples
    --------
    >>> import torch, approxlab
    >>> q, k, v = (torch.randn(1, 2, 16, 8, dtype=torch.float64) for _ in range(3))
    >>> out = approxlab.attention(q, k, v, "linear", causal=True)
    >>> out.shape
    torch.Size([1, 2, 16, 8])
    >>> ref = approxlab.explicit_attention(q, k, v, "linear", causal=True)
    >>> bool(torch.allclose(out, ref, atol=1e-12))
    True
    """
    variant, chunk_size = _check_call(variant, params, chunk_size, backend)
    return _efficient(variant, lambda head_dim: build_kernel(variant, head_dim, **params), q, k, v, causal=causal,
                      scale=scale, chunk_size=chunk_size, backend=backend, num_features=params.get("num_features"))


def unchecked_kernel_attention(kernel, q, k, v, *, causal: bool, scale: float, chunk_size: int | None = None,
                               backend: str = "torch", log_scaled: bool = False) -> torch.Tensor:
    """The efficient form for an already-built kernel, without input checks (what :func:`attention`
    and :class:`Attention` run after checking; what the benchmarks compile). ``log_scaled``: take the
    kernel's :meth:`~approxlab.core.protocol.KernelVariant.log_scaled_features` (inputs in the underflow range)."""
    nq, nk = q.shape[-2], k.shape[-2]
    if causal and nq < nk:  # queries at the last Nq positions: dummy queries before them, their rows dropped
        q = torch.cat([q.new_zeros(*q.shape[:-2], nk - nq, q.shape[-1]), q], dim=-2)
        out = unchecked_kernel_attention(kernel, q, k, v, causal=True, scale=scale, chunk_size=chunk_size,
                                         backend=backend, log_scaled=log_scaled)
        return out[..., nk - nq:, :]
    work = chunk.compute_dtype(q.dtype)
    root = math.sqrt(scale)
    own = getattr(kernel, "efficient", None)
    if callable(own):  # an estimator with its own efficient form (window hybrids, shrinkage: core.protocol)
        if backend != "torch":
            raise ValueError(f"backend={backend!r} applies to feature kernels; {kernel_name(kernel)!r} runs its "
                             "own efficient form (backend='torch')")
        return own(q.to(work) * root, k.to(work) * root, v.to(work), causal=causal,
                   chunk_size=chunk_size).to(q.dtype)

    def scaled(feature_map):  # x = q·√scale (in the working dtype) per block, while the block is in cache
        return lambda x: feature_map(x.to(work) * root)

    query_map, key_map = ((kernel.log_scaled_features, kernel.log_scaled_features) if log_scaled
                          else (kernel.query_features, kernel.key_features))
    out = chunk.efficient_attention(
        scaled(query_map), scaled(key_map), q, k, v.to(work),
        causal=causal, chunk_size=chunk_size, feature_width=kernel.feature_width(q.shape[-1]), backend=backend,
        label=kernel.describe_size(q.shape[-1]),
    )
    return out.to(q.dtype)


def attention_weights(q, k, variant="softmax", *, causal: bool = False, scale: float | None = None,
                      rows: slice | None = None, **params) -> torch.Tensor:
    """Explicit normalised weights a (B, H, Nq, Nk) of ``variant``, from its kernel's definition.

    Parameters
    ----------
    q, k : torch.Tensor
        Queries (B, H, Nq, D) and keys (B, H, Nk, D).
    variant, causal, scale
        As for :func:`attention`.
    rows : slice or None
        Only query rows a..b−1 of ``slice(a, b)`` (all keys, causal mask kept), so row metrics can be
        computed block by block without N×N memory (:func:`attention_weight_blocks` does many at once).
    **params
        The variant's own parameters, as for :func:`attention` (:func:`approxlab.variants.parameters_doc`).

    Returns
    -------
    torch.Tensor
        a (B, H, rows, Nk); each row sums to 1 (a row without kernel mass, e.g. relu's, is all zero).

    Raises
    ------
    ValueError, TypeError, MemoryBudgetError
        As :func:`attention`; TypeError for a ``rows`` that is not a contiguous slice.

    Notes
    -----
    a_ij = κ(q_i, k_j) / Σ_l κ(q_i, k_l) over the allowed keys l, with κ from the kernel's closed form
    (``kernel(x, y)``) where it has one, so it is an independent reference for :func:`attention`.

    Examples
    --------
    >>> import torch, approxlab
    >>> q, k = (torch.randn(1, 1, 5, 4, dtype=torch.float64) for _ in range(2))
    >>> a = approxlab.attention_weights(q, k, "taylor", order=2, causal=True)
    >>> bool(torch.allclose(a.sum(-1), torch.ones(1, 1, 5, dtype=torch.float64))), float(a[0, 0, 0, 1])
    (True, 0.0)
    """
    return next(attention_weight_blocks(q, k, variant, [slice(None) if rows is None else rows], causal=causal,
                                        scale=scale, **params))


class _WeightPlan:
    """What :func:`attention_weight_blocks` needs before its first block: the checked inputs, the kernel (None
    for softmax), the working dtype, whether features are log-scaled, and ``key_feature_bytes`` — the bytes of
    the key features φ(y) where the weights are made from features (the default ``kernel``: φ(x) φ(y)ᵀ, or
    log-scaled features), else 0 (softmax, a closed-form ``kernel``, an ``explicit_kernel``)."""

    def __init__(self, q, k, variant, causal, scale, params):
        self.variant, _ = _check_call(variant, params, None, "torch")
        self.q, self.k, self.scale, self.reach = _checked_inputs(q, k, None, self.variant, causal, scale)
        self.work = chunk.compute_dtype(self.q.dtype)
        self.name = kernel_name(self.variant)
        self.kernel = None if is_softmax(self.variant) else build_kernel(self.variant, self.q.shape[-1], **params)
        if self.kernel is not None and self.reach is not None:
            _verify_kernel(self.kernel, self.q, self.k, self.scale, self.work, self.name)
        self.log_scaled = _log_scaled(self.kernel, self.reach, self.work)
        by_features = self.kernel is not None and self.reach is not None and (
            self.log_scaled or getattr(type(self.kernel), "kernel", None) is KernelVariant.kernel)
        self.key_feature_bytes = (self.k.shape[:-1].numel() * self.kernel.feature_width(self.q.shape[-1])
                                  * torch.finfo(self.work).bits // 8) if by_features else 0


def key_feature_bytes(q, k, variant="softmax", *, causal: bool = False, scale: float | None = None,
                      **params) -> int:
    """Bytes of the key features φ(k) that :func:`attention_weight_blocks` can keep across blocks for
    ``variant`` on these inputs; 0 where its weights are not made from features (softmax, a closed-form
    ``kernel``, window hybrids and shrinkage). Checks the call as :func:`attention_weights` does."""
    return _WeightPlan(q, k, variant, causal, scale, params).key_feature_bytes


def attention_weight_blocks(q, k, variant="softmax", blocks=(), *, causal: bool = False, scale: float | None = None,
                            keep_key_features: bool | None = None, **params):
    """Yield :func:`attention_weights` for each query-row slice in ``blocks`` (B, H, rows, Nk), in order.

    The same weights as one call per block, with the checks, the kernel and — for kernels defined by
    their features (the default ``kernel``: φ(x) φ(y)ᵀ) — the key features φ(y) made once, not per block.
    ``keep_key_features``: None keeps them when they take at most 1/16 of the memory budget and recomputes
    them per block otherwise; True keeps them (their bytes, :func:`key_feature_bytes`, held to the budget);
    False recomputes them per block. A caller holding several variants' blocks at once
    (:func:`~approxlab.analysis.metrics.row_divergence`) decides for all of them together.
    """
    plan = _WeightPlan(q, k, variant, causal, scale, params)
    q, k, scale, kernel, work, log_scaled, name = (plan.q, plan.k, plan.scale, plan.kernel, plan.work,
                                                   plan.log_scaled, plan.name)
    blocks = list(blocks)
    n = q.shape[-2]
    for rows in blocks:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError(f"rows must be a contiguous slice, got {rows!r}")
    root = math.sqrt(scale)
    if plan.reach is None:  # an empty batch
        for rows in blocks:
            yield torch.empty(*q[..., rows, :].shape[:-1], k.shape[-2], dtype=q.dtype, device=q.device)
        return
    keys = k.to(work) if kernel is None else k.to(work) * root
    key_features = None
    if keep_key_features is None:
        keep_key_features = plan.key_feature_bytes <= budget.get_memory_budget() // 16
    if plan.key_feature_bytes and keep_key_features:
        budget.require(plan.key_feature_bytes, f"{name}'s key features kept across blocks "
                       f"(B·H·Nk = {k.shape[:-1].numel():,} rows of {kernel.feature_width(q.shape[-1]):,})")
        key_features = (kernel.log_scaled_features if log_scaled else kernel.key_features)(keys)
    for rows in blocks:
        span = range(n)[rows]
        offset = (span.start if len(span) else 0) + (k.shape[-2] - n if causal else 0)  # Nq < Nk: bottom-right
        qb = q[..., rows, :]
        budget.require(3 * qb.shape[:-1].numel() * k.shape[-2] * torch.finfo(work).bits // 8,
                       f"the explicit form's weights (B·H·Nq·Nk = {qb.shape[:-1].numel() * k.shape[-2]:,} entries, "
                       "with the kernel matrix and mask; rows=slice(...) computes a block of rows)")
        if kernel is None:
            weights = naive.normalise_logits((qb.to(work) @ keys.transpose(-1, -2)) * scale, causal=causal,
                                             offset=offset)
        elif callable(getattr(kernel, "explicit_kernel", None)):  # window hybrids, shrinkage (core.protocol)
            matrix, _ = kernel.explicit_kernel(qb.to(work) * root, keys, causal=causal, offset=offset)
            weights = naive.normalise_kernel(matrix, None, causal=causal, offset=offset)
        else:
            xb = qb.to(work) * root
            if log_scaled:
                fk, ck = key_features if key_features is not None else kernel.log_scaled_features(keys)
                matrix, col_log_scale = kernel.log_scaled_features(xb)[0] @ fk.transpose(-1, -2), ck
            elif key_features is None:
                matrix, col_log_scale = _checked_matrix(kernel.kernel(xb, keys), xb, keys, kernel, name)
            else:
                fq, _ = kernel.query_features(xb)
                matrix, col_log_scale = fq @ key_features[0].transpose(-1, -2), key_features[1]
            weights = naive.normalise_kernel(matrix, col_log_scale, causal=causal, offset=offset)
        yield check_finite_result(weights, qb, k, scale, name, work, kernel).to(q.dtype)


def _checked_matrix(out, x, y, kernel, name):
    """A user kernel's ``kernel(x, y)`` checked against the protocol (built-in ones are held to it by the tests)."""
    if not _is_builtin(kernel):
        check_kernel_matrix(out, x, y, name)
    return out


def explicit_attention(q, k, v, variant="softmax", *, causal: bool = False, scale: float | None = None,
                       **params) -> torch.Tensor:
    """Reference output a @ v from the explicit weights (N×N memory).

    Parameters
    ----------
    q, k, v, variant, causal, scale, **params
        As for :func:`attention`.

    Returns
    -------
    torch.Tensor
        o (B, H, Nq, Dv) = :func:`attention_weights` @ v.

    Raises
    ------
    ValueError, TypeError, MemoryBudgetError
        As :func:`attention_weights`.

    Notes
    -----
    o_i = Σ_j a_ij v_j with a_ij = κ(q_i, k_j) / Σ_l κ(q_i, k_l): the reference the efficient form is
    tested against (in float64 they agree per row to 1e-10 · max(1, cond_i) · max‖v‖).

    Examples
    --------
    >>> import torch, approxlab
    >>> q, k, v = (torch.randn(1, 1, 6, 4, dtype=torch.float64) for _ in range(3))
    >>> exact = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    >>> bool(torch.allclose(approxlab.explicit_attention(q, k, v, "softmax"), exact))
    True
    """
    _check_causal(causal)
    check_qkv(q, k, v, causal=causal)
    weights = attention_weights(q, k, variant, causal=causal, scale=scale, **params)
    work = chunk.compute_dtype(q.dtype)
    return (weights.to(work) @ v.to(work)).to(q.dtype)


def _given_head_dim(params: dict):
    """The head dim fixed by a given tensor (performer ``projection``, hla ``projections``, a learned map's
    ``weight`` (D, F), and the same inside a hybrid's ``kernel_params``)."""
    if isinstance(params.get("projection"), torch.Tensor) and params["projection"].ndim == 2:
        return int(params["projection"].shape[1])
    if isinstance(params.get("projections"), torch.Tensor) and params["projections"].ndim == 3:
        return int(params["projections"].shape[1])
    if isinstance(params.get("weight"), torch.Tensor) and params["weight"].ndim == 2:
        return int(params["weight"].shape[0])
    if isinstance(params.get("kernel_params"), dict):
        return _given_head_dim(params["kernel_params"])
    return None


#: parameters that set a kernel's size (besides a class's own ``size_parameter``): construction checks the
#: parameters on a kernel built with these at 1, so a large value costs nothing until the first call
_SIZE_PARAMETERS = ("num_features",)


def _small_params(variant, params: dict) -> dict:
    """``params`` with each size parameter that is an integer above 1 set to 1 (when no tensor is given, whose
    shape must agree with the size): the same checks of every other value, without building the features."""
    if any(isinstance(value, torch.Tensor) for value in params.values()):
        return params
    own = getattr(variant if isinstance(variant, type) else variant_class(variant), "size_parameter", None)
    names = set(_SIZE_PARAMETERS) | ({own} if own else set())
    return {key: 1 if key in names and type(value) is int and value > 1 else value for key, value in params.items()}


def _rebuild_after_load(module, _incompatible_keys) -> None:
    module._rebuild()


class Attention(nn.Module):
    """Drop-in module: ``Attention("performer", num_features=128)(q, k, v)`` → (B, H, N, Dv).

    Parameters
    ----------
    variant, causal, scale
        As for :func:`attention`.
    chunk_size, backend
        As for :func:`attention`.
    head_dim : int or None
        Build the kernel now for this head dim (else at the first call, per head dim).
    **params
        The variant's own parameters, as for :func:`attention` (:func:`approxlab.variants.parameters_doc`).

    Raises
    ------
    ValueError, TypeError
        Everything is checked at construction (variant, ``causal``, ``scale``, ``chunk_size``,
        ``backend``, parameter names and values), with a check build of the kernel.

    Notes
    -----
    The kernel is built once: at construction when it does not depend on the head dim, or when
    ``head_dim`` is given (or fixed by a ``projection``); otherwise once per head dim at the first call.
    A tensor ``projection`` (performer) or ``projections`` (hla) is a registered buffer: it is in
    ``state_dict`` and follows ``.to(device)``. ``forward(q, k, v)`` is :func:`attention`.

    Examples
    --------
    >>> import torch, approxlab
    >>> layer = approxlab.Attention("hla", factors=2, causal=True)
    >>> q, k, v = (torch.randn(1, 2, 8, 4) for _ in range(3))
    >>> layer(q, k, v).shape
    torch.Size([1, 2, 8, 4])
    """

    _BUFFERS = ("projection", "projections")

    def __init__(self, variant="softmax", *, causal: bool = False, scale: float | None = None,
                 head_dim: int | None = None, chunk_size: int | None = None, backend: str = "torch", **params):
        super().__init__()
        variant, chunk_size = _check_call(variant, params, chunk_size, backend)
        self.variant, self.causal, self.chunk_size, self.backend = variant, _check_causal(causal), chunk_size, backend
        self.scale = None if scale is None else resolve_scale(scale, 1)
        self.head_dim = None if head_dim is None else check_int(head_dim, "head_dim", minimum=1)
        given = _given_head_dim(params)
        if given is not None:
            if self.head_dim is not None and self.head_dim != given:
                raise ValueError(f"head_dim={self.head_dim} disagrees with the projection's head dim {given}")
            self.head_dim = given
        self.params = {key: value for key, value in params.items()
                       if not (key in self._BUFFERS and isinstance(value, torch.Tensor))}
        for key in self._BUFFERS:
            if isinstance(params.get(key), torch.Tensor):
                self.register_buffer(key, params[key])
        self._kernels: dict = {}
        self.register_load_state_dict_post_hook(_rebuild_after_load)
        if not is_softmax(variant) and isinstance(variant, (str, type)):
            # checks the parameter values on a small kernel; the real one is built (and its size checked
            # against the memory and work budgets) at the first call
            tensors = {key: getattr(self, key) for key in self._BUFFERS if key in self._buffers}
            try:
                build_kernel(variant, self.head_dim or (2 if needs_head_dim(variant) else 1),
                             **_small_params(variant, {**self.params, **tensors}))
            except HeadDimError:  # a value that only the real head dim can judge (cosFormer, dpfp nu)
                if self.head_dim is not None:
                    raise

    @property
    def name(self) -> str:
        return kernel_name(self.variant)

    def _build(self, head_dim: int):
        tensors = {key: getattr(self, key) for key in self._BUFFERS if key in self._buffers}
        return build_kernel(self.variant, head_dim, **self.params, **tensors)

    def kernel(self, head_dim: int):
        """The kernel used for inputs of head dim ``head_dim`` (built once; None for softmax)."""
        if is_softmax(self.variant):
            return None
        if self.head_dim is not None and head_dim != self.head_dim:
            raise ValueError(f"this Attention was built for head dim {self.head_dim}, got inputs of head dim {head_dim}")
        key = self.head_dim if self.head_dim is not None or not needs_head_dim(self.variant) else head_dim
        if key not in self._kernels:
            self._kernels[key] = self._build(head_dim)
        return self._kernels[key]

    def _rebuild(self) -> None:
        """Rebuild the kernels from the buffers (after ``.to()`` or ``load_state_dict`` changed them)."""
        if any(key in self._buffers for key in self._BUFFERS):
            self._kernels = {key: self._build(key or 1) for key in self._kernels}

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self._rebuild()
        return out

    def forward(self, q, k, v):
        """:func:`approxlab.attention` with this module's settings: the same checks, the same kernel checks and
        the same result check (one path), with the kernel built once per head dim."""
        return _efficient(self.variant, self.kernel, q, k, v, causal=self.causal, scale=self.scale,
                          chunk_size=self.chunk_size, backend=self.backend, num_features=self.params.get("num_features"))

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={value_text(v)}" for k, v in self.params.items() if not isinstance(v, torch.Tensor))
        return f"{self.name!r}, causal={self.causal}{extra}"
