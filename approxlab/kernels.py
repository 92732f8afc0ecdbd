"""Bring your own kernel: the kernel protocol, and the way into every entry point.

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
    κ as a sympy expression of s, for :mod:`approxlab.symbolic` (degree, sign, monotonicity).
``num_features(head_dim)``  (default: probed)    the feature dimension F (the state is F × Dv).

The way in: a kernel object, or a :class:`KernelVariant` subclass with parameters, goes wherever a
variant name does (``attention(q, k, v, kernel)``, ``attention_weights``, ``explicit_attention``,
``Attention``, ``theory``, ``metrics.row_divergence``, ``bench``, ``symbolic``, ``report``), and
``register_kernel(name, cls)`` makes ``name`` work everywhere, the command line included
(``approxlab report NAME --import mymodule`` imports the module that registers it).

    class SoftmaxFeatures(approxlab.KernelVariant):     # φ(x) = exp(x − max_d x_d): f ≤ 1, and
        name = "softmax_features"                      # the max goes into the log scale
        def features(self, x):
            top = x.amax(-1)
            return torch.exp(x - top[..., None]), top

    approxlab.register_kernel("softmax_features", SoftmaxFeatures)
    approxlab.attention(q, k, v, "softmax_features", causal=True)
    approxlab.report(SoftmaxFeatures())

More: ``examples/kernels.py`` (expmap, the same map with a closed-form ``kernel``) and
``examples/bring_your_own_kernel.ipynb``.

Inputs are (B, H, N, D); a kernel sees the head dim D of q. Kernels that can be exactly 0 (relu,
DPFP) are allowed: a row with no kernel mass gets zero weights and output.
"""

from __future__ import annotations

import numpy as np

from .variants import (
    KERNELS, KernelVariant, as_kernel, build_kernel, check_variant, is_kernel, kernel_name, register_kernel,
    unregister_kernel, variant_names,
)

Kernel = KernelVariant


def similarity_of(kernel):
    """κ(s) as a numpy-callable when the kernel is a function of the similarity alone, else None."""
    kernel = as_kernel(kernel)
    f = getattr(kernel, "similarity_function", None)
    if f is None:
        return None
    try:
        out = np.asarray(f(np.linspace(-1.0, 1.0, 3)), dtype=float)
    except (TypeError, ValueError, AttributeError):
        return None
    return f if out.shape == (3,) else None


__all__ = ["Kernel", "KernelVariant", "register_kernel", "unregister_kernel", "variant_names", "build_kernel",
           "kernel_name", "is_kernel", "as_kernel", "check_variant", "similarity_of", "KERNELS"]
