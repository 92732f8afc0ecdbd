"""A kernel κ as a sympy expression: what a variant's ``kernel_expression(dim)`` returns.

Every variant says what it is symbolically in its own module, through one method,
``kernel_expression(dim) -> KernelExpression``; :mod:`approxlab.analysis.symbolic` derives the rational
degree, sign, monotonicity and cost from it and never switches on a variant's name. The helpers below
build the common shapes:

- :func:`similarity_expression`: κ is a function of the similarity s alone (taylor, polynomial);
- :func:`vector_expression`: κ = Σ_d φ(x_d) φ(y_d) for a 1-D feature map φ (linear, relu), on the
  positive orthant where φ is a polynomial;
- :func:`random_estimate`: κ̂ is a random m-term estimate of a mean (FAVOR+ and its kin): no finite
  degree, with the stated reason.

The row weight a_1 = κ(x, y_1) / Σ_{l=1}^{n} κ(x, y_l) is a rational function of the row's key
variables (the similarities s_l, or the key entries y_l) when κ is a polynomial in them; each s_l = x·y_l
is linear in y_l, so a degree in y_l is the same degree in s_l.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

import sympy as sp

from ..core.checks import check_int

#: the similarity s = x·y, the head dim D, the number of random features m, a degree p
s = sp.Symbol("s", real=True)
D = sp.Symbol("D", integer=True, positive=True)
m = sp.Symbol("m", integer=True, positive=True)
p = sp.Symbol("p", integer=True, positive=True)
#: summation indices of the display forms (feature coordinate d, factor r)
d_index = sp.Symbol("d", integer=True, positive=True)
r_index = sp.Symbol("r", integer=True, positive=True)


def exact(expr):
    """``expr`` with its float coefficients (e.g. 1/r! stored as floats) replaced by the rationals they round."""
    return expr.xreplace({f: sp.nsimplify(f, rational=True) for f in expr.atoms(sp.Float)})


def feature_sign(phi: Callable) -> str:
    """'positive', 'non-negative' or 'sign-changing': the sign of a 1-D feature map φ over the reals (solveset).

    Examples
    --------
    >>> feature_sign(lambda t: sp.Max(0, t))
    'non-negative'
    """
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


@dataclass(frozen=True)
class KernelExpression:
    r"""κ of one (query, key) pair as a sympy expression, with what the symbolic side needs to know about it.

    Parameters
    ----------
    variant : str
        The variant's name (filled in by :func:`approxlab.analysis.symbolic.kernel_expression`).
    params : dict
        The parameters it was built with (idem).
    kappa : sympy.Expr
        The display form (symbolic head dim D where it matters; for a random estimate, the estimate).
    concrete : sympy.Expr
        The same κ with explicit symbols at a concrete head dim (for a random estimate: its mean), the
        form degrees are derived from.
    query, key : tuple of sympy.Symbol
        The symbols of the query and of one key in ``concrete`` (the similarity s, or the entries).
    of_similarity : bool
        True when ``concrete`` is a function of s alone.
    features : sympy.Expr
        The feature width F in the symbols D, m (the state is F × Dv).
    feature_sign : str
        The sign of the features, used when κ is not a function of s alone.
    note : str
        Where the form holds (e.g. "positive orthant").
    no_degree : str or None
        Why the row weight has no finite rational degree, when it has none by construction (an entire
        function, a random estimate); None lets sympy decide from ``concrete``.
    random : bool
        True when κ̂ is a random estimate: ``kappa`` is the estimate and ``concrete`` its mean.
    cost : sympy.Expr or None
        Cost of the efficient form per head in N, D, D_v; None means N·F·D_v.

    Notes
    -----
    Printing: ``sympy.latex(expr)`` and ``str(expr)`` give κ itself (the shorter of its expanded and
    factored forms), through :meth:`_latex` and :meth:`_sympystr`; ``sympy.sympify(expr)`` gives the
    display κ (:meth:`_sympy_`).

    Examples
    --------
    >>> expr = similarity_expression(1 + s + s**2 / 2, features=(D + 1) * (D + 2) / 2)
    >>> print(sp.latex(expr))
    \frac{s^{2}}{2} + s + 1
    >>> expr.row_weight(2)[0]
    (s_1**2/2 + s_1 + 1)/(s_1**2/2 + s_1 + s_2**2/2 + s_2 + 2)
    """

    variant: str
    params: dict
    kappa: sp.Expr
    concrete: sp.Expr
    query: Tuple[sp.Symbol, ...]
    key: Tuple[sp.Symbol, ...]
    of_similarity: bool
    features: sp.Expr
    feature_sign: str = "positive"
    note: str = field(default="")
    no_degree: Optional[str] = None
    random: bool = False
    cost: Optional[sp.Expr] = None

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
        if self.of_similarity and not self.random:
            sv = sp.IndexedBase("s")
            return self.kappa.subs(s, sv[j]) / sp.Sum(self.kappa.subs(s, sv[l]), (l, 1, n))
        kj = sp.Function(r"\kappa")(sp.Symbol("x"), sp.Indexed("y", j))
        kl = sp.Function(r"\kappa")(sp.Symbol("x"), sp.Indexed("y", l))
        return kj / sp.Sum(kl, (l, 1, n))

    def display_kappa(self) -> sp.Expr:
        """κ in its shorter form, expanded or factored."""
        factored = sp.factor(self.kappa) if self.of_similarity else self.kappa
        return min((self.kappa, factored), key=lambda e: len(sp.latex(e)))

    def _sympy_(self):
        return self.display_kappa()

    def _latex(self, printer):
        return printer.doprint(self.display_kappa())

    def _sympystr(self, printer):
        return printer.doprint(self.display_kappa())

    def _repr_latex_(self):
        return rf"$\displaystyle \kappa_{{\mathrm{{{self.variant}}}}} = {sp.latex(self.display_kappa())}$"


def similarity_expression(kappa, *, features, note: str = "", **extra) -> KernelExpression:
    """κ(s), a function of the similarity alone (float coefficients made exact, expanded).

    Examples
    --------
    >>> similarity_expression((1 + s / 2) ** 2, features=(D + 1) ** 2).kappa
    s**2/4 + s + 1
    """
    kappa = sp.expand(exact(sp.sympify(kappa)))
    return KernelExpression("", {}, kappa, kappa, (), (s,), True, features=features, note=note, **extra)


def orthant_vectors(dim: int, *names: str):
    """Tuples of ``dim`` positive symbols per name, e.g. ``orthant_vectors(2, "x", "y")`` → (x_1, x_2), (y_1, y_2)."""
    return tuple(sp.symbols(f"{name}_1:{dim + 1}", positive=True) for name in names)


def vector_expression(phi: Callable, dim: int, *, features, note: str = "positive orthant") -> KernelExpression:
    """κ = Σ_d φ(x_d) φ(y_d): display form with symbolic D, concrete form on ``dim`` positive entries.

    Examples
    --------
    >>> vector_expression(lambda t: t + 1, 2, features=D).concrete
    (x_1 + 1)*(y_1 + 1) + (x_2 + 1)*(y_2 + 1)
    """
    xi, yi = sp.IndexedBase("x", positive=True), sp.IndexedBase("y", positive=True)
    display = sp.Sum(phi(xi[d_index]) * phi(yi[d_index]), (d_index, 1, D))
    x, y = orthant_vectors(dim, "x", "y")
    concrete = sp.Add(*[phi(a) * phi(b) for a, b in zip(x, y)])
    return KernelExpression("", {}, display, concrete, x, y, False, features=features, feature_sign=feature_sign(phi),
                            note=note)


def random_estimate(one_draw, *, mean, features, reason: str, feature_sign: str = "positive") -> KernelExpression:
    """κ̂ = (1/m) Σ_{i=1}^{m} ``one_draw`` (draw i), a random estimate of ``mean`` (a function of s).

    ``reason`` says why the estimate has no finite rational degree. Its display form is the estimate; its
    concrete form is the mean (``random=True``: the symbolic side reports it as random, mean ``mean``).
    """
    i = sp.Symbol("i", integer=True, positive=True)
    return KernelExpression("", {}, sp.Sum(one_draw, (i, 1, m)) / m, mean, (), (s,), True, features=features,
                            feature_sign=feature_sign, note=f"E[κ̂] = {sp.sstr(mean)}; the estimate is random",
                            no_degree=reason, random=True)


def draw_symbols():
    """The symbols of one random direction w_i and the inputs: w_i·x, w_i·y, ‖x‖, ‖y‖, ‖w_i‖ (real)."""
    return tuple(sp.Symbol(name, real=True) for name in
                 (r"{w_i^\top x}", r"{w_i^\top y}", r"\|x\|", r"\|y\|", r"\|w\|_i"))
