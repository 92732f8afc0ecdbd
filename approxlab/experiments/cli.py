"""Command line: ``approxlab figures`` regenerates the figures, ``approxlab bench`` times the variants,
``approxlab report NAME`` writes a kernel's report card, ``approxlab model-report PATH_OR_NAME`` swaps variants
into a local transformers model (:mod:`approxlab.experiments.model_report`), ``approxlab gpu-campaign`` runs every GPU
measurement in one budgeted command (:mod:`approxlab.experiments.gpu_campaign`). ``--import MODULE_OR_FILE`` (before the
command, repeatable) imports a module that calls ``approxlab.register_kernel``, so its names work."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import sys
from pathlib import Path

from . import figures, gpu_campaign
from .errors import CommandError, USER_ERRORS, reporting_errors  # noqa: F401 (re-exported)


def import_plugin(spec: str):
    """Import a module by name (``mypkg.kernels``) or by file path (``examples/kernels.py``)."""
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"--import: no such file {spec!r}")
        name = f"_approxlab_plugin_{path.stem}"
        loader = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(loader)
        sys.modules[name] = module
        loader.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


def main(argv=None) -> None:
    """Run the command line. A bad command (an argument out of range, an unknown name, a folder that cannot be
    written) prints ``approxlab: error: ...`` on one line and exits with status 2, before any computation;
    Ctrl-C prints one line and exits with 130."""
    parser = build_parser()
    reporting_errors(run, parser, argv)


def argument_type(convert, accept, requirement: str):
    """An argparse type: ``convert(text)`` (int or float), refused with "must be <requirement>" when it fails
    or when ``accept(value)`` is false (NaN fails every comparison, so it is refused too)."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
        return value

    return parse


#: argparse type: an integer ≥ 1
positive_int = argument_type(int, lambda value: value >= 1, "an integer >= 1")
#: argparse type: a finite number > 0
positive_float = argument_type(float, lambda value: math.isfinite(value) and value > 0,
                               "a positive finite number")
#: argparse type: a number > 0 (inf: no limit)
positive_or_inf = argument_type(float, lambda value: value > 0, "a positive number (inf: no limit)")


def writable_folder(path, flag: str) -> Path:
    """``path`` as a folder this process can write into, or create (its nearest existing parent writable),
    checked before any computation; nothing is created here."""
    folder = Path(path)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == folder and not folder.is_dir():
        raise OSError(f"{flag} {str(path)!r}: exists and is not a folder")
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OSError(f"{flag} {str(path)!r}: cannot write into {str(existing)!r}")
    return folder


def writable_file(path, flag: str) -> Path:
    """``path`` as a file this process can write (its folder exists and is writable), checked before computing."""
    file = Path(path)
    folder = file.parent if str(file.parent) else Path(".")
    if not folder.is_dir():
        raise OSError(f"{flag} {str(path)!r}: no such folder {str(folder)!r}")
    if file.is_dir() or not os.access(folder, os.W_OK) or (file.exists() and not os.access(file, os.W_OK)):
        raise OSError(f"{flag} {str(path)!r}: not a writable file")
    return file


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="approxlab", description=__doc__)
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE_OR_FILE",
                        help="import a module (or .py file) that registers kernels with approxlab.register_kernel")
    sub = parser.add_subparsers(dest="command", required=True)
    fig = sub.add_parser("figures", help="regenerate figures/*.png, *.pdf and *.csv")
    figures.add_arguments(fig)
    fig.add_argument("--only", nargs="+", choices=list(figures.FIGURES), metavar="NAME",
                     help=f"only these figures ({', '.join(figures.FIGURES)})")
    bench_parser = sub.add_parser("bench", help="time every variant vs SDPA / naive softmax; print a banner, write a CSV")
    add_bench_arguments(bench_parser)
    report_parser = sub.add_parser("report", help="a kernel's report card: figures/report_NAME.png/.pdf/.csv")
    add_report_arguments(report_parser)
    model_parser = sub.add_parser("model-report", help="swap variants into a local transformers model: per-layer "
                                                       "and end-to-end table, figures/model_report_NAME.*")
    add_model_report_arguments(model_parser)
    campaign_parser = sub.add_parser("gpu-campaign", help="every GPU measurement in priority order within a time "
                                                          "budget; --dry-run: the same at tiny sizes on any device")
    gpu_campaign.add_arguments(campaign_parser)
    return parser


def run(parser: argparse.ArgumentParser, argv=None) -> None:
    from .style import use_file_backend

    args = parser.parse_args(argv)
    use_file_backend()
    for spec in args.imports + getattr(args, "report_imports", []):  # before any name is looked up
        import_plugin(spec)
    if args.command == "figures":
        writable_folder(args.out, "--out")
        times = figures.make_many(args.only, args.profile, args.out, **figures.run_arguments(args))
        figures.report_problems(times)
    elif args.command == "bench":
        run_bench(args)
    elif args.command == "report":
        run_report(args)
    elif args.command == "model-report":
        run_model_report(args)
    elif args.command == "gpu-campaign":
        gpu_campaign.main(args)


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    from .report_card import PARTS, PROFILES

    parser.add_argument("name", help="a variant name: built-in, or registered by a module given with --import")
    parser.add_argument("--import", dest="report_imports", action="append", default=[], metavar="MODULE_OR_FILE",
                        help="import a module (or .py file) that registers the kernel first")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a kernel parameter (value read as a Python literal), repeatable")
    parser.add_argument("--profile", choices=list(PROFILES), default="quick", help="small, quick (default) or full")
    parser.add_argument("--real", choices=["auto", "yes", "no"], default="auto",
                        help="the all-MiniLM-L6 heads part (auto: when the 'real' extra is installed)")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS), metavar="PART",
                        help=f"parts to compute (default: all of {', '.join(PARTS)})")
    parser.add_argument("--compare-degree", type=positive_int, default=None,
                        help="degree of the best polynomial / rational to compare δ with when none is derived")
    parser.add_argument("--out", default=str(figures.DEFAULT_OUTDIR), help="output folder (default: figures/)")


def _parse_params(items) -> dict:
    import ast

    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--param must be KEY=VALUE, got {item!r}")
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    return params


def run_report(args) -> None:
    from .report_card import report

    real = {"auto": None, "yes": True, "no": False}[args.real]
    writable_folder(args.out, "--out")
    card = report(args.name, profile=args.profile, real=real, compare_degree=args.compare_degree, parts=args.parts,
                  **_parse_params(args.param))
    print(card.summary.drop(columns="kernel").to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    for path in card.save(args.out):
        print(f"wrote {path}")


def add_model_report_arguments(parser: argparse.ArgumentParser) -> None:
    from .model_report import DEFAULT_VARIANTS

    parser.add_argument("model", metavar="PATH_OR_NAME",
                        help="a saved model folder, a hub name in the local cache, or 'minilm' (the packaged "
                             "all-MiniLM-L6); nothing is downloaded")
    parser.add_argument("--variant", action="append", default=None, metavar="NAME[:KEY=VALUE,...]",
                        help=f"a variant to swap in, repeatable (default: {', '.join(DEFAULT_VARIANTS)})")
    parser.add_argument("--text", action="append", default=None, help="an input text, repeatable (default: "
                                                                      "paragraphs of stdlib docstrings)")
    parser.add_argument("--max-length", type=positive_int, default=128, help="tokens per text (default 128)")
    parser.add_argument("--layers", nargs="+", type=int, default=None, help="attention layers to swap (default all)")
    parser.add_argument("--alone", action="store_true", help="also run each layer swapped alone")
    parser.add_argument("--out", default=str(figures.DEFAULT_OUTDIR), help="output folder (default: figures/)")


def run_model_report(args) -> None:
    from . import model_report

    writable_folder(args.out, "--out")
    variants = args.variant or list(model_report.DEFAULT_VARIANTS)
    for text in variants:  # names and parameters checked before the model loads
        from ..variants import check_params, check_variant

        name, params = model_report.parse_variant(text)
        check_params(check_variant(name), params)
    df = model_report.run(args.model, variants, args.text, max_length=args.max_length, alone=args.alone,
                          layers=args.layers)
    shown = [c for c in ("variant", "scope", "layer", "tv", "output_error", "delta", "bound", "entropy", "sum_sq",
                         "embedding_cosine", "relative_change") if c in df]
    print(df[shown].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    for path in model_report.save(df, args.model, args.out):
        print(f"wrote {path}")


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    from . import bench

    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--methods", nargs="+", default=list(bench.METHODS), metavar="METHOD",
                        help=f"methods to time (default: all of {', '.join(bench.METHODS)}; <variant>_compiled for torch.compile)")
    parser.add_argument("--lengths", nargs="+", type=positive_int, default=[128, 512, 2048, 8192], metavar="N")
    parser.add_argument("--dtypes", nargs="+", default=["float32"], choices=list(bench.DTYPES))
    parser.add_argument("--causal", choices=["no", "yes", "both"], default="both")
    parser.add_argument("--head-dim", type=positive_int, default=64)
    parser.add_argument("--max-batch-heads", type=positive_int, default=8, help="B·H at short N")
    parser.add_argument("--max-tokens", type=positive_int, default=2**16, help="B·H·N cap: B·H shrinks at long N")
    parser.add_argument("--protocol", choices=["scaling", "blog", "both"], default="scaling",
                        help="scaling: --methods × --lengths (default); blog: the blog's protocol (batch 32, "
                             "one head, D 64, N 128…6000; naive softmax, SDPA, linear, identity); both")
    parser.add_argument("--min-run-time", type=positive_float, default=0.2, help="seconds of timed runs per case")
    parser.add_argument("--max-call-s", type=positive_or_inf, default=10.0, help="skip larger N once a call takes longer")
    parser.add_argument("--memory-budget-gib", type=positive_float, default=4.0, help="skip naive softmax above this")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--chunk-sizes", nargs="+", type=positive_int, default=None, metavar="C",
                        help="time every kernel variant at each causal chunk length / non-causal block rows C "
                             "(default: the engine's choice)")
    parser.add_argument("--csv", default="bench.csv", help="output CSV (default bench.csv)")


def run_bench(args) -> None:
    import torch

    from . import bench
    from ..core.checks import check_int

    device = bench.check_device(args.device)  # every argument before the banner and any timing
    for method in args.methods:
        bench.check_method(method)
    writable_file(args.csv, "--csv")
    if args.threads is not None:  # before the banner, which reports the threads in force
        torch.set_num_threads(check_int(args.threads, "--threads", minimum=1))
    print(bench.banner(device))
    causal = {"no": (False,), "yes": (True,), "both": (False, True)}[args.causal]
    cases = []
    if args.protocol in ("scaling", "both"):
        cases += bench.scaling_cases(args.methods, args.lengths, causal=causal, dtypes=args.dtypes,
                                     head_dim=args.head_dim, max_batch_heads=args.max_batch_heads,
                                     max_tokens=args.max_tokens)
    if args.chunk_sizes:
        cases = bench.chunk_cases(cases, args.chunk_sizes)
    if args.protocol in ("blog", "both"):
        cases += bench.blog_cases()
    df = bench.run(cases, args.device, min_run_time=args.min_run_time, max_call_s=args.max_call_s,
                   memory_budget=args.memory_budget_gib * 2**30, threads=args.threads)
    df.to_csv(args.csv, index=False)
    cols = ["protocol", "method", "n", "heads", "causal", "dtype", "chunk_size", "time_ms", "iqr_ms", "gflops",
            "matmul_fraction", "peak_mem_mb", "other_cpu_load", "status"]
    print(df[[c for c in cols if c in df]].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if "sdpa" in args.methods:
        print("\ncrossover vs sdpa (first grid N faster; log-log interpolated N):")
        print(bench.crossover(df).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
