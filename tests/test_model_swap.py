"""The committed figures/model_swap.csv (the model_swap study on all-MiniLM-L6), its tables, and
docs/studies/model_swap.md, whose numbers and words are computed from that CSV when the page is built."""

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
    assert set(distilled["variant"]) == {"hedgehog-distilled", "linear-distilled", "hla-distilled", "window-distilled"}
    assert (distilled["fit_loss_end"] < distilled["fit_loss_start"]).all()


def test_the_quick_profile_carries_what_the_study_reports(df):
    """Every built-in kernel swapped into every layer at every N, the random ones at two feature counts or
    more, the three distilled maps and the window hybrid at one state, each with per-layer rows."""
    from approxlab.experiments.studies import model_swap

    model = df[df["scope"] == "model"]
    lengths = set(df["N"])
    assert len(lengths) >= 2
    for name, _ in model_swap.FIXED:
        assert set(model[model["variant"] == name]["N"]) == lengths, name
    assert model[model["variant"] == "performer"]["config"].nunique() >= 2
    for name in model_swap.RANDOM:
        assert set(model[model["variant"] == name]["N"]) == lengths, name
    distilled = model[model["distilled"].astype(bool)]
    assert distilled["state"].nunique() == 1 and (distilled.groupby("config")["N"].nunique() == len(lengths)).all()
    layer = df[df["scope"] == "layer"]
    assert (layer.groupby(["config", "N"])["layer"].nunique() == 6).all()
    assert set(layer["config"]) == set(model["config"])
    assert model["recall10"].between(0, 1).all() and model["embedding_cosine"].notna().all()


def test_the_tables_are_the_csv(df):
    from approxlab.experiments.studies import model_swap

    table = model_swap.model_table(df).set_index("configuration")
    model = df[df["scope"] == "model"].set_index(["config", "N"])
    assert len(table) * df["N"].nunique() == len(model)
    for (config, n), row in model.iterrows():
        assert table.loc[config, f"cos N={n}"] == row["embedding_cosine"]
        assert table.loc[config, f"R@10 N={n}"] == row["recall10"]
    assert table.loc["softmax", "keeps the model at N"] == ", ".join(str(n) for n in sorted(df["N"].unique()))
    layer = model_swap.layer_table(df)
    assert list(layer["configuration"]) == [c for c in table.index if c in set(layer["configuration"])]
    assert "✓" not in model_swap.summary_markdown(df) and "| softmax |" in model_swap.summary_markdown(df)


def _page_expressions():
    """The page's csv-setup blocks and {csv} roles, in order: ("setup", name, code) or ("role", text)."""
    if not PAGE.exists():
        pytest.skip("docs/studies/model_swap.md not written")
    text = PAGE.read_text()
    pieces = re.finditer(r"```\{csv-(setup|frame)\}[ ]*(\S*)\n((?::[^\n]*\n)*)(.*?)```|\{csv\}`([^`]*)`", text, re.S)
    for m in pieces:
        if m.group(5) is not None:
            yield ("role", m.group(5))
        else:
            yield (m.group(1), m.group(2), m.group(4))


def test_every_number_on_the_page_evaluates_on_the_csv(df, monkeypatch):
    """What the csvnum extension does when the page is built, without Sphinx: each setup block runs, each
    table and each {csv} role evaluates on figures/model_swap.csv to a finite number or a word."""
    monkeypatch.syspath_prepend(str(ROOT / "docs" / "_ext"))
    pytest.importorskip("sphinx")
    csvnum = __import__("csvnum")
    namespace = {"pd": pd, "np": __import__("numpy"), "csv": csvnum.read_csv, "fmt": csvnum.fmt,
                 "rng": csvnum.rng, "study": csvnum.study}
    roles = 0
    for kind, *rest in _page_expressions():
        if kind == "role":
            expression = rest[0].rsplit(" :: ", 1)
            value = eval(expression[0], namespace)  # noqa: S307
            out = csvnum.fmt(value, expression[1] if len(expression) > 1 else None)
            assert out and out.lower() != "nan", rest[0]
            roles += 1
            continue
        name, code = rest
        if name:
            namespace["df"] = df
        result = csvnum._run(code, namespace)
        if kind == "frame":
            assert isinstance(result, pd.DataFrame) and not result.empty
    assert roles > 50


def test_the_figure_redraws_from_the_csv(df):
    import matplotlib

    matplotlib.use("Agg")
    from approxlab.experiments import figures

    assert "model_swap" in figures.FIGURES
    fig = figures.draw("model_swap", df)
    assert len(fig.axes) >= 4
