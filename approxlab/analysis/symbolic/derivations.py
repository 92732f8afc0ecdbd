"""Derivations behind the kernels, each a sympy identity whose residual simplifies to zero.

    associativity      Φ_Q(Φ_Kᵀ V) / Φ_Q(Φ_Kᵀ 1) = row-normalised (Φ_Q Φ_Kᵀ) V     (causal: prefix sums)
    hla_state          Σ_j Π_r (a_r·b_rj) v_j = ⟨a_1 ⊗ … ⊗ a_p, Σ_j b_1j ⊗ … ⊗ b_pj ⊗ v_j⟩
    taylor_features    φ(x)·φ(y) = Σ_{r≤p} (x·y)^r / r!,   φ(x) = [x^α / √α!]_{|α| ≤ p}
    taylor_minimum     T_p' = T_{p−1} and T_p = T_{p−1} + s^p/p!, so T_p(s*) = s*^p/p! at a critical point
    gaussian_kernel    E_w[exp(w·x − ‖x‖²/2) exp(w·y − ‖y‖²/2)] = exp(x·y),  w ~ N(0, I)
    performer_variance Var of the m-feature mean = (1/m) exp(‖x+y‖²) SM² (1 − exp(−‖x+y‖²)),  SM = exp(x·y)
    bridge_tv          max over rows with |log f − s − c| ≤ δ of TV(a, softmax) = tanh(δ/2)

A :class:`Derivation` keeps the claim, the intermediate steps and the residuals; ``holds`` is True when
every residual is zero, and in Jupyter it renders as LaTeX.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Tuple

import sympy as sp

from ...core.checks import check_int
from ...variants import build_kernel
from ...variants._expression import exact


@dataclass(frozen=True)
class Derivation:
    """claim: lhs = rhs; steps: (LaTeX label, sympy expression) in order; residuals: each must be 0."""

    title: str
    lhs: sp.Basic
    rhs: sp.Basic
    steps: Tuple[Tuple[str, sp.Basic], ...]
    residuals: Tuple[sp.Basic, ...]

    @property
    def holds(self) -> bool:
        return all(is_zero(r) for r in self.residuals)

    def _repr_latex_(self) -> str:
        lines = [rf"\text{{{self.title}}}", rf"{sp.latex(self.lhs)} &= {sp.latex(self.rhs)}"]
        lines += [rf"{label}:\quad & {sp.latex(expr)}" for label, expr in self.steps]
        verdict = "holds (residuals simplify to 0)" if self.holds else "FAILS (non-zero residual)"
        lines.append(rf"\text{{{verdict}}}")
        return r"$$\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}$$"

    def __str__(self) -> str:
        steps = "\n".join(f"  {label}: {sp.sstr(expr)}" for label, expr in self.steps)
        return f"{self.title}\n  {sp.sstr(self.lhs)} = {sp.sstr(self.rhs)}\n{steps}\n  holds: {self.holds}"


def is_zero(expr) -> bool:
    """True when a scalar, Matrix or Array is identically zero (exact sympy comparison)."""
    if isinstance(expr, (sp.MatrixBase, sp.NDimArray)):
        return all(e == 0 for e in sp.flatten(expr.tolist()))
    return sp.sympify(expr) == 0


def residual(lhs, rhs):
    """lhs − rhs reduced to canonical form (cancel for rational, simplify otherwise), elementwise."""
    def reduce(e):
        e = sp.cancel(sp.together(e))
        return e if e == 0 else sp.simplify(e)
    if isinstance(lhs, (sp.MatrixBase, sp.NDimArray)):
        return sp.Matrix(sp.flatten((sp.Array(lhs) - sp.Array(rhs)).tolist())).applyfunc(reduce)
    return reduce(lhs - rhs)


# ----------------------------------------------------------------------------------------------
# 1. associativity: efficient = explicit
# ----------------------------------------------------------------------------------------------
def associativity(n: int = 3, features: int = 2, dv: int = 2, *, causal: bool = False) -> Derivation:
    """Φ_Q(Φ_Kᵀ V)/Φ_Q(Φ_Kᵀ 1) equals the explicit normalised (Φ_Q Φ_Kᵀ) V for symbolic n×F features."""
    n, features, dv = (check_int(v, name, minimum=1) for v, name in ((n, "n"), (features, "features"), (dv, "dv")))
    fq = sp.Matrix(n, features, lambda i, f: sp.Symbol(f"phi_q{i + 1}{f + 1}", positive=True))
    fk = sp.Matrix(n, features, lambda i, f: sp.Symbol(f"phi_k{i + 1}{f + 1}", positive=True))
    v = sp.Matrix(n, dv, lambda i, c: sp.Symbol(f"v{i + 1}{c + 1}"))
    kernel = fq * fk.T
    if causal:
        kernel = sp.Matrix(n, n, lambda i, j: kernel[i, j] if j <= i else 0)
    weights = sp.Matrix(n, n, lambda i, j: kernel[i, j] / sum(kernel.row(i)))
    explicit = weights * v
    rows = []
    for i in range(n):
        keys = range(i + 1) if causal else range(n)
        state = sum((fk.row(j).T * v.row(j) for j in keys), sp.zeros(features, dv))  # S = Σ_j φ(k_j)ᵀ v_j
        norm = sum((fk.row(j).T for j in keys), sp.zeros(features, 1))  # z = Σ_j φ(k_j)ᵀ
        rows.append((fq.row(i) * state) / (fq.row(i) * norm)[0, 0])
    efficient = sp.Matrix.vstack(*rows)
    mode = "causal" if causal else "non-causal"
    return Derivation(
        f"associativity ({mode}, n={n}, F={features}, Dv={dv})", efficient, explicit,
        steps=((r"S_n = \sum_j \phi(k_j)^\top v_j", sum((fk.row(j).T * v.row(j) for j in range(n)), sp.zeros(features, dv))),),
        residuals=(residual(efficient, explicit),),
    )


# ----------------------------------------------------------------------------------------------
# 2. HLA tensor state
# ----------------------------------------------------------------------------------------------
def hla_state(factors: int = 2, n: int = 2, dim: int = 2, dv: int = 2) -> Derivation:
    """Σ_j Π_r (a_r·b_rj) v_j equals the state Σ_j b_1j ⊗ … ⊗ b_pj ⊗ v_j contracted with a_1, …, a_p."""
    factors, n, dim, dv = (check_int(v, name, minimum=1) for v, name in
                           ((factors, "factors"), (n, "n"), (dim, "dim"), (dv, "dv")))
    a = [sp.Array(sp.symbols(f"a_{r}_1:{dim + 1}")) for r in range(1, factors + 1)]
    b = [[sp.Array(sp.symbols(f"b_{r}{j}_1:{dim + 1}")) for j in range(1, n + 1)] for r in range(1, factors + 1)]
    v = [sp.Array(sp.symbols(f"v_{j}_1:{dv + 1}")) for j in range(1, n + 1)]

    def dot(x, y):
        return sum(xi * yi for xi, yi in zip(x, y))

    direct = sum((sp.Mul(*[dot(a[r], b[r][j]) for r in range(factors)]) * v[j] for j in range(n)),
                 sp.Array([0] * dv))
    state = sum((sp.tensorproduct(*[b[r][j] for r in range(factors)], v[j]) for j in range(n)),
                sp.Array.zeros(*([dim] * factors + [dv])))
    readout = state
    for r in range(factors):  # contract the leading factor axis with a_r each time
        readout = sp.tensorcontraction(sp.tensorproduct(a[r], readout), (0, 1))
    return Derivation(
        f"HLA tensor state (p={factors}, n={n}, D={dim}, Dv={dv})", direct, readout,
        steps=((r"\text{shape of } S", sp.Tuple(*state.shape)),),
        residuals=(residual(direct, readout),),
    )


# ----------------------------------------------------------------------------------------------
# 3. Taylor features and the sign of T_p
# ----------------------------------------------------------------------------------------------
def monomial_features(x, coefficients):
    """Symbolic twin of ``variants._monomials.monomial_features``: [√(|a_r| r!/α!) x^α], same order."""
    out = []
    for r, a in enumerate(coefficients):
        if a == 0:
            continue
        for idx in itertools.combinations_with_replacement(range(len(x)), r):
            alpha_fact = sp.Mul(*[sp.factorial(idx.count(i)) for i in set(idx)])
            out.append(sp.sqrt(abs(a) * sp.factorial(r) / alpha_fact) * sp.Mul(*[x[i] for i in idx]))
    return sp.Matrix(out)


def taylor_polynomial(order: int):
    """T_p(s) from the taylor variant's own similarity_function (exact rationals)."""
    from .kernels import s

    return sp.expand(exact(build_kernel("taylor", 1, order=order).similarity_function(s)))


def taylor_features(order: int = 2, dim: int = 2) -> Derivation:
    """The taylor feature map's inner product equals exp's Taylor polynomial Σ_{r≤p} (x·y)^r/r! (sympy series)."""
    order, dim = check_int(order, "order", minimum=0), check_int(dim, "dim", minimum=1)
    x, y = sp.symbols(f"x_1:{dim + 1}", real=True), sp.symbols(f"y_1:{dim + 1}", real=True)
    coefficients = [sp.nsimplify(a) for a in build_kernel("taylor", dim, order=order).coefficients]
    fx, fy = monomial_features(x, coefficients), monomial_features(y, coefficients)
    inner = sp.expand((fx.T * fy)[0, 0])
    sim = sum(xi * yi for xi, yi in zip(x, y))
    t = sp.Symbol("t")
    reference = sp.expand(sp.exp(t).series(t, 0, order + 1).removeO().subs(t, sim))
    return Derivation(
        f"Taylor features (p={order}, D={dim})", inner, reference,
        steps=((r"\dim\phi", sp.Integer(fx.shape[0])), (r"\binom{D+p}{p}", sp.binomial(dim + order, order))),
        residuals=(residual(inner, reference), sp.Integer(fx.shape[0]) - sp.binomial(dim + order, order)),
    )


def taylor_real_roots(order: int) -> int:
    """Number of real roots of T_p (Sturm sequence, ``Poly.count_roots``): 0 for even p, 1 for odd p."""
    from .kernels import s

    return sp.Poly(taylor_polynomial(check_int(order, "order", minimum=1)), s).count_roots()


def taylor_minimum(order: int) -> Derivation:
    """T_p' = T_{p−1} and T_p − T_{p−1} = s^p/p!: at a critical point s* (T_{p−1}(s*) = 0, s* ≠ 0)
    T_p(s*) = s*^p/p!, which is > 0 for even p — so even-order T_p has no real root."""
    from .kernels import s

    order = check_int(order, "order", minimum=1)
    tp, tq = taylor_polynomial(order), taylor_polynomial(order - 1)
    top = s ** order / sp.factorial(order)
    return Derivation(
        f"Taylor polynomial of order {order} at its critical points", tp, tq + top,
        steps=((r"T_p'(s)", sp.diff(tp, s)), (r"T_{p-1}(0)", tq.subs(s, 0))),
        residuals=(residual(sp.diff(tp, s), tq), residual(tp, tq + top), sp.Integer(1) - tq.subs(s, 0)),
    )


# ----------------------------------------------------------------------------------------------
# 4. FAVOR+ positive features: unbiasedness and Lemma 2
# ----------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def gaussian_mgf():
    """M(u) = E[exp(u W)], W ~ N(0, 1), computed by sympy.stats (= exp(u²/2))."""
    from sympy.stats import E, Normal

    u = sp.Symbol("u", real=True)
    return u, sp.simplify(E(sp.exp(u * Normal("W", 0, 1))))


def _favor_moment(x, y, power: int):
    """E_w[(φ_w(x) φ_w(y))^k], φ_w(x) = exp(w·x − ‖x‖²/2), w ~ N(0, I): independent coordinates factor."""
    u, mgf = gaussian_mgf()
    sq = sum(xi ** 2 + yi ** 2 for xi, yi in zip(x, y))
    return sp.Mul(*[mgf.subs(u, power * (xi + yi)) for xi, yi in zip(x, y)]) * sp.exp(-power * sq / 2)


def gaussian_kernel(dim: int = 2) -> Derivation:
    """E_w[exp(w·x − ‖x‖²/2) exp(w·y − ‖y‖²/2)] = exp(x·y): positive random features are unbiased."""
    dim = check_int(dim, "dim", minimum=1)
    x, y = sp.symbols(f"x_1:{dim + 1}", real=True), sp.symbols(f"y_1:{dim + 1}", real=True)
    lhs = _favor_moment(x, y, 1)
    rhs = sp.exp(sum(xi * yi for xi, yi in zip(x, y)))
    u, mgf = gaussian_mgf()
    return Derivation(
        f"FAVOR+ unbiasedness (D={dim})", lhs, rhs,
        steps=((r"\mathbb{E}\,e^{uW},\ W \sim N(0,1)", mgf),),
        residuals=(sp.simplify(sp.expand(sp.log(lhs / rhs), force=True)),),
    )


def performer_variance(dim: int = 2) -> Derivation:
    """Lemma 2: Var[(1/m) Σ_i φ_wi(x)φ_wi(y)] = (1/m) exp(‖x+y‖²) SM² (1 − exp(−‖x+y‖²)), iid w_i."""
    dim = check_int(dim, "dim", minimum=1)
    x, y = sp.symbols(f"x_1:{dim + 1}", real=True), sp.symbols(f"y_1:{dim + 1}", real=True)
    m = sp.Symbol("m", positive=True, integer=True)
    second, first = _favor_moment(x, y, 2), _favor_moment(x, y, 1)
    variance = (second - first ** 2) / m  # iid features: the variance of a mean of m is Var/m
    norm_sum = sum((xi + yi) ** 2 for xi, yi in zip(x, y))
    sm = sp.exp(sum(xi * yi for xi, yi in zip(x, y)))
    lemma = sp.exp(norm_sum) * sm ** 2 * (1 - sp.exp(-norm_sum)) / m
    return Derivation(
        f"Performer Lemma 2, positive features (D={dim})", variance, lemma,
        steps=((r"\mathbb{E}[(\phi(x)\phi(y))^2]", sp.simplify(second)),
               (r"\mathrm{Var}/\mathrm{SM}^2", sp.simplify(lemma / sm ** 2))),
        residuals=(sp.simplify(sp.expand(sp.powsimp(sp.expand(variance - lemma)), force=True)),),
    )


# ----------------------------------------------------------------------------------------------
# 5. the bridge: log-uniform kernel error δ → worst row TV tanh(δ/2)
# ----------------------------------------------------------------------------------------------
def bridge_tv() -> Derivation:
    """Worst row TV between a_j ∝ f(s_j) and softmax when |log f(s_j) − s_j − c| ≤ δ.

    With softmax weights p_j and errors ε_j, a_j = p_j e^{ε_j} / Σ_l p_l e^{ε_l}. For A = {j : a_j > p_j},
    TV = a(A) − p(A), and ∂a(A)/∂ε_i = a_i (1 − a(A)) > 0 on A, −a_i a(A) < 0 off A, so the worst errors are
    +δ on A, −δ off A. With t = p(A): TV(t) = t e^δ / (t e^δ + (1 − t) e^{−δ}) − t, maximised at
    t* = 1/(1 + e^δ), where TV = tanh(δ/2).
    """
    delta = sp.Symbol("delta", positive=True)
    t = sp.Symbol("t", positive=True)
    tv = t * sp.exp(delta) / (t * sp.exp(delta) + (1 - t) * sp.exp(-delta)) - t
    critical = [c for c in sp.solve(sp.diff(tv, t), t) if c.is_positive and (1 - c).is_positive is not False]
    if len(critical) != 1:
        raise ArithmeticError(f"expected one critical point in (0, 1), sympy found {critical}")
    t_star = sp.simplify(critical[0])
    worst = sp.simplify(tv.subs(t, t_star))
    curvature = sp.simplify(sp.diff(tv, t, 2).subs(t, t_star))
    # the sign pattern: three weights, A = {1}; derivatives of a_1 with respect to each error
    p1, p2, p3 = sp.symbols("p1:4", positive=True)
    e1, e2, e3 = sp.symbols("epsilon1:4", real=True)
    z = p1 * sp.exp(e1) + p2 * sp.exp(e2) + p3 * sp.exp(e3)
    a1, a2 = p1 * sp.exp(e1) / z, p2 * sp.exp(e2) / z
    return Derivation(
        "bridge: worst row TV under log-uniform error delta", tv.subs(t, t_star), sp.tanh(delta / 2),
        steps=((r"\mathrm{TV}(t),\ t = p(A)", tv), (r"t^*", t_star), (r"\mathrm{TV}''(t^*)", curvature),
               (r"\partial a_1/\partial\varepsilon_1", sp.factor(sp.diff(a1, e1)))),
        residuals=(
            residual(t_star, 1 / (1 + sp.exp(delta))),
            sp.simplify((worst - sp.tanh(delta / 2)).rewrite(sp.exp)),
            residual(sp.diff(a1, e1), a1 * (1 - a1)),
            residual(sp.diff(a1, e2), -a1 * a2),
            sp.Integer(0) if curvature.is_negative else sp.Integer(1),  # a maximum, not a minimum
        ),
    )


def worst_case_row(delta: float):
    """(softmax weights, kernel weights) of a two-key row attaining TV = tanh(δ/2): p = (t*, 1 − t*),
    errors (+δ, −δ), t* = 1/(1 + e^δ)."""
    if not math.isfinite(delta) or delta < 0:
        raise ValueError(f"delta must be a finite number >= 0, got {delta!r}")
    t = 1.0 / (1.0 + math.exp(delta))
    num = (t * math.exp(delta), (1 - t) * math.exp(-delta))
    return (t, 1 - t), tuple(c / sum(num) for c in num)
