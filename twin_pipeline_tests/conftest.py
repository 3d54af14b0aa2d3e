"""Shared fixtures: the bundled public credit samples and small synthetic frames with every column kind."""

import os
import signal
import subprocess

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from twin_pipeline.defs.resources import TwinStorage
from twin_pipeline.defs.sensors import landing_sensor
from twin_pipeline.paths import SAMPLES

RUN_SLOW = bool(os.environ.get("TWIN_TEST_SLOW"))


def pytest_collection_modifyitems(config, items):
    """Tests marked `slow` (real multi-process Dagster runs, servers, the copulas reference) run when
    TWIN_TEST_SLOW=1, as CI sets it; the default run stays within a few minutes on two cores."""
    if RUN_SLOW:
        return
    skip = pytest.mark.skip(reason="slow: set TWIN_TEST_SLOW=1 to run it (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def credit_data() -> pd.DataFrame:
    return pd.read_csv(SAMPLES / "credit_data.csv")


@pytest.fixture(scope="session")
def credit_card() -> pd.DataFrame:
    return pd.read_csv(SAMPLES / "credit_card.csv")


@pytest.fixture(scope="session")
def loan_book() -> pd.DataFrame:
    """A loan table with every column kind the engine knows, including joint-application nulls."""
    rng = np.random.default_rng(7)
    n = 3000
    income = np.round(rng.lognormal(10.5, 0.5, n), 2)
    joint = rng.random(n) < 0.2
    debt = np.where(rng.random(n) < 0.4, 0.0, np.round(rng.gamma(2.0, 2000.0, n)))
    months = pd.period_range("2015-01", "2020-12", freq="M").strftime("%b-%Y")
    return pd.DataFrame({
        "loan_id": [f"LN{i:06d}" for i in range(1, n + 1)],
        "income": income,
        "loan_amount": np.round(income * rng.uniform(0.1, 0.5, n) / 100) * 100,
        "age": rng.integers(21, 75, n),
        "term": rng.choice([36, 60], n, p=[0.7, 0.3]),
        "grade": rng.choice(list("ABCDEFG"), n, p=[0.2, 0.25, 0.2, 0.15, 0.1, 0.06, 0.04]),
        "defaulted": rng.random(n) < 0.1,
        "issue_d": rng.choice(months, n),
        "application_type": np.where(joint, "Joint App", "Individual"),
        "annual_inc_joint": np.where(joint, np.round(income * rng.uniform(1.3, 2.0, n), 2), np.nan),
        "debt": debt,
        "emp_title": [f"title {i}" if i % 10 else "manager" for i in range(n)],
        "country": "NL",
        "notes": np.nan,
    })


class Landing:
    """A landing folder and a sensor ticking over it, applying partition requests as the daemon would."""

    def __init__(self, root):
        self.storage = TwinStorage(data_dir=str(root))
        self.storage.landing.mkdir(parents=True)
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor = None

    def drop(self, name, content: bytes | str):
        path = self.storage.landing / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                          resources={"storage": self.storage})
        result = landing_sensor(context)
        for request in result.dynamic_partitions_requests:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        self.cursor = result.cursor
        return result


@pytest.fixture
def landing(tmp_path):
    return Landing(tmp_path / "data")


def stop_process_group(process: subprocess.Popen, first_signal: int) -> None:
    """Stop a test server started with start_new_session=True: ask with `first_signal`, kill after 20 s."""
    os.killpg(process.pid, first_signal)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
