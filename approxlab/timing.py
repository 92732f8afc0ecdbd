"""Fair timing, the one home for it: warm-up, then ``torch.utils.benchmark`` (which synchronises CUDA)
for a median and IQR; and the CPU allocator setting every CPU timing is taken under.

CPU allocator. glibc returns large freed blocks to the OS (``mmap``/``munmap`` above a threshold,
heap trimming), so a function that allocates multi-MiB temporaries pays page faults on every call:
on a 2-core x86_64 machine that was 50–60 % of performer's forward time at (1, 8, 128, 64).
:func:`keep_freed_memory` switches that off for the process (``mallopt``; the same effect as
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=…`` or a caching allocator such as jemalloc), so that
timings measure the arithmetic, the same for every method timed in the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.utils.benchmark as benchmark

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_allocator_state = "system default"


@dataclass
class Timing:
    median_s: float
    iqr_s: float
    runs: int


def time_call(fn: Callable[[], object], *, warmup: int = 2, min_run_time: float = 0.2, min_runs: int = 3) -> Timing:
    """Median and IQR of ``fn()`` wall time: ``warmup`` untimed calls, ``blocked_autorange`` (CUDA
    synchronised by the Timer), topped up to ``min_runs`` samples."""
    for _ in range(warmup):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    times = list(timer.blocked_autorange(min_run_time=min_run_time).times)
    while len(times) < min_runs:
        times.append(timer.timeit(1).median)
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return Timing(median_s=float(median), iqr_s=float(q3 - q1), runs=len(times))


def keep_freed_memory() -> str:
    """Make glibc keep freed memory for reuse (no ``mmap`` for large blocks, no trimming); returns the
    state for the CSV. Process-wide and irreversible; a no-op (reported) where libc is not glibc."""
    global _allocator_state
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError, TypeError):
        ok = False
    if ok:
        _allocator_state = "glibc keep-freed (mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD=2^31-1)"
    elif _allocator_state == "system default":
        _allocator_state = "system default (mallopt unavailable)"
    return _allocator_state


def allocator_state() -> str:
    """How the CPU allocator was set when the timings of this process were taken."""
    return _allocator_state
