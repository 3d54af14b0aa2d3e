"""A portfolio of related tables (a landed bundle, see bundles.py) cloned by `related.clone_tables` as one asset.

`related_twin` (partitioned by the `bundles` set, apart from the single-table portfolios) keeps the bundle as a
private raw copy, clones every table with valid foreign keys into
`<data>/portfolios/<key>/` (`<table>.csv` per table and `quality_report.json`), and returns a manifest that the
IO manager writes as `related_twin.json` and audits (UPLOAD_INGESTED ... QUALITY_REPORTED) with its lineage,
as it does for the single-table assets. The blocking check recounts the foreign keys from the written files.
"""

from datetime import datetime, timezone
from typing import Optional

import dagster as dg
import pandas as pd
from pydantic import Field

from .. import related
from ..tables import read_table
from .bundles import bundle_sha256, read_spec
from .checks import per_portfolio_check, publication
from .io_manager import publish_portfolio
from .display import markdown_table
from .raw import keep_raw_bundle
from .resources import TwinStorage
from .audit_trail import audit_facts
from .partitions import bundle_portfolios
from .shared import twin_asset


class RelatedConfig(dg.Config):
    """A bundle to clone; the clone parameters default to its relationships.json (then to the CLI's defaults)."""

    source: str = Field(default="", description="Bundle (folder or .zip) to ingest; empty: the kept raw copy")
    scale: Optional[float] = Field(default=None, description="Rows of each table = scale x its real rows")
    seed: Optional[int] = Field(default=None, description="Random seed; the same seed gives the same twin")
    k: Optional[int] = Field(default=None, description="k-anonymity target of every table")


@twin_asset("UPLOAD_INGESTED", "CLONE_INITIATED", "SAMPLE_GENERATED", "K_ANONYMITY_ENFORCED", "QUALITY_REPORTED",
            files={"manifest": "related_twin.json"}, partitions_def=bundle_portfolios, kinds={"csv"})
def related_twin(context: dg.AssetExecutionContext, config: RelatedConfig, storage: TwinStorage) -> dg.Output[dict]:
    """A landed bundle of related tables (CSVs + relationships.json) cloned together: parents first, children
    drawn conditioned on their synthetic parent, each table protected (k-anonymity, no copies) so every foreign
    key references a synthetic parent. Writes <table>.csv per table and quality_report.json (valid foreign keys
    and the KS of children per parent, per relationship); the real tables stay in raw/<key>/ (0700/0600)."""
    portfolio = context.partition_key
    raw = keep_raw_bundle(storage, portfolio, config.source)
    spec = read_spec(raw, raw)
    options = spec.options(scale=config.scale, seed=config.seed, k=config.k)
    folder = storage.staged(portfolio, context.run)
    result = related.clone_tables(list(spec.tables.values()), folder, spec.relationships, options,
                                  primary_keys=spec.primary_keys, progress=context.log.info)
    sha = bundle_sha256(raw)
    relations = {f"{c}->{p}": result["reports"][f"{c}->{p}"] for c, _, p, _ in spec.relationships}
    manifest = {"portfolio": portfolio, "source": config.source or None, "sha256": sha,
                "tables": result["tables"], "relationships": [list(r) for r in spec.relationships],
                "primary_keys": spec.primary_keys, "options": options.to_dict(), "outputs": result["outputs"],
                "relations": relations, "cloned_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return dg.Output(manifest, metadata={
        **audit_facts(options.to_dict(), source={"bundle": sha}),
        "tables": len(result["tables"]), "rows": sum(result["tables"].values()),
        "valid_foreign_keys": min(r["valid_foreign_keys"] for r in relations.values()),
        "children_per_parent_ks": max(r["children_per_parent_ks"] for r in relations.values()),
        "raw_copy": dg.MetadataValue.path(str(raw)),
        "relations": dg.MetadataValue.md(markdown_table(pd.DataFrame(
            [{"relationship": name, **figures} for name, figures in relations.items()]))),
        "rows_per_table": dg.MetadataValue.md(markdown_table(pd.DataFrame(
            {"table": list(result["tables"]), "rows": list(result["tables"].values())}))),
    })


@per_portfolio_check(asset=related_twin, blocking=True, partitions_def=bundle_portfolios,
                     description="Every foreign key of the stored twin references a synthetic parent "
                                 "(recounted from the written tables).")
def foreign_keys_valid(context: dg.AssetCheckExecutionContext, storage: TwinStorage,
                       related_twin: dict) -> dg.AssetCheckResult:
    """Recount the foreign keys of the run's written tables; publish them (all at once) only if none is orphaned."""
    portfolio = related_twin["portfolio"]
    orphans, child_rows = orphan_foreign_keys(storage.staged(portfolio, context.run), related_twin)
    passed = not any(orphans.values())
    outcome = publication(storage, portfolio, passed)
    if passed:
        published = publish_portfolio(storage, portfolio, context.run)
        outcome = f"published version {published['version']} at {storage.portfolio_dir(portfolio)}"
    return dg.AssetCheckResult(passed=passed, metadata={
        "orphan_foreign_keys": dg.MetadataValue.json(orphans),
        "child_rows": child_rows, "publication": outcome,
    })


def orphan_foreign_keys(folder, related_twin: dict) -> tuple[dict[str, int], int]:
    """Per relationship, the foreign keys of the tables written in `folder` that reference no parent; and the
    child rows counted."""
    tables = {name: read_table(folder / f"{name}.csv") for name in related_twin["tables"]}
    orphans = {}
    for child, foreign_key, parent, primary_key in related_twin["relationships"]:
        keys = tables[child][foreign_key]
        orphans[f"{child}.{foreign_key}->{parent}.{primary_key}"] = int((~keys.isin(tables[parent][primary_key])).sum())
    return orphans, sum(len(tables[child]) for child, *_ in related_twin["relationships"])


RELATED_ASSETS = [related_twin]
RELATED_CHECKS = [foreign_keys_valid]

clone_related_portfolio = dg.define_asset_job(
    "clone_related_portfolio", selection=dg.AssetSelection.assets(related_twin),
    description="Clone one bundle of related tables (folder or zip with relationships.json) with valid foreign keys.",
)
