"""Any approxlab variant inside a transformers model, through transformers' own extension point.

transformers (≥ 4.56) routes the attention of most model families (BERT / MiniLM, GPT-2, Llama, Qwen, …)
through ``AttentionInterface``: each attention module calls the function registered under
``config._attn_implementation`` as ``fn(module, query, key, value, attention_mask, scaling=…, dropout=…,
**kwargs)`` with query (B, H, Nq, D) and key / value (B, H_kv, Nk, D) / (B, H_kv, Nk, Dv) — keys after
RoPE, H_kv < H under grouped-query attention — and expects ``(attn_output, attn_weights)`` with
attn_output laid out (B, Nq, H, Dv). The mask arrives in the format ``AttentionMaskInterface`` gives the
registered name.

    name = attention_implementation("performer", num_features=256)   # register; returns the name
    model.set_attn_implementation(name)                              # or from_pretrained(..., attn_implementation=name)

    with swapped(model, "linear", layers=[0, 3]):                    # swap some layers, restore on exit
        out = model(**inputs)

    layers = capture_qkv(model, **inputs)                            # q, k, v per layer as attention sees them

What a swapped layer computes (:func:`masked_attention`, :func:`masked_weights`):

- The mask is read (:func:`read_mask`) as a key-padding mask (B, Nk), the causal triangle (bottom-right
  aligned: query i of Nq sees keys j ≤ i + Nk − Nq, as a KV cache gives), both, or neither. A padded key
  leaves both the numerator and the denominator of every row: its features are zero.
- Any other mask (sliding window, packed sequences, a float bias) runs the explicit form with the mask
  applied to the kernel weights: a_ij ∝ κ_ij · exp(b_ij), b_ij = 0 where allowed, −inf where masked (a
  float additive mask b as it is). It costs N×N memory, as it must.
- Grouped-query attention: keys and values are repeated to the query heads (transformers' ``repeat_kv``).
- The module's ``scaling`` is the similarity scale (s = q·k·scaling; kernels see x = q·√scaling).
- float16 / bfloat16 are computed in float32 and returned in the query's dtype.
- Decoding: with ``decoding="recurrent"`` (the default) each causal layer keeps a state (S, z) =
  (Σ_j φ(k_j) v_jᵀ, Σ_j φ(k_j)) (:class:`RecurrentState`) and updates it one token at a time, which is
  linear attention's practical appeal; ``decoding="recompute"`` recomputes from the KV cache instead.
  Both give the outputs of the full causal forward.

A module the swap leaves alone runs the model's original implementation on the original mask format,
so ``layers=`` changes only the listed layers. The model is restored exactly on exit.

References
----------
transformers, "Attention interface", https://huggingface.co/docs/transformers/attention_interface
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
import sys
import weakref
from typing import Optional

import torch

from ..core import chunk as engine
from ..core.masked import (
    MaskPlan, RecurrentState, _allowed_log_weights, feature_maps, masked_attention, masked_weights, padded_keys,
)
from ..core.naive import causal_mask
from ..variants import build_kernel, check_params, check_variant, is_softmax, kernel_name, needs_head_dim
from ..variants.cosformer import cosformer_angles

DECODING = ("recurrent", "recompute")

_names = itertools.count()


# ----------------------------------------------------------------------------------------------
# masks
# ----------------------------------------------------------------------------------------------
def read_mask(mask: Optional[torch.Tensor], nq: int, nk: int, *, is_causal: bool) -> MaskPlan:
    """Read ``mask`` as transformers passes it into a :class:`MaskPlan`.

    Parameters
    ----------
    mask : None, bool tensor or float tensor
        None (sdpa format, no padding: ``is_causal`` says whether the call is causal), a boolean
        (B, 1 or H, Nq, Nk) mask, True where a key may be seen (sdpa format), or a float additive mask of
        the same shape, 0 where allowed and a large negative number where not (eager format). A 2-D
        (B, Nk) 0/1 or bool mask is read as key padding.
    nq, nk : int
        Query and key counts of the call.
    is_causal : bool
        The module's ``is_causal`` (or the call's ``is_causal`` keyword); used only when ``mask`` is None.

    Returns
    -------
    MaskPlan

    Raises
    ------
    ValueError
        For a mask whose shape does not fit (B, ·, Nq, Nk).

    Notes
    -----
    A boolean mask m is a padding mask when m[b, i, j] = p[b, j] for every row i; causal with padding
    when m[b, i, j] = p[b, j] ∧ (j ≤ i + Nk − Nq); p is read off the last row, which sees every key in
    both cases. Anything else becomes a bias: log m (0 / −inf), or the float mask itself.

    Examples
    --------
    >>> import torch
    >>> m = torch.ones(1, 1, 3, 3, dtype=torch.bool).tril()
    >>> read_mask(m, 3, 3, is_causal=True).causal
    True
    """
    if mask is None:
        causal = bool(is_causal)
        return MaskPlan(causal=causal, keys=nq if causal and nk > nq > 1 else None)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"attention_mask must be a tensor or None, got {type(mask).__name__}")
    if mask.ndim == 2:
        if mask.shape[-1] != nk:
            raise ValueError(f"a 2-D attention mask must be (B, Nk = {nk}), got {tuple(mask.shape)}")
        keep = mask.bool() if mask.dtype == torch.bool or not mask.is_floating_point() else mask > 0.5
        return MaskPlan(causal=bool(is_causal), key_padding=None if bool(keep.all()) else keep)
    if mask.ndim != 4 or mask.shape[-2:] != (nq, nk):
        raise ValueError(f"attention_mask must be (B, 1 or H, Nq = {nq}, Nk = {nk}), got {tuple(mask.shape)}")
    if mask.dtype == torch.bool:
        allowed, bias = mask, None
    else:
        floor = torch.finfo(mask.dtype).min / 2
        allowed = mask > floor
        if bool((mask[allowed] != 0).any()):  # a real bias (e.g. ALiBi), not a 0 / −inf mask
            return MaskPlan(bias=mask.float().masked_fill(~allowed, float("-inf")))
    same_heads = allowed.shape[1] == 1 or bool((allowed == allowed[:, :1]).all())
    if same_heads:
        rows = allowed[:, 0]  # (B, Nq, Nk)
        keep = rows[:, -1]  # the last query row sees every key under both readings
        if bool((rows == keep[:, None, :]).all()):  # one query row is causal too (it is the last position)
            return MaskPlan(causal=bool(is_causal) and nq == 1, key_padding=None if bool(keep.all()) else keep)
        triangle = causal_mask(nq, nk, rows.device, offset=nk - nq)
        if bool((rows == (keep[:, None, :] & triangle)).all()):
            return MaskPlan(causal=True, key_padding=None if bool(keep.all()) else keep)
    zero = torch.zeros((), dtype=torch.float32, device=mask.device)
    return MaskPlan(bias=torch.where(allowed, zero, float("-inf")) if bias is None else bias)


# ----------------------------------------------------------------------------------------------
# the transformers side
# ----------------------------------------------------------------------------------------------
def _transformers():
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask
    except ImportError as err:  # transformers missing, or older than the mask interface (4.53)
        raise ImportError("approxlab.hf needs transformers ≥ 4.56 (the optional extra: pip install 'approxlab[hf]'); "
                          f"import failed: {err}") from err
    return AttentionInterface, AttentionMaskInterface, ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask


def _repeat_kv(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, H_kv, N, d) → (B, H, N, d), each KV head repeated for its group (transformers' ``repeat_kv``)."""
    if x.shape[1] == heads:
        return x
    if heads % x.shape[1]:
        raise ValueError(f"{heads} query heads cannot share {x.shape[1]} key/value heads (not a multiple)")
    return x.repeat_interleave(heads // x.shape[1], dim=1)


class _Swap:
    """One registered implementation: the variant per module, the original to fall back on, the states."""

    def __init__(self, variant, params: dict, *, decoding: str, modules=None, original=None):
        if decoding not in DECODING:
            raise ValueError(f"decoding must be one of {list(DECODING)}, got {decoding!r}")
        self.decoding = decoding
        self.per_module = isinstance(variant, dict)
        variants = variant.values() if self.per_module else [variant]
        for item in variants:
            check_params(check_variant(item), params)
        self.variant, self.params = variant, params
        self.modules = None if modules is None else {id(m): m for m in modules}
        self.original = original  # (attention function or None for the model's eager one)
        self.kernels: dict = {}
        self.states = weakref.WeakKeyDictionary()
        self.calls = 0

    def variant_for(self, module):
        if self.per_module:
            return self.variant[id(module)]
        return self.variant

    def kernel_for(self, module, variant, head_dim: int):
        key = (id(module) if self.per_module else None, head_dim)
        if key not in self.kernels:
            self.kernels[key] = build_kernel(variant, head_dim, **self.params)
        return self.kernels[key]

    def __call__(self, module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        if self.modules is not None and id(module) not in self.modules:
            return self._original(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                  **kwargs)
        self.calls += 1
        return attend(module, query, key, value, attention_mask, variant=self.variant_for(module), swap=self,
                      scaling=scaling, dropout=dropout, **kwargs)

    def _original(self, module, *args, **kwargs):
        function = self.original
        if function is None:  # the model's own eager function, which transformers passes as the default
            function = getattr(sys.modules[type(module).__module__], "eager_attention_forward")
        return function(module, *args, **kwargs)


def attend(module, query, key, value, attention_mask, *, variant, scaling=None, dropout=0.0, swap=None,
           **kwargs):
    """One attention call as transformers makes it, computed by ``variant``: returns (output (B, Nq, H, Dv),
    weights or None). Weights (explicit form) are returned when the call asks for ``output_attentions``.

    Raises
    ------
    ValueError
        Dropout on the attention weights in training mode (a kernel's efficient form has no weights to drop):
        call ``model.eval()`` or set the model's attention dropout to 0.
    """
    if dropout and module.training:
        raise ValueError(f"attention dropout {dropout} in training mode cannot be applied to {kernel_name(variant)!r}'s "
                         "efficient form (it builds no weights); call model.eval() or set the attention dropout to 0")
    if kwargs.get("softcap") is not None or kwargs.get("sliding_window") is not None and attention_mask is None:
        raise ValueError("approxlab.hf does not apply logit soft-capping or a sliding window given outside the mask")
    heads, nq, nk = query.shape[1], query.shape[-2], key.shape[-2]
    scale = float(scaling) if scaling is not None else query.shape[-1] ** -0.5
    is_causal = kwargs.get("is_causal")
    plan = read_mask(attention_mask, nq, nk, is_causal=getattr(module, "is_causal", False) if is_causal is None
                     else is_causal)
    if plan.keys is not None:
        key, value, nk = key[..., :plan.keys, :], value[..., :plan.keys, :], plan.keys
    k, v = _repeat_kv(key, heads), _repeat_kv(value, heads)
    q = query
    kernel = None
    if not is_softmax(variant):
        if _positional(variant):
            q, k = _with_positions(module, q, k)
        kernel = swap.kernel_for(module, variant, q.shape[-1]) if swap is not None else build_kernel(variant, q.shape[-1])
    want_weights = bool(kwargs.get("output_attentions"))
    if plan.bias is not None or want_weights or is_softmax(variant):
        weights = masked_weights(kernel, q, k, scale=scale, plan=plan)
        out = (weights @ v.to(weights.dtype)).to(query.dtype)
        weights = weights.to(query.dtype) if want_weights else None
    else:
        weights = None
        out = None
        if (swap is not None and swap.decoding == "recurrent" and plan.causal
                and not callable(getattr(kernel, "efficient", None))):
            out = _recurrent(swap, module, kernel, q, k, v, key, scale, plan)
        if out is None:
            out = masked_attention(kernel, q, k, v, scale=scale, causal=plan.causal, key_padding=plan.key_padding)
    return out.transpose(1, 2).contiguous(), weights


def _positional(variant) -> bool:
    """True for a kernel that reads token positions (cosFormer)."""
    from ..variants import KERNELS

    cls = KERNELS[variant] if isinstance(variant, str) else variant if isinstance(variant, type) else type(variant)
    return bool(getattr(cls, "positional", False) or getattr(variant, "positional", False))


def _with_positions(module, q, k):
    """Append cosFormer's (cos θ, sin θ) at the absolute positions (queries at the last Nq of Nk keys),
    M = the model's ``max_position_embeddings`` (fixed, so decoding sees the same angles as the full pass)."""
    nq, nk = q.shape[-2], k.shape[-2]
    limit = getattr(getattr(module, "config", None), "max_position_embeddings", None) or nk
    theta = cosformer_angles(nk, max(limit, nk))

    def attach(x, t):
        t = t.to(device=x.device, dtype=x.dtype)
        pos = torch.stack([torch.cos(t), torch.sin(t)], dim=-1).expand(*x.shape[:-1], 2)
        return torch.cat([x, pos], dim=-1)

    return attach(q, theta[nk - nq:]), attach(k, theta)


def _recurrent(swap: _Swap, module, kernel, q, k, v, key, scale, plan) -> Optional[torch.Tensor]:
    """Outputs from the layer's :class:`RecurrentState` when the call continues it (None otherwise, after
    starting a state from this call's keys for the next one)."""
    nq, nk = q.shape[-2], k.shape[-2]
    work = engine.compute_dtype(q.dtype)
    query_map, key_map = feature_maps(kernel, math.sqrt(scale), work)
    k_aug = padded_keys(k, plan.key_padding)
    state = swap.states.get(module)
    past = nk - nq
    continues = (state is not None and past > 0 and state.count == past
                 and state.state.shape[0] == q.shape[0] and torch.equal(state.last_key, key[..., past - 1, :]))
    if not continues:
        # a new sequence: the full causal form for this call, and the state for the next
        swap.states[module] = RecurrentState.start(key_map, k_aug, v.to(work), key[..., -1, :].clone())
        return None
    fq, _ = query_map(q)
    fk, ck = key_map(k_aug[..., past:, :])
    vw = v[..., past:, :].to(work)
    outputs = [state.step(fq[..., t, :], fk[..., t, :], None if ck is None else ck[..., t], vw[..., t, :])
               for t in range(nq)]
    state.last_key = key[..., -1, :].clone()
    return torch.stack(outputs, dim=-2).to(q.dtype)


def _register(swap: _Swap, name: str, mask_function) -> str:
    AttentionInterface, AttentionMaskInterface, _, _ = _transformers()
    AttentionInterface.register(name, swap)
    AttentionMaskInterface.register(name, mask_function)
    return name


def _unregister(name: str) -> None:
    AttentionInterface, AttentionMaskInterface, _, _ = _transformers()
    AttentionInterface._global_mapping.pop(name, None)
    AttentionMaskInterface._global_mapping.pop(name, None)


def _slug(variant) -> str:
    text = "".join(ch if ch.isalnum() else "_" for ch in kernel_name(variant).lower())
    return f"approxlab_{text}_{next(_names)}"


def attention_implementation(variant, *, decoding: str = "recurrent", **params) -> str:
    """Register ``variant`` with transformers and return the name to pass as ``attn_implementation=``.

    Parameters
    ----------
    variant : str, kernel object or KernelVariant subclass
        A built-in or registered variant name (``approxlab.variant_names()``), a kernel object, or a
        class built with ``params`` (once per head dim).
    decoding : {"recurrent", "recompute"}
        How a causal layer decodes with a KV cache: a state per layer updated one token at a time, or a
        pass over the cache per step.
    **params
        The variant's parameters (e.g. ``num_features=256``).

    Returns
    -------
    str
        A fresh name registered in ``AttentionInterface`` (the function) and ``AttentionMaskInterface``
        (transformers' sdpa mask format: None or boolean), for ``model.set_attn_implementation(name)`` or
        ``from_pretrained(..., attn_implementation=name)``. Every attention module of the model then runs
        ``variant``.

    Raises
    ------
    ValueError, TypeError
        An unknown variant or parameter (checked here, before any model runs).
    ImportError
        transformers missing or too old.

    Examples
    --------
    >>> name = attention_implementation("performer", num_features=64)   # doctest: +SKIP
    >>> model.set_attn_implementation(name)                              # doctest: +SKIP
    """
    _, _, _, sdpa_mask = _transformers()
    swap = _Swap(check_variant(variant), params, decoding=decoding)
    return _register(swap, _slug(variant), sdpa_mask)


def _uses_interface(cls) -> bool:
    """True when ``cls.forward`` dispatches through ``ALL_ATTENTION_FUNCTIONS`` (an attention module)."""
    try:
        source = inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return False
    return "ALL_ATTENTION_FUNCTIONS" in source


def attention_modules(model) -> list:
    """The modules of ``model`` that call transformers' attention interface, in module order (for a
    single stack of layers, index i is layer i). ``layers=`` in :func:`swapped` indexes this list."""
    cache: dict = {}
    found = []
    for module in model.modules():
        cls = type(module)
        if cls not in cache:
            cache[cls] = _uses_interface(cls)
        if cache[cls]:
            found.append(module)
    return found


def _configs(model) -> list:
    """Every config object the model's modules read the attention implementation from."""
    seen, configs = set(), []
    stack = [m.config for m in model.modules() if hasattr(m, "config")]
    while stack:
        config = stack.pop()
        if config is None or id(config) in seen or not hasattr(config, "_attn_implementation_internal"):
            continue
        seen.add(id(config))
        configs.append(config)
        for key in getattr(config, "sub_configs", {}) or {}:
            stack.append(getattr(config, key, None))
    return configs


def _check_model(model):
    try:
        from transformers import PreTrainedModel
    except ImportError:
        PreTrainedModel = None
    if PreTrainedModel is None or not isinstance(model, PreTrainedModel):
        raise TypeError(f"model must be a transformers PreTrainedModel, got {type(model).__name__}")
    modules = attention_modules(model)
    if not modules or not model._can_set_attn_implementation():
        raise ValueError(f"{type(model).__name__} does not route its attention through transformers' "
                         "AttentionInterface, so its attention cannot be swapped")
    return modules


def _select(modules: list, layers) -> list:
    if layers is None:
        return modules
    if isinstance(layers, int) and not isinstance(layers, bool):
        layers = [layers]
    chosen = []
    for index in layers:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"layers must be attention-layer indices (ints), got {index!r}")
        if not -len(modules) <= index < len(modules):
            raise ValueError(f"layer {index} is out of range: the model has {len(modules)} attention layers")
        chosen.append(modules[index])
    return chosen


@contextlib.contextmanager
def _implementation(model, function, mask_format: Optional[str] = None, label: str = "approxlab"):
    """Run ``model`` with ``function`` as its attention implementation inside the block; restore every
    config's implementation on exit (also on an exception). The mask format is the original
    implementation's (so modules left alone get the mask they expect), or sdpa's."""
    _, _, all_masks, sdpa_mask = _transformers()
    configs = _configs(model)
    saved = [(config, config._attn_implementation_internal) for config in configs]
    original = model.config._attn_implementation
    if mask_format is None:
        mask_format = original if original in all_masks._global_mapping else "sdpa"
    name = _register(function, f"{label}_{next(_names)}", all_masks._global_mapping.get(mask_format, sdpa_mask))
    try:
        model.set_attn_implementation(name)
        for config in configs:  # configs transformers does not reach through sub-models
            config._attn_implementation_internal = name
        yield name
    finally:
        for config, value in saved:
            config._attn_implementation_internal = value
        _unregister(name)


def _original_function(model):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    original = model.config._attn_implementation
    if original in (None, "eager"):
        return None
    return ALL_ATTENTION_FUNCTIONS[original]


@contextlib.contextmanager
def swapped(model, variant, layers=None, *, decoding: str = "recurrent", **params):
    """Run ``model`` with ``variant`` in place of softmax attention, in all attention layers or the listed ones.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A model whose attention goes through ``AttentionInterface`` (BERT, GPT-2, Llama, Qwen, …).
    variant : str, kernel object, KernelVariant subclass, or dict
        As for :func:`attention_implementation`; a dict {layer index: variant} gives each listed layer its
        own (e.g. kernels distilled per layer), and then ``layers`` must be None.
    layers : int or sequence of int, optional
        Indices into :func:`attention_modules` (layer i of a single stack); None: all.
    decoding : {"recurrent", "recompute"}
        See :func:`attention_implementation`.
    **params
        The variant's parameters.

    Yields
    ------
    list
        The swapped attention modules.

    Raises
    ------
    TypeError, ValueError
        A model that does not use the interface, an out-of-range layer, an unknown variant or parameter.

    Notes
    -----
    Layers not listed run the model's original implementation with the original mask format (eager
    models get the eager mask; sdpa models the sdpa one), so they compute what they computed before.
    On exit (normal or by an exception) every config's ``_attn_implementation`` is put back and the
    registered name removed: the model is as it was.

    Examples
    --------
    >>> with swapped(model, "linear", layers=[0]):     # doctest: +SKIP
    ...     out = model(**inputs)
    """
    modules = _check_model(model)
    if isinstance(variant, dict):
        if layers is not None:
            raise ValueError("give layers either as the keys of a variant dict or as layers=, not both")
        chosen = _select(modules, list(variant))
        variant = {id(module): check_variant(variant[index]) for index, module in zip(variant, chosen)}
    else:
        variant = check_variant(variant)
        chosen = _select(modules, layers)
    swap = _Swap(variant, params, decoding=decoding, modules=chosen, original=_original_function(model))
    with _implementation(model, swap, label=_slug(next(iter(variant.values())) if isinstance(variant, dict)
                                                  else variant)):
        yield chosen


def capture_qkv(model, **inputs) -> list:
    """Run ``model(**inputs)`` once (no grad) and return, per attention call, what the attention received.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    **inputs
        The model's inputs (``input_ids``, ``attention_mask``, …).

    Returns
    -------
    list of dict
        One dict per attention call, in call order (layer order for a single stack): ``query`` (B, H, Nq, D),
        ``key`` / ``value`` (B, H_kv, Nk, D / Dv) exactly as the attention receives them (keys after RoPE,
        the model's KV heads), ``mask`` (as passed, in the model's own mask format), ``plan`` (its
        :class:`MaskPlan`: causal, key padding, bias), ``scaling`` (the module's), ``causal`` (bool),
        ``layer`` (index into :func:`attention_modules`), ``groups`` (H / H_kv), ``module``, and ``weights``:
        the attention weights the model's own implementation returned (eager: its maps; sdpa: None). The
        model itself runs its own implementation, unchanged.
    """
    modules = _check_model(model)
    index = {id(m): i for i, m in enumerate(modules)}
    original = _original_function(model)
    records = []

    def recorder(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        is_causal = kwargs.get("is_causal")
        plan = read_mask(attention_mask, query.shape[-2], key.shape[-2],
                         is_causal=getattr(module, "is_causal", False) if is_causal is None else is_causal)
        records.append(dict(
            query=query.detach(), key=key.detach(), value=value.detach(), mask=attention_mask, plan=plan,
            scaling=float(scaling) if scaling is not None else query.shape[-1] ** -0.5,
            causal=plan.causal, layer=index.get(id(module)), groups=query.shape[1] // key.shape[1], module=module,
        ))
        function = original or getattr(sys.modules[type(module).__module__], "eager_attention_forward")
        result = function(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
        records[-1]["weights"] = None if result[1] is None else result[1].detach()
        return result

    with _implementation(model, recorder, label="approxlab_capture"), torch.no_grad():
        model(**inputs)
    return records


def softmax_of(record: dict) -> torch.Tensor:
    """The softmax weights (B, H, Nq, Nk) of a :func:`capture_qkv` record, under its mask: what the layer's
    softmax attention computed (keys and values repeated to the query heads)."""
    q, k = record["query"], _repeat_kv(record["key"], record["query"].shape[1])
    plan = record["plan"]
    if plan.keys is not None:
        k = k[..., :plan.keys, :]
    return masked_weights(None, q, k, scale=record["scaling"], plan=plan)


# ----------------------------------------------------------------------------------------------
# measuring a swap: per layer and end to end
# ----------------------------------------------------------------------------------------------
def _kernel_of(variant, head_dim: int, params: dict):
    return None if is_softmax(variant) else build_kernel(variant, head_dim, **params)


def layer_metrics(record: dict, variant, **params) -> dict:
    """How ``variant`` does on one captured attention call (a :func:`capture_qkv` record), row by row.

    Parameters
    ----------
    record : dict
        One record of :func:`capture_qkv`: the layer's softmax inputs and mask.
    variant : str, kernel object or KernelVariant subclass
    **params
        The variant's parameters.

    Returns
    -------
    dict
        Means over the rows of real (unpadded) queries, all heads and batch items: ``tv`` (TV of the row's
        weights from softmax), ``output_error`` (‖o − o_softmax‖ / rms_j ‖v_j‖), ``delta`` (median row δ over
        rows where it is finite), ``bound`` (mean tanh(δ/2), 1 where δ = ∞), ``bound_holds`` (share of the rows
        with finite δ where TV ≤ tanh(δ/2) + 1e-9: 1 by the bridge theorem; NaN when no row has one),
        ``finite_delta`` (share of rows with κ > 0 on every allowed key), ``entropy`` (softmax row entropy / log of the allowed keys), ``sum_sq`` (the
        attention-weighted ‖x + y‖², x = q·√scaling, y = k·√scaling: what FAVOR+'s variance grows with) and
        ``rows``.

    Notes
    -----
    Computed in float64 from the explicit forms under the record's mask, with the kernel the swapped
    layer would run (positions appended for positional kernels, as :func:`swapped` does). δ_i = ½(max_j g_ij −
    min_j g_ij) over the allowed keys, g = log κ − s (:func:`approxlab.analysis.theory.row_log_error`);
    the bridge: TV_i ≤ tanh(δ_i/2).
    """
    from .metrics import row_entropy, row_tv
    from .theory import row_log_error, tv_bound

    query = record["query"].double()
    heads = query.shape[1]
    key, value = _repeat_kv(record["key"], heads).double(), _repeat_kv(record["value"], heads).double()
    plan = record["plan"]
    if plan.keys is not None:
        key, value = key[..., :plan.keys, :], value[..., :plan.keys, :]
    scale = record["scaling"]
    nq, nk = query.shape[-2], key.shape[-2]
    ref = masked_weights(None, query, key, scale=scale, plan=plan)
    variant = check_variant(variant)
    check_params(variant, params)
    q_in, k_in = query, key
    if not is_softmax(variant) and _positional(variant):
        q_in, k_in = _with_positions(record["module"], query, key)
    kernel = _kernel_of(variant, q_in.shape[-1], params)
    approx = ref if kernel is None else masked_weights(kernel, q_in, k_in, scale=scale, plan=plan)
    tv = row_tv(ref, approx)
    scale_v = value.pow(2).sum(-1).mean(-1, keepdim=True).sqrt()
    out_err = ((approx - ref) @ value).norm(dim=-1) / scale_v
    bias = _allowed_log_weights(plan, query.shape[:2], nq, nk, query.device)
    allowed = torch.ones(nq, nk, dtype=torch.bool) if bias is None else torch.isfinite(bias).expand(ref.shape)
    logits = (query @ key.transpose(-1, -2)) * scale
    if kernel is None:
        delta = torch.zeros_like(tv)
    else:
        root = math.sqrt(scale)
        if callable(getattr(kernel, "explicit_kernel", None)):  # window hybrids: κ_ij = K_ij e^{r_i}, r per row
            matrix, _ = kernel.explicit_kernel(q_in * root, k_in * root, causal=plan.causal and plan.bias is None,
                                               offset=nk - nq)
            col = None  # a per-row factor leaves δ unchanged
        else:
            matrix, col = kernel.kernel(q_in * root, k_in * root)
        log_kernel = torch.where(matrix > 0, matrix.clamp_min(torch.finfo(matrix.dtype).tiny).log(),
                                 torch.full_like(matrix, -math.inf))
        if col is not None:
            log_kernel = log_kernel + col[..., None, :]
        delta = row_log_error(log_kernel, logits, allowed.expand(logits.shape))
    bound = tv_bound(delta.clamp_max(1e6)).where(torch.isfinite(delta), torch.ones_like(delta))
    x2, y2 = (query * query).sum(-1) * scale, (key * key).sum(-1) * scale
    sum_sq = (ref * (x2[..., None] + y2[..., None, :] + 2 * logits)).sum(-1)
    count = allowed.expand(ref.shape).sum(-1).clamp_min(2)
    entropy = row_entropy(ref) / count.double().log()
    real = torch.ones(tv.shape, dtype=torch.bool)
    if plan.key_padding is not None:  # padded query positions are not rows of the text
        real = plan.key_padding[:, None, nk - nq:].expand(tv.shape)
    finite = torch.isfinite(delta) & real
    return dict(tv=float(tv[real].mean()), output_error=float(out_err[real].mean()),
                delta=float(delta[finite].median()) if bool(finite.any()) else math.inf,
                bound=float(bound[real].mean()),
                bound_holds=float((tv <= bound + 1e-9)[finite].double().mean()) if bool(finite.any()) else math.nan,
                finite_delta=float(finite.sum()) / max(1, int(real.sum())), entropy=float(entropy[real].mean()),
                sum_sq=float(sum_sq[real].mean()), rows=int(real.sum()))


def _final_hidden(model, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    hidden = getattr(out, "last_hidden_state", None)
    return hidden if hidden is not None else out.hidden_states[-1]


def end_to_end(reference: torch.Tensor, changed: torch.Tensor, mask: Optional[torch.Tensor] = None) -> dict:
    """How far the swapped model's final hidden states (B, N, d) moved from the reference: ``token_cosine``
    (mean cosine per real token), ``embedding_cosine`` (mean over texts of the cosine of the mean-pooled
    states: a sentence-transformers embedding), ``relative_change`` (‖Δ‖ / ‖ref‖ over real tokens)."""
    ref, new = reference.double(), changed.double()
    keep = torch.ones(ref.shape[:2], dtype=torch.bool) if mask is None else mask.bool()
    weights = keep[..., None].double()
    pooled_ref = (ref * weights).sum(1) / weights.sum(1)
    pooled_new = (new * weights).sum(1) / weights.sum(1)
    cos = torch.nn.functional.cosine_similarity
    return dict(token_cosine=float(cos(ref[keep], new[keep], dim=-1).mean()),
                embedding_cosine=float(cos(pooled_ref, pooled_new, dim=-1).mean()),
                relative_change=float((new - ref)[keep].norm() / ref[keep].norm()))


def report(model, inputs: dict, variants=("linear", "performer"), *, layers=None, alone: bool = False):
    """The per-layer table of each variant swapped into ``model``, and the end-to-end change, as a DataFrame.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    inputs : dict
        The model's inputs (e.g. a tokenizer's output: ``input_ids``, ``attention_mask``).
    variants : sequence
        Each a name, a kernel object, or a (name, params) pair, e.g. ``("performer", {"num_features": 256})``.
    layers : sequence of int, optional
        The layers to measure and swap (default all).
    alone : bool
        Also run the model with each layer swapped alone (one forward pass per layer and variant).

    Returns
    -------
    pandas.DataFrame
        One row per (variant, layer) with :func:`layer_metrics`'s columns, ``scope`` = "layer" (and the
        end-to-end columns of that layer swapped alone, when ``alone``), plus one row per variant with
        ``scope`` = "model" (every listed layer swapped) and :func:`end_to_end`'s columns.

    Examples
    --------
    >>> df = report(model, tokenizer(texts, padding=True, return_tensors="pt"),        # doctest: +SKIP
    ...             variants=["linear", ("performer", {"num_features": 256})])
    """
    import pandas as pd

    modules = _check_model(model)
    chosen = list(range(len(modules))) if layers is None else [modules.index(m) for m in _select(modules, layers)]
    records = [r for r in capture_qkv(model, **inputs) if r["layer"] in chosen]
    mask = inputs.get("attention_mask")
    reference = _final_hidden(model, inputs)
    rows = []
    for item in variants:
        variant, params = (item if isinstance(item, tuple) else (item, {}))
        label = kernel_name(variant) + "".join(f" {k}={v}" for k, v in params.items() if not isinstance(v, torch.Tensor))
        for record in records:
            row = dict(variant=label, scope="layer", layer=record["layer"], **layer_metrics(record, variant, **params))
            if alone:
                with swapped(model, variant, layers=[record["layer"]], **params):
                    row.update(end_to_end(reference, _final_hidden(model, inputs), mask))
            rows.append(row)
        with swapped(model, variant, layers=chosen, **params):
            rows.append(dict(variant=label, scope="model", layer=-1,
                             **end_to_end(reference, _final_hidden(model, inputs), mask)))
    return pd.DataFrame(rows)


__all__ = ["layer_metrics", "end_to_end", "report", "attention_implementation", "swapped", "capture_qkv", "attention_modules", "read_mask", "MaskPlan",
           "masked_attention", "masked_weights", "RecurrentState", "softmax_of", "attend", "DECODING"]
