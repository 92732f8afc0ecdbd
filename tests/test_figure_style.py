"""Every study's figure, drawn from its committed CSV, is readable: each axis that shows tick labels has a label,
and no legend covers a data point; the style gives each variant family one hue and line style."""

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from approxlab.experiments import figures, style

matplotlib.use("Agg")
FIGURES = Path(__file__).resolve().parent.parent / "figures"
STUDIES = [name for name in figures.FIGURES if (FIGURES / f"{name}.csv").exists()]


def _shows_ticks(axis) -> bool:
    return axis.get_visible() and any(t.get_visible() and t.get_text() for t in axis.get_ticklabels())


def _labelled_alongside(ax, name: str) -> bool:
    """A panel may leave an axis unlabelled when a panel in its row (y) or column (x) labels the same axis: the
    same limits and scale, the convention of labelling a row of panels once."""
    spec = ax.get_subplotspec()
    if spec is None:
        return False
    lims, scale = (ax.get_ylim(), ax.get_yscale()) if name == "y" else (ax.get_xlim(), ax.get_xscale())
    for other in ax.figure.axes:
        other_spec = other.get_subplotspec()
        if other is ax or other_spec is None:
            continue
        if name == "y" and other_spec.rowspan == spec.rowspan and other.get_ylabel().strip() \
                and np.allclose(other.get_ylim(), lims) and other.get_yscale() == scale:
            return True
        if name == "x" and other_spec.colspan == spec.colspan and other.get_xlabel().strip() \
                and np.allclose(other.get_xlim(), lims) and other.get_xscale() == scale:
            return True
    return False


def unlabelled_axes(fig) -> list[str]:
    """'title: x' / 'title: y' for each axis of ``fig`` that shows tick labels but has no label (nor a panel in its
    row or column labelling the same axis)."""
    fig.canvas.draw()
    missing = []
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        for name, axis, label in (("x", ax.xaxis, ax.get_xlabel()), ("y", ax.yaxis, ax.get_ylabel())):
            if _shows_ticks(axis) and not label.strip() and not _labelled_alongside(ax, name):
                missing.append(f"{ax.get_title() or ax.get_label() or 'axes'}: {name}")
    return missing


def _points(ax) -> np.ndarray:
    """Display coordinates of every data point drawn in ``ax`` (line vertices, scatter offsets) inside its frame."""
    pts = []
    for line in ax.get_lines():
        xy = np.column_stack(line.get_data(orig=False)).astype(float)
        if len(xy) and line.get_visible():
            pts.append(line.get_transform().transform(xy))
    for coll in ax.collections:
        offsets = np.asarray(coll.get_offsets(), dtype=float)
        if coll.get_visible() and offsets.ndim == 2 and len(offsets) and not np.allclose(offsets, 0):
            pts.append(coll.get_offset_transform().transform(offsets))
    if not pts:
        return np.empty((0, 2))
    pts = np.concatenate(pts)
    pts = pts[np.isfinite(pts).all(axis=1)]
    box = ax.get_window_extent()
    inside = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
    return pts[inside]


def covered_points(fig) -> list[str]:
    """For each legend of ``fig`` that covers data points: its first entry and how many points it covers."""
    fig.canvas.draw()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    points = np.concatenate([_points(ax) for ax in fig.axes] or [np.empty((0, 2))])
    found = []
    for legend in legends:
        box = legend.get_window_extent().shrunk(0.98, 0.98)
        hits = int(((points[:, 0] > box.x0) & (points[:, 0] < box.x1) &
                    (points[:, 1] > box.y0) & (points[:, 1] < box.y1)).sum())
        if hits:
            texts = [t.get_text() for t in legend.get_texts()]
            found.append(f"legend starting {texts[:1]} covers {hits} points")
    return found


@pytest.mark.parametrize("name", STUDIES)
def test_committed_figure_is_readable(name):
    import matplotlib.pyplot as plt

    df = pd.read_csv(FIGURES / f"{name}.csv", low_memory=False)
    fig = figures.draw(name, df)
    try:
        assert unlabelled_axes(fig) == []
        assert covered_points(fig) == []
    finally:
        plt.close(fig)


def test_the_checks_see_what_they_check():
    """A figure with an unlabelled axis and a legend on top of its points fails both checks."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    grid = np.linspace(0, 1, 30)
    ax.plot(*np.meshgrid(grid, grid), "o", color="k")              # points everywhere: any legend inside covers some
    ax.plot([0.5], [0.5], "o", label="a point")
    ax.legend(loc="upper right")
    ax.set_xlabel("x")
    assert unlabelled_axes(fig) == ["axes: y"]
    assert covered_points(fig)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))       # beside the axes
    ax.set_ylabel("y")
    assert unlabelled_axes(fig) == [] and covered_points(fig) == []
    plt.close(fig)


def test_every_member_of_a_family_is_told_apart():
    """Within a family no two members look the same (colour, marker, line style); what a variant class states
    about itself is what is drawn, and the family scheme fills in the rest."""
    from approxlab.variants import KERNELS

    for family, (_, linestyle) in style.FAMILIES.items():
        members = style.family_members(family)  # the variants that name the family, then benchmark methods
        looks = [style.appearance(m) for m in members]
        keys = {(matplotlib.colors.to_hex(look["color"]), look["marker"], look["linestyle"]) for look in looks}
        assert len(keys) == len(members), family
        for name, look in zip(members, looks):
            assert look["family"] == family
            cls = KERNELS.get(name)
            assert look["linestyle"] == (getattr(cls, "linestyle", None) or linestyle), name
            if getattr(cls, "color", None):
                assert look["color"] == cls.color, name
    assert style.family("a_kernel_of_mine") is None
    assert style.appearance("a_kernel_of_mine") == style.appearance("a_kernel_of_mine")  # fixed across calls


@pytest.mark.parametrize("count", [style.MAX_LENGTH_LABELS, style.MAX_LENGTH_LABELS + 1, 10])
def test_length_ticks_label_every_length_or_every_other(count):
    """Up to MAX_LENGTH_LABELS lengths are all labelled; a longer grid labels every other one, first included, so that
    neighbouring labels on a narrow log axis never run into each other."""
    import matplotlib.pyplot as plt

    lengths = [128 * 2**i for i in range(count)]
    fig, ax = plt.subplots()
    ax.set_xscale("log")
    style.length_ticks(ax, lengths + lengths[:2])  # repeated lengths tick once
    fig.canvas.draw()
    texts = [t.get_text() for t in ax.get_xticklabels()]
    plt.close(fig)
    assert list(ax.get_xticks()) == lengths
    shown = [int(t) for t in texts if t]
    assert shown == (lengths if count <= style.MAX_LENGTH_LABELS else lengths[::2])
