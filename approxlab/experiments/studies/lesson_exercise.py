"""The lesson's exercise: every variant against softmax on (1, 8, N, 64), N = 1024 … 8192
(full profile: to 65536, the benchmark sizes, causal too).

For each variant's efficient form: median forward time (torch.utils.benchmark) and divergence from
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
from tqdm.auto import tqdm

from ...api import attention
from ..environment import describe
from ...analysis.inputs import gaussian_qkv
from ...analysis.metrics import output_error, row_divergence
from ..timing import allocator_state, time_call
from ...variants import VARIANTS, inputs_for, kernel_name

#: ``approxlab figures`` runs this study serially and uncached: it measures time
SERIAL = "timing"
PROFILES = {
    "quick": dict(lengths=[1024, 2048, 4096, 8192], causal=[False], min_run_time=0.2, tv_rows=2048),
    "full": dict(lengths=[1024, 2048, 4096, 8192, 16384, 32768, 65536], causal=[False, True], min_run_time=1.0,
                 tv_rows=4096),
}
SHAPE = dict(batch=1, heads=8, head_dim=64)


def compute(profile: str = "quick", device: str = "cpu", variants=None, **overrides) -> pd.DataFrame:
    """``device``: where to run; ``variants``: names (registered ones too) or kernel objects, softmax
    first (default: the built-in ``VARIANTS``); ``overrides`` replace profile entries (lengths, causal,
    min_run_time)."""
    variants = list(VARIANTS if variants is None else variants)
    unknown = sorted(set(overrides) - set(PROFILES[profile]))
    if unknown:
        raise TypeError(f"unknown override(s) {unknown}; choose from {sorted(PROFILES[profile])}")
    cfg = {**PROFILES[profile], **overrides}
    env = describe(device)
    rows = []
    grid = [(n, c) for n in cfg["lengths"] for c in cfg["causal"]]
    for n, causal in tqdm(grid, desc="lesson_exercise"):
        q, k, v = gaussian_qkv(SHAPE["batch"], SHAPE["heads"], n, SHAPE["head_dim"], device=device)
        exact = attention(q, k, v, "softmax", causal=causal)
        divergences = row_divergence(q, k, variants, causal=causal, max_rows=cfg["tv_rows"])
        for variant in variants:
            qv, kv = inputs_for(variant, q, k)  # cosFormer: positions appended
            timing = time_call(lambda: attention(qv, kv, v, variant, causal=causal), warmup=1,
                               min_run_time=cfg["min_run_time"])
            out = attention(qv, kv, v, variant, causal=causal)
            div = divergences[kernel_name(variant)]
            rows.append(dict(
                variant=kernel_name(variant), n=n, causal=causal, dtype="float32", **SHAPE,
                time_ms=1e3 * timing.median_s, time_iqr_ms=1e3 * timing.iqr_s,
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
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].get_legend().remove()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    device = df["device"].iloc[0] if "device" in df else "cpu"
    fig.suptitle(f"Lesson exercise: (1, 8, N, 64) float32, efficient forms vs softmax — {device}, "
                 f"{int(df['threads'].iloc[0])} threads")
    return fig
