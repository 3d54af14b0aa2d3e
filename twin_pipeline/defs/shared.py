"""What every asset of a twin shares: its group, partitions, code version, the files it is persisted as, the audit
operations its write appends, and how a broken contract fails a step."""

from contextlib import contextmanager

import dagster as dg

from ..errors import TwinError
from .audit_trail import CODE_VERSION, audit_operations
from .layout import persisted_as
from .partitions import portfolios
from .schemas import SchemaMismatch

GROUP = "digital_twin"


def twin_metadata(files: dict[str, str], *audit: str) -> dict:
    """Definition metadata of a twin asset: the files its value is written as (part -> name, see layout.py) and
    the audit operations its write appends (see audit_trail.py); both are shown on the asset's page."""
    return {**persisted_as(**files), **audit_operations(*audit)}


def twin_asset(*audit: str, files: dict[str, str], partitions_def: dg.PartitionsDefinition = portfolios,
               decorator=dg.asset, **kwargs):
    """An asset of the digital twin (`decorator`: dg.asset or dg.graph_asset): partitioned per portfolio (or
    per bundle), written as `files` and audited as `audit` when written. In no concurrency pool: only the audit
    write is serialised (AuditLog waits for DuckDB's single writer), so portfolios fit and sample in parallel."""
    return decorator(metadata=twin_metadata(files, *audit), partitions_def=partitions_def, group_name=GROUP,
                     code_version=CODE_VERSION, **kwargs)


@contextmanager
def contract():
    """Fail the step with the contract's message (every broken column and check, or the input problem naming its
    file), not a stack trace."""
    try:
        yield
    except (SchemaMismatch, TwinError) as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
