"""Symbolic (sympy) side of approxlab: each kernel κ, its row weight and rational degree, and derivations.

    from approxlab import symbolic
    symbolic.rational_degree("taylor", order=3)      # (3, 3), derived by sympy
    symbolic.explain("softmax")                      # why there is no finite degree
    symbolic.bridge_tv()                             # a Derivation; renders as LaTeX in Jupyter
    symbolic.to_latex(symbolic.derivation_table())   # the table as a LaTeX tabular
"""

from .derivations import (
    Derivation, associativity, bridge_tv, gaussian_kernel, gaussian_mgf, hla_state, is_zero, monomial_features,
    performer_variance, residual, taylor_features, taylor_minimum, taylor_polynomial, taylor_real_roots,
    worst_case_row,
)
from .kernels import (
    KernelExpression, efficient_cost, elu_plus_one, explain, feature_sign, kernel_expression, monotonicity,
    positivity, rational_degree, relu,
)
from .table import DEFAULT_ROWS, derivation_table, row_label, to_latex

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
    "KernelExpression", "kernel_expression", "rational_degree", "explain", "positivity", "monotonicity",
    "efficient_cost", "feature_sign", "elu_plus_one", "relu", "Derivation", "DERIVATIONS", "associativity",
    "hla_state", "taylor_features", "taylor_minimum", "taylor_polynomial", "taylor_real_roots", "monomial_features",
    "gaussian_kernel", "gaussian_mgf", "performer_variance", "bridge_tv", "worst_case_row", "is_zero", "residual",
    "DEFAULT_ROWS", "derivation_table", "row_label", "to_latex",
]
