"""Fair timing: warm-up, then ``torch.utils.benchmark`` (which synchronises CUDA) for a median and IQR."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.utils.benchmark as benchmark


@dataclass
class Timing:
    median_s: float
    iqr_s: float
    runs: int


def time_call(fn: Callable[[], object], *, warmup: int = 2, min_run_time: float = 0.2) -> Timing:
    """Median wall time of ``fn()`` after ``warmup`` untimed calls (CUDA synchronised by the Timer)."""
    for _ in range(warmup):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    m = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()).blocked_autorange(
        min_run_time=min_run_time
    )
    return Timing(median_s=m.median, iqr_s=m.iqr, runs=len(m.times) * m.number_per_run)
