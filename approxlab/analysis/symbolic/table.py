"""The paper-style table of variants: κ, row weight, rational degree, feature width, cost, positivity and
monotonicity, each entry derived by sympy from what the variant says about itself (``kernels``), and its
LaTeX export. Which rows to show is the caller's choice (the ``rational_degree`` study picks its own);
the default is every variant the registry knows, at its default parameters.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple

import pandas as pd
import sympy as sp
from tqdm.auto import tqdm

from ...variants import kernel_name, value_text, variant_names
from .kernels import efficient_cost, explain, kernel_expression, monotonicity, positivity, rational_degree

def row_label(variant, params: dict) -> str:
    """``name (k=v, …)``: the variant's name with its parameters (strings alone, floats as %g)."""
    variant = kernel_name(variant)
    if not params:
        return variant
    inner = ", ".join(v if isinstance(v, str) else f"{k}={v:g}" if isinstance(v, float) else f"{k}={value_text(v)}"
                      for k, v in params.items())
    return f"{variant} ({inner})"


def derivation_table(rows: Optional[Iterable[Tuple[object, dict]]] = None, *, dim: int = 2) -> pd.DataFrame:
    """One row per (variant, parameters): LaTeX of κ, weight, F and cost; degrees; sign and monotonicity.

    ``rows`` defaults to every variant name at its default parameters (:func:`approxlab.variants.variant_names`)."""
    records = []
    rows = [(name, {}) for name in variant_names()] if rows is None else list(rows)
    for variant, params in tqdm(rows, desc="rational_degree table"):
        expr = kernel_expression(variant, dim=dim, **params)
        degree = rational_degree(variant, dim=dim, **params)
        records.append(dict(
            variant=kernel_name(variant), params=value_text(params), label=row_label(variant, params),
            kappa=sp.latex(expr.display_kappa()), weight=sp.latex(expr.display_weight()),
            numerator_degree=None if degree is None else degree[0],
            denominator_degree=None if degree is None else degree[1],
            features=sp.latex(expr.features), cost=sp.latex(efficient_cost(expr)),
            positivity=positivity(expr), monotonicity=monotonicity(expr),
            kernel_of=("s" if expr.of_similarity else "feature vectors"), note=expr.note,
            explanation=explain(variant, **params),
        ))
    df = pd.DataFrame(records)
    for col in ("numerator_degree", "denominator_degree"):
        df[col] = df[col].astype("Int64")
    return df


def degree_text(num, den) -> str:
    return "none" if pd.isna(num) else f"({int(num)}, {int(den)})"


def to_latex(df: pd.DataFrame, columns: Sequence[str] = ("kappa", "weight", "degree", "cost", "positivity",
                                                           "monotonicity")) -> str:
    """A booktabs ``tabular`` of the table (κ, weight, degree, cost, positivity, monotonicity)."""
    heads = {"kappa": r"$\kappa$", "weight": r"weight $a_j$", "degree": "degree", "features": "$F$",
             "cost": "cost", "positivity": r"$\kappa$ sign", "monotonicity": "monotone in $s$"}
    unknown = [c for c in columns if c not in heads]
    if unknown:
        raise ValueError(f"columns must be among {list(heads)}, got {unknown}")
    lines = [r"\begin{tabular}{l" + "l" * len(columns) + "}", r"\toprule",
             " & ".join(["variant"] + [heads[c] for c in columns]) + r" \\", r"\midrule"]
    for _, row in df.iterrows():
        cells = [row["label"].replace("_", r"\_")]
        for c in columns:
            if c == "degree":
                cells.append(degree_text(row["numerator_degree"], row["denominator_degree"]))
            elif c in ("kappa", "weight", "features", "cost"):
                cells.append(f"${row[c]}$")
            else:
                cells.append(str(row[c]))
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)
