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

from ..defs.partitions import portfolio_key
from ..defs.resources import TwinStorage
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


class NotFound(Exception):
    """No such portfolio (or file): the API answers 404 with this message."""


def new_portfolio_id() -> str:
    return f"TWIN_{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}_{secrets.token_hex(6)}"


def partition_for(portfolio_id: str, upload_sha256: str) -> str:
    return portfolio_key(f"{portfolio_id}.csv", upload_sha256)


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


def compare(instance: dg.DagsterInstance, storage: TwinStorage, original_id: str, synthetic_id: str) -> dict:
    """POST /validate: the twin `synthetic_id` against the table it was cloned from, named by its upload
    (`RAW_...`) or by another portfolio of the same upload: the checks' verdicts and the report's figures."""
    run = run_of(instance, synthetic_id)
    source = run.tags.get(FILE_TAG)
    original_file = original_id if original_id.startswith("RAW_") else run_of(instance, original_id).tags.get(FILE_TAG)
    if original_file != source:
        raise ValueError(f"{synthetic_id} was cloned from upload {source}, not from {original_id}")
    status = STATUS.get(run.status, "PENDING")
    if status != "COMPLETED":
        raise LookupError(f"{synthetic_id} is {status}: its quality is measured when the run has completed")
    partition = run.tags["dagster/partition"]
    folder = storage.portfolio_dir(partition)
    quality = _read_json(folder / "quality_report.json") or {}
    privacy = _read_json(folder / "privacy_report.json") or {}
    verdicts = check_verdicts(instance, run.run_id)
    return {"original_portfolio_id": original_id, "synthetic_portfolio_id": synthetic_id, "upload": source,
            "passed": all(check["passed"] for check in verdicts if check["severity"] == "ERROR") and bool(verdicts),
            "stats_json": stats(storage, partition, verdicts), "checks": verdicts,
            "quality": {**_scalars(quality), "ks_statistics": quality.get("ks_statistics"),
                        "categorical_match": quality.get("categorical_match")},
            "privacy": _scalars(privacy)}
