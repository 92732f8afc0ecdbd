"""Performer / FAVOR+ (Choromanski et al., 2021): random features with E[φ(x)·φ(y)] = exp(x·y).

    positive:  φ(x) = exp(W x − ‖x‖²/2) / √m          (always > 0)
    trig:      φ(x) = exp(‖x‖²/2) [sin(W x), cos(W x)] / √m   (can give negative weights)
with x = q·√scale (= q / D^¼ by default), W an m × D matrix of Gaussian rows, by default in
orthogonal blocks with chi-distributed row norms. Lemma 2: relative variance of the positive
estimator (e^{‖x+y‖²} − 1)/m.

Stabilisation: each feature is returned as (f, log scale) with f ≤ 1; the query scale cancels per row,
the key scale is carried exactly by the engine (running maximum), so no ε is added anywhere and the
causal form never looks at a later key. (``performer-pytorch`` adds ε = 1e-4 after subtracting the
maximum over all keys, which biases towards uniform attention and, in causal mode, lets a later key
move earlier outputs; see the tests.)
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from .._checks import check_choice, check_int, check_tensor
from .base import KernelVariant, haar_orthogonal

LOG2_E = 1.0 / math.log(2.0)


def gaussian_projection(num_features: int, dim: int, *, orthogonal: bool = True, seed: int = 0) -> torch.Tensor:
    """m × D float64 matrix of random feature directions, reproducible from ``seed`` (see
    :func:`_gaussian_projection`; cached, since ``attention(..., "performer")`` rebuilds its kernel per call)."""
    return _gaussian_projection(num_features, dim, orthogonal, seed).clone()


@lru_cache(maxsize=16)
def _gaussian_projection(num_features: int, dim: int, orthogonal: bool, seed: int) -> torch.Tensor:
    """m × D float64 matrix of random feature directions, reproducible from ``seed``.

    orthogonal: stacked blocks of a Haar-random orthogonal D × D matrix (QR of a Gaussian matrix),
    rows rescaled by the norms of independent Gaussian vectors, so each row is still N(0, I_D)
    marginally. iid: plain N(0, I_D) rows.
    """
    gen = torch.Generator().manual_seed(seed)
    if not orthogonal:
        return torch.randn(num_features, dim, generator=gen, dtype=torch.float64)
    blocks = []
    for _ in range(math.ceil(num_features / dim)):
        blocks.append(haar_orthogonal(dim, gen).T)
    rows = torch.cat(blocks)[:num_features]
    norms = torch.randn(num_features, dim, generator=gen, dtype=torch.float64).norm(dim=1)
    return rows * norms[:, None]


class Performer(KernelVariant):
    """num_features: m random features (default D·log D); kind: "positive" (exp features, > 0) or
    "trig" (sin/cos, can be negative); orthogonal: orthogonal blocks with chi row norms (True) or iid
    Gaussian rows; seed: the projection's seed; projection: an explicit (m, D) matrix instead."""

    name = "performer"

    def __init__(
        self,
        head_dim: int,
        num_features: int | None = None,
        kind: str = "positive",
        orthogonal: bool = True,
        seed: int = 0,
        projection: torch.Tensor | None = None,
    ):
        self.kind = check_choice(kind, "kind", {"positive", "trig"})
        if projection is not None:
            check_tensor(projection, "projection", ndim=2)
            if projection.shape[1] != head_dim:
                raise ValueError(f"projection must be (num_features, {head_dim}), got {tuple(projection.shape)}")
            if num_features is not None and num_features != projection.shape[0]:
                raise ValueError(f"num_features={num_features} disagrees with projection rows {projection.shape[0]}")
            self.projection = projection
        else:
            if num_features is None:
                num_features = max(1, int(head_dim * math.log(head_dim))) if head_dim > 1 else 1
            num_features = check_int(num_features, "num_features", minimum=1)
            if not isinstance(orthogonal, bool):
                raise TypeError(f"orthogonal must be a bool, got {orthogonal!r}")
            self.projection = gaussian_projection(num_features, head_dim, orthogonal=orthogonal, seed=check_int(seed, "seed", minimum=0))
        self.num_random = self.projection.shape[0]
        self._cast: dict = {}

    def _projection(self, like: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
        """factor · W in ``like``'s device and dtype (cached per call site's needs)."""
        key = (like.device, like.dtype, factor)
        if key not in self._cast:
            self._cast[key] = (self.projection * factor).to(device=like.device, dtype=like.dtype)
        return self._cast[key]

    def features(self, x):
        """(f, log scale) with φ(x) = f · exp(log scale), f ≤ 1.

        positive: with u_w = w·x and t = max_w u_w, exp(u_w − ‖x‖²/2) = exp(u_w − t) · exp(t − ‖x‖²/2).
        The logits come out of the GEMM already in base 2 (W · log₂e), so f = 2^(u₂ − max u₂): exp2
        is cheaper than exp on CPU and the GEMM's rounding is unchanged.
        """
        half_sq = 0.5 * (x * x).sum(-1)
        log_m = 0.5 * math.log(self.num_random)
        if self.kind == "positive":
            u2 = x @ self._projection(x, LOG2_E).T
            top2 = u2.amax(-1)
            shifted = u2.sub_(top2[..., None]) if not u2.requires_grad else u2 - top2[..., None]
            f = shifted.exp2_() if not shifted.requires_grad else torch.exp2(shifted)
            return f, top2 * math.log(2.0) - half_sq - log_m
        u = x @ self._projection(x).T
        return torch.cat([torch.sin(u), torch.cos(u)], dim=-1), half_sq - log_m

    def kernel_estimate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The unnormalised estimate φ(x)·φ(y) (…, Nx, Ny), in the input dtype (may overflow for huge norms)."""
        fx, cx = self.features(x)
        fy, cy = self.features(y)
        return (fx @ fy.transpose(-1, -2)) * torch.exp(cx[..., :, None] + cy[..., None, :])

    def num_features(self, head_dim: int) -> int:
        return self.num_random * (1 if self.kind == "positive" else 2)
