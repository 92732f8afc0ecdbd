"""The bridge bound: TV(a, softmax) ≤ tanh(δ/2) per row, tight; ‖o − o_softmax‖ ≤ TV · diam{v}."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from approxlab import attention_weights
from approxlab.core import approx
from approxlab.analysis.theory import bridge_rows, row_log_error, tight_row, tv_bound, value_diameter
from approxlab.variants import Minimax

TOL = 1e-12  # float64 rounding


def test_tv_bound_values():
    assert tv_bound(0.0) == 0.0
    assert tv_bound(2 * math.atanh(0.5)) == pytest.approx(0.5)
    assert torch.allclose(tv_bound(torch.tensor([0.0, 1.0])), torch.tanh(torch.tensor([0.0, 0.5])))
    with pytest.raises(ValueError, match="delta"):
        tv_bound(-1.0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**31 - 1), spread=st.floats(0.0, 6.0), sim=st.floats(0.1, 10.0))
def test_bound_holds_on_random_rows(n, seed, spread, sim):
    """Any positive kernel values κ_j against any similarities s_j: TV ≤ tanh(δ/2), output ≤ TV·diam."""
    rng = np.random.default_rng(seed)
    s = torch.tensor(rng.normal(0, sim, n))
    log_k = s + torch.tensor(rng.uniform(-spread, spread, n))
    b, a = torch.softmax(s, 0), torch.softmax(log_k, 0)
    tv = 0.5 * (a - b).abs().sum()
    delta = row_log_error(log_k[None], s[None])[0]
    assert tv <= tv_bound(delta) + TOL
    v = torch.tensor(rng.normal(0, 1, (n, 3)))
    assert ((a - b) @ v).norm() <= tv * value_diameter(v)[0] + TOL


@pytest.mark.parametrize("delta", [1e-6, 0.1, 1.0, 3.0, 20.0])
def test_bound_is_attained(delta):
    s, kappa = tight_row(delta)
    a, b = kappa / kappa.sum(), torch.softmax(s, 0)
    tv = 0.5 * (a - b).abs().sum()
    assert row_log_error(kappa.log()[None], s[None])[0].item() == pytest.approx(delta, rel=1e-12)
    assert tv.item() == pytest.approx(tv_bound(delta), rel=1e-10)


def test_bound_attained_by_the_minimax_variant_itself():
    """Keys at the extremes of the minimax kernel's error curve, multiplicities setting softmax mass
    ≈ 1/(e^δ+1) on the high-error key: the measured TV of attention_weights reaches tanh(δ_f(R)/2)."""
    R, p = 2.0, 3
    err = approx.log_uniform_error(Minimax(p, R).similarity_function, R)
    s_hi, s_lo = err.argmax, err.argmin  # g = +δ, −δ (c = 0)
    target = 1 / (math.exp(err.delta) + 1)
    total = 4000
    n_hi = round(total * target * math.exp(s_lo) / (target * math.exp(s_lo) + (1 - target) * math.exp(s_hi)))
    sims = torch.tensor([s_hi] * n_hi + [s_lo] * (total - n_hi), dtype=torch.float64)
    q = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    k = sims.view(1, 1, -1, 1)
    ref = attention_weights(q, k, "softmax", scale=1.0)
    got = attention_weights(q, k, "minimax", scale=1.0, degree=p, R=R)
    tv = 0.5 * (got - ref).abs().sum().item()
    assert tv <= tv_bound(err.delta) + TOL
    assert tv == pytest.approx(tv_bound(err.delta), rel=1e-5)


@pytest.mark.parametrize("variant,params", [
    ("taylor", dict(order=2)), ("taylor", dict(order=4)), ("minimax", dict(degree=4, R=8.0)),
    ("polynomial", dict(degree=4, c=4.0)), ("performer", dict(num_features=32, seed=1)),
    ("linear", {}), ("hla", dict(factors=2)), ("hedgehog", {}),
])
@pytest.mark.parametrize("causal", [False, True])
def test_bridge_rows_obey_both_bounds(variant, params, causal):
    gen = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(2, 3, 50, 8, generator=gen, dtype=torch.float64) * 1.3 for _ in range(3))
    rows = bridge_rows(q, k, v, variant, causal=causal, **params)
    ok = torch.isfinite(rows["delta"])
    assert ok.float().mean() > 0.9
    assert (rows["tv"][ok] <= rows["bound"][ok] + TOL).all()
    assert (rows["output_error"] <= rows["output_bound"] + TOL).all()
    # non-trivial: the bound is not vacuous on these rows
    assert rows["bound"][ok].median() < 0.999


def test_causal_value_diameter_is_a_prefix_diameter():
    v = torch.tensor([[0.0], [1.0], [-2.0], [0.5]], dtype=torch.float64)
    assert value_diameter(v, causal=True).tolist() == [0.0, 1.0, 3.0, 3.0]


def test_committed_bridge_table():
    """figures/bridge.csv: ≥ 10⁵ rows, none above tanh(δ/2) or TV·diam{v} beyond float64 rounding."""
    import pandas as pd
    from pathlib import Path

    df = pd.read_csv(Path(__file__).resolve().parent.parent / "figures" / "bridge.csv")
    assert len(df) >= 100_000
    positive = df["positive"].astype(bool)
    ok = df[positive]
    # κ ≤ 0 somewhere on a row only for kernels that can vanish or change sign: odd taylor, (1+s/c)^p at its
    # root, DPFP, cosFormer and T2R (relu: exact zeros) and random Maclaurin (signed weights); every other
    # kernel is positive on every row
    can_vanish = ["taylor", "polynomial", "dpfp", "maclaurin", "cosformer", "t2r"]
    assert set(df.loc[~positive, "variant"]) <= set(can_vanish)
    always_positive = ~df["variant"].isin(can_vanish)
    assert positive[always_positive].all()
    assert {"cosformer", "hedgehog", "t2r"} <= set(df["variant"])
    others = ~df["variant"].isin(["dpfp", "maclaurin", "cosformer", "t2r"])
    assert positive[others].sum() > 0.85 * others.sum()
    assert (ok["slack"] >= -TOL).all()
    assert (df["output_error"] <= df["output_bound"] * (1 + 1e-6) + TOL).all()


@pytest.mark.parametrize("causal", [False, True])
def test_cosformer_bridge_uses_positions_and_obeys_the_zero_aware_bound(causal):
    """cosFormer's κ = relu(q)·relu(k)·cos(π(i − j)/2N) has exact zeros: its rows obey
    B_Z + (1 − B_Z)·tanh(δ_P/2)."""
    from approxlab.variants import with_positions

    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, 40, 6, generator=gen, dtype=torch.float64) for _ in range(3))
    rows = bridge_rows(q, k, v, "cosformer", causal=causal)
    ref = attention_weights(q, k, "softmax", causal=causal)
    with_pos = attention_weights(*with_positions(q, k), "cosformer", causal=causal, scale=1 / math.sqrt(6))
    assert torch.allclose(rows["tv"], 0.5 * (with_pos - ref).abs().sum(-1), atol=1e-14)
    mass = rows["has_mass"]
    assert mass.any() and (rows["tv"][mass] <= rows["bound_positive"][mass] + TOL).all()
    assert (rows["bound_positive"][mass] < 1).any()
