"""Deterministic and random feature maps from the linear-attention literature: DPFP, random Maclaurin
features for exp, and cosFormer's position-reweighted ReLU kernel.

DPFP, deterministic parameter-free projection (Schlag, Irie, Schmidhuber, "Linear Transformers Are
Secretly Fast Weight Programmers", ICML 2021, eq. 39): with x̃ = [relu(x), relu(−x)] ∈ R^{2D},
    φ_ν(x)_{(i−1)·2D + j} = x̃_j · x̃_{(j − i) mod 2D},      i = 1..ν, j = 1..2D      (2Dν features, ≥ 0)
(the paper's code: ``x̃.roll(i) * x̃`` for i = 1..ν, concatenated). A row whose features are all zero gets
zero weights (engine convention), e.g. x = 0.

Random Maclaurin features (Kar & Karnick, "Random Feature Maps for Dot Product Kernels", AISTATS 2012,
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

cosFormer (Qin, Sun, Deng, Li, Wei, Lv, Yan, Kong, Zhong, "cosFormer: Rethinking Softmax in Attention",
ICLR 2022, eq. 9–11): κ(q_i, k_j) = relu(q_i)·relu(k_j) · cos(π(i − j)/(2M)), M ≥ the sequence length.
It depends on the positions i, j, which the kernel protocol (features of one vector at a time) does
not pass. cos(a − b) = cos a cos b + sin a sin b folds them into the features:
    φ(x_i) = [relu(x_i) cos θ_i, relu(x_i) sin θ_i],   θ_i = π i / (2M),   so φ(q_i)·φ(k_j) = κ(q_i, k_j),
a 2D-feature linear kernel. The position travels with the vector: :func:`with_positions` appends the
two coordinates (cos θ_i, sin θ_i) to q and k, and the variant reads θ back from their direction
(atan2 of their absolute values, so θ ∈ [0, π/2] and κ ≥ 0 for any input; positions have both
coordinates ≥ 0 already), which the similarity scale √scale cannot change; relu is homogeneous of
degree 1, so the weights do not depend on the scale either. ``attention(*with_positions(q, k), v, "cosformer")``
therefore gives cosFormer for any scale, causal or not (a chunk's rows carry their own positions).
"""

from __future__ import annotations

import math

import torch

from ..core.checks import check_int, check_tensor
from ..core.protocol import KernelVariant


class DPFP(KernelVariant):
    """DPFP_ν: φ(x) = concat_{i=1..ν} x̃ ⊙ roll(x̃, i), x̃ = [relu(x), relu(−x)] (module doc)."""

    name = "dpfp"

    def __init__(self, head_dim: int, nu: int = 1):
        self.head_dim = check_int(head_dim, "head_dim", minimum=1)
        self.nu = check_int(nu, "nu", minimum=1)
        if self.nu >= 2 * self.head_dim:
            raise ValueError(f"nu must be < 2·head_dim = {2 * self.head_dim} (rolls repeat beyond), got {nu}")

    def features(self, x):
        xt = torch.cat([torch.relu(x), torch.relu(-x)], dim=-1)
        return torch.cat([xt * xt.roll(i, dims=-1) for i in range(1, self.nu + 1)], dim=-1), None

    def kernel(self, x, y):
        """Σ_i Σ_j x̃_j x̃_{j−i} ỹ_j ỹ_{j−i}: for each shift i, the products indexed by (j − i) mod 2D
        explicitly (no roll, no concatenation: independent of the feature layout), summed over j by a GEMM."""
        xt = torch.cat([torch.relu(x), torch.relu(-x)], dim=-1)
        yt = torch.cat([torch.relu(y), torch.relu(-y)], dim=-1)
        two_d = xt.shape[-1]
        total = 0
        for i in range(1, self.nu + 1):
            behind = (torch.arange(two_d, device=x.device) - i) % two_d
            total = total + (xt * xt[..., behind]) @ (yt * yt[..., behind]).transpose(-1, -2)
        return total, None

    def num_features(self, head_dim: int) -> int:
        return 2 * head_dim * self.nu


class RandomMaclaurin(KernelVariant):
    """Random Maclaurin features for exp(x·y) (Kar & Karnick 2012; module doc), m features, seedable."""

    name = "maclaurin"
    similarity_function = None

    def __init__(self, head_dim: int, num_features: int = 256, seed: int = 0, p: float = 2.0):
        self.head_dim = check_int(head_dim, "head_dim", minimum=1)
        self.num_random = check_int(num_features, "num_features", minimum=1)
        if not (isinstance(p, (int, float)) and p > 1 and math.isfinite(p)):
            raise ValueError(f"p must be a finite number > 1 (P(N = n) = p^-(n+1)), got {p!r}")
        gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
        # N geometric: P(N = n) = (1 − 1/p) p^{−n} (= p^{−(n+1)} at p = 2), by inversion of P(N ≥ n) = p^{−n}
        u = torch.rand(self.num_random, generator=gen, dtype=torch.float64)
        degrees = torch.floor(torch.log1p(-u) / math.log(1.0 / p)).long()
        self.degrees = degrees
        self.p = float(p)
        top = int(degrees.max()) if len(degrees) else 0
        signs = torch.randint(0, 2, (self.num_random, max(top, 1), head_dim), generator=gen).double() * 2 - 1
        n = degrees.double()
        # log √(a_N / P(N)) with a_N = 1/N!, P(N) = (1 − 1/p) p^{−N}
        self.log_coef = 0.5 * (-torch.lgamma(n + 1) + n * math.log(p) - math.log(1 - 1 / p))
        # the factors ω_1..ω_N of every feature, stacked (Σ N_i rows, about m for p = 2), and the feature
        # each row belongs to: one GEMM gives every factor ω·x (rows beyond a feature's degree are never drawn on)
        active = torch.arange(max(top, 1))[None, :] < degrees[:, None]             # (m, top)
        self.omega = signs[active]                                                  # (Σ N_i, D)
        self.owner = torch.arange(self.num_random).repeat_interleave(degrees)       # (Σ N_i,)
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

    def num_features(self, head_dim: int) -> int:
        return self.num_random


def cosformer_angles(n: int, max_len: int | None = None) -> torch.Tensor:
    """θ_i = π i / (2M), i = 0..n−1, M = max_len (default n) (float64)."""
    n = check_int(n, "n", minimum=1)
    max_len = n if max_len is None else check_int(max_len, "max_len", minimum=n)
    return math.pi * torch.arange(n, dtype=torch.float64) / (2 * max_len)


def with_positions(q: torch.Tensor, k: torch.Tensor, max_len: int | None = None):
    """q, k (B, H, N, D) → (B, H, N, D + 2) with (cos θ_i, sin θ_i) appended, for ``"cosformer"`` (module doc).

    Queries are at positions 0..Nq−1 and keys at 0..Nk−1; M = max_len (default max(Nq, Nk)).
    """
    check_tensor(q, "q")
    check_tensor(k, "k")
    n = max(q.shape[-2], k.shape[-2])
    theta = cosformer_angles(n, max_len)

    def attach(x):
        t = theta[: x.shape[-2]].to(device=x.device, dtype=x.dtype)
        pos = torch.stack([torch.cos(t), torch.sin(t)], dim=-1).expand(*x.shape[:-1], 2)
        return torch.cat([x, pos], dim=-1)

    return attach(q), attach(k)


class Cosformer(KernelVariant):
    """cosFormer: φ(x) = [relu(x_c) cos θ, relu(x_c) sin θ] with the last two coordinates of x giving θ."""

    name = "cosformer"
    positional = True

    def __init__(self, head_dim: int):
        self.head_dim = check_int(head_dim, "head_dim", minimum=3)

    @staticmethod
    def _split(x):
        content, pos = x[..., :-2], x[..., -2:].abs()
        radius = pos.norm(dim=-1, keepdim=True)
        unit = torch.where(radius > 0, pos / torch.where(radius > 0, radius, torch.ones_like(radius)),
                           torch.zeros_like(pos))
        return torch.relu(content), unit[..., 0:1], unit[..., 1:2]

    def features(self, x):
        r, c, s = self._split(x)
        return torch.cat([r * c, r * s], dim=-1), None

    def kernel(self, x, y):
        """relu(x_c)·relu(y_c) · cos(θ_x − θ_y), from the angles themselves (the reference for the features)."""
        rx, cx, sx = self._split(x)
        ry, cy, sy = self._split(y)
        theta_x, theta_y = torch.atan2(sx, cx)[..., 0], torch.atan2(sy, cy)[..., 0]
        # a vector without position coordinates (both 0) has zero features: keep that in the reference
        has_x, has_y = (cx * cx + sx * sx)[..., 0], (cy * cy + sy * sy)[..., 0]
        cos = torch.cos(theta_x[..., :, None] - theta_y[..., None, :]) * has_x[..., :, None] * has_y[..., None, :]
        return (rx @ ry.transpose(-1, -2)) * cos, None

    def num_features(self, head_dim: int) -> int:
        return 2 * (head_dim - 2)
