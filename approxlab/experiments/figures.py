"""The figure runner: each figure is a study (:mod:`approxlab.experiments.studies`, one written
protocol: ``compute(profile)`` → tidy DataFrame, ``draw(df)`` → matplotlib Figure), so a notebook can
show, re-plot or extend any of them.

    approxlab figures [--profile quick|full] [--only NAME ...] [--jobs N | --scheduler ADDR] [--cache DIR]
    (or python analyses/NAME.py with the same options)

The quick profile writes ``NAME.png/.pdf/.csv``, the full one ``NAME_full.*`` beside it. Every run records
each study's wall and CPU seconds in ``study_times.csv`` in the same folder (:func:`record_times`).

A study that needs hardware this machine lacks (``REQUIRES = "cuda"``) is redrawn from its committed
CSV instead of recomputed, unless ``--device`` names where to run it (``--device cpu`` runs it here).
Studies built from cells (``approxlab.experiments.sweep``) run them on ``--jobs`` joblib workers or a Dask ``--scheduler`` and keep each finished cell in ``--cache`` (default
~/.cache/approxlab/cells), so an interrupted run resumes; timing studies always run serially.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from . import sweep
from .studies import STUDIES
from .style import FIGURES_DIR, save_figure, use_style
from .timing import others_busy

#: figure name → study module (:mod:`approxlab.experiments.studies`), in the order ``approxlab figures`` runs them
FIGURES = STUDIES
PROFILES = ("quick", "full")
DEFAULT_OUTDIR = FIGURES_DIR  # the repository's figures/


def study(name: str):
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; choose from {list(FIGURES)}")
    return FIGURES[name]


def compute(name: str, profile: str = "quick", **options) -> pd.DataFrame:
    """The figure's data as a tidy DataFrame, computed in this process (nothing is written; :func:`make`
    also draws and writes the PNG, PDF and CSV). ``options`` go to the study's ``compute`` (e.g.
    ``variants=[...]`` for lesson_exercise, registered kernel names and kernel objects included)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if isinstance(options.get("variants"), str):  # one name, not its characters
        options["variants"] = [options["variants"]]
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


def output_name(name: str, profile: str = "quick") -> str:
    """The files' stem: ``NAME`` for the quick profile, ``NAME_full`` for the full one, so a quick run never
    overwrites a long one."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return name if profile == "quick" else f"{name}_{profile}"


def make(name: str, profile: str = "quick", outdir: str | Path = DEFAULT_OUTDIR, device: str | None = None):
    """Compute (or, for hardware this machine lacks, read back) the data, draw, save PNG/PDF/CSV as
    :func:`output_name` (a study redrawn from its committed CSV keeps that CSV's name).

    ``device`` goes to the studies whose ``compute`` takes one (None: each study's default)."""
    df, stem = _data(name, profile, outdir, device)
    fig = draw(name, df)
    return df, fig, save_figure(fig, df, stem, outdir)


def _data(name: str, profile: str, outdir, device) -> tuple:
    """(the study's DataFrame, the files' stem): computed here, or read back for a study that needs
    hardware this machine lacks (:func:`make`)."""
    module = study(name)
    stem = output_name(name, profile)
    if getattr(module, "REQUIRES", None) == "cuda" and not torch.cuda.is_available() and device is None:
        # the data measured on a GPU: the copy in outdir, else the one committed in figures/
        candidates = [Path(outdir) / f"{name}.csv", DEFAULT_OUTDIR / f"{name}.csv"]
        csv = next((c for c in candidates if c.exists()), None)
        if csv is None:
            raise FileNotFoundError(f"{name} needs CUDA to compute and there is no {candidates[-1]} to redraw from")
        print(f"[{name}] no CUDA here: redrawing from the committed {csv.name}")
        df = pd.read_csv(csv)
        stem = name
    else:
        cfg = sweep.settings()
        if getattr(module, "SERIAL", None) and (cfg.jobs != 1 or cfg.scheduler):
            print(f"[{name}] a {module.SERIAL} study: runs serially in this process (--jobs/--scheduler ignored)")
        takes_device = "device" in inspect.signature(module.compute).parameters
        df = compute(name, profile, **({"device": device} if takes_device and device is not None else {}))
    return df, stem


def make_many(names=None, profile: str = "quick", outdir: str | Path = DEFAULT_OUTDIR, *, jobs: int = 1,
              scheduler: str | None = None, cache: str | Path | None = sweep.DEFAULT_CACHE,
              cached_only: bool = False, device: str | None = None) -> pd.DataFrame:
    """Make each figure; cell-based studies run under ``sweep.configure(jobs, scheduler, cache, cached_only)``.

    Prints each study's seconds and records them in ``outdir/study_times.csv`` (:func:`record_times`),
    and each study's ``summary`` where it has one; returns this run's rows of the times, with the
    ``problems`` the studies found in ``.attrs["problems"]``."""
    start = time.perf_counter()
    rows, found = [], []
    writer = FigureWriter()
    with sweep.configure(jobs=jobs, scheduler=scheduler, cache=cache, cached_only=cached_only), writer:
        for name in names or list(FIGURES):
            began, cpu = time.perf_counter(), cpu_seconds()
            with others_busy() as load:
                df, stem = _data(name, profile, outdir, device)
                computed = time.perf_counter()
                writer.wait()  # the previous figure's files are written before this one is drawn
                drawn = time.perf_counter()
                fig = draw(name, df)
                writer.write(name, fig, df, stem, outdir, done=_reporter(name))
            wall, cpu = time.perf_counter() - began, cpu_seconds() - cpu
            rows.append(dict(study=name, profile=profile, wall_s=wall, cpu_s=cpu, other_cpu_load=load.value,
                             compute_s=computed - began, draw_s=time.perf_counter() - drawn,
                             cache="off" if cache is None else ("cached only" if cached_only else "on"),
                             jobs=jobs, threads=torch.get_num_threads(), **_host(),
                             finished_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")))
            print(f"[{name}] computed and drawn in {wall:.0f} s (CPU {cpu:.0f} s; other processes kept "
                  f"{load.value:.1f} CPUs busy); its files are written while the next study runs")
            module = study(name)
            if hasattr(module, "summary"):
                print(module.summary(df))
            found += [f"{name}: {problem}" for problem in getattr(module, "problems", lambda _: [])(df)]
    for row in rows:
        row["write_s"] = writer.seconds.get(row["study"], float("nan"))
    print(f"{len(rows)} figure(s) in {time.perf_counter() - start:.0f} s")
    times = pd.DataFrame(rows)
    record_times(times, Path(outdir) / TIMES_CSV)
    times.attrs["problems"] = found
    return times


def _reporter(name: str):
    def report(paths):
        print(f"[{name}] wrote " + ", ".join(str(p) for p in paths))
    return report


class FigureWriter:
    """Writes each figure's PNG, PDF and CSV (:func:`~approxlab.experiments.style.save_figure`) on one
    background thread, so that rendering a figure (seconds per figure: layout, text, two file formats)
    overlaps the next study's computation instead of adding to it.

    At most one figure is in flight: :meth:`wait` returns once it is written (and re-raises what its writing
    raised), and :func:`make_many` calls it before drawing the next figure, so matplotlib is never used
    from two threads at once (studies' ``compute`` draws nothing). Leaving the ``with`` block waits for the
    last one. ``seconds``: {study: seconds its files took}."""

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="figure-writer")
        self._pending = None
        self.seconds: dict = {}

    def write(self, name, fig, df, stem, outdir, done=None):
        """Write ``fig`` and ``df`` as ``outdir/stem.*`` in the background (after the previous figure), timed
        as study ``name``; ``done(paths)`` runs once they are written."""
        self.wait()

        def job():
            began = time.perf_counter()
            paths = save_figure(fig, df, stem, outdir)
            self.seconds[name] = time.perf_counter() - began
            if done is not None:
                done(paths)
            return paths

        self._pending = self._pool.submit(job)

    def wait(self):
        pending, self._pending = self._pending, None
        return None if pending is None else pending.result()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self.wait()
        finally:
            self._pool.shutdown(wait=True)
        return False


#: where :func:`make_many` records each study's seconds, in the output folder
TIMES_CSV = "study_times.csv"


def times_markdown(times: pd.DataFrame) -> str:
    """``study_times.csv`` as a Markdown table, one row per study in :data:`FIGURES` order: the quick
    profile's wall seconds and the full profile's wall minutes, each with its CPU time and the CPUs other
    processes kept busy meanwhile (a wall time stretched by a shared machine shows there); "—" where that
    profile has no row."""
    def cell(row, per):
        if row is None:
            return "—"
        spec = ".0f" if per == 1 else ".1f"  # whole seconds, tenths of a minute
        return (f"{row.wall_s / per:{spec}} ({row.cpu_s / per:{spec}} CPU"
                + (f"; other load {row.other_cpu_load:.1f}" if row.other_cpu_load >= 0.05 else "") + ")")

    rows = {(r.study, r.profile): r for r in times.itertuples(index=False)}
    lines = ["| study | quick profile, s | full profile, min |", "|---|---|---|"]
    for name in [n for n in FIGURES if any(s == n for s, _ in rows)]:
        lines.append(f"| {name} | {cell(rows.get((name, 'quick')), 1)} | {cell(rows.get((name, 'full')), 60)} |")
    return "\n".join(lines)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished child processes (joblib / Dask
    workers count once they have exited; a remote cluster's not at all)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _host() -> dict:
    import os
    import platform

    return dict(host=platform.node(), cpus=os.cpu_count())


def record_times(rows: pd.DataFrame, path: str | Path) -> Path:
    """Merge ``rows`` (study, profile, wall_s, cpu_s, other_cpu_load, …) into the CSV at ``path``: a study's
    row for a profile replaces the earlier one, other rows are kept; rows in :data:`FIGURES` order.

    ``wall_s``: seconds from the start of the study to its figure drawn (``compute_s`` computing, ``draw_s``
    waiting for the previous figure's files and drawing this one); ``write_s``: seconds its files took, on the
    :class:`FigureWriter` thread while the next study ran; ``cpu_s``: CPU seconds of the process in ``wall_s``
    (:func:`cpu_seconds`, the writer's included); ``other_cpu_load``: CPUs kept busy by other processes
    meanwhile (:func:`approxlab.experiments.timing.others_busy`; well above 0 means ``wall_s`` was
    stretched by a shared machine)."""
    path = Path(path)
    if path.exists():
        old = pd.read_csv(path)
        keep = ~old.set_index(["study", "profile"]).index.isin(rows.set_index(["study", "profile"]).index)
        rows = pd.concat([old[keep], rows], ignore_index=True)
    order = {name: i for i, name in enumerate(FIGURES)}
    rows = rows.sort_values(["study", "profile"], key=lambda c: c.map(order) if c.name == "study" else c,
                            kind="stable")
    path.parent.mkdir(parents=True, exist_ok=True)
    return sweep.write_csv(rows.reset_index(drop=True), path)


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
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or cuda:i for the studies that take a device (default: each study's own)")
    run.add_argument("--cached-only", action="store_true",
                     help="draw from the cached cells only, leaving out (and counting) the missing ones")


def run_arguments(args) -> dict:
    """make_many keywords from the parsed --jobs/--scheduler/--cache/--no-cache/--cached-only."""
    if args.no_cache and args.cached_only:
        raise SystemExit("--no-cache and --cached-only exclude each other")
    return dict(jobs=args.jobs, scheduler=args.scheduler, cache=None if args.no_cache else args.cache,
                cached_only=args.cached_only, device=args.device)


def script_main(name: str, argv=None) -> None:
    """Entry point of ``analyses/NAME.py``."""
    parser = argparse.ArgumentParser(description=f"Regenerate figures/{name}.png/.pdf/.csv")
    add_arguments(parser)
    args = parser.parse_args(argv)
    from .errors import reporting_errors
    from .style import use_file_backend

    use_file_backend()
    reporting_errors(lambda: report_problems(make_many([name], args.profile, args.out, **run_arguments(args))),
                     prog=f"analyses/{name}.py")


def report_problems(times: pd.DataFrame) -> None:
    """Exit 1 with the problems the studies of a :func:`make_many` run found (after their figures were written)."""
    found = times.attrs.get("problems", [])
    if found:
        print("FAILED: " + "; ".join(found), file=sys.stderr)
        sys.exit(1)
