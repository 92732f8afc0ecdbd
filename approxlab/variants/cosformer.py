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

import torch

from ..core.checks import check_int, check_tensor
from ..core.protocol import KernelVariant
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
        t = theta[: x.shape[-2]].to(device=x.device, dtype=x.dtype)
        pos = torch.stack([torch.cos(t), torch.sin(t)], dim=-1).expand(*x.shape[:-1], 2)
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
