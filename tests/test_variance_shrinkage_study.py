"""figures/variance_shrinkage.csv: the claims of docs/studies/variance_shrinkage.md, and the study's cell."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from approxlab.experiments.studies import variance_shrinkage as study

CSV = Path(__file__).resolve().parent.parent / "figures" / "variance_shrinkage.csv"


@pytest.fixture(scope="module")
def table():
    t = study.binned(pd.read_csv(CSV))
    t = t[t.rows >= 20]
    return t.pivot_table(index=["kind", "features", "bin"], columns="method", values="error"), t


def test_within_noise_of_the_better_part_everywhere_and_below_both_where_they_cross(table):
    p, t = table
    better = p[["FAVOR+", "uniform"]].min(axis=1)
    ratio = p["shrinkage FAVOR+"] / better
    assert len(p) >= 20
    assert (ratio <= 1.03).all()                                  # never more than 3 % above the better part
    assert (ratio.loc["MiniLM"] < 0.95).sum() >= 3                  # clearly below both on the real heads
    assert ratio.loc[("Gaussian", 256)].iloc[0] < 0.9               # where FAVOR+ beats uniform
    lam = t[t.method == "shrinkage FAVOR+"].set_index(["kind", "features", "bin"]).shrinkage
    assert lam.loc[("Gaussian", 64)].iloc[-1] > 0.85                 # the baseline's regime: λ near 1
    assert ((p["FAVOR++"] < p["uniform"]) & (p["FAVOR+"] >= p["uniform"])).sum() == 0


def test_weighted_norm_sum_is_the_attention_mean_of_the_pair_norms():
    gen = torch.Generator().manual_seed(0)
    q, k = (torch.randn(1, 1, 7, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    x, y = q / 4 ** 0.25, k / 4 ** 0.25
    b = torch.softmax(x @ y.transpose(-1, -2), -1)
    direct = (b * ((x[..., :, None, :] + y[..., None, :, :]) ** 2).sum(-1)).sum(-1)
    torch.testing.assert_close(study.weighted_norm_sum(q, k), direct)


def test_cell_on_a_tiny_problem():
    out = study.source_cell("tau=1", 16, [8], 1)
    assert set(out.method) == set(study.METHODS)
    assert out.groupby("method").rows.sum().eq(4 * 16).all()
    assert out[out.method == "shrinkage FAVOR+"].shrinkage_mean.between(0, 1).all()
