"""The one hook that audits a twin's assets: after an asset's files are written, `AuditTrail.record` appends the
audit operations the asset declares and its lineage row (input hashes, output hash, code version, parameters).

Why at the write: the audit entry names the files by their SHA-256, which exist only once written. The files go
into the run's unpublished version of the portfolio (publish.py) and are published by the blocking checks after
the asset's step, so an entry is always in the trail before the outputs it describes are at a download path.
What an entry says is declared where the asset is: its operations by `twin_asset(...)` (definition metadata
`twin/audit`), its clone parameters and the source it read by `audit_facts(...)` in its output; the figures the
asset shows on its page (numbers and short labels) are copied into the entry.

No Dagster pool guards the write: DuckDB allows one writer per file, and `AuditLog` waits for it (`lock_timeout`),
so only the audit write of concurrent steps is serialised, never their fits or samples.
"""

from __future__ import annotations

from importlib import metadata as package_metadata
from pathlib import Path

import dagster as dg

from ..tables import sha256_file
from .layout import FILES, files_in, files_of
from .resources import TwinStorage

try:
    CODE_VERSION = package_metadata.version("twin-pipeline")
except package_metadata.PackageNotFoundError:  # running from a source checkout that is not installed
    CODE_VERSION = "0+source"

AUDIT = "twin/audit"  # definition metadata: the audit operations an asset's write appends
FACTS = "audit"  # output metadata: what the write's audit entry records besides the files
# Output metadata copied into audit entries: figures and short labels, not the UI's markdown and JSON.
SCALAR_METADATA = (dg.IntMetadataValue, dg.FloatMetadataValue, dg.BoolMetadataValue, dg.TextMetadataValue)


def audit_operations(*operations: str) -> dict:
    """Definition metadata of an asset whose write is audited as `operations` (in this order)."""
    return {AUDIT: list(operations)}


def audit_facts(parameters: dict, source: dict[str, str] | None = None) -> dict:
    """Output metadata for the write's audit entry: the clone parameters, and for an asset that reads a landed
    file or bundle, its SHA-256 by name (e.g. {"upload": sha}): the entry's data hash and one of its inputs."""
    return {FACTS: dg.MetadataValue.json({"parameters": parameters, "source": source or {}})}


class AuditTrail(dg.ConfigurableResource):
    """Appends an asset's audit operations and lineage to the portfolio audit log after its files are written."""

    storage: TwinStorage

    def record(self, context: dg.OutputContext, folder: Path, hashes: dict[str, str]) -> dict:
        """Audit the write of `context`'s asset whose files (in `folder`, SHA-256 by file name, the value's first)
        were just written; returns the head of the audit chain after it."""
        asset, portfolio = context.asset_key.path[-1], context.partition_key
        output_metadata = context.output_metadata
        facts = getattr(output_metadata.get(FACTS), "value", None) or {"parameters": {}, "source": {}}
        output_hash = next(iter(hashes.values()))
        input_hashes = {**self._input_hashes(context, folder), **facts["source"]}
        data_hash = next(iter(facts["source"].values()), output_hash)
        summary = {name: value.value for name, value in output_metadata.items() if isinstance(value, SCALAR_METADATA)}
        log = self.storage.audit()
        for operation in context.definition_metadata.get(AUDIT, []):
            log.append(operation, portfolio, data_hash, {"asset": asset, "run_id": context.run_id, "files": hashes,
                                                         "parameters": facts["parameters"], **summary})
        log.record_lineage(portfolio=portfolio, asset=asset, run_id=context.run_id, input_hashes=input_hashes,
                           output_hash=output_hash, code_version=CODE_VERSION, parameters=facts["parameters"])
        return log.head()

    @staticmethod
    def _input_hashes(context: dg.OutputContext, folder: Path) -> dict[str, str]:
        """The SHA-256 of each upstream asset's (first) file as it is on disk in the run's version."""
        graph = context.step_context.job_def.asset_layer.asset_graph
        hashes = {}
        for dep in context.asset_spec.deps:
            if not graph.has(dep.asset_key) or FILES not in graph.get(dep.asset_key).metadata:
                continue
            found = files_in(folder, files_of(graph.get(dep.asset_key).metadata))
            if found:
                hashes[dep.asset_key.path[-1]] = sha256_file(next(iter(found.values())))
        return hashes

