"""The lesson's exercise: every variant against softmax on (1, 8, N, 64), N = 1024 … 8192
(full profile: to 65536, and causal up to ``causal_up_to`` = 16384, what finishes within an hour on a 2-core
CPU: at N = 32768 the causal cases alone ran for more than a quarter of an hour; its 8 GiB memory budget lets
the TV sample keep every random-feature map's key features across its blocks at N = 65536, where 4 GiB left
three of them recomputed for every block of 4 rows, and its work budget of 10¹³ FLOPs per call lets HLA's
4096 features run there, about 1.1·10¹² FLOPs, over the default 10¹²).

For each variant's efficient form: median forward time and its IQR (adaptive budget per case,
:func:`~approxlab.experiments.timing.time_call`: sampling stops once IQR / median ≤ ``rel_iqr`` after
``min_run_time`` seconds, or at ``max_run_time``; ``time_runs`` and ``time_stop`` say which, and
``other_cpu_load`` the CPUs other processes kept busy meanwhile, so a noisy cell shows) and divergence from
exact softmax attention — mean row TV of the explicit weights (beyond ``tv_rows`` rows — 1024 in both
profiles — on that many rows in eight evenly spaced runs, an unbiased sample of the row mean; its standard
error over the sampled rows and heads in ``mean_row_tv_se``) and output error relative to ‖v‖ (all rows).
With 1024 rows × 8 heads the standard error is under 0.001 for every variant but random Maclaurin (signed
weights, heavy-tailed TVs).

A timing study: it runs serially in one process whatever ``--jobs``/``--scheduler`` say (timings
taken beside other workers are not fair timings), and is not cached (``approxlab.experiments.sweep``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ...api import attention
from ...core.budget import get_memory_budget, get_work_budget, memory_budget, work_budget
from ..environment import describe
from ...analysis.inputs import gaussian_qkv
from ...analysis.metrics import output_error, row_divergence
from ..timing import allocator_state, others_busy, time_call
from ...variants import VARIANTS, inputs_for, kernel_name

NAME = "lesson_exercise"

#: ``approxlab figures`` runs this study serially and uncached: it measures time
SERIAL = "timing"
PROFILES = {
    "quick": dict(lengths=[1024, 2048, 4096, 8192], causal=[False], causal_up_to=None, min_run_time=0.05,
                  max_run_time=0.2, rel_iqr=0.05, tv_rows=1024, memory_budget=None,
                  work_budget=None),
    "full": dict(lengths=[1024, 2048, 4096, 8192, 16384, 32768, 65536], causal=[False, True], causal_up_to=16384,
                 min_run_time=0.25, max_run_time=1.0, rel_iqr=0.05, tv_rows=1024, memory_budget=8 * 2**30,
                 work_budget=1e13),
}
SHAPE = dict(batch=1, heads=8, head_dim=64)
#: a timing is ringed in the figure when its IQR exceeds this share of its median, or other processes
#: kept more than this many CPUs busy while it ran
NOISY_IQR, NOISY_LOAD = 0.1, 0.25


def compute(profile: str = "quick", device: str = "cpu", variants=None, **overrides) -> pd.DataFrame:
    """``device``: where to run; ``variants``: names (registered ones too) or kernel objects, softmax
    first (default: the built-in ``VARIANTS``); ``overrides`` replace profile entries (lengths, causal,
    min_run_time, max_run_time, rel_iqr: each case's timing budget, :func:`~approxlab.experiments.timing.time_call`;
    ``min_run_time`` alone fixes the budget at that many seconds; ``causal_up_to``: the longest N timed causal,
    None for every N; ``memory_budget``, ``work_budget``: bytes and FLOPs per call for the run,
    :func:`approxlab.memory_budget` and :func:`approxlab.work_budget`, None for the process's own)."""
    variants = list(VARIANTS if variants is None else variants)
    unknown = sorted(set(overrides) - set(PROFILES[profile]))
    if unknown:
        raise TypeError(f"unknown override(s) {unknown}; choose from {sorted(PROFILES[profile])}")
    cfg = {**PROFILES[profile], **overrides}
    if "min_run_time" in overrides and "max_run_time" not in overrides:  # the caller's budget, as given
        cfg["max_run_time"] = cfg["min_run_time"]
    env = describe(device)
    longest_causal = cfg["causal_up_to"] or max(cfg["lengths"])
    grid = [(n, c) for n in cfg["lengths"] for c in cfg["causal"] if not (c and n > longest_causal)]
    with memory_budget(cfg["memory_budget"] or get_memory_budget()), \
            work_budget(cfg["work_budget"] or get_work_budget()):
        return pd.DataFrame(_rows(grid, variants, cfg, device, env))


def _rows(grid, variants, cfg, device, env) -> list[dict]:
    """One row per (N, causal) in ``grid`` and variant: the TV sample, then each variant timed."""
    rows = []
    for n, causal in tqdm(grid, desc="lesson_exercise"):
        q, k, v = gaussian_qkv(SHAPE["batch"], SHAPE["heads"], n, SHAPE["head_dim"], device=device)
        divergences = row_divergence(q, k, variants, causal=causal, max_rows=cfg["tv_rows"])
        exact = None  # softmax's own warm-up output when softmax is timed first (the default), else computed here
        for variant in variants:
            qv, kv = inputs_for(variant, q, k)  # cosFormer: positions appended
            with others_busy() as load:  # the warm-up call's output is the one measured against softmax
                timing = time_call(lambda: attention(qv, kv, v, variant, causal=causal), warmup=1,
                                   min_run_time=cfg["min_run_time"], max_run_time=cfg["max_run_time"],
                                   rel_iqr=cfg["rel_iqr"])
            out = timing.output
            if exact is None:
                exact = out if kernel_name(variant) == "softmax" else attention(q, k, v, "softmax", causal=causal)
            div = divergences[kernel_name(variant)]
            rows.append(dict(
                variant=kernel_name(variant), n=n, causal=causal, dtype="float32", **SHAPE,
                time_ms=1e3 * timing.median_s, time_iqr_ms=1e3 * timing.iqr_s, time_runs=timing.runs,
                time_stop=timing.stop, other_cpu_load=load.value,
                mean_row_tv=div["tv"].mean().item(), mean_row_tv_se=_standard_error(div["tv"]),
                mean_row_kl=div["kl"].mean().item(), tv_rows=len(div["rows"]),
                output_error=output_error(out, exact, v).mean().item(), cpu_allocator=allocator_state(), **env,
            ))
    return rows


def draw(df: pd.DataFrame, ax=None):
    """Time (median, IQR bars), mean row TV and output error vs N, one line style and colour family per kind of
    variant (:func:`approxlab.experiments.style.appearance`); a variant whose mean row TV exceeds 1 (signed
    weights: not a distribution, random Maclaurin on Gaussian inputs) is drawn on its own panel so that it does not
    squash the others. ``ax``: four Axes to draw into (time, TV, error, outliers), or three (the outliers then go
    on a right-hand axis of the TV and error panels)."""
    import matplotlib.pyplot as plt

    from ..style import SCHEME, appearance, length_ticks

    if ax is None:
        fig, axes = plt.subplots(1, 4, figsize=(15, 4.0), constrained_layout=True,
                                 gridspec_kw=dict(width_ratios=[1, 1, 1, 0.8]))
        axes = list(axes)
    else:
        axes = list(np.ravel(ax))
        if len(axes) not in (3, 4):
            raise ValueError(f"ax must hold 3 or 4 Axes, got {len(axes)}")
        fig = axes[0].figure
    time_ax, tv_ax, err_ax = axes[:3]
    order = list(SCHEME)
    variants = sorted(dict.fromkeys(df["variant"]), key=lambda v: order.index(v) if v in order else len(order))
    outliers = [v for v in variants if df.loc[df["variant"] == v, "mean_row_tv"].max() > 1]
    if len(axes) == 4:
        out_ax = axes[3]
        out_tv, out_err = out_ax, out_ax
    else:
        out_tv, out_err = (tv_ax.twinx(), err_ax.twinx()) if outliers else (None, None)
    causal_values = sorted(df["causal"].astype(bool).unique())
    for variant in variants:
        look = appearance(variant)
        for causal in causal_values:
            g = df[(df["variant"] == variant) & (df["causal"].astype(bool) == causal)].sort_values("n")
            if g.empty:
                continue
            kw = dict(color=look["color"], marker=look["marker"], ls=look["linestyle"], lw=1.4, ms=4.5,
                      mfc="none" if causal else look["color"],
                      label=look["label"] + (" (causal)" if causal and len(causal_values) > 1 else ""))
            time_ax.errorbar(g["n"], g["time_ms"], yerr=_iqr_bars(g), capsize=2, **kw)
            if variant == "softmax":
                continue
            if variant in outliers:
                out_tv.plot(g["n"], g["mean_row_tv"], **kw)
                out_err.plot(g["n"], g["output_error"], **{**kw, "ls": (0, (1, 1)), "label": None})
            else:
                tv_ax.plot(g["n"], g["mean_row_tv"], **kw)
                err_ax.plot(g["n"], g["output_error"], **kw)
    labels = [(time_ax, "forward time (ms, median; bars: IQR)"), (tv_ax, "mean row TV vs softmax"),
              (err_ax, "output error / rms‖v‖")]
    if len(axes) == 4:
        labels.append((out_ax, "mean row TV; output error (dotted)"))
        out_ax.set_title("outliers: weights not a distribution" if outliers else "no outliers (every TV ≤ 1)",
                         fontsize=9)
    elif outliers:
        labels += [(out_tv, "outliers' mean row TV"), (out_err, "outliers' output error")]
    ns = sorted(df["n"].unique())
    for a, label in labels:
        a.set(xscale="log", yscale="log", xlabel="sequence length N", ylabel=label)
        length_ticks(a, ns)
        a.xaxis.set_minor_locator(plt.NullLocator())
    if len(axes) == 4 and not outliers:
        out_ax.set(yscale="linear")
    if {"time_iqr_ms", "other_cpu_load"} <= set(df.columns):  # timings to weigh with care: ringed
        noisy = df[(df["time_iqr_ms"] > NOISY_IQR * df["time_ms"]) | (df["other_cpu_load"] > NOISY_LOAD)]
        if len(noisy):
            time_ax.scatter(noisy["n"], noisy["time_ms"], s=70, facecolors="none", edgecolors="k", lw=0.8, zorder=5,
                            label=f"noisy: IQR > {NOISY_IQR:.0%} of median\nor other load > {NOISY_LOAD} CPU")
    handles, names = time_ax.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center", frameon=False, fontsize=8)
    device = df["device"].iloc[0] if "device" in df else "cpu"
    threads = f", {int(df['threads'].iloc[0])} threads" if "threads" in df else ""
    fig.suptitle(f"Lesson exercise: (1, 8, N, 64) float32, efficient forms vs softmax — {device}{threads}")
    return fig


def _standard_error(values) -> float:
    """Standard error of the mean of ``values`` (all heads and sampled rows, taken as independent)."""
    values = values.flatten()
    return (values.std() / values.numel() ** 0.5).item() if values.numel() > 1 else float("nan")


def _iqr_bars(g: pd.DataFrame) -> np.ndarray:
    """Asymmetric error bars of half the IQR each side of the median, kept above zero (log axes)."""
    half = g["time_iqr_ms"].to_numpy() / 2
    median = g["time_ms"].to_numpy()
    return np.vstack([np.minimum(half, 0.95 * median), half])
