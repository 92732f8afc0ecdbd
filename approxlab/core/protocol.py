"""The kernel protocol: what every variant, built-in or brought by a user, implements.

A kernel κ(q, k) = φ_q(q)·φ_k(k) ≥ 0 is an object with these methods (subclass
:class:`KernelVariant` to get the defaults; any object with ``features`` also works):

``features(x) -> (f, log_scale)``
    x (…, N, D) are the *scaled* inputs, x = q·√scale and y = k·√scale, so x·y = s = q·k·scale.
    The feature is φ(x) = f · exp(log_scale): f (…, N, F) and log_scale (…, N) or None. The log
    scale keeps exp-based features finite (FAVOR+ returns f ≤ 1 and the exponent apart).
``query_features(x)`` / ``key_features(x)``  (default: ``features``)
    Per-query / per-key maps when they differ (e.g. a sign carried on the query side only). A
    query's log_scale is a per-row constant and cancels in the row normalisation, so it is ignored;
    a key's log_scale is carried exactly by the engine (running maximum, as in online softmax).
``kernel(x, y) -> (K, col_log_scale)``  (default: through the features)
    The unnormalised (…, Nq, Nk) kernel matrix for the explicit form; override it with the closed
    form so the explicit form is an independent reference for the efficient one.
``similarity_function(s)``  (optional)
    κ as a function of s alone, when it is one, written with plain arithmetic (numpy, torch and
    sympy inputs alike); it enables the 1-D analyses (log-uniform error δ vs range, rational degree).
``sympy_kernel(s)``  (optional; default: ``similarity_function`` on the sympy symbol)
    κ as a sympy expression of s, for :mod:`approxlab.analysis.symbolic` (degree, sign, monotonicity).
``feature_width(head_dim)``  (default: probed)    the feature width F (the state is F × Dv).
``kernel_expression(dim) -> KernelExpression``  (optional; default: read from ``sympy_kernel(s)``)
    κ in sympy with what the symbolic side needs (:class:`approxlab.variants.KernelExpression`: κ of the
    feature vectors, where the form holds, the feature width F; or ``no_degree``, the stated reason it has
    no finite rational degree, e.g. a random estimate). A kernel without any symbolic form still works
    everywhere; ``symbolic.rational_degree`` then says None.
``label``, ``color``, ``marker``, ``linestyle``, ``family``  (optional class attributes; default: from the name)
    How plots and tables show the variant (:mod:`approxlab.experiments.style` reads them).
``prepare_inputs(q, k) -> (q, k)``  (optional, on the class)
    How the variant takes q and k when every variant sees the same inputs (cosFormer appends positions).
``fixed_params(params) -> dict``  (optional)
    Parameters that rebuild the same kernel without drawing its random matrices again (the projection
    itself), for analyses that call a variant many times (:mod:`approxlab.analysis.validation`).
``calibrate(q, k, *, scale) -> dict``  (optional classmethod)
    Data-dependent parameters from a calibration set (FAVOR++, FAVOR#; :func:`approxlab.variants.calibrate`).
``exponential_order`` and ``log_scaled_features(x)``  (optional)
    For features built from exponentials of the coordinates (elu + 1), which underflow to 0 for inputs far
    below zero: the features with a per-row log scale factored out, used when the inputs reach that range.

A user kernel's outputs are checked on first use (per head dim, dtype and device): ``feature_width`` a
positive integer, each feature map a pair (f, log_scale) of the input's dtype and device, f (…, N, F) with F
equal to ``feature_width``, log_scale (…, N) or None, without NaN or inf. The error names the kernel and the
method.
``exact_query_features(x)``  (default: ``query_features``)
    φ_q(x) with the per-query log scale kept, for forms where it does not cancel: a hybrid adds a kernel's
    κ to exact exp(s) under one denominator (:mod:`approxlab.variants.window`). Override it where
    ``query_features`` leaves that factor out (FAVOR+).

Estimators that are not one feature product (the window hybrids, the shrinkage estimator) give their two
forms themselves: ``explicit_kernel(x, y, *, causal, offset) -> (K, row_log_scale)`` (the unnormalised
(…, Nq, Nk) matrix, zero off the allowed keys; query row r at position offset + r) and
``efficient(x, y, v, *, causal, chunk_size) -> o``; the entry points call those when a kernel has them.

The way in: a kernel object, or a :class:`KernelVariant` subclass with parameters, goes wherever a
variant name does (``attention(q, k, v, kernel)``, ``attention_weights``, ``explicit_attention``,
``Attention``, ``theory``, ``metrics.row_divergence``, ``bench``, ``symbolic``, ``report``), and
``register_kernel`` (as ``@register_kernel`` above the class, the way every built-in variant registers
itself, or ``register_kernel(name, cls)``) makes the name work everywhere, the command line included
(``approxlab report NAME --import mymodule`` imports the module that registers it).

    @approxlab.register_kernel                          # the name from the class
    class SoftmaxFeatures(approxlab.KernelVariant):     # φ(x) = exp(x − max_d x_d): f ≤ 1, and
        name = "softmax_features"                      # the max goes into the log scale
        color = "#117733"
        def features(self, x):
            top = x.amax(-1)
            return torch.exp(x - top[..., None]), top

    approxlab.attention(q, k, v, "softmax_features", causal=True)
    approxlab.report(SoftmaxFeatures())

More: ``examples/kernels.py`` (expmap, the same map with a closed-form ``kernel``) and
``examples/bring_your_own_kernel.ipynb``.

Inputs are (B, H, N, D); a kernel sees the head dim D of q. Kernels that can be exactly 0 (relu,
DPFP) are allowed: a row with no kernel mass gets zero weights and output.

The shape every kernel variant shares: κ(q, k) = φ_q(q) · φ_k(k) on scaled inputs.

Inputs arrive already scaled, x = q·√scale and y = k·√scale, so that x·y = s, the similarity
softmax would exponentiate. A variant gives its feature maps (for the efficient form) and its kernel
matrix from its own definition (for the explicit form); where κ depends on s alone it also gives
``similarity_function(s)``, written with plain arithmetic so it accepts numpy arrays, torch tensors
and sympy symbols alike.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch


#: what a feature map returns: the features f (…, N, F) and an optional per-row log scale (…, N)
Features = Tuple[torch.Tensor, Optional[torch.Tensor]]
FeatureMap = Callable[[torch.Tensor], Features]


class KernelVariant:
    """Base class of the kernel protocol (documented in :mod:`approxlab.variants`): subclasses set
    ``name`` and implement :meth:`features` (and may override the rest)."""

    name: str = "kernel"
    #: κ as a function of the similarity s alone, or None when κ depends on more than s
    similarity_function = None
    #: how plots show it (None: a label from the name, a colour from the name's CRC, "o", "-")
    label: Optional[str] = None
    color: Optional[str] = None
    marker: Optional[str] = None
    linestyle: Optional[str] = None
    #: the family plots group it with (its line style, a hue; experiments.style.FAMILIES)
    family: Optional[str] = None
    #: True when the kernel reads token positions from two coordinates appended to q and k
    #: (:func:`~approxlab.variants.cosformer.with_positions`; cosFormer)
    positional: bool = False

    def features(self, x: torch.Tensor) -> Features:
        raise NotImplementedError

    def query_features(self, x: torch.Tensor) -> Features:
        return self.features(x)

    def key_features(self, x: torch.Tensor) -> Features:
        return self.features(x)

    def exact_query_features(self, x: torch.Tensor) -> Features:
        """φ_q(x) with its per-query log scale (module doc); the default is :meth:`query_features`."""
        return self.query_features(x)

    def kernel(self, x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Unnormalised kernel matrix (…, Nq, Nk) and an optional per-key log scale.

        The default goes through the features; variants with a closed form override it so the
        explicit form is an independent reference for the efficient one.
        """
        fq, _ = self.query_features(x)
        fk, ck = self.key_features(y)
        return fq @ fk.transpose(-1, -2), ck

    #: how many exponentials of input coordinates multiply into one feature (elu + 1: 1; HLA's p elu factors: p),
    #: for features that underflow far below zero; 0 for the others. A kernel with an order > 0 implements
    #: :meth:`log_scaled_features`, which the entry points use when |x| reaches the underflow range
    exponential_order: int = 0

    def log_scaled_features(self, x: torch.Tensor) -> Features:
        """The features with a per-row log scale c factored out, φ(x) = f·e^c, f's largest entry of order 1
        (for exponential-type features, :attr:`exponential_order` > 0): keys far below zero then keep their
        relative weights instead of underflowing to zero."""
        raise NotImplementedError(f"{self.name} has exponential_order = {self.exponential_order} but no "
                                  "log_scaled_features")

    #: the constructor parameter that sets the feature width F (named in memory-budget errors)
    size_parameter: Optional[str] = None

    def sympy_kernel(self, s):
        """κ as a sympy expression of the similarity symbol ``s``, or None when κ depends on more
        than s. The default evaluates :attr:`similarity_function` on the symbol (so it must be
        written with plain arithmetic); override it when that function uses torch or numpy calls."""
        if self.similarity_function is None:
            return None
        try:
            return self.similarity_function(s)
        except (TypeError, ValueError, AttributeError):  # torch or numpy calls: no symbolic form
            return None
        except Exception as err:  # a failure of the kernel's own: named, never taken for "no form"
            name = type(self).__name__ if self.name == KernelVariant.name else self.name
            raise RuntimeError(f"kernel {name!r}: similarity_function(s) raised {type(err).__name__}: {err}") from err

    def feature_width(self, head_dim: int) -> int:
        """Feature dimension F for inputs of head dim D (the state is F × Dv); override with a closed form
        where one feature row would be large (the default builds the features of one zero row)."""
        return self.features(torch.zeros(1, head_dim, dtype=torch.float64))[0].shape[-1]

    def describe_size(self, head_dim: int) -> str:
        """E.g. ``"taylor order=2 (F = 2,145 features)"``: what a memory-budget error names."""
        setting = f" {self.size_parameter}={getattr(self, self.size_parameter)!r}" if self.size_parameter else ""
        name = type(self).__name__ if self.name == KernelVariant.name else self.name
        return f"{name}{setting} (F = {self.feature_width(head_dim):,} features)"
