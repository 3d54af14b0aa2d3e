"""The six assets of a portfolio's digital twin: thin Dagster bodies over `twin_pipeline.pipeline` and `shards`.

Value shapes (persisted by `PortfolioIOManager` as the files each asset declares with `twin_asset(files=...)`):
  raw_upload           {"manifest", "schema"}: where the immutable raw copy is, its SHA-256, the resolved clone
                       parameters (quasi-identifiers included, so every shard protects the same columns), the
                       shard size, and the pandera schema of the upload. Real rows never leave raw/<key>/:
                       steps that need them read the copy through the manifest.
  fitted_marginals     the fitted model as the engine's own JSON (`GaussianCopulaEngine.to_dict`): marginals
                       and the latent correlation they were fitted with, one consistent artifact that
                       `GaussianCopulaEngine.load(model.json)` opens outside Dagster too.
  correlation_matrix   the model's latent correlation as a table, for the catalog and its own contract.
  synthetic_sample     the protected twin as Parquet shards, one step per shard (see shard_steps.py); its value
                       is the shard set's manifest (files, rows, SHA-256, protection figures added up).
  k_anonymized_output  {"table", "protection"}: the product (synthetic.csv|parquet) merged from the shards after
                       DuckDB recounted k and copies over all of them, and how it was protected.
  quality_report       {"quality", "privacy"}: quality_report.json and privacy_report.json.
  privacy_audit        the attacker audit (privacy_audit.json), after the product: see privacy_audit.py.
"""


from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from .. import pipeline
from ..engine import GaussianCopulaEngine
from ..report.html import DIFFERENCE_LIMIT
from ..tables import read_table, sha256_file
from .config import CloneConfig, check_request
from .display import heatmap_markdown, images_markdown, inline_figures, markdown_table, rounded
from .audit_trail import audit_facts
from .io_manager import ShardedTable
from .privacy_audit import privacy_audit, runs_in_this_run
from .raw import MANIFEST, delete_raw_audited, keep_raw_copy, load_real, options_of
from .resources import ShardReader, TwinStorage
from .schemas import CORRELATION_SCHEMA, conform, infer_twin_schema, marginals_summary, quality_columns, schema_to_dict
from .shard_steps import SHARDS, synthetic_sample
from .shared import contract, twin_asset


def _engine(model: dict) -> GaussianCopulaEngine:
    return GaussianCopulaEngine.from_dict(model)


@twin_asset("UPLOAD_INGESTED", "CLONE_INITIATED", files={"manifest": MANIFEST, "schema": "schema.json"},
            kinds={"pandera"})
def raw_upload(context: dg.AssetExecutionContext, config: CloneConfig, storage: TwinStorage) -> dg.Output[dict]:
    """The landed table, validated, kept as an immutable copy (0700/0600) with its SHA-256; records the
    clone parameters every later step uses (quasi-identifiers resolved here once, so every shard protects
    the same columns) and infers the pandera schema every twin must match."""
    portfolio = context.partition_key
    copy = keep_raw_copy(storage, portfolio, config.source)
    real = read_table(copy)
    options = config.to_options()
    rows = check_request(real, options, copy)
    pipeline.check_disk_space(storage.portfolio_dir(portfolio), rows, copy.stat().st_size / max(len(real), 1), copy)
    options = pipeline.pin_quasi_identifiers(real, options)
    sha = sha256_file(copy)
    schema = infer_twin_schema(real.drop(columns=pipeline.dropped_columns(real, options)),  # the twin's columns
                               options.k, options.primary_key, name=f"the schema of upload {portfolio}")
    manifest = {"portfolio": portfolio, "file_name": copy.name, "source": config.source or None, "sha256": sha,
                "rows": len(real), "columns": [str(c) for c in real.columns], "target_rows": rows,
                "options": options.to_dict(), "shard_rows": config.shard_rows, "delete_raw": config.delete_raw,
                "ingested_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return dg.Output({"manifest": manifest, "schema": schema_to_dict(schema)}, metadata={
        **audit_facts(manifest["options"], source={"upload": sha}),
        "rows": len(real), "columns": real.shape[1], "target_rows": rows, "raw_copy": dg.MetadataValue.path(str(copy)),
        "schema": dg.MetadataValue.md(markdown_table(pd.DataFrame(
            {"column": real.columns.astype(str), "dtype": real.dtypes.astype(str).to_numpy()}))),
    })


@twin_asset("MODEL_FITTED", files={"model": "model.json"}, kinds={"json"})
def fitted_marginals(storage: TwinStorage, raw_upload: dict) -> dg.Output[dict]:
    """The fitted Gaussian-copula model (engine JSON, statistical summaries only): one marginal family per
    column, chosen by goodness of fit, and the latent correlation joining them."""
    manifest = raw_upload["manifest"]
    engine = pipeline.fit_model(load_real(storage, manifest), options_of(manifest))
    with contract():
        summary = marginals_summary(engine.describe())
    return dg.Output(engine.to_dict(), metadata={
        "columns": len(summary), "copula_variables": len(engine.variables), **audit_facts(manifest["options"]),
        "marginal_families": dg.MetadataValue.md(markdown_table(summary)),
    })


@twin_asset(files={"matrix": "correlation_matrix.parquet"}, kinds={"parquet"})
def correlation_matrix(fitted_marginals: dict) -> dg.Output[pd.DataFrame]:
    """The model's latent (normal-score) correlation between variables; symmetric, unit diagonal, PSD."""
    matrix = _engine(fitted_marginals).correlation_matrix
    with contract():
        conform(matrix, CORRELATION_SCHEMA, "the latent correlation")
    return dg.Output(matrix.rename_axis("variable").reset_index(), metadata={
        "variables": len(matrix), "heatmap": dg.MetadataValue.md(heatmap_markdown({"latent correlation": matrix})),
    })


@twin_asset("K_ANONYMITY_ENFORCED", files={"table": "synthetic.csv", "protection": "protection_report.json"},
            kinds={"csv"})
def k_anonymized_output(context: dg.AssetExecutionContext, storage: TwinStorage, shard_reader: ShardReader,
                        raw_upload: dict, synthetic_sample: dict) -> dg.Output[dict]:
    """The product: the protected shards merged into one synthetic.csv (Parquet when large or asked for), one
    shard in memory at a time, after DuckDB recounted k and the copies of real rows over all shards together,
    out of core. Audited once per portfolio as K_ANONYMITY_ENFORCED, with the recounted k."""
    manifest = raw_upload["manifest"]
    options = options_of(manifest)
    folder = storage.staged(context.partition_key, context.run) / SHARDS
    real = load_real(storage, manifest)
    verified = shard_reader.verify(folder, real, list(options.quasi_identifiers),
                                   pipeline.key_columns(real, options), options.k)
    protection = {**synthetic_sample["protection"], "verified": verified}
    table_format = options.output_format or ("parquet" if verified["rows"] >= pipeline.PARQUET_FROM_ROWS else "csv")
    return dg.Output({"table": ShardedTable(folder), "protection": protection}, metadata={
        "rows": verified["rows"], "k": verified["k"], "exact_copies": verified["exact_matches"],
        "rare_record_copies": verified["rare_record_copies"],
        "rows_suppressed": protection["k_anonymity"]["records_suppressed"], "shards": len(synthetic_sample["shards"]),
        "quasi_identifiers": ", ".join(protection["quasi_identifiers"]) or "(none)", "table_format": table_format,
        "escape_formulas": options.escape_formulas, "csv_dialect": real.attrs.get("csv_dialect") or {},
        **audit_facts(manifest["options"]),
    })


@twin_asset("QUALITY_REPORTED", files={"quality": "quality_report.json", "privacy": "privacy_report.json"},
            kinds={"json"})
def quality_report(context: dg.AssetExecutionContext, storage: TwinStorage, shard_reader: ShardReader,
                   raw_upload: dict, fitted_marginals: dict, k_anonymized_output: dict) -> dg.Output[dict]:
    """How close the protected twin is to the real table (similarity score, KS, category match,
    correlations, measured on a uniform sample of at most `quality_sample_rows` twin rows read shard by
    shard) and how private (exact copies and k recounted over the whole twin, distance to closest record; the
    attacker audit is the `privacy_audit` asset). Deletes the raw upload afterwards when the clone asked for it
    and the audit, the last step that needs real rows, is not in the run."""
    manifest = raw_upload["manifest"]
    options = options_of(manifest)
    protection = k_anonymized_output["protection"]
    real = load_real(storage, manifest)
    twin = shard_reader.sample(storage.staged(context.partition_key, context.run) / SHARDS, options.seed)
    quality, privacy = pipeline.report(real, twin, _engine(fitted_marginals), options, protection,
                                       protection["verified"])
    quality.update(pipeline.reference_quality(pipeline.comparable(real, twin), options))
    with contract():
        columns = quality_columns(quality)
    # PNG: the asset page shows the heatmaps inline, and the UI's markdown is for PNG.
    page, figures = pipeline.report_page(storage.portfolio_dir(context.partition_key) / "report.html", real, twin,
                                         quality, privacy, options, title=context.partition_key, image_format="png")
    metadata = {
        **_score_metadata(quality), "rows_real": len(real), "rows_twin": protection["verified"]["rows"],
        "rows_compared": len(twin), **audit_facts(manifest["options"]),
        "report": dg.MetadataValue.path(str(page)),
        **{name: dg.MetadataValue.md(text) for name, text in inline_figures(  # shown on the asset page itself
            pipeline.comparable(real, twin), twin, quality, options.primary_key, options.column_kinds or None).items()},
        "correlation_heatmap": dg.MetadataValue.md(images_markdown(
            {f"{title} correlation": image for title, image in figures.heatmaps.items()},
            f"Pearson correlations, labelled; difference panel full colour at ±{DIFFERENCE_LIMIT:g}. "
            f"Open {page} for every column.")),
        "ks_statistics": dg.MetadataValue.md(markdown_table(_metric(columns, "ks_statistic", "KS D"))),
        "category_match": dg.MetadataValue.md(markdown_table(_metric(columns, "category_match", "1 - TVD"))),
    }
    if manifest["delete_raw"] and not runs_in_this_run(context):  # else the audit deletes it after its attack
        metadata.update(delete_raw_audited(context, storage, manifest))
    return dg.Output({"quality": quality, "privacy": privacy}, metadata=metadata)


def _metric(columns: pd.DataFrame, metric: str, label: str) -> pd.DataFrame:
    chosen = columns[columns["metric"] == metric]
    return pd.DataFrame({"column": chosen["column"].to_numpy(), label: chosen["value"].to_numpy()})


def _score_metadata(quality: dict) -> dict:
    """The headline figures, rounded as people read them: scores to 0.1, errors and AUCs to 0.001."""
    holdout, utility = quality.get("holdout") or {}, quality.get("utility") or {}
    figures = {"similarity_score": rounded(quality["similarity_score"]),
               "correlation_error": rounded(quality["correlation_error"], 3),
               "quality_vs_ceiling": rounded(quality.get("quality_vs_ceiling")),
               "holdout_ceiling": rounded(holdout.get("ceiling")),
               "twin_vs_holdout": rounded(holdout.get("twin_vs_holdout"))}
    if "gap" in utility:
        figures.update({"tstr_target": utility["target"], f"tstr_{utility['metric']}_real": rounded(utility["real"], 3),
                        f"tstr_{utility['metric']}_twin": rounded(utility["twin"], 3),
                        "tstr_gap": rounded(utility["gap"], 3)})
    else:
        figures["tstr"] = utility.get("skipped", "not measured")
    return {name: value for name, value in figures.items() if value is not None}


ASSETS = [raw_upload, fitted_marginals, correlation_matrix, synthetic_sample, k_anonymized_output, quality_report,
          privacy_audit]

clone_portfolio = dg.define_asset_job(
    "clone_portfolio", selection=dg.AssetSelection.assets(*ASSETS),
    description="Clone one portfolio end to end: ingest, fit, sample, protect, report (with the asset checks), "
                "then the attacker audit (its failure does not fail the clone).",
)
