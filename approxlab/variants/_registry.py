"""The registry of variant names: every name the entry points accept, the decorator that adds one, and
the way from a name (or a kernel object) and parameters to a kernel with its parameters bound."""

from __future__ import annotations

import inspect
import textwrap

import numpy as np

from ..core.checks import check_int
from ..core.protocol import KernelVariant

#: kernel variants by name (the built-in ones and those added by :func:`register_kernel`);
#: ``softmax`` is the exact reference and has no feature kernel
KERNELS: dict = {}
_BUILTIN: set = set()


def variant_names() -> tuple:
    """Every name the entry points accept now: softmax, the built-in kernels, then registered ones.

    Examples
    --------
    >>> from approxlab.variants import variant_names
    >>> variant_names()[:4]
    ('softmax', 'linear', 'relu', 'performer')
    """
    return ("softmax",) + tuple(KERNELS)


def register_kernel(name=None, cls=None, *, replace: bool = False):
    """Make a kernel class a variant everywhere a variant name is accepted (``attention``, ``Attention``,
    ``symbolic``, ``theory``, ``metrics``, ``bench``, ``report``, the CLI).

    ``cls`` is a :class:`KernelVariant` subclass (or a callable returning a kernel object), called with
    the parameters the caller gives, plus ``head_dim`` when its signature has one. Three spellings:
    ``register_kernel("expmap", ExpMap)``; ``@register_kernel("expmap")`` above the class; ``@register_kernel``
    above a class whose ``name`` attribute is the name (how every built-in variant registers itself).
    Returns ``cls`` (or the decorator). Built-in names cannot be replaced; a registered one only with
    ``replace=True``.

    Parameters
    ----------
    name : str or class, optional
        The variant name (a Python identifier); omitted, the class's ``name`` attribute.
    cls : class or callable, optional
        What builds the kernel from the caller's parameters (and ``head_dim`` when it takes one).
    replace : bool
        Replace a name registered earlier (never a built-in one).

    Returns
    -------
    class or callable
        ``cls`` itself, or, when ``cls`` is not given yet, the decorator that registers it.

    Raises
    ------
    ValueError
        A name that is not an identifier, a built-in name, or one already registered without ``replace``.
    TypeError
        A ``cls`` that is not callable.

    Examples
    --------
    >>> import torch, approxlab
    >>> @approxlab.register_kernel
    ... class Squared(approxlab.KernelVariant):
    ...     name = "squared_relu"
    ...     def features(self, x):
    ...         return torch.relu(x) ** 2, None
    >>> "squared_relu" in approxlab.variant_names()
    True
    >>> approxlab.unregister_kernel("squared_relu")
    """
    if cls is None and not isinstance(name, str):
        if name is None:  # @register_kernel(): the name from the class
            return lambda later: register_kernel(None, later, replace=replace)
        name, cls = None, name  # @register_kernel
    if cls is None:
        return lambda later: register_kernel(name, later, replace=replace)
    if name is None:
        name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Python identifier string, got {name!r}")
    if name in _BUILTIN:
        raise ValueError(f"name {name!r} is a built-in variant; choose another name")
    if name in KERNELS and not replace and KERNELS[name] is not cls:
        raise ValueError(f"a kernel named {name!r} is already registered ({KERNELS[name]!r}); pass replace=True")
    if not callable(cls):
        raise TypeError(f"cls must be a KernelVariant subclass or a callable returning a kernel, got {cls!r}")
    if isinstance(cls, type) and issubclass(cls, KernelVariant) and not _has_feature_maps(cls):
        raise TypeError(f"{cls.__name__} does not implement the kernel protocol: override features(x) (or both "
                        "query_features and key_features); see approxlab.variants")
    KERNELS[name] = cls
    return cls


def _has_feature_maps(cls) -> bool:
    """True when a KernelVariant subclass overrides features, or both query_features and key_features, or gives
    its own efficient form (the window hybrids, the shrinkage estimator)."""
    own = lambda method: getattr(cls, method, None) is not getattr(KernelVariant, method, None)  # noqa: E731
    return own("features") or (own("query_features") and own("key_features")) or callable(getattr(cls, "efficient", None))


def seal_builtins() -> None:
    """Mark every name registered so far (and softmax) as built-in: neither replaceable nor removable."""
    _BUILTIN.update(KERNELS, {"softmax"})


def unregister_kernel(name: str) -> None:
    """Remove a name added by :func:`register_kernel` (built-in names stay)."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in variant and cannot be removed")
    if name not in KERNELS:
        raise KeyError(f"no registered kernel named {name!r}")
    del KERNELS[name]


def is_kernel(obj) -> bool:
    """True for an object following the kernel protocol (see :mod:`approxlab.variants`): a
    :class:`KernelVariant`, or anything with ``features`` or both ``query_features`` and ``key_features``."""
    if isinstance(obj, (str, type)) or obj is None:
        return False
    if isinstance(obj, KernelVariant):
        return True
    return callable(getattr(obj, "features", None)) or (
        callable(getattr(obj, "query_features", None)) and callable(getattr(obj, "key_features", None)))


class _Adapted(KernelVariant):
    """A protocol object that does not subclass :class:`KernelVariant`, given the base class defaults."""

    def __init__(self, obj):
        self.obj = obj
        self.name = kernel_name(obj)
        self.similarity_function = getattr(obj, "similarity_function", None)
        for carried in ("kernel_expression", "label", "color", "marker", "linestyle"):  # what it says about itself
            if hasattr(obj, carried):
                setattr(self, carried, getattr(obj, carried))

    def features(self, x):
        if callable(getattr(self.obj, "features", None)):
            return self.obj.features(x)
        return self.obj.key_features(x)

    def query_features(self, x):
        return getattr(self.obj, "query_features", self.features)(x)

    def key_features(self, x):
        return getattr(self.obj, "key_features", self.features)(x)

    def kernel(self, x, y):
        if callable(getattr(self.obj, "kernel", None)):
            return self.obj.kernel(x, y)
        return super().kernel(x, y)

    def sympy_kernel(self, s):
        if callable(getattr(self.obj, "sympy_kernel", None)):
            return self.obj.sympy_kernel(s)
        return super().sympy_kernel(s)

    def feature_width(self, head_dim):
        if callable(getattr(self.obj, "feature_width", None)):
            return self.obj.feature_width(head_dim)
        return super().feature_width(head_dim)


def as_kernel(obj) -> KernelVariant:
    """``obj`` as a :class:`KernelVariant` (itself, or wrapped when it only follows the protocol)."""
    if isinstance(obj, KernelVariant):
        return obj
    if is_kernel(obj):
        return _Adapted(obj)
    raise TypeError(f"{obj!r} does not follow the kernel protocol (features, or query_features and key_features)")


def kernel_name(variant) -> str:
    """A label for a variant: the name itself, a kernel's ``name`` (its class name when it kept the
    base class default), or a kernel class's.

    Examples
    --------
    >>> from approxlab.variants import Performer, kernel_name
    >>> kernel_name("taylor"), kernel_name(Performer)
    ('taylor', 'performer')
    """
    if isinstance(variant, str):
        return variant
    cls = variant if isinstance(variant, type) else type(variant)
    name = getattr(variant, "name", None)
    if not isinstance(name, str) or (name == KernelVariant.name and cls is not KernelVariant):
        return cls.__name__
    return name


def value_text(value) -> str:
    """``repr(value)``, but a kernel object or class by its :func:`kernel_name` (never ``<… object at 0x…>``),
    also inside lists, tuples and dicts: how labels, cell names and messages write a parameter's value.

    Examples
    --------
    >>> from approxlab.variants import Performer, value_text
    >>> value_text([Performer(4, num_features=2), "taylor", 0.5])
    "[performer, 'taylor', 0.5]"
    """
    if is_kernel(value) or (isinstance(value, type) and issubclass(value, KernelVariant)):
        return kernel_name(value)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(value_text(v) for v in value) + ("," if isinstance(value, tuple) and len(value) == 1 else "")
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {value_text(v)}" for k, v in value.items()) + "}"
    return repr(value)


def check_variant(variant):
    """``variant`` if it is a variant name (built-in or registered), a kernel object or a
    :class:`KernelVariant` subclass; else a ValueError naming the accepted names."""
    if isinstance(variant, str):
        if variant in KERNELS or variant == "softmax":
            return variant
    elif is_kernel(variant) or (isinstance(variant, type) and issubclass(variant, KernelVariant)):
        return variant
    raise ValueError(f"variant must be one of {list(variant_names())}, a kernel object or a KernelVariant "
                     f"subclass (see approxlab.variants), got {variant!r}")


def is_softmax(variant) -> bool:
    """True for the name of the exact reference, ``"softmax"``."""
    return isinstance(variant, str) and variant == "softmax"


def variant_class(variant):
    """The class that describes ``variant`` (its colour, label, symbolic form, parameters): a registered
    name's class, softmax's :class:`~approxlab.variants.softmax.Softmax`, a kernel class itself, or a
    kernel object's class (None for a name that is not a variant).

    Examples
    --------
    >>> from approxlab.variants import variant_class
    >>> variant_class("performer").label, variant_class("softmax").color
    ('FAVOR+', '#0173b2')
    """
    if isinstance(variant, str):
        if is_softmax(variant):
            from .softmax import Softmax

            return Softmax
        return KERNELS.get(variant)
    if isinstance(variant, _Adapted):
        variant = variant.obj
    return variant if isinstance(variant, type) else type(variant)


def inputs_for(variant, q, k):
    """(q, k) as ``variant`` takes them: through its class's ``prepare_inputs(q, k)`` when it has one (a
    positional kernel such as cosFormer appends the positions unless q and k carry them), unchanged
    otherwise. Every public entry point goes through this, so plain and prepared inputs give one answer.

    Examples
    --------
    >>> import torch
    >>> from approxlab.variants import inputs_for
    >>> q = k = torch.randn(1, 1, 5, 4)
    >>> inputs_for("cosformer", q, k)[0].shape, inputs_for("linear", q, k)[0] is q
    (torch.Size([1, 1, 5, 6]), True)
    """
    prepare = getattr(variant_class(check_variant(variant)), "prepare_inputs", None)
    return prepare(q, k) if callable(prepare) else (q, k)


def is_positional(variant) -> bool:
    """True for a kernel that reads token positions from two coordinates appended to q and k (cosFormer)."""
    return bool(getattr(variant_class(variant), "positional", False))


def _constructor(variant):
    cls = KERNELS[variant] if isinstance(variant, str) else variant
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # a callable without an introspectable signature: take anything
        return cls, None
    return cls, signature


def check_params(variant, params: dict) -> None:
    """Raise TypeError for parameters the variant does not accept (softmax and kernel objects take none)."""
    variant = check_variant(variant)
    if is_softmax(variant):
        if params:
            raise TypeError(f"softmax takes no kernel parameters, got {sorted(params)}")
        return
    if not isinstance(variant, (str, type)):
        if params:
            raise TypeError(f"a kernel object has its parameters bound; got extra parameter(s) {sorted(params)} "
                            f"for {kernel_name(variant)!r}")
        return
    _, signature = _constructor(variant)
    if signature is None or any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        return
    accepted = set(signature.parameters) - {"head_dim"}
    unexpected = sorted(set(params) - accepted)
    if unexpected:
        raise TypeError(f"unexpected parameter(s) {unexpected} for variant {kernel_name(variant)!r}; "
                        f"it accepts {sorted(accepted)}")


def needs_head_dim(variant) -> bool:
    """True when building ``variant`` depends on the head dim (its constructor takes ``head_dim``)."""
    if not isinstance(variant, (str, type)):
        return False
    _, signature = _constructor(variant)
    return signature is not None and "head_dim" in signature.parameters


def build_kernel(variant, head_dim: int, **params) -> KernelVariant:
    """The kernel of a non-softmax variant with its parameters bound (same arguments, same kernel).

    Parameters
    ----------
    variant : str, KernelVariant subclass or kernel object
        A name (built-in or registered), a class (built with ``params``), or a kernel object (returned
        as is; it takes no ``params``).
    head_dim : int
        The head dim D of the inputs it will see (passed on when the constructor takes ``head_dim``).
    **params
        The variant's parameters.

    Returns
    -------
    KernelVariant

    Raises
    ------
    ValueError
        softmax (it has no feature kernel), an unknown variant, a bad parameter value.
    TypeError
        A parameter the variant does not take, or a constructor that built no kernel.

    Examples
    --------
    >>> from approxlab.variants import build_kernel
    >>> kernel = build_kernel("taylor", 16, order=2)
    >>> kernel.feature_width(16)
    153
    """
    if is_softmax(variant):
        raise ValueError("softmax has no feature kernel; call approxlab.attention(..., 'softmax')")
    check_params(variant, params)
    if not isinstance(variant, (str, type)):
        return as_kernel(variant)
    check_int(head_dim, "head_dim", minimum=1)
    cls, signature = _constructor(variant)
    if signature is not None and "head_dim" in signature.parameters:
        params["head_dim"] = head_dim
    kernel = cls(**params)
    if not is_kernel(kernel):
        raise TypeError(f"{kernel_name(variant)!r} built {kernel!r}, which does not follow the kernel protocol")
    return as_kernel(kernel)


def parameters_doc() -> str:
    """One line per variant: its parameters with their defaults and the first line of its docstring."""
    lines = ["softmax: no parameters (exact reference, SDPA)"]
    for name, cls in KERNELS.items():
        _, signature = _constructor(name)
        shown = ([str(p.replace(annotation=p.empty)) for p in signature.parameters.values() if p.name != "head_dim"]
                 if signature else ["…"])
        own = (inspect.cleandoc(cls.__dict__.get("__doc__") or "").split("\n\n")[0]
               if isinstance(cls, type) else None)  # the class docstring's summary
        module = inspect.getmodule(cls)
        summary = " ".join(inspect.cleandoc(module.__doc__ or "").split("\n\n")[0].split()) if module else ""
        lines.append(f"{name}({', '.join(shown)})")
        for text in (" ".join((own or summary).split()),):
            if text:
                lines.append(textwrap.fill(text, width=96, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines)


def similarity_of(kernel):
    """κ(s) as a numpy-callable when the kernel is a function of the similarity alone, else None."""
    kernel = as_kernel(kernel)
    f = getattr(kernel, "similarity_function", None)
    if f is None:
        return None
    try:
        out = np.asarray(f(np.linspace(-1.0, 1.0, 3)), dtype=float)
    except (TypeError, ValueError, AttributeError):  # written for torch tensors or sympy only: not numpy-callable
        return None
    except Exception as err:  # a failure of the kernel's own: named, never taken for "not a function of s"
        raise RuntimeError(f"kernel {kernel_name(kernel)!r}: similarity_function(s) raised {type(err).__name__} on "
                           f"numpy input: {err}") from err
    return f if out.shape == (3,) else None


def calibrate(q, k, variant, *, scale=None) -> dict:
    """Data-dependent parameters of ``variant`` from a calibration set of queries and keys (…, N, D),
    through the variant class's ``calibrate(q, k, scale=...)`` (FAVOR++ and FAVOR# have one). Pass the
    result on as keyword arguments: ``attention(q, k, v, name, **calibrate(q0, k0, name))``. In causal
    use, calibrate on data other than the future of the sequence (a held-out set or a prefix).

    Examples
    --------
    >>> import torch
    >>> from approxlab.variants import calibrate
    >>> q0, k0 = (torch.randn(1, 1, 64, 8, dtype=torch.float64) for _ in range(2))
    >>> sorted(calibrate(q0, k0, "favorsharp"))
    ['a', 'rescale']
    """
    calibrated = [n for n, c in KERNELS.items() if callable(getattr(c, "calibrate", None))]
    cls = KERNELS.get(variant) if isinstance(variant, str) else variant
    if not callable(getattr(cls, "calibrate", None)):
        raise ValueError(f"variant must be one with data-dependent parameters {calibrated}, got {variant!r}")
    return cls.calibrate(q, k, scale=scale)
