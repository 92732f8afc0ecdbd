"""Fitting learned feature maps (Hedgehog, T2R; :mod:`approxlab.variants.hedgehog`, :mod:`approxlab.variants.t2r`) by distillation.

For one head, the parameters (W, b) of the map minimise the softmax-mimicry loss of Hedgehog,
the mean over query rows of the cross-entropy  −Σ_j a_ij log â_ij,  a = softmax weights, â = the
map's normalised weights from :func:`approxlab.attention_weights` (the variant's own explicit form, so
the fitted map is the one the efficient form runs). Adam, full batch, seeded initialisation
W = I + σ·noise, b = 0, float64 on CPU. Fit on one window of text, measure on another.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch
from tqdm.auto import tqdm

from ..core.checks import check_choice, check_int, check_tensor
from ..api import attention_weights
from .metrics import row_tv

LEARNED = ("hedgehog", "t2r")


def distill(q: torch.Tensor, k: torch.Tensor, variant: str = "hedgehog", *, feature_dim: Optional[int] = None,
            steps: int = 300, lr: float = 0.02, init_noise: float = 0.1, seed: int = 0, causal: bool = False,
            progress: bool = False) -> Dict[str, object]:
    """Fit ``variant``'s (W, b) on queries/keys (1, 1, N, D) of one head; returns {"weight", "bias", "loss"}.

    ``feature_dim`` F (default D); W starts at the first F columns of I (padded with zeros) plus
    ``init_noise``·N(0, 1/D) from ``seed``. ``loss`` is the per-step history.
    """
    check_choice(variant, "variant", set(LEARNED))
    check_tensor(q, "q")
    check_tensor(k, "k")
    if q.shape[:2] != (1, 1) or k.shape[:2] != (1, 1):
        raise ValueError(f"distill fits one head: q, k must be (1, 1, N, D), got {tuple(q.shape)}, {tuple(k.shape)}")
    d = q.shape[-1]
    f = check_int(d if feature_dim is None else feature_dim, "feature_dim", minimum=1)
    steps = check_int(steps, "steps", minimum=1)
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    weight = torch.eye(d, f, dtype=torch.float64) + init_noise * torch.randn(d, f, generator=gen, dtype=torch.float64) / math.sqrt(d)
    weight.requires_grad_(True)
    bias = torch.zeros(f, dtype=torch.float64, requires_grad=True)
    q, k = q.double(), k.double()
    target = attention_weights(q, k, "softmax", causal=causal)
    opt = torch.optim.Adam([weight, bias], lr=lr)
    history = []
    for _ in tqdm(range(steps), desc=f"distill {variant}", disable=not progress, leave=False):
        opt.zero_grad()
        approx = attention_weights(q, k, variant, causal=causal, weight=weight, bias=bias)
        loss = -(target * torch.log(approx.clamp_min(1e-30))).sum(-1).mean()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    return {"weight": weight.detach().clone(), "bias": bias.detach().clone(), "loss": history}


def mean_row_tv(q: torch.Tensor, k: torch.Tensor, variant: str, *, causal: bool = False, **params) -> float:
    """Mean row TV of ``variant`` against softmax on (1, 1, N, D) inputs."""
    ref = attention_weights(q, k, "softmax", causal=causal).double()
    return float(row_tv(ref, attention_weights(q, k, variant, causal=causal, **params).double()).mean())
