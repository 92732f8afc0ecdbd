"""The figure pipeline: each figure is a study module with ``compute(profile)`` → tidy DataFrame
and ``draw(df)`` → matplotlib Figure, so a notebook can show, re-plot or extend any of them.

    approxlab figures [--profile quick|full] [--only NAME ...]     (or python analyses/NAME.py)

A study that needs hardware this machine lacks (``REQUIRES = "cuda"``) is redrawn from its committed
CSV instead of recomputed.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pandas as pd
import torch

from .style import save_figure, use_style

#: figure name → study module under ``approxlab.studies``, in the order ``approxlab figures`` runs them
FIGURES = {
    "rational_degree": "approxlab.studies.rational_degree",
    "kernel_error": "approxlab.studies.kernel_error",
    "bridge": "approxlab.studies.bridge",
    "features_vs_entropy": "approxlab.studies.features_vs_entropy",
    "lesson_exercise": "approxlab.studies.lesson_exercise",
    "speed_vs_length": "approxlab.studies.speed_vs_length",
    "gpu_validation": "approxlab.studies.gpu_validation",
    "features_by_kind": "approxlab.studies.features_by_kind",
    "learned_maps": "approxlab.studies.learned_maps",
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
        df = compute(name, profile)
    fig = draw(name, df)
    return df, fig, save_figure(fig, df, name, outdir)


def make_many(names=None, profile: str = "quick", outdir: str | Path = DEFAULT_OUTDIR) -> None:
    for name in names or list(FIGURES):
        _, _, paths = make(name, profile, outdir)
        print(f"[{name}] wrote " + ", ".join(str(p) for p in paths))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=PROFILES, default="quick", help="quick (default, minutes) or full")
    parser.add_argument("--out", default=str(DEFAULT_OUTDIR), help="output folder (default: figures/)")


def script_main(name: str, argv=None) -> None:
    """Entry point of ``analyses/NAME.py``."""
    parser = argparse.ArgumentParser(description=f"Regenerate figures/{name}.png/.pdf/.csv")
    add_arguments(parser)
    args = parser.parse_args(argv)
    from .style import use_file_backend

    use_file_backend()
    make_many([name], args.profile, args.out)
