"""Persist each asset of a portfolio as plain files under `<data>/portfolios/<key>/`, and audit every write.

Tables are Parquet (the twin itself CSV, or Parquet when large or asked for), everything else JSON; every file
is written atomically into the run's own version of the portfolio (`.versions/<run id>/`, see publish.py), so
a crash never leaves half a file, a re-run of one portfolio only rewrites that portfolio's folder, and nothing
is at a download path before the run publishes. The clone's last blocking check publishes the run's whole
version at once (twin, model, reports, shard manifest; `publish_portfolio`) when it passes, and it runs only
after the blocking checks before it passed, so a twin that failed one is never published and the previous good
one stays. Writing is where an artifact becomes real, so the IO manager is also what appends the asset's audit
operations and its lineage row (input hashes, output hash, code version, parameters), before the version
holding the files is published: no asset body can forget to. An
asset is written (and audited) once per portfolio, by the step that returns it, however many shard steps made
its data. The head of the audit chain after each write goes into the event log as metadata `audit_head`.

The twin itself may be larger than memory: an asset hands it over as `ShardedTable` (its Parquet shards), the
product file is merged from them one shard at a time, and a downstream step gets the product's path, not rows.
"""


import json
import shutil
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from .. import publish
from ..pipeline import AUDIT_FILE
from ..shards import merge_shards
from ..tables import sha256_file, write_frame, write_json
from .resources import TwinStorage

try:
    CODE_VERSION = package_metadata.version("twin-pipeline")
except package_metadata.PackageNotFoundError:  # running from a source checkout that is not installed
    CODE_VERSION = "0+source"

# Files of each asset, by part; an asset with one part persists its value as is, otherwise a dict of parts.
LAYOUT: dict[str, dict[str, str]] = {
    "raw_upload": {"manifest": "raw_upload.json", "schema": "schema.json"},
    "fitted_marginals": {"model": "model.json"},
    "correlation_matrix": {"matrix": "correlation_matrix.parquet"},
    "synthetic_sample": {"shards": "shards.json"},
    "k_anonymized_output": {"table": "synthetic.csv", "protection": "protection_report.json"},
    "quality_report": {"quality": "quality_report.json", "privacy": "privacy_report.json"},
    "privacy_audit": {"audit": AUDIT_FILE},
    "related_twin": {"manifest": "related_twin.json"},  # its tables and report are written by related.clone_tables
}
TABLE_FORMATS = (".csv", ".parquet")
BY_PATH = {("k_anonymized_output", "table")}  # loaded as the file's path: the twin may not fit in memory
# Output metadata copied into audit entries: figures and short labels, not the UI's markdown and JSON.
SCALAR_METADATA = (dg.IntMetadataValue, dg.FloatMetadataValue, dg.BoolMetadataValue, dg.TextMetadataValue)


@dataclass(frozen=True)
class ShardedTable:
    """A table stored as Parquet shards in `folder`; persisted as one file merged from them."""

    folder: Path


def asset_files(folder: Path, asset: str) -> dict[str, Path]:
    """The existing files of `asset` in a portfolio folder, by part (a table may be .csv or .parquet)."""
    found = {}
    for part, name in LAYOUT[asset].items():
        path = folder / name
        variants = [path.with_suffix(suffix) for suffix in TABLE_FORMATS] if path.suffix in TABLE_FORMATS else [path]
        existing = next((variant for variant in variants if variant.exists()), None)  # writes remove the other
        if existing is not None:
            found[part] = existing
    return found


def _plain(value: Any) -> Any:
    """Output metadata arrives as Dagster MetadataValue objects; audit rows want plain JSON."""
    return getattr(value, "value", value)


class PortfolioIOManager(dg.ConfigurableIOManager):
    """Files per portfolio partition; audit operations and lineage appended after each write."""

    storage: TwinStorage

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        asset, portfolio = context.asset_key.path[-1], context.partition_key
        run = context.step_context.dagster_run
        folder = self.storage.staged(portfolio, run)
        parts = LAYOUT[asset]
        values = {next(iter(parts)): obj} if len(parts) == 1 else obj
        table_format = _plain(context.output_metadata.get("table_format"))
        escape = _plain(context.output_metadata.get("escape_formulas"))
        written = {part: self._write(values[part], folder / name, table_format, escape is not False)
                   for part, name in parts.items()}
        hashes = {path.name: sha256_file(path) for path in written.values()}
        output_hash = hashes[next(iter(written.values())).name]
        head = self._audit(context, asset, portfolio, folder, output_hash, hashes)
        download = self.storage.portfolio_dir(portfolio)
        publish.link_late_outputs(download, folder, [path.name for path in written.values()])
        context.add_output_metadata({
            **{f"path {part}": dg.MetadataValue.path(str(download / path.name)) for part, path in written.items()},
            "sha256": dg.MetadataValue.json(hashes),
            "audit_head": dg.MetadataValue.json({key: head[key] for key in ("entries", "entry_hash", "lineage",
                                                                            "lineage_hash")}),
        })

    @staticmethod
    def _write(value: Any, target: Path, table_format: str | None, escape_formulas: bool) -> Path:
        if isinstance(value, (pd.DataFrame, ShardedTable)):
            if target.suffix == ".csv" and table_format == "parquet":
                target = target.with_suffix(".parquet")
            for stale in (target.with_suffix(suffix) for suffix in TABLE_FORMATS):
                if stale != target:
                    stale.unlink(missing_ok=True)
            if isinstance(value, ShardedTable):
                return merge_shards(value.folder, target, escape_formulas)
            return write_frame(value, target, escape_formulas)
        return write_json(value, target)

    def _audit(self, context: dg.OutputContext, asset: str, portfolio: str, folder: Path,
               output_hash: str, hashes: dict[str, str]) -> dict:
        """Audit operations declared on the asset, then its lineage row (inputs hashed as they are on disk);
        returns the chain's head after them."""
        declared = context.output_metadata
        inputs = {dep.asset_key.path[-1]: files for dep in context.asset_spec.deps
                  if (files := asset_files(folder, dep.asset_key.path[-1]))}
        input_hashes = {name: sha256_file(next(iter(files.values()))) for name, files in inputs.items()}
        input_hashes.update(_plain(declared.get("input_hashes")) or {})
        parameters = _plain(declared.get("parameters")) or {}
        data_hash = _plain(declared.get("data_hash")) or output_hash
        summary = {name: value.value for name, value in declared.items()
                   if isinstance(value, SCALAR_METADATA) and name != "data_hash"}
        log = self.storage.audit()
        for operation in context.definition_metadata.get("audit_operations", []):
            log.append(operation, portfolio, data_hash, {"asset": asset, "run_id": context.run_id, "files": hashes,
                                                         "parameters": parameters, **summary})
        log.record_lineage(portfolio=portfolio, asset=asset, run_id=context.run_id, input_hashes=input_hashes,
                           output_hash=output_hash, code_version=CODE_VERSION, parameters=parameters)
        return log.head()

    def load_input(self, context: dg.InputContext) -> Any:
        asset, portfolio = context.asset_key.path[-1], context.asset_partition_key
        folder = self.storage.staged(portfolio, context.step_context.dagster_run)
        files = asset_files(folder, asset)
        if set(files) != set(LAYOUT[asset]):
            raise dg.Failure(f"portfolio {portfolio} has no complete {asset} in {folder}: materialize {asset} first")
        values = {part: path if (asset, part) in BY_PATH else _read(path) for part, path in files.items()}
        return next(iter(values.values())) if len(values) == 1 else values


def _read(path: Path) -> Any:
    """JSON as its value, a Parquet table (the correlation matrix) as a frame; the twin is loaded BY_PATH."""
    return json.loads(path.read_text()) if path.suffix == ".json" else pd.read_parquet(path)


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
