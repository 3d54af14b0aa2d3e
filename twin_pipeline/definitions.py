"""The Dagster code location of twin-pipeline: `dagster dev -w workspace.yaml` (or `-m twin_pipeline.definitions`)."""

from __future__ import annotations

import dagster as dg

from .defs.assets import ASSETS, clone_portfolio
from .defs.checks import CHECKS
from .defs.io_manager import PortfolioIOManager
from .defs.resources import TwinStorage
from .defs.sensors import landing_sensor


# Steps run in their own processes (what issue 6's shards will scale out on), forked from a server that has
# already imported this package: a spawned process would re-import pandas, SciPy and DuckDB for every step.
STEP_EXECUTOR = dg.multiprocess_executor.configured({"start_method": {"forkserver": {}}})


def build_definitions(data_dir: str = "") -> dg.Definitions:
    """Assets, checks, the clone job and the landing sensor over one data directory ("": $TWIN_DATA_DIR or ./data)."""
    storage = TwinStorage(data_dir=str(data_dir))
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        jobs=[clone_portfolio],
        sensors=[landing_sensor],
        resources={"storage": storage, "io_manager": PortfolioIOManager(storage=storage)},
        executor=STEP_EXECUTOR,
    )


defs = build_definitions()
