"""Command line: ``approxlab figures`` regenerates the figures."""

from __future__ import annotations

import argparse

from . import figures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="approxlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fig = sub.add_parser("figures", help="regenerate figures/*.png, *.pdf and *.csv")
    figures.add_arguments(fig)
    fig.add_argument("--only", nargs="+", choices=list(figures.FIGURES), metavar="NAME",
                     help=f"only these figures ({', '.join(figures.FIGURES)})")
    bench_parser = sub.add_parser("bench", help="time every variant vs SDPA / naive softmax; print a banner, write a CSV")
    add_bench_arguments(bench_parser)
    args = parser.parse_args(argv)
    if args.command == "figures":
        figures.make_many(args.only, args.profile, args.out, **figures.run_arguments(args))
    elif args.command == "bench":
        run_bench(args)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    from . import bench

    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--methods", nargs="+", default=list(bench.METHODS), metavar="METHOD",
                        help=f"methods to time (default: all of {', '.join(bench.METHODS)}; <variant>_compiled for torch.compile)")
    parser.add_argument("--lengths", nargs="+", type=int, default=[128, 512, 2048, 8192], metavar="N")
    parser.add_argument("--dtypes", nargs="+", default=["float32"], choices=list(bench.DTYPES))
    parser.add_argument("--causal", choices=["no", "yes", "both"], default="both")
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--max-batch-heads", type=int, default=8, help="B·H at short N")
    parser.add_argument("--max-tokens", type=int, default=2**16, help="B·H·N cap: B·H shrinks at long N")
    parser.add_argument("--protocol", choices=["scaling", "blog", "both"], default="scaling",
                        help="scaling: --methods × --lengths (default); blog: the blog's protocol (batch 32, "
                             "one head, D 64, N 128…6000; naive softmax, SDPA, linear, identity); both")
    parser.add_argument("--min-run-time", type=float, default=0.2, help="seconds of timed runs per case")
    parser.add_argument("--max-call-s", type=float, default=10.0, help="skip larger N once a call takes longer")
    parser.add_argument("--memory-budget-gib", type=float, default=4.0, help="skip naive softmax above this")
    parser.add_argument("--csv", default="bench.csv", help="output CSV (default bench.csv)")


def run_bench(args) -> None:
    from . import bench

    print(bench.banner(bench.check_device(args.device)))
    causal = {"no": (False,), "yes": (True,), "both": (False, True)}[args.causal]
    cases = []
    if args.protocol in ("scaling", "both"):
        cases += bench.scaling_cases(args.methods, args.lengths, causal=causal, dtypes=args.dtypes,
                                     head_dim=args.head_dim, max_batch_heads=args.max_batch_heads,
                                     max_tokens=args.max_tokens)
    if args.protocol in ("blog", "both"):
        cases += bench.blog_cases()
    df = bench.run(cases, args.device, min_run_time=args.min_run_time, max_call_s=args.max_call_s,
                   memory_budget=args.memory_budget_gib * 2**30)
    df.to_csv(args.csv, index=False)
    cols = ["protocol", "method", "n", "heads", "causal", "dtype", "time_ms", "iqr_ms", "peak_mem_mb", "status"]
    print(df[[c for c in cols if c in df]].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if "sdpa" in args.methods:
        print("\ncrossover vs sdpa (first grid N faster; log-log interpolated N):")
        print(bench.crossover(df).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
