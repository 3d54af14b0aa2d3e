"""Fidelity metrics of a synthetic table against the real one (formulas in `metrics`)."""

from twin_pipeline.quality.metrics import (
    categorical_match,
    column_types,
    contingency_similarity,
    correlation_error,
    ks_statistic,
    ks_statistics,
    quality_report,
    similarity_score,
)

__all__ = [
    "categorical_match",
    "column_types",
    "contingency_similarity",
    "correlation_error",
    "ks_statistic",
    "ks_statistics",
    "quality_report",
    "similarity_score",
]
