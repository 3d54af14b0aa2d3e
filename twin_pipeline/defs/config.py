"""The run config of a clone: what the launchpad shows, what a sidecar `<file>.json` may set.

The fields mirror `pipeline.CloneOptions` (the CLI's options) so a run from the UI and `twin clone` mean the
same thing; `source`, `delete_raw` and `shard_rows` are the orchestration-only extras, and `workers` is left
out: in Dagster, parallelism belongs to the executor (EXECUTOR_OWNED), one step per shard. Only `raw_upload`
takes this config: it resolves the parameters once and records them in the portfolio's manifest, so every
later asset (and a re-execution of just one of them) uses exactly the parameters the upload was cloned with.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import dagster as dg
import pandas as pd
from pydantic import Field, ValidationError

from ..engine.rules import read_rules_file
from ..errors import TwinInputError
from ..options import (DEFAULT_AUDIT_BUDGET, DEFAULT_K, DEFAULT_MAX_SUPPRESSION, DEFAULT_SEED, CloneOptions, resolve_options,
                       validate_options)
from ..shards import SHARD_ROWS
from ..tables import open_regular


EXECUTOR_OWNED = {"workers"}


class CloneConfig(dg.Config):
    """Parameters of one clone; every field has a default."""

    source: str = Field(default="", description="File to ingest; empty: the portfolio's kept raw copy (re-runs)")
    rows: Optional[int] = Field(default=None, description="Synthetic rows to generate (give rows or scale)")
    scale: Optional[float] = Field(default=None, description="Synthetic rows = scale x real rows; default 1x")
    primary_key: Optional[str] = Field(default=None, description="Column with a unique id per row (not modelled)")
    k: int = Field(default=DEFAULT_K, description="k-anonymity target: each quasi-identifier combination >= k rows")
    quasi_identifiers: Optional[list[str]] = Field(default=None, description="Columns an attacker may know; "
                                                   "default: detected by name and kind")
    generalize: Optional[str] = Field(default=None, description='"bands" to generalise numeric quasi-identifiers')
    max_suppression: float = Field(default=DEFAULT_MAX_SUPPRESSION, description="Largest share of rows k-anonymity may drop")
    seed: Optional[int] = Field(default=DEFAULT_SEED, description="Random seed; the same seed gives the same twin")
    output_format: Optional[str] = Field(default=None, description='"csv" or "parquet"; default by size')
    column_kinds: dict[str, str] = Field(default_factory=dict, description="Override detected column kinds")
    rules: Optional[str] = Field(default=None, description="Declared business rules: a JSON/YAML rules file, or "
                                 "the rules as JSON text (a sidecar may give the list itself)")
    target: Optional[str] = Field(default=None, description="Column the TSTR utility model predicts; empty: a "
                                                            "column named like default, status, approval or bad")
    drop_identifiers: bool = Field(default=False, description="Drop direct identifiers (SSN, e-mail, phone, name, "
                                   "address, account or card number) instead of minting fresh values of their format")
    escape_formulas: bool = Field(default=True, description="CSV output: prefix text cells a spreadsheet would run "
                                  "as a formula (= + - @ tab CR) with an apostrophe (OWASP); Parquet is unchanged")
    audit_budget: float = Field(default=DEFAULT_AUDIT_BUDGET, description="Seconds the attacker audit (asset "
                                "privacy_audit) may take; stages that would start later are reported as not run")
    secrets: Optional[list[str]] = Field(default=None, description="Columns the audit's attacker tries to infer; "
                                         "default: the target column and the most sensitive amounts")
    epsilon: Optional[float] = Field(default=None, description="Fit with (epsilon, 1e-6)-differential privacy; "
                                     "default: no DP (the model still carries noise against differencing)")
    delete_raw: bool = Field(default=False, description="Delete the raw upload once the last step that needs "
                                                        "real rows has run (audited as RAW_DATA_DELETED)")
    shard_rows: int = Field(default=SHARD_ROWS, ge=1, description="Rows per shard: each shard is sampled and "
                            "protected in its own step; part of the result (shard seeds), so recorded with it")

    def to_options(self) -> CloneOptions:
        """The clone options; a rules file is read here, so the run records the rules, not a path."""
        fields = self.model_dump()
        rules = fields.get("rules")
        if rules:
            fields["rules"] = json.loads(rules) if rules.lstrip()[:1] in ("[", "{") else read_rules_file(rules)
        return CloneOptions(**{name: fields[name] for name in CloneOptions.__dataclass_fields__ if name in fields})


def sidecar_of(table: Path) -> Path | None:
    """The settings file beside a landed table: `<file>.json` (loans.csv.json) or `<stem>.json` (loans.json)."""
    for candidate in (table.with_name(table.name + ".json"), table.with_suffix(".json")):
        if os.path.lexists(candidate) and not candidate.is_dir():  # a link is found (and then refused, not read)
            return candidate
    return None


MAX_SETTINGS_BYTES = 64 << 10  # a settings file is a few lines; a bigger one is not settings


def read_settings(path: Path) -> object:
    """A small JSON settings file, read without following a link; any problem (too big, nested 100,000 deep, a
    5,000-digit number, not UTF-8) is a TwinInputError naming it."""
    try:
        with open_regular(path) as handle:
            raw = handle.read(MAX_SETTINGS_BYTES + 1)
        if len(raw) > MAX_SETTINGS_BYTES:
            raise TwinInputError(path, f"is larger than {MAX_SETTINGS_BYTES >> 10} KB: not a settings file")
        return json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:  # ValueError: JSON, huge ints
        if isinstance(error, TwinInputError):
            raise
        problem = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:200]
        raise TwinInputError(path, f"is not a readable JSON settings file ({problem})") from None


def config_for_landed_file(table: Path) -> CloneConfig:
    """The run config of a landed table: its sidecar's settings (if any) with `source` set to the table."""
    settings: dict = {}
    sidecar = sidecar_of(table)
    if sidecar is not None:
        settings = read_settings(sidecar)
        if not isinstance(settings, dict):
            raise TwinInputError(sidecar, "must hold a JSON object of clone settings")
        unknown = sorted(set(settings) - (set(CloneConfig.model_fields) - {"source"}))
        if unknown:
            allowed = ", ".join(name for name in CloneConfig.model_fields if name != "source")
            raise TwinInputError(sidecar, f"unknown setting(s) {', '.join(unknown)}; allowed: {allowed}")
        if isinstance(settings.get("rules"), (list, dict)):  # the rules themselves, in the sidecar
            settings["rules"] = json.dumps(settings["rules"])
        elif isinstance(settings.get("rules"), str) and not Path(settings["rules"]).is_absolute():
            settings["rules"] = str(sidecar.parent / settings["rules"])  # a rules file beside the sidecar
    try:
        config = CloneConfig(**settings, source=str(table))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise TwinInputError(sidecar, f"invalid settings: {problems}") from None
    validate_options(config.to_options(), sidecar or table)
    return config


def check_request(real: pd.DataFrame, options: CloneOptions, source: str | Path) -> int:
    """Fail early, naming the file, when the parameters do not fit the table; returns the rows to generate."""
    return resolve_options(real, options, source)[1]
