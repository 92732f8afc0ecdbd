"""Each variant's kernel κ as a sympy expression, its row weight, and the degree sympy derives from it.

    row weight   a_1 = κ(x, y_1) / Σ_{l=1}^{n} κ(x, y_l)        (a rational function when κ is a polynomial)

Kernels of the similarity alone come from the variant's own ``similarity_function`` (taylor,
polynomial, hla with the affine map), so the formula has one home. linear (φ = elu + 1), relu and hla
with elu/relu factors are built from their feature-map definitions on symbolic vectors; on the
positive orthant elu(x) + 1 = x + 1 and relu(x) = x, where κ is a polynomial. hla factors get
distinct vectors (a_r for the query, b_r for the key), i.e. p distinct factor similarities a_r·b_r.

``rational_degree`` reduces the weight with ``sympy.cancel`` and reads the total degrees of numerator
and denominator (``Poly.total_degree``) in the row's key variables: the similarities s_l, or the key
entries y_l. Each s_l = x·y_l is linear in y_l, so a degree in y_l is the same degree in s_l.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import sympy as sp

from ...core.checks import check_int
from ...variants import VARIANTS, build_kernel, kernel_name

#: symbols shared by every expression
s = sp.Symbol("s", real=True)
D = sp.Symbol("D", integer=True, positive=True)
m = sp.Symbol("m", integer=True, positive=True)
p = sp.Symbol("p", integer=True, positive=True)
_d = sp.Symbol("d", integer=True, positive=True)
_r = sp.Symbol("r", integer=True, positive=True)

NO_DEGREE = {
    "softmax": "exp(s) is entire and not rational: exp(s_1)/Σ_l exp(s_l) has no finite (numerator, denominator) degree",
    "performer": "κ̂ = (1/m) Σ_i exp(w_i·x − ‖x‖²/2) exp(w_i·y − ‖y‖²/2) is a random sum of m exponentials, "
                 "unbiased for exp(s) (see gaussian_kernel), not a rational function of s",
    "hyperbolic": "κ̂ = (1/2m) Σ_i e^{−(‖x‖²+‖y‖²)/2} (e^{w_i·x}e^{w_i·y} + e^{−w_i·x}e^{−w_i·y}), a random sum of "
                  "exponentials unbiased for exp(s)",
    "favorpp": "κ̂ = (1/m) Σ_i D_A² exp(2A‖w_i‖² + B w_i·(x+y) − (‖x‖²+‖y‖²)/2), random exponentials unbiased for exp(s)",
    "favorsharp": "κ̂ = FAVOR++ on (Ψx, Ψ⁻¹y): random exponentials unbiased for exp(s)",
    "maclaurin": "κ̂ = (1/m) Σ_i a_{N_i}/P(N_i) Π_k (ω_ik·x)(ω_ik·y): random polynomial terms of random degree, "
                 "unbiased for exp(s); its degree is that of the largest sampled N, not a fixed one",
    "hedgehog": "κ = Σ_f [e^{a_f} e^{b_f} + e^{−a_f} e^{−b_f}] with a = xW + c, b = yW + c: a sum of exponentials "
                "of the key entries, not a rational function of them",
}
#: variants whose κ is a random estimate of exp(s) (their mean), with the form of one draw
RANDOM_ESTIMATES = ("performer", "hyperbolic", "favorpp", "favorsharp", "maclaurin")


# ----------------------------------------------------------------------------------------------
# feature maps in sympy (their torch twins live in approxlab.variants)
# ----------------------------------------------------------------------------------------------
def elu_plus_one(t):
    """φ(t) = elu(t) + 1 = t + 1 (t > 0), exp(t) (t ≤ 0)."""
    return sp.Piecewise((t, t > 0), (sp.exp(t) - 1, True)) + 1


def relu(t):
    """φ(t) = max(0, t)."""
    return sp.Max(0, t)


FEATURE_MAPS = {"elu": elu_plus_one, "relu": relu}


def feature_sign(phi) -> str:
    """'positive', 'non-negative' or 'sign-changing': sign of a 1-D feature map over the reals, by solveset."""
    t = sp.Symbol("t", real=True)
    expr = sp.piecewise_fold(phi(t).rewrite(sp.Piecewise))
    pieces = expr.args if isinstance(expr, sp.Piecewise) else ((expr, True),)
    covered = sp.EmptySet
    nonpositive, negative = sp.EmptySet, sp.EmptySet
    for piece, cond in pieces:
        region = sp.Reals if cond in (True, sp.true) else cond.as_set()
        region = sp.Complement(region, covered)
        covered = sp.Union(covered, region)
        nonpositive = sp.Union(nonpositive, sp.solveset(piece <= 0, t, region))
        negative = sp.Union(negative, sp.solveset(piece < 0, t, region))
    if nonpositive.is_empty:
        return "positive"
    return "non-negative" if negative.is_empty else "sign-changing"


def _exact(expr):
    """Replace float coefficients (e.g. 1/r! stored as floats) by the rationals they round."""
    return expr.xreplace({f: sp.nsimplify(f, rational=True) for f in expr.atoms(sp.Float)})


def _param_text(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


# ----------------------------------------------------------------------------------------------
# kernel expressions
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelExpression:
    """κ of one (query, key) pair as a sympy expression.

    ``kappa`` is the display form (symbolic head dim D where it matters); ``concrete`` the same κ at
    ``dim`` with explicit symbols; ``key`` the symbols of one key in ``concrete`` (the similarity s, or
    the key entries), ``query`` those of the query.
    """

    variant: str
    params: dict
    kappa: sp.Expr
    concrete: sp.Expr
    query: Tuple[sp.Symbol, ...]
    key: Tuple[sp.Symbol, ...]
    of_similarity: bool
    features: sp.Expr  # feature dimension F (symbols D, m)
    feature_sign: str = "positive"
    note: str = field(default="")

    def row_kernels(self, n: int):
        """κ(x, y_l) for l = 1..n with fresh key symbols per l, and the list of all key symbols."""
        n = check_int(n, "n", minimum=1)
        kernels, keys = [], []
        for l in range(1, n + 1):
            fresh = [sp.Symbol(f"{k.name}_{l}" if self.of_similarity else f"{k.name}^{l}", **k.assumptions0)
                     for k in self.key]
            kernels.append(self.concrete.xreplace(dict(zip(self.key, fresh))))
            keys.extend(fresh)
        return kernels, keys

    def row_weight(self, n: int = 2):
        """a_1 = κ_1 / Σ_l κ_l for a row of n keys, and the row's key symbols."""
        kernels, keys = self.row_kernels(n)
        return kernels[0] / sp.Add(*kernels), keys

    def display_weight(self):
        """a_j = κ_j / Σ_l κ_l with κ written out (indexed symbols, symbolic n)."""
        j, l, n = sp.symbols("j l n", integer=True, positive=True)
        if self.of_similarity and self.variant not in RANDOM_ESTIMATES:
            sv = sp.IndexedBase("s")
            return self.kappa.subs(s, sv[j]) / sp.Sum(self.kappa.subs(s, sv[l]), (l, 1, n))
        kj = sp.Function(r"\kappa")(sp.Symbol("x"), sp.Indexed("y", j))
        kl = sp.Function(r"\kappa")(sp.Symbol("x"), sp.Indexed("y", l))
        return kj / sp.Sum(kl, (l, 1, n))

    def display_kappa(self) -> sp.Expr:
        """κ in its shorter form, expanded or factored."""
        factored = sp.factor(self.kappa) if self.of_similarity else self.kappa
        return min((self.kappa, factored), key=lambda e: len(sp.latex(e)))

    def _repr_latex_(self):
        return rf"$\displaystyle \kappa_{{\mathrm{{{self.variant}}}}} = {sp.latex(self.display_kappa())}$"


def _similarity_kernel(variant, kernel, params, note=""):
    kappa = sp.expand(_exact(kernel.similarity_function(s)))
    return dict(kappa=kappa, concrete=kappa, query=(), key=(s,), of_similarity=True, note=note)


def _vector_kernel(phi, dim: int):
    """Σ_d φ(x_d) φ(y_d): display form (symbolic D) and concrete form (dim entries, positive orthant)."""
    xi, yi = sp.IndexedBase("x", positive=True), sp.IndexedBase("y", positive=True)
    display = sp.Sum(phi(xi[_d]) * phi(yi[_d]), (_d, 1, D))
    x = sp.symbols(f"x_1:{dim + 1}", positive=True)
    y = sp.symbols(f"y_1:{dim + 1}", positive=True)
    concrete = sp.Add(*[phi(a) * phi(b) for a, b in zip(x, y)])
    return display, concrete, x, y


def kernel_expression(variant: str, *, dim: int = 2, **params) -> KernelExpression:
    """κ of ``variant`` (parameters as for ``approxlab.api``) as sympy; ``dim`` sizes the symbolic vectors.

    softmax gives exp(s); performer gives its expectation exp(s) (the estimate itself is random).
    Any other kernel (a registered name, a kernel object or class, see :mod:`approxlab.variants`) is
    read from its ``sympy_kernel(s)``; a sympy expression in one symbol named ``s`` is κ(s) itself.
    """
    dim = check_int(dim, "dim", minimum=1)
    if not (isinstance(variant, str) and variant in VARIANTS):
        return _custom_expression(variant, dim, params)
    if variant == "softmax":
        if params:
            raise TypeError(f"softmax takes no parameters, got {sorted(params)}")
        from ...variants.softmax import similarity_function

        kappa = similarity_function(s)
        return KernelExpression(variant, params, kappa, kappa, (), (s,), True, features=sp.Symbol("N"),
                                note="exact reference; explicit N×N form")
    if variant == "cosformer":  # its head dim carries two position coordinates: validate with them
        build_kernel(variant, dim + 2, **params)
        return _cosformer_expression(params, dim)
    kernel = build_kernel(variant, dim, **params)
    if variant == "performer":
        i = sp.Symbol("i", integer=True, positive=True)
        wx, wy, nx, ny = (sp.Symbol(name, real=True) for name in
                          (r"{w_i^\top x}", r"{w_i^\top y}", r"\|x\|", r"\|y\|"))
        if kernel.kind == "positive":
            estimate = sp.Sum(sp.exp(wx - nx ** 2 / 2) * sp.exp(wy - ny ** 2 / 2), (i, 1, m)) / m
        else:
            estimate = sp.exp((nx ** 2 + ny ** 2) / 2) * sp.Sum(sp.cos(wx - wy), (i, 1, m)) / m
        features = m if kernel.kind == "positive" else 2 * m
        return KernelExpression(variant, params, estimate, sp.exp(s), (), (s,), True, features=features,
                                feature_sign="positive" if kernel.kind == "positive" else "sign-changing",
                                note="E[κ̂] = exp(s); the estimate is random")
    if variant in RANDOM_ESTIMATES:
        i = sp.Symbol("i", integer=True, positive=True)
        wx, wy, nx, ny, w2 = (sp.Symbol(name, real=True) for name in
                              (r"{w_i^\top x}", r"{w_i^\top y}", r"\|x\|", r"\|y\|", r"\|w\|_i"))
        if variant == "hyperbolic":
            one = sp.exp(-(nx ** 2 + ny ** 2) / 2) * sp.cosh(wx + wy)
            features, sign = 2 * m, "positive"
        elif variant == "maclaurin":
            one = sp.Function("Z_i")(sp.Symbol("x")) * sp.Function("Z_i")(sp.Symbol("y"))
            features, sign = m, "sign-changing"
        else:  # favorpp, favorsharp (on Ψx, Ψ⁻¹y): D_A² exp(2A‖w‖² + B w·(x+y) − (‖x‖²+‖y‖²)/2), B² = 1 − 4A
            a_sym = sp.Symbol("A", real=True)
            one = ((1 - 4 * a_sym) ** (D / 2) * sp.exp(2 * a_sym * w2 ** 2 + sp.sqrt(1 - 4 * a_sym) * (wx + wy)
                                                       - (nx ** 2 + ny ** 2) / 2))
            features, sign = m, "positive"
        return KernelExpression(variant, params, sp.Sum(one, (i, 1, m)) / m, sp.exp(s), (), (s,), True,
                                features=features, feature_sign=sign, note="E[κ̂] = exp(s); the estimate is random")
    if variant == "dpfp":
        return _dpfp_expression(kernel, params, dim)
    if variant in ("hedgehog", "t2r"):
        return _learned_expression(variant, params, dim)
    if variant in ("taylor", "polynomial", "minimax"):
        coeffs = kernel.coefficients
        features = sp.factor(sp.expand_func(sum(sp.binomial(D + r - 1, r) for r, a in enumerate(coeffs) if a != 0)))
        return KernelExpression(variant, params, features=features,
                                **_similarity_kernel(variant, kernel, params))
    if variant == "hla" and kernel.feature_map == "affine":
        features = (D + 1) ** kernel.factors
        return KernelExpression(variant, params, features=features,
                                **_similarity_kernel(variant, kernel, params,
                                                     note="every factor sees the same s (identity projections)"))
    if variant in ("linear", "relu"):
        phi = elu_plus_one if variant == "linear" else relu
        display, concrete, x, y = _vector_kernel(phi, dim)
        return KernelExpression(variant, params, display, concrete, x, y, False, features=D,
                                feature_sign=feature_sign(phi), note="positive orthant")
    # hla with elu / relu factors: p distinct factor similarities a_r·b_r, a_r = x W_r, b_r = y W_r
    phi = FEATURE_MAPS[kernel.feature_map]
    factors = kernel.factors
    ai, bi = sp.IndexedBase("a", positive=True), sp.IndexedBase("b", positive=True)
    display = sp.Product(sp.Sum(phi(ai[_r, _d]) * phi(bi[_r, _d]), (_d, 1, D)), (_r, 1, p)).subs(p, factors)
    a = [sp.symbols(f"a_{r}_1:{dim + 1}", positive=True) for r in range(1, factors + 1)]
    b = [sp.symbols(f"b_{r}_1:{dim + 1}", positive=True) for r in range(1, factors + 1)]
    concrete = sp.Mul(*[sp.Add(*[phi(u) * phi(v) for u, v in zip(ar, br)]) for ar, br in zip(a, b)])
    return KernelExpression(variant, params, display, concrete, tuple(sum(a, ())), tuple(sum(b, ())), False,
                            features=D ** factors, feature_sign=feature_sign(phi),
                            note="distinct factor vectors a_r = xW_r, b_r = yW_r; positive orthant")


def _custom_expression(variant, dim: int, params: dict) -> KernelExpression:
    """κ(s) of a kernel outside the built-in variants: a sympy expression of s, or a kernel's sympy form."""
    if isinstance(variant, sp.Basic):
        if params:
            raise TypeError(f"a sympy expression takes no parameters, got {sorted(params)}")
        label, kappa = "custom", variant
    else:
        kernel = build_kernel(variant, dim, **params)  # validates the name / object and the parameters
        label, kappa = kernel_name(variant), kernel.sympy_kernel(s)
        if kappa is None:
            raise ValueError(f"kernel {label!r} has no sympy form of the similarity: give it similarity_function(s) "
                             "written with plain arithmetic, or sympy_kernel(s) (κ must depend on s alone)")
    kappa = sp.sympify(kappa)
    if not isinstance(kappa, sp.Expr):
        raise TypeError(f"a kernel expression must be a sympy expression of s, got {kappa!r}")
    others = sorted(str(x) for x in kappa.free_symbols if x.name != "s")
    if others:
        raise ValueError(f"a kernel expression must be in the symbol s alone, got free symbols {others}")
    kappa = sp.expand(_exact(kappa.xreplace({x: s for x in kappa.free_symbols})))
    if kappa.is_constant():
        raise ValueError(f"kernel {label!r} is constant in s ({kappa}): its attention weights do not depend on the input")
    return KernelExpression(label, dict(params), kappa, kappa, (), (s,), True, features=sp.Symbol("F"),
                            note="κ(s) given by the kernel")


def _is_custom(variant) -> bool:
    return not (isinstance(variant, str) and variant in VARIANTS)


def _learned_expression(variant, params, dim):
    """Learned maps in their pre-activations a = xW + c (query) and b = yW + c (key), affine in the entries, so a
    degree in b is the same degree in the key entries. t2r: κ = Σ_f relu(a_f) relu(b_f), a polynomial on the
    orthant where the pre-activations are positive; hedgehog: κ = Σ_f e^{a_f + b_f} + e^{−a_f − b_f}."""
    a = sp.symbols(f"a_1:{dim + 1}", real=True)
    b = sp.symbols(f"b_1:{dim + 1}", real=True)
    ai, bi = sp.IndexedBase("a"), sp.IndexedBase("b")
    F = sp.Symbol("F", integer=True, positive=True)
    if variant == "t2r":
        display, concrete, x, y = _vector_kernel(relu, dim)
        return KernelExpression(variant, params, display.subs(D, F), concrete, x, y, False, features=F,
                                feature_sign="non-negative",
                                note="in the pre-activations xW + c, yW + c (affine in the entries); positive orthant")
    display = sp.Sum(sp.exp(ai[_d] + bi[_d]) + sp.exp(-ai[_d] - bi[_d]), (_d, 1, F))
    concrete = sp.Add(*[sp.exp(u + w) + sp.exp(-u - w) for u, w in zip(a, b)])
    return KernelExpression(variant, params, display, concrete, a, b, False, features=2 * F, feature_sign="positive",
                            note="in the pre-activations xW + c, yW + c")


def _dpfp_expression(kernel, params, dim):
    """DPFP_ν on the positive orthant: x̃ = (x, 0), κ = Σ_{i≤ν} Σ_j x̃_j x̃_{j−i} ỹ_j ỹ_{j−i} (indices mod 2D)."""
    x = sp.symbols(f"x_1:{dim + 1}", positive=True)
    y = sp.symbols(f"y_1:{dim + 1}", positive=True)
    xt, yt = list(x) + [0] * dim, list(y) + [0] * dim
    nu = min(kernel.nu, 2 * dim - 1)
    concrete = sp.Add(*[xt[j] * xt[(j - i) % (2 * dim)] * yt[j] * yt[(j - i) % (2 * dim)]
                        for i in range(1, nu + 1) for j in range(2 * dim)])
    xi, yi = sp.IndexedBase(r"\tilde{x}"), sp.IndexedBase(r"\tilde{y}")
    display = sp.Sum(xi[_d] * xi[_d - _r] * yi[_d] * yi[_d - _r], (_d, 1, 2 * D), (_r, 1, sp.Symbol(r"\nu")))
    return KernelExpression("dpfp", params, display, concrete, x, y, False, features=2 * D * kernel.nu,
                            feature_sign="non-negative", note="x̃ = [relu(x), relu(−x)]; positive orthant")


def _cosformer_expression(params, dim):
    """cosFormer on the positive orthant: κ = φ(x)·φ(y), φ(x) = [x cos θ_x, x sin θ_x]; in the key's reweighted
    entries y cos θ_y, y sin θ_y (its 2D features) κ is linear, like relu's."""
    x = sp.symbols(f"x_1:{dim + 1}", positive=True)
    yc = sp.symbols(f"yc_1:{dim + 1}", positive=True)   # y_d cos θ_y
    ys = sp.symbols(f"ys_1:{dim + 1}", positive=True)   # y_d sin θ_y
    cx, sx = sp.symbols(r"c_x s_x", positive=True)       # cos θ_x, sin θ_x of the query's position
    concrete = sp.Add(*[a * cx * b for a, b in zip(x, yc)]) + sp.Add(*[a * sx * b for a, b in zip(x, ys)])
    theta = sp.symbols(r"\theta_x \theta_y", real=True)
    display = sp.cos(theta[0] - theta[1]) * sp.Sum(sp.Max(0, sp.Indexed("x", _d)) * sp.Max(0, sp.Indexed("y", _d)),
                                                   (_d, 1, D))
    return KernelExpression("cosformer", params, display, concrete, x + (cx, sx), yc + ys, False, features=2 * D,
                            feature_sign="non-negative",
                            note="positions folded into the features (cos/sin of θ = πi/2M); positive orthant")


# ----------------------------------------------------------------------------------------------
# derived properties
# ----------------------------------------------------------------------------------------------
def rational_degree(variant: str, *, n: int = 2, dim: int = 2, **params) -> Optional[Tuple[int, int]]:
    """(numerator degree, denominator degree) of the row weight a_1 = κ_1/Σ_l κ_l, derived by sympy.

    None for softmax and performer (no finite degree; see :func:`explain`), and for any kernel whose
    κ(s) is not a rational function of s. ``n`` keys per row and head dim ``dim`` for the symbolic
    vectors (the degree does not depend on them for n ≥ 2). ``variant`` may also be a registered
    name, a kernel object or class with a sympy form, or a sympy expression of s.
    """
    if _is_custom(variant):
        expr = kernel_expression(variant, dim=dim, **params)
        if not expr.kappa.is_rational_function(s):
            return None
        weight, keys = expr.row_weight(n)
        num, den = sp.fraction(sp.cancel(sp.together(weight)))
        return sp.Poly(num, *keys).total_degree(), sp.Poly(den, *keys).total_degree()
    if variant in NO_DEGREE:
        kernel_expression(variant, dim=dim, **params)  # validates the parameters
        return None
    expr = kernel_expression(variant, dim=dim, **params)
    weight, keys = expr.row_weight(n)
    num, den = sp.fraction(sp.cancel(weight))
    return sp.Poly(num, *keys).total_degree(), sp.Poly(den, *keys).total_degree()


def explain(variant: str, **params) -> str:
    """One line: why ``variant`` has (or has no) finite rational degree."""
    if _is_custom(variant):
        expr = kernel_expression(variant, **params)
        deg = rational_degree(variant, **params)
        if deg is None:
            return (f"{expr.variant}: no finite degree — κ = {sp.sstr(expr.kappa)} is not a rational function of s, "
                    "so neither is κ_1/Σ_l κ_l")
        return (f"{expr.variant}: κ = {sp.sstr(expr.kappa)} is rational in s, so the row weight κ_1/Σ_l κ_l is "
                f"rational of degree {deg} (sympy cancel + Poly.total_degree)")
    if variant in NO_DEGREE:
        return f"{variant}: no finite degree — {NO_DEGREE[variant]}"
    expr = kernel_expression(variant, **params)
    deg = rational_degree(variant, **params)
    where = "a polynomial in s" if expr.of_similarity else f"a polynomial in the key entries ({expr.note})"
    return (f"{variant}({_param_text(params)}): κ = {sp.sstr(expr.kappa)} is {where}, so the row weight "
            f"κ_1/Σ_l κ_l is rational of degree {deg} (sympy cancel + Poly.total_degree)")


def polynomial_sign(poly: sp.Poly) -> str:
    """Sign of a real polynomial over the reals, exactly: 'positive', 'non-negative', 'sign-changing',
    'non-positive', 'negative' or 'zero'.

    Real roots are counted by Sturm sequences (``Poly.count_roots``); the polynomial changes sign iff a
    square-free factor of odd multiplicity (``sqf_list``) has a real root; otherwise its sign is that at
    any point that is not a root.
    """
    if poly.is_zero:
        return "zero"
    x = poly.gens[0]
    point = next(t for t in range(poly.degree() + 2) if poly.eval(t) != 0)
    sign = "positive" if poly.eval(point) > 0 else "negative"
    if poly.count_roots() == 0:
        return sign
    if any(mult % 2 and sp.Poly(factor, x).count_roots() for factor, mult in poly.sqf_list()[1]):
        return "sign-changing"
    return "non-negative" if sign == "positive" else "non-positive"


def _sign_over_reals(expr: sp.Expr) -> str:
    """Sign of κ(s) (or its slope) over the reals: exact for polynomials, solveset otherwise."""
    if expr.is_polynomial(s):
        return polynomial_sign(sp.Poly(expr, s))
    nonpositive, negative = sp.solveset(expr <= 0, s, sp.Reals), sp.solveset(expr < 0, s, sp.Reals)
    if isinstance(nonpositive, sp.ConditionSet) or isinstance(negative, sp.ConditionSet):
        raise NotImplementedError(f"sympy cannot decide the sign of {expr} over the reals")
    if nonpositive.is_empty:
        return "positive"
    return "non-negative" if negative.is_empty else "sign-changing"


def positivity(expr: KernelExpression) -> str:
    """Sign of κ: for κ(s), exactly over the reals (:func:`polynomial_sign` for polynomials); for feature
    kernels, from the sign of φ."""
    if not expr.of_similarity or expr.variant in RANDOM_ESTIMATES:
        return expr.feature_sign
    return _sign_over_reals(expr.kappa)


def monotonicity(expr: KernelExpression) -> str:
    """'increasing' if κ'(s) ≥ 0 on the reals (exactly, as :func:`positivity`), else 'not monotone';
    feature kernels: on the orthant."""
    if expr.variant in RANDOM_ESTIMATES:
        return "random (mean exp(s))"
    if expr.of_similarity:
        slope = sp.diff(expr.kappa, s)
        if slope == 0:
            return "constant"
        return "increasing" if _sign_over_reals(slope) in ("positive", "non-negative") else "not monotone"
    slopes = [sp.diff(expr.concrete, k) for k in expr.key]
    return "increasing (orthant)" if all(sl.is_positive for sl in slopes) else "not monotone"


def efficient_cost(variant: str, expr: KernelExpression) -> sp.Expr:
    """Cost of the efficient form per head: N·F·Dv (softmax: N²·D, the explicit form)."""
    n_, dv = sp.symbols("N D_v", positive=True)
    if variant == "softmax":
        return n_ ** 2 * D
    return n_ * expr.features * dv
