"""Minimax attention: κ = the positive degree-p polynomial with the least log-uniform error against
exp(s) on the similarity range [−R, R],

    κ = argmin_{deg P ≤ p} max_{|s| ≤ R} |log P(s) − s|     (scaled so the error is centred),

computed by ``approxlab.core.approx`` (a weighted minimax LP; cached per (p, R)). Realised like ``taylor``
through exact monomial features of dimension C(D+p, p); negative coefficients put their sign on the
query features. Outside [−R, R] κ may be ≤ 0 (odd p), so the weights are a distribution only for
similarities in the range it was built for.
"""

from __future__ import annotations

import math

from ..core.checks import check_int
from .power_series import PowerSeriesKernel
from ._registry import register_kernel


@register_kernel
class Minimax(PowerSeriesKernel):
    """degree: p; R: the similarity range [−R, R] the polynomial is optimal on (κ may be ≤ 0 outside)."""

    name = "minimax"
    size_parameter = "degree"

    def __init__(self, degree: int = 2, R: float = 4.0):
        from ..core.approx import minimax_polynomial_coefficients

        self.degree = check_int(degree, "degree", minimum=0)
        if isinstance(R, bool) or not isinstance(R, (int, float)) or not math.isfinite(R) or R <= 0:
            raise ValueError(f"R must be a positive finite number, got {R!r}")
        self.R = float(R)
        super().__init__(minimax_polynomial_coefficients(self.degree, self.R))
