"""The features_by_kind study on a tiny synthetic profile: every kind searched, the table's censored
medians and its FAVOR+ ratios (a lower bound when FAVOR+ is censored), and the drawing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from approxlab.experiments.studies import features_by_kind as fk


def test_median_counts_censored_values_as_infinite():
    vals = pd.Series([10.0, math.nan, 30.0])
    assert fk._median_censored(vals, pd.Series([False, True, False])) == 30.0
    assert math.isnan(fk._median_censored(vals, pd.Series([True, True, False])))


def test_table_ratio_is_a_lower_bound_when_favor_is_censored():
    rows = []
    for kind, ms in (("FAVOR+", [None, None, 4096]), ("FAVOR++", [512, 1024, None])):
        for h, m in enumerate(ms):
            rows.append(dict(record="mstar", family="MiniLM-L6 heads", kind=kind, eps=0.1, head=f"h{h}", seed=0,
                             m_star=math.nan if m is None else float(m), censored=m is None, m_max=8192))
    tab = fk.table(pd.DataFrame(rows)).set_index("kind")
    assert math.isnan(tab.loc["FAVOR+", "median_m_star"]) and tab.loc["FAVOR++", "median_m_star"] == 1024
    assert tab.loc["FAVOR++", "ratio_vs_favor"] == 8.0 and bool(tab.loc["FAVOR++", "ratio_is_lower_bound"])


def test_tiny_profile_runs_and_draws(monkeypatch):
    monkeypatch.setitem(fk.PROFILES, "tiny", dict(gaussian=[2.0, 8.0], gaussian_n=32, n_queries=4, real_n=16,
                                                  real_queries=4, seeds=[0], m_max=64, real=False))
    df = fk.compute("tiny")
    mstar = df[df["record"] == "mstar"]
    assert set(mstar["kind"]) == set(fk.KINDS) and len(mstar) == len(fk.KINDS) * 2 * len(fk.EPSILONS)
    # the easy level (T = 8, small norms) is reached by FAVOR+ within 64 features at TV ≤ 0.2
    easy = mstar[(mstar["kind"] == "FAVOR+") & (mstar["level"] == 8.0) & (mstar["eps"] == 0.2)]
    assert not easy["censored"].iloc[0]
    tab = df[df["record"] == "table"]
    assert len(tab) == len(fk.KINDS) * len(fk.EPSILONS) and (tab["family"] == "gaussian").all()
    dec = df[df["record"] == "decay"]
    assert np.isfinite(dec["tv_at_max"]).all()
    fig = fk.draw(df)
    assert len(fig.axes) == 6

