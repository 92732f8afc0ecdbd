"""The report card of one kernel: every analysis of the toolkit on it, as one tidy DataFrame and one figure.

    card = approxlab.report(MyKernel())          # or a registered name, or a KernelVariant subclass + params
    card.summary                                  # the headline numbers, one row each
    card.data                                     # everything, tidy (column ``part`` says which analysis)
    card.figure                                   # six panels; card.save("figures") writes PNG, PDF and CSV
    approxlab report NAME [--import MODULE_OR_FILE] [--profile small|quick|full] [--out DIR]

Parts, each from the library's own pieces:
  agreement   efficient form (``attention``) vs explicit form (``explicit_attention``), float64, causal
              and not: max |difference| / max |output|
  symbolic    κ(s), derived rational degree, sign and monotonicity (:mod:`approxlab.analysis.symbolic`), when the
              kernel has a sympy form of s
  delta       log-uniform error δ vs the similarity range R (:func:`approxlab.core.approx.log_uniform_error`
              when κ is a function of s, else the row δ measured on inputs whose similarities fill
              [−R, R]) next to the best polynomial and the best rational of the same degree
              (:func:`approxlab.core.approx.best_exp`: δ* = atanh ε*)
  bridge      measured row TV against softmax vs the bound tanh(δ/2) on Gaussian inputs at several
              temperatures (:func:`approxlab.analysis.theory.bridge_rows`), with the zero-aware bound
              B_Z + (1 − B_Z) tanh(δ_P/2) for kernels with exact zeros
  real        the same on the all-MiniLM-L6 heads (:mod:`approxlab.analysis.real_heads`), when the ``real``
              extra is installed
  speed       forward time vs N against SDPA (:mod:`approxlab.experiments.bench`, timed by :mod:`approxlab.experiments.timing`)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sympy as sp
import torch

from ..core import approx
from ..core.checks import check_int
from . import bench
from ..api import attention, explicit_attention
from ..analysis.inputs import gaussian_qkv, range_filling_qkv
from ..variants import similarity_of
from ..analysis.theory import bridge_rows
from ..variants import build_kernel, check_params, check_variant, is_softmax, kernel_name

PROFILES = {
    # seconds on a laptop core: what the tests and the tutorial notebook run
    "small": dict(radii=[1.0, 2.0, 4.0], temperatures=[0.5, 1.0, 1.5], n=48, heads=2, head_dim=16,
                  range_n=48, lengths=[64, 256], speed_dim=16, max_tokens=2**10, min_run_time=0.005, real_len=64,
                  real_layers=2),
    "quick": dict(radii=[0.5, 1.0, 2.0, 4.0, 8.0], temperatures=[0.5, 0.8, 1.0, 1.25, 1.5], n=128, heads=4,
                  head_dim=16, range_n=128, lengths=[256, 1024, 4096], speed_dim=64, max_tokens=2**14, min_run_time=0.1,
                  real_len=128, real_layers=6),
    "full": dict(radii=[0.5, 1.0, 2.0, 4.0, 8.0, 16.0], temperatures=[0.5, 0.8, 1.0, 1.25, 1.5, 2.0], n=256,
                 heads=8, head_dim=16, range_n=256, lengths=[256, 1024, 4096, 16384], speed_dim=64, max_tokens=2**16,
                 min_run_time=0.2, real_len=512, real_layers=6),
}
AGREEMENT_TOLERANCE = 1e-10
PARTS = ("agreement", "symbolic", "delta", "bridge", "real", "speed")
#: columns of ``ReportCard.data`` (each part fills its own; NaN elsewhere)
COLUMNS = ["part", "series", "value", "passed", "text", "R", "delta", "delta_positive", "zero_share", "temperature",
           "layer", "head", "bound", "tv", "zero_mass", "bound_positive", "has_mass", "method", "n", "heads",
           "head_dim", "time_ms", "iqr_ms", "status", "device"]


@dataclass
class ReportCard:
    """``data``: tidy rows of every part; ``summary``: the headline numbers; ``figure``: six panels."""

    name: str
    data: pd.DataFrame
    summary: pd.DataFrame
    figure: object

    def save(self, outdir: str | Path = "figures", stem: str | None = None) -> list[Path]:
        """Write ``report_NAME.png``, ``.pdf`` and the data ``.csv`` (``save_figure``), and the
        summary as ``report_NAME_summary.csv``."""
        from .style import save_figure

        stem = stem or f"report_{self.name}"
        paths = save_figure(self.figure, self.data, stem, outdir)
        summary = Path(outdir) / f"{stem}_summary.csv"
        self.summary.to_csv(summary, index=False)
        return paths + [summary]

    def _repr_html_(self) -> str:
        return f"<b>report card: {self.name}</b>" + self.summary.to_html(index=False)


def _row(part, series, **values):
    return dict(part=part, series=series, **values)


# ----------------------------------------------------------------------------------------------
# the parts
# ----------------------------------------------------------------------------------------------
def agreement(variant, params, cfg, seed=0) -> list[dict]:
    """max |efficient − explicit| / max |explicit| in float64 on an awkward shape (N = 67)."""
    q, k, v = gaussian_qkv(1, cfg["heads"], 67, cfg["head_dim"], seed=seed, draw_dtype=torch.float64)
    rows = []
    for causal in (False, True):
        fast = attention(q, k, v, variant, causal=causal, **params)
        ref = explicit_attention(q, k, v, variant, causal=causal, **params)
        err = float((fast - ref).abs().max() / ref.abs().max().clamp_min(1e-300))
        rows.append(_row("agreement", "causal" if causal else "non-causal", value=err,
                         passed=bool(err <= AGREEMENT_TOLERANCE), text=f"tolerance {AGREEMENT_TOLERANCE:g}"))
    return rows


def symbolic_part(variant, params) -> tuple[list[dict], int | None]:
    """κ(s), degree, sign, monotonicity from sympy; (rows, numerator degree or None)."""
    from ..analysis import symbolic

    try:
        expr = symbolic.kernel_expression(variant, **params)
    except ValueError as err:
        return [_row("symbolic", "kappa", text=f"no sympy form of s: {err}", note=str(err))], None
    except (AttributeError, NotImplementedError, TypeError) as err:  # a gap of approxlab.analysis.symbolic: say so
        return [_row("symbolic", "kappa", text=f"symbolic form unavailable: {type(err).__name__}: {err}")], None
    try:
        degree = symbolic.rational_degree(variant, **params)
    except (AttributeError, NotImplementedError, TypeError, ValueError, sp.PolynomialError) as err:
        return [_row("symbolic", "kappa", text=str(expr.kappa)),
                _row("symbolic", "degree", text=f"not derived: {type(err).__name__}: {err}")], None
    rows = [_row("symbolic", "kappa", text=str(expr.kappa)),
            _row("symbolic", "degree", value=float(degree[0]) if degree else math.nan,
                 text=str(degree) if degree else "none (not rational in s)"),
            _row("symbolic", "sign", text=symbolic.positivity(expr)),
            _row("symbolic", "monotonicity", text=symbolic.monotonicity(expr))]
    return rows, (degree[0] if degree else None)


def _range_rows(variant, params, R, cfg, seed=0):
    """Row δ on inputs whose similarities fill [−R, R] (q, k of norm √(R√D) in D = 4, as in the bridge figure)."""
    q, k, v = range_filling_qkv(R, cfg["range_n"], seed)
    return bridge_rows(q, k, v, variant, **params)


def delta_part(variant, params, cfg, degree) -> list[dict]:
    """δ(R) of the kernel and of the best polynomial / rational of the same degree."""
    kernel = build_kernel(variant, 4, **params)
    f = similarity_of(kernel)
    rows = []
    for R in cfg["radii"]:
        if f is not None:
            err = approx.log_uniform_error(f, R)
            rows.append(_row("delta", "kernel", R=R, delta=err.delta if err.positive else math.inf,
                             text="exact: log_uniform_error of κ(s)"))
        else:
            r = _range_rows(variant, params, R, cfg)
            finite = torch.isfinite(r["delta"])
            worst = float(r["delta"].max()) if bool(finite.all()) else math.inf
            rows.append(_row("delta", "kernel", R=R, delta=worst, delta_positive=float(np.nanmax(r["delta_positive"])),
                             zero_share=float((~finite).double().mean()),
                             text="max row δ on inputs filling [−R, R]"))
        if degree:
            rows.append(_row("delta", f"best polynomial, degree {degree}", R=R,
                             delta=approx.best_exp(degree, R).delta,
                             text="approx.best_exp: atanh of the minimax relative error"))
            rat = approx.best_exp(degree, R, rational=True)
            rows.append(_row("delta", f"best rational, type ({degree}, {degree})", R=R,
                             delta=rat.delta,
                             text="approx.best_exp(rational=True)"))
    return rows


def _bridge_frame(r: dict, **columns) -> pd.DataFrame:
    keys = ("delta", "bound", "tv", "delta_positive", "zero_mass", "bound_positive", "has_mass")
    df = pd.DataFrame({key: r[key].flatten().double().numpy() for key in keys})
    df["has_mass"] = df["has_mass"].astype(bool)
    for key, value in columns.items():
        df[key] = value
    return df


def bridge_part(variant, params, cfg, seed=0) -> pd.DataFrame:
    frames = []
    for temperature in cfg["temperatures"]:
        q, k, v = gaussian_qkv(1, cfg["heads"], cfg["n"], cfg["head_dim"], seed=seed, draw_dtype=torch.float64)
        r = bridge_rows(q * temperature, k * temperature, v, variant, **params)
        frames.append(_bridge_frame(r, part="bridge", series="gaussian", temperature=temperature))
    return pd.concat(frames, ignore_index=True)


def real_available() -> bool:
    from ..analysis import real_heads

    try:
        real_heads.model_dir()
    except ImportError:
        return False
    return True


def real_part(variant, params, cfg) -> pd.DataFrame:
    """Per-row TV and bounds on the all-MiniLM-L6 heads (layers × heads, first ``real_len`` tokens)."""
    from ..analysis import real_heads

    heads = real_heads.extract_heads(real_heads.stdlib_text(), seq_len=cfg["real_len"])
    frames = []
    for layer in range(min(cfg["real_layers"], heads.q.shape[0])):
        q, k, v = heads.q[layer], heads.k[layer], heads.v[layer]  # (chunks, heads, N, 32)
        r = bridge_rows(q, k, v, variant, **params)
        frame = _bridge_frame(r, part="real", series="all-MiniLM-L6", layer=layer)
        frame["head"] = np.repeat(np.arange(q.shape[1]), q.shape[2])[None].repeat(q.shape[0], 0).ravel()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def speed_part(variant, params, cfg, device="cpu") -> pd.DataFrame:
    """Forward time vs N of the kernel and of SDPA: ``bench.run`` on (1, B·H, N, D) float32, non-causal
    (D = 64; 16 in the small profile)."""
    kernel = build_kernel(variant, cfg["speed_dim"], **params)
    cases = bench.scaling_cases([kernel, "sdpa"], cfg["lengths"], causal=(False,), head_dim=cfg["speed_dim"],
                                max_batch_heads=4, max_tokens=cfg["max_tokens"])
    df = bench.run(cases, device, min_run_time=cfg["min_run_time"], progress=False)
    df = df[["method", "n", "heads", "head_dim", "time_ms", "iqr_ms", "status"]].copy()
    df["series"] = np.where(df["method"] == "sdpa", "sdpa", "kernel")
    df["part"], df["device"] = "speed", str(device)
    return df


# ----------------------------------------------------------------------------------------------
# the card
# ----------------------------------------------------------------------------------------------
def summarise(data: pd.DataFrame, name: str) -> pd.DataFrame:
    """Headline numbers, one row each: quantity, value, note."""
    rows = []
    agree = data[data["part"] == "agreement"]
    for _, r in agree.iterrows():
        rows.append((f"explicit vs efficient ({r['series']}, float64)", r["value"],
                     "passes" if r["passed"] else f"FAILS {AGREEMENT_TOLERANCE:g}"))
    for _, r in data[data["part"] == "symbolic"].iterrows():
        rows.append((f"symbolic {r['series']}", r["value"] if r["series"] == "degree" else math.nan, r["text"]))
    for part, label in (("bridge", "Gaussian inputs"), ("real", "all-MiniLM-L6 heads")):
        b = data[data["part"] == part]
        if not len(b):
            continue
        positive = np.isfinite(b["delta"])
        with_mass = b["has_mass"].astype(bool)
        excess = (b["tv"] - b["bound_positive"])[with_mass]
        rows += [(f"mean row TV from softmax, {label}", b["tv"].mean(), f"{len(b)} rows"),
                 (f"rows with κ > 0 on every key, {label}", positive.mean(), "share; δ finite there"),
                 (f"rows with some kernel mass, {label}", with_mass.mean(), "share; zero-aware bound holds there"),
                 (f"mean bound B_Z + (1−B_Z)tanh(δ_P/2), {label}", b.loc[with_mass, "bound_positive"].mean(),
                  f"max TV − bound = {excess.max():.2e}" if len(excess) else "")]
    speed = data[(data["part"] == "speed") & (data["status"] == "ok")]
    if len(speed):
        top = speed["n"].max()
        at = speed[speed["n"] == top].set_index("series")["time_ms"]
        if {"kernel", "sdpa"} <= set(at.index):
            rows.append((f"time / SDPA time at N = {int(top)}", at["kernel"] / at["sdpa"], "> 1: SDPA faster"))
    return pd.DataFrame(rows, columns=["quantity", "value", "note"]).assign(kernel=name)


def report(variant, *, profile: str = "quick", real: bool | None = None, compare_degree: int | None = None,
           parts=PARTS, device="cpu", progress: bool = True, **params) -> ReportCard:
    """The report card of ``variant`` (a name, a kernel object or a KernelVariant subclass, with its
    ``params``); see the module docstring. ``real``: None runs the real-head part when the ``real``
    extra is installed; ``compare_degree``: the degree to compare δ with when sympy cannot derive one
    (not named ``degree``, which is a kernel parameter of polynomial and minimax);
    ``parts``: a subset of :data:`PARTS`."""
    from tqdm.auto import tqdm

    variant = check_variant(variant)
    if is_softmax(variant):
        raise ValueError("softmax is the reference every part compares with; give a kernel")
    check_params(variant, params)
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    if isinstance(parts, str):
        parts = [parts]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"parts must be among {list(PARTS)}, got {unknown}")
    if not parts:
        raise ValueError(f"parts must name at least one of {list(PARTS)}, got an empty list")
    if compare_degree is not None:
        from ..variants.minimax import MAX_DEGREE

        check_int(compare_degree, "compare_degree", minimum=1, maximum=MAX_DEGREE)
    if "speed" in parts:
        bench.check_device(device)
    if real is None:
        real = real_available()
    cfg = PROFILES[profile]
    name = kernel_name(variant)
    steps = [p for p in PARTS if p in parts and (p != "real" or real)]
    frames, derived = [], None
    for part in tqdm(steps, desc=f"report {name}", disable=not progress):
        if part == "agreement":
            frames.append(pd.DataFrame(agreement(variant, params, cfg)))
        elif part == "symbolic":
            rows, derived = symbolic_part(variant, params)
            frames.append(pd.DataFrame(rows))
        elif part == "delta":
            frames.append(pd.DataFrame(delta_part(variant, params, cfg, derived or compare_degree)))
        elif part == "bridge":
            frames.append(bridge_part(variant, params, cfg))
        elif part == "real":
            frames.append(real_part(variant, params, cfg))
        else:
            frames.append(speed_part(variant, params, cfg, device))
    data = pd.concat(frames, ignore_index=True)
    data = data.reindex(columns=COLUMNS + [c for c in data.columns if c not in COLUMNS])
    data.insert(0, "kernel", name)
    return ReportCard(name, data, summarise(data, name), draw(data, variant=variant))


# ----------------------------------------------------------------------------------------------
# the figure
# ----------------------------------------------------------------------------------------------
def _plain_log_ticks(ax, values) -> None:
    """Log x axis with ticks at ``values``, labelled as plain numbers."""
    from matplotlib.ticker import NullLocator

    ax.set_xscale("log")
    if len(values):
        ax.set_xticks(values, labels=[f"{v:g}" for v in values])
        ax.xaxis.set_minor_locator(NullLocator())


def draw(data: pd.DataFrame, axes=None, *, variant=None):
    """Six panels (summary text, δ vs R, bridge on Gaussian inputs, real heads, speed vs N). ``axes``:
    six matplotlib Axes to draw into; by default a new Figure (not registered with pyplot, so a
    notebook shows it once, when it is displayed). ``variant``: the kernel (name, object or class) whose
    colour the kernel's marks take (default: the name in ``data``). Returns the Figure."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    from .style import color, use_style

    use_style()
    if axes is None:
        fig = Figure(figsize=(15, 8.2), layout="constrained")
        axes = fig.subplots(2, 3).ravel()
    else:
        axes = np.asarray(axes, dtype=object).ravel()
        if len(axes) != 6:
            raise ValueError(f"axes must hold 6 Axes, got {len(axes)}")
        fig = axes[0].figure
    name = str(data["kernel"].iloc[0]) if "kernel" in data and len(data) else "kernel"
    kc = color(name if variant is None else variant)
    ax_text, ax_delta, ax_bridge, ax_zero, ax_real, ax_speed = axes

    # 1. text: agreement and the symbolic facts
    ax_text.axis("off")
    lines = [f"report card: {name}"]
    for _, r in data[data["part"] == "agreement"].iterrows():
        lines.append(f"explicit vs efficient, {r['series']}: {r['value']:.1e} ({'ok' if r['passed'] else 'FAIL'})")
    for _, r in data[data["part"] == "symbolic"].iterrows():
        text = str(r["text"])
        lines.append(f"{r['series']}: {text[:60] + '…' if len(text) > 60 else text}")
    summary = summarise(data, name)
    for _, r in summary[~summary["quantity"].str.startswith(("explicit", "symbolic"))].iterrows():
        lines.append(f"{r['quantity']}: {r['value']:.3g}")
    ax_text.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=8.5,
                 transform=ax_text.transAxes)

    # 2. δ vs R
    delta = data[data["part"] == "delta"]
    for series, part in delta.groupby("series", sort=False):
        finite = part[np.isfinite(part["delta"])]
        style = (dict(color=kc, marker="o", lw=2) if series == "kernel" else
                 dict(marker="s" if series.startswith("best polynomial") else "D", lw=1.2, ls="--",
                      color="0.5" if series.startswith("best polynomial") else "black"))
        if series == "kernel" and not len(finite) and "delta_positive" in part:
            ax_delta.plot(part["R"], part["delta_positive"], label=f"{name}: δ on keys with κ > 0", **style)
        else:
            ax_delta.plot(finite["R"], finite["delta"], label=name if series == "kernel" else series, **style)
    _plain_log_ticks(ax_delta, sorted(delta["R"].dropna().unique()))
    ax_delta.set(yscale="log", xlabel="similarity range R (s ∈ [−R, R])",
                 ylabel="log-uniform error δ", title="δ vs range, against the best of the same degree")
    if len(delta):
        ax_delta.legend(fontsize=7.5)
    else:
        ax_delta.text(0.5, 0.5, "not computed", ha="center", transform=ax_delta.transAxes)

    # 3. bridge on Gaussian inputs, 4. zero-aware bound, 5. real heads
    shown = data.loc[data["part"].isin(["bridge", "real"]), ["tv", "bound", "bound_positive"]].to_numpy(dtype=float)
    shown = shown[np.isfinite(shown) & (shown > 0)]
    floor = max(1e-9, 10 ** np.floor(np.log10(shown.min()))) if shown.size else 1e-9
    line = np.logspace(np.log10(floor), 0, 20)
    for ax, part, title in ((ax_bridge, "bridge", "Gaussian q, k (temperatures)"),
                            (ax_real, "real", "all-MiniLM-L6 heads")):
        b = data[data["part"] == part]
        if not len(b):
            ax.axis("off")
            ax.text(0.5, 0.5, f"{title}:\nnot computed" + (" (needs the 'real' extra)" if part == "real" else ""),
                    ha="center", va="center", transform=ax.transAxes)
            continue
        mass = b["has_mass"].astype(bool)
        exact = np.isfinite(b["delta"])
        ax.scatter(b.loc[exact, "bound"].clip(lower=floor), b.loc[exact, "tv"].clip(lower=floor), s=4, alpha=0.4,
                   color=kc, label="rows with κ > 0: tanh(δ/2)", linewidths=0, rasterized=True)
        zeros = mass & ~exact
        if zeros.any():
            ax.scatter(b.loc[zeros, "bound_positive"].clip(lower=floor), b.loc[zeros, "tv"].clip(lower=floor), s=4,
                       alpha=0.4, color="0.45", label="rows with zeros: B_Z + (1−B_Z)tanh(δ_P/2)", linewidths=0,
                       rasterized=True)
        ax.plot(line, line, color="black", lw=1, label="TV = bound")
        ax.set(xscale="log", yscale="log", xlim=(floor, 1.5), ylim=(floor, 1.5), xlabel="bound of the row",
               ylabel="measured row TV from softmax",
               title=f"{title}: {len(b):,} rows, {int((~mass).sum())} without mass")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_minor_formatter(NullFormatter())
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7, loc="upper left", markerscale=3)

    b = data[data["part"] == "bridge"]
    if len(b):
        by_t = b.groupby("temperature").agg(tv=("tv", "mean"), bound=("bound_positive", "mean"),
                                            zero=("zero_mass", "mean"), exact=("delta", lambda d: np.isfinite(d).mean()))
        ax_zero.plot(by_t.index, by_t["tv"], marker="o", color=kc, label="mean row TV")
        ax_zero.plot(by_t.index, by_t["bound"], marker="s", ls="--", color="black", label="mean zero-aware bound")
        ax_zero.plot(by_t.index, by_t["zero"], marker="^", ls=":", color="0.45", label="mean B_Z (softmax mass on κ = 0)")
        ax_zero.plot(by_t.index, by_t["exact"], marker="v", ls="-.", color="0.7", label="share of rows with δ < ∞")
        ax_zero.set(xlabel="temperature τ (q, k × τ)", ylabel="mean over rows", ylim=(-0.02, 1.02),
                    title="Gaussian inputs: error, bound and zeros vs temperature")
        ax_zero.legend(fontsize=7)

    # 6. speed
    sp = data[(data["part"] == "speed")]
    ok = sp[sp["status"] == "ok"] if len(sp) else sp
    for series, part in ok.groupby("series"):
        c = kc if series == "kernel" else color("sdpa")
        ax_speed.errorbar(part["n"], part["time_ms"], yerr=part["iqr_ms"] / 2, marker="o", color=c,
                          label=name if series == "kernel" else "SDPA", capsize=2)
    _plain_log_ticks(ax_speed, sorted(ok["n"].unique()) if len(ok) else [])
    ax_speed.set(yscale="log", xlabel="sequence length N", ylabel="forward time (ms, median)",
                 title=(f"speed vs N, float32, D = {int(ok['head_dim'].iloc[0])}, {ok['device'].iloc[0]}"
                        if len(ok) else "speed: not computed"))
    if len(ok):
        ax_speed.legend(fontsize=8)
    fig.suptitle(f"{name}: report card", fontsize=12)
    return fig
