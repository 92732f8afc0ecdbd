"""Memory budget: every form sizes its largest buffers before it allocates them.

A request over the budget raises :class:`MemoryBudgetError` (a ``ValueError``) within milliseconds,
naming the parameter that set the size and the bytes it would need, instead of swapping the machine
for minutes and dying with ``MemoryError``. What is sized:

- the efficient forms: the state S (B·H·F·Dv) and normaliser, plus key/query blocks of features
  (rows · B·H · F), whose rows are chosen to fit (``engine``);
- the explicit forms: the B·H·Nq·Nk weight matrix;
- Performer's m × D projection (float64), at construction.

Beside the bytes, the work: the efficient forms estimate their floating-point operations before they
start, and a call over the work budget (10¹² FLOPs unless set otherwise) raises :class:`WorkBudgetError`
with the estimate, instead of running for minutes without a word.

The memory budget is 4 GiB unless set otherwise (at least 1 KiB)::

    approxlab.set_memory_budget("16GiB")        # for the session (None restores the default)
    with approxlab.memory_budget(2**34): ...     # for a block
    APPROXLAB_MEMORY_BUDGET=16GiB python ...     # from the environment
    approxlab.set_work_budget(1e14)              # the work budget, likewise (also work_budget(...),
                                                 # $APPROXLAB_WORK_BUDGET)
"""

from __future__ import annotations

import contextlib
import os
import re
from numbers import Integral, Real

DEFAULT_BUDGET = 4 * 2**30
#: the smallest budget accepted: below it a number is a forgotten unit (1.9 meaning 1.9 GiB)
MIN_BUDGET = 2**10
ENV_VAR = "APPROXLAB_MEMORY_BUDGET"
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_budget: int | None = None


class MemoryBudgetError(ValueError):
    """A computation would allocate more than the memory budget."""


def parse_bytes(value, name: str = "memory budget") -> int:
    """A positive byte count from an int/float or a string such as ``"512MiB"``, ``"8GB"``, ``"1e9"``."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if not match or match.group(2).lower() not in _UNITS:
            raise ValueError(f"{name} must be a byte count such as 4GiB, 512MB or 1e9, got {value!r}")
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if isinstance(value, bool) or not isinstance(value, Real) or not value == value or value <= 0 \
            or value == float("inf"):
        raise ValueError(f"{name} must be a positive finite number of bytes, got {value!r}")
    if value < MIN_BUDGET:  # 1.9 or "0.5" is a forgotten unit, not a budget
        raise ValueError(f"{name} is in bytes and must be at least {MIN_BUDGET} (1 KiB), got {value!r}; "
                         "give a unit, e.g. '2GiB'")
    return int(value)


def get_memory_budget() -> int:
    """Bytes one call may allocate: :func:`set_memory_budget`'s value, else $APPROXLAB_MEMORY_BUDGET, else 4 GiB."""
    if _budget is not None:
        return _budget
    env = os.environ.get(ENV_VAR)
    return parse_bytes(env, ENV_VAR) if env else DEFAULT_BUDGET


def set_memory_budget(nbytes) -> None:
    """Set the budget for this process (bytes or a string like ``"16GiB"``); None restores the default."""
    global _budget
    _budget = None if nbytes is None else parse_bytes(nbytes)


@contextlib.contextmanager
def memory_budget(nbytes):
    """``with memory_budget("1GiB"): ...`` — the budget inside the block, the previous one after."""
    global _budget
    previous, _budget = _budget, parse_bytes(nbytes)
    try:
        yield _budget
    finally:
        _budget = previous


def format_bytes(nbytes: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{int(nbytes)} B"


def require(nbytes: int, what: str) -> None:
    """Raise :class:`MemoryBudgetError` when ``what`` needs more than the budget."""
    if not isinstance(nbytes, Integral):
        nbytes = int(nbytes)
    limit = get_memory_budget()
    if nbytes > limit:
        raise MemoryBudgetError(
            f"{what} needs {format_bytes(nbytes)} ({nbytes:,} bytes), over the memory budget of "
            f"{format_bytes(limit)}; approxlab.set_memory_budget(...) or ${ENV_VAR} raises it")


# ----------------------------------------------------------------------------------------------
# work budget: the floating-point operations one call may take
# ----------------------------------------------------------------------------------------------
#: FLOPs one call may take unless set otherwise: about a minute of a CPU core at tens of GFLOP/s; a GPU
#: runs this much in well under a second, so device runs raise it (``set_work_budget``)
DEFAULT_WORK = 10**12
WORK_ENV_VAR = "APPROXLAB_WORK_BUDGET"
_work: int | None = None


class WorkBudgetError(ValueError):
    """A computation would take more floating-point operations than the work budget.

    Raised before the computation starts, with the estimate in the message; a ``ValueError``, so code
    that catches bad input catches it too.
    """


def parse_work(value, name: str = "work budget") -> int:
    """A FLOP count ≥ 1 from an int/float or a string such as ``"1e13"``.

    Parameters
    ----------
    value : int, float or str
        The number of floating-point operations.
    name : str
        What the value is, for the error message.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        For a non-number, NaN, inf or a value below 1.
    """
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{name} must be a number of floating-point operations such as 1e13, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, Real) or not value == value or value < 1 \
            or value == float("inf"):
        raise ValueError(f"{name} must be a finite number of floating-point operations >= 1, got {value!r}")
    return int(value)


def get_work_budget() -> int:
    """FLOPs one call may take: :func:`set_work_budget`'s value, else $APPROXLAB_WORK_BUDGET, else 10¹².

    Returns
    -------
    int

    Examples
    --------
    >>> from approxlab.core import budget
    >>> budget.get_work_budget() >= 1
    True
    """
    if _work is not None:
        return _work
    env = os.environ.get(WORK_ENV_VAR)
    return parse_work(env, WORK_ENV_VAR) if env else DEFAULT_WORK


def set_work_budget(flops) -> None:
    """Set the work budget for this process.

    Parameters
    ----------
    flops : int, float, str or None
        Floating-point operations one call may take (e.g. ``1e14`` on a GPU); None restores the default
        (``$APPROXLAB_WORK_BUDGET``, else 10¹²).

    Raises
    ------
    ValueError
        For a value that is not a finite number ≥ 1.

    Notes
    -----
    The efficient forms estimate their work before they start (:func:`approxlab.core.chunk.efficient_flops`):
    2·B·H·(Nq + Nk)·F·(D + Dv + 1), plus 2·B·H·N·C·(F + Dv) for causal chunks of length C.

    Examples
    --------
    >>> import approxlab
    >>> approxlab.set_work_budget(1e14)
    >>> approxlab.get_work_budget()
    100000000000000
    >>> approxlab.set_work_budget(None)
    """
    global _work
    _work = None if flops is None else parse_work(flops)


@contextlib.contextmanager
def work_budget(flops):
    """The work budget inside a ``with`` block, the previous one after.

    Parameters
    ----------
    flops : int, float or str
        Floating-point operations one call may take inside the block.

    Examples
    --------
    >>> import torch, approxlab
    >>> q = k = v = torch.ones(1, 1, 64, 8)
    >>> with approxlab.work_budget(1e4):
    ...     approxlab.attention(q, k, v, "linear")
    Traceback (most recent call last):
    ...
    approxlab.core.budget.WorkBudgetError: linear (F = 8 features), ... over the work budget of 1e+04 FLOPs ...
    """
    global _work
    previous, _work = _work, parse_work(flops)
    try:
        yield _work
    finally:
        _work = previous


def require_work(flops: float, what: str) -> None:
    """Raise :class:`WorkBudgetError` when ``what`` needs more than the work budget (checked before computing).

    Parameters
    ----------
    flops : float
        The estimated floating-point operations.
    what : str
        What needs them (the kernel and its size, the shapes), for the message.

    Raises
    ------
    WorkBudgetError
        When ``flops`` exceeds :func:`get_work_budget`.
    """
    limit = get_work_budget()
    if flops > limit:
        raise WorkBudgetError(
            f"{what} needs about {flops:.3g} FLOPs, over the work budget of {limit:.3g} FLOPs (minutes on a CPU); "
            f"approxlab.set_work_budget(...) or ${WORK_ENV_VAR} raises it")
