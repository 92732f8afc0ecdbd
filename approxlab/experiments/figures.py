"""The figure pipeline: each figure is a study module with ``compute(profile)`` → tidy DataFrame
and ``draw(df)`` → matplotlib Figure, so a notebook can show, re-plot or extend any of them.

    approxlab figures [--profile quick|full] [--only NAME ...] [--jobs N | --scheduler ADDR] [--cache DIR]
    (or python analyses/NAME.py with the same options)

A study that needs hardware this machine lacks (``REQUIRES = "cuda"``) is redrawn from its committed
CSV instead of recomputed. Studies built from cells (``approxlab.experiments.sweep``) run them on ``--jobs``
joblib workers or a Dask ``--scheduler`` and keep each finished cell in ``--cache`` (default
~/.cache/approxlab/cells), so an interrupted run resumes; timing studies always run serially.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

import pandas as pd
import torch

from . import sweep
from .style import save_figure, use_style

#: figure name → study module under ``approxlab.experiments.studies``, in the order ``approxlab figures`` runs them
FIGURES = {
    "rational_degree": "approxlab.experiments.studies.rational_degree",
    "kernel_error": "approxlab.experiments.studies.kernel_error",
    "bridge": "approxlab.experiments.studies.bridge",
    "features_vs_entropy": "approxlab.experiments.studies.features_vs_entropy",
    "lesson_exercise": "approxlab.experiments.studies.lesson_exercise",
    "speed_vs_length": "approxlab.experiments.studies.speed_vs_length",
    "gpu_validation": "approxlab.experiments.studies.gpu_validation",
    "features_by_kind": "approxlab.experiments.studies.features_by_kind",
    "learned_maps": "approxlab.experiments.studies.learned_maps",
}
PROFILES = ("quick", "full")
DEFAULT_OUTDIR = Path(__file__).resolve().parent.parent / "figures"


def study(name: str):
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; choose from {list(FIGURES)}")
    return importlib.import_module(FIGURES[name])


def compute(name: str, profile: str = "quick", **options) -> pd.DataFrame:
    """The figure's data as a tidy DataFrame, computed in this process (nothing is written; :func:`make`
    also draws and writes the PNG, PDF and CSV). ``options`` go to the study's ``compute`` (e.g.
    ``variants=[...]`` for lesson_exercise, registered kernel names and kernel objects included)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return study(name).compute(profile=profile, **options)


def draw(name: str, df: pd.DataFrame, ax=None):
    """The figure drawn from ``df``; returns a matplotlib Figure (displays inline in a notebook).

    ``ax``: draw into these Axes instead of a new figure, for the studies whose ``draw`` takes them
    (TypeError for those that lay out their own panels)."""
    import inspect

    use_style()
    draw_fn = study(name).draw
    if ax is None:
        return draw_fn(df)
    if "ax" not in inspect.signature(draw_fn).parameters:
        raise TypeError(f"figure {name!r} lays out its own panels; call draw({name!r}, df) without ax")
    return draw_fn(df, ax=ax)


def make(name: str, profile: str = "quick", outdir: str | Path = DEFAULT_OUTDIR):
    """Compute (or, for hardware this machine lacks, read back) the data, draw, save PNG/PDF/CSV."""
    module = study(name)
    if getattr(module, "REQUIRES", None) == "cuda" and not torch.cuda.is_available():
        # the data measured on a GPU: the copy in outdir, else the one committed in figures/
        candidates = [Path(outdir) / f"{name}.csv", DEFAULT_OUTDIR / f"{name}.csv"]
        csv = next((c for c in candidates if c.exists()), None)
        if csv is None:
            raise FileNotFoundError(f"{name} needs CUDA to compute and there is no {candidates[-1]} to redraw from")
        print(f"[{name}] no CUDA here: redrawing from the committed {csv.name}")
        df = pd.read_csv(csv)
    else:
        cfg = sweep.settings()
        if getattr(module, "SERIAL", None) and (cfg.jobs != 1 or cfg.scheduler):
            print(f"[{name}] a {module.SERIAL} study: runs serially in this process (--jobs/--scheduler ignored)")
        df = compute(name, profile)
    fig = draw(name, df)
    return df, fig, save_figure(fig, df, name, outdir)


def make_many(names=None, profile: str = "quick", outdir: str | Path = DEFAULT_OUTDIR, *, jobs: int = 1,
              scheduler: str | None = None, cache: str | Path | None = sweep.DEFAULT_CACHE,
              cached_only: bool = False) -> None:
    """Make each figure; cell-based studies run under ``sweep.configure(jobs, scheduler, cache, cached_only)``."""
    start = time.perf_counter()
    with sweep.configure(jobs=jobs, scheduler=scheduler, cache=cache, cached_only=cached_only):
        for name in names or list(FIGURES):
            began = time.perf_counter()
            _, _, paths = make(name, profile, outdir)
            print(f"[{name}] wrote " + ", ".join(str(p) for p in paths) + f" ({time.perf_counter() - began:.0f} s)")
    print(f"{len(names or FIGURES)} figure(s) in {time.perf_counter() - start:.0f} s")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=PROFILES, default="quick", help="quick (default, minutes) or full")
    parser.add_argument("--out", default=str(DEFAULT_OUTDIR), help="output folder (default: figures/)")
    run = parser.add_argument_group("cells (approxlab.experiments.sweep; timing studies ignore these and run serially)")
    run.add_argument("--jobs", type=int, default=1, help="joblib workers on this machine (default 1; -1: all cores)")
    run.add_argument("--scheduler", default=None, metavar="ADDR",
                     help="run cells on Dask: 'tcp://host:8786' (an existing cluster) or 'local' (a distributed "
                          "LocalCluster of --jobs workers); needs the dask extra")
    run.add_argument("--cache", default=str(sweep.DEFAULT_CACHE), help="folder of finished cells (default %(default)s)")
    run.add_argument("--no-cache", action="store_true", help="recompute every cell, keep nothing")
    run.add_argument("--cached-only", action="store_true",
                     help="draw from the cached cells only, leaving out (and counting) the missing ones")


def run_arguments(args) -> dict:
    """make_many keywords from the parsed --jobs/--scheduler/--cache/--no-cache/--cached-only."""
    if args.no_cache and args.cached_only:
        raise SystemExit("--no-cache and --cached-only exclude each other")
    return dict(jobs=args.jobs, scheduler=args.scheduler, cache=None if args.no_cache else args.cache,
                cached_only=args.cached_only)


def script_main(name: str, argv=None) -> None:
    """Entry point of ``analyses/NAME.py``."""
    parser = argparse.ArgumentParser(description=f"Regenerate figures/{name}.png/.pdf/.csv")
    add_arguments(parser)
    args = parser.parse_args(argv)
    from .style import use_file_backend

    use_file_backend()
    make_many([name], args.profile, args.out, **run_arguments(args))
