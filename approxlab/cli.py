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
    args = parser.parse_args(argv)
    if args.command == "figures":
        figures.make_many(args.only, args.profile, args.out)


if __name__ == "__main__":
    main()
