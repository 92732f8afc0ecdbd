"""Speed vs sequence length: every variant's efficient form against SDPA, naive softmax and the
identity floor (returns V), non-causal and causal, float32 and bfloat16; peak memory beside time;
performer-pytorch at the same m as a peer; and the blog's protocol (batch 32, d_k = 64, one head,
N 128…6000, float32) re-measured with an efficient form that is tested equal to its explicit form.

Rows carry ``protocol`` ("scaling" or "blog"); B·H shrinks at long N so that B·H·N ≤ max_tokens.

Timing budget per case (:func:`~approxlab.experiments.timing.time_call`, adaptive): samples stop once
IQR / median ≤ ``rel_iqr`` after ``min_run_time`` seconds, or at ``max_run_time`` (at least three samples);
each row keeps ``runs``, ``iqr_ms``, ``timing_stop`` and ``other_cpu_load`` (other processes' CPUs busy
meanwhile), so noisy cells show.

A timing study: it runs serially in one process whatever ``--jobs``/``--scheduler`` say (timings
taken beside other workers are not fair timings), and is not cached (``approxlab.experiments.sweep``).
"""

from __future__ import annotations

import importlib.util

import pandas as pd
import torch

from .. import bench

NAME = "speed_vs_length"

METHODS = ["identity", "sdpa", "naive_softmax", "linear", "relu", "performer", "taylor", "polynomial", "hla",
           "performer_pytorch", "linear_triton", "fla_linear"]  # the last two run on CUDA only (skipped rows on CPU)
#: a timing is ringed in the figure when its IQR exceeds this share of its median, or other processes
#: kept more than this many CPUs busy while it ran
NOISY_IQR, NOISY_LOAD = 0.1, 0.25
#: ``approxlab figures`` runs this study serially and uncached: it measures time
SERIAL = "timing"
PROFILES = {
    "quick": dict(lengths=[256, 1024, 4096], dtypes=("float32", "bfloat16"), max_tokens=2**15,
                  blog=[128, 512, 2048], min_run_time=0.02, max_run_time=0.05, rel_iqr=0.05, max_call_s=2.0,
                  memory_budget=2 * 2**30),
    "full": dict(lengths=[128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536],
                 dtypes=("float32", "bfloat16"), max_tokens=2**17, blog=[128, 256, 512, 1024, 2048, 4096, 6000],
                 min_run_time=0.1, max_run_time=0.5, rel_iqr=0.05, max_call_s=20.0, memory_budget=8 * 2**30),
}


def cases(profile: str = "quick") -> list[bench.Case]:
    cfg = PROFILES[profile]
    grid = bench.scaling_cases(METHODS, cfg["lengths"], causal=(False, True), dtypes=cfg["dtypes"],
                               max_batch_heads=8, max_tokens=cfg["max_tokens"])
    # bfloat16: the kernel variants compute in float32 inside, so time the baselines and two variants only;
    # the quick profile skips naive softmax (CPU bf16 matmul is slow) and causal bf16
    keep16 = {"identity", "sdpa", "naive_softmax", "linear", "performer", "linear_triton", "fla_linear"} if profile == "full" else {
        "identity", "sdpa", "linear", "performer"}
    grid = [c for c in grid if c.dtype == "float32" or (c.method in keep16 and (profile == "full" or not c.causal))]
    return grid + bench.blog_cases(cfg["blog"])


def compute(profile: str = "quick", device: str = "cpu") -> pd.DataFrame:
    cfg = PROFILES[profile]
    df = bench.run(cases(profile), device, min_run_time=cfg["min_run_time"], max_run_time=cfg["max_run_time"],
                   rel_iqr=cfg["rel_iqr"], max_call_s=cfg["max_call_s"], memory_budget=cfg["memory_budget"])
    return df.assign(**peer_columns())


def peer_columns() -> dict:
    """performer-pytorch's output against approxlab's FAVOR+ (same projection, N = 512, float32), with
    its ε = 0 and its default 1e-4; NaN where it is not installed (its timing rows say "skipped" too)."""
    columns = {"peer_rel_diff_eps0": 0.0, "peer_rel_diff_eps1e-4": 1e-4}
    if not _has_peer():
        return {column: float("nan") for column in columns}
    return {column: bench.peer_agreement(512, eps=eps, dtype=torch.float32) for column, eps in columns.items()}


def _has_peer() -> bool:
    return importlib.util.find_spec("performer_pytorch") is not None


def _panel_keys(df):
    scaling = df[df["protocol"] == "scaling"]
    keys = scaling[["dtype", "causal"]].drop_duplicates().sort_values(["dtype", "causal"], ascending=[False, True])
    return [tuple(x) for x in keys.to_numpy()]


def draw(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    import numpy as np

    from ..style import appearance, color, length_ticks

    ok = df[df["status"] == "ok"]
    panels = _panel_keys(df)
    cross = bench.crossover(df)
    fig, axes = plt.subplots(3, len(panels) + 1, figsize=(3.6 * (len(panels) + 1), 9.6), constrained_layout=True,
                             squeeze=False)
    references = ("identity", "sdpa", "naive_softmax", "performer_pytorch", "fla_linear")

    def line(method):
        look = appearance(method)
        return dict(color=look["color"], ls=look["linestyle"], marker=look["marker"], ms=3.5, lw=1.4,
                    label=method.replace("_", " "))

    for col, (dtype, causal) in enumerate(panels):
        sub = ok[(ok["protocol"] == "scaling") & (ok["dtype"] == dtype) & (ok["causal"] == causal)]
        ref = sub[sub["method"] == "sdpa"].set_index("n")["time_ms"]
        for method in METHODS:
            g = sub[sub["method"] == method].sort_values("n")
            if g.empty:
                continue
            kw = line(method)
            axes[0, col].errorbar(g["n"], g["time_ms"], yerr=_iqr_bars(g), capsize=2, **kw)
            noisy = g[(g["iqr_ms"] > NOISY_IQR * g["time_ms"]) | (g.get("other_cpu_load", 0.0) > NOISY_LOAD)]
            axes[0, col].scatter(noisy["n"], noisy["time_ms"], s=60, facecolors="none", edgecolors="k", lw=0.7,
                                 zorder=5)
            if method != "identity":  # the floor is in the time panel; here it would only stretch the axis
                axes[1, col].plot(g["n"], g["time_ms"].to_numpy() / ref.reindex(g["n"]).to_numpy(), **kw)
            axes[2, col].plot(g["n"], g["peak_mem_mb"].clip(lower=1e-3), **kw)
            c = cross[(cross["protocol"] == "scaling") & (cross["method"] == method) & (cross["dtype"] == dtype)
                      & (cross["causal"] == causal)]
            if len(c) and np.isfinite(c["n_interp"].iloc[0]) and method not in references:
                axes[1, col].plot(c["n_interp"].iloc[0], 1.0, marker="|", ms=14, mew=2, color=color(method))
        axes[1, col].axhline(1.0, color="k", lw=0.8)
        heads = sorted(sub["heads"].unique())
        axes[0, col].set_title(f"{dtype}, {'causal' if causal else 'non-causal'}\n"
                               f"B·H = {heads[-1]}…{heads[0]}, D = 64" if len(heads) > 1 else
                               f"{dtype}, {'causal' if causal else 'non-causal'}\nB·H = {heads[0]}, D = 64")
        time_label = (f"forward time (ms, median; bars: IQR;\nringed: IQR > {NOISY_IQR:.0%} or other load > "
                      f"{NOISY_LOAD} CPU)")
        for row, label in enumerate([time_label, "time / SDPA time (< 1: faster)",
                                     "peak memory in the call (MiB)"]):
            ax = axes[row, col]
            ax.set(xscale="log", yscale="log", xlabel="sequence length N", ylabel=label)
            length_ticks(ax, sub["n"])
    # the blog's protocol
    blog = ok[ok["protocol"] == "blog"]
    ax = axes[0, -1]
    for method in blog["method"].unique():
        g = blog[blog["method"] == method].sort_values("n")
        ax.errorbar(g["n"], g["time_ms"], yerr=_iqr_bars(g), capsize=2, **line(method))
    ax.set(xscale="log", yscale="log", xlabel="sequence length N", ylabel="forward time (ms, median; bars: IQR)",
           title="blog protocol: B = 32, H = 1, D = 64\nfloat32, non-causal")
    length_ticks(ax, blog["n"])
    ax = axes[1, -1]
    for denom, ls in (("naive_softmax", "--"), ("sdpa", "-")):
        s = bench.speedup(df[df["protocol"] == "blog"], denom, "linear")
        ax.plot(s["n"], s["ratio"], marker="o", ls=ls, color=color("linear"), label=f"{denom.replace('_', ' ')} / linear")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="sequence length N", ylabel="time ratio (> 1: linear faster)",
           title="speed-up of linear (blog claims up to 60x)")
    length_ticks(ax, blog["n"])
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.22), frameon=False)
    # legend and notes
    handles, labels = axes[0, 0].get_legend_handles_labels()
    axes[2, -1].axis("off")
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), title=None)
    notes = []
    for _, r in cross[(cross["protocol"] == "scaling") & (cross["dtype"] == "float32")].iterrows():
        if r["method"] in ("identity", "naive_softmax"):
            continue
        if not np.isfinite(r["n_interp"]):
            where = f"not up to N = {r['max_n']:.0f} (ratio {r['ratio_at_max_n']:.2g} there)"
        elif r["n_first"] == r.get("min_n", np.nan):
            where = f"N ≤ {r['min_n']:.0f} (smallest N timed)"
        else:
            where = f"N ≈ {r['n_interp']:.0f}"
        notes.append(f"{r['method'].replace('_', ' ')}{', causal' if r['causal'] else ''}: {where}")
    axes[2, -1].text(0.0, 1.0, "first beats SDPA (| marks, log-log\ninterpolated between grid points):\n"
                     + "\n".join(notes), fontsize=8, va="top",
                     transform=axes[2, -1].transAxes)
    env = df.iloc[0]
    fig.suptitle(f"Forward time and memory vs N — {env['device']} ({env['device_type']}), {int(env['threads'])} threads, "
                 f"torch {env['torch']}, SDPA backend {env['sdpa_backend']}; medians with IQR bars")
    return fig


def _iqr_bars(g: pd.DataFrame):
    """Error bars of half the IQR each side of the median, the lower one kept above zero (log axes)."""
    import numpy as np

    half = g["iqr_ms"].to_numpy() / 2
    return np.vstack([np.minimum(half, 0.95 * g["time_ms"].to_numpy()), half])
