"""What keeps the studies fast without changing their numbers: the adaptive timing budget, the per-study
seconds ``approxlab figures`` records, and the shared work and cached cells of features_by_kind."""

from __future__ import annotations

import time
import types

import pandas as pd
import pytest
import torch

from approxlab import attention_weights
from approxlab.variants import build_kernel
from approxlab.analysis.metrics import row_tv
from approxlab.experiments import figures, sweep
from approxlab.experiments.studies import features_by_kind as fk
from approxlab.experiments.timing import time_call


# ----------------------------------------------------------------------------------------------
# adaptive timing budget
# ----------------------------------------------------------------------------------------------
def test_adaptive_timing_stops_at_the_least_runs_when_any_spread_is_tight_enough():
    t = time_call(lambda: time.sleep(0.001), warmup=1, min_run_time=0.0, min_runs=4, rel_iqr=1e9, max_run_time=5.0)
    assert t.stop == "tight" and t.runs == 4 and t.median_s >= 0.001


def test_adaptive_timing_spends_its_budget_on_a_noisy_call_and_keeps_at_least_min_runs():
    calls = []

    def noisy():  # every call outlasts a sample's least length, so each sample is one call: 50, 10, 50, ... ms
        calls.append(None)
        time.sleep(0.05 if len(calls) % 2 else 0.01)

    t = time_call(noisy, warmup=1, min_run_time=0.0, min_runs=5, rel_iqr=0.05, max_run_time=0.1)
    assert t.number == 1 and t.stop == "budget" and t.runs >= 5 and t.spent_s >= 0.1
    assert t.iqr_s > 0.05 * t.median_s and t.rel_iqr == t.iqr_s / t.median_s


def test_time_call_returns_the_warm_up_output_and_checks_its_budget():
    t = time_call(lambda: torch.ones(3), warmup=1, min_run_time=0.0, min_runs=3, rel_iqr=1e9, max_run_time=0.1)
    assert torch.equal(t.output, torch.ones(3))
    assert time_call(lambda: 1, warmup=0, min_run_time=0.01, min_runs=3).output is None
    with pytest.raises(ValueError, match="rel_iqr"):
        time_call(lambda: 1, rel_iqr=0.0)
    with pytest.raises(ValueError, match="max_run_time"):
        time_call(lambda: 1, min_run_time=0.2, rel_iqr=0.1, max_run_time=0.1)


# ----------------------------------------------------------------------------------------------
# per-study seconds: study_times.csv
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def fake_study(monkeypatch):
    """A study module 'fake' whose compute sleeps 50 ms and returns two rows."""
    module = types.ModuleType("approxlab_fake_study")

    def compute(profile="quick"):
        time.sleep(0.05)
        return pd.DataFrame({"x": [1.0, 2.0], "profile": profile})

    def draw(df):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot(df["x"])
        return fig

    module.NAME, module.compute, module.draw = "fake", compute, draw
    monkeypatch.setitem(figures.FIGURES, "fake", module)
    return "fake"


def test_make_many_records_each_study_seconds_and_full_profiles_get_their_own_files(fake_study, tmp_path):
    figures.make_many([fake_study], "quick", tmp_path, cache=None)
    figures.make_many([fake_study], "full", tmp_path, cache=None)
    assert (tmp_path / "fake.csv").exists() and (tmp_path / "fake_full.csv").exists()
    assert pd.read_csv(tmp_path / "fake_full.csv")["profile"].eq("full").all()
    times = pd.read_csv(tmp_path / figures.TIMES_CSV)
    assert list(times["profile"]) == ["full", "quick"] and (times["study"] == "fake").all()
    assert (times["wall_s"] >= 0.05).all() and (times["cpu_s"] >= 0).all() and (times["cache"] == "off").all()
    # a re-run replaces its own row and keeps the others
    figures.make_many([fake_study], "quick", tmp_path, cache=None)
    again = pd.read_csv(tmp_path / figures.TIMES_CSV)
    assert len(again) == 2
    assert again.loc[again["profile"] == "full", "finished_utc"].item() == times.loc[
        times["profile"] == "full", "finished_utc"].item()


def test_figures_are_written_in_the_background_but_before_make_many_returns(fake_study, tmp_path, monkeypatch):
    import threading

    writers = []
    real_save = figures.save_figure

    def save(*args, **kwargs):
        writers.append(threading.current_thread().name)
        return real_save(*args, **kwargs)

    monkeypatch.setattr(figures, "save_figure", save)
    times = figures.make_many([fake_study, fake_study], "quick", tmp_path, cache=None)
    assert all(name.startswith("figure-writer") for name in writers) and len(writers) == 2
    assert all((tmp_path / f"fake.{ext}").stat().st_size > 0 for ext in ("csv", "png", "pdf"))
    assert (times["write_s"] > 0).all() and (times["compute_s"] >= 0.05).all()
    assert (times["wall_s"] >= times["compute_s"]).all()


def test_a_figure_that_cannot_be_written_stops_the_run_with_its_error(fake_study, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(figures, "save_figure", broken)
    with pytest.raises(OSError, match="disk full"):
        figures.make_many([fake_study], "quick", tmp_path, cache=None)


def test_record_times_orders_rows_as_the_figures_run(tmp_path):
    path = tmp_path / "t.csv"
    figures.record_times(pd.DataFrame(dict(study=["learned_maps"], profile=["quick"], wall_s=[2.0])), path)
    figures.record_times(pd.DataFrame(dict(study=["bridge"], profile=["quick"], wall_s=[1.0])), path)
    assert list(pd.read_csv(path)["study"]) == ["bridge", "learned_maps"]
    with pytest.raises(ValueError, match="profile"):
        figures.output_name("bridge", "slow")


# ----------------------------------------------------------------------------------------------
# features_by_kind: shared work gives the same numbers; cells go through the cache
# ----------------------------------------------------------------------------------------------
def _inputs():
    gen = torch.Generator().manual_seed(3)
    return (torch.randn(1, 2, 4, 8, generator=gen, dtype=torch.float64),
            torch.randn(1, 2, 16, 8, generator=gen, dtype=torch.float64))


def test_kind_search_with_shared_reference_and_maclaurin_prefix_equals_building_each_call():
    q, k = _inputs()
    reference = attention_weights(q, k, "softmax").double()
    shared = fk.KindSearch("random Maclaurin", q, k, seed=1, reference=reference, max_features=64)
    draw = build_kernel("maclaurin", 8, num_features=64, seed=1)
    for head in range(2):
        for m in (8, 32, 64):  # the first m features of one draw of 64, sums continued from the smaller m
            h = slice(head, head + 1)
            direct = attention_weights(q[:, h], k[:, h], draw.block(0, m)).double()
            assert shared.tv(m, head) == pytest.approx(float(row_tv(reference[:, h], direct).mean()), rel=1e-9)
    with pytest.raises(ValueError, match="max_features"):
        fk.KindSearch("random Maclaurin", q, k)
    own = fk.KindSearch("FAVOR++", q, k, seed=0)
    assert fk.KindSearch("FAVOR++", q, k, seed=0, reference=reference).tv(16, 1) == own.tv(16, 1)


def test_features_by_kind_cells_are_cached_and_give_the_uncached_rows(monkeypatch, tmp_path):
    monkeypatch.setitem(fk.PROFILES, "tiny", dict(gaussian=[2.0, 8.0], gaussian_n=16, n_queries=2, real_n=16,
                                                  real_queries=2, seeds=[0], m_max=32, real=False))
    fresh = fk.compute("tiny")
    with sweep.configure(cache=tmp_path, progress=False):
        first = fk.compute("tiny")
    stored = list((tmp_path / fk.STUDY).rglob("*.pkl"))
    assert len(stored) == len(fk.KINDS)  # one cell per kind (one family, one seed)
    with sweep.configure(cache=tmp_path, cached_only=True, progress=False):
        second = fk.compute("tiny")  # raises LookupError if nothing is cached; computes nothing
    pd.testing.assert_frame_equal(fresh, first)
    pd.testing.assert_frame_equal(first, second)


def test_lesson_exercise_rows_carry_their_timing_spread_and_the_warm_up_output():
    from approxlab import attention
    from approxlab.analysis.inputs import gaussian_qkv
    from approxlab.analysis.metrics import output_error
    from approxlab.experiments.studies import lesson_exercise

    df = lesson_exercise.compute("quick", variants=["softmax", "linear"], lengths=[32], min_run_time=0.01)
    assert set(df["time_stop"]) <= {"tight", "budget"} and (df["time_runs"] >= 3).all()
    assert df["other_cpu_load"].notna().all() and (df["time_iqr_ms"] >= 0).all()
    q, k, v = gaussian_qkv(1, 8, 32, 64)
    expected = output_error(attention(q, k, v, "linear"), attention(q, k, v, "softmax"), v).mean().item()
    assert df.set_index("variant").loc["linear", "output_error"] == expected
