"""approxlab.analysis.entropy: input families, the m* search, and the Performer variance theory (Lemma 2)."""

import math

import numpy as np
import pytest
import sympy as sp
import torch

from approxlab import attention_weights
from approxlab.analysis import entropy as ent
from approxlab.variants._projections import nested_directions


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Many small QR / matmul calls: one thread avoids contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_normalized_entropy_limits():
    uniform = torch.full((3, 16), 1 / 16, dtype=torch.float64)
    onehot = torch.zeros(3, 16, dtype=torch.float64)
    onehot[:, 2] = 1
    assert torch.allclose(ent.normalized_entropy(uniform), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(ent.normalized_entropy(onehot), torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2"):
        ent.normalized_entropy(torch.ones(2, 1))
    with pytest.raises(TypeError, match="weights"):
        ent.normalized_entropy([0.5, 0.5])


def test_gaussian_family_entropy_and_norms_move_together():
    q, k, _ = ent.gaussian_family(512, [1.0, 2.0, 8.0], n_queries=32, head_dim=32, seed=1)
    s = ent.input_summary(q, k)
    h, x2 = s["entropy_norm"][0], s["x_norm_sq"][0]
    assert bool((h[1:] > h[:-1]).all())            # hotter → higher entropy
    assert bool((x2[1:] < x2[:-1]).all())          # … and smaller ‖x‖²
    assert x2[0].item() == pytest.approx(math.sqrt(32), rel=0.1)   # ‖x‖² ≈ √D / T
    with pytest.raises(ValueError, match="temperatures"):
        ent.gaussian_family(16, [0.0])


def test_clustered_family_fixes_norms_and_moves_entropy():
    q, k, _ = ent.clustered_family(512, [0.0, 0.1, 1.0], norm_sq=4.0, n_queries=16, head_dim=32, seed=0)
    root = 32 ** -0.25
    assert torch.allclose((q * root).pow(2).sum(-1), torch.full(q.shape[:-1], 4.0, dtype=torch.float64))
    assert torch.allclose((k * root).pow(2).sum(-1), torch.full(k.shape[:-1], 4.0, dtype=torch.float64))
    h = ent.input_summary(q, k)["entropy_norm"][0]
    assert h[0].item() == pytest.approx(1.0, abs=1e-12)   # coincident keys: uniform attention
    assert h[0] > h[1] > h[2]
    with pytest.raises(ValueError, match="spreads"):
        ent.clustered_family(16, [1.5])
    with pytest.raises(ValueError, match="norm_sq"):
        ent.clustered_family(16, [0.5], norm_sq=-1.0)


def test_coincident_keys_are_exact_for_every_m():
    """All keys equal → uniform weights, and FAVOR+ reproduces them exactly (the delta theory says V = 0)."""
    q, k, v = ent.clustered_family(64, [0.0], norm_sq=6.0, n_queries=8, head_dim=16)
    out = ent.performer_metrics(q, k, v, 8, seed=3)
    assert out["tv"].item() < 1e-12
    assert ent.tv_coefficients(q, k)["delta"].max().item() < 1e-3


def test_feature_grid():
    grid = ent.feature_grid(8, 64, per_octave=4)
    assert grid[0] == 8 and grid[-1] == 64 and grid == sorted(set(grid))
    assert {8, 16, 32, 64} <= set(grid) and len(grid) == 13
    with pytest.raises(ValueError, match="m_max must be a power of two"):
        ent.feature_grid(8, 100)


def test_search_matches_brute_force_on_monotone_and_noisy_curves():
    grid = ent.feature_grid(8, 4096)
    calls = []

    def curve(m):
        calls.append(m)
        return 3.0 / math.sqrt(m)

    for eps in (0.05, 0.1, 0.2, 1.0, 2.0):
        expected = next((g for g in grid if 3.0 / math.sqrt(g) <= eps), None)
        assert ent.search_min_features(curve, eps, grid) == expected
    assert ent.search_min_features(curve, 0.01, grid) is None          # censored
    assert len(calls) < 3 * 5 * len(grid) / 2                          # fewer than a full scan per ε
    # a step function: least passing point found by bisection inside the octave
    assert ent.search_min_features(lambda m: 0.0 if m >= 724 else 1.0, 0.5, grid) == 724
    with pytest.raises(ValueError, match="eps"):
        ent.search_min_features(curve, 0.0, grid)


def test_search_object_finds_the_least_m_on_real_performer_error():
    q, k, v = ent.gaussian_family(128, [4.0, 8.0], n_queries=16, head_dim=16, seed=2)
    grid = ent.feature_grid(8, 1024)
    s = ent.Search(q, k, v, seed=0)
    found = s.min_features("tv", 0.1, grid)
    for h, m_star in enumerate(found):
        assert m_star is not None
        assert s.metrics(m_star, h)["tv"] <= 0.1
        i = grid.index(m_star)
        if i > 0:  # the grid point below fails (fresh evaluation on the same nested draw's first m directions)
            w = nested_directions(grid[i - 1], 16, "orthogonal", seed=0)
            assert ent.performer_metrics(q[:, h:h + 1], k[:, h:h + 1], v[:, h:h + 1], grid[i - 1],
                                         projection=w)["tv"].item() > 0.1
    assert found[1] <= found[0]   # hotter inputs (smaller norms) need no more features
    with pytest.raises(ValueError, match="metric"):
        s.min_features("mse", 0.1, grid)
    with pytest.raises(ValueError, match="kind"):
        ent.Search(q, k, v, kind="hyperbolic")


def test_performer_metrics_consistent_with_library_metrics():
    q, k, v = ent.gaussian_family(64, [2.0], n_queries=8, head_dim=8, seed=0)
    out = ent.performer_metrics(q, k, v, 64, seed=1)
    a = attention_weights(q, k, "softmax")
    b = attention_weights(q, k, "performer", num_features=64, seed=1)
    assert out["tv"].item() == pytest.approx((0.5 * (a - b).abs().sum(-1)).mean().item(), rel=1e-12)
    kl = (a * (a / b).log()).sum(-1).mean().item()
    assert out["kl"].item() == pytest.approx(kl, rel=1e-10)
    # trig features give negative weights at small m: KL is reported as inf, not NaN
    trig = ent.performer_metrics(q, k, v, 4, seed=0, kind="trig")
    assert not math.isnan(trig["kl"].item())


def test_lemma2_formula_from_gaussian_moments_sympy():
    """Z = exp(w·u − ‖u‖²/2), w ~ N(0, 1) along u: E Z = 1, E Z² = e^{‖u‖²}, so Var Z = e^{‖u‖²} − 1.

    One sympy integral, the Gaussian moment generating function E e^{a w} = e^{a²/2}, gives both
    Lemma 2 formulas: a = u, 2u for the positive features, a = ±iu, ±2iu (cosines) for the trig ones.
    """
    w, u = sp.symbols("w u", real=True)
    a = sp.symbols("a", positive=True)
    mgf = sp.simplify(sp.integrate(sp.exp(a * w - w ** 2 / 2) / sp.sqrt(2 * sp.pi), (w, -sp.oo, sp.oo)))
    assert sp.simplify(mgf - sp.exp(a ** 2 / 2)) == 0
    M = sp.Lambda(a, mgf)
    mean = M(u) * sp.exp(-u ** 2 / 2)
    second = M(2 * u) * sp.exp(-u ** 2)
    assert sp.simplify(mean - 1) == 0
    assert sp.simplify(second - mean ** 2 - (sp.exp(u ** 2) - 1)) == 0
    assert ent.lemma2_relative_mse(1.3, 10) == pytest.approx(float(sp.exp(sp.Rational(13, 10)) - 1) / 10)
    # trig: E cos(wu) = M(iu), E cos²(wu) = (1 + M(2iu)) / 2 → Var = (1 − e^{−u²})² / 2
    ecos, ecos2 = M(sp.I * u), (1 + M(2 * sp.I * u)) / 2
    assert sp.simplify(ecos2 - ecos ** 2 - (1 - sp.exp(-u ** 2)) ** 2 / 2) == 0
    x2, y2, xy = 0.7, 0.4, 0.2
    diff = x2 + y2 - 2 * xy
    assert ent.lemma2_trig_relative_mse(x2, y2, xy, 5) == pytest.approx(
        math.exp(x2 + y2) * (1 - math.exp(-diff)) ** 2 / 2 / 5 / math.exp(2 * xy))


def test_delta_covariance_moment_by_monte_carlo():
    """E[Z_j Z_l] = exp(‖x‖² + x·y_j + x·y_l + y_j·y_l), the moment behind the delta-method prediction."""
    gen = torch.Generator().manual_seed(0)
    x, yj, yl = (0.4 * torch.randn(4, generator=gen, dtype=torch.float64) for _ in range(3))
    w = torch.randn(400_000, 4, generator=gen, dtype=torch.float64)

    def z(y):
        return torch.exp(w @ (x + y) - (x + y).dot(x + y) / 2)

    measured = (z(yj) * z(yl)).mean().item()
    predicted = math.exp(x.dot(x) + x.dot(yj) + x.dot(yl) + yj.dot(yl))
    assert measured == pytest.approx(predicted, rel=0.02)


def test_delta_prediction_tracks_measured_tv_in_the_light_tailed_regime():
    """Small norms: E TV ≈ c/√m (iid features) with c from tv_coefficients, within 25%."""
    q, k, v = ent.gaussian_family(256, [8.0], n_queries=32, head_dim=16, seed=0)
    c = ent.tv_coefficients(q, k)["delta"].mean().item()
    m = 256
    tv = np.mean([ent.performer_metrics(q, k, v, m, seed=s, orthogonal=False)["tv"].item() for s in range(6)])
    assert tv == pytest.approx(c / math.sqrt(m), rel=0.25)
    # the independent-pairs Lemma-2 version over-predicts (it ignores the shared features' correlation)
    assert ent.tv_coefficients(q, k)["lemma2"].mean().item() > c


def test_lemma2_check_within_ten_percent_light_tails():
    rows = ent.lemma2_check([0.5, 1.0], [16, 128], draws=200, feature_budget=2 ** 18, head_dim=8)
    for r in rows:
        assert r["ratio_stderr"] < 0.04, r   # enough draws for the 10% check to mean something
        assert abs(r["ratio"] - 1) < 0.1, r
    # orthogonal features: no larger error than iid (Theorem 2) at m > D
    orth = ent.lemma2_check([1.0], [64], draws=100, feature_budget=2 ** 13, head_dim=8, orthogonal=True)
    assert orth[0]["ratio"] < 1.05
    with pytest.raises(ValueError, match="norm_sum_sq"):
        ent.lemma2_check([-1.0], [16])


def test_lemma2_pairs_hit_their_targets():
    x, y = ent.lemma2_pairs([0.5, 2.0, 4.0], head_dim=8)
    assert torch.allclose((x + y).pow(2).sum(-1), torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64))
