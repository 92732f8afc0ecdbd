"""Hadamard linear attention (HLA): p kernel factors multiplied elementwise after each similarity,

    κ(q, k) = Π_{r=1}^{p} φ(x W_r) · φ(y W_r),

so each factor is a linear-attention kernel and the row weights become a rational function of degree
(p, p) in the factor similarities. This is a reconstruction from the public abstract of "HLA: Hadamard
Linear Attention" (arXiv 2602.12128); the paper's exact parametrisation is not reproduced.

Efficient form: the tensor state S = Σ_j φ(k_j W_1) ⊗ … ⊗ φ(k_j W_p) ⊗ v_j (D^p × Dv), read out by
contracting with φ(q_i W_r); cost O(N · D^p · Dv). As features: the Kronecker product of the factor
features. The explicit form multiplies the p factor kernel matrices (the definition).

feature_map: "elu" (elu+1, the linear-attention factor), "relu", or "affine", φ(x) = [1, x/√p], whose
factor is 1 + s_r/p, so with identity projections κ = (1 + s/p)^p → exp(s).
projections: None (identity for every factor), "orthogonal" (seeded Haar-random D × D per factor),
or a (p, D, D') tensor.
"""

from __future__ import annotations

import math

import sympy as sp
import torch

from ..core.checks import check_choice, check_int, check_seed, check_tensor
from ..core.protocol import KernelVariant
from ._projections import haar_orthogonal
from ._expression import D, KernelExpression, d_index, feature_sign, orthant_vectors, p, r_index, s, similarity_expression
from .linear import elu_feature, elu_log_scaled, elu_plus_one
from .relu import relu
from ._registry import register_kernel


@register_kernel
class HLA(KernelVariant):
    r"""Hadamard linear attention: κ(q, k) = Π_{r=1}^{p} φ(xW_r)·φ(yW_r), p kernel factors multiplied after each
    similarity (a reconstruction from the paper's abstract).

    Parameters
    ----------
    head_dim : int
        D (given by the entry points).
    factors : int
        p; the state is D^p × Dv.
    feature_map : {"elu", "relu", "affine"}
        The factor's feature map; "affine" is [1, x/√p], whose factor is 1 + s_r/p.
    projections : None, "orthogonal" or torch.Tensor
        Identity per factor, seeded Haar-random D × D per factor, or a (p, D, D') tensor.
    seed : int
        Seed of the orthogonal projections.

    Raises
    ------
    ValueError, TypeError
        Bad values or types, projections of the wrong shape.

    Notes
    -----
    The row weights are rational of degree (p, p) in the factor similarities; with identity projections
    and the affine map κ = (1 + s/p)^p → exp(s). Efficient form O(N·D^p·Dv).

    References
    ----------
    "HLA: Hadamard Linear Attention", arXiv 2602.12128 (abstract only; its exact parametrisation is not
    reproduced).

    Examples
    --------
    >>> from approxlab.variants import HLA
    >>> HLA(4, factors=2).feature_width(4), HLA(4, factors=2, feature_map="affine").similarity_function(2.0)
    (16, 4.0)
    """

    name = "hla"
    family = "polynomial kernels"
    label = "HLA"
    color = "#fbafe4"
    size_parameter = "factors"

    def __init__(self, head_dim: int, factors: int = 2, feature_map: str = "elu", projections=None, seed: int = 0):
        self.factors = check_int(factors, "factors", minimum=1, maximum=64)  # D^p features: 2^64 at D = 2
        self.feature_map = check_choice(feature_map, "feature_map", {"elu", "relu", "affine"})
        head_dim, seed = check_int(head_dim, "head_dim", minimum=1), check_seed(seed)
        # identity and orthogonal projections preserve inner products: every factor sees s itself
        self.preserves_similarity = projections is None or isinstance(projections, str)
        if projections is None:
            self.projections = None
        elif isinstance(projections, str):
            check_choice(projections, "projections", {"orthogonal"})
            gen = torch.Generator().manual_seed(seed)
            self.projections = torch.stack([haar_orthogonal(head_dim, gen) for _ in range(self.factors)])
        else:
            check_tensor(projections, "projections", ndim=3, layout="(factors, D, D')")
            if projections.shape[0] != self.factors or projections.shape[1] != head_dim or projections.shape[2] == 0:
                raise ValueError(
                    f"projections must be (factors={self.factors}, {head_dim}, D' >= 1), got {tuple(projections.shape)}"
                )
            self.projections = projections

    def fixed_params(self, params: dict) -> dict:
        """``params`` with drawn projections ("orthogonal") replaced by the matrices themselves (no redraw)."""
        if not isinstance(params.get("projections"), str):
            return params
        return {**{k: v for k, v in params.items() if k != "seed"}, "projections": self.projections}

    def similarity_function(self, s):
        """κ(s) when every factor sees the same similarity s (identity projections, affine map)."""
        if self.feature_map != "affine" or not self.preserves_similarity:
            raise ValueError("hla depends on s alone only with feature_map='affine' and identity/orthogonal projections")
        return (1 + s / self.factors) ** self.factors

    def factor_features(self, x: torch.Tensor, r: int) -> torch.Tensor:
        if self.projections is not None:
            x = x @ self.projections[r].to(device=x.device, dtype=x.dtype)
        if self.feature_map == "elu":
            return elu_feature(x)
        if self.feature_map == "relu":
            return torch.relu(x)
        ones = torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
        return torch.cat([ones, x / math.sqrt(self.factors)], dim=-1)

    def feature_width(self, head_dim: int) -> int:
        """Π_r D'_r, the Kronecker product's width (D'_r: factor r's projected width, +1 for affine)."""
        width = head_dim if self.projections is None else self.projections.shape[-1]
        return (width + (self.feature_map == "affine")) ** self.factors

    @property
    def exponential_order(self) -> int:
        """p for elu factors (a feature multiplies p exponentials), 0 for relu and affine factors."""
        return self.factors if self.feature_map == "elu" else 0

    def log_scaled_features(self, x):
        """The Kronecker product of the factors' log-scaled elu features (:func:`~approxlab.variants.linear.
        elu_log_scaled`), with the sum of their log scales: keys far below zero keep their weights."""
        out = total = None
        for r in range(self.factors):
            projected = x if self.projections is None else x @ self.projections[r].to(device=x.device, dtype=x.dtype)
            f, c = elu_log_scaled(projected)
            out = f if out is None else (out.unsqueeze(-1) * f.unsqueeze(-2)).flatten(-2)
            total = c if total is None else total + c
        return out, total

    def features(self, x):
        """Kronecker product of the p factor features: dimension Π_r D_r."""
        out = self.factor_features(x, 0)
        for r in range(1, self.factors):
            f = self.factor_features(x, r)
            out = (out.unsqueeze(-1) * f.unsqueeze(-2)).flatten(-2)
        return out, None

    def kernel(self, x, y):
        """Π_r φ(x W_r) φ(y W_r)ᵀ: the Hadamard product of the factor kernel matrices."""
        out = None
        for r in range(self.factors):
            factor = self.factor_features(x, r) @ self.factor_features(y, r).transpose(-1, -2)
            out = factor if out is None else out * factor
        return out, None

    def kernel_expression(self, dim: int = 2) -> KernelExpression:
        """affine: κ(s) = (1 + s/p)^p, F = (D + 1)^p. elu / relu: Π_r Σ_d φ(a_rd) φ(b_rd) in p distinct factor
        vectors a_r = xW_r, b_r = yW_r (the positive orthant), F = D^p: a polynomial of degree p in the key."""
        if self.feature_map == "affine":
            return similarity_expression(self.similarity_function(s), features=(D + 1) ** self.factors,
                                         note="every factor sees the same s (identity projections)")
        phi = elu_plus_one if self.feature_map == "elu" else relu
        ai, bi = sp.IndexedBase("a", positive=True), sp.IndexedBase("b", positive=True)
        display = sp.Product(sp.Sum(phi(ai[r_index, d_index]) * phi(bi[r_index, d_index]), (d_index, 1, D)),
                             (r_index, 1, p)).subs(p, self.factors)
        a = [orthant_vectors(dim, f"a_{r}")[0] for r in range(1, self.factors + 1)]
        b = [orthant_vectors(dim, f"b_{r}")[0] for r in range(1, self.factors + 1)]
        concrete = sp.Mul(*[sp.Add(*[phi(u) * phi(w) for u, w in zip(ar, br)]) for ar, br in zip(a, b)])
        return KernelExpression("", {}, display, concrete, tuple(sum(a, ())), tuple(sum(b, ())), False,
                                features=D ** self.factors, feature_sign=feature_sign(phi),
                                note="distinct factor vectors a_r = xW_r, b_r = yW_r; positive orthant")
