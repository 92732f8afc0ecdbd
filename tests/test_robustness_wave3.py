"""Bad input through the public entry points, class by class: every case gets an answer equal to a trusted
reference, or an error that names the problem, within a second.

The classes are those of docs/guides/reliability.md (numbered as there); each table below holds the cases
of one class, and its count of cases is the "cases" column of that page's table.
"""

from __future__ import annotations

import contextlib
import math
import signal
import subprocess
import sys

import pytest
import torch

import approxlab
from approxlab import Attention, KernelVariant, attention, attention_weights, explicit_attention

from _helpers import randn

MAX_SECONDS = 5  # an error must come within this (the old code ran some of these cases for minutes)


@contextlib.contextmanager
def within(seconds=MAX_SECONDS):
    """Fail (TimeoutError) when the block runs longer than ``seconds`` of wall time (checked between bytecodes)."""
    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def qkv(b=1, h=2, n=8, d=8, dv=None, dtype=torch.float32, seed=0):
    return (randn(b, h, n, d, seed=seed, dtype=dtype), randn(b, h, n, d, seed=seed + 1, dtype=dtype),
            randn(b, h, n, dv or d, seed=seed + 2, dtype=dtype))


def _error_of(call):
    try:
        with within():
            call()
    except TimeoutError:
        raise
    except Exception as exc:  # the class and the message are what the tests compare
        return type(exc), str(exc)
    return None


class EluKernel(KernelVariant):
    """A well-formed user kernel (φ = elu + 1); the malformed ones below break one rule each."""

    name = "userelu"

    def features(self, x):
        return torch.nn.functional.elu(x) + 1, None


class NanFeatures(EluKernel):
    name = "nanfeatures"

    def features(self, x):
        f, _ = super().features(x)
        return f * float("nan"), None


# ----------------------------------------------------------------------------------------------
# 1. the module and the function share one checked path
# ----------------------------------------------------------------------------------------------
def _module_cases():
    cases = [(f"{v} q·1e20", v, {}, None, 1e20) for v in approxlab.VARIANTS]
    cases += [("linear scale=1e300", "linear", {}, 1e300, 1.0), ("softmax scale=1e300", "softmax", {}, 1e300, 1.0),
              ("performer scale=1e300", "performer", {}, 1e300, 1.0),
              ("NaN features", NanFeatures, {}, None, 1.0), ("favorpp a=-1e300", "favorpp", {"a": -1e300}, None, 1.0),
              ("hedgehog q·1e20", "hedgehog", {}, None, 1e20), ("taylor q·1e19", "taylor", {}, None, 1e19),
              ("polynomial q·1e15", "polynomial", {"degree": 4}, None, 1e15),
              ("hla q·1e15", "hla", {"factors": 3}, None, 1e15)]
    return cases


MODULE_CASES = _module_cases()


@pytest.mark.parametrize("label,variant,params,scale,magnitude", MODULE_CASES, ids=[c[0] for c in MODULE_CASES])
@pytest.mark.parametrize("causal", [False, True])
def test_module_refuses_what_the_function_refuses(label, variant, params, scale, magnitude, causal):
    q, k, v = qkv()
    q, k = q * magnitude, k * magnitude
    if approxlab.variants.KERNELS.get(variant) is approxlab.variants.Cosformer:
        q, k = approxlab.variants.with_positions(q, k)
    function = _error_of(lambda: attention(q, k, v, variant, causal=causal, scale=scale, **params))
    module = _error_of(lambda: Attention(variant, causal=causal, scale=scale, **params)(q, k, v))
    assert function is not None, f"{label}: attention returned a result"
    assert module == function, label


# ----------------------------------------------------------------------------------------------
# 2. exponential features do not underflow: float32 keys far below zero give the float64 answer
# ----------------------------------------------------------------------------------------------
UNDERFLOW_CASES = [("linear", {}), ("hla", {"factors": 2}), ("hla", {"factors": 3})]


@pytest.mark.parametrize("variant,params", UNDERFLOW_CASES, ids=[f"{v}-{p}" for v, p in UNDERFLOW_CASES])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("form", ["attention", "attention_weights", "Attention"])
@pytest.mark.parametrize("side", ["keys", "queries and keys"])
def test_far_negative_inputs_match_the_float64_answer(variant, params, causal, form, side):
    """Every scaled key coordinate below −104 (float32's exp underflows to 0 there): the old code returned
    all-zero rows; the answer is a convex combination of v, the float64 one."""
    q, k, v = qkv(n=12, d=4, seed=3)
    k = k - 300.0
    if side == "queries and keys":
        q = q - 300.0
    ref = explicit_attention(q.double(), k.double(), v.double(), variant, causal=causal, **params)
    if form == "attention":
        got = attention(q, k, v, variant, causal=causal, chunk_size=4, **params)
    elif form == "Attention":
        got = Attention(variant, causal=causal, chunk_size=4, **params)(q, k, v)
    else:
        got = attention_weights(q, k, variant, causal=causal, **params) @ v
    assert torch.isfinite(got).all()
    assert (got.double() - ref).abs().max() <= 1e-4 * v.abs().max()


def test_relu_rows_without_mass_stay_zero():
    """What truly has no kernel mass keeps the documented rule (zero weights, zero output)."""
    q, k, v = qkv(n=6, d=4)
    out = attention(q.abs() + 1, -(k.abs() + 1), v, "relu")
    assert torch.equal(out, torch.zeros_like(out))


# ----------------------------------------------------------------------------------------------
# 3-4. a user kernel's outputs are checked on first use; the error names the kernel and the method
# ----------------------------------------------------------------------------------------------
def _malformed(name, method, body):
    return type(name, (EluKernel,), {"name": name, method: body})


def _fine(x):
    return torch.nn.functional.elu(x) + 1


MALFORMED = [
    # (kernel, the method the error must name, text the message must hold)
    (_malformed("rowmissing", "features", lambda self, x: (_fine(x)[..., :-1, :], None)), "features", "shape"),
    (_malformed("extrarow", "features", lambda self, x: (torch.cat([_fine(x), _fine(x)[..., :1, :]], -2), None)),
     "features", "shape"),
    (_malformed("flat", "features", lambda self, x: (_fine(x).flatten(0, -2), None)), "features", "shape"),
    (_malformed("float64features", "features", lambda self, x: (_fine(x).double(), None)), "features", "dtype"),
    (_malformed("halffeatures", "features", lambda self, x: (_fine(x).half(), None)), "features", "dtype"),
    (_malformed("metafeatures", "features", lambda self, x: (_fine(x).to("meta"), None)), "features", "device"),
    (_malformed("notuple", "features", lambda self, x: _fine(x)), "features", "(f, log_scale)"),
    (_malformed("numpyfeatures", "features", lambda self, x: (_fine(x).numpy(), None)), "features", "tensor"),
    (_malformed("nanfeats", "features", lambda self, x: (_fine(x) * math.nan, None)), "features", "NaN"),
    (_malformed("inffeats", "features", lambda self, x: (_fine(x) * math.inf, None)), "features", "inf"),
    (_malformed("badscale", "features", lambda self, x: (_fine(x), torch.zeros(x.shape[:-2], dtype=x.dtype))),
     "features", "log_scale"),
    (_malformed("nanscale", "features", lambda self, x: (_fine(x), torch.full(x.shape[:-1], math.nan, dtype=x.dtype))),
     "features", "NaN"),
    (_malformed("scale64", "features", lambda self, x: (_fine(x), torch.zeros(x.shape[:-1], dtype=torch.float64))),
     "features", "dtype"),
    (_malformed("widerkeys", "key_features", lambda self, x: (torch.cat([_fine(x), _fine(x)], -1), None)),
     "key_features", "features"),
    (_malformed("zerofeatures", "num_features", lambda self, d: 0), "num_features", "num_features"),
    (_malformed("negfeatures", "num_features", lambda self, d: -3), "num_features", "num_features"),
    (_malformed("strfeatures", "num_features", lambda self, d: "64"), "num_features", "num_features"),
    (_malformed("floatfeatures", "num_features", lambda self, d: 8.0), "num_features", "num_features"),
    (_malformed("boolfeatures", "num_features", lambda self, d: True), "num_features", "num_features"),
    (_malformed("underreports", "num_features", lambda self, d: 1), "num_features", "num_features"),
    (_malformed("overreports", "num_features", lambda self, d: 10 * d), "num_features", "num_features"),
]
FORMS = ["attention", "attention causal", "attention_weights", "Attention causal"]


@pytest.mark.parametrize("cls,method,text", MALFORMED, ids=[c.name for c, _, _ in MALFORMED])
@pytest.mark.parametrize("form", FORMS)
def test_malformed_kernel_is_refused_by_name(cls, method, text, form):
    q, k, v = qkv(n=6, d=4)
    call = {"attention": lambda: attention(q, k, v, cls()),
            "attention causal": lambda: attention(q, k, v, cls(), causal=True),
            "attention_weights": lambda: attention_weights(q, k, cls()),
            "Attention causal": lambda: Attention(cls(), causal=True)(q, k, v)}[form]
    error = _error_of(call)
    assert error is not None, f"{cls.name}: accepted"
    kind, message = error
    assert issubclass(kind, (ValueError, TypeError)), error
    assert cls.name in message and method in message and text in message, message


def test_a_kernel_whose_features_turn_nan_later_says_so():
    """NaN only for some rows (past the first use's probe): reported as NaN from the kernel, not as an overflow."""
    class LateNan(EluKernel):
        name = "latenan"

        def key_features(self, x):
            f, _ = super().features(x)
            return torch.where(x[..., :1] > 1.0, math.nan, f), None

    q, k, v = qkv(n=64, d=4)
    k[..., 40, 0] = 5.0
    for causal in (False, True):
        with pytest.raises(ValueError, match=r"latenan.*NaN") as info:
            attention(q, k, v, LateNan(), causal=causal)
        assert "exceed" not in str(info.value)


def test_a_well_formed_user_kernel_still_works():
    q, k, v = qkv(n=9, d=4, dtype=torch.float64)
    for causal in (False, True):
        assert torch.allclose(attention(q, k, v, EluKernel(), causal=causal),
                              attention(q, k, v, "linear", causal=causal, scale=1.0 / 2), atol=1e-12)


# ----------------------------------------------------------------------------------------------
# 5. cosFormer without positions: every entry point gives the answer with positions 0..N−1
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("causal", [False, True])
def test_cosformer_without_positions_gets_them(causal):
    from approxlab.variants import with_positions

    q, k, v = qkv(n=10, d=6, dtype=torch.float64)
    reference = attention(*with_positions(q, k), v, "cosformer", causal=causal)
    weights = attention_weights(*with_positions(q, k), "cosformer", causal=causal)
    assert torch.allclose(attention(q, k, v, "cosformer", causal=causal), reference, atol=1e-12)
    assert torch.allclose(Attention("cosformer", causal=causal)(q, k, v), reference, atol=1e-12)
    assert torch.allclose(explicit_attention(q, k, v, "cosformer", causal=causal), reference, atol=1e-12)
    assert torch.allclose(attention_weights(q, k, "cosformer", causal=causal), weights, atol=1e-12)
    from approxlab.analysis.metrics import row_divergence

    divergence = row_divergence(q, k, "cosformer", causal=causal)["tv"]
    softmax_weights = attention_weights(q, k, "softmax", causal=causal)
    tv = 0.5 * (weights - softmax_weights).abs().sum(-1)
    assert torch.allclose(divergence, tv, atol=1e-12)


def test_cosformer_refuses_positions_on_one_side_only():
    from approxlab.variants import with_positions

    q, k, v = qkv(n=10, d=6, dtype=torch.float64)
    qp, _ = with_positions(q, k)
    with pytest.raises(ValueError, match="positions"):
        attention(qp, torch.cat([k, k[..., :2]], -1), v, "cosformer")


# ----------------------------------------------------------------------------------------------
# 7. Attention validates at construction what does not depend on the head dim, the rest at the first call
# ----------------------------------------------------------------------------------------------
HEAD_DIM_CASES = [("cosformer", {}), ("dpfp", {"nu": 4}), ("dpfp", {"nu": 15})]


@pytest.mark.parametrize("variant,params", HEAD_DIM_CASES, ids=[f"{v}-{p}" for v, p in HEAD_DIM_CASES])
def test_module_builds_what_the_head_dim_allows(variant, params):
    q, k, v = qkv(n=5, d=8, dtype=torch.float64)
    module = Attention(variant, **params)
    assert torch.allclose(module(q, k, v), attention(q, k, v, variant, **params), atol=1e-12)


def test_module_refuses_at_the_first_call_what_the_head_dim_forbids():
    module = Attention("dpfp", nu=16)
    with pytest.raises(ValueError, match="nu"):
        module(*qkv(n=5, d=8))
    with pytest.raises(ValueError, match="num_features"):
        Attention("performer", num_features=-1)  # independent of the head dim: refused at construction


# ----------------------------------------------------------------------------------------------
# 8. empty batches return empty outputs, as SDPA does
# ----------------------------------------------------------------------------------------------
EMPTY_SHAPES = [(0, 2), (2, 0), (0, 0)]
EMPTY_VARIANTS = [("softmax", {}), ("linear", {}), ("performer", {"num_features": 8}), ("taylor", {}),
                  ("hla", {}), ("cosformer", {}), (EluKernel(), {})]


@pytest.mark.parametrize("b,h", EMPTY_SHAPES)
@pytest.mark.parametrize("variant,params", EMPTY_VARIANTS, ids=[approxlab.kernel_name(v) for v, _ in EMPTY_VARIANTS])
@pytest.mark.parametrize("causal", [False, True])
def test_empty_batch_gives_an_empty_output(b, h, variant, params, causal):
    q, k, v = randn(b, h, 7, 6), randn(b, h, 7, 6), randn(b, h, 7, 3)
    assert attention(q, k, v, variant, causal=causal, **params).shape == (b, h, 7, 3)
    assert explicit_attention(q, k, v, variant, causal=causal, **params).shape == (b, h, 7, 3)
    assert attention_weights(q, k, variant, causal=causal, **params).shape == (b, h, 7, 7)
    assert Attention(variant, causal=causal, **params)(q, k, v).shape == (b, h, 7, 3)


# ----------------------------------------------------------------------------------------------
# 9. a chunk longer than the sequence is the sequence
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["linear", "performer", "taylor"])
@pytest.mark.parametrize("causal", [False, True])
def test_huge_chunk_size_is_clamped(variant, causal):
    q, k, v = qkv(n=8, d=4, dtype=torch.float64)
    with within():
        out = attention(q, k, v, variant, causal=causal, chunk_size=10**12)
    assert torch.allclose(out, attention(q, k, v, variant, causal=causal), atol=1e-12)


# ----------------------------------------------------------------------------------------------
# 6. work (FLOPs) is estimated beside memory: over the work budget, refused with the estimate
# ----------------------------------------------------------------------------------------------
WORK_CASES = [
    ("performer num_features=10**6", lambda q, k, v: attention(q, k, v, "performer", num_features=10**6)),
    ("taylor order=4", lambda q, k, v: attention(q, k, v, "taylor", order=4)),
    ("hla factors=3", lambda q, k, v: attention(q, k, v, "hla", factors=3)),
    ("hla factors=3 causal", lambda q, k, v: attention(q, k, v, "hla", factors=3, causal=True)),
    ("maclaurin num_features=10**6", lambda q, k, v: attention(q, k, v, "maclaurin", num_features=10**6)),
    ("favorpp num_features=10**6", lambda q, k, v: attention(q, k, v, "favorpp", num_features=10**6)),
]


@pytest.mark.parametrize("label,call", WORK_CASES, ids=[c[0] for c in WORK_CASES])
def test_long_calls_are_refused_with_their_estimate(label, call):
    q, k, v = qkv(b=1, h=8, n=1024, d=64)
    with pytest.raises(approxlab.WorkBudgetError, match="FLOP"):
        with within():
            call(q, k, v)


def test_work_budget_is_the_users_to_set():
    q, k, v = qkv(n=64, d=8)
    with approxlab.work_budget(1e4), pytest.raises(approxlab.WorkBudgetError, match=r"work budget.*set_work_budget"):
        attention(q, k, v, "linear")
    with approxlab.work_budget(1e12):
        assert torch.isfinite(attention(q, k, v, "linear")).all()
    for bad in ("lots", 0, -1, math.nan, math.inf, True):
        with pytest.raises((ValueError, TypeError), match="work budget"):
            approxlab.set_work_budget(bad)


# ----------------------------------------------------------------------------------------------
# 13. budgets that mean nothing are refused
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0.5", 1.9, 0.5, "3", 100])
def test_memory_budget_below_a_kibibyte_is_refused(value):
    with pytest.raises(ValueError, match="memory budget"):
        approxlab.set_memory_budget(value)
    assert approxlab.get_memory_budget() >= 2**10


# ----------------------------------------------------------------------------------------------
# 14. the command line: one line on stderr and exit status 2 for a bad command, before any work
# ----------------------------------------------------------------------------------------------
BAD_COMMANDS = [
    ["bench", "--min-run-time", "-1"], ["bench", "--min-run-time", "0"], ["bench", "--min-run-time", "nan"],
    ["bench", "--max-tokens", "0"], ["bench", "--max-tokens", "-5"], ["bench", "--max-batch-heads", "0"],
    ["bench", "--max-call-s", "0"], ["bench", "--max-call-s", "nan"], ["bench", "--memory-budget-gib", "-1"],
    ["bench", "--head-dim", "-1"], ["bench", "--head-dim", "0"], ["bench", "--lengths", "0"],
    ["bench", "--threads", "0"], ["bench", "--chunk-sizes", "0"], ["bench", "--methods", "nosuch"],
    ["bench", "--device", "bogus"], ["bench", "--csv", "/proc/no/such/dir/bench.csv"],
    ["report", "nosuchkernel"], ["report", "linear", "--param", "order"], ["report", "taylor", "--param", "order=-1"],
    ["report", "taylor", "--param", "colour=2"], ["report", "linear", "--compare-degree", "-1"],
    ["report", "linear", "--out", "/proc/no/such/dir"], ["report", "softmax"],
    ["figures", "--out", "/proc/no/such/dir", "--only", "rational_degree"],
    ["--import", "no_such_module_anywhere", "bench"], ["--import", "/no/such/file.py", "bench"],
]


def _cli(argv):
    return subprocess.run([sys.executable, "-m", "approxlab", *argv], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv", BAD_COMMANDS, ids=[" ".join(a) for a in BAD_COMMANDS])
def test_bad_command_prints_one_line_and_exits_2(argv, capsys):
    from approxlab.__main__ import main

    with within(), pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2, argv
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err), err
    assert err[-1].startswith("approxlab") and "error" in err[-1], err


def test_cli_error_through_python_dash_m():
    proc = _cli(["bench", "--min-run-time", "nan"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "min-run-time" in proc.stderr
