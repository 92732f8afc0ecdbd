"""FAVOR++ / optimal positive random features, OPRF (Likhosherstov, Choromanski, Dubey, Liu, Sarlos,
Weller, "Chefs' Random Tables: Non-Trigonometric Random Features", NeurIPS 2022): the generalized
exponential features (GERF) with s = +1,
    φ(x) = D_A exp(A‖w‖² + B w·x − ‖x‖²/2) / √m,   B = √(1 − 4A),  D_A = (1 − 4A)^{D/4},   A < 1/8,
w ~ N(0, I_D) per direction. Gaussian integration gives E[φφ] = exp(x·y) for every A < 1/4, and the
relative second moment of one feature (:func:`gerf_relative_second_moment`, derived in
tests/test_random_features_theory.py)
    E[Z²] = ((1 − 4A)² / (1 − 8A))^{D/2} exp(‖x+y‖² / (1 − 8A)),     Z = φ_w(x)φ_w(y)/e^{x·y};
A = 0 is FAVOR+ (Lemma 2: E[Z²] = e^{‖x+y‖²}). Its minimiser over A < 1/8 is the paper's closed form
    A* = (1 − 2ρ − √((2ρ + 1)² + 8ρ)) / 16,      ρ = ‖x+y‖² / D,
taken, as in the paper, at the mean of ‖x_i + y_j‖² over all query-key pairs (:func:`oprf_a`), which
is mean‖x‖² + mean‖y‖² + 2 mean(x)·mean(y), O(N) to compute. A* < 0, so the features are bounded.

A is an argument of the kernel, fixed before the call (given, or computed by :meth:`FavorPP.calibrate`
from a calibration set), so a causal pass never looks at a future key. Directions iid, orthogonal or
simplex (``directions=``), stabilised as FAVOR+ (:mod:`approxlab.variants._exp_random_features`).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import sympy as sp
import torch

from ..core.checks import check_int, check_tensor, resolve_scale
from ._exp_random_features import _ExpRandomFeatures
from ._expression import D, KernelExpression, draw_symbols, m, random_estimate, s
from ._registry import register_kernel


def gerf_relative_second_moment(a, norm_sum_sq, dim):
    """E[Z²] of one positive GERF feature, Z = φ_w(x)φ_w(y)/e^{x·y} (module doc); A = 0: e^{‖x+y‖²}.

    Relative variance of the m-feature mean (iid directions): (E[Z²] − 1)/m. inf for A ≥ 1/8.
    """
    a, u = np.asarray(a, dtype=float), np.asarray(norm_sum_sq, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log = 0.5 * dim * (2 * np.log1p(-4 * a) - np.log1p(-8 * a)) + u / (1 - 8 * a)
        return np.where(a < 0.125, np.exp(log), np.inf)


def calibration_pair(q: torch.Tensor, k: torch.Tensor, scale: Optional[float] = None):
    """x = q·√scale, y = k·√scale in float64 (scale = 1/√D by default), as the kernels see them; q, k (…, N, D)."""
    for name, t in (("q", q), ("k", k)):
        if not isinstance(t, torch.Tensor) or t.ndim < 2:
            raise TypeError(f"{name} must be a torch.Tensor (…, N, D), got {type(t).__name__}")
        check_tensor(t, name, ndim=t.ndim)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the head dim, got {q.shape[-1]} and {k.shape[-1]}")
    root = math.sqrt(resolve_scale(scale, q.shape[-1]))
    return q.double() * root, k.double() * root


#: the largest mean ‖x+y‖² and |A| accepted: |s| ≤ ‖x+y‖²/4·… reaches far beyond 709 (exp's float64 limit) well
#: before, and A‖w‖² beyond ±1e6 overflows float32 features
MAX_NORM_SUM_SQ = 1e6
MAX_ABS_A = 1e6


def oprf_a(norm_sum_sq: float, dim: int) -> float:
    """The OPRF / FAVOR++ optimum A* = (1 − 2ρ − √((2ρ+1)² + 8ρ))/16, ρ = ‖x+y‖²/D (Chefs' Random Tables)."""
    if isinstance(norm_sum_sq, bool) or not (isinstance(norm_sum_sq, (int, float)) and math.isfinite(norm_sum_sq)
                                             and 0 <= norm_sum_sq <= MAX_NORM_SUM_SQ):
        raise ValueError(f"norm_sum_sq must be a number in [0, {MAX_NORM_SUM_SQ:g}] (‖x+y‖² beyond it puts the "
                         f"similarities far past where exp(s) is representable), got {norm_sum_sq!r}")
    rho = float(norm_sum_sq) / check_int(dim, "dim", minimum=1)
    return (1 - 2 * rho - math.sqrt((2 * rho + 1) ** 2 + 8 * rho)) / 16


def mean_pair_norm_sq(x: torch.Tensor, y: torch.Tensor) -> float:
    """mean over all pairs (i, j) of ‖x_i + y_j‖² = mean‖x‖² + mean‖y‖² + 2 mean(x)·mean(y), O(N)."""
    x, y = x.double().reshape(-1, x.shape[-1]), y.double().reshape(-1, y.shape[-1])
    return float((x * x).sum(-1).mean() + (y * y).sum(-1).mean() + 2 * x.mean(0) @ y.mean(0))


@register_kernel
class FavorPP(_ExpRandomFeatures):
    r"""FAVOR++ (optimal positive random features): φ(x) = D_A exp(A‖w‖² + B w·x − ‖x‖²/2)/√m.

    Parameters
    ----------
    head_dim : int
        D (given by the entry points).
    num_features : int or None
        m, the number of random directions (default D·log D); F = m.
    a : float or None
        The GERF parameter A < 1/8 (0 is FAVOR+).
    norm_sum_sq : float or None
        The data's mean ‖x+y‖², from which A comes by the closed form (:func:`oprf_a`). Neither a nor
        norm_sum_sq: ‖x+y‖² = 2√D, the mean for q, k ~ N(0, I) at scale 1/√D.
    directions, seed, projection
        As for :class:`~approxlab.variants.Hyperbolic`.

    Raises
    ------
    ValueError
        Both a and norm_sum_sq, A ≥ 1/8, a negative norm_sum_sq.

    Notes
    -----
    B = √(1 − 4A), D_A = (1 − 4A)^{D/4}; E[Z²] = ((1 − 4A)²/(1 − 8A))^{D/2} exp(‖x+y‖²/(1 − 8A)), minimised by
    A* = (1 − 2ρ − √((2ρ + 1)² + 8ρ))/16, ρ = ‖x+y‖²/D. :meth:`calibrate` gives A* from data.

    References
    ----------
    V. Likhosherstov, K. Choromanski, A. Dubey, F. Liu, T. Sarlos, A. Weller, "Chefs' Random Tables:
    Non-Trigonometric Random Features", NeurIPS 2022.

    Examples
    --------
    >>> from approxlab.variants import FavorPP
    >>> kernel = FavorPP(4, num_features=8, norm_sum_sq=0.0)
    >>> kernel.a, kernel.feature_width(4)
    (0.0, 8)
    """

    name = "favorpp"
    family = "random features"
    label = "FAVOR++"
    color = "#592f0d"
    #: why the estimate has no finite rational degree (the symbolic side reports it)
    no_degree = ("κ̂ = (1/m) Σ_i D_A² exp(2A‖w_i‖² + B w_i·(x+y) − (‖x‖²+‖y‖²)/2), random exponentials unbiased "
                 "for exp(s)")

    def __init__(self, head_dim: int, num_features: int | None = None, a: float | None = None,
                 norm_sum_sq: float | None = None, directions: str = "orthogonal", seed: int = 0,
                 projection: torch.Tensor | None = None):
        super().__init__(head_dim, num_features, directions, seed, projection)
        if a is not None and norm_sum_sq is not None:
            raise ValueError("give either a or norm_sum_sq, not both")
        if a is None:
            a = oprf_a(2 * math.sqrt(head_dim) if norm_sum_sq is None else norm_sum_sq, head_dim)
        if isinstance(a, bool) or not (isinstance(a, (int, float)) and math.isfinite(a) and -MAX_ABS_A <= a < 0.125):
            raise ValueError(f"a must be a number in [{-MAX_ABS_A:g}, 1/8) (the second moment diverges from 1/8; "
                             f"below {-MAX_ABS_A:g} the features overflow), got {a!r}")
        self.a = float(a)
        self.b = math.sqrt(1 - 4 * self.a)
        # per-direction bias A‖w‖² and the constant log D_A − log √m
        self.bias = self.a * (self.projection ** 2).sum(-1)
        self.log_const = 0.25 * head_dim * math.log1p(-4 * self.a) - 0.5 * math.log(self.num_features)

    @classmethod
    def calibrate(cls, q: torch.Tensor, k: torch.Tensor, *, scale: Optional[float] = None) -> dict:
        """{"a": A*} at the mean ‖x+y‖² of a calibration set of queries and keys (…, N, D), x = q·√scale,
        y = k·√scale. Pass it on: ``attention(q, k, v, "favorpp", **FavorPP.calibrate(q0, k0))``. In causal
        use, calibrate on data other than the future of the sequence (a held-out set or a prefix)."""
        x, y = calibration_pair(q, k, scale)
        return {"a": oprf_a(mean_pair_norm_sq(x, y), q.shape[-1])}

    def kernel_expression(self, dim: int = 2) -> KernelExpression:
        """κ̂ = (1/m) Σ_i D_A² exp(2A‖w_i‖² + B w_i·(x+y) − (‖x‖²+‖y‖²)/2), B² = 1 − 4A: random, mean exp(s)."""
        wx, wy, nx, ny, w2 = draw_symbols()
        a = sp.Symbol("A", real=True)
        one = (1 - 4 * a) ** (D / 2) * sp.exp(2 * a * w2 ** 2 + sp.sqrt(1 - 4 * a) * (wx + wy) - (nx ** 2 + ny ** 2) / 2)
        return random_estimate(one, mean=sp.exp(s), features=m, reason=self.no_degree)

    def _gerf(self, x):
        u = x @ self._cast_to("bw", self.b * self.projection, x).T + self._cast_to("bias", self.bias, x)
        return self._stable_exp(u, self.log_const - 0.5 * (x * x).sum(-1))

    def features(self, x):
        return self._gerf(x)

    def feature_width(self, head_dim: int) -> int:
        return self.num_features
