"""Studies as cached, resumable cells, run through joblib locally or on a Dask cluster.

A study's grid is a list of **cells**: a module-level function and a dict of JSON-able parameters
(the seed among them) that fully determine the tidy rows (a DataFrame) the function returns. This
module runs the cells and keeps their rows; it schedules nothing itself:

* ``jobs=1``: in this process, one cell after another;
* ``jobs=N``: joblib's default (loky) process pool of N workers;
* ``scheduler="tcp://host:port"``: an existing Dask cluster (``distributed.Client``), through
  joblib's ``dask`` backend; ``scheduler="local"``: a ``distributed.LocalCluster`` of ``jobs`` workers.

**Cache.** Each finished cell's rows are written (by the calling process, as results arrive, so a
remote cluster needs no shared disk) to ``<cache>/<study>/<key[:2]>/<key>.pkl``, ``key`` = SHA-256 of
the study name, the cell function's qualified name, its parameters (the seed among them) and
:func:`code_version`: the syntax tree of the cell's module and of every approxlab module it imports,
followed statically and transitively, plus the versions of python, torch, numpy, scipy, pandas and
sympy. An interrupted run resumes where it stopped; a re-run recomputes only cells whose key changed.
Any code change in those modules invalidates (even one that leaves the numbers alone); what does
*not* invalidate: comments and formatting, the study's ``draw``, this runner and ``style``, modules
reached only by ``importlib`` at run time, data files (e.g. the real model's weights: pinned by its
package version in pyproject) and other libraries or BLAS builds. ``--no-cache`` recomputes
everything; deleting the folder clears it.

**Determinism.** A cell in a pool of workers (``jobs`` > 1, Dask) runs with one torch thread and one
BLAS/OpenMP thread (``threadpoolctl``), whatever the pool's worker count; cells run in this process
(``jobs=1``, the default) take the process's torch threads (``torch.get_num_threads()``, all cores unless
set), one cell after another. Rows are assembled in the grid's order, never in completion order; and CSVs are
written by :func:`write_csv` with float64 values printed to ``FLOAT_FORMAT`` (12 significant
digits, far below any measured quantity's spread; float32 columns keep their exact shortest repr). With these
the same seed gives byte-identical CSVs across runs, thread counts, job counts and schedulers on one machine
(tests/test_sweep.py checks serial, ``jobs=2``, a Dask LocalCluster, another thread count and
interrupted-then-resumed runs; every cell study's quick CSV was byte-identical with cells on one and on two
threads). The studies' reductions run along rows, which torch splits between threads by rows, not within
one; a reduction over a whole tensor split between threads would add in another order at another thread
count. Across CPU architectures or library builds the last bits of a reduction may still differ.

**Failures.** A cell that raises is reported with its name and parameters in a :class:`CellError`
raised after every other cell has finished and been cached; re-running computes only the failed cells.

**Timing studies** (``speed_vs_length``, ``lesson_exercise``) do not use this module: they run
serially in one process, because timings taken beside other workers are not fair timings.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import json
import math
import os
import platform
import sys
import traceback
from pathlib import Path
from typing import Callable, Iterable, Optional

import pandas as pd

from ..variants import value_text

#: how every figure CSV prints floats: 12 significant digits (``%.12g``)
FLOAT_FORMAT = "%.12g"
#: default cache folder of ``approxlab figures`` (override with ``--cache`` or $APPROXLAB_CACHE)
DEFAULT_CACHE = Path(os.environ.get("APPROXLAB_CACHE", Path.home() / ".cache" / "approxlab" / "cells"))
PACKAGE = "approxlab"


def write_csv(df: pd.DataFrame, path) -> Path:
    """The one CSV writer of figure data: no index, '\\n' line ends, float64 values printed as
    ``FLOAT_FORMAT`` (NaN empty); float32 columns keep their own shortest repr (exact, and short)."""
    import numpy as np

    path = Path(path)
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == np.float64:
            out[col] = ["" if math.isnan(x) else FLOAT_FORMAT % x for x in out[col].to_numpy().tolist()]
    out.to_csv(path, index=False, lineterminator="\n")
    return path


# ----------------------------------------------------------------------------------------------
# settings: what `approxlab figures` passes down to every study's compute()
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Settings:
    """How cells run. ``cache=None``: no cache (the default of a bare ``compute()`` call)."""

    jobs: int = 1
    scheduler: Optional[str] = None
    cache: Optional[Path] = None
    cached_only: bool = False
    progress: bool = True

    def __post_init__(self):
        if not isinstance(self.jobs, int) or isinstance(self.jobs, bool) or self.jobs == 0 or self.jobs < -1:
            raise ValueError(f"jobs must be a positive int (or -1 for all cores), got {self.jobs!r}")
        if self.scheduler is not None and not (self.scheduler == "local" or "://" in str(self.scheduler)):
            raise ValueError(f"scheduler must be 'local' (a distributed LocalCluster) or an address like "
                             f"'tcp://host:8786', got {self.scheduler!r}")
        if self.cached_only and self.cache is None:
            raise ValueError("cached_only=True needs a cache folder")

    @property
    def cell_threads(self) -> int:
        """Torch and BLAS threads each cell runs with: the process's torch threads when the cells run one
        after another in this process (``jobs=1``, no scheduler), else one per worker (they share the cores)."""
        import torch

        return torch.get_num_threads() if self.jobs == 1 and self.scheduler is None else 1


_settings = Settings()


def settings() -> Settings:
    return _settings


@contextlib.contextmanager
def configure(**changes):
    """``with sweep.configure(jobs=4, cache="~/.cache/x"): study.compute("full")``."""
    global _settings
    if changes.get("cache") is not None:
        changes["cache"] = Path(changes["cache"]).expanduser()
    old, _settings = _settings, dataclasses.replace(_settings, **changes)
    try:
        yield _settings
    finally:
        _settings = old


# ----------------------------------------------------------------------------------------------
# code version and keys
# ----------------------------------------------------------------------------------------------
def _module_file(name: str) -> Optional[Path]:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, AttributeError):  # `from module import function`: a name inside a module
        return None
    return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None


#: modules that never shape a cell's rows: the runner itself and the plotting style (and what they contain)
NOT_KEYED = {__name__, f"{__name__.rpartition('.')[0]}.style"}
#: the study registry imports every study; a study's cells depend only on what the study itself imports
REGISTRY = f"{__name__.rpartition('.')[0]}.studies"


def _code_tree(path: Path) -> ast.Module:
    """The module's syntax tree without its top-level ``draw`` (drawing never changes a cell's rows)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    tree.body = [node for node in tree.body if not (isinstance(node, ast.FunctionDef) and node.name == "draw")]
    return tree


def _approxlab_imports(name: str, path: Path) -> set:
    """approxlab modules named by the import statements of one module (anywhere in its code)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(_code_tree(path)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # `from . import x` names a module
    return {m for m in found if (m == PACKAGE or m.startswith(PACKAGE + "."))
            and not any(m == x or m.startswith(x + ".") for x in NOT_KEYED)}


def module_closure(module: str) -> list[str]:
    """``module`` and every approxlab module it imports, transitively, with their packages' __init__."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen or name in NOT_KEYED or name == REGISTRY:
            continue
        path = _module_file(name)
        if path is None:  # `from pkg import function`: not a module
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(_approxlab_imports(name, path))
    return sorted(seen)


_VERSIONS: dict = {}


def code_version(module: str) -> str:
    """SHA-256 over the code of :func:`module_closure` (each module's name and syntax tree, so comments
    and formatting do not count; the study's ``draw`` left out) and the numeric libraries' versions:
    what a cached cell of ``module`` is valid for."""
    if module not in _VERSIONS:
        h = hashlib.sha256()
        for name in module_closure(module):
            h.update(name.encode() + b"\0" + ast.dump(_code_tree(_module_file(name))).encode() + b"\0")
        for lib in ("torch", "numpy", "scipy", "pandas", "sympy"):
            mod = sys.modules.get(lib) or importlib.import_module(lib)
            h.update(f"{lib}={getattr(mod, '__version__', '?')}\0".encode())
        h.update(f"python={platform.python_version()}".encode())
        _VERSIONS[module] = h.hexdigest()
    return _VERSIONS[module]


def _canonical(value):
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"cell parameters must be JSON-able (str, int, float, bool, None, lists, dicts), got "
                    f"{type(value).__name__} {value!r}")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One grid point: ``fn(**params)`` → DataFrame of tidy rows."""

    study: str
    fn: Callable
    params: dict

    @property
    def name(self) -> str:
        inner = ", ".join(f"{k}={value_text(v)}" for k, v in self.params.items())
        return f"{self.study}[{inner}]"

    def key(self) -> str:
        blob = json.dumps(dict(study=self.study, fn=f"{self.fn.__module__}.{self.fn.__qualname__}",
                               params=_canonical(self.params), code=code_version(self.fn.__module__)),
                          sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(blob.encode()).hexdigest()


class CellError(RuntimeError):
    """Cells that raised; ``failures`` = [(cell, message with traceback)]. The others were kept."""

    def __init__(self, failures, total):
        self.failures = failures
        first, detail = failures[0]
        super().__init__(f"{len(failures)} of {total} cells failed; the others are kept in the cache. "
                         f"First: {first.name}:\n{detail}"
                         + "".join(f"\nalso failed: {c.name}" for c, _ in failures[1:6]))


# ----------------------------------------------------------------------------------------------
# store
# ----------------------------------------------------------------------------------------------
class Store:
    """Content-addressed pickles of each cell's rows under ``root/study/``; writes are atomic."""

    def __init__(self, root):
        self.root = Path(root).expanduser()

    def path(self, cell: Cell, key: str) -> Path:
        return self.root / cell.study / key[:2] / f"{key}.pkl"

    def get(self, cell: Cell, key: str):
        path = self.path(cell, key)
        if not path.exists():
            return None
        try:
            return pd.read_pickle(path)["rows"]
        except Exception:  # a truncated file from a killed writer: recompute the cell
            return None

    def put(self, cell: Cell, key: str, rows: pd.DataFrame) -> None:
        path = self.path(cell, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        pd.to_pickle(dict(cell=cell.name, params=cell.params, rows=rows), tmp)
        os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# running
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def limited_threads(threads: int = 1):
    """Inside the block torch and the BLAS libraries (threadpoolctl) use ``threads`` threads; restored after."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def call_cell(fn: Callable, params: dict, threads: int = 1):
    """Run one cell with ``threads`` torch and BLAS threads; ("ok", rows) or ("error", message).

    While the cell runs, glibc keeps freed memory for reuse instead of returning each large block to the
    OS (:func:`approxlab.experiments.timing.freed_memory_kept`; returned when the cell ends): cells that
    allocate multi-MiB temporaries in a loop (features_by_kind's estimates at thousands of features) spent
    about a third of their CPU seconds in the kernel faulting pages in again (``sys_s`` in
    figures/study_speed.csv). The arithmetic is unchanged."""
    from .timing import freed_memory_kept

    try:
        with limited_threads(threads), freed_memory_kept():
            rows = fn(**params)
        if not isinstance(rows, pd.DataFrame):
            rows = pd.DataFrame(rows)
        return "ok", rows
    except Exception as exc:  # reported with the cell's name by the caller
        return "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"


@contextlib.contextmanager
def _backend(cfg: Settings):
    """The joblib backend: loky (default) or Dask on a given scheduler / a new LocalCluster."""
    from joblib import parallel_config

    if cfg.scheduler is None:
        yield cfg.jobs
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - the `dask` extra is missing
        raise ImportError("scheduler= needs dask[distributed]: pip install 'approxlab[dask]'") from exc
    if cfg.scheduler == "local":
        workers = os.cpu_count() if cfg.jobs == -1 else cfg.jobs
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=workers > 1,
                          dashboard_address=None) as cluster, Client(cluster):
            with parallel_config(backend="dask"):
                yield -1
    else:
        with Client(cfg.scheduler), parallel_config(backend="dask"):
            yield -1


def run(cells: Iterable[Cell], *, desc: Optional[str] = None, config: Optional[Settings] = None) -> list:
    """Each cell's rows (DataFrames), in the order of ``cells``: from the cache where present, the rest
    computed on the configured backend and cached as they finish. One tqdm bar for the grid.

    With ``cached_only``: cells missing from the cache are skipped (their slot is None) and counted."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    cfg = config or _settings
    cells = list(cells)
    store = Store(cfg.cache) if cfg.cache is not None else None
    keys = [c.key() for c in cells] if store else [None] * len(cells)
    results = [store.get(c, k) if store else None for c, k in zip(cells, keys)]
    todo = [i for i, r in enumerate(results) if r is None]
    label = desc or (cells[0].study if cells else "cells")
    if cfg.cached_only:
        if cells and len(todo) == len(cells):
            raise LookupError(f"[{label}] cached_only: none of the {len(cells)} cells is in the cache {cfg.cache}")
        if todo:
            print(f"[{label}] cached_only: {len(todo)} of {len(cells)} cells not in the cache, left out")
        return results
    failures = []
    with tqdm(total=len(cells), initial=len(cells) - len(todo), desc=label, disable=not cfg.progress) as bar:
        if todo:
            with _backend(cfg) as n_jobs:
                parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
                threads = cfg.cell_threads
                # each task returns its index, so results are placed by grid order, not arrival order
                out = parallel(delayed(_indexed)(i, cells[i].fn, cells[i].params, threads) for i in todo)
                for i, (status, payload) in out:
                    if status == "ok":
                        results[i] = payload
                        if store:
                            store.put(cells[i], keys[i], payload)
                    else:
                        failures.append((i, cells[i], payload))
                    bar.update(1)
    if failures:
        raise CellError([(cell, msg) for _, cell, msg in sorted(failures, key=lambda f: f[0])], len(cells))
    return results


def _indexed(i, fn, params, threads=1):
    return i, call_cell(fn, params, threads)


def concat(results: list, **kwargs) -> pd.DataFrame:
    """The cells' rows stacked in grid order (cells left out by ``cached_only`` skipped)."""
    frames = [r for r in results if r is not None and len(r)]
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True, **kwargs)
    for col in out.columns:  # a bool column absent from some cells' rows stays boolean (missing: <NA>)
        if out[col].dtype == object and {f[col].dtype.kind for f in frames if col in f.columns} == {"b"}:
            out[col] = out[col].astype("boolean")
    return out
