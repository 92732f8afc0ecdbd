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


#: the degrees and ranges accepted. Measured with approx.minimax_polynomial_coefficients (float64 LP, HiGHS): degree
#: 30 takes about 5 s on one CPU core at R = 1…8, and every degree up to 30 is found there; from R = 16 the LP fails
#: or its optimum is not positive for most degrees (a ValueError saying so), and at R = 50 it cannot be posed
MAX_DEGREE = 30
MIN_R, MAX_R = 1e-3, 32.0


@register_kernel
class Minimax(PowerSeriesKernel):
    r"""Minimax attention: κ = the positive degree-p polynomial with the least log-uniform error against exp(s)
    on [−R, R].

    Parameters
    ----------
    degree : int
        p ≥ 0.
    R : float
        The similarity range [−R, R] the polynomial is optimal on (κ may be ≤ 0 outside).

    Raises
    ------
    ValueError
        A negative degree, or R not a positive finite number.

    Notes
    -----
    κ = argmin_{deg P ≤ p} max_{|s| ≤ R} |log P(s) − s| (centred), from :func:`approxlab.core.approx.best_exp`;
    its δ is atanh of the minimax relative error.

    Examples
    --------
    >>> from approxlab.variants import Minimax
    >>> from approxlab.core import approx
    >>> delta = approx.log_uniform_error(Minimax(2, 1.0).similarity_function, 1.0).delta
    >>> bool(abs(delta - approx.best_exp(2, 1.0).delta) < 1e-6)
    True
    """

    name = "minimax"
    family = "polynomial kernels"
    label = "minimax"
    color = "#949494"
    marker = "D"
    linestyle = "-"
    size_parameter = "degree"

    def __init__(self, degree: int = 2, R: float = 4.0):
        from ..core.approx import minimax_polynomial_coefficients

        self.degree = check_int(degree, "degree", minimum=0, maximum=MAX_DEGREE)
        if isinstance(R, bool) or not isinstance(R, (int, float)) or not math.isfinite(R) or \
                not MIN_R <= R <= MAX_R:
            raise ValueError(f"R must be a number in [{MIN_R:g}, {MAX_R:g}] (the similarity range the polynomial is "
                             f"optimal on), got {R!r}")
        self.R = float(R)
        try:
            coefficients = minimax_polynomial_coefficients(self.degree, self.R)
        except RuntimeError as exc:  # the LP fails, or its optimum is not positive, on wide ranges
            raise ValueError(f"minimax degree={self.degree}, R={self.R:g}: no positive best polynomial was found "
                             f"({exc}); on R <= 8 every degree up to {MAX_DEGREE} is found") from None
        super().__init__(coefficients)
