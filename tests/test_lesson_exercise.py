"""figures/lesson_exercise.csv holds what the lesson-exercise page (docs/studies/lesson_exercise.md) says of it.

The divergences are seeded, so they hold whatever machine regenerated the CSV; the timings are not checked here
(they depend on the machine: the page reads them from the CSV as they are).
"""

from pathlib import Path

import pandas as pd
import pytest

from approxlab import VARIANTS

CSV = Path(__file__).resolve().parent.parent / "figures" / "lesson_exercise.csv"


def _csv():
    df = pd.read_csv(CSV)
    return df[~df["causal"].astype(bool)]


def test_every_variant_at_every_length():
    df = _csv()
    assert "softmax" in set(df["variant"]) and set(df["variant"]) <= set(VARIANTS)   # variants added since: at the next run
    assert df.groupby("variant")["n"].nunique().eq(df["n"].nunique()).all()
    assert (df["time_ms"] > 0).all() and df[["mean_row_tv", "output_error"]].notna().all().all()


def test_divergence_is_flat_in_n_and_maclaurin_is_not_a_distribution():
    df = _csv()
    spread = df.groupby("variant")["mean_row_tv"].agg(lambda x: x.max() - x.min())
    # a window hybrid is not a pure kernel: its exact window holds a share w/N of the keys that shrinks with N
    assert spread.drop(["maclaurin", "window"], errors="ignore").max() < 0.02
    assert df.loc[df["variant"] == "maclaurin", "mean_row_tv"].min() > 1     # signed "weights": TV beyond 1
    assert (df.loc[df["variant"] == "softmax", ["mean_row_tv", "output_error"]] == 0).all().all()


def test_window_hybrid_tends_to_its_outside_kernel_as_n_grows():
    """The window's share of the keys, w/N, shrinks with N, so the hybrid's row TV approaches that of the kernel
    it uses outside the window (Hedgehog by default) from one side, step by step."""
    df = _csv()
    if "window" not in set(df["variant"]):
        pytest.skip("this CSV predates the window hybrid")
    tv = df.pivot_table(index="n", columns="variant", values="mean_row_tv").sort_index()
    gap = (tv["window"] - tv["hedgehog"]).abs().to_numpy()
    assert (gap[1:] < gap[:-1]).all(), gap


def test_favorsharp_at_its_defaults_is_favorpp():
    df = _csv()
    sharp = df[df["variant"] == "favorsharp"].set_index("n")
    plus = df[df["variant"] == "favorpp"].set_index("n")
    assert (sharp["mean_row_tv"] == plus["mean_row_tv"]).all()


def test_output_error_falls_with_n():
    df = _csv()
    for variant, rows in df[~df["variant"].isin(["softmax", "maclaurin"])].groupby("variant"):
        errors = rows.sort_values("n")["output_error"].to_numpy()
        assert (errors[1:] < errors[:-1]).all(), variant


def test_runs_under_its_profiles_memory_budget():
    # the full profile's 8 GiB lets the TV sample keep every feature map's key features at N = 65536;
    # a budget given as an override holds for the whole run (here too small for the explicit weights)
    import approxlab
    from approxlab.core.budget import MemoryBudgetError, WorkBudgetError
    from approxlab.experiments.studies import lesson_exercise

    assert lesson_exercise.PROFILES["full"]["memory_budget"] == 8 * 2**30
    assert lesson_exercise.PROFILES["full"]["work_budget"] >= 1e13  # HLA at N = 65536: about 1.1e12 FLOPs
    quick = lesson_exercise.PROFILES["quick"]
    assert quick["memory_budget"] is None and quick["work_budget"] is None  # the process's own budgets
    small = dict(variants=["softmax", "linear"], lengths=[32], min_run_time=0.001)
    with pytest.raises(MemoryBudgetError, match="explicit form's weights"):
        lesson_exercise.compute(memory_budget=1024, **small)
    with pytest.raises(WorkBudgetError, match="over the work budget"):
        lesson_exercise.compute(work_budget=10, **small)
    before = approxlab.get_memory_budget(), approxlab.get_work_budget()
    df = lesson_exercise.compute(memory_budget=2**30, work_budget=1e9, **small)
    assert (approxlab.get_memory_budget(), approxlab.get_work_budget()) == before
    assert len(df) == 2 and df["mean_row_tv"].notna().all()
