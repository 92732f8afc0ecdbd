"""Rewrite the README's table of study times from figures/study_times.csv (what `approxlab figures` records):

    python scripts/readme_times.py          # after a run that changed figures/study_times.csv

The table sits between the two markers below; tests/test_readme_times.py fails when it differs from the CSV.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from approxlab.experiments.figures import TIMES_CSV, times_markdown

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- study times: scripts/readme_times.py -->", "<!-- end of study times -->"


def block(times_csv: Path = ROOT / "figures" / TIMES_CSV) -> str:
    return f"{BEGIN}\n{times_markdown(pd.read_csv(times_csv))}\n{END}"


def current(readme: Path = ROOT / "README.md") -> str:
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme} has no study-times markers ({BEGIN} … {END})")
    start = text.index(BEGIN)
    return text[start:text.index(END, start) + len(END)]


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    readme.write_text(text.replace(current(readme), block()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
