"""Generalisation hierarchies for categorical quasi-identifiers, and k-anonymity on a twin by redrawing inside them.

A hierarchy (as in ARX) lists, for each level, which values fall into one group: US states -> census division ->
census region -> any; any other column -> any (a free-text title keeps its frequent values: the rare ones are
already the catch-all, copies.replace_rare_strings). ARX's Loss of a level is the share of the column's domain a
value is merged with, (group size - 1) / (values - 1).

Why redraw instead of generalise: the twin's rows are model draws, not people. A twin row in a quasi-identifier
cell rarer than k can take the value of a populous cell inside its hierarchy group (a Californian becomes an
Oregonian: the same census division) instead of being generalised to "Pacific" or "Other". The cell then meets
k at full granularity, the column keeps only real values and, as a draw is proportional to the populous cells'
sizes, its shares within the group; nothing of the row's other columns changes. This is categorical
micro-aggregation: a group of rows shares one representative value of its own group. `OrdinalColumn` lets a
column too fragmenting for cells of its own (a state beside a job title) be micro-aggregated with the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin_pipeline.privacy.grouping import column_codes, combine_codes, group_sizes

_DIVISIONS = {  # US census divisions, then regions
    "New England": ("Northeast", "CT ME MA NH RI VT"),
    "Middle Atlantic": ("Northeast", "NJ NY PA"),
    "East North Central": ("Midwest", "IL IN MI OH WI"),
    "West North Central": ("Midwest", "IA KS MN MO NE ND SD"),
    "South Atlantic": ("South", "DE DC FL GA MD NC SC VA WV"),
    "East South Central": ("South", "AL KY MS TN"),
    "West South Central": ("South", "AR LA OK TX"),
    "Mountain": ("West", "AZ CO ID MT NV NM UT WY"),
    "Pacific": ("West", "AK CA HI OR WA"),
}
US_STATE_LEVELS = {state: (division, region) for division, (region, states) in _DIVISIONS.items()
                   for state in states.split()}
MIN_STATE_SHARE = 0.8  # a column is a US state when this share of its values are state codes


def hierarchy_levels(series: pd.Series) -> list[dict]:
    """The column's levels below "any value", finest first: each maps a value to its group (values absent from
    the map form a group of their own)."""
    values = pd.Series(series.dropna().unique())
    if len(values) < 2 or not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return []
    text = values.astype(str).str.strip()
    states = text.str.upper().map(US_STATE_LEVELS)
    if states.notna().mean() >= MIN_STATE_SHARE:
        known = states.notna().to_numpy()
        return [dict(zip(values[known], states[known].str[level])) for level in (0, 1)]
    return []


def redraw_in_hierarchies(
    frame: pd.DataFrame,
    columns: Sequence[str],
    fixed: Sequence[tuple[np.ndarray, int]],
    k: int,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Rows whose cell over `columns` (and the `fixed` codes, e.g. missing-value flags) is rarer than k take values
    of populous cells inside their hierarchy group, level by level in order of ARX Loss times the column's
    entropy (the bits a move can lose: a state within its division, then a home-ownership status, before a
    title); at equal cost the move that makes the most rows safe first. Where the group has no populous cell but >= k rare rows, they share the group's most
    common value among them. Returns the frame (sharing the columns it leaves alone with `frame`: a moved column is
    replaced, never written into), per column the rows changed and the ARX Loss per changed row.
    """
    out = frame.copy(deep=False)
    n = len(out)
    changed = {c: np.zeros(n, dtype=bool) for c in columns}
    loss = {c: np.zeros(n) for c in columns}
    # Each column once as codes and the value of each code (kept up to date: a move changes one column); its
    # groups and their sizes are read off its few distinct values, not off its rows.
    codes, values = {}, {}
    for column in columns:
        codes[column], values[column] = _coded(out[column])
    present = {c: values[c].notna().to_numpy()[codes[c][0]] for c in columns}  # missing stays missing
    moves = []
    for column in columns:
        shares = out[column].value_counts(normalize=True, dropna=False)
        bits, domain = float(-(shares * np.log2(shares)).sum()), max(len(shares), 2)
        for level in hierarchy_levels(values[column]):
            group, labels = pd.factorize(_group_labels(values[column], level))  # each distinct value's group
            merged = np.bincount(group)[group][codes[column][0]].astype(float)  # values merged in each row's group
            row_loss = (merged - 1) / (domain - 1)
            moves.append((round(float(row_loss.mean()) * bits, 1), column, (group[codes[column][0]], len(labels)),
                          row_loss))
        # "any value": one group holding every value the column shows (a group-by of the whole column told it)
        row_loss = np.full(n, (len(shares) - 1) / (domain - 1))
        moves.append((round(float(row_loss.mean()) * bits, 1), column, (np.zeros(n, dtype=np.int64), 1), row_loss))
    while moves:
        rare = group_sizes(combine_codes([*codes.values(), *fixed], n)) < k
        if not rare.any():
            break
        least = min(move[0] for move in moves)
        trials = []
        for move in [m for m in moves if m[0] == least]:
            _, column, group_codes, _ = move
            keys = combine_codes([*(codes[c] for c in columns if c != column), *fixed, group_codes], n)
            target = _representatives(keys, codes[column][0], rare, present[column], k, rng)
            trials.append((int((target >= 0).sum()), move, target))
        _, move, target = max(trials, key=lambda trial: trial[0])  # the move that fixes the most rows
        moves.remove(move)
        _, column, _, row_loss = move
        moved = (target >= 0) & (target != codes[column][0])
        if moved.any():
            drawn = np.asarray(values[column], dtype=object)[np.maximum(target, 0)]
            out[column] = out[column].mask(moved, pd.Series(drawn, index=out.index))
            # the column's codes again in order of first appearance, as column_codes numbers the new column
            renumbered, kept = pd.factorize(np.where(moved, target, codes[column][0]))
            codes[column] = renumbered.astype(np.int64, copy=False), len(kept)
            values[column] = values[column].iloc[kept].reset_index(drop=True)
            changed[column] |= moved
            loss[column] = np.where(moved, row_loss, loss[column])
    return out, changed, loss


def _coded(series: pd.Series) -> tuple[tuple[np.ndarray, int], pd.Series]:
    """`column_codes` of a column, and the value of each code (a missing one as it first occurs): a code's
    first row is where the codes, numbered in order of first appearance, reach a new high."""
    codes, n_codes = column_codes(series)
    first = np.flatnonzero(np.diff(np.maximum.accumulate(codes), prepend=-1) > 0)
    return (codes, n_codes), series.iloc[first].reset_index(drop=True)


def _group_labels(series: pd.Series, level: dict) -> pd.Series:
    """Each row's group at `level`; a value the level does not map is a group of its own."""
    return series.map(level).astype(object).where(lambda g: g.notna(), series.astype(object)).fillna("<missing>")


def _representatives(group: np.ndarray, value: np.ndarray, rare: np.ndarray, present: np.ndarray, k: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Per row, the value code it takes (-1: stays): for a rare row with a value, a draw among its group's
    populous cells proportional to their sizes; in a group without one but with >= k such rows, their most
    common value. Missing values neither move nor are drawn (missing stays missing, values stay values)."""
    target = np.full(len(group), -1, dtype=np.int64)
    safe = ~rare & present
    rare = rare & present
    cells = pd.DataFrame({"group": group[safe], "value": value[safe]}).value_counts().sort_index()
    if len(cells):
        cell_group = cells.index.get_level_values("group").to_numpy()
        cell_value = cells.index.get_level_values("value").to_numpy()
        cumulative = np.cumsum(cells.to_numpy(dtype=float))
        first = np.searchsorted(cell_group, group[rare], side="left")
        last = np.searchsorted(cell_group, group[rare], side="right")
        has = last > first
        base = np.where(first > 0, cumulative[np.maximum(first - 1, 0)], 0.0)
        total = cumulative[np.maximum(last - 1, 0)] - base
        pick = np.searchsorted(cumulative, base + rng.random(len(base)) * total, side="right")
        rows = np.flatnonzero(rare)
        target[rows[has]] = cell_value[np.minimum(pick[has], last[has] - 1)]
    pooled = rare & (target < 0)
    if pooled.any():
        sizes = np.bincount(group[pooled], minlength=group.max() + 1)
        enough = pooled & (sizes[group] >= k)
        if enough.any():
            counts = pd.DataFrame({"group": group[enough], "value": value[enough]}).value_counts()
            mode = counts.reset_index().drop_duplicates("group").set_index("group")["value"]  # sorted by count
            target[enough] = mode.reindex(group[enough]).to_numpy()
    return target


@dataclass(frozen=True)
class OrdinalColumn:
    """A categorical quasi-identifier as float codes ordered along its hierarchy (a division's states are
    neighbours), missing as NaN, so micro-aggregation can group it with the numeric ones and give back values."""

    dtype: object
    order: tuple
    decimals: int = 0

    @classmethod
    def of(cls, series: pd.Series) -> OrdinalColumn:
        levels = hierarchy_levels(series)
        path = lambda value: tuple(str(level.get(value, value)) for level in reversed(levels)) + (str(value),)  # noqa: E731
        return cls(series.dtype, tuple(sorted(series.dropna().unique(), key=path)))

    def values(self, series: pd.Series) -> np.ndarray:
        return series.astype(object).map({value: i for i, value in enumerate(self.order)}).to_numpy(dtype=float)

    def round(self, values: np.ndarray) -> np.ndarray:
        return np.round(values)

    def restore(self, values: np.ndarray, index: pd.Index) -> pd.Series:
        labels = np.asarray(self.order + (None,), dtype=object)
        return pd.Series(labels[np.where(np.isnan(values), -1, values).astype(np.int64)], index=index).astype(self.dtype)


def level_loss(before: pd.Series, after: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Rows changed, and each one's ARX Loss: that of the finest hierarchy level whose group holds both values."""
    changed = ~((before.to_numpy() == after.to_numpy()) | (before.isna().to_numpy() & after.isna().to_numpy()))
    domain = max(before.nunique(dropna=False), 2)
    loss = np.where(changed, 1.0, 0.0)
    for level in reversed(hierarchy_levels(before)):  # coarsest first, so the finest shared group wins
        old, new = _group_labels(before, level), _group_labels(after, level)
        merged = old.map(before.groupby(old).nunique(dropna=False)).to_numpy(dtype=float)
        loss = np.where(changed & (old.to_numpy() == new.to_numpy()), (merged - 1) / (domain - 1), loss)
    return changed, loss
