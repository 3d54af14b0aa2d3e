"""`synthetic_sample` as Dagster steps: one step per shard, fanned out with DynamicOut, collected into one
published shard set.

Why a graph-backed asset with a dynamic fan-out rather than a second partition dimension: how many shards a
twin has follows from the portfolio's target_rows, known only once raw_upload has run; a shard is nothing a
user materializes, backfills or inspects alone (the privacy guarantee and its checks are about the whole set);
and a rerun must replace all of a portfolio's shards at once. So the catalog keeps one asset per stage, and
inside the portfolio's run each shard is a step of its own: its own process under the multiprocess executor,
its own pod under k8s_job_executor, its own task under celery_executor. A shard step calls
`shards.make_shard`, whose seed comes from (portfolio seed, shard index) only, so where a shard runs changes
no byte of the twin.

Shard steps write into `shard-sets/<run id>/` of the portfolio. The collect step then points the portfolio's
`shards` link at the complete set in one atomic rename (a reader sees the old set or the new one, never a
mix), deletes the other sets, and returns the set's manifest: the asset's one value, which the IO manager
writes (shards.json) and audits as SAMPLE_GENERATED, once per portfolio. Only the collect step is in the
DuckDB writer pool, so the shard steps run in parallel.
"""

import os
import shutil
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from .. import pipeline, shards
from ..engine import GaussianCopulaEngine
from ..tables import sha256_file
from .display import markdown_table
from .raw import load_real, options_of
from .resources import TwinStorage
from .schemas import conform, schema_from_dict
from .shared import DUCKDB_POOL, TWIN_ASSET, audited, contract

STEP_IO = "step_io_manager"
PREVIEW_ROWS = 5


@dg.op(out=dg.DynamicOut(dict, io_manager_key=STEP_IO))
def plan_shards(raw_upload: dict):
    """One dynamic output per shard of the portfolio's target_rows, `shard_rows` rows each (the last fewer)."""
    manifest = raw_upload["manifest"]
    for shard in shards.plan_shards(manifest["target_rows"], manifest.get("shard_rows", shards.SHARD_ROWS)):
        yield dg.DynamicOutput(asdict(shard), mapping_key=f"shard_{shard.index:05d}")


@dg.op(out=dg.Out(dict, io_manager_key=STEP_IO))
def make_shard(context: dg.OpExecutionContext, storage: TwinStorage, raw_upload: dict, fitted_marginals: dict,
               shard: dict) -> dict:
    """Sample and protect one shard (k-anonymous and copy-free by itself), write it as Parquet into this run's
    shard set, and hold it to the upload's schema; returns its protection figures and its file's SHA-256."""
    manifest = raw_upload["manifest"]
    planned = shards.Shard(**shard)
    folder = storage.shard_set(context.partition_key, context.run_id)
    made = shards.make_shard(GaussianCopulaEngine.from_dict(fitted_marginals), load_real(storage, manifest),
                             options_of(manifest), planned, folder)
    path = folder / planned.file_name
    with contract():
        conform(pd.read_parquet(path), schema_from_dict(raw_upload["schema"]), f"shard {planned.index} of the twin")
    return {**made, "set": context.run_id, "file": planned.file_name, "sha256": sha256_file(path)}


@dg.op(pool=DUCKDB_POOL)
def publish_shards(context: dg.OpExecutionContext, storage: TwinStorage, raw_upload: dict,
                   made: list[dict]) -> dg.Output[dict]:
    """Make the complete shard set the portfolio's `shards`; return the set's manifest and merged figures."""
    made = sorted(made, key=lambda item: item["shard"])
    link = publish(storage, context.partition_key, context.run_id, made)
    manifest = raw_upload["manifest"]
    value = {"shard_rows": manifest.get("shard_rows", shards.SHARD_ROWS), "rows": sum(item["rows"] for item in made),
             "shards": [{key: item[key] for key in ("file", "rows", "sha256")} for item in made],
             "protection": pipeline.combine_protection(made)}
    first = next(pq.ParquetFile(link / made[0]["file"]).iter_batches(batch_size=PREVIEW_ROWS)).to_pandas()
    return dg.Output(value, metadata={
        "rows": value["rows"], "shards": len(made), "parameters": manifest["options"],
        "rows_suppressed": value["protection"]["k_anonymity"]["records_suppressed"],
        "path shards": dg.MetadataValue.path(str(link)), "preview": dg.MetadataValue.md(markdown_table(first)),
    })


def publish(storage: TwinStorage, portfolio: str, run_id: str, made: list[dict]) -> Path:
    """Point the portfolio's `shards` link at the shard set of `run_id` atomically, then delete every other set.

    A re-execution from failure reruns only the failed shard steps: the shards its parent run made are
    hard-linked into this run's set first, so the published set is always one folder."""
    target = storage.shard_set(portfolio, run_id)
    target.mkdir(parents=True, exist_ok=True)
    for item in made:
        earlier = storage.shard_set(portfolio, item["set"]) / item["file"]
        if item["set"] != run_id and earlier.exists() and not (target / item["file"]).exists():
            os.link(earlier, target / item["file"])
    missing = sorted({item["file"] for item in made} - {path.name for path in target.glob("shard-*.parquet")})
    if missing:
        raise dg.Failure(f"portfolio {portfolio}: shard file(s) {', '.join(missing)} are gone from {target.parent} "
                         "(another run of this portfolio replaced them): rerun the portfolio")
    link = storage.shards_dir(portfolio)
    staged = link.with_name(f".{link.name}.{run_id}.tmp")
    staged.unlink(missing_ok=True)
    os.symlink(Path(target.parent.name, target.name), staged)  # relative: the data directory may move
    os.replace(staged, link)
    for other in target.parent.iterdir():
        if other != target:
            shutil.rmtree(other)
    return link


@dg.graph_asset(**TWIN_ASSET, metadata=audited("SAMPLE_GENERATED"), kinds={"parquet"})
def synthetic_sample(raw_upload: dict, fitted_marginals: dict):
    """The twin as Parquet shards (`shards/shard-NNNNN.parquet`, manifest `shards.json`): each shard sampled
    from the model and protected in its own step (copies of real rows replaced, rare strings pooled, every
    quasi-identifier combination shared by at least k rows of the shard, so of the union too), with a seed
    from (portfolio seed, shard index); every shard validated against the upload's schema."""
    made = plan_shards(raw_upload).map(lambda shard: make_shard(raw_upload, fitted_marginals, shard))
    return publish_shards(raw_upload, made.collect())
