"""Shared test helpers: seeded Gaussian tensors, relative error, the efficient-vs-explicit check."""

import torch

from approxlab import attention, attention_weights


def randn(*shape, seed=0, dtype=torch.float64, scale=1.0):
    """scale · N(0, 1) of ``shape``, drawn in float64 from ``seed``, then cast to ``dtype``."""
    gen = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(dtype)


def rel_err(a, b):
    """‖a − b‖ / ‖b‖ in float64."""
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-300)).item()


def assert_efficient_equals_explicit(q, k, v, variant, *, causal, chunk, params, tol=1e-10):
    """The efficient form (chunk length ``chunk``) equals explicit weights @ v to ``tol`` relative."""
    fast = attention(q, k, v, variant, causal=causal, chunk_size=chunk, **params)
    weights = attention_weights(q, k, variant, causal=causal, **params)
    assert fast.shape == (*q.shape[:-1], v.shape[-1])
    assert rel_err(fast, weights @ v) <= tol
