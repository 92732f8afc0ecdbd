"""figures/kernel_error: how good can a degree-p kernel be? δ vs p on [−R, R], R ∈ {1, 2, 4, 8}.

δ_f(R) = min_c max_{|s|≤R} |log f(s) − s − c| for taylor (Σ s^r/r!), (1+s/p)^p (hla, affine
factors), the minimax polynomial (the ``minimax`` variant), the best type-(p, p) rational, and
Padé [p/p]; the asymptotic rates overlaid (``approxlab.core.approx``). A kernel that is ≤ 0 somewhere on
the range has no δ (positive = False, δ = inf). Rational δ below what double precision resolves
(no alternation found) is kept in the CSV with resolved = False and not drawn.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from ...core import approx
from .. import sweep
from ..sweep import Cell
from ...variants import HLA, Minimax, Taylor

NAME = "kernel_error"

#: the full profile stops at R = 8: at R = 16 the polynomial LP of the minimax solver fails for p ≥ 11 (HiGHS
#: returns an unrecognised status), and low degrees have no positive minimax polynomial there at all
PROFILES = {"quick": dict(radii=[1.0, 2.0, 4.0, 8.0], degrees=list(range(1, 9))),
            "full": dict(radii=[0.5, 1.0, 2.0, 4.0, 8.0], degrees=list(range(1, 13)))}
FAMILIES = ["taylor", "(1+s/p)^p", "minimax polynomial", "padé [p/p]", "best rational"]
RATES = {"taylor": approx.taylor_rate, "minimax polynomial": approx.best_polynomial_rate,
         "padé [p/p]": approx.pade_rate, "best rational": approx.best_rational_rate}


def _row(family, p, R, err, **extra):
    return dict(family=family, p=p, R=R, delta=err.delta if err.positive else math.inf, positive=err.positive,
                first_nonpositive=float(err.nonpositive_at.min()) if len(err.nonpositive_at) else math.nan,
                **{"resolved": True, "delta_lower": math.nan, "method": "", "kind": "kernel", **extra})


def cell(R: float, p: int) -> pd.DataFrame:
    """Cell: every family's δ at degree p on [−R, R], and the asymptotic rates there."""
    rows = [_row("taylor", p, R, approx.log_uniform_error(Taylor(p).similarity_function, R))]
    hla = HLA(head_dim=1, factors=p, feature_map="affine")
    # root of multiplicity p at s = −p, found exactly (a grid can step over an even-order zero)
    rows.append(_row("(1+s/p)^p", p, R, approx.log_uniform_error(hla.similarity_function, R)))
    best = approx.best_exp(p, R)
    try:
        minimax = Minimax(p, R)
    except ValueError as err:  # no positive best polynomial of this degree on [−R, R] (large R, low p): no δ
        rows.append(dict(family="minimax polynomial", p=p, R=R, delta=math.inf, positive=False,
                         first_nonpositive=math.nan, resolved=True, delta_lower=best.delta_lower,
                         method=f"{best.method}; {str(err).split(';')[0]}", kind="kernel"))
    else:
        rows.append(_row("minimax polynomial", p, R, approx.log_uniform_error(minimax.similarity_function, R),
                         delta_lower=best.delta_lower, method=best.method))
    rows.append(_row("padé [p/p]", p, R, approx.log_uniform_error_mp(*approx.pade_exp_coefficients(p), R=R),
                     method="exact coefficients, mpmath 50 digits"))
    rat = approx.best_exp(p, R, rational=True)
    resolved = bool(np.isfinite(rat.lower) and rat.lower >= 0.99 * rat.error)
    rows.append(_row("best rational", p, R, approx.log_uniform_error(rat, R), resolved=resolved,
                     delta_lower=rat.delta_lower,
                     method=rat.method))
    for family, rate in RATES.items():
        rows.append(dict(family=family, p=p, R=R, delta=rate(p, R), kind="asymptotic",
                         method=rate.__doc__.strip().splitlines()[0]))
    return pd.DataFrame(rows)


def compute(profile: str = "quick") -> pd.DataFrame:
    """One cell per (R, p), run and cached by ``approxlab.experiments.sweep``."""
    cfg = PROFILES[profile]
    cells = [Cell("kernel_error", cell, dict(R=R, p=p)) for R in cfg["radii"] for p in cfg["degrees"]]
    return sweep.concat(sweep.run(cells))


def draw(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    import seaborn as sns

    palette = sns.color_palette("colorblind", 4)
    colors = {"taylor": palette[1], "(1+s/p)^p": palette[2], "minimax polynomial": palette[0],
              "padé [p/p]": "0.55", "best rational": "black"}
    markers = {"taylor": "o", "(1+s/p)^p": "s", "minimax polynomial": "D", "padé [p/p]": "^", "best rational": "v"}
    radii = sorted(df["R"].unique())
    fig, axes = plt.subplots(1, len(radii), figsize=(3.3 * len(radii), 3.9), sharey=True, constrained_layout=True)
    for ax, R in zip(np.atleast_1d(axes), radii):
        part = df[df["R"] == R]
        for family in FAMILIES:
            kern = part[(part["family"] == family) & (part["kind"] == "kernel")]
            ok = kern[np.isfinite(kern["delta"]) & kern["resolved"].astype(bool) & (kern["delta"] > 0)]
            ax.plot(ok["p"], ok["delta"], marker=markers[family], color=colors[family], label=family, lw=1.3, ms=4.5)
            rate = part[(part["family"] == family) & (part["kind"] == "asymptotic")]
            if len(rate):
                ax.plot(rate["p"], rate["delta"], ls=":", color=colors[family], lw=1.0)
        ax.axhline(1e-15, color="0.7", lw=0.8, ls="--")
        ax.set(yscale="log", xlabel="degree p", title=f"R = {R:g}", ylim=(1e-20, 3e1))
        ax.set_xticks(sorted(part["p"].unique()))
    first = np.atleast_1d(axes)[0]
    first.set_ylabel(r"log-uniform error $\delta_f(R)=\min_c\max_{|s|\leq R}|\log f(s)-s-c|$")
    first.text(0.03, 0.03, "dotted: asymptotic rates\ndashed: double precision", transform=first.transAxes,
               fontsize=7.5, va="bottom")
    np.atleast_1d(axes)[-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("How good can a degree-p kernel be? Kernels vs the best polynomial / rational of degree p "
                 "(missing points: kernel ≤ 0 on [−R, R], or below double precision)", fontsize=9.5)
    return fig
