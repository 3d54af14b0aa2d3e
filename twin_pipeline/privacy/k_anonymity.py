"""k-anonymity on a synthetic twin with the least information loss, numeric columns kept numeric.

Passes, ordered to lose the least (each only touches rows that still need it):
1. optional bands for numeric quasi-identifiers (only when asked: bands are the coarsest tool);
1b. on synthetic rows only (`synthetic=True`): a categorical column that splits the twin into cells too small to
   micro-aggregate in (a state beside a job title) is "soft": it joins pass 5 and takes a group member's value;
   rows in the other columns' combinations rarer than k take the values of populous combinations inside their
   generalisation hierarchy group, fewest bits lost first (hierarchies.py), so the twin keeps real values at
   full granularity; the passes below handle what is left;
2. categorical values seen fewer than k times are grouped into "Other", least frequent first;
3. local recoding: in combinations of categorical values still rarer than k, one column at a time is set
   to "Other" for just those rows, the column that needs the fewest changed cells first (near ties: the
   one losing the fewest bits of information);
4. record suppression of rows no recoding can save, capped (default 1% of rows): above the cap we fail
   loudly rather than silently drop data;
5. numeric micro-aggregation: rows whose exact values are still rarer than k are grouped (Mondrian-style
   cuts inside each categorical combination, see microaggregation.py) and get their group's mean, rounded
   like the input (on synthetic rows: the values of one random member, which keeps each column's distribution
   and the member's own combination); the groups holding a column's minimum and maximum take that row's values,
   so the column's range survives and the relations between columns that held on every row still hold; a stratum's last few (< k) rare rows join their nearest already-safe neighbour instead.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from twin_pipeline.privacy.grouping import catch_all, column_codes, combine_codes, group_sizes, smallest_group
from twin_pipeline.privacy.hierarchies import OrdinalColumn, level_loss, redraw_in_hierarchies
from twin_pipeline.privacy.microaggregation import group_lower_medians, group_means, group_member, mondrian_groups
from twin_pipeline.privacy.numeric import NumericColumn, is_numeric_qi, step_features
from twin_pipeline.privacy.quasi_identifiers import detect_quasi_identifiers
from twin_pipeline.errors import PrivacyLimitError, TwinInputError
from twin_pipeline.defaults import DEFAULT_K, DEFAULT_MAX_SUPPRESSION, TWIN_MAX_REDRAWN

GENERALIZATIONS = (None, "bands")
SOFT_CELL_ROWS = 4  # x k: a cell this large splits into about four compact micro-aggregation groups
SOFT_WEIGHT = 0.01  # a soft column's scale in micro-aggregation: groups are cut along the numbers first, and the
# soft column rides along with the member whose values the group takes (its own pairs with them kept)


class KAnonymityError(PrivacyLimitError):
    """k-anonymity cannot be reached within the caller's limits; the message says which limit and why."""

    def __init__(self, problem: str):
        super().__init__(None, problem)


def enforce_k_anonymity(
    df: pd.DataFrame,
    target_k: int = DEFAULT_K,
    quasi_identifiers: Sequence[str] | None = None,
    generalize: str | None = None,
    max_suppression: float = DEFAULT_MAX_SUPPRESSION,
    synthetic: bool = False,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """Make every combination of quasi-identifier values occur at least `target_k` times.

    `synthetic`: the rows are model draws (a twin), so rare combinations may be redrawn inside their hierarchy
    groups (seeded by `seed`) before anything is generalised; real records are only ever generalised.

    Returns the protected frame (same columns, order and dtypes; suppressed rows removed, index kept; without
    suppression it shares the columns it leaves alone with `df`) and a report with initial_k, final_k,
    bank_compliant, records_suppressed, transformations_applied, quasi_identifiers and information_loss.
    """
    qis = _checked_arguments(df, target_k, quasi_identifiers, generalize, max_suppression)
    n = len(df)
    protected = df.copy(deep=False)  # every pass replaces the columns it changes, never writes into them
    numeric = [q for q in qis if is_numeric_qi(df[q])]
    categorical = [q for q in qis if q not in numeric]
    steps: dict[str, list[dict]] = {q: [] for q in qis}

    if generalize == "bands":
        for column in numeric:
            protected[column] = _bands(protected[column], steps[column])
    # On a twin, categorical columns that split it into cells too small to micro-aggregate in are "soft": they
    # join the numeric ones and take a group member's values with them (hierarchies.OrdinalColumn).
    soft = _soft_columns(protected, categorical, target_k) if synthetic else []
    categorical = [c for c in categorical if c not in soft]
    aggregated = numeric + soft
    codec = {c: NumericColumn.of(df[c]) if c in numeric else OrdinalColumn.of(df[c]) for c in aggregated}
    values = (np.column_stack([codec[c].values(protected[c]) for c in aggregated]) if aggregated
              else np.zeros((n, 0)))
    missing_flags = [(np.isnan(values[:, j]).astype(np.int64), 2) for j in range(len(aggregated))]
    redrawn = {c: np.zeros(n, dtype=bool) for c in categorical}
    redraw_loss = {c: np.zeros(n) for c in categorical}
    if synthetic and categorical:
        protected, redrawn, redraw_loss = redraw_in_hierarchies(protected, categorical, missing_flags, target_k,
                                                                np.random.default_rng([seed, 2]))
    pooled = {c: _rare_values(protected[c], target_k, df.shape[1]) for c in categorical}
    for column, (mask, _) in pooled.items():
        protected[column] = _set_other(protected[column], mask)
    recoded, rare = _local_recoding(protected, categorical, missing_flags, target_k)
    for column, mask in recoded.items():
        protected[column] = _set_other(protected[column], mask)

    cap = math.floor(max(max_suppression, TWIN_MAX_REDRAWN if synthetic else 0.0) * n + 1e-9)
    if rare.sum() > cap:
        raise KAnonymityError(
            f"k-anonymity with k={target_k} on quasi-identifiers {qis} would need suppressing {int(rare.sum())} "
            f"of {n} rows ({rare.mean():.1%}), above the max_suppression cap of {cap} rows ({max_suppression:.1%}); "
            "use fewer quasi-identifiers, a smaller k, generalize='bands' or a higher max_suppression"
        )
    kept = ~rare
    for column in categorical:
        if (redrawn[column] & kept).any():
            steps[column].append({"what": "value of a populous combination in the same hierarchy group "
                                          "(synthetic rows redrawn, fewest bits lost first)",
                                  "rows_changed": int((redrawn[column] & kept).sum())})
        mask, n_values = pooled[column]
        if (mask & kept).any():
            steps[column].append({"what": f"values seen fewer than k times grouped into '{catch_all(protected[column])}'",
                                  "values_grouped": n_values, "rows_changed": int((mask & kept).sum())})
        if (recoded[column] & kept).any():
            steps[column].append({"what": f"set to '{catch_all(protected[column])}' in combinations rarer than k "
                                          "(local recoding)",
                                  "rows_changed": int((recoded[column] & kept).sum())})
    if aggregated:
        strata = combine_codes([column_codes(protected[c][kept]) for c in categorical]
                               + [(flags[kept], 2) for flags, _ in missing_flags], int(kept.sum()))
        representative = ("lower median" if generalize == "bands" else "values of a random member" if synthetic else "mean")
        weights = np.array([1.0 if c in numeric else SOFT_WEIGHT for c in aggregated])
        new_values = _microaggregate(values[kept], strata, target_k, codec, aggregated, steps, representative,
                                     np.random.default_rng([seed, 3]), weights)
        for j, column in enumerate(aggregated):
            full = values[:, j].copy()
            full[kept] = new_values[:, j]
            protected[column] = codec[column].restore(full, protected.index)
    if not kept.all():  # a copy of every column otherwise, for nothing: `protected` is this function's own
        protected = protected[kept]

    generalised = {c: (pooled[c][0] | recoded[c])[kept] for c in categorical}
    changed = {c: generalised[c] | redrawn[c][kept] for c in categorical}
    row_loss = {c: redraw_loss[c][kept] for c in categorical}
    for column in soft:
        generalised[column] = np.zeros(int(kept.sum()), dtype=bool)
        changed[column], row_loss[column] = level_loss(df[column][kept], protected[column])
    final_k = smallest_group(protected, qis)
    report = {
        "quasi_identifiers": list(qis),
        "target_k": int(target_k),
        "initial_k": smallest_group(df, qis),
        "final_k": final_k,
        "bank_compliant": final_k >= target_k,
        "records_suppressed": int(rare.sum()),
        "max_suppression_rows": int(cap),
        "transformations_applied": steps,
        "information_loss": _information_loss(df.loc[kept, qis], protected, {c: codec[c] for c in numeric}, changed,
                                              generalised, row_loss),
    }
    report["information_loss"]["share_suppressed"] = float(rare.mean())
    return protected, report


def _checked_arguments(df, target_k, quasi_identifiers, generalize, max_suppression) -> list[str]:
    if isinstance(target_k, bool) or not isinstance(target_k, (int, np.integer)) or target_k < 1:
        raise TwinInputError(None, f"target_k must be a whole number >= 1, got {target_k!r}")
    if len(df) == 0:
        raise TwinInputError(None, "the table has no rows: nothing to anonymise")
    if target_k > len(df):
        raise TwinInputError(
            None, f"target_k={target_k} is larger than the number of rows ({len(df)}): no group of {target_k} "
                  "identical records can exist; lower k or provide more rows")
    if generalize not in GENERALIZATIONS:
        raise TwinInputError(None, f"generalize must be None or 'bands', got {generalize!r}")
    if not 0 <= max_suppression <= 1:
        raise TwinInputError(None, f"max_suppression must be a share between 0 and 1, got {max_suppression!r}")
    qis = list(dict.fromkeys(detect_quasi_identifiers(df) if quasi_identifiers is None else quasi_identifiers))
    unknown = [q for q in qis if q not in df.columns]
    if unknown:
        raise TwinInputError(None, f"quasi-identifier(s) {unknown} are not columns of the table "
                                   f"(columns: {list(df.columns)})")
    return qis


def _soft_columns(frame: pd.DataFrame, categorical: list[str], k: int) -> list[str]:
    """Categorical columns that make cells too small: while the average row's cell over the others holds fewer
    than SOFT_CELL_ROWS * k rows, the column with most values is soft (a state before a sex)."""
    hard, soft = list(categorical), []
    while hard and group_sizes(combine_codes([column_codes(frame[c]) for c in hard], len(frame))).mean() \
            < SOFT_CELL_ROWS * k:
        widest = max(hard, key=lambda column: frame[column].nunique())
        hard.remove(widest)
        soft.append(widest)
    return soft


def _set_other(series: pd.Series, mask: np.ndarray) -> pd.Series:
    if not mask.any():
        return series
    label = catch_all(series)
    if isinstance(series.dtype, pd.CategoricalDtype) and label not in series.cat.categories:
        series = series.cat.add_categories([label])
    return series.mask(mask, label)


def _codes_with_other(series: pd.Series) -> tuple[np.ndarray, int, int]:
    """Codes (missing = its own code), the number of codes counting the catch-all, and the catch-all's code."""
    codes, uniques = pd.factorize(series, use_na_sentinel=False)
    other = int(pd.Index(uniques).get_indexer([catch_all(series)])[0])
    n_codes = len(uniques)
    return codes.astype(np.int64, copy=False), n_codes + (other < 0), other if other >= 0 else n_codes


def _rare_values(series: pd.Series, k: int, row_width: int) -> tuple[np.ndarray, int]:
    """Rows to pool into "Other" and how many values were pooled.

    Values rarer than k are pooled. If the pool itself stays below k rows, the next least frequent values
    join it only while that changes fewer cells than dropping the pooled rows would (row_width cells each);
    otherwise those few rows are left to suppression.
    """
    codes, n_codes, other = _codes_with_other(series)
    counts = np.bincount(codes, minlength=n_codes)
    pooled = counts < k
    pooled[other] = True
    pooled_rows = counts[pooled].sum()
    for code in np.lexsort((np.arange(n_codes), counts)):  # least frequent first, ties by first appearance
        if pooled_rows == 0 or pooled_rows >= k:
            break
        if not pooled[code]:
            if counts[code] > pooled_rows * row_width:
                break
            pooled[code] = True
            pooled_rows += counts[code]
    pooled[other] = False  # already "Other": not a change
    return pooled[codes], int(pooled.sum())


def _local_recoding(protected, categorical, missing_flags, k) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Greedy local recoding; returns per-column masks of rows set to "Other" and the rows still rarer than k."""
    n = len(protected)
    coded = {column: list(_codes_with_other(protected[column])) for column in categorical}
    recoded = {column: np.zeros(n, dtype=bool) for column in categorical}
    rare = group_sizes(combine_codes([(c, m) for c, m, _ in coded.values()] + missing_flags, n)) < k
    information_bits = {column: -np.log2(np.maximum(np.bincount(codes, minlength=m), 1) / n)
                        for column, (codes, m, _) in coded.items()}
    candidates = list(categorical)
    while rare.any() and candidates:
        trials = []
        for column in candidates:
            codes, n_codes, other = coded[column]
            trial = np.where(rare, other, codes)
            # Only rows already "Other" in this column can share a group with the recoded rows.
            subset = rare | (codes == other)
            parts = [(trial[subset], n_codes)]
            parts += [(c[subset], m) for name, (c, m, _) in coded.items() if name != column]
            parts += [(flags[subset], m) for flags, m in missing_flags]
            still_rare = np.zeros(n, dtype=bool)
            still_rare[subset] = group_sizes(combine_codes(parts, int(subset.sum()))) < k
            still_rare &= rare
            changed = rare & (codes != other)
            # Cells changed now plus at least one more for every row left rare; a recoded cell loses
            # -log2 p(value) bits, so between near-equal choices a state goes before a rare free-text title.
            cells = int(changed.sum() + still_rare.sum())
            trials.append((cells, information_bits[column][codes[changed]].sum(), column, trial, still_rare))
        fewest = min(cells for cells, *_ in trials)
        near = [t for t in trials if t[0] <= fewest + max(1, 0.01 * rare.sum())]
        _, _, column, trial, still_rare = min(near, key=lambda t: t[1])
        recoded[column] = rare & (coded[column][0] != coded[column][2])
        coded[column][0] = trial
        rare = still_rare
        candidates.remove(column)
    return recoded, rare


def _microaggregate(values, strata, k, codec, numeric, steps, representative, rng, weights) -> np.ndarray:
    """New numeric values: untouched where the exact combination already has k rows, aggregated elsewhere.

    A group's value is its mean (least squared error); with bands its lower median, itself a band; on synthetic
    rows one random member's values (every row of the group takes them), which keeps each column's distribution
    where a mean would shrink it towards the centre.
    """
    n = len(values)
    if n == 0:
        return values
    n_strata = int(strata.max()) + 1
    full = combine_codes([(strata, n_strata)] + [column_codes(pd.Series(values[:, j])) for j in range(len(numeric))], n)
    rare = group_sizes(full) < k
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column has no mean: handled below
        centre, spread = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    # Standardised, so a cut's gain is measured in the normalised SSE that the report shows.
    points = np.nan_to_num((values - centre) / np.where(spread > 0, spread, 1.0)) * weights  # missing: constant
    rare_per_stratum = np.bincount(strata[rare], minlength=n_strata)
    partitioned = rare & (rare_per_stratum[strata] >= k)
    joined = rare & ~partitioned
    result = values.copy()
    groups = mondrian_groups(points[partitioned], strata[partitioned], k)
    if representative == "values of a random member":
        representatives = group_member(values[partitioned], groups, rng, points[partitioned].sum(axis=1),
                                       step_features(values[partitioned], [codec[c].decimals for c in numeric]))
    else:
        representatives = (group_lower_medians if representative == "lower median" else group_means)(
            values[partitioned], groups)
    for j, column in enumerate(numeric):
        result[partitioned, j] = codec[column].round(representatives[:, j])
    result[joined] = values[_nearest_safe_rows(points, strata, full, rare, joined)]
    _keep_range(result, values, partitioned, groups)
    for j, column in enumerate(numeric):
        changed = ~((result[:, j] == values[:, j]) | (np.isnan(result[:, j]) & np.isnan(values[:, j])))
        if changed.any():
            steps[column].append({
                "what": f"micro-aggregation: values replaced by the {representative} of "
                        "their group of >= k similar rows (multi-dimensional partition), rounded like the input; "
                        "range kept",
                "rows_changed": int(changed.sum()),
                "groups": int(groups.max()) + 1 if len(groups) else 0,
                "rows_joined_to_nearest_safe_group": int((changed & joined).sum()),
                "rounded_to_decimals": codec[column].decimals,
            })
    return result


def _keep_range(result: np.ndarray, values: np.ndarray, partitioned: np.ndarray, groups: np.ndarray) -> None:
    """Give each column's minimum and maximum back to one aggregated group that held it, in place.

    Histograms and quality reports bin every table over its own range; averaging the extremes away would
    shift every bin edge. The group takes the whole row of its member holding the extreme, not just that one
    value: a relation that held on every row (age - seniority >= 14, a rule the twin keeps by construction)
    still holds. At most two groups per column move, each to a single shared row, so k holds; a group already
    given one extreme's row keeps it, so an extreme goes to a group holding the fewest other extremes' rows.
    """
    rows = np.flatnonzero(partitioned)
    pinned = np.zeros(groups.max() + 1 if len(groups) else 0, dtype=bool)
    extremes = [(j, extreme) for j in range(values.shape[1])  # a handful of columns
                for extreme in (np.fmin.reduce(values[:, j]), np.fmax.reduce(values[:, j]))]
    crowd = np.bincount(groups[np.any([values[rows, j] == extreme for j, extreme in extremes], axis=0)],
                        minlength=len(pinned)) if extremes and len(rows) else np.zeros(len(pinned), int)
    for j, extreme in extremes:
        if np.isnan(extreme) or (result[:, j] == extreme).any():
            continue
        holders = np.flatnonzero((values[rows, j] == extreme) & ~pinned[groups])
        if len(holders) == 0:
            continue  # the extreme row joined a neighbour's values (a stratum with fewer than k to group)
        # fewest other extremes in its group, then the group that moves the least
        holder = holders[np.lexsort((np.abs(result[rows[holders], j] - extreme), crowd[groups[holders]]))[0]]
        result[rows[groups == groups[holder]]] = values[rows[holder]]
        pinned[groups[holder]] = True


def _nearest_safe_rows(points, strata, full, rare, joined) -> np.ndarray:
    """For each row in `joined`, the nearest row of its stratum whose exact values already occur >= k times.

    Candidate pairs are at most (k - 1) x (number of safe combinations) <= n, so this stays vectorised.
    """
    query = np.flatnonzero(joined)
    if len(query) == 0:
        return query
    safe = np.flatnonzero(~rare)
    safe = safe[np.unique(full[safe], return_index=True)[1]]  # one row per safe combination
    safe = safe[np.argsort(strata[safe], kind="stable")]
    first = np.searchsorted(strata[safe], strata[query], side="left")
    counts = np.searchsorted(strata[safe], strata[query], side="right") - first
    owner = np.repeat(np.arange(len(query)), counts)
    block_starts = np.cumsum(counts) - counts
    candidate = safe[np.repeat(first - block_starts, counts) + np.arange(counts.sum())]
    distance = np.abs(points[query[owner]] - points[candidate]).sum(axis=1)
    best = np.lexsort((distance, owner))
    return candidate[best[block_starts]]


def _bands(series: pd.Series, steps: list[dict]) -> pd.Series:
    """Replace values by the midpoint of about ten equal-width bands with a round width."""
    codec = NumericColumn.of(series)
    values = codec.values(series)
    finite = values[np.isfinite(values)]
    if len(finite) == 0 or finite.max() == finite.min():
        return series
    raw = (finite.max() - finite.min()) / 10
    width = next(m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 2.5, 5, 10)
                 if m * 10 ** math.floor(math.log10(raw)) >= raw)
    if codec.decimals is not None and width <= 10.0 ** -codec.decimals:
        return series  # bands no wider than the input's own precision change nothing
    origin = math.floor(finite.min() / width) * width
    midpoints = origin + (np.floor((values - origin) / width) + 0.5) * width
    if codec.decimals is not None:  # on the input's grid, rounded down: ages 15-19 -> 17, 20-29 -> 25
        midpoints = np.floor(midpoints * 10.0**codec.decimals + 1e-9) / 10.0**codec.decimals
    steps.append({"what": "generalised to bands (value = band midpoint)", "band_width": width, "origin": origin})
    return codec.restore(codec.round(midpoints), series.index)


def _information_loss(original, protected, codec, changed, generalised, redraw_loss) -> dict:
    """Per quasi-identifier: the share of rows changed; normalised SSE (SSE / total sum of squares) for numeric
    ones; for categorical ones ARX's "Loss", averaged over the rows: a cell set to the catch-all loses (values
    merged into it - 1) / (values in the column - 1), a redrawn cell its hierarchy level's share, an untouched 0."""
    numeric_loss, rows_changed = {}, {}
    for column, column_codec in codec.items():
        before, after = column_codec.values(original[column]), column_codec.values(protected[column])
        present = ~np.isnan(before) & ~np.isnan(after)
        total = ((before[present] - before[present].mean()) ** 2).sum() if present.any() else 0.0
        sse = ((before[present] - after[present]) ** 2).sum()
        numeric_loss[column] = float(sse / total) if total > 0 else 0.0
        rows_changed[column] = float(np.mean(~((before == after) | (np.isnan(before) & np.isnan(after))))) \
            if len(before) else 0.0
    arx_loss = {}
    for column, mask in changed.items():
        rows_changed[column] = float(mask.mean()) if len(mask) else 0.0
        domain = original[column].nunique(dropna=False)
        label = catch_all(protected[column])
        merged = original.loc[(protected[column] == label).to_numpy(), column].nunique(dropna=False)
        other = (merged - 1) / (domain - 1) if domain > 1 else 0.0
        arx_loss[column] = float(np.where(generalised[column], other, redraw_loss[column]).mean()) if len(mask) else 0.0
    return {
        "share_rows_changed": rows_changed,
        "numeric_normalised_sse": numeric_loss,
        "categorical_arx_loss": arx_loss,
        "categorical_share_regrouped": {c: float(mask.mean()) if len(mask) else 0.0 for c, mask in generalised.items()},
    }
