"""What every asset of a twin shares: its group, partitions, code version, the DuckDB writer pool, and how a
broken contract fails a step."""

from contextlib import contextmanager

import dagster as dg

from ..errors import TwinError
from .io_manager import CODE_VERSION
from .partitions import portfolios
from .schemas import SchemaMismatch

GROUP = "digital_twin"
DUCKDB_POOL = "twin_duckdb"  # the step writing an asset appends to the DuckDB audit log, and DuckDB allows one writer
TWIN_ASSET = {"partitions_def": portfolios, "group_name": GROUP, "code_version": CODE_VERSION}


def audited(*operations: str) -> dict:
    """Asset metadata naming the audit operations the IO manager appends when it writes the asset."""
    return {"audit_operations": list(operations)}


def twin_asset(*audit_operations: str, **kwargs):
    """An asset of the digital twin: partitioned per portfolio, in the DuckDB writer pool, audited on write."""
    return dg.asset(pool=DUCKDB_POOL, metadata=audited(*audit_operations), **TWIN_ASSET, **kwargs)


@contextmanager
def contract():
    """Fail the step with the contract's message (every broken column and check, or the input problem naming its
    file), not a stack trace."""
    try:
        yield
    except (SchemaMismatch, TwinError) as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
