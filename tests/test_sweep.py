"""approxlab.experiments.sweep: a small study's CSV is byte-identical run serially, with jobs=2 (loky), on a Dask
LocalCluster, at another thread count and interrupted-then-resumed; a failing cell is named and the
other cells stay cached."""

from __future__ import annotations

import functools

import pandas as pd
import pytest
import torch

from approxlab.experiments import sweep
from approxlab.experiments.studies import features_vs_entropy as fe

TINY = dict(lengths=[64], seeds=[0, 1], m_max=64, n_queries=4, gaussian=[1.0, 4.0], clustered={2.0: [0.1]},
            compare_lengths=[64], real_lengths=[], real_chunks=1,
            lemma2=dict(norm_sum_sq=[0.5, 1.0], ms=[16, 32], iid_budget=2 ** 10, orth_budget=2 ** 8, draws=20,
                        orth_draws=10))


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(fe.PROFILES, "tiny", TINY)
    return len(fe.cells(TINY, real=False))


def csv_bytes(tmp_path, name, **settings) -> bytes:
    with sweep.configure(progress=False, **settings):
        df = fe.compute("tiny")
    return sweep.write_csv(df, tmp_path / f"{name}.csv").read_bytes()


def counting(fn, calls, fail_at=None, exc=KeyboardInterrupt):
    """fn with the same name (so the same cache key), counting calls; raises exc at call number fail_at."""
    @functools.wraps(fn)
    def wrapper(**params):
        calls.append(params)
        if fail_at is not None and (fail_at(params) if callable(fail_at) else len(calls) == fail_at):
            raise exc(f"injected failure after {len(calls)} calls")
        return fn(**params)
    return wrapper


def test_byte_identical_across_jobs_threads_schedulers_and_resume(tmp_path, tiny, monkeypatch):
    serial = csv_bytes(tmp_path, "serial")
    assert serial.count(b"\n") > tiny and b"mstar_summary" in serial and b"lemma2" in serial
    threads = torch.get_num_threads()
    torch.set_num_threads(2 if threads == 1 else 1)
    try:
        assert csv_bytes(tmp_path, "threads") == serial
    finally:
        torch.set_num_threads(threads)
    assert csv_bytes(tmp_path, "jobs2", jobs=2) == serial
    # a Dask LocalCluster through joblib's dask backend (one in-process worker keeps the test short;
    # jobs > 1 starts that many worker processes)
    assert csv_bytes(tmp_path, "dask", jobs=1, scheduler="local") == serial
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        address = cluster.scheduler_address  # an existing cluster, as `--scheduler tcp://host:port`
        assert address.startswith("tcp://") or address.startswith("inproc://")
        assert csv_bytes(tmp_path, "dask_address", scheduler=address) == serial

    # interrupted after 5 cells (serially, as a Ctrl-C would), then resumed from the cache
    cache = tmp_path / "cache"
    calls: list = []
    monkeypatch.setattr(fe, "synthetic_cell", counting(fe.synthetic_cell, calls, fail_at=5))
    with pytest.raises(KeyboardInterrupt):
        csv_bytes(tmp_path, "interrupted", cache=cache)
    assert len(calls) == 5
    monkeypatch.undo()
    monkeypatch.setitem(fe.PROFILES, "tiny", TINY)
    resumed: list = []
    monkeypatch.setattr(fe, "synthetic_cell", counting(fe.synthetic_cell, resumed))
    assert csv_bytes(tmp_path, "resumed", cache=cache) == serial
    synthetic = sum(c.fn.__name__ == "synthetic_cell" for c in fe.cells(TINY, real=False))
    assert len(resumed) == synthetic - 4  # the four finished before the interruption were not recomputed
    again: list = []
    monkeypatch.setattr(fe, "synthetic_cell", counting(fe.synthetic_cell, again))
    assert csv_bytes(tmp_path, "rerun", cache=cache) == serial and again == []  # nothing recomputed


def test_failing_cell_is_named_and_the_others_are_kept(tmp_path, tiny, monkeypatch):
    cache = tmp_path / "cache"
    real = fe.synthetic_cell
    calls: list = []
    bad = lambda p: p["seed"] == 1 and p["family"] == "gaussian" and p["index"] == 1 and p["kind"] == "trig"  # noqa: E731
    monkeypatch.setattr(fe, "synthetic_cell", counting(real, calls, fail_at=bad, exc=ValueError))
    with pytest.raises(sweep.CellError) as info:
        csv_bytes(tmp_path, "failing", cache=cache)
    message = str(info.value)
    assert message.startswith("1 of 24 cells failed") and "kind='trig'" in message and "features_vs_entropy[family='gaussian'" in message and "seed=1" in message
    assert "'index': 1" not in message and "index=1" in message and "ValueError: injected failure" in message
    assert [c.name for c, _ in info.value.failures] == [c.name for c in fe.cells(TINY, real=False)
                                                         if c.fn is fe.synthetic_cell and bad(c.params)]
    assert len(calls) == sum(c.fn is fe.synthetic_cell for c in fe.cells(TINY, real=False))  # all others ran
    fixed: list = []
    monkeypatch.setattr(fe, "synthetic_cell", counting(real, fixed))
    with sweep.configure(cached_only=True, cache=cache, progress=False):
        partial = fe.compute("tiny")  # the failed cell is the one left out
    assert len(partial[partial["record"] == "mstar"]) == (len(calls) - 1) * 3 * len(fe.EPSILONS) and fixed == []
    with sweep.configure(cached_only=True, cache=tmp_path / "empty", progress=False):
        with pytest.raises(LookupError, match="none of the 24 cells"):
            fe.compute("tiny")
    assert csv_bytes(tmp_path, "fixed", cache=cache) == csv_bytes(tmp_path, "fresh")
    assert len(fixed) == 1 + len(calls)  # the failed cell on the cached run, then all for "fresh"


def test_cache_key_follows_parameters_and_code(tmp_path):
    closure = sweep.module_closure("approxlab.experiments.studies.features_vs_entropy")
    assert {"approxlab.analysis.entropy", "approxlab.variants.performer", "approxlab.experiments.studies.features_vs_entropy"} <= set(closure)
    assert "approxlab.experiments.sweep" not in closure and "approxlab.experiments.style" not in closure
    a = sweep.Cell("s", fe.lemma2_cell, dict(kind="positive", orthogonal=True, budget=8, draws=10, norm_sum_sq=[1.0], m=4))
    b = sweep.Cell("s", fe.lemma2_cell, {**a.params, "m": 8})
    assert a.key() == sweep.Cell("s", fe.lemma2_cell, dict(a.params)).key() != b.key()
    assert a.name == "s[kind='positive', orthogonal=True, budget=8, draws=10, norm_sum_sq=[1.0], m=4]"
    # a code change in a module of the closure changes the version; a comment or the draw function does not
    src = tmp_path / "mod.py"
    src.write_text("X = 1\n\ndef draw(df):\n    return 1\n")
    tree = lambda: __import__("ast").dump(sweep._code_tree(src))  # noqa: E731
    before = tree()
    src.write_text("X = 1  # a comment\n\ndef draw(df):\n    return 2\n")
    assert tree() == before
    src.write_text("X = 2\n")
    assert tree() != before


def test_settings_and_csv_policy(tmp_path):
    with pytest.raises(ValueError, match="jobs"):
        sweep.Settings(jobs=0)
    with pytest.raises(ValueError, match="scheduler"):
        sweep.Settings(scheduler="myhost:8786")
    with pytest.raises(ValueError, match="cached_only"):
        sweep.Settings(cached_only=True)
    with pytest.raises(TypeError, match="JSON-able"):
        sweep.Cell("s", fe.lemma2_cell, dict(m=torch.tensor(1))).key()
    df = pd.DataFrame(dict(a=[1.0, float("nan"), float("inf"), 1 / 3], b=pd.array([0.1, 0.2, 1.0, 2.5], dtype="float32"),
                           c=[1, 2, 3, 4]))
    text = sweep.write_csv(df, tmp_path / "x.csv").read_text()
    assert text == "a,b,c\n1,0.1,1\n,0.2,2\ninf,1.0,3\n0.333333333333,2.5,4\n"
