"""The Dagster definitions over one data directory: what the code location, `twin demo` and the tests build."""

from __future__ import annotations

import dagster as dg

from .assets import ASSETS, clone_portfolio
from .audit_trail import AuditTrail
from .checks import CHECKS
from .executors import step_executor
from .io_manager import PortfolioIOManager, StepIOManager
from .rejected import rejected_uploads
from .related_assets import RELATED_ASSETS, RELATED_CHECKS, clone_related_portfolio
from .resources import ShardReader, TwinStorage
from .sensors import dead_run_sensor, landing_sensor
from .shard_steps import STEP_IO


def twin_resources(data_dir: str = "") -> dict:
    """The resources of every twin asset and check over one data directory ("": $TWIN_DATA_DIR or ./data)."""
    storage = TwinStorage(data_dir=str(data_dir))
    io_manager = PortfolioIOManager(storage=storage, audit_trail=AuditTrail(storage=storage))
    return {"storage": storage, "shard_reader": ShardReader(), "io_manager": io_manager,
            STEP_IO: StepIOManager(storage=storage)}


def build_definitions(data_dir: str = "", executor: str | None = None) -> dg.Definitions:
    """Assets, checks, the clone jobs (one table; a bundle of related tables) and the landing sensor over one data
    directory, with the step executor `executor` ("multiprocess", "k8s", "celery" or "in_process"; default
    $TWIN_EXECUTOR, else "multiprocess")."""
    return dg.Definitions(
        assets=[*ASSETS, *RELATED_ASSETS, rejected_uploads],
        asset_checks=[*CHECKS, *RELATED_CHECKS],
        jobs=[clone_portfolio, clone_related_portfolio],
        sensors=[landing_sensor, dead_run_sensor],
        resources=twin_resources(data_dir),
        executor=step_executor(executor),
    )


def clone_job(data_dir: str = "", executor: str | None = None) -> dg.JobDefinition:
    """The `clone_portfolio` job over one data directory: what `dg.build_reconstructable_job` rebuilds in each
    step process (`reconstructable_kwargs={"data_dir": ...}`), so steps in other processes use the same folder."""
    return build_definitions(data_dir, executor).resolve_job_def("clone_portfolio")
