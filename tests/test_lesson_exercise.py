"""The README's lesson-exercise section against the committed figures/lesson_exercise.csv."""

from pathlib import Path

import pandas as pd

from approxlab.studies.lesson_exercise import readme_table

ROOT = Path(__file__).resolve().parent.parent


def _committed():
    return pd.read_csv(ROOT / "figures" / "lesson_exercise.csv")


def test_readme_table_is_the_committed_csv():
    assert readme_table(_committed()) in (ROOT / "README.md").read_text()


def test_readme_claims_on_the_lesson():
    df = _committed()
    n_max = df["n"].max()
    at = df[df["n"] == n_max].set_index("variant")
    speedup = at.loc["softmax", "time_ms"] / at["time_ms"]
    # "the 64-128-feature maps ... 15-57× faster", "random features 4.5-11×", "wide maps 1.3-2×" (2 significant
    # digits)
    narrow = speedup[["linear", "relu", "dpfp", "cosformer", "t2r", "hedgehog"]]
    assert 14.5 <= narrow.min() and narrow.max() < 57.5
    random_features = speedup[["performer", "hyperbolic", "favorpp", "favorsharp"]]
    assert 4.45 <= random_features.min() and random_features.max() < 11.5
    wide = speedup[["taylor", "polynomial", "minimax", "hla"]]
    assert 1.25 <= wide.min() and wide.max() < 2.05
    # TV flat in N (every variant but Maclaurin within 0.02), Maclaurin's signed "weights" beyond TV 1
    spread = df.groupby("variant")["mean_row_tv"].agg(lambda x: x.max() - x.min())
    assert spread.drop("maclaurin").max() < 0.02
    maclaurin = df.loc[df["variant"] == "maclaurin", "mean_row_tv"]
    assert maclaurin.min() > 1 and f"row TV {maclaurin.min():.0f}-{maclaurin.max():.0f}, beyond" in (ROOT / "README.md").read_text()
    # FAVOR# at its defaults is FAVOR++: the same divergence
    sharp = df[df["variant"] == "favorsharp"].set_index("n")
    plus = df[df["variant"] == "favorpp"].set_index("n")
    assert (sharp["mean_row_tv"] == plus["mean_row_tv"]).all()
    # the output error falls with N for every variant but Maclaurin
    for variant, rows in df[df["variant"] != "softmax"].groupby("variant"):
        if variant != "maclaurin":
            errors = rows.sort_values("n")["output_error"].to_numpy()
            assert (errors[1:] < errors[:-1]).all(), variant
