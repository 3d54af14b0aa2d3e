"""Tamper-evident audit trail and lineage of every portfolio, in one DuckDB file.

`audit_log` is a SHA-256 hash chain: each entry's `entry_hash` covers its own content and the previous entry's
hash, so changing, inserting or deleting any entry breaks every later link and `verify()` names the first broken
entry. The code only appends: there is no update or delete. (Dropping the newest entries leaves a valid shorter
chain; publish `VerifyResult.head_hash` elsewhere, e.g. in run metadata, to detect that too.)

DuckDB allows one writer process per file, so every operation opens a short-lived connection, waits briefly
when another process holds the file, and appends inside a transaction under a per-file lock, so concurrent
appends from one process cannot fork the chain (the unique `prev_hash` column refuses a fork outright).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from twin_pipeline.tables import to_jsonable

OPERATIONS = (
    "UPLOAD_INGESTED",
    "CLONE_INITIATED",
    "MODEL_FITTED",
    "SAMPLE_GENERATED",
    "K_ANONYMITY_ENFORCED",
    "QUALITY_REPORTED",
    "RAW_DATA_DELETED",
    "PRIVACY_AUDITED",  # the attacker audit of a portfolio, after its twin was published
)
GENESIS_HASH = "0" * 64
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # UTC, microseconds: what DuckDB's TIMESTAMP stores exactly
HASHED_FIELDS = ("id", "operation", "portfolio", "data_hash", "metadata", "timestamp", "prev_hash")

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id BIGINT PRIMARY KEY,
    operation VARCHAR NOT NULL,
    portfolio VARCHAR NOT NULL,
    data_hash VARCHAR NOT NULL,
    metadata JSON NOT NULL,
    timestamp TIMESTAMP NOT NULL,
    prev_hash VARCHAR NOT NULL UNIQUE,
    entry_hash VARCHAR NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS lineage (
    portfolio VARCHAR NOT NULL,
    asset VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    input_hashes JSON NOT NULL,
    output_hash VARCHAR NOT NULL,
    code_version VARCHAR NOT NULL,
    parameters JSON NOT NULL,
    timestamp TIMESTAMP NOT NULL
);
"""

_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of recomputing the chain: `checked` entries were intact before `first_broken_id` (if any)."""

    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None
    head_hash: str = GENESIS_HASH  # entry_hash of the last intact entry


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, UTF-8, no NaN; what the hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of an entry's id, operation, portfolio, data_hash, metadata,
    timestamp (TIMESTAMP_FORMAT text) and prev_hash."""
    return hashlib.sha256(canonical_json({field: entry[field] for field in HASHED_FIELDS}).encode()).hexdigest()


def sha256_frame(frame: pd.DataFrame) -> str:
    """Stable hex digest of a DataFrame's content: column names, dtypes, row count and every value.

    Each column is hashed value by value with pandas' fixed-key SipHash (pd.util.hash_pandas_object), and those
    hashes, not the index, go into SHA-256: the same table gives the same digest in any process or session.
    """
    digest = hashlib.sha256()
    digest.update(canonical_json([[str(name), str(dtype)] for name, dtype in frame.dtypes.items()]).encode())
    digest.update(len(frame).to_bytes(8, "little"))
    for position in range(frame.shape[1]):
        digest.update(pd.util.hash_pandas_object(frame.iloc[:, position], index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _plain_json(value: Any, argument: str) -> Any:
    """A plain-JSON copy of a metadata-like argument: numpy values, arrays, timestamps and paths converted,
    NaN and infinities as null."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{argument} must be a mapping (a JSON object), got {type(value).__name__}")
    return to_jsonable(json.loads(json.dumps(value, default=_json_value)))


def _json_value(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    return str(value)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class AuditLog:
    """Append-only audit entries and lineage rows for all portfolios, stored at `db_path`."""

    def __init__(self, db_path: str | os.PathLike, lock_timeout: float = 10.0):
        self.path = Path(db_path).resolve()
        self.lock_timeout = lock_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; waits (up to lock_timeout) while another process holds the file."""
        deadline, delay = time.monotonic() + self.lock_timeout, 0.01
        while True:
            try:
                connection = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as error:
                if "lock" not in str(error).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"{self.path}: audit database still locked by another process after {self.lock_timeout:g} s"
                    ) from error
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        try:
            yield connection
        finally:
            connection.close()

    def _file_lock(self) -> threading.Lock:
        with _FILE_LOCKS_GUARD:
            return _FILE_LOCKS.setdefault(str(self.path), threading.Lock())

    def append(self, operation: str, portfolio: str, data_hash: str, metadata: Mapping | None = None) -> dict:
        """Add one entry at the head of the chain and return it (with its id and entry_hash)."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown audit operation {operation!r}; expected one of {', '.join(OPERATIONS)}")
        if not isinstance(portfolio, str) or not portfolio:
            raise ValueError(f"portfolio must be a non-empty string, got {portfolio!r}")
        if not isinstance(data_hash, str) or not HEX_DIGEST.fullmatch(data_hash):
            raise ValueError(f"data_hash must be a lowercase hex SHA-256 digest (64 characters), got {data_hash!r}")
        plain = _plain_json(metadata, "metadata")
        with self._file_lock(), self._connect() as db:
            db.begin()
            try:
                head = db.execute("SELECT id, entry_hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
                stamp = _utc_now()
                entry = {
                    "id": head[0] + 1 if head else 1,
                    "operation": operation,
                    "portfolio": portfolio,
                    "data_hash": data_hash,
                    "metadata": plain,
                    "timestamp": stamp.strftime(TIMESTAMP_FORMAT),
                    "prev_hash": head[1] if head else GENESIS_HASH,
                }
                entry["entry_hash"] = entry_hash(entry)
                db.execute(
                    "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [entry["id"], operation, portfolio, data_hash, canonical_json(plain), stamp,
                     entry["prev_hash"], entry["entry_hash"]],
                )
                db.commit()
            except BaseException:
                db.rollback()
                raise
        return entry

    def record_lineage(self, portfolio: str, asset: str, run_id: str, input_hashes: Mapping[str, str],
                       output_hash: str, code_version: str, parameters: Mapping | None = None) -> dict:
        """Record which inputs (by hash), code version and parameters produced an asset's output."""
        row = {
            "portfolio": portfolio,
            "asset": asset,
            "run_id": run_id,
            "input_hashes": _plain_json(input_hashes, "input_hashes"),
            "output_hash": output_hash,
            "code_version": code_version,
            "parameters": _plain_json(parameters, "parameters"),
            "timestamp": _utc_now(),
        }
        with self._connect() as db:
            db.execute(
                "INSERT INTO lineage VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [portfolio, asset, run_id, canonical_json(row["input_hashes"]), output_hash, code_version,
                 canonical_json(row["parameters"]), row["timestamp"]],
            )
        return row

    def verify(self) -> VerifyResult:
        """Recompute the chain from the first entry; stop at the first entry that is missing or does not match."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, operation, portfolio, data_hash, CAST(metadata AS VARCHAR), timestamp, prev_hash,"
                " entry_hash FROM audit_log ORDER BY id"
            ).fetchall()
        previous_hash, expected_id = GENESIS_HASH, 1
        for checked, row in enumerate(rows):
            entry = dict(zip(HASHED_FIELDS + ("entry_hash",), row))
            problem = None
            if entry["id"] != expected_id:
                problem = (f"entry {expected_id} is missing: entry {entry['id']} follows entry {expected_id - 1}"
                           if entry["id"] > expected_id else f"entry {entry['id']} appears out of order")
                entry["id"] = expected_id
            elif entry["prev_hash"] != previous_hash:
                problem = "prev_hash does not match the previous entry's hash (an entry was removed or replaced)"
            elif entry["operation"] not in OPERATIONS:
                problem = f"unknown operation {entry['operation']!r}"
            else:
                entry["metadata"] = json.loads(entry["metadata"])
                entry["timestamp"] = entry["timestamp"].strftime(TIMESTAMP_FORMAT)
                if entry_hash(entry) != entry["entry_hash"]:
                    problem = "entry_hash does not match the entry's content (the entry was altered)"
            if problem:
                return VerifyResult(False, checked, entry["id"], problem, previous_hash)
            previous_hash, expected_id = entry["entry_hash"], expected_id + 1
        return VerifyResult(True, len(rows), None, None, previous_hash)

    def entries(self, portfolio: str | None = None) -> pd.DataFrame:
        """The audit trail in order, optionally of one portfolio; metadata as dicts, timestamps in UTC."""
        frame = self._select("audit_log", "id", portfolio)
        frame["metadata"] = frame["metadata"].map(json.loads)
        return frame

    def lineage(self, portfolio: str | None = None) -> pd.DataFrame:
        """Lineage rows in the order recorded, optionally of one portfolio; hashes and parameters as dicts."""
        frame = self._select("lineage", "timestamp, rowid", portfolio)
        for column in ("input_hashes", "parameters"):
            frame[column] = frame[column].map(json.loads)
        return frame

    def _select(self, table: str, order: str, portfolio: str | None) -> pd.DataFrame:
        where = "WHERE portfolio = ?" if portfolio is not None else ""
        with self._connect() as db:
            frame = db.execute(f"SELECT * FROM {table} {where} ORDER BY {order}",
                               [portfolio] if portfolio is not None else []).df()
        frame["timestamp"] = pd.to_datetime(frame["timestamp"]).dt.tz_localize("UTC")
        return frame
