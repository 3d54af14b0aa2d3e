"""A column's copula variables: how each column kind is encoded for the copula and read back as numbers.

Shared by the native fit (copula.py), the differentially private fit (dp.py) and the `copulas` reference backend,
so none of them imports another's internals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import columns as col
from .marginals import NumericMarginal, SlicedMarginal
from .perturb import noisy_counts


def variables_of(spec: col.ColumnSpec, series: pd.Series, k: int, governed: np.ndarray | None = None,
                 rng: np.random.Generator | None = None):
    """Yield (role, marginal, sortable keys of the present rows, present mask) for one column, with noisy
    statistics (perturb.py).

    `governed` rows (whose value a rule writes, such as balance 0 when Fully Paid) are left out of the fit."""
    if spec.kind == "derived":
        return
    free = np.ones(len(series), dtype=bool) if governed is None else ~governed
    present = series.notna().to_numpy() & free
    if governed is not None:
        series = series.where(free)
    if spec.kind in col.NUMERIC_KINDS:
        numbers = to_numbers(series[present], spec)
        yield "value", NumericMarginal.fit(numbers, k, rng=rng), numbers, present
    elif spec.kind in col.SLICED_KINDS:
        marginal = SlicedMarginal.fit(series[present], spec.kind, k, rng=rng)
        yield "value", marginal, marginal.codes(series[present]), present
    is_null = (~present[free]).astype(np.int8)
    if 0.0 < is_null.mean() < 1.0 and spec.kind not in ("identifier", "duplicate"):
        counts = noisy_counts(np.array([len(is_null) - is_null.sum(), is_null.sum()]), rng)
        yield "null", SlicedMarginal([0, 1], counts / counts.sum()), is_null, free


def to_numbers(series: pd.Series, spec: col.ColumnSpec) -> np.ndarray:
    """Numeric view of a column: datetimes become seconds since 1970."""
    if spec.number_format:
        return col.parse_number_text(series, spec.number_format)
    if spec.kind != "datetime":
        return series.to_numpy(dtype=float)
    if spec.date_format:
        stamps = pd.to_datetime(series.astype(str).str.strip(), format=spec.date_format, errors="coerce")
    else:
        stamps = pd.to_datetime(series, errors="coerce")
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert(None)
    return (stamps.astype("datetime64[ns]").astype("int64") // 10**9).to_numpy(dtype=float)
