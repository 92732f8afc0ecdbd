"""DPFP, deterministic parameter-free projection (Schlag, Irie, Schmidhuber, "Linear Transformers Are
Secretly Fast Weight Programmers", ICML 2021, eq. 39): with x̃ = [relu(x), relu(−x)] ∈ R^{2D},
    φ_ν(x)_{(i−1)·2D + j} = x̃_j · x̃_{(j − i) mod 2D},      i = 1..ν, j = 1..2D      (2Dν features, ≥ 0)
(the paper's code: ``x̃.roll(i) * x̃`` for i = 1..ν, concatenated). A row whose features are all zero gets
zero weights (engine convention), e.g. x = 0.
"""

from __future__ import annotations

import sympy as sp
import torch

from ..core.checks import HeadDimError, check_int
from ..core.protocol import KernelVariant
from ._expression import D, KernelExpression, d_index, orthant_vectors, r_index
from ._registry import register_kernel


@register_kernel
class DPFP(KernelVariant):
    r"""DPFP_ν: φ(x) = concat_{i=1..ν} x̃ ⊙ roll(x̃, i), x̃ = [relu(x), relu(−x)] (2Dν features, ≥ 0).

    Parameters
    ----------
    head_dim : int
        D (given by the entry points).
    nu : int
        ν, 1 ≤ ν < 2D.

    Raises
    ------
    ValueError
        ν ≥ 2D (rolls repeat beyond).

    Notes
    -----
    φ_ν(x)_{(i−1)·2D + j} = x̃_j · x̃_{(j − i) mod 2D}; the row weights are rational of degree (2, 2) on the
    positive orthant.

    References
    ----------
    I. Schlag, K. Irie, J. Schmidhuber, "Linear Transformers Are Secretly Fast Weight Programmers",
    ICML 2021, eq. 39.

    Examples
    --------
    >>> from approxlab.variants import DPFP
    >>> DPFP(4, nu=3).feature_width(4)
    24
    """

    name = "dpfp"
    family = "small feature maps"
    label = "DPFP"
    color = "#3c3c3c"

    def __init__(self, head_dim: int, nu: int = 1):
        self.head_dim = check_int(head_dim, "head_dim", minimum=1)
        self.nu = check_int(nu, "nu", minimum=1)
        if self.nu >= 2 * self.head_dim:
            raise HeadDimError(f"nu must be < 2·head_dim = {2 * self.head_dim} (rolls repeat beyond), got {nu}")

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

    def feature_width(self, head_dim: int) -> int:
        return 2 * head_dim * self.nu

    def kernel_expression(self, dim: int = 2) -> KernelExpression:
        """On the positive orthant x̃ = (x, 0): κ = Σ_{i≤ν} Σ_j x̃_j x̃_{j−i} ỹ_j ỹ_{j−i} (indices mod 2D), a
        polynomial of degree 2 in the key entries; F = 2Dν."""
        x, y = orthant_vectors(dim, "x", "y")
        xt, yt = list(x) + [0] * dim, list(y) + [0] * dim
        nu = min(self.nu, 2 * dim - 1)
        concrete = sp.Add(*[xt[j] * xt[(j - i) % (2 * dim)] * yt[j] * yt[(j - i) % (2 * dim)]
                            for i in range(1, nu + 1) for j in range(2 * dim)])
        xi, yi = sp.IndexedBase(r"\tilde{x}"), sp.IndexedBase(r"\tilde{y}")
        display = sp.Sum(xi[d_index] * xi[d_index - r_index] * yi[d_index] * yi[d_index - r_index],
                         (d_index, 1, 2 * D), (r_index, 1, sp.Symbol(r"\nu")))
        return KernelExpression("", {}, display, concrete, x, y, False, features=2 * D * self.nu,
                                feature_sign="non-negative", note="x̃ = [relu(x), relu(−x)]; positive orthant")
