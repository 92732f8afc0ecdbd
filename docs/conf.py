"""Sphinx configuration of the approxlab site.

Build (warnings are errors)::

    python -m sphinx -W -b html docs docs/_build/html

Pages are MyST Markdown (``docs/**/*.md``) or notebooks; the reference is generated from the docstrings
(autosummary, recursive, numpydoc); numbers in the study pages are read from ``figures/*.csv`` at build
time by the ``csvnum`` extension (``docs/_ext/csvnum.py``, described in ``docs/README_FOR_PAGES.md``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))          # the checkout's approxlab, not an installed copy
sys.path.insert(0, str(DOCS / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")

import approxlab  # noqa: E402


def _forget_stale_reference():
    """Generated reference pages of modules that no longer exist would fail to import: when the set of
    approxlab modules changes, start the generated pages afresh."""
    generated = DOCS / "api" / "generated"
    modules = "\n".join(sorted(str(p.relative_to(ROOT)) for p in (ROOT / "approxlab").rglob("*.py")))
    stamp = generated / ".modules"
    if generated.exists() and (not stamp.exists() or stamp.read_text() != modules):
        shutil.rmtree(generated)
    generated.mkdir(parents=True, exist_ok=True)
    stamp.write_text(modules)


_forget_stale_reference()

project = "approxlab"
author = "the approxlab authors"
copyright = "the approxlab authors"
release = version = approxlab.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",            # MyST Markdown pages and notebooks (includes myst_parser)
    "csvnum",             # {csv} role and csv-frame directive: numbers from figures/*.csv
    "plaindocs",          # plain-text docstrings read as reStructuredText without warnings
    "derivations",        # symbolic-table / symbolic-derivations: the LaTeX approxlab.symbolic produces
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
templates_path = ["_templates"]

# ---- MyST / notebooks ----------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "substitution"]
myst_heading_anchors = 3
nb_execution_mode = "off"            # notebooks are shown with their committed outputs
nb_merge_streams = True

# ---- reference -----------------------------------------------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = False  # a module's __all__ names its public members, imported ones too
autosummary_imported_members = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"             # numpydoc's Parameters sections say the types
numpydoc_show_class_members = False    # autosummary lists them
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set = set()  # docstring style is checked by review, not by the build
numpydoc_xref_param_type = False

# ---- HTML ----------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "approxlab"
html_static_path = ["_static"]
html_css_files = ["approxlab.css"]
html_theme_options = {
    "navigation_depth": 3,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": []}

# MathJax comes from its CDN; an offline build (a screenshot of the site, say) can point
# APPROXLAB_DOCS_MATHJAX at a folder holding MathJax 3's es5 build (tex-mml-chtml.js with its fonts: `npm pack
# mathjax@3`, folder package/es5), which is then copied into the site.
if os.environ.get("APPROXLAB_DOCS_MATHJAX"):
    html_static_path.append(os.environ["APPROXLAB_DOCS_MATHJAX"])
    mathjax_path = "tex-mml-chtml.js"


def _copy_notebooks(app):
    """The example notebooks rendered as guides, with the outputs they were committed with."""
    for name in ("bring_your_own_kernel",):
        source = ROOT / "examples" / f"{name}.ipynb"
        target = DOCS / "guides" / f"{name}.ipynb"
        if not target.exists() or target.read_bytes() != source.read_bytes():
            shutil.copyfile(source, target)


def setup(app):
    app.connect("builder-inited", _copy_notebooks)
