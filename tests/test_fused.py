"""The fused Triton kernel for causal linear attention against its masked N×N reference.

Without a GPU these run under Triton's CPU interpreter (tests/conftest.py sets TRITON_INTERPRET=1),
so the kernel's indexing, masking, prefix states and zero-row rule are checked on every machine; its
speed is a benchmark question (``approxlab bench --device cuda --methods linear linear_triton fla_linear``).
"""

from __future__ import annotations

import pytest
import torch

from approxlab import attention
from approxlab.core import fused

pytestmark = pytest.mark.skipif(not fused.available(), reason="needs triton (CUDA or TRITON_INTERPRET=1)")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def features(*shape, seed=0, dtype=torch.float32, kind="positive"):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    x = x.exp() if kind == "positive" else x.clamp(min=0)  # relu-like: some rows with no mass
    return x.to(device=DEVICE, dtype=dtype)


def test_reference_is_the_engines_causal_form():
    """The reference itself: elu+1 features through it equal approxlab's causal linear attention."""
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 37, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    scale = 8 ** -0.5
    fq, fk = (torch.nn.functional.elu(x * scale**0.5) + 1 for x in (q, k))
    expected = attention(q, k, v, "linear", causal=True)
    assert torch.allclose(fused.causal_linear_reference(fq, fk, v), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("b,h,n,f,dv,chunk", [
    (1, 1, 64, 16, 16, 64),     # one full chunk
    (2, 3, 100, 20, 24, 32),    # N not a multiple of the chunk, F and Dv not powers of two
    (1, 2, 130, 64, 96, 16),    # Dv over one value block (64): two programs per head
    (1, 1, 1, 5, 3, 64),        # a single position
])
def test_fused_kernel_matches_the_reference(b, h, n, f, dv, chunk):
    fq, fk = features(b, h, n, f, seed=2), features(b, h, n, f, seed=3)
    v = features(b, h, n, dv, seed=4, kind="signed") - 0.3
    out = fused.causal_linear_triton(fq, fk, v, chunk_size=chunk)
    ref = fused.causal_linear_reference(fq.double(), fk.double(), v.double())
    assert out.shape == v.shape and out.dtype == v.dtype
    torch.testing.assert_close(out.double(), ref, rtol=2e-5, atol=2e-6)


def test_rows_without_kernel_mass_give_zero_like_the_engine():
    """relu-style features: a query whose features are all zero has no mass; output 0, not NaN."""
    fq = features(1, 2, 70, 16, seed=5, kind="signed")
    fq[..., ::7, :] = 0.0
    fk = features(1, 2, 70, 16, seed=6, kind="signed")
    v = features(1, 2, 70, 16, seed=7, kind="signed")
    out = fused.causal_linear_triton(fq, fk, v, chunk_size=16)
    assert torch.isfinite(out).all() and (out[..., ::7, :] == 0).all()
    torch.testing.assert_close(out, fused.causal_linear_reference(fq, fk, v), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_accumulate_in_float32(dtype):
    fq, fk = features(1, 2, 96, 32, seed=8, dtype=dtype), features(1, 2, 96, 32, seed=9, dtype=dtype)
    v = features(1, 2, 96, 32, seed=10, dtype=dtype, kind="signed")
    out = fused.causal_linear_triton(fq, fk, v, chunk_size=32)
    ref = fused.causal_linear_reference(fq.float(), fk.float(), v.float())  # same rounded inputs, float32 sums
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), ref, rtol=2 * torch.finfo(dtype).eps, atol=2 * torch.finfo(dtype).eps)


@pytest.mark.parametrize("variant,params", [("linear", {}), ("relu", {}), ("hla", {"factors": 1})])
def test_attention_backend_triton_equals_the_torch_backend(variant, params):
    gen = torch.Generator().manual_seed(11)
    q, k, v = (torch.randn(1, 2, 77, 16, generator=gen).to(DEVICE) for _ in range(3))
    fast = attention(q, k, v, variant, causal=True, backend="triton", **params)
    torch.testing.assert_close(fast, attention(q, k, v, variant, causal=True, **params), rtol=1e-5, atol=1e-6)
    # non-causal: the same torch GEMMs whichever backend is named
    assert torch.equal(attention(q, k, v, variant, backend="triton", **params), attention(q, k, v, variant, **params))


def test_bad_input_is_refused_by_name():
    fq = features(1, 1, 8, 16)
    with pytest.raises(ValueError, match="F <= 256"):
        fused.causal_linear_triton(features(1, 1, 8, 300), features(1, 1, 8, 300), fq)
    with pytest.raises(ValueError, match="matching"):
        fused.causal_linear_triton(fq, features(1, 1, 9, 16), fq)
    with pytest.raises(TypeError, match="fk must be"):
        fused.causal_linear_triton(fq, fq.double(), fq)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        fused.causal_linear_triton(fq, fq, fq, chunk_size=0)
    q = torch.randn(1, 1, 8, 16, device=DEVICE)
    with pytest.raises(ValueError, match="per-key scale"):
        attention(q, q, q, "performer", causal=True, backend="triton")
    with pytest.raises(ValueError, match="backend"):
        attention(q, q, q, "linear", causal=True, backend="cuda")


def test_fused_kernel_and_engine_match_flash_linear_attention_reference():
    """Peer oracle: fla's naive recurrent linear attention (normalize=True; it computes in float32 and
    adds 1e-10 to the denominator) against the fused kernel and the torch causal form."""
    naive = pytest.importorskip("fla.ops.linear_attn.naive", reason="needs fla-core").naive_recurrent_linear_attn
    fq, fk = features(2, 3, 150, 32, seed=12), features(2, 3, 150, 32, seed=13)
    v = features(2, 3, 150, 48, seed=14, kind="signed")
    theirs, _ = naive(*(x.transpose(1, 2).cpu() for x in (fq, fk, v)), scale=1.0, normalize=True)  # (B, T, H, D)
    theirs = theirs.transpose(1, 2)
    torch.testing.assert_close(fused.causal_linear_triton(fq, fk, v).cpu(), theirs, rtol=1e-5, atol=1e-6)
    ours = fused.causal_linear_reference(fq.double(), fk.double(), v.double()).cpu()
    torch.testing.assert_close(ours.float(), theirs, rtol=1e-5, atol=1e-6)
