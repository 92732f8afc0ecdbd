"""Nested random features: prefix draws, the running kernel sums, and the m* search built on them."""

import math

import pytest
import torch

from approxlab import attention_weights
from approxlab.analysis import entropy as ent
from approxlab.analysis import nested
from approxlab.analysis.metrics import row_tv
from approxlab.analysis.nested import NestedDraw, NestedEstimate, directions_blocks
from approxlab.core.protocol import KernelVariant
from approxlab.experiments.studies import features_by_kind as fk
from approxlab.variants import build_kernel, calibrate
from approxlab.variants._projections import nested_directions, simplex_block


def _qk(nq=5, n=24, d=8, scale=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(1, 1, nq, d, generator=gen, dtype=torch.float64),
            scale * torch.randn(1, 1, n, d, generator=gen, dtype=torch.float64))


# ----------------------------------------------------------------------------------------------
# the draw
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["iid", "orthogonal", "simplex"])
def test_every_prefix_of_a_nested_draw_is_the_draw_of_fewer_directions(kind):
    big = nested_directions(45, 8, kind, seed=7)
    for m in (1, 3, 8, 9, 16, 30, 45):
        assert torch.equal(nested_directions(m, 8, kind, seed=7), big[:m])
    assert not torch.equal(nested_directions(45, 8, kind, seed=8), big)
    grown = NestedDraw(8, kind, seed=7)
    assert torch.equal(grown(5), big[:5]) and torch.equal(grown(45), big) and torch.equal(grown(2), big[:2])


def test_nested_blocks_keep_their_geometry():
    d = 6
    w = nested_directions(3 * d, d, "orthogonal", seed=1)
    for b in range(3):
        block = w[b * d:(b + 1) * d]
        gram = block @ block.T
        assert torch.allclose(gram - torch.diag(torch.diagonal(gram)), torch.zeros(d, d, dtype=torch.float64),
                              atol=1e-12)
    s = nested_directions(d, d, "simplex", seed=2)
    unit = s / s.norm(dim=1, keepdim=True)
    ref = simplex_block(d) @ simplex_block(d).T
    assert torch.allclose(unit @ unit.T, ref, atol=1e-12)
    # rows are N(0, I) marginally: E‖w‖² = D (chi_D norms), a loose check on many rows
    many = nested_directions(4000, d, "orthogonal", seed=3)
    assert abs(float((many ** 2).sum(1).mean()) - d) < 5 * math.sqrt(2 * d / 4000)


def test_nested_draw_rejects_bad_arguments():
    with pytest.raises(ValueError, match="directions"):
        nested_directions(4, 2, "gaussian")
    with pytest.raises(ValueError, match="num_features"):
        nested_directions(0, 2)
    with pytest.raises(ValueError, match="seed"):
        NestedDraw(2, seed=-1)


# ----------------------------------------------------------------------------------------------
# the running sums equal the variant at the same first-m directions
# ----------------------------------------------------------------------------------------------
KIND_CASES = [("performer", "orthogonal", dict(kind="positive")), ("performer", "iid", dict(kind="trig")),
              ("hyperbolic", "orthogonal", {}), ("favorpp", "simplex", None), ("favorsharp", "orthogonal", None)]


@pytest.mark.parametrize("variant,directions,params", KIND_CASES)
def test_nested_weights_equal_the_variant_on_the_first_m_directions(variant, directions, params, monkeypatch):
    q, k = _qk(scale=1.2)
    params = calibrate(q, k, variant) if params is None else params
    draw = NestedDraw(8, directions, seed=3)
    est = NestedEstimate(directions_blocks(lambda w: build_kernel(variant, 8, projection=w, **params), draw), q, k)
    monkeypatch.setattr(nested, "BLOCK_BYTES", 8 * 24 * 2 * 5)  # force increments split into blocks of ≤ 5
    for m in (4, 16, 9, 40, 33, 64):  # up, down (continued from the largest m' < m), up again
        direct = attention_weights(q, k, variant, projection=draw(m), **params)
        got = est.weights(m)
        tol = 1e-10 if params.get("kind") == "trig" else 1e-13  # signed trig rows cancel: relative to their size
        assert torch.allclose(got, direct, rtol=0, atol=tol), (m, float((got - direct).abs().max()))
    assert sorted(est.states) == [4, 9, 16, 33, 40, 64]
    est.release()
    assert est.states == {}


def test_nested_sums_are_unbiased_for_exp_of_the_similarity():
    q, k = _qk(nq=1, n=3, d=4, scale=0.6, seed=5)
    x, y = q[0, 0] * 4 ** -0.25, k[0, 0] * 4 ** -0.25
    exact = torch.exp(x @ y.T)[0]
    m, seeds = 16, 400
    estimates = []
    for seed in range(seeds):
        est = NestedEstimate(directions_blocks(lambda w: build_kernel("performer", 4, projection=w),
                                               NestedDraw(4, "orthogonal", seed)), q, k)
        est.sums(8)
        t, r, c = est.sums(m)      # continued from m = 8
        estimates.append((t * torch.exp(r[..., :, None] + c[..., None, :]))[0, 0, 0] / m)
    est = torch.stack(estimates)
    stderr = est.std(0) / math.sqrt(seeds)
    assert bool(((est.mean(0) - exact).abs() < 5 * stderr).all()), (est.mean(0), exact, stderr)


class _Zero(KernelVariant):
    name = "zero"

    def features(self, x):
        return torch.zeros(*x.shape[:-1], 2, dtype=x.dtype), None


def test_a_row_without_kernel_mass_is_an_error_not_zero_weights():
    q, k = _qk()
    est = NestedEstimate(lambda start, stop: _Zero(), q, k)
    with pytest.raises(FloatingPointError, match="row"):
        est.weights(4)
    with pytest.raises(ValueError, match="head dim"):
        NestedEstimate(lambda start, stop: _Zero(), q, k[..., :4])
    with pytest.raises(TypeError, match="callable"):
        NestedEstimate(None, q, k)
    with pytest.raises(TypeError, match="callable"):
        directions_blocks(_Zero, None)


# ----------------------------------------------------------------------------------------------
# the searches: nested m* equals a brute-force scan of the grid on the same draws
# ----------------------------------------------------------------------------------------------
def _scan(evaluate, eps, grid):
    return next((m for m in grid if evaluate(m) <= eps), None)


def test_nested_search_finds_the_brute_force_least_m():
    q, k, v = ent.gaussian_family(64, [2.0, 4.0, 8.0], n_queries=8, head_dim=8, seed=1)
    grid = ent.feature_grid(4, 512)
    search = ent.Search(q, k, v, seed=2)
    table = search.min_features_table([("tv", 0.1), ("kl", 0.02), ("output_error", 0.1)], grid)
    draw = nested_directions(512, 8, "orthogonal", seed=2)
    single_crossing = 0
    for (metric, eps), found in table.items():
        for h in range(3):
            h_ = slice(h, h + 1)
            curve = {m: ent.performer_metrics(q[:, h_], k[:, h_], v[:, h_], m, projection=draw[:m])[metric].item()
                     for m in grid}   # brute force: every grid point, fresh, on the same draw's first m directions
            # the nested search is the same doubling + bisection as on the fresh curve ...
            assert found[h] == ent.search_min_features(curve.__getitem__, eps, grid), (metric, eps, h)
            # ... and, where the curve crosses ε once on the grid, the least passing m of the scan
            scanned = _scan(curve.__getitem__, eps, grid)
            if scanned is None or all(curve[m] <= eps for m in grid if m >= scanned):
                single_crossing += 1
                assert found[h] == scanned, (metric, eps, h)
    assert single_crossing >= 5
    assert search.estimates == {}   # released head by head


def test_kind_search_nested_kinds_use_the_first_directions_of_one_draw():
    q, k = _qk(nq=4, n=16, d=8, seed=3)
    reference = attention_weights(q, k, "softmax").double()
    for label in ("FAVOR+ trig", "FAVOR# simplex"):
        search = fk.KindSearch(label, q, k, seed=1, reference=reference)
        variant, directions, mode, per = fk.KINDS[label]
        params = calibrate(q, k, variant) if mode == "calibrated" else {"kind": mode}
        w = nested_directions(64, 8, directions, seed=1)
        for features in (64, 16, 24):
            direct = attention_weights(q, k, variant, projection=w[:features // per], **params).double()
            assert search.tv(features, 0) == pytest.approx(float(row_tv(reference, direct).mean()), abs=1e-12)
        grid = ent.feature_grid(8, 64)
        found = ent.search_min_features(lambda m: search.tv(m, 0), 0.3, grid)
        assert found == _scan(lambda m: search.tv(m, 0), 0.3, grid)


def test_a_maclaurin_block_is_those_features_of_the_draw():
    q, k = _qk(nq=3, n=10, d=8, seed=4)
    x = q[0, 0] * 8 ** -0.25
    full = build_kernel("maclaurin", 8, num_features=40, seed=2)
    f, c = full.features(x)
    whole = f * torch.exp(c)[:, None] * math.sqrt(40)                     # Z_r(x), every feature
    for start, stop in ((0, 7), (7, 40), (12, 13)):
        part = full.block(start, stop)
        g, d = part.features(x)
        assert torch.allclose(g * torch.exp(d)[:, None] * math.sqrt(stop - start), whole[:, start:stop], rtol=1e-12)
        assert part.num_features == stop - start and torch.equal(part.degrees, full.degrees[start:stop])
    with pytest.raises(ValueError, match="stop"):
        full.block(3, 41)


def test_kind_search_shrinkage_mixes_its_nested_groups_with_the_variants_rule():
    q, k = _qk(nq=4, n=16, d=8, seed=6)
    reference = attention_weights(q, k, "softmax").double()
    search = fk.KindSearch("shrinkage (FAVOR+)", q, k, seed=2, reference=reference)
    mixer = build_kernel("shrinkage", 8, num_features=2, seed=2)
    for features in (32, 8, 17):
        groups = [attention_weights(q, k, "performer", projection=nested_directions(features // 2, 8, seed=2 + g))
                  for g in range(2)]
        direct = mixer.mix(groups, torch.full_like(groups[0], 1 / 16))
        assert search.tv(features, 0) == pytest.approx(float(row_tv(reference, direct).mean()), abs=1e-12)
    # the mixing rule is the variant's explicit form on the same groups
    kernel = build_kernel("shrinkage", 8, num_features=8, seed=2)
    own = attention_weights(q, k, kernel)
    members = [attention_weights(q, k, m) for m in kernel.members]
    assert torch.allclose(kernel.mix(members, torch.full_like(own, 1 / 16)), own, rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="groups"):
        kernel.mix(members[:1], own)
