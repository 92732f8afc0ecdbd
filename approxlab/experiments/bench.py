"""Fair speed benchmarks: every variant's efficient form against the fastest exact attention.

    run(cases, device="cpu")  -> tidy DataFrame, one row per (method, N, causal, dtype)

Methods (``METHODS``):
    identity        returns a copy of V: the floor no attention can beat (reads V, writes O)
    sdpa            torch.nn.functional.scaled_dot_product_attention, best backend available
    naive_softmax   softmax(Q Kᵀ · scale) V with the N×N matrix in memory (what the blog timed)
    <variant>       approxlab.attention(q, k, v, variant): each kernel variant's efficient form (a
                    registered name or a kernel object works too; see approxlab.variants)
    <variant>_compiled  the same under torch.compile
    <variant>_triton    the causal form as one fused Triton kernel (``backend="triton"``; CUDA)
    performer_pytorch   performer-pytorch's FastAttention at the same number of features m
    fla_linear      flash-linear-attention's chunk kernel on elu+1 features (CUDA, when importable)

Every row records: median forward time and IQR (torch.utils.benchmark after a warm-up; the Timer
synchronises CUDA), the number of timed runs, peak memory allocated during one call (CPU: the
allocator events seen by ``torch.profiler``; CUDA: ``max_memory_allocated``), the device, library
versions, threads, the SDPA backend chosen, and the CPUs other processes kept busy while the case was
measured (``other_cpu_load``; a warning when they compete, since contended timings are silently slow).
Against the device's limits:
    exact attention: TFLOP/s = 4·B·H·N²·D (halved when causal) / time
    every method:    GFLOP/s of its arithmetic (:func:`method_flops`) and its fraction of the GEMM rate
                     measured in the same run (``matmul_gflops``);
                     achieved bandwidth = bytes(q, k, v, o) / time  and, on a known GPU, % of HBM peak.
"""

from __future__ import annotations

import os
from functools import partial
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Iterable, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..api import attention
from ..core import chunk, naive
from ..core.checks import check_int, resolve_scale
from ..api import unchecked_kernel_attention
from .environment import describe
from ..analysis.inputs import gaussian_qkv
from .timing import allocator_state, matmul_rate, others_busy, time_call
from ..variants import KERNELS, build_kernel, check_variant, is_kernel, kernel_name

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}
BASELINES = ("identity", "sdpa", "naive_softmax")
PEERS = ("performer_pytorch", "fla_linear")
METHODS = BASELINES + tuple(KERNELS) + PEERS
SUFFIXES = ("_compiled", "_triton")
#: HBM peak (bytes/s) of GPUs whose name contains the key, for the % of roofline column
HBM_PEAK = {"H100 PCIe": 2.0e12, "H100": 3.35e12, "H200": 4.8e12, "A100-SXM4-80GB": 2.04e12, "A100": 1.555e12,
            "L4": 0.3e12, "T4": 0.32e12, "A10G": 0.6e12}


@dataclass(frozen=True)
class Case:
    """One timed configuration; q, k, v are (batch, heads, n, head_dim) iid N(0, 1) in ``dtype``."""

    method: object  # a method name, or a kernel object (see approxlab.variants)
    n: int
    batch: int = 1
    heads: int = 8
    head_dim: int = 64
    causal: bool = False
    dtype: str = "float32"
    protocol: str = "scaling"
    params: dict = field(default_factory=dict, hash=False, compare=False)
    chunk_size: Optional[int] = None  # causal chunk / non-causal block rows (None: the engine's default)


def check_method(method):
    """A method name (built-in or registered kernel names, with suffixes) or a kernel object."""
    if not isinstance(method, str):
        if not is_kernel(method):
            raise ValueError(f"method must be one of {list(METHODS)} (or <variant>_compiled, <variant>_triton), a "
                             f"registered kernel name or a kernel object, got {method!r}")
        return check_variant(method)
    base, suffix = split_method(method)
    allowed = {"": METHODS + tuple(KERNELS), "_compiled": tuple(KERNELS) + ("sdpa",), "_triton": tuple(KERNELS)}[suffix]
    if base not in allowed:
        raise ValueError(f"method must be one of {list(METHODS)} (or <variant>_compiled, <variant>_triton), "
                         f"got {method!r}")
    return method


def split_method(method) -> tuple:
    """"linear_compiled" -> ("linear", "_compiled"); "linear" -> ("linear", ""); a kernel object -> (it, "")."""
    if not isinstance(method, str):
        return method, ""
    for suffix in SUFFIXES:
        if method.endswith(suffix):
            return method[: -len(suffix)], suffix
    return method, ""


def check_device(device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but torch.cuda.is_available() is False")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return device


def make_inputs(case: Case, device, seed: int = 0):
    return gaussian_qkv(case.batch, case.heads, case.n, case.head_dim, seed=seed, dtype=DTYPES[case.dtype],
                        device=device)


# ----------------------------------------------------------------------------------------------
# the methods
# ----------------------------------------------------------------------------------------------
def naive_softmax(q, k, v, *, causal: bool = False) -> torch.Tensor:
    """softmax(q kᵀ / √D) v with the (…, N, N) logits in memory, in the input dtype."""
    logits = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    if causal:
        n = q.shape[-2]
        logits = logits.masked_fill(torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return torch.softmax(logits, dim=-1) @ v


def performer_features(head_dim: int, params: dict) -> int:
    """m of approxlab's performer with ``params`` (the same m is given to the peer)."""
    return build_kernel("performer", head_dim, **params).num_features


def _performer_pytorch(case: Case, device, dtype):
    import performer_pytorch

    m = case.params.get("num_features") or performer_features(case.head_dim, {})
    peer = performer_pytorch.FastAttention(dim_heads=case.head_dim, nb_features=m, causal=case.causal)
    return peer.to(device=device, dtype=dtype)


def _fla_linear(case: Case, device):
    if not case.causal:
        raise NotImplementedError("fla's chunk linear attention kernel is causal only")
    if torch.device(device).type != "cuda":
        raise NotImplementedError("fla's chunk kernel is timed on CUDA only (its CPU fallback is not the kernel)")
    from fla.ops.linear_attn import chunk_linear_attn  # needs triton and a GPU

    def fn(q, k, v):  # fla layout (B, N, H, D); elu+1 features as approxlab's "linear"
        fq, fk = (F.elu(x.transpose(1, 2)) + 1 for x in (q, k))
        return chunk_linear_attn(fq, fk, v.transpose(1, 2), scale=1.0, normalize=True)[0]

    return fn


def build(case: Case, device) -> Callable:
    """A zero-argument callable running ``case`` once on fresh inputs held in its closure."""
    check_method(case.method)
    device = torch.device(device)
    q, k, v = make_inputs(case, device)
    method, causal = case.method, case.causal
    base, suffix = split_method(method)
    compiled = suffix == "_compiled"
    if base == "identity":
        fn = lambda q, k, v: v.clone()  # noqa: E731
    elif base == "sdpa":
        fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # noqa: E731
    elif base == "naive_softmax":
        fn = lambda q, k, v: naive_softmax(q, k, v, causal=causal)  # noqa: E731
    elif not isinstance(base, str) or base in KERNELS:
        params = dict(case.params)
        backend = "triton" if suffix == "_triton" else "torch"
        if backend == "triton" and not causal:
            raise NotImplementedError("the Triton backend fuses the causal form; non-causal is the torch path")
        if compiled:  # compile the math, not the input checks (they would break the graph)
            kernel = build_kernel(base, case.head_dim, **params)
            scale = resolve_scale(None, case.head_dim)
            fn = lambda q, k, v: unchecked_kernel_attention(kernel, q, k, v, causal=causal, scale=scale,  # noqa: E731
                                                  chunk_size=case.chunk_size)
        else:
            fn = lambda q, k, v: attention(q, k, v, base, causal=causal, backend=backend,  # noqa: E731
                                           chunk_size=case.chunk_size, **params)
    elif base == "performer_pytorch":
        peer = _performer_pytorch(case, device, q.dtype)
        fn = lambda q, k, v: peer(q, k, v)  # noqa: E731
    else:
        fn = _fla_linear(case, device)
    if compiled:
        fn = torch.compile(fn, dynamic=False)

    def call():
        with torch.no_grad():
            return fn(q, k, v)

    return call


# ----------------------------------------------------------------------------------------------
# measurement
# ----------------------------------------------------------------------------------------------
def peak_memory(fn: Callable, device, *, with_output: bool = False):
    """Bytes allocated at the peak of one call, above what was allocated before it; with ``with_output``,
    (bytes, what the call returned), so that the measured call can double as a warm-up call."""
    device = torch.device(device)
    # kineto logs "USDT … profiler_start/stop" per profile at its default level; above USDT (5) it is
    # quiet. Read when the profiler first starts in a process, so a level set by the user is kept.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        torch.cuda.synchronize(device)
        peak = float(torch.cuda.max_memory_allocated(device) - base)
        return (peak, out) if with_output else peak
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    current = top = 0
    for _, nbytes in sorted(cpu_memory_events(prof)):
        current += nbytes
        top = max(top, current)
    return (float(top), out) if with_output else float(top)


def cpu_memory_events(prof, *, raw: bool = True) -> list:
    """(start, bytes) of every CPU allocation (+) and free (−) a ``torch.profiler`` run saw.

    ``raw``: from kineto's own "[memory]" records, one per allocation and free (about 30× faster than
    building the FunctionEvent tree for a call with 10⁴ ops, and they see buffers an op allocates and frees
    inside itself); else, or where that API is missing, from the FunctionEvents (``prof.events()``), whose
    per-op ``self_cpu_memory_usage`` nets those out, so their peak can only be lower (tested)."""
    if raw:
        try:
            cpu = torch.autograd.DeviceType.CPU
            return [(e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and e.device_type() == cpu]
        except AttributeError:
            pass
    return [(e.time_range.start, e.self_cpu_memory_usage) for e in prof.events()]


def sdpa_backend(device, dtype=torch.float32, causal: bool = False) -> str:
    """Name of the backend SDPA picks for (1, 8, 256, 64) inputs on ``device``."""
    try:
        from torch.nn.attention import SDPBackend

        q = torch.zeros(1, 8, 256, 64, device=device, dtype=dtype)
        return SDPBackend(torch._fused_sdp_choice(q, q, q, is_causal=causal)).name
    except Exception as err:  # private API: report rather than fail
        return f"unknown ({type(err).__name__})"


def hbm_peak(device) -> Optional[float]:
    device = torch.device(device)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peak in HBM_PEAK.items():
        if key in name:
            return peak
    return None


def naive_bytes(case: Case) -> int:
    """Memory of the two N×N matrices (logits, weights) naive softmax holds at once."""
    return 2 * case.batch * case.heads * case.n * case.n * torch.finfo(DTYPES[case.dtype]).bits // 8


#: while glibc keeps freed memory (:func:`~approxlab.experiments.timing.freed_memory_kept`: every block on the
#: heap, none returned) the blocks of successive calls fragment it, and the process grows to several times one
#: call's peak: naive softmax at N = 4096, B·H = 8 grew by 4.6 × :func:`naive_bytes` in float32 and 3.8 × in
#: bfloat16 (1.2–1.3 × with the system allocator), and at N = 16384 in bfloat16 (8 GiB of matrices) it was
#: killed for memory at 24 GB. A case whose matrices take more than this share of the memory budget is
#: therefore timed with the system allocator (its ``cpu_allocator`` column says so).
KEEP_FREED_SHARE = 1 / 8


def keeps_freed(case: Case, memory_budget: float) -> bool:
    """Whether ``case`` may be timed with freed memory kept: its N×N matrices (naive softmax; other methods
    hold O(N) per row) take at most :data:`KEEP_FREED_SHARE` of ``memory_budget``."""
    return case.method != "naive_softmax" or naive_bytes(case) <= KEEP_FREED_SHARE * memory_budget


def method_flops(case: Case) -> float:
    """Floating-point operations of one forward pass of ``case.method``, counting multiply-adds as 2:

        exact attention (sdpa, naive):   4·B·H·N²·D, halved when causal
        kernel variant with F features:  4·B·H·N·F·Dv (φ(K)ᵀV and φ(Q)S); causal adds the C×C block of each
                                         chunk, computed whole: 2·B·H·N·C·(F + Dv), C = the case's chunk
                                         length or the engine's (:func:`chunk.causal_chunk`)
        identity:                        0
    Feature maps themselves (elu, exp, monomials) are not counted: the GEMMs are the work the rate is
    compared with.
    """
    base = split_method(case.method)[0]
    bh, n, d = case.batch * case.heads, case.n, case.head_dim
    if base in ("sdpa", "naive_softmax"):
        return 4.0 * bh * n * n * d * (0.5 if case.causal else 1.0)
    if base == "identity":
        return 0.0
    if base == "fla_linear":
        features = d
    else:
        kernel = build_kernel("performer" if base == "performer_pytorch" else base, d, **case.params)
        features = kernel.feature_width(d)
    flops = 4.0 * bh * n * features * d
    if case.causal:
        flops += 2.0 * bh * n * min(case.chunk_size or chunk.causal_chunk(features), n) * (features + d)
    return flops


def measure(case: Case, device="cpu", *, min_run_time: float = 0.2, min_runs: int = 3,
            keep_freed: bool = True, rel_iqr: Optional[float] = None, max_run_time: Optional[float] = None) -> dict:
    """Time and peak memory of one case, with the roofline columns. ``rel_iqr`` / ``max_run_time``: the
    adaptive timing budget of :func:`~approxlab.experiments.timing.time_call` (None: fixed ``min_run_time``)."""
    fn = build(case, device)
    memory = {}

    def warmup_measuring_memory(call):  # the warm-up call is the one whose peak memory is recorded
        memory["peak"], out = peak_memory(call, device, with_output=True)
        return out

    timing = time_call(fn, warmup=1, min_run_time=min_run_time, min_runs=min_runs, keep_freed=keep_freed,
                       rel_iqr=rel_iqr, max_run_time=max_run_time, first_call=warmup_measuring_memory)
    median, iqr, runs = timing.median_s, timing.iqr_s, timing.runs
    peak = memory["peak"]
    elt = torch.finfo(DTYPES[case.dtype]).bits // 8
    io_bytes = 4 * case.batch * case.heads * case.n * case.head_dim * elt
    flops = 4 * case.batch * case.heads * case.n**2 * case.head_dim * (0.5 if case.causal else 1.0)
    roof = hbm_peak(device)
    gbps = io_bytes / median / 1e9
    exact = split_method(case.method)[0] in ("sdpa", "naive_softmax")
    return dict(
        time_ms=1e3 * median, iqr_ms=1e3 * iqr, runs=runs, timing_stop=timing.stop, peak_mem_mb=peak / 2**20, io_bytes=io_bytes,
        achieved_gbps=gbps, hbm_fraction=(gbps * 1e9 / roof) if roof else float("nan"),
        tflops=(flops / median / 1e12) if exact else float("nan"),
        gflops=method_flops(case) / median / 1e9,
    )


def linear_ceiling(n: int = 16384, batch_heads: int = 8, head_dim: int = 64, *, device="cpu",
                   min_run_time: float = 1.0) -> pd.DataFrame:
    """What bounds linear attention's ``matmul_fraction``: its parts timed alone, same run, float32.

    Rows: ``square_gemm`` (the 2048² reference), ``state_gemms`` (φ(K)ᵀV and φ(Q)S as batched matmuls on
    ready features, 4·B·H·N·D² flops: the whole of what ``method_flops`` counts), ``elu_features``
    (elu + 1 of q and k, the engine's feature map, no flops counted) and ``linear`` (the full call).
    ``fraction`` = GFLOP/s over the square GEMM's; for the feature map, ``time_ms`` is what it adds.
    """
    device = check_device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    q, k, v = (torch.randn(1, batch_heads, n, head_dim, generator=gen).to(device) for _ in range(3))
    fq, fk = (torch.rand(batch_heads, n, head_dim, generator=gen).to(device) for _ in range(2))
    vv = v[0]
    kernel = build_kernel("linear", head_dim)
    rate = matmul_rate(device)
    flops = 4.0 * batch_heads * n * head_dim * head_dim
    parts = {
        "state_gemms": (lambda: fq @ (fk.transpose(-1, -2) @ vv), flops),
        "elu_features": (lambda: (kernel.query_features(q), kernel.key_features(k)), 0.0),
        "linear": (lambda: attention(q, k, v, "linear"), flops),
    }
    rows = [dict(part="square_gemm", time_ms=2 * 2048**3 / rate / 1e6, gflops=rate, fraction=1.0)]
    for part, (fn, f) in parts.items():
        with torch.no_grad():
            median = time_call(fn, min_run_time=min_run_time).median_s
        rows.append(dict(part=part, time_ms=1e3 * median, gflops=f / median / 1e9, fraction=f / median / 1e9 / rate))
    out = pd.DataFrame(rows)
    for key, value in dict(n=n, batch_heads=batch_heads, head_dim=head_dim, **describe(device)).items():
        out[key] = value
    return out


# ----------------------------------------------------------------------------------------------
# grids
# ----------------------------------------------------------------------------------------------
def batch_heads(n: int, *, max_batch_heads: int = 8, max_tokens: int = 2**16) -> int:
    """B·H at length N: ``max_batch_heads``, reduced so that B·H·N ≤ ``max_tokens`` (memory fits)."""
    return max(1, min(max_batch_heads, max_tokens // n))


def scaling_cases(methods: Iterable[str], lengths: Iterable[int], *, causal=(False, True), dtypes=("float32",),
                  head_dim: int = 64, max_batch_heads: int = 8, max_tokens: int = 2**16,
                  params: Optional[dict] = None) -> list[Case]:
    """Every method × N × causal × dtype at batch 1 and heads = :func:`batch_heads`."""
    params = params or {}
    cases = []
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise ValueError(f"dtypes must be among {list(DTYPES)}, got {dtype!r}")
        for c in causal:
            for n in lengths:
                if int(n) < 1:
                    raise ValueError(f"lengths must be positive, got {n}")
                heads = batch_heads(int(n), max_batch_heads=max_batch_heads, max_tokens=max_tokens)
                for method in methods:
                    check_method(method)
                    cases.append(Case(method, int(n), 1, heads, head_dim, bool(c), dtype, "scaling",
                                      dict(params.get(split_method(method)[0], {}))))
    return cases


def chunk_cases(cases: Iterable[Case], chunk_sizes: Iterable[int]) -> list[Case]:
    """Each kernel-variant case once per chunk length in ``chunk_sizes`` (others unchanged): the sweep
    behind :data:`chunk.CAUSAL_CHUNKS` (``approxlab bench --chunk-sizes``)."""
    sizes = [check_int(c, "chunk size", minimum=1) for c in chunk_sizes]
    out = []
    for case in cases:
        base = split_method(case.method)[0]
        if not isinstance(base, str) or base in KERNELS:
            out += [replace(case, chunk_size=c) for c in sizes]
        else:
            out.append(case)
    return out


def blog_cases(lengths=(128, 256, 512, 1024, 2048, 4096, 6000), methods=("naive_softmax", "sdpa", "linear", "identity"),
               batch: int = 32) -> list[Case]:
    """The blog's protocol: one layer, batch 32, d_k = 64, one head, float32, non-causal."""
    return [Case(m, int(n), batch, 1, 64, False, "float32", "blog") for n in lengths for m in methods]


def run(cases: list[Case], device="cpu", *, min_run_time: float = 0.2, min_runs: int = 3,
        memory_budget: float = 4 * 2**30, max_call_s: float = 10.0, progress: bool = True,
        keep_freed: bool = True, threads: Optional[int] = None, load_limit: float = 0.25,
        rates: Optional[dict] = None, load_window: float = 0.2, rel_iqr: Optional[float] = None,
        max_run_time: Optional[float] = None) -> pd.DataFrame:
    """Measure ``cases`` in order; one row each. A case is skipped (``status`` says why) when naive
    softmax's N×N matrices exceed ``memory_budget`` bytes, when the same method took more than
    ``max_call_s`` at a smaller N, or when the method is unavailable (missing package, no CUDA).
    ``keep_freed``: time inside :func:`approxlab.experiments.timing.freed_memory_kept` (glibc reuses freed memory
    during the timed calls), except for cases whose N×N matrices take more than :data:`KEEP_FREED_SHARE` of
    ``memory_budget`` (:func:`keeps_freed`); the ``cpu_allocator`` column says which allocator setting was in force.
    ``threads``: torch's intra-op threads for the run (None: as set). The CPUs kept busy by other processes
    while each case is measured are recorded (``other_cpu_load``, :func:`~approxlab.experiments.timing.others_busy`);
    above ``load_limit`` a warning says the timing is contended. ``matmul_gflops``: the GEMM rate of the same
    run, per dtype (``rates``: {dtype: GFLOP/s} measured by the caller in the same run, instead of
    measuring it here); ``matmul_fraction`` = gflops / matmul_gflops. ``load_window``: the shortest
    window (s) over which the other processes' load is read (a shorter case is topped up by a sleep).
    ``rel_iqr`` / ``max_run_time``: each case's adaptive timing budget
    (:func:`~approxlab.experiments.timing.time_call`; ``timing_stop`` says whether the IQR came within
    ``rel_iqr`` of the median or the budget ran out); None: ``min_run_time`` for every case."""
    import warnings

    from tqdm.auto import tqdm

    device = check_device(device)
    if threads is not None:
        torch.set_num_threads(check_int(threads, "threads", minimum=1))
    env = describe(device)
    backend = {dt: sdpa_backend(device, DTYPES[dt]) for dt in {c.dtype for c in cases}}
    rate = {dt: (rates or {}).get(dt) or matmul_rate(device, DTYPES[dt]) for dt in {c.dtype for c in cases}}
    too_slow: dict = {}
    rows = []
    for case in tqdm(cases, desc=f"bench ({device.type})", disable=not progress):
        key = (case.protocol, case.method, case.causal, case.dtype)
        row = {f.name: getattr(case, f.name) for f in fields(case) if f.name != "params"}
        row["method"] = kernel_name(case.method)
        row["params"] = ",".join(f"{k}={v}" for k, v in sorted(case.params.items()))
        status = "ok"
        case_keeps_freed = keep_freed and keeps_freed(case, memory_budget)
        if case.method == "naive_softmax" and naive_bytes(case) > memory_budget:
            status = f"skipped: N×N matrices need {naive_bytes(case) / 2**30:.1f} GiB > budget"
        elif key in too_slow and case.n > too_slow[key]:
            status = f"skipped: over {max_call_s:g} s at N={too_slow[key]}"
        if status == "ok":
            try:
                with others_busy(min_window=load_window) as load:
                    row.update(measure(case, device, min_run_time=min_run_time, min_runs=min_runs,
                                       keep_freed=case_keeps_freed, rel_iqr=rel_iqr, max_run_time=max_run_time))
                row["other_cpu_load"] = load.value
                if load.value > load_limit:
                    warnings.warn(f"{row['method']} N={case.n}: other processes kept {load.value:.1f} CPUs busy while it "
                                  "was timed; this timing is contended (see the other_cpu_load column)", stacklevel=2)
                row["matmul_gflops"] = rate[case.dtype]
                row["matmul_fraction"] = row["gflops"] / rate[case.dtype]
                if row["time_ms"] > 1e3 * max_call_s:
                    too_slow[key] = case.n
            except (ImportError, NotImplementedError, RuntimeError) as err:
                status = f"skipped: {type(err).__name__}: {str(err).splitlines()[0][:120]}"
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        row["status"] = status
        row["sdpa_backend"] = backend[case.dtype]
        row["cpu_allocator"] = allocator_state(case_keeps_freed)
        row.update(env)
        rows.append(row)
    return pd.DataFrame(rows)


def crossover(df: pd.DataFrame, reference: str = "sdpa") -> pd.DataFrame:
    """Per (protocol, method, causal, dtype): the first grid N where the method is faster than
    ``reference`` at the same shape (``n_first``), and the N where the log-log interpolated time ratio
    crosses 1 between the grid points around it (``n_interp``; = ``min_n`` when already faster at the
    smallest N, so the crossover is at or below it); NaN where it never is on the grid."""
    ok = df[df["status"] == "ok"]
    keys = ["protocol", "causal", "dtype", "n"]
    ref = ok[ok["method"] == reference].set_index(keys)["time_ms"]
    out = []
    for (protocol, method, causal, dtype), g in ok[ok["method"] != reference].groupby(
            ["protocol", "method", "causal", "dtype"]):
        g = g.sort_values("n")
        idx = pd.MultiIndex.from_arrays([g["protocol"], g["causal"], g["dtype"], g["n"]])
        ratio = (g["time_ms"].to_numpy() / ref.reindex(idx).to_numpy())
        ns = g["n"].to_numpy()
        valid = ~np.isnan(ratio)
        ratio, ns = ratio[valid], ns[valid]
        first = interp = float("nan")
        faster = np.nonzero(ratio < 1)[0]
        if len(faster):
            i = faster[0]
            first = float(ns[i])
            if i == 0:
                interp = first
            else:
                x0, x1, y0, y1 = np.log(ns[i - 1]), np.log(ns[i]), np.log(ratio[i - 1]), np.log(ratio[i])
                interp = float(np.exp(x0 + (0 - y0) * (x1 - x0) / (y1 - y0)))
        out.append(dict(protocol=protocol, method=method, causal=causal, dtype=dtype, n_first=first,
                        n_interp=interp, ratio_at_max_n=float(ratio[-1]) if len(ratio) else float("nan"),
                        min_n=float(ns[0]) if len(ns) else float("nan"), max_n=float(ns[-1]) if len(ns) else float("nan")))
    return pd.DataFrame(out)


def speedup(df: pd.DataFrame, numerator: str, denominator: str) -> pd.DataFrame:
    """time(numerator) / time(denominator) at every shape both ran: > 1 means ``denominator`` is faster."""
    ok = df[df["status"] == "ok"]
    keys = ["protocol", "n", "batch", "heads", "head_dim", "causal", "dtype"]
    a = ok[ok["method"] == numerator].set_index(keys)["time_ms"]
    b = ok[ok["method"] == denominator].set_index(keys)["time_ms"]
    joined = pd.concat({"numerator_ms": a, "denominator_ms": b}, axis=1).dropna()
    joined["ratio"] = joined["numerator_ms"] / joined["denominator_ms"]
    return joined.reset_index()


def peer_agreement(n: int = 512, head_dim: int = 64, num_features: int | None = None, *, eps: float = 1e-4,
                   causal: bool = False, dtype=torch.float64, seed: int = 0) -> float:
    """max |o_peer − o_approxlab| / max |o_approxlab| for performer-pytorch's FastAttention given
    approxlab's projection matrix (so both draw the same features); its feature ε is set to ``eps``
    and, in causal mode, so is the ε it adds to the running normaliser (1e-6 by default)."""
    import performer_pytorch
    from performer_pytorch import performer_pytorch as pp

    from ..variants import gaussian_projection

    m = num_features or performer_features(head_dim, {})
    proj = gaussian_projection(m, head_dim, seed=seed)
    q, k, v = make_inputs(Case("performer", n, 1, 2, head_dim, causal, "float64"), "cpu", seed=seed)
    q, k, v = (x.to(dtype) for x in (q, k, v))
    peer = performer_pytorch.FastAttention(dim_heads=head_dim, nb_features=m, causal=causal).to(dtype)
    peer.projection_matrix = proj.to(dtype)
    if causal:
        peer.causal_linear_fn = partial(pp.causal_linear_attention_noncuda, eps=eps if eps == 0 else 1e-6)
    original = pp.softmax_kernel

    def kernel(data, *, projection_matrix, is_query, normalize_data=True, eps=eps, device=None):
        return original(data, projection_matrix=projection_matrix, is_query=is_query,
                        normalize_data=normalize_data, eps=eps, device=device)

    pp.softmax_kernel = kernel
    try:
        with torch.no_grad():
            theirs = peer(q, k, v)
    finally:
        pp.softmax_kernel = original
    ours = attention(q, k, v, "performer", causal=causal, projection=proj.to(dtype))
    return float((theirs - ours).abs().max() / ours.abs().max())


def banner(device="cpu") -> str:
    env = describe(device)
    env["sdpa_backend"] = sdpa_backend(device)
    env["cpu_allocator"] = allocator_state()
    return " | ".join(f"{k}={v}" for k, v in env.items())


__all__ = ["Case", "METHODS", "run", "measure", "method_flops", "peak_memory", "scaling_cases", "blog_cases",
           "crossover", "speedup", "peer_agreement", "naive_softmax", "keeps_freed", "KEEP_FREED_SHARE", "banner",
           "batch_heads", "check_device"]
