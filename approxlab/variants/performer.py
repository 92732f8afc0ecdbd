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
from collections import OrderedDict

import torch

from ..core import budget
from ..core.checks import check_bool, check_choice, check_int, check_seed, check_tensor
from ..core.protocol import KernelVariant, haar_orthogonal

LOG2_E = 1.0 / math.log(2.0)


def gaussian_projection(num_features: int, dim: int, *, orthogonal: bool = True, seed: int = 0) -> torch.Tensor:
    """m × D float64 matrix of random feature directions, reproducible from ``seed`` (see
    :func:`draw_projection`). Sized against the memory budget first; small ones are kept in a cache of at
    most ``_CACHE_BYTES`` (``attention(..., "performer")`` rebuilds its kernel per call), large ones never."""
    num_features = check_int(num_features, "num_features", minimum=1)
    dim = check_int(dim, "head_dim", minimum=1)
    orthogonal, seed = check_bool(orthogonal, "orthogonal"), check_seed(seed)
    budget.require(2 * num_features * dim * 8,
                   f"performer num_features={num_features:,}: the m × D projection ({num_features:,} × {dim} float64)")
    key = (num_features, dim, orthogonal, seed)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key].clone()
    projection = draw_projection(num_features, dim, orthogonal=orthogonal, seed=seed)
    if projection.numel() * 8 <= _CACHE_BYTES // 4:
        _cache[key] = projection
        while cache_bytes() > _CACHE_BYTES:
            _cache.popitem(last=False)
    return projection.clone()


#: bytes of projections kept between calls; one larger than a quarter of it is never kept
_CACHE_BYTES = 256 * 2**20
_cache: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()


def cache_bytes() -> int:
    """Bytes held by the projection cache now."""
    return sum(w.numel() * w.element_size() for w in _cache.values())


def draw_projection(num_features: int, dim: int, *, orthogonal: bool, seed: int) -> torch.Tensor:
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
        head_dim = check_int(head_dim, "head_dim", minimum=1)
        check_bool(orthogonal, "orthogonal")
        check_seed(seed)
        if num_features is not None:
            num_features = check_int(num_features, "num_features", minimum=1)
        if projection is not None:
            check_tensor(projection, "projection", ndim=2, layout="(num_features, D)")
            if projection.shape[0] == 0 or projection.shape[1] != head_dim:
                raise ValueError(f"projection must be (num_features >= 1, {head_dim}), got {tuple(projection.shape)}")
            if num_features is not None and num_features != projection.shape[0]:
                raise ValueError(f"num_features={num_features} disagrees with projection rows {projection.shape[0]}")
            self.projection = projection
        else:
            if num_features is None:
                num_features = max(1, int(head_dim * math.log(head_dim))) if head_dim > 1 else 1
            self.projection = gaussian_projection(num_features, head_dim, orthogonal=orthogonal, seed=seed)
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
        return self._features(x, with_scale=True)

    def query_features(self, x):
        """φ(q) up to its per-query factor, which cancels in each row's normalisation: f alone (no ‖x‖²)."""
        return self._features(x, with_scale=False)

    def key_features(self, x):
        return self._features(x, with_scale=True)

    def exact_query_features(self, x):
        """φ(q) with its factor exp(−‖x‖²/2) (a hybrid's shared denominator needs the true κ)."""
        return self._features(x, with_scale=True)

    def _features(self, x, *, with_scale: bool):
        log_m = 0.5 * math.log(self.num_random)
        if self.kind == "positive":
            u2 = x @ self._projection(x, LOG2_E).T
            top2 = u2.amax(-1)
            shifted = u2.sub_(top2[..., None]) if not u2.requires_grad else u2 - top2[..., None]
            f = shifted.exp2_() if not shifted.requires_grad else torch.exp2(shifted)
            return f, (top2 * math.log(2.0) - 0.5 * torch.linalg.vecdot(x, x) - log_m) if with_scale else None
        u = x @ self._projection(x).T
        f = torch.cat([torch.sin(u), torch.cos(u)], dim=-1)
        return f, (0.5 * torch.linalg.vecdot(x, x) - log_m) if with_scale else None

    def kernel_estimate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The unnormalised estimate φ(x)·φ(y) (…, Nx, Ny), in the input dtype (may overflow for huge norms)."""
        fx, cx = self.features(x)
        fy, cy = self.features(y)
        return (fx @ fy.transpose(-1, -2)) * torch.exp(cx[..., :, None] + cy[..., None, :])

    def num_features(self, head_dim: int) -> int:
        return self.num_random * (1 if self.kind == "positive" else 2)

    def describe_size(self, head_dim: int) -> str:
        return f"performer num_features={self.num_random:,} (F = {self.num_features(head_dim):,} features)"
