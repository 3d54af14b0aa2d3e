"""Portfolios as the API names them (`TWIN_<UTC timestamp>_<hex>`), read back from the Dagster instance and the
files the pipeline published: the run is the source of truth for status, the portfolio folder for figures.

A portfolio id maps to one Dagster partition, `twin_<timestamp>_<hex>-<hex of the upload's SHA-256>`
(`partitions.portfolio_key` of the upload linked under the portfolio's name), so each clone has its own
folder and two clones of the same upload with other parameters never overwrite each other.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pandas as pd

from ..defs.partitions import table_key
from ..defs.resources import TwinStorage
from ..quality import quality_report
from ..tables import read_table, to_jsonable
from . import uploads
from .runs import FILE_TAG, PORTFOLIO_TAG

PORTFOLIO_ID = re.compile(r"TWIN_\d{8}T\d{6}Z_[0-9a-f]{12}")
STATUS = {
    dg.DagsterRunStatus.NOT_STARTED: "PENDING", dg.DagsterRunStatus.QUEUED: "PENDING",
    dg.DagsterRunStatus.STARTING: "PENDING", dg.DagsterRunStatus.MANAGED: "PENDING",
    dg.DagsterRunStatus.STARTED: "RUNNING", dg.DagsterRunStatus.CANCELING: "RUNNING",
    dg.DagsterRunStatus.SUCCESS: "COMPLETED", dg.DagsterRunStatus.FAILURE: "FAILED",
    dg.DagsterRunStatus.CANCELED: "FAILED",
}
# What a portfolio publishes, by the name in its download URL: only these, only after its run succeeded.
DOWNLOADS = {"synthetic": ("synthetic.csv", "synthetic.parquet"), "quality_report": ("quality_report.json",),
             "privacy_report": ("privacy_report.json",), "report_html": ("report.html",)}
MEDIA_TYPES = {".csv": "text/csv", ".parquet": "application/vnd.apache.parquet", ".json": "application/json",
               ".html": "text/html"}


COMPARE_MAX_BYTES = 256 << 20  # validate reads both tables in the server; larger ones are refused (413)


class NotFound(Exception):
    """No such portfolio (or file): the API answers 404 with this message."""


class TooLarge(Exception):
    """A table too large to compare on request: the API answers 413 with this message."""


def new_portfolio_id() -> str:
    return f"TWIN_{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}_{secrets.token_hex(6)}"


def partition_for(portfolio_id: str, upload: Path) -> str:
    """The partition of a clone of `upload`, named as the run's raw_upload step will find it (partitions.py)."""
    return table_key(f"{portfolio_id}{upload.suffix}", upload)


def check_id(portfolio_id: str) -> str:
    if not PORTFOLIO_ID.fullmatch(portfolio_id or ""):
        raise NotFound("portfolio ids look like TWIN_20250101T120000Z_0123456789ab")
    return portfolio_id


def run_of(instance: dg.DagsterInstance, portfolio_id: str) -> dg.DagsterRun:
    """The newest clone run of a portfolio; NotFound for a malformed or unknown id."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={PORTFOLIO_TAG: check_id(portfolio_id)}), limit=1)
    if not runs:
        raise NotFound(f"no portfolio {portfolio_id}")
    return runs[0]


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _scalars(section) -> dict:
    """The single figures of a report section (numbers, text, flags), leaving out its per-column tables."""
    if not isinstance(section, dict):
        return {}
    return {key: value for key, value in section.items() if isinstance(value, (int, float, str, bool)) or value is None}


def check_verdicts(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """The asset checks evaluated in a run: name, asset, passed, severity, their figures."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    verdicts = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        verdicts.append({"name": evaluation.check_name, "asset": evaluation.asset_key.to_user_string(),
                         "passed": evaluation.passed, "severity": evaluation.severity.value,
                         "metadata": {key: getattr(value, "value", value) for key, value in evaluation.metadata.items()}})
    return verdicts


def failure_of(instance: dg.DagsterInstance, run_id: str) -> dict:
    """Where and why a run failed: the first failed step and its error, else the run's own failure message."""
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records:
        event = record.event_log_entry.dagster_event
        error = event.step_failure_data.error if event.step_failure_data else None
        message = (error.message.strip() if error else None) or record.event_log_entry.user_message
        return {"failed_step": event.step_key, "error": _root_cause(error) or message}
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records:
        return {"failed_step": None, "error": record.event_log_entry.user_message or record.event_log_entry.message}
    return {"failed_step": None, "error": "the run was canceled or failed without an error event"}


def _root_cause(error) -> str | None:
    """Dagster wraps a step's exception ('Error occurred while executing op ...'); the user wants the cause,
    named by its class without the module path."""
    while error is not None and error.cause is not None:
        error = error.cause
    if error is None:
        return None
    return re.sub(r"^(?:\w+\.)+(\w+: )", r"\1", error.message.strip())


def stats(storage: TwinStorage, partition: str, verdicts: list[dict]) -> dict:
    """The seed's stats_json from the published reports and the run's checks."""
    folder = storage.portfolio_dir(partition)
    quality = _read_json(folder / "quality_report.json") or {}
    privacy = _read_json(folder / "privacy_report.json") or {}
    blocking = [check for check in verdicts if check["severity"] == "ERROR"]
    figures = {
        "quality_score": quality.get("similarity_score"), "correlation_error": quality.get("correlation_error"),
        "k_anonymity": privacy.get("k"), "target_k": privacy.get("target_k"),
        "exact_copies": privacy.get("exact_matches"),
        "bank_compliant": bool(blocking) and all(check["passed"] for check in blocking),
    }
    holdout, utility = quality.get("holdout") or {}, quality.get("utility") or {}
    figures.update(quality_vs_ceiling=holdout.get("quality_vs_ceiling"), holdout=_scalars(holdout) or None,
                   tstr=_scalars(utility) or None, rules=(quality.get("rules") or {}).get("summary"))
    return figures


def download_urls(storage: TwinStorage, partition: str, portfolio_id: str) -> dict:
    """The URL of each published file; null for one this portfolio has not (report.html before the report
    exists, say)."""
    folder = storage.portfolio_dir(partition)
    present = lambda files: next((name for name in files if (folder / name).is_file()), None)  # noqa: E731
    return {name: f"/api/fintech/download/{portfolio_id}/{file}" if (file := present(files)) else None
            for name, files in DOWNLOADS.items()}


def describe(instance: dg.DagsterInstance, storage: TwinStorage, portfolio_id: str) -> dict:
    """GET /portfolio/{id}: status from the run, figures from the published reports, failure details if failed."""
    run = run_of(instance, portfolio_id)
    status = STATUS.get(run.status, "PENDING")
    partition = run.tags["dagster/partition"]
    answer = {"id": portfolio_id, "status": status, "source": "CLONE", "run_id": run.run_id,
              "dagster_partition": partition, "file_id": run.tags.get(FILE_TAG),
              "num_borrowers": None, "stats_json": None, "download_urls": None}
    if status == "COMPLETED":
        verdicts = check_verdicts(instance, run.run_id)
        privacy = _read_json(storage.portfolio_dir(partition) / "privacy_report.json") or {}
        answer.update(num_borrowers=privacy.get("rows"), stats_json=stats(storage, partition, verdicts),
                      download_urls=download_urls(storage, partition, portfolio_id))
    elif status == "FAILED":
        answer.update(failure_of(instance, run.run_id))
    return answer


def published_file(instance: dg.DagsterInstance, storage: TwinStorage, portfolio_id: str, name: str) -> Path:
    """The file `name` of a completed portfolio, if it is one the portfolio publishes; NotFound otherwise."""
    allowed = {file for files in DOWNLOADS.values() for file in files}
    run = run_of(instance, portfolio_id)
    if name not in allowed or run.status != dg.DagsterRunStatus.SUCCESS:
        raise NotFound(f"portfolio {portfolio_id} has no published file {name!r}")
    path = storage.portfolio_dir(run.tags["dagster/partition"]) / name
    if not path.is_file():
        raise NotFound(f"portfolio {portfolio_id} has no published file {name!r}")
    return path


def _completed(instance: dg.DagsterInstance, portfolio_id: str) -> dg.DagsterRun:
    run = run_of(instance, portfolio_id)
    status = STATUS.get(run.status, "PENDING")
    if status != "COMPLETED":
        raise LookupError(f"{portfolio_id} is {status}: it can be compared once its run has completed")
    return run


def _twin_file(storage: TwinStorage, run: dg.DagsterRun) -> Path:
    folder = storage.portfolio_dir(run.tags["dagster/partition"])
    files = [folder / name for name in reversed(DOWNLOADS["synthetic"])]  # Parquet first: exact, typed
    return next((path for path in files if path.is_file()), files[-1])


def _table(instance: dg.DagsterInstance, storage: TwinStorage, identifier: str) -> tuple[pd.DataFrame, dict]:
    """The table an id names -- an upload's real table (RAW_...) or a completed portfolio's published twin --
    and the clone settings that matter to the comparison (primary key, direct identifiers)."""
    if identifier.startswith("RAW_"):
        path, settings = uploads.describe(storage.root, identifier)["path"], {}
    else:
        run = _completed(instance, identifier)
        path = _twin_file(storage, run)
        config = (run.run_config.get("ops", {}).get("raw_upload") or {}).get("config") or {}
        privacy = _read_json(path.with_name("privacy_report.json")) or {}
        settings = {"primary_key": config.get("primary_key"),
                    "identifiers": list(privacy.get("direct_identifiers") or [])}
    if path.stat().st_size > COMPARE_MAX_BYTES:
        raise TooLarge(f"{identifier} is {path.stat().st_size:,} bytes; tables of up to {COMPARE_MAX_BYTES:,} bytes "
                       "are compared on request (a twin's own report compares it with its upload at any size)")
    return read_table(path), settings


def compatible_columns(original: pd.DataFrame, synthetic: pd.DataFrame) -> list[str]:
    """The columns two tables are compared on: every column of the synthetic one must be in the original with
    the same nature (number or not); the original may have more (identifiers a twin dropped). ValueError names
    what does not match."""
    foreign = [name for name in synthetic.columns if name not in original.columns]
    if foreign:
        shown = ", ".join(map(str, original.columns[:10])) + (", ..." if original.shape[1] > 10 else "")
        raise ValueError(f"incompatible columns: {', '.join(map(str, foreign[:10]))} not in the original table "
                         f"(its columns: {shown})")
    numeric = pd.api.types.is_numeric_dtype
    mixed = [name for name in synthetic.columns if original[name].notna().any() and synthetic[name].notna().any()
             and numeric(original[name]) != numeric(synthetic[name])]
    if mixed:
        raise ValueError(f"incompatible columns: {', '.join(map(str, mixed[:10]))} hold numbers in one table and "
                         "text in the other")
    return list(synthetic.columns)


def compare(instance: dg.DagsterInstance, storage: TwinStorage, original_id: str, synthetic_id: str) -> dict:
    """POST /validate: the quality of the twin `synthetic_id` measured against `original_id` -- an upload
    (`RAW_...`) or any completed portfolio's twin -- with the quality checks' verdicts on that pair, beside the
    verdicts the twin's own run recorded (against its own upload)."""
    from ..defs.checks import MAX_CORRELATION_ERROR, MIN_SIMILARITY

    synthetic, synthetic_settings = _table(instance, storage, synthetic_id)
    original, original_settings = _table(instance, storage, original_id)
    columns = compatible_columns(original, synthetic)
    primary_key = synthetic_settings.get("primary_key") or original_settings.get("primary_key")
    identifiers = {name for settings in (synthetic_settings, original_settings)
                   for name in settings.get("identifiers", [])}
    kinds = {name: "identifier" for name in identifiers if name in columns} or None
    key = primary_key if primary_key in columns else None
    report = to_jsonable(quality_report(original[columns], synthetic, primary_key=key, column_kinds=kinds))  # NaN: null
    score, error = report["similarity_score"], report["correlation_error"]
    verdicts = [
        {"name": "similarity_score_at_least_85", "passed": score >= MIN_SIMILARITY, "value": score,
         "threshold": MIN_SIMILARITY},
        {"name": "correlation_error_at_most_0_10", "passed": error is None or error <= MAX_CORRELATION_ERROR,
         "value": error, "threshold": MAX_CORRELATION_ERROR}]
    run = run_of(instance, synthetic_id)
    checks = check_verdicts(instance, run.run_id)
    own_checks_passed = bool(checks) and all(check["passed"] for check in checks if check["severity"] == "ERROR")
    return {"original_portfolio_id": original_id, "synthetic_portfolio_id": synthetic_id,
            "dagster_partition": run.tags["dagster/partition"],
            "passed": own_checks_passed and all(verdict["passed"] for verdict in verdicts),
            "columns_compared": len(columns),
            "original_only_columns": [name for name in original.columns if name not in columns],
            "rows": {"original": len(original), "synthetic": len(synthetic)},
            "verdicts": verdicts, "quality": {**_scalars(report), "ks_statistics": report.get("ks_statistics"),
                                              "categorical_match": report.get("categorical_match")},
            "checks": checks, "stats_json": stats(storage, run.tags["dagster/partition"], checks)}
