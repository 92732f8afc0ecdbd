"""Exact features of a polynomial kernel through symmetric monomials: (x·y)^r = Σ_{|α|=r} (r!/α!) x^α y^α, so
    φ(x) = [ sqrt(|a_r| r!/α!) x^α ]_{r ≤ p, |α| = r},     dimension Σ_r C(D+r−1, r) = C(D+p, p)
gives φ(x)·φ(y) = Σ_r a_r (x·y)^r (terms with a_r = 0 dropped). A negative a_r puts sign(a_r) on the
query side only. The monomials of degree r are built from those of degree r−1 by one gather-multiply
(index ≥ last index), so no (N, F, r) intermediate is ever allocated. Used by
:class:`~approxlab.variants.power_series.PowerSeriesKernel` (taylor, polynomial, minimax).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence, Tuple

import numpy as np
import torch


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


@lru_cache(maxsize=None)
def prefix_tables(dim: int, degree: int) -> Tuple[Tuple[np.ndarray, np.ndarray], ...]:
    """Monomials ordered by their last (largest) variable, for r = 1..degree: (counts, log α!).

    In this order the degree-r monomials ending in variable i are x_i times the first ``counts[i]``
    monomials of degree r − 1 (those whose last variable is ≤ i), a contiguous prefix.
    """
    tables = []
    last = np.full(1, -1, dtype=np.int64)  # degree 0: the empty monomial
    log_alpha_fact = np.zeros(1)
    run = np.zeros(1, dtype=np.int64)
    for _ in range(degree):
        counts = np.searchsorted(last, np.arange(dim), side="right")
        new_last, new_lf, new_run = [], [], []
        for i, c in enumerate(counts):
            mult = np.where(last[:c] == i, run[:c] + 1, 1)
            new_last.append(np.full(c, i, dtype=np.int64))
            new_lf.append(log_alpha_fact[:c] + np.log(mult))
            new_run.append(mult)
        last, log_alpha_fact, run = np.concatenate(new_last), np.concatenate(new_lf), np.concatenate(new_run)
        tables.append((counts, log_alpha_fact))
    return tuple(tables)


def monomial_features(x: torch.Tensor, coefficients: Sequence[float], *, signed: bool = False) -> torch.Tensor:
    """φ(x) with φ(x)·φ(y) = Σ_r a_r (x·y)^r; ``signed`` multiplies by sign(a_r) (the query side).

    Fast form: feature-major, monomials ordered by last variable (:func:`prefix_tables`), so degree r
    is D broadcast products x_i · (prefix of degree r − 1) written into one preallocated (F, …, N)
    buffer: no gathers, no concatenation. Returned as a (…, N, F) view, which the engine's matmuls
    take without a copy. Same feature values as :func:`monomial_features_reference`, permuted.
    """
    dim, degree = x.shape[-1], len(coefficients) - 1
    tables = prefix_tables(dim, degree)
    lead = x.shape[:-1]
    xt = x.movedim(-1, 0).contiguous()  # (D, …, N)
    kept = [r for r, a in enumerate(coefficients) if a != 0]
    weights = {}
    for r in kept:
        log_af = np.zeros(1) if r == 0 else tables[r - 1][1]
        w = np.exp(0.5 * (math.log(abs(coefficients[r])) + math.lgamma(r + 1) - log_af))
        weights[r] = -w if (signed and coefficients[r] < 0) else w

    def weight_of(r):
        return torch.as_tensor(weights[r], dtype=x.dtype, device=x.device).reshape(-1, *([1] * len(lead)))

    if torch.is_grad_enabled() and x.requires_grad:  # autograd: the same products, concatenated, out of place
        # (degree r + 1 is built from the unweighted degree r, so the weights never touch ``prev``)
        blocks, prev = [], torch.ones((1, *lead), dtype=x.dtype, device=x.device)
        for r in range(degree + 1):
            if r > 0:
                prev = torch.cat([prev[:c] * xt[i] for i, c in enumerate(tables[r - 1][0].tolist())])
            if r in weights:
                blocks.append(prev * weight_of(r))
        return torch.cat(blocks).movedim(0, -1)

    sizes = [1] + [int(t[0].sum()) for t in tables]
    offsets = dict(zip(kept, np.cumsum([0] + [sizes[r] for r in kept[:-1]]).tolist()))
    out = torch.empty((sum(sizes[r] for r in kept), *lead), dtype=x.dtype, device=x.device)

    def block(r):
        if r in offsets:
            return out[offsets[r] : offsets[r] + sizes[r]]
        return torch.empty((sizes[r], *lead), dtype=x.dtype, device=x.device)

    prev = block(0).fill_(1.0)
    for r in range(1, degree + 1):
        counts, cur, pos = tables[r - 1][0], block(r), 0
        for i, c in enumerate(counts.tolist()):
            torch.mul(prev[:c], xt[i], out=cur[pos : pos + c])
            pos += c
        prev = cur
    for r in kept:  # after all degrees: degree r + 1 is built from the unweighted degree r
        if not np.all(weights[r] == 1.0):
            out[offsets[r] : offsets[r] + sizes[r]].mul_(weight_of(r))
    return out.movedim(0, -1)


def monomial_features_reference(x: torch.Tensor, coefficients: Sequence[float], *, signed: bool = False) -> torch.Tensor:
    """Reference for :func:`monomial_features` (same values, (…, N, F) layout built by gathers on the last axis)."""
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
