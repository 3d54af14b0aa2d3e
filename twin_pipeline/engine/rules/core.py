"""Rules a credit analyst checks, as statistics: how each rule is tested on a table, and how the engine keeps
the enforced ones by construction (the derived column is modelled through the rule, never repaired afterwards).

Kinds (each a `Rule` with a `kind` and JSON-safe `params`):

* ``order``: ``high - low >= offset`` on rows where both are present (``balance <= loan_amount``,
  ``Age - Seniority >= 14``). Kept by modelling the derived side as its position in its allowed interval, a
  fraction in [0, 1] (``balance = fraction * loan_amount``), its gap to its bound, or itself moved onto the bound
  where it crosses it, whichever keeps its marginal best (forms.py); both its own range and the rule hold;
* ``sum``: ``target = sum(sign * part)`` within rounding (``paid_total = principal + interest + fees``); the target
  is computed from its parts;
* ``ratio``: ``target = (slope * a + intercept) * b ** power`` within a tolerance (``share = 0.0012 * expenditure /
  income``); the target is computed;
* ``date_term``: ``end = start + term x unit (+ offset days)`` within a day or two (``maturity_date =
  origination_date + term_years years``; units: days, weeks, calendar months and years, 365-day years); the later
  date is computed from the earlier one and the term, month by month when the unit is calendar;
* ``fixed_when``: ``column == value`` (or null) on every row where ``when`` holds: a category (``balance == 0``
  when ``loan_status == 'Fully Paid'``) or a threshold on a number (``ifrs9_stage == 3`` when ``days_past_due >=
  90``, written ``{"days_past_due": {">=": 90}}``); the value is written when the condition is drawn, and the
  column's model is fitted on the other rows only;
* ``determined``: a category column that is a function of another (``grade`` from ``sub_grade``): looked up;
* declared only: ``range`` (``min <= column <= max``), ``formula`` (any arithmetic expression of columns),
  ``fixed_combinations`` (only value combinations seen in the real table).
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..columns import format_number_text, write_dates
from ..transformers import ColumnSpec

ENFORCE_SHARE = 1.0  # a mined rule is enforced only when it holds on every applicable real row
SEPARATOR = "\x1f"  # joins the values of fixed combinations into one modelled category


@dataclass
class Rule:
    kind: str
    params: dict
    source: str = "mined"  # "mined" or "declared"
    real_share: float = 1.0  # share of applicable real rows satisfying the rule
    enforced: bool = False
    derived: str | None = None  # the column the engine computes through this rule
    note: str | None = None  # why a rule is reported and not enforced
    name: str | None = None  # a declared rule's name (or its position in the file)

    @property
    def columns(self) -> list[str]:
        p = self.params
        if self.kind == "order":
            return [p["low"], p["high"]]
        if self.kind == "sum":
            return [p["target"], *p["terms"]]
        if self.kind == "ratio":
            return [p["target"], p["a"]] + ([p["b"]] if p.get("b") else [])
        if self.kind == "fixed_when":
            return [p["column"], *p["when"]]
        if self.kind == "date_term":
            return [p["end"], p["start"], p["term"]]
        if self.kind == "determined":
            return [p["column"], p["by"]]
        if self.kind == "formula":
            return [p["target"], *expression_columns(p["expression"])]
        if self.kind == "range":
            return [p["column"]]
        return list(p["columns"])

    @property
    def threshold(self) -> str | None:
        """The number column a fixed-value rule's condition cuts (`days_past_due` of `days_past_due >= 90`)."""
        if self.kind != "fixed_when":
            return None
        return next((name for name, value in self.params["when"].items() if isinstance(value, dict)), None)

    @property
    def text(self) -> str:
        """The rule as an analyst would write it."""
        p = self.params
        if self.kind == "order":
            offset = p.get("offset", 0)
            if offset and p.get("parse", {}).get(p["low"], {}).get("kind") == "datetime":  # seconds, shown as days
                return f"{p['high']} - {p['low']} >= {_number(offset / DAY)} days"
            return f"{p['low']} <= {p['high']}" if offset == 0 else f"{p['high']} - {p['low']} >= {_number(offset)}"
        if self.kind == "sum":
            terms = " ".join(("+ " if sign > 0 else "- ") + name for name, sign in p["terms"].items())
            return f"{p['target']} = " + terms.lstrip("+ ")
        if self.kind == "ratio":
            core = f"{_number(p['slope'])} * {p['a']}" + (f" + {_number(p['intercept'])}" if p["intercept"] else "")
            if p.get("b"):
                core = f"({core}) {'*' if p['power'] > 0 else '/'} {p['b']}"
            return f"{p['target']} ~= {core}"
        if self.kind == "fixed_when":
            when = " and ".join(" and ".join(f"{name} {op} {_number(bound)}" for op, bound in value.items())
                                if isinstance(value, dict) else f"{name} == {value!r}"
                                for name, value in p["when"].items())
            shown = "null" if p["value"] is None else repr(p["value"])
            return f"{p['column']} is {shown} when {when}"
        if self.kind == "determined":
            return f"{p['column']} is determined by {p['by']}"
        if self.kind == "date_term":
            unit = f"x {p['unit']}" if p["unit"].endswith(" days") else p["unit"] + "s"
            offset = p["offset_days"]
            shift = f" {'+' if offset > 0 else '-'} {abs(offset)} day{'s' if abs(offset) != 1 else ''}" if offset else ""
            return f"{p['end']} = {p['start']} + {p['term']} {unit}{shift}"
        if self.kind == "formula":
            return f"{p['target']} = {p['expression']}"
        if self.kind == "range":
            return f"{_number(p.get('min'))} <= {p['column']} <= {_number(p.get('max'))}"
        return "fixed combinations of " + ", ".join(p["columns"])

    def check(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(applicable rows, rows satisfying the rule) of `frame`, as boolean arrays."""
        with np.errstate(divide="ignore", invalid="ignore"):  # a division by zero is not finite: not applicable
            return self._check(frame)

    def _check(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        n = len(frame)
        if self.kind == "order":
            parse = p.get("parse", {})  # text dates and text numbers, read as the engine reads them
            low, high = numbers(frame[p["low"]], parse.get(p["low"])), numbers(frame[p["high"]], parse.get(p["high"]))
            applicable = np.isfinite(low) & np.isfinite(high)
            tolerance = 1e-9 * np.maximum(1.0, np.abs(high))
            return applicable, applicable & (high - low >= p.get("offset", 0) - tolerance)
        if self.kind == "date_term":
            parse = p.get("parse", {})
            end = numbers(frame[p["end"]], parse.get(p["end"]))
            expected = date_plus(numbers(frame[p["start"]], parse.get(p["start"])), numbers(frame[p["term"]]),
                                 p["unit"]) + p["offset_days"] * DAY
            applicable = np.isfinite(end) & np.isfinite(expected)
            return applicable, applicable & (np.abs(end - expected) <= p["tolerance_days"] * DAY + 1e-6)
        if self.kind in ("sum", "ratio", "formula"):
            target = numbers(frame[p["target"]])
            if self.kind == "ratio":  # residual within the fit's, plus the target's own rounding scaled like it
                scale = 1.0 if not p.get("b") else numbers(frame[p["b"]]) ** (-p["power"])
                expected = p["slope"] * numbers(frame[p["a"]]) + p["intercept"]
                tolerance = p["tolerance"] + p.get("rounding", 0.0) * np.abs(scale)
                target = target * scale
            else:
                expected = (sum(sign * numbers(frame[name]) for name, sign in p["terms"].items())
                            if self.kind == "sum" else evaluate(p["expression"], frame))
                tolerance = p["tolerance"] + 1e-9 * np.maximum(1.0, np.abs(target))
            applicable = np.isfinite(target) & np.isfinite(expected)
            return applicable, applicable & (np.abs(target - expected) <= tolerance)
        if self.kind == "fixed_when":
            applicable = np.ones(n, dtype=bool)
            for name, value in p["when"].items():
                applicable &= condition(frame[name], value)
            column = frame[p["column"]]
            holds = column.isna().to_numpy() if p["value"] is None else matches(column, p["value"])
            return applicable, applicable & holds
        if self.kind == "determined":
            expected = _looked_up(frame[p["by"]], p["mapping"])
            applicable = expected.notna().to_numpy()
            same = frame[p["column"]].astype(str).to_numpy() == expected.astype(str).to_numpy()
            return applicable, applicable & same
        if self.kind == "range":
            values = numbers(frame[p["column"]])
            applicable = np.isfinite(values)
            low = -np.inf if p.get("min") is None else p["min"]
            high = np.inf if p.get("max") is None else p["max"]
            return applicable, applicable & (values >= low) & (values <= high)
        # fixed combinations: every combination is one the real table has
        keys = combination_keys(frame, p["columns"])
        return np.ones(n, dtype=bool), keys.isin(p["combinations"]).to_numpy()

    def shares(self, frame: pd.DataFrame) -> dict:
        applicable, holds = self.check(frame)
        count = int(applicable.sum())
        return {"applicable_rows": count, "share": round(float(holds.sum() / count), 6) if count else None}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Rule":
        return cls(**data)


def _number(value) -> str:
    if value is None:
        return "-inf"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


NAT_SECONDS = np.iinfo(np.int64).min // 10**9  # what a missing datetime becomes in the engine's seconds
DAY = 86_400  # seconds
# (days, months) per unit; "30 days" and "360 days" are the 30/360 convention's month and year
DATE_UNITS = {"day": (1, 0), "week": (7, 0), "month": (0, 1), "year": (0, 12), "365 days": (365, 0),
              "30 days": (30, 0), "360 days": (360, 0)}


def date_plus(start: np.ndarray, term: np.ndarray, unit: str) -> np.ndarray:
    """`start` (seconds since 1970) plus `term` units: fixed units in days; calendar months and years month by
    month, the day of the month kept and clipped to the month's end (31 January + 1 month = 28 or 29 February),
    the time of day kept; a calendar term is a whole number of months."""
    days, months = DATE_UNITS[unit]
    if days:
        return start + term * days * DAY
    out = np.full(len(start), np.nan)
    finite = np.isfinite(start) & np.isfinite(term)
    day = np.floor(start[finite] / DAY).astype(np.int64).astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    target = month + np.round(term[finite] * months).astype(np.int64)
    length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(np.int64)
    shifted = target.astype("datetime64[D]") + np.minimum((day - month.astype("datetime64[D]")).astype(np.int64),
                                                          length - 1)
    out[finite] = start[finite] + (shifted - day).astype(np.int64) * DAY
    return out


def parse_of(spec) -> dict | None:
    """How the engine reads a column as numbers, when it is not plain numeric: text numbers ("$1,200") by their
    format, datetimes (native or text) as seconds since 1970. Stored in a rule so it checks a table on its own."""
    if spec.number_format:
        return {"kind": spec.kind, "number_format": spec.number_format}
    if spec.kind == "datetime":
        return {"kind": "datetime", "date_format": spec.date_format, "utc_offsets": spec.utc_offsets}
    return None


def numbers(series: pd.Series, parse: dict | None = None) -> np.ndarray:
    """A column's numeric view as the engine reads it (see parse_of); missing or unreadable: NaN."""
    if parse is None and not pd.api.types.is_datetime64_any_dtype(series):
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    spec = ColumnSpec.from_dict({"name": str(series.name), "dtype": str(series.dtype), **(parse or {"kind": "datetime"})})
    values = spec.to_numbers(series)
    return np.where(series.isna().to_numpy() | (values == NAT_SECONDS), np.nan, values)


def formatted(values: np.ndarray, parse: dict, dtype: str | None):
    """The inverse of `numbers`: seconds back to datetimes or date text, numbers back to their text format."""
    present = np.isfinite(values)
    if parse.get("number_format"):
        text = np.full(len(values), None, dtype=object)
        text[present] = format_number_text(np.round(values[present], parse["number_format"]["decimals"]),
                                           parse["number_format"])
        return text
    stamps = pd.to_datetime(np.where(present, values, np.nan), unit="s")
    if not parse.get("date_format"):
        return stamps.to_numpy(dtype=dtype or "datetime64[ns]")
    text = np.full(len(values), None, dtype=object)
    text[present] = write_dates(pd.Series(stamps[present]), parse["date_format"], parse.get("utc_offsets"))
    return text


def matches(series: pd.Series, value) -> np.ndarray:
    """Rows equal to `value`, comparing as text when types differ (a CSV's "1" and a JSON's 1)."""
    if value is None:
        return series.isna().to_numpy()
    equal = (series == value).fillna(False).to_numpy(dtype=bool)  # a nullable Int64 column's blanks compare as NA
    if not equal.any() and not _numbers_apart(series, value):
        equal = (series.astype(str) == str(value)).to_numpy(dtype=bool)
    return equal


def _looked_up(by: pd.Series, mapping: dict) -> pd.Series:
    """mapping.get(str(value)) of each row (a determined rule's expected value), looked up once per distinct text
    when `by` holds texts alone, none missing: a text column repeats its few values, and a call per row took 10 ms
    of a 100,000-row twin's rules report. Other columns (whose equal values may print unalike: 1 and 1.0) are
    looked up row by row."""
    def lookup(value):
        return mapping.get(str(value))
    if by.dtype == object:
        codes, distinct = pd.factorize(by)
        if (codes >= 0).all() and all(type(value) is str for value in distinct):
            return pd.Series(distinct, dtype=object).map(lookup).take(codes)
    return by.map(lookup)


def _numbers_apart(series: pd.Series, value) -> bool:
    """Whether no cell of `series` can be written as `value` is without equalling it: whole numbers, or floats
    (written by repr, one text per number), against a number that is not NaN. Writing 100,000 floats as text to
    find no 0.0 again took 0.03 CPU s."""
    plain = series.dtype.kind in "iu" or series.dtype == np.float64
    return plain and isinstance(value, (int, float)) and not math.isnan(value)


COMPARISONS = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}


def condition(series: pd.Series, value) -> np.ndarray:
    """Rows meeting one condition of a fixed-value rule: equal to a value (`matches`), or, for {op: bound}
    (`{">=": 90}`), a number on that side of each bound (missing or unreadable: never)."""
    if not isinstance(value, dict):
        return matches(series, value)
    values = numbers(series)
    met = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        for op, bound in value.items():
            met &= COMPARISONS[op](values, bound)
    return met


def combination_keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    return frame[columns].astype(str).agg(SEPARATOR.join, axis=1)


# ------------------------------------------------------------------ formulas (declared rules)
OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
             ast.Pow: operator.pow}


def parse_expression(expression: str) -> ast.AST:
    """Arithmetic of column names (bare, or `col("name with spaces")`) and numbers; anything else is refused."""
    tree = ast.parse(expression, mode="eval").body
    for node in ast.walk(tree):
        allowed = (ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Call, ast.Load, ast.USub, ast.UAdd,
                   *OPERATORS)
        if not isinstance(node, allowed):
            raise ValueError(f"{type(node).__name__} is not allowed (only + - * / ** of columns and numbers)")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id == "col"
                                               and len(node.args) == 1 and isinstance(node.args[0], ast.Constant)):
            raise ValueError('the only function is col("column name")')
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str)):
            raise ValueError(f"unsupported constant {node.value!r}")
    return tree


def expression_columns(expression: str) -> list[str]:
    names = []
    for node in ast.walk(parse_expression(expression)):
        if isinstance(node, ast.Call):
            names.append(node.args[0].value)
        elif isinstance(node, ast.Name) and node.id != "col":
            names.append(node.id)
    return list(dict.fromkeys(names))


def evaluate(expression: str, frame: pd.DataFrame) -> np.ndarray:
    """Vectorised value of a formula over the rows of `frame`."""
    def value(node):
        if isinstance(node, ast.BinOp):
            return OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        if isinstance(node, ast.Call):
            return numbers(frame[node.args[0].value])
        if isinstance(node, ast.Name):
            return numbers(frame[node.id])
        return float(node.value)

    with np.errstate(divide="ignore", invalid="ignore"):
        result = value(parse_expression(expression))
    return np.broadcast_to(np.asarray(result, dtype=float), (len(frame),)).copy()
