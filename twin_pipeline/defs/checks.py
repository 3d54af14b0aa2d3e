"""Asset checks: is the twin safe enough to ship (blocking) and good enough to use (warnings)?

The privacy checks recount from the stored product, as a user would download it, rather than trusting the
report of the step that made it. Blocking checks stop `quality_report` (and so a run's success) when they fail.
"""


import math
import warnings

import dagster as dg

from ..privacy import exact_copy_mask
from ..privacy.grouping import smallest_group
from .assets import k_anonymized_output, quality_report
from .partitions import portfolios
from .raw import load_real, options_of
from .resources import TwinStorage
from .schemas import SchemaMismatch, conform, schema_from_dict

MIN_SIMILARITY = 85.0
MAX_CORRELATION_ERROR = 0.10
WITH_UPLOAD = {"raw_upload": dg.AssetIn("raw_upload")}


def per_portfolio_check(**kwargs):
    """A check of one portfolio partition: without a partitions_def, a check of a partitioned asset loads every
    portfolio at once. Partitioned checks are a Dagster preview feature; its warning is silenced here only."""
    def decorate(function):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")
            return dg.asset_check(partitions_def=portfolios, **kwargs)(function)
    return decorate


@per_portfolio_check(asset=k_anonymized_output, blocking=True, additional_ins=WITH_UPLOAD,
                description="Every combination of quasi-identifier values occurs in at least k rows of the twin.")
def k_anonymity_at_least_k(k_anonymized_output: dict, raw_upload: dict) -> dg.AssetCheckResult:
    table, quasi_identifiers = k_anonymized_output["table"], k_anonymized_output["protection"]["quasi_identifiers"]
    k = options_of(raw_upload["manifest"]).k
    smallest = smallest_group(table, quasi_identifiers)
    return dg.AssetCheckResult(passed=smallest >= k, metadata={
        "smallest_group": smallest, "k": k, "rows": len(table),
        "quasi_identifiers": ", ".join(quasi_identifiers) or "(none)",
    })


@per_portfolio_check(asset=k_anonymized_output, blocking=True, additional_ins=WITH_UPLOAD,
                description="No row of the twin equals a real row on every column (primary key excluded).")
def no_exact_copies(storage: TwinStorage, k_anonymized_output: dict, raw_upload: dict) -> dg.AssetCheckResult:
    manifest = raw_upload["manifest"]
    primary_key = options_of(manifest).primary_key
    table = k_anonymized_output["table"]
    ignore = [primary_key] if primary_key else []
    copies = int(exact_copy_mask(table, load_real(storage, manifest), ignore_columns=ignore).sum())
    return dg.AssetCheckResult(passed=copies == 0, metadata={
        "exact_copies": copies, "exact_copy_rate": copies / len(table) if len(table) else 0.0, "rows": len(table),
    })


@per_portfolio_check(asset=k_anonymized_output, additional_ins=WITH_UPLOAD,
                description="The twin, as stored, has the upload's columns, dtypes, ranges and category sets.")
def matches_upload_schema(k_anonymized_output: dict, raw_upload: dict) -> dg.AssetCheckResult:
    try:
        conform(k_anonymized_output["table"], schema_from_dict(raw_upload["schema"]), "the stored twin")
    except SchemaMismatch as error:
        return dg.AssetCheckResult(passed=False, metadata={"problems": dg.MetadataValue.text(str(error))})
    return dg.AssetCheckResult(passed=True, metadata={"columns": len(raw_upload["schema"]["columns"])})


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


CHECKS = [k_anonymity_at_least_k, no_exact_copies, matches_upload_schema, similarity_score_at_least_85,
          correlation_error_at_most_0_10]
