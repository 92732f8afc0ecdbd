"""Hedgehog (Zhang, Bhatia, Kumbong, Ré, "The Hedgehog & the Porcupine: Expressive Linear Attentions with
Softmax Mimicry", ICLR 2024): a trainable linear layer followed by the exponential, on both signs,
    φ(x) = [exp(xW + b), exp(−xW − b)]                (2F features, > 0; W ∈ R^{D×F}, b ∈ R^F)
trained so that φ(q)·φ(k) weights mimic the softmax weights (cross-entropy between the rows). The
public code (lolcats) normalises each half with a softmax over the features; that multiplies a key's
features by a key-dependent factor and so changes the kernel; here the map is the paper's
exponential, carried stably as (f, log scale) like FAVOR+.

It takes ``weight`` (D × F) and ``bias`` (F) explicitly: fitted parameters are data of the kernel, fixed
before any pass (no causal leak). Without them the map starts at W = I, b = 0 (the initialisation
:func:`approxlab.analysis.distill.distill` uses).
"""

from __future__ import annotations

import sympy as sp
import torch

from ._expression import KernelExpression, d_index
from ._learned_map import _Learned
from ._registry import register_kernel


@register_kernel
class Hedgehog(_Learned):
    r"""Hedgehog: φ(x) = [exp(xW + b), exp(−xW − b)] (2F' features, > 0), carried as (f ≤ 1, log scale).

    Parameters
    ----------
    head_dim : int
        D (given by the entry points).
    weight : torch.Tensor or None
        W (D × F'), or (H × D × F') for one map per head (inputs (…, H, N, D)); None: the identity (the
        initialisation :func:`approxlab.analysis.distill.distill` uses).
    bias : torch.Tensor or None
        b (F'), or (H × F') with a per-head W; None: zeros.

    Raises
    ------
    ValueError, TypeError
        A weight or bias of the wrong shape, or not finite.

    Notes
    -----
    The paper's exponential map; the public lolcats code normalises each half with a softmax, which changes
    the kernel. κ is a sum of exponentials: no finite rational degree.

    References
    ----------
    M. Zhang, K. Bhatia, H. Kumbong, C. Ré, "The Hedgehog & the Porcupine: Expressive Linear Attentions
    with Softmax Mimicry", ICLR 2024.

    Examples
    --------
    >>> from approxlab.variants import Hedgehog
    >>> Hedgehog(4).feature_width(4)
    8
    """

    name = "hedgehog"
    family = "learned maps"
    label = "Hedgehog"
    color = "#000000"

    def __init__(self, head_dim: int, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None):
        super().__init__(head_dim, weight, bias)

    def features(self, x):
        u = self._linear(x)
        logits = torch.cat([u, -u], dim=-1)
        top = logits.amax(-1)
        return torch.exp(logits - top[..., None]), top

    def feature_width(self, head_dim: int) -> int:
        return 2 * self.columns

    def kernel_expression(self, dim: int = 2) -> KernelExpression:
        """In the pre-activations a = xW + c (query) and b = yW + c (key): κ = Σ_f e^{a_f + b_f} + e^{−a_f − b_f},
        a sum of exponentials of the key entries, so no finite rational degree."""
        a = sp.symbols(f"a_1:{dim + 1}", real=True)
        b = sp.symbols(f"b_1:{dim + 1}", real=True)
        ai, bi = sp.IndexedBase("a"), sp.IndexedBase("b")
        width = sp.Symbol("F", integer=True, positive=True)
        display = sp.Sum(sp.exp(ai[d_index] + bi[d_index]) + sp.exp(-ai[d_index] - bi[d_index]), (d_index, 1, width))
        concrete = sp.Add(*[sp.exp(u + w) + sp.exp(-u - w) for u, w in zip(a, b)])
        return KernelExpression(
            "", {}, display, concrete, a, b, False, features=2 * width, feature_sign="positive",
            note="in the pre-activations xW + c, yW + c",
            no_degree="κ = Σ_f [e^{a_f} e^{b_f} + e^{−a_f} e^{−b_f}] with a = xW + c, b = yW + c: a sum of "
                      "exponentials of the key entries, not a rational function of them")
