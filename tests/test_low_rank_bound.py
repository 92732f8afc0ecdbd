"""The best-possible error of any F-feature attention (approxlab.analysis.metrics.low_rank_bound): it holds for every
feature map, it is attained where it must be, and it refuses bad input by name."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from approxlab import attention_weights
from approxlab.analysis.metrics import low_rank_bound, row_tv
from approxlab.variants import build_kernel

from _helpers import randn

# (variant, parameters): every kind of F-feature map, the learned ones with random (W, b)
MAPS = [
    ("hedgehog", lambda d: {"weight": randn(d, 3, seed=5), "bias": randn(3, seed=6, scale=0.3)}),
    ("t2r", lambda d: {"weight": randn(d, 5, seed=7), "bias": randn(5, seed=8, scale=0.3)}),
    ("performer", lambda d: {"num_features": 7, "seed": 1}),
    ("favorpp", lambda d: {"num_features": 6, "seed": 2}),
    ("hyperbolic", lambda d: {"num_features": 4, "seed": 3}),
    ("linear", lambda d: {}),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_feature_map_beats_the_bound(seed):
    """Random heads (N = 40, D = 4, sharp rows): each map's mean row TV ≥ the bound at its F, its Frobenius
    error ≥ the Eckart–Young best, and its weights have rank ≤ F (the premise of the bound)."""
    n, d = 40, 4
    q, k = randn(1, 1, n, d, seed=seed, scale=2.5), randn(1, 1, n, d, seed=seed + 10, scale=2.5)
    p = attention_weights(q, k, "softmax")[0, 0]
    for variant, make in MAPS:
        params = make(d)
        f = build_kernel(variant, d, **params).feature_width(d)
        a = attention_weights(q, k, variant, **params)[0, 0]
        assert torch.linalg.matrix_rank(a) <= f
        bound = low_rank_bound(p, f)
        assert bound["tv"] > 1e-3, (variant, f)  # the check is not vacuous
        assert row_tv(p, a).mean() >= bound["tv"], variant
        assert torch.linalg.matrix_norm(a - p) >= bound["frobenius"] * (1 - 1e-12), variant
        assert bound["tv"] >= bound["tv_frobenius"]


def test_the_tails_are_the_singular_value_tails():
    """Against numpy's SVD: the truncated SVD P_F attains ‖P − P_F‖_F and ‖P − P_F‖_*, for every F."""
    p = torch.softmax(randn(3, 24, 24, seed=4, scale=3.0), -1)
    fs = [1, 2, 5, 23, 24, 40]
    b = low_rank_bound(p, fs)
    assert b["frobenius"].shape == (3, len(fs))
    for i in range(3):
        u, s, vt = np.linalg.svd(p[i].numpy())
        for j, f in enumerate(fs):
            residual = p[i].numpy() - (u[:, :f] * s[:f]) @ vt[:f]
            assert b["frobenius"][i, j].item() == pytest.approx(np.linalg.norm(residual), abs=1e-12)
            assert b["nuclear"][i, j].item() == pytest.approx(np.linalg.norm(residual, "nuc"), abs=1e-12)
    assert (b["tv"][:, -2:] == 0).all()  # F ≥ N: P itself
    assert (b["tv"].diff(dim=-1) <= 0).all()
    assert low_rank_bound(p[0], np.int64(5))["tv"].item() == b["tv"][0, 2].item()


def _blocks(n, f, eta):
    """B = Σ_b 1_b 1_bᵀ / n_b (F equal blocks: an orthogonal projection of rank F) and the F-feature
    attention B' = (1 − η) B + η 11ᵀ/N = D⁻¹ Φ_q Φ_kᵀ with Φ_q = block indicators,
    Φ_k = (1 − η) Φ_q / n_b + η/N."""
    block = torch.arange(n) // (n // f)
    phi_q = torch.nn.functional.one_hot(block, f).double()
    phi_k = (1 - eta) * phi_q / (n // f) + eta / n
    scores = phi_q @ phi_k.T
    return phi_q @ phi_q.T / (n // f), scores / scores.sum(-1, keepdim=True)


def test_the_bound_is_zero_for_weights_of_rank_f():
    _, attn = _blocks(24, 4, eta=0.3)
    assert low_rank_bound(attn, 4)["frobenius"].item() <= 1e-13
    assert low_rank_bound(attn, 3)["frobenius"].item() > 0.1  # and F − 1 features do not suffice


def test_the_frobenius_bound_is_attained_by_an_f_feature_attention():
    """P = B' + ε (I − B) is a softmax (row-stochastic, > 0: the weights of logits log P) whose
    truncated SVD is the F-feature attention B': its Frobenius ratio is 1, and its mean row TV is
    ε (N − F)/N, exactly twice the TV bound ε (N − F)/2N (the ℓ1-vs-ℓ2 slack of this case)."""
    n, f, eta, eps = 24, 4, 0.2, 0.3
    b, attn = _blocks(n, f, eta)
    p = attn + eps * (torch.eye(n, dtype=torch.float64) - b)
    # P is softmax attention: q = log P, k = √N · I give similarities q·k / √N = log P
    logits = torch.log(p)[None, None]
    assert torch.allclose(attention_weights(logits, math.sqrt(n) * torch.eye(n, dtype=torch.float64)[None, None],
                                            "softmax")[0, 0], p, atol=1e-14)
    bound = low_rank_bound(p, f)
    assert torch.linalg.matrix_norm(attn - p).item() == pytest.approx(bound["frobenius"].item(), rel=1e-12)
    assert bound["frobenius"].item() == pytest.approx(eps * math.sqrt(n - f), rel=1e-12)
    assert row_tv(p, attn).mean().item() == pytest.approx(2 * bound["tv"].item(), rel=1e-12)
    assert bound["tv"].item() == pytest.approx(eps * (n - f) / (2 * n), rel=1e-12)


@pytest.mark.parametrize("p,features,error,message", [
    (torch.eye(4, dtype=torch.float64), 0, ValueError, "features must be >= 1"),
    (torch.eye(4, dtype=torch.float64), [3, -1], ValueError, "features must be >= 1"),
    (torch.eye(4, dtype=torch.float64), 2.5, TypeError, "features must be an integer"),
    (torch.eye(4, dtype=torch.float64), [], ValueError, "features must hold"),
    (torch.ones(4, 3, dtype=torch.float64), 2, ValueError, "p must be square"),
    (torch.full((3, 3), math.nan, dtype=torch.float64), 2, ValueError, "p contains NaN"),
    (torch.ones(4, dtype=torch.float64), 2, ValueError, "p must have 2 dimensions"),
    (np.eye(4), 2, TypeError, "p must be a torch.Tensor"),
])
def test_bad_input_is_refused_by_name(p, features, error, message):
    with pytest.raises(error, match=message):
        low_rank_bound(p, features)
