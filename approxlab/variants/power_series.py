"""Kernels that are a polynomial in the similarity: κ = Σ_{r=0}^{p} a_r s^r, s = x·y.

Exact feature map through symmetric monomials: (x·y)^r = Σ_{|α|=r} (r!/α!) x^α y^α, so
    φ(x) = [ sqrt(|a_r| r!/α!) x^α ]_{r ≤ p, |α| = r},     dimension Σ_r C(D+r−1, r) = C(D+p, p)
(terms with a_r = 0 dropped). A negative a_r puts sign(a_r) on the query side only. The
monomials of degree r are built from those of degree r−1 by one gather-multiply (index ≥ last index),
so no (N, F, r) intermediate is ever allocated. Used by ``taylor``, ``polynomial`` and ``minimax``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence, Tuple

import numpy as np
import torch

from .base import KernelVariant


@lru_cache(maxsize=None)
def monomial_tables(dim: int, degree: int) -> Tuple[Tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """For r = 1..degree: (parent index into degree r−1, variable index, log α!) of each monomial."""
    tables = []
    last = np.zeros(1, dtype=np.int64)  # degree 0: the empty monomial, "last index" 0
    log_alpha_fact = np.zeros(1)
    run = np.zeros(1, dtype=np.int64)  # multiplicity of the last variable
    for _ in range(degree):
        parent, var, new_lf, new_run = [], [], [], []
        for p_idx, l in enumerate(last):
            for i in range(l, dim):
                parent.append(p_idx)
                var.append(i)
                mult = run[p_idx] + 1 if (i == l and len(tables) > 0) else 1
                new_lf.append(log_alpha_fact[p_idx] + math.log(mult))
                new_run.append(mult)
        parent, var = np.asarray(parent), np.asarray(var)
        log_alpha_fact, run = np.asarray(new_lf), np.asarray(new_run, dtype=np.int64)
        tables.append((parent, var, log_alpha_fact))
        last = var
    return tuple(tables)


def feature_dimension(dim: int, coefficients: Sequence[float]) -> int:
    return sum(math.comb(dim + r - 1, r) for r, a in enumerate(coefficients) if a != 0)


def monomial_features(x: torch.Tensor, coefficients: Sequence[float], *, signed: bool = False) -> torch.Tensor:
    """φ(x) with φ(x)·φ(y) = Σ_r a_r (x·y)^r; ``signed`` multiplies by sign(a_r) (the query side)."""
    dim = x.shape[-1]
    tables = monomial_tables(dim, len(coefficients) - 1)
    blocks = []
    monomials = torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
    for r, a in enumerate(coefficients):
        if r > 0:
            parent, var, log_af = tables[r - 1]
            parent_t = torch.as_tensor(parent, device=x.device)
            var_t = torch.as_tensor(var, device=x.device)
            monomials = monomials.index_select(-1, parent_t) * x.index_select(-1, var_t)
        if a == 0:
            continue
        log_af = np.zeros(1) if r == 0 else tables[r - 1][2]
        weight = np.exp(0.5 * (math.log(abs(a)) + math.lgamma(r + 1) - log_af))
        if signed and a < 0:
            weight = -weight
        blocks.append(monomials * torch.as_tensor(weight, dtype=x.dtype, device=x.device))
    return torch.cat(blocks, dim=-1)


def power_series(s, coefficients: Sequence[float]):
    """Σ_r a_r s^r by Horner's rule; works for numbers, numpy, torch and sympy."""
    result = 0
    for a in reversed(list(coefficients)):
        result = result * s + a
    return result


class PowerSeriesKernel(KernelVariant):
    """κ = Σ_r a_r s^r with given coefficients a_0..a_p (a_p ≠ 0)."""

    name = "power_series"

    def __init__(self, coefficients: Sequence[float]):
        coefficients = [float(a) for a in coefficients]
        if not coefficients or not all(math.isfinite(a) for a in coefficients):
            raise ValueError(f"coefficients must be a non-empty list of finite numbers, got {coefficients!r}")
        self.coefficients = tuple(coefficients)

    def similarity_function(self, s):
        return power_series(s, self.coefficients)

    def query_features(self, x):
        return monomial_features(x, self.coefficients, signed=True), None

    def key_features(self, x):
        return monomial_features(x, self.coefficients), None

    features = key_features

    def kernel(self, x, y):
        return self.similarity_function(x @ y.transpose(-1, -2)), None

    def num_features(self, head_dim: int) -> int:
        return feature_dimension(head_dim, self.coefficients)
