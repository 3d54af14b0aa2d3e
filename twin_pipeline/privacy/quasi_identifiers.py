"""Which columns could re-identify a person when combined with outside data (quasi-identifiers).

Detected by column name, the way a data-protection officer reads a schema (age, birth date, postcode,
region, sex, marital status, ethnicity, job, employment length, income, dependents, home ownership,
education), then filtered by kind: identifiers and constants are never quasi-identifiers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd

# Each entry: words that mark a quasi-identifier when they are a whole token of the column name.
_QI_TOKENS = frozenset({
    "age", "ages", "birth", "birthday", "birthdate", "birthyear", "dob", "born",
    "zip", "zipcode", "postcode", "postal", "postalcode", "plz",
    "state", "region", "county", "city", "province", "district", "address", "addr", "municipality",
    "sex", "gender",
    "marital", "married", "maritalstatus",
    "race", "ethnicity", "ethnic", "nationality", "citizenship", "religion",
    "occupation", "job", "jobtitle", "employer", "title", "profession", "position",
    "seniority", "employment", "employed", "selfemp", "selfemployed", "tenure",
    "income", "salary", "wage", "wages", "earnings",
    "dependents", "dependent", "dependants", "children", "kids", "household",
    "home", "homeowner", "owner", "ownership", "housing", "residence",
    "education", "degree",
})
# Abbreviations that only mean a quasi-identifier next to another word ("annual_inc", "emp_length").
_QI_TOKEN_PAIRS = (
    ({"inc"}, {"annual", "monthly", "total", "gross", "net"}),
    ({"emp"}, {"length", "years", "year", "title", "status", "type"}),
    ({"family"}, {"status", "size"}),
)
# Compound names written as one word ("dateofbirth", "homeownership", "yearsemployed").
_QI_FRAGMENTS = ("birth", "marital", "income", "salary", "zipcode", "postcode", "gender", "occupation",
                 "homeowner", "dependent", "employ", "ethnic")
_ID_TOKENS = frozenset({"id", "ids", "uuid", "guid", "key", "pk"})
_NOT_QI_KINDS = frozenset({"identifier", "constant"})


def name_tokens(name: str) -> list[str]:
    """Lower-case words of a column name: snake_case, kebab-case, spaces and camelCase all split."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", str(name))
    return [token for token in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if token]


def is_quasi_identifier_name(name: str) -> bool:
    words = name_tokens(name)
    tokens = set(words)
    if tokens & _ID_TOKENS:
        return False
    if tokens & _QI_TOKENS:
        return True
    if any(tokens & first and tokens & second for first, second in _QI_TOKEN_PAIRS):
        return True
    compact = "".join(words)
    return any(fragment in compact for fragment in _QI_FRAGMENTS)


def detect_quasi_identifiers(
    df: pd.DataFrame,
    primary_key: str | None = None,
    column_kinds: Mapping[str, str] | None = None,
) -> list[str]:
    """Quasi-identifier columns of `df` in table order; never the primary key, identifiers or constants."""
    kinds = dict(column_kinds or {})
    found = []
    for column in df.columns:
        if column == primary_key or kinds.get(column) in _NOT_QI_KINDS or not is_quasi_identifier_name(column):
            continue
        if df[column].nunique(dropna=False) <= 1:
            continue  # a constant cannot single anyone out
        if _looks_like_key(df[column]):
            continue
        found.append(column)
    return found


def _looks_like_key(series: pd.Series) -> bool:
    """A text or integer column unique on every row of a sizeable table is a key, not a trait of a person."""
    if len(series) < 20 or pd.api.types.is_float_dtype(series.dtype):
        return False
    if pd.api.types.is_integer_dtype(series.dtype):
        values = series.dropna()
        return bool(values.is_unique and values.is_monotonic_increasing)
    return False
