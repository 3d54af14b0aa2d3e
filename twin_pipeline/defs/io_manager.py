"""Persist each asset of a portfolio as plain files under `<data>/portfolios/<key>/`, as the asset declares them.

Tables are Parquet (the twin itself CSV, or Parquet when large or asked for), everything else JSON; the files
each asset is written as are declared on the asset (`twin_asset(files=...)`, see layout.py). Every file is
written atomically into the run's own version of the portfolio (`.versions/<run id>/`, see publish.py), so a
crash never leaves half a file, a re-run of one portfolio only rewrites that portfolio's folder, and nothing is
at a download path before the run publishes. The clone's last blocking check publishes the run's whole version
at once (twin, model, reports, shard manifest; `publish_portfolio`) when it passes, and it runs only after the
blocking checks before it passed, so a twin that failed one is never published and the previous good one stays.

After writing an asset's files, the IO manager hands them to its `audit_trail` (audit_trail.py), the one hook
that appends the asset's audit operations and lineage, so no asset body can forget to. An asset is written
(and audited) once per portfolio, by the step that returns it, however many shard steps made its data.

The twin itself may be larger than memory: an asset hands it over as `ShardedTable` (its Parquet shards), the
product file is merged from them one shard at a time, and a downstream step gets the product's path, not rows.
"""


import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from .. import publish
from ..shards import merge_shards
from ..tables import sha256_file, write_frame, write_json
from .audit_trail import AuditTrail
from .layout import TABLE_FORMATS, files_in, files_of
from .resources import TwinStorage


@dataclass(frozen=True)
class ShardedTable:
    """A table stored as Parquet shards in `folder`; persisted as one file merged from them."""

    folder: Path


class PortfolioIOManager(dg.ConfigurableIOManager):
    """Files per portfolio partition, as each asset declares them; each write audited by `audit_trail`."""

    storage: TwinStorage
    audit_trail: AuditTrail

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        portfolio = context.partition_key
        folder = self.storage.staged(portfolio, context.step_context.dagster_run)
        parts = files_of(context.definition_metadata)
        values = {next(iter(parts)): obj} if len(parts) == 1 else obj
        table_format = _plain(context.output_metadata.get("table_format"))
        escape = _plain(context.output_metadata.get("escape_formulas"))
        dialect = _plain(context.output_metadata.get("csv_dialect"))  # the upload's separator and encoding
        written = {part: self._write(values[part], folder / name, table_format, escape is not False, dialect)
                   for part, name in parts.items()}
        hashes = {path.name: sha256_file(path) for path in written.values()}
        head = self.audit_trail.record(context, folder, hashes)
        download = self.storage.portfolio_dir(portfolio)
        publish.link_late_outputs(download, folder, [path.name for path in written.values()])
        context.add_output_metadata({
            **{f"path {part}": dg.MetadataValue.path(str(download / path.name)) for part, path in written.items()},
            "sha256": dg.MetadataValue.json(hashes),
            "audit_head": dg.MetadataValue.json({key: head[key] for key in ("entries", "entry_hash", "lineage",
                                                                            "lineage_hash")}),
        })

    @staticmethod
    def _write(value: Any, target: Path, table_format: str | None, escape_formulas: bool,
               dialect: dict | None = None) -> Path:
        if isinstance(value, (pd.DataFrame, ShardedTable)):
            if target.suffix == ".csv" and table_format == "parquet":
                target = target.with_suffix(".parquet")
            for stale in (target.with_suffix(suffix) for suffix in TABLE_FORMATS):
                if stale != target:
                    stale.unlink(missing_ok=True)
            if isinstance(value, ShardedTable):
                return merge_shards(value.folder, target, escape_formulas, dialect)
            return write_frame(value, target, escape_formulas, dialect)
        return write_json(value, target)

    def load_input(self, context: dg.InputContext) -> Any:
        asset, portfolio = context.asset_key.path[-1], context.asset_partition_key
        folder = self.storage.staged(portfolio, context.step_context.dagster_run)
        declared = files_of(context.upstream_output.definition_metadata)
        files = files_in(folder, declared)
        if set(files) != set(declared):
            raise dg.Failure(f"portfolio {portfolio} has no complete {asset} in {folder}: materialize {asset} first")
        values = {part: path if path.suffix in TABLE_FORMATS else json.loads(path.read_text())
                  for part, path in files.items()}
        return next(iter(values.values())) if len(values) == 1 else values


def _plain(value: Any) -> Any:
    """Output metadata arrives as Dagster MetadataValue objects."""
    return getattr(value, "value", value)


def publish_portfolio(storage: TwinStorage, portfolio: str, run: dg.DagsterRun) -> dict:
    """Publish the run's version of the portfolio (all its outputs at once), remove the versions it replaces
    and the step folders of the run and the runs it re-executed."""
    superseded = tuple(run_id for run_id in (run.parent_run_id, run.root_run_id) if run_id and run_id != run.run_id)
    version = storage.staged(portfolio, run)
    removed = publish.publish(storage.portfolio_dir(portfolio), version, superseded)
    for run_id in (run.run_id, *superseded):
        shutil.rmtree(storage.steps / run_id, ignore_errors=True)
    return {"version": version.name, "replaced": removed}


class StepIOManager(dg.ConfigurableIOManager):
    """Small values handed between the steps of one asset (a shard's plan, its figures) as JSON files under
    `<data>/steps/`, so a step in another process, pod or Celery worker reads them; keyed like Dagster's own
    step outputs (run, step, output, mapping key), so a re-execution reads what its parent run wrote."""

    storage: TwinStorage

    def _path(self, context: dg.OutputContext) -> Path:
        *folders, name = context.get_identifier()
        return self.storage.steps.joinpath(*folders, f"{name}.json")

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        write_json(obj, self._path(context))

    def load_input(self, context: dg.InputContext) -> Any:
        return json.loads(self._path(context.upstream_output).read_text())
