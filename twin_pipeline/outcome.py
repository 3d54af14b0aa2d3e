"""The outcome column of a credit table: what a risk model predicts, and so what an attacker most wants to learn.

One rule for both of its users: TSTR (`quality.utility`) trains its models to predict it, and the attacker
audit (`privacy.risk.default_secrets`) tries to infer it. A column of good / bad values first, then by name, most
specific name first, among columns with few values (an outcome is a class: good / bad, yes / no, a loan status).
"""

from __future__ import annotations

import re
from collections.abc import Collection

import pandas as pd

# Names risk modellers give an outcome (what the report says, and the pattern), most specific first; the first
# pattern any column matches wins, and among its columns the first in table order. "card" alone is credit_card's
# approval (yes / no); as a word, not a part ("majorcards" counts cards held).
_WORD = r"(^|[^a-z]){}($|[^a-z])"  # the word itself, not part of another
OUTCOME_PATTERNS = {"default": "default|ausfall", "status": "status", "approval": "approv", "bad": _WORD.format("bad"),
                    "charged off": r"charged.?off", "written off": r"writ(ten|e).?off", "fraud": "fraud",
                    "chargeback": r"charge.?back", "arrears": "arrears", "overdrawn": "overdr",
                    "delinquent": "delinq|dlq", "target": "target", "label": "label", "outcome": "outcome",
                    "card": _WORD.format("card")}
MAX_CLASSES = 20  # a column with more values is not an outcome
GOOD_BAD = {"good", "bad"}


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series) \
        or isinstance(series.dtype, pd.CategoricalDtype)


def _may_be_good_bad(series: pd.Series) -> bool:
    """False when the first row is a text spelled neither good nor bad: most text columns are ruled out there,
    before their distinct values are read."""
    first = series.iloc[0] if len(series) else None
    return not isinstance(first, str) or first.strip().lower() in GOOD_BAD


def _spellings(series: pd.Series) -> set[str]:
    """The column's values as text, trimmed and in lower case; read off its distinct values (a pass over every
    row's text took ten times longer, on every text column of the table)."""
    return {str(value).strip().lower() for value in series.dropna().unique()}


def outcome_column(table: pd.DataFrame, exclude: Collection[str] = ()) -> tuple[str | None, str]:
    """(the outcome column, why), or (None, why not): the first column, outside `exclude`, of good / bad values,
    else the first with 2 to MAX_CLASSES distinct values and named like an outcome (OUTCOME_PATTERNS)."""
    candidates = [name for name in table.columns if name not in set(exclude)]
    for name in candidates:  # a class that says what it is ("class" in the German credit data), whatever its name
        if _is_text(table[name]) and _may_be_good_bad(table[name]) and _spellings(table[name]) == GOOD_BAD:
            return name, "its values are good / bad"
    for word, pattern in OUTCOME_PATTERNS.items():
        for name in candidates:
            if re.search(pattern, str(name), re.IGNORECASE) and 2 <= table[name].nunique() <= MAX_CLASSES:
                return name, f"named like an outcome ({word})"
    return None, ("no column with 2 to 20 values named like an outcome (default, status, approval, bad, ...); "
                  "give --target")
