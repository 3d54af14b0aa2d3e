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

Shard steps write into `shards/` of the run's own version of the portfolio (see publish.py: a re-execution's
version starts with the shards its parent made, so only the failed ones are made again). The collect step
checks that every planned shard is there, removes any other (a smaller twin than the version it started from),
and returns the set's manifest: the asset's one value, which the IO manager writes (shards.json) and audits as
SAMPLE_GENERATED, once per portfolio. The set is published with the rest of the run's outputs, after the
blocking checks. No step is in a concurrency pool, so the shard steps run in parallel.
"""

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
from .audit_trail import audit_facts
from .shared import contract, twin_asset

STEP_IO = "step_io_manager"
SHARDS = "shards"  # the shard folder inside a version of the portfolio
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
    folder = storage.staged(context.partition_key, context.run) / SHARDS
    made = shards.make_shard(GaussianCopulaEngine.from_dict(fitted_marginals), load_real(storage, manifest),
                             options_of(manifest), planned, folder)
    path = folder / planned.file_name
    with contract():
        conform(pd.read_parquet(path), schema_from_dict(raw_upload["schema"]), f"shard {planned.index} of the twin")
    return {**made, "file": planned.file_name, "sha256": sha256_file(path)}


@dg.op
def publish_shards(context: dg.OpExecutionContext, storage: TwinStorage, raw_upload: dict,
                   made: list[dict]) -> dg.Output[dict]:
    """Check the run's shard set is complete; return the set's manifest and merged figures."""
    made = sorted(made, key=lambda item: item["shard"])
    link = complete_set(storage.staged(context.partition_key, context.run) / SHARDS, context.partition_key, made)
    manifest = raw_upload["manifest"]
    value = {"shard_rows": manifest.get("shard_rows", shards.SHARD_ROWS), "rows": sum(item["rows"] for item in made),
             "shards": [{key: item[key] for key in ("file", "rows", "sha256")} for item in made],
             "protection": pipeline.combine_protection(made)}
    first = next(pq.ParquetFile(link / made[0]["file"]).iter_batches(batch_size=PREVIEW_ROWS)).to_pandas()
    return dg.Output(value, metadata={
        "rows": value["rows"], "shards": len(made), **audit_facts(manifest["options"]),
        "rows_suppressed": value["protection"]["k_anonymity"]["records_suppressed"],
        "path shards": dg.MetadataValue.path(str(link)), "preview": dg.MetadataValue.md(markdown_table(first)),
    })


def complete_set(folder: Path, portfolio: str, made: list[dict]) -> Path:
    """The run's shard folder holding exactly the shards made; others (left from a larger twin) are removed."""
    present = {path.name: path for path in folder.glob("shard-*.parquet")}
    missing = sorted(item["file"] for item in made if item["file"] not in present)
    if missing:
        raise dg.Failure(f"portfolio {portfolio}: shard file(s) {', '.join(missing)} are missing from {folder}: "
                         "rerun the portfolio")
    for name in set(present) - {item["file"] for item in made}:
        present[name].unlink()
    return folder


@twin_asset("SAMPLE_GENERATED", files={"shards": "shards.json"}, decorator=dg.graph_asset, kinds={"parquet"})
def synthetic_sample(raw_upload: dict, fitted_marginals: dict):
    """The twin as Parquet shards (`shards/shard-NNNNN.parquet`, manifest `shards.json`): each shard sampled
    from the model and protected in its own step (copies of real rows replaced, rare strings pooled, every
    quasi-identifier combination shared by at least k rows of the shard, so of the union too), with a seed
    from (portfolio seed, shard index); every shard validated against the upload's schema."""
    made = plan_shards(raw_upload).map(lambda shard: make_shard(raw_upload, fitted_marginals, shard))
    return publish_shards(raw_upload, made.collect())
