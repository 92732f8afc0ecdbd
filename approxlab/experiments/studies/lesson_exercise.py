"""The lesson's exercise: every variant against softmax on (1, 8, N, 64), N = 1024 … 8192
(full profile: to 65536, the benchmark sizes, causal too).

For each variant's efficient form: median forward time and its IQR (adaptive budget per case,
:func:`~approxlab.experiments.timing.time_call`: sampling stops once IQR / median ≤ ``rel_iqr`` after
``min_run_time`` seconds, or at ``max_run_time``; ``time_runs`` and ``time_stop`` say which, and
``other_cpu_load`` the CPUs other processes kept busy meanwhile, so a noisy cell shows) and divergence from
exact softmax attention — mean row TV of the explicit weights (beyond ``tv_rows`` rows — 2048 quick,
4096 full — on that many rows in eight evenly spaced runs, an unbiased sample of the row mean) and
output error relative to ‖v‖ (all rows). Row TVs have a standard deviation of at most 0.09 here
(performer), so 2048 rows × 8 heads pin the mean to about ±0.001 (one standard error).

A timing study: it runs serially in one process whatever ``--jobs``/``--scheduler`` say (timings
taken beside other workers are not fair timings), and is not cached (``approxlab.experiments.sweep``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ...api import attention
from ..environment import describe
from ...analysis.inputs import gaussian_qkv
from ...analysis.metrics import output_error, row_divergence
from ..timing import allocator_state, others_busy, time_call
from ...variants import VARIANTS, build_kernel, inputs_for, kernel_name

NAME = "lesson_exercise"

#: ``approxlab figures`` runs this study serially and uncached: it measures time
SERIAL = "timing"
PROFILES = {
    "quick": dict(lengths=[1024, 2048, 4096, 8192], causal=[False], min_run_time=0.05, max_run_time=0.2,
                  rel_iqr=0.05, tv_rows=2048),
    "full": dict(lengths=[1024, 2048, 4096, 8192, 16384, 32768, 65536], causal=[False, True], min_run_time=0.25,
                 max_run_time=1.0, rel_iqr=0.05, tv_rows=4096),
}
SHAPE = dict(batch=1, heads=8, head_dim=64)
#: a timing is ringed in the figure when its IQR exceeds this share of its median, or other processes
#: kept more than this many CPUs busy while it ran
NOISY_IQR, NOISY_LOAD = 0.1, 0.25


def compute(profile: str = "quick", device: str = "cpu", variants=None, **overrides) -> pd.DataFrame:
    """``device``: where to run; ``variants``: names (registered ones too) or kernel objects, softmax
    first (default: the built-in ``VARIANTS``); ``overrides`` replace profile entries (lengths, causal,
    min_run_time, max_run_time, rel_iqr: each case's timing budget, :func:`~approxlab.experiments.timing.time_call`;
    ``min_run_time`` alone fixes the budget at that many seconds)."""
    variants = list(VARIANTS if variants is None else variants)
    unknown = sorted(set(overrides) - set(PROFILES[profile]))
    if unknown:
        raise TypeError(f"unknown override(s) {unknown}; choose from {sorted(PROFILES[profile])}")
    cfg = {**PROFILES[profile], **overrides}
    if "min_run_time" in overrides and "max_run_time" not in overrides:  # the caller's budget, as given
        cfg["max_run_time"] = cfg["min_run_time"]
    env = describe(device)
    rows = []
    grid = [(n, c) for n in cfg["lengths"] for c in cfg["causal"]]
    for n, causal in tqdm(grid, desc="lesson_exercise"):
        q, k, v = gaussian_qkv(SHAPE["batch"], SHAPE["heads"], n, SHAPE["head_dim"], device=device)
        exact = attention(q, k, v, "softmax", causal=causal)
        divergences = row_divergence(q, k, variants, causal=causal, max_rows=cfg["tv_rows"])
        for variant in variants:
            qv, kv = inputs_for(variant, q, k)  # cosFormer: positions appended
            with others_busy() as load:  # the warm-up call's output is the one measured against softmax
                timing = time_call(lambda: attention(qv, kv, v, variant, causal=causal), warmup=1,
                                   min_run_time=cfg["min_run_time"], max_run_time=cfg["max_run_time"],
                                   rel_iqr=cfg["rel_iqr"])
            out = timing.output
            div = divergences[kernel_name(variant)]
            rows.append(dict(
                variant=kernel_name(variant), n=n, causal=causal, dtype="float32", **SHAPE,
                time_ms=1e3 * timing.median_s, time_iqr_ms=1e3 * timing.iqr_s, time_runs=timing.runs,
                time_stop=timing.stop, other_cpu_load=load.value,
                mean_row_tv=div["tv"].mean().item(), mean_row_kl=div["kl"].mean().item(), tv_rows=len(div["rows"]),
                output_error=output_error(out, exact, v).mean().item(), cpu_allocator=allocator_state(), **env,
            ))
    return pd.DataFrame(rows)


def draw(df: pd.DataFrame, ax=None):
    """Three panels (time, mean row TV, output error vs N); ``ax``: three Axes to draw into."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ..style import color

    panels = [("time_ms", "forward time (ms, median)"), ("mean_row_tv", "mean row TV vs softmax"),
              ("output_error", "output error / rms‖v‖")]
    if ax is None:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), constrained_layout=True)
    else:
        axes = list(np.ravel(ax))
        if len(axes) != 3:
            raise ValueError(f"ax must hold 3 Axes, got {len(axes)}")
        fig = axes[0].figure
    style = "causal" if df["causal"].nunique() > 1 else None
    for ax, (col, label) in zip(axes, panels):
        data = df if col == "time_ms" else df[df["variant"] != "softmax"]
        sns.lineplot(data=data, x="n", y=col, hue="variant", style=style, marker="o", ax=ax,
                     palette={name: color(name) for name in df["variant"].unique()}, legend=ax is axes[0])
        ax.set(xscale="log", yscale="log", xlabel="sequence length N", ylabel=label)
        ax.set_xticks(sorted(df["n"].unique()), labels=[str(n) for n in sorted(df["n"].unique())])
        ax.xaxis.set_minor_locator(plt.NullLocator())
    if {"time_iqr_ms", "other_cpu_load"} <= set(df.columns):  # timings to weigh with care: ringed
        noisy = df[(df["time_iqr_ms"] > NOISY_IQR * df["time_ms"]) | (df["other_cpu_load"] > NOISY_LOAD)]
        if len(noisy):
            axes[0].scatter(noisy["n"], noisy["time_ms"], s=70, facecolors="none", edgecolors="k", lw=0.8, zorder=5,
                            label=f"noisy: IQR > {NOISY_IQR:.0%} of median\nor other load > {NOISY_LOAD} CPU")
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].get_legend().remove()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    device = df["device"].iloc[0] if "device" in df else "cpu"
    fig.suptitle(f"Lesson exercise: (1, 8, N, 64) float32, efficient forms vs softmax — {device}, "
                 f"{int(df['threads'].iloc[0])} threads")
    return fig


def readme_table(df: pd.DataFrame | None = None) -> str:
    """The README's table (default: the committed figures/lesson_exercise.csv, non-causal rows), as markdown:
    per variant the forward time at the shortest and longest N, softmax's time over the variant's at the
    longest N, the mean row TV (its range over N when that exceeds 0.005) and the output error at both ends.

    ``python -c "from approxlab.experiments.studies.lesson_exercise import readme_table; print(readme_table())"``
    """
    if df is None:
        from ..style import FIGURES_DIR

        df = pd.read_csv(FIGURES_DIR / "lesson_exercise.csv")
    df = df[~df["causal"].astype(bool)]
    lo, hi = int(df["n"].min()), int(df["n"].max())
    at = {n: df[df["n"] == n].set_index("variant") for n in (lo, hi)}
    softmax_hi = at[hi].loc["softmax", "time_ms"]
    probe = torch.zeros(1, 1, 1, SHAPE["head_dim"])

    def ms(x):
        return f"{x:.3g}" if x < 100 else f"{x:.0f}"

    lines = [f"| variant | features F | time N = {lo} (ms) | time N = {hi} (ms) | softmax time / variant's at {hi} "
             f"| mean row TV | output error / rms‖v‖ at {lo} → {hi} |", "|---|---|---|---|---|---|---|"]
    for variant in df["variant"].unique():
        a, b = at[lo].loc[variant], at[hi].loc[variant]
        tv = df[df["variant"] == variant]["mean_row_tv"]
        tv_text = f"{tv.min():.3g}" if tv.max() - tv.min() <= 0.005 else f"{tv.min():.3g} – {tv.max():.3g}"
        dim = inputs_for(variant, probe, probe)[0].shape[-1]  # the head dim the variant ran on (cosFormer: D + 2)
        features = "—" if variant == "softmax" else f"{build_kernel(variant, dim).feature_width(dim)}"
        error = "0" if variant == "softmax" else f"{a['output_error']:.3g} → {b['output_error']:.3g}"
        lines.append(f"| {variant} | {features} | {ms(a['time_ms'])} | {ms(b['time_ms'])} | "
                     f"{softmax_hi / b['time_ms']:.2g}× | {tv_text} | {error} |")
    return "\n".join(lines)
