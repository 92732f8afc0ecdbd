"""One paper style for every figure, each variant's colour, label and marks (read from the variant), and
saving a figure with its data.

Variants come in families, and a figure reads best when a family shares a line style and its members differ by
colour and marker: the exact references (solid), the small feature maps (solid), the learned maps (dash-dot), the
random features (dashed), the polynomial kernels (dotted) and the peers from other packages (dash-dot). What a
variant class states about itself (``color``, ``label``, ``marker``, ``linestyle``) wins; the family scheme
(:data:`FAMILIES`: a hue per family, shades, markers and the family's line style) fills in what it leaves out
and draws the benchmark's reference methods. :func:`appearance` gives all of it at once.

Importing approxlab leaves matplotlib's backend alone (a notebook keeps its inline backend); the
command line and ``analyses/`` scripts pick a non-interactive one with :func:`use_file_backend`.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

#: where the committed figures live (PNG, PDF and CSV of each study): the repository's figures/
FIGURES_DIR = Path(__file__).resolve().parents[2] / "figures"

from ..variants import kernel_name, variant_class, variant_names

#: colours of the benchmark's reference methods, which are not variants (a variant carries its own)
_METHOD_COLORS = {"sdpa": "#ece133", "naive_softmax": "#56b4e9", "identity": "#001c7f",
                  "performer_pytorch": "#b1400d", "fla_linear": "#12711c", "linear_triton": "#8c0800"}
# what a name without a colour of its own draws from, by the CRC of the name (the same in every process)
_PALETTE = sns.color_palette("colorblind", 10) + sns.color_palette("dark", 10) + [(0.0, 0.0, 0.0), (0.85, 0.1, 0.35)]

#: family → (seaborn palette, line style); a variant names its family itself (its class's ``family``); the
#: benchmark's reference methods, which are not variants, are placed here by name
FAMILIES = {
    "exact": ("gray", "-"),
    "small feature maps": ("Greens", "-"),
    "learned maps": ("Purples", "-."),
    "random features": ("Blues", "--"),
    "polynomial kernels": ("Oranges", ":"),
    "peers": ("copper", "-."),
}
_METHOD_FAMILIES = {"sdpa": "exact", "naive_softmax": "exact", "identity": "exact",
                    "performer_pytorch": "peers", "fla_linear": "peers", "linear_triton": "peers"}
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]


def _shades(palette_name: str, count: int) -> list:
    """``count`` well-separated shades of a palette, darkest first, none too pale to see on white."""
    if palette_name == "gray":
        return [(0.0, 0.0, 0.0), (0.3, 0.3, 0.3), (0.5, 0.5, 0.5), (0.65, 0.65, 0.65)][:count]
    if palette_name == "copper":
        return [(0.45, 0.25, 0.1), (0.65, 0.4, 0.2), (0.8, 0.55, 0.3)][:count]
    return sns.color_palette(palette_name, count + 2)[2:][::-1]  # the palest two dropped


def family_members(family_name: str) -> list:
    """The family's members in order: the variants that name it (registry order), then the methods placed in it."""
    return ([name for name in variant_names() if getattr(variant_class(name), "family", None) == family_name]
            + [name for name, f in _METHOD_FAMILIES.items() if f == family_name])


#: name → the family scheme's colour, marker, line style and family (the variants registered at import)
SCHEME = {name: dict(color=tuple(shade), marker=MARKERS[i % len(MARKERS)], linestyle=linestyle, family=family)
          for family, (palette_name, linestyle) in FAMILIES.items()
          for i, (name, shade) in enumerate(zip(family_members(family), _shades(palette_name, len(family_members(family)))))}


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


def _carried(name, attribute: str):
    """What the variant ``name`` (a name, kernel object or class) says about itself, or None."""
    if not isinstance(name, str):
        return getattr(name, attribute, None)
    return getattr(variant_class(name), attribute, None) if name in variant_names() else None


def color(name):
    """The colour of a variant (its class's ``color``), of a benchmark method, or for any other name a fixed
    one from the name's CRC (the same in every process)."""
    own = _carried(name, "color")
    if own is not None:
        return own
    name = kernel_name(name)
    if name in _METHOD_COLORS:
        return _METHOD_COLORS[name]
    return SCHEME[name]["color"] if name in SCHEME else _PALETTE[zlib.crc32(name.encode()) % len(_PALETTE)]


def palette(names) -> dict:
    """{name: :func:`color`} for a seaborn ``palette=``."""
    return {name: color(name) for name in names}


def label(name) -> str:
    """A variant's display label (its class's ``label``), else the name itself."""
    return _carried(name, "label") or kernel_name(name)


def family(name) -> str | None:
    """The family of a variant or benchmark method (its class's ``family``, else :data:`FAMILIES`), or None."""
    return _carried(name, "family") or SCHEME.get(kernel_name(name), {}).get("family")


def marker(name) -> str:
    """A variant's marker (its class's ``marker``), else its family's turn, else "o"."""
    return _carried(name, "marker") or SCHEME.get(kernel_name(name), {}).get("marker", "o")


def linestyle(name) -> str:
    """A variant's line style (its class's ``linestyle``), else its family's, else "-"."""
    return _carried(name, "linestyle") or SCHEME.get(kernel_name(name), {}).get("linestyle", "-")


def appearance(name) -> dict:
    """``color``, ``label``, ``marker``, ``linestyle`` and ``family`` of a variant or benchmark method."""
    return dict(color=color(name), label=label(name), marker=marker(name), linestyle=linestyle(name),
                family=family(name))


def legend_beside(ax, **options):
    """A legend to the right of ``ax``, outside its frame, so that it never covers data."""
    options = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "frameon": False, **options}
    return ax.legend(**options)


#: most sequence-length labels one axis shows; a longer grid labels every other tick
MAX_LENGTH_LABELS = 6


def length_ticks(ax, lengths) -> None:
    """Put a tick at every sequence length on a log x-axis, labelling every other one past `MAX_LENGTH_LABELS`."""
    from matplotlib.ticker import NullFormatter

    ticks = sorted(set(int(n) for n in lengths))
    step = 1 if len(ticks) <= MAX_LENGTH_LABELS else 2
    ax.set_xticks(ticks, labels=[str(n) if i % step == 0 else "" for i, n in enumerate(ticks)])
    ax.xaxis.set_minor_formatter(NullFormatter())


def is_variant(name) -> bool:
    """True for a variant name the registry knows (built-in or registered)."""
    return isinstance(name, str) and name in variant_names()


#: metadata written into every figure file: no creation date and no software version, so that a regenerated figure
#: whose content is unchanged is the same bytes (git shows only figures whose drawing changed)
FIXED_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}


def save_figure(fig, df, name: str, outdir: str | Path = "figures") -> list[Path]:
    """Write ``NAME.png``, ``NAME.pdf`` and the data ``NAME.csv`` into ``outdir``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [outdir / f"{name}.csv", outdir / f"{name}.png", outdir / f"{name}.pdf"]
    from .sweep import write_csv

    write_csv(df, paths[0])
    fig.savefig(paths[1], metadata=FIXED_METADATA["png"])
    fig.savefig(paths[2], metadata=FIXED_METADATA["pdf"])
    plt.close(fig)
    return paths
