"""Audit trail: the chain verifies, any edit or deletion made behind the code's back is caught and named,
concurrent writers cannot fork it, and lineage and frame hashes round-trip."""

import json
import multiprocessing
import subprocess
import sys
import threading
import time

import duckdb
import numpy as np
import pandas as pd
import pytest

from twin_pipeline.audit import GENESIS_HASH, OPERATIONS, AuditLog, entry_hash, sha256_frame

HASH = "ab" * 32


@pytest.fixture
def log(tmp_path) -> AuditLog:
    return AuditLog(tmp_path / "twin.duckdb")


def fill(log: AuditLog, count: int = 6) -> list[dict]:
    return [log.append(OPERATIONS[i % len(OPERATIONS)], f"portfolio-{i % 2}", HASH, {"step": i, "rows": 10 * i})
            for i in range(count)]


def raw_sql(log: AuditLog, statement: str) -> None:
    with duckdb.connect(str(log.path)) as db:
        db.execute(statement)


def test_chain_links_every_entry_to_the_previous_one_and_verifies(log):
    entries = fill(log)
    assert [entry["id"] for entry in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0]["prev_hash"] == GENESIS_HASH
    assert all(later["prev_hash"] == earlier["entry_hash"] for earlier, later in zip(entries, entries[1:]))
    assert all(entry["entry_hash"] == entry_hash(entry) for entry in entries)
    result = log.verify()
    assert (result.ok, result.checked, result.first_broken_id, result.reason) == (True, 6, None, None)
    assert result.head_hash == entries[-1]["entry_hash"]


def test_empty_log_verifies(log):
    assert log.verify().ok and log.verify().checked == 0 and log.verify().head_hash == GENESIS_HASH


@pytest.mark.parametrize("column, value", [
    ("metadata", """'{"step": 2, "rows": 999}'"""),
    ("operation", "'RAW_DATA_DELETED'"),
    ("portfolio", "'someone-else'"),
    ("data_hash", f"'{'cd' * 32}'"),
    ("timestamp", "timestamp + INTERVAL 1 SECOND"),
])
def test_an_edited_entry_is_named(log, column, value):
    fill(log)
    raw_sql(log, f"UPDATE audit_log SET {column} = {value} WHERE id = 3")
    result = log.verify()
    assert not result.ok and result.first_broken_id == 3 and result.checked == 2
    assert "altered" in result.reason


def test_a_forger_who_rewrites_the_hash_is_caught_at_the_next_entry(log):
    entries = fill(log)
    forged = {**entries[2], "metadata": {"step": 2, "rows": 0}}
    raw_sql(log, f"""UPDATE audit_log SET metadata = '{{"step": 2, "rows": 0}}', entry_hash = '{entry_hash(forged)}'
                     WHERE id = 3""")
    result = log.verify()
    assert not result.ok and result.first_broken_id == 4 and "prev_hash" in result.reason


@pytest.mark.parametrize("deleted", [1, 4])
def test_a_deleted_entry_is_named(log, deleted):
    fill(log)
    raw_sql(log, f"DELETE FROM audit_log WHERE id = {deleted}")
    result = log.verify()
    assert not result.ok and result.first_broken_id == deleted
    assert f"entry {deleted} is missing" in result.reason


def test_invalid_appends_are_refused_and_leave_no_trace(log):
    with pytest.raises(ValueError, match="unknown audit operation 'MODEL_STOLEN'"):
        log.append("MODEL_STOLEN", "portfolio-0", HASH)
    with pytest.raises(ValueError, match="data_hash"):
        log.append("MODEL_FITTED", "portfolio-0", "not-a-hash")
    with pytest.raises(ValueError, match="metadata must be a mapping"):
        log.append("MODEL_FITTED", "portfolio-0", HASH, ["a", "list"])
    assert log.entries().empty


def test_the_code_offers_no_way_to_rewrite_history():
    public = {name for name in dir(AuditLog) if not name.startswith("_")}
    assert public == {"append", "record_lineage", "verify", "entries", "lineage", "head", "heads_path"}  # reads only


def test_entries_are_filtered_by_portfolio_with_metadata_as_dicts(log):
    fill(log)
    mine = log.entries("portfolio-1")
    assert mine["id"].tolist() == [2, 4, 6]
    assert set(mine["portfolio"]) == {"portfolio-1"}
    assert mine["metadata"].iloc[0] == {"step": 1, "rows": 10}
    assert str(mine["timestamp"].dt.tz) == "UTC"
    assert len(log.entries()) == 6 and log.entries("nobody").empty


def test_metadata_with_numpy_values_and_nan_is_stored_as_plain_json(log):
    entry = log.append("QUALITY_REPORTED", "p", HASH, {"score": np.float64(97.5), "missing": float("nan"),
                                                       "counts": np.array([1, 2])})
    assert entry["metadata"] == {"score": 97.5, "missing": None, "counts": [1, 2]}
    assert log.entries()["metadata"].iloc[0] == entry["metadata"]
    assert log.verify().ok


def test_lineage_round_trips(log):
    recorded = log.record_lineage("portfolio-0", "synthetic_sample", "run-42", {"fitted_marginals": HASH},
                                  "cd" * 32, "0.1.0+abc", {"num_samples": 1000, "seed": 7})
    log.record_lineage("portfolio-1", "raw_upload", "run-43", {}, HASH, "0.1.0+abc")
    rows = log.lineage("portfolio-0")
    assert len(rows) == 1 and len(log.lineage()) == 2
    row = rows.iloc[0]
    assert (row.asset, row.run_id, row.output_hash, row.code_version) == (
        "synthetic_sample", "run-42", "cd" * 32, "0.1.0+abc")
    assert row.input_hashes == {"fitted_marginals": HASH} and row.parameters == {"num_samples": 1000, "seed": 7}
    assert row.timestamp.tz_localize(None) == pd.Timestamp(recorded["timestamp"])


def test_concurrent_appends_in_one_process_keep_a_single_chain(log):
    def writer(number: int) -> None:
        for step in range(15):
            log.append("SAMPLE_GENERATED", f"writer-{number}", HASH, {"step": step})

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log.entries()["id"].tolist() == list(range(1, 61))
    assert log.verify().ok and log.verify().checked == 60


HOLD_LOCK = """
import sys, time, duckdb
db = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.close()
"""


def test_append_waits_for_another_process_holding_the_file(tmp_path):
    log = AuditLog(tmp_path / "twin.duckdb")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(log.path), "1.0"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        log.append("UPLOAD_INGESTED", "p", HASH)
        assert time.monotonic() - start > 0.2  # it had to wait for the other process
    finally:
        holder.wait(timeout=30)
    assert log.verify().ok


def append_from_a_process(path, portfolio: str) -> None:
    log = AuditLog(path)
    for step in range(12):
        log.append("MODEL_FITTED", portfolio, HASH, {"step": step})
        log.record_lineage(portfolio, "fitted_marginals", "run", {"raw_upload": "cd" * 32}, "ef" * 32, "0", {})


def test_steps_of_concurrent_runs_in_other_processes_append_one_chain(tmp_path):
    """What the Dagster steps of concurrent runs do with no concurrency pool: each waits for the audit's lock.
    Forked, not spawned: three fresh interpreters importing the package would cost ~15 s of CPU."""
    path = tmp_path / "twin.duckdb"
    fork = multiprocessing.get_context("fork")
    writers = [fork.Process(target=append_from_a_process, args=(path, f"portfolio-{number}")) for number in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    log = AuditLog(path)
    assert log.entries()["id"].tolist() == list(range(1, 37))
    assert sorted(log.entries()["portfolio"].value_counts().tolist()) == [12, 12, 12]
    result = log.verify()
    assert result.ok and result.checked == 36 and result.lineage_checked == 36


def test_a_lock_held_too_long_gives_a_clear_timeout(tmp_path):
    log = AuditLog(tmp_path / "twin.duckdb", lock_timeout=0.3)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(log.path), "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TimeoutError, match="still locked by another process"):
            log.append("UPLOAD_INGESTED", "p", HASH)
    finally:
        holder.kill()
        holder.wait(timeout=30)


def sample_frame() -> pd.DataFrame:
    return pd.DataFrame({"income": [52000.5, np.nan, 61000.0], "grade": ["A", None, "C"],
                         "opened": pd.to_datetime(["2020-01-01", "2021-06-30", None]), "flag": [True, False, True]})


def test_sha256_frame_identifies_content_not_the_index():
    frame = sample_frame()
    digest = sha256_frame(frame)
    assert len(digest) == 64 and digest == sha256_frame(frame.copy())
    assert sha256_frame(frame.set_axis([10, 11, 12])) == digest
    changed = [
        frame.assign(income=[52000.5, np.nan, 61000.01]),
        frame.assign(grade=["A", "B", "C"]),
        frame.rename(columns={"grade": "rating"}),
        frame.astype({"flag": "int64"}),
        frame.iloc[::-1].reset_index(drop=True),
        frame.iloc[:2],
    ]
    assert len({digest, *map(sha256_frame, changed)}) == 1 + len(changed)


def test_sha256_frame_is_the_same_in_another_process():
    code = ("import numpy as np, pandas as pd; from twin_pipeline.audit import sha256_frame; "
            "from twin_pipeline_tests.test_audit import sample_frame; print(sha256_frame(sample_frame()))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == sha256_frame(sample_frame())


# The anchored head: what a chain alone cannot show.

def rebuild_chain(log: AuditLog, keep) -> None:
    """What a forger with write access does: rewrite the table keeping some entries, hashes recomputed."""
    entries = log.entries()
    kept = [row for row in entries.to_dict("records") if keep(row)]
    raw_sql(log, "DELETE FROM audit_log")
    previous = GENESIS_HASH
    for number, row in enumerate(kept, start=1):
        entry = {"id": number, "operation": row["operation"], "portfolio": row["portfolio"],
                 "data_hash": row["data_hash"], "metadata": row["metadata"],
                 "timestamp": row["timestamp"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "prev_hash": previous}
        entry["entry_hash"] = entry_hash(entry)
        with duckdb.connect(str(log.path)) as db:
            db.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       [number, entry["operation"], entry["portfolio"], entry["data_hash"],
                        json.dumps(entry["metadata"]), row["timestamp"].tz_localize(None), previous,
                        entry["entry_hash"]])
        previous = entry["entry_hash"]


def test_deleting_the_newest_entries_is_truncation(log):
    fill(log)
    raw_sql(log, "DELETE FROM audit_log WHERE id > 4")
    result = log.verify()
    assert not result.ok and "truncated" in result.reason and result.checked == 4


def test_a_chain_recomputed_without_one_portfolio_is_a_rewrite(log):
    fill(log)
    rebuild_chain(log, lambda row: row["portfolio"] != "portfolio-1")
    result = log.verify()
    assert not result.ok and ("rewritten" in result.reason or "truncated" in result.reason)


def test_a_forged_entry_appended_behind_the_codes_back_is_caught(log):
    fill(log)
    rebuild_chain(log, lambda row: True)  # the same entries: still intact
    assert log.verify().ok
    with duckdb.connect(str(log.path)) as db:
        head_id, head_hash = db.execute("SELECT id, entry_hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    forged = {"id": head_id + 1, "operation": "RAW_DATA_DELETED", "portfolio": "portfolio-0", "data_hash": HASH,
              "metadata": {}, "timestamp": "2026-01-01T00:00:00.000000Z", "prev_hash": head_hash}
    raw_sql(log, f"""INSERT INTO audit_log VALUES ({head_id + 1}, 'RAW_DATA_DELETED', 'portfolio-0', '{HASH}', '{{}}',
                     TIMESTAMP '2026-01-01 00:00:00', '{head_hash}', '{entry_hash(forged)}')""")
    result = log.verify()
    assert not result.ok and "forged" in result.reason and result.first_broken_id == head_id + 1


def test_edited_or_deleted_lineage_is_caught(log):
    for asset in ("raw_upload", "fitted_marginals", "quality_report"):
        log.record_lineage("p-1", asset, "run-1", {"upload": HASH}, HASH, "1.0", {"k": 5})
    assert log.verify().ok and log.verify().lineage_checked == 3
    raw_sql(log, "UPDATE lineage SET code_version = '9.9' WHERE asset = 'fitted_marginals'")
    assert not log.verify().ok and "lineage row 2" in log.verify().reason
    raw_sql(log, "UPDATE lineage SET code_version = '1.0' WHERE asset = 'fitted_marginals'")
    assert log.verify().ok
    raw_sql(log, "DELETE FROM lineage WHERE asset = 'quality_report'")
    assert not log.verify().ok and "lineage truncated" in log.verify().reason


def test_a_deleted_head_file_and_a_head_forged_without_the_key_are_caught(log, monkeypatch):
    monkeypatch.setenv("TWIN_AUDIT_KEY", "secret of the operator")
    fill(log)
    assert log.verify().ok and log.verify().anchored_entries == 6
    lines = log.heads_path.read_text().splitlines()
    forged = json.loads(lines[-1])
    forged.update(entries=4, mac="0" * 64)
    log.heads_path.write_text("\n".join(lines[:4] + [json.dumps(forged)]) + "\n")
    assert not log.verify().ok and "signature" in log.verify().reason
    log.heads_path.unlink()
    assert not log.verify().ok and "not anchored" in log.verify().reason


def test_paths_with_quotes_are_parameters_not_sql(tmp_path):
    log = AuditLog(tmp_path / "o'q" / "twin.duckdb")
    fill(log, 2)
    assert log.verify().ok and log.verify().checked == 2


def test_twin_audit_verify_fails_after_the_newest_entries_are_deleted(tmp_path, capsys):
    from twin_pipeline.cli import main

    log = AuditLog(tmp_path / "twin.duckdb")
    fill(log)
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 0
    raw_sql(log, "DELETE FROM audit_log WHERE id >= 5")
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 1
    assert "truncated" in capsys.readouterr().err


def test_a_writer_waits_for_another_auditlog_holding_the_lock_file_and_times_out_clearly(tmp_path):
    """The lock file, not only DuckDB's, orders every AuditLog connection (threads and processes alike)."""
    import fcntl
    import os

    log = AuditLog(tmp_path / "twin.duckdb", lock_timeout=0.3)
    holder = os.open(tmp_path / "twin.duckdb.lock", os.O_WRONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(TimeoutError, match="still locked by another process"):
            log.append("UPLOAD_INGESTED", "p", HASH)
    finally:
        os.close(holder)
    log.append("UPLOAD_INGESTED", "p", HASH)
    assert log.verify().ok and log.verify().checked == 1
