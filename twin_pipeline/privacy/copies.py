"""Copy protection: no twin row equals a real row, and no rare real string ever reaches the twin.

A synthetic row identical to a real one on every column is a disclosed record whatever the model was; a
free-text value seen fewer than k times in the real data (a job title like "Chief Risk Officer, Bank X")
points at a handful of people. Both are found by vectorised hashing and replaced before anything is shipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from twin_pipeline.tables import TwinInputError

OTHER = "Other"


def _comparable(series: pd.Series) -> pd.Series:
    """A form in which equal values hash equally whatever the dtype (3 == 3.0, category == object)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series.astype("int64", copy=False).where(series.notna())
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.astype("float64")
    return series.astype("string")


def row_fingerprints(df: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """A 64-bit hash per row over `columns` (missing values hash equal to each other)."""
    normalised = pd.DataFrame({column: _comparable(df[column]) for column in columns}, index=df.index)
    return pd.util.hash_pandas_object(normalised, index=False).to_numpy()


def _compared_columns(synthetic: pd.DataFrame, real: pd.DataFrame, ignore_columns: Sequence[str]) -> list[str]:
    columns = [c for c in synthetic.columns if c not in set(ignore_columns)]
    missing = [c for c in columns if c not in real.columns]
    if missing or not columns:
        raise TwinInputError(None, f"synthetic and real tables must share their columns to be compared "
                                   f"(missing from the real table: {missing})")
    return columns


def exact_copy_mask(synthetic: pd.DataFrame, real: pd.DataFrame, ignore_columns: Sequence[str] = ()) -> np.ndarray:
    """True for each synthetic row equal to some real row on every compared column (a hash join)."""
    columns = _compared_columns(synthetic, real, ignore_columns)
    return np.isin(row_fingerprints(synthetic, columns), np.unique(row_fingerprints(real, columns)))


def remove_exact_copies(
    synthetic: pd.DataFrame,
    real: pd.DataFrame,
    resample: Callable[[int], pd.DataFrame],
    max_rounds: int = 10,
    ignore_columns: Sequence[str] = (),
) -> tuple[pd.DataFrame, dict]:
    """Replace synthetic rows that copy a real row by fresh samples until none is left.

    `resample(n)` must return n new synthetic rows with the same columns. Replacements are checked again;
    after `max_rounds` the copies still left are dropped and counted. `ignore_columns` (e.g. a generated
    primary key) are left out of the comparison, so a copied record with a new id still counts as a copy.
    Returns the cleaned frame (row order kept, fresh rows in the copies' places) and counts for the report.
    """
    out = synthetic.reset_index(drop=True)
    columns = _compared_columns(out, real, ignore_columns)
    real_fingerprints = np.unique(row_fingerprints(real, columns))
    to_check = np.isin(row_fingerprints(out, columns), real_fingerprints)
    found, resampled, rounds = int(to_check.sum()), 0, 0
    while to_check.any() and rounds < max_rounds:
        rounds += 1
        positions = np.flatnonzero(to_check)
        fresh = resample(len(positions))
        if len(fresh) != len(positions) or list(fresh.columns) != list(out.columns):
            raise ValueError(f"resample({len(positions)}) must return {len(positions)} rows with columns "
                             f"{list(out.columns)}; got {len(fresh)} rows with {list(fresh.columns)}")
        fresh = fresh.astype(out.dtypes.to_dict()).set_axis(positions)
        out = pd.concat([out.drop(index=positions), fresh]).sort_index()
        resampled += len(positions)
        to_check = np.zeros(len(out), dtype=bool)
        to_check[positions] = np.isin(row_fingerprints(out.iloc[positions], columns), real_fingerprints)
    dropped = int(to_check.sum())
    out = out[~to_check].reset_index(drop=True)
    return out, {"exact_copies_found": found, "rows_resampled": resampled, "resample_rounds": rounds,
                 "copies_dropped": dropped, "columns_compared": columns}


def replace_rare_strings(
    synthetic: pd.DataFrame,
    real: pd.DataFrame,
    k: int = 5,
    exclude: Sequence[str] = (),
) -> tuple[pd.DataFrame, dict]:
    """Replace every text value that occurs 1..k-1 times in the real column by "Other".

    Values absent from the real data (an engine's own "Other", generated keys) reveal nobody and stay.
    `exclude` names columns to leave alone (e.g. the primary key). Returns the frame and, per column,
    how many rare real values exist and how many synthetic cells were replaced.
    """
    out = synthetic.copy()
    counts: dict[str, dict] = {}
    for column in out.columns:
        if column in exclude or column not in real.columns or not _is_text(out[column]) or not _is_text(real[column]):
            continue
        frequency = real[column].value_counts(dropna=True)
        rare_values = frequency.index[(frequency < k) & (frequency.index != OTHER)]
        mask = out[column].isin(rare_values).to_numpy()
        if mask.any():
            if isinstance(out[column].dtype, pd.CategoricalDtype) and OTHER not in out[column].cat.categories:
                out[column] = out[column].cat.add_categories([OTHER])
            out[column] = out[column].mask(mask, OTHER)
        counts[column] = {"rare_real_values": int(len(rare_values)), "cells_replaced": int(mask.sum())}
    return out, counts


def _is_text(series: pd.Series) -> bool:
    dtype = series.dtype
    return bool(pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
                or isinstance(dtype, pd.CategoricalDtype))
