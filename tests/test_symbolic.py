"""The symbolic side: derived rational degrees, the five derivations (each a sympy identity with zero
residual), their ties to the torch implementation, and the LaTeX outputs."""

import math

import numpy as np
import pytest
import sympy as sp
import torch

from approxlab.analysis import symbolic as S
from approxlab.analysis.metrics import row_tv
from approxlab.experiments.studies.rational_degree import sample_pairs
from approxlab.analysis.symbolic.kernels import s as s_sym
from approxlab.variants import build_kernel
from approxlab.variants._monomials import monomial_features as torch_monomial_features


# ------------------------------------------------------------------ rational degrees
@pytest.mark.parametrize("variant, params, expected", [
    ("linear", {}, (1, 1)),
    ("relu", {}, (1, 1)),
    ("taylor", {"order": 0}, (0, 0)),
    ("taylor", {"order": 1}, (1, 1)),
    ("taylor", {"order": 2}, (2, 2)),
    ("taylor", {"order": 4}, (4, 4)),
    ("polynomial", {"degree": 2}, (2, 2)),
    ("polynomial", {"degree": 3, "c": 2.0}, (3, 3)),
    ("hla", {"factors": 1}, (1, 1)),
    ("hla", {"factors": 2}, (2, 2)),
    ("hla", {"factors": 3, "dim": 1}, (3, 3)),
    ("hla", {"factors": 2, "feature_map": "relu"}, (2, 2)),
    ("hla", {"factors": 3, "feature_map": "affine"}, (3, 3)),
])
def test_rational_degree(variant, params, expected):
    assert S.rational_degree(variant, **params) == expected


def test_rational_degree_does_not_depend_on_row_length_or_dim():
    assert S.rational_degree("taylor", order=3, n=3) == (3, 3)
    assert S.rational_degree("linear", n=3, dim=3) == (1, 1)


def test_degree_in_key_entries_matches_degree_in_similarity():
    """Route check: κ built from the Taylor feature map on vectors has the same degree in the keys."""
    x = sp.symbols("x1:3", positive=True)
    ys = [sp.symbols(f"y{l}_1:3", positive=True) for l in (1, 2)]
    coeffs = [sp.Rational(1, math.factorial(r)) for r in range(4)]
    fx = S.monomial_features(x, coeffs)
    kernels = [sp.expand((fx.T * S.monomial_features(y, coeffs))[0, 0]) for y in ys]
    num, den = sp.fraction(sp.cancel(kernels[0] / (kernels[0] + kernels[1])))
    keys = [v for y in ys for v in y]
    assert (sp.Poly(num, *keys).total_degree(), sp.Poly(den, *keys).total_degree()) == S.rational_degree("taylor", order=3)


@pytest.mark.parametrize("variant", ["softmax", "performer"])
def test_no_finite_degree(variant):
    assert S.rational_degree(variant) is None
    assert "no finite degree" in S.explain(variant)
    assert "(2, 2)" in S.explain("taylor", order=2)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="variant"):
        S.rational_degree("gaussian")
    with pytest.raises(ValueError, match="order"):
        S.rational_degree("taylor", order=-1)
    with pytest.raises(TypeError, match="unexpected parameter"):
        S.rational_degree("linear", order=2)
    with pytest.raises(ValueError, match="n must be"):
        S.rational_degree("linear", n=0)
    with pytest.raises(TypeError, match="dim"):
        S.kernel_expression("linear", dim=1.5)
    with pytest.raises(ValueError, match="delta"):
        S.worst_case_row(-1.0)


# ------------------------------------------------------------------ sympy κ = torch κ
def test_sympy_kernels_agree_with_torch_on_the_positive_orthant():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, generator=gen, dtype=torch.float64) + 0.1
    for variant, params in [("linear", {}), ("relu", {}), ("hla", {"factors": 2}), ("hla", {"factors": 3})]:
        expr = S.kernel_expression(variant, dim=3, **params)
        torch_value = build_kernel(variant, 3, **params).kernel(x[None], y[None])[0].item()
        k = len(expr.key) // 3  # hla: every factor sees x and y (identity projections)
        subs = dict(zip(expr.query, x.tolist() * k)) | dict(zip(expr.key, y.tolist() * k))
        assert float(expr.concrete.subs(subs)) == pytest.approx(torch_value, rel=1e-12)
    s_val = 0.7
    for variant, params in [("taylor", {"order": 3}), ("polynomial", {"degree": 3, "c": 2.0}),
                            ("hla", {"factors": 2, "feature_map": "affine"})]:
        kernel = build_kernel(variant, 3, **params)
        assert float(S.kernel_expression(variant, **params).kappa.subs(s_sym, s_val)) == \
            pytest.approx(kernel.similarity_function(s_val), rel=1e-12)


def test_hla_kronecker_features_give_the_product_of_factor_kernels():
    """The torch twin of the tensor-state identity: ⊗_r φ(x W_r) · ⊗_r φ(y W_r) = Π_r φ(x W_r)·φ(y W_r)."""
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)
    for fmap in ("elu", "relu", "affine"):
        kernel = build_kernel("hla", 3, factors=3, feature_map=fmap, projections="orthogonal")
        fx, fy = kernel.features(x)[0], kernel.features(y)[0]
        torch.testing.assert_close(fx @ fy.T, kernel.kernel(x, y)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant, params", [
    ("linear", {}), ("taylor", {"order": 2}), ("taylor", {"order": 3}), ("polynomial", {"degree": 3}),
    ("polynomial", {"degree": 2, "c": 1.0}), ("hla", {"factors": 2}), ("hla", {"factors": 2, "feature_map": "affine"}),
])
def test_feature_dimension_formula_matches_the_implementation(variant, params):
    formula = S.kernel_expression(variant, **params).features
    for dim in (1, 2, 5):
        assert int(formula.subs(S.kernels.D, dim)) == build_kernel(variant, dim, **params).feature_width(dim)


def test_signs_and_monotonicity():
    ke = S.kernel_expression
    from approxlab.variants.linear import elu_plus_one
    from approxlab.variants.relu import relu

    assert S.feature_sign(elu_plus_one) == "positive"
    assert S.feature_sign(relu) == "non-negative"
    assert S.feature_sign(lambda t: t) == "sign-changing"
    assert (S.positivity(ke("softmax")), S.monotonicity(ke("softmax"))) == ("positive", "increasing")
    assert (S.positivity(ke("taylor", order=2)), S.monotonicity(ke("taylor", order=2))) == ("positive", "not monotone")
    assert (S.positivity(ke("taylor", order=3)), S.monotonicity(ke("taylor", order=3))) == ("sign-changing", "increasing")
    assert S.positivity(ke("polynomial", degree=2)) == "non-negative"
    assert S.positivity(ke("relu")) == "non-negative"
    assert S.positivity(ke("performer", kind="trig")) == "sign-changing"
    assert S.monotonicity(ke("taylor", order=0)) == "constant"


# ------------------------------------------------------------------ derivation 1: associativity
@pytest.mark.parametrize("causal", [False, True])
def test_associativity(causal):
    d = S.associativity(n=3, features=2, dv=2, causal=causal)
    assert d.holds, d.residuals
    wrong = d.rhs.copy()
    wrong[0, 0] = wrong[0, 0] * 2
    assert not S.is_zero(S.residual(d.lhs, wrong))


def test_associativity_causal_differs_from_non_causal():
    """The causal identity is not the non-causal one: the efficient sides differ."""
    a, b = S.associativity(n=2, features=1, dv=1), S.associativity(n=2, features=1, dv=1, causal=True)
    assert not S.is_zero(S.residual(a.lhs, b.lhs))


# ------------------------------------------------------------------ derivation 2: HLA tensor state
@pytest.mark.parametrize("factors", [1, 2, 3])
def test_hla_state(factors):
    d = S.hla_state(factors=factors, n=2, dim=2, dv=2)
    assert d.holds, d.residuals
    assert tuple(d.steps[0][1]) == (2,) * factors + (2,)


# ------------------------------------------------------------------ derivation 3: Taylor
@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_taylor_features(order):
    d = S.taylor_features(order=order, dim=2)
    assert d.holds, d.residuals


def test_symbolic_taylor_features_are_the_torch_features():
    x = np.array([0.3, -1.2, 0.8])
    coeffs = build_kernel("taylor", 3, order=3).coefficients
    sym = S.monomial_features(sp.symbols("x1:4"), [sp.nsimplify(a) for a in coeffs])
    values = np.array([float(e) for e in sym.subs(dict(zip(sp.symbols("x1:4"), x)))])
    ours = torch_monomial_features(torch.tensor(x)[None], coeffs).numpy()[0]
    np.testing.assert_allclose(np.sort(values), np.sort(ours), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5, 6])
def test_taylor_roots_even_order_has_none(order):
    assert S.taylor_real_roots(order) == (0 if order % 2 == 0 else 1)
    d = S.taylor_minimum(order)
    assert d.holds


# ------------------------------------------------------------------ derivation 4: FAVOR+
def test_gaussian_kernel_is_unbiased():
    d = S.gaussian_kernel(dim=2)
    assert d.holds, d.residuals
    u, mgf = S.gaussian_mgf()
    assert mgf == sp.exp(u ** 2 / 2)
    x = sp.symbols("x_1:3", real=True)
    y = sp.symbols("y_1:3", real=True)
    assert not S.is_zero(sp.simplify(d.lhs - sp.exp(2 * (x[0] * y[0] + x[1] * y[1]))))


def test_performer_lemma2_variance():
    d = S.performer_variance(dim=2)
    assert d.holds, d.residuals
    assert not S.is_zero(sp.simplify(sp.expand(d.lhs - 2 * d.rhs)))


# ------------------------------------------------------------------ derivation 5: the bridge
def test_bridge_worst_tv_is_tanh_half_delta():
    d = S.bridge_tv()
    assert d.holds, d.residuals
    delta = sp.Symbol("delta", positive=True)
    assert not S.is_zero(sp.simplify((d.lhs - sp.tanh(delta)).rewrite(sp.exp)))


def test_bridge_numerically_with_torch_rows():
    for delta in (0.05, 0.5, 2.0):
        p, a = S.worst_case_row(delta)
        assert row_tv(torch.tensor(a, dtype=torch.float64), torch.tensor(p, dtype=torch.float64)).item() == pytest.approx(math.tanh(delta / 2), rel=1e-12)
    gen = torch.Generator().manual_seed(0)
    delta = 0.7
    s = 2 * torch.randn(20000, 16, generator=gen, dtype=torch.float64)
    eps = delta * (2 * torch.rand(s.shape, generator=gen, dtype=torch.float64) - 1)
    eps[:5000] = delta * torch.sign(eps[:5000])  # extreme ±δ patterns too
    tv = row_tv(torch.softmax(s + eps, -1), torch.softmax(s, -1))
    assert tv.max().item() <= math.tanh(delta / 2) + 1e-12
    assert tv.max().item() > 0.5 * math.tanh(delta / 2)  # the bound is not vacuous on these rows


# ------------------------------------------------------------------ rendering and table
def test_latex_rendering_and_table_export():
    latex = S.bridge_tv()._repr_latex_()
    assert latex.startswith("$$\\begin{aligned}") and "\\tanh" in latex and "holds" in latex
    assert "\\kappa" in S.kernel_expression("taylor", order=2)._repr_latex_()
    assert sp.latex(S.kernel_expression("taylor", order=2)) == r"\frac{s^{2}}{2} + s + 1"  # κ itself
    assert sp.sympify(S.kernel_expression("taylor", order=1)) == s_sym + 1
    df = S.derivation_table([("softmax", {}), ("linear", {}), ("taylor", {"order": 2})])
    assert list(df["numerator_degree"].astype(object).where(df["numerator_degree"].notna(), None)) == [None, 1, 2]
    tex = S.to_latex(df)
    assert "\\toprule" in tex and "(2, 2)" in tex and "none" in tex and "\\frac{s^{2}}{2} + s + 1" in tex
    with pytest.raises(ValueError, match="columns"):
        S.to_latex(df, columns=("kappa", "colour"))


def test_sample_pairs_cover_the_similarity_range():
    x, y = sample_pairs(4000, 16)
    np.testing.assert_allclose(x.norm(dim=-1), 2.0, rtol=1e-12)
    np.testing.assert_allclose(y.norm(dim=-1), 2.0, rtol=1e-12)
    sim = (x * y).sum(-1)
    assert sim.min() < -3.9 and sim.max() > 3.9
