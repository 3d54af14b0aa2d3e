"""Asset checks: is the twin safe enough to ship (blocking) and good enough to use (warnings)?

The privacy checks recount from the stored twin, as it will be published, rather than trusting the figures of
the steps that made it: DuckDB counts k and the copies of real rows over all shards together, out of core, in
one pass for both checks. Blocking checks stop `quality_report`, and so the run's publication: a twin that
fails one is never at the download path, and the previously published twin (if any) stays there.
"""


import math
import warnings

import dagster as dg
import pandas as pd

from .. import pipeline, publish
from ..pipeline import audit_summary
from .assets import k_anonymized_output, quality_report
from .privacy_audit import privacy_audit
from .partitions import portfolios
from .raw import load_real, options_of
from .resources import ShardReader, TwinStorage
from .schemas import SchemaMismatch, conform, schema_from_dict
from .io_manager import publish_portfolio
from .shard_steps import SHARDS

MIN_SIMILARITY = 85.0
MAX_CORRELATION_ERROR = 0.10
MINED_BREAK_WORST = 0.01  # share of twin rows breaking the worst mined rule that holds on every real row
MINED_BREAK_MEAN = 0.001
WITH_UPLOAD = {"raw_upload": dg.AssetIn("raw_upload")}
PREVIEW_WARNING = "Specifying a partitions_def on an AssetCheckSpec"


def per_portfolio_check(partitions_def: dg.PartitionsDefinition = portfolios, **kwargs):
    """A check of one portfolio partition: without a partitions_def, a check of a partitioned asset loads every
    portfolio at once. Partitioned checks are a Dagster preview feature; its warning is silenced here only."""
    def decorate(function):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=PREVIEW_WARNING)
            return dg.asset_check(partitions_def=partitions_def, **kwargs)(function)
    return decorate


def _privacy_spec(name: str, description: str) -> dg.AssetCheckSpec:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PREVIEW_WARNING)
        return dg.AssetCheckSpec(name, asset=k_anonymized_output, blocking=True, partitions_def=portfolios,
                                 additional_deps=["raw_upload"], description=description)


@dg.multi_asset_check(specs=[
    _privacy_spec("k_anonymity_at_least_k", "Every combination of quasi-identifier values occurs in at least k rows "
                                            "of the twin (recounted over all shards in DuckDB)."),
    _privacy_spec("no_exact_copies", "No row of the twin equals a rare real record: a combination of values (keys "
                                     "aside) that fewer than k real rows share (recounted over all shards in DuckDB)."),
], ins={"k_anonymized_output": dg.AssetIn("k_anonymized_output"), **WITH_UPLOAD})
def privacy_recount(context: dg.AssetCheckExecutionContext, storage: TwinStorage, shard_reader: ShardReader,
                    k_anonymized_output: dict, raw_upload: dict):
    manifest = raw_upload["manifest"]
    portfolio = manifest["portfolio"]
    options = options_of(manifest)
    quasi_identifiers = k_anonymized_output["protection"]["quasi_identifiers"]
    real = load_real(storage, manifest)
    verified = shard_reader.verify(storage.staged(portfolio, context.run) / SHARDS, real, quasi_identifiers,
                                   pipeline.key_columns(real, options), options.k)
    smallest = verified["k"]
    k_passed = smallest is None or smallest >= options.k
    copies_passed = verified["rare_record_copies"] == 0
    outcome = {"publication": publication(storage, portfolio, k_passed and copies_passed)}
    yield dg.AssetCheckResult(check_name="k_anonymity_at_least_k", passed=k_passed,
                              metadata={"smallest_group": smallest if smallest is not None else "no quasi-identifier",
                                        "k": options.k, "rows": verified["rows"],
                                        "quasi_identifiers": ", ".join(quasi_identifiers) or "(none)", **outcome})
    yield dg.AssetCheckResult(check_name="no_exact_copies", passed=copies_passed, metadata={
        "exact_copies": verified["exact_matches"], "exact_copy_rate": verified["exact_match_rate"],
        "rare_record_copies": verified["rare_record_copies"],
        "rows": verified["rows"], **outcome,
    })


def blocks_publication(passed: bool, severity: dg.AssetCheckSeverity | str, blocking: bool = True) -> bool:
    """Dagster stops the downstream steps, and so publication, only on a blocking check's ERROR verdict: a WARN
    (a mined near-rule broken) leaves the twin published."""
    return blocking and not passed and dg.AssetCheckSeverity(severity) == dg.AssetCheckSeverity.ERROR


def publication(storage: TwinStorage, portfolio: str, passed: bool) -> str:
    """What a blocking check's outcome means for the download path, said on the check itself."""
    if passed:
        return "passed: the twin is published once quality_report is written and its business rules hold"
    if storage.published(portfolio):
        return (f"NOT published: the previous good twin stays at {storage.portfolio_dir(portfolio)} "
                f"(version {publish.current(storage.portfolio_dir(portfolio)).name})")
    return "NOT published: nothing is at the download path for this portfolio"


@per_portfolio_check(asset=k_anonymized_output, additional_ins=WITH_UPLOAD,
                description="The twin, as stored, has the upload's columns, dtypes, ranges and category sets "
                            "(every shard validated, one in memory at a time).")
def matches_upload_schema(context: dg.AssetCheckExecutionContext, storage: TwinStorage,
                          raw_upload: dict) -> dg.AssetCheckResult:
    schema = schema_from_dict(raw_upload["schema"])
    files = sorted((storage.staged(raw_upload["manifest"]["portfolio"], context.run) / SHARDS).glob("shard-*.parquet"))
    try:
        for path in files:
            conform(pd.read_parquet(path), schema, f"{path.name} of the stored twin")
    except SchemaMismatch as error:
        return dg.AssetCheckResult(passed=False, metadata={"problems": dg.MetadataValue.text(str(error))})
    return dg.AssetCheckResult(passed=bool(files), metadata={"columns": len(schema.columns), "shards": len(files)})


@per_portfolio_check(asset=quality_report,
                description=f"Similarity score (0-100, SDMetrics-style) is at least {MIN_SIMILARITY:g}.")
def similarity_score_at_least_85(quality_report: dict) -> dg.AssetCheckResult:
    score = quality_report["quality"]["similarity_score"]
    return dg.AssetCheckResult(passed=score >= MIN_SIMILARITY, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"similarity_score": score, "threshold": MIN_SIMILARITY})


@per_portfolio_check(asset=quality_report,
                description=f"Mean absolute Pearson-correlation difference is at most {MAX_CORRELATION_ERROR:g}.")
def correlation_error_at_most_0_10(quality_report: dict) -> dg.AssetCheckResult:
    error = quality_report["quality"]["correlation_error"]
    measured = error is not None and not math.isnan(error)
    return dg.AssetCheckResult(passed=not measured or error <= MAX_CORRELATION_ERROR, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"correlation_error": error if measured else "no numeric column pair",
                                         "threshold": MAX_CORRELATION_ERROR})


@per_portfolio_check(asset=quality_report, blocking=True,
                     description="Business rules hold on the twin: a broken declared rule fails the run (blocking); "
                                 f"mined rules broken on more than {MINED_BREAK_WORST:.0%} of rows (worst) or "
                                 f"{MINED_BREAK_MEAN:.1%} (mean) are a warning.")
def business_rules_hold(context: dg.AssetCheckExecutionContext, storage: TwinStorage,
                        quality_report: dict) -> dg.AssetCheckResult:
    """The clone's last check: when no declared rule is broken, the run's outputs are published, all at once."""
    result = rules_verdict(quality_report)
    blocked = blocks_publication(result.passed, result.severity)
    portfolio = context.partition_key
    outcome = publication(storage, portfolio, passed=False) if blocked else \
        f"published version {publish_portfolio(storage, portfolio, context.run)['version']}"
    return dg.AssetCheckResult(passed=result.passed, severity=result.severity,
                               metadata={**result.metadata, "publication": outcome})


def rules_verdict(quality_report: dict) -> dg.AssetCheckResult:
    """The rules part of business_rules_hold: a broken declared rule is an error, broken mined rules a warning."""
    section = quality_report["quality"].get("rules") or {"rules": [], "summary": {}}
    summary = section["summary"]
    broken = summary.get("declared_broken", [])
    metadata = {"rules": summary.get("rules", 0), "enforced": summary.get("enforced", 0),
                "declared_broken": ", ".join(broken) or "none",
                "mined_break_mean": summary.get("mined_break_mean", 0.0),
                "mined_break_worst": summary.get("mined_break_worst", 0.0)}
    if broken:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata)
    mined_ok = (summary.get("mined_break_worst", 0.0) <= MINED_BREAK_WORST
                and summary.get("mined_break_mean", 0.0) <= MINED_BREAK_MEAN)
    return dg.AssetCheckResult(passed=mined_ok, severity=dg.AssetCheckSeverity.WARN, metadata=metadata)


@per_portfolio_check(asset=privacy_audit,
                description="The attacker audit completed within its budget and no risk is significant (family-wise "
                            "95 % interval above 0) and at least 0.05; a warning: the twin is already published "
                            "when the audit runs.")
def privacy_audit_finds_no_leak(privacy_audit: dict) -> dg.AssetCheckResult:
    completed = privacy_audit.get("status") == "completed"
    flagged = privacy_audit.get("flagged", []) if completed else []
    truncated = completed and privacy_audit["budget"]["truncated"]  # attacks left out: no all-clear
    return dg.AssetCheckResult(
        passed=completed and not flagged and not truncated, severity=dg.AssetCheckSeverity.WARN,
        metadata={"status": privacy_audit.get("status", "skipped"), "flagged": ", ".join(flagged) or "nothing",
                  "truncated": bool(truncated), "summary": audit_summary(privacy_audit)})


CHECKS = [business_rules_hold, privacy_recount, matches_upload_schema, similarity_score_at_least_85,
          correlation_error_at_most_0_10, privacy_audit_finds_no_leak]
