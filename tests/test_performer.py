"""FAVOR+ against its peer implementation and against its own expectation.

``performer-pytorch`` 1.1.4 computes the same estimator; its features add ε = 1e-4 after subtracting,
for keys, the maximum over all positions and features. With ε = 0 the two agree to rounding; with its
default ε its outputs drift toward uniform attention as the inputs grow, and in causal mode a later
key moves earlier outputs. approxlab adds no ε and has neither defect.
"""

from __future__ import annotations

import math

import pytest
import torch

from approxlab import attention, explicit_attention
from approxlab.variants import Performer, gaussian_projection

performer_pytorch = pytest.importorskip("performer_pytorch")
from performer_pytorch.performer_pytorch import linear_attention, softmax_kernel  # noqa: E402


def randn(*shape, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=gen, dtype=torch.float64)


def peer_fast_attention(projection, causal=False):
    dim = projection.shape[1]
    peer = performer_pytorch.FastAttention(dim_heads=dim, nb_features=projection.shape[0], causal=causal)
    peer.projection_matrix = projection.clone()
    return peer.double()


def test_same_estimator_as_performer_pytorch_without_epsilon():
    """Given one projection matrix and ε = 0, its features and ours give the same output."""
    q, k, v = randn(2, 3, 50, 16), randn(2, 3, 50, 16, seed=1), randn(2, 3, 50, 8, seed=2)
    proj = gaussian_projection(64, 16, seed=4)
    fq = softmax_kernel(q, projection_matrix=proj, is_query=True, eps=0.0)
    fk = softmax_kernel(k, projection_matrix=proj, is_query=False, eps=0.0)
    peer = linear_attention(fq, fk, v)
    ours = attention(q, k, v, "performer", projection=proj)
    assert ((ours - peer).norm() / peer.norm()).item() <= 1e-12


def test_performer_pytorch_default_epsilon_biases_toward_uniform():
    """Its default ε = 1e-4 after the global key max: for larger inputs its output approaches mean(v)."""
    q, k, v = randn(1, 2, 256, 32, scale=2.0), randn(1, 2, 256, 32, seed=1, scale=2.0), randn(1, 2, 256, 8, seed=2)
    proj = gaussian_projection(128, 32, seed=0)
    peer = peer_fast_attention(proj)(q, k, v)
    ours = attention(q, k, v, "performer", projection=proj)
    reference = explicit_attention(q, k, v, "performer", projection=proj)  # the exact FAVOR+ estimator
    uniform = v.mean(-2, keepdim=True).expand_as(v)
    ours_err = ((ours - reference).norm() / reference.norm()).item()
    peer_err = ((peer - reference).norm() / reference.norm()).item()
    assert ours_err <= 1e-12
    assert peer_err >= 0.1, peer_err  # measured 0.99 here: the ε term dominates the features
    assert (peer - uniform).norm() < (reference - uniform).norm()


def test_causal_performer_pytorch_leaks_the_future_and_approxlab_does_not():
    """Change only the last key: earlier causal outputs must not move."""
    q, k, v = randn(1, 1, 64, 16, scale=1.5), randn(1, 1, 64, 16, seed=1, scale=1.5), randn(1, 1, 64, 4, seed=2)
    k2 = k.clone()
    k2[..., -1, :] *= 4.0
    proj = gaussian_projection(64, 16, seed=0)
    peer = peer_fast_attention(proj, causal=True)
    peer_shift = (peer(q, k2, v) - peer(q, k, v))[..., :-1, :].abs().max().item()
    ours_shift = (
        attention(q, k2, v, "performer", causal=True, projection=proj)
        - attention(q, k, v, "performer", causal=True, projection=proj)
    )[..., :-1, :].abs().max().item()
    assert peer_shift > 1e-3, peer_shift
    assert ours_shift == 0.0


@pytest.mark.parametrize("orthogonal", [False, True])
def test_favor_kernel_is_unbiased_for_exp(orthogonal):
    """Mean of φ(x)·φ(y) over independent draws → exp(x·y) within a CLT band (5 standard errors)."""
    x, y = randn(1, 8, seed=11, scale=0.35), randn(1, 8, seed=12, scale=0.35)
    draws = torch.stack([
        Performer(8, num_features=16, orthogonal=orthogonal, seed=s).kernel_estimate(x, y)[0, 0] for s in range(1000)
    ])
    target = math.exp((x @ y.T).item())
    stderr = draws.std().item() / math.sqrt(len(draws))
    assert abs(draws.mean().item() - target) <= 5 * stderr
    # and the band is informative: a 5 % bias would be caught
    assert 5 * stderr < 0.05 * target


def test_lemma2_variance_for_iid_features():
    """Sample variance of the positive estimator ≈ Lemma 2: exp(2x·y)(e^{‖x+y‖²} − 1)/m (small ‖x+y‖, light tails)."""
    x, y = randn(1, 4, seed=1, scale=0.3), randn(1, 4, seed=2, scale=0.3)
    m = 8
    draws = torch.stack([Performer(4, num_features=m, orthogonal=False, seed=s).kernel_estimate(x, y)[0, 0]
                         for s in range(4000)])
    predicted = math.exp(2 * (x @ y.T).item()) * (math.exp(((x + y) ** 2).sum().item()) - 1) / m
    assert draws.var().item() == pytest.approx(predicted, rel=0.1)


def test_orthogonal_projection_rows_are_orthogonal_with_gaussian_norms():
    w = gaussian_projection(20, 8, orthogonal=True, seed=0)
    block = w[:8] / w[:8].norm(dim=1, keepdim=True)
    assert torch.allclose(block @ block.T, torch.eye(8, dtype=torch.float64), atol=1e-12)
    assert w.shape == (20, 8)
