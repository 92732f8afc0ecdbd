"""cosFormer (Qin, Sun, Deng, Li, Wei, Lv, Yan, Kong, Zhong, "cosFormer: Rethinking Softmax in Attention",
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

import sympy as sp
import torch

from ..core.checks import check_int, check_tensor
from ..core.protocol import KernelVariant
from ._expression import D, KernelExpression, d_index, orthant_vectors
from ._registry import register_kernel


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
        t = theta[: x.shape[-2]]  # cos and sin in float64, then rounded once to x's dtype: the same positions
        pos = torch.stack([torch.cos(t), torch.sin(t)], dim=-1).to(device=x.device, dtype=x.dtype)  # at any dtype
        pos = pos.expand(*x.shape[:-1], 2)
        return torch.cat([x, pos], dim=-1)

    return attach(q), attach(k)


def has_positions(x: torch.Tensor) -> bool:
    """True when the last two coordinates of every row of x are a position (cos θ, sin θ) as
    :func:`with_positions` appends them: both ≥ 0 and on the unit circle to within 2⁻⁶ (positions rounded
    to bfloat16, then cast up, still count)."""
    if x.shape[-1] < 3 or not x.numel():
        return False
    pos = x[..., -2:].detach()
    radius = (pos.double() ** 2).sum(-1)
    return bool((pos >= 0).all()) and bool(((radius - 1).abs() <= 2**-6).all())


@register_kernel
class Cosformer(KernelVariant):
    r"""cosFormer: φ(x) = [relu(x_c) cos θ, relu(x_c) sin θ], the last two coordinates of x giving θ.

    Parameters
    ----------
    head_dim : int
        D + 2: the content dim plus the two position coordinates (:func:`with_positions`).

    Notes
    -----
    κ(q_i, k_j) = relu(q_i)·relu(k_j) cos(π(i − j)/(2M)) = φ(q_i)·φ(k_j) with θ_i = πi/(2M); F = 2D. The
    entry points append positions 0..N−1 to plain q, k (:meth:`prepare_inputs`).

    References
    ----------
    Z. Qin et al., "cosFormer: Rethinking Softmax in Attention", ICLR 2022, eq. 9–11.

    Examples
    --------
    >>> import torch
    >>> from approxlab.variants import Cosformer, with_positions
    >>> q, k = with_positions(torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 4))
    >>> q.shape[-1], Cosformer(6).feature_width(6)
    (6, 8)
    """

    name = "cosformer"
    family = "small feature maps"
    label = "cosFormer"
    color = "#006374"
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

    @staticmethod
    def prepare_inputs(q: torch.Tensor, k: torch.Tensor):
        """q, k with positions (cos θ_i, sin θ_i) appended (:func:`with_positions`), unless both carry them
        already (:func:`has_positions`): then as given. One of them carrying positions is an error."""
        carried = has_positions(q), has_positions(k)
        if all(carried):
            return q, k
        if any(carried):
            raise ValueError(f"cosformer reads positions from the last two coordinates of q and k: "
                             f"{'q' if carried[0] else 'k'} carries them (with_positions) but "
                             f"{'k' if carried[0] else 'q'} does not; pass both plain or both from with_positions")
        return with_positions(q, k)

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

    def feature_width(self, head_dim: int) -> int:
        return 2 * (head_dim - 2)

    def kernel_expression(self, dim: int = 2) -> KernelExpression:
        """On the positive orthant κ = φ(x)·φ(y), φ(x) = [x cos θ_x, x sin θ_x] (``dim`` content entries); in the
        key's reweighted entries y cos θ_y, y sin θ_y (its 2D features) κ is linear, like relu's."""
        x, yc, ys = orthant_vectors(dim, "x", "yc", "ys")   # yc = y_d cos θ_y, ys = y_d sin θ_y
        cx, sx = sp.symbols(r"c_x s_x", positive=True)       # cos θ_x, sin θ_x of the query's position
        concrete = sp.Add(*[a * cx * b for a, b in zip(x, yc)]) + sp.Add(*[a * sx * b for a, b in zip(x, ys)])
        theta = sp.symbols(r"\theta_x \theta_y", real=True)
        display = sp.cos(theta[0] - theta[1]) * sp.Sum(
            sp.Max(0, sp.Indexed("x", d_index)) * sp.Max(0, sp.Indexed("y", d_index)), (d_index, 1, D))
        return KernelExpression("", {}, display, concrete, x + (cx, sx), yc + ys, False, features=2 * D,
                                feature_sign="non-negative",
                                note="positions folded into the features (cos/sin of θ = πi/2M); positive orthant")
