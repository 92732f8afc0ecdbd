"""Numbers and tables read from the committed ``figures/*.csv`` while the site is built.

A page states a finding without typing its number: the number is a pandas expression over the CSV the
study wrote, evaluated when Sphinx reads the page, so the page and the data cannot drift apart.

In a MyST page::

    Mean row TV of linear attention: {csv}`lesson_exercise: df.query("variant == 'linear'").tv_mean.mean()`.
    Two significant digits: {csv}`lesson_exercise: df.tv_mean.max() :: .2g`.

    ```{csv-setup} lesson_exercise
    lin = df[df.variant == "linear"]
    ```
    Later roles see the names a setup block defines: {csv}`lin.tv_mean.mean() :: .3f`.

    ```{csv-frame} kernel_error
    :format: .3g
    df.pivot_table(index="p", columns="method", values="delta")
    ```

Role ``{csv}``: ``NAME: EXPRESSION :: SPEC``. ``NAME:`` (optional) binds ``df`` to ``figures/NAME.csv``;
``:: SPEC`` (optional) is a format spec (default: three significant digits, whole numbers from 1000
up to 10⁷ written out, thousands separated from 10,000 on); a string result is
inserted as it is (so an f-string can format several numbers at once). Directive ``csv-setup`` runs Python
code in the page's namespace (shown nowhere); ``csv-frame`` renders the DataFrame an expression (or the
last line of a block of code) returns as a table. The namespace holds ``pd``, ``np``, ``csv(name)`` (the
DataFrame of ``figures/NAME.csv``), ``fmt(x, spec)``, ``rng(values, spec)`` ("lo–hi"), ``study(name)`` (the study's module, for its
``summary``-style helpers), ``df`` and whatever
the page's setup blocks define; it lives for one page. An expression that fails, a missing CSV or a missing
column stops the build with the page and line (``-W``).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective, SphinxRole

logger = logging.getLogger(__name__)

#: where the CSVs are read: the committed figures/, or $APPROXLAB_DOCS_FIGURES (to check the pages against a
#: regenerated set before committing it)
FIGURES = Path(os.environ.get("APPROXLAB_DOCS_FIGURES") or Path(__file__).resolve().parents[2] / "figures")
_CACHE: dict[Path, tuple[float, pd.DataFrame]] = {}
_NAME = re.compile(r"^\s*([A-Za-z_][\w\-]*)\s*:\s(.*)$", re.S)


def read_csv(name: str) -> pd.DataFrame:
    """``figures/NAME.csv`` (``NAME`` with or without ``.csv``), read once per build unless it changes."""
    path = FIGURES / (name if name.endswith(".csv") else f"{name}.csv")
    if not path.exists():
        raise FileNotFoundError(f"no {path.relative_to(FIGURES.parent)} (choose from "
                                f"{sorted(p.stem for p in FIGURES.glob('*.csv'))})")
    mtime = path.stat().st_mtime
    if path not in _CACHE or _CACHE[path][0] != mtime:
        _CACHE[path] = (mtime, pd.read_csv(path, low_memory=False))
    return _CACHE[path][1].copy()


def fmt(value, spec: str | None = None) -> str:
    """One value as text: integers with thousands separators, floats to ``spec`` (default ``.3g``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (pd.Series, pd.Index, np.ndarray, list, tuple)):
        return ", ".join(fmt(v, spec) for v in list(value))
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return format(int(value), spec or ("," if abs(int(value)) >= 10000 else "d"))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            raise ValueError("the expression gave NaN (an empty selection?)")
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if spec is None and 1000 <= abs(value) < 1e7:
            spec = ",.0f" if abs(value) >= 10000 else ".0f"   # 4096, 11,585: no 4.1·10³ for a count
        text = format(value, spec or ".3g")
        if "e" in text and not (spec or "").endswith(("e", "E")):
            mantissa, exponent = text.split("e")
            power = "10" + str(int(exponent)).replace("-", "⁻").translate(_SUP)
            text = power if mantissa in ("1", "1.0") else f"{mantissa}·{power}"
        return text.replace("-", "−")
    return str(value)


_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def rng(values, spec: str | None = None, sep: str = "–") -> str:
    """``"lo–hi"`` of ``values`` formatted by :func:`fmt`; one number when both ends read the same."""
    values = pd.Series(values).dropna()
    if values.empty:
        raise ValueError("rng() of no values (an empty selection?)")
    lo, hi = fmt(values.min(), spec), fmt(values.max(), spec)
    return lo if lo == hi else f"{lo}{sep}{hi}"


def study(name: str):
    """The study module that writes ``figures/NAME.csv`` (its ``summary``/``table`` helpers, its constants)."""
    from approxlab.experiments import figures

    return figures.study(name)


def _namespace(env) -> dict:
    """The current page's namespace (``env.temp_data`` is emptied after every page)."""
    if "csvnum" not in env.temp_data:
        env.temp_data["csvnum"] = {"pd": pd, "np": np, "csv": read_csv, "fmt": fmt, "rng": rng,
                                   "study": study}
    return env.temp_data["csvnum"]


def _bind(env, name: str | None, namespace: dict) -> None:
    if name:
        namespace["df"] = read_csv(name)
        env.note_dependency(str(FIGURES / (name if name.endswith(".csv") else f"{name}.csv")))


def _run(code: str, namespace: dict):
    """Execute ``code``; the value of its last line when that line is an expression, else None."""
    import ast

    tree = ast.parse(code, mode="exec")
    last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    if last is not None:
        tree.body = tree.body[:-1]
    exec(compile(tree, "<csv>", "exec"), namespace)  # noqa: S102 (the site's own pages)
    if last is not None:
        return eval(compile(ast.Expression(last.value), "<csv>", "eval"), namespace)  # noqa: S307
    return None


class CsvRole(SphinxRole):
    """``{csv}`NAME: EXPRESSION :: SPEC``` → the formatted value."""

    def run(self):
        text = self.text
        spec = None
        if " :: " in text:
            text, spec = text.rsplit(" :: ", 1)
            spec = spec.strip()
        namespace = _namespace(self.env)
        match = _NAME.match(text)
        try:
            if match and (FIGURES / f"{match.group(1)}.csv").exists():
                _bind(self.env, match.group(1), namespace)
                text = match.group(2)
            value = eval(text.strip(), namespace)  # noqa: S307 (the site's own pages)
            out = fmt(value, spec)
        except Exception as exc:  # noqa: BLE001: any failure is the page's error, reported with its line
            msg = self.inliner.reporter.error(f"csv: {self.text!r}: {type(exc).__name__}: {exc}", line=self.lineno)
            prb = self.inliner.problematic(self.rawtext, self.rawtext, msg)
            return [prb], [msg]
        return [nodes.inline(self.rawtext, out, classes=["csvnum"])], []


class CsvSetup(SphinxDirective):
    """Python code run in the page's namespace, nothing shown; the argument (a CSV name) binds ``df``."""

    has_content = True
    optional_arguments = 1

    def run(self):
        namespace = _namespace(self.env)
        try:
            _bind(self.env, self.arguments[0] if self.arguments else None, namespace)
            _run("\n".join(self.content), namespace)
        except Exception as exc:  # noqa: BLE001
            raise self.error(f"csv-setup: {type(exc).__name__}: {exc}") from None
        return []


class CsvFrame(SphinxDirective):
    """The DataFrame the content returns, as a table (its columns are the header row)."""

    has_content = True
    optional_arguments = 1
    option_spec = {
        "format": directives.unchanged,     # float format for every column, default .3g
        "formats": directives.unchanged,    # per column: "tv=.2f, time=.3g"
        "math": directives.unchanged,       # columns holding LaTeX, shown as inline math: "kappa, cost"
        "index": directives.flag,           # show the index as the first column(s)
        "caption": directives.unchanged,
        "name": directives.unchanged,
    }

    def run(self):
        namespace = _namespace(self.env)
        try:
            _bind(self.env, self.arguments[0] if self.arguments else None, namespace)
            frame = _run("\n".join(self.content), namespace)
            if isinstance(frame, pd.Series):
                frame = frame.to_frame()
            if not isinstance(frame, pd.DataFrame):
                raise TypeError(f"the last line must give a DataFrame, got {type(frame).__name__}")
            if frame.empty:
                raise ValueError("the DataFrame is empty (an empty selection?)")
            if "index" in self.options:
                frame = frame.reset_index()
            default = self.options.get("format")
            per_column = {}
            for item in filter(None, (s.strip() for s in self.options.get("formats", "").split(","))):
                column, _, spec = item.partition("=")
                if column.strip() not in frame.columns:
                    raise KeyError(f"formats names {column.strip()!r}, not a column of {list(frame.columns)}")
                per_column[column.strip()] = spec.strip()
            math_columns = [c.strip() for c in self.options.get("math", "").split(",") if c.strip()]
            missing = [c for c in math_columns if c not in frame.columns]
            if missing:
                raise KeyError(f"math names {missing}, not columns of {list(frame.columns)}")
            header = [str(c) for c in frame.columns]
            rows = [[_cell(v, per_column.get(c, default), c in math_columns) for c, v in zip(frame.columns, row)]
                    for row in frame.itertuples(index=False)]
        except Exception as exc:  # noqa: BLE001
            raise self.error(f"csv-frame: {type(exc).__name__}: {exc}") from None
        table = table_node(header, rows)
        if "caption" in self.options:
            title = nodes.title(self.options["caption"], self.options["caption"])
            table.insert(0, title)
        if "name" in self.options:
            self.add_name(table)
        table["classes"].append("csvnum-table")
        return [table]


def _cell(value, spec, as_math=False):
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (int, np.integer)) and spec and not spec.endswith(("d", "n", ",")):
        spec = None   # a float format does not apply to a whole-number column
    return nodes.math(str(value), str(value)) if as_math else fmt(value, spec)


def table_node(header: list[str], rows: list[list], classes: list[str] | None = None) -> nodes.table:
    """A docutils table: one header row, then ``rows``; a cell is a docutils node or text (shared with the
    derivations extension)."""
    table = nodes.table(classes=classes or [])
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    head += _row(header)
    body = nodes.tbody()
    group += body
    for row in rows:
        body += _row(row)
    return table


def _row(cells: list) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        paragraph = nodes.paragraph()
        paragraph += cell if isinstance(cell, nodes.Node) else nodes.Text(cell)
        entry += paragraph
        row += entry
    return row


def setup(app):
    app.add_role("csv", CsvRole())
    app.add_directive("csv-setup", CsvSetup)
    app.add_directive("csv-frame", CsvFrame)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
