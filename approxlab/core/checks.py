"""Input validation shared by every public entry point.

Bad input raises a ``ValueError`` / ``TypeError`` that names the offending argument;
nothing downstream has to guess.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_tensor(x: torch.Tensor, name: str, *, ndim: int = 4, finite: bool = True,
                 layout: str = "(B, H, N, D)") -> float | None:
    """Raise unless ``x`` is a floating tensor of the given rank (``layout`` names its axes in the message)
    with finite entries, on a device that holds data. Returns max |x| (found by the finiteness check)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.layout != torch.strided:
        raise TypeError(f"{name} must be a dense tensor, got layout {x.layout}; pass {name}.to_dense()")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions {layout}, got shape {tuple(x.shape)}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {x.dtype}")
    if x.is_meta:
        raise ValueError(f"{name} is on the meta device (shapes only, no data); pass a tensor on cpu or cuda")
    magnitude = largest_magnitude(x) if finite and x.numel() else None
    if magnitude is not None and not math.isfinite(magnitude):
        raise ValueError(f"{name} contains NaN or inf")
    return magnitude


def largest_magnitude(x: torch.Tensor) -> float:
    """max |x| in one pass (``aminmax``; NaN if x holds a NaN, inf if it holds an inf), as a Python float."""
    lo, hi = torch.aminmax(x.detach())
    lo, hi = float(lo), float(hi)
    return math.nan if math.isnan(lo) or math.isnan(hi) else max(-lo, hi)


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor | None, *, causal: bool) -> tuple:
    """Check q (B,H,Nq,D), k (B,H,Nk,D), v (B,H,Nk,Dv): dtypes, devices and shapes agree.
    Returns (max |q|, max |k|), which bound the similarities (:func:`check_similarity_range`)."""
    magnitudes = check_tensor(q, "q"), check_tensor(k, "k")
    tensors = {"q": q, "k": k}
    if v is not None:
        check_tensor(v, "v")
        tensors["v"] = v
    for name, x in tensors.items():
        if x.dtype != q.dtype:
            raise TypeError(f"{name} has dtype {x.dtype} but q has {q.dtype}; pass one dtype")
        if x.device != q.device:
            raise ValueError(f"{name} is on {x.device} but q is on {q.device}")
        if x.shape[:2] != q.shape[:2]:
            raise ValueError(f"{name} has batch/heads {tuple(x.shape[:2])} but q has {tuple(q.shape[:2])}")
        if x.shape[-2] == 0 or x.shape[-1] == 0:
            raise ValueError(f"{name} has an empty sequence or head dimension: shape {tuple(x.shape)}")
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(f"k has head dim {k.shape[-1]} but q has {q.shape[-1]}")
    if v is not None and v.shape[-2] != k.shape[-2]:
        raise ValueError(f"v has {v.shape[-2]} positions but k has {k.shape[-2]}")
    if causal and q.shape[-2] > k.shape[-2]:
        raise ValueError(f"causal=True needs Nq ≤ Nk (the queries are the last Nq positions, as a KV cache gives), "
                         f"got Nq={q.shape[-2]}, Nk={k.shape[-2]}")
    return magnitudes


def resolve_scale(scale: float | None, head_dim: int) -> float:
    """The similarity scale: ``1/sqrt(D)`` by default, else a positive finite number."""
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    if isinstance(scale, bool) or not isinstance(scale, Real) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    return float(scale)


class HeadDimError(ValueError):
    """A parameter value that this head dim does not allow (another head dim may): raised for ``head_dim``
    itself and for parameters bounded by it, so that :class:`approxlab.Attention` can defer the check to the
    first call, when the real head dim is known."""


def check_int(value, name: str, *, minimum: int, maximum: int | None = None) -> int:
    """An integer parameter ``>= minimum`` (and ``<= maximum`` when given; bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise (HeadDimError if name == "head_dim" and value >= 1 else ValueError)(
            f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


#: the largest seed a torch.Generator takes
MAX_SEED = 2**64 - 1


def check_seed(seed) -> int:
    """A random seed for ``torch.Generator.manual_seed``: an integer in [0, 2**64 − 1]."""
    return check_int(seed, "seed", minimum=0, maximum=MAX_SEED)


def check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def check_similarity_range(magnitudes: tuple, head_dim: int, scale: float, work: torch.dtype, variant: str) -> None:
    """Refuse inputs whose similarities may overflow the working dtype: |s| ≤ D · max|q| · max|k| · scale.

    Checked before computing, because an overflowing q·k is not always visible afterwards: SDPA on CPU turns
    the inf − inf of an overflowing dot product into a finite, wrong output. The bound is at most D times
    |s|'s true maximum, so only inputs within a factor D of overflowing are refused.
    """
    q_max, k_max = magnitudes  # max |q|, max |k| from check_qkv
    bound = head_dim * q_max * k_max * scale
    limit = torch.finfo(work).max
    if not bound <= limit:
        raise OverflowError(f"{variant} attention would overflow in {work}: the similarities s = q·k·scale may reach "
                            f"D·max|q|·max|k|·scale = {bound:.3g}, beyond {work}'s largest {limit:.3g}. Rescale q and "
                            "k, lower scale, or pass float64 inputs")


def check_finite_result(out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, scale: float, variant: str,
                        work: torch.dtype, kernel=None) -> torch.Tensor:
    """Finite inputs must give a finite result: otherwise say what happened (never return NaN silently).

    Checked once on the output (one reduction). On a non-finite result: when the largest ‖q_i‖·‖k_j‖·scale
    (the bound on |s|) exceeds the working dtype, the similarities overflowed (OverflowError); else, when
    ``kernel`` is given and its features of these inputs hold NaN/inf, the kernel is named with the method
    and what it returned (ValueError); else the kernel's values or their sums overflowed (OverflowError).
    """
    if not out.numel() or bool(torch.isfinite(out.sum())) or bool(torch.isfinite(out).all()):
        return out
    bound = float(q.double().norm(dim=-1).amax() * k.double().norm(dim=-1).amax() * scale)
    limit = torch.finfo(work).max
    if bound <= limit and kernel is not None:
        _name_non_finite_features(kernel, q, k, scale, variant, work)
    where = (f"the similarities s = q·k·scale reach |s| up to {bound:.3g}, beyond {work}'s largest {limit:.3g}"
             if bound > limit else
             f"|s| stays below {bound:.3g}, but the kernel's values or their sums exceed {work}'s largest {limit:.3g}")
    raise OverflowError(f"{variant} attention overflowed in {work}: {where}; the result would be NaN/inf. "
                        "Rescale q and k, lower scale, or pass float64 inputs")


def _name_non_finite_features(kernel, q, k, scale, variant, work) -> None:
    """Raise a ValueError naming the feature map (and the row) that returned NaN/inf for these finite inputs.
    Runs only on the error path, on at most 4096 rows per tensor (the memory of one block)."""
    from .budget import get_memory_budget

    root = math.sqrt(scale)
    for method, x in (("query_features", q), ("key_features", k)):
        x = x.reshape(-1, x.shape[-1])
        for start in range(0, x.shape[0], 4096):
            rows = x[start:start + 4096]
            width = rows.shape[0] * getattr(kernel, "feature_width", lambda d: 1)(x.shape[-1])
            if width * torch.finfo(work).bits // 8 > get_memory_budget() // 4:
                return
            f, log_scale = getattr(kernel, method)(rows.to(work) * root)
            for part, values in (("features", f), ("log_scale", log_scale)):
                if values is None or bool(torch.isfinite(values).all()):
                    continue
                what = "NaN" if bool(torch.isnan(values).any()) else "inf"
                row = start + int((~torch.isfinite(values.reshape(rows.shape[0], -1))).any(-1).nonzero()[0, 0])
                raise ValueError(f"kernel {variant!r}: {method}(x) returned {what} in its {part} for finite inputs "
                                 f"(first at row {row} of the flattened (B·H·N, D) inputs); the attention would be "
                                 f"NaN. Fix the kernel's {method} for such inputs")


def check_feature_width(value, kernel: str, head_dim: int) -> int:
    """What a kernel's ``feature_width(head_dim)`` returned: a positive integer (the width F of the state)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"kernel {kernel!r}: feature_width({head_dim}) returned {value!r}; it must return the "
                        "feature width F as a positive integer")
    if value < 1:
        raise ValueError(f"kernel {kernel!r}: feature_width({head_dim}) returned {value}; it must return the "
                         "feature width F as a positive integer")
    return int(value)


def check_features(out, x: torch.Tensor, kernel: str, method: str) -> int:
    """Check what a kernel's feature map returned for the scaled inputs x (…, N, D) against the kernel protocol
    (:mod:`approxlab.core.protocol`): a pair (f, log_scale) with f a tensor (…, N, F) of x's dtype and device,
    log_scale None or (…, N) of the same dtype and device, and no NaN/inf in f (nor NaN/+inf in log_scale).
    Returns F. The error names the kernel and the method."""
    where = f"kernel {kernel!r}: {method}(x)"
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"{where} must return a pair (f, log_scale) (log_scale None when there is none), "
                        f"got {type(out).__name__}")
    f, log_scale = out
    for part, value, shape in (("features f", f, None), ("log_scale", log_scale, tuple(x.shape[:-1]))):
        if value is None and part == "log_scale":
            continue
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{where} returned {part} of type {type(value).__name__}; it must be a torch tensor")
        if shape is None and (value.ndim != x.ndim or value.shape[:-1] != x.shape[:-1]):
            raise ValueError(f"{where} returned {part} of shape {tuple(value.shape)} for x of shape "
                             f"{tuple(x.shape)}; it must be (…, N, F) with x's leading shape {tuple(x.shape[:-1])}")
        if shape is not None and tuple(value.shape) != shape:
            raise ValueError(f"{where} returned a log_scale of shape {tuple(value.shape)} for x of shape "
                             f"{tuple(x.shape)}; it must be (…, N) = {shape}, or None")
        if value.dtype != x.dtype:
            raise TypeError(f"{where} returned {part} of dtype {value.dtype} for x of dtype {x.dtype}; "
                            "it must keep x's dtype")
        if value.device != x.device:
            raise ValueError(f"{where} returned {part} on {value.device} for x on {x.device}; "
                             "it must keep x's device")
        if value.numel():
            lo, hi = (float(t) for t in torch.aminmax(value.detach()))
            if math.isnan(lo) or math.isnan(hi):
                raise ValueError(f"{where} returned NaN in its {part} for finite inputs")
            if hi == math.inf or (part == "features f" and lo == -math.inf):
                raise ValueError(f"{where} returned inf in its {part} for finite inputs")
    return f.shape[-1]


def check_kernel_matrix(out, x: torch.Tensor, y: torch.Tensor, kernel: str) -> None:
    """Check what a kernel's ``kernel(x, y)`` returned: a pair (K, col_log_scale), K (…, Nq, Nk) of x's dtype
    and device, col_log_scale None or (…, Nk)."""
    where = f"kernel {kernel!r}: kernel(x, y)"
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"{where} must return a pair (K, col_log_scale), got {type(out).__name__}")
    matrix, col = out
    want = (*x.shape[:-1], y.shape[-2])
    for part, value, shape in (("K", matrix, want), ("col_log_scale", col, tuple(y.shape[:-1]))):
        if value is None and part == "col_log_scale":
            continue
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{where} returned {part} of type {type(value).__name__}; it must be a torch tensor")
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"{where} returned {part} of shape {tuple(value.shape)}; it must be {tuple(shape)}")
        if value.dtype != x.dtype or value.device != x.device:
            raise TypeError(f"{where} returned {part} as {value.dtype} on {value.device}; it must be {x.dtype} "
                            f"on {x.device}, as x")


def check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


