"""The studies' fast paths hold their definitions: row divergences summed in float64 over weights in their own
dtype, and timings that make exactly the calls they say (one warm-up, then the samples)."""

import math

import torch

from approxlab.analysis.metrics import row_cross_entropy, row_divergence, row_entropy, row_kl, row_sum64, row_tv
from approxlab.experiments.timing import time_call


def _weights(seed, shape=(2, 3, 5, 40), temperature=3.0):
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(temperature * torch.randn(*shape, generator=gen), dim=-1)


def test_float32_rows_agree_with_the_float64_definitions():
    p, q = _weights(0), _weights(1)
    p64, q64 = p.double(), q.double()
    tv = row_tv(p, q)
    assert tv.dtype == torch.float64
    torch.testing.assert_close(tv, 0.5 * (p64 - q64).abs().sum(-1), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(row_entropy(p), -torch.xlogy(p64, p64).sum(-1), rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(row_cross_entropy(p, q) - row_entropy(p), row_kl(p64, q64), rtol=1e-5, atol=1e-6)


def test_row_sum64_is_the_float64_sum_bit_for_bit():
    """Converting first and summing gives the bits of sum(dtype=float64), for float32 and float64 terms,
    rows short and long (the vectorised and the scalar tail of the reduction), contiguous or not."""
    gen = torch.Generator().manual_seed(3)
    for n in (1, 7, 64, 1000, 8193):
        x = torch.randn(5, 3, n, generator=gen) * torch.logspace(-8, 8, n)
        for t in (x, x.double(), x.transpose(0, 1), x[..., ::2]):
            ref = t.sum(-1, dtype=torch.float64)
            got = row_sum64(t)
            assert got.dtype == torch.float64 and torch.equal(got, ref), (n, t.dtype, (got - ref).abs().max())


def test_cross_entropy_keeps_xlogy_conventions():
    p = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    q = torch.tensor([[0.25, 0.75, 0.0], [0.0, 1.0, 0.0], [0.5, -0.5, 1.0]])
    out = row_cross_entropy(p, q)
    # row 0: the 0·log 0 term counts 0 (not NaN); row 1: q = 0 under p > 0 is +inf; row 2: p = 0 hides q < 0
    assert math.isclose(float(out[0]), -(0.5 * math.log(0.25) + 0.5 * math.log(0.75)), rel_tol=1e-6)
    assert out[1] == math.inf
    assert math.isclose(float(out[2]), -math.log(0.5), rel_tol=1e-6)
    # a negative weight under positive mass has no logarithm: NaN, as xlogy says
    assert torch.isnan(row_cross_entropy(torch.tensor([[0.5, 0.5]]), torch.tensor([[1.5, -0.5]]))).all()


def test_row_divergence_matches_weights_converted_to_float64_first():
    gen = torch.Generator().manual_seed(3)
    q, k = torch.randn(1, 2, 48, 8, generator=gen), torch.randn(1, 2, 48, 8, generator=gen)
    from approxlab.api import attention_weights

    ref = attention_weights(q, k, "softmax").double()
    approx = attention_weights(q, k, "performer", num_features=16).double()
    got = row_divergence(q, k, "performer", params={"performer": dict(num_features=16)}, block=7)
    torch.testing.assert_close(got["tv"], 0.5 * (ref - approx).abs().sum(-1), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(got["kl"], row_kl(ref, approx), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["entropy"], -torch.xlogy(ref, ref).sum(-1), rtol=1e-6, atol=1e-9)


def test_first_call_makes_the_first_warmup_call_and_its_output_is_kept():
    calls = []

    def fn():
        calls.append("plain")
        return len(calls)

    def first(f):
        calls.append("first")
        return "from the first call"

    timing = time_call(fn, warmup=1, min_run_time=0.0, min_runs=3, first_call=first)
    assert calls[0] == "first" and calls.count("first") == 1
    assert timing.output == "from the first call"
    assert timing.runs >= 3


def test_an_adaptive_timing_makes_one_warm_up_call_and_its_samples_only():
    import time

    calls = []

    def slow():  # longer than a sample (timing.SAMPLE_S): one call per sample
        calls.append(1)
        time.sleep(0.012)

    timing = time_call(slow, warmup=1, min_run_time=0.0, min_runs=3, rel_iqr=10.0, max_run_time=1.0)
    assert timing.number == 1 and len(calls) == 1 + timing.runs
