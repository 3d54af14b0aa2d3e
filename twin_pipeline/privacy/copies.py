"""Copy protection by risk: no twin row reproduces a rare real record, and no rare real string reaches the twin.

A synthetic row equal to a real record whose combination (keys aside) fewer than k real people share points at
those few people; a row equal to a combination that k or more share discloses no one, and forbidding it would
remove the most typical borrowers from the twin (and with them the true default rate). So common combinations
stay, up to the natural identical-match share: the share of fresh real rows that equal some real row, which an
honest twin shows too. Forbidden rows are redrawn conditioned on their own low-cardinality values (flags,
statuses, grades), so rejection does not bias those columns; the largest share shift is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from twin_pipeline.privacy.grouping import catch_all
from twin_pipeline.tables import TwinInputError

LOW_CARDINALITY = 20  # columns with at most this many values keep their shares: replacements are drawn within them

Redraw = Callable[[pd.DataFrame], pd.DataFrame]  # given rows (some columns) -> full fresh rows keeping those values


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


def compared_columns(synthetic: pd.DataFrame, real: pd.DataFrame, ignore_columns: Sequence[str]) -> list[str]:
    columns = [c for c in synthetic.columns if c not in set(ignore_columns)]
    missing = [c for c in columns if c not in real.columns]
    if missing or not columns:
        raise TwinInputError(None, f"synthetic and real tables must share their columns to be compared "
                                   f"(missing from the real table: {missing})")
    return columns


def exact_copy_mask(synthetic: pd.DataFrame, real: pd.DataFrame, ignore_columns: Sequence[str] = ()) -> np.ndarray:
    """True for each synthetic row equal to some real row on every compared column (a hash join)."""
    columns = compared_columns(synthetic, real, ignore_columns)
    return np.isin(row_fingerprints(synthetic, columns), np.unique(row_fingerprints(real, columns)))


class RealCombinations:
    """How many real rows share each full combination of the compared columns (a hash table, built once)."""

    def __init__(self, real: pd.DataFrame, columns: Sequence[str]):
        self.columns = list(columns)
        self.fingerprints, self.counts = np.unique(row_fingerprints(real, self.columns), return_counts=True)

    def count(self, frame: pd.DataFrame) -> np.ndarray:
        """Per row of `frame`: how many real rows equal it (0 = a new row)."""
        if len(frame) == 0 or len(self.fingerprints) == 0:
            return np.zeros(len(frame), dtype=np.int64)
        fingerprints = row_fingerprints(frame, self.columns)
        position = np.minimum(np.searchsorted(self.fingerprints, fingerprints), len(self.fingerprints) - 1)
        return np.where(self.fingerprints[position] == fingerprints, self.counts[position], 0)


def natural_identical_share(real: pd.DataFrame, columns: Sequence[str], seed: int = 0) -> dict:
    """The share of rows identical to some real row that a fresh real sample shows (MOSTLY AI's "identical match
    share"), estimated two ways: on a 50/50 holdout split (half B against half A), and leaving one row out at a
    time (a real row whose combination another real row shares), which is the same question at the full table's
    size and is the cap used."""
    fingerprints = row_fingerprints(real, columns)
    _, inverse, counts = np.unique(fingerprints, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(real))
    half_a, half_b = fingerprints[order[: len(real) // 2]], fingerprints[order[len(real) // 2:]]
    return {"leave_one_out": float((counts[inverse] >= 2).mean()) if len(real) else 0.0,
            "holdout_50_50": float(np.isin(half_b, half_a).mean()) if len(half_b) else 0.0,
            "real_rows": int(len(real))}


def conditioning_order(real: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """Low-cardinality columns, those to keep longest first: fewest values, then rarest minority (a 13 % flag
    before a 45 % sex)."""
    ranked = []
    for column in columns:
        shares = real[column].value_counts(normalize=True, dropna=False)
        if 1 < len(shares) <= LOW_CARDINALITY:
            ranked.append((len(shares), float(shares.min()), column))
    return [column for *_, column in sorted(ranked)]


def share_shift(before: pd.DataFrame, after: pd.DataFrame, columns: Sequence[str]) -> dict:
    """The largest change in any category's share over `columns`, and where it happened."""
    worst = {"largest_share_change": 0.0, "column": None, "value": None}
    for column in columns:
        change = (after[column].value_counts(normalize=True, dropna=False)
                  .sub(before[column].value_counts(normalize=True, dropna=False), fill_value=0).abs())
        if len(change) and change.max() > worst["largest_share_change"]:
            worst = {"largest_share_change": float(change.max()), "column": str(column),
                     "value": None if pd.isna(change.idxmax()) else str(change.idxmax())}
    return worst


def replace_disclosive_copies(
    synthetic: pd.DataFrame,
    real: pd.DataFrame,
    redraw: Redraw,
    k: int = 5,
    ignore_columns: Sequence[str] = (),
    max_rounds: int = 10,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """Redraw every twin row equal to a real combination shared by fewer than `k` real rows, and the common
    copies above the natural identical-match share (plus two binomial standard errors of sampling error).

    `redraw(given)` returns one fresh row per row of `given` keeping `given`'s values (its columns are a subset).
    Round r keeps the row's low-cardinality values except the r most varied of them (so a table of four discrete
    columns still frees one); past that, rows are drawn afresh. Rows still forbidden after `max_rounds` are
    dropped and counted. Returns the frame (row order kept) and the report.
    """
    out = synthetic.reset_index(drop=True)
    columns = compared_columns(out, real, ignore_columns)
    combinations = RealCombinations(real, columns)
    natural = natural_identical_share(real, columns, seed)
    order = conditioning_order(real, columns)
    start = min(len(order), len(columns) - 1)
    n = len(out)
    allowed = math.floor(natural["leave_one_out"] * n + 2 * math.sqrt(n * natural["leave_one_out"]
                                                                      * (1 - natural["leave_one_out"])))
    rng = np.random.default_rng(seed)
    counts = combinations.count(out)
    rare_found, common_found = int(((counts > 0) & (counts < k)).sum()), int((counts >= k).sum())
    redrawn, rounds = 0, 0
    while True:
        forbidden = (counts > 0) & (counts < k)
        common = np.flatnonzero(counts >= k)
        if len(common) > allowed:  # too many typical rows: redraw a random excess, not the first ones
            forbidden[rng.choice(common, len(common) - allowed, replace=False)] = True
        if not forbidden.any() or rounds >= max_rounds:
            break
        positions = np.flatnonzero(forbidden)
        kept = order[: max(0, start - rounds)]
        fresh = redraw(out.loc[positions, kept])
        if len(fresh) != len(positions) or set(fresh.columns) != set(out.columns):
            raise ValueError(f"redraw of {len(positions)} rows must return {len(positions)} rows with columns "
                             f"{list(out.columns)}; got {len(fresh)} rows with {list(fresh.columns)}")
        out.loc[positions] = fresh[out.columns].set_axis(positions).astype(out.dtypes.to_dict())
        counts[positions] = combinations.count(out.loc[positions])
        redrawn, rounds = redrawn + len(positions), rounds + 1
    dropped = int(forbidden.sum())
    out = out[~forbidden].reset_index(drop=True)
    identical = int((counts[~forbidden] > 0).sum())
    return out, {
        "rule": f"no row equal to a real combination shared by fewer than {k} real rows; common combinations "
                "allowed up to the natural identical-match share",
        "columns_compared": columns,
        "rare_record_copies_found": rare_found,
        "common_copies_found": common_found,
        "rows_redrawn": redrawn,
        "redraw_rounds": rounds,
        "conditioned_on": order[:start],
        "rows_dropped": dropped,
        "identical_match_share": identical / len(out) if len(out) else 0.0,
        "natural_identical_match_share": natural,
        "share_shift": share_shift(synthetic, out, order),
    }


def replace_rare_strings(
    synthetic: pd.DataFrame,
    real: pd.DataFrame,
    k: int = 5,
    exclude: Sequence[str] = (),
) -> tuple[pd.DataFrame, dict]:
    """Replace every text value that occurs 1..k-1 times in the real column by the column's catch-all ("Other").

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
        label = catch_all(real[column])
        rare_values = frequency.index[(frequency < k) & (frequency.index != label)]
        mask = out[column].isin(rare_values).to_numpy()
        if mask.any():
            if isinstance(out[column].dtype, pd.CategoricalDtype) and label not in out[column].cat.categories:
                out[column] = out[column].cat.add_categories([label])
            out[column] = out[column].mask(mask, label)
        counts[column] = {"rare_real_values": int(len(rare_values)), "cells_replaced": int(mask.sum())}
    return out, counts


def _is_text(series: pd.Series) -> bool:
    dtype = series.dtype
    return bool(pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
                or isinstance(dtype, pd.CategoricalDtype))
