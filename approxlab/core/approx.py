"""How well can a kernel f(s) stand in for exp(s)?  Log-uniform errors and best approximations.

    δ_f(R) = min_c max_{|s|≤R} |log f(s) − s − c| = ½ (max g − min g),   g = log f − s,

defined only where f > 0 on the range. Best approximations come from a minimax solver for
min max_x w(x)|f(x) − P(x)/Q(x)| over types (m, n) on any interval, including half-lines
(mapped to [−1, 1] by a Möbius map, which keeps type (n, n)):

* polynomials (n = 0): one linear program on a discrete grid (Chebyshev basis), then exchange:
  the grid is enriched with the local maxima of the error on a fine grid and the LP re-solved;
* rationals: the differential correction algorithm (Barrodale, Powell & Roberts 1972), one LP per
  step, started from the best polynomial, so the rational error never exceeds the polynomial one.

The LP optimum on the grid is a lower bound on the true minimax error, the error measured on the
fine grid an upper bound; both are returned. For exp in *relative* error the log error of the same
approximant (rescaled) is optimal too: with M, m the max/min of r e^{-s}, δ = ½ log(M/m) and the
best relative error ε with free scale is (M/m − 1)/(M/m + 1), so δ* = atanh(ε*).
Classical references: Taylor and Padé [p/p] of exp (``scipy.interpolate.pade``), evaluated in
mpmath so tiny errors stay resolved; AAA (``scipy.interpolate.AAA``) and BRASIL (``baryrat``) serve
as independent cross-checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Callable, Optional, Sequence, Tuple

import mpmath
import numpy as np
from numpy.polynomial import chebyshev as cheb
from scipy.optimize import linprog, minimize_scalar

ERRORS = ("absolute", "relative")
#: below this the double-precision solver cannot resolve a relative/log error (rounding of exp, LP)
RESOLUTION = 1e-13


# ------------------------------------------------------------------------------------------------
# log-uniform error of a kernel
# ------------------------------------------------------------------------------------------------
@dataclass
class LogUniformError:
    """δ = ½(max g − min g), g = log f(s) − s on [lo, hi]; c = ½(max g + min g) the optimal shift."""

    delta: float
    c: float
    positive: bool
    #: where f ≤ 0: the exact roots of a rational f in the range and the grid points where f ≤ 0 (empty when
    #: f > 0 on the whole range)
    nonpositive_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    argmax: float = math.nan
    argmin: float = math.nan


def _check_range(R, interval):
    if interval is None:
        if R is None:
            raise ValueError("give R (the range [−R, R]) or interval=(lo, hi)")
        if isinstance(R, bool) or not isinstance(R, (int, float)) or not math.isfinite(R) or R <= 0:
            raise ValueError(f"R must be a positive finite number, got {R!r}")
        return -float(R), float(R)
    lo, hi = (float(v) for v in interval)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"interval must be a finite (lo, hi) with lo < hi, got {interval!r}")
    return lo, hi


def chebyshev_grid(lo: float, hi: float, n: int) -> np.ndarray:
    """n Chebyshev points of the second kind on [lo, hi] (both ends included), increasing."""
    t = np.cos(np.pi * np.arange(n - 1, -1, -1) / (n - 1)) if n > 1 else np.zeros(1)
    return 0.5 * (lo + hi) + 0.5 * (hi - lo) * t


def log_uniform_error(f: Callable, R: float | None = None, *, interval=None, points: int = 4097) -> LogUniformError:
    """δ_f on [−R, R] (or ``interval``): fine Chebyshev grid, then the extreme points polished by a
    bounded scalar optimisation in their neighbouring cells. δ = inf where f ≤ 0 somewhere.

    Positivity is decided exactly where f is a rational function (f applied to a sympy symbol gives
    one, as every ``similarity_function`` does): its numerator and denominator must have no real root
    in the closed range (Sturm sequences, ``Poly.count_roots``, on the exact binary values of the float
    coefficients), so a zero between grid points — (1 + s/2)² at s = −2 — is never missed. Other f are
    sampled on the grid and the smallest sample polished by a bounded minimisation.
    """
    lo, hi = _check_range(R, interval)
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"points must be an integer >= 2 (the grid δ is measured on), got {points!r}")
    s = chebyshev_grid(lo, hi, points)
    fs = np.asarray(f(s), dtype=float)
    if fs.shape != s.shape:
        raise ValueError(f"f must map an array of similarities to an array of the same shape, got {fs.shape}")
    zeros = rational_nonpositive_points(f, lo, hi)
    if zeros is not None:  # rational: the exact roots, with the samples where f ≤ 0
        zeros = np.union1d(zeros, s[~(fs > 0)]) if zeros.size else zeros
    else:  # not rational: the samples, and a polished minimum
        zeros = s[~(fs > 0)]
        if not zeros.size and np.isfinite(fs).all():
            i = int(np.argmin(fs))
            a, b = s[max(i - 1, 0)], s[min(i + 1, points - 1)]
            res = minimize_scalar(lambda x: float(f(np.asarray([x]))[0]), bounds=(a, b), method="bounded",
                                  options={"xatol": 1e-14 * max(1.0, abs(hi))})
            if not res.fun > 0:
                zeros = np.asarray([res.x])
    if zeros.size:
        return LogUniformError(math.inf, math.nan, False, np.asarray(zeros, dtype=float))

    def g(x):
        return math.log(float(f(np.asarray([x]))[0])) - x

    gs = np.log(fs) - s
    best = []
    for sign in (1.0, -1.0):
        i = int(np.argmax(sign * gs))
        a, b = s[max(i - 1, 0)], s[min(i + 1, points - 1)]
        value, where = gs[i], s[i]
        if b > a:
            res = minimize_scalar(lambda x: -sign * g(x), bounds=(a, b), method="bounded",
                                  options={"xatol": 1e-14 * max(1.0, abs(hi))})
            if -sign * res.fun > sign * value:
                value, where = -res.fun * sign, res.x
        best.append((value, where))
    (gmax, smax), (gmin, smin) = best
    return LogUniformError(0.5 * (gmax - gmin), 0.5 * (gmax + gmin), True, np.zeros(0), smax, smin)


def rational_nonpositive_points(f: Callable, lo: float, hi: float) -> Optional[np.ndarray]:
    """Where the rational function f is ≤ 0 (or undefined) on [lo, hi], decided exactly; None if f is
    not a rational function of one symbol.

    Returns the real roots of f's numerator and denominator in [lo, hi] (empty when f > 0 there), or
    ``[lo]`` when f has no root there but is negative throughout. Floats in f's expression are replaced
    by their exact binary values, so the answer is about the function the floating-point code evaluates.
    """
    import sympy as sp

    x = sp.Symbol("s", real=True)
    try:
        expr = f(x)
    except Exception:  # numpy-only code: not symbolic
        return None
    if not isinstance(expr, sp.Basic):
        try:
            expr = sp.sympify(expr)
        except (sp.SympifyError, TypeError):
            return None
    expr = expr.xreplace({c: sp.Rational(float(c)) for c in expr.atoms(sp.Float)})
    num, den = sp.fraction(sp.together(expr))
    if not (num.is_polynomial(x) and den.is_polynomial(x)):
        return None
    a, b = sp.Rational(lo), sp.Rational(hi)
    roots = []
    for part in (sp.Poly(num, x), sp.Poly(den, x)):
        if part.is_zero:
            return np.asarray([lo])
        if part.degree() > 0 and part.count_roots(a, b):
            roots += [float(r) for r in set(sp.real_roots(part)) if a <= r <= b]
    if roots:
        return np.asarray(sorted(roots))
    mid = (a + b) / 2
    return np.zeros(0) if (num / den).subs(x, mid) > 0 else np.asarray([lo])


# ------------------------------------------------------------------------------------------------
# variable maps: the interval ↔ t ∈ [−1, 1]
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IntervalMap:
    """x(t) for t ∈ [−1, 1]: affine for finite [a, b]; x = b − L(1−t)/(1+t) for (−∞, b];
    x = a + L(1+t)/(1−t) for [a, ∞). Möbius maps keep rational type (n, n)."""

    lo: float
    hi: float
    length: float = 1.0

    @property
    def finite(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    def x(self, t):
        t = np.asarray(t, dtype=float)
        with np.errstate(divide="ignore"):
            if self.finite:
                return 0.5 * (self.lo + self.hi) + 0.5 * (self.hi - self.lo) * t
            if math.isinf(self.lo):
                return np.where(t <= -1, -np.inf, self.hi - self.length * (1 - t) / (1 + t))
            return np.where(t >= 1, np.inf, self.lo + self.length * (1 + t) / (1 - t))

    def t(self, x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.finite:
                return (2 * x - self.lo - self.hi) / (self.hi - self.lo)
            if math.isinf(self.lo):  # (1+t)(b−x) = L(1−t)  →  t = (L − (b−x)) / (L + (b−x))
                u = self.hi - x
                return np.where(np.isinf(x), -1.0, (self.length - u) / (self.length + u))
            u = x - self.lo
            return np.where(np.isinf(x), 1.0, (u - self.length) / (u + self.length))


def _make_map(interval, length) -> IntervalMap:
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"interval must be a pair (lo, hi), got {interval!r}") from None
    if not lo < hi or (math.isinf(lo) and math.isinf(hi)) or math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"interval must satisfy lo < hi with at most one infinite end, got {interval!r}")
    if not (math.isfinite(length) and length > 0):
        raise ValueError(f"length must be a positive finite number, got {length!r}")
    return IntervalMap(lo, hi, float(length))


# ------------------------------------------------------------------------------------------------
# the minimax solver
# ------------------------------------------------------------------------------------------------
@dataclass
class BestApproximation:
    """Best approximation r of f in the weighted uniform norm, r given as a function of t ∈ [−1, 1]."""

    approximant: Callable  # r(t)
    map: IntervalMap
    degrees: Tuple[int, int]
    error: float  # max weighted error on the fine grid (an upper bound on the minimax error, up to the grid)
    lower: float  # de la Vallée Poussin lower bound from the alternation of the error (nan if none)
    kind: str
    method: str
    #: Chebyshev coefficients in t of a polynomial approximant (None for rationals)
    chebyshev: Optional[np.ndarray] = None

    def __call__(self, x):
        return self.approximant(self.map.t(x))

    @property
    def delta(self) -> float:
        """The log-uniform error δ = atanh(ε) of a relative-error fit (``kind == "relative"``; ε capped below
        1): rescaled, the best relative approximation of f is also the best in max |log r − log f|."""
        if self.kind != "relative":
            raise ValueError(f"delta = atanh(error) holds for a relative-error fit, this one is {self.kind!r}")
        return math.atanh(min(self.error, 1 - 1e-16))

    @property
    def delta_lower(self) -> float:
        """atanh of the de la Vallée Poussin lower bound (nan without one): δ* ≥ delta_lower."""
        if self.kind != "relative":
            raise ValueError(f"delta = atanh(error) holds for a relative-error fit, this one is {self.kind!r}")
        return math.atanh(self.lower) if np.isfinite(self.lower) else math.nan

    def power_coefficients(self) -> np.ndarray:
        """Monomial coefficients in x of a polynomial approximant on a finite interval."""
        if self.chebyshev is None or not self.map.finite:
            raise ValueError("power_coefficients needs a polynomial (n = 0) on a finite interval")
        alpha = 2.0 / (self.map.hi - self.map.lo)  # t = α x + β
        beta = -(self.map.lo + self.map.hi) / (self.map.hi - self.map.lo)
        in_t = np.polynomial.Polynomial(cheb.cheb2poly(self.chebyshev))
        return np.asarray(in_t(np.polynomial.Polynomial([beta, alpha])).coef)


def _weighted_problem(f, weight, kind, mapping):
    def values(t):
        x = mapping.x(t)
        with np.errstate(over="ignore", invalid="ignore"):
            fx = np.asarray(f(x), dtype=float)
            if kind == "relative":
                w = 1.0 / np.abs(fx)
            else:
                w = np.ones_like(fx) if weight is None else np.asarray(weight(x), dtype=float)
        return fx, w
    return values


def _ratio(num, den):
    return lambda t: cheb.chebval(t, num) / cheb.chebval(t, den)


def _curve(values, r):
    def curve(t):
        fx, w = values(t)
        return w * (fx - r(t))
    return curve


def alternation_lower_bound(curve_values: np.ndarray, points: int) -> float:
    """de la Vallée Poussin: if the error takes alternating signs at ``points`` ordered abscissae
    (m + n + 2 for a non-degenerate type (m, n)), the minimax error is ≥ the least |error| there.
    Takes the largest |e| of each sign run and returns the best such bound (nan if too few runs)."""
    e = np.asarray(curve_values)
    sign = np.sign(e)
    keep = sign != 0
    e, sign = e[keep], sign[keep]
    if len(e) == 0:
        return math.nan
    cuts = np.flatnonzero(np.diff(sign) != 0) + 1
    peaks = np.array([np.max(np.abs(run)) for run in np.split(e, cuts)])
    if len(peaks) < points:
        return math.nan
    # best window of `points` consecutive runs (consecutive runs alternate in sign)
    return float(max(peaks[i : i + points].min() for i in range(len(peaks) - points + 1)))


def _local_extrema(t, e, keep):
    """Indices of local maxima of |e| on the grid t (ends included), largest first, at most ``keep``."""
    a = np.abs(e)
    interior = np.r_[True, a[1:] >= a[:-1]] & np.r_[a[:-1] >= a[1:], True]
    idx = np.flatnonzero(interior)
    return idx[np.argsort(-a[idx])][:keep]


_LP_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


def _lp_polynomial(T, fx, w, m):
    """min ε s.t. |w (f − A a)| ≤ ε on the grid. Solved as a correction a = a₀ + σ d to the weighted
    least-squares fit a₀ (σ = its max residual), so the LP works with O(1) numbers and its tolerances
    act relative to the error."""
    A = cheb.chebvander(T, m)
    wA = w[:, None] * A
    a0 = np.linalg.lstsq(wA, w * fx, rcond=None)[0]
    res0 = w * fx - wA @ a0
    sigma = float(np.max(np.abs(res0))) or 1.0
    ones = np.ones((len(T), 1))
    a_ub = np.vstack([np.hstack([-wA, -ones]), np.hstack([wA, -ones])])
    b_ub = np.r_[-res0 / sigma, res0 / sigma]
    cost = np.r_[np.zeros(m + 1), 1.0]
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=[(None, None)] * (m + 2), method="highs", options=_LP_OPTIONS)
    if res.status != 0:
        raise RuntimeError(f"polynomial LP failed: {res.message}")
    return a0 + sigma * res.x[: m + 1], sigma * res.x[-1]


def _dca(T, fx, w, m, n, num, den, maxiter, rtol):
    """Differential correction: LP steps min z s.t. |w(fQ − P)| − δ_k Q ≤ z Q_k, |b_j| ≤ 1."""
    A, B = cheb.chebvander(T, m), cheb.chebvander(T, n)
    qk = B @ den
    delta = np.max(np.abs(w * (fx - (A @ num) / qk)))
    it = 0
    for it in range(1, maxiter + 1):
        # rows divided by δ_k so every term is O(1) and the LP tolerances act relative to the error
        wA, wfB = (w / delta)[:, None] * A, (w * fx / delta)[:, None] * B
        col = -qk[:, None]
        a_ub = np.vstack([np.hstack([-wA, wfB - B, col]), np.hstack([wA, -wfB - B, col])])
        cost = np.r_[np.zeros(m + n + 2), 1.0]
        bounds = [(None, None)] * (m + 1) + [(-1.0, 1.0)] * (n + 1) + [(None, None)]
        res = linprog(cost, A_ub=a_ub, b_ub=np.zeros(2 * len(T)), bounds=bounds, method="highs", options=_LP_OPTIONS)
        if res.status != 0 or res.x[-1] >= 0:
            break
        new_num, new_den = res.x[: m + 1], res.x[m + 1 : m + n + 2]
        q = B @ new_den
        if np.any(q <= 0):
            break
        new_delta = np.max(np.abs(w * (fx - (A @ new_num) / q)))
        if not new_delta < delta:
            break
        improved = delta - new_delta
        num, den, qk, delta = new_num, new_den, q, new_delta
        if improved <= rtol * delta:
            break
    return num, den, delta, it


def brasil_weighted(values, m: int, n: int, nodes: Optional[np.ndarray] = None, *, tol: float = 1e-6,
                    maxiter: int = 1000, init_steps: int = 200, max_step_size: float = 0.1,
                    step_factor: float = 0.1, golden_steps: int = 20, floor: float = 1e-15, patience: int = 60):
    """BRASIL (Hofreither 2021, as in ``baryrat.brasil``) for a *weighted* error w|f − r| on [−1, 1]:
    r interpolates f at m + n + 1 nodes (``baryrat.interpolate_rat``/``interpolate_poly``), and the
    interval lengths between nodes are adjusted until the local maxima of the weighted error are
    equal to ``tol``; it stops early when the error is below ``floor`` (rounding) or the deviation has
    not improved for ``patience`` steps. Returns (r, nodes, deviation)."""
    import baryrat

    nn = m + n + 1
    interp = baryrat.interpolate_poly if n == 0 else (baryrat.interpolate_rat if m == n else
                                                       (lambda x, y: baryrat.interpolate_with_degree(x, y, (m, n))))
    if nodes is None or len(nodes) != nn:
        nodes = np.sort(-np.cos((2 * np.arange(1, nn + 1) - 1) / (2 * nn) * np.pi))
    else:
        nodes, init_steps = np.sort(np.asarray(nodes, dtype=float)), 0
    deviation, r = math.inf, None
    best_deviation, since_best = math.inf, 0
    for k in range(init_steps + maxiter):
        r = interp(nodes, values(nodes)[0])
        all_nodes = np.r_[-1.0, nodes, 1.0]
        errfun = lambda t: np.abs(_curve(values, r)(np.asarray(t, dtype=float)))  # noqa: E731
        xs, peaks = baryrat.local_maxima_golden(errfun, all_nodes, num_iter=golden_steps)
        if peaks.max() < floor or peaks.min() <= 0:
            break
        deviation = peaks.max() / peaks.min() - 1
        if deviation <= tol:
            break
        if k >= init_steps:
            best_deviation, since_best = ((deviation, 0) if deviation < best_deviation else (best_deviation, since_best + 1))
            if since_best > patience:
                break
        if k < init_steps:  # move the node next to the smallest peak to the largest peak
            target = xs[peaks.argmax()]
            target = (3 * -1.0 + nodes[0]) / 4 if target <= -1 else ((nodes[-1] + 3) / 4 if target >= 1 else target)
            kmin = peaks.argmin()
            j = 0 if kmin == 0 else (nn - 1 if kmin == nn else
                                     (kmin if abs(target - nodes[kmin - 1]) < abs(target - nodes[kmin]) else kmin - 1))
            nodes[j] = target
            nodes.sort()
        else:
            lengths = np.diff(all_nodes)
            mean = peaks.mean()
            spread = np.abs(peaks - mean).max()
            step = min(max_step_size, step_factor * spread / mean)
            lengths = lengths * (1.0 - step) ** ((peaks - mean) / spread)
            lengths *= 2.0 / lengths.sum()
            nodes = np.cumsum(lengths)[:-1] - 1.0
    return r, nodes, deviation


def _sign_change_nodes(t, e, count):
    """Zeros of the error curve (linear interpolation between sign changes), if there are ``count``."""
    idx = np.flatnonzero(np.sign(e[1:]) * np.sign(e[:-1]) < 0)
    if len(idx) != count:
        return None
    t0, t1, e0, e1 = t[idx], t[idx + 1], e[idx], e[idx + 1]
    return t0 - e0 * (t1 - t0) / (e1 - e0)


def minimax(f: Callable, interval, m: int, n: int = 0, *, error: str = "absolute", weight: Optional[Callable] = None,
            points: int = 400, fine_points: int = 20001, rounds: int = 6, maxiter: int = 60, length: float = 1.0,
            tol: float = 1e-6, polish: bool = True) -> BestApproximation:
    """Best type-(m, n) approximation of f on ``interval``: min_r max_x w(x) |f(x) − r(x)|.

    ``error``: "absolute" (weight w, default 1) or "relative" (w = 1/|f|). ``interval`` may have one
    infinite end (then m == n: a Möbius map to [−1, 1] keeps type (n, n); ``length`` is its scale).
    Polynomials: LP on a grid, with exchange rounds adding the fine-grid extrema of the error until
    the fine error is within ``tol`` of the grid optimum. Rationals: differential correction (LP
    steps) from the best polynomial, then (``polish``) weighted BRASIL seeded with the zeros of that
    error; the better of the two is kept. ``error`` is measured on a fine grid, ``lower`` is the
    de la Vallée Poussin bound from the alternation of the final error.
    """
    for name, v in (("m", m), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    if error not in ERRORS:
        raise ValueError(f"error must be one of {ERRORS}, got {error!r}")
    if error == "relative" and weight is not None:
        raise ValueError("weight is implied by error='relative'; pass one or the other")
    from .budget import require_work

    # each exchange round solves an LP over the grid with m + n + 1 unknowns (dense simplex: ~ grid·(m+n+1)²)
    require_work(10.0 * rounds * max(points, 4 * (m + n + 2)) * (m + n + 1) ** 2 + 2.0 * fine_points * (m + n + 1),
                 f"minimax type ({m}, {n}) on {points} points, {rounds} rounds")
    mapping = _make_map(interval, length)
    if not mapping.finite and m != n:
        raise ValueError(f"on an infinite interval the type must be (n, n), got ({m}, {n})")
    values = _weighted_problem(f, weight, error, mapping)
    grid = chebyshev_grid(-1.0, 1.0, max(points, 4 * (m + n + 2)))
    fine = chebyshev_grid(-1.0, 1.0, fine_points)
    num = den = None
    for _ in range(rounds):
        fx, w = values(grid)
        if not (np.all(np.isfinite(fx)) and np.all(np.isfinite(w))):
            raise ValueError("f (and the weight) must be finite on the interval")
        pnum, plower = _lp_polynomial(grid, fx, w, m)
        if n == 0:
            num, den, grid_error = pnum, np.ones(1), plower
        else:
            start_num, start_den = pnum, np.r_[1.0, np.zeros(n)]
            if num is not None:  # warm start from the previous round when it is better on this grid
                prev = np.max(np.abs(w * (fx - _ratio(num, den)(grid))))
                if np.all(cheb.chebval(grid, den) > 0) and prev < plower:
                    start_num, start_den = num, den
            num, den, grid_error, _ = _dca(grid, fx, w, m, n, start_num, start_den, maxiter, 1e-12)
        curve = _curve(values, _ratio(num, den))(fine)
        curve = np.where(np.isfinite(curve), curve, np.inf)
        fine_error = float(np.max(np.abs(curve)))
        if fine_error <= grid_error * (1 + tol):
            break
        grid = np.unique(np.r_[grid, fine[_local_extrema(fine, curve, 4 * (m + n + 2))]])
    best, method = _ratio(num, den), ("LP" if n == 0 else "differential correction")
    if n > 0 and polish:
        seeds = _sign_change_nodes(fine, curve, m + n + 1)
        try:
            r, _, _ = brasil_weighted(values, m, n, seeds)
            cand = _curve(values, r)(fine)
            if np.all(np.isfinite(cand)) and np.max(np.abs(cand)) < fine_error:
                best, method, curve, fine_error = r, "differential correction + weighted BRASIL", cand, float(np.max(np.abs(cand)))
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError, FloatingPointError):
            pass
    lower = alternation_lower_bound(curve, m + n + 2)
    return BestApproximation(best, mapping, (m, n), fine_error, lower, error, method, num / den[0] if n == 0 else None)


# ------------------------------------------------------------------------------------------------
# exp on [−R, R]: best polynomial and rational in log error, Taylor and Padé references
# ------------------------------------------------------------------------------------------------
def _exp(x):
    return np.exp(x)


@lru_cache(maxsize=None)
def best_exp(degree: int, R: float, rational: bool = False) -> BestApproximation:
    """Best degree-p polynomial (or type (p, p) rational) for exp on [−R, R] in relative error. Cached.

    Returns a :class:`BestApproximation` whose ``error`` is the relative error ε* and whose ``delta`` is the
    log-uniform error δ* = atanh(ε*) the bridge speaks of (rescaled, the fit is also optimal in log error)."""
    n = degree if rational else 0
    return minimax(_exp, (-R, R), degree, n, error="relative")


@lru_cache(maxsize=None)
def minimax_polynomial_coefficients(degree: int, R: float) -> Tuple[float, ...]:
    """a_0..a_p of the positive degree-p polynomial with least log-uniform error against exp on
    [−R, R], scaled so that the error log f − s is centred (c = 0). Cached."""
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree must be a non-negative integer, got {degree!r}")
    if isinstance(R, bool) or not isinstance(R, (int, float)) or not math.isfinite(R) or R <= 0:
        raise ValueError(f"R must be a positive finite number, got {R!r}")
    coef = best_exp(degree, float(R)).power_coefficients()
    err = log_uniform_error(lambda s: np.polynomial.polynomial.polyval(s, coef), R)
    if not err.positive:
        raise RuntimeError(f"the degree-{degree} minimax polynomial is not positive on [−{R}, {R}]")
    return tuple(float(a) for a in coef * math.exp(-err.c))


def taylor_exp_coefficients(degree: int) -> list:
    return [Fraction(1, math.factorial(r)) for r in range(degree + 1)]


def pade_exp_coefficients(degree: int) -> Tuple[list, list]:
    """Exact Padé [p/p] of exp: numerator Σ (2p−j)! p! / ((2p)! j! (p−j)!) s^j, denominator at −s.
    (Cross-checked against scipy.interpolate.pade in the tests.)"""
    p = degree
    num = [Fraction(math.factorial(2 * p - j) * math.factorial(p),
                    math.factorial(2 * p) * math.factorial(j) * math.factorial(p - j)) for j in range(p + 1)]
    den = [c * (-1) ** j for j, c in enumerate(num)]
    return num, den


def log_uniform_error_mp(numerator: Sequence, denominator: Sequence = (1,), R: float = 1.0, *, points: int = 801,
                         dps: int = 50) -> LogUniformError:
    """δ of the rational Σ a_j s^j / Σ b_j s^j (exact coefficients) against exp on [−R, R], in
    mpmath at ``dps`` digits on a Chebyshev grid (for errors below double precision)."""
    with mpmath.workdps(dps):
        num = [mpmath.mpf(Fraction(a).numerator) / Fraction(a).denominator for a in numerator]
        den = [mpmath.mpf(Fraction(b).numerator) / Fraction(b).denominator for b in denominator]
        g, ss = [], []
        for k in range(points):
            s = -R * mpmath.cos(mpmath.pi * k / (points - 1))
            fv = mpmath.polyval(num[::-1], s) / mpmath.polyval(den[::-1], s)
            if fv <= 0:
                return LogUniformError(math.inf, math.nan, False, np.array([float(s)]))
            g.append(mpmath.log(fv) - s)
            ss.append(s)
        gmax, gmin = max(g), min(g)
        return LogUniformError(float((gmax - gmin) / 2), float((gmax + gmin) / 2), True, np.zeros(0),
                               float(ss[g.index(gmax)]), float(ss[g.index(gmin)]))


# ------------------------------------------------------------------------------------------------
# asymptotic rates (leading terms as p → ∞ at fixed R)
# ------------------------------------------------------------------------------------------------
def taylor_rate(p: int, R: float) -> float:
    """Taylor remainder at s = −R, halved by the optimal shift: ½ e^R R^{p+1} / (p+1)!."""
    return 0.5 * math.exp(R) * R ** (p + 1) / math.factorial(p + 1)


def best_polynomial_rate(p: int, R: float) -> float:
    """Bernstein: best degree-p error of e^{Rt} on [−1, 1] ~ (R/2)^{p+1} · 2 / (p+1)!."""
    return 2.0 * (R / 2) ** (p + 1) / math.factorial(p + 1)


def pade_rate(p: int, R: float) -> float:
    """Padé [p/p] remainder at s = ±R: (p!)² R^{2p+1} / ((2p)! (2p+1)!)."""
    return math.factorial(p) ** 2 * R ** (2 * p + 1) / (math.factorial(2 * p) * math.factorial(2 * p + 1))


def best_rational_rate(p: int, R: float) -> float:
    """Braess: best type-(p, p) error of exp on [−R, R] ~ 2 (p!)² (R/2)^{2p+1} / ((2p)! (2p+1)!),
    4^{-p} times the Padé remainder."""
    return 2.0 * math.factorial(p) ** 2 * (R / 2) ** (2 * p + 1) / (math.factorial(2 * p) * math.factorial(2 * p + 1))


#: Halphen's constant: best type-(n, n) error of exp on (−∞, 0] ~ 2 H^{-n-1/2}
HALPHEN = 9.289025491920818918755449435951


def halphen_rate(n: int) -> float:
    return 2.0 * HALPHEN ** (-n - 0.5)
