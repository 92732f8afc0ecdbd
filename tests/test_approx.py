"""Approximation numerics: log-uniform error, the minimax solver against published constants and
independent solvers (baryrat's BRASIL, scipy's AAA), and the orderings the kernel_error figure shows."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.interpolate import AAA, pade

from approxlab.core import approx
from approxlab.variants import Taylor

FIGURES = Path(__file__).resolve().parent.parent / "figures"

# Best uniform type-(n, n) rational approximation errors of exp(x) on (−∞, 0]: Cody, Meinardus &
# Varga, J. Approx. Theory 2 (1969) 50–65, extended by Carpenter, Ruttan & Varga, "Extended numerical
# computations on the 1/9 conjecture in rational approximation theory", LNM 1105 (1984); the values
# to three places as tabulated in Trefethen's Chebfun example "Halphen's constant" (approx/Halphen.m, 2011).
CMV = {0: 0.500, 1: 0.0668, 2: 7.36e-3, 3: 7.99e-4, 4: 8.65e-5, 5: 9.35e-6, 6: 1.008e-6, 7: 1.087e-7, 8: 1.172e-8}


def three_digits(x: float) -> float:
    return float(f"{x:.3g}")


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 8])
def test_cody_meinardus_varga_constants(n):
    """The general solver (half-line mapped to [−1, 1], absolute error) reproduces the table to 3 digits,
    and its alternation lower bound brackets the value."""
    result = approx.minimax(np.exp, (-math.inf, 0.0), n, n, length=float(max(1, n)))
    digits = 4 if n >= 6 else 3
    assert float(f"{result.error:.{digits}g}") == pytest.approx(CMV[n], rel=1e-12), result.error
    assert result.lower <= result.error * (1 + 1e-12)
    assert result.lower >= result.error * (1 - 1e-3)
    # Halphen's asymptotic 2 H^{-n-1/2} is already within 1% at n = 8
    if n == 8:
        assert result.error / approx.halphen_rate(n) == pytest.approx(1.0, abs=0.01)


def test_half_line_cross_checked_with_baryrat_brasil():
    import baryrat

    mapping = approx.IntervalMap(-math.inf, 0.0, 2.0)
    _, info = baryrat.brasil(lambda t: np.exp(mapping.x(t)), (-1.0, 1.0), 3, info=True)
    ours = approx.minimax(np.exp, (-math.inf, 0.0), 3, 3, length=2.0)
    assert info.converged
    assert ours.error <= info.error * (1 + 1e-9)  # BRASIL stops at 1e-4 equioscillation
    assert ours.error == pytest.approx(info.error, rel=1e-3)


def test_polynomial_absolute_error_matches_brasil_and_equioscillates():
    import baryrat

    _, info = baryrat.brasil(np.exp, (-1.0, 1.0), (4, 0), info=True)
    ours = approx.minimax(np.exp, (-1.0, 1.0), 4)
    assert ours.error == pytest.approx(info.error, rel=1e-3)
    # Chebyshev alternation: m + 2 = 6 alternating extrema of equal size
    assert ours.lower == pytest.approx(ours.error, rel=1e-6)
    # and its power coefficients give the same function
    s = np.linspace(-1, 1, 11)
    assert np.allclose(np.polynomial.polynomial.polyval(s, ours.power_coefficients()), ours(s), rtol=1e-12)


@pytest.mark.parametrize("R,p", [(4.0, 4), (8.0, 2)])
def test_rational_beats_aaa_of_the_same_type(R, p):
    """AAA with p+1 support points is a type-(p, p) rational: near-best, never better than the minimax."""
    s = approx.chebyshev_grid(-R, R, 2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        aaa = AAA(s, np.exp(s), max_terms=p + 1)
    aaa_error = np.max(np.abs(aaa(s) / np.exp(s) - 1))
    best = approx.best_exp(p, R, rational=True)
    assert best.error <= aaa_error
    assert best.lower == pytest.approx(best.error, rel=1e-4)  # equioscillation at 2p + 2 points


def test_log_uniform_error_closed_forms():
    exact = approx.log_uniform_error(np.exp, 3.0)
    assert exact.positive and exact.delta == pytest.approx(0.0, abs=1e-14)
    # g = 0.3 s² + 0.7 on [−2, 2]: δ = ½ · 0.3 · 4, c = 0.7 + 0.6
    quad = approx.log_uniform_error(lambda s: np.exp(s + 0.3 * s**2 + 0.7), 2.0)
    assert quad.delta == pytest.approx(0.6, rel=1e-10)
    assert quad.c == pytest.approx(1.3, rel=1e-10)
    # an interior extremum found by polishing: g = −(s − 0.123)² on [−1, 1] peaks between grid points
    bump = approx.log_uniform_error(lambda s: np.exp(s - (s - 0.123) ** 2), interval=(-1.0, 1.0), points=33)
    assert bump.argmax == pytest.approx(0.123, abs=1e-6)
    assert bump.delta == pytest.approx(0.5 * (1.123**2), rel=1e-9)


def test_nonpositive_kernel_is_reported():
    res = approx.log_uniform_error(lambda s: 1 + s, 2.0)  # taylor order 1: zero at s = −1
    assert not res.positive and math.isinf(res.delta)
    assert res.nonpositive_at.max() <= -1.0 and res.nonpositive_at.min() == pytest.approx(-2.0)


@pytest.mark.parametrize("p", [1, 2, 3, 5])
def test_pade_coefficients_match_scipy(p):
    num, den = approx.pade_exp_coefficients(p)
    taylor = [1 / math.factorial(r) for r in range(2 * p + 1)]
    pn, pd_ = pade(taylor, p, p)
    scale = pd_.coeffs[-1]
    assert np.allclose([float(c) for c in num], pn.coeffs[::-1] / scale, rtol=1e-9)
    assert np.allclose([float(c) for c in den], pd_.coeffs[::-1] / scale, rtol=1e-9)


def test_mp_evaluation_resolves_tiny_errors():
    """Padé [8/8] on [−1, 1] has δ ≈ 2e-19, invisible in double; mpmath resolves it, near the rate."""
    res = approx.log_uniform_error_mp(*approx.pade_exp_coefficients(8), R=1.0)
    assert res.delta == pytest.approx(approx.pade_rate(8, 1.0), rel=0.05)


@pytest.mark.parametrize("R", [1.0, 2.0, 4.0, 8.0])
def test_minimax_polynomial_beats_taylor_for_every_degree(R):
    for p in range(0, 9):
        best = approx.best_exp(p, R)
        delta_best = approx.log_uniform_error(best, R).delta
        assert delta_best == pytest.approx(math.atanh(best.error), rel=1e-5)  # δ* = atanh(ε*)
        taylor = approx.log_uniform_error(Taylor(p).similarity_function, R).delta
        assert delta_best <= taylor * (1 + 1e-9)
        if p == 0:
            assert delta_best == pytest.approx(R)  # the constant: both give δ = R


def test_rational_beats_polynomial_and_matches_the_braess_rate():
    for R, p in [(2.0, 2), (8.0, 5)]:
        poly = approx.best_exp(p, R).error
        rat = approx.best_exp(p, R, rational=True)
        assert rat.error < poly
        assert rat.error / approx.best_rational_rate(p, R) == pytest.approx(1.0, rel=0.05)


def test_committed_table_shows_the_orderings():
    """figures/kernel_error.csv: for every p ≤ 8, R ∈ {1, 2, 4, 8}, minimax δ ≤ taylor δ and rational δ ≤ polynomial δ."""
    df = pd.read_csv(FIGURES / "kernel_error.csv")
    wide = df.pivot_table(index=["R", "p"], columns="family", values="delta", aggfunc="first")
    assert set(wide.index.get_level_values("R")) >= {1, 2, 4, 8}
    assert set(wide.index.get_level_values("p")) >= set(range(1, 9))
    taylor = wide["taylor"].fillna(np.inf)  # nan: taylor not positive on the range (δ undefined = ∞)
    assert (wide["minimax polynomial"] <= taylor * (1 + 1e-9)).all()
    assert (wide["best rational"] <= wide["minimax polynomial"] * (1 + 1e-9)).all()


@pytest.mark.parametrize("kwargs,message", [
    (dict(f=np.exp, interval=(-math.inf, math.inf), m=1, n=1), "interval"),
    (dict(f=np.exp, interval=(-math.inf, 0.0), m=2, n=1), "type"),
    (dict(f=np.exp, interval=(0.0, 1.0), m=-1), "m must"),
    (dict(f=np.exp, interval=(0.0, 1.0), m=1, error="log"), "error must"),
    (dict(f=np.exp, interval=(1.0, 0.0), m=1), "interval"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        approx.minimax(**kwargs)


def test_bad_range_is_named():
    with pytest.raises(ValueError, match="R must"):
        approx.log_uniform_error(np.exp, -1.0)
    with pytest.raises(ValueError, match="degree must"):
        approx.minimax_polynomial_coefficients(-2, 1.0)


def test_a_range_with_no_positive_minimax_polynomial_gives_a_row_without_delta():
    """The full profile's R = 16: no positive degree-2 minimax polynomial exists there; the cell records it as a
    kernel without δ (positive False, δ = inf), as for Taylor's odd orders, instead of failing the study."""
    import math

    from approxlab.experiments.studies import kernel_error

    rows = kernel_error.cell(16.0, 2)
    minimax = rows[(rows.family == "minimax polynomial") & (rows.kind == "kernel")].iloc[0]
    assert not minimax.positive and math.isinf(minimax.delta) and "no positive best polynomial" in minimax.method
    assert sorted(rows[rows.kind == "kernel"].family) == sorted(kernel_error.FAMILIES)  # every family has its row
