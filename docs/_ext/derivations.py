"""The LaTeX that :mod:`approxlab.analysis.symbolic` produces, generated while the site is built.

``symbolic-table`` renders :func:`approxlab.analysis.symbolic.derivation_table` (κ, row weight, derived degree, cost,
sign, monotonicity per variant); ``symbolic-derivation NAME`` renders one derivation of
``approxlab.analysis.symbolic.DERIVATIONS`` (its claim, steps and verdict, which sympy re-derives on every build)::

    ```{symbolic-table}
    ```

    ```{symbolic-derivation} bridge_tv
    ```

A derivation that no longer holds stops the build (its residuals must simplify to zero).
"""

from __future__ import annotations

import inspect

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

from csvnum import table_node  # docs/_ext is on sys.path (conf.py)


def _math(latex: str) -> nodes.math:
    return nodes.math(latex, latex)


class SymbolicTable(SphinxDirective):
    """The derived table of every registered variant at its default parameters (:func:`approxlab.analysis.symbolic.derivation_table`)."""

    option_spec = {"dim": directives.positive_int}

    def run(self):
        from approxlab.analysis import symbolic
        from approxlab.analysis.symbolic.table import degree_text

        try:
            df = symbolic.derivation_table(dim=self.options.get("dim", 2))
        except Exception as exc:  # noqa: BLE001
            raise self.error(f"symbolic-table: {type(exc).__name__}: {exc}") from None
        header = ["variant", "κ", "degree of a_j", "features F", "cost", "sign", "monotone in s"]
        rows = [[nodes.literal(r["label"], r["label"]), _math(r["kappa"]),
                 degree_text(r["numerator_degree"], r["denominator_degree"]), _math(r["features"]),
                 _math(r["cost"]), r["positivity"], r["monotonicity"]] for _, r in df.iterrows()]
        return [table_node(header, rows, classes=["symbolic-table"])]


class SymbolicDerivation(SphinxDirective):
    """One derivation: title, claim, steps and verdict as a display equation."""

    required_arguments = 1
    option_spec = {"order": directives.positive_int}

    def run(self):
        from approxlab.analysis import symbolic

        name = self.arguments[0]
        if name not in symbolic.DERIVATIONS:
            raise self.error(f"symbolic-derivation: unknown {name!r}; choose from {sorted(symbolic.DERIVATIONS)}")
        function = symbolic.DERIVATIONS[name]
        kwargs = {}
        if "order" in self.options:
            kwargs["order"] = self.options["order"]
        elif "order" in inspect.signature(function).parameters and \
                inspect.signature(function).parameters["order"].default is inspect.Parameter.empty:
            raise self.error(f"symbolic-derivation {name}: give :order:")
        try:
            derivation = function(**kwargs)
        except Exception as exc:  # noqa: BLE001
            raise self.error(f"symbolic-derivation {name}: {type(exc).__name__}: {exc}") from None
        if not derivation.holds:
            raise self.error(f"symbolic-derivation {name}: the derivation does not hold (non-zero residual)")
        latex = derivation._repr_latex_().strip().strip("$")
        block = nodes.math_block(latex, latex, nowrap=False, number=None, docname=self.env.docname)
        summary = nodes.paragraph()
        summary += nodes.strong(derivation.title, derivation.title)
        summary += nodes.Text(f" (approxlab.analysis.symbolic.{function.__name__}"
                              f"({', '.join(f'{k}={v}' for k, v in kwargs.items())}); "
                              "sympy reduces every residual to 0)")
        return [summary, block]


def setup(app):
    app.add_directive("symbolic-table", SymbolicTable)
    app.add_directive("symbolic-derivation", SymbolicDerivation)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
