"""FAVOR# (Likhosherstov, Choromanski, Dubey, Liu, Sarlos, Weller, "FAVOR#: Sharp Attention Kernel
Approximations via New Classes of Positive Random Features", 2023), its simplified asymmetric
dense-exponential features (SADERF): since (Ψx)·(Ψ⁻¹y) = x·y for any invertible Ψ, queries are mapped
x → Ψx and keys y → Ψ⁻¹y before the FAVOR++ features (:mod:`approxlab.variants.favorpp`). Ψ diagonal is
chosen to minimise Σ_ij ‖Ψx_i + Ψ⁻¹y_j‖² (the quantity the OPRF variance grows with), whose minimiser is
Ψ_l = (mean_j y_jl² / mean_i x_il²)^{1/4} (:func:`saderf_rescale`; derived and tested in
tests/test_random_features.py); A then comes from the rescaled mean ‖x+y‖². The paper's full text was
not at hand: this objective and closed form are this toolkit's reading of SADERF, not a transcription,
and may differ from the paper's exact choice of Ψ.

Ψ and A are arguments of the kernel, fixed before the call (given, or computed by
:meth:`FavorSharp.calibrate` from a calibration set), so a causal pass never looks at a future key.
"""

from __future__ import annotations

from typing import Optional

import torch

from .favorpp import FavorPP, calibration_pair, mean_pair_norm_sq, oprf_a
from ._registry import register_kernel


def saderf_rescale(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """FAVOR#'s diagonal Ψ (D,) float64: Ψ_l = (mean_j y_jl² / mean_i x_il²)^{1/4} (module doc)."""
    x, y = x.double().reshape(-1, x.shape[-1]), y.double().reshape(-1, y.shape[-1])
    tiny = torch.finfo(torch.float64).tiny
    return ((y * y).mean(0).clamp_min(tiny) / (x * x).mean(0).clamp_min(tiny)) ** 0.25


@register_kernel
class FavorSharp(FavorPP):
    r"""FAVOR# (SADERF): FAVOR++ on Ψx for queries and Ψ⁻¹y for keys, Ψ = diag(``rescale``).

    Parameters
    ----------
    head_dim, num_features, a, norm_sum_sq, directions, seed, projection
        As for :class:`~approxlab.variants.FavorPP` (a / norm_sum_sq of the rescaled inputs).
    rescale : torch.Tensor or None
        The D positive entries of Ψ (None: identity, i.e. FAVOR++); :meth:`calibrate` gives Ψ and A.

    Raises
    ------
    ValueError
        As FAVOR++, and a rescale that is not D positive finite numbers.

    Notes
    -----
    (Ψx)·(Ψ⁻¹y) = x·y, so the estimate stays unbiased; Ψ_l = (mean_j y_jl² / mean_i x_il²)^{1/4} minimises
    Σ_ij ‖Ψx_i + Ψ⁻¹y_j‖² (this toolkit's reading of SADERF).

    References
    ----------
    V. Likhosherstov, K. Choromanski, A. Dubey, F. Liu, T. Sarlos, A. Weller, "FAVOR#: Sharp Attention
    Kernel Approximations via New Classes of Positive Random Features", 2023.

    Examples
    --------
    >>> import torch
    >>> from approxlab.variants import FavorSharp
    >>> q0, k0 = torch.randn(64, 4, dtype=torch.float64), 3 * torch.randn(64, 4, dtype=torch.float64)
    >>> bool((FavorSharp.calibrate(q0, k0)["rescale"] > 1).all())
    True
    """

    name = "favorsharp"
    family = "random features"
    label = "FAVOR#"
    color = "#a23582"
    no_degree = "κ̂ = FAVOR++ on (Ψx, Ψ⁻¹y): random exponentials unbiased for exp(s)"

    def __init__(self, head_dim: int, num_features: int | None = None, a: float | None = None,
                 norm_sum_sq: float | None = None, rescale: torch.Tensor | None = None,
                 directions: str = "orthogonal", seed: int = 0, projection: torch.Tensor | None = None):
        super().__init__(head_dim, num_features, a, norm_sum_sq, directions, seed, projection)
        if rescale is None:
            rescale = torch.ones(head_dim, dtype=torch.float64)
        if not isinstance(rescale, (torch.Tensor, list, tuple)) and not hasattr(rescale, "__array__"):
            raise TypeError(f"rescale must be a tensor (or sequence) of {head_dim} positive numbers, got {rescale!r}")
        try:
            rescale = torch.as_tensor(rescale, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"rescale must be {head_dim} positive numbers, got {rescale!r} ({exc})") from None
        if rescale.shape != (head_dim,) or not torch.isfinite(rescale).all() or (rescale <= 0).any():
            raise ValueError(f"rescale must be {head_dim} positive finite numbers, got shape {tuple(rescale.shape)}")
        self.rescale = rescale

    @classmethod
    def calibrate(cls, q: torch.Tensor, k: torch.Tensor, *, scale: Optional[float] = None) -> dict:
        """{"a": A*, "rescale": Ψ} from a calibration set of queries and keys (…, N, D): Ψ by
        :func:`saderf_rescale`, A* at the mean ‖Ψx + Ψ⁻¹y‖². In causal use, calibrate on data other than
        the future of the sequence (a held-out set or a prefix)."""
        x, y = calibration_pair(q, k, scale)
        psi = saderf_rescale(x, y)
        return {"a": oprf_a(mean_pair_norm_sq(x * psi, y / psi), q.shape[-1]), "rescale": psi}

    def features(self, x):
        raise TypeError("favorsharp has distinct query and key maps: use query_features / key_features")

    def query_features(self, x):
        return self._gerf(x * self._cast_to("psi", self.rescale, x))

    def key_features(self, x):
        return self._gerf(x / self._cast_to("psi", self.rescale, x))
