"""Window hybrids: exact exp(s) inside the window, a kernel outside, one denominator (approxlab.variants.window)."""

from __future__ import annotations

import math

import pytest
import torch

import approxlab
from approxlab.core.budget import MemoryBudgetError, memory_budget
from approxlab.variants import build_kernel
from approxlab.variants.window import Window, fit_window_weight, kernel_sums, window_masks

INNER = [("hedgehog", {}), ("linear", {}), ("taylor", {}), ("performer", dict(num_features=16, seed=3)),
         ("favorpp", dict(num_features=16)), ("relu", {})]


def qkv(b=2, h=3, n=37, d=6, dv=5, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, h, n, d, generator=gen, dtype=torch.float64) * scale for _ in range(2))
    return q, k, torch.randn(b, h, n, dv, generator=gen, dtype=torch.float64)


def by_definition(q, k, v, window, kernel, params, gamma, causal):
    """κ_ij = γ e^{s_ij} on W(i), the inner kernel's true value φ(x)·φ(y) e^{c_x + c_y} elsewhere, from the
    features directly and masks built with plain index arithmetic (no code shared with the variant's forms)."""
    d = q.shape[-1]
    x, y = q / d ** 0.25, k / d ** 0.25
    inner = build_kernel(kernel, d, **params)
    fq, cq = inner.features(x) if kernel != "taylor" else inner.query_features(x)
    fk, ck = inner.key_features(y)
    kk = fq @ fk.transpose(-1, -2)
    if cq is not None:
        kk = kk * torch.exp(cq)[..., :, None]
    if ck is not None:
        kk = kk * torch.exp(ck)[..., None, :]
    n = q.shape[-2]
    kappa = torch.zeros_like(kk)
    g = gamma if isinstance(gamma, float) else gamma.view(-1)
    for i in range(n):
        for j in range(n):
            if causal and j > i:
                continue
            near = i - window < j <= i if causal else abs(i - j) < window
            exact = g * torch.exp((x[..., i, :] * y[..., j, :]).sum(-1))
            kappa[..., i, j] = exact if near else kk[..., i, j]
    total = kappa.sum(-1, keepdim=True)  # a row with no kernel mass (relu, w = 0) gets 0, the engine's convention
    return torch.where(total > 0, kappa / torch.where(total > 0, total, torch.ones_like(total)), 0.0) @ v


@pytest.mark.parametrize("kernel,params", INNER)
@pytest.mark.parametrize("causal", [False, True])
def test_both_forms_equal_the_definition(kernel, params, causal):
    q, k, v = qkv(n=19)
    gamma = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    for window in (0, 1, 4, 19):
        expected = by_definition(q, k, v, window, kernel, params, gamma, causal)
        p = dict(window=window, kernel=kernel, kernel_params=params, window_weight=gamma)
        explicit = approxlab.explicit_attention(q, k, v, Window, causal=causal, **p)
        efficient = approxlab.attention(q, k, v, Window, causal=causal, chunk_size=5, **p)
        torch.testing.assert_close(explicit, expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(efficient, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,chunk", [(1, None), (37, 7), (63, 64), (64, 16)])
def test_efficient_equals_explicit_on_awkward_shapes(causal, n, chunk):
    q, k, v = qkv(b=1, h=2, n=n, d=60 if n == 1 else 7, dv=3, seed=n)
    for window in (1, 3, max(1, n - 1), n, n + 5):
        for kernel, params in INNER[:4]:
            p = dict(window=window, kernel=kernel, kernel_params=params, window_weight=0.7)
            ref = approxlab.explicit_attention(q, k, v, Window, causal=causal, **p)
            out = approxlab.attention(q, k, v, Window, causal=causal, chunk_size=chunk, **p)
            torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_limits_pure_kernel_and_softmax(causal):
    q, k, v = qkv(n=23)
    pure = approxlab.attention(q, k, v, "hedgehog", causal=causal)
    torch.testing.assert_close(approxlab.attention(q, k, v, Window, causal=causal, window=0), pure,
                               rtol=1e-10, atol=1e-12)
    soft = approxlab.attention(q, k, v, "softmax", causal=causal)
    for window in (23, 40):
        torch.testing.assert_close(approxlab.attention(q, k, v, Window, causal=causal, window=window,
                                                       window_weight=5.0), soft, rtol=1e-10, atol=1e-12)


def test_no_causal_leak():
    """Changing only the last key and value leaves every earlier output of the causal efficient form as it was."""
    q, k, v = qkv(n=40)
    for kernel, params in INNER:
        p = dict(window=6, kernel=kernel, kernel_params=params)
        out = approxlab.attention(q, k, v, Window, causal=True, chunk_size=8, **p)
        k2, v2 = k.clone(), v.clone()
        k2[..., -1, :] += 5.0
        v2[..., -1, :] -= 3.0
        out2 = approxlab.attention(q, k2, v2, Window, causal=True, chunk_size=8, **p)
        assert torch.equal(out[..., :-1, :], out2[..., :-1, :])
        assert not torch.allclose(out[..., -1, :], out2[..., -1, :])


def test_masks():
    inside, outside = window_masks(5, 5, 2, causal=True)
    assert inside.int().tolist() == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0],
                                     [0, 0, 0, 1, 1]]
    assert outside.int().tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0],
                                      [1, 1, 1, 0, 0]]
    inside, outside = window_masks(4, 4, 2, causal=False)
    assert inside.int().tolist() == [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]]
    assert (inside ^ outside).all()


def test_row_blocks_equal_the_full_weights():
    q, k, _ = qkv(n=30)
    for causal in (False, True):
        full = approxlab.attention_weights(q, k, Window, causal=causal, window=4)
        blocks = torch.cat([approxlab.attention_weights(q, k, Window, causal=causal, window=4, rows=slice(i, i + 7))
                            for i in range(0, 30, 7)], dim=-2)
        torch.testing.assert_close(blocks, full, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(full.sum(-1), torch.ones_like(full.sum(-1)))


def test_scale_is_shared_between_window_and_kernel():
    """Large similarities (exp(s) ~ e^60) in both parts: finite, and the same as the float64 definition."""
    q, k, v = qkv(n=24, scale=4.0)
    for causal in (False, True):
        expected = by_definition(q, k, v, 3, "performer", dict(num_features=16, seed=3), 1.0, causal)
        out = approxlab.attention(q, k, v, Window, causal=causal, window=3, kernel="performer",
                                  kernel_params=dict(num_features=16, seed=3))
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-11)


def test_float32_close_to_float64():
    q, k, v = qkv(n=50)
    for causal in (False, True):
        ref = approxlab.attention(q, k, v, Window, causal=causal, window=5)
        out = approxlab.attention(q.float(), k.float(), v.float(), Window, causal=causal, window=5)
        assert out.dtype == torch.float32
        assert (out.double() - ref).abs().max() < 1e-4


def test_gradient_reaches_a_per_head_weight():
    q, k, v = qkv(b=1, h=2, n=20)
    gamma = torch.tensor([0.5, 2.0], dtype=torch.float64, requires_grad=True)
    hybrid = Window(6, window=3, window_weight=gamma)
    approxlab.attention(q, k, v, hybrid, causal=True).pow(2).sum().backward()
    g_eff = gamma.grad.clone()
    gamma.grad = None
    approxlab.explicit_attention(q, k, v, hybrid, causal=True).pow(2).sum().backward()
    assert torch.all(g_eff != 0)
    torch.testing.assert_close(g_eff, gamma.grad, rtol=1e-9, atol=1e-12)


def test_kernel_sums_are_the_true_sums():
    """Σ_j κ(x_i, y_j)[v_j, 1] with the query's factor kept (FAVOR+'s exp(−‖x‖²/2) included)."""
    x, y, v = qkv(n=17, scale=0.6)
    kernel = build_kernel("performer", 6, num_features=12)
    for causal in (False, True):
        num, den, ref = kernel_sums(kernel, x, y, v, causal=causal, chunk_size=4)
        est = kernel.kernel_estimate(x, y)
        if causal:
            est = est.tril()
        torch.testing.assert_close(den * torch.exp(ref), est.sum(-1), rtol=1e-10, atol=0)
        torch.testing.assert_close(num * torch.exp(ref)[..., None], est @ v, rtol=1e-10, atol=1e-12)


def test_fitted_weight_centres_the_log_offset():
    """γ_h = exp(softmax-weighted mean of log κ − s outside the window): for the kernel c·exp(s) it is c."""
    q, k, _ = qkv(n=30)

    class Scaled(approxlab.KernelVariant):  # κ = 7 · exp(s) from its closed form: log κ − s = log 7
        name = "scaled_exp"

        def features(self, x):  # no query scale: the closed form below is the kernel's true value
            return torch.ones(*x.shape[:-1], 1, dtype=x.dtype), None

        def kernel(self, x, y):
            return 7.0 * torch.exp(x @ y.transpose(-1, -2)), None

    gamma = fit_window_weight(q[..., :1], k[..., :1], window=3, kernel=Scaled(), scale=1.0)
    torch.testing.assert_close(gamma, torch.full((3,), 7.0, dtype=torch.float64), rtol=1e-12, atol=0)
    gamma = fit_window_weight(q, k, window=3, kernel="hedgehog", causal=True)
    assert gamma.shape == (3,) and (gamma > 0).all()


def test_memory_budget_is_checked_first():
    q, k, v = qkv(b=1, h=1, n=64)
    with memory_budget(10_000):
        with pytest.raises(MemoryBudgetError, match="window hybrid"):
            approxlab.attention(q, k, v, Window, window=32)


def test_bad_parameters_are_named():
    q, k, v = qkv(n=8)
    with pytest.raises(ValueError, match="window"):
        Window(6, window=-1)
    with pytest.raises(ValueError, match="window_weight"):
        Window(6, window_weight=0.0)
    with pytest.raises(ValueError, match="window_weight"):
        Window(6, window_weight=torch.tensor([[1.0]]))
    with pytest.raises(ValueError, match="softmax"):
        Window(6, kernel="softmax")
    with pytest.raises(ValueError, match="window hybrid"):
        Window(6, kernel=Window)
    with pytest.raises(TypeError, match="kernel_params"):
        Window(6, kernel_params=[1])
    with pytest.raises(ValueError, match="heads"):
        approxlab.attention(q, k, v, Window, window_weight=torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="Nq = Nk"):
        Window(6).efficient(q[..., :4, :], k, v, causal=False)
    with pytest.raises(TypeError, match="not a feature product"):
        Window(6).features(q)
    with pytest.raises(ValueError, match="backend"):
        approxlab.attention(q.float(), k.float(), v.float(), Window, causal=True, backend="triton")
    assert math.isclose(Window(6, window_weight=2).window_weight, 2.0)


def test_distilling_the_map_inside_a_hybrid_fits_the_window_weight_too():
    """distill(..., window=w): Hedgehog's (W, b) and γ fitted through the hybrid's explicit form; the fitted
    hybrid is closer to softmax than the same window around the map at its initialisation (held-out text would
    be the fair test; here: the fit does what it optimises)."""
    from approxlab.analysis.distill import distill, mean_row_tv

    q, k, _ = qkv(b=1, h=1, n=32, d=6, seed=4, scale=1.5)
    fit = distill(q, k, "hedgehog", window=4, steps=40, lr=0.05)
    assert fit.variant == "window" and fit.params["window_weight"].shape == (1,) and fit.loss[-1] < fit.loss[0]
    fitted = mean_row_tv(q, k, fit.variant, **fit.params)
    assert fitted < mean_row_tv(q, k, "window", window=4)
