"""Random features for exp(x·y) beyond FAVOR+: hyperbolic, FAVOR++ (optimal positive), FAVOR# (SADERF),
with iid, orthogonal or simplex directions.

All three are unbiased, E[φ_q(x)·φ_k(y)] = exp(x·y), with w ~ N(0, I_D) per direction:

hyperbolic (Choromanski et al., "Rethinking attention with Performers", ICLR 2021, Lemma 1):
    φ(x) = exp(−‖x‖²/2) [exp(Wx), exp(−Wx)] / √(2m)          (2m features, all > 0)
    its MSE is ½(1 − e^{−‖x+y‖²}) times the positive one (Lemma 2).

FAVOR++ / optimal positive random features, OPRF (Likhosherstov, Choromanski, Dubey, Liu, Sarlos,
Weller, "Chefs' Random Tables: Non-Trigonometric Random Features", NeurIPS 2022): the generalized
exponential features with s = +1,
    φ(x) = D_A exp(A‖w‖² + B w·x − ‖x‖²/2) / √m,   B = √(1 − 4A),  D_A = (1 − 4A)^{D/4},   A < 1/8.
Gaussian integration gives E[φφ] = exp(x·y) for every A < 1/4, and the relative second moment of one
feature (:func:`gerf_relative_second_moment`, derived in tests/test_random_features_theory.py)
    E[Z²] = ((1 − 4A)² / (1 − 8A))^{D/2} exp(‖x+y‖² / (1 − 8A)),     Z = φ_w(x)φ_w(y)/e^{x·y};
A = 0 is FAVOR+ (Lemma 2: E[Z²] = e^{‖x+y‖²}). Its minimiser over A < 1/8 is the paper's closed form
    A* = (1 − 2ρ − √((2ρ + 1)² + 8ρ)) / 16,      ρ = ‖x+y‖² / D,
taken, as in the paper, at the mean of ‖x_i + y_j‖² over all query-key pairs (:func:`oprf_a`), which
is mean‖x‖² + mean‖y‖² + 2 mean(x)·mean(y), O(N) to compute. A* < 0, so the features are bounded.

FAVOR# (Likhosherstov, Choromanski, Dubey, Liu, Sarlos, Weller, "FAVOR#: Sharp Attention Kernel
Approximations via New Classes of Positive Random Features", 2023), its simplified asymmetric
dense-exponential features (SADERF): since (Ψx)·(Ψ⁻¹y) = x·y for any invertible Ψ, queries are mapped
x → Ψx and keys y → Ψ⁻¹y before the OPRF above. Ψ diagonal is chosen to minimise Σ_ij ‖Ψx_i + Ψ⁻¹y_j‖²
(the quantity the OPRF variance grows with), whose minimiser is Ψ_l = (mean_j y_jl² / mean_i x_il²)^{1/4}
(:func:`saderf_rescale`; derived and tested in tests/test_random_features.py); A then comes from the
rescaled mean ‖x+y‖². The paper's full text was not at hand: this objective and closed form are this
toolkit's reading of SADERF, not a transcription, and may differ from the paper's exact choice of Ψ.

Directions (``directions=``): "iid" rows N(0, I); "orthogonal" blocks of a Haar-random orthogonal
matrix with chi row norms (FAVOR+'s default, :func:`approxlab.variants.performer.gaussian_projection`);
"simplex" (SimRF: Reid, Choromanski, Likhosherstov, Weller, "Simplex Random Features", ICML 2023):
each block of D unit directions points to the vertices of a regular simplex (pairwise dot −1/(D−1)),
randomly rotated, rows scaled by independent chi_D norms; each row is still N(0, I) marginally, so the
estimators stay unbiased, and the negatively correlated directions lower the positive-feature MSE.

Data-dependent parameters (A, Ψ) are arguments of the kernel: they are fixed before the call (given,
or computed by :func:`calibrate` from a calibration set), so a causal pass never looks at a future key.
Stabilisation as FAVOR+: each feature is (f, log scale) with f ≤ 1 (maximum over the row's logits
subtracted); the key scale is carried exactly by the engine, no ε is added.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import numpy as np
import torch

from ..core.checks import check_choice, check_int, check_tensor, resolve_scale
from ..core.protocol import KernelVariant
from .performer import gaussian_projection

DIRECTIONS = ("iid", "orthogonal", "simplex")


# ----------------------------------------------------------------------------------------------
# directions
# ----------------------------------------------------------------------------------------------
def simplex_block(dim: int) -> torch.Tensor:
    """D × D float64: rows are D unit vectors with pairwise dot products −1/(D−1) (a regular simplex in
    the hyperplane ⟂ 1): e_i − 1/D, normalised. D = 1 gives [[1]]."""
    dim = check_int(dim, "dim", minimum=1)
    if dim == 1:
        return torch.ones(1, 1, dtype=torch.float64)
    rows = torch.eye(dim, dtype=torch.float64) - 1.0 / dim
    return rows / rows.norm(dim=1, keepdim=True)


def random_directions(num_features: int, dim: int, directions: str = "orthogonal", seed: int = 0) -> torch.Tensor:
    """m × D float64 matrix of random feature directions, each row N(0, I_D) marginally, from ``seed``."""
    num_features = check_int(num_features, "num_features", minimum=1)
    dim = check_int(dim, "dim", minimum=1)
    check_choice(directions, "directions", set(DIRECTIONS))
    seed = check_int(seed, "seed", minimum=0)
    if directions != "simplex":
        return gaussian_projection(num_features, dim, orthogonal=directions == "orthogonal", seed=seed)
    return _simplex_projection(num_features, dim, seed).clone()


@lru_cache(maxsize=16)
def _simplex_projection(num_features: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    count = math.ceil(num_features / dim)
    # count Haar rotations at once: batched QR of Gaussian matrices, columns signed by diag(R) (as haar_orthogonal)
    qmat, rmat = torch.linalg.qr(torch.randn(count, dim, dim, generator=gen, dtype=torch.float64))
    rotations = qmat * torch.sign(torch.diagonal(rmat, dim1=-2, dim2=-1)).unsqueeze(-2)
    rows = (simplex_block(dim) @ rotations).reshape(count * dim, dim)[:num_features]
    norms = torch.randn(num_features, dim, generator=gen, dtype=torch.float64).norm(dim=1)
    return rows * norms[:, None]


# ----------------------------------------------------------------------------------------------
# theory and data-dependent parameters
# ----------------------------------------------------------------------------------------------
def gerf_relative_second_moment(a, norm_sum_sq, dim):
    """E[Z²] of one positive GERF feature, Z = φ_w(x)φ_w(y)/e^{x·y} (module doc); A = 0: e^{‖x+y‖²}.

    Relative variance of the m-feature mean (iid directions): (E[Z²] − 1)/m. inf for A ≥ 1/8.
    """
    a, u = np.asarray(a, dtype=float), np.asarray(norm_sum_sq, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log = 0.5 * dim * (2 * np.log1p(-4 * a) - np.log1p(-8 * a)) + u / (1 - 8 * a)
        return np.where(a < 0.125, np.exp(log), np.inf)


def oprf_a(norm_sum_sq: float, dim: int) -> float:
    """The OPRF / FAVOR++ optimum A* = (1 − 2ρ − √((2ρ+1)² + 8ρ))/16, ρ = ‖x+y‖²/D (Chefs' Random Tables)."""
    if not (isinstance(norm_sum_sq, (int, float)) and math.isfinite(norm_sum_sq) and norm_sum_sq >= 0):
        raise ValueError(f"norm_sum_sq must be a finite number >= 0, got {norm_sum_sq!r}")
    rho = float(norm_sum_sq) / check_int(dim, "dim", minimum=1)
    return (1 - 2 * rho - math.sqrt((2 * rho + 1) ** 2 + 8 * rho)) / 16


def mean_pair_norm_sq(x: torch.Tensor, y: torch.Tensor) -> float:
    """mean over all pairs (i, j) of ‖x_i + y_j‖² = mean‖x‖² + mean‖y‖² + 2 mean(x)·mean(y), O(N)."""
    x, y = x.double().reshape(-1, x.shape[-1]), y.double().reshape(-1, y.shape[-1])
    return float((x * x).sum(-1).mean() + (y * y).sum(-1).mean() + 2 * x.mean(0) @ y.mean(0))


def saderf_rescale(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """FAVOR#'s diagonal Ψ (D,) float64: Ψ_l = (mean_j y_jl² / mean_i x_il²)^{1/4} (module doc)."""
    x, y = x.double().reshape(-1, x.shape[-1]), y.double().reshape(-1, y.shape[-1])
    tiny = torch.finfo(torch.float64).tiny
    return ((y * y).mean(0).clamp_min(tiny) / (x * x).mean(0).clamp_min(tiny)) ** 0.25


def calibrate(q: torch.Tensor, k: torch.Tensor, variant: str = "favorpp", *, scale: Optional[float] = None) -> dict:
    """Data-dependent parameters of ``variant`` from a calibration set of queries and keys (…, N, D).

    favorpp: {"a": A*} at the set's mean ‖x+y‖²; favorsharp: {"a": A*, "rescale": Ψ} with A* at the
    mean ‖Ψx + Ψ⁻¹y‖². x = q·√scale, y = k·√scale (scale = 1/√D by default), as the kernels see them.
    Pass the result as keyword arguments: ``attention(q, k, v, "favorsharp", **calibrate(q0, k0, "favorsharp"))``.
    In causal use, calibrate on data other than the future of the sequence (a held-out set or a prefix).
    """
    check_choice(variant, "variant", {"favorpp", "favorsharp"})
    for name, t in (("q", q), ("k", k)):
        if not isinstance(t, torch.Tensor) or t.ndim < 2:
            raise TypeError(f"{name} must be a torch.Tensor (…, N, D), got {type(t).__name__}")
        check_tensor(t, name, ndim=t.ndim)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the head dim, got {q.shape[-1]} and {k.shape[-1]}")
    root = math.sqrt(resolve_scale(scale, q.shape[-1]))
    x, y = q.double() * root, k.double() * root
    if variant == "favorpp":
        return {"a": oprf_a(mean_pair_norm_sq(x, y), q.shape[-1])}
    psi = saderf_rescale(x, y)
    return {"a": oprf_a(mean_pair_norm_sq(x * psi, y / psi), q.shape[-1]), "rescale": psi}


# ----------------------------------------------------------------------------------------------
# variants
# ----------------------------------------------------------------------------------------------
class _ExpRandomFeatures(KernelVariant):
    """Shared: the m × D directions W, their dtype casts, and the stabilised exponential features."""

    def __init__(self, head_dim, num_features, directions, seed, projection):
        self.head_dim = check_int(head_dim, "head_dim", minimum=1)
        if projection is not None:
            check_tensor(projection, "projection", ndim=2)
            if projection.shape[1] != head_dim:
                raise ValueError(f"projection must be (num_features, {head_dim}), got {tuple(projection.shape)}")
            if num_features is not None and num_features != projection.shape[0]:
                raise ValueError(f"num_features={num_features} disagrees with projection rows {projection.shape[0]}")
            self.projection = projection.double()
        else:
            if num_features is None:
                num_features = max(1, int(head_dim * math.log(head_dim))) if head_dim > 1 else 1
            self.projection = random_directions(check_int(num_features, "num_features", minimum=1), head_dim,
                                                check_choice(directions, "directions", set(DIRECTIONS)), seed)
        self.num_random = self.projection.shape[0]
        self._cast: dict = {}

    def _cast_to(self, name: str, value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        key = (name, like.device, like.dtype)
        if key not in self._cast:
            self._cast[key] = value.to(device=like.device, dtype=like.dtype)
        return self._cast[key]

    @staticmethod
    def _stable_exp(logits: torch.Tensor, log_scale: torch.Tensor):
        """(exp(logits − row max), log_scale + row max): f ≤ 1, f · e^{scale} = exp(logits + log_scale)."""
        top = logits.amax(-1)
        return torch.exp(logits - top[..., None]), log_scale + top


class Hyperbolic(_ExpRandomFeatures):
    """Hyperbolic FAVOR+: φ(x) = exp(−‖x‖²/2) [e^{Wx}, e^{−Wx}] / √(2m), 2m positive features (module doc)."""

    name = "hyperbolic"

    def __init__(self, head_dim: int, num_features: int | None = None, directions: str = "orthogonal",
                 seed: int = 0, projection: torch.Tensor | None = None):
        super().__init__(head_dim, num_features, directions, seed, projection)

    def features(self, x):
        u = x @ self._cast_to("w", self.projection, x).T
        log_scale = -0.5 * (x * x).sum(-1) - 0.5 * math.log(2 * self.num_random)
        return self._stable_exp(torch.cat([u, -u], dim=-1), log_scale)

    def num_features(self, head_dim: int) -> int:
        return 2 * self.num_random


class FavorPP(_ExpRandomFeatures):
    """FAVOR++ (optimal positive random features): φ(x) = D_A exp(A‖w‖² + B w·x − ‖x‖²/2)/√m (module doc).

    ``a``: the GERF parameter A (< 1/8; 0 is FAVOR+). Or ``norm_sum_sq``: the data's mean ‖x+y‖², A from
    the closed form (:func:`oprf_a`). Neither: ‖x+y‖² = 2√D, the mean for q, k ~ N(0, I) at scale 1/√D.
    """

    name = "favorpp"

    def __init__(self, head_dim: int, num_features: int | None = None, a: float | None = None,
                 norm_sum_sq: float | None = None, directions: str = "orthogonal", seed: int = 0,
                 projection: torch.Tensor | None = None):
        super().__init__(head_dim, num_features, directions, seed, projection)
        if a is not None and norm_sum_sq is not None:
            raise ValueError("give either a or norm_sum_sq, not both")
        if a is None:
            a = oprf_a(2 * math.sqrt(head_dim) if norm_sum_sq is None else norm_sum_sq, head_dim)
        if not (isinstance(a, (int, float)) and math.isfinite(a) and a < 0.125):
            raise ValueError(f"a must be a finite number < 1/8 (the second moment diverges beyond), got {a!r}")
        self.a = float(a)
        self.b = math.sqrt(1 - 4 * self.a)
        # per-direction bias A‖w‖² and the constant log D_A − log √m
        self.bias = self.a * (self.projection ** 2).sum(-1)
        self.log_const = 0.25 * head_dim * math.log1p(-4 * self.a) - 0.5 * math.log(self.num_random)

    def _gerf(self, x):
        u = x @ self._cast_to("bw", self.b * self.projection, x).T + self._cast_to("bias", self.bias, x)
        return self._stable_exp(u, self.log_const - 0.5 * (x * x).sum(-1))

    def features(self, x):
        return self._gerf(x)

    def num_features(self, head_dim: int) -> int:
        return self.num_random


class FavorSharp(FavorPP):
    """FAVOR# (SADERF): FAVOR++ on Ψx for queries and Ψ⁻¹y for keys, Ψ = diag(``rescale``) (module doc).

    ``rescale``: the D positive entries of Ψ (None: identity, i.e. FAVOR++); :func:`calibrate` gives
    Ψ and A from a calibration set. ``a`` / ``norm_sum_sq`` as for FAVOR++ (of the rescaled inputs).
    """

    name = "favorsharp"

    def __init__(self, head_dim: int, num_features: int | None = None, a: float | None = None,
                 norm_sum_sq: float | None = None, rescale: torch.Tensor | None = None,
                 directions: str = "orthogonal", seed: int = 0, projection: torch.Tensor | None = None):
        super().__init__(head_dim, num_features, a, norm_sum_sq, directions, seed, projection)
        if rescale is None:
            rescale = torch.ones(head_dim, dtype=torch.float64)
        rescale = torch.as_tensor(rescale, dtype=torch.float64)
        if rescale.shape != (head_dim,) or not torch.isfinite(rescale).all() or (rescale <= 0).any():
            raise ValueError(f"rescale must be {head_dim} positive finite numbers, got shape {tuple(rescale.shape)}")
        self.rescale = rescale

    def features(self, x):
        raise TypeError("favorsharp has distinct query and key maps: use query_features / key_features")

    def query_features(self, x):
        return self._gerf(x * self._cast_to("psi", self.rescale, x))

    def key_features(self, x):
        return self._gerf(x / self._cast_to("psi", self.rescale, x))
