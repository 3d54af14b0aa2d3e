"""Numeric quasi-identifiers as float arrays, and back to the column's own dtype and precision.

Micro-aggregation replaces values by group means; the protected table must still look like the input
(integers stay integers, prices keep two decimals, dates stay dates) so downstream models run unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin_pipeline.engine.columns import detect_rounding, on_step

NS_PER_DAY = 86_400 * 10**9
_GRIDS = tuple(range(-3, 11))  # decimals tried, coarsest first: thousands ... 1e-10


def is_numeric_qi(series: pd.Series) -> bool:
    """Numbers, booleans and dates are aggregated numerically; everything else is categorical."""
    return bool(
        pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_datetime64_any_dtype(series.dtype)
    )


def _decimals(values: np.ndarray) -> int | None:
    """The coarsest decimal grid all finite values lie on (-2 = hundreds, 2 = cents), None if none fits."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return 0
    tolerance = 1e-9 * np.maximum(1.0, np.abs(finite))
    for decimals in _GRIDS:
        if np.all(np.abs(finite - np.round(finite, decimals)) <= tolerance):
            return decimals
    return None


def step_features(values: np.ndarray, decimals: list[int | None]) -> np.ndarray:
    """(n, m) booleans: whether each value sits on each rounding step its column really uses beyond its decimals
    (incomes in 0.05s, ages in quarters: the engine's detection, one home for what a step is)."""
    features = []
    for column, places in zip(values.T, decimals):
        rounding = detect_rounding(column, places, with_atoms=True)  # a whole age is a step, not only an atom
        features += [on_step(column, step) for step in (rounding["steps"][1:] if rounding else [])]
    return np.array(features, dtype=bool).T.reshape(len(values), len(features))


@dataclass(frozen=True)
class NumericColumn:
    """How one numeric quasi-identifier maps to floats (NaN = missing) and back."""

    dtype: object
    is_datetime: bool
    decimals: int | None  # grid of the input values, in the float unit (days for dates)

    @classmethod
    def of(cls, series: pd.Series) -> NumericColumn:
        is_datetime = pd.api.types.is_datetime64_any_dtype(series.dtype)
        decimals = _decimals(_as_float(series, is_datetime))
        if is_datetime:  # dates stay whole days, timestamps whole seconds
            decimals = 0 if decimals is not None and decimals <= 0 else None
        return cls(series.dtype, is_datetime, decimals)

    def values(self, series: pd.Series) -> np.ndarray:
        return _as_float(series, self.is_datetime)

    def round(self, values: np.ndarray) -> np.ndarray:
        """Round to the input's grid (and turn -0.0 into 0.0 so equal values group together)."""
        if self.decimals is not None:
            values = np.round(values, self.decimals)
        if self.is_datetime and self.decimals is None:
            values = np.round(values * 86_400) / 86_400  # whole seconds
        return values + 0.0

    def restore(self, values: np.ndarray, index: pd.Index) -> pd.Series:
        """A series of the original dtype holding `values` (already rounded)."""
        if self.is_datetime:
            seconds = np.where(np.isnan(values), 0, np.round(values * 86_400)).astype(np.int64)
            nanos = seconds * 10**9  # via whole seconds: days as floats cannot hold nanoseconds exactly
            stamps = pd.Series(nanos.view("datetime64[ns]"), index=index).where(~np.isnan(values))
            tz = getattr(self.dtype, "tz", None)
            stamps = stamps.dt.tz_localize("UTC").dt.tz_convert(tz) if tz is not None else stamps
            return stamps.astype(self.dtype)
        if pd.api.types.is_bool_dtype(self.dtype):
            values = np.round(values)  # a group's majority
        return pd.Series(values, index=index).astype(self.dtype)


def _as_float(series: pd.Series, is_datetime: bool) -> np.ndarray:
    if is_datetime:
        naive = series.dt.tz_convert("UTC").dt.tz_localize(None) if series.dt.tz is not None else series
        nanos = naive.to_numpy(dtype="datetime64[ns]").view(np.int64).astype(np.float64)
        return np.where(naive.isna().to_numpy(), np.nan, nanos / NS_PER_DAY)
    return series.to_numpy(dtype=np.float64, na_value=np.nan)
