"""Tamper-evident audit trail and lineage of every portfolio, in one DuckDB file.

`audit_log` is a SHA-256 hash chain: each entry's `entry_hash` covers its own content and the previous entry's
hash, so changing, inserting or deleting any entry breaks every later link and `verify()` names the first broken
entry. Lineage rows are chained the same way. The code only appends: there is no update or delete.

A chain alone cannot show that its newest entries were dropped, or that someone with write access recomputed
it, so after every append the head of both chains (entry count and hash) is also appended to a head file
outside DuckDB (`<db>.heads`, one JSON line per append, opened O_APPEND and fsynced; each line carries an
HMAC-SHA256 when $TWIN_AUDIT_KEY is set, so without the key a head cannot be forged either). `verify()` checks
the database against every recorded head: fewer entries than the last head is truncation, a different hash at
a recorded position is a rewrite, entries beyond the last head are forged (appended outside this module).
The IO manager also records the head in Dagster's event log (asset metadata `audit_head`).

DuckDB allows one process per file, so every operation opens a short-lived connection while holding an exclusive
lock on `<db>.lock` (flock, taken per call: it excludes other threads and processes alike), waiting for it up to
`lock_timeout`, then a TimeoutError naming the file: never a hang. DuckDB's own lock alone was not enough: in one
run of three processes appending at once (polling DuckDB's lock), one append was missing afterwards although every
process had returned normally (not reproduced in 25 reruns), so no two AuditLog connections race for the file. Appends run inside a transaction, and the unique `prev_hash` column
refuses a fork outright. This wait is what serialises the audit writes of concurrent Dagster steps and runs: no
concurrency pool holds their other work.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import fcntl
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
    "DOWNLOAD",  # a published file served by the REST API
    "STATUS_READ",  # a portfolio's status served by the REST API
    "VALIDATED",  # a comparison of two tables served by the REST API
    "PRIVACY_AUDITED",  # the attacker audit of a portfolio, after its twin was published
)
GENESIS_HASH = "0" * 64
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # UTC, microseconds: what DuckDB's TIMESTAMP stores exactly
HASHED_FIELDS = ("id", "operation", "portfolio", "data_hash", "metadata", "timestamp", "prev_hash")
LINEAGE_FIELDS = ("id", "portfolio", "asset", "run_id", "input_hashes", "output_hash", "code_version", "parameters",
                  "timestamp", "prev_hash")
HEADS_SUFFIX = ".heads"
LOCK_SUFFIX = ".lock"  # every AuditLog connection is made under an exclusive flock of <db>.lock
KEY_VARIABLE = "TWIN_AUDIT_KEY"

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
    id BIGINT,
    portfolio VARCHAR NOT NULL,
    asset VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    input_hashes JSON NOT NULL,
    output_hash VARCHAR NOT NULL,
    code_version VARCHAR NOT NULL,
    parameters JSON NOT NULL,
    timestamp TIMESTAMP NOT NULL,
    prev_hash VARCHAR UNIQUE,
    row_hash VARCHAR UNIQUE
);
"""



@dataclass(frozen=True)
class VerifyResult:
    """Outcome of recomputing the chain: `checked` entries were intact before `first_broken_id` (if any)."""

    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None
    head_hash: str = GENESIS_HASH  # entry_hash of the last intact entry
    lineage_checked: int = 0
    anchored_entries: int | None = None  # the entry count of the last recorded head (None: no head file)


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, UTF-8, no NaN; what the hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of an entry's id, operation, portfolio, data_hash, metadata,
    timestamp (TIMESTAMP_FORMAT text) and prev_hash."""
    return hashlib.sha256(canonical_json({field: entry[field] for field in HASHED_FIELDS}).encode()).hexdigest()


def lineage_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a lineage row's fields (LINEAGE_FIELDS, timestamp as TIMESTAMP_FORMAT text)."""
    return hashlib.sha256(canonical_json({field: row[field] for field in LINEAGE_FIELDS}).encode()).hexdigest()


def _head_mac(head: Mapping[str, Any]) -> str | None:
    key = os.environ.get(KEY_VARIABLE)
    if not key:
        return None
    body = canonical_json({name: value for name, value in head.items() if name != "mac"})
    return hmac.new(key.encode(), body.encode(), hashlib.sha256).hexdigest()


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

    def __init__(self, db_path: str | os.PathLike, lock_timeout: float = 60.0):
        self.path = Path(db_path).resolve()
        self.lock_timeout = lock_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection, made and used under the exclusive lock file; waits (up to lock_timeout) while
        another thread or process holds it, or (a process not using AuditLog) the database file itself."""
        deadline = time.monotonic() + self.lock_timeout
        lock = os.open(self.path.with_name(self.path.name + LOCK_SUFFIX), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            self._wait(deadline, lambda: fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB), BlockingIOError)
            connection = self._wait(deadline, lambda: duckdb.connect(str(self.path)), duckdb.IOException)
            try:
                yield connection
            finally:
                connection.close()  # before the lock file is closed, which releases the lock
        finally:
            os.close(lock)

    def _wait(self, deadline: float, attempt, busy: type[Exception]):
        """`attempt()` again (backing off to 0.25 s) while it raises `busy` for a lock, until `deadline`."""
        delay = 0.01
        while True:
            try:
                return attempt()
            except busy as error:
                if busy is duckdb.IOException and "lock" not in str(error).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"{self.path}: audit database still locked by another process after {self.lock_timeout:g} s"
                    ) from error
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def append(self, operation: str, portfolio: str, data_hash: str, metadata: Mapping | None = None) -> dict:
        """Add one entry at the head of the chain and return it (with its id and entry_hash)."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown audit operation {operation!r}; expected one of {', '.join(OPERATIONS)}")
        if not isinstance(portfolio, str) or not portfolio:
            raise ValueError(f"portfolio must be a non-empty string, got {portfolio!r}")
        if not isinstance(data_hash, str) or not HEX_DIGEST.fullmatch(data_hash):
            raise ValueError(f"data_hash must be a lowercase hex SHA-256 digest (64 characters), got {data_hash!r}")
        plain = _plain_json(metadata, "metadata")
        with self._connect() as db:
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
            self._anchor(db)  # while this process still holds the database: heads are written in chain order
        return entry

    @property
    def heads_path(self) -> Path:
        return self.path.with_name(self.path.name + HEADS_SUFFIX)

    def _anchor(self, db: duckdb.DuckDBPyConnection) -> dict:
        """Append the current head of both chains to the head file (O_APPEND, fsync)."""
        entries, entry = db.execute("SELECT count(*), max_by(entry_hash, id) FROM audit_log").fetchone()
        rows, row = db.execute("SELECT count(*), max_by(row_hash, id) FROM lineage").fetchone()
        head = {"entries": entries, "entry_hash": entry or GENESIS_HASH, "lineage": rows,
                "lineage_hash": row or GENESIS_HASH, "at": _utc_now().strftime(TIMESTAMP_FORMAT)}
        mac = _head_mac(head)
        if mac:
            head["mac"] = mac
        descriptor = os.open(self.heads_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, (canonical_json(head) + "\n").encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return head

    def head(self) -> dict:
        """The chains' current head (entry count and hash, lineage count and hash), as recorded last."""
        heads = self._heads()
        return heads[-1] if heads else {"entries": 0, "entry_hash": GENESIS_HASH, "lineage": 0,
                                        "lineage_hash": GENESIS_HASH}

    def _heads(self) -> list[dict]:
        if not self.heads_path.exists():
            return []
        return [json.loads(line) for line in self.heads_path.read_text().splitlines() if line.strip()]

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
            db.begin()
            try:
                head = db.execute("SELECT id, row_hash FROM lineage WHERE id IS NOT NULL "
                                  "ORDER BY id DESC LIMIT 1").fetchone()
                row["id"] = head[0] + 1 if head else 1
                row["prev_hash"] = head[1] if head else GENESIS_HASH
                row["row_hash"] = lineage_hash({**row, "timestamp": row["timestamp"].strftime(TIMESTAMP_FORMAT)})
                db.execute(
                    "INSERT INTO lineage (id, portfolio, asset, run_id, input_hashes, output_hash, code_version, "
                    "parameters, timestamp, prev_hash, row_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [row["id"], portfolio, asset, run_id, canonical_json(row["input_hashes"]), output_hash,
                     code_version, canonical_json(row["parameters"]), row["timestamp"], row["prev_hash"],
                     row["row_hash"]],
                )
                db.commit()
            except BaseException:
                db.rollback()
                raise
            self._anchor(db)
        return row

    def verify(self) -> VerifyResult:
        """Recompute both chains from their first entry, stopping at the first entry that is missing or does not
        match, then hold them against every head recorded in the head file (truncation, rewrite, forgery)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, operation, portfolio, data_hash, CAST(metadata AS VARCHAR), timestamp, prev_hash,"
                " entry_hash FROM audit_log ORDER BY id"
            ).fetchall()
            lineage = db.execute(
                "SELECT id, portfolio, asset, run_id, CAST(input_hashes AS VARCHAR), output_hash, code_version,"
                " CAST(parameters AS VARCHAR), timestamp, prev_hash, row_hash FROM lineage ORDER BY id NULLS FIRST"
            ).fetchall()
        previous_hash, expected_id = GENESIS_HASH, 1
        hashes = [GENESIS_HASH]
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
            hashes.append(previous_hash)
        lineage_hashes, problem = self._verify_lineage(lineage)
        heads = self._heads()
        result = {"checked": len(rows), "head_hash": previous_hash, "lineage_checked": len(lineage_hashes) - 1,
                  "anchored_entries": heads[-1]["entries"] if heads else None}
        problem = problem or self._against_heads(heads, hashes, lineage_hashes)
        if problem:
            broken_id, reason = problem
            return VerifyResult(False, first_broken_id=broken_id, reason=reason, **result)
        return VerifyResult(True, **result)

    @staticmethod
    def _verify_lineage(rows: list[tuple]) -> tuple[list[str], tuple[int | None, str] | None]:
        previous_hash, hashes = GENESIS_HASH, [GENESIS_HASH]
        for expected_id, values in enumerate(rows, start=1):
            row = dict(zip(LINEAGE_FIELDS + ("row_hash",), values))
            if row["id"] != expected_id:
                return hashes, (None, f"lineage row {expected_id} is missing or out of order (found id {row['id']})")
            row["input_hashes"], row["parameters"] = json.loads(row["input_hashes"]), json.loads(row["parameters"])
            row["timestamp"] = row["timestamp"].strftime(TIMESTAMP_FORMAT)
            if row["prev_hash"] != previous_hash or lineage_hash(row) != row["row_hash"]:
                return hashes, (None, f"lineage row {expected_id} was altered, removed or replaced")
            previous_hash = row["row_hash"]
            hashes.append(previous_hash)
        return hashes, None

    def _against_heads(self, heads: list[dict], hashes: list[str],
                       lineage_hashes: list[str]) -> tuple[int | None, str] | None:
        entries, rows = len(hashes) - 1, len(lineage_hashes) - 1
        if not heads:
            return (None, f"no head file {self.heads_path.name}: the chain is not anchored (deleted, or made "
                          "outside twin_pipeline)") if entries or rows else None
        for number, head in enumerate(heads, start=1):
            if os.environ.get(KEY_VARIABLE) and not hmac.compare_digest(head.get("mac") or "", _head_mac(head)):
                return None, f"head {number} of {self.heads_path.name} has a wrong signature (forged)"
            if head["entries"] > entries:
                return (entries + 1, f"truncated: a recorded head has {head['entries']} entries, the database "
                                     f"{entries}")
            if hashes[head["entries"]] != head["entry_hash"]:
                return (head["entries"], f"rewritten: entry {head['entries']} differs from the recorded head")
            if head["lineage"] > rows:
                return None, f"lineage truncated: a recorded head has {head['lineage']} rows, the database {rows}"
            if lineage_hashes[head["lineage"]] != head["lineage_hash"]:
                return None, f"lineage rewritten: row {head['lineage']} differs from the recorded head"
        last = heads[-1]
        if entries > last["entries"]:
            return (last["entries"] + 1, f"entries {last['entries'] + 1}..{entries} are not in any recorded head "
                                         "(appended outside twin_pipeline: forged)")
        if rows > last["lineage"]:
            return None, f"lineage rows {last['lineage'] + 1}..{rows} are not in any recorded head (forged)"
        return None

    def entries(self, portfolio: str | None = None) -> pd.DataFrame:
        """The audit trail in order, optionally of one portfolio; metadata as dicts, timestamps in UTC."""
        frame = self._select("audit_log", "id", portfolio)
        frame["metadata"] = frame["metadata"].map(json.loads)
        return frame

    def lineage(self, portfolio: str | None = None) -> pd.DataFrame:
        """Lineage rows in the order recorded, optionally of one portfolio; hashes and parameters as dicts."""
        frame = self._select("lineage", "id", portfolio).drop(columns=["prev_hash", "row_hash"])
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
