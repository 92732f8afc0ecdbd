"""Random Maclaurin features (Kar & Karnick, "Random Feature Maps for Dot Product Kernels", AISTATS 2012,
Algorithm 1) for f(s) = Σ_n a_n sⁿ with a_n ≥ 0, here exp: a_n = 1/n!. Each feature draws a degree
N with P(N = n) = p^{−(n+1)} (p = 2) and N Rademacher vectors ω_1..ω_N, and
    Z(x) = √(a_N p^{N+1}) Π_{k=1}^{N} ω_k·x,       E[Z(x) Z(y)] = Σ_n a_n (x·y)ⁿ = exp(x·y);
φ(x) = [Z_1(x), …, Z_m(x)] / √m. The estimate is unbiased but signed (odd degrees), so weights can be
negative. Features are returned as (sign · exp(log|Z| − max), max) so high degrees cannot overflow.
Numerics: a row's estimated sum Σ_l φ(q)·φ(k_l) nearly cancels (its condition number,
:func:`approxlab.core.chunk.row_condition`, is large), so the normalised weights are ill-conditioned: on
(1, 1, 2048, 64) Gaussian inputs with m = 256 the efficient form is 1.8e-7 from the explicit one even in
float64 and 5.5 (relative to rms‖v‖) in float32 (``figures/gpu_validation.csv``). This is the estimator,
not the arithmetic: its mean row TV from softmax there is 47 (a distribution can differ by at most 1).
"""

from __future__ import annotations

import math

import sympy as sp
import torch

from ..core import budget
from ..core.checks import check_int, check_seed
from ..core.protocol import KernelVariant
from ._expression import KernelExpression, m, random_estimate, s
from ._registry import register_kernel


@register_kernel
class RandomMaclaurin(KernelVariant):
    r"""Random Maclaurin features for exp(x·y): m signed features, unbiased, seedable.

    Parameters
    ----------
    head_dim : int
        D (given by the entry points).
    num_features : int
        m, the number of random features; F = m.
    seed : int
        Seed of the degrees and Rademacher vectors.
    p : float
        P(N = n) = (1 − 1/p) p^{−n}, p > 1.

    Raises
    ------
    ValueError
        p ≤ 1 or not finite; a bad m or seed.

    Notes
    -----
    Z(x) = √(a_N p^{N+1}) Π_{k≤N} ω_k·x with a_n = 1/n!, so E[Z(x) Z(y)] = exp(x·y). Signed (odd degrees):
    the normalised weights are ill-conditioned.

    References
    ----------
    P. Kar, H. Karnick, "Random Feature Maps for Dot Product Kernels", AISTATS 2012, Algorithm 1.

    Examples
    --------
    >>> from approxlab.variants import RandomMaclaurin
    >>> RandomMaclaurin(4, num_features=32).feature_width(4)
    32
    """

    name = "maclaurin"
    family = "random features"
    label = "random Maclaurin"
    color = "#b8850a"
    similarity_function = None

    def __init__(self, head_dim: int, num_features: int = 256, seed: int = 0, p: float = 2.0):
        self.head_dim = check_int(head_dim, "head_dim", minimum=1)
        self.num_features = check_int(num_features, "num_features", minimum=1)
        if isinstance(p, bool) or not (isinstance(p, (int, float)) and p > 1 and math.isfinite(p)):
            raise ValueError(f"p must be a finite number > 1 (P(N = n) = p^-(n+1)), got {p!r}")
        gen = torch.Generator().manual_seed(check_seed(seed))
        # the degrees and coefficients (a few float64 per feature), before anything is drawn
        budget.require(6 * self.num_features * 8, f"maclaurin num_features={self.num_features:,}: the degrees and "
                                                "coefficients of the features")
        # N geometric: P(N = n) = (1 − 1/p) p^{−n} (= p^{−(n+1)} at p = 2), by inversion of P(N ≥ n) = p^{−n}
        u = torch.rand(self.num_features, generator=gen, dtype=torch.float64)
        degrees = torch.floor(torch.log1p(-u) / math.log(1.0 / p)).long()
        self.degrees = degrees
        self.p = float(p)
        top = int(degrees.max()) if len(degrees) else 0
        # the signs drawn (m × top × D) and the factors kept (Σ N_i × D), float64: p near 1 draws high degrees
        budget.require(8 * head_dim * (self.num_features * max(top, 1) + int(degrees.sum())),
                       f"maclaurin num_features={self.num_features:,}, p={p!r}: the random signs (m × the largest drawn "
                       f"degree {top:,} × D = {self.num_features:,} × {top:,} × {head_dim}, float64)")
        signs = torch.randint(0, 2, (self.num_features, max(top, 1), head_dim), generator=gen).double() * 2 - 1
        n = degrees.double()
        # log √(a_N / P(N)) with a_N = 1/N!, P(N) = (1 − 1/p) p^{−N}
        self.log_coef = 0.5 * (-torch.lgamma(n + 1) + n * math.log(p) - math.log(1 - 1 / p))
        # the factors ω_1..ω_N of every feature, stacked (Σ N_i rows, about m for p = 2), and the feature
        # each row belongs to: one GEMM gives every factor ω·x (rows beyond a feature's degree are never drawn on)
        active = torch.arange(max(top, 1))[None, :] < degrees[:, None]             # (m, top)
        self.omega = signs[active]                                                  # (Σ N_i, D)
        self.owner = torch.arange(self.num_features).repeat_interleave(degrees)       # (Σ N_i,)
        self._cast: dict = {}

    def _tensors(self, like):
        key = (like.device, like.dtype)
        if key not in self._cast:
            self._cast[key] = (self.omega.to(device=like.device, dtype=like.dtype),
                               self.log_coef.to(device=like.device, dtype=like.dtype), self.owner.to(like.device))
        return self._cast[key]

    def features(self, x):
        """All factors ω·x in one GEMM, then per feature Σ log|ω_k·x| and the parity of the negative
        factors (``index_add`` over the factor rows; memory O(rows · Σ N_i)): log|Z| and sign."""
        omega, log_coef, owner = self._tensors(x)
        m = log_coef.shape[0]
        dots = x @ omega.T                                                          # (…, Σ N_i)
        log_abs = log_coef.expand(*x.shape[:-1], m).clone()
        log_abs.index_add_(-1, owner, torch.log(dots.abs()))   # log 0 = −inf: a zero feature
        negatives = torch.zeros_like(log_abs).index_add_(-1, owner, (dots < 0).to(x.dtype))
        negative = negatives.remainder(2) == 1
        top_log = log_abs.amax(-1)
        top_log = torch.where(torch.isfinite(top_log), top_log, torch.zeros_like(top_log))
        sign = 1.0 - 2.0 * negative.to(x.dtype)
        return sign * torch.exp(log_abs - top_log[..., None]), top_log - 0.5 * math.log(m)

    def block(self, start: int, stop: int) -> "RandomMaclaurin":
        """The kernel of features start..stop−1 of this draw (their degrees, signs and coefficients), its estimate
        the mean over those features: a prefix block (start = 0) is itself a draw of stop features, since the
        features are independent and identically distributed."""
        start = check_int(start, "start", minimum=0)
        stop = check_int(stop, "stop", minimum=start + 1, maximum=self.num_features)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), self.degrees.cumsum(0)])
        rows = slice(int(offsets[start]), int(offsets[stop]))
        part = object.__new__(RandomMaclaurin)
        part.head_dim, part.num_features, part.p = self.head_dim, stop - start, self.p
        part.degrees, part.log_coef = self.degrees[start:stop], self.log_coef[start:stop]
        part.omega, part.owner = self.omega[rows], self.owner[rows] - start
        part._cast = {}
        return part

    def feature_width(self, head_dim: int) -> int:
        return self.num_features

    def kernel_expression(self, dim: int = 2) -> KernelExpression:
        """κ̂ = (1/m) Σ_i Z_i(x) Z_i(y): random polynomial terms of random degree with mean exp(s), signed."""
        z = sp.Function("Z_i")
        return random_estimate(
            z(sp.Symbol("x")) * z(sp.Symbol("y")), mean=sp.exp(s), features=m, feature_sign="sign-changing",
            reason="κ̂ = (1/m) Σ_i a_{N_i}/P(N_i) Π_k (ω_ik·x)(ω_ik·y): random polynomial terms of random degree, "
                   "unbiased for exp(s); its degree is that of the largest sampled N, not a fixed one")
