"""Kernels that are a polynomial in the similarity: κ = Σ_{r=0}^{p} a_r s^r, s = x·y, realised by exact
symmetric-monomial features of dimension C(D+p, p) (:mod:`approxlab.variants._monomials`). The shared
base of ``taylor``, ``polynomial`` and ``minimax``; not registered itself (its coefficients are the
parameters): ``attention(q, k, v, PowerSeriesKernel([1, 1, 0.5]))``.
"""

from __future__ import annotations

import math
from typing import Sequence

import sympy as sp

from ..core.protocol import KernelVariant
from ._expression import D, KernelExpression, s, similarity_expression
from ._monomials import feature_dimension, monomial_features, power_series


class PowerSeriesKernel(KernelVariant):
    r"""κ(s) = Σ_r a_r s^r with given coefficients a_0..a_p, by exact symmetric-monomial features.

    Parameters
    ----------
    coefficients : sequence of float
        a_0..a_p (finite; a negative a_r puts its sign on the query features).

    Raises
    ------
    ValueError
        An empty or non-finite list of coefficients.

    Notes
    -----
    (x·y)^r = Σ_{|α|=r} (r!/α!) x^α y^α, so φ(x) = [√(|a_r| r!/α!) x^α] and F = Σ_{a_r ≠ 0} C(D+r−1, r).

    Examples
    --------
    >>> import torch, approxlab
    >>> from approxlab.variants import PowerSeriesKernel
    >>> kernel = PowerSeriesKernel([1.0, 1.0, 0.5])
    >>> q, k, v = (torch.randn(1, 1, 6, 3, dtype=torch.float64) for _ in range(3))
    >>> bool(torch.allclose(approxlab.attention(q, k, v, kernel), approxlab.attention(q, k, v, "taylor", order=2)))
    True
    """

    name = "power_series"

    def __init__(self, coefficients: Sequence[float]):
        coefficients = [float(a) for a in coefficients]
        if not coefficients or not all(math.isfinite(a) for a in coefficients):
            raise ValueError(f"coefficients must be a non-empty list of finite numbers, got {coefficients!r}")
        self.coefficients = tuple(coefficients)

    def similarity_function(self, s):
        return power_series(s, self.coefficients)

    def query_features(self, x):
        return monomial_features(x, self.coefficients, signed=True), None

    def key_features(self, x):
        return monomial_features(x, self.coefficients), None

    features = key_features

    def kernel(self, x, y):
        return self.similarity_function(x @ y.transpose(-1, -2)), None

    def feature_width(self, head_dim: int) -> int:
        return feature_dimension(head_dim, self.coefficients)

    def kernel_expression(self, dim: int = 2) -> KernelExpression:
        """κ(s) = Σ_r a_r s^r (coefficients made exact), F = Σ_{a_r ≠ 0} C(D+r−1, r)."""
        features = sp.factor(sp.expand_func(sum(sp.binomial(D + r - 1, r)
                                                for r, a in enumerate(self.coefficients) if a != 0)))
        return similarity_expression(self.similarity_function(s), features=features)
