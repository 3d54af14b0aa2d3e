"""The real thing: `dagster dev` with the project's dagster.yaml picks up a landed file and the clone succeeds."""

import os
import signal
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from conftest import stop_process_group

REPOSITORY = Path(__file__).resolve().parents[1]
DEADLINE_SECONDS = 240
pytestmark = pytest.mark.slow  # starts dagster dev and waits for a real run (1-2 min)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def dagster_dev(tmp_path):
    """A `dagster dev` process group on a temporary DAGSTER_HOME and data directory, stopped afterwards."""
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    (data / "landing").mkdir(parents=True)
    shutil.copyfile(REPOSITORY / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)):  # create the SQLite storages once: the webserver, daemon and
        pass  # code server of a fresh home would otherwise migrate them at the same time (two alembic heads)
    env = {**os.environ, "DAGSTER_HOME": str(home), "TWIN_DATA_DIR": str(data)}
    log = open(tmp_path / "dagster_dev.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-p", str(free_port())],
                               cwd=REPOSITORY, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield home, data, tmp_path / "dagster_dev.log"
    finally:
        stop_process_group(process, signal.SIGINT)
        log.close()


def test_dagster_dev_clones_a_file_dropped_into_landing(dagster_dev, credit_data):
    home, data, log = dagster_dev
    credit_data.head(600).to_csv(data / "landing" / "loans.csv", index=False)
    started = time.monotonic()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while time.monotonic() - started < DEADLINE_SECONDS:
            runs = instance.get_runs()
            if runs and runs[0].is_finished:
                break
            time.sleep(3)
        assert runs, f"no run within {DEADLINE_SECONDS} s; dagster dev log:\n{log.read_text()[-3000:]}"
        run = runs[0]
        assert run.status == dg.DagsterRunStatus.SUCCESS, log.read_text()[-3000:]
        assert run.job_name == "clone_portfolio" and run.tags["dagster/partition"].startswith("loans-")
        checks = [record.event_log_entry.dagster_event.event_specific_data
                  for record in instance.get_records_for_run(run.run_id,
                                                             of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records]
    assert len(checks) == 7 and all(check.passed for check in checks if check.severity == dg.AssetCheckSeverity.ERROR)
    assert (data / "portfolios" / run.tags["dagster/partition"] / "synthetic.csv").exists()


def wait_for(condition, deadline: float, log: Path, what: str, interval: float = 0.2):
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        found = condition()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"no {what} within {deadline:.0f} s; dagster dev log:\n{log.read_text()[-3000:]}")


def test_a_run_killed_while_holding_the_duckdb_slot_does_not_block_the_next_clone(dagster_dev, credit_data):
    """kill -9 of a run worker while its step holds the one DuckDB writer slot: dead_run_sensor fails the run,
    run monitoring frees its slot, and a file landed afterwards is cloned."""
    home, data, log = dagster_dev
    credit_data.head(600).to_csv(data / "landing" / "first.csv", index=False)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        def holding_the_slot():
            for run in instance.get_runs():
                records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_START).records
                if any(record.event_log_entry.step_key == "quality_report" for record in records):
                    return run
            return None

        first = wait_for(holding_the_slot, DEADLINE_SECONDS, log, "quality_report step")
        start = instance.get_records_for_run(first.run_id, of_type=dg.DagsterEventType.RUN_START).records[0]
        os.kill(start.event_log_entry.dagster_event.pid, signal.SIGKILL)  # the run worker, holding the slot
        credit_data.iloc[600:1200].to_csv(data / "landing" / "second.csv", index=False)

        def second_finished():
            runs = [run for run in instance.get_runs() if run.tags.get("twin/landed_file") == "second.csv"]
            return runs[0] if runs and runs[0].is_finished else None

        second = wait_for(second_finished, 2 * DEADLINE_SECONDS, log, "finished clone of second.csv", interval=3)
        assert second.status == dg.DagsterRunStatus.SUCCESS, log.read_text()[-3000:]
        assert instance.get_run_by_id(first.run_id).status == dg.DagsterRunStatus.FAILURE
    assert (data / "portfolios" / second.tags["dagster/partition"] / "synthetic.csv").exists()


def test_target_scenario_under_dagster_dev_hostile_files_rejected_and_the_good_csv_reported(dagster_dev, credit_data,
                                                                                           tmp_path):
    """#16's target with the real daemon: an encrypted zip, a blank-first-line CSV, a link to a private file
    outside, a zip bomb and a good CSV land together. The good CSV's report exists within 5 minutes, the bad ones
    are in rejected/ with reasons, and nothing of the outside file reaches the data directory or the instance.
    (A CSV whose first line is blank is a table whose header is on its first non-blank line, as pandas reads it:
    it no longer stops the sensor, and it is cloned.)"""
    from test_defs_landing_hostile import bundle_zip, good_bundle_members, patch_zip_headers

    home, data, log = dagster_dev
    table = credit_data.head(600).to_csv(index=False)
    secret = tmp_path / "outside" / "private.csv"
    secret.parent.mkdir()
    secret.write_text(table.replace("Age", "OUTSIDE_SECRET_COLUMN", 1))
    os.chmod(secret, 0o600)
    before = (secret.read_bytes(), secret.stat().st_mode)
    landing = data / "landing"
    (landing / "locked.zip").write_bytes(patch_zip_headers(bundle_zip(good_bundle_members()), flag=0x1))
    (landing / "bomb.zip").write_bytes(bundle_zip({"borrowers.csv": b"a,b\n" + b"0" * (30 << 20), **{
        name: content for name, content in good_bundle_members().items() if name != "borrowers.csv"}}))
    (landing / "blank_first_line.csv").write_text("\n\n" + table)
    (landing / "link.csv").symlink_to(secret)
    (landing / "good.csv").write_text(table)
    landed_at = time.time()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        def good_run():
            runs = [run for run in instance.get_runs() if run.tags.get("twin/landed_file") == "good.csv"]
            return runs[0] if runs else None

        report = wait_for(lambda: good_run() and [*(data / "portfolios").glob("good-*/report.html")],
                          2 * DEADLINE_SECONDS, log, "report of good.csv", interval=2)[0]
        print(f"good.csv's report.html {report.stat().st_mtime - landed_at:.0f} s "
              "after it landed")  # #16's target is 5 minutes: timed here, asserted nowhere (a loaded machine)
        good = wait_for(lambda: (run := good_run()) and run.is_finished and run, 2 * DEADLINE_SECONDS, log,
                        "finished clone of good.csv", interval=3)
        assert good.status == dg.DagsterRunStatus.SUCCESS, log.read_text()[-3000:]
        assert report.parent.name == good.tags["dagster/partition"] and (report.parent / "synthetic.csv").is_file()
        landed = {run.tags.get("twin/landed_file") for run in instance.get_runs()}
        assert landed <= {"good.csv", "blank_first_line.csv"}
        events = "\n".join(repr(event) for run in instance.get_runs() for event in instance.all_logs(run.run_id))
    reasons = {note.name.removesuffix(".reason.txt"): note.read_text()
               for note in (data / "rejected").glob("*.reason.txt")}
    assert set(reasons) == {"locked.zip", "bomb.zip", "link.csv"}, reasons
    assert "encrypted" in reasons["locked.zip"] and "zip bomb" in reasons["bomb.zip"]
    assert "symbolic link" in reasons["link.csv"] and (data / "rejected" / "link.csv").is_symlink()
    assert (secret.read_bytes(), secret.stat().st_mode) == before
    outside = [path for path in data.rglob("*") if path.is_file() and not path.is_symlink()
               and b"OUTSIDE_SECRET_COLUMN" in path.read_bytes()]
    assert outside == [] and "OUTSIDE_SECRET_COLUMN" not in events
