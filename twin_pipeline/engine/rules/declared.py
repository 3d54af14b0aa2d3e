"""Declared rules: what mining cannot find, from a JSON or YAML file (or a dict), checked against the real table.

    rules:
      - {type: inequality, low: balance, high: loan_amount}            # high - low >= offset (default 0)
      - {type: range, column: interest_rate, min: 0, max: 40}
      - {type: fixed_combinations, columns: [grade, sub_grade]}
      - {type: formula, target: paid_total, expression: "paid_principal + paid_interest + paid_late_fees"}
      - {type: fixed_when, column: balance, value: 0, when: {loan_status: Fully Paid}}
      - {type: fixed_when, column: ifrs9_stage, value: 3, when: {days_past_due: {">=": 90}}}  # past a threshold

A declared rule is enforced even when a few real rows break it (up to 1 %: the user says so); one that more
real rows break contradicts the data and is a clear error naming the rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ...tables import TwinInputError
from .core import COMPARISONS, Rule, combination_keys, parse_expression

CONTRADICTION = 0.01  # a declared rule broken on more than this share of real rows contradicts the data
TYPES = {"inequality": "order", "order": "order", "range": "range", "fixed_combinations": "fixed_combinations",
         "formula": "formula", "fixed_when": "fixed_when"}
REQUIRED = {"order": ("low", "high"), "range": ("column",), "fixed_combinations": ("columns",),
            "formula": ("target", "expression"), "fixed_when": ("column", "when")}


def load_declared(rules, source: str = "rules") -> list[Rule]:
    """Rules from a path (.json, .yaml, .yml), a dict {"rules": [...]} or a list; a bad entry is a
    TwinInputError naming the file and the rule."""
    if rules is None:
        return []
    if isinstance(rules, (str, Path)):
        source, rules = str(rules), read_rules_file(rules)
    if isinstance(rules, dict):
        rules = rules.get("rules")
    if not isinstance(rules, list):
        raise TwinInputError(source, 'rules must be a list, or an object with a "rules" list')
    return [_rule(entry, position, source) for position, entry in enumerate(rules, start=1)]


def read_rules_file(path) -> list | dict:
    """The raw entries of a JSON or YAML rules file (so a run can record the rules themselves, not a path)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TwinInputError(path, f"cannot read the rules file ({error.strerror or error})") from None
    yaml_file = path.suffix.lower() in (".yaml", ".yml")
    try:
        if yaml_file:
            import yaml
            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as error:  # noqa: BLE001 - any parse failure is the file's problem
        first_line = str(error).splitlines()[0]
        raise TwinInputError(path, f"is not valid {'YAML' if yaml_file else 'JSON'}: {first_line}") from None


def _rule(entry, position: int, source: str) -> Rule:
    label = f"rule {position}"
    if not isinstance(entry, dict):
        raise TwinInputError(source, f"{label} is not an object")
    label = f"rule {position}" + (f" ({entry['name']})" if entry.get("name") else "")
    kind = TYPES.get(str(entry.get("type")))
    if kind is None:
        raise TwinInputError(source, f"{label}: unknown type {entry.get('type')!r}; choose one of {', '.join(TYPES)}")
    missing = [key for key in REQUIRED[kind] if entry.get(key) in (None, "", [], {})]
    if missing:
        raise TwinInputError(source, f"{label} ({entry['type']}): missing {', '.join(missing)}")
    params = {key: value for key, value in entry.items() if key not in ("type", "name")}
    if kind == "order":
        params.setdefault("offset", 0)
    if kind == "fixed_when":
        params.setdefault("value", None)
        if not isinstance(params["when"], dict):
            raise TwinInputError(source, f"{label}: 'when' must map a column to its value")
        for column, value in params["when"].items():
            if isinstance(value, dict) and not (value and all(
                    op in COMPARISONS and isinstance(bound, (int, float)) and not isinstance(bound, bool)
                    for op, bound in value.items())):
                raise TwinInputError(source, f"{label}: a threshold on {column} maps {', '.join(COMPARISONS)} "
                                             f"to a number, e.g. {{'>=': 90}}")
    if kind == "fixed_combinations" and (not isinstance(params["columns"], list) or len(params["columns"]) < 2):
        raise TwinInputError(source, f"{label}: 'columns' must list at least two columns")
    if kind == "formula":
        try:
            parse_expression(str(params["expression"]))
        except (SyntaxError, ValueError) as error:
            problem = f"{label}: cannot read the expression {params['expression']!r} ({error})"
            raise TwinInputError(source, problem) from None
    return Rule(kind, params, source="declared", name=entry.get("name") or f"rule {position}")


def validate_declared(rules: list[Rule], real: pd.DataFrame, source: str = "rules") -> list[Rule]:
    """Check each declared rule against the real table: its columns exist and it holds on the real rows."""
    checked = []
    for rule in rules:
        label = f"{rule.name}: {rule.text}"
        unknown = [name for name in rule.columns if name not in real.columns]
        if unknown:
            raise TwinInputError(source, f"{label} names columns not in the table: {', '.join(map(str, unknown))}")
        p = rule.params
        numeric = {"order": rule.columns, "range": rule.columns, "formula": rule.columns}.get(rule.kind, [])
        if rule.kind == "fixed_when":
            numeric = [name for name, value in p["when"].items() if isinstance(value, dict)]
        not_numbers = [name for name in numeric if not pd.api.types.is_numeric_dtype(real[name])]
        if not_numbers:
            raise TwinInputError(source, f"{label}: {', '.join(not_numbers)} must be numeric")
        if rule.kind == "formula":
            p.setdefault("tolerance", _half_unit(real[p["target"]]))
        if rule.kind == "fixed_combinations":
            keys = combination_keys(real, p["columns"])
            counts = keys.value_counts()
            p["combinations"] = counts.index[counts >= 5].tolist() or counts.index[:1].tolist()
            p["dtypes"] = {name: str(real[name].dtype) for name in p["columns"]}
        applicable, holds = rule.check(real)
        if rule.kind == "fixed_when" and not applicable.any():
            raise TwinInputError(source, f"{label}: no real row has {p['when']}")
        count = int(applicable.sum())
        share = float(holds.sum() / count) if count else 1.0
        if share < 1 - CONTRADICTION:
            raise TwinInputError(source, f"{label} contradicts the data: it fails on {1 - share:.1%} of the real rows "
                                         f"({count - int(holds.sum())} of {count})")
        rule.real_share = round(share, 6)
        checked.append(rule)
    return checked


def _half_unit(series: pd.Series) -> float:
    from ..columns import count_decimals
    values = pd.to_numeric(series, errors="coerce").dropna().to_numpy(dtype=float)
    return 0.5 * 10.0 ** -count_decimals(values) * 1.01 if len(values) else 0.0
