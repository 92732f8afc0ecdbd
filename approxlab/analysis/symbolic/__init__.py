"""Symbolic (sympy) side of approxlab: each kernel κ, its row weight and rational degree, and derivations.

    from approxlab.analysis import symbolic
    symbolic.rational_degree(name, **params)         # (p, q) derived by sympy from the variant's own form
    symbolic.explain(name, **params)                 # why it has (or has no) finite degree
    symbolic.bridge_tv()                             # a Derivation; renders as LaTeX in Jupyter
    symbolic.to_latex(symbolic.derivation_table())   # every variant's row as a LaTeX tabular
"""

from .derivations import (
    Derivation, associativity, bridge_tv, gaussian_kernel, gaussian_mgf, hla_state, is_zero, monomial_features,
    performer_variance, residual, taylor_features, taylor_minimum, taylor_polynomial, taylor_real_roots,
    worst_case_row,
)
from .kernels import (
    KernelExpression, NoSymbolicForm, efficient_cost, explain, feature_sign, kernel_expression, monotonicity,
    positivity, rational_degree,
)
from .table import derivation_table, row_label, to_latex

#: the five derivations of the design card, by name (each a function returning a Derivation)
DERIVATIONS = {
    "associativity": associativity,
    "hla_state": hla_state,
    "taylor_features": taylor_features,
    "taylor_minimum": taylor_minimum,
    "gaussian_kernel": gaussian_kernel,
    "performer_variance": performer_variance,
    "bridge_tv": bridge_tv,
}

__all__ = [
    "KernelExpression", "NoSymbolicForm", "kernel_expression", "rational_degree", "explain", "positivity", "monotonicity",
    "efficient_cost", "feature_sign", "Derivation", "DERIVATIONS", "associativity",
    "hla_state", "taylor_features", "taylor_minimum", "taylor_polynomial", "taylor_real_roots", "monomial_features",
    "gaussian_kernel", "gaussian_mgf", "performer_variance", "bridge_tv", "worst_case_row", "is_zero", "residual",
    "derivation_table", "row_label", "to_latex",
]
