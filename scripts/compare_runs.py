"""Compare runs of the main job (``approxlab figures --no-cache --out DIR``) study by study:

    python scripts/compare_runs.py BEFORE_DIR BEFORE_COMMIT AFTER_DIR AFTER_COMMIT \
        [--between LABEL DIR COMMIT ...] [--profile quick|full] [--out figures]

writes ``main_job_times.csv`` (each run's ``study_times.csv`` rows with ``code`` = before, each ``--between``
label in order, after, and the commit) and ``main_job_csv_changes.csv`` (per study and per run compared with the
after run, ``since`` = that run's code: whether its CSV is the same bytes, else the largest absolute and
relative difference (of values ≥ 1e-6) over the numeric result columns both runs share, the columns that
measure the run itself (:data:`COST`) and the settings a study records beside its results (:data:`SETTINGS`),
listed, not compared, and the rows and columns each has). ``--profile full`` compares the runs' full-profile
files (``NAME_full.csv``) and rows instead, written as ``full_profile_times.csv`` and
``full_profile_csv_changes.csv``.
"""

from __future__ import annotations

import argparse
import filecmp
from pathlib import Path

import numpy as np
import pandas as pd

from approxlab.experiments.figures import FIGURES, TIMES_CSV, output_name
from approxlab.experiments.sweep import write_csv


def times(runs: list, profile: str = "quick") -> pd.DataFrame:
    """``runs``: (code, folder, commit) in order; the rows of ``profile`` in their ``study_times.csv``, stacked
    (the repository's figures/ holds both profiles' rows)."""
    frames = []
    for code, d, commit in runs:
        rows = pd.read_csv(d / TIMES_CSV)
        frames.append(rows[rows["profile"] == profile].assign(code=code, commit=commit))
    out = pd.concat(frames, ignore_index=True)
    return out[["study", "code", "commit"] + [c for c in out.columns if c not in ("study", "code", "commit")]]


#: columns that measure the run itself (time, calls, load, rates, memory): they differ from run to run and are
#: counted apart from the results
COST = ("time", "seconds", "_ms", "runs", "load", "gflops", "gbps", "tflops", "fraction", "peak_mem", "threads")


#: columns that record a setting of the run, not a result (how many rows a mean was sampled on)
SETTINGS = ("tv_rows",)


def is_cost(column: str) -> bool:
    return any(part in column for part in COST)


def changes(before: Path, after: Path, profile: str = "quick") -> pd.DataFrame:
    rows = []
    for name in FIGURES:
        file = f"{output_name(name, profile)}.csv"
        a, b = before / file, after / file
        if not (a.exists() and b.exists()):
            continue
        row = dict(study=name, same_bytes=filecmp.cmp(a, b, shallow=False))
        x, y = pd.read_csv(a, low_memory=False), pd.read_csv(b, low_memory=False)
        row.update(rows_before=len(x), rows_after=len(y),
                   columns_only_before=" ".join(sorted(set(x.columns) - set(y.columns))),
                   columns_only_after=" ".join(sorted(set(y.columns) - set(x.columns))))
        numeric = [c for c in x.columns if c in y.columns and pd.api.types.is_numeric_dtype(x[c])
                   and pd.api.types.is_numeric_dtype(y[c])]
        shared = [c for c in numeric if not is_cost(c) and c not in SETTINGS]
        row["cost_columns"] = " ".join(c for c in numeric if is_cost(c))
        row["setting_columns"] = " ".join(c for c in numeric if c in SETTINGS)
        if len(x) == len(y) and shared:
            diffs = {}
            for c in shared:
                u, v = x[c].to_numpy(float), y[c].to_numpy(float)
                both = np.isfinite(u) & np.isfinite(v)
                same_kind = bool(((np.isnan(u) == np.isnan(v)) & (np.isinf(u) == np.isinf(v))).all())
                d = np.abs(u[both] - v[both])
                big = np.abs(u[both]) >= 1e-6  # relative differences of values that are not ~0
                rel = d[big] / np.abs(u[both][big])
                diffs[c] = (float(d.max()) if d.size else 0.0, float(rel.max()) if rel.size else 0.0, same_kind)
            worst_abs = max(diffs, key=lambda c: diffs[c][0])
            worst_rel = max(diffs, key=lambda c: diffs[c][1])
            row.update(max_abs_diff=diffs[worst_abs][0], max_abs_column=worst_abs,
                       max_rel_diff=diffs[worst_rel][1], max_rel_column=worst_rel,
                       same_missing=all(v[2] for v in diffs.values()))
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("before_commit")
    parser.add_argument("after", type=Path)
    parser.add_argument("after_commit")
    parser.add_argument("--between", nargs=3, action="append", default=[], metavar=("LABEL", "DIR", "COMMIT"),
                        help="a run between before and after (repeatable, in order)")
    parser.add_argument("--profile", choices=("quick", "full"), default="quick",
                        help="which profile's files and times to compare (default quick)")
    parser.add_argument("--out", type=Path, default=Path("figures"))
    args = parser.parse_args(argv)
    stem = "main_job" if args.profile == "quick" else "full_profile"
    runs = ([("before", args.before, args.before_commit)]
            + [(label, Path(folder), commit) for label, folder, commit in args.between]
            + [("after", args.after, args.after_commit)])
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(times(runs, args.profile), args.out / f"{stem}_times.csv")
    compared = [changes(folder, args.after, args.profile).assign(since=code) for code, folder, _ in runs[:-1]]
    out = pd.concat(compared, ignore_index=True)
    write_csv(out[["since"] + [c for c in out.columns if c != "since"]], args.out / f"{stem}_csv_changes.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
