"""One paper style for every figure, one colour per variant, and saving a figure with its data.

Importing approxlab leaves matplotlib's backend alone (a notebook keeps its inline backend); the
command line and ``analyses/`` scripts pick a non-interactive one with :func:`use_file_backend`.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

_ORDER = ["softmax", "linear", "relu", "performer", "taylor", "polynomial", "hla", "minimax",
          "sdpa", "naive_softmax", "identity", "performer_pytorch", "fla_linear", "linear_triton",
          "hyperbolic", "favorpp", "favorsharp", "dpfp", "maclaurin", "cosformer",
          "hedgehog", "t2r"]
# 22 distinct colours: one per name in _ORDER (colour-blind, then dark, then black and crimson)
_PALETTE = sns.color_palette("colorblind", 10) + sns.color_palette("dark", 10) + [(0.0, 0.0, 0.0), (0.85, 0.1, 0.35)]
VARIANT_COLORS = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(_ORDER)}


def use_file_backend() -> None:
    """Select the Agg backend for scripts that only write files, unless ``MPLBACKEND`` chooses one."""
    import os

    import matplotlib

    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")


def use_style() -> None:
    """seaborn 'paper' context, white ticks, colour-blind palette, vector-friendly fonts."""
    sns.set_theme(context="paper", style="ticks", palette="colorblind", font_scale=1.1,
                  rc={"figure.dpi": 120, "savefig.dpi": 200, "savefig.bbox": "tight", "pdf.fonttype": 42,
                      "axes.grid": True, "grid.alpha": 0.3, "legend.frameon": False})


def color(name: str):
    """The variant's colour; any other name gets a fixed one from its CRC (same in every process)."""
    return VARIANT_COLORS.get(name, _PALETTE[zlib.crc32(name.encode()) % len(_PALETTE)])


def save_figure(fig, df, name: str, outdir: str | Path = "figures") -> list[Path]:
    """Write ``NAME.png``, ``NAME.pdf`` and the data ``NAME.csv`` into ``outdir``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [outdir / f"{name}.csv", outdir / f"{name}.png", outdir / f"{name}.pdf"]
    from .sweep import write_csv

    write_csv(df, paths[0])
    fig.savefig(paths[1])
    fig.savefig(paths[2])
    plt.close(fig)
    return paths
