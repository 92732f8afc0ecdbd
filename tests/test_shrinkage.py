"""The shrinkage estimator (approxlab.variants.shrinkage): the weight it uses, derived; its two forms equal;
its variance estimate unbiased for the mean of the groups."""

from __future__ import annotations

import pytest
import sympy as sp
import torch

import approxlab
from approxlab.core.protocol import KernelVariant
from approxlab.variants.linear import elu_feature
from approxlab.variants.shrinkage import ProductKernel, Shrinkage, UniformKernel


def qkv(b=1, h=2, n=29, d=6, dv=3, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, h, n, d, generator=gen, dtype=torch.float64) * scale for _ in range(2))
    return q, k, torch.randn(b, h, n, dv, generator=gen, dtype=torch.float64)


def test_the_weight_minimises_the_expected_squared_error():
    """ã − a = (1 − λ)ε + λβ with E ε = 0, E ε² = V (â = a + ε unbiased) and β = ā − a fixed: per coordinate,
    E(ã − a)² = (1 − λ)²V + λ²β², minimised at λ* = V/(V + β²) = V / E(â − ā)²; the minimum is Vβ²/(V + β²),
    below both V (λ = 0) and β² (λ = 1)."""
    lam, eps, beta, V = sp.symbols("lambda epsilon beta V", real=True)
    V = sp.Symbol("V", positive=True)
    beta2 = sp.Symbol("beta2", positive=True)
    square = sp.expand(((1 - lam) * eps + lam * beta) ** 2)
    expected = square.subs(eps**2, V).subs(eps, 0).subs(beta**2, beta2)   # E ε = 0, E ε² = V
    assert sp.simplify(expected - ((1 - lam) ** 2 * V + lam**2 * beta2)) == 0
    (best,) = sp.solve(sp.diff(expected, lam), lam)
    assert sp.simplify(best - V / (V + beta2)) == 0
    assert sp.simplify(sp.diff(expected, lam, 2)) == 2 * (V + beta2)            # a minimum
    spread = sp.expand((eps - beta) ** 2).subs(eps**2, V).subs(eps, 0).subs(beta**2, beta2)
    assert sp.simplify(best - V / spread) == 0                                   # λ* = V / E(â − ā)²
    minimum = sp.simplify(expected.subs(lam, best))
    assert sp.simplify(minimum - V * beta2 / (V + beta2)) == 0
    assert sp.simplify(V - minimum).is_positive and sp.simplify(beta2 - minimum).is_positive


@pytest.mark.parametrize("kernel", ["performer", "favorpp", "hyperbolic"])
@pytest.mark.parametrize("baseline", ["uniform", "taylor"])
@pytest.mark.parametrize("causal", [False, True])
def test_efficient_equals_explicit(kernel, baseline, causal):
    q, k, v = qkv(scale=1.3)
    for groups in (2, 3):
        params = dict(kernel=kernel, num_features=12, groups=groups, baseline=baseline)
        ref = approxlab.explicit_attention(q, k, v, Shrinkage, causal=causal, **params)
        out = approxlab.attention(q, k, v, Shrinkage, causal=causal, chunk_size=5, **params)
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


def test_weights_are_a_convex_combination_and_blocks_agree():
    q, k, v = qkv(n=30)
    for causal in (False, True):
        a = approxlab.attention_weights(q, k, Shrinkage, causal=causal, num_features=16)
        torch.testing.assert_close(a.sum(-1), torch.ones_like(a.sum(-1)))
        assert (a >= 0).all()
        if causal:
            assert (a.triu(1) == 0).all()
        blocks = torch.cat([approxlab.attention_weights(q, k, Shrinkage, causal=causal, num_features=16,
                                                         rows=slice(i, i + 7)) for i in range(0, 30, 7)], dim=-2)
        torch.testing.assert_close(blocks, a, rtol=1e-12, atol=1e-14)


def test_weight_between_zero_and_one_and_its_limits():
    q, k, v = qkv(n=40, scale=2.0)
    est = Shrinkage(6, num_features=16)
    x, y = q / 6 ** 0.25, k / 6 ** 0.25
    _, lam = est.efficient_with_weight(x, y, v, causal=False)
    assert ((lam >= 0) & (lam <= 1)).all() and lam.max() > 0

    class Deterministic(KernelVariant):  # "random" features that ignore the seed: the groups agree, V̂ = 0
        name = "det"

        def __init__(self, head_dim, num_features=8, seed=0):
            pass

        def features(self, x):
            return elu_feature(x), None

    out, lam = Shrinkage(6, kernel=Deterministic, num_features=8).efficient_with_weight(x, y, v, causal=True)
    assert (lam == 0).all()
    torch.testing.assert_close(out, approxlab.attention(q, k, v, "linear", causal=True), rtol=1e-12, atol=1e-13)


def test_variance_estimate_is_unbiased_for_the_mean_of_the_groups():
    """Over many feature draws, the mean of V̂_i equals the variance E‖â_i − E â_i‖² of the groups' mean estimate
    (the estimator the weight is for), within Monte-Carlo error."""
    q, k, _ = qkv(b=1, h=1, n=12, d=4, scale=1.2)
    x, y = q / 4 ** 0.25, k / 4 ** 0.25
    means, estimates = [], []
    for seed in range(0, 3000, 3):
        est = Shrinkage(4, num_features=6, groups=3, seed=seed)
        groups = [_weights(kern, x, y) for kern in est.members]
        mean = sum(groups) / 3
        means.append(mean)
        estimates.append(sum(((g - mean) ** 2).sum(-1) for g in groups) / 6)
    means, estimates = torch.stack(means), torch.stack(estimates)
    true_variance = ((means - means.mean(0)) ** 2).sum(-1).mean(0)
    assert torch.allclose(estimates.mean(0), true_variance, rtol=0.15)


def _weights(kernel, x, y):
    from approxlab.variants.window import true_kernel

    matrix, _, ck = true_kernel(kernel, x, y)
    matrix = matrix * torch.exp(ck - ck.amax(-1, keepdim=True)).unsqueeze(-2)
    return matrix / matrix.sum(-1, keepdim=True)


def test_no_causal_leak():
    q, k, v = qkv(n=24)
    out = approxlab.attention(q, k, v, Shrinkage, causal=True, num_features=16, chunk_size=5)
    k2, v2 = k.clone(), v.clone()
    k2[..., -1, :] += 4.0
    v2[..., -1, :] -= 2.0
    out2 = approxlab.attention(q, k2, v2, Shrinkage, causal=True, num_features=16, chunk_size=5)
    assert torch.equal(out[..., :-1, :], out2[..., :-1, :])


def test_product_and_uniform_kernels():
    q, k, _ = qkv(n=9)
    from approxlab.variants import build_kernel

    a, b = build_kernel("performer", 6, num_features=8), build_kernel("linear", 6)
    prod = ProductKernel(a, b)
    fq, cq = prod.exact_query_features(q)
    fk, ck = prod.key_features(k)
    got = (fq @ fk.transpose(-1, -2)) * torch.exp(cq[..., :, None] + ck[..., None, :])
    torch.testing.assert_close(got, a.kernel_estimate(q, k) * (elu_feature(q) @ elu_feature(k).transpose(-1, -2)))
    assert UniformKernel().feature_width(6) == 1 and prod.feature_width(6) == 8 * 6


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="groups"):
        Shrinkage(6, groups=1)
    with pytest.raises(ValueError, match="multiple"):
        Shrinkage(6, num_features=15, groups=2)
    with pytest.raises(ValueError, match="seed"):
        Shrinkage(6, kernel_params=dict(seed=1))
    with pytest.raises(ValueError, match="uniform baseline"):
        Shrinkage(6, baseline_params=dict(order=2))
    with pytest.raises(TypeError, match="kernel_params"):
        Shrinkage(6, kernel_params=3)
    with pytest.raises(TypeError, match="not a feature product"):
        Shrinkage(6).features(torch.zeros(1, 6))


def test_memory_budget_names_the_product_state():
    from approxlab.core.budget import MemoryBudgetError, memory_budget

    q, k, v = qkv(n=16)
    with memory_budget(200_000):
        with pytest.raises(MemoryBudgetError, match="product state"):
            approxlab.attention(q, k, v, Shrinkage, num_features=256)
