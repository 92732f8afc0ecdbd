"""Hyperbolic, FAVOR++ and FAVOR# random features and the simplex directions: efficient == explicit,
no causal leak, seedable, half precision finite, unbiased for exp(x·y) with the predicted variance."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from approxlab import attention, attention_weights
from approxlab.variants import build_kernel
from approxlab.variants import FavorPP, Hyperbolic, calibrate
from approxlab.variants._projections import random_directions, simplex_block
from approxlab.variants.favorpp import gerf_relative_second_moment, oprf_a
from approxlab.variants.favorsharp import saderf_rescale

from _helpers import assert_efficient_equals_explicit, randn

CASES = [
    ("hyperbolic", {"num_features": 12}),
    ("hyperbolic", {"num_features": 9, "directions": "simplex", "seed": 2}),
    ("favorpp", {"num_features": 16}),
    ("favorpp", {"num_features": 10, "a": -0.3, "directions": "iid", "seed": 5}),
    ("favorpp", {"num_features": 13, "norm_sum_sq": 12.0, "directions": "simplex"}),
    ("favorsharp", {"num_features": 16, "rescale": torch.tensor([0.5, 2.0, 1.0, 1.5, 0.8, 1.2])}),
]
CASE_IDS = [f"{v}-{'-'.join(f'{k}={x}' for k, x in p.items() if k != 'rescale')}" for v, p in CASES]


def _params(params, d):
    """Cut a FAVOR# rescale down to head dim d."""
    out = dict(params)
    if "rescale" in out:
        out["rescale"] = out["rescale"][:d] if d <= 6 else torch.cat([out["rescale"], torch.ones(d - 6, dtype=torch.float64)])
    return out


@settings(max_examples=6, deadline=None)
@given(b=st.integers(1, 2), h=st.integers(1, 2), n=st.sampled_from([1, 2, 7, 63, 65, 130]), d=st.integers(1, 6),
       dv=st.integers(1, 5), causal=st.booleans(), seed=st.integers(0, 2**16), chunk=st.sampled_from([1, 16, 64]),
       scale=st.sampled_from([0.5, 1.0, 2.0]))
@pytest.mark.parametrize("variant,params", CASES, ids=CASE_IDS)
def test_efficient_equals_explicit(variant, params, b, h, n, d, dv, causal, seed, chunk, scale):
    """float64: efficient form == explicit weights @ v to 1e-10 relative, also for large inputs (scale 2)."""
    params = _params(params, d)
    q, k = randn(b, h, n, d, seed=seed, scale=scale), randn(b, h, n, d, seed=seed + 1, scale=scale)
    v = randn(b, h, n, dv, seed=seed + 2)
    assert_efficient_equals_explicit(q, k, v, variant, causal=causal, chunk=chunk, params=params)


@pytest.mark.parametrize("variant,params", CASES, ids=CASE_IDS)
def test_causal_changing_the_last_key_moves_no_earlier_output(variant, params):
    q, k, v = randn(1, 2, 70, 6, scale=1.5), randn(1, 2, 70, 6, seed=1, scale=1.5), randn(1, 2, 70, 4, seed=2)
    k2 = k.clone()
    k2[..., -1, :] *= 4.0
    v2 = v.clone()
    v2[..., -1, :] += 10.0
    out = attention(q, k, v, variant, causal=True, chunk_size=16, **params)
    out2 = attention(q, k2, v2, variant, causal=True, chunk_size=16, **params)
    assert (out2 - out)[..., :-1, :].abs().max().item() == 0.0
    assert (out2 - out)[..., -1, :].abs().max().item() > 1e-6  # the last row does see its own key


def test_calibrated_parameters_are_fixed_before_the_causal_pass():
    """Calibrated on a held-out set, the causal FAVOR# pass has no future leak; calibrating on the
    sequence itself (what a per-call statistic would do) does move earlier rows when the last key changes."""
    q, k, v = randn(1, 1, 64, 8, scale=1.5), randn(1, 1, 64, 8, seed=1, scale=1.5), randn(1, 1, 64, 4, seed=2)
    held = calibrate(randn(1, 1, 64, 8, seed=7, scale=1.5), randn(1, 1, 64, 8, seed=8, scale=1.5), "favorsharp")
    k2 = k.clone()
    k2[..., -1, :] *= 6.0
    same = attention(q, k2, v, "favorsharp", causal=True, **held) - attention(q, k, v, "favorsharp", causal=True, **held)
    assert same[..., :-1, :].abs().max().item() == 0.0
    leaky = (attention(q, k2, v, "favorsharp", causal=True, **calibrate(q, k2, "favorsharp"))
             - attention(q, k, v, "favorsharp", causal=True, **calibrate(q, k, "favorsharp")))
    assert leaky[..., :-1, :].abs().max().item() > 1e-6


@pytest.mark.parametrize("variant,params", CASES, ids=CASE_IDS)
def test_seed_reproduces_and_changes_the_kernel(variant, params):
    q, k, v = randn(1, 1, 20, 6), randn(1, 1, 20, 6, seed=1), randn(1, 1, 20, 3, seed=2)
    base = {key: val for key, val in params.items() if key != "seed"}
    a = attention(q, k, v, variant, seed=11, **base)
    assert torch.equal(a, attention(q, k, v, variant, seed=11, **base))
    assert not torch.equal(a, attention(q, k, v, variant, seed=12, **base))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("variant,params", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("causal", [False, True])
def test_half_precision_large_similarities_stay_finite(dtype, variant, params, causal):
    """|s| up to ~10³: fp16/bf16 give finite outputs within a few epsilons of the same kernel in float64."""
    params = _params(params, 16)
    q, k, v = randn(1, 2, 96, 16, scale=8.0), randn(1, 2, 96, 16, seed=1, scale=8.0), randn(1, 2, 96, 8, seed=2)
    out = attention(q.to(dtype), k.to(dtype), v.to(dtype), variant, causal=causal, **params)
    weights = attention_weights(q.to(dtype), k.to(dtype), variant, causal=causal, **params)
    assert out.dtype == dtype and torch.isfinite(out).all() and torch.isfinite(weights).all()
    ref = attention(q.to(dtype).double(), k.to(dtype).double(), v.to(dtype).double(), variant, causal=causal, **params)
    tol = 8 * torch.finfo(dtype).eps * v.norm(dim=-1).max()
    assert (out.double() - ref).norm(dim=-1).max() <= tol


def test_bad_parameters_are_refused_by_name():
    with pytest.raises(ValueError, match="directions"):
        build_kernel("hyperbolic", 4, directions="sobol")
    with pytest.raises(ValueError, match="a must be"):
        build_kernel("favorpp", 4, a=0.2)
    with pytest.raises(ValueError, match="either a or norm_sum_sq"):
        build_kernel("favorpp", 4, a=-0.1, norm_sum_sq=3.0)
    with pytest.raises(ValueError, match="norm_sum_sq"):
        build_kernel("favorpp", 4, norm_sum_sq=-1.0)
    with pytest.raises(ValueError, match="rescale"):
        build_kernel("favorsharp", 4, rescale=torch.tensor([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="projection"):
        build_kernel("favorpp", 4, projection=torch.ones(3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="variant"):
        calibrate(randn(4, 3), randn(4, 3), "performer")


# -------------------------------------------------------------------------------------------------
# directions
# -------------------------------------------------------------------------------------------------
def test_simplex_block_is_a_regular_simplex():
    for d in (2, 3, 8):
        s = simplex_block(d)
        gram = s @ s.T
        target = torch.full((d, d), -1.0 / (d - 1), dtype=torch.float64).fill_diagonal_(1.0)
        assert torch.allclose(gram, target, atol=1e-12)


def test_simplex_directions_keep_the_block_geometry_and_gaussian_norms():
    w = random_directions(24, 8, "simplex", seed=3)
    unit = w[:8] / w[:8].norm(dim=1, keepdim=True)
    assert torch.allclose(unit @ unit.T, simplex_block(8) @ simplex_block(8).T, atol=1e-12)
    # row norms are chi_8: mean of ‖w‖² over many rows ≈ 8
    many = random_directions(4096, 8, "simplex", seed=0)
    assert (many ** 2).sum(1).mean().item() == pytest.approx(8.0, rel=0.05)
    # the random rotation makes each row isotropic: the mean direction is near zero
    assert (many / many.norm(dim=1, keepdim=True)).mean(0).norm().item() < 0.05


# -------------------------------------------------------------------------------------------------
# unbiasedness and variance (Monte Carlo, CLT bands)
# -------------------------------------------------------------------------------------------------
def _estimates(variant, x, y, draws, m, **params):
    """``draws`` independent m-feature estimates of κ(x, y) from one call: the directions of one stacked
    projection (draws·m rows; whole blocks of D per set when D divides m) split into consecutive sets."""
    w = random_directions(draws * m, x.shape[-1], params.pop("directions", "orthogonal"), seed=0)
    kern = build_kernel(variant, x.shape[-1], projection=w, **params)
    fx, cx = kern.query_features(x)
    fy, cy = kern.key_features(y)
    prod = fx * fy
    if variant == "hyperbolic":  # [e^{Wx} | e^{−Wx}] halves: pair each direction's two features
        prod = prod[..., : draws * m] + prod[..., draws * m:]
    return prod[0].reshape(draws, m).sum(1) * torch.exp(cx + cy)[0] * draws


@pytest.mark.parametrize("variant,params", [
    ("hyperbolic", {"directions": "iid"}), ("hyperbolic", {"directions": "simplex"}),
    ("favorpp", {"a": -0.05, "directions": "iid"}), ("favorpp", {"a": -0.05, "directions": "simplex"}),
    ("favorsharp", {"a": -0.05, "directions": "iid", "rescale": torch.tensor([0.8, 1.2, 1.0, 0.9, 1.1, 1.2])}),
])
def test_estimators_are_unbiased_for_exp(variant, params):
    """Mean of φ_q(x)·φ_k(y) over 4000 independent sets → exp(x·y) within 5 standard errors, a band that
    excludes a 4 % bias."""
    x, y = randn(1, 6, seed=21, scale=0.25), randn(1, 6, seed=22, scale=0.25)
    draws = _estimates(variant, x, y, 4000, 24, **params)
    target = math.exp((x @ y.T).item())
    stderr = draws.std().item() / math.sqrt(len(draws))
    assert abs(draws.mean().item() - target) <= 5 * stderr
    assert 5 * stderr < 0.04 * target


@pytest.mark.parametrize("a", [0.0, -0.15, -0.4])
def test_favorpp_variance_matches_the_gerf_second_moment(a):
    """iid directions: sample relative variance of the m-feature mean ≈ (E[Z²] − 1)/m, within 4 standard
    errors of the sample variance (estimated from the draws' fourth moment)."""
    x, y = randn(1, 4, seed=1, scale=0.5), randn(1, 4, seed=2, scale=0.5)
    m, draws = 8, 3000
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(draws * m, 4, generator=gen, dtype=torch.float64)
    kern = FavorPP(4, projection=w, a=a)
    fx, cx = kern.features(x)
    fy, cy = kern.features(y)
    per = (fx * fy * torch.exp(cx + cy)[:, None])[0] * draws  # each feature's term of a one-set estimate
    rel = per.reshape(draws, m).sum(1) / math.exp((x @ y.T).item())
    u = ((x + y) ** 2).sum().item()
    predicted = (float(gerf_relative_second_moment(a, u, 4)) - 1) / m
    dev = (rel - 1) ** 2
    assert abs(dev.mean().item() - predicted) <= 4 * dev.std().item() / math.sqrt(draws)
    # the check has power: FAVOR+'s variance is rejected for A ≠ 0
    if a != 0.0:
        wrong = (math.expm1(u)) / m
        assert abs(dev.mean().item() - wrong) > 4 * dev.std().item() / math.sqrt(draws)


def test_oprf_a_minimises_the_second_moment_and_favorpp_beats_favor_plus():
    import numpy as np

    for u, d in ((0.5, 4), (4.0, 16), (20.0, 32)):
        a_star = oprf_a(u, d)
        grid = np.linspace(-3, 0.12, 20001)
        assert a_star < 0
        assert gerf_relative_second_moment(a_star, u, d) <= gerf_relative_second_moment(grid, u, d).min() * (1 + 1e-6)
        assert gerf_relative_second_moment(a_star, u, d) < gerf_relative_second_moment(0.0, u, d)


def test_saderf_rescale_balances_the_coordinates():
    """Ψ minimises Σ_ij ‖Ψx_i + Ψ⁻¹y_j‖²: after it each coordinate has equal mean square on both sides,
    and no random positive diagonal does better."""
    x = randn(50, 5, seed=1) * torch.tensor([0.2, 1.0, 3.0, 1.0, 0.5], dtype=torch.float64)
    y = randn(60, 5, seed=2) * torch.tensor([2.0, 1.0, 0.3, 1.0, 1.5], dtype=torch.float64)
    psi = saderf_rescale(x, y)
    assert torch.allclose(((x * psi) ** 2).mean(0), ((y / psi) ** 2).mean(0), rtol=1e-12)

    def total(p):
        return (((x * p)[:, None, :] + (y / p)[None, :, :]) ** 2).sum().item()

    best = total(psi)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        other = psi * torch.exp(0.3 * torch.randn(5, generator=gen, dtype=torch.float64))
        assert total(other) >= best


def test_hyperbolic_is_half_the_features_of_its_directions():
    assert Hyperbolic(8, num_features=5).feature_width(8) == 10
    assert build_kernel("favorsharp", 8, num_features=5).feature_width(8) == 5


def test_simplex_directions_lower_the_kernel_mse_below_orthogonal_and_iid():
    """Reid et al. (ICML 2023): for positive random features, SimRF MSE < ORF MSE ≤ iid MSE. One pair,
    D = m = 8, 1500 independent sets each: simplex is below both by more than 3 standard errors (the
    ORF-iid gap at D = 8 is within the noise of this sample size)."""
    x, y = randn(1, 8, seed=1, scale=0.5), randn(1, 8, seed=2, scale=0.5)
    mse = {}
    for directions in ("iid", "orthogonal", "simplex"):
        rel = _estimates("favorpp", x, y, 1500, 8, a=0.0, directions=directions) / math.exp((x @ y.T).item())
        err = (rel - 1) ** 2
        mse[directions] = (err.mean().item(), err.std().item() / math.sqrt(len(err)))
    for better, worse in (("simplex", "orthogonal"), ("simplex", "iid")):
        gap = mse[worse][0] - mse[better][0]
        assert gap > 3 * math.hypot(mse[worse][1], mse[better][1]), mse
