"""How many Performer random features softmax attention needs, as a function of entropy, N and norms.

Row entropy H_i = −Σ_j a_ij log a_ij, reported as H / log N. The measured quantity is

    m*(ε) = least num_features m on a grid with  mean_i metric_i(m) ≤ ε,

metric ∈ {row TV, KL(softmax ‖ performer), ‖o − ô‖ / rms‖v‖}, found by doubling m then bisecting the
grid between the last failing and first passing power of two (one memoised evaluation per m, shared
by every ε and metric). The estimate at m uses the first m directions of one nested draw and continues
the kernel sums of the largest m already evaluated (:mod:`approxlab.analysis.nested`), through the
variant's own feature maps; the softmax weights are computed once per search.

Theory. With x = q·D^-¼, y = k·D^-¼ and iid w ~ N(0, I), one positive feature gives
Z = φ_w(x)φ_w(y)/e^{x·y} = exp(w·(x+y) − ‖x+y‖²/2), a log-normal with E Z = 1 and (Lemma 2)

    Var Z = e^{‖x+y‖²} − 1          so  MSE(κ̂_m) = (e^{‖x+y‖²} − 1) e^{2x·y} / m.

The same Gaussian moment gives the covariance of two keys of one query,
E[Z_j Z_l] = exp(‖x‖² + x·y_j + x·y_l + y_j·y_l), so to first order (delta method) the normalised weight
â_j = κ̂_j / Σ_l κ̂_l has variance a_j² V_j / m with

    V_j = e^{‖x‖²} [ e^{2x·y_j + ‖y_j‖²} − 2 e^{x·y_j} (K b)_j + bᵀ K b ],   b_l = a_l e^{x·y_l}, K = exp(Y Yᵀ).

Treating each error as Gaussian, E TV ≈ Σ_j a_j √(V_j) / √(2π m), hence the predictions

    m*_lemma2(ε) = (mean_i Σ_j a_ij √(e^{‖x_i+y_j‖²} − 1) / √(2π) / ε)²     (pairs independent)
    m*_delta(ε)  = (mean_i Σ_j a_ij √V_ij / √(2π) / ε)²                      (covariances kept)

Both are first-order: they hold when the per-feature log-normal is not heavy-tailed (‖x+y‖² ≲ 2);
beyond, the sample mean of m features is dominated by rare draws and the measured m* departs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional, Sequence

import numpy as np
import torch
from scipy.special import hyp1f1

from ..core.checks import check_choice, check_int, check_tensor
from ..api import attention_weights
from .metrics import output_error, row_entropy, row_kl, row_tv
from ..variants import Performer, gaussian_projection
from ..variants._projections import draw_projection
from .nested import NestedDraw, NestedEstimate, directions_blocks

METRICS = ("tv", "kl", "output_error")


# ----------------------------------------------------------------------------------------------
# entropy
# ----------------------------------------------------------------------------------------------
def normalized_entropy(weights: torch.Tensor) -> torch.Tensor:
    """H / log N per row of normalised weights (…, Nq, N); 1 = uniform, 0 = one-hot (N > 1)."""
    if not isinstance(weights, torch.Tensor) or weights.ndim < 1:
        raise TypeError(f"weights must be a torch.Tensor of normalised rows (…, N), got {type(weights).__name__}")
    n = weights.shape[-1]
    if n < 2:
        raise ValueError(f"weights need at least 2 keys for H / log N, got N={n}")
    return row_entropy(weights.double()) / math.log(n)


# ----------------------------------------------------------------------------------------------
# input families: (1, L, Nq, D) queries, (1, L, N, D) keys and values, one "head" per level
# ----------------------------------------------------------------------------------------------
def _check_levels(levels, name):
    levels = [float(t) for t in levels]
    if not levels or any(not math.isfinite(t) for t in levels):
        raise ValueError(f"{name} must be a non-empty sequence of finite numbers, got {levels!r}")
    return levels


def gaussian_family(n_keys: int, temperatures: Sequence[float], *, n_queries: int = 64, head_dim: int = 32,
                    seed: int = 0):
    """q, k ~ N(0, I/T), v ~ N(0, I): s = q·k/√D has std 1/T and ‖x‖² ≈ √D / T (x = q·D^-¼).

    Raising the temperature T raises the entropy *and* shrinks ‖x + y‖², so the two move together.
    Returns q (1, L, Nq, D), k, v (1, L, N, D) in float64, one level per head slot.
    """
    temps = _check_levels(temperatures, "temperatures")
    if any(t <= 0 for t in temps):
        raise ValueError(f"temperatures must be positive, got {temps!r}")
    n_keys = check_int(n_keys, "n_keys", minimum=2)
    n_queries = check_int(n_queries, "n_queries", minimum=1)
    head_dim = check_int(head_dim, "head_dim", minimum=1)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    scale = torch.tensor([t ** -0.5 for t in temps], dtype=torch.float64).view(1, -1, 1, 1)
    q = torch.randn(1, len(temps), n_queries, head_dim, generator=gen, dtype=torch.float64) * scale
    k = torch.randn(1, len(temps), n_keys, head_dim, generator=gen, dtype=torch.float64) * scale
    v = torch.randn(1, len(temps), n_keys, head_dim, generator=gen, dtype=torch.float64)
    return q, k, v


def clustered_family(n_keys: int, spreads: Sequence[float], *, norm_sq: float = 4.0, n_queries: int = 64,
                     head_dim: int = 32, seed: int = 0):
    """Fixed norms ‖x‖² = ‖y‖² = ``norm_sq`` (x = q·D^-¼); entropy moved by clustering the keys.

    key direction ∝ √(1−λ) μ + √λ ξ_j/√D (ξ_j ~ N(0, I), μ one shared unit vector), query directions
    isotropic. λ = 0: all keys coincide, attention is uniform (H = log N) and every estimator is exact;
    λ = 1: isotropic keys, s has std ≈ norm_sq/√D, the lowest entropy of the family. ‖x + y‖² stays near
    2·norm_sq throughout, so this family separates entropy from norms.
    """
    lams = _check_levels(spreads, "spreads")
    if any(not 0.0 <= t <= 1.0 for t in lams):
        raise ValueError(f"spreads must lie in [0, 1], got {lams!r}")
    if not (isinstance(norm_sq, (int, float)) and math.isfinite(norm_sq) and norm_sq > 0):
        raise ValueError(f"norm_sq must be a positive finite number, got {norm_sq!r}")
    n_keys = check_int(n_keys, "n_keys", minimum=2)
    n_queries = check_int(n_queries, "n_queries", minimum=1)
    head_dim = check_int(head_dim, "head_dim", minimum=1)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    L = len(lams)
    mu = torch.randn(1, L, 1, head_dim, generator=gen, dtype=torch.float64)
    mu = mu / mu.norm(dim=-1, keepdim=True)
    lam = torch.tensor(lams, dtype=torch.float64).view(1, L, 1, 1)
    xi = torch.randn(1, L, n_keys, head_dim, generator=gen, dtype=torch.float64) / math.sqrt(head_dim)
    keys = (1 - lam).sqrt() * mu + lam.sqrt() * xi
    qdir = torch.randn(1, L, n_queries, head_dim, generator=gen, dtype=torch.float64)
    radius = math.sqrt(norm_sq) * head_dim ** 0.25  # ‖q‖ such that ‖q·D^-¼‖² = norm_sq
    q = radius * qdir / qdir.norm(dim=-1, keepdim=True)
    k = radius * keys / keys.norm(dim=-1, keepdim=True)
    v = torch.randn(1, L, n_keys, head_dim, generator=gen, dtype=torch.float64)
    return q, k, v


# ----------------------------------------------------------------------------------------------
# measurement
# ----------------------------------------------------------------------------------------------
def feature_grid(m_min: int = 8, m_max: int = 16384, per_octave: int = 4) -> list[int]:
    """Integers round(2^(j/per_octave)) from m_min to m_max; m_min, m_max powers of two."""
    m_min = check_int(m_min, "m_min", minimum=1)
    m_max = check_int(m_max, "m_max", minimum=m_min)
    per_octave = check_int(per_octave, "per_octave", minimum=1)
    for name, val in (("m_min", m_min), ("m_max", m_max)):
        if val & (val - 1):
            raise ValueError(f"{name} must be a power of two, got {val}")
    lo, hi = int(math.log2(m_min)), int(math.log2(m_max))
    return sorted({int(round(2 ** (j / per_octave))) for j in range(lo * per_octave, hi * per_octave + 1)})


def weight_metrics(reference: torch.Tensor, approx: torch.Tensor, v: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Row TV, KL(reference ‖ approx) and output error / rms‖v‖ of weights ``approx`` against ``reference``
    (…, Nq, N), means over query rows (…). KL is +inf for a row where an approximate weight is ≤ 0 (underflow,
    or a negative trig weight) under positive reference mass."""
    ref, approx = reference.double(), approx.double()
    tv = row_tv(ref, approx)
    bad = ((approx <= 0) & (ref > 0)).any(-1)
    kl = torch.where(bad, torch.full_like(tv, math.inf), row_kl(ref, approx.clamp_min(1e-300)))
    vv = v.double()
    err = output_error(approx @ vv, ref @ vv, vv)
    return {"tv": tv.mean(-1), "kl": kl.mean(-1), "output_error": err.mean(-1)}


def performer_metrics(q, k, v, num_features: int, *, seed: int = 0, kind: str = "positive",
                      orthogonal: bool = True, reference: Optional[torch.Tensor] = None,
                      projection: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """Row TV, KL(softmax ‖ performer) and output error / rms‖v‖ of Performer(m) vs softmax, per head.

    Returns {metric: (B, H) float64 tensor} of means over query rows (:func:`weight_metrics`).
    ``projection`` (m × D, e.g. ``gaussian_projection(m, D, seed=seed)``, the default draw) skips drawing it.
    """
    ref = attention_weights(q, k, "softmax") if reference is None else reference
    if projection is None:
        projection = gaussian_projection(check_int(num_features, "num_features", minimum=1), q.shape[-1],
                                         orthogonal=orthogonal, seed=seed)
    approx = attention_weights(q, k, "performer", projection=projection, kind=kind)
    return weight_metrics(ref, approx, v)


def search_min_features(evaluate: Callable[[int], float], eps: float, grid: Sequence[int]) -> Optional[int]:
    """Least m on ``grid`` with evaluate(m) ≤ eps: doubling over the powers of two, then bisection.

    Returns None when even the largest grid point fails (censored: m* > max(grid)). ``evaluate`` should
    be memoised by the caller when several ε share it.
    """
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    grid = sorted(set(int(g) for g in grid))
    if not grid:
        raise ValueError("grid must not be empty")
    powers = [i for i, g in enumerate(grid) if g & (g - 1) == 0] or list(range(len(grid)))
    if powers[-1] != len(grid) - 1:
        powers.append(len(grid) - 1)
    fail = None
    for i in powers:
        if evaluate(grid[i]) <= eps:
            lo, hi = (fail if fail is not None else -1), i
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if evaluate(grid[mid]) <= eps:
                    hi = mid
                else:
                    lo = mid
            return grid[hi]
        fail = i
    return None


@dataclass
class Search:
    """Memoised Performer-vs-softmax metrics of one (inputs, seed, kind, orthogonal), head by head.

    Every m is the first m directions of one nested draw (:class:`approxlab.analysis.nested.NestedDraw`,
    shared by all heads), and each head's estimate continues from the largest m it has evaluated
    (:class:`approxlab.analysis.nested.NestedEstimate`), so a search over m costs about one pass over its
    largest m. Heads (the flattened B·H slots of q, k, v) are evaluated only at the m their own search asks
    for; the softmax weights are computed once. Memory: one (Nq, N) float64 matrix per evaluated (m, head),
    until :meth:`release`.
    """

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    seed: int = 0
    kind: str = "positive"
    orthogonal: bool = True

    def __post_init__(self):
        check_choice(self.kind, "kind", {"positive", "trig"})
        for name in ("q", "k", "v"):
            check_tensor(getattr(self, name), name)
        flat = lambda t: t.reshape(1, -1, *t.shape[-2:])  # noqa: E731
        self.q, self.k, self.v = flat(self.q), flat(self.k), flat(self.v)
        self.reference = attention_weights(self.q, self.k, "softmax").double()
        self.cache: Dict[tuple, Dict[str, float]] = {}
        self.draw = NestedDraw(self.q.shape[-1], "orthogonal" if self.orthogonal else "iid", seed=self.seed)
        self.estimates: Dict[int, NestedEstimate] = {}

    @property
    def num_heads(self) -> int:
        return self.q.shape[1]

    def estimate(self, head: int) -> NestedEstimate:
        """The nested estimate of one head (made on first use)."""
        if head not in self.estimates:
            h = slice(head, head + 1)
            d, kind = self.q.shape[-1], self.kind
            blocks = directions_blocks(lambda w: Performer(d, kind=kind, projection=w), self.draw)
            self.estimates[head] = NestedEstimate(blocks, self.q[:, h], self.k[:, h])
        return self.estimates[head]

    def metrics(self, m: int, head: int) -> Dict[str, float]:
        if (m, head) not in self.cache:
            h = slice(head, head + 1)
            out = weight_metrics(self.reference[:, h], self.estimate(head).weights(m), self.v[:, h])
            self.cache[(m, head)] = {name: float(val.reshape(-1)[0]) for name, val in out.items()}
        return self.cache[(m, head)]

    def release(self, head: int) -> None:
        """Drop one head's stored sums (its memoised metrics stay)."""
        self.estimates.pop(head, None)

    def min_features(self, metric: str, eps: float, grid: Sequence[int]) -> list:
        """m*(ε) per head (None where censored), sharing every evaluation through the cache."""
        check_choice(metric, "metric", set(METRICS))
        return [search_min_features(lambda m, h=h: self.metrics(m, h)[metric], eps, grid)
                for h in range(self.num_heads)]

    def min_features_table(self, targets: Sequence[tuple], grid: Sequence[int]) -> Dict[tuple, list]:
        """{(metric, ε): m* per head} for every (metric, ε) in ``targets``, head by head: each head's sums are
        released once its searches are done, so only one head's sums are held at a time."""
        for metric, _ in targets:
            check_choice(metric, "metric", set(METRICS))
        out = {tuple(t): [None] * self.num_heads for t in targets}
        for h in range(self.num_heads):
            for metric, eps in targets:
                out[(metric, eps)][h] = search_min_features(lambda m: self.metrics(m, h)[metric], eps, grid)
            self.release(h)
        return out


# ----------------------------------------------------------------------------------------------
# theory
# ----------------------------------------------------------------------------------------------
def lemma2_relative_mse(norm_sum_sq, num_features):
    """Lemma 2 (positive, iid features): E[(κ̂ − κ)²] / κ² = (e^{‖x+y‖²} − 1) / m."""
    return np.expm1(np.asarray(norm_sum_sq, dtype=float)) / np.asarray(num_features, dtype=float)


def lemma2_trig_relative_mse(x_norm_sq, y_norm_sq, dot, num_features):
    """Lemma 2 (trig, iid): MSE/κ² = e^{‖x‖²+‖y‖²−2x·y} (1 − e^{−‖x−y‖²})² / (2m)."""
    x2, y2, xy = (np.asarray(a, dtype=float) for a in (x_norm_sq, y_norm_sq, dot))
    diff = x2 + y2 - 2 * xy
    return np.exp(x2 + y2 - 2 * xy) * (-np.expm1(-diff)) ** 2 / (2 * np.asarray(num_features, dtype=float))


def orthogonal_pair_covariance(norm_sum_sq, dim):
    """Cov(Z_1, Z_2) of two positive features on orthogonal directions, Z = e^{w·(x+y) − ‖x+y‖²/2}.

    w_1 ⟂ w_2 with independent chi_D norms (the toolkit's orthogonal blocks): with u = ‖x+y‖²,

        E[Z_1 Z_2] = e^{−u} ₁F₁(D; D/2; u/2) = e^{−u/2} ₁F₁(−D/2; D/2; −u/2)     (Kummer),
        Cov = E[Z_1 Z_2] − 1 = −u²/(2(D+2)) + u³/((D+2)(D+4)) + O(u⁴)  < 0 for every u > 0, D ≥ 2.

    The same covariance holds for two hyperbolic features Z = cosh(w·(x+y)) e^{−u/2} (odd powers of
    w·(x+y) average out either way). Derived with sympy in tests/test_orthogonal_features_theory.py.
    """
    u = np.asarray(norm_sum_sq, dtype=float)
    dim = check_int(dim, "dim", minimum=1)
    if np.any(u < 0) or not np.all(np.isfinite(u)):
        raise ValueError(f"norm_sum_sq must be finite and >= 0, got {norm_sum_sq!r}")
    # e^{−u/2} 1F1(−D/2; D/2; −u/2): a polynomial times e^{−u/2} for even D; both factors stay finite
    second = np.exp(-u / 2) * hyp1f1(-dim / 2, dim / 2, -u / 2)
    return second - 1.0


def orthogonal_relative_mse(norm_sum_sq, num_features, dim, kind: str = "positive"):
    """Relative MSE E[(κ̂ − κ)²]/κ² of the m-feature estimate with the toolkit's orthogonal directions.

    Directions come in independent blocks of D mutually orthogonal rows (the last block truncated),
    :func:`approxlab.variants._projections.draw_projection`; only rows of one block are correlated, so with
    P = Σ_blocks b(b − 1) ordered pairs and Var Z the iid per-feature variance,

        MSE/κ² = Var Z / m + P / m² · Cov,      Cov = :func:`orthogonal_pair_covariance`,

    Var Z = e^{u} − 1 (kind "positive", Lemma 2) or ½(1 − e^{−u})(e^{u} − 1) (kind "hyperbolic", m = the
    number of directions, 2m features). For m ≤ D, P/m² = 1 − 1/m: MSE_ort = MSE_iid + (1 − 1/m) Cov.
    Absolute MSE: times κ² = e^{2x·y}.

    Performer (Choromanski et al., "Rethinking Attention with Performers", ICLR 2021), Theorem 2:
    orthogonal positive random features (m ≤ D) give a strictly smaller MSE than iid ones, for any D.
    The paper's full text could not be read here (its abstract and secondary pages only); its bound is
    quoted from memory as MSE_ort ≤ MSE_iid − (1 − 1/m)·2/(D+2)·(SM − e^{−(‖x‖²+‖y‖²)/2})², i.e. relative
    Cov ≤ −2/(D+2)(1 − e^{−u/2})². What is derived and tested here: Cov < 0 exactly for every u > 0, its
    leading term −u²/(2(D+2)) equals that bound's, and Cov lies below the bound on a grid of (D, u).
    """
    check_choice(kind, "kind", {"positive", "hyperbolic"})
    m = np.asarray(num_features)
    if not np.issubdtype(m.dtype, np.integer) or np.any(m < 1):
        raise ValueError(f"num_features must be integers >= 1, got {num_features!r}")
    dim = check_int(dim, "dim", minimum=1)
    u = np.asarray(norm_sum_sq, dtype=float)
    cov = orthogonal_pair_covariance(u, dim)
    full, rest = m // dim, m % dim
    pairs = full * dim * (dim - 1) + rest * (rest - 1)
    m = m.astype(float)
    var = np.expm1(u) if kind == "positive" else 0.5 * -np.expm1(-u) * np.expm1(u)
    return var / m + pairs / m ** 2 * cov


def _scaled(q, k, scale=None):
    d = q.shape[-1]
    root = math.sqrt(1.0 / math.sqrt(d) if scale is None else scale)
    return q.double() * root, k.double() * root


def tv_coefficients(q, k, *, block: int = 1024) -> Dict[str, torch.Tensor]:
    """Per-row c_i with predicted E TV_i ≈ c_i / √m, for Lemma 2 and for the delta method (module doc).

    Returns {"lemma2": (B, H, Nq), "delta": (B, H, Nq)} float64; inf where exp overflows float64.
    Memory O(Nq·N + N·block).
    """
    x, y = _scaled(q, k)
    s = x @ y.transpose(-1, -2)                                   # (B, H, Nq, N)
    a = torch.softmax(s, dim=-1)
    x2 = (x * x).sum(-1)                                          # (B, H, Nq)
    y2 = (y * y).sum(-1)                                          # (B, H, N)
    sum_sq = x2[..., None] + y2[..., None, :] + 2 * s             # ‖x + y‖²
    lemma2 = (a * torch.expm1(sum_sq).sqrt()).sum(-1)
    # delta method: V_j = e^{‖x‖²} [e^{2s_j + ‖y_j‖²} − 2 e^{s_j} (K b)_j + bᵀ K b]
    b = a * torch.exp(s)
    kb = torch.zeros_like(b)
    n = y.shape[-2]
    for start in range(0, n, block):
        part = torch.exp(y @ y[..., start:start + block, :].transpose(-1, -2))   # (B, H, N, blk)
        kb[..., start:start + block] = b @ part
    bkb = (b * kb).sum(-1, keepdim=True)
    inner = torch.exp(2 * s + y2[..., None, :]) - 2 * torch.exp(s) * kb + bkb
    var = torch.exp(x2)[..., None] * inner.clamp_min(0.0)
    delta = (a * var.sqrt()).sum(-1)
    c = 1.0 / math.sqrt(2 * math.pi)
    return {"lemma2": c * lemma2, "delta": c * delta}


def predicted_min_features(coefficient: torch.Tensor, eps: float) -> torch.Tensor:
    """m* = (mean_i c_i / ε)² per head, from per-row c_i of :func:`tv_coefficients`."""
    return (coefficient.mean(-1) / eps) ** 2


def input_summary(q, k) -> Dict[str, torch.Tensor]:
    """Per-head means of H/log N, H, ‖x‖², ‖y‖², and the attention-weighted ‖x+y‖² (B, H)."""
    x, y = _scaled(q, k)
    s = x @ y.transpose(-1, -2)
    a = torch.softmax(s, dim=-1)
    h = row_entropy(a)
    x2, y2 = (x * x).sum(-1), (y * y).sum(-1)
    sum_sq = (a * (x2[..., None] + y2[..., None, :] + 2 * s)).sum(-1)
    return {"entropy": h.mean(-1), "entropy_norm": (h / math.log(k.shape[-2])).mean(-1),
            "x_norm_sq": x2.mean(-1), "y_norm_sq": y2.mean(-1), "weighted_sum_sq": sum_sq.mean(-1)}


# ----------------------------------------------------------------------------------------------
# Lemma 2 check
# ----------------------------------------------------------------------------------------------
def lemma2_pairs(norm_sum_sq: Iterable[float], head_dim: int = 16, seed: int = 0):
    """Pairs (x, y) with prescribed ‖x+y‖² (random directions, ‖x‖ = ‖y‖): x, y (P, D) float64."""
    targets = _check_levels(list(norm_sum_sq), "norm_sum_sq")
    if any(t <= 0 for t in targets):
        raise ValueError(f"norm_sum_sq must be positive, got {targets!r}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(len(targets), head_dim, generator=gen, dtype=torch.float64)
    y = torch.randn(len(targets), head_dim, generator=gen, dtype=torch.float64)
    x, y = x / x.norm(dim=-1, keepdim=True), y / y.norm(dim=-1, keepdim=True)
    factor = torch.tensor(targets, dtype=torch.float64).sqrt() / (x + y).norm(dim=-1)
    return x * factor[:, None], y * factor[:, None]


def lemma2_check(norm_sum_sq: Sequence[float], num_features: Sequence[int], *, draws: int = 1000,
                 feature_budget: int = 2 ** 22, head_dim: int = 16, orthogonal: bool = False,
                 kind: str = "positive", seed: int = 0):
    """Measured relative MSE of the Performer kernel estimate over many independent feature sets.

    For each m, n = max(draws, feature_budget // m) independent sets of m features (iid, or each set
    one orthogonal draw) are stacked into one projection; the variant's own feature map gives every
    φ_f(x)φ_f(y), and set d's estimate is κ̂_d = (n m / m) Σ_{f ∈ d} φ_f(x)φ_f(y) (the map divides by
    √(n m)). Returns dicts: norm_sum_sq, m, draws, measured, predicted (Lemma 2, iid), ratio, its
    stderr, and tail_share = share of Σ(κ̂ − κ)² carried by the top 1% of sets (≈ 0.01–0.05 for light
    tails, large when the log-normal's tail dominates).
    """
    draws = check_int(draws, "draws", minimum=10)
    feature_budget = check_int(feature_budget, "feature_budget", minimum=1)
    check_choice(kind, "kind", {"positive", "trig"})
    if not isinstance(orthogonal, bool):
        raise TypeError(f"orthogonal must be a bool, got {orthogonal!r}")
    x, y = lemma2_pairs(norm_sum_sq, head_dim, seed)
    exact = torch.exp((x * y).sum(-1))
    x2, y2, xy = (x * x).sum(-1).numpy(), (y * y).sum(-1).numpy(), (x * y).sum(-1).numpy()
    rows = []
    for m in num_features:
        m = check_int(m, "num_features", minimum=1)
        n_sets = max(draws, feature_budget // m)
        per_block = max(1, 2 ** 21 // m)
        errs = []
        for start in range(0, n_sets, per_block):
            count = min(per_block, n_sets - start)
            if orthogonal:
                # each set drawn once: straight from draw_projection (the same rows), past gaussian_projection's cache
                proj = torch.cat([draw_projection(m, head_dim, orthogonal=True, seed=seed * 7_919 + 104_729 * m + start + d)
                                  for d in range(count)])
            else:
                gen = torch.Generator().manual_seed(seed * 7_919 + 104_729 * m + start)
                proj = torch.randn(count * m, head_dim, generator=gen, dtype=torch.float64)
            perf = Performer(head_dim, kind=kind, projection=proj)
            fx, cx = perf.features(x)
            fy, cy = perf.features(y)
            if kind == "trig":  # [sin | cos] halves: regroup so each set's m sines and m cosines sit together
                fx = torch.stack(fx.split(count * m, -1), -1)
                fy = torch.stack(fy.split(count * m, -1), -1)
                prod = (fx * fy).sum(-1)
            else:
                prod = fx * fy
            sets = prod.reshape(x.shape[0], count, m).sum(-1) * torch.exp(cx + cy)[:, None] * count
            errs.append(((sets - exact[:, None]) / exact[:, None]) ** 2)
        err = torch.cat(errs, dim=1)                                   # (P, n_sets)
        if kind == "positive":
            predicted = lemma2_relative_mse(x2 + y2 + 2 * xy, m)
        else:
            predicted = lemma2_trig_relative_mse(x2, y2, xy, m)
        measured = err.mean(1).numpy()
        stderr = err.std(1).numpy() / math.sqrt(n_sets)
        top = max(1, n_sets // 100)
        tail = (err.sort(1, descending=True).values[:, :top].sum(1) / err.sum(1)).numpy()
        for p, target in enumerate(norm_sum_sq):
            rows.append(dict(norm_sum_sq=float(target), m=m, draws=n_sets, measured=float(measured[p]),
                             predicted=float(predicted[p]), ratio=float(measured[p] / predicted[p]),
                             ratio_stderr=float(stderr[p] / predicted[p]), tail_share=float(tail[p]),
                             orthogonal=orthogonal, kind=kind))
    return rows
