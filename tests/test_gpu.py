"""On a CUDA device: every variant's efficient form stays finite and inside the dtype's error budget,
the float64 reference on the GPU equals the CPU one, the bridge holds beyond the fp floor, and the
study runs on the device. Skipped cleanly without CUDA (``pytest -m gpu`` selects these)."""

from __future__ import annotations

import pytest
import torch

from approxlab import attention
from approxlab.analysis import validation as val
from approxlab.experiments.studies import gpu_validation as study
from approxlab.variants import VARIANTS

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

#: max row output error / rms‖v‖ allowed for the floating-point part (a few units of u · √N headroom)
FP_BUDGET = {"float64": 1e-11, "float32": 1e-4, "bfloat16": 5e-2, "float16": 5e-3}


def gpu_inputs(n=256, heads=2, d=64, seed=0):
    return study.inputs(n, batch=1, heads=heads, head_dim=d, device="cuda", seed=seed)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_on_cuda_is_finite_within_budget_and_under_the_bridge(variant, causal):
    q, k, v = gpu_inputs()
    for row in val.validate(q, k, v, variant, causal=causal):
        assert row["nonfinite"] == 0, row["dtype"]
        assert row["err_fp_max"] < FP_BUDGET[row["dtype"]], (row["dtype"], row["err_fp_max"])
        assert row["bridge_violations_weights"] == row["bridge_violations_outputs"] == row["lemma_violations"] == 0


@pytest.mark.parametrize("variant", ["softmax", "performer", "taylor", "hla"])
def test_cuda_float64_reference_equals_cpu(variant):
    q, k, v = gpu_inputs(n=128, d=16)
    on_gpu = val.row_errors(q, k, v, variant, causal=True, dtypes=("float64",))["float64"]
    on_cpu = val.row_errors(q.cpu(), k.cpu(), v.cpu(), variant, causal=True, dtypes=("float64",))["float64"]
    for key in ("err_approx", "tv_approx", "delta", "diam"):
        torch.testing.assert_close(on_gpu[key].cpu(), on_cpu[key], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_long_causal_is_finite_on_cuda(dtype):
    q, k, v = (x.to(dtype) for x in gpu_inputs(n=8192, heads=1))
    for variant in VARIANTS:
        out = attention(q, k, v, variant, causal=True)
        assert out.dtype == dtype and bool(torch.isfinite(out).all()), variant


def test_study_on_cuda_records_the_device():
    df = study.compute("quick", lengths=[64], variants=["softmax", "linear"],
                       lesson=dict(lengths=[256], min_run_time=0.05))
    assert (df["device_type"] == "cuda").all()
    assert df["device"].iloc[0] == torch.cuda.get_device_name()
    assert df["cuda"].iloc[0] == torch.version.cuda
    assert val.problems(df[df["part"] == "numerics"]) == []
