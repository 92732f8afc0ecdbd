"""Learned feature maps (Hedgehog, T2R) distilled on the real MiniLM heads against random features.

Every layer × head of all-MiniLM-L6 (72 heads) on two consecutive windows of N tokens of the standard
library's docstrings: each map's (W, b) is fitted on window 0 by :func:`approxlab.learned.distill`
(softmax-mimicry cross-entropy, Adam, seeded) and measured on window 1 (held-out text, same head).
Baselines at the same state size F: FAVOR+ (orthogonal) and FAVOR++ (A calibrated on window 0), and
at F = ``big_m`` features. Metric: mean row TV against softmax, non-causal.

Records: ``head`` rows (one per head and method: train / test TV, feature count, final loss),
``loss`` rows (the distillation loss per step, median over heads).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import entropy as ent
from ..environment import describe
from ..learned import distill, mean_row_tv
from ..variants.random_features import calibrate
from .. import sweep

PROFILES = {
    "quick": dict(n=128, feature_dim=32, steps=300, big_m=4096, seed=0),
    "full": dict(n=256, feature_dim=32, steps=600, big_m=16384, seed=0),
}


def _heads(n):
    from .. import real_heads

    heads = real_heads.extract_heads(real_heads.stdlib_text(), seq_len=n, num_chunks=2)
    L, _, H = heads.q.shape[:3]
    for layer in range(L):
        for head in range(H):
            pick = lambda t, c: t[layer, c, head][None, None]  # noqa: E731
            yield f"L{layer}H{head}", (pick(heads.q, 0), pick(heads.k, 0)), (pick(heads.q, 1), pick(heads.k, 1))


def compute(profile: str = "quick") -> pd.DataFrame:
    with sweep.limited_threads(1):  # many small GEMMs and QRs: one thread is faster than contending ones
        return _compute(profile)


def _compute(profile: str) -> pd.DataFrame:
    cfg = PROFILES[profile]
    f = cfg["feature_dim"]
    rows, losses = [], {}
    heads = list(_heads(cfg["n"]))
    for label, (q0, k0), (q1, k1) in tqdm(heads, desc="learned_maps heads"):
        summary = {key: float(val.reshape(-1)[0]) for key, val in ent.input_summary(q1, k1).items()}
        # Hedgehog: F columns, 2F features; T2R: 2F columns, 2F features (same state size)
        for variant, cols in (("hedgehog", f), ("t2r", 2 * f)):
            fit = distill(q0, k0, variant, feature_dim=cols, steps=cfg["steps"], seed=cfg["seed"])
            params = {"weight": fit["weight"], "bias": fit["bias"]}
            rows.append(dict(record="head", head=label, method=variant, features=2 * f,
                             train_tv=mean_row_tv(q0, k0, variant, **params),
                             test_tv=mean_row_tv(q1, k1, variant, **params),
                             init_test_tv=mean_row_tv(q1, k1, variant, weight=torch.eye(q0.shape[-1], cols, dtype=torch.float64)),
                             final_loss=fit["loss"][-1], **summary))
            losses.setdefault(variant, []).append(fit["loss"])
        cal = calibrate(q0, k0, "favorpp")
        for m in (2 * f, cfg["big_m"]):
            rows.append(dict(record="head", head=label, method=f"FAVOR+ ({m})", features=m,
                             train_tv=mean_row_tv(q0, k0, "performer", num_features=m, seed=cfg["seed"]),
                             test_tv=mean_row_tv(q1, k1, "performer", num_features=m, seed=cfg["seed"]), **summary))
            rows.append(dict(record="head", head=label, method=f"FAVOR++ ({m})", features=m,
                             train_tv=mean_row_tv(q0, k0, "favorpp", num_features=m, seed=cfg["seed"], **cal),
                             test_tv=mean_row_tv(q1, k1, "favorpp", num_features=m, seed=cfg["seed"], **cal), **summary))
    for variant, hist in losses.items():
        med = np.median(np.array(hist), axis=0)
        rows += [dict(record="loss", method=variant, step=i, loss=float(val)) for i, val in enumerate(med)]
    out = pd.DataFrame(rows)
    for key, val in describe("cpu").items():
        out[key] = val
    out["profile"] = profile
    out["n"] = cfg["n"]
    return out


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Median train / test TV over heads per method, and the share of heads with test TV ≤ 0.1 and 0.2."""
    d = df[df["record"] == "head"]
    g = d.groupby("method")
    return pd.DataFrame({"features": g["features"].first(), "median_train_tv": g["train_tv"].median(),
                         "median_test_tv": g["test_tv"].median(),
                         "heads_tv_le_0.1": g["test_tv"].apply(lambda s: int((s <= 0.1).sum())),
                         "heads_tv_le_0.2": g["test_tv"].apply(lambda s: int((s <= 0.2).sum())),
                         "heads": g["test_tv"].size()}).sort_values("median_test_tv")


def draw(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    import seaborn as sns

    d = df[df["record"] == "head"]
    methods = list(summary(df).index)
    colors = dict(zip(methods, sns.color_palette("tab10", len(methods))))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), constrained_layout=True)
    ax = axes[0]
    for m in methods:
        dm = d[d["method"] == m]
        ax.scatter(dm["weighted_sum_sq"], dm["test_tv"], s=10, color=colors[m], label=m, alpha=0.75)
    ax.set(xscale="log", yscale="log", xlabel="attention-weighted ‖x+y‖² (held-out window)",
           ylabel="mean row TV vs softmax (held-out window)", title="72 MiniLM-L6 heads: held-out TV per head")
    ax.legend(fontsize=7)
    ax = axes[1]
    sns.boxplot(data=d, x="method", y="test_tv", order=methods, hue="method", palette=colors, ax=ax, fliersize=2,
                legend=False)
    ax.axhline(0.1, color="0.4", ls="--", lw=0.8)
    ax.set(yscale="log", xlabel=None, ylabel="held-out TV", title="held-out TV by method (dashed: 0.1)")
    ax.tick_params(axis="x", rotation=35)
    ax = axes[2]
    loss = df[df["record"] == "loss"]
    for m, dm in loss.groupby("method"):
        ax.plot(dm["step"], dm["loss"], color=colors.get(m), label=m)
    ax.set(xlabel="Adam step", ylabel="cross-entropy (median over heads)", title="distillation on window 0")
    ax.legend(fontsize=8)
    n = int(df["n"].dropna().iloc[0]) if "n" in df else 0
    fig.suptitle(f"Learned feature maps distilled per head (fit on one window of N = {n}, measured on the next) "
                 "vs random features")
    return fig
