"""Nested random-feature estimates: the estimate at m features from the first m directions of one draw.

The random-feature estimators of exp(x·y) (FAVOR+ positive and trig, hyperbolic, FAVOR++, FAVOR#, with
iid, orthogonal or simplex directions) are means over directions of one per-direction estimate ψ_r,

    κ̂_m(x, y) = (1/m) Σ_{r ≤ m} ψ_r(x, y),          S_ij(m) = Σ_{r ≤ m} ψ_r(x_i, y_j),

so the normalised weights at m are a_ij(m) = S_ij(m) / Σ_l S_il(m) (the 1/m cancels). When the directions
are drawn so that every prefix is itself a draw (:func:`approxlab.variants._projections.nested_directions`),
the estimate at m uses the first m directions of one draw, and S(m) = S(m') + Σ_{m' < r ≤ m} ψ_r: a search
over m (:func:`approxlab.analysis.entropy.search_min_features`) then costs about one pass over the largest m
it evaluates instead of one pass per evaluation.

Each block of directions [m', m) comes from the variant's own feature maps on those directions
(``block_kernel(m', m)``, e.g. the variant built on W[m':m]): its estimate is φ(x)·φ(y) = f_x f_yᵀ e^{c_x + c_y} (f ≤ 1, c the log scales, which
include the variant's 1/√(m − m')), so Σ_{m' < r ≤ m} ψ_r = (m − m') f_x f_yᵀ e^{c_x + c_y}. The sum is kept
as S_ij = T_ij e^{r_i + t_j} with the running maxima r_i (per query) and t_j (per key) of the blocks' log
scales: adding a block rescales the older part by e^{r_old − r_new} ≤ 1 (log-sum-exp style), so nothing
overflows and the largest term of every row is a normal float64, as in the variant's own one-shot form,
whose shift is also the maximum over its m features. The result equals the variant's weights at the same
first-m directions to round-off (tests/test_nested.py).

Memory: one (…, Nq, N) float64 matrix per evaluated m (the sums a later, larger m continues from), and one
block's features, (…, N, P·b) for b directions (P features per direction), at a time.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Tuple

import torch

from ..core import naive
from ..core.checks import check_choice, check_int, check_seed, check_tensor, resolve_scale
from ..core.protocol import KernelVariant
from ..variants._projections import DIRECTIONS, nested_directions

#: bytes of one block's key features (…, N, P·b) float64: larger increments are split into blocks
BLOCK_BYTES = 32 * 2**20

State = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class NestedDraw:
    """The first m rows of one nested draw of directions, for any m (grown on demand, prefixes unchanged).

    Parameters
    ----------
    dim : int
        D.
    directions : {"iid", "orthogonal", "simplex"}
        As :func:`~approxlab.variants._projections.nested_directions`.
    seed : int
        The draw's seed.

    Examples
    --------
    >>> from approxlab.analysis.nested import NestedDraw
    >>> draw = NestedDraw(8, "orthogonal", seed=1)
    >>> bool((draw(5) == draw(300)[:5]).all())
    True
    """

    def __init__(self, dim: int, directions: str = "orthogonal", seed: int = 0):
        self.dim = check_int(dim, "dim", minimum=1)
        self.directions = check_choice(directions, "directions", set(DIRECTIONS))
        self.seed = check_seed(seed)
        self.rows = torch.empty(0, self.dim, dtype=torch.float64)

    def __call__(self, m: int) -> torch.Tensor:
        m = check_int(m, "m", minimum=1)
        if m > self.rows.shape[0]:  # redraw at least twice as many: the prefix is the same draw
            size = max(m, 2 * self.rows.shape[0], self.dim)
            self.rows = nested_directions(size, self.dim, self.directions, self.seed)
        return self.rows[:m]


def directions_blocks(kernel_for: Callable[[torch.Tensor], KernelVariant],
                      draw: Callable[[int], torch.Tensor]) -> Callable[[int, int], KernelVariant]:
    """``(start, stop) → kernel_for(draw(stop)[start:stop])``: the block kernels of a variant built on a
    projection (``kernel_for(W)``, W b × D) over one nested draw (``draw(m)`` → its first m directions, e.g.
    a :class:`NestedDraw`), for :class:`NestedEstimate`."""
    if not callable(kernel_for) or not callable(draw):
        raise TypeError("kernel_for and draw must be callables (directions → kernel, m → m × D directions)")
    return lambda start, stop: kernel_for(draw(stop)[start:stop])


class NestedEstimate:
    """Running sums S(m) = Σ_{r ≤ m} ψ_r(x_i, y_j) of a random-feature kernel over the first m directions.

    Parameters
    ----------
    block_kernel : callable
        ``block_kernel(start, stop)`` → the variant's kernel on directions start..stop−1 of one fixed draw,
        every other parameter fixed: :func:`directions_blocks` for the variants built on a projection, e.g.
        ``directions_blocks(lambda w: Performer(D, projection=w), NestedDraw(D))``. Its feature maps must be
        the mean over those directions of one per-direction estimate (module doc).
    q, k : torch.Tensor
        Queries (…, Nq, D) and keys (…, N, D), unscaled, as for :func:`approxlab.attention_weights`.
    scale : float or None
        The similarity scale (default 1/√D); the kernel sees x = q·√scale, y = k·√scale.

    Raises
    ------
    TypeError, ValueError
        Bad tensors (non-finite, mismatched head dims).

    Notes
    -----
    S_ij(m) = S_ij(m') + Σ_{m' < r ≤ m} ψ_r(x_i, y_j), the increment from the largest evaluated m' < m;
    a_ij(m) = S_ij(m) / Σ_l S_il(m). Memory: one (…, Nq, N) float64 matrix per evaluated m.

    References
    ----------
    K. Choromanski et al., "Rethinking Attention with Performers", ICLR 2021 (the estimator as a mean of
    per-feature estimates).

    Examples
    --------
    >>> import torch
    >>> from approxlab import attention_weights
    >>> from approxlab.analysis.nested import NestedDraw, NestedEstimate, directions_blocks
    >>> from approxlab.variants import Performer
    >>> q, k = torch.randn(1, 1, 4, 8, dtype=torch.float64), torch.randn(1, 1, 16, 8, dtype=torch.float64)
    >>> draw = NestedDraw(8, seed=0)
    >>> est = NestedEstimate(directions_blocks(lambda w: Performer(8, projection=w), draw), q, k)
    >>> direct = attention_weights(q, k, "performer", projection=draw(24))
    >>> bool(torch.allclose(est.weights(24), direct, rtol=1e-12, atol=1e-15))
    True
    """

    def __init__(self, block_kernel: Callable[[int, int], KernelVariant], q: torch.Tensor, k: torch.Tensor,
                 scale: Optional[float] = None):
        for name, t in (("q", q), ("k", k)):
            check_tensor(t, name, ndim=t.ndim if isinstance(t, torch.Tensor) else 2, layout="(…, N, D)")
        if q.ndim < 2 or k.ndim < 2 or q.shape[-1] != k.shape[-1]:
            raise ValueError(f"q (…, Nq, D) and k (…, N, D) must share the head dim, got {tuple(q.shape)} and "
                             f"{tuple(k.shape)}")
        if not callable(block_kernel):
            raise TypeError(f"block_kernel must be a callable (start, stop) → kernel, got {block_kernel!r}")
        root = math.sqrt(resolve_scale(scale, q.shape[-1]))
        self.x, self.y = q.double() * root, k.double() * root
        self.block_kernel = block_kernel
        self.states: Dict[int, State] = {}

    def _block(self, start: int, stop: int) -> State:
        """(T, c_x, c_y) with Σ_{start < r ≤ stop} ψ_r = T e^{c_x + c_y}, from the variant's own features."""
        kernel = self.block_kernel(start, stop)
        fx, cx = kernel.exact_query_features(self.x)
        fy, cy = kernel.key_features(self.y)
        zeros = lambda t: torch.zeros(t.shape[:-1], dtype=torch.float64)  # noqa: E731
        cx = zeros(self.x) if cx is None else cx
        cy = zeros(self.y) if cy is None else cy
        return (fx @ fy.transpose(-1, -2)) * float(stop - start), cx, cy

    @staticmethod
    def _add(state: Optional[State], block: State) -> State:
        """state + block, both as T e^{r_i + t_j}, rescaled to the running maxima (every factor ≤ 1)."""
        if state is None:
            return block
        (t_old, r_old, c_old), (t_new, r_blk, c_blk) = state, block
        r, c = torch.maximum(r_old, r_blk), torch.maximum(c_old, c_blk)
        return (t_old * torch.exp(r_old - r)[..., :, None] * torch.exp(c_old - c)[..., None, :]
                + t_new * torch.exp(r_blk - r)[..., :, None] * torch.exp(c_blk - c)[..., None, :], r, c)

    def sums(self, m: int) -> State:
        """(T, r, t) with S_ij(m) = T_ij e^{r_i + t_j}, continued from the largest evaluated m' < m."""
        m = check_int(m, "m", minimum=1)
        if m not in self.states:
            below = max((j for j in self.states if j < m), default=0)
            state = self.states.get(below)
            width = max(1, self._features_per_direction())
            step = max(1, BLOCK_BYTES // (8 * width * max(1, self.y.shape[:-1].numel())))
            for start in range(below, m, step):
                state = self._add(state, self._block(start, min(m, start + step)))
            self.states[m] = state
        return self.states[m]

    def _features_per_direction(self) -> int:
        if not hasattr(self, "_per_direction"):
            kernel = self.block_kernel(0, 1)
            self._per_direction = kernel.feature_width(self.x.shape[-1])
        return self._per_direction

    def weights(self, m: int) -> torch.Tensor:
        """a(m) (…, Nq, N) float64: S(m) row-normalised.

        Raises
        ------
        FloatingPointError
            A row whose sum is 0 or not finite (its every term underflowed, or the estimate overflowed).
        """
        matrix, _, col = self.sums(m)
        weights = naive.normalise_kernel(matrix, col)
        # a row sum of 0 comes back as a row of zeros, a non-finite one as NaN/inf: either way its sum is not 1
        total = weights.sum(-1)
        if not bool(torch.isfinite(total).all()) or bool((total == 0).any()):
            raise FloatingPointError(f"nested estimate at m={m}: a row's kernel sum is 0 or not finite (its terms "
                                     "underflow or overflow float64); the row cannot be normalised")
        return weights

    def release(self) -> None:
        """Forget the stored sums (the next call starts again from m = 0)."""
        self.states.clear()
