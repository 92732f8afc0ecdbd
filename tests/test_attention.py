"""The foundation: every variant's efficient form equals its explicit form, softmax equals SDPA,
bad input is refused by name, half precision stays finite."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import approxlab
from approxlab import Attention, attention, attention_weights, explicit_attention

from _helpers import assert_efficient_equals_explicit, randn, rel_err

# one parameter set per kernel family, small enough for hypothesis
CASES = [
    ("softmax", {}),
    ("linear", {}),
    ("relu", {}),
    ("performer", {"num_features": 24}),
    ("performer", {"num_features": 16, "orthogonal": False, "seed": 3}),
    ("taylor", {"order": 2}),
    ("taylor", {"order": 3}),
    ("taylor", {"order": 0}),
    ("polynomial", {"degree": 2}),
    ("polynomial", {"degree": 3, "c": 3.0}),
    ("hla", {"factors": 2}),
    ("hla", {"factors": 3, "feature_map": "affine"}),
    ("hla", {"factors": 2, "feature_map": "relu", "projections": "orthogonal", "seed": 1}),
]
CASE_IDS = [f"{v}-{'-'.join(f'{k}={x}' for k, x in p.items())}" for v, p in CASES]


def test_variants_listed():
    assert approxlab.VARIANTS[0] == "softmax"
    for name in ("softmax", "linear", "relu", "performer", "taylor", "polynomial", "hla"):
        assert name in approxlab.VARIANTS


@settings(max_examples=12, deadline=None)
@given(
    b=st.integers(1, 2), h=st.integers(1, 2), n=st.sampled_from([1, 2, 7, 63, 64, 65, 130]),
    d=st.integers(1, 6), dv=st.integers(1, 7), causal=st.booleans(), seed=st.integers(0, 2**16),
    chunk=st.sampled_from([1, 16, 64]),
)
@pytest.mark.parametrize("variant,params", CASES, ids=CASE_IDS)
def test_efficient_equals_explicit(variant, params, b, h, n, d, dv, causal, seed, chunk):
    """float64: efficient form == explicit weights @ v to 1e-10 relative (N = 1, non-multiples of the chunk, D ≠ Dv)."""
    q, k, v = randn(b, h, n, d, seed=seed), randn(b, h, n, d, seed=seed + 1), randn(b, h, n, dv, seed=seed + 2)
    assert_efficient_equals_explicit(q, k, v, variant, causal=causal, chunk=chunk, params=params)


@pytest.mark.parametrize("pass_elements", [1, 3 * 2 * 16 * (2 * 8 + 8 * 5 // 16 + 16 + 5)])
@pytest.mark.parametrize("variant,params", [c for c in CASES if c[0] in ("linear", "relu", "taylor", "hla")],
                         ids=[i for c, i in zip(CASES, CASE_IDS) if c[0] in ("linear", "relu", "taylor", "hla")])
def test_causal_passes_carry_the_state(monkeypatch, variant, params, pass_elements):
    """Chunk-parallel causal form split into passes (of one chunk, or of 3 chunks with a padded last one):
    the state carried from pass to pass gives the explicit form again."""
    from approxlab.core import chunk as engine

    monkeypatch.setattr(engine, "_PASS_ELEMENTS", pass_elements)
    q, k, v = randn(2, 1, 101, 8, seed=4), randn(2, 1, 101, 8, seed=5), randn(2, 1, 101, 5, seed=6)
    fast = attention(q, k, v, variant, causal=True, chunk_size=16, **params)
    assert rel_err(fast, attention_weights(q, k, variant, causal=True, **params) @ v) <= 1e-10


@pytest.mark.parametrize("variant,params", CASES, ids=CASE_IDS)
def test_cross_attention_lengths(variant, params):
    """Non-causal with Nq ≠ Nk."""
    q, k, v = randn(2, 3, 37, 8), randn(2, 3, 90, 8, seed=1), randn(2, 3, 90, 5, seed=2)
    assert rel_err(attention(q, k, v, variant, **params), explicit_attention(q, k, v, variant, **params)) <= 1e-10


@pytest.mark.parametrize("variant,params", CASES, ids=CASE_IDS)
def test_weights_are_normalised_and_causal(variant, params):
    q, k = randn(1, 2, 40, 6), randn(1, 2, 40, 6, seed=1)
    w = attention_weights(q, k, variant, causal=True, **params)
    assert torch.all(w.triu(1) == 0), "a causal row put weight on a later key"
    sums = w.sum(-1)
    assert torch.allclose(sums[sums != 0], torch.ones_like(sums[sums != 0]), atol=1e-12)


def test_trig_performer_efficient_equals_explicit():
    """Trig features can give signed weights; on well-conditioned inputs both forms still agree."""
    q, k, v = randn(2, 2, 70, 8, scale=0.5), randn(2, 2, 70, 8, seed=1, scale=0.5), randn(2, 2, 70, 3, seed=2)
    for causal in (False, True):
        p = dict(kind="trig", num_features=128)
        assert rel_err(attention(q, k, v, "performer", causal=causal, **p),
                       explicit_attention(q, k, v, "performer", causal=causal, **p)) <= 1e-10


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_matches_sdpa(causal):
    q, k, v = randn(2, 3, 67, 16), randn(2, 3, 67, 16, seed=1), randn(2, 3, 67, 10, seed=2)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert rel_err(explicit_attention(q, k, v, "softmax", causal=causal), ref) <= 1e-12
    assert rel_err(attention(q, k, v, "softmax", causal=causal), ref) <= 1e-12


def test_scale_is_respected():
    q, k, v = randn(1, 1, 20, 4), randn(1, 1, 20, 4, seed=1), randn(1, 1, 20, 4, seed=2)
    ref = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert rel_err(attention(q, k, v, "softmax", scale=0.3), ref) <= 1e-12
    # taylor order 1 with scale c: κ = 1 + c q·k exactly
    w = attention_weights(q, k, "taylor", scale=0.3, order=1)
    kappa = 1 + 0.3 * q @ k.transpose(-1, -2)
    assert torch.allclose(w, kappa / kappa.sum(-1, keepdim=True), atol=1e-14)


def test_relu_row_without_mass_gives_zero():
    """A query with no positive coordinate has κ = 0 with every key: zero weights and output, no NaN."""
    q = torch.tensor([[[[-1.0, -2.0], [1.0, 0.5]]]], dtype=torch.float64)
    k = torch.tensor([[[[1.0, 1.0], [2.0, 0.0]]]], dtype=torch.float64)
    v = torch.ones(1, 1, 2, 3, dtype=torch.float64)
    out = attention(q, k, v, "relu")
    assert torch.all(out[..., 0, :] == 0) and torch.allclose(out[..., 1, :], torch.ones(3, dtype=torch.float64))
    assert torch.all(attention_weights(q, k, "relu")[..., 0, :] == 0)


def test_same_arguments_same_kernel_and_seed_matters():
    q, k, v = randn(1, 2, 30, 8), randn(1, 2, 30, 8, seed=1), randn(1, 2, 30, 8, seed=2)
    a = attention(q, k, v, "performer", seed=5)
    assert torch.equal(a, attention(q, k, v, "performer", seed=5))
    assert not torch.allclose(a, attention(q, k, v, "performer", seed=6))
    module = Attention("performer", causal=True, seed=5, num_features=32)
    assert torch.equal(module(q, k, v), attention(q, k, v, "performer", causal=True, seed=5, num_features=32))
    assert "performer" in repr(module)


def test_explicit_projection_is_used():
    q, k, v = randn(1, 1, 10, 4), randn(1, 1, 10, 4, seed=1), randn(1, 1, 10, 4, seed=2)
    proj = randn(12, 4, seed=9)
    a = attention(q, k, v, "performer", projection=proj)
    b = attention(q, k, v, "performer", projection=proj.clone())
    assert torch.equal(a, b)
    assert not torch.allclose(a, attention(q, k, v, "performer", projection=randn(12, 4, seed=10)))


def test_gradients_agree_between_forms():
    q, k, v = (randn(1, 2, 33, 5, seed=s).requires_grad_() for s in range(3))
    for variant in ("linear", "performer", "taylor", "hla"):
        for causal in (False, True):
            g_fast = torch.autograd.grad(attention(q, k, v, variant, causal=causal, chunk_size=8).sum(), (q, k, v))
            g_ref = torch.autograd.grad(explicit_attention(q, k, v, variant, causal=causal).sum(), (q, k, v))
            for a, b in zip(g_fast, g_ref):
                assert rel_err(a, b) <= 1e-9, (variant, causal)


# -------------------------------------------------------------------------------------------------
# bad input
# -------------------------------------------------------------------------------------------------
def _qkv(**over):
    t = dict(q=randn(1, 2, 8, 4), k=randn(1, 2, 8, 4, seed=1), v=randn(1, 2, 8, 3, seed=2))
    t.update(over)
    return t


BAD_INPUTS = [
    ("q", dict(q=randn(2, 8, 4)), ValueError, "q must have 4 dimensions"),
    ("k", dict(k=randn(1, 2, 8, 5)), ValueError, "k has head dim 5"),
    ("v", dict(v=randn(1, 2, 9, 3)), ValueError, "v has 9 positions"),
    ("v", dict(v=randn(1, 3, 8, 3)), ValueError, "v has batch/heads"),
    ("q", dict(q=torch.ones(1, 2, 8, 4, dtype=torch.int64)), TypeError, "q must be float16"),
    ("k", dict(k=randn(1, 2, 8, 4, dtype=torch.float32)), TypeError, "k has dtype"),
    ("q", dict(q=randn(1, 2, 8, 4).index_fill(2, torch.tensor([3]), float("nan"))), ValueError, "q contains NaN"),
    ("v", dict(v=randn(1, 2, 8, 3).index_fill(2, torch.tensor([0]), float("inf"))), ValueError, "v contains NaN or inf"),
    ("q", dict(q=[[1.0]]), TypeError, "q must be a torch.Tensor"),
]


@pytest.mark.parametrize("name,over,exc,message", BAD_INPUTS, ids=[m for *_, m in BAD_INPUTS])
@pytest.mark.parametrize("variant", ["softmax", "linear", "performer"])
def test_bad_tensors_are_refused(name, over, exc, message, variant):
    t = _qkv(**over)
    with pytest.raises(exc, match=message):
        attention(t["q"], t["k"], t["v"], variant)
    if name != "v":
        with pytest.raises(exc, match=message):
            attention_weights(t["q"], t["k"], variant)


BAD_PARAMS = [
    ("performer", dict(num_features=0), ValueError, "num_features must be >= 1"),
    ("performer", dict(num_features=2.5), TypeError, "num_features must be an integer"),
    ("performer", dict(kind="cos"), ValueError, "kind must be one of"),
    ("performer", dict(projection=torch.ones(4, 5, dtype=torch.float64)), ValueError, "projection must be"),
    ("taylor", dict(order=-1), ValueError, "order must be >= 0"),
    ("polynomial", dict(degree=0), ValueError, "degree must be >= 1"),
    ("polynomial", dict(c=-1.0), ValueError, "c must be a positive"),
    ("hla", dict(factors=0), ValueError, "factors must be >= 1"),
    ("hla", dict(feature_map="tanh"), ValueError, "feature_map must be one of"),
    ("linear", dict(order=2), TypeError, "unexpected parameter"),
    ("attention", dict(), ValueError, "variant must be one of"),
]


@pytest.mark.parametrize("variant,params,exc,message", BAD_PARAMS, ids=[m for *_, m in BAD_PARAMS])
def test_bad_parameters_are_refused(variant, params, exc, message):
    t = _qkv()
    with pytest.raises(exc, match=message):
        attention(t["q"], t["k"], t["v"], variant, **params)


def test_bad_call_options_are_refused():
    t = _qkv()
    with pytest.raises(ValueError, match="causal=True needs Nq ≤ Nk"):
        attention(t["q"], t["k"][..., :5, :], t["v"][..., :5, :], "linear", causal=True)
    with pytest.raises(ValueError, match="scale must be a positive finite number"):
        attention(t["q"], t["k"], t["v"], "linear", scale=0.0)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        attention(t["q"], t["k"], t["v"], "linear", causal=True, chunk_size=0)
    with pytest.raises(TypeError, match="causal must be a bool"):
        attention(t["q"], t["k"], t["v"], "linear", causal="yes")


# -------------------------------------------------------------------------------------------------
# half precision and large similarities
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("variant,params", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("causal", [False, True])
def test_half_precision_large_similarities_stay_finite(dtype, variant, params, causal):
    """|s| up to ~10³: fp16/bf16 inputs give finite outputs close to the same variant in float64."""
    q, k, v = randn(1, 2, 96, 16, scale=8.0), randn(1, 2, 96, 16, seed=1, scale=8.0), randn(1, 2, 96, 8, seed=2)
    out = attention(q.to(dtype), k.to(dtype), v.to(dtype), variant, causal=causal, **params)
    weights = attention_weights(q.to(dtype), k.to(dtype), variant, causal=causal, **params)
    assert out.dtype == dtype and torch.isfinite(out).all() and torch.isfinite(weights).all()
    odd = params.get("order", params.get("degree", params.get("factors", 0))) % 2
    signed = odd and (variant in ("taylor", "polynomial") or params.get("feature_map") == "affine")
    if signed:  # κ changes sign: the row sums cancel, and the weights are ill-conditioned by construction
        return
    ref = attention(q.to(dtype).double(), k.to(dtype).double(), v.to(dtype).double(), variant, causal=causal, **params)
    # the reference sees the same rounded inputs: what remains is float32 arithmetic and the final
    # rounding to the half dtype, a few units of its epsilon on the scale of v
    tol = 8 * torch.finfo(dtype).eps * v.norm(dim=-1).max()
    assert (out.double() - ref).norm(dim=-1).max() <= tol


def test_row_divergence_on_sampled_rows_equals_those_rows_of_the_full_pass():
    from approxlab.analysis.metrics import row_divergence, sample_rows

    q, k = randn(1, 2, 300, 8), randn(1, 2, 300, 8, seed=1)
    full = row_divergence(q, k, ["linear", "taylor"], causal=True)
    part = row_divergence(q, k, ["linear", "taylor"], causal=True, max_rows=80)
    rows = part["linear"]["rows"]
    assert len(rows) == 80 and rows.unique().numel() == 80 and rows.max() == 299
    assert sum(s.stop - s.start for s in sample_rows(300, 80)) == 80
    for name in ("linear", "taylor"):
        for key in ("tv", "kl", "entropy", "log_n"):
            assert torch.allclose(part[name][key], full[name][key][..., rows], atol=1e-14)


@pytest.mark.parametrize("variant", ["softmax", "performer", "hyperbolic", "taylor", "dpfp"])
@pytest.mark.parametrize("budget", [None, 2**18])
def test_weight_blocks_equal_one_call_per_block(variant, budget):
    # key features made once (feature kernels), or per block when a 256 KiB budget leaves them no room
    from approxlab.api import attention_weight_blocks

    q, k = randn(1, 2, 70, 8, dtype=torch.float64), randn(1, 2, 70, 8, seed=1, dtype=torch.float64)
    blocks = [slice(0, 16), slice(16, 40), slice(40, 70), slice(5, 5)]
    with approxlab.memory_budget(budget or approxlab.get_memory_budget()):
        got = list(attention_weight_blocks(q, k, variant, blocks, causal=True))
    assert [g.shape[-2] for g in got] == [16, 24, 30, 0]
    for rows, block in zip(blocks, got):
        assert torch.allclose(block, attention_weights(q, k, variant, causal=True, rows=rows), rtol=1e-12, atol=1e-15)
    with pytest.raises(TypeError, match="contiguous slice"):
        next(attention_weight_blocks(q, k, variant, [slice(0, 10, 2)]))


def test_key_features_kept_or_remade_per_block_give_the_same_weights():
    from approxlab.api import attention_weight_blocks, key_feature_bytes
    from approxlab.core.budget import MemoryBudgetError
    from approxlab.variants import build_kernel

    q, k = randn(2, 3, 40, 8, dtype=torch.float64), randn(2, 3, 40, 8, seed=1, dtype=torch.float64)
    blocks = [slice(0, 7), slice(7, 40)]
    width = build_kernel("performer", 8).feature_width(8)
    assert key_feature_bytes(q, k, "performer") == 2 * 3 * 40 * width * 8  # B·H·Nk rows of float64 features
    assert key_feature_bytes(q, k, "softmax") == key_feature_bytes(q, k, "taylor") == 0  # no features to keep
    kept, remade = (list(attention_weight_blocks(q, k, "performer", blocks, keep_key_features=keep))
                    for keep in (True, False))
    for a, b in zip(kept, remade):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-15)
    with approxlab.memory_budget(key_feature_bytes(q, k, "performer") - 1), pytest.raises(MemoryBudgetError,
                                                                                          match="key features"):
        next(attention_weight_blocks(q, k, "performer", blocks, keep_key_features=True))


def test_row_divergence_keeps_the_largest_key_features_that_fit_together():
    from approxlab.analysis import metrics
    from approxlab.api import key_feature_bytes

    q, k = randn(1, 2, 64, 8, dtype=torch.float64), randn(1, 2, 64, 8, seed=1, dtype=torch.float64)
    names = ["relu", "performer", "hyperbolic", "taylor"]
    size = {name: key_feature_bytes(q, k, name) for name in names}
    assert size["hyperbolic"] > size["performer"] > size["relu"] > size["taylor"] == 0
    room = size["hyperbolic"] + size["relu"]  # the largest, then what still fits: relu, not performer
    with approxlab.memory_budget(int(room / metrics.KEY_FEATURES_SHARE)):
        keep = metrics.kept_key_features(q, k, names, names, {})
        few = metrics.row_divergence(q, k, names, block=16)
    assert keep == {"hyperbolic": True, "performer": False, "relu": True, "taylor": False}
    every = metrics.row_divergence(q, k, names, block=16)  # the default budget keeps them all
    for name in names:
        for key in ("tv", "kl"):
            assert torch.allclose(few[name][key], every[name][key], rtol=1e-12, atol=1e-15)


def test_dpfp_closed_form_is_the_sum_over_shifted_coordinate_products():
    # Σ_i Σ_j x̃_j x̃_{j−i} ỹ_j ỹ_{j−i}, summed coordinate by coordinate (Schlag et al. 2021)
    from approxlab.variants import build_kernel

    x, y = randn(3, 5, dtype=torch.float64), randn(4, 5, seed=1, dtype=torch.float64)
    xt, yt = torch.cat([x.relu(), (-x).relu()], -1), torch.cat([y.relu(), (-y).relu()], -1)
    for nu in (1, 3):
        expected = sum(xt[:, j, None] * xt[:, (j - i) % 10, None] * yt[None, :, j] * yt[None, :, (j - i) % 10]
                       for i in range(1, nu + 1) for j in range(10))
        assert torch.allclose(build_kernel("dpfp", 5, nu=nu).kernel(x, y)[0], expected, rtol=1e-13)


def test_row_divergence_gives_cosformer_its_positions():
    # cosFormer reads θ_i from two appended coordinates: row_divergence appends positions 0..N−1 itself
    from approxlab.analysis.metrics import row_divergence, row_tv
    from approxlab.variants import inputs_for, with_positions

    q, k = randn(1, 2, 40, 6), randn(1, 2, 40, 6, seed=1)
    qp, kp = with_positions(q, k)
    assert inputs_for("cosformer", q, k)[0].shape[-1] == 8 and inputs_for("linear", q, k)[0] is q
    got = row_divergence(q, k, ["cosformer", "linear"], causal=True)
    ref = attention_weights(q, k, "softmax", causal=True)
    expected = row_tv(ref, attention_weights(qp, kp, "cosformer", causal=True))
    assert torch.allclose(got["cosformer"]["tv"], expected, atol=1e-14)
    # the raw inputs get the same positions appended by attention_weights itself: one answer at every entry point
    assert torch.allclose(got["cosformer"]["tv"], row_tv(ref, attention_weights(q, k, "cosformer", causal=True)),
                          atol=1e-14)
