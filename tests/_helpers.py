"""Shared test helpers: seeded Gaussian tensors and relative error."""

import torch


def randn(*shape, seed=0, dtype=torch.float64, scale=1.0):
    """scale · N(0, 1) of ``shape``, drawn in float64 from ``seed``, then cast to ``dtype``."""
    gen = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(dtype)


def rel_err(a, b):
    """‖a − b‖ / ‖b‖ in float64."""
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-300)).item()
