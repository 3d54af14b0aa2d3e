"""How faithful a synthetic table is to the real one: per-column shapes, pairwise trends and one 0-100 score.

The score follows the SDMetrics QualityReport so that figures are comparable with the community's standard,
but everything here is vectorised NumPy/pandas and runs on a million rows in seconds.

Column types (decided on the REAL frame, see `column_types`):
  * numeric     -- more than 10 distinct numbers (numeric dtype, or text with one fixed prefix/suffix such as
                   "13.5%" or "$1,200"); scored with KS and Pearson correlation.
  * datetime    -- datetime dtype, or text that parses as dates with one format ("Mar-2018", "2001-12-31");
                   compared as numbers (nanoseconds since the epoch), exactly like numeric.
  * categorical -- text, category, boolean, and numeric columns with at most 10 distinct values (0/1 flags,
                   number of dependants): their values are labels, so frequencies are compared, not shapes.
  * excluded    -- the primary key, keys as the engine finds them (engine.keys.is_key: loan_id, "LN000123"), and
                   free text with a new value on every row it fills: nothing to learn from, so never scored.
Text formats are recognised by the engine's own detectors, so both read a column the same way.

Formulas (R = real, S = synthetic; NaN is dropped from numeric values and is its own category otherwise):
  KS statistic          D = max_x |F_R(x) - F_S(x)|, F the empirical CDFs of the non-null values.
  Category match        1 - TVD, TVD = 1/2 * sum_c |P_R(c) - P_S(c)| over categories c (NaN included).
  Correlation error     mean over numeric pairs (i, j) of |r_R(i, j) - r_S(i, j)|, r the Pearson correlation on
                        rows where both columns are present.
  Contingency similarity 1 - 1/2 * sum_(a, b) |P_R(a, b) - P_S(a, b)|, the joint distribution of a pair with at
                        least one categorical column; numeric columns first cut into 10 quantile bins of the
                        REAL values (same edges applied to both tables, NaN its own bin).
  Column shapes         mean over scored columns of 1 - D (numeric, datetime) or 1 - TVD (categorical).
  Pair trends           mean over column pairs of 1 - |r_R - r_S| / 2 (both numeric) or contingency similarity.
  Similarity score      100 * (column shapes + pair trends) / 2, as SDMetrics averages its two properties.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from twin_pipeline.engine.columns import detect_date_format, detect_number_format, parse_dates, parse_number_text
from twin_pipeline.engine.keys import is_key
from twin_pipeline.tables import TwinInputError

CATEGORICAL_MAX_DISTINCT = 10
CONTINGENCY_BINS = 10
TEXT_SAMPLE = 500  # values looked at to recognise dates or numbers written as text
HEAD_ROWS = 10_000
TIES_SHARE = 0.5  # a sample with fewer distinct values than this share of its size: count values, don't sort
# Engine column kinds (twin_pipeline.engine) mapped onto the metric types above.
KIND_TYPES = {
    "continuous": "numeric",
    "integer": "numeric",
    "datetime": "datetime",
    "discrete": "categorical",
    "boolean": "categorical",
    "categorical": "categorical",
    "constant": "categorical",
    "text": "categorical",
    "identifier": "excluded",
    "numeric": "numeric",
    "excluded": "excluded",
}
MAX_DENSE_JOINT = 1 << 22  # joint category grids larger than this are counted by hashing, not bincount
JOINT_CELLS = 1 << 12  # a column's contingency pairs are counted together while their joint grid is this small


@dataclass(frozen=True)
class _Column:
    type: str
    date_format: str | None = None  # text dates: parsed with this format in both tables
    number_format: dict | None = None  # numbers written as text ("13.5%", "$1,200"): parsed back to numbers


def column_types(
    real: pd.DataFrame, primary_key: str | None = None, column_kinds: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Metric type of each column of `real`: numeric, datetime, categorical or excluded (see module doc).

    `column_kinds` overrides the detection per column with an engine kind (continuous, integer, discrete,
    boolean, categorical, datetime, identifier, constant, text) or a metric type.
    """
    return {name: column.type for name, column in _plan(real, primary_key, column_kinds).items()}


def _plan(
    real: pd.DataFrame, primary_key: str | None, column_kinds: Mapping[str, str] | None
) -> dict[str, _Column]:
    kinds = dict(column_kinds or {})
    unknown = sorted(set(kinds) - set(real.columns))
    if unknown:
        raise TwinInputError("column_kinds", f"names columns that are not in the real data: {', '.join(map(str, unknown))}")
    bad = sorted(kind for kind in kinds.values() if kind not in KIND_TYPES)
    if bad:
        raise TwinInputError("column_kinds", f"unknown kind(s) {', '.join(bad)}; expected one of {', '.join(KIND_TYPES)}")
    if primary_key is not None:
        if primary_key not in real.columns:
            raise TwinInputError("primary_key", f"column {primary_key!r} is not in the real data")
        kinds[primary_key] = "excluded"
    plan = {}
    for name in real.columns:
        series = real[name]
        if name not in kinds:
            plan[name] = _detect(series)
        elif KIND_TYPES[kinds[name]] in ("numeric", "datetime"):
            wanted = KIND_TYPES[kinds[name]]
            plan[name] = _numeric_column(series, wanted) or _numeric_column(series, "numeric") or _Column("categorical")
        else:
            plan[name] = _Column(KIND_TYPES[kinds[name]])
    return plan


def _detect(series: pd.Series) -> _Column:
    # Cheap looks at the first rows settle most columns before any full pass over a million values.
    head = series.iloc[:HEAD_ROWS]
    if pd.api.types.is_bool_dtype(series):
        return _Column("categorical")
    if pd.api.types.is_datetime64_any_dtype(series):
        return _Column("datetime")
    if head.nunique() <= CATEGORICAL_MAX_DISTINCT and (len(head) == len(series)  # the head is the whole column
                                                       or series.nunique() <= CATEGORICAL_MAX_DISTINCT):
        return _Column("categorical")
    numeric = pd.api.types.is_numeric_dtype(series)
    if not numeric and (dates := _numeric_column(series, "datetime")):
        return dates  # before keys, as the engine reads them: unique dates are dates
    if is_key(series):
        return _Column("excluded")
    if numeric:
        return _Column("numeric")
    if numbers := _numeric_column(series, "numeric"):
        return numbers
    present = series.dropna()
    if len(present) > 1 and present.iloc[:HEAD_ROWS].is_unique and present.is_unique:
        return _Column("excluded")  # free text with a new value on every row it fills (notes, names, blank on
        # some): nothing to compare; scored as a category, a collector's notes took a twin's score from 99 to 73
    return _Column("categorical")


def _numeric_column(series: pd.Series, wanted: str) -> _Column | None:
    """The column read as `wanted` (numeric or datetime), with the text format that makes it so, or None."""
    if wanted == "numeric" and pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return _Column("numeric")
    if wanted == "datetime" and pd.api.types.is_datetime64_any_dtype(series):
        return _Column("datetime")
    if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        return None
    sample = series.sample(min(len(series), TEXT_SAMPLE), random_state=0).dropna()
    if sample.empty:
        return None
    if wanted == "datetime":
        date_format = detect_date_format(sample)[0]
        return _Column("datetime", date_format=date_format) if date_format else None
    number_format = detect_number_format(sample)
    return _Column("numeric", number_format=number_format) if number_format else None


def _as_numbers(series: pd.Series, column: _Column) -> np.ndarray:
    """Float64 values of a numeric or datetime column; NaN where missing or unparseable."""
    if column.number_format:
        return _parse_distinct(series, lambda text: parse_number_text(text, column.number_format))
    if column.date_format and not pd.api.types.is_datetime64_any_dtype(series):
        return _parse_distinct(series, lambda text: _datetime_numbers(
            parse_dates(text.astype(str).str.strip(), column.date_format)))
    if column.type == "datetime":
        return _datetime_numbers(pd.to_datetime(series, errors="coerce"))
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _parse_distinct(series: pd.Series, parse) -> np.ndarray:
    """Parse each distinct text once (text columns repeat values), then spread the numbers back to the rows."""
    codes, distinct = pd.factorize(series)
    numbers = np.append(np.asarray(parse(pd.Series(distinct, dtype=object)), dtype="float64"), np.nan)
    return numbers[codes]  # code -1 (missing) picks the appended NaN


def _datetime_numbers(stamps: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch (UTC) as float64, NaN for missing."""
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    values = stamps.to_numpy(dtype="datetime64[ns]")
    return np.where(np.isnat(values), np.nan, values.view("int64").astype("float64"))


def ks_statistic(real_values: np.ndarray, synthetic_values: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov D = max |F_R - F_S| over all observed values (NaN dropped).

    Columns with many ties (ages, amounts in whole units) are counted by hashing, others are sorted; both give
    the exact statistic, the first in a tenth of the time.
    """
    real_values = real_values[~np.isnan(real_values)]
    synthetic_values = synthetic_values[~np.isnan(synthetic_values)]
    if not len(real_values) or not len(synthetic_values):
        return float("nan")
    head = real_values[:HEAD_ROWS]
    if len(np.unique(head)) < TIES_SHARE * len(head):
        real_counts = pd.Series(real_values).value_counts(sort=False)
        synth_counts = pd.Series(synthetic_values).value_counts(sort=False)
        grid = real_counts.index.union(synth_counts.index).sort_values()  # union keeps equal indexes unsorted
        real_share = real_counts.reindex(grid, fill_value=0).to_numpy() / len(real_values)
        synth_share = synth_counts.reindex(grid, fill_value=0).to_numpy() / len(synthetic_values)
        return float(np.abs(np.cumsum(real_share - synth_share)).max())
    real_sorted, synth_sorted = np.sort(real_values), np.sort(synthetic_values)
    return float(max(_cdf_gap(real_sorted, synth_sorted), _cdf_gap(synth_sorted, real_sorted)))


def _cdf_gap(own: np.ndarray, other: np.ndarray) -> float:
    """max |F_own(x) - F_other(x)| over the values x of `own` (both sorted); F_own is read off the positions."""
    ends = np.flatnonzero(np.append(own[1:] != own[:-1], True))  # last position of each distinct value
    return np.abs((ends + 1) / len(own) - np.searchsorted(other, own[ends], side="right") / len(other)).max()


def _tvd(real_codes: np.ndarray, synth_codes: np.ndarray, size: int) -> float:
    """Total variation distance of two integer-coded samples over codes 0..size-1."""
    if size > MAX_DENSE_JOINT:
        real_share = pd.Series(real_codes).value_counts(normalize=True)
        synth_share = pd.Series(synth_codes).value_counts(normalize=True)
        return float(0.5 * real_share.sub(synth_share, fill_value=0).abs().sum())
    return _count_tvd(np.bincount(real_codes, minlength=size), np.bincount(synth_codes, minlength=size))


def _count_tvd(real_counts: np.ndarray, synth_counts: np.ndarray) -> float:
    """Total variation distance of two frequency tables over the same cells."""
    real_share = real_counts / real_counts.sum()
    synth_share = synth_counts / synth_counts.sum()
    return float(0.5 * np.abs(real_share - synth_share).sum())


def _narrow(codes: np.ndarray, size: int) -> np.ndarray:
    """Codes 0..size-1 in int16 when they fit: joint codes and counts then move a quarter of the bytes."""
    return codes.astype(np.int16 if size <= np.iinfo(np.int16).max else np.int64, copy=False)


def _bin(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index = number of edges <= value (0..len(edges)); NaN gets len(edges) + 1.

    A pass per edge (there are at most 9) is several times faster than searchsorted on a million values.
    """
    codes = np.zeros(len(values), dtype=np.int16)
    for edge in edges:
        codes += values >= edge
    codes[np.isnan(values)] = len(edges) + 1
    return codes


def _pearson_matrix(columns: list[np.ndarray]) -> np.ndarray:
    """Pearson correlations between `columns`, each pair on the rows where both are present.

    Matrix products over a presence mask instead of a loop over pairs; columns are centred and scaled first
    so the sums stay well conditioned even for datetimes in nanoseconds.
    """
    if not columns:
        return np.empty((0, 0))
    values = np.vstack(columns)  # one row per column, so every column is contiguous
    missing = np.isnan(values)
    mask = (~missing).astype("float64")
    observed = np.maximum(mask.sum(axis=1, keepdims=True), 1)
    np.copyto(values, 0.0, where=missing)  # nan_to_num's three passes where infinities are rare
    if np.isinf(values).any():
        np.nan_to_num(values, copy=False)
    values -= values.sum(axis=1, keepdims=True) / observed
    values *= mask
    squares = values * values
    scale = np.sqrt(squares.sum(axis=1, keepdims=True) / observed)
    scale[scale == 0] = 1.0
    values /= scale
    squares /= scale**2
    # Rows where both are present, counted from the few columns with gaps: whole numbers, so the floats of
    # mask @ mask.T bit for bit, without its product over every column of a 100,000-row twin
    gaps = np.flatnonzero(missing.any(axis=1))
    holes = missing[gaps].astype("float64")
    lost = holes.sum(axis=1)
    count = np.full((len(values), len(values)), float(values.shape[1]))
    count[gaps, :] -= lost[:, None]
    count[:, gaps] -= lost[None, :]
    count[np.ix_(gaps, gaps)] += holes @ holes.T
    sums = values @ mask.T  # sums[i, j]: sum of column i over rows where i and j are both present
    square_sums = squares @ mask.T
    with np.errstate(invalid="ignore", divide="ignore"):
        covariance = values @ values.T - sums * sums.T / count
        variance = (square_sums - sums**2 / count) * (square_sums.T - sums.T**2 / count)
        corr = covariance / np.sqrt(variance)
    corr[(count < 2) | ~(variance > 1e-12 * count**2)] = np.nan
    return np.clip(corr, -1.0, 1.0)


class _Comparison:
    """One real/synthetic pair with its column plan; each derived array is computed once and shared."""

    def __init__(self, real, synthetic, primary_key=None, column_kinds=None):
        for label, frame in (("real data", real), ("synthetic data", synthetic)):
            if not isinstance(frame, pd.DataFrame):
                raise TwinInputError(label, f"must be a pandas DataFrame, got {type(frame).__name__}")
            if len(frame) == 0:
                raise TwinInputError(label, "has no rows")
        plan = _plan(real, primary_key, column_kinds)
        self.types = {name: column.type for name, column in plan.items()}
        self.plan = {name: column for name, column in plan.items() if column.type != "excluded"}
        missing = [str(name) for name in self.plan if name not in synthetic.columns]
        if missing:
            raise TwinInputError("synthetic data", f"lacks column(s) of the real data: {', '.join(missing)}")
        self.real, self.synthetic = real, synthetic
        self.numeric = [name for name, column in self.plan.items() if column.type in ("numeric", "datetime")]
        self.categorical = [name for name, column in self.plan.items() if column.type == "categorical"]

    @cached_property
    def numbers(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {
            name: (_as_numbers(self.real[name], self.plan[name]), _as_numbers(self.synthetic[name], self.plan[name]))
            for name in self.numeric
        }

    @cached_property
    def codes(self) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
        """Integer codes per column for frequency tables: categories as they are, numeric in real quantile bins.

        Missing values get the last code of each column, so they count as a category of their own.
        """
        codes = {}
        for name in self.categorical:
            coded, uniques = pd.factorize(pd.concat([self.real[name], self.synthetic[name]], ignore_index=True))
            coded[coded < 0] = len(uniques)
            coded = _narrow(coded, len(uniques) + 1)
            codes[name] = (coded[: len(self.real)], coded[len(self.real) :], len(uniques) + 1)
        for name, (real_values, synth_values) in self.numbers.items():
            observed = real_values[~np.isnan(real_values)]
            quantiles = np.linspace(0, 1, CONTINGENCY_BINS + 1)[1:-1]
            edges = np.unique(np.quantile(observed, quantiles)) if len(observed) else np.array([])
            codes[name] = (_bin(real_values, edges), _bin(synth_values, edges), len(edges) + 2)
        return codes

    @cached_property
    def correlations(self) -> tuple[np.ndarray, np.ndarray]:
        real = _pearson_matrix([self.numbers[name][0] for name in self.numeric])
        synth = _pearson_matrix([self.numbers[name][1] for name in self.numeric])
        return real, synth

    def ks_statistics(self) -> dict[str, float]:
        return {name: ks_statistic(*self.numbers[name]) for name in self.numeric}

    def categorical_match(self) -> dict[str, float]:
        return {name: 1.0 - _tvd(*self.codes[name]) for name in self.categorical}

    def correlation_deltas(self) -> dict[tuple[str, str], float]:
        """|r_R - r_S| for each numeric pair whose correlation is defined in both tables."""
        real, synth = self.correlations
        deltas = {}
        for i, j in itertools.combinations(range(len(self.numeric)), 2):
            delta = abs(real[i, j] - synth[i, j])
            if not np.isnan(delta):
                deltas[(self.numeric[i], self.numeric[j])] = float(delta)
        return deltas

    def correlation_error(self) -> float:
        deltas = list(self.correlation_deltas().values())
        return float(np.mean(deltas)) if deltas else float("nan")

    def correlation_errors(self) -> dict[str, float]:
        """The same pairs' |r_R - r_S| summed up three ways: Frobenius norm of the difference matrix, max and mean."""
        deltas = np.array(list(self.correlation_deltas().values()))
        if not len(deltas):
            return {"frobenius_error": 0.0, "max_abs_error": 0.0, "mean_abs_error": 0.0}
        return {"frobenius_error": float(np.sqrt(2.0 * np.square(deltas).sum())), "max_abs_error": float(deltas.max()),
                "mean_abs_error": float(deltas.mean())}

    def contingency_pairs(self) -> list[dict]:
        pairs = []
        names = list(self.plan)
        for position, first in enumerate(names):
            partners = [second for second in names[position + 1:]
                        if first in self.categorical or second in self.categorical]
            for group in self._partner_groups(first, partners):
                pairs += [{"column_1": first, "column_2": second, "score": 1.0 - distance}
                          for second, distance in zip(group, self._joint_tvds(first, group))]
        return pairs

    def _partner_groups(self, first: str, partners: list[str]) -> list[list[str]]:
        """`partners` in order, in runs whose joint grid with `first` has at most JOINT_CELLS cells."""
        groups, cells = [], JOINT_CELLS + 1
        for second in partners:
            size = self.codes[second][2]
            if cells * size > JOINT_CELLS:
                groups.append([])
                cells = self.codes[first][2]
            groups[-1].append(second)
            cells *= size
        return groups

    def _joint_tvds(self, first: str, group: list[str]) -> list[float]:
        """TVD of the pair (first, second) for each column of `group`. Several are counted in one pass over the
        rows of each table, on the joint codes of `first` and the whole group: a pair's frequency table is that
        count summed over the other columns' axes, the same integers in a third of the time (one bincount of
        100,000 rows for three pairs)."""
        real_a, synth_a, size_a = self.codes[first]
        if len(group) == 1:
            real_b, synth_b, size_b = self.codes[group[0]]
            size = size_a * size_b
            return [_tvd(_narrow(real_a, size) * size_b + real_b, _narrow(synth_a, size) * size_b + synth_b, size)]
        sizes = [self.codes[second][2] for second in group]
        counts = np.empty((2, size_a * int(np.prod(sizes))), dtype=np.int64)  # both tables' joint counts
        for table, codes in enumerate((real_a, synth_a)):
            joint = codes.astype(np.int16)  # a copy (the cached codes stay), and JOINT_CELLS fit in int16
            for second in group:
                joint *= self.codes[second][2]
                joint += self.codes[second][table]
            counts[table] = np.bincount(joint, minlength=counts.shape[1])
        counts = counts.reshape(2, size_a, *sizes)
        axes = range(2, len(group) + 2)  # each pair's table, both tables summed at once (whole numbers: exact)
        return [_count_tvd(*counts.sum(axis=tuple(other for other in axes if other != axis)).reshape(2, -1))
                for axis in axes]

    def report(self) -> dict:
        ks = self.ks_statistics()
        match = self.categorical_match()
        contingency = self.contingency_pairs()
        deltas = self.correlation_deltas()
        shapes = [1.0 - d for d in ks.values() if not np.isnan(d)] + list(match.values())
        trends = [1.0 - delta / 2.0 for delta in deltas.values()] + [pair["score"] for pair in contingency]
        column_shapes = float(np.mean(shapes)) if shapes else float("nan")
        pair_trends = float(np.mean(trends)) if trends else float("nan")
        properties = [value for value in (column_shapes, pair_trends) if not np.isnan(value)]
        return {
            "similarity_score": 100.0 * float(np.mean(properties)) if properties else float("nan"),
            "correlation_error": self.correlation_error(),
            "correlation_errors": self.correlation_errors(),
            "ks_statistics": ks,
            "categorical_match": match,
            "column_shapes": column_shapes,
            "pair_trends": pair_trends,
            "contingency_similarity": {"pairs": contingency, "mean": _mean_score(contingency)},
            "column_types": self.types,
            "n_real": len(self.real),
            "n_synthetic": len(self.synthetic),
        }


def _mean_score(pairs: list[dict]) -> float:
    return float(np.mean([pair["score"] for pair in pairs])) if pairs else float("nan")


def ks_statistics(real, synthetic, primary_key=None, column_kinds=None) -> dict[str, float]:
    """{column: KS D} for numeric and datetime columns; D = max_x |F_R(x) - F_S(x)|, NaN dropped."""
    return _Comparison(real, synthetic, primary_key, column_kinds).ks_statistics()


def categorical_match(real, synthetic, primary_key=None, column_kinds=None) -> dict[str, float]:
    """{column: 1 - TVD} for categorical columns; TVD = 1/2 sum_c |P_R(c) - P_S(c)|, NaN a category."""
    return _Comparison(real, synthetic, primary_key, column_kinds).categorical_match()


def correlation_error(real, synthetic, primary_key=None, column_kinds=None) -> float:
    """Mean |r_R - r_S| of Pearson correlations over numeric/datetime column pairs (NaN if there is no pair)."""
    return _Comparison(real, synthetic, primary_key, column_kinds).correlation_error()


def correlation_errors(real, synthetic, primary_key=None, column_kinds=None) -> dict[str, float]:
    """{frobenius_error, max_abs_error, mean_abs_error} of the Pearson correlations over the pairs of
    `correlation_error` (its mean); keys and identifier-like columns are left out."""
    return _Comparison(real, synthetic, primary_key, column_kinds).correlation_errors()


def contingency_similarity(real, synthetic, primary_key=None, column_kinds=None) -> dict:
    """{"pairs": [{column_1, column_2, score}], "mean"} for pairs with a categorical column.

    score = 1 - 1/2 sum_(a, b) |P_R(a, b) - P_S(a, b)|, numeric columns cut into 10 quantile bins of the real data.
    """
    pairs = _Comparison(real, synthetic, primary_key, column_kinds).contingency_pairs()
    return {"pairs": pairs, "mean": _mean_score(pairs)}


def similarity_score(real, synthetic, primary_key=None, column_kinds=None) -> float:
    """0-100: 100 * (mean column-shape score + mean pair-trend score) / 2 (formulas in the module doc)."""
    return quality_report(real, synthetic, primary_key, column_kinds)["similarity_score"]


def quality_report(real, synthetic, primary_key=None, column_kinds=None) -> dict:
    """All metrics of the module in one pass: similarity_score, correlation_error(s), ks_statistics,
    categorical_match, column_shapes, pair_trends, contingency_similarity, column_types, n_real, n_synthetic.

    The primary key and identifier-like columns are left out of every metric.
    """
    return _Comparison(real, synthetic, primary_key, column_kinds).report()
