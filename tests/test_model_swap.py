"""The committed figures/model_swap.csv (the model_swap study on all-MiniLM-L6) and the claims that
docs/studies/model_swap.md makes from it: each claim is checked against whatever CSV regenerated it."""

import math
import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
CSV = ROOT / "figures" / "model_swap.csv"
PAGE = ROOT / "docs" / "studies" / "model_swap.md"


@pytest.fixture(scope="module")
def df():
    if not CSV.exists():
        pytest.skip("figures/model_swap.csv not generated (approxlab figures --only model_swap)")
    return pd.read_csv(CSV)


def test_the_softmax_swap_changes_nothing(df):
    soft = df[(df["config"] == "softmax") & (df["scope"] == "model")]
    assert len(soft) == df["N"].nunique()
    assert (soft["embedding_cosine"] > 1 - 1e-6).all() and (soft["recall10"] == 1).all()
    layer = df[(df["config"] == "softmax") & (df["scope"] == "layer")]
    assert (layer["tv"] == 0).all() and (layer["embedding_cosine"] > 1 - 1e-6).all()


def test_the_bridge_holds_in_every_swapped_layer(df):
    """TV ≤ tanh(δ/2) in every row with finite δ, in every layer, for every configuration and N."""
    layer = df[df["scope"] == "layer"]
    measured = layer["bound_holds"].dropna()
    assert len(measured) > 0.9 * len(layer[~layer["config"].str.startswith("maclaurin")])
    assert (measured == 1).all()


def test_distillation_lowered_its_loss(df):
    distilled = df[df["distilled"].astype(bool) & (df["scope"] == "model")]
    assert set(distilled["variant"]) == {"hedgehog-distilled", "linear-distilled", "hla-distilled"}
    assert (distilled["fit_loss_end"] < distilled["fit_loss_start"]).all()


def _page_table():
    """{(configuration, N): (cosine, recall)} from the page's first table."""
    if not PAGE.exists():
        pytest.skip("docs/studies/model_swap.md not written")
    lines = PAGE.read_text().splitlines()
    header = next(line for line in lines if line.startswith("| configuration | state F |"))
    lengths = [int(n) for n in re.findall(r"cos N=(\d+)", header)]
    table = {}
    for line in lines[lines.index(header) + 2:]:  # after the header and its rule, up to the table's end
        if not line.startswith("| "):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        for i, n in enumerate(lengths):
            table[(cells[0], n)] = (float(cells[2 + 2 * i].split()[0]), float(cells[3 + 2 * i]))
    return table


def test_the_pages_table_is_the_csv(df):
    table = _page_table()
    model = df[df["scope"] == "model"].set_index(["config", "N"])
    assert len(table) == len(model)
    for key, (cos, recall) in table.items():
        assert math.isclose(cos, model.loc[key, "embedding_cosine"], abs_tol=0.01), key
        assert math.isclose(recall, model.loc[key, "recall10"], abs_tol=0.05), key


def test_the_pages_verdicts_hold_in_the_csv(df):
    """The claims of docs/studies/model_swap.md's prose, read again from the CSV."""
    model = df[df["scope"] == "model"].set_index(["config", "N"])
    passes = (model["embedding_cosine"] >= 0.99) & (model["recall10"] >= 0.9)
    assert set(model[passes].index.get_level_values(0)) == {"softmax"}  # no variant keeps the model
    lengths = sorted(df["N"].unique())
    for n in lengths:
        kernels = model.xs(n, level="N").drop("softmax")
        assert kernels["embedding_cosine"].idxmax() == "hedgehog distilled F=64"
        gap_before = 1 - model.loc[("hedgehog", n), "embedding_cosine"]
        gap_after = 1 - model.loc[("hedgehog distilled F=64", n), "embedding_cosine"]
        assert gap_before / gap_after > 3  # "by a factor of more than three"
        # HLA at equal state: ahead of the degree-1 map on cosine, behind Hedgehog
        assert (model.loc[("linear distilled F=64", n), "embedding_cosine"]
                < model.loc[("hla distilled F=64", n), "embedding_cosine"]
                < model.loc[("hedgehog distilled F=64", n), "embedding_cosine"])
    assert (model.loc[("minimax degree=2", lengths[0]), "embedding_cosine"]
            == model.xs(lengths[0], level="N").drop("softmax").query("~distilled")["embedding_cosine"].max())
    for m in (64, 256):  # the lesson's claim: FAVOR+ loses quality, and more as N grows
        cos = [model.loc[(f"performer m={m}", n), "embedding_cosine"] for n in lengths]
        assert cos[0] < 0.9 and all(b < a for a, b in zip(cos, cos[1:]))


def test_the_pages_bridge_counts_are_the_csvs(df):
    if not PAGE.exists():
        pytest.skip("docs/studies/model_swap.md not written")
    text = " ".join(PAGE.read_text().split())
    held, left = re.search(r"in all (\d+) \(layer, configuration, N\) cases .*?leave (\d+) cases", text).groups()
    layer = df[df["scope"] == "layer"]
    assert int(held) == layer["bound_holds"].notna().sum() and int(left) == layer["bound_holds"].isna().sum()


def test_the_figure_redraws_from_the_csv(df):
    import matplotlib

    matplotlib.use("Agg")
    from approxlab.experiments import figures

    assert "model_swap" in figures.FIGURES
    fig = figures.draw("model_swap", df)
    assert len(fig.axes) >= 4
