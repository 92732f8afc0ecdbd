"""figures/bridge: measured row TV (torch, explicit form, float64) against the bound tanh(δ/2) of that row.

Experiment "bound": many small random problems (B=1, H=4, N=128, D=16, Gaussian q, k scaled by a
temperature τ, s ≈ τ² N(0, 1)) across variants, degrees and causal/non-causal; every row gives its
δ = ½(max_j − min_j)(log κ_ij − s_ij), tanh(δ/2), the TV of its weights from softmax and the output
error with its bound TV·diam{v}. Rows where κ ≤ 0 (odd taylor at large |s|) have no δ and are kept
with positive = False. Experiment "range": q, k of norm √(R√D) in D = 4, so s = R cos θ fills [−R, R];
minimax (built for R) against taylor of the same degree. slack = bound − TV (float64, then stored).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import torch
from .. import style, sweep
from ...analysis.inputs import gaussian_qkv, range_filling_qkv
from ..sweep import Cell
from ...analysis.theory import bridge_rows, hybrid_rows
from ...variants import calibrate, kernel_name, value_text, variant_class

NAME = "bridge"

CONFIGS = ([("taylor", dict(order=p)) for p in (1, 2, 3, 4, 6)]
           + [("polynomial", dict(degree=p, c=float(p))) for p in (2, 4, 6)]
           + [("minimax", dict(degree=p, R=6.0)) for p in (2, 4, 6)]
           + [("performer", dict(num_features=m, seed=0)) for m in (16, 64, 256)]
           + [("linear", {}), ("hla", dict(factors=2))]
           # the field's random features (FAVOR++/FAVOR#: parameters calibrated per problem, see bound_cell),
           # and maps with exact zeros (DPFP) or signed weights (random Maclaurin), kept with positive = False
           + [("hyperbolic", dict(num_features=64, seed=0)), ("favorpp", dict(num_features=64, seed=0)),
              ("favorsharp", dict(num_features=64, seed=0)), ("maclaurin", dict(num_features=64, seed=0)),
              ("dpfp", {})]
           # cosFormer with positions appended (variants.inputs_for; relu zeros: positive = False rows), and the
           # learned maps at their initialisation W = I, b = 0 (Hedgehog [exp(x), exp(−x)]; T2R relu)
           + [("cosformer", {}), ("hedgehog", {}), ("t2r", {})]
           # window hybrids (exact exp(s) on |i − j| < 8, Hedgehog / Taylor-2 outside; their rows also carry the
           # hybrid bound T(B, ℓ, h) of theory.hybrid_rows) and the shrinkage estimator (FAVOR+ toward uniform)
           + [("window", dict(window=8)), ("window", dict(window=8, kernel="taylor")),
              ("shrinkage", dict(num_features=64, seed=0))])
PROFILES = {
    "quick": dict(temperatures=[0.5, 0.8, 1.0, 1.25, 1.5], causal=[False, True], seeds=1, n=128, radii=[1.0, 2.0, 4.0, 8.0]),
    "full": dict(temperatures=[0.5, 0.8, 1.0, 1.25, 1.5, 2.0], causal=[False, True], seeds=4, n=256, radii=[1.0, 2.0, 4.0, 8.0]),
}
SHAPE = dict(batch=1, heads=4, head_dim=16)


def label(variant, params: dict) -> str:
    inner = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" if isinstance(v, str) else f"{k}={value_text(v)}"
                      for k, v in params.items() if k != "seed")
    variant = kernel_name(variant)
    return f"{variant}({inner})" if inner else variant


def _frame(rows: dict, **columns) -> pd.DataFrame:
    delta = rows["delta"].flatten().numpy()
    tv = rows["tv"].flatten().numpy()
    bound = rows["bound"].flatten().numpy()
    positive = np.isfinite(delta)
    data = dict(delta=delta, bound=np.where(positive, bound, np.nan), tv=tv,
                slack=np.where(positive, bound - tv, np.nan),
                output_error=rows["output_error"].flatten().numpy(),
                output_bound=rows["output_bound"].flatten().numpy())
    df = pd.DataFrame({k: v.astype(np.float32) for k, v in data.items()})
    # the sign of a tiny slack must survive the float32 cast: store negative slack exactly
    df["slack"] = np.where(data["slack"] < 0, data["slack"], df["slack"])
    df["positive"] = positive
    for key, value in columns.items():
        df[key] = value
    return df


def _gaussian(n, temperature, seed, head_dim=16, heads=4, batch=1):
    q, k, v = gaussian_qkv(batch, heads, n, head_dim, seed=seed, draw_dtype=torch.float64)
    return q * temperature, k * temperature, v


def bound_cell(temperature: float, causal: bool, seed: int, n: int) -> pd.DataFrame:
    """Cell: every variant of ``CONFIGS`` on one Gaussian problem (experiment "bound"). FAVOR++ and FAVOR#
    take their parameters from an independent draw at the same temperature (never from the keys they see)."""
    q, k, v = _gaussian(n, temperature, seed)
    q_cal, k_cal, _ = _gaussian(n, temperature, seed + CALIBRATION_SEED)
    frames = []
    for variant, params in CONFIGS:
        fitted = calibrate(q_cal, k_cal, variant) if hasattr(variant_class(variant), "calibrate") else {}
        frame = _frame(bridge_rows(q, k, v, variant, causal=causal, **params, **fitted), experiment="bound",
                       variant=variant, config=label(variant, params), temperature=temperature,
                       causal=causal, R=np.nan, degree=params.get("order", params.get("degree", np.nan)))
        if variant == "window":
            frame["hybrid_bound"] = hybrid_rows(q, k, v, causal=causal, **params)["bound"].flatten().numpy()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


#: seed offset of the calibration draws
CALIBRATION_SEED = 10_000


def range_cell(R: float, p: int, seed: int, n: int) -> pd.DataFrame:
    """Cell: taylor and minimax of degree p on similarities filling [−R, R] (experiment "range")."""
    q, k, v = range_filling_qkv(R, n, seed)
    return pd.concat([_frame(bridge_rows(q, k, v, variant, **params), experiment="range", variant=variant,
                             config=label(variant, params), temperature=np.nan, causal=False, R=R, degree=p)
                      for variant, params in (("taylor", dict(order=p)), ("minimax", dict(degree=p, R=R)))],
                     ignore_index=True)


def compute(profile: str = "quick") -> pd.DataFrame:
    """Cells per (temperature, causal, seed) and per (R, p, seed), run and cached by ``approxlab.experiments.sweep``."""
    cfg = PROFILES[profile]
    cells = [Cell("bridge", bound_cell, dict(temperature=t, causal=c, seed=s, n=cfg["n"]))
             for t in cfg["temperatures"] for c in cfg["causal"] for s in range(cfg["seeds"])]
    cells += [Cell("bridge", range_cell, dict(R=R, p=p, seed=s, n=cfg["n"]))
              for R in cfg["radii"] for p in range(1, 7) for s in range(cfg["seeds"])]
    return sweep.concat(sweep.run(cells))


def draw(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13.5, 4.6), constrained_layout=True,
                                  gridspec_kw=dict(width_ratios=[1.25, 1]))
    bound = df[(df["experiment"] == "bound") & df["positive"].astype(bool)]
    floor = 1e-9
    order = ["taylor", "polynomial", "hla", "linear", "hedgehog", "performer", "hyperbolic", "favorpp", "favorsharp",
             "window", "shrinkage", "minimax"]  # minimax drawn last, on top
    colors = {v: style.color(v) for v in order}
    for variant in [v for v in order if v in set(bound["variant"])]:
        part = bound[bound["variant"] == variant]
        ax.scatter(part["bound"].clip(lower=floor), part["tv"].clip(lower=floor), s=1.5, alpha=0.25,
                   color=colors[variant], label=style.label(variant), rasterized=True, linewidths=0)
    line = np.logspace(-9, 0, 50)
    ax.plot(line, line, color="black", lw=1.2, label="TV = tanh(δ/2)")
    violations = int((bound["slack"] < -1e-12).sum())
    skipped = int((~df.loc[df["experiment"] == "bound", "positive"].astype(bool)).sum())
    ax.set(xscale="log", yscale="log", xlim=(floor, 1.5), ylim=(floor, 1.5), xlabel=r"bound $\tanh(\delta/2)$ of the row",
           ylabel="measured row TV from softmax (float64)",
           title=f"{len(bound):,} rows, {violations} above the bound (tol 1e-12); {skipped:,} rows with κ ≤ 0 left out",)
    ax.title.set_fontsize(9)
    leg = style.legend_beside(ax, markerscale=6, fontsize=8)
    for h in leg.legend_handles:
        h.set_alpha(1)
    rng = df[df["experiment"] == "range"]
    mean = rng.groupby(["R", "degree", "variant"], as_index=False)["tv"].mean()
    palette = sns.color_palette("colorblind", 4)
    for i, R in enumerate(sorted(mean["R"].unique())):
        for variant in ("taylor", "minimax"):
            part = mean[(mean["R"] == R) & (mean["variant"] == variant)]
            ax2.plot(part["degree"], part["tv"], ls=style.linestyle(variant), marker=style.marker(variant),
                     color=palette[i], ms=4, label=f"{style.label(variant)}, R={R:g}")
    ax2.set(yscale="log", xlabel="degree p", ylabel="mean row TV from softmax",
            title="similarities filling [−R, R] (D=4, |q|=|k|): minimax (solid) vs taylor (dotted)")
    ax2.title.set_fontsize(9)
    ax2.legend(fontsize=7, ncol=2)
    fig.suptitle("The bridge: a row's log-uniform error δ bounds its attention error, TV ≤ tanh(δ/2)")
    return fig
