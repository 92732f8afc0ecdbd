"""figures/window_hybrid: how much of a kernel's error a window of exact softmax removes, against the hybrid bound.

A window hybrid (:mod:`approxlab.variants.window`) keeps exp(s) on the keys within w of the query and a kernel
on the others, under one denominator. For w = 0 (the kernel alone), 1, 2, 4, …, N (softmax) and four kernels
outside the window (Hedgehog at its initialisation, ELU linear, Taylor-2 as in Based, FAVOR+ with 64 features),
every row's TV from softmax and output error ‖o − o_softmax‖ / rms‖v‖ is measured (explicit forms, float64,
non-causal) and set against the row's hybrid bound T(B, ℓ, h) (:func:`approxlab.analysis.theory.hybrid_tv_bound`:
B the softmax mass outside the window, [ℓ, h] the kernel's log-error there).

Sources: the 72 heads of all-MiniLM-L6 (N tokens of the standard library's docstrings; window weight γ fitted per
head on the previous N tokens, :func:`approxlab.variants.window.fit_window_weight`), and Gaussian q, k, v
(D = 32, 4 heads) scaled by a temperature τ (γ fitted on an independent draw). Rows: one per (source, kernel, w)
with the mean and 90th percentile of the row TV, the mean bound, the mean output error, the largest TV − bound
over every row (≤ 0: every row under its bound) and the number of rows checked.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from .. import style, sweep
from ..sweep import Cell
from ...analysis.inputs import held_out_qkv
from ...analysis.theory import hybrid_rows
from ...variants.window import fit_window_weight

NAME = "window_hybrid"

#: kernels outside the window: (label, variant, parameters)
KERNELS = (("hedgehog", "hedgehog", {}), ("linear", "linear", {}), ("taylor", "taylor", dict(order=2)),
           ("performer", "performer", dict(num_features=64, seed=0)))
PROFILES = {
    "quick": dict(n=128, temperatures=[0.5, 1.0, 1.5, 2.0], windows=[0, 1, 2, 4, 8, 16, 32, 64, 128]),
    "full": dict(n=256, temperatures=[0.5, 0.75, 1.0, 1.5, 2.0], windows=[0, 1, 2, 4, 8, 16, 32, 64, 128, 256]),
}
SYNTHETIC = dict(heads=4, head_dim=32)
#: seed offset of the calibration draw (synthetic sources)
CALIBRATION_SEED = 10_000


def _inputs(source: str, n: int):
    """(q, k, v) to measure on and (q, k) to fit on, each (1, H, N, D) float64."""
    return held_out_qkv(source, n, **SYNTHETIC, calibration_seed=CALIBRATION_SEED)


def source_cell(source: str, n: int, windows: list) -> pd.DataFrame:
    """Cell: every kernel and window on one source (module doc)."""
    (q, k, v), (qc, kc) = _inputs(source, n)
    rms = v.pow(2).sum(-1).mean(-1).sqrt()[..., None]  # per head
    records = []
    for label, variant, params in KERNELS:
        for w in windows:
            gamma = fit_window_weight(qc, kc, window=max(w, 1), kernel=variant, kernel_params=params)
            rows = hybrid_rows(q, k, v, window=w, kernel=variant, kernel_params=params, window_weight=gamma)
            tv, bound = rows["tv"].flatten().numpy(), rows["bound"].flatten().numpy()
            err = (rows["output_error"] / rms).flatten().numpy()
            records.append(dict(source=source, kernel=label, window=w, n=n, rows=tv.size,
                                tv_mean=tv.mean(), tv_p90=np.quantile(tv, 0.9), bound_mean=bound.mean(),
                                pure_bound_mean=rows["pure_bound"].flatten().numpy().mean(),
                                outside_mass_mean=rows["outside_mass"].flatten().numpy().mean(),
                                excess_max=float((tv - bound).max()), violations=int((tv > bound + 1e-12).sum()),
                                output_error_mean=err.mean(),
                                output_bound_mean=(rows["output_bound"] / rms).flatten().numpy().mean(),
                                gamma_median=float(gamma.median())))
    return pd.DataFrame(records)


def compute(profile: str = "quick") -> pd.DataFrame:
    """One cell per source (MiniLM heads, each temperature), run and cached by ``approxlab.sweep``."""
    cfg = PROFILES[profile]
    sources = ["minilm"] + [f"tau={t:g}" for t in cfg["temperatures"]]
    cells = [Cell("window_hybrid", source_cell, dict(source=s, n=cfg["n"], windows=cfg["windows"]))
             for s in sources]
    return sweep.concat(sweep.run(cells))


def draw(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    sources = list(dict.fromkeys(df["source"]))
    fig, axes = plt.subplots(2, len(sources), figsize=(3.1 * len(sources), 6.2), constrained_layout=True,
                             sharex=True, squeeze=False)
    n = int(df["n"].iloc[0])
    for col, source in enumerate(sources):
        part = df[df["source"] == source]
        top, bottom = axes[0, col], axes[1, col]
        for label, marker in zip(dict.fromkeys(part["kernel"]), "osD^v"):
            rows = part[part["kernel"] == label].sort_values("window")
            c = style.color(label)
            top.plot(rows["window"], rows["tv_mean"], marker=marker, ms=3.5, color=c, label=f"{label}: mean TV")
            top.plot(rows["window"], rows["bound_mean"], ls="--", color=c, lw=1, label=f"{label}: mean bound")
            alone = float(rows.loc[rows["window"] == 0, "output_error_mean"].iloc[0])
            bottom.plot(rows["window"], rows["output_error_mean"] / alone, marker=marker, ms=3.5, color=c, label=label)
        rows_checked, violations = int(part["rows"].sum()), int(part["violations"].sum())
        name = "MiniLM, 72 heads" if source == "minilm" else f"Gaussian, τ = {source.split('=')[1]}"
        top.set_title(f"{name}\n{rows_checked:,} rows, {violations} above their bound", fontsize=9)
        for ax in (top, bottom):
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlim(0, n * 1.1)
        top.set_ylim(0, 1.02)
        bottom.set_ylim(0, 1.1)
        bottom.set_xlabel("window w (0: kernel alone; N: softmax)")
    axes[0, 0].set_ylabel("row TV from softmax (solid)\nhybrid bound T(B, ℓ, h) (dashed)")
    axes[1, 0].set_ylabel("mean ‖o − o_softmax‖, as a fraction\nof the kernel alone's (w = 0)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncol=len(labels) // 2)
    fig.suptitle(f"Window hybrids: exact exp(s) on |i − j| < w, a kernel elsewhere, N = {n} (non-causal, float64)")
    return fig
