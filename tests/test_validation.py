"""The validation path on CPU: blocked float64 references equal the unblocked explicit forms, δ and
diam equal their definitions, the error decomposition adds up, the bridge check and the non-finite
count can fail, and the study / driver / redraw pipeline runs end to end."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from approxlab import attention, explicit_attention
from approxlab.analysis import validation as val
from approxlab.api import attention_weights
from approxlab.experiments import figures
from approxlab.analysis.metrics import row_tv
from approxlab.analysis.theory import value_diameter
from approxlab.experiments.studies import gpu_validation as study
from approxlab.variants import VARIANTS, build_kernel

SMALL = {"performer": {"num_features": 12}}


def qkv(n=37, d=6, heads=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(1, heads, n, d, generator=gen, dtype=torch.float64) for _ in range(3))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
def test_blocked_reference_equals_explicit_forms(variant, causal):
    """float64 per-row terms, built one query row at a time, equal the unblocked explicit/efficient forms."""
    q, k, v = qkv(n=23, heads=1)
    params = SMALL.get(variant, {})
    r = val.row_errors(q, k, v, variant, causal=causal, dtypes=("float64", "float32"), params=params,
                       block_elements=4 * 23)  # blocks of 4 rows, the last one short
    rms = v.pow(2).sum(-1).mean(-1, keepdim=True).sqrt()
    o_soft = explicit_attention(q, k, v, "softmax", causal=causal)
    o_var = explicit_attention(q, k, v, variant, causal=causal, **params)
    expected_approx = (o_var - o_soft).norm(dim=-1) / rms
    torch.testing.assert_close(r["float64"]["err_approx"], expected_approx, rtol=1e-9, atol=1e-13)
    expected_tv = row_tv(attention_weights(q, k, variant, causal=causal, **params),
                         attention_weights(q, k, "softmax", causal=causal))
    torch.testing.assert_close(r["float64"]["tv_approx"], expected_tv, rtol=1e-9, atol=1e-13)
    # float64 efficient vs explicit: the engine's own error, ~1e-15
    assert r["float64"]["err_fp"].max() < 1e-11
    # float32 efficient output, recomputed independently
    o32 = attention(*(x.float() for x in (q, k, v)), variant, causal=causal, **params).double()
    torch.testing.assert_close(r["float32"]["err_fp"], (o32 - o_var).norm(dim=-1) / rms, rtol=1e-6, atol=1e-12)
    # a single big block gives the same numbers (float32 explicit weights: up to float32 rounding,
    # since BLAS may sum a 1-row block in another order)
    big = val.row_errors(q, k, v, variant, causal=causal, dtypes=("float32",), params=params)
    for key in val.KEYS:
        loose = key in ("tv_total", "tv_fp")
        torch.testing.assert_close(big["float32"][key], r["float32"][key], rtol=1e-9, atol=1e-6 if loose else 1e-14)


@pytest.mark.parametrize("causal", [False, True])
def test_delta_is_the_log_uniform_error_of_the_similarity_function(causal):
    """taylor: δ_i from the weights = ½ range_j (log f(s_ij) − s_ij), computed here in numpy from s."""
    q, k, v = qkv(n=20, d=5)
    r = val.row_errors(q, k, v, "taylor", causal=causal, dtypes=("float64",))
    s = ((q @ k.transpose(-1, -2)) / math.sqrt(5)).numpy()
    g = np.log(build_kernel("taylor", 5).similarity_function(s)) - s
    if causal:
        keep = np.tril(np.ones((20, 20), dtype=bool))
        hi, lo = np.where(keep, g, -np.inf).max(-1), np.where(keep, g, np.inf).min(-1)
    else:
        hi, lo = g.max(-1), g.min(-1)
    np.testing.assert_allclose(r["float64"]["delta"].numpy(), 0.5 * (hi - lo), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(r["float64"]["bound"].numpy(), np.tanh(0.25 * (hi - lo)), rtol=1e-10, atol=1e-13)


def test_delta_agrees_with_theory_module_where_present():
    theory = pytest.importorskip("approxlab.analysis.theory")
    if not hasattr(theory, "row_deltas"):
        pytest.skip("approxlab.analysis.theory has no row_deltas")
    q, k, v = qkv(n=24, d=4)
    for variant in ("linear", "performer", "hla"):
        params = SMALL.get(variant, {})
        mine = val.row_errors(q, k, v, variant, causal=True, dtypes=("float64",), params=params)["float64"]["delta"]
        theirs = theory.row_deltas(q, k, variant, causal=True, **params)
        torch.testing.assert_close(mine, theirs.double(), rtol=1e-8, atol=1e-10)


def test_delta_zero_and_negative_weights():
    """A zero weight gives δ = inf (bound 1); a negative one gives NaN (bridge does not apply); masked
    keys are ignored."""
    s = torch.zeros(3, 3, dtype=torch.float64)
    w = torch.tensor([[0.5, 0.5, 0.0], [0.7, -0.2, 0.5], [1.0, 0.0, -1.0]], dtype=torch.float64)
    delta = val.log_uniform_delta(w, s)
    assert math.isinf(delta[0]) and math.isnan(delta[1]) and math.isnan(delta[2])
    mask = torch.tensor([[True, True, False], [True, False, False], [True, False, False]])
    torch.testing.assert_close(val.log_uniform_delta(w, s, mask), torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("causal", [False, True])
def test_value_diameter_against_brute_force(causal):
    _, _, v = qkv(n=17, d=3)
    got = value_diameter(v, causal=causal, block_rows=4)
    dist = torch.cdist(v, v)
    if causal:
        want = torch.stack([dist[..., : i + 1, : i + 1].amax((-2, -1)) for i in range(17)], -1)
    else:
        want = dist.amax((-2, -1)).unsqueeze(-1)
    torch.testing.assert_close(got, want)


def test_decomposition_adds_up_and_orders_the_dtypes():
    """total ≤ approx + fp and fp ≤ fp_input + fp_arith row by row (triangle inequality); the fp error
    grows with the unit roundoff: float64 < float32 < float16 < bfloat16."""
    q, k, v = qkv(n=64, d=8)
    r = val.row_errors(q, k, v, "hla", causal=True)
    for t, d in r.items():
        assert bool((d["err_total"] <= d["err_approx"] + d["err_fp"] + 1e-12).all()), t
        assert bool((d["err_fp"] <= d["err_fp_input"] + d["err_fp_arith"] + 1e-12).all()), t
        assert bool((d["tv_total"] <= d["tv_approx"] + d["tv_fp"] + 1e-12).all()), t
        assert d["err_fp"].mean() < 4 * val.UNIT_ROUNDOFF[t] * 64, t  # well inside a few ulps · √N
    means = [r[t]["err_fp"].mean().item() for t in ("float64", "float32", "float16", "bfloat16")]
    assert means == sorted(means) and means[1] > 1e3 * means[0]
    assert r["float64"]["err_fp_input"].abs().max() == 0  # float64 inputs are not rounded


def test_bridge_check_holds_on_real_rows_and_can_fail():
    q, k, v = qkv(n=48, d=8)
    r = val.row_errors(q, k, v, "performer", causal=False, dtypes=("bfloat16",), params=SMALL["performer"])
    counts = val.bridge_counts(r["bfloat16"])
    assert counts["bridge_rows"] == 2 * 48
    assert counts["bridge_violations_weights"] == counts["bridge_violations_outputs"] == counts["lemma_violations"] == 0
    assert 0 < counts["bridge_ratio_max"] <= 1
    # push some rows above bound + floor: the counts must see it
    bad = dict(r["bfloat16"])
    bad["tv_total"] = bad["bound"] + bad["tv_fp"] + 1e-6
    bad["err_total"] = bad["bound"] * bad["diam"] + bad["err_fp"] + 1e-6
    bad["tv_approx"] = bad["bound"] + 1e-6
    counts = val.bridge_counts(bad)
    assert counts["bridge_violations_weights"] == counts["bridge_violations_outputs"] == 96
    assert counts["lemma_violations"] == 96


def test_nonfinite_outputs_are_counted_and_reported(monkeypatch):
    q, k, v = qkv(n=16, d=4)

    def broken(*args, **kwargs):
        out = attention(*args, **kwargs)
        out[..., 3, 0] = float("nan")
        return out

    monkeypatch.setattr(val, "attention", broken)
    rows = val.validate(q, k, v, "linear", causal=False, dtypes=("float32",))
    assert rows[0]["nonfinite"] == 2 + 2  # two NaN entries (one per head) + two rows of NaN terms
    found = val.problems(pd.DataFrame(rows))
    assert found and "nonfinite" in found[0] and "linear/float32" in found[0]


@pytest.mark.parametrize("call,exc,message", [
    (lambda q, k, v: val.row_errors(q, k, v, "nope", causal=False), ValueError, "variant must be one of"),
    (lambda q, k, v: val.row_errors(q, k, v, "linear", causal=1), TypeError, "causal must be a bool"),
    (lambda q, k, v: val.row_errors(q, k, v, "linear", causal=False, dtypes=("float8",)), ValueError, "dtypes"),
    (lambda q, k, v: val.row_errors(q, k, v, "linear", causal=False, dtypes=()), ValueError, "dtypes"),
    (lambda q, k, v: val.row_errors(q.float(), k.float(), v.float(), "linear", causal=False), TypeError, "float64"),
    (lambda q, k, v: val.row_errors(q, k, v, "linear", causal=False, block_elements=0), ValueError, "block_elements"),
    (lambda q, k, v: study.compute("medium"), ValueError, "profile"),
    (lambda q, k, v: study.resolve_device("tpu"), ValueError, "device"),
])
def test_bad_input_is_refused_by_name(call, exc, message):
    q, k, v = qkv(n=8, d=4)
    with pytest.raises(exc, match=message):
        call(q, k, v)


def test_study_runs_end_to_end_and_redraws_from_csv(tmp_path, monkeypatch):
    """A tiny grid on CPU: every dtype × causal × N row present, device recorded, no problems;
    the lesson rows come from lesson_exercise on the same device; ``make`` draws it back from the
    CSV where CUDA is missing (REQUIRES = 'cuda') without recomputing."""
    df = study.compute("quick", device="cpu", lengths=[16], variants=["softmax", "relu", "taylor"],
                       lesson=dict(lengths=[16], min_run_time=0.01))
    num = df[df["part"] == "numerics"]
    assert len(num) == 3 * 4 * 2
    assert set(map(tuple, num[["variant", "dtype"]].drop_duplicates().values)) == {
        (v, t) for v in ("softmax", "relu", "taylor") for t in val.DTYPES}
    assert (df["device_type"] == "cpu").all() and df["torch"].iloc[0] == torch.__version__
    assert set(df.loc[df["part"] == "lesson", "variant"]) == set(VARIANTS)
    assert val.problems(num) == []
    assert (num.loc[num["variant"] == "softmax", "bridge_rows"] == 0).all()
    assert (num.loc[num["variant"] != "softmax", "bridge_rows"] == num.loc[num["variant"] != "softmax", "rows"]).all()
    df.to_csv(tmp_path / "gpu_validation.csv", index=False)
    saved = {}
    monkeypatch.setattr(figures, "save_figure", lambda fig, data, name, outdir: saved.update(fig=fig, data=data) or [])
    if torch.cuda.is_available():
        fig = study.draw(df)
    else:
        monkeypatch.setattr(study, "compute", lambda **kw: pytest.fail("must not recompute without CUDA"))
        figures.make("gpu_validation", "quick", tmp_path)
        fig = saved["fig"]
        assert len(saved["data"]) == len(df)
    assert len(fig.axes) >= 8
    assert "0 beyond fp floor" in fig.axes[6].get_title()


def test_runner_refuses_unknown_or_missing_device(tmp_path):
    with pytest.raises(ValueError, match="device"):
        figures.make("gpu_validation", "quick", tmp_path, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            figures.make("gpu_validation", "quick", tmp_path, device="cuda")


def test_bound_is_tanh_half_delta_of_each_row():
    q, k, v = qkv(n=40, d=8)
    r = val.row_errors(q, k, v, "taylor", causal=True, dtypes=("float64",))["float64"]
    finite = torch.isfinite(r["delta"])
    assert finite.any()
    torch.testing.assert_close(r["bound"][finite], torch.tanh(r["delta"][finite] / 2))
