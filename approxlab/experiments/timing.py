"""Fair timing, the one home for it: warm-up, then timed samples (CUDA synchronised, the garbage collector
paused: :func:`sample`; ``torch.utils.benchmark``'s ``blocked_autorange`` for a fixed budget) for a median
and IQR, with the CPU allocator kept from returning memory to the OS while the calls run.

CPU allocator. glibc returns large freed blocks to the OS (``mmap``/``munmap`` above a threshold,
heap trimming), so a function that allocates multi-MiB temporaries pays page faults on every call:
on a 2-core x86_64 machine that was about half of performer's forward time at (1, 8, 128, 64), and
more of performer-pytorch's. :func:`freed_memory_kept` switches that off for the timed calls only
(``mallopt``; what ``MALLOC_MMAP_MAX_=0`` or a caching allocator such as jemalloc do for a whole
process), so that timings measure the arithmetic, the same for every method timed. Outside the
timed calls the defaults come back and free memory is returned (``malloc_trim``): kept for a whole
long study, the heap fragments (a lesson-exercise run grew from 0.7 to 15 GiB resident).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
import os
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
import torch.utils.benchmark as benchmark

from ..core.checks import check_int

# glibc mallopt parameters (malloc.h), the default of M_MMAP_MAX, and the mmap and trim thresholds glibc's
# dynamic rule reaches for blocks up to its cap (DEFAULT_MMAP_THRESHOLD_MAX, 32 MiB on 64-bit; trim = 2 × mmap)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_DEFAULT_MMAP_MAX = 65536
_SETTLED_MMAP_THRESHOLD, _SETTLED_TRIM_THRESHOLD = 32 * 2**20, 64 * 2**20
KEPT = "glibc, freed memory kept during timed calls (mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD=2^31-1)"
SYSTEM = "system default"


@dataclass
class Timing:
    """``median_s`` and ``iqr_s`` over ``runs`` timed samples (each the mean of its calls; ``number``: calls
    in the last sample).

    ``spent_s``: seconds of timed calls; ``stop``: why sampling ended ("fixed": ``blocked_autorange`` for
    ``min_run_time``; "tight": the IQR came within ``rel_iqr`` of the median; "budget": ``max_run_time``
    was spent first); ``output``: what the last warm-up call returned (None without warm-up)."""

    median_s: float
    iqr_s: float
    runs: int
    number: int = 1
    spent_s: float = math.nan
    stop: str = "fixed"
    output: object = field(default=None, repr=False, compare=False)

    @property
    def rel_iqr(self) -> float:
        """IQR / median: how far one sample strays; a large value marks a noisy cell."""
        return self.iqr_s / self.median_s if self.median_s > 0 else math.nan


@lru_cache(maxsize=1)
def _glibc():
    """The C library when it is glibc (has mallopt and malloc_trim), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt, libc.malloc_trim  # noqa: B018 (attribute lookups raise where absent)
        return libc
    except (OSError, AttributeError, TypeError):
        return None


def allocator_state(keep_freed: bool = True) -> str:
    """How the CPU allocator is set while :func:`time_call` times (for the CSV)."""
    return KEPT if keep_freed and _glibc() is not None else SYSTEM


@contextmanager
def freed_memory_kept(enabled: bool = True):
    """Inside the block glibc keeps freed memory for reuse (no ``mmap`` for large blocks, no
    trimming); on exit free memory goes back to the OS and the thresholds are set where glibc's own
    dynamic rule settles (blocks above 32 MiB mapped, the heap trimmed above 64 MiB free). A no-op
    where libc is not glibc or ``enabled`` is False.

    Not the compiled-in defaults (128 KiB each): any ``mallopt`` of these switches glibc's dynamic rule off
    for the rest of the process, and left at 128 KiB every larger temporary is mapped and faulted in
    afresh. Restored that way, the whole quick main job spent 174 s of system time in 80 million page
    faults, and ``lesson_exercise`` took twice as long after the cell studies as when run alone."""
    libc = _glibc() if enabled else None
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.mallopt(_M_MMAP_THRESHOLD, _SETTLED_MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _SETTLED_TRIM_THRESHOLD)
        libc.malloc_trim(0)


#: the least duration of one timed sample in adaptive mode: faster calls are repeated within a sample
SAMPLE_S = 0.01


def time_call(fn: Callable[[], object], *, warmup: int = 2, min_run_time: float = 0.2, min_runs: int = 3,
              keep_freed: bool = True, rel_iqr: float | None = None, max_run_time: float | None = None,
              first_call: Callable[[Callable], object] | None = None) -> Timing:
    """Median and IQR of ``fn()`` wall time, after ``warmup`` untimed calls; all inside
    :func:`freed_memory_kept` unless ``keep_freed`` is False. CUDA is synchronised around every sample.
    ``first_call``: makes the first warm-up call instead, as ``first_call(fn)`` returning fn's output (e.g. a
    call under the memory profiler, :func:`approxlab.experiments.bench.peak_memory`): one call serves both.

    Fixed (``rel_iqr`` None): ``blocked_autorange`` for ``min_run_time`` seconds, topped up to ``min_runs``
    samples.

    Adaptive (``rel_iqr`` given): a time budget per call site. Samples of ``number`` calls (enough for
    :data:`SAMPLE_S` seconds, from the last warm-up call's time or, for a call shorter than that, one more
    timed call; raised when a sample still comes out short) are taken one at a time until at least
    ``min_runs`` samples and ``min_run_time`` seconds are in and IQR / median ≤ ``rel_iqr`` ("tight"), or
    until ``max_run_time`` seconds (default 10 × ``min_run_time``) are spent ("budget"; never fewer than
    ``min_runs`` samples). A steady call stops early; a noisy one gets the whole budget and its IQR says so.
    """
    min_runs = check_int(min_runs, "min_runs", minimum=1)
    if rel_iqr is not None and not (isinstance(rel_iqr, (int, float)) and rel_iqr > 0):
        raise ValueError(f"rel_iqr must be a positive number (IQR / median to stop at) or None, got {rel_iqr!r}")
    if max_run_time is not None and not (isinstance(max_run_time, (int, float)) and max_run_time >= min_run_time):
        raise ValueError(f"max_run_time must be a number >= min_run_time ({min_run_time}), got {max_run_time!r}")
    output = None
    with freed_memory_kept(keep_freed):
        last = None
        for i in range(warmup):
            began = time.perf_counter()
            output = first_call(fn) if i == 0 and first_call is not None else fn()
            _synchronize()
            last = time.perf_counter() - began
        if rel_iqr is None:
            timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
            measurement = timer.blocked_autorange(min_run_time=min_run_time)
            times, number, stop = list(measurement.times), measurement.number_per_run, "fixed"
            while len(times) < min_runs:
                times.append(sample(fn, 1))
            spent = sum(times) * number
        else:
            if last is None or last < SAMPLE_S:  # a first call is often slow: one more, untimed as a sample
                last = min(sample(fn, 1), math.inf if last is None else last)
            number = max(1, math.ceil(SAMPLE_S / max(last, 1e-9)))
            budget = 10 * min_run_time if max_run_time is None else max_run_time
            times, spent, stop = [], 0.0, "budget"
            while True:
                times.append(sample(fn, number))
                spent += times[-1] * number
                if times[-1] * number < SAMPLE_S / 2:  # still short: longer samples from now on
                    number = math.ceil(SAMPLE_S / max(times[-1], 1e-9))
                if len(times) >= min_runs and spent >= min_run_time:
                    q1, q3 = np.percentile(times, [25, 75])
                    if q3 - q1 <= rel_iqr * float(np.median(times)):
                        stop = "tight"
                        break
                    if spent >= budget:
                        break
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return Timing(median_s=float(median), iqr_s=float(q3 - q1), runs=len(times), number=number, spent_s=spent,
                  stop=stop, output=output)


def sample(fn: Callable[[], object], number: int = 1) -> float:
    """Seconds per call over ``number`` back-to-back calls of ``fn``: CUDA synchronised before and after,
    the garbage collector paused meanwhile (as :mod:`timeit` and ``torch.utils.benchmark`` time). One timed
    sample and nothing else: ``torch.utils.benchmark.Timer.timeit`` runs two more untimed calls before each
    sample, which for a call slower than the sample length tripled the calls a timing made."""
    number = check_int(number, "number", minimum=1)
    enabled = gc.isenabled()
    gc.disable()
    try:
        _synchronize()
        began = time.perf_counter()
        for _ in range(number):
            fn()
        _synchronize()
        return (time.perf_counter() - began) / number
    finally:
        if enabled:
            gc.enable()


def _synchronize():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------------
# the machine's state beside a timing: its matmul rate, and whether other processes compete
# ----------------------------------------------------------------------------------------------
def matmul_rate(device="cpu", dtype=torch.float32, size: int = 2048, repeats: int = 3,
                min_run_time: float = 0.3) -> float:
    """GFLOP/s of one size × size GEMM (2·size³ flops), timed like everything else: the machine's
    reference rate, measured in the same run as the timings it is compared with. The best of ``repeats``
    medians (each of at least ``min_run_time`` seconds of calls): a single median read anywhere from 82
    to 181 GFLOP/s on the 2-core CPU, and a reference below the rate SDPA reaches would overstate every
    fraction."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = min(time_call(lambda: a @ b, min_run_time=min_run_time).median_s
               for _ in range(check_int(repeats, "repeats", minimum=1)))
    return 2 * size**3 / best / 1e9


def _busy_jiffies() -> tuple[int, int]:
    """(busy jiffies of the whole machine, jiffies of this process) from /proc (Linux)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    with open("/proc/self/stat") as f:
        own = f.read().rsplit(")", 1)[1].split()
    return sum(fields) - idle, int(own[11]) + int(own[12])  # utime + stime


def other_cpu_load(interval: float = 0.2) -> float:
    """CPUs kept busy by *other* processes over ``interval`` seconds (e.g. 1.0: one core taken away);
    NaN where /proc is not available. Timings taken while this is well above 0 are inflated."""
    with others_busy(min_window=interval) as load:
        pass
    return load.value


class _Load:
    value = math.nan


#: the last readings of :func:`others_busy` ((perf_counter, busy jiffies, own jiffies), oldest first): a block
#: shorter than its window reads the load back to one of them instead of sleeping
_READINGS: deque = deque(maxlen=64)
#: how far back (in windows) an earlier reading may lie; further back, a short block sleeps instead
_LOOK_BACK = 5


@contextmanager
def others_busy(min_window: float = 0.2):
    """CPUs kept busy by other processes while the block ran: ``with others_busy() as load: ...``, then
    ``load.value`` (NaN where /proc is not available).

    Jiffies tick at 10 ms, so a window shorter than ``min_window`` cannot resolve a fraction of a CPU. A shorter
    block is read over a longer window that ends with it: back to the latest earlier reading between ``min_window``
    and 5 × ``min_window`` before its end (a short case in a run of cases takes in the cases just before it), or,
    when there is none, topped up by a sleep after it (a run of short cases used to sleep after each)."""
    load = _Load()
    try:
        busy0, own0 = _busy_jiffies()
    except (OSError, ValueError, IndexError):
        yield load
        return
    start = time.perf_counter()
    _READINGS.append((start, busy0, own0))
    yield load
    end = time.perf_counter()
    if end - start < min_window:
        earlier = [r for r in _READINGS if end - _LOOK_BACK * min_window <= r[0] <= end - min_window]
        if earlier:
            start, busy0, own0 = earlier[-1]
        else:
            time.sleep(min_window - (end - start))
            end = start + min_window
    busy1, own1 = _busy_jiffies()
    _READINGS.append((end, busy1, own1))
    hz = os.sysconf("SC_CLK_TCK")
    load.value = max(0.0, ((busy1 - busy0) - (own1 - own0)) / hz / (end - start))
