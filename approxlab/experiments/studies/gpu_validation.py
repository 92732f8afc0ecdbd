"""Numerical validation of every variant's efficient form on a device (CUDA if present), figure 7.

For each variant, dtype ∈ {float64, float32, bfloat16, float16}, causal ∈ {False, True} and N on a grid,
the efficient form on iid N(0, 1) inputs (rounded to the dtype) is compared with a float64 explicit
reference built in row blocks (``approxlab.analysis.validation``): output error ‖o − o_ref‖ / rms‖v‖ and row TV,
split into approximation (variant vs softmax, both float64) and floating point (variant in the dtype
vs the same variant in float64; further split into input rounding and arithmetic). The bridge
TV ≤ tanh(δ/2) (and ‖Δo‖ ≤ tanh(δ/2)·diam v) is counted per row beyond the fp floor. The lesson's
exercise (speed and divergence vs SDPA) runs on the same device (``lesson_exercise``).

    PYTHONPATH=$PWD python analyses/gpu_validation.py --device cuda --profile full

Without CUDA, ``approxlab figures`` redraws figures/gpu_validation.png from the committed CSV.
"""

from __future__ import annotations

import math
import time

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..environment import describe
from ...analysis.inputs import gaussian_qkv
from ...analysis.validation import DTYPES, UNIT_ROUNDOFF, validate
from ...analysis.validation import problems as numerical_problems
from ...variants import VARIANTS
from . import lesson_exercise

NAME = "gpu_validation"
#: ``approxlab figures`` recomputes only where CUDA exists, else redraws the committed CSV
REQUIRES = "cuda"
#: serial and uncached (``approxlab.experiments.sweep`` is not used): one device, and its rows carry timings
SERIAL = "timing"
PROFILES = {
    "quick": dict(lengths=[128, 512, 2048], batch=1, heads=1, head_dim=64, block_elements=2**22,
                  lesson=dict(lengths=[1024], causal=[False], min_run_time=0.2)),
    "full": dict(lengths=[128, 512, 2048, 8192, 32768, 65536], batch=1, heads=4, head_dim=64,
                 block_elements=2**27, lesson=dict(lengths=[1024, 4096, 16384, 65536], causal=[False, True],
                                                   min_run_time=1.0)),
}
SEED = 0


def resolve_device(device=None) -> torch.device:
    """None → cuda if available else cpu; a CUDA device that does not exist is refused by name."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {device!r}") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA device here (torch {torch.__version__})")
    return dev


def inputs(n: int, *, batch: int, heads: int, head_dim: int, device, seed: int = SEED):
    """float64 q, k, v with iid N(0, 1) entries (s = q·k/√D has unit variance), same on every device."""
    return gaussian_qkv(batch, heads, n, head_dim, seed=seed + n, device=device, draw_dtype=torch.float64)


def compute(profile: str = "quick", device=None, *, lengths=None, variants=None, lesson=True) -> pd.DataFrame:
    """Tidy table: ``part='numerics'`` rows (one per variant × dtype × causal × N) and ``part='lesson'``
    rows (the lesson's exercise on the device); device name and versions on every row.

    ``lengths``/``variants`` replace the profile's grid; ``lesson``: False to skip the exercise, or a dict
    replacing its profile entries (lengths, causal, min_run_time)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    cfg = PROFILES[profile]
    dev = resolve_device(device)
    env = describe(dev)
    env.setdefault("cuda", torch.version.cuda)
    names = list(VARIANTS) if variants is None else list(variants)
    shape = dict(batch=cfg["batch"], heads=cfg["heads"], head_dim=cfg["head_dim"])
    grid = [(n, causal, name) for n in (lengths or cfg["lengths"]) for causal in (False, True) for name in names]
    rows = []
    for n, causal, name in tqdm(grid, desc=f"{NAME} ({dev})"):
        q, k, v = inputs(n, **shape, device=dev)
        start = time.perf_counter()
        found = validate(q, k, v, name, causal=causal, dtypes=tuple(DTYPES), block_elements=cfg["block_elements"])
        seconds = time.perf_counter() - start
        rows += [dict(part="numerics", **r, **shape, seconds=seconds) for r in found]
    df = pd.DataFrame(rows)
    if lesson is not False:
        overrides = {**cfg["lesson"], **(lesson if isinstance(lesson, dict) else {})}
        les = lesson_exercise.compute(profile, device=str(dev), **overrides).assign(part="lesson")
        df = pd.concat([df, les], ignore_index=True)
    for key, value in env.items():
        df[key] = value
    return df


def _counts(num: pd.DataFrame) -> dict:
    return {c: int(num[c].sum()) for c in ("bridge_rows", "bridge_exceed_outputs", "bridge_violations_outputs",
                                           "bridge_exceed_weights", "bridge_violations_weights", "nonfinite")}


def draw(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ..style import is_variant, legend_beside, palette

    num = df[df["part"] == "numerics"].copy()
    les = df[df["part"] == "lesson"].copy()
    num["causal"] = num["causal"].astype(bool).map({False: "non-causal", True: "causal"})
    lengths = sorted(num["n"].unique())
    fig, axes = plt.subplots(2, 4, figsize=(18, 8.4), constrained_layout=True)

    def log_n(ax, ylabel):
        ax.set(xscale="log", yscale="log", xlabel="sequence length N", ylabel=ylabel)
        ax.set_xticks(lengths, labels=[f"{n:g}" for n in lengths])
        ax.minorticks_off()

    opts = dict(hue="variant", style="causal", style_order=["non-causal", "causal"], marker="o",
                palette=palette(num["variant"].unique()), markersize=4)
    for i, (ax, dtype) in enumerate(zip(axes[0], DTYPES)):
        sub = num[num["dtype"] == dtype]
        sns.lineplot(data=sub, x="n", y="err_fp_mean", ax=ax, legend=i == 3, **opts)
        ax.axhline(UNIT_ROUNDOFF[dtype], color="0.3", ls=":", lw=1)
        ax.text(lengths[-1], UNIT_ROUNDOFF[dtype], f"unit roundoff $u = 2^{{{int(round(math.log2(UNIT_ROUNDOFF[dtype])))}}}$ ",
                va="bottom", ha="right", fontsize=8, color="0.3")
        what = "efficient vs explicit, both float64" if dtype == "float64" else f"efficient in {dtype} vs float64"
        ax.set_title(f"{dtype}: floating-point error\n({what})", fontsize=10)
        log_n(ax, "mean row ‖o − o_variant,64‖ / rms‖v‖")
    axes[0, 3].legend(loc="center left", bbox_to_anchor=(1.0, 0.5))

    ax = axes[1, 0]
    approx = num[(num["dtype"] == "float64") & (num["variant"] != "softmax")]
    sns.lineplot(data=approx, x="n", y="err_approx_mean", ax=ax, legend=False, **opts)
    ax.set_title("approximation error (float64 variant vs softmax)", fontsize=10)
    log_n(ax, "mean row ‖o_variant − o_softmax‖ / rms‖v‖")

    ax = axes[1, 1]
    low = num[num["dtype"] != "float64"]
    sns.scatterplot(data=low, x="err_fp_input_mean", y="err_fp_arith_mean", hue="dtype", style="causal",
                    ax=ax, s=18, hue_order=[d for d in DTYPES if d != "float64"])
    lim = [min(low["err_fp_input_mean"].min(), low["err_fp_arith_mean"].min()) / 2,
           max(low["err_fp_input_mean"].max(), low["err_fp_arith_mean"].max()) * 2]
    ax.plot(lim, lim, color="0.3", ls="--", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="input rounding: ‖o_64(rounded q,k,v) − o_64‖ / rms‖v‖",
           ylabel="arithmetic + output rounding:\n‖o_t − o_64(rounded q,k,v)‖ / rms‖v‖")
    ax.set_title("floating-point error split (one point per variant × causal × N)\n"
                 "above the diagonal: the arithmetic dominates", fontsize=9)
    legend_beside(ax, fontsize=7)

    ax = axes[1, 2]
    bridge = num[num["bridge_rows"] > 0]
    worst = bridge.groupby(["variant", "causal", "n"], as_index=False)["bridge_ratio_max"].max()
    sns.lineplot(data=worst, x="n", y="bridge_ratio_max", ax=ax, legend=False, **opts)
    ax.axhline(1.0, color="k", lw=1)
    ax.set_xscale("log")
    ax.set_xticks(lengths, labels=[f"{n:g}" for n in lengths])
    ax.minorticks_off()
    ax.set(xlabel="sequence length N", ylabel="max over rows of (TV − fp floor) / tanh(δ/2)", ylim=(0, 1.1))
    c = _counts(bridge)
    ax.set_title(f"bridge check, {c['bridge_rows']:,} rows × dtypes\n"
                 f"weights TV ≤ tanh(δ/2): {c['bridge_exceed_weights']} above, "
                 f"{c['bridge_violations_weights']} beyond fp floor\n"
                 f"outputs ‖Δo‖ ≤ tanh(δ/2)·diam v: {c['bridge_exceed_outputs']} above, "
                 f"{c['bridge_violations_outputs']} beyond fp floor", fontsize=9)

    ax = axes[1, 3]
    if len(les):
        les = les.copy()
        base = les[les["variant"] == "softmax"].set_index(["n", "causal"])["time_ms"]
        les["relative_time"] = [t / base[(n, c)] for t, n, c in zip(les["time_ms"], les["n"], les["causal"])]
        kernels = les[les["variant"] != "softmax"]
        kernels = kernels.assign(causal=kernels["causal"].astype(bool).map({False: "non-causal", True: "causal"}))
        sns.scatterplot(data=kernels, x="relative_time", y="mean_row_tv", hue="variant", size="n", sizes=(30, 120),
                        style="causal", style_order=["non-causal", "causal"],
                        palette=palette(kernels["variant"].unique()), ax=ax,
                        legend="brief")
        biggest = kernels[kernels["n"] == kernels["n"].max()]
        for r in biggest.itertuples():
            ax.annotate(r.variant, (r.relative_time, r.mean_row_tv), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.axvline(1.0, color="k", lw=1)
        ax.set(xscale="log", xlabel="forward time / SDPA time (median)", ylabel="mean row TV vs softmax")
        lo, hi = math.floor(math.log2(kernels["relative_time"].min())), math.ceil(math.log2(kernels["relative_time"].max()))
        ticks = [2.0**e for e in range(min(lo, 0), max(hi, 0) + 1)]
        ax.set_xticks(ticks, labels=[f"{x:g}" for x in ticks])
        ax.minorticks_off()
        ns = ", ".join(str(n) for n in sorted(les["n"].unique()))
        ax.set_title(f"lesson exercise (1, 8, N, 64) float32, N = {ns}\n"
                     f"speed and divergence vs SDPA (left of the line: faster)", fontsize=9)
        handles, labels = ax.get_legend_handles_labels()
        keep = [i for i, lab in enumerate(labels) if not is_variant(lab) and lab != "variant"]
        legend_beside(ax, handles=[handles[i] for i in keep], labels=[labels[i] for i in keep], fontsize=7)
    else:
        ax.set_axis_off()

    first = df.iloc[0]
    cuda = f", CUDA {first['cuda']}" if "cuda" in df and isinstance(first.get("cuda"), str) else ""
    total = _counts(num)
    fig.suptitle(f"Numerical error of every efficient form vs a float64 explicit reference — {first['device']} "
                 f"({first['device_type']}), torch {first['torch']}{cuda}; (B, H, D) = "
                 f"({int(first['batch'])}, {int(first['heads'])}, {int(first['head_dim'])}), iid N(0,1) inputs; "
                 f"non-finite values: {total['nonfinite']}\n"
                 "errors are per query row, relative to rms‖v‖ (not ‖o‖), so they shrink with N as the outputs "
                 "average more keys", fontsize=11)
    return fig


def problems(df: pd.DataFrame) -> list:
    """Non-finite values and bridge violations beyond the floating-point floor in the numerics rows."""
    return numerical_problems(df[df["part"] == "numerics"])


def summary(df: pd.DataFrame) -> str:
    num = df[df["part"] == "numerics"]
    c = _counts(num[num["bridge_rows"] > 0])
    lines = [f"device: {df['device'].iloc[0]} | torch {df['torch'].iloc[0]}",
             f"grid points: {len(num)} (variants {num['variant'].nunique()} × dtypes {num['dtype'].nunique()} × "
             f"causal {num['causal'].nunique()} × N {num['n'].nunique()}); non-finite: {int(num['nonfinite'].sum())}",
             f"bridge: {c['bridge_rows']} row checks; outputs {c['bridge_exceed_outputs']} above bound, "
             f"{c['bridge_violations_outputs']} beyond fp floor; weights {c['bridge_exceed_weights']} / "
             f"{c['bridge_violations_weights']}"]
    worst = num.groupby("dtype")["err_fp_max"].max()
    lines.append("max fp output error / rms‖v‖: " + ", ".join(f"{d} {worst[d]:.2e}" for d in DTYPES if d in worst))
    return "\n".join(lines)
