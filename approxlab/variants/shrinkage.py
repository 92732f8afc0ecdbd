"""Variance-aware random features: a random-feature estimate shrunk toward a cheap deterministic baseline,
with the weight chosen per row from the estimator's own variance.

Where Lemma 2's relative variance (e^{‖x+y‖²} − 1)/m is large (real heads: attention-weighted ‖x+y‖² ≈ 20),
an unbiased random-feature estimate of a row can be farther from softmax than plain uniform attention.
A biased, low-variance estimate then wins; this variant picks the trade-off per row.

With g independent feature groups k = 1..g (the inner random-feature kernel, m/g features each, seeds
seed + k), group weights â^k_ij = κ̂^k_ij / Σ_l κ̂^k_il, their mean â = (1/g) Σ_k â^k (m features in all),
and a deterministic baseline ā (uniform attention over the allowed keys, or a deterministic kernel's
weights), each row i is

    ã_i = (1 − λ_i) â_i + λ_i ā_i,        λ_i = clip(V̂_i / ‖â_i − ā_i‖², 0, 1),
    V̂_i = Σ_k ‖â^k_i − â_i‖² / (g (g − 1))          (the spread of the groups; ‖·‖ over the keys)

V̂ is the unbiased estimate of the variance of a mean of g independent estimates, which is why the random
part is the mean of the groups' ratio estimates rather than one ratio over all m features: the pooled ratio
is dominated by whichever group has the larger denominator when the features are heavy-tailed, and the
spread of the groups then understates its error (the weight stays small where the baseline is better). At equal m the mean of ratios carries a
ratio bias O(g/m) instead of O(1/m).

What λ optimises (derived in tests/test_shrinkage.py with sympy): for a ↦ ã = (1 − λ)â + λā with â
unbiased for the softmax row a, E‖â − a‖² = V and ā − a = β (deterministic),
    E‖ã − a‖² = (1 − λ)² V + λ² ‖β‖²,     minimised at λ* = V / (V + ‖β‖²) = V / E‖â − ā‖².
λ_i is its plug-in: V̂ estimates V from the disagreement of the groups, ‖â − ā‖² observed estimates
V + ‖β‖² (its expectation). The squared error of the weights is the
output error's mean over values: for values with covariance σ²I, independent of the weights,
E_v‖(ã − a) v‖² = σ² ‖ã − a‖² (rows of ã − a sum to 0, so the values' mean drops out). λ does not depend on
v, so the explicit form is a weight matrix like every variant's. Each group's estimate is a ratio (biased
at O(g/m)) and V̂ is itself random: λ_i is an estimate of λ*, not λ*.

Why the groups' spread and not Lemma 2: the variance of a row's weights needs the covariance of the kernel
estimates of all pairs of its keys; for one positive feature E[Z_j Z_l] = exp((x + y_j)·(x + y_l)) (Z_j the
estimate of κ(x, y_j) over its mean; j = l is Lemma 2's e^{‖x+y‖²}), which does not factor over the keys, so
a row's variance from it costs O(N) per row and O(N²) in all: the spread of g independent groups costs
O(N·F²) and needs no model of the features.

Efficient form: every quantity above is a sum over keys of a product of two kernels (‖â^k‖², â^k·â^l,
â^k·ā), i.e. one more linear attention whose features are the outer products φ_k ⊗ φ_l (F_k·F_l features,
key log scales added): cost O(N·Σ F_k F_l) for the row norms plus O(N·F·Dv) for the outputs, never N×N.
For uniform attention the baseline kernel is κ ≡ 1 (one feature). Explicit form: the N×N matrices of every
group and of the baseline, the same formulas on them (an independent reference).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ..core.checks import check_int
from ..core.protocol import KernelVariant
from ._registry import register_kernel
from .window import exact_query_features, kernel_sums

BASELINES = ("uniform",)


class UniformKernel(KernelVariant):
    """κ ≡ 1 (one feature): uniform attention over the allowed keys, o_i = their mean value."""

    name = "uniform"

    def features(self, x):
        return torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device), None

    def kernel(self, x, y):
        return torch.ones(*x.shape[:-1], y.shape[-2], dtype=x.dtype, device=x.device), None

    def feature_width(self, head_dim: int) -> int:
        return 1


class ProductKernel(KernelVariant):
    """κ(x, y) = κ₁(x, y) · κ₂(x, y): features φ₁ ⊗ φ₂ (F₁·F₂), log scales added; the true κ on both sides."""

    name = "product"

    def __init__(self, first, second):
        self.first, self.second = first, second

    @staticmethod
    def _outer(a, b):
        (fa, ca), (fb, cb) = a, b
        scale = ca if cb is None else cb if ca is None else ca + cb
        return (fa.unsqueeze(-1) * fb.unsqueeze(-2)).flatten(-2), scale

    def features(self, x):
        return self.query_features(x)

    def query_features(self, x):
        return self._outer(exact_query_features(self.first, x), exact_query_features(self.second, x))

    exact_query_features = query_features

    def key_features(self, y):
        return self._outer(self.first.key_features(y), self.second.key_features(y))

    def feature_width(self, head_dim: int) -> int:
        return self.first.feature_width(head_dim) * self.second.feature_width(head_dim)


@register_kernel
class Shrinkage(KernelVariant):
    """kernel: the inner random-feature variant (default "performer", FAVOR+; it must take ``num_features``
    and ``seed``); num_features: m in all (m/g per group; default the inner default × g is not assumed: 64);
    groups: g ≥ 2 independent groups; baseline: "uniform" or a deterministic kernel variant name/object
    (e.g. "taylor"); seed: the first group's seed; kernel_params / baseline_params: further parameters."""

    name = "shrinkage"
    label = "shrinkage (FAVOR+ → uniform)"
    color = "#44AA99"
    marker = "h"
    size_parameter = "num_features"

    def __init__(self, head_dim: int, kernel="performer", num_features: int = 64, groups: int = 2,
                 baseline="uniform", seed: int = 0, kernel_params: Optional[dict] = None,
                 baseline_params: Optional[dict] = None):
        from ._registry import build_kernel

        self.head_dim = check_int(head_dim, "head_dim", minimum=1)
        self.groups = check_int(groups, "groups", minimum=2)
        self.num_features = check_int(num_features, "num_features", minimum=self.groups)
        if self.num_features % self.groups:
            raise ValueError(f"num_features={num_features} must be a multiple of groups={groups} (m/g per group)")
        self.seed = check_int(seed, "seed", minimum=0)
        for label, params in (("kernel_params", kernel_params), ("baseline_params", baseline_params)):
            if params is not None and not isinstance(params, dict):
                raise TypeError(f"{label} must be a dict, got {params!r}")
        kernel_params = dict(kernel_params or {})
        for taken in ("num_features", "seed"):
            if taken in kernel_params:
                raise ValueError(f"give {taken} to Shrinkage itself, not in kernel_params")
        per_group = self.num_features // self.groups
        self.members = [build_kernel(kernel, head_dim, num_features=per_group, seed=self.seed + g, **kernel_params)
                        for g in range(self.groups)]
        if isinstance(baseline, str) and baseline == "uniform":
            if baseline_params:
                raise ValueError("the uniform baseline takes no parameters")
            self.baseline = UniformKernel()
        else:
            self.baseline = build_kernel(baseline, head_dim, **(baseline_params or {}))
        self.kernel_label = self.members[0].name

    # ------------------------------------------------------------------ protocol
    def kernel_expression(self, dim: int = 2):
        """A random estimate (the groups' features, mean exp(s)) mixed with a baseline: no finite degree."""
        import sympy as sp

        from ._expression import m, random_estimate, s

        wx, wy, nx, ny = (sp.Symbol(name, real=True) for name in (r"{w_i^\top x}", r"{w_i^\top y}", r"\|x\|",
                                                                  r"\|y\|"))
        return random_estimate(
            sp.exp(wx - nx ** 2 / 2) * sp.exp(wy - ny ** 2 / 2), mean=sp.exp(s), features=m,
            reason="the weights (1 − λ)·â + λ·ā mix a random-feature estimate (random exponentials, unbiased for "
                   "exp(s) before normalising) with a baseline, λ from the estimate's own spread: not a rational "
                   "function of s")

    def features(self, x):
        raise TypeError("the shrinkage estimator is not a feature product: its forms are explicit_kernel and "
                        "efficient (approxlab.attention and attention_weights call them)")

    def kernel(self, x, y):
        raise TypeError("the shrinkage estimator's weights depend on the causal mask: call "
                        "explicit_kernel(x, y, causal=..., offset=...)")

    def feature_width(self, head_dim: int) -> int:
        """F of the output states: every group's and the baseline's (the row norms' product states are
        F_k·F_l more; :meth:`efficient` holds one of them at a time)."""
        return sum(k.feature_width(head_dim) for k in self.members) + self.baseline.feature_width(head_dim)

    def describe_size(self, head_dim: int) -> str:
        return (f"shrinkage of {self.kernel_label} num_features={self.num_features:,} in {self.groups} groups "
                f"toward {self.baseline.name}")

    def _check_memory(self, x, v, chunk_size):
        """The largest product state (F_k·F_l features, a chunk of their rows) against the memory budget."""
        from ..core import budget
        from .window import DEFAULT_CHUNK

        sizes = [k.feature_width(x.shape[-1]) for k in self.members] + [self.baseline.feature_width(x.shape[-1])]
        widest = max(a * b for a in sizes for b in sizes)
        rows = min(chunk_size or DEFAULT_CHUNK, x.shape[-2])
        need = x.element_size() * x.shape[:-2].numel() * (widest * (rows + 2) + 3 * max(sizes) * (v.shape[-1] + rows))
        budget.require(need, f"{self.describe_size(x.shape[-1])}: the row norms' product state "
                             f"(F_k·F_l = {widest:,} features, a chunk of {rows} rows)")

    # ------------------------------------------------------------------ the weight
    def shrinkage_terms(self, norms: dict):
        """(V̂, ‖â − ā‖²) per row from the row inner products ``norms[(a, b)]`` = Σ_j â^a_ij â^b_ij, a and b
        among the groups 0..g−1 and "b" (the baseline); â is the mean of the groups (module doc)."""
        g = self.groups
        gram = lambda a, b: norms[(a, b)] if (a, b) in norms else norms[(b, a)]  # noqa: E731
        own = sum(gram(k, k) for k in range(g))
        mean_sq = sum(gram(k, l) for k in range(g) for l in range(g)) / g**2      # ‖â‖²
        variance = (own - g * mean_sq).clamp_min(0.0) / (g * (g - 1))            # Σ_k ‖â^k − â‖² / (g(g−1))
        distance = (mean_sq - 2 * sum(gram(k, "b") for k in range(g)) / g + gram("b", "b")).clamp_min(0.0)
        return variance, distance

    @staticmethod
    def _weight(variance, distance):
        """λ = clip(V̂ / ‖â − ā‖², 0, 1) (0 where â = ā)."""
        positive = distance > 0
        return torch.where(positive, (variance / torch.where(positive, distance, torch.ones_like(distance)))
                           .clamp(0.0, 1.0), torch.zeros_like(distance))

    # ------------------------------------------------------------------ explicit form
    def explicit_kernel(self, x: torch.Tensor, y: torch.Tensor, *, causal: bool, offset: int = 0):
        """(ã, None): the shrunk weights (row-normalised already), from the N×N weights of every group and of
        the baseline (module doc). Query row r is at position offset + r."""
        from .window import true_kernel

        nq, nk = x.shape[-2], y.shape[-2]
        allowed = torch.ones(nq, nk, dtype=torch.bool, device=x.device)
        if causal:
            allowed = allowed.tril(offset)

        def normalised(kernel):
            matrix, cq, ck = true_kernel(kernel, x, y)
            log = torch.zeros_like(matrix) if ck is None else ck.unsqueeze(-2).expand(matrix.shape)
            log = log.masked_fill(~allowed, -math.inf)
            log = log - log.amax(-1, keepdim=True).nan_to_num(neginf=0.0)
            matrix = torch.where(allowed, matrix * torch.exp(log), torch.zeros_like(matrix))
            den = matrix.sum(-1, keepdim=True)
            return torch.where(den != 0, matrix / torch.where(den != 0, den, torch.ones_like(den)),
                               torch.zeros_like(matrix)), matrix, den

        return self.mix([normalised(kernel)[0] for kernel in self.members], normalised(self.baseline)[0]), None

    def mix(self, group_weights, baseline_weights: torch.Tensor) -> torch.Tensor:
        """ã = (1 − λ) â + λ ā (…, Nq, N) from the g groups' normalised weights â^k and the baseline's ā, each
        (…, Nq, N) with rows summing to 1 over the allowed keys (module doc): the explicit form's last step,
        open to weights computed elsewhere (e.g. nested features, :mod:`approxlab.analysis.nested`)."""
        if len(group_weights) != self.groups:
            raise ValueError(f"mix takes the weights of the {self.groups} groups, got {len(group_weights)}")
        weights = dict(enumerate(group_weights))
        weights["b"] = base = baseline_weights
        labels = list(weights)
        norms = {(a, b): torch.linalg.vecdot(weights[a], weights[b]) for i, a in enumerate(labels) for b in labels[i:]}
        lam = self._weight(*self.shrinkage_terms(norms))
        mean = sum(weights[k] for k in range(self.groups)) / self.groups
        return (1 - lam).unsqueeze(-1) * mean + lam.unsqueeze(-1) * base

    # ------------------------------------------------------------------ efficient form
    def efficient(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, *, causal: bool,
                  chunk_size: Optional[int] = None) -> torch.Tensor:
        """õ_i = (1 − λ_i) ô_i + λ_i ō_i without N×N (module doc)."""
        out, _ = self.efficient_with_weight(x, y, v, causal=causal, chunk_size=chunk_size)
        return out

    def efficient_with_weight(self, x, y, v, *, causal: bool, chunk_size: Optional[int] = None):
        """(õ, λ): the output and each row's shrinkage weight λ_i (…, N)."""
        members = list(self.members)
        self._check_memory(x, v, chunk_size)
        sums = [kernel_sums(k, x, y, v, causal=causal, chunk_size=chunk_size) for k in members]
        base_num, base_den, base_ref = kernel_sums(self.baseline, x, y, v, causal=causal, chunk_size=chunk_size)
        ones = torch.ones(*y.shape[:-1], 1, dtype=v.dtype, device=v.device)
        labels = list(range(self.groups)) + ["b"]
        kernels = dict(zip(labels, members + [self.baseline]))
        dens = {k: sums[k][1] * 1.0 for k in range(self.groups)}
        refs = {k: sums[k][2] for k in range(self.groups)}
        dens["b"], refs["b"] = base_den, base_ref
        norms = {}
        for i, a in enumerate(labels):
            for b in labels[i:]:
                _, prod, prod_ref = kernel_sums(ProductKernel(kernels[a], kernels[b]), x, y, ones, causal=causal,
                                                chunk_size=chunk_size)
                # Σ_j κ^a κ^b / (D^a D^b), every factor with its own log reference
                scale = torch.exp(_finite(prod_ref) - _finite(refs[a]) - _finite(refs[b]))
                denom = dens[a] * dens[b]
                norms[(a, b)] = torch.where(denom > 0, prod * scale / torch.where(denom > 0, denom,
                                                                                    torch.ones_like(denom)),
                                            torch.zeros_like(prod))
        lam = self._weight(*self.shrinkage_terms(norms))
        mean = sum(_safe_ratio(sums[k][0], sums[k][1]) for k in range(self.groups)) / self.groups
        baseline = _safe_ratio(base_num, base_den)
        return (1 - lam).unsqueeze(-1) * mean + lam.unsqueeze(-1) * baseline, lam


def _finite(ref: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(ref), ref, torch.zeros_like(ref))


def _safe_ratio(num, den):
    zero = den == 0
    return torch.where(zero.unsqueeze(-1), torch.zeros_like(num),
                       num / torch.where(zero, torch.ones_like(den), den).unsqueeze(-1))
