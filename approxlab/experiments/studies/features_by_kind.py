"""Features needed by each random-feature kind: m*(row TV ≤ ε) against ‖x+y‖² and H/log N.

Kinds (each unbiased for exp(x·y); F = the state's feature count, the cost that matters):
  FAVOR+ (positive, orthogonal)      performer, F directions (the toolkit's baseline)
  FAVOR+ trig (orthogonal)           performer kind="trig", F/2 directions
  hyperbolic (orthogonal)            exp(±w·x), F/2 directions
  FAVOR+ simplex                     favorpp with A = 0 and SimRF directions
  FAVOR++ (orthogonal / simplex)     favorpp, A = A* from the head's mean ‖x+y‖²
  FAVOR# (orthogonal / simplex)      favorsharp, Ψ and A* from the head's q, k
  random Maclaurin                   maclaurin (Kar & Karnick), signed, no overlay
  shrinkage (FAVOR+)                 shrinkage: FAVOR+ in two groups of F/2, each row moved toward uniform
                                     attention by its own variance (biased: m* may not exist), no overlay
Data-dependent parameters come from ``variants.calibrate`` on the head's own queries and keys
(non-causal use, as in the papers: the statistics are O(N) and computed per attention call).

m*(ε) is the least F on :func:`approxlab.analysis.entropy.feature_grid` with mean row TV ≤ ε, found by
:func:`approxlab.analysis.entropy.search_min_features` (one memoised evaluation per F). Families: the Gaussian
temperature family of :mod:`approxlab.analysis.entropy` and every layer × head of all-MiniLM-L6 (72 heads).

Nested features (:mod:`approxlab.analysis.nested`): the estimate at F uses the first features of one draw
per (kind, seed), shared by all F and heads, and continues the kernel sums of the largest F already
evaluated, so a head's search and its decay fit cost about one pass at m_max instead of one per F. Directions
come from :func:`approxlab.variants._projections.nested_directions` (each orthogonal or simplex block drawn
with its own norms, block after block), random Maclaurin's features are the first F of one draw of m_max
features. Earlier versions drew a fresh projection per F (``gaussian_projection(F, D, seed)``, whose
prefixes are not draws of fewer features) and a fresh Maclaurin draw per F: the same distributions, other
draws, so the CSV's m* columns change as another draw changes them, not by round-off. Shrinkage nests each of
its groups (FAVOR+, seeds seed + k, as the variant seeds them) and mixes their weights per row with the
variant's own rule (:meth:`approxlab.variants.shrinkage.Shrinkage.mix`); it too drew a fresh variant per F before.

Theory (first order, pairs independent, iid directions), per kind: with V_ij the relative variance of
one feature of the estimate of κ(x_i, y_j), E TV_i ≈ Σ_j a_ij √V_ij / √(2π F), so
m*_theory(ε) = (mean_i Σ_j a_ij √V_ij / √(2π) / ε)²; V = e^{u} − 1 (FAVOR+, Lemma 2),
M(A*, u) − 1 (FAVOR++/#, :func:`gerf_relative_second_moment`, on the rescaled pairs for FAVOR#),
2(cosh u − 1) (hyperbolic, F/2 directions), u = ‖x_i + y_j‖².

Cells (:mod:`approxlab.experiments.sweep`): one per family × kind × seed, cached and resumable; the
softmax weights and input summary of a family are computed once per process and shared by every kind
and seed, and random Maclaurin's draws once per F for all heads.

Records (column ``record``): ``mstar`` per (family, head/level, n, kind, seed, ε); ``table`` per
(kind, ε) on the real heads: median m* (censored values count as +∞), censored count, and
``ratio_vs_favor`` = FAVOR+'s median / this kind's (a lower bound when FAVOR+'s median is censored).
"""

from __future__ import annotations

import functools
import math
from typing import Dict, Optional

import numpy as np
import pandas as pd
import torch
from ...analysis import entropy as ent
from ...api import attention_weights
from ..environment import describe
from ...analysis.metrics import row_tv
from ...analysis.nested import NestedDraw, NestedEstimate, directions_blocks
from ...variants import build_kernel, calibrate
from ...variants.favorpp import gerf_relative_second_moment
from .. import sweep
from ..sweep import Cell

NAME = "features_by_kind"

PROFILES = {
    "quick": dict(gaussian=[1.0, 2.0, 4.0, 8.0], gaussian_n=512, n_queries=16, real_n=128, real_queries=32,
                  seeds=[0], m_max=16384),
    "full": dict(gaussian=[0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0], gaussian_n=1024, n_queries=64, real_n=512,
                 real_queries=64, seeds=[0, 1, 2], m_max=16384),
}
EPSILONS = (0.1, 0.2)
HEAD_DIM = 32
BASELINE = "FAVOR+"
#: label → (variant, directions, parameters kind, directions per feature)
KINDS: Dict[str, tuple] = {
    "FAVOR+": ("performer", "orthogonal", "positive", 1),
    "FAVOR+ trig": ("performer", "orthogonal", "trig", 2),
    "hyperbolic": ("hyperbolic", "orthogonal", None, 2),
    "FAVOR+ simplex": ("favorpp", "simplex", "a0", 1),
    "FAVOR++": ("favorpp", "orthogonal", "calibrated", 1),
    "FAVOR++ simplex": ("favorpp", "simplex", "calibrated", 1),
    "FAVOR#": ("favorsharp", "orthogonal", "calibrated", 1),
    "FAVOR# simplex": ("favorsharp", "simplex", "calibrated", 1),
    "random Maclaurin": ("maclaurin", None, None, 1),
    "shrinkage (FAVOR+)": ("shrinkage", None, None, 1),
}


class KindSearch:
    """Memoised mean row TV of one kind against softmax, head by head, at any feature count F.

    Every kind is nested (:mod:`approxlab.analysis.nested`): F's features are the first ones of one draw
    shared by all F and heads, and each head's kernel sums continue from the largest F it has evaluated, so
    a search costs about one pass over its largest F. The kinds built on random directions take the first
    F / (features per direction) rows of a :class:`~approxlab.analysis.nested.NestedDraw`; random Maclaurin
    takes the first F features of one draw of ``max_features`` (its features are iid, so a prefix is a draw
    of fewer); shrinkage nests each of its groups (FAVOR+ on the first F / g directions of a nested draw with
    the group's seed, seed + k, as the variant seeds its groups) and mixes their weights per row
    (:meth:`approxlab.variants.shrinkage.Shrinkage.mix`).

    ``reference``: the softmax weights of q, k (float64, heads flattened), when already at hand: they do
    not depend on the kind or the seed, so one family computes them once for all its searches.
    ``max_features``: the largest F asked for (random Maclaurin draws that many features once)."""

    def __init__(self, label: str, q, k, seed: int = 0, reference=None, max_features: Optional[int] = None):
        self.label, self.seed = label, seed
        self.variant, self.directions, self.mode, self.per_direction = KINDS[label]
        self.q, self.k = q.reshape(1, -1, *q.shape[-2:]), k.reshape(1, -1, *k.shape[-2:])
        self.reference = (attention_weights(self.q, self.k, "softmax").double() if reference is None
                          else reference.reshape(1, -1, *reference.shape[-2:]))
        self.calibrated = [calibrate(self.q[:, h], self.k[:, h], self.variant) if self.mode == "calibrated" else {}
                           for h in range(self.q.shape[1])]
        self.cache: dict = {}
        d = self.q.shape[-1]
        if self.variant == "maclaurin":
            if max_features is None:
                raise ValueError("random Maclaurin's nested draw needs max_features (the largest F asked for)")
            self.draws = [build_kernel("maclaurin", d, num_features=max_features, seed=seed)]
        elif self.variant == "shrinkage":  # the variant's default: FAVOR+ groups toward uniform attention
            self.mixer = build_kernel("shrinkage", d, num_features=2, seed=seed)
            self.draws = [NestedDraw(d, "orthogonal", seed=seed + g) for g in range(self.mixer.groups)]
        else:
            self.draws = [NestedDraw(d, self.directions, seed=seed)]
        self.estimates: dict = {}  # head → [NestedEstimate per draw]

    def params(self, head: int) -> dict:
        return self.calibrated[head]

    def estimate(self, head: int) -> list:
        """The nested kernel sums of one head, one per draw (shrinkage: one per group), made on first use."""
        if head not in self.estimates:
            h, d, variant = slice(head, head + 1), self.q.shape[-1], self.variant
            if variant == "maclaurin":
                blocks = [self.draws[0].block]
            else:
                params = dict(self.params(head))
                if variant in ("performer", "shrinkage"):
                    variant, params = "performer", {"kind": self.mode or "positive"}
                if self.mode == "a0":
                    params["a"] = 0.0
                blocks = [directions_blocks(lambda w: build_kernel(variant, d, projection=w, **params), draw)
                          for draw in self.draws]
            self.estimates[head] = [NestedEstimate(b, self.q[:, h], self.k[:, h]) for b in blocks]
        return self.estimates[head]

    def release(self, head: int) -> None:
        """Drop one head's stored kernel sums (its memoised TVs stay)."""
        self.estimates.pop(head, None)

    def weights(self, features: int, head: int):
        """The kind's weights (1, 1, Nq, N) float64 at F = ``features`` for one head."""
        estimates = self.estimate(head)
        if self.variant == "shrinkage":
            groups = [est.weights(max(1, features // self.mixer.groups)) for est in estimates]
            uniform = torch.full_like(groups[0], 1.0 / groups[0].shape[-1])
            return self.mixer.mix(groups, uniform)
        return estimates[0].weights(max(1, features // self.per_direction))

    def tv(self, features: int, head: int) -> float:
        if (features, head) not in self.cache:
            approx = self.weights(features, head)
            self.cache[(features, head)] = float(row_tv(self.reference[:, head:head + 1], approx).mean())
        return self.cache[(features, head)]

    def decay(self, head: int, m_max: int, m_min: int = 64) -> tuple:
        """(TV at m_max, β) with β the least-squares slope of −log TV against log F over the evaluated F ≥ m_min
        (TV ∝ F^{-1/2} when the per-feature error has light tails; smaller β when rare draws dominate)."""
        tv_max = self.tv(m_max, head)
        pts = sorted((f, t) for (f, h), t in self.cache.items() if h == head and f >= m_min and t > 0)
        if len(pts) < 3:
            return tv_max, math.nan
        x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
        return tv_max, float(-np.polyfit(x, y, 1)[0])

    def min_features(self, eps: float, grid) -> list:
        return [ent.search_min_features(lambda m, h=h: self.tv(m, h), eps, grid) for h in range(self.q.shape[1])]


def theory_coefficient(label: str, q, k) -> np.ndarray:
    """Per head: mean_i Σ_j a_ij √V_ij / √(2π) (module doc), so m*_theory(ε) = (coefficient / ε)²; NaN if none."""
    variant, _, mode, _ = KINDS[label]  # trig: no overlay; simplex kinds share their iid theory
    q, k = q.reshape(1, -1, *q.shape[-2:]).double(), k.reshape(1, -1, *k.shape[-2:]).double()
    root = q.shape[-1] ** -0.25
    out = []
    for h in range(q.shape[1]):
        x, y = q[0, h] * root, k[0, h] * root
        a = torch.softmax(x @ y.T, dim=-1).numpy()
        if (variant == "performer" and mode == "trig") or variant in ("maclaurin", "shrinkage"):
            out.append(math.nan)
            continue
        if variant == "favorsharp":
            par = calibrate(q[:, h], k[:, h], "favorsharp")
            x, y, a_gerf = x * par["rescale"], y / par["rescale"], par["a"]
        elif variant == "favorpp" and mode == "calibrated":
            a_gerf = calibrate(q[:, h], k[:, h], "favorpp")["a"]
        else:
            a_gerf = 0.0
        u = ((x[:, None, :] + y[None, :, :]) ** 2).sum(-1).numpy()
        if variant == "hyperbolic":
            var = 2 * (np.cosh(np.minimum(u, 700)) - 1)
        else:
            var = gerf_relative_second_moment(a_gerf, u, x.shape[-1]) - 1
        with np.errstate(over="ignore", invalid="ignore"):
            out.append(float((a * np.sqrt(var)).sum(-1).mean() / math.sqrt(2 * math.pi)))
    return np.array(out)


STUDY = "features_by_kind"
REAL = "MiniLM-L6 heads"


@functools.lru_cache(maxsize=2)
def _family(family: str, n: int, n_queries: int, levels: tuple = ()) -> dict:
    """A family's inputs and what every kind and seed shares: q, k (heads flattened), head labels, levels,
    the softmax weights and the per-head input summary (one copy per worker process)."""
    if family == "gaussian":
        q, k, _ = ent.gaussian_family(n, list(levels), n_queries=n_queries, head_dim=HEAD_DIM, seed=0)
        labels, values = [f"T={t:g}" for t in levels], list(levels)
    else:
        from ...analysis import real_heads

        heads = real_heads.extract_heads(real_heads.stdlib_text(), seq_len=n, num_chunks=1)
        L, C, H = heads.q.shape[:3]
        rows = np.linspace(0, n - 1, min(n, n_queries)).round().astype(int)
        q = heads.q[..., rows, :].reshape(1, L * C * H, len(rows), -1)
        k = heads.k.reshape(1, L * C * H, n, -1)
        labels, values = [f"L{l}H{h}" for l in range(L) for c in range(C) for h in range(H)], list(range(L * C * H))
    summary = {key: val.reshape(-1).numpy() for key, val in ent.input_summary(q, k).items()}
    return dict(q=q, k=k, labels=labels, levels=values, summary=summary,
                reference=attention_weights(q, k, "softmax").double())


def _real_available() -> bool:
    try:
        from ...analysis import real_heads

        real_heads.model_dir()
    except ImportError as err:  # the optional extra is missing: synthetic family only
        print(f"[features_by_kind] real heads skipped: {err}")
        return False
    return True


def kind_cell(family: str, n: int, n_queries: int, levels: list, kind: str, seed: int, m_max: int) -> pd.DataFrame:
    """Cell: m* per head and ε, then the TV decay per head, of one kind and seed on one family (its
    ``mstar`` and ``decay`` rows)."""
    fam = _family(family, n, n_queries, tuple(levels))
    q, k, labels, summary = fam["q"], fam["k"], fam["labels"], fam["summary"]
    grid = ent.feature_grid(8, m_max)
    coeff = theory_coefficient(kind, q, k)
    search = KindSearch(kind, q, k, seed=seed, reference=fam["reference"], max_features=m_max)
    found, decays = {eps: [] for eps in EPSILONS}, []
    for h in range(len(labels)):  # head by head: one head's kernel sums held at a time
        for eps in EPSILONS:
            found[eps].append(ent.search_min_features(lambda m: search.tv(m, h), eps, grid))
        decays.append(search.decay(h, m_max))
        search.release(h)
    rows = []
    for eps in EPSILONS:
        for h, m_star in enumerate(found[eps]):
            rows.append(dict(
                record="mstar", family=family, n=n, head=labels[h], level=float(fam["levels"][h]),
                kind=kind, seed=seed, eps=eps, m_star=math.nan if m_star is None else float(m_star),
                censored=m_star is None, m_max=m_max, pred_theory=float((coeff[h] / eps) ** 2),
                a=search.params(h).get("a", 0.0 if KINDS[kind][2] == "a0" else math.nan),
                **{key: float(val[h]) for key, val in summary.items()}))
    for h, (tv_max, beta) in enumerate(decays):
        rows.append(dict(record="decay", family=family, n=n, head=labels[h], level=float(fam["levels"][h]),
                         kind=kind, seed=seed, m_max=m_max, tv_at_max=tv_max, beta=beta,
                         **{key: float(val[h]) for key, val in summary.items()}))
    return pd.DataFrame(rows)


def cells(cfg: dict, real: bool = True) -> list:
    """The grid: family (Gaussian, then the real heads) × kind × seed, in the CSV's order."""
    families = [("gaussian", cfg["gaussian_n"], cfg["n_queries"], list(cfg["gaussian"]))]
    if real:
        families.append((REAL, cfg["real_n"], cfg["real_queries"], []))
    return [Cell(STUDY, kind_cell, dict(family=family, n=n, n_queries=nq, levels=levels, kind=kind, seed=seed,
                                        m_max=cfg["m_max"]))
            for family, n, nq, levels in families for kind in KINDS for seed in cfg["seeds"]]


def compute(profile: str = "quick") -> pd.DataFrame:
    """The study's rows: its cells (:func:`cells`) through :mod:`approxlab.experiments.sweep` (cached,
    resumable; threads as :attr:`~approxlab.experiments.sweep.Settings.cell_threads`), then the table per kind and ε."""
    cfg = PROFILES[profile]
    df = sweep.concat(sweep.run(cells(cfg, real=cfg.get("real", True) and _real_available()),
                                desc="features_by_kind m*"))
    out = pd.concat([df, table(df)], ignore_index=True)
    for key, val in describe("cpu").items():
        out[key] = val
    out["profile"] = profile
    return out


def _median_censored(values: pd.Series, censored: pd.Series) -> float:
    """Median with censored values as +∞: NaN (censored) when at least half are censored."""
    filled = np.where(censored.to_numpy(bool), np.inf, values.to_numpy(float))
    med = float(np.median(filled))
    return med if math.isfinite(med) else math.nan


def table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (kind, ε) on the real heads (the Gaussian family when there are none): median m* over heads
    of the seed-median m*, censored heads, and the ratio to FAVOR+'s median."""
    mstar = df[df["record"] == "mstar"]
    fam = REAL if (mstar["family"] == REAL).any() else "gaussian"
    d = mstar[mstar["family"] == fam]
    per_head = d.groupby(["kind", "eps", "head"]).apply(
        lambda g: pd.Series({"m": _median_censored(g["m_star"], g["censored"])}), include_groups=False).reset_index()
    per_head["cens"] = per_head["m"].isna()
    rows = []
    m_max = float(d["m_max"].max())
    for (label, eps), g in per_head.groupby(["kind", "eps"]):
        rows.append(dict(record="table", family=fam, kind=label, eps=eps, heads=len(g),
                         median_m_star=_median_censored(g["m"], g["cens"]), censored_heads=int(g["cens"].sum()),
                         m_max=m_max))
    tab = pd.DataFrame(rows)
    dec = df[(df["record"] == "decay") & (df["family"] == fam)]
    if not dec.empty:
        per = dec.groupby(["kind", "head"])[["tv_at_max", "beta"]].median().reset_index()
        base = per[per["kind"] == BASELINE].set_index("head")
        for label, g in per.groupby("kind"):
            g = g.set_index("head")
            # features FAVOR+ would need for this kind's TV at m_max, on FAVOR+'s own measured decay TV ∝ F^-β
            equiv = (base["tv_at_max"] / g["tv_at_max"]) ** (1 / base["beta"])
            sel = tab["kind"] == label
            tab.loc[sel, "median_tv_at_max"] = float(g["tv_at_max"].median())
            tab.loc[sel, "median_beta"] = float(g["beta"].median())
            tab.loc[sel, "equivalent_ratio_vs_favor"] = float(equiv.median())
    tab["ratio_vs_favor"], tab["ratio_is_lower_bound"] = math.nan, False
    for eps, g in tab.groupby("eps"):
        base = g.loc[g["kind"] == BASELINE, "median_m_star"]
        base_val = float(base.iloc[0]) if len(base) else math.nan
        bound = math.isnan(base_val)
        for i in g.index:
            own = tab.at[i, "median_m_star"]
            tab.loc[i, "ratio_vs_favor"] = (m_max if bound else base_val) / own if own == own else math.nan
            tab.loc[i, "ratio_is_lower_bound"] = bool(bound and own == own)
    return tab


def verdict(df: pd.DataFrame, eps: float = 0.1) -> dict:
    """The best kind at ε on the table's family, its median m*, FAVOR+'s, and the ratio (with its bound flag)."""
    tab = df[(df["record"] == "table") & (df["eps"] == eps)]
    ok = tab[tab["median_m_star"].notna()]
    if ok.empty:
        return dict(eps=eps, best=None)
    best = ok.sort_values("median_m_star").iloc[0]
    base = tab[tab["kind"] == BASELINE].iloc[0]
    return dict(eps=eps, best=best["kind"], best_median=float(best["median_m_star"]),
                favor_median=float(base["median_m_star"]), ratio=float(best["ratio_vs_favor"]),
                ratio_is_lower_bound=bool(best["ratio_is_lower_bound"]), family=best["family"])


def equivalent_verdict(df: pd.DataFrame) -> dict:
    """The kind with the largest median equivalent-feature ratio vs FAVOR+ at F = m_max (module doc)."""
    tab = df[(df["record"] == "table") & (df["eps"] == EPSILONS[0])]
    if "equivalent_ratio_vs_favor" not in tab or tab["equivalent_ratio_vs_favor"].isna().all():
        return dict(best=None)
    best = tab.sort_values("equivalent_ratio_vs_favor", ascending=False).iloc[0]
    base = tab[tab["kind"] == BASELINE].iloc[0]
    return dict(best=best["kind"], ratio=float(best["equivalent_ratio_vs_favor"]),
                tv=float(best["median_tv_at_max"]), favor_tv=float(base["median_tv_at_max"]),
                beta=float(base["median_beta"]), m_max=float(best["m_max"]))


MARKERS = dict(zip(KINDS, "os^vDPX*hp"))


def draw(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ..style import legend_beside

    mstar = df[df["record"] == "mstar"]
    m_max = float(mstar["m_max"].max())
    colors = dict(zip(KINDS, sns.color_palette("tab10", len(KINDS))))
    seedmed = (mstar.assign(m=np.where(mstar["censored"].astype(bool), np.inf, mstar["m_star"]))
               .groupby(["family", "head", "kind", "eps"])
               .agg(m=("m", "median"), weighted_sum_sq=("weighted_sum_sq", "first"),
                    entropy_norm=("entropy_norm", "first"), pred=("pred_theory", "first")).reset_index())
    fig, axes = plt.subplots(2, 3, figsize=(15, 9.5), constrained_layout=True)
    top = m_max * 1.6
    for col, eps in enumerate(EPSILONS):
        ax = axes[0, col]
        g = seedmed[(seedmed["family"] == "gaussian") & (seedmed["eps"] == eps)]
        for label, d in g.groupby("kind", sort=False):
            d = d.sort_values("weighted_sum_sq")
            ax.plot(d["weighted_sum_sq"], np.minimum(d["m"], top), marker=MARKERS[label], color=colors[label], label=label)
            if d["pred"].notna().any() and KINDS[label][1] == "orthogonal":
                ax.plot(d["weighted_sum_sq"], d["pred"], ls=":", color=colors[label], lw=0.9)
        ax.axhline(m_max, color="0.5", lw=0.6)
        ax.set(yscale="log", ylim=(4, m_max * 3), xlabel="attention-weighted ‖x+y‖² (mean over rows)",
               ylabel="m* (features F)", title=f"Gaussian q, k (temperature), TV ≤ {eps}\n(dotted: iid theory; top: censored)")
    legend_beside(axes[0, 0], fontsize=7)
    real = seedmed[seedmed["family"] == "MiniLM-L6 heads"]
    for col, (xcol, xlabel) in enumerate((("weighted_sum_sq", "attention-weighted ‖x+y‖²"),
                                          ("entropy_norm", "H / log N"))):
        ax = axes[1, col]
        d0 = real[real["eps"] == 0.1]
        for label, d in d0.groupby("kind", sort=False):
            ax.scatter(d[xcol], np.minimum(d["m"], top) * (1 + 0.03 * list(KINDS).index(label)), s=10,
                       marker=MARKERS[label], color=colors[label], alpha=0.7, label=label)
        ax.axhline(m_max, color="0.5", lw=0.6)
        ax.set(yscale="log", ylim=(4, m_max * 3), xlabel=xlabel, ylabel="m* (features F)",
               xscale="log" if xcol == "weighted_sum_sq" else "linear",
               title="72 MiniLM-L6 heads, TV ≤ 0.1 (top row: censored)")
    if real.empty:
        for ax in axes[1, :2]:
            ax.text(0.5, 0.5, "real heads not available\n(pip install 'approxlab[real]')", ha="center",
                    transform=ax.transAxes)
    ax = axes[0, 2]
    dec = df[(df["record"] == "decay") & (df["family"] == "MiniLM-L6 heads")]
    dec = dec if not dec.empty else df[(df["record"] == "decay") & (df["family"] == "gaussian")]
    for i, label in enumerate(KINDS):
        d = dec[dec["kind"] == label]
        jitter = np.random.default_rng(i).uniform(-0.25, 0.25, len(d))
        ax.scatter(i + jitter, d["beta"], s=8, color=colors[label], alpha=0.6)
        ax.plot([i - 0.3, i + 0.3], [d["beta"].median()] * 2, color="k", lw=1.5)
    ax.axhline(0.5, color="0.3", ls="--", lw=0.8)
    ax.text(len(KINDS) - 0.5, 0.51, "½: CLT rate (light tails)", ha="right", va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(KINDS)), list(KINDS), rotation=40, ha="right", fontsize=8)
    ax.set(xlabel="random-feature kind", ylabel="β in TV ∝ F^−β (fit over F ≥ 64)",
           title="how fast TV falls with F, per head (bar: median)")
    ax = axes[1, 2]
    tab = df[df["record"] == "table"]
    kinds = list(KINDS)
    width = 0.4
    for j, eps in enumerate(EPSILONS):
        t = tab[tab["eps"] == eps].set_index("kind").reindex(kinds)
        vals = t["median_m_star"].fillna(top).to_numpy(float)
        bars = ax.bar(np.arange(len(kinds)) + (j - 0.5) * width, vals, width, label=f"TV ≤ {eps}",
                      color=[colors[kd] for kd in kinds], alpha=1.0 if j == 0 else 0.5,
                      hatch=None if j == 0 else "//", edgecolor="k", lw=0.4)
        for b, cen in zip(bars, t["median_m_star"].isna()):
            if cen:
                ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f">{int(m_max)}", ha="center", va="bottom",
                        fontsize=6, rotation=90)
    ax.set_xticks(np.arange(len(kinds)), kinds, rotation=40, ha="right", fontsize=8)
    fam = tab["family"].iloc[0] if len(tab) else ""
    ax.set(yscale="log", ylim=(4, m_max * 8), xlabel="random-feature kind", ylabel="median m* over heads",
           title=f"median m* per kind ({fam}); solid TV ≤ 0.1, hatched 0.2")
    v, e = verdict(df), equivalent_verdict(df)
    lines = []
    if v.get("best"):
        lines.append(f"TV ≤ 0.1: best {v['best']} median {v['best_median']:.0f}, "
                     f"{'≥ ' if v['ratio_is_lower_bound'] else ''}{v['ratio']:.1f}× fewer than FAVOR+")
    else:
        lines.append(f"TV ≤ 0.1: every kind's median is censored (> {int(m_max)})")
    if e.get("best"):
        lines.append(f"at F = {int(e['m_max'])}: {e['best']} TV {e['tv']:.3f} vs FAVOR+ {e['favor_tv']:.3f}\n"
                     f"≈ {e['ratio']:.1f}× fewer features at equal TV (FAVOR+'s β = {e['beta']:.2f})")
    fig.text(0.5, -0.01, "   |   ".join(line.replace("\n", " ") for line in lines), ha="center", va="top", fontsize=9)
    fig.suptitle("Random features for exp(x·y) by kind: features F needed for mean row TV ≤ ε vs softmax "
                 "(head dim 32, float64)")
    return fig
