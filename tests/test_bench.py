"""The benchmark harness measures what it says, and the fast feature maps equal their references."""

from __future__ import annotations

import math
import os
import platform
import time

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from approxlab import attention
from approxlab.experiments import bench
from approxlab.experiments.cli import main as cli_main
from approxlab.experiments.timing import allocator_state, freed_memory_kept, time_call
from approxlab.variants._monomials import monomial_features, monomial_features_reference


def randn(*shape, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype)


# ---------------------------------------------------------------------------------------------- methods
@pytest.mark.parametrize("causal", [False, True])
def test_naive_softmax_equals_sdpa(causal):
    q, k, v = randn(2, 3, 37, 16), randn(2, 3, 37, 16, seed=1), randn(2, 3, 37, 8, seed=2)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert torch.allclose(bench.naive_softmax(q, k, v, causal=causal), ref, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("method", ["identity", "sdpa", "naive_softmax", "linear", "performer", "taylor", "hla"])
def test_build_runs_the_named_method(method):
    case = bench.Case(method, 48, 1, 2, 16, True, "float32")
    out = bench.build(case, "cpu")()
    q, k, v = bench.make_inputs(case, "cpu")
    if method == "identity":
        expected = v
    elif method in ("sdpa", "naive_softmax"):
        expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        expected = attention(q, k, v, method, causal=True)
    assert out.shape == v.shape
    assert torch.allclose(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_compiled_method_computes_the_same_attention():
    """<variant>_compiled compiles the engine after the input checks; same output as the eager call."""
    case = bench.Case("linear_compiled", 40, 1, 2, 16, True, "float32")
    q, k, v = bench.make_inputs(case, "cpu")
    out = bench.build(case, "cpu")()
    torch.testing.assert_close(out, attention(q, k, v, "linear", causal=True), rtol=1e-5, atol=1e-6)


def test_unknown_method_and_missing_cuda_are_named():
    with pytest.raises(ValueError, match="method"):
        bench.check_method("flash")
    with pytest.raises(ValueError, match="method"):
        bench.check_method("sdpa_triton")  # only kernel variants have a fused causal form
    assert bench.check_method("linear_triton") == "linear_triton"
    assert bench.split_method("linear_compiled") == ("linear", "_compiled")
    with pytest.raises(ValueError, match="method"):
        bench.check_method("identity_compiled")
    with pytest.raises(ValueError, match="dtypes"):
        bench.scaling_cases(["sdpa"], [8], dtypes=("int8",))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda"):
            bench.check_device("cuda")


# ---------------------------------------------------------------------------------------------- measurement
def test_time_call_sees_a_known_delay():
    timing = time_call(lambda: time.sleep(0.004), min_run_time=0.02, min_runs=5)
    median, iqr, runs = timing.median_s, timing.iqr_s, timing.runs
    assert runs >= 5 and iqr >= 0
    assert 0.004 <= median < 0.2  # sleep never returns early; the upper bound allows a loaded machine


def _resident_bytes() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or not os.path.exists("/proc/self/statm"),
                    reason="mallopt and /proc are glibc / Linux")
def test_freed_memory_is_kept_while_timing_and_returned_after():
    size = 256 * 2**20
    with freed_memory_kept():
        start = _resident_bytes()
        block = torch.ones(size // 4)  # touched: resident
        assert float(block[-1]) == 1.0
        del block
        kept = _resident_bytes() - start  # freed, but kept by the allocator for the next call
    returned = _resident_bytes() - start  # the defaults are back and malloc_trim gave it to the OS
    assert kept > 0.8 * size and returned < 0.25 * size
    assert allocator_state().startswith("glibc, freed memory kept") and allocator_state(False) == "system default"
    df = bench.run([bench.Case("identity", 16, 1, 1, 8)], min_run_time=0.001, progress=False, keep_freed=False)
    assert df["cpu_allocator"].iloc[0] == "system default"
    assert "cpu_allocator=glibc" in bench.banner("cpu")


def test_large_naive_matrices_are_timed_with_the_system_allocator():
    # kept freed memory fragments glibc's heap across calls (several times one call's peak): a naive
    # softmax case whose N×N matrices take more than KEEP_FREED_SHARE of the budget runs without it
    case = bench.Case("naive_softmax", 64, 1, 1, 8)
    size = bench.naive_bytes(case)
    assert size == 2 * 64 * 64 * 4
    assert not bench.keeps_freed(case, memory_budget=size)  # runs (within budget), allocator as the system has it
    assert bench.keeps_freed(case, memory_budget=size / bench.KEEP_FREED_SHARE)
    assert bench.keeps_freed(bench.Case("linear", 64, 1, 1, 8), memory_budget=1)  # O(N) memory per row
    big, small = (bench.run([case], min_run_time=0.001, progress=False, memory_budget=budget)
                  for budget in (size / bench.KEEP_FREED_SHARE, size))
    assert small["status"].iloc[0] == big["status"].iloc[0] == "ok"
    assert small["cpu_allocator"].iloc[0] == "system default"
    assert big["cpu_allocator"].iloc[0] == allocator_state()


def test_peak_memory_counts_allocations_on_cpu():
    size = 4 * 2**20  # bytes
    assert bench.peak_memory(lambda: torch.empty(size // 4, dtype=torch.float32).fill_(1.0), "cpu") >= size
    two = bench.peak_memory(lambda: torch.ones(size // 4) + torch.ones(size // 4), "cpu")
    assert 3 * size <= two <= 3.5 * size  # two operands and the sum are alive together
    q, k, v = randn(1, 2, 256, 16, dtype=torch.float32), randn(1, 2, 256, 16, dtype=torch.float32), randn(1, 2, 256, 16, dtype=torch.float32)
    nxn = 2 * 256 * 256 * 4
    assert bench.peak_memory(lambda: bench.naive_softmax(q, k, v), "cpu") >= 2 * nxn  # logits and weights
    assert bench.peak_memory(lambda: attention(q, k, v, "linear"), "cpu") < nxn


def test_run_records_environment_and_skips_with_a_reason():
    cases = bench.scaling_cases(["identity", "sdpa", "naive_softmax", "linear", "fla_linear"], [64, 128],
                                causal=(False,), max_batch_heads=2)
    df = bench.run(cases, min_run_time=0.005, min_runs=3, memory_budget=2 * 2 * 64 * 64 * 4, progress=False)
    for column in ("device", "torch", "threads", "sdpa_backend", "time_ms", "iqr_ms", "peak_mem_mb", "status"):
        assert column in df
    naive = df[df["method"] == "naive_softmax"].set_index("n")["status"]
    assert naive[64] == "ok" and naive[128].startswith("skipped: N×N")
    fla = df[df["method"] == "fla_linear"]["status"]
    assert fla.str.startswith("skipped").all()  # no triton/GPU here, or non-causal: never a fake number
    fused = bench.run([bench.Case("linear_triton", 64, 1, 1, 16)], progress=False)["status"]
    assert fused.iloc[0].startswith("skipped: NotImplementedError")  # the fused kernel is the causal form
    ok = df[df["status"] == "ok"]
    assert (ok["time_ms"] > 0).all() and (ok["runs"] >= 3).all()
    assert ok["tflops"].notna().eq(ok["method"].isin(["sdpa", "naive_softmax"])).all()


def test_run_records_arithmetic_rate_and_competing_load():
    """gflops = method_flops / time; matmul_fraction against the same run's GEMM rate; other_cpu_load measured
    while each case runs, with a warning above the limit; threads set for the run."""
    before = torch.get_num_threads()
    try:
        with pytest.warns(UserWarning, match="other processes kept"):
            df = bench.run([bench.Case("linear", 256, 1, 2, 16), bench.Case("sdpa", 256, 1, 2, 16)],
                           min_run_time=0.01, progress=False, threads=1, load_limit=-1.0)
        assert (df["threads"] == 1).all()
    finally:
        torch.set_num_threads(before)
    assert (df["matmul_gflops"] > 0).all() and (df["other_cpu_load"] >= 0).all()
    for _, row in df.iterrows():
        flops = bench.method_flops(bench.Case(row["method"], 256, 1, 2, 16))
        assert row["gflops"] == pytest.approx(flops / (row["time_ms"] / 1e3) / 1e9, rel=1e-9)
        assert row["matmul_fraction"] == pytest.approx(row["gflops"] / row["matmul_gflops"], rel=1e-12)


def test_method_flops_count_the_gemms():
    bh, n, d = 8, 1024, 64
    assert bench.method_flops(bench.Case("linear", n, 1, bh, d)) == 4 * bh * n * d * d
    causal = bench.method_flops(bench.Case("linear", n, 1, bh, d, causal=True))
    assert causal == 4 * bh * n * d * d + 2 * bh * n * 128 * (d + d)
    assert bench.method_flops(bench.Case("taylor", n, 1, bh, d, params={"order": 2})) == 4 * bh * n * 2145 * d
    assert bench.method_flops(bench.Case("sdpa", n, 1, bh, d, causal=True)) == 2 * bh * n * n * d
    assert bench.method_flops(bench.Case("identity", n, 1, bh, d)) == 0


def test_other_cpu_load_sees_a_busy_process():
    import subprocess
    import sys

    from approxlab.experiments import timing

    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.3)
        assert timing.other_cpu_load(0.5) > 0.3
        with timing.others_busy() as load:  # a block of this process's own work: the other process still shows
            end = time.perf_counter() + 0.4
            while time.perf_counter() < end:
                pass
        assert load.value > 0.3
    finally:
        busy.kill()
        busy.wait()


def test_run_stops_a_method_after_a_slow_call():
    cases = [bench.Case("sdpa", n, 1, 1, 16) for n in (32, 64)]
    df = bench.run(cases, min_run_time=0.001, max_call_s=0.0, progress=False)
    assert list(df["status"]) == ["ok", "skipped: over 0 s at N=32"]


def test_batch_heads_keep_tokens_under_the_cap():
    assert bench.batch_heads(128, max_batch_heads=8, max_tokens=2**16) == 8
    assert bench.batch_heads(65536, max_batch_heads=8, max_tokens=2**17) == 2
    assert bench.batch_heads(2**20, max_batch_heads=8, max_tokens=2**17) == 1


# ---------------------------------------------------------------------------------------------- summaries
def _frame(method_times, ref_times, ns):
    rows = [dict(protocol="scaling", method="sdpa", n=n, causal=False, dtype="float32", time_ms=t, status="ok",
                 batch=1, heads=1, head_dim=64) for n, t in zip(ns, ref_times)]
    rows += [dict(protocol="scaling", method="linear", n=n, causal=False, dtype="float32", time_ms=t, status="ok",
                  batch=1, heads=1, head_dim=64) for n, t in zip(ns, method_times)]
    return pd.DataFrame(rows)


def test_crossover_interpolates_in_log_log():
    # ratio 2 at N = 100 and 1/2 at N = 400: log-linear in log N crosses 1 at N = 200
    cross = bench.crossover(_frame([2.0, 2.0], [1.0, 4.0], [100, 400]))
    row = cross.iloc[0]
    assert row["n_first"] == 400 and math.isclose(row["n_interp"], 200.0, rel_tol=1e-12)
    never = bench.crossover(_frame([2.0, 8.0], [1.0, 4.0], [100, 400])).iloc[0]
    assert np.isnan(never["n_first"]) and np.isnan(never["n_interp"]) and never["ratio_at_max_n"] == 2.0


def test_speedup_pairs_equal_shapes():
    s = bench.speedup(_frame([1.0, 2.0], [3.0, 8.0], [100, 400]), "sdpa", "linear")
    assert list(s["ratio"]) == [3.0, 4.0]


# ---------------------------------------------------------------------------------------------- peer
def test_performer_pytorch_agrees_given_the_same_projection():
    """Same features, ε = 0: equal to rounding; its default ε = 1e-4 moves the output measurably."""
    assert bench.peer_agreement(128, 32, 64, eps=0.0) <= 1e-12
    assert bench.peer_agreement(128, 32, 64, eps=0.0, causal=True) <= 1e-12
    assert bench.peer_agreement(128, 32, 64, eps=1e-4) > 1e-6


# ---------------------------------------------------------------------------------------------- CLI and GPU
def test_cli_bench_writes_csv_with_banner(tmp_path, capsys):
    csv = tmp_path / "b.csv"
    cli_main(["bench", "--methods", "identity", "sdpa", "linear", "--lengths", "32", "64", "--causal", "yes",
              "--max-batch-heads", "2", "--min-run-time", "0.005", "--csv", str(csv)])
    printed = capsys.readouterr().out
    assert "torch=" in printed and "sdpa_backend=" in printed and "crossover" in printed
    df = pd.read_csv(csv)
    assert set(df["method"]) == {"identity", "sdpa", "linear"} and df["causal"].all()
    assert (df["status"] == "ok").all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_path_measures_time_memory_and_bandwidth():
    cases = bench.scaling_cases(["identity", "sdpa", "linear", "performer"], [256], dtypes=("float32", "bfloat16"))
    df = bench.run(cases, "cuda", min_run_time=0.01, progress=False)
    assert (df["status"] == "ok").all() and (df["device_type"] == "cuda").all()
    assert (df["peak_mem_mb"] > 0).all() and (df["achieved_gbps"] > 0).all()


# ---------------------------------------------------------------------------------------------- fast paths
@pytest.mark.parametrize("coefficients", [[1, 1, 0.5], [0, 0, 1], [1, -2, 0, 0.3], [2.0], [1, 1, 0.5, 1 / 6]])
@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (1, 1, 1, 4), (6,), (1, 2, 63, 60)])
def test_fast_monomial_features_equal_the_reference(coefficients, shape):
    """Same feature values (up to order, bit for bit), same kernel, same result with autograd on."""
    if shape[-1] == 60 and len(coefficients) > 3:
        pytest.skip("feature dimension too large for a unit test")
    x, y = randn(*shape), randn(*shape, seed=1)
    for signed in (False, True):
        ref = monomial_features_reference(x, coefficients, signed=signed)
        fast = monomial_features(x, coefficients, signed=signed)
        assert fast.shape == ref.shape
        assert torch.equal(fast.sort(-1).values, ref.sort(-1).values)
        kernel_ref = (ref * monomial_features_reference(y, coefficients)).sum(-1)
        kernel_fast = (fast * monomial_features(y, coefficients)).sum(-1)
        assert torch.allclose(kernel_fast, kernel_ref, rtol=1e-13, atol=1e-13)
        with_grad = monomial_features(x.clone().requires_grad_(), coefficients, signed=signed)
        assert torch.equal(with_grad.detach(), fast)


def test_row_divergence_blocks_do_not_change_results():
    from approxlab.analysis.metrics import row_divergence

    q, k = randn(1, 4, 300, 16, dtype=torch.float32), randn(1, 4, 300, 16, seed=1, dtype=torch.float32)
    names = ["linear", "performer", "taylor"]
    for causal in (False, True):
        whole = row_divergence(q, k, names, causal=causal, block=300)
        for block in (None, 7):
            parts = row_divergence(q, k, names, causal=causal, block=block)
            for name in names:
                for key in ("tv", "kl", "entropy"):
                    assert torch.allclose(parts[name][key], whole[name][key], rtol=1e-5, atol=1e-6), (name, key, block)


def test_speed_study_runs_without_the_peer_installed(monkeypatch):
    """The main job (no dev extra) must not need performer-pytorch: its agreement columns become NaN."""
    from approxlab.experiments.studies import speed_vs_length

    with_peer = speed_vs_length.peer_columns()
    assert with_peer["peer_rel_diff_eps0"] <= 1e-5 and with_peer["peer_rel_diff_eps1e-4"] > 1e-3
    monkeypatch.setattr(speed_vs_length, "_has_peer", lambda: False)
    assert all(math.isnan(x) for x in speed_vs_length.peer_columns().values())


def test_causal_chunk_table_is_the_fastest_measured():
    """engine.CAUSAL_CHUNKS against its measurement (figures/causal_chunk.csv, `approxlab bench --chunk-sizes`):
    for every feature width measured, the engine's chunk length is within 10 % of the fastest one."""
    from pathlib import Path

    import pandas as pd

    from approxlab.core import chunk as engine
    from approxlab.variants import build_kernel

    df = pd.read_csv(Path(__file__).resolve().parent.parent / "figures" / "causal_chunk.csv")
    assert set(df["chunk_size"]) >= {32, 64, 128, 256, 512} and (df["status"] == "ok").all()
    for method, rows in df.groupby("method"):
        width = build_kernel(method, int(rows["head_dim"].iloc[0])).feature_width(int(rows["head_dim"].iloc[0]))
        times = rows.set_index("chunk_size")["time_ms"]
        assert times[engine.causal_chunk(width)] <= 1.1 * times.min(), (method, width, times.to_dict())
    assert engine.causal_chunk(64) == 128 and engine.causal_chunk(4096) == 64


def test_chunk_cases_repeat_kernel_variants_only_and_set_the_flops():
    from approxlab.experiments import bench

    cases = bench.scaling_cases(["linear", "sdpa"], [256], causal=(True,))
    swept = bench.chunk_cases(cases, [32, 64])
    assert [(c.method, c.chunk_size) for c in swept] == [("linear", 32), ("linear", 64), ("sdpa", None)]
    f32, f64 = (bench.method_flops(c) for c in swept[:2])
    # the causal C×C blocks: 2·B·H·N·C·(F + Dv), F = Dv = 64, B·H = 8
    assert f64 - f32 == 2 * 8 * 256 * (64 - 32) * 128
    with pytest.raises(ValueError, match="chunk size"):
        bench.chunk_cases(cases, [0])
    df = bench.run(swept[:2], min_run_time=0.01, progress=False)
    assert list(df["chunk_size"]) == [32, 64] and (df["status"] == "ok").all()


def test_linear_ceiling_times_the_parts_of_linear_attention():
    from approxlab.experiments.bench import linear_ceiling

    df = linear_ceiling(n=256, batch_heads=2, head_dim=8, min_run_time=0.01).set_index("part")
    assert list(df.index) == ["square_gemm", "state_gemms", "elu_features", "linear"]
    assert (df["time_ms"] > 0).all() and df.loc["square_gemm", "fraction"] == 1.0
    flops = 4 * 2 * 256 * 8 * 8
    assert df.loc["state_gemms", "gflops"] == pytest.approx(flops / df.loc["state_gemms", "time_ms"] / 1e6)
    assert df.loc["elu_features", "gflops"] == 0 and (df["n"] == 256).all()


@pytest.mark.parametrize("method,causal", [("linear", True), ("performer", False), ("sdpa", False)])
def test_peak_memory_from_raw_profiler_records_bounds_the_function_events(method, causal):
    from torch.profiler import ProfilerActivity, profile

    from approxlab.experiments import bench

    fn = bench.build(bench.Case(method, 256, 1, 2, 16, causal), "cpu")
    fn()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()

    def peak(events):
        current = top = 0
        for _, nbytes in sorted(events):
            current += nbytes
            top = max(top, current)
        return top

    raw, tree = bench.cpu_memory_events(prof), bench.cpu_memory_events(prof, raw=False)
    # one record per allocation/free: the running sum peaks at or above the per-op net sums, and below the
    # total allocated
    assert peak(raw) >= peak(tree) > 0
    assert peak(raw) <= sum(b for _, b in raw if b > 0)
    assert all(isinstance(b, int) and b != 0 for _, b in raw)


def test_others_busy_does_not_count_this_process(monkeypatch):
    """Load-independent: /proc's counters are replaced by a script in which this process does all the machine's
    work (150 jiffies of 150 busy), then other processes add 50 jiffies: the load is the others' share alone."""
    from approxlab.experiments import timing

    hz = os.sysconf("SC_CLK_TCK")
    readings = iter([(1000, 200), (1000 + 150, 200 + 150), (2000, 400), (2000 + 150 + 50, 400 + 150)])
    monkeypatch.setattr(timing, "_busy_jiffies", lambda: next(readings))
    monkeypatch.setattr(timing.time, "perf_counter", iter([0.0, 150 / hz, 10.0, 10.0 + 200 / hz]).__next__)
    with timing.others_busy(min_window=0.0) as own_work_only:
        pass
    with timing.others_busy(min_window=0.0) as with_others:
        pass
    assert own_work_only.value == 0.0
    assert with_others.value == pytest.approx(50 / 200)


def test_a_short_block_reads_back_to_an_earlier_reading_instead_of_sleeping(monkeypatch):
    """Scripted /proc counters and clock: a 0.05 s block 0.3 s after a reading is read over those 0.3 s (no sleep);
    with no reading in reach (the last one 10 windows back) it sleeps to the full window."""
    from approxlab.experiments import timing

    hz = os.sysconf("SC_CLK_TCK")
    monkeypatch.setattr(timing, "_READINGS", [(100.0, 1000, 500)])
    readings = iter([(1000 + 20, 500 + 5), (1000 + 20 + hz // 10, 500 + 10)])
    monkeypatch.setattr(timing, "_busy_jiffies", lambda: next(readings))
    clock = iter([100.25, 100.3])
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    slept = []
    monkeypatch.setattr(timing.time, "sleep", slept.append)
    with timing.others_busy(min_window=0.2) as load:
        pass
    assert slept == []
    others = (20 + hz // 10) - 10  # busy jiffies since the reading at 100.0, less this process's 10
    assert load.value == pytest.approx(others / hz / 0.3)
    monkeypatch.setattr(timing, "_READINGS", [(98.0, 0, 0)])
    readings = iter([(0, 0), (0, 0)])
    clock = iter([100.25, 100.3])
    with timing.others_busy(min_window=0.2) as load:
        pass
    assert slept == [pytest.approx(0.15)] and load.value == 0.0


def test_noncausal_block_is_within_ten_percent_of_the_fastest_measured():
    """engine.noncausal_block against figures/noncausal_blocks.csv (`approxlab bench --causal no --chunk-sizes ...`)."""
    from pathlib import Path

    import pandas as pd

    from approxlab.core import chunk as engine
    from approxlab.variants import build_kernel

    df = pd.read_csv(Path(__file__).resolve().parent.parent / "figures" / "noncausal_blocks.csv")
    assert (df["status"] == "ok").all() and not df["causal"].any()
    for method, rows in df.groupby("method"):
        d = int(rows["head_dim"].iloc[0])
        chosen = engine.noncausal_block(build_kernel(method, d).feature_width(d), int(rows["heads"].iloc[0]))
        times = rows.set_index("chunk_size")["time_ms"]
        assert chosen in times.index and times[chosen] <= 1.1 * times.min(), (method, chosen, times.to_dict())
