"""What a user can ask of one clone, and the one place that checks it.

The CLI flags, the Dagster run config, a landing sidecar, a bundle's relationships.json and the HTTP API all
build a `CloneOptions` and call `validate_options` (without the table: a bad sidecar is rejected before any run)
and `resolve_options` (with the table: names exist, the key is unique, how many rows to make), so every entry
point gives the same answer to the same request.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

from .defaults import DEFAULT_K, DEFAULT_MAX_SUPPRESSION, DEFAULT_SEED
from .errors import TwinInputError

if TYPE_CHECKING:  # the command line parses its flags before pandas is loaded
    import pandas as pd

MAX_ROWS = int(os.environ.get("TWIN_MAX_ROWS", 10**9))  # a typo of three zeros should not fill the disk
GENERALIZATIONS = ("bands",)
OUTPUT_FORMATS = ("csv", "parquet")
DEFAULT_AUDIT_BUDGET = 60.0


@dataclass
class CloneOptions:
    """What a user can set for one clone; every field has a sensible default."""

    rows: int | None = None
    scale: float | None = None  # rows = scale x the real table's rows; default 1x
    primary_key: str | None = None
    k: int = DEFAULT_K
    # None: detected by name and kind (pipeline.pin_quasi_identifiers records them as {column: why chosen});
    # a list: given by the user
    quasi_identifiers: list[str] | dict[str, str] | None = None
    generalize: str | None = None  # "bands" to generalise numeric quasi-identifiers into bands
    max_suppression: float = DEFAULT_MAX_SUPPRESSION
    seed: int | None = DEFAULT_SEED
    output_format: str | None = None  # "csv" or "parquet"; None: by size
    workers: int = 1  # processes sampling and protecting shards
    column_kinds: dict[str, str] = field(default_factory=dict)
    rules: str | dict | list | None = None  # declared business rules: a JSON/YAML file path, or the rules inline
    drop_identifiers: bool = False  # direct identifiers (SSN, e-mail, ...) dropped instead of freshly minted
    target: str | None = None  # the column TSTR predicts; None: a default / status / approval column by name
    escape_formulas: bool = True  # CSV outputs: text cells a spreadsheet would run get a leading apostrophe
    audit_budget: float = DEFAULT_AUDIT_BUDGET  # seconds the attacker audit may take (after the twin is made)
    secrets: list[str] | None = None  # columns the audit's attacker tries to infer; None: target + amounts
    epsilon: float | None = None  # (epsilon, delta)-differentially private fit; None: differencing noise only

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> CloneOptions:
        """Options from a settings mapping (sidecar, manifest, request body); unknown names are an error."""
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TwinInputError(None, f"unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**values)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_options(options: CloneOptions, source=None) -> CloneOptions:
    """Check every field that needs no table; raise a TwinInputError naming `source` and the field."""
    from .engine.transformers import KINDS

    def bad(name: str, problem: str):
        raise TwinInputError(source, f"{name} {problem}")

    if options.rows is not None and options.scale is not None:
        bad("rows/scale", "are exclusive: give a number of rows or a scale, not both")
    if options.rows is not None and not (_is_int(options.rows) and 1 <= options.rows <= MAX_ROWS):
        bad("rows", f"must be a whole number from 1 to {MAX_ROWS:,} (TWIN_MAX_ROWS), got {options.rows!r}")
    if options.scale is not None and not (isinstance(options.scale, (int, float)) and not isinstance(options.scale, bool)
                                          and math.isfinite(options.scale) and options.scale > 0):
        bad("scale", f"must be a positive number, got {options.scale!r}")
    if not _is_int(options.k) or options.k < 2:
        bad("k", f"must be a whole number of at least 2 (k = 1 protects no one), got {options.k!r}")
    if not isinstance(options.max_suppression, (int, float)) or not 0 <= options.max_suppression < 1:
        bad("max_suppression", f"must be a share from 0 to below 1, got {options.max_suppression!r}")
    if options.generalize is not None and options.generalize not in GENERALIZATIONS:
        bad("generalize", f"must be one of {', '.join(GENERALIZATIONS)} (or unset), got {options.generalize!r}")
    if options.output_format is not None and options.output_format not in OUTPUT_FORMATS:
        bad("output_format", f"must be one of {', '.join(OUTPUT_FORMATS)}, got {options.output_format!r}")
    if options.seed is not None and not (_is_int(options.seed) and 0 <= options.seed < 2**63):
        bad("seed", f"must be a whole number from 0 to 2**63 - 1, got {options.seed!r}")
    if options.epsilon is not None and not (isinstance(options.epsilon, (int, float))
                                            and not isinstance(options.epsilon, bool)
                                            and math.isfinite(options.epsilon) and options.epsilon > 0):
        bad("epsilon", f"must be a positive number (the privacy budget), got {options.epsilon!r}")
    if not _is_int(options.workers) or options.workers < 1:
        bad("workers", f"must be at least 1, got {options.workers!r}")
    if options.primary_key is not None and not isinstance(options.primary_key, str):
        bad("primary_key", f"must be a column name, got {options.primary_key!r}")
    if options.target is not None and not isinstance(options.target, str):
        bad("target", f"must be a column name, got {options.target!r}")
    qis = options.quasi_identifiers
    texts = [*qis, *qis.values()] if isinstance(qis, dict) else qis  # detected ones: {column: why chosen}
    if qis is not None and not (isinstance(texts, list) and all(isinstance(text, str) for text in texts)):
        bad("quasi_identifiers", f"must be a list of column names, got {qis!r}")
    if not isinstance(options.drop_identifiers, bool):
        bad("drop_identifiers", f"must be true or false, got {options.drop_identifiers!r}")
    if not isinstance(options.escape_formulas, bool):
        bad("escape_formulas", f"must be true or false, got {options.escape_formulas!r}")
    if not (isinstance(options.audit_budget, (int, float)) and not isinstance(options.audit_budget, bool)
            and math.isfinite(options.audit_budget) and options.audit_budget > 0):
        bad("audit_budget", f"must be a positive number of seconds, got {options.audit_budget!r}")
    if options.secrets is not None and not (isinstance(options.secrets, list)
                                            and all(isinstance(name, str) for name in options.secrets)):
        bad("secrets", f"must be a list of column names, got {options.secrets!r}")
    if not isinstance(options.column_kinds, dict):
        bad("column_kinds", f"must map column names to kinds, got {options.column_kinds!r}")
    wrong = sorted(f"{name}={kind}" for name, kind in options.column_kinds.items() if kind not in KINDS)
    if wrong:
        bad("column_kinds", f"has unknown kind(s) {', '.join(wrong)}; expected one of {', '.join(KINDS)}")
    if options.rules is not None:
        from .engine.rules import load_declared
        if not isinstance(options.rules, (str, dict, list)):
            bad("rules", f"must be a rules file path or a list of rules, got {options.rules!r}")
        load_declared(options.rules, source="rules" if source is None else str(source))
    return options


def target_rows(n_real: int, options: CloneOptions) -> int:
    """How many synthetic rows to make: `rows`, or `scale` x the real rows, or as many as the real table."""
    if options.rows is not None:
        return int(options.rows)
    if options.scale is not None:
        rows = max(1, int(round(n_real * options.scale)))
        if rows > MAX_ROWS:
            raise TwinInputError(None, f"scale {options.scale} asks for {rows:,} rows, more than the limit "
                                       f"of {MAX_ROWS:,} (TWIN_MAX_ROWS)")
        return rows
    return n_real


def resolve_options(real: pd.DataFrame, options: CloneOptions, source=None) -> tuple[CloneOptions, int]:
    """Validate `options` against the table they are for; returns them and the number of rows to generate.

    Every column the options name must exist, and the primary key must be unique and non-null."""
    validate_options(options, source)
    columns = set(real.columns)
    named = {"primary_key": [options.primary_key] if options.primary_key else [],
             "quasi_identifiers": options.quasi_identifiers or [], "column_kinds": list(options.column_kinds),
             "target": [options.target] if options.target else [],
             "secrets": options.secrets or []}
    for setting, names in named.items():
        missing = [name for name in names if name not in columns]
        if missing:
            raise TwinInputError(source, f"{setting} names unknown column(s) {', '.join(map(str, missing))} "
                                         f"(columns: {', '.join(map(str, real.columns))})")
    if options.rules is not None:
        from .engine.rules import load_declared, validate_declared
        rules_source = options.rules if isinstance(options.rules, str) else source
        validate_declared(load_declared(options.rules), real, source=rules_source)
    key = options.primary_key
    if key is not None and (real[key].isna().any() or real[key].duplicated().any()):
        raise TwinInputError(source, f"primary key {key!r} is not unique and non-null on every row")
    try:
        return options, target_rows(len(real), options)
    except TwinInputError as error:
        raise error.naming(source) from None
