"""Hyperbolic random features for exp(x·y) (Choromanski et al., "Rethinking attention with Performers",
ICLR 2021, Lemma 1):

    φ(x) = exp(−‖x‖²/2) [exp(Wx), exp(−Wx)] / √(2m)          (2m features, all > 0),

unbiased, E[φ(x)·φ(y)] = exp(x·y) with w ~ N(0, I_D) per direction; its MSE is ½(1 − e^{−‖x+y‖²}) times
the positive (FAVOR+) one (Lemma 2). Directions iid, orthogonal or simplex (``directions=``), stabilised as
FAVOR+ (:mod:`approxlab.variants._exp_random_features`).
"""

from __future__ import annotations

import math

import sympy as sp
import torch

from ._exp_random_features import _ExpRandomFeatures
from ._expression import KernelExpression, draw_symbols, m, random_estimate, s
from ._registry import register_kernel


@register_kernel
class Hyperbolic(_ExpRandomFeatures):
    r"""Hyperbolic FAVOR+: φ(x) = exp(−‖x‖²/2) [e^{Wx}, e^{−Wx}] / √(2m), 2m positive features.

    Parameters
    ----------
    head_dim : int
        D (given by the entry points).
    num_features : int or None
        m, the number of random directions (default D·log D); F = 2m.
    directions : {"iid", "orthogonal", "simplex"}
        How W is drawn (:mod:`approxlab.variants._projections`).
    seed : int
        The directions' seed.
    projection : torch.Tensor or None
        An explicit (m, D) matrix W.

    Notes
    -----
    Unbiased for exp(x·y); its MSE is ½(1 − e^{−‖x+y‖²}) times the positive estimator's (Lemma 2).

    References
    ----------
    K. Choromanski et al., "Rethinking Attention with Performers", ICLR 2021, Lemma 1 and 2.

    Examples
    --------
    >>> from approxlab.variants import Hyperbolic
    >>> Hyperbolic(8, num_features=5).feature_width(8)
    10
    """

    name = "hyperbolic"
    family = "random features"
    label = "hyperbolic"
    color = "#591e71"

    def __init__(self, head_dim: int, num_features: int | None = None, directions: str = "orthogonal",
                 seed: int = 0, projection: torch.Tensor | None = None):
        super().__init__(head_dim, num_features, directions, seed, projection)

    def features(self, x):
        u = x @ self._cast_to("w", self.projection, x).T
        log_scale = -0.5 * (x * x).sum(-1) - 0.5 * math.log(2 * self.num_features)
        return self._stable_exp(torch.cat([u, -u], dim=-1), log_scale)

    def feature_width(self, head_dim: int) -> int:
        return 2 * self.num_features

    def kernel_expression(self, dim: int = 2) -> KernelExpression:
        """κ̂ = (1/m) Σ_i e^{−(‖x‖²+‖y‖²)/2} cosh(w_i·x + w_i·y), random with mean exp(s): no finite degree."""
        wx, wy, nx, ny, _ = draw_symbols()
        return random_estimate(
            sp.exp(-(nx ** 2 + ny ** 2) / 2) * sp.cosh(wx + wy), mean=sp.exp(s), features=2 * m,
            reason="κ̂ = (1/2m) Σ_i e^{−(‖x‖²+‖y‖²)/2} (e^{w_i·x}e^{w_i·y} + e^{−w_i·x}e^{−w_i·y}), a random sum of "
                   "exponentials unbiased for exp(s)")
