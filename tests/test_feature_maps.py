"""DPFP, random Maclaurin features and cosFormer: efficient == explicit, no causal leak, half precision,
and each map's defining property (DPFP's formula, Maclaurin unbiasedness, cosFormer's cos(π(i−j)/2M))."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from approxlab import attention
from approxlab.core.chunk import safe_divide
from approxlab.variants import build_kernel
from approxlab.variants import with_positions

from _helpers import assert_efficient_equals_explicit, randn, rel_err

CASES = [
    ("dpfp", {}),
    ("dpfp", {"nu": 3}),
    ("maclaurin", {"num_features": 24}),
    ("maclaurin", {"num_features": 9, "seed": 4, "p": 3.0}),
    ("cosformer", {}),
]
CASE_IDS = [f"{v}-{'-'.join(f'{k}={x}' for k, x in p.items())}" for v, p in CASES]


@settings(max_examples=8, deadline=None)
@given(b=st.integers(1, 2), h=st.integers(1, 2), n=st.sampled_from([1, 2, 7, 63, 65, 130]), d=st.integers(3, 6),
       dv=st.integers(1, 5), causal=st.booleans(), seed=st.integers(0, 2**16), chunk=st.sampled_from([1, 16, 64]))
@pytest.mark.parametrize("variant,params", CASES, ids=CASE_IDS)
def test_efficient_equals_explicit(variant, params, b, h, n, d, dv, causal, seed, chunk):
    q, k, v = randn(b, h, n, d, seed=seed), randn(b, h, n, d, seed=seed + 1), randn(b, h, n, dv, seed=seed + 2)
    assert_efficient_equals_explicit(q, k, v, variant, causal=causal, chunk=chunk, params=params)


@pytest.mark.parametrize("variant,params", CASES, ids=CASE_IDS)
def test_causal_changing_the_last_key_moves_no_earlier_output(variant, params):
    q, k, v = randn(1, 2, 70, 6), randn(1, 2, 70, 6, seed=1), randn(1, 2, 70, 4, seed=2)
    k2, v2 = k.clone(), v.clone()
    k2[..., -1, :] *= 3.0
    v2[..., -1, :] += 10.0
    out = attention(q, k, v, variant, causal=True, chunk_size=16, **params)
    out2 = attention(q, k2, v2, variant, causal=True, chunk_size=16, **params)
    assert (out2 - out)[..., :-1, :].abs().max().item() == 0.0
    assert (out2 - out)[..., -1, :].abs().max().item() > 1e-6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("variant,params", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("causal", [False, True])
def test_half_precision_stays_finite(dtype, variant, params, causal):
    """|s| up to ~10³: finite outputs; the non-negative maps (DPFP, cosFormer) within a few epsilons of float64
    (Maclaurin's weights change sign, so its rows are ill-conditioned by construction: finite only)."""
    q, k, v = randn(1, 2, 96, 16, scale=8.0), randn(1, 2, 96, 16, seed=1, scale=8.0), randn(1, 2, 96, 8, seed=2)
    if variant == "cosformer":  # real positions: θ ∈ [0, π/2), so cos(θ_i − θ_j) > 0 and κ ≥ 0
        q, k = with_positions(q, k)
    out = attention(q.to(dtype), k.to(dtype), v.to(dtype), variant, causal=causal, **params)
    assert out.dtype == dtype and torch.isfinite(out).all()
    if variant == "maclaurin":
        return
    ref = attention(q.to(dtype).double(), k.to(dtype).double(), v.to(dtype).double(), variant, causal=causal, **params)
    assert (out.double() - ref).norm(dim=-1).max() <= 8 * torch.finfo(dtype).eps * v.norm(dim=-1).max()


def test_dpfp_features_follow_the_papers_formula():
    """Schlag et al. 2021: φ = concat_i x̃ ⊙ roll(x̃, i), x̃ = [relu(x), relu(−x)]; x = (1, −2): x̃ = (1, 0, 0, 2)."""
    x = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    f, scale = build_kernel("dpfp", 2, nu=2).features(x)
    assert scale is None
    # roll 1: (2, 1, 0, 0) → products (2, 0, 0, 0); roll 2: (0, 2, 1, 0) → (0, 0, 0, 0)
    assert f.tolist() == [[2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="nu"):
        build_kernel("dpfp", 2, nu=4)


def test_maclaurin_is_unbiased_for_exp():
    """Mean of 400 independent 64-feature estimates (consecutive sets of one 25600-feature draw) → exp(x·y)
    within 5 standard errors, a band narrower than 10 %."""
    x, y = randn(1, 5, seed=3, scale=0.3), randn(1, 5, seed=4, scale=0.3)
    draws, m = 400, 64
    kern = build_kernel("maclaurin", 5, num_features=draws * m, seed=0)
    fx, cx = kern.features(x)
    fy, cy = kern.features(y)
    est = (fx * fy)[0].reshape(draws, m).sum(1) * torch.exp(cx + cy)[0] * draws  # each set's (1/m) Σ Z(x)Z(y)
    target = math.exp((x @ y.T).item())
    stderr = est.std().item() / math.sqrt(draws)
    assert abs(est.mean().item() - target) <= 5 * stderr
    assert 5 * stderr < 0.1 * target


def test_maclaurin_degree_distribution_is_geometric():
    deg = build_kernel("maclaurin", 4, num_features=20000, seed=0).degrees.double()
    # p = 2: P(N = n) = 2^{−(n+1)}, mean 1
    assert deg.mean().item() == pytest.approx(1.0, abs=0.05)
    assert (deg == 0).double().mean().item() == pytest.approx(0.5, abs=0.02)


def test_cosformer_with_positions_is_the_papers_reweighting_at_any_scale():
    """Weights ∝ relu(q_i)·relu(k_j) cos(π(i−j)/(2M)), causal and not, whatever the similarity scale."""
    n, d, big_m = 40, 8, 50
    q, k, v = randn(1, 2, n, d), randn(1, 2, n, d, seed=1), randn(1, 2, n, 3, seed=2)
    i = torch.arange(n, dtype=torch.float64)
    cos = torch.cos(math.pi * (i[:, None] - i[None, :]) / (2 * big_m))
    raw = (torch.relu(q) @ torch.relu(k).transpose(-1, -2)) * cos
    qp, kp = with_positions(q, k, max_len=big_m)
    for causal in (False, True):
        ref = raw.tril() if causal else raw
        ref = safe_divide(ref, ref.sum(-1, keepdim=True))  # a row without mass: zero weights
        for scale in (None, 0.01, 3.0):
            out = attention(qp, kp, v, "cosformer", causal=causal, scale=scale)
            assert rel_err(out, ref @ v) <= 1e-12
    with pytest.raises(ValueError, match="max_len"):
        with_positions(q, k, max_len=n - 1)


def test_symbolic_table_rows_of_the_new_maps():
    """sympy derives the new rows: random estimators have no finite degree, DPFP's weight is rational of degree
    (2, 2) and cosFormer's (1, 1) in the key's (position-reweighted) entries, all non-negative but Maclaurin."""
    from approxlab.analysis.symbolic.table import derivation_table
    from approxlab.experiments.studies.rational_degree import FEATURE_MAP_ROWS

    df = derivation_table(FEATURE_MAP_ROWS).set_index("label")
    for label in ("hyperbolic", "favorpp", "favorsharp", "maclaurin"):
        assert df.loc[label, "numerator_degree"] is pd.NA and df.loc[label, "monotonicity"].startswith("random")
    assert (df.loc["dpfp", "numerator_degree"], df.loc["dpfp", "denominator_degree"]) == (2, 2)
    assert (df.loc["dpfp (nu=3)", "numerator_degree"], df.loc["dpfp (nu=3)", "features"]) == (2, "6 D")
    assert (df.loc["cosformer", "numerator_degree"], df.loc["cosformer", "denominator_degree"]) == (1, 1)
    assert df.loc["maclaurin", "positivity"] == "sign-changing"
    assert {df.loc[x, "positivity"] for x in ("dpfp", "cosformer")} == {"non-negative"}
    assert {df.loc[x, "positivity"] for x in ("hyperbolic", "favorpp", "favorsharp")} == {"positive"}
