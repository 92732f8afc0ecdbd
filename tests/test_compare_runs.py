"""scripts/compare_runs.py: the before/after table of two runs of the studies, per profile."""

from pathlib import Path

import pandas as pd


def _run(folder: Path, stem: str, values, seconds: float, profile: str) -> Path:
    folder.mkdir()
    pd.DataFrame(dict(n=[1, 2, 3], error=values, time_ms=[seconds] * 3)).to_csv(folder / f"{stem}.csv", index=False)
    pd.DataFrame(dict(study=["bridge"], profile=[profile], wall_s=[seconds])).to_csv(folder / "study_times.csv",
                                                                                     index=False)
    return folder


def test_full_profile_compares_the_full_files_and_times_apart_from_costs(tmp_path, script):
    compare = script("compare_runs")
    before = _run(tmp_path / "a", "bridge_full", [1.0, 2.0, 4.0], 7.0, "full")
    after = _run(tmp_path / "b", "bridge_full", [1.0, 2.5, 4.0], 5.0, "full")
    assert compare.main([str(before), "c0", str(after), "c1", "--profile", "full", "--out", str(tmp_path / "o")]) == 0
    changed = pd.read_csv(tmp_path / "o" / "full_profile_csv_changes.csv").iloc[0]
    assert changed["study"] == "bridge" and not changed["same_bytes"]
    assert changed["max_abs_diff"] == 0.5 and changed["max_abs_column"] == "error"
    assert changed["max_rel_diff"] == 0.25 and changed["cost_columns"] == "time_ms"  # time_ms differs, not counted
    times = pd.read_csv(tmp_path / "o" / "full_profile_times.csv")
    assert list(times["code"]) == ["before", "after"] and list(times["wall_s"]) == [7.0, 5.0]
    assert not (tmp_path / "o" / "main_job_times.csv").exists()


def test_quick_profile_ignores_the_full_files(tmp_path, script):
    compare = script("compare_runs")
    before = _run(tmp_path / "a", "bridge_full", [1.0, 2.0, 4.0], 7.0, "full")
    after = _run(tmp_path / "b", "bridge_full", [1.0, 2.0, 4.0], 5.0, "full")
    assert compare.main([str(before), "c0", str(after), "c1", "--out", str(tmp_path / "o")]) == 0
    assert pd.read_csv(tmp_path / "o" / "main_job_times.csv").empty
    assert (tmp_path / "o" / "main_job_csv_changes.csv").read_text() == "since\n"  # a header, no study compared
