"""Taylor attention (Based for order 2): κ = Σ_{r=0}^{p} s^r / r!, the order-p Taylor polynomial of exp.

For even p the polynomial has no real root (κ > 0 for all s); odd p is negative for s below its one
real root. Feature dimension C(D+p, p) (symmetric monomials, see ``power_series``).
"""

from __future__ import annotations

import math

from ..core.checks import check_int
from .power_series import PowerSeriesKernel
from ._registry import register_kernel


@register_kernel
class Taylor(PowerSeriesKernel):
    r"""Taylor attention: κ(s) = Σ_{r≤p} s^r / r!, the order-p Taylor polynomial of exp (p = 2: Based).

    Parameters
    ----------
    order : int
        p ≥ 0. Feature width C(D+p, p); even p gives κ > 0 for every s.

    Notes
    -----
    Exact features through symmetric monomials (:mod:`approxlab.variants._monomials`); the row weights
    are rational of degree (p, p).

    References
    ----------
    S. Arora et al., "Simple linear attention language models balance the recall-throughput tradeoff"
    (Based), ICML 2024.

    Examples
    --------
    >>> from approxlab.variants import Taylor
    >>> Taylor(2).similarity_function(1.0), Taylor(2).feature_width(4)
    (2.5, 15)
    """

    name = "taylor"
    family = "polynomial kernels"
    label = "Taylor"
    color = "#cc78bc"
    marker = "o"
    linestyle = ":"
    size_parameter = "order"

    def __init__(self, order: int = 2):
        self.order = check_int(order, "order", minimum=0, maximum=170)  # 1/r! underflows float64 beyond 170
        super().__init__([1.0 / math.factorial(r) for r in range(self.order + 1)])
