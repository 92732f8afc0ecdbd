"""The minimax variant: explicit == efficient (float64, causal, awkward shapes), its kernel is the
best positive polynomial of its degree, it is cached, and on inputs whose similarities fill [−R, R]
it beats taylor of the same degree in mean row TV (where measured so: see the cases)."""

from __future__ import annotations

import math
import time

import pytest
import sympy
import torch

from approxlab import attention, attention_weights, explicit_attention
from approxlab.core import approx
from approxlab.analysis.metrics import row_tv
from approxlab.analysis.theory import tv_bound
from approxlab.variants import Minimax, Taylor, build_kernel


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def range_inputs(R, n=128, d=4, b=1, h=4, seed=0):
    """q, k of norm √(R√D): s = q·k/√D = R cos θ fills [−R, R]."""
    q, k = randn(b, h, n, d, seed=seed), randn(b, h, n, d, seed=seed + 1)
    rho = math.sqrt(R * math.sqrt(d))
    return q / q.norm(dim=-1, keepdim=True) * rho, k / k.norm(dim=-1, keepdim=True) * rho


@pytest.mark.parametrize("n,d,dv,degree,R", [(1, 3, 2, 2, 4.0), (63, 5, 7, 3, 2.0), (130, 2, 4, 5, 1.0)])
@pytest.mark.parametrize("causal", [False, True])
def test_efficient_equals_explicit(n, d, dv, causal, degree, R):
    q, k, v = randn(2, 2, n, d, seed=1), randn(2, 2, n, d, seed=2), randn(2, 2, n, dv, seed=3)
    q, k = 0.6 * q, 0.6 * k
    fast = attention(q, k, v, "minimax", causal=causal, chunk_size=16, degree=degree, R=R)
    ref = explicit_attention(q, k, v, "minimax", causal=causal, degree=degree, R=R)
    assert ((fast - ref).norm() / ref.norm()).item() < 1e-10


def test_kernel_is_the_best_polynomial_and_symbolic():
    kern = Minimax(4, 2.0)
    s = sympy.Symbol("s")
    assert sympy.Poly(sympy.expand(kern.similarity_function(s)), s).degree() == 4
    err = approx.log_uniform_error(kern.similarity_function, 2.0)
    assert err.positive and abs(err.c) < 1e-8  # centred: log κ − s ∈ [−δ, δ]
    assert err.delta == pytest.approx(math.atanh(approx.best_exp(4, 2.0).error), rel=1e-6)
    assert err.delta < approx.log_uniform_error(Taylor(4).similarity_function, 2.0).delta
    # the odd-degree kernel is positive on its range, negative coefficients included
    odd = Minimax(3, 4.0)
    assert approx.log_uniform_error(odd.similarity_function, 4.0).positive
    assert kern.feature_width(5) == math.comb(5 + 4, 4)


def test_coefficients_are_cached():
    approx.minimax_polynomial_coefficients(6, 3.0)
    hits = approx.minimax_polynomial_coefficients.cache_info().hits
    start = time.perf_counter()
    build_kernel("minimax", 8, degree=6, R=3.0)
    assert time.perf_counter() - start < 0.05
    assert approx.minimax_polynomial_coefficients.cache_info().hits == hits + 1


@pytest.mark.parametrize("R,degrees", [(1.0, (2, 4, 6)), (2.0, range(2, 7)), (4.0, range(3, 7))])
def test_beats_taylor_in_mean_row_tv_on_range_inputs(R, degrees):
    """Measured (see figures/bridge.csv, experiment 'range'): minimax < taylor in mean row TV for these
    (R, p); it is NOT so for p = 1, for p = 2 at R = 4, nor for even p at R = 8, where taylor's error
    is small near s = 0, where most similarities are. The worst row obeys the δ_f(R) bound throughout."""
    q, k = range_inputs(R)
    ref = attention_weights(q, k, "softmax")
    for p in degrees:
        tv_m = row_tv(ref, attention_weights(q, k, "minimax", degree=p, R=R))
        tv_t = row_tv(ref, attention_weights(q, k, "taylor", order=p))
        assert tv_m.mean() < tv_t.mean(), (R, p)
        delta = approx.log_uniform_error(Minimax(p, R).similarity_function, R).delta
        assert tv_m.max() <= tv_bound(delta) + 1e-12


@pytest.mark.parametrize("params,exc,message", [
    (dict(degree=-1), ValueError, "degree must"),
    (dict(degree=2.5), TypeError, "degree must"),
    (dict(R=0.0), ValueError, "R must"),
    (dict(R=math.inf), ValueError, "R must"),
    (dict(order=2), TypeError, "unexpected parameter"),
])
def test_bad_parameters_are_named(params, exc, message):
    with pytest.raises(exc, match=message):
        build_kernel("minimax", 4, **params)
