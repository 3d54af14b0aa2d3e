"""Pandera contracts for every stage: the twin must look like the upload, the model and reports like themselves.

The upload's schema is inferred once, at ingestion, and stored as pandera JSON (`schema.json`); the synthetic
sample and the protected twin are validated against it. It records what a twin may contain, not the raw
data: category sets keep only values seen at least k times plus "Other" (the engine and k-anonymity pool the
rarer ones into "Other"), numeric ranges are the observed ones widened and rounded outward (the observed minimum
and maximum are one borrower's values each), the primary key must be unique.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from ..bounds import outward_bounds
from ..engine.marginals import OTHER
from ..engine.transformers import KINDS

CATEGORY_SET_MAX = 50  # text columns with more distinct values are free text or ids: dtype checked only
SHOWN_FAILURES = 8


class SchemaMismatch(ValueError):
    """A stage's output breaks its contract; the message names the columns, checks and example values."""


def infer_twin_schema(real: pd.DataFrame, k: int, primary_key: str | None = None,
                      name: str = "twin") -> pa.DataFrameSchema:
    """Columns (in order, no extras), dtypes, nullability, numeric/date ranges and category sets of `real`."""
    columns = {column: _column_contract(real[column], k, column == primary_key) for column in real.columns}
    return pa.DataFrameSchema(columns, strict=True, ordered=True, name=name,
                              description="contract of a digital twin, inferred from its upload")


def _column_contract(series: pd.Series, k: int, is_key: bool) -> pa.Column:
    dtype, present = str(series.dtype), series.dropna()
    checks = []
    if is_key or present.empty:
        pass
    elif pd.api.types.is_bool_dtype(series.dtype):
        pass  # the dtype already fixes the value set
    elif pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_datetime64_any_dtype(series.dtype):
        if len(present) >= k:  # bounds of fewer than k values would describe those few borrowers
            checks.append(pa.Check.in_range(*outward_bounds(present)))
    elif present.nunique() <= CATEGORY_SET_MAX:
        counts = present.value_counts()
        kept = sorted(map(str, counts.index[counts >= k])) if _all_strings(counts.index) else None
        if kept is not None:
            checks.append(pa.Check.isin(sorted(set(kept) | {OTHER})))
    if pd.api.types.is_float_dtype(series.dtype) and series.isna().any() and np.all(np.mod(present, 1) == 0):
        dtype = None  # whole numbers with blanks: the twin writes them as nullable integers (engine `written`)
    return pa.Column(dtype, checks, nullable=bool(series.isna().any()) and not is_key, unique=is_key)


def _all_strings(values: pd.Index) -> bool:
    return all(isinstance(value, str) for value in values)


def schema_to_dict(schema: pa.DataFrameSchema) -> dict:
    return json.loads(schema.to_json())


def schema_from_dict(data: dict) -> pa.DataFrameSchema:
    return pa.DataFrameSchema.from_json(json.dumps(data))


def conform(frame: pd.DataFrame, schema: pa.DataFrameSchema, what: str) -> pd.DataFrame:
    """Validate all checks at once; raise SchemaMismatch listing every broken (column, check) with examples."""
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as error:
        raise SchemaMismatch(f"{what} does not match {schema.name or 'its schema'}: "
                             + _describe_failures(error.failure_cases)) from None


def _describe_failures(cases: pd.DataFrame) -> str:
    cases = cases.assign(column=cases["column"].fillna("<table>"), check=cases["check"].astype(str))
    problems = []
    for (column, check), group in cases.groupby(["column", "check"], sort=False):
        examples = ", ".join(map(repr, group["failure_case"].drop_duplicates().head(3)))
        rows = group["index"].notna().sum()
        where = f" on {rows} row(s)" if rows else ""
        problems.append(f"column {column!r} fails {check}{where} (found {examples})")
    more = f"; and {len(problems) - SHOWN_FAILURES} more" if len(problems) > SHOWN_FAILURES else ""
    return "; ".join(problems[:SHOWN_FAILURES]) + more


# ---------------------------------------------------------------------------------------- the model's parts
class MarginalsSummary(pa.DataFrameModel):
    """One row per input column: the kind the engine detected and the marginal family it chose."""

    column: Series[str] = pa.Field(unique=True)
    kind: Series[str] = pa.Field(isin=list(KINDS))
    family: Series[str] = pa.Field(nullable=True)
    null_rate: Series[float] = pa.Field(ge=0.0, le=1.0)
    fit_statistic: Series[float] = pa.Field(ge=0.0, le=1.0, nullable=True)

    class Config:
        strict = "filter"  # describe() carries extra, kind-specific details; the contract covers these
        coerce = True


def marginals_summary(described: dict[str, dict]) -> pd.DataFrame:
    """The engine's describe() as a validated table (also what the UI shows as "chosen marginal families")."""
    frame = pd.DataFrame([{"column": name, **entry} for name, entry in described.items()])
    return conform(frame, MarginalsSummary.to_schema(), "the fitted marginals")


def _symmetric(matrix: pd.DataFrame) -> bool:
    values = matrix.to_numpy(dtype=float)
    return bool(np.allclose(values, values.T, atol=ROUNDING))


def _unit_diagonal(matrix: pd.DataFrame) -> bool:
    return bool(np.allclose(np.diag(matrix.to_numpy(dtype=float)), 1.0, atol=ROUNDING))


def _positive_semidefinite(matrix: pd.DataFrame) -> bool:
    values = matrix.to_numpy(dtype=float)
    return values.size == 0 or bool(np.linalg.eigvalsh(values).min() >= -1e-8)


ROUNDING = 1e-9  # a repaired correlation matrix may hold 1.0000000000000002 on its diagonal

CORRELATION_SCHEMA = pa.DataFrameSchema(
    {".+": pa.Column(float, pa.Check.in_range(-1.0 - ROUNDING, 1.0 + ROUNDING), regex=True)},
    index=pa.Index(str, unique=True),
    checks=[pa.Check(_symmetric, error="symmetric"), pa.Check(_unit_diagonal, error="unit diagonal"),
            pa.Check(_positive_semidefinite, error="positive semi-definite"),
            pa.Check(lambda m: list(m.index) == list(m.columns), error="rows and columns label the same variables")],
    name="a correlation matrix",
)


# ------------------------------------------------------------------------------------------ quality report
class QualityColumns(pa.DataFrameModel):
    """Per-column fidelity: KS statistic (numbers, dates) or category match (1 - TVD), both within [0, 1]."""

    column: Series[str]
    metric: Series[str] = pa.Field(isin=["ks_statistic", "category_match"])
    value: Series[float] = pa.Field(ge=0.0, le=1.0, nullable=True)


class QualityScores(pa.DataFrameModel):
    """The headline figures of a quality report."""

    similarity_score: Series[float] = pa.Field(ge=0.0, le=100.0)
    correlation_error: Series[float] = pa.Field(ge=0.0, le=2.0, nullable=True)
    n_real: Series[int] = pa.Field(gt=0)
    n_synthetic: Series[int] = pa.Field(ge=0)

    class Config:
        strict = True


def quality_columns(quality: dict) -> pd.DataFrame:
    """Validate a quality report; return its per-column table (the UI's KS / category-match tables)."""
    scores = pd.DataFrame([{name: quality[name] for name in QualityScores.to_schema().columns}])
    conform(scores, QualityScores.to_schema(), "the quality report's scores")
    rows = [{"column": name, "metric": metric, "value": value}
            for metric, key in (("ks_statistic", "ks_statistics"), ("category_match", "categorical_match"))
            for name, value in quality[key].items()]
    frame = pd.DataFrame(rows, columns=["column", "metric", "value"])
    frame = frame.astype({"column": str, "metric": str, "value": float})
    return conform(frame, QualityColumns.to_schema(), "the quality report's columns")
