"""figures/rational_degree: the table of every variant (κ, rational degree, feature width, sign,
monotonicity; derived by ``approxlab.analysis.symbolic``) and each kernel f(s) against exp(s) on s ∈ [−4, 4].

Kernels of s alone (taylor, polynomial, hla affine, softmax) are drawn exactly from their sympy κ.
The others depend on more than s; for them κ is sampled on random pairs (x, y) with ‖x‖ = ‖y‖ = 2
(D = 16, random directions, cosine uniform so s = x·y is uniform on [−4, 4]) and drawn as the median
with a 10–90 % band per bin of s: linear, relu, hla (elu factors, identity projections) from their
torch kernels, performer from its m-feature estimate (its bin mean is drawn too: the estimate is
unbiased but heavy-tailed). Every curve is divided by its value at s = 0 (by κ(1) where κ(0) = 0; row
weights are invariant to a constant factor) and drawn on a log axis, so a curve stops where κ ≤ 0.

The CSV holds the table rows (part == "table") and the plotted curves (part == "curve").
"""

from __future__ import annotations

import ast
import numpy as np
import pandas as pd
import sympy as sp
import torch

from .. import sweep
from ..sweep import Cell
from ...analysis.symbolic import derivation_table, kernel_expression
from ...analysis.symbolic.kernels import s as s_symbol
from ...variants import build_kernel

NAME = "rational_degree"

#: (variant, parameters) of the figure's rows
ROWS = (
    ("softmax", {}),
    ("linear", {}),
    ("relu", {}),
    ("performer", {}),
    ("taylor", {"order": 1}),
    ("taylor", {"order": 2}),
    ("taylor", {"order": 3}),
    ("polynomial", {"degree": 2}),
    ("polynomial", {"degree": 4, "c": 4.0}),
    ("hla", {"factors": 2}),
    ("hla", {"factors": 3}),
    ("hla", {"factors": 2, "feature_map": "affine"}),
)
#: rows of the random-feature kinds and the literature's feature maps (``derivation_table(FEATURE_MAP_ROWS)``)
FEATURE_MAP_ROWS = (
    ("hyperbolic", {}),
    ("favorpp", {}),
    ("favorsharp", {}),
    ("maclaurin", {}),
    ("dpfp", {}),
    ("dpfp", {"nu": 3}),
    ("cosformer", {}),
    ("hedgehog", {}),
    ("t2r", {}),
)
PROFILES = {
    "quick": dict(pairs=100_000, dim=16, num_features=64),
    "full": dict(pairs=1_000_000, dim=16, num_features=64),
}
S_RANGE = (-4.0, 4.0)
BINS = 41
SEED = 0


RADIUS = 2.0


def sample_pairs(pairs: int, dim: int, seed: int = SEED, radius: float = RADIUS):
    """x, y with ‖x‖ = ‖y‖ = radius, random directions, cos∠(x, y) uniform: s = x·y uniform on ±radius²."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(pairs, dim, generator=gen, dtype=torch.float64), dim=-1)
    w = torch.randn(pairs, dim, generator=gen, dtype=torch.float64)
    w = torch.nn.functional.normalize(w - (w * u).sum(-1, keepdim=True) * u, dim=-1)  # ⊥ u
    c = 2 * torch.rand(pairs, 1, generator=gen, dtype=torch.float64) - 1
    return radius * u, radius * (c * u + (1 - c ** 2).sqrt() * w)


def pair_kernel(variant: str, params: dict, x: torch.Tensor, y: torch.Tensor, num_features: int,
                random: bool = False) -> torch.Tensor:
    """κ(x_i, y_i) for each pair from the variant's torch kernel (a random estimate: m = ``num_features`` draws
    from seed ``SEED``, through its features)."""
    dim = x.shape[-1]
    if random:
        kernel = build_kernel(variant, dim, num_features=num_features, seed=SEED, **params)
        fx, cx = kernel.features(x)
        fy, cy = kernel.features(y)
        return (fx * fy).sum(-1) * torch.exp(cx + cy)
    kernel = build_kernel(variant, dim, **params)
    out = torch.empty(x.shape[0], dtype=x.dtype)
    for start in range(0, x.shape[0], 4096):  # diagonal of the kernel matrix, block by block
        sl = slice(start, start + 4096)
        k, scale = kernel.kernel(x[sl].unsqueeze(-2), y[sl].unsqueeze(-2))
        k = k[..., 0, 0]
        out[sl] = k if scale is None else k * torch.exp(scale[..., 0])
    return out


def curves(table: pd.DataFrame, pairs: int, dim: int, num_features: int) -> pd.DataFrame:
    grid = np.linspace(*S_RANGE, 161)
    edges = np.linspace(*S_RANGE, BINS + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    x, y = sample_pairs(pairs, dim)
    sim = (x * y).sum(-1).numpy()
    which = np.digitize(sim, edges) - 1
    records = []
    for variant, params, label in zip(table["variant"], table["params"], table["label"]):
        params = ast.literal_eval(params)  # repr of a dict of literals, written by derivation_table
        expr = kernel_expression(variant, **params)
        if expr.of_similarity and not expr.random:
            f = sp.lambdify(s_symbol, expr.kappa, "numpy")
            at = 0 if expr.kappa.subs(s_symbol, 0) != 0 else 1
            values = np.broadcast_to(np.asarray(f(grid), dtype=float), grid.shape) / float(expr.kappa.subs(s_symbol, at))
            records += [dict(part="curve", variant=variant, label=label, s=g, value=v, low=v, high=v, mean=v,
                             normalised_at=at, sampled=False) for g, v in zip(grid, values)]
            continue
        k = pair_kernel(variant, params, x, y, num_features, random=expr.random).numpy()
        stats = []
        for b in range(BINS):
            vals = k[which == b]
            stats.append([*np.quantile(vals, [0.1, 0.5, 0.9]), vals.mean()] if vals.size >= 20 else np.full(4, np.nan))
        stats = np.array(stats)
        ref, ref_mean = stats[BINS // 2, 1], stats[BINS // 2, 3]  # median / mean in the bin around s = 0
        records += [dict(part="curve", variant=variant, label=label, s=c, value=med / ref, low=lo / ref,
                         high=hi / ref, mean=mu / ref_mean, normalised_at=0, sampled=True)
                    for c, (lo, med, hi, mu) in zip(centres, stats)]
    return pd.DataFrame(records)


def cell(variant: str, params: dict, pairs: int, dim: int, num_features: int) -> pd.DataFrame:
    """Cell: one variant's table row (sympy) and its curve."""
    table = derivation_table([(variant, params)]).assign(part="table")
    curve = curves(table, pairs, dim, num_features)
    curve["dim"] = dim
    curve["num_features"] = num_features
    return pd.concat([table, curve], ignore_index=True)


def compute(profile: str = "quick") -> pd.DataFrame:
    """One cell per row of the table, run and cached by ``approxlab.experiments.sweep``; table rows first, then curves."""
    cfg = PROFILES[profile]
    cells = [Cell("rational_degree", cell, dict(variant=variant, params=dict(params), **cfg))
             for variant, params in ROWS]
    parts = sweep.concat(sweep.run(cells))
    curve_only = ["s", "value", "low", "high", "mean", "normalised_at", "sampled", "dim", "num_features"]
    table = parts[parts["part"] == "table"].drop(columns=curve_only)
    return pd.concat([table, parts[parts["part"] == "curve"]], ignore_index=True)


def draw(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    from ..style import color, legend_beside

    table = df[df["part"] == "table"].reset_index(drop=True)
    curve = df[df["part"] == "curve"]
    fig = plt.figure(figsize=(13, 10.5), constrained_layout=True)
    grid = fig.add_gridspec(2, 2, height_ratios=[1.25, 1])
    ax_t = fig.add_subplot(grid[0, :])
    ax_t.axis("off")
    cells = []
    random = set(table.loc[table["monotonicity"].str.startswith("random"), "variant"])
    for _, row in table.iterrows():
        kappa = (r"$\frac{1}{m}\sum_{i}\phi_{w_i}(x)\,\phi_{w_i}(y)$, " + row["monotonicity"][len("random ("):-1]
                 if row["variant"] in random else f"${row['kappa']}$")
        degree = "none" if pd.isna(row["numerator_degree"]) else \
            f"({int(row['numerator_degree'])}, {int(row['denominator_degree'])})"
        cells.append([row["label"], kappa, degree, f"${row['features']}$", row["positivity"], row["monotonicity"]])
    columns = ["variant", r"kernel $\kappa$", "degree of $a_{j}$", "features $F$ (cost $N F D_v$)",
               r"sign of $\kappa$", r"monotone in $s$"]
    tab = ax_t.table(cellText=cells, colLabels=columns, loc="center", cellLoc="left", colLoc="left",
                     colWidths=[0.17, 0.33, 0.09, 0.18, 0.1, 0.13])
    tab.auto_set_font_size(False)
    tab.set_fontsize(9)
    tab.scale(1.0, 2.35)
    for (r, c), cell in tab.get_celld().items():
        cell.set_edgecolor("0.8")
        if r == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("0.93")
    fig.suptitle("Each kernel's row weight $a_j = \\kappa_j / \\sum_l \\kappa_l$ as a rational function of the "
                   "row's similarities: degrees derived by sympy (linear, relu, hla: positive orthant)", fontsize=12)

    panels = [(False, "kernels of $s$ alone (exact, from sympy)"),
              (True, "kernels of the vectors (median, 10–90 % band over random pairs)")]
    for col, (sampled, title) in enumerate(panels):
        ax = fig.add_subplot(grid[1, col])
        s = np.linspace(-4, 4, 161)
        ax.plot(s, np.exp(s), color="black", lw=2.2, ls="--", label="exp(s) (softmax)", zorder=5)
        part = curve[(curve["sampled"] == sampled) & (curve["variant"] != "softmax")]
        styles = ["-", "-.", ":", (0, (5, 1))]
        seen: dict = {}
        for label, g in part.groupby("label", sort=False):
            variant = g["variant"].iloc[0]
            ls = styles[seen.setdefault(variant, 0) % len(styles)]
            seen[variant] += 1
            positive = g["value"].where(g["value"] > 0)
            tag = " (÷κ(1))" if (g["normalised_at"] == 1).any() else ""
            ax.plot(g["s"], positive, color=color(variant), ls=ls, lw=1.6, label=label + tag + (" median" if sampled else ""))
            if variant in random:
                ax.plot(g["s"], g["mean"].where(g["mean"] > 0), color=color(variant), ls=":", lw=1.6,
                        label=f"{variant} mean")
            if sampled:
                ax.fill_between(g["s"], g["low"].where(g["low"] > 0), g["high"].where(g["high"] > 0),
                                color=color(variant), alpha=0.15, lw=0)
        ax.set(yscale="log", xlabel="similarity $s = q\\cdot k/\\sqrt{D}$", ylabel="$\\kappa(s)/\\kappa(0)$",
               xlim=(-4, 4), ylim=(1e-3, 2e2), title=title)
        legend_beside(ax, fontsize=8)
        if sampled and curve["sampled"].any():
            row = curve[curve["sampled"]].iloc[0]
            ax.text(0.98, 0.03, f"D = {int(row['dim'])}, ‖x‖ = ‖y‖ = {RADIUS:g}, performer m = {int(row['num_features'])}",
                    transform=ax.transAxes, ha="right", fontsize=8, color="0.3")
        else:
            ax.text(0.98, 0.03, "curves stop where κ ≤ 0", transform=ax.transAxes, ha="right", fontsize=8, color="0.3")
    return fig
