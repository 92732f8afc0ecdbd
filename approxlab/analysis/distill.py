"""Fitting learned feature maps (Hedgehog, T2R; :mod:`approxlab.variants.hedgehog`, :mod:`approxlab.variants.t2r`) by distillation.

Per head, the parameters (W, b) of the map minimise the softmax-mimicry loss of Hedgehog, the mean over
query rows of the cross-entropy  −Σ_j a_ij log â_ij,  a = softmax weights, â = the map's normalised weights
from :func:`approxlab.attention_weights` (the variant's own explicit form, so the fitted map is the one the
efficient form runs). Adam, full batch, seeded initialisation W = I + σ·noise, b = 0, float64 on CPU. Fit on
one window of text, measure on another. :func:`distill` fits the heads of one input at once: independent
fits batched into one problem, each equal to its fit alone up to float round-off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Union

import torch
from tqdm.auto import tqdm

from ..core.checks import check_choice, check_int, check_tensor
from ..core.masked import MaskPlan, masked_weights
from ..core.protocol import KernelVariant
from ..api import attention_weights
from .metrics import row_tv
from ..variants.hedgehog import Hedgehog
from ..variants.linear import elu_feature

LEARNED = ("hedgehog", "t2r")


@dataclass(frozen=True)
class Distilled:
    """A fitted map: ``attention(q, k, v, fit.variant, **fit.params)`` runs it, and ``fit.loss`` is the
    distillation loss per Adam step.

    Parameters
    ----------
    variant : str or KernelVariant
        What to pass as the variant: the learned map's name, ``"window"`` for a map fitted inside the window
        hybrid, or a fitted kernel object (:func:`distill_layer`).
    params : dict
        The fitted parameters, exactly the keyword arguments ``variant`` takes (empty for a kernel object).
    loss : list
        The loss after each step: a float; for H heads fitted at once by :func:`distill`, a float64 tensor
        (H,) per step, each head's own loss (:meth:`head` picks one head's history).

    Examples
    --------
    >>> import torch, approxlab
    >>> q, k, v = torch.randn(1, 1, 6, 3), torch.randn(1, 1, 6, 3), torch.randn(1, 1, 6, 3)
    >>> fit = distill(q, k, "hedgehog", steps=2)
    >>> sorted(fit.params), len(fit.loss)
    (['bias', 'weight'], 2)
    >>> approxlab.attention(q.double(), k.double(), v.double(), fit.variant, **fit.params).shape
    torch.Size([1, 1, 6, 3])
    """

    variant: Union[str, KernelVariant]
    params: Dict[str, object]
    loss: List[Union[float, torch.Tensor]]

    def head(self, h: int) -> "Distilled":
        """Head ``h`` of a fit of H heads by :func:`distill` (weight (H, D, F)): its own (D, F) weight, (F,)
        bias (and window weight (1,)), and its loss per step as floats; what fitting that head alone gives.

        Raises
        ------
        ValueError
            This fit holds no per-head map of the learned kinds, or ``h`` is not one of its heads.
        """
        inner = self.params.get("kernel_params", self.params)
        weight = inner.get("weight")
        if not isinstance(weight, torch.Tensor) or weight.ndim != 3:
            raise ValueError("head() picks one head of a fit of several heads by distill (weight (H, D, F))")
        h = check_int(h, "h", minimum=0)
        if h >= weight.shape[0]:
            raise ValueError(f"h must be below the {weight.shape[0]} heads of this fit, got {h}")
        fitted = {"weight": weight[h].clone(), "bias": inner["bias"][h].clone()}
        loss = [float(step[h]) for step in self.loss]
        if "kernel_params" not in self.params:
            return Distilled(self.variant, fitted, loss)
        return Distilled(self.variant, dict(self.params, kernel_params=fitted,
                                            window_weight=self.params["window_weight"][h:h + 1].clone()), loss)


def distill(q: torch.Tensor, k: torch.Tensor, variant: str = "hedgehog", *, feature_dim: Optional[int] = None,
            steps: int = 300, lr: float = 0.02, init_noise: float = 0.1, seed: int = 0, causal: bool = False,
            progress: bool = False, window: Optional[int] = None) -> Distilled:
    """Fit ``variant``'s (W, b) on the queries/keys of H heads, each head its own map, all at once.

    Parameters
    ----------
    q, k : torch.Tensor
        (1, H, N, D): the heads' queries and keys on the fit text.
    variant : {"hedgehog", "t2r"}
    feature_dim : int, optional
        F, the columns of W (default D).
    steps, lr : int, float
        Adam, full batch.
    init_noise, seed : float, int
        Every head's W starts at the first F columns of I (padded with zeros) plus ``init_noise``·N(0, 1/D)
        drawn from ``seed`` (the same draw for every head, as each head fitted alone with ``seed``); b = 0.
    causal : bool
    progress : bool
        A progress bar over the steps.
    window : int, optional
        Fit the map as the outside part of a window hybrid (:mod:`approxlab.variants.window`: exact exp(s) on
        the ``window`` nearest keys), each head's window weight γ with it (log γ from 0): the LoLCATs
        conversion, here on the same cross-entropy as the pure map.

    Returns
    -------
    Distilled
        ``params`` go straight back: ``attention(q, k, v, fit.variant, **fit.params)``. One head (H = 1):
        ``params`` = {"weight" (D, F), "bias" (F,)}, ``loss`` a float per step. H heads: weight (H, D, F),
        bias (H, F) (the variants take one map per head), ``loss`` a tensor (H,) per step;
        ``fit.head(h)`` is head h as if fitted alone. With ``window``: ``variant`` is ``"window"`` and
        ``params`` holds ``window``, ``kernel``, ``kernel_params`` ({"weight", "bias"}) and
        ``window_weight`` (a tensor (H,)).

    Raises
    ------
    ValueError
        An unknown variant, q and k not (1, H, N, D) with the same heads, or a bad number.

    Notes
    -----
    Head h minimises the softmax-mimicry loss of Hedgehog, L_h = mean_i CE(a_i, â_i) = −mean_i Σ_j a_ij log â_ij,
    a the softmax weights, â the map's normalised weights from :func:`approxlab.attention_weights` (the
    variant's own explicit form, so the fitted map is the one the efficient form runs). The fit minimises
    Σ_h L_h: head h's parameters enter L_h alone, so their gradient is ∂L_h, and Adam (elementwise) moves them
    as the fit of head h alone would: the heads are independent fits batched into one (equal to fitting each
    alone up to float round-off). Adam, full batch, float64 on CPU. Fit on one window of text, measure on
    another.

    References
    ----------
    M. Zhang, K. Bhatia, H. Kumbong, C. Ré, "The Hedgehog & the Porcupine: Expressive Linear Attentions with
    Softmax Mimicry", ICLR 2024 (arXiv 2402.04347).
    """
    check_choice(variant, "variant", set(LEARNED))
    check_tensor(q, "q")
    check_tensor(k, "k")
    if q.shape[0] != 1 or k.shape[:2] != q.shape[:2]:
        raise ValueError(f"distill fits the H heads of one input: q, k must be (1, H, N, D) with the same H, got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}")
    heads, d = q.shape[1], q.shape[-1]
    f = check_int(d if feature_dim is None else feature_dim, "feature_dim", minimum=1)
    steps = check_int(steps, "steps", minimum=1)
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    start = torch.eye(d, f, dtype=torch.float64) + init_noise * torch.randn(d, f, generator=gen, dtype=torch.float64) / math.sqrt(d)
    weight = start.expand(heads, d, f).clone().requires_grad_(True)
    bias = torch.zeros(heads, f, dtype=torch.float64, requires_grad=True)
    q, k = q.double(), k.double()
    target = attention_weights(q, k, "softmax", causal=causal)
    log_gamma = torch.zeros(heads, dtype=torch.float64, requires_grad=True)
    if window is not None:
        window = check_int(window, "window", minimum=0)
    opt = torch.optim.Adam([weight, bias] + ([log_gamma] if window is not None else []), lr=lr)
    history = []
    for _ in tqdm(range(steps), desc=f"distill {variant}", disable=not progress, leave=False):
        opt.zero_grad()
        if window is None:
            approx = attention_weights(q, k, variant, causal=causal, weight=weight, bias=bias)
        else:
            approx = attention_weights(q, k, "window", causal=causal, window=window, kernel=variant,
                                       kernel_params=dict(weight=weight, bias=bias), window_weight=log_gamma.exp())
        per_head = -(target * torch.log(approx.clamp_min(1e-30))).sum(-1).mean(-1)[0]  # (H,): each head's L_h
        per_head.sum().backward()
        opt.step()
        history.append(per_head.detach().clone())
    fitted = {"weight": weight.detach().clone(), "bias": bias.detach().clone()}
    if heads == 1:  # one head: the one-head parameters and a float per step
        fitted = {key: val[0] for key, val in fitted.items()}
        history = [float(step[0]) for step in history]
    if window is None:
        return Distilled(variant, fitted, history)
    return Distilled("window", {"window": window, "kernel": variant, "kernel_params": fitted,
                                "window_weight": log_gamma.detach().exp()}, history)


def mean_row_tv(q: torch.Tensor, k: torch.Tensor, variant: str, *, causal: bool = False, **params) -> float:
    """Mean row TV of ``variant`` against softmax on (1, 1, N, D) inputs."""
    ref = attention_weights(q, k, "softmax", causal=causal).double()
    return float(row_tv(ref, attention_weights(q, k, variant, causal=causal, **params).double()).mean())


# ----------------------------------------------------------------------------------------------
# layer-wise distillation: every head of a layer at once, attention transfer on weights and outputs
# ----------------------------------------------------------------------------------------------
#: the per-head maps :func:`distill_layer` fits: Hedgehog's exp(±(xW + b)), a learned ELU linear map
#: elu(xW + b) + 1 (degree 1, the linear-attention baseline at any state size), and HLA's Hadamard product
#: Π_r (elu(xW_r) + 1) of p factors (degree p)
HEADWISE = ("hedgehog", "linear", "hla")


class HeadwiseMap(KernelVariant):
    """A learned feature map with its own parameters per head; inputs (B, H, N, D) with H = the heads.

    Parameters
    ----------
    kind : {"hedgehog", "linear", "hla"}
        ``hedgehog``: φ(x) = [exp(xW + b), exp(−xW − b)] (2F features; the paper's exponential, carried
        as (f ≤ 1, log scale) like FAVOR+); ``linear``: φ(x) = elu(xW + b) + 1 (F features);
        ``hla``: φ(x) = ⊗_r (elu(xW_r) + 1), the Kronecker product of p factors (F^p features), so
        κ = Π_r φ_r(x)·φ_r(y) (Hadamard linear attention, the reconstruction of :mod:`approxlab.variants.hla`).
    weight : torch.Tensor
        (H, D, F) for hedgehog / linear, (p, H, D, F) for hla.
    bias : torch.Tensor, optional
        (H, F) for hedgehog / linear (None: zero); hla takes none.

    Notes
    -----
    Fitted parameters are data of the kernel, fixed before any pass, so the causal forms cannot leak.
    """

    def __init__(self, kind: str, weight: torch.Tensor, bias: Optional[torch.Tensor] = None):
        self.kind = check_choice(kind, "kind", set(HEADWISE))
        self.name = f"{kind}-distilled"
        expected = 4 if kind == "hla" else 3
        if not isinstance(weight, torch.Tensor) or weight.ndim != expected:
            raise ValueError(f"weight of a {kind} map must have {expected} dimensions, got "
                             f"{getattr(weight, 'shape', weight)!r}")
        if kind == "hla" and bias is not None:
            raise ValueError("an hla map takes no bias")
        if bias is None and kind != "hla":
            bias = torch.zeros(weight.shape[0], weight.shape[-1], dtype=weight.dtype)
        self.weight, self.bias = weight, bias
        # hedgehog: the Hedgehog variant's own map, one per head (its formula lives there)
        self._hedgehog = Hedgehog(weight.shape[-2], weight, bias) if kind == "hedgehog" else None

    @property
    def heads(self) -> int:
        return self.weight.shape[-3]

    def _check_heads(self, x):
        if x.ndim < 3 or x.shape[-3] != self.heads:
            raise ValueError(f"this map was fitted for {self.heads} heads; inputs (…, H, N, D) have shape "
                             f"{tuple(x.shape)}")

    def _linear(self, x, weight, bias=None):
        self._check_heads(x)
        out = x @ weight.to(device=x.device, dtype=x.dtype)
        return out if bias is None else out + bias.to(device=x.device, dtype=x.dtype)[:, None, :]

    def features(self, x):
        if self.kind == "hedgehog":
            self._check_heads(x)
            return self._hedgehog.features(x)
        if self.kind == "linear":
            return elu_feature(self._linear(x, self.weight, self.bias)), None
        out = None
        for w in self.weight:
            f = elu_feature(self._linear(x, w))
            out = f if out is None else (out.unsqueeze(-1) * f.unsqueeze(-2)).flatten(-2)
        return out, None

    def kernel(self, x, y):
        if self.kind != "hla":
            return super().kernel(x, y)
        out = None
        for w in self.weight:  # the Hadamard product of the factor kernels (the definition)
            factor = elu_feature(self._linear(x, w)) @ elu_feature(self._linear(y, w)).transpose(-1, -2)
            out = factor if out is None else out * factor
        return out, None

    def feature_width(self, head_dim: int) -> int:
        f = self.weight.shape[-1]
        return 2 * f if self.kind == "hedgehog" else f if self.kind == "linear" else f ** self.weight.shape[0]


def _initial(kind: str, heads: int, d: int, f: int, factors: int, noise: float, gen) -> list:
    """Starting parameters: the first F columns of I (repeated when F > D) plus noise·N(0, 1/D)."""
    def block():
        eye = torch.eye(d, dtype=torch.float32).repeat(1, -(-f // d))[:, :f]
        return eye + noise * torch.randn(heads, d, f, generator=gen) / math.sqrt(d)

    if kind == "hla":
        # factor r starts on its own slice of coordinates, so the product is not one factor squared
        weights = []
        for r in range(factors):
            eye = torch.eye(d, dtype=torch.float32).roll(-r * f, dims=1).repeat(1, -(-f // d))[:, :f]
            weights.append(eye + noise * torch.randn(heads, d, f, generator=gen) / math.sqrt(d))
        return [torch.stack(weights).requires_grad_(True)]
    return [block().requires_grad_(True), torch.zeros(heads, f).requires_grad_(True)]


def distill_layer(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kind: str = "hedgehog", *,
                  feature_dim: int = 32, factors: int = 2, scale: Optional[float] = None, steps: int = 200,
                  lr: float = 0.01, output_weight: float = 1.0, init_noise: float = 0.1, seed: int = 0,
                  causal: bool = False, window: Optional[int] = None) -> Dict[str, object]:
    """Fit a :class:`HeadwiseMap` to every head of one layer at once (attention transfer).

    Parameters
    ----------
    q, k, v : torch.Tensor
        (B, H, N, D), (B, H, N, D), (B, H, N, Dv): the layer's softmax inputs on the fit texts.
    kind : {"hedgehog", "linear", "hla"}
    feature_dim : int
        F: columns of each W (the state is 2F for hedgehog, F for linear, F^p for hla).
    factors : int
        p, for hla.
    scale : float, optional
        Similarity scale (default 1/√D).
    steps, lr : int, float
        Adam, full batch.
    output_weight : float
        λ in the loss below.
    init_noise, seed : float, int
        W starts at the first F columns of I plus init_noise·N(0, 1/D) (seeded); b = 0.
    causal : bool
    window : int, optional
        w: fit the map as the outside part of a window hybrid (:class:`approxlab.variants.window.Window`:
        exact exp(s) on the keys within w positions, one shared denominator), with one window weight γ per
        head fitted with it (from :func:`~approxlab.variants.window.fit_window_weight` at the initial map):
        the LoLCATs conversion. None: the map alone.

    Returns
    -------
    Distilled
        ``variant``: the fitted :class:`HeadwiseMap`, or with ``window`` the fitted
        :class:`~approxlab.variants.window.Window` around it (parameters detached; ``params`` is empty),
        ``loss`` per step.

    Notes
    -----
    loss = mean_i CE(a_i, â_i) + λ · mean_i ‖ô_i − o_i‖² / mean_j ‖v_j‖², with a the softmax weights, â the
    map's (its explicit form), o = a v: Hedgehog's softmax-mimicry cross-entropy (Zhang et al. 2024) plus
    the output MSE that LoLCATs' attention transfer minimises (Zhang et al. 2024, stage 1), on the teacher's
    own q, k, v (layer by layer, no end-to-end pass). Computed in float32.

    References
    ----------
    M. Zhang, K. Bhatia, H. Kumbong, C. Ré, "The Hedgehog & the Porcupine", ICLR 2024 (arXiv 2402.04347).
    M. Zhang et al., "LoLCATs: On Low-Rank Linearizing of Large Language Models", arXiv 2410.10254.
    """
    check_choice(kind, "kind", set(HEADWISE))
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_tensor(x, name)
    steps = check_int(steps, "steps", minimum=1)
    f = check_int(feature_dim, "feature_dim", minimum=1)
    p = check_int(factors, "factors", minimum=1)
    heads, d = q.shape[1], q.shape[-1]
    scale = d ** -0.5 if scale is None else float(scale)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    params = _initial(kind, heads, d, f, p, init_noise, gen)
    if window is not None:
        window = check_int(window, "window", minimum=0)
        from ..variants.window import fit_window_weight

        start = HeadwiseMap(kind, params[0].detach(), None if kind == "hla" else params[1].detach())
        gamma = fit_window_weight(q.detach(), k.detach(), window=window, kernel=start, causal=causal, scale=scale)
        params.append(gamma.float().log().requires_grad_(True))  # log γ per head, from the closed form
    q, k, v = q.float(), k.float(), v.float()
    plan = MaskPlan(causal=causal)
    target = masked_weights(None, q, k, scale=scale, plan=plan)
    out_ref = target @ v
    v_scale = v.pow(2).sum(-1).mean()
    opt = torch.optim.Adam(params, lr=lr)

    def make(ps):
        inner = HeadwiseMap(kind, ps[0], None if kind == "hla" else ps[1])
        if window is None:
            return inner
        from ..variants.window import Window

        return Window(d, window=window, kernel=inner, window_weight=ps[-1].exp())

    history = []
    for _ in range(steps):
        opt.zero_grad()
        approx = masked_weights(make(params), q, k, scale=scale, plan=plan)
        cross_entropy = -(target * torch.log(approx.clamp_min(1e-30))).sum(-1).mean()
        mse = ((approx @ v - out_ref).pow(2).sum(-1).mean()) / v_scale
        loss = cross_entropy + output_weight * mse
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    return Distilled(make([t.detach().clone() for t in params]), {}, history)
