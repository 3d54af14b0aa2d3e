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
    assert len(checks) == 5 and all(check.passed for check in checks if check.severity == dg.AssetCheckSeverity.ERROR)
    assert (data / "portfolios" / run.tags["dagster/partition"] / "synthetic.csv").exists()
