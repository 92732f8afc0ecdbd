"""One paper style for every figure: a colour, marker and line style per variant, by family.

Variants come in families, and a figure reads best when a family shares a hue and a line style and its
members differ by shade and marker: the exact references (black and greys, solid), the small feature maps
(greens, solid), the learned maps (purples, dash-dot), the random features (blues, dashed), the polynomial
kernels (oranges, dotted) and the peers from other packages (browns, dash-dot). A variant class that
states its own ``color``, ``marker``, ``linestyle`` or ``label`` keeps it; a name in no family (a kernel
registered by the user) gets a fixed colour from its CRC. :func:`appearance` is the one place a figure asks.

Importing approxlab leaves matplotlib's backend alone (a notebook keeps its inline backend); the
command line and ``analyses/`` scripts pick a non-interactive one with :func:`use_file_backend`.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

#: family → (seaborn palette, line style, its members in order); members take the palette's shades in turn
FAMILIES = {
    "exact": ("gray", "-", ["softmax", "sdpa", "naive_softmax", "identity"]),
    "small feature maps": ("Greens", "-", ["linear", "relu", "dpfp", "cosformer"]),
    "learned maps": ("Purples", "-.", ["hedgehog", "t2r"]),
    "random features": ("Blues", "--", ["performer", "hyperbolic", "favorpp", "favorsharp", "maclaurin"]),
    "polynomial kernels": ("Oranges", ":", ["taylor", "polynomial", "minimax", "hla"]),
    "peers": ("copper", "-.", ["performer_pytorch", "fla_linear", "linear_triton"]),
}
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
_OTHERS = sns.color_palette("colorblind", 10)


def _shades(palette: str, count: int) -> list:
    """``count`` well-separated shades of ``palette``, darkest first, none too pale to see on white."""
    if palette == "gray":
        return [(0.0, 0.0, 0.0), (0.3, 0.3, 0.3), (0.5, 0.5, 0.5), (0.65, 0.65, 0.65)][:count]
    if palette == "copper":
        return [(0.45, 0.25, 0.1), (0.65, 0.4, 0.2), (0.8, 0.55, 0.3)][:count]
    shades = sns.color_palette(palette, count + 2)[2:]  # the palest two dropped
    return shades[::-1]


def _scheme() -> dict:
    scheme = {}
    for family, (palette, linestyle, members) in FAMILIES.items():
        for i, (name, shade) in enumerate(zip(members, _shades(palette, len(members)))):
            scheme[name] = dict(color=tuple(shade), marker=MARKERS[i % len(MARKERS)], linestyle=linestyle,
                                label=name.replace("_", " "), family=family)
    return scheme


SCHEME = _scheme()
#: the colour of every name in a family (kept for the figures that take a seaborn ``palette``)
VARIANT_COLORS = {name: style["color"] for name, style in SCHEME.items()}


def family(name: str) -> str | None:
    """The family of a variant or method name (None outside the families)."""
    return SCHEME.get(name, {}).get("family")


def appearance(name: str) -> dict:
    """``color``, ``marker``, ``linestyle``, ``label`` and ``family`` of a variant or method name: what its class
    states, else its family's scheme, else a colour from the name's CRC (the same in every process)."""
    style = dict(SCHEME.get(name) or dict(color=_OTHERS[zlib.crc32(name.encode()) % len(_OTHERS)], marker="o",
                                           linestyle="-", label=name, family=None))
    from ..variants import KERNELS

    cls = KERNELS.get(name)
    for attr in ("color", "marker", "linestyle", "label"):
        value = getattr(cls, attr, None)
        if isinstance(value, (str, tuple)) and value:
            style[attr] = value
    return style


def line_kwargs(name: str) -> dict:
    """Keyword arguments for ``Axes.plot`` / ``errorbar``: colour, marker, line style and label of ``name``."""
    s = appearance(name)
    return dict(color=s["color"], marker=s["marker"], ls=s["linestyle"], label=s["label"])


def legend_beside(ax, **options):
    """A legend to the right of ``ax``, outside its frame, so that it never covers data."""
    options = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "frameon": False, **options}
    return ax.legend(**options)


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
    """The colour of ``name`` (see :func:`appearance`)."""
    return appearance(name)["color"]


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
