"""Learned feature maps (Hedgehog, T2R) distilled on the real MiniLM heads against random features.

Every layer × head of all-MiniLM-L6 (72 heads) on two consecutive windows of N tokens of the standard
library's docstrings: each map's (W, b) is fitted on window 0 by :func:`approxlab.analysis.distill.distill`
(softmax-mimicry cross-entropy, Adam, seeded) and measured on window 1 (held-out text, same head).
Baselines at the same state size F: FAVOR+ (orthogonal) and FAVOR++ (A calibrated on window 0), and
at F = ``big_m`` features. Metric: mean row TV against softmax, non-causal.

Against the best possible of the class (:func:`approxlab.analysis.metrics.low_rank_bound`): every one of these
maps with F features gives weights of rank ≤ F, so on each window no map of F features has a mean row
TV below ``tv_bound`` = Σ_{i>F} σ_i(P)/2N, nor a Frobenius error ‖A − P‖_F below ``ey_fro`` =
sqrt(Σ_{i>F} σ_i(P)²) (Eckart–Young); ``fro_ratio`` = ‖A − P‖_F / ``ey_fro`` ≥ 1 says how far the map is
from that best in the norm where it is exact (inf when F ≥ N, where the best is P itself), and
``ey_rank`` = the least rank r whose best matrix is as close: min_{rank ≤ r} ‖A′ − P‖_F ≤ ‖A − P‖_F
(the map's F features do what r would do at best).

Cells (:mod:`approxlab.experiments.sweep`): one per layer, cached and resumable; the model runs once per
process. A layer's 12 heads are distilled at once (:func:`~approxlab.analysis.distill.distill` on (1, H, N, D):
each head's loss summed, so each head's gradient and Adam step are its own): the same fit as one head at a time
up to float round-off, which the Adam steps carry along: against the figures made one head at a time, the quick
profile's CSV (300 steps, N = 128) is the same bytes and the full profile's (600 steps, N = 256) within 2e-4
absolute on every numeric column (tests/test_learned.py holds each head of a cell to its fit alone).

Records: ``head`` rows (one per head and method: train / test TV, feature count, final loss, and per
window the bound, the map's Frobenius error and its ratio), ``bound`` rows (per head, window and F in
1, 2, 4, …, N: the bound of the class), ``loss`` rows (the distillation loss per step, median over heads).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import torch

from ...analysis import entropy as ent
from ...api import attention_weights
from ..environment import describe
from ...analysis.distill import distill
from ...analysis.metrics import low_rank_bound, row_tv
from ...variants import calibrate
from .. import sweep
from ..sweep import Cell

NAME = "learned_maps"

PROFILES = {
    "quick": dict(n=128, feature_dim=32, steps=300, big_m=4096, seed=0),
    "full": dict(n=256, feature_dim=32, steps=600, big_m=16384, seed=0),
}


STUDY = "learned_maps"


@functools.lru_cache(maxsize=2)
def _real_heads(n: int):
    """q, k of every layer and head on two windows of n tokens (one model run per worker process)."""
    from ...analysis import real_heads

    return real_heads.extract_heads(real_heads.stdlib_text(), seq_len=n, num_chunks=2)


def _layer(n: int, layer: int):
    """(q0, k0), (q1, k1) of every head of one layer on the fit window (0) and the held-out window (1), each
    (1, H, n, D)."""
    heads = _real_heads(n)
    pick = lambda t, c: t[layer, c][None]  # noqa: E731
    return (pick(heads.q, 0), pick(heads.k, 0)), (pick(heads.q, 1), pick(heads.k, 1))


def compute(profile: str = "quick") -> pd.DataFrame:
    """The study's rows: one cell per layer (:func:`layer_cell`) through :mod:`approxlab.experiments.sweep`
    (cached, resumable; threads as :attr:`~approxlab.experiments.sweep.Settings.cell_threads`), then the median loss curve per method over heads."""
    import json

    from ...analysis import real_heads

    cfg = PROFILES[profile]
    model = json.loads((real_heads.model_dir() / "config.json").read_text())
    cells = [Cell(STUDY, layer_cell, dict(n=cfg["n"], layer=layer, feature_dim=cfg["feature_dim"],
                                          steps=cfg["steps"], big_m=cfg["big_m"], seed=cfg["seed"]))
             for layer in range(model["num_hidden_layers"])]
    df = sweep.concat(sweep.run(cells, desc="learned_maps layers"))
    history = df["record"] == "loss_head"
    curves = df[history]
    loss = [pd.DataFrame(dict(record="loss", method=variant, step=np.arange(len(med)), loss=med))
            for variant, g in curves.groupby("method", sort=False)
            for med in [np.median(np.stack([h["loss"].to_numpy() for _, h in g.groupby("head", sort=False)]), axis=0)]]
    out = pd.concat([df[~history]] + loss, ignore_index=True)
    for key, val in describe("cpu").items():
        out[key] = val
    out["profile"] = profile
    out["n"] = cfg["n"]
    return out


def _errors(q, k, p, variant, **params):
    """Mean row TV and ‖A − P‖_F of ``variant``'s weights A against the softmax weights ``p``."""
    a = attention_weights(q, k, variant, **params).double()
    return dict(tv=float(row_tv(p, a).mean()), fro=float(torch.linalg.matrix_norm(a - p)))


def _windows(variant, features, windows, bounds, **params):
    """{train_tv, test_tv, train_fro, …}: :func:`_errors` on window 0 (train) and window 1 (test);
    ``bounds``: {window: {"tv"/"fro": {F: bound}}}."""
    out = {}
    for name, (q, k, p) in windows.items():
        err = _errors(q, k, p, variant, **params)
        best = bounds[name]["fro"][features]
        err.update(ey_fro=best, tv_bound=bounds[name]["tv"][features],
                   fro_ratio=err["fro"] / best if best > 0 else float("inf"),
                   # the least rank whose best (truncated SVD) is as close to P as this map
                   ey_rank=int((bounds[name]["fro_all"] <= err["fro"]).nonzero()[0, 0]) + 1)
        out.update({f"{name}_{key}": val for key, val in err.items()})
    return out


def layer_cell(n: int, layer: int, feature_dim: int, steps: int, big_m: int, seed: int) -> pd.DataFrame:
    """Cell: the ``bound`` and ``head`` rows of every head of one layer, and each head's distillation loss per
    step (``loss_head`` rows, which :func:`compute` turns into the median ``loss`` curves). The learned maps
    of the layer's heads are fitted at once (each head its own map and loss); the rest is per head."""
    f = feature_dim
    (q0, k0), (q1, k1) = _layer(n, layer)
    # Hedgehog: F columns, 2F features; T2R: 2F columns, 2F features (same state size)
    fits = {variant: (cols, distill(q0, k0, variant, feature_dim=cols, steps=steps, seed=seed))
            for variant, cols in (("hedgehog", f), ("t2r", 2 * f))}
    parts = []
    for head in range(q0.shape[1]):
        one = lambda t: t[:, head:head + 1]  # noqa: E731
        fitted = {variant: (cols, fit.head(head)) for variant, (cols, fit) in fits.items()}
        parts.append(_head_rows(n, f"L{layer}H{head}", (one(q0), one(k0)), (one(q1), one(k1)), fitted, big_m, seed))
    return pd.concat(parts, ignore_index=True)


def _head_rows(n: int, label: str, fit_window, test_window, fitted: dict, big_m: int, seed: int) -> pd.DataFrame:
    """One head's ``bound``, ``head`` and ``loss_head`` rows; ``fitted``: {variant: (columns, Distilled)}, the
    head's learned maps fitted on ``fit_window``."""
    (q0, k0), (q1, k1) = fit_window, test_window
    f = fitted["hedgehog"][0]
    rows, losses = [], []
    grid = [2**i for i in range(n.bit_length()) if 2**i <= n]
    summary = {key: float(val.reshape(-1)[0]) for key, val in ent.input_summary(q1, k1).items()}
    windows = {name: (q, k, attention_weights(q, k, "softmax").double())
               for name, (q, k) in (("train", (q0, k0)), ("test", (q1, k1)))}
    bounds, feats = {}, sorted(set(grid) | {2 * f, big_m})
    for name, (_, _, p) in windows.items():
        b = low_rank_bound(p[0, 0], feats)  # one SVD per window: the bound at every F
        bounds[name] = {"tv": dict(zip(feats, b["tv"].tolist())), "fro": dict(zip(feats, b["frobenius"].tolist())),
                        "fro_all": low_rank_bound(p[0, 0], range(1, n + 1))["frobenius"]}
        rows += [dict(record="bound", head=label, window=name, features=m, tv_bound=float(b["tv"][i]),
                      tv_bound_fro=float(b["tv_frobenius"][i]), ey_fro=float(b["frobenius"][i]))
                 for i, m in enumerate(feats) if m in grid]
    for variant, (cols, fit) in fitted.items():
        identity = torch.eye(q0.shape[-1], cols, dtype=torch.float64)
        init = _errors(q1, k1, windows["test"][2], variant, weight=identity)
        rows.append(dict(record="head", head=label, method=variant, features=2 * f,
                         **_windows(variant, 2 * f, windows, bounds, **fit.params),
                         init_test_tv=init["tv"], final_loss=fit.loss[-1], **summary))
        losses += [dict(record="loss_head", head=label, method=variant, step=i, loss=val)
                   for i, val in enumerate(fit.loss)]
    cal = calibrate(q0, k0, "favorpp")
    for m in (2 * f, big_m):
        rows.append(dict(record="head", head=label, method=f"FAVOR+ ({m})", features=m,
                         **_windows("performer", m, windows, bounds, num_features=m, seed=seed), **summary))
        rows.append(dict(record="head", head=label, method=f"FAVOR++ ({m})", features=m,
                         **_windows("favorpp", m, windows, bounds, num_features=m, seed=seed, **cal), **summary))
    return pd.DataFrame(rows + losses)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per method, medians over heads: train / test TV, the class's lower bound on the test TV at the
    method's F, the Frobenius ratio to the best of the class and the equivalent rank (train and test
    window); and the share of heads with test TV ≤ 0.1 and 0.2."""
    d = df[df["record"] == "head"]
    g = d.groupby("method")
    return pd.DataFrame({"features": g["features"].first(), "median_train_tv": g["train_tv"].median(),
                         "median_test_tv": g["test_tv"].median(),
                         "median_test_tv_bound": g["test_tv_bound"].median(),
                         "median_train_fro_ratio": g["train_fro_ratio"].median(),
                         "median_test_fro_ratio": g["test_fro_ratio"].median(),
                         "median_train_ey_rank": g["train_ey_rank"].median(),
                         "median_test_ey_rank": g["test_ey_rank"].median(),
                         "heads_tv_le_0.1": g["test_tv"].apply(lambda s: int((s <= 0.1).sum())),
                         "heads_tv_le_0.2": g["test_tv"].apply(lambda s: int((s <= 0.2).sum())),
                         "heads": g["test_tv"].size()}).sort_values("median_test_tv")


def draw(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ..style import legend_beside

    d = df[df["record"] == "head"]
    n = int(df["n"].dropna().iloc[0]) if "n" in df else 0
    methods = list(summary(df).index)
    colors = dict(zip(methods, sns.color_palette("tab10", len(methods))))
    fig, axes = plt.subplots(2, 3, figsize=(15, 9.6), constrained_layout=True)
    ax = axes[0, 0]
    for m in methods:
        dm = d[d["method"] == m]
        ax.scatter(dm["weighted_sum_sq"], dm["test_tv"], s=10, color=colors[m], label=m, alpha=0.75)
    ax.set(xscale="log", yscale="log", xlabel="attention-weighted ‖x+y‖² (held-out window)",
           ylabel="mean row TV vs softmax (held-out window)", title="72 MiniLM-L6 heads: held-out TV per head")
    legend_beside(ax, fontsize=7)
    ax = axes[0, 1]
    sns.boxplot(data=d, x="method", y="test_tv", order=methods, hue="method", palette=colors, ax=ax, fliersize=2,
                legend=False)
    ax.axhline(0.1, color="0.4", ls="--", lw=0.8)
    ax.set(yscale="log", xlabel="method", ylabel="held-out TV", title="held-out TV by method (dashed: 0.1)")
    ax.tick_params(axis="x", rotation=35)
    ax = axes[0, 2]
    loss = df[df["record"] == "loss"]
    for m, dm in loss.groupby("method"):
        ax.plot(dm["step"], dm["loss"], color=colors.get(m), label=m)
    ax.set(xlabel="Adam step", ylabel="cross-entropy (median over heads)", title="distillation on window 0")
    legend_beside(ax, fontsize=8)

    # the best possible of the class: lower bound on the mean row TV of any F-feature map, vs F
    ax = axes[1, 0]
    b = df[(df["record"] == "bound") & (df["window"] == "test") & (df["tv_bound"] > 0)]
    for col, label, ls in (("tv_bound", r"$\sum_{i>F}\sigma_i\,/\,2N$", "-"),
                            ("tv_bound_fro", r"$(\sum_{i>F}\sigma_i^2)^{1/2}/\,2N$", ":")):
        qs = b.groupby("features")[col].quantile([0.25, 0.5, 0.75]).unstack()
        ax.plot(qs.index, qs[0.5], color="0.2", ls=ls, label=f"lower bound {label} (median)")
        ax.fill_between(qs.index, qs[0.25], qs[0.75], color="0.2", alpha=0.12, lw=0)
    for m in methods:
        dm = d[d["method"] == m]
        ax.scatter(dm["features"].iloc[0], dm["test_tv"].median(), color=colors[m], s=40, label=f"{m}: held-out")
        ax.scatter(dm["features"].iloc[0], dm["train_tv"].median(), facecolor="none", edgecolor=colors[m], s=40)
    ax.set(xscale="log", yscale="log", xlabel="features F (rank of the weights ≤ F)",
           ylabel="mean row TV (median over heads)",
           title=f"no F-feature map goes below the line (N = {n}; hollow: fit window)")
    ax.xaxis.set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
    legend_beside(ax, fontsize=6)
    ax = axes[1, 1]
    finite = d[d["features"] < n]
    ratio = finite.melt(id_vars=["method"], value_vars=["train_fro_ratio", "test_fro_ratio"], var_name="window",
                        value_name="ratio")
    ratio["window"] = ratio["window"].map({"train_fro_ratio": "fit", "test_fro_ratio": "held-out"})
    order = [m for m in methods if m in set(finite["method"])]
    sns.boxplot(data=ratio, x="method", y="ratio", order=order, hue="window", ax=ax, fliersize=2)
    ax.axhline(1.0, color="0.4", ls="--", lw=0.8)
    legend_beside(ax, title="window", fontsize=8)
    ax.set(yscale="log", xlabel="method", ylabel=r"$\|A-P\|_F\,/\,\min_{\mathrm{rank}\,A'\leq F}\|A'-P\|_F$",
           title="Frobenius error vs the Eckart–Young best (dashed: 1, the best)")
    ax.tick_params(axis="x", rotation=35)
    ax = axes[1, 2]
    for m in order:
        dm = finite[finite["method"] == m]
        ax.scatter(dm["test_tv_bound"], dm["test_tv"], s=10, color=colors[m], label=m, alpha=0.75)
    lo = max(float(finite["test_tv_bound"].min()), 1e-6)
    ax.plot([lo, 1], [lo, 1], color="0.4", ls="--", lw=0.8, label="TV = bound")
    ax.set(xscale="log", yscale="log", xlabel="lower bound of the class at the method's F (held-out window)",
           ylabel="held-out TV", title="per head: measured TV vs the class's lower bound")
    legend_beside(ax, fontsize=7)
    fig.suptitle(f"Learned feature maps distilled per head (fit on one window of N = {n}, measured on the next) "
                 "vs random features and vs the best possible F-feature map")
    return fig
