"""Polynomial kernel of degree p: κ = s^p (``c=None``; non-negative for even p), or κ = (1 + s/c)^p.

(1 + s/p)^p with c = p tends to exp(s) as p grows. Exact tensor features of dimension
C(D+p−1, p) (homogeneous) or C(D+p, p) (inhomogeneous), see ``power_series``.
"""

from __future__ import annotations

import math

from ..core.checks import check_int
from .power_series import PowerSeriesKernel
from ._registry import register_kernel


@register_kernel
class Polynomial(PowerSeriesKernel):
    r"""Polynomial kernel: κ(s) = s^p (``c=None``), or (1 + s/c)^p.

    Parameters
    ----------
    degree : int
        p ≥ 1. Feature width C(D+p−1, p) (homogeneous) or C(D+p, p).
    c : float or None
        None for s^p (non-negative for even p); a positive number for (1 + s/c)^p (c = p tends to exp(s)).

    Raises
    ------
    ValueError
        degree < 1, or c not a positive finite number.

    Notes
    -----
    The row weights are rational of degree (p, p).

    Examples
    --------
    >>> from approxlab.variants import Polynomial
    >>> Polynomial(2).similarity_function(3.0), Polynomial(2, c=2.0).similarity_function(2.0)
    (9.0, 4.0)
    """

    name = "polynomial"
    family = "polynomial kernels"
    label = "polynomial"
    color = "#ca9161"
    size_parameter = "degree"

    def __init__(self, degree: int = 2, c: float | None = None):
        self.degree = check_int(degree, "degree", minimum=1, maximum=1000)  # C(p, r) overflows float64 near 1030
        if c is None:
            coefficients = [0.0] * self.degree + [1.0]
        else:
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c <= 0:
                raise ValueError(f"c must be a positive finite number or None, got {c!r}")
            try:
                coefficients = [math.comb(self.degree, r) / float(c) ** r for r in range(self.degree + 1)]
            except (OverflowError, ZeroDivisionError):
                coefficients = [math.inf]
            if not all(math.isfinite(a) for a in coefficients):
                raise ValueError(f"c={c!r} is too small for degree {self.degree}: the coefficients C(p, r)/c^r of "
                                 "(1 + s/c)^p overflow float64; give a larger c")
        self.c = c
        super().__init__(coefficients)
