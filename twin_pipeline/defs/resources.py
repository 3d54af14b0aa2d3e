"""Where a portfolio's files live, as one Dagster resource shared by the assets, the IO manager and the sensor.

Layout under the data directory (`TWIN_DATA_DIR`, else ./data):
  landing/            files dropped here start a clone (the sensor watches it)
  rejected/           files that are not readable tables, each with a <name>.reason.txt
  raw/<key>/          the immutable copy of the upload (directory 0700, file 0600): the only real rows kept
  portfolios/<key>/   everything derived for one portfolio: model, twin, schema, reports
  twin.duckdb         the audit trail and lineage
  dagster_home/       the local Dagster instance used by `twin demo`
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from ..paths import data_dir


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

    @property
    def audit_db(self) -> Path:
        return self.root / "twin.duckdb"

    def raw_dir(self, portfolio: str) -> Path:
        return self.root / "raw" / portfolio

    def portfolio_dir(self, portfolio: str) -> Path:
        return self.root / "portfolios" / portfolio

    def audit(self):
        """The portfolio audit log (imported here so the sensor's code path never loads DuckDB)."""
        from ..audit import AuditLog

        return AuditLog(self.audit_db)
