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

import sympy as sp
import torch

from ..core.checks import check_bool, check_choice, check_int, check_seed, check_tensor
from ..core.protocol import KernelVariant
from ._expression import KernelExpression, draw_symbols, m, random_estimate, s
from ._projections import gaussian_projection
from ._registry import register_kernel

LOG2_E = 1.0 / math.log(2.0)


@register_kernel
class Performer(KernelVariant):
    r"""FAVOR+ random features: E[φ(x)·φ(y)] = exp(x·y), m draws of w ~ N(0, I_D).

    Parameters
    ----------
    head_dim : int
        D (given by the entry points).
    num_features : int or None
        m, the number of random features (draws of w); default D·log D. F = m (positive), 2m (trig).
    kind : {"positive", "trig"}
        exp(Wx − ‖x‖²/2)/√m (> 0), or exp(‖x‖²/2)[sin Wx, cos Wx]/√m (signed).
    orthogonal : bool
        Orthogonal blocks with chi row norms (True) or iid Gaussian rows.
    seed : int
        The projection's seed.
    projection : torch.Tensor or None
        An explicit (m, D) matrix W instead of a drawn one.

    Raises
    ------
    ValueError, TypeError
        Bad values or types of the parameters, a projection of the wrong shape.

    Notes
    -----
    Lemma 2: the positive estimator's relative variance is (e^{‖x+y‖²} − 1)/m. Features are carried as
    (f ≤ 1, log scale); no ε is added and a causal output never depends on a later key.

    References
    ----------
    K. Choromanski et al., "Rethinking Attention with Performers", ICLR 2021.

    Examples
    --------
    >>> from approxlab.variants import Performer
    >>> Performer(8, num_features=16).feature_width(8), Performer(8, num_features=16, kind="trig").feature_width(8)
    (16, 32)
    """

    name = "performer"
    family = "random features"
    label = "FAVOR+"
    color = "#d55e00"

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
        self.num_features = self.projection.shape[0]
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
        log_m = 0.5 * math.log(self.num_features)
        if self.kind == "positive":
            u2 = x @ self._projection(x, LOG2_E).T
            top2 = u2.amax(-1)
            shifted = u2.sub_(top2[..., None]) if not u2.requires_grad else u2 - top2[..., None]
            f = shifted.exp2_() if not shifted.requires_grad else torch.exp2(shifted)
            return f, (top2 * math.log(2.0) - 0.5 * torch.linalg.vecdot(x, x) - log_m) if with_scale else None
        u = x @ self._projection(x).T
        f = torch.cat([torch.sin(u), torch.cos(u)], dim=-1)
        return f, (0.5 * torch.linalg.vecdot(x, x) - log_m) if with_scale else None

    def fixed_params(self, params: dict) -> dict:
        """Parameters that rebuild this kernel without drawing W again: the projection itself and the kind."""
        return dict(projection=self.projection, kind=self.kind)

    def kernel_estimate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The unnormalised estimate φ(x)·φ(y) (…, Nx, Ny), in the input dtype (may overflow for huge norms)."""
        fx, cx = self.features(x)
        fy, cy = self.features(y)
        return (fx @ fy.transpose(-1, -2)) * torch.exp(cx[..., :, None] + cy[..., None, :])

    def feature_width(self, head_dim: int) -> int:
        return self.num_features * (1 if self.kind == "positive" else 2)

    def describe_size(self, head_dim: int) -> str:
        return f"performer num_features={self.num_features:,} (F = {self.feature_width(head_dim):,} features)"

    def kernel_expression(self, dim: int = 2) -> KernelExpression:
        """κ̂ = (1/m) Σ_i φ_{w_i}(x) φ_{w_i}(y), a random estimate with mean exp(s): no finite degree."""
        wx, wy, nx, ny, _ = draw_symbols()
        if self.kind == "positive":
            return random_estimate(
                sp.exp(wx - nx ** 2 / 2) * sp.exp(wy - ny ** 2 / 2), mean=sp.exp(s), features=m,
                reason="κ̂ = (1/m) Σ_i exp(w_i·x − ‖x‖²/2) exp(w_i·y − ‖y‖²/2) is a random sum of m exponentials, "
                       "unbiased for exp(s) (see gaussian_kernel), not a rational function of s")
        return random_estimate(
            sp.exp((nx ** 2 + ny ** 2) / 2) * sp.cos(wx - wy), mean=sp.exp(s), features=2 * m,
            feature_sign="sign-changing",
            reason="κ̂ = (1/m) Σ_i exp((‖x‖²+‖y‖²)/2) cos(w_i·x − w_i·y) is a random sum of m trigonometric "
                   "terms, unbiased for exp(s), not a rational function of s")
