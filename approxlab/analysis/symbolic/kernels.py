"""Each kernel κ as a sympy expression, its row weight, and the degree, sign and monotonicity sympy derives.

    row weight   a_1 = κ(x, y_1) / Σ_{l=1}^{n} κ(x, y_l)        (a rational function when κ is a polynomial)

Every variant says what it is symbolically in its own module (``kernel_expression(dim)``, a
:class:`~approxlab.variants.KernelExpression`); a kernel that only gives ``sympy_kernel(s)`` (or
``similarity_function(s)`` in plain arithmetic) is read as κ(s); a sympy expression in one symbol named
``s`` is κ(s) itself. This module never looks at a variant's name: built-in and brought kernels go the
same way.

``rational_degree`` reduces the weight with ``sympy.cancel`` and reads the total degrees of numerator
and denominator (``Poly.total_degree``) in the row's key variables: the similarities s_l, or the key
entries y_l. Each s_l = x·y_l is linear in y_l, so a degree in y_l is the same degree in s_l. A kernel
without a symbolic form, or whose form says it has no finite degree, gets None, never an error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

import sympy as sp
import torch

from ...core.checks import check_int
from ...variants import (
    KernelExpression, build_kernel, check_params, check_variant, inputs_for, is_softmax, kernel_name, variant_class,
)
from ...variants._expression import D, exact, feature_sign, m, p, s, similarity_expression

__all__ = ["KernelExpression", "NoSymbolicForm", "kernel_expression", "rational_degree", "explain", "positivity",
           "monotonicity", "efficient_cost", "polynomial_sign", "feature_sign", "s", "D", "m", "p"]


class NoSymbolicForm(ValueError):
    """The kernel gives no symbolic form: neither ``kernel_expression(dim)`` nor a sympy form of s."""


def _param_text(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def kernel_expression(variant, *, dim: int = 2, **params) -> KernelExpression:
    """κ of ``variant`` as sympy, from what the variant says about itself.

    Parameters
    ----------
    variant : str, kernel object, KernelVariant subclass or sympy.Expr
        A variant name (built-in or registered), a kernel, or κ(s) as a sympy expression in ``s``.
    dim : int
        Size of the symbolic vectors (the concrete head dim).
    **params
        The variant's parameters, as for :func:`approxlab.attention`.

    Returns
    -------
    KernelExpression
        κ with its row weight, feature width and the facts the degree is derived from.

    Raises
    ------
    ValueError
        For an unknown variant or bad parameters; :class:`NoSymbolicForm` (a ValueError) when the kernel has
        no symbolic form; for a sympy expression in other symbols than s, or constant in s.
    TypeError
        For parameters the variant does not take.

    Examples
    --------
    >>> from approxlab.analysis.symbolic.kernels import s
    >>> kernel_expression((1 + s / 2) ** 2).kappa
    s**2/4 + s + 1
    """
    dim = check_int(dim, "dim", minimum=1)
    if isinstance(variant, sp.Basic):
        if params:
            raise TypeError(f"a sympy expression takes no parameters, got {sorted(params)}")
        return _of_similarity("custom", variant, params)
    variant = check_variant(variant)
    label = kernel_name(variant)
    if is_softmax(variant):
        check_params(variant, params)
        source = variant_class(variant)()
    else:  # the head dim the kernel reads for ``dim`` content entries (a positional kernel adds its positions)
        probe = torch.zeros(1, 1, 1, dim)
        source = build_kernel(variant, inputs_for(variant, probe, probe)[0].shape[-1], **params)
    own = getattr(source, "kernel_expression", None)
    if callable(own):
        return dataclasses.replace(own(dim), variant=label, params=dict(params))
    kappa = source.sympy_kernel(s)
    if kappa is None:
        raise NoSymbolicForm(f"kernel {label!r} has no sympy form of the similarity: give it similarity_function(s) "
                             "written with plain arithmetic, or sympy_kernel(s) (κ must depend on s alone), or "
                             "kernel_expression(dim) (see approxlab.core.protocol)")
    return _of_similarity(label, kappa, params)


def _of_similarity(label: str, kappa, params: dict) -> KernelExpression:
    """κ(s) given as a sympy expression: checked to be in the symbol s alone and not constant."""
    kappa = sp.sympify(kappa)
    if not isinstance(kappa, sp.Expr):
        raise TypeError(f"a kernel expression must be a sympy expression of s, got {kappa!r}")
    others = sorted(str(x) for x in kappa.free_symbols if x.name != "s")
    if others:
        raise ValueError(f"a kernel expression must be in the symbol s alone, got free symbols {others}")
    kappa = kappa.xreplace({x: s for x in kappa.free_symbols})
    if sp.expand(exact(kappa)).is_constant():
        raise ValueError(f"kernel {label!r} is constant in s ({kappa}): its attention weights do not depend on the input")
    expr = similarity_expression(kappa, features=sp.Symbol("F"), note="κ(s) given by the kernel")
    return dataclasses.replace(expr, variant=label, params=dict(params))


def _symbolic_or_none(variant, dim: int, params: dict) -> Optional[KernelExpression]:
    try:
        return kernel_expression(variant, dim=dim, **params)
    except NoSymbolicForm:
        return None


#: the largest row weight ``rational_degree`` reduces: terms of Σ_l κ_l expanded (an upper bound, without
#: expanding). sympy's ``cancel`` of a dense weight of ~100 terms takes seconds here (polynomial degree=50, c=2:
#: 102 terms, 4.6 s; hla factors=3 at dim=4: 250 terms, 6 s), and its cost grows faster than the terms
MAX_WEIGHT_TERMS = 400
#: the largest degree of κ in one key's variables ``rational_degree`` reduces (s^1000: 7 s here; s^200: 0.4 s)
MAX_KEY_DEGREE = 500
#: the largest head dim of the symbolic vectors (the degree does not depend on it; hla at dim=3000 spends 10 s
#: building its symbols alone)
MAX_DIM = 32


def _term_bound(expr, keys: frozenset) -> int:
    """An upper bound on the terms of ``expr`` expanded as a polynomial in ``keys``, read from its tree
    (a sum adds, a product multiplies, a power e of m terms gives at most C(m + e − 1, e)); nothing is expanded."""
    if not (expr.free_symbols & keys):
        return 1
    if expr.is_Symbol:
        return 1
    if expr.is_Add:
        return sum(_term_bound(a, keys) for a in expr.args)
    if expr.is_Mul:
        return math.prod(_term_bound(a, keys) for a in expr.args)
    if expr.is_Pow and expr.exp.is_Integer:
        terms, e = _term_bound(expr.base, keys), abs(int(expr.exp))
        return math.comb(terms + e - 1, e) if terms > 1 else 1
    return 1  # a function of the keys: the rational check decides


def _degree_bound(expr, keys: frozenset) -> int:
    """An upper bound on the total degree of ``expr`` in ``keys`` (a sum: the largest, a product: the sum,
    a power e: e times the base's), read from its tree."""
    if not (expr.free_symbols & keys):
        return 0
    if expr.is_Symbol:
        return 1
    if expr.is_Add:
        return max(_degree_bound(a, keys) for a in expr.args)
    if expr.is_Mul:
        return sum(_degree_bound(a, keys) for a in expr.args)
    if expr.is_Pow and expr.exp.is_Integer:
        return abs(int(expr.exp)) * _degree_bound(expr.base, keys)
    return 0


def rational_degree(variant, *, n: int = 2, dim: int = 2, **params) -> Optional[Tuple[int, int]]:
    """(numerator degree, denominator degree) of the row weight a_1 = κ_1/Σ_l κ_l, derived by sympy.

    Parameters
    ----------
    variant : str, kernel object, KernelVariant subclass or sympy.Expr
        As for :func:`kernel_expression`.
    n : int
        Keys per row (the degree does not depend on it for n ≥ 2).
    dim : int
        Head dim of the symbolic vectors (idem).
    **params
        The variant's parameters.

    Returns
    -------
    tuple of int or None
        The two total degrees in the row's key variables; None when the weight is not rational in them:
        the variant's form says it has no finite degree (an entire κ such as exp, a random estimate; see
        :func:`explain`), κ is not rational in its key variables, or the kernel has no symbolic form at all.

    Raises
    ------
    ValueError, TypeError
        As :func:`kernel_expression` for unknown variants and bad parameters; ValueError for ``n`` < 1 or
        ``dim`` outside 1..:data:`MAX_DIM`, and
        before any reduction when the expanded weight would have more than :data:`MAX_WEIGHT_TERMS` terms or
        κ a degree above :data:`MAX_KEY_DEGREE` in one key (upper bounds read from κ's expression tree; the
        message names ``dim``, ``n`` and the variant's size parameter).

    Notes
    -----
    sympy's ``cancel`` reduces a_1 = κ(x, y_1) / Σ_{l=1}^{n} κ(x, y_l) to p/q in lowest terms and
    ``Poly.total_degree`` reads deg p and deg q in the keys' variables.

    Examples
    --------
    >>> from approxlab.analysis.symbolic.kernels import s
    >>> rational_degree((1 + s / 3) ** 3)
    (3, 3)
    >>> rational_degree(sp.exp(s)) is None
    True
    """
    n = check_int(n, "n", minimum=1)
    dim = check_int(dim, "dim", minimum=1, maximum=MAX_DIM)
    expr = _symbolic_or_none(variant, dim, params)
    if expr is None or expr.no_degree is not None:
        return None
    terms = n * _term_bound(expr.concrete, frozenset(expr.key))
    degree = _degree_bound(expr.concrete, frozenset(expr.key))
    if terms > MAX_WEIGHT_TERMS or degree > MAX_KEY_DEGREE:
        size = getattr(variant_class(variant), "size_parameter", None) if not isinstance(variant, sp.Basic) else None
        setting = "".join(f", {key}={params[key]!r}" for key in (size,) if key in params)
        raise ValueError(f"rational_degree({kernel_name(variant) if not isinstance(variant, sp.Basic) else 'custom'!r}"
                         f"{setting}, dim={dim}, n={n}): the row weight expands to up to {terms:,} terms of degree up to "
                         f"{degree:,} per key, over the limits ({MAX_WEIGHT_TERMS} terms, degree {MAX_KEY_DEGREE}) "
                         f"that sympy's cancel reduces in seconds; lower dim (the degree does not depend on it), "
                         f"n{' or ' + size if size else ''}")
    if not expr.concrete.is_rational_function(*expr.key):
        return None
    weight, keys = expr.row_weight(n)
    num, den = sp.fraction(sp.cancel(sp.together(weight)))
    return sp.Poly(num, *keys).total_degree(), sp.Poly(den, *keys).total_degree()


def explain(variant, **params) -> str:
    """One line: why ``variant`` has (or has no) finite rational degree.

    Examples
    --------
    >>> from approxlab.analysis.symbolic.kernels import s
    >>> explain(sp.exp(s) / (1 + s ** 2))
    'custom: no finite degree — κ = exp(s)/(s**2 + 1) is not a rational function of its key variables, so neither is κ_1/Σ_l κ_l'
    """
    try:
        expr = kernel_expression(variant, **params)
    except NoSymbolicForm as err:
        return f"{kernel_name(variant)}: no symbolic form — {err}"
    name = expr.variant
    if expr.no_degree is not None:
        return f"{name}: no finite degree — {expr.no_degree}"
    deg = rational_degree(variant, **params)
    if deg is None:
        return (f"{name}: no finite degree — κ = {sp.sstr(expr.kappa)} is not a rational function of its key "
                "variables, so neither is κ_1/Σ_l κ_l")
    kind = "a polynomial" if expr.concrete.is_polynomial(*expr.key) else "rational"
    where = f"{kind} in s" if expr.of_similarity else f"{kind} in the key entries ({expr.note})"
    return (f"{name}({_param_text(params)}): κ = {sp.sstr(expr.kappa)} is {where}, so the row weight "
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


#: what positivity and monotonicity say where sympy cannot decide
UNDECIDED = "not decided by sympy"


def _sign_over_reals(expr: sp.Expr) -> str:
    """Sign of κ(s) (or its slope) over the reals: exact for polynomials, solveset otherwise
    (:data:`UNDECIDED` where solveset gives up)."""
    if expr.is_polynomial(s):
        return polynomial_sign(sp.Poly(expr, s))
    try:
        nonpositive, negative = sp.solveset(expr <= 0, s, sp.Reals), sp.solveset(expr < 0, s, sp.Reals)
    except NotImplementedError:  # e.g. conditions in other symbols than s
        return UNDECIDED
    if isinstance(nonpositive, sp.ConditionSet) or isinstance(negative, sp.ConditionSet):
        return UNDECIDED
    if nonpositive.is_empty:
        return "positive"
    return "non-negative" if negative.is_empty else "sign-changing"


def positivity(expr: KernelExpression) -> str:
    """Sign of κ: for κ(s), exactly over the reals (:func:`polynomial_sign` for polynomials); for feature
    kernels and random estimates, the sign of the features."""
    if not expr.of_similarity or expr.random:
        return expr.feature_sign
    return _sign_over_reals(expr.kappa)


def monotonicity(expr: KernelExpression) -> str:
    """'increasing' if κ'(s) ≥ 0 on the reals (exactly, as :func:`positivity`), else 'not monotone';
    feature kernels: on the orthant; random estimates: 'random (mean …)'."""
    if expr.random:
        return f"random (mean {sp.sstr(expr.concrete)})"
    if expr.of_similarity:
        slope = sp.diff(expr.kappa, s)
        if slope == 0:
            return "constant"
        sign = _sign_over_reals(slope)
        return UNDECIDED if sign == UNDECIDED else "increasing" if sign in ("positive", "non-negative") else "not monotone"
    slopes = [sp.diff(expr.concrete, k) for k in expr.key]
    return "increasing (orthant)" if all(sl.is_positive for sl in slopes) else "not monotone"


def efficient_cost(expr: KernelExpression) -> sp.Expr:
    """Cost of the efficient form per head: the expression's own (an exact reference's N²·D), else N·F·D_v."""
    if expr.cost is not None:
        return expr.cost
    n_, dv = sp.symbols("N D_v", positive=True)
    return n_ * expr.features * dv
