"""Copy protection by risk: no twin row reproduces a rare real record, and no rare real string reaches the twin.

A synthetic row equal to a real record whose combination (keys aside) fewer than k real people share points at
those few people; a row equal to a combination that k or more share discloses no one, and forbidding it would
remove the most typical borrowers from the twin (and with them the true default rate). So common combinations
stay, up to the natural identical-match share: the share of fresh real rows that equal some real row, which an
honest twin shows too. Forbidden rows are replaced from a pool of fresh rows reweighted to the removed rows'
shares of every low-cardinality column (flags, statuses, grades) exactly, and of the outcome within each as
nearly as the allowed rows permit, so rejection biases none of those columns and keeps the outcome on its
profiles; the largest share shift is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from twin_pipeline.outcome import outcome_column
from twin_pipeline.privacy.grouping import catch_all, column_codes, combine_codes, group_keys
from twin_pipeline.errors import TwinInputError

LOW_CARDINALITY = 20  # columns with at most this many values keep their shares: replacements are drawn within them
EXACT_SHARES = 30.0  # a column's own shares weigh this many times an outcome pair's when replacements are chosen



def _comparable(series: pd.Series) -> pd.Series:
    """A form in which equal values hash equally whatever the dtype (3 == 3.0, category == object)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series.astype("int64", copy=False).where(series.notna())
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.astype("float64")
    return series.astype("string")


def row_fingerprints(df: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """A 64-bit hash per row over `columns` (missing values hash equal to each other)."""
    return _combined((_column_hashes(df[column]) for column in columns), len(columns), len(df))


def _column_hashes(series: pd.Series) -> np.ndarray:
    return pd.util.hash_pandas_object(_comparable(series), index=False).to_numpy()


def _combined(hashes: Iterable[np.ndarray], columns: int, rows: int) -> np.ndarray:
    """Column hashes combined into row hashes as `pd.util.hash_pandas_object` combines a frame's (CPython's tuple
    hash): the same numbers, without building that frame first (consolidating 55 columns into blocks cost as much
    as hashing them)."""
    combined = np.full(rows, 0x345678, dtype=np.uint64)
    multiplier = np.uint64(1000003)
    for position, column_hashes in enumerate(hashes):
        combined ^= column_hashes
        combined *= multiplier
        multiplier += np.uint64(82520 + 2 * (columns - position))
    return combined + np.uint64(97531)


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
        hashes = [_column_hashes(real[column]) for column in self.columns]
        self.rows = _combined(hashes, len(hashes), len(real))  # each real row's fingerprint, in row order
        self.fingerprints, self.counts = np.unique(self.rows, return_counts=True)
        # Each column's real values (hashed), the most varied first: a row whose value in one column no real row
        # has equals no real row, so `count` fingerprints only the rows these let through
        self.values = sorted(zip(self.columns, map(np.unique, hashes)), key=lambda item: -len(item[1]))

    def count(self, frame: pd.DataFrame) -> np.ndarray:
        """Per row of `frame`: how many real rows equal it (0 = a new row). Only the rows whose every value is some
        real row's value are fingerprinted whole (of a wide 100,000-row shard, a handful: most differ from every
        real row in the first column or two)."""
        counts = np.zeros(len(frame), dtype=np.int64)
        if len(frame) == 0 or len(self.fingerprints) == 0:
            return counts
        rows = np.arange(len(frame))
        for column, values in self.values:
            rows = rows[_among(_column_hashes(frame[column] if len(rows) == len(frame) else frame[column].iloc[rows]),
                               values)]
            if len(rows) == 0:
                return counts
        fingerprints = row_fingerprints(frame.iloc[rows], self.columns)
        position = np.minimum(np.searchsorted(self.fingerprints, fingerprints), len(self.fingerprints) - 1)
        counts[rows] = np.where(self.fingerprints[position] == fingerprints, self.counts[position], 0)
        return counts


def _among(hashes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of `hashes` are in `values` (sorted, not empty)."""
    return values[np.minimum(np.searchsorted(values, hashes), len(values) - 1)] == hashes


def natural_identical_share(real: pd.DataFrame, columns: Sequence[str], seed: int = 0,
                            fingerprints: np.ndarray | None = None) -> dict:
    """The share of rows identical to some real row that a fresh real sample shows (MOSTLY AI's "identical match
    share"), estimated two ways: on a 50/50 holdout split (half B against half A), and leaving one row out at a
    time (a real row whose combination another real row shares), which is the same question at the full table's
    size and is the cap used. `fingerprints`: the real rows' own over `columns` (RealCombinations.rows), when
    the caller has them (hashing 55 real columns again cost a wide shard 15-20 ms)."""
    fingerprints = row_fingerprints(real, columns) if fingerprints is None else fingerprints
    _, inverse, counts = np.unique(fingerprints, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(real))
    half_a, half_b = fingerprints[order[: len(real) // 2]], fingerprints[order[len(real) // 2:]]
    return {"leave_one_out": float((counts[inverse] >= 2).mean()) if len(real) else 0.0,
            "holdout_50_50": float(np.isin(half_b, half_a).mean()) if len(half_b) else 0.0,
            "real_rows": int(len(real))}


def low_cardinality_columns(real: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """Columns with 2..LOW_CARDINALITY values (flags, statuses, grades): their shares are kept."""
    return [column for column in columns if 1 < real[column].nunique(dropna=False) <= LOW_CARDINALITY]


def calibrate(pool: pd.DataFrame, target: pd.DataFrame, margins: Sequence[Sequence[str]]) -> np.ndarray:
    """Weights (>= 0) on `pool` rows whose shares over each margin (a column, or a pair of columns) come closest to
    `target`'s in least squares, a column's own shares counting EXACT_SHARES times a pair's, so they are met.

    The rows a rule removes sit on combinations it forbids, so their pairs can be beyond the allowed rows' reach
    (a survey whose young approvals are all rare records: the only allowed young approvals are unemployed ones,
    the removed ones were employed). Raking (iterative proportional fitting) on such pairs zeroed whole cells and
    stopped off every margin: 12.3 % approvals against the twin's 9.96 %, an age band 6.5 points off. Least
    squares keeps every column's shares and the pairs as near as the allowed rows let them be; uniform weights
    when nothing can be matched."""
    from scipy.optimize import lsq_linear  # only where copies are replaced: scipy.optimize is a 0.09 s import

    columns = list(dict.fromkeys(column for margin in margins for column in margin))
    if not columns or len(pool) == 0:
        return np.ones(len(pool))
    stacked = pd.concat([pool[columns], target[columns]], ignore_index=True)
    coded = {column: column_codes(stacked[column]) for column in columns}  # once each, shared by its margins
    # Rows of one combination of these columns are alike to every margin: solve per combination (a few hundred
    # on a discrete table, whatever the pool's size), then share its weight equally among its rows.
    _, first, combination, size = np.unique(combine_codes(list(coded.values()), len(stacked))[:len(pool)],
                                            return_index=True, return_inverse=True, return_counts=True)
    rows, wanted = [], []
    for margin in margins:
        both = combine_codes([coded[column] for column in margin], len(stacked))
        cells = int(both.max()) + 1
        scale = EXACT_SHARES if len(margin) == 1 else 1.0
        rows.append(sparse.csr_matrix((np.full(len(first), scale), (both[first], np.arange(len(first)))),
                                      shape=(cells, len(first))))
        wanted.append(scale * np.bincount(both[len(pool):], minlength=cells) / max(len(target), 1))
    totals = lsq_linear(sparse.vstack(rows).tocsr(), np.concatenate(wanted), bounds=(0, np.inf),
                        lsmr_tol="auto", tol=1e-6).x  # shares to 1e-6: 14x fewer CPU s than 1e-10
    weights = (totals / size)[combination]
    return weights if weights.sum() > 0 else np.ones(len(pool))


def calibration_margins(real: pd.DataFrame, columns: Sequence[str]) -> list[tuple[str, ...]]:
    """Each low-cardinality column alone, and the outcome (default, status, ...) paired with each other one: the
    rows a rule removes are where the outcome's dependence lives on a small discrete table (the risky profiles
    seen on fewer than k rows), so replacements keeping only one-way shares put defaults on safe profiles and
    turned the relation around (TSTR AUC below chance on a 450-row table)."""
    outcome, _ = outcome_column(real[list(columns)])
    return [(column,) for column in columns] + [(outcome, column) for column in columns if outcome and column != outcome]


def systematic_sample(pool: pd.DataFrame, weights: np.ndarray, take: int, columns: Sequence[str],
                      rng: np.random.Generator) -> np.ndarray:
    """`take` pool rows with probability proportional to `weights`, systematically along the pool sorted by its
    low-cardinality combination: each combination gets its expected count give or take one, where independent
    draws would add a sampling error of their own. With replacement: a few allowed rows of a rare value may
    carry large weights (a pool row used twice is a synthetic row, not a real one)."""
    order = np.lexsort((rng.random(len(pool)), group_keys(pool, list(columns)))) if columns else rng.permutation(len(pool))
    cumulative = np.cumsum(weights[order]) / weights.sum() * take
    points = rng.random() + np.arange(take)
    return order[np.minimum(np.searchsorted(cumulative, points, side="right"), len(pool) - 1)]


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
    resample: Callable[[int], pd.DataFrame],
    k: int = 5,
    ignore_columns: Sequence[str] = (),
    max_rounds: int = 10,
    seed: int = 0,
    pool_factor: int = 20,
    combinations: RealCombinations | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Replace every twin row equal to a real combination shared by fewer than `k` real rows, and the common
    copies above the natural identical-match share (plus two binomial standard errors of sampling error).

    Replacements are not the first fresh draws that pass (that would favour the commonest cells and bias every
    column): `resample` draws a pool of `pool_factor` times as many rows, the allowed ones are weighted to the
    removed rows' shares on every low-cardinality column (`calibrate`), and the replacements are drawn by those
    weights.
    Rows still forbidden after `max_rounds` are dropped and counted. Returns the frame (row order kept) and the
    report, with the largest share change this caused in any low-cardinality column. `combinations`: the real
    table's over the compared columns, when the caller has them.
    """
    # A view with fresh row numbers, copied only before its first row is replaced (most shards replace none): the
    # caller's frame is never written
    out, own = synthetic.set_axis(pd.RangeIndex(len(synthetic)), copy=False), False
    columns = compared_columns(out, real, ignore_columns)
    combinations = combinations or RealCombinations(real, columns)
    natural = natural_identical_share(real, columns, seed,
                                      combinations.rows if combinations.columns == columns else None)
    kept_shares = low_cardinality_columns(real, columns)
    margins = calibration_margins(real, kept_shares)
    n = len(out)
    share = natural["leave_one_out"]
    allowed = math.floor(share * n + 2 * math.sqrt(n * share * (1 - share)))
    rng = np.random.default_rng(seed)
    counts = combinations.count(out)
    rare_found, common_found = int(((counts > 0) & (counts < k)).sum()), int((counts >= k).sum())
    replaced, rounds = 0, 0
    while True:
        forbidden = (counts > 0) & (counts < k)
        common = np.flatnonzero(counts >= k)
        if len(common) > allowed:  # too many typical rows: replace a random excess, not the first ones
            forbidden[rng.choice(common, len(common) - allowed, replace=False)] = True
        if not forbidden.any() or rounds >= max_rounds:
            break
        positions = np.flatnonzero(forbidden)
        pool = resample(pool_factor * len(positions)).reset_index(drop=True)
        if list(pool.columns) != list(out.columns):
            raise ValueError(f"resample must return rows with columns {list(out.columns)}; got {list(pool.columns)}")
        pool_counts = combinations.count(pool)
        room = allowed - int((counts[~forbidden] >= k).sum())
        usable = (pool_counts == 0) | ((pool_counts >= k) & (room > 0))
        pool, pool_counts = pool[usable].reset_index(drop=True), pool_counts[usable]
        weights = calibrate(pool, out.loc[positions], margins)
        take = len(positions) if (weights > 0).any() else 0
        if take:
            chosen = systematic_sample(pool, weights, take, kept_shares, rng)
            targets = positions[:take] if take == len(positions) else rng.choice(positions, take, replace=False)
            out, own = (out, own) if own else (out.copy(), True)
            out.loc[targets] = pool.loc[chosen].set_axis(targets).astype(out.dtypes.to_dict())
            counts[targets] = pool_counts[chosen]
            replaced += take
        rounds += 1
    dropped = int(forbidden.sum())
    if forbidden.any():
        out = out[~forbidden].reset_index(drop=True)
    identical = int((counts[~forbidden] > 0).sum())
    return out, {
        "rule": f"no row equal to a real combination shared by fewer than {k} real rows; common combinations "
                "allowed up to the natural identical-match share",
        "columns_compared": columns,
        "rare_record_copies_found": rare_found,
        "common_copies_found": common_found,
        "rows_replaced": replaced,
        "replace_rounds": rounds,
        "replacements_calibrated_on": [" x ".join(margin) for margin in margins],
        "rows_dropped": dropped,
        "identical_match_share": identical / len(out) if len(out) else 0.0,
        "natural_identical_match_share": natural,
        "share_shift": share_shift(synthetic, out, kept_shares if replaced or dropped else []),  # else none moved
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
    how many rare real values exist and how many synthetic cells were replaced. The frame returned shares the
    columns it leaves alone with `synthetic` (a changed column is replaced, never written into).
    """
    out = synthetic.copy(deep=False)
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
