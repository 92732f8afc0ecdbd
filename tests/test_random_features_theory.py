"""sympy derivations for the random features of approxlab.variants (hyperbolic, favorpp, favorsharp).

FAVOR++ (positive GERF, Likhosherstov et al., "Chefs' Random Tables", NeurIPS 2022): with w ~ N(0, I_D),
    f(w, x) = D_A exp(A‖w‖² + B w·x − ‖x‖²/2),   B² = 1 − 4A,   D_A = (1 − 4A)^{D/4}.
Derived here, one coordinate at a time (coordinates of w are independent, so D-dimensional moments are
products of one-dimensional ones; with t = x_l + y_l the exponents sum to ‖x+y‖²):
  1. E[f(x)f(y)] = exp(x·y)                                        (unbiased for every A < 1/4)
  2. E[Z²] = ((1−4A)²/(1−8A))^{D/2} exp(‖x+y‖²/(1−8A)),  Z = f(x)f(y)/e^{x·y}
     and at A = 0 it is Lemma 2's e^{‖x+y‖²} (the Performer's positive features)
  3. the minimiser over A < 1/8 is A* = (1 − 2ρ − √((2ρ+1)² + 8ρ))/16, ρ = ‖x+y‖²/D
     (a wrong claim, the linearised A = −ρ/4, and the other root, are rejected by the same checks)
Hyperbolic features (Performer): E[Z_hyp²] − 1 = ½(1 − e^{−‖x+y‖²}) (e^{‖x+y‖²} − 1) per direction.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from approxlab.analysis.symbolic import performer_variance
from approxlab.analysis.symbolic.derivations import is_zero
from approxlab.variants.favorpp import gerf_relative_second_moment, oprf_a

A = sp.Symbol("A", real=True)
t, xl, yl = sp.symbols("t x_l y_l", real=True)
u, rho = sp.symbols("u rho", positive=True)   # u = ‖x+y‖², ρ = u / D
d = sp.Symbol("D", positive=True, integer=True)
w = sp.Symbol("w", real=True)


def gaussian_expectation(expr):
    """E over w ~ N(0, 1) of expr(w), by integration against the density (A < 1/8 assumed, A = −|A| ok)."""
    density = sp.exp(-w ** 2 / 2) / sp.sqrt(2 * sp.pi)
    return sp.simplify(sp.integrate(expr * density, (w, -sp.oo, sp.oo), conds="none"))


def one_coordinate_feature(x_coord):
    """The per-coordinate factor of f(w, x): D_A^{1/D} exp(A w_l² + B w_l x_l − x_l²/2)."""
    return (1 - 4 * A) ** sp.Rational(1, 4) * sp.exp(A * w ** 2 + sp.sqrt(1 - 4 * A) * w * x_coord - x_coord ** 2 / 2)


def test_gerf_is_unbiased_for_exp():
    mean = gaussian_expectation(one_coordinate_feature(xl) * one_coordinate_feature(yl))
    # sympy returns the integral for A < 1/4; the claim is mean = e^{x_l y_l}
    assert sp.simplify(sp.log(mean.subs(A, -sp.Rational(3, 10))) - xl * yl) == 0
    assert sp.simplify(sp.expand_log(sp.log(mean), force=True) - xl * yl) == 0


def _second_moment_one_coordinate():
    second = gaussian_expectation((one_coordinate_feature(xl) * one_coordinate_feature(yl)) ** 2)
    return sp.simplify(second / sp.exp(2 * xl * yl))


def test_gerf_second_moment_and_its_a_equals_zero_limit_is_lemma2():
    per_coord = _second_moment_one_coordinate()
    claim = ((1 - 4 * A) ** 2 / (1 - 8 * A)) ** sp.Rational(1, 2) * sp.exp((xl + yl) ** 2 / (1 - 8 * A))
    c = sp.Symbol("c", positive=True)  # A = (1 − c)/8 spans A < 1/8, where 1 − 8A = c and 1 − 4A = (1 + c)/2 > 0

    def check(claimed):
        diff = (sp.log(per_coord) - sp.log(claimed)).subs(A, (1 - c) / 8)
        return sp.simplify(sp.expand_log(diff, force=True))

    assert check(claim) == 0
    # a wrong claim (the (1−4A)² written as (1−4A)) is rejected by the same check
    wrong = ((1 - 4 * A) / (1 - 8 * A)) ** sp.Rational(1, 2) * sp.exp((xl + yl) ** 2 / (1 - 8 * A))
    assert check(wrong) != 0
    # A = 0: e^{(x_l + y_l)²} per coordinate, i.e. e^{‖x+y‖²}, so Var = e^{‖x+y‖²} − 1: Lemma 2 ...
    assert sp.simplify(per_coord.subs(A, 0) - sp.exp((xl + yl) ** 2)) == 0
    # ... as the toolkit's own Lemma 2 derivation states it (D = 1, m = 1: Var/SM² = e^{‖x+y‖²} − 1)
    lemma = performer_variance(1)
    x1, y1 = sorted(lemma.rhs.free_symbols - {s for s in lemma.rhs.free_symbols if s.name == "m"}, key=str)
    ratio = lemma.rhs.subs({sp.Symbol("m", positive=True, integer=True): 1}) / sp.exp(2 * x1 * y1)
    assert sp.simplify(ratio - (per_coord.subs(A, 0) - 1).subs({xl: x1, yl: y1})) == 0
    # and the shipped numeric formula is the product over D coordinates of this one
    for a_val, uu, dd in ((-0.2, 3.0, 4), (0.05, 0.7, 2), (-1.0, 20.0, 32)):
        one = float(claim.subs({A: a_val, xl: np.sqrt(uu / dd), yl: 0}))
        assert np.isclose(gerf_relative_second_moment(a_val, uu, dd), one ** dd, rtol=1e-12)


def _log_second_moment():
    """log E[Z²] in D dimensions as a function of A, u = ‖x+y‖² and D (product of the coordinates)."""
    return d / 2 * (2 * sp.log(1 - 4 * A) - sp.log(1 - 8 * A)) + u / (1 - 8 * A)


def test_optimal_a_is_the_closed_form_and_a_wrong_claim_is_rejected():
    log_m = _log_second_moment()
    stationary = sp.factor(sp.together(sp.diff(log_m, A)))
    numerator = sp.numer(stationary)
    roots = sp.solve(sp.Eq(numerator, 0), A)
    assert len(roots) == 2
    closed = (1 - 2 * rho - sp.sqrt((2 * rho + 1) ** 2 + 8 * rho)) / 16
    other = (1 - 2 * rho + sp.sqrt((2 * rho + 1) ** 2 + 8 * rho)) / 16
    in_rho = [sp.simplify(r.subs(u, rho * d)) for r in roots]

    def is_root(candidate):
        return any(sp.simplify(r - candidate) == 0 for r in in_rho)

    assert is_root(closed)
    # the other root is stationary too but not admissible (A ≥ 1/8: the second moment diverges)
    assert is_root(other) and sp.simplify(other - sp.Rational(1, 8)).subs(rho, 1) > 0
    assert sp.simplify(closed - sp.Rational(1, 8)).subs(rho, 1) < 0
    # a wrong claim: the small-ρ linearisation A = −ρ/4 (true slope −ρ/2) is no stationary point
    assert not is_root(-rho / 4)
    assert sp.series(closed, rho, 0, 2).removeO() == -rho / 2
    # it is a minimum: second derivative > 0 there (checked at a few (ρ, D))
    second = sp.diff(log_m, A, 2)
    for r_val, d_val in ((0.1, 4), (0.625, 32), (3.0, 8)):
        a_val = closed.subs(rho, r_val)
        assert second.subs({A: a_val, u: r_val * d_val, d: d_val}) > 0
        # and the shipped function gives the same number
        assert np.isclose(oprf_a(r_val * d_val, d_val), float(a_val), rtol=1e-13)


def test_hyperbolic_variance_is_half_one_minus_exp_times_the_positive_one():
    """One direction, (x + y) along it: Z_hyp = ½(e^{w t} + e^{−w t}) e^{−t²/2} with t = ‖x+y‖ (the other
    factors of φ(x)φ(y)/e^{x·y} cancel), against Z_pos = e^{w t − t²/2}."""
    z_hyp = (sp.exp(w * t) + sp.exp(-w * t)) / 2 * sp.exp(-t ** 2 / 2)
    z_pos = sp.exp(w * t - t ** 2 / 2)
    assert sp.simplify(gaussian_expectation(z_hyp) - 1) == 0 and sp.simplify(gaussian_expectation(z_pos) - 1) == 0
    var_hyp = gaussian_expectation(z_hyp ** 2) - 1
    var_pos = gaussian_expectation(z_pos ** 2) - 1
    assert sp.simplify(var_hyp - (1 - sp.exp(-t ** 2)) / 2 * var_pos) == 0
    assert sp.simplify(var_hyp - (1 - sp.exp(-t ** 2)) * var_pos) != 0   # without the ½: rejected
