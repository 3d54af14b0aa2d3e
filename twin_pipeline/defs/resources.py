"""Where a portfolio's files live, as one Dagster resource shared by the assets, the IO manager and the sensor.

Layout under the data directory (`TWIN_DATA_DIR`, else ./data):
  landing/            files dropped here start a clone (the sensor watches it)
  rejected/           files that are not readable tables, each with a <name>.reason.txt
  raw/<key>/          the immutable copy of the upload (directory 0700, file 0600): the only real rows kept
  portfolios/<key>/   everything derived for one portfolio: model, twin, schema, reports, the twin's Parquet
                      shards; each run writes a complete version in .versions/<run id>/, published (after the
                      blocking checks) by switching the link .current, which `synthetic.csv` and every other
                      download path go through (see twin_pipeline/publish.py)
  steps/<run id>/     small JSON values handed between the steps of a run (shard plans and figures); removed
                      when the run publishes
  twin.duckdb         the audit trail and lineage
  dagster_home/       the local Dagster instance used by `twin demo`
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from .. import publish
from ..paths import data_dir
from ..shards import QUALITY_SAMPLE_ROWS, sample_shards, verify_shards

DEFAULT_MEMORY_LIMIT = "1GB"


class TwinStorage(dg.ConfigurableResource):
    """The data directory; empty means `TWIN_DATA_DIR` or ./data, read when a run or a sensor tick starts."""

    data_dir: str = Field(default="", description="Data directory; empty: $TWIN_DATA_DIR or ./data")

    @property
    def root(self) -> Path:
        return data_dir(self.data_dir or None).absolute()

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    def ensure_folders(self) -> Path:
        """Create landing/, rejected/ and portfolios/ so a newcomer sees where to drop files and where results
        and rejections go, before the first upload. Returns the data directory."""
        for folder in (self.landing, self.rejected, self.root / "portfolios"):
            folder.mkdir(parents=True, exist_ok=True)
        return self.root

    @property
    def audit_db(self) -> Path:
        return self.root / "twin.duckdb"

    def raw_dir(self, portfolio: str) -> Path:
        return self.root / "raw" / portfolio

    @property
    def steps(self) -> Path:
        return self.root / "steps"

    def portfolio_dir(self, portfolio: str) -> Path:
        return self.root / "portfolios" / portfolio

    def shards_dir(self, portfolio: str) -> Path:
        """The published shard set of a portfolio's twin (through the `.current` link)."""
        return self.portfolio_dir(portfolio) / "shards"

    def staged(self, portfolio: str, run: dg.DagsterRun) -> Path:
        """The version of the portfolio that `run` writes and reads: made on first use from the version of the
        run it re-executes (if any) or else from the published one, and published only when the run passes."""
        folder = self.portfolio_dir(portfolio)
        base = folder / publish.VERSIONS / run.parent_run_id if run.parent_run_id else None
        return publish.version(folder, run.run_id, base)

    def published(self, portfolio: str) -> bool:
        """Whether a clone of the portfolio passed its blocking checks and was published (see publish.py)."""
        return publish.current(self.portfolio_dir(portfolio)) is not None

    def audit(self):
        """The portfolio audit log (imported here so the sensor's code path never loads DuckDB)."""
        from ..audit import AuditLog

        return AuditLog(self.audit_db)


class ShardReader(dg.ConfigurableResource):
    """How the sharded twin is read back without loading it: the DuckDB recount of k and of copies over all
    shards (out of core, within a memory limit), and the uniform sample the quality report measures."""

    memory_limit: str = Field(default="", description="DuckDB memory limit of the recount over all shards, e.g. "
                              f"'4GB'; empty: $TWIN_DUCKDB_MEMORY_LIMIT or {DEFAULT_MEMORY_LIMIT}")
    quality_sample_rows: int = Field(default=QUALITY_SAMPLE_ROWS, description="Rows of the uniform sample of the "
                                     "twin that the quality report compares with the real table")

    def verify(self, folder: Path, real: pd.DataFrame, quasi_identifiers: list[str],
               ignore_columns: list[str], k: int = 5) -> dict:
        limit = self.memory_limit or os.environ.get("TWIN_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
        return verify_shards(folder, real, quasi_identifiers, ignore_columns, k, memory_limit=limit)

    def sample(self, folder: Path, seed: int | None) -> pd.DataFrame:
        return sample_shards(folder, rows=self.quality_sample_rows, seed=seed or 0)
