"""The landing folder attacked as an adversary or a clumsy user would: no file stops the sensor, nothing outside
landing/ is read, hostile archives and settings are refused from their headers, failed clones are retried."""

import io
import json
import os
import stat
import uuid
import zipfile

import dagster as dg
import pytest

from twin_pipeline import publish
from twin_pipeline.defs import landing as landing_module
from twin_pipeline.defs import sensors
from twin_pipeline.defs.partitions import table_key
from twin_pipeline.defs.raw import keep_raw_copy
from twin_pipeline.errors import TwinInputError
from twin_pipeline.tables import SAMPLE_EDGE, sampled_sha256, sha256_file

from test_defs_related import SPEC, bank


@pytest.fixture
def table(credit_data):
    return credit_data.head(60).to_csv(index=False)


def launched(result) -> list[str]:
    return sorted(request.tags["twin/landed_file"] for request in result.run_requests)


def reason(landing, name) -> str:
    return (landing.storage.rejected / f"{name}.reason.txt").read_text()


def settle(landing):
    landing.tick()
    return landing.tick()


def bundle_zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def good_bundle_members() -> dict[str, bytes]:
    borrowers, loans = bank()
    return {"borrowers.csv": borrowers.to_csv(index=False).encode(), "loans.csv": loans.to_csv(index=False).encode(),
            "relationships.json": json.dumps(SPEC).encode()}


def patch_zip_headers(data: bytes, flag: int = 0, method: int | None = None) -> bytes:
    """Set general-purpose flag bits (1 = encrypted) and/or the method in every local and central header."""
    data = bytearray(data)
    for signature, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start + flag_at] |= flag
            if method is not None:
                data[start + method_at:start + method_at + 2] = method.to_bytes(2, "little")
            start += 4
    return bytes(data)


def test_target_scenario_encrypted_zip_blank_first_line_symlink_zip_bomb_and_a_good_csv_land_together(
        landing, table, tmp_path):
    secret = tmp_path / "outside" / "private.csv"
    secret.parent.mkdir()
    secret.write_text(table)
    os.chmod(secret, 0o600)
    before = (secret.read_bytes(), stat.S_IMODE(secret.stat().st_mode))
    (landing.storage.landing / "link.csv").symlink_to(secret)
    landing.drop("locked.zip", patch_zip_headers(bundle_zip(good_bundle_members()), flag=0x1))
    landing.drop("bomb.zip", bundle_zip({"borrowers.csv": b"a,b\n" + b"0" * (30 << 20),
                                         **{k: v for k, v in good_bundle_members().items() if k != "borrowers.csv"}}))
    landing.drop("blank_first_line.csv", "\n\n" + table)
    landing.drop("good.csv", table)

    result = settle(landing)

    assert launched(result) == ["blank_first_line.csv", "good.csv"]  # a blank first line is skipped, as pandas does
    assert "encrypted" in reason(landing, "locked.zip")
    assert "zip bomb" in reason(landing, "bomb.zip")
    assert "symbolic link" in reason(landing, "link.csv")
    assert (landing.storage.rejected / "link.csv").is_symlink()  # the link itself moved, its target untouched
    assert (secret.read_bytes(), stat.S_IMODE(secret.stat().st_mode)) == before
    assert not (landing.storage.root / "raw").exists() and not (landing.storage.root / "unpacked").exists()
    assert sorted(p.name for p in landing.storage.landing.iterdir()) == ["blank_first_line.csv", "good.csv"]


@pytest.mark.parametrize("name, content, expected", [
    ("corrupt.zip", lambda: bytes(b ^ 0x55 if 200 < i < 400 else b
                                  for i, b in enumerate(bundle_zip(good_bundle_members()))), "not a readable zip"),
    ("deflate64.zip", lambda: patch_zip_headers(bundle_zip(good_bundle_members()), method=9), "compression method 9"),
    ("many.zip", lambda: bundle_zip({f"t{i}.csv": b"a,b\n1,2\n" for i in range(1500)},
                                    compression=zipfile.ZIP_STORED), "entries"),
    ("wide.csv", lambda: ",".join(f"c{i}" for i in range(130_000)).encode() + b"\n", "130,000 columns"),
    ("x" * 230 + ".csv", lambda: b"a,b\n1,2\n3,4\n", "name of 234 bytes"),
], ids=["corrupt_deflate", "deflate64", "40k_entries", "130k_columns", "long_name"])
def test_each_hostile_file_is_rejected_with_its_reason_and_the_good_csv_beside_it_still_runs(
        landing, table, name, content, expected):
    landing.drop(name, content())
    landing.drop("good.csv", table)
    assert launched(settle(landing)) == ["good.csv"]
    rejected = [p for p in landing.storage.rejected.iterdir() if p.name.endswith(".reason.txt")]
    assert len(rejected) == 1 and expected in rejected[0].read_text()


@pytest.mark.parametrize("settings, expected", [
    ("[" * 30_000 + "]" * 30_000, "nested too deeply"),
    ("[" * 100_000 + "]" * 100_000, "larger than 64 KB"),
    ('{"seed": ' + "9" * 5000 + "}", "not a readable JSON"),
    ('{"rows": 1e12}', "rows must be a whole number from 1 to"),
    ('{"scale": -1}', "scale must be a positive number"),
    ('{"k": 0}', "k must be a whole number of at least 2"),
    ('{"k": 1}', "k must be a whole number of at least 2"),
    ('{"quasi_identifiers": ["Shoe size"]}', "quasi_identifiers names unknown column(s) Shoe size"),
    ('{"column_kinds": {"Age": "colour"}}', "unknown kind(s) Age=colour"),
    ('{"column_kinds": {"Nope": "integer"}}', "column_kinds names unknown column(s) Nope"),
    ('{"generalize": "foo"}', "generalize must be"),
    ('{"max_suppression": 5}', "max_suppression must be a share"),
], ids=lambda value: value[:30] if isinstance(value, str) else None)
def test_a_hostile_or_wrong_sidecar_rejects_its_file_with_the_reason_before_any_run(landing, table, settings,
                                                                                     expected):
    landing.drop("loans.csv", table)
    landing.drop("loans.csv.json", settings)
    landing.drop("good.csv", table.replace("good", "fine"))
    assert launched(settle(landing)) == ["good.csv"]
    assert expected in reason(landing, "loans.csv")
    assert (landing.storage.rejected / "loans.csv.json").exists()


def test_a_cyclic_bundle_and_a_symlinked_bundle_member_are_rejected(landing, table, tmp_path):
    cyclic = landing.storage.landing / "cyclic"
    cyclic.mkdir()
    for name, data in good_bundle_members().items():
        (cyclic / name).write_bytes(data)
    (cyclic / "relationships.json").write_text(json.dumps({**SPEC, "foreign_keys": [
        "loans.borrower_id=borrowers.borrower_id", "borrowers.borrower_id=loans.loan_id"]}))
    (cyclic / ".ready").touch()
    linked = landing.storage.landing / "linked"
    linked.mkdir()
    outside = tmp_path / "elsewhere.csv"
    outside.write_bytes(good_bundle_members()["loans.csv"])
    for name, data in good_bundle_members().items():
        if name != "loans.csv":
            (linked / name).write_bytes(data)
    (linked / "loans.csv").symlink_to(outside)
    (linked / ".ready").touch()
    landing.drop("good.csv", table)
    assert launched(settle(landing)) == ["good.csv"]
    assert "cycle" in reason(landing, "cyclic")
    assert "loans.csv is a symbolic link" in reason(landing, "linked")


def test_any_unexpected_failure_rejects_only_that_file_and_the_tick_goes_on(landing, table, monkeypatch):
    probe = landing_module.probe_table

    def exploding(path):
        if path.name == "odd.csv":
            raise RecursionError("maximum recursion depth exceeded")
        return probe(path)

    monkeypatch.setattr(sensors, "probe_table", exploding)
    landing.drop("odd.csv", table)
    landing.drop("good.csv", table.replace("good", "fine"))
    assert launched(settle(landing)) == ["good.csv"]
    assert "RecursionError" in reason(landing, "odd.csv")


def test_rejected_files_are_private(landing):
    landing.drop("scan.csv", bytes(range(256)) * 40)
    landing.drop("scan.csv.json", "{}")
    settle(landing)
    for name in ("scan.csv", "scan.csv.json", "scan.csv.reason.txt"):
        assert stat.S_IMODE((landing.storage.rejected / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(landing.storage.rejected.stat().st_mode) == 0o700


def test_a_tick_over_its_budget_leaves_the_rest_to_the_next_tick(landing, table, monkeypatch):
    monkeypatch.setattr(sensors, "TICK_BUDGET_SECONDS", 0.0)
    for index in range(3):
        landing.drop(f"part{index}.csv", table.replace("good", f"good{index}"))
    landing.tick()
    started = [launched(landing.tick()) for _ in range(3)]
    assert started == [["part0.csv"], ["part1.csv"], ["part2.csv"]]


def add_run(instance, key: str, status: dg.DagsterRunStatus) -> None:
    instance.add_run(dg.DagsterRun(job_name="clone_portfolio", run_id=str(uuid.uuid4()), status=status,
                                   tags={"dagster/partition": key}))


def test_a_failed_clone_is_retried_when_its_file_lands_again_and_a_published_one_is_not(landing, table):
    path = landing.drop("loans.csv", table)
    [first] = settle(landing).run_requests
    key = first.partition_key
    add_run(landing.instance, key, dg.DagsterRunStatus.FAILURE)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # landed again
    [retry] = settle(landing).run_requests
    assert retry.partition_key == key and retry.run_key != first.run_key

    add_run(landing.instance, key, dg.DagsterRunStatus.STARTED)  # the retry is running: not a third time
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert settle(landing).run_requests == []

    other = landing.drop("other.csv", table.replace("good", "fine"))
    [done] = settle(landing).run_requests
    add_run(landing.instance, done.partition_key, dg.DagsterRunStatus.FAILURE)
    folder = landing.storage.portfolio_dir(done.partition_key)
    publish.publish(folder, publish.version(folder, "run-1"))  # published after all
    os.utime(other, ns=(other.stat().st_atime_ns, other.stat().st_mtime_ns + 10**9))
    assert settle(landing).run_requests == []
    assert done.partition_key == table_key("other.csv", other)


def started_run(instance, pid: int) -> dg.DagsterRun:
    """A STARTED run whose RUN_START event says its worker is process `pid`, as a run worker records it."""
    import time as clock

    from dagster._core.events import DagsterEvent
    from dagster._core.events.log import EventLogEntry

    run = dg.DagsterRun(job_name="clone_portfolio", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED)
    instance.add_run(run)
    event = DagsterEvent(event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name, pid=pid)
    instance.store_event(EventLogEntry(error_info=None, level="DEBUG", user_message="", run_id=run.run_id,
                                       timestamp=clock.time(), job_name=run.job_name, dagster_event=event))
    return run


def test_a_run_whose_worker_was_killed_is_marked_failed_so_its_queue_place_is_freed():
    import subprocess
    import sys

    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    worker.kill()
    worker.wait()
    instance = dg.DagsterInstance.ephemeral()
    dead, alive = started_run(instance, worker.pid), started_run(instance, os.getpid())
    sensors.dead_run_sensor(dg.build_sensor_context(instance=instance))
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED


def test_the_instance_frees_the_slots_of_finished_runs(tmp_path):
    from twin_pipeline.defs.demo import prepare_home

    with dg.DagsterInstance.from_config(str(prepare_home(tmp_path / "home"))) as instance:
        assert instance.run_monitoring_enabled
        assert 0 < instance.run_monitoring_settings["free_slots_after_run_end_seconds"] <= 60


def test_the_tick_reads_only_a_large_files_ends_and_the_run_tells_two_files_sharing_a_key_apart(landing):
    """The key samples size, first and last MiB: a 3 MiB loans.csv corrected in its middle gets the same key, so
    the sensor does not skip it as "same bytes" and its run's full SHA-256 refuses to clone it as the other."""
    rows = [f"{i},{i % 7},{(i * 37) % 1000}.5\n" for i in range(3 * SAMPLE_EDGE // 12)]
    original = "id,grade,amount\n" + "".join(rows)
    middle = len(original) // 2
    corrected = original[:middle] + ("9" if original[middle] != "9" else "8") + original[middle + 1:]
    assert len(original) > 2 * SAMPLE_EDGE and len(corrected) == len(original) and corrected != original

    first = landing.drop("loans.csv", original)
    [request] = settle(landing).run_requests
    assert sampled_sha256(first) == (request.tags["twin/content_digest"], False)  # not every byte was read
    kept = keep_raw_copy(landing.storage, request.partition_key, str(first))  # the run's raw_upload step
    held = sha256_file(kept)
    assert held == sha256_file(first)

    again = landing.drop("loans.csv", corrected)
    os.utime(again, ns=(again.stat().st_atime_ns, again.stat().st_mtime_ns + 10**9))
    [second] = settle(landing).run_requests  # same key, yet not skipped: the tick cannot know
    assert second.partition_key == request.partition_key and second.run_key != request.run_key
    with pytest.raises(TwinInputError, match="other bytes in between"):
        keep_raw_copy(landing.storage, second.partition_key, str(again))
    assert sha256_file(kept) == held != sha256_file(again)  # the portfolio's upload kept as it was
    kept.unlink()  # the raw copy deleted after its clone: the published manifest still says what it held
    folder = landing.storage.portfolio_dir(second.partition_key)
    folder.mkdir(parents=True)
    (folder / "raw_upload.json").write_text(json.dumps({"sha256": held}))
    with pytest.raises(TwinInputError, match="other bytes in between"):
        keep_raw_copy(landing.storage, second.partition_key, str(again))

    small = landing.drop("small.csv", "a,b\n1,2\n3,4\n")
    assert sampled_sha256(small)[1] is True  # up to 2 MiB every byte is read: equal digests, equal files
    assert table_key("small.csv", small) != table_key("small.csv", landing.drop("small2.csv", "a,b\n1,2\n3,5\n"))
