"""Hedgehog and T2R learned maps: efficient == explicit with fixed weights, no causal leak, half precision,
and distillation that lowers the mimicry loss and the held-in TV (seeded, reproducible)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from approxlab import attention, attention_weights
from approxlab.analysis.distill import distill, mean_row_tv
from approxlab.variants import build_kernel


def randn(*shape, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=gen, dtype=torch.float64)


def rel_err(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-300)).item()


def _params(d, f, seed):
    return {"weight": randn(d, f, seed=seed + 9), "bias": randn(f, seed=seed + 10, scale=0.3)}


@settings(max_examples=6, deadline=None)
@given(n=st.sampled_from([1, 7, 65, 130]), d=st.integers(1, 6), f=st.integers(1, 7), dv=st.integers(1, 4),
       causal=st.booleans(), seed=st.integers(0, 2**16), chunk=st.sampled_from([1, 16, 64]))
@pytest.mark.parametrize("variant", ["hedgehog", "t2r"])
def test_efficient_equals_explicit(variant, n, d, f, dv, causal, seed, chunk):
    q, k, v = randn(2, 1, n, d, seed=seed, scale=2.0), randn(2, 1, n, d, seed=seed + 1, scale=2.0), randn(2, 1, n, dv, seed=seed + 2)
    params = _params(d, f, seed)
    fast = attention(q, k, v, variant, causal=causal, chunk_size=chunk, **params)
    assert rel_err(fast, attention_weights(q, k, variant, causal=causal, **params) @ v) <= 1e-10


@pytest.mark.parametrize("variant", ["hedgehog", "t2r"])
def test_causal_no_leak_and_half_precision(variant):
    q, k, v = randn(1, 2, 70, 6), randn(1, 2, 70, 6, seed=1), randn(1, 2, 70, 4, seed=2)
    params = _params(6, 5, 0)
    k2 = k.clone()
    k2[..., -1, :] *= 4.0
    shift = attention(q, k2, v, variant, causal=True, **params) - attention(q, k, v, variant, causal=True, **params)
    assert shift[..., :-1, :].abs().max().item() == 0.0
    for dtype in (torch.float16, torch.bfloat16):
        qh, kh, vh = (8 * q).to(dtype), (8 * k).to(dtype), v.to(dtype)
        out = attention(qh, kh, vh, variant, causal=True, **params)
        ref = attention(qh.double(), kh.double(), vh.double(), variant, causal=True, **params)
        assert torch.isfinite(out).all()
        assert (out.double() - ref).norm(dim=-1).max() <= 8 * torch.finfo(dtype).eps * v.norm(dim=-1).max()


def test_hedgehog_at_identity_is_the_exponential_of_both_signs():
    x = randn(3, 4)
    f, c = build_kernel("hedgehog", 4).features(x)
    assert torch.allclose(f * torch.exp(c)[:, None], torch.cat([x.exp(), (-x).exp()], dim=-1), rtol=1e-13)


@pytest.mark.parametrize("variant", ["hedgehog", "t2r"])
def test_distillation_lowers_the_loss_and_the_tv(variant):
    q, k = randn(1, 1, 48, 8, scale=2.0), randn(1, 1, 48, 8, seed=1, scale=2.0)
    fit = distill(q, k, variant, steps=60, seed=3)
    assert fit.loss[-1] < 0.9 * fit.loss[0]
    assert mean_row_tv(q, k, fit.variant, **fit.params) < 0.9 * mean_row_tv(q, k, variant)
    again = distill(q, k, variant, steps=60, seed=3)
    assert torch.equal(again.params["weight"], fit.params["weight"])


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="weight"):
        build_kernel("hedgehog", 4, weight=torch.ones(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="bias"):
        build_kernel("t2r", 4, weight=torch.ones(4, 2, dtype=torch.float64), bias=torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="variant"):
        distill(randn(1, 1, 4, 2), randn(1, 1, 4, 2), "performer")
    with pytest.raises(ValueError, match="one head"):
        distill(randn(1, 2, 4, 2), randn(1, 2, 4, 2))


def _committed():
    import pandas as pd
    from pathlib import Path

    return pd.read_csv(Path(__file__).resolve().parent.parent / "figures" / "learned_maps.csv")


def test_committed_maps_sit_above_the_best_of_their_class():
    """figures/learned_maps.csv: on both windows every map's mean row TV ≥ the class's lower bound at its F and
    its Frobenius error ≥ the Eckart–Young best (ratio ≥ 1); the bound rows fall with F to 0 at F = N."""
    import numpy as np

    df = _committed()
    heads, bounds = df[df["record"] == "head"], df[df["record"] == "bound"]
    assert len(heads) == 72 * 6 and set(bounds["window"]) == {"train", "test"}
    n = int(df["n"].iloc[0])
    for w in ("train", "test"):
        assert (heads[f"{w}_tv"] >= heads[f"{w}_tv_bound"]).all()
        below = heads[heads["features"] < n]
        assert (below[f"{w}_fro_ratio"] >= 1).all() and (below[f"{w}_tv_bound"] > 0).all()
        assert np.allclose(below[f"{w}_fro"] / below[f"{w}_ey_fro"], below[f"{w}_fro_ratio"], rtol=1e-9)
        assert (heads.loc[heads["features"] >= n, f"{w}_tv_bound"] == 0).all()
        # the bound at the map's F is the bound row of that head, window and F
        merged = below.merge(bounds[bounds["window"] == w], on=["head", "features"], suffixes=("", "_b"))
        assert len(merged) == len(below)
        assert np.allclose(merged[f"{w}_ey_fro"], merged["ey_fro_b"], rtol=1e-9)
        assert np.allclose(merged[f"{w}_tv_bound"], merged["tv_bound_b"], rtol=1e-9)
    for _, b in bounds.groupby(["head", "window"]):
        b = b.sort_values("features")
        assert (b["tv_bound"].diff().dropna() <= 1e-15).all() and b["tv_bound"].iloc[-1] == 0
        assert (b["tv_bound"] >= b["tv_bound_fro"]).all()


def test_claims_on_the_bound():
    """What docs/studies/learned_maps.md says of the bound: below 0.03 at every F (median over heads, held-out window); at
    F = 64 more than 300× below the learned maps' median held-out TV; random features at 64 more than 75×
    the Eckart–Young best in Frobenius; the learned maps' Frobenius ratio lower on the fit window."""
    from approxlab.experiments.studies.learned_maps import summary

    df = _committed()
    bounds = df[(df["record"] == "bound") & (df["window"] == "test")]
    assert bounds.groupby("features")["tv_bound"].median().max() < 0.03
    s = summary(df)
    for m in ("hedgehog", "t2r"):
        assert s.loc[m, "median_test_tv"] > 300 * s.loc[m, "median_test_tv_bound"] > 0
        assert s.loc[m, "median_train_fro_ratio"] < s.loc[m, "median_test_fro_ratio"]
    for m in ("FAVOR+ (64)", "FAVOR++ (64)"):
        assert min(s.loc[m, "median_train_fro_ratio"], s.loc[m, "median_test_fro_ratio"]) > 75
