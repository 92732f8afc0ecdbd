"""A new variant in ONE module outside the package, written as a user (or a new built-in) would, reaches
every part of approxlab with no edit anywhere else: both forms and their agreement (causal too), its
rational degree, its row of the kernel table, its colour, its report card, its bridge rows and its row
of the lesson exercise. Built-in variants go through exactly the same protocol."""

import importlib.util
import sys
import textwrap

import pytest
import torch

import approxlab
from approxlab.analysis import symbolic
from approxlab.analysis.theory import bridge_rows
from approxlab.experiments import figures, style

MODULE = '''
"""φ(x) = relu(x) + 1 > 0, so κ(x, y) = Σ_d (relu(x_d) + 1)(relu(y_d) + 1): positive, affine in each key."""

import sympy as sp
import torch

import approxlab
from approxlab.variants import vector_expression


@approxlab.register_kernel
class ReluPlusOne(approxlab.KernelVariant):
    """φ(x) = relu(x) + 1."""

    name = "relu_plus_one"
    label = "ReLU + 1"
    color = "#117733"
    marker = "s"
    linestyle = "--"

    def features(self, x):
        return torch.relu(x) + 1, None

    def kernel(self, x, y):
        """Closed form relu(x)·relu(y) + Σ relu(x) + Σ relu(y) + D (an independent reference)."""
        rx, ry = torch.relu(x), torch.relu(y)
        return (rx @ ry.transpose(-1, -2) + rx.sum(-1)[..., :, None] + ry.sum(-1)[..., None, :]
                + x.shape[-1]), None

    def kernel_expression(self, dim=2):
        return vector_expression(lambda t: sp.Max(0, t) + 1, dim, features=sp.Symbol("D", integer=True, positive=True))
'''


@pytest.fixture(scope="module")
def variant(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin") / "relu_plus_one.py"
    path.write_text(textwrap.dedent(MODULE))
    spec = importlib.util.spec_from_file_location("relu_plus_one", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["relu_plus_one"] = module
    spec.loader.exec_module(module)  # registers the variant: the only step a user takes
    yield "relu_plus_one"
    approxlab.unregister_kernel("relu_plus_one")
    del sys.modules["relu_plus_one"]


def qkv(n=33, d=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(1, 2, n, d, generator=gen, dtype=torch.float64) for _ in range(3))


@pytest.mark.parametrize("causal", [False, True])
def test_both_forms_agree(variant, causal):
    q, k, v = qkv()
    fast = approxlab.attention(q, k, v, variant, causal=causal)
    ref = approxlab.explicit_attention(q, k, v, variant, causal=causal)
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    if causal:  # a later key moves no earlier output
        k2 = k.clone()
        k2[..., -1, :] += 3.0
        moved = approxlab.attention(q, k2, v, variant, causal=True) - fast
        assert moved[..., :-1, :].abs().max() == 0


def test_symbolic_degree_and_table_row(variant):
    assert symbolic.rational_degree(variant) == (1, 1)
    assert "(1, 1)" in symbolic.explain(variant)
    row = symbolic.derivation_table([(variant, {})]).iloc[0]
    assert (row["variant"], row["numerator_degree"], row["denominator_degree"]) == (variant, 1, 1)
    assert (row["positivity"], row["kernel_of"], row["features"]) == ("positive", "feature vectors", "D")
    assert variant in set(symbolic.derivation_table()["variant"])  # the default table lists it too


def test_style_reads_the_variant(variant):
    assert style.color(variant) == "#117733"
    assert (style.label(variant), style.marker(variant), style.linestyle(variant)) == ("ReLU + 1", "s", "--")


def test_bridge_rows_hold_the_bound(variant):
    q, k, v = qkv()
    rows = bridge_rows(q, k, v, variant, causal=True)
    assert torch.isfinite(rows["delta"]).all()  # κ > 0: every row has a finite δ
    assert (rows["tv"] <= rows["bound"] + 1e-12).all()


def test_report_card(variant):
    card = approxlab.report(variant, profile="small", real=False, progress=False)
    data = card.data
    agree = data[data["part"] == "agreement"]
    assert len(agree) == 2 and agree["passed"].all()
    degree = data[(data["part"] == "symbolic") & (data["series"] == "degree")]
    assert degree["text"].item() == "(1, 1)"
    assert {"delta", "bridge", "speed"} <= set(data["part"])


def test_lesson_exercise_row(variant):
    df = figures.compute("lesson_exercise", variants=["softmax", variant], lengths=[32], min_run_time=0.001)
    row = df[df["variant"] == variant]
    assert len(row) == len(df) // 2 and (row["mean_row_tv"] > 0).all() and (row["output_error"] > 0).all()
