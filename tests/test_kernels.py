"""Bring your own kernel: a kernel defined here (not in approxlab) through every public entry point,
the report card and the command line; softmax and Attention argument checks; notebook hygiene."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pandas as pd
import pytest
import sympy as sp
import torch

import approxlab
from approxlab.experiments import bench
from approxlab.experiments import cli
from approxlab.analysis import metrics
from approxlab.analysis import symbolic
from approxlab.analysis import theory
from approxlab.experiments.report_card import report


class ShiftedQuadratic(approxlab.KernelVariant):
    """κ(s) = s² + 2s + 2 = (s + 1)² + 1 > 0, with exact features φ(x) = [x ⊗ x, √2 x, √2]."""

    name = "shifted_quadratic"

    def features(self, x):
        ones = torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
        return torch.cat([(x[..., :, None] * x[..., None, :]).flatten(-2), math.sqrt(2) * x, math.sqrt(2) * ones],
                         dim=-1), None

    def similarity_function(self, s):
        return s * s + 2 * s + 2

    def kernel(self, x, y):  # the closed form: the explicit form is an independent reference
        return self.similarity_function(x @ y.transpose(-1, -2)), None


class HalfRelu:
    """A protocol object that does not subclass KernelVariant: κ = relu(x)·relu(y) on half the entries
    (exact zeros), with a per-key log scale the engine must carry."""

    def __init__(self, shift: float = 0.5):
        self.shift = shift

    def query_features(self, x):
        return torch.relu(x[..., ::2]), None

    def key_features(self, x):
        return torch.relu(x[..., ::2]), torch.full(x.shape[:-1], self.shift, dtype=x.dtype)


@pytest.fixture
def registered():
    approxlab.register_kernel("shifted_quadratic", ShiftedQuadratic)
    yield "shifted_quadratic"
    approxlab.unregister_kernel("shifted_quadratic")


def qkv(n=37, d=6, dv=5, seed=0, heads=2):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(1, heads, n, d, generator=gen, dtype=torch.float64),
            torch.randn(1, heads, n, d, generator=gen, dtype=torch.float64),
            torch.randn(1, heads, n, dv, generator=gen, dtype=torch.float64))


# ----------------------------------------------------------------------------------------------
# every entry point
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("form", ["object", "class", "name", "protocol"])
def test_explicit_and_efficient_agree_in_float64(causal, form, registered):
    variant = {"object": ShiftedQuadratic(), "class": ShiftedQuadratic, "name": registered,
               "protocol": HalfRelu()}[form]
    q, k, v = qkv()
    fast = approxlab.attention(q, k, v, variant, causal=causal)
    ref = approxlab.explicit_attention(q, k, v, variant, causal=causal)
    module = approxlab.Attention(variant, causal=causal)(q, k, v)
    assert torch.allclose(fast, ref, rtol=0, atol=1e-10 * ref.abs().max().item())
    assert torch.equal(module, fast)
    weights = approxlab.attention_weights(q, k, variant, causal=causal)
    mass = weights.sum(-1)
    assert torch.all((mass - 1).abs() < 1e-12) or form == "protocol"  # relu rows may have no mass


def test_custom_kernel_is_its_similarity_function():
    """The weights are κ(s_ij)/Σ_l κ(s_il) with κ = s² + 2s + 2: checked against a direct computation."""
    q, k, _ = qkv()
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    kappa = s ** 2 + 2 * s + 2
    expected = kappa / kappa.sum(-1, keepdim=True)
    got = approxlab.attention_weights(q, k, ShiftedQuadratic())
    assert torch.allclose(got, expected, atol=1e-14)


def test_registered_name_everywhere(registered):
    assert registered in approxlab.variant_names()
    q, k, v = qkv(n=16)
    by_name = approxlab.attention(q, k, v, registered)
    assert torch.equal(by_name, approxlab.attention(q, k, v, ShiftedQuadratic()))
    deltas = theory.row_deltas(q, k, registered)
    assert torch.equal(deltas, theory.row_deltas(q, k, ShiftedQuadratic()))
    div = metrics.row_divergence(q, k, [registered, "linear"])
    assert set(div) == {registered, "linear"}
    assert symbolic.rational_degree(registered) == (2, 2)
    cases = bench.scaling_cases([registered, ShiftedQuadratic()], [16], causal=(False,), head_dim=6)
    df = bench.run(cases, min_run_time=0.001, min_runs=1, progress=False)
    assert list(df["method"]) == [registered, registered] and (df["status"] == "ok").all()
    assert df["time_ms"].gt(0).all()


def test_registry_guards():
    with pytest.raises(ValueError, match="built-in"):
        approxlab.register_kernel("linear", ShiftedQuadratic)
    with pytest.raises(ValueError, match="identifier"):
        approxlab.register_kernel("no spaces", ShiftedQuadratic)
    with pytest.raises(KeyError, match="never_registered"):
        approxlab.unregister_kernel("never_registered")
    with pytest.raises(ValueError, match="variant must be one of"):
        approxlab.attention(*qkv(n=4), "shifted_quadratic")  # not registered outside the fixture
    with pytest.raises(TypeError, match="bound"):
        approxlab.attention(*qkv(n=4), ShiftedQuadratic(), order=2)


def test_symbolic_derives_degree_sign_and_monotonicity():
    expr = symbolic.kernel_expression(ShiftedQuadratic())
    assert sp.expand(expr.kappa - (symbolic.kernels.s ** 2 + 2 * symbolic.kernels.s + 2)) == 0
    assert symbolic.rational_degree(ShiftedQuadratic()) == (2, 2)
    assert symbolic.positivity(expr) == "positive"
    assert symbolic.monotonicity(expr) == "not monotone"  # decreasing below s = −1
    s = sp.Symbol("s")
    assert symbolic.rational_degree(sp.exp(s) / (1 + s ** 2)) is None  # not rational in s
    assert symbolic.rational_degree((1 + s / 3) ** 3) == (3, 3)
    assert "no finite degree" in symbolic.explain(sp.exp(s) / (1 + s ** 2))
    with pytest.raises(ValueError, match="no sympy form"):
        symbolic.kernel_expression(HalfRelu())
    with pytest.raises(ValueError, match="symbol s alone"):
        symbolic.rational_degree(s + sp.Symbol("t"))


def test_zero_aware_bound_holds_and_reduces_to_tanh():
    """B_Z ≤ TV ≤ B_Z + (1 − B_Z) tanh(δ_P/2) on rows with mass, for kernels with exact zeros; for a
    positive kernel it is tanh(δ/2) (module docstring of approxlab.analysis.theory)."""
    q, k, v = qkv(n=64, d=8, heads=4)
    for variant in ("relu", HalfRelu()):
        r = theory.bridge_rows(2 * q, 2 * k, v, variant)
        mass = r["has_mass"]
        assert bool((~torch.isfinite(r["delta"])).any())  # δ = ∞ on rows with zeros: the plain bound is vacuous
        assert bool((r["tv"][mass] <= r["bound_positive"][mass] + 1e-12).all())
        assert bool((r["tv"][mass] >= r["zero_mass"][mass] - 1e-12).all())
        assert float(r["bound_positive"][mass].mean()) < 1.0
    r = theory.bridge_rows(q, k, v, ShiftedQuadratic())
    assert torch.allclose(r["bound_positive"], r["bound"].double()) and float(r["zero_mass"].abs().max()) == 0.0


# ----------------------------------------------------------------------------------------------
# softmax and Attention argument checks (issue 11, items 10 and 11)
# ----------------------------------------------------------------------------------------------
def test_softmax_rejects_kernel_parameters():
    q, k, v = qkv(n=8)
    with pytest.raises(TypeError, match="softmax takes no kernel parameters.*num_features"):
        approxlab.attention(q, k, v, "softmax", num_features=8, chunk_size=-3)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        approxlab.attention(q, k, v, "softmax", chunk_size=-3)
    with pytest.raises(ValueError, match="backend"):
        approxlab.attention(q, k, v, "softmax", backend="triton")
    with pytest.raises(TypeError, match="softmax takes no kernel parameters.*order"):
        approxlab.attention_weights(q, k, "softmax", order=2)
    with pytest.raises(TypeError, match="softmax takes no kernel parameters.*order"):
        approxlab.Attention("softmax", order=2)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(causal="yes"), TypeError, "causal"),
    (dict(scale=-1), ValueError, "scale"),
    (dict(foo=1), TypeError, "foo"),
    (dict(chunk_size=0), ValueError, "chunk_size"),
    (dict(backend="cuda"), ValueError, "backend"),
])
def test_attention_module_validates_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        approxlab.Attention("linear", **kwargs)


def test_attention_module_checks_parameter_values_and_builds_once():
    with pytest.raises(ValueError, match="order"):
        approxlab.Attention("taylor", order=-1)
    with pytest.raises(ValueError, match="kind"):
        approxlab.Attention("performer", kind="cosine")
    layer = approxlab.Attention("taylor", order=2)
    q, k, v = qkv(n=8)
    kernel = layer.kernel(q.shape[-1])
    layer(q, k, v)
    layer(q, k, v)
    assert layer.kernel(q.shape[-1]) is kernel  # built at construction, reused by every call


def test_attention_module_keeps_projection_as_buffer():
    projection = torch.randn(16, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    layer = approxlab.Attention("performer", projection=projection)
    assert "projection" in layer.state_dict()
    q, k, v = qkv(n=12)
    expected = approxlab.attention(q, k, v, "performer", projection=projection)
    assert torch.equal(layer(q, k, v), expected)
    other = approxlab.Attention("performer", projection=torch.zeros_like(projection))
    other.load_state_dict(layer.state_dict())
    assert torch.equal(other(q, k, v), expected)  # the loaded projection is the one used
    layer.float()
    assert layer.projection.dtype == torch.float32
    out = layer(q.float(), k.float(), v.float())
    assert torch.allclose(out.double(), expected, atol=1e-4)
    with pytest.raises(ValueError, match="head dim"):
        layer(*qkv(n=4, d=8))


def test_parameters_are_documented():
    """Each variant's parameters are listed from its own signature; the entry points' docstrings are written
    out (nothing filled in at import) and point to that list."""
    from approxlab.variants import parameters_doc

    listed = parameters_doc()
    for text in ("performer(num_features=None", "taylor(order=2)", "factors=2", "polynomial(degree=2, c=None)"):
        assert text in listed
    for obj in (approxlab.attention, approxlab.attention_weights, approxlab.Attention):
        assert "{parameters}" not in obj.__doc__ and "parameters_doc" in obj.__doc__


# ----------------------------------------------------------------------------------------------
# the report card and the command line
# ----------------------------------------------------------------------------------------------
def test_report_card_of_a_custom_kernel():
    card = report(ShiftedQuadratic(), profile="small", real=False, progress=False)
    data, summary = card.data, card.summary
    assert set(data["part"]) == {"agreement", "symbolic", "delta", "bridge", "speed"}
    agree = data[data["part"] == "agreement"]
    assert agree["passed"].all() and agree["value"].max() <= 1e-10
    degree = data[(data["part"] == "symbolic") & (data["series"] == "degree")]
    assert degree["text"].item() == "(2, 2)"
    delta = data[data["part"] == "delta"].pivot(index="R", columns="series", values="delta")
    assert (delta["kernel"] >= delta["best polynomial, degree 2"] - 1e-9).all()  # nothing beats the best
    assert (delta["best polynomial, degree 2"] >= delta["best rational, type (2, 2)"] - 1e-9).all()
    bridge = data[data["part"] == "bridge"]
    assert (bridge["tv"] <= bridge["bound"] + 1e-12).all() and np.isfinite(bridge["delta"]).all()
    speed = data[data["part"] == "speed"]
    assert set(speed["series"]) == {"kernel", "sdpa"} and (speed["status"] == "ok").all()
    assert summary["quantity"].str.contains("explicit vs efficient").sum() == 2
    fig = card.figure
    assert len(fig.axes) >= 6


def test_report_card_of_a_kernel_with_zeros(tmp_path):
    card = report(HalfRelu(), profile="small", real=False, parts=("agreement", "symbolic", "delta", "bridge"),
                  progress=False)
    bridge = card.data[card.data["part"] == "bridge"]
    mass = bridge["has_mass"].astype(bool)
    assert (~np.isfinite(bridge["delta"])).any()
    assert (bridge.loc[mass, "tv"] <= bridge.loc[mass, "bound_positive"] + 1e-12).all()
    paths = card.save(tmp_path)
    assert all(p.exists() for p in paths)
    assert pd.read_csv(tmp_path / "report_HalfRelu.csv")["part"].nunique() == 4


def test_cli_report_after_registration(registered, tmp_path, capsys):
    cli.main(["report", registered, "--profile", "small", "--real", "no", "--parts", "agreement", "symbolic", "delta",
              "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "explicit vs efficient" in out
    assert (tmp_path / f"report_{registered}.png").stat().st_size > 0
    df = pd.read_csv(tmp_path / f"report_{registered}.csv")
    assert df.loc[df["part"] == "agreement", "value"].max() <= 1e-10


def test_cli_imports_a_plugin_file(tmp_path):
    plugin = tmp_path / "plugin.py"
    plugin.write_text("import approxlab, torch\n"
                      "class Sq(approxlab.KernelVariant):\n"
                      "    def features(self, x):\n"
                      "        return torch.relu(x) ** 2, None\n"
                      "approxlab.register_kernel('plugin_sq', Sq)\n")
    try:
        cli.main(["--import", str(plugin), "bench", "--methods", "plugin_sq", "--lengths", "16", "--causal", "no",
                  "--head-dim", "4", "--min-run-time", "0.001", "--csv", str(tmp_path / "b.csv")])
        assert pd.read_csv(tmp_path / "b.csv")["method"].tolist() == ["plugin_sq"]
    finally:
        approxlab.unregister_kernel("plugin_sq")


# ----------------------------------------------------------------------------------------------
# notebook hygiene
# ----------------------------------------------------------------------------------------------
def test_import_keeps_the_matplotlib_backend():
    """Importing approxlab (figures, style, report) must not switch the backend a notebook chose."""
    import matplotlib

    import approxlab.experiments.style

    before = matplotlib.get_backend()
    try:
        matplotlib.use("svg")
        for name in ("approxlab.experiments.style", "approxlab.experiments.figures", "approxlab.experiments.report_card"):
            importlib.reload(importlib.import_module(name))  # runs the module code again
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)


def test_bench_prints_no_profiler_lines(capfd):
    bench.run(bench.scaling_cases(["linear"], [16], causal=(False,), head_dim=4), min_run_time=0.001,
              progress=False)
    captured = capfd.readouterr()
    assert "profiler_start" not in captured.out + captured.err


def test_module_is_importable_beside_the_function():
    module = importlib.import_module("approxlab.api")
    assert callable(approxlab.attention) and module.unchecked_kernel_attention is approxlab.unchecked_kernel_attention


def test_attention_module_hla_projections_buffer_and_pickle(tmp_path):
    projections = torch.linalg.qr(torch.randn(2, 6, 6, dtype=torch.float64,
                                              generator=torch.Generator().manual_seed(2)))[0]
    layer = approxlab.Attention("hla", factors=2, projections=projections)
    assert "projections" in layer.state_dict()
    q, k, v = qkv(n=10)
    assert torch.equal(layer(q, k, v), approxlab.attention(q, k, v, "hla", factors=2, projections=projections))
    torch.save(layer, tmp_path / "layer.pt")
    again = torch.load(tmp_path / "layer.pt", weights_only=False)
    assert torch.equal(again(q, k, v), layer(q, k, v))


def test_lesson_exercise_figure_takes_custom_kernels_and_axes():
    import matplotlib.figure

    from approxlab.experiments import figures

    df = figures.compute("lesson_exercise", variants=["softmax", "linear", ShiftedQuadratic()], lengths=[32],
                         min_run_time=0.001)
    assert list(df["variant"]) == ["softmax", "linear", "shifted_quadratic"]
    assert df.loc[df["variant"] == "shifted_quadratic", "mean_row_tv"].item() > 0
    fig = matplotlib.figure.Figure()
    axes = fig.subplots(1, 3)
    assert figures.draw("lesson_exercise", df, ax=axes) is fig
    with pytest.raises(TypeError, match="lays out its own panels"):
        figures.draw("kernel_error", df, ax=axes[0])


@pytest.mark.real
def test_report_card_on_the_real_heads():
    from approxlab.experiments.report_card import real_available

    if not real_available():
        pytest.skip("needs the optional real extra")
    card = report(HalfRelu(), profile="small", real=True, parts=("real",), progress=False)
    real = card.data[card.data["part"] == "real"]
    assert len(real) == 2 * 12 * 64 and set(real["layer"]) == {0, 1}  # 2 layers × 12 heads × 64 rows
    mass = real["has_mass"].astype(bool)
    assert (real.loc[mass, "tv"] <= real.loc[mass, "bound_positive"] + 1e-12).all()
    assert card.summary["quantity"].str.contains("all-MiniLM-L6").any()


def test_report_passes_kernel_parameters_named_like_its_options():
    """``degree`` is polynomial's parameter, not the report's comparison degree."""
    card = report("polynomial", degree=3, c=3.0, profile="small", real=False, parts=("symbolic",), progress=False)
    symbolic_rows = card.data.set_index("series")["text"]
    assert symbolic_rows["degree"] == "(3, 3)"
