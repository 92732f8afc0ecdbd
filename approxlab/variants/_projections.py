"""Random projections shared by the random-feature variants: m × D matrices of directions w ~ N(0, I_D).

Orthogonal blocks (Performer, Choromanski et al., ICLR 2021, section 2.4): stacked blocks of a Haar-random
D × D orthogonal matrix, rows rescaled by independent chi_D norms, so each row is still N(0, I_D)
marginally. Simplex blocks (SimRF: Reid, Choromanski, Likhosherstov, Weller, "Simplex Random Features",
ICML 2023): each block of D unit directions points to the vertices of a regular simplex (pairwise dot
−1/(D−1)), randomly rotated, rows scaled by independent chi_D norms. Both are reproducible from a seed.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import lru_cache

import torch

from ..core import budget
from ..core.checks import check_bool, check_choice, check_int, check_seed

#: the direction kinds of the random-feature variants' ``directions`` argument
DIRECTIONS = ("iid", "orthogonal", "simplex")


def haar_orthogonal(dim: int, generator: torch.Generator) -> torch.Tensor:
    """A Haar-random D × D orthogonal matrix (float64): QR of a Gaussian matrix, columns signed by diag(R)."""
    qmat, rmat = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    return qmat * torch.sign(torch.diagonal(rmat)).unsqueeze(0)


def gaussian_projection(num_features: int, dim: int, *, orthogonal: bool = True, seed: int = 0) -> torch.Tensor:
    """m × D float64 matrix of random feature directions, reproducible from ``seed`` (see
    :func:`draw_projection`). Sized against the memory budget first; small ones are kept in a cache of at
    most ``_CACHE_BYTES`` (``attention(..., "performer")`` rebuilds its kernel per call), large ones never."""
    num_features = check_int(num_features, "num_features", minimum=1)
    dim = check_int(dim, "head_dim", minimum=1)
    orthogonal, seed = check_bool(orthogonal, "orthogonal"), check_seed(seed)
    budget.require(2 * num_features * dim * 8,
                   f"performer num_features={num_features:,}: the m × D projection ({num_features:,} × {dim} float64)")
    key = (num_features, dim, orthogonal, seed)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key].clone()
    projection = draw_projection(num_features, dim, orthogonal=orthogonal, seed=seed)
    if projection.numel() * 8 <= _CACHE_BYTES // 4:
        _cache[key] = projection
        while cache_bytes() > _CACHE_BYTES:
            _cache.popitem(last=False)
    return projection.clone()


#: bytes of projections kept between calls; one larger than a quarter of it is never kept
_CACHE_BYTES = 256 * 2**20
_cache: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()


def cache_bytes() -> int:
    """Bytes held by the projection cache now."""
    return sum(w.numel() * w.element_size() for w in _cache.values())


def draw_projection(num_features: int, dim: int, *, orthogonal: bool, seed: int) -> torch.Tensor:
    """m × D float64 matrix of random feature directions, reproducible from ``seed``.

    orthogonal: stacked blocks of a Haar-random orthogonal D × D matrix (QR of a Gaussian matrix),
    rows rescaled by the norms of independent Gaussian vectors, so each row is still N(0, I_D)
    marginally. iid: plain N(0, I_D) rows.
    """
    gen = torch.Generator().manual_seed(seed)
    if not orthogonal:
        return torch.randn(num_features, dim, generator=gen, dtype=torch.float64)
    blocks = []
    for _ in range(math.ceil(num_features / dim)):
        blocks.append(haar_orthogonal(dim, gen).T)
    rows = torch.cat(blocks)[:num_features]
    norms = torch.randn(num_features, dim, generator=gen, dtype=torch.float64).norm(dim=1)
    return rows * norms[:, None]


def simplex_block(dim: int) -> torch.Tensor:
    """D × D float64: rows are D unit vectors with pairwise dot products −1/(D−1) (a regular simplex in
    the hyperplane ⟂ 1): e_i − 1/D, normalised. D = 1 gives [[1]]."""
    dim = check_int(dim, "dim", minimum=1)
    if dim == 1:
        return torch.ones(1, 1, dtype=torch.float64)
    rows = torch.eye(dim, dtype=torch.float64) - 1.0 / dim
    return rows / rows.norm(dim=1, keepdim=True)


def random_directions(num_features: int, dim: int, directions: str = "orthogonal", seed: int = 0) -> torch.Tensor:
    """m × D float64 matrix of random feature directions, each row N(0, I_D) marginally, from ``seed``."""
    num_features = check_int(num_features, "num_features", minimum=1)
    dim = check_int(dim, "dim", minimum=1)
    check_choice(directions, "directions", set(DIRECTIONS))
    seed = check_seed(seed)
    if directions != "simplex":
        return gaussian_projection(num_features, dim, orthogonal=directions == "orthogonal", seed=seed)
    budget.require(3 * math.ceil(num_features / dim) * dim * dim * 8,
                   f"simplex directions num_features={num_features:,}: the rotations (⌈m/D⌉ × D × D float64)")
    return _simplex_projection(num_features, dim, seed).clone()


@lru_cache(maxsize=16)
def _simplex_projection(num_features: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    count = math.ceil(num_features / dim)
    # count Haar rotations at once: batched QR of Gaussian matrices, columns signed by diag(R) (as haar_orthogonal)
    qmat, rmat = torch.linalg.qr(torch.randn(count, dim, dim, generator=gen, dtype=torch.float64))
    rotations = qmat * torch.sign(torch.diagonal(rmat, dim1=-2, dim2=-1)).unsqueeze(-2)
    rows = (simplex_block(dim) @ rotations).reshape(count * dim, dim)[:num_features]
    norms = torch.randn(num_features, dim, generator=gen, dtype=torch.float64).norm(dim=1)
    return rows * norms[:, None]


def nested_directions(num_features: int, dim: int, directions: str = "orthogonal", seed: int = 0) -> torch.Tensor:
    """m × D float64 random directions drawn so that every prefix is itself a draw: the first m rows of
    ``nested_directions(M, …)`` equal ``nested_directions(m, …)`` for every m ≤ M (same seed).

    Parameters
    ----------
    num_features : int
        m, the number of rows.
    dim : int
        D.
    directions : {"iid", "orthogonal", "simplex"}
        The kind of block, as :func:`random_directions`.
    seed : int
        The generator's seed.

    Returns
    -------
    torch.Tensor
        (m, D) float64; each row N(0, I_D) marginally.

    Raises
    ------
    ValueError, TypeError
        A bad m, D, kind or seed; MemoryBudgetError when the block being drawn exceeds the memory budget.

    Notes
    -----
    The generator draws block after block, each block complete before the next: its D rows (a Haar
    rotation's rows for "orthogonal", the rotated regular simplex of :func:`simplex_block` for "simplex",
    D × D standard normals for "iid"), then, for "orthogonal" and "simplex", the D chi_D row norms (norms of
    D × D standard normals). The first ⌈m/D⌉ blocks are therefore the same for every m, and a draw of m rows
    is the first m rows of those blocks (the last block truncated, as :func:`draw_projection` truncates its
    last block). This is a different draw from :func:`gaussian_projection` at the same seed (which draws
    all rotations first and all norms after them, so its prefixes are not draws of fewer features); the
    distribution of each block is the same. It lets an estimate at m features reuse the first m features of
    a larger draw (:mod:`approxlab.analysis.nested`).

    References
    ----------
    K. Choromanski et al., "Rethinking Attention with Performers", ICLR 2021 (orthogonal blocks);
    I. Reid, K. Choromanski, V. Likhosherstov, A. Weller, "Simplex Random Features", ICML 2023.

    Examples
    --------
    >>> from approxlab.variants._projections import nested_directions
    >>> big, small = nested_directions(40, 8, seed=3), nested_directions(13, 8, seed=3)
    >>> bool((big[:13] == small).all()), tuple(big.shape)
    (True, (40, 8))
    """
    num_features = check_int(num_features, "num_features", minimum=1)
    dim = check_int(dim, "dim", minimum=1)
    check_choice(directions, "directions", set(DIRECTIONS))
    gen = torch.Generator().manual_seed(check_seed(seed))
    count = math.ceil(num_features / dim)
    budget.require(3 * count * dim * dim * 8,
                   f"nested directions num_features={num_features:,}: ⌈m/D⌉ blocks of D × D float64")
    blocks = []
    for _ in range(count):
        if directions == "iid":
            blocks.append(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
            continue
        rotation = haar_orthogonal(dim, gen)
        rows = rotation.T if directions == "orthogonal" else simplex_block(dim) @ rotation
        norms = torch.randn(dim, dim, generator=gen, dtype=torch.float64).norm(dim=1)
        blocks.append(rows * norms[:, None])
    return torch.cat(blocks)[:num_features]
