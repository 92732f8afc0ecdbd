"""figures/variance_shrinkage: output error against the attention-weighted ‖x+y‖² for FAVOR+, FAVOR++, uniform
attention and the shrinkage estimator, at equal feature count.

Lemma 2 puts the relative variance of a FAVOR+ kernel estimate at (e^{‖x+y‖²} − 1)/m; where a row's mass sits on
keys with large ‖x+y‖² no unbiased estimate of that size is accurate, and uniform attention (the mean of the
values, no features) can be closer. The shrinkage estimator (:mod:`approxlab.variants.shrinkage`) averages g = 2
independent groups of m/2 features and moves each row toward uniform attention by λ_i = V̂_i / ‖â_i − ā_i‖²,
V̂ the spread of the groups. Every estimator here has m random features in all.

Per row: w_i = Σ_j b_ij ‖x_i + y_j‖² (b the softmax weights, x = q/D^¼, y = k/D^¼) and the output error
‖o_i − o_softmax,i‖ / rms‖v‖ of each method (efficient forms, float64, non-causal), over ``seeds`` draws of the
features. Sources: the 72 MiniLM heads (N tokens of the standard library's docstrings; FAVOR++'s A calibrated per
head on the previous N tokens) and Gaussian q, k, v (D = 32, 4 heads) scaled by a temperature τ (A from an
independent draw). Rows are binned by w (bin edges ``EDGES``); the CSV has per (source, head, bin, method, m,
seed) the number of rows, their mean w, mean error and mean λ (shrinkage only).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import style, sweep
from ..sweep import Cell
from ...analysis.inputs import held_out_qkv
from ...api import attention
from ...variants import calibrate
from ...variants.shrinkage import Shrinkage

NAME = "variance_shrinkage"

#: the full profile keeps m ≤ 256: shrinkage's efficient form builds the products of its groups' features
#: ((m/2)² per pair), and at m = 1024 not one cell of the full grid finished within minutes here
PROFILES = {
    "quick": dict(n=128, temperatures=[0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0], features=[64, 256], seeds=3),
    "full": dict(n=256, temperatures=[0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0], features=[64, 256], seeds=8),
}
SYNTHETIC = dict(heads=4, head_dim=32)
CALIBRATION_SEED = 10_000
#: bin edges of the attention-weighted ‖x+y‖²
EDGES = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, np.inf)
METHODS = ("FAVOR+", "FAVOR++", "uniform", "shrinkage FAVOR+", "shrinkage FAVOR++")


def _inputs(source: str, n: int):
    """(q, k, v) to measure on and (q, k) to fit on, each (1, H, N, D) float64."""
    return held_out_qkv(source, n, **SYNTHETIC, calibration_seed=CALIBRATION_SEED)


def weighted_norm_sum(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """w_i = Σ_j b_ij ‖x_i + y_j‖² (…, N), b = softmax(x·y), x = q/D^¼, y = k/D^¼."""
    d = q.shape[-1]
    x, y = q / d ** 0.25, k / d ** 0.25
    s = x @ y.transpose(-1, -2)
    b = torch.softmax(s, -1)
    x2, y2 = (x * x).sum(-1), (y * y).sum(-1)
    return (b * (x2[..., None] + y2[..., None, :] + 2 * s)).sum(-1)


def _outputs(q, k, v, qc, kc, m, seed):
    """{method: (output, λ or None)} for one head (1, 1, N, D)."""
    favorpp = calibrate(qc, kc, "favorpp")
    d = q.shape[-1]
    out = {"FAVOR+": (attention(q, k, v, "performer", num_features=m, seed=seed), None),
           "FAVOR++": (attention(q, k, v, "favorpp", num_features=m, seed=seed, **favorpp), None),
           "uniform": (v.mean(-2, keepdim=True).expand_as(v), None)}
    root = d ** -0.25
    for label, kernel, params in (("shrinkage FAVOR+", "performer", {}), ("shrinkage FAVOR++", "favorpp", favorpp)):
        est = Shrinkage(d, kernel=kernel, num_features=m, seed=seed, kernel_params=params)
        o, lam = est.efficient_with_weight(q * root, k * root, v, causal=False)
        out[label] = (o, lam)
    return out


def source_cell(source: str, n: int, features: list, seeds: int) -> pd.DataFrame:
    """Cell: every method, feature count and seed on one source, rows binned by w (module doc)."""
    (q, k, v), (qc, kc) = _inputs(source, n)
    records = []
    for head in range(q.shape[1]):
        pick = lambda t: t[:, head:head + 1]  # noqa: E731
        qh, kh, vh, qch, kch = map(pick, (q, k, v, qc, kc))
        exact = attention(qh, kh, vh, "softmax")
        rms = vh.pow(2).sum(-1).mean().sqrt()
        w = weighted_norm_sum(qh, kh).flatten().numpy()
        bins = np.digitize(w, EDGES[1:-1])
        for m in features:
            for seed in range(seeds):
                for method, (o, lam) in _outputs(qh, kh, vh, qch, kch, m, seed).items():
                    err = ((o - exact).norm(dim=-1) / rms).flatten().numpy()
                    lam = None if lam is None else lam.flatten().numpy()
                    for b in np.unique(bins):
                        sel = bins == b
                        records.append(dict(source=source, head=head, bin=int(b), w_lo=EDGES[b], w_hi=EDGES[b + 1],
                                            method=method, features=m, seed=seed, rows=int(sel.sum()),
                                            w_mean=float(w[sel].mean()), error_mean=float(err[sel].mean()),
                                            shrinkage_mean=float(lam[sel].mean()) if lam is not None else np.nan))
    out = pd.DataFrame(records)
    out["n"] = n
    return out


def compute(profile: str = "quick") -> pd.DataFrame:
    cfg = PROFILES[profile]
    sources = ["minilm"] + [f"tau={t:g}" for t in cfg["temperatures"]]
    cells = [Cell("variance_shrinkage", source_cell, dict(source=s, n=cfg["n"], features=cfg["features"],
                                                           seeds=cfg["seeds"])) for s in sources]
    return sweep.concat(sweep.run(cells))


def binned(df: pd.DataFrame) -> pd.DataFrame:
    """Row-weighted means per (kind, features, bin, method): kind "MiniLM" or "Gaussian"; with the spread over
    seeds (std of the seed means) as ``error_seed_std``."""
    df = df.assign(kind=np.where(df["source"] == "minilm", "MiniLM", "Gaussian"),
                   werr=df["error_mean"] * df["rows"], ww=df["w_mean"] * df["rows"],
                   wlam=df["shrinkage_mean"].fillna(0) * df["rows"])
    per_seed = df.groupby(["kind", "features", "bin", "method", "seed"], as_index=False)[["werr", "ww", "wlam", "rows"]].sum()
    per_seed["error"] = per_seed["werr"] / per_seed["rows"]
    per_seed["w"] = per_seed["ww"] / per_seed["rows"]
    per_seed["shrinkage"] = per_seed["wlam"] / per_seed["rows"]
    out = per_seed.groupby(["kind", "features", "bin", "method"], as_index=False).agg(
        error=("error", "mean"), error_seed_std=("error", "std"), w=("w", "mean"), rows=("rows", "mean"),
        shrinkage=("shrinkage", "mean"))
    return out


def draw(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    table = binned(df)
    kinds = ["Gaussian", "MiniLM"]
    features = sorted(table["features"].unique())
    fig, axes = plt.subplots(len(kinds), len(features), figsize=(4.4 * len(features), 7.2), constrained_layout=True,
                             squeeze=False, sharex=True)
    colors = {"FAVOR+": style.color("performer"), "FAVOR++": style.color("favorpp"), "uniform": (0.4, 0.4, 0.4),
              "shrinkage FAVOR+": style.color("performer"), "shrinkage FAVOR++": style.color("favorpp")}
    for r, kind in enumerate(kinds):
        for c, m in enumerate(features):
            ax = axes[r, c]
            part = table[(table["kind"] == kind) & (table["features"] == m) & (table["rows"] >= 20)]
            for method in METHODS:
                rows = part[part["method"] == method].sort_values("w")
                shrunk = method.startswith("shrinkage")
                ax.errorbar(rows["w"], rows["error"], yerr=rows["error_seed_std"], color=colors[method],
                            ls="-" if shrunk else "--" if method != "uniform" else ":", marker="o" if shrunk else "s",
                            ms=3.5, lw=1.6 if shrunk else 1.0, capsize=2, label=method)
            ax.set(xscale="log", yscale="log", title=f"{kind}: m = {m} features in all")
            ax.title.set_fontsize(9)
            if r == len(kinds) - 1:
                ax.set_xlabel("attention-weighted ‖x + y‖² of the row (bin mean)")
            ax.set_ylabel("mean ‖o − o_softmax‖ / rms‖v‖")  # each panel: the rows' y ranges differ
    axes[0, -1].legend(fontsize=7)
    fig.suptitle("Shrinking random features toward uniform attention by their own variance (bins of ≥ 20 rows; "
                 "bars: std over feature draws)", fontsize=10)
    return fig
