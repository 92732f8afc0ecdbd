"""figures/window_hybrid.csv: every row under its hybrid bound, and the claims of docs/studies/window_hybrid.md."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from approxlab.experiments.studies import window_hybrid

CSV = Path(__file__).resolve().parent.parent / "figures" / "window_hybrid.csv"


@pytest.fixture(scope="module")
def df():
    return pd.read_csv(CSV)


def test_every_row_under_its_bound(df):
    assert df.rows.sum() >= 300_000
    assert (df.violations == 0).all() and (df.excess_max <= 1e-12).all()
    n = int(df.n.iloc[0])
    assert (df[df.window == n].tv_mean < 1e-12).all() and (df[df.window == n].bound_mean == 0).all()
    assert (df.tv_mean <= df.bound_mean + 1e-12).all()


def test_outside_mass_falls_with_the_window_and_claims_hold(df):
    for (_, _), part in df.groupby(["source", "kernel"]):
        mass = part.sort_values("window").outside_mass_mean.to_numpy()
        assert (mass[1:] <= mass[:-1] + 1e-12).all()
    n = int(df.n.iloc[0])
    tv = df[df.window < n].pivot_table(index=["source", "window"], columns="kernel", values="tv_mean")
    gaussian = tv.loc[[s for s in tv.index.levels[0] if s != "minilm"]]
    assert (gaussian.idxmin(axis=1) == "taylor").all()
    assert (tv.loc["minilm"].idxmin(axis=1) == "performer").all()


def test_cell_on_a_tiny_problem():
    out = window_hybrid.source_cell("tau=1", 16, [0, 3, 16])
    assert len(out) == len(window_hybrid.KERNELS) * 3
    assert (out.violations == 0).all()
    assert (out[out.window == 16].tv_mean < 1e-12).all()
