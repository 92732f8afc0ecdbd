"""T2R (Kasai, Peng, Zhang, Yogatama, Ilharco, Pappas, Mao, Chen, Smith, "Finetuning Pretrained
Transformers into RNNs", EMNLP 2021): φ(x) = relu(xW + b) (F features, ≥ 0; a row whose features
are all zero gets zero weights, the engine's convention).

It takes ``weight`` (D × F) and ``bias`` (F) explicitly: fitted parameters are data of the kernel, fixed
before any pass (no causal leak). Without them the map starts at W = I, b = 0 (the initialisation
:func:`approxlab.analysis.distill.distill` uses).
"""

from __future__ import annotations

import dataclasses

import sympy as sp
import torch

from ._expression import D, KernelExpression, vector_expression
from ._learned_map import _Learned
from .relu import relu
from ._registry import register_kernel


@register_kernel
class T2R(_Learned):
    r"""T2R: φ(x) = relu(xW + b) (F' features, ≥ 0).

    Parameters
    ----------
    head_dim, weight, bias
        As for :class:`~approxlab.variants.Hedgehog` (W is D × F', or H × D × F' per head, F' the feature width;
        checked alike).

    References
    ----------
    J. Kasai et al., "Finetuning Pretrained Transformers into RNNs", EMNLP 2021.

    Examples
    --------
    >>> import torch
    >>> from approxlab.variants import T2R
    >>> T2R(2, weight=torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])).feature_width(2)
    3
    """

    name = "t2r"
    family = "learned maps"
    label = "T2R"
    color = "#d91a59"

    def __init__(self, head_dim: int, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None):
        super().__init__(head_dim, weight, bias)

    def features(self, x):
        return torch.relu(self._linear(x)), None

    def feature_width(self, head_dim: int) -> int:
        return self.columns

    def kernel_expression(self, dim: int = 2) -> KernelExpression:
        """κ = Σ_f relu(a_f) relu(b_f) in the pre-activations a = xW + c, b = yW + c (affine in the entries): a
        polynomial of degree 1 in the key on the orthant where the pre-activations are positive; F = the columns of W."""
        width = sp.Symbol("F", integer=True, positive=True)
        form = vector_expression(relu, dim, features=width,
                                 note="in the pre-activations xW + c, yW + c (affine in the entries); positive orthant")
        return dataclasses.replace(form, kappa=form.kappa.subs(D, width))
