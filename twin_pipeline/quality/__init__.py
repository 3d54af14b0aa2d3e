"""Fidelity metrics of a synthetic table against the real one (formulas in `metrics`), the holdout ceiling
they are judged against (`holdout`) and train-synthetic-test-real utility (`utility`)."""

from twin_pipeline.quality.metrics import (
    categorical_match,
    column_types,
    contingency_similarity,
    correlation_error,
    correlation_errors,
    ks_statistic,
    ks_statistics,
    quality_report,
    similarity_score,
)
from twin_pipeline.quality.holdout import holdout_evaluation
from twin_pipeline.quality.utility import tstr

__all__ = [
    "categorical_match",
    "column_types",
    "contingency_similarity",
    "correlation_error",
    "correlation_errors",
    "holdout_evaluation",
    "ks_statistic",
    "ks_statistics",
    "quality_report",
    "similarity_score",
    "tstr",
]
