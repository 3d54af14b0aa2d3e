"""One class per column kind: how it is recognised, encoded into copula variables, decoded and written back.

A fitted column is an instance of its kind's class (the RDT shape: fit, variables = transform, sample =
reverse_transform, to_dict). The engine (copula.py) composes them and keeps only the copula; the differentially
private fit (dp.py) and the `copulas` reference backend read the same variables, so none imports another's
internals. Format detectors (dates, numbers written as text, rounding steps) live in columns.py, key shapes in keys.py.

Every column answers the same questions, so callers never switch on the kind: attributes a kind does not have
(`decimals` of a category) are class-level None and are not stored in the model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from typing import ClassVar

import numpy as np
import pandas as pd

from ..bounds import outward_bounds
from ..errors import TwinInputError
from . import columns as col
from .keys import identifier_pattern, is_key, mint_identifiers
from .marginals import NumericMarginal, SlicedMarginal
from .perturb import noisy_counts

ROUNDING_SHIFT = {"Y": pd.Timedelta(days=182), "M": pd.Timedelta(days=15), "D": pd.Timedelta(hours=12), "s": pd.Timedelta(0)}


@dataclass
class ColumnSpec:
    """A fitted column: its name, input dtype and null rate; subclasses add what their kind needs."""

    name: str
    dtype: str
    null_rate: float = 0.0

    kind: ClassVar[str] = ""
    shape: ClassVar[str | None] = None  # its value variable's marginal: "numeric", "sliced" or none
    is_key: ClassVar[bool] = False  # regenerated with fresh values, never modelled or compared as data
    pearson: ClassVar[bool] = False  # its copula pair correlations are matched to the real Pearson ones
    unordered: ClassVar[bool] = False  # values with no order of their own (the fit orders them along the others)
    quantity: ClassVar[bool] = False  # amounts, counts or dates: sums, orders and ratios may hold between them
    category: ClassVar[bool] = False  # few repeated values: a group of rows that may fix or determine another column
    # What other kinds have; the same question gets None here (not stored in the model).
    decimals: ClassVar[int | None] = None
    number_format: ClassVar[dict | None] = None
    rounding: ClassVar[dict | None] = None
    bounds: ClassVar[list | None] = None
    date_format: ClassVar[str | None] = None
    date_resolution: ClassVar[str | None] = None
    copy_of: ClassVar[str | None] = None

    @classmethod
    def detect(cls, series: pd.Series, seen: Unlabelled) -> bool:
        """Whether an unlabelled column (`seen`: what the tests read of it) is of this kind; tried in DETECTION
        order."""
        return False

    @classmethod
    def fit(cls, series: pd.Series, k: int = 1, present: pd.Series | None = None) -> "ColumnSpec":
        """The column's kind-specific format details, learned from its values; `present`: its non-null values, when
        the caller has them (detection read them)."""
        present = series.dropna() if present is None else present
        return cls(name=str(series.name), dtype=str(series.dtype),
                   null_rate=(len(series) - len(present)) / len(series) if len(series) else 0.0)

    # ---------------------------------------------------------------- encoding
    def variables(self, series: pd.Series, k: int, governed: np.ndarray | None = None,
                  rng: np.random.Generator | None = None) -> Iterator[tuple]:
        """Yield (role, marginal, sortable keys of the present rows, present mask) per copula variable, with noisy
        statistics (perturb.py): the value variable of a modelled kind, and an "is null" variable when some
        values are missing. `governed` rows (whose value a rule writes) are left out of the fit."""
        free = np.ones(len(series), dtype=bool) if governed is None else ~governed
        if not free.any():  # a rule writes every value (a rate fixed by its grade): nothing left to model
            return
        present = series.notna().to_numpy() & free
        if governed is not None:
            series = series.where(free)
        yield from self.value_variable(series[present], present, k, rng)
        is_null = (~present[free]).astype(np.int8)
        if 0.0 < is_null.mean() < 1.0:
            counts = noisy_counts(np.array([len(is_null) - is_null.sum(), is_null.sum()]), rng)
            yield "null", SlicedMarginal([0, 1], counts / counts.sum()), is_null, free

    def value_variable(self, values: pd.Series, present: np.ndarray, k: int, rng) -> Iterator[tuple]:
        return iter(())

    # ---------------------------------------------------------------- decoding
    def sample(self, marginal, decoded: np.ndarray | None, is_null: np.ndarray | None, size: int, start: int,
               rng: np.random.Generator, frame: dict) -> pd.Series:
        """`size` sampled values in the input's type and format from the decoded copula variables (`frame`: the
        columns sampled so far; `start`: the number of the first row, for fresh keys)."""
        values = self.restore(marginal, decoded, rng) if marginal is not None else self.fill(size, start, rng)
        if self.null_rate >= 1.0:
            values = pd.Series([None] * size, dtype=object)
        elif is_null is not None and is_null.any():
            values = values.astype(_nullable(values.dtype)).mask(is_null)
        return self.cast(values)

    def restore(self, marginal, decoded: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """Decoded model values back to the column's own type and format."""
        raise NotImplementedError(f"a {self.kind} column has no copula variable")

    def fill(self, size: int, start: int, rng: np.random.Generator) -> pd.Series:
        """The values of a column without a value variable (every row null)."""
        return pd.Series([None] * size, dtype=object)

    def cast(self, values: pd.Series) -> pd.Series:
        """Cast to the input dtype where the values allow it (an int column with sampled nulls stays float)."""
        try:
            if self.dtype.startswith(("int", "uint")) and values.isna().any():
                return values.astype(float)
            if self.dtype == "bool" and values.isna().any():
                return values.astype(object)
            if self.dtype == "object":
                return values.astype(object, copy=False)  # the frame it goes into copies it
            return values.astype(self.dtype)
        except (TypeError, ValueError):
            return values

    def stored(self, values) -> np.ndarray:
        """A model's values (a list, one value) as numpy reads them when that is the column's dtype (whole numbers
        of an int64 column), which `cast` then keeps as they are; else as objects, which `cast` converts one by
        one (3 ms per 100,000 rows of each int column) or leaves alone."""
        typed = np.asarray(values)
        return typed if typed.dtype.name == self.dtype else np.asarray(values, dtype=object)

    # ------------------------------------------------------- typed/text views
    def typed(self, values: pd.Series) -> pd.Series:
        """Values written as text (numbers "13.5%", text dates) as numbers or datetimes, and whole numbers with
        blanks (nullable integers, see `written`) as the floats the real column reads as; others as they are."""
        return values.astype(float) if isinstance(values.dtype, pd.Int64Dtype) else values

    def written(self, values: pd.Series, marginal=None) -> pd.Series:
        """Whole numbers with blanks ("30", "", "41": pandas reads float64) as nullable integers, or every writer
        turns 31 into "31.0". Values protection made fractional (a band's midpoint) stay floats."""
        if self.null_rate == 0 or not pd.api.types.is_float_dtype(values.dtype) or not self.whole(marginal):
            return values
        return _nullable_integers(values) if np.all(np.mod(values.dropna().to_numpy(), 1) == 0) else values

    def whole(self, marginal) -> bool:
        """Whether the column holds whole numbers only (fitted with no decimals)."""
        return self.decimals == 0

    def text(self, values: pd.Series) -> pd.Series:
        """The inverse of `typed`: back to the input's text format (nulls stay null)."""
        return values

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    @staticmethod
    def from_dict(data: dict) -> "ColumnSpec":
        """A column from its dictionary (older models stored every kind's fields: the foreign ones are None)."""
        cls = KIND_CLASSES[data["kind"]]
        names = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


def _nullable(dtype) -> object:
    if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
        return float
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return dtype
    return object


def _nullable_integers(values: pd.Series) -> pd.Series:
    """Whole floats with blanks as nullable integers: `astype("Int64")`, built from the numbers and their blanks
    directly where pandas would check every cell again (17x the time: 0.05 CPU s of a wide 100,000-row shard)."""
    numbers = values.to_numpy()
    if not isinstance(values.dtype, np.dtype) or not np.all(np.abs(numbers[~np.isnan(numbers)]) < 2.0**63):
        return values.astype("Int64")  # a masked float column, or numbers past int64, which pandas refuses
    missing = np.isnan(numbers)
    return pd.Series(pd.arrays.IntegerArray(np.where(missing, 1, numbers).astype(np.int64), missing),
                     index=values.index, name=values.name)


def _present_as_text(values: pd.Series, write) -> np.ndarray:
    present = values.notna().to_numpy()
    text = np.full(len(values), None, dtype=object)
    text[present] = write(values[present])
    return text


# ------------------------------------------------------------------ numeric kinds
@dataclass
class Numeric(ColumnSpec):
    """A column modelled by a numeric marginal (point masses and a continuous part) of its numbers."""

    shape: ClassVar[str] = "numeric"
    quantity: ClassVar[bool] = True
    grid_scale: ClassVar[tuple[float, float]] = (1.0, 0.0)  # (unit, origin) a histogram grid of its numbers uses

    def to_numbers(self, series: pd.Series) -> np.ndarray:
        raise NotImplementedError

    def value_variable(self, values: pd.Series, present: np.ndarray, k: int, rng) -> Iterator[tuple]:
        numbers = self.to_numbers(values)
        yield "value", NumericMarginal.fit(numbers, k, rng=rng), numbers, present


@dataclass
class Continuous(Numeric):
    """Real numbers, also written as text with one prefix and suffix ("13.56%", "$1,200")."""

    kind: ClassVar[str] = "continuous"
    pearson: ClassVar[bool] = True
    decimals: int | None = None  # decimals seen in the input
    number_format: dict | None = None  # numbers written as text: prefix, suffix, decimals, thousands, width
    rounding: dict | None = None  # rounding steps (multiples of 1000, 100, 25, ...) and their shares
    bounds: list | None = None  # the range sampled values are clipped into (bounds.outward_bounds)

    @classmethod
    def detect(cls, series: pd.Series, seen: Unlabelled) -> bool:
        return seen.whole is False

    @classmethod
    def fit(cls, series: pd.Series, k: int = 1, present: pd.Series | None = None) -> "Continuous":
        values = series.dropna() if present is None else present
        spec = super().fit(series, k, values)
        if not pd.api.types.is_numeric_dtype(series):
            spec.number_format = col.detect_number_format(values)
            if spec.number_format is None:
                raise TwinInputError(series.name, "values are not numbers")
            spec.decimals = spec.number_format["decimals"]
        else:
            spec.decimals = col.count_decimals(values.to_numpy(dtype=float))
            spec.bounds = [float(bound) for bound in outward_bounds(values)] if len(values) else None
        spec.rounding = col.detect_rounding(col.to_plain_numbers(values, spec.number_format), spec.decimals)
        return spec

    @classmethod
    def in_form(cls, encoded: pd.Series) -> "Continuous":
        """A column modelled in its rule's form (rules/forms.py: a fraction of its interval, a gap, a residual):
        its range only. The real column's decimals and rounding steps are applied on decoding (RuleSet.formats),
        so none is looked for in the form's numbers (a rounding search over every distinct fraction)."""
        values = encoded.dropna()
        spec = super().fit(encoded, present=values)
        spec.bounds = [float(bound) for bound in outward_bounds(values)] if len(values) else None
        return spec

    def to_numbers(self, series: pd.Series) -> np.ndarray:
        """The column as floats (numbers written as text parsed)."""
        return col.to_plain_numbers(series, self.number_format)

    def restore(self, marginal, decoded: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """Its decimals and rounding steps (point masses stay exactly as they are), clipped into its bounds."""
        decimals = self.decimals if self.decimals is not None else 6
        numbers = np.round(decoded, decimals)
        low, high = marginal.x_points[0], marginal.x_points[-1]  # the model's range: its (noisy) end knots
        inward = np.ceil(np.round(low * 10.0 ** decimals, 6)) / 10.0 ** decimals, \
            np.floor(np.round(high * 10.0 ** decimals, 6)) / 10.0 ** decimals
        if inward[0] <= inward[1]:  # rounding must not carry a value past them (256.9 -> 257)
            numbers = np.where(np.isfinite(numbers), np.clip(numbers, *inward), numbers)
        if self.rounding:
            numbers = col.round_to_steps(numbers, self.rounding, rng, keep=np.isin(numbers, marginal.atoms),
                                         bounds=(marginal.x_points[0], marginal.x_points[-1]))
        if self.bounds:  # noisy end knots may reach past the observed range; the upload's contract may not be
            numbers = np.clip(numbers, *self.bounds)
        return pd.Series(col.format_number_text(numbers, self.number_format) if self.number_format else numbers)

    def typed(self, values: pd.Series) -> pd.Series:
        return col.parse_number_text(values, self.number_format) if self.number_format else super().typed(values)

    def text(self, values: pd.Series) -> pd.Series:
        if not self.number_format:
            return values
        return _present_as_text(values, lambda present: col.format_number_text(
            np.round(present.to_numpy(dtype=float), self.decimals or 0), self.number_format))


@dataclass
class Integer(Continuous):
    """Whole numbers (amounts, counts, terms), also written as text ("36 months")."""

    kind: ClassVar[str] = "integer"

    @classmethod
    def detect(cls, series: pd.Series, seen: Unlabelled) -> bool:
        return seen.whole is True


@dataclass
class Datetime(Numeric):
    """Dates and times, native or text in a recognised format, modelled as seconds since 1970."""

    kind: ClassVar[str] = "datetime"
    # days from 2000-01-01: an octave grid then resolves years (seconds since 1970 share one octave)
    grid_scale: ClassVar[tuple[float, float]] = (86400.0, 946684800.0)
    date_format: str | None = None  # text dates: strptime/strftime format; None for native datetime64
    date_resolution: str | None = None  # "Y", "M", "D" or "s"
    utc_offsets: dict | None = None  # times written with a UTC offset: the offsets in force (col.utc_offsets)

    @classmethod
    def detect(cls, series: pd.Series, seen: Unlabelled) -> bool:
        return pd.api.types.is_datetime64_any_dtype(series) or col.detect_date_format(seen.values)[0] is not None

    @classmethod
    def fit(cls, series: pd.Series, k: int = 1, present: pd.Series | None = None) -> "Datetime":
        present = series.dropna() if present is None else present
        spec = super().fit(series, k, present)
        if pd.api.types.is_datetime64_any_dtype(series):
            spec.date_resolution = "s"
        else:
            spec.date_format, spec.date_resolution = col.detect_date_format(present)
            if spec.date_format is None:
                raise TwinInputError(series.name, "values are not dates in a recognised format")
            spec.utc_offsets = col.utc_offsets(series, spec.date_format)
        seconds = spec.to_numbers(present)
        if spec.date_resolution == "s" and len(seconds) and np.all(np.mod(seconds[np.isfinite(seconds)], 86400) == 0):
            spec.date_resolution = "D"  # every time is midnight ("2023-01-05 00:00:00"): days, not invented times
        return spec

    def to_numbers(self, series: pd.Series) -> np.ndarray:
        """Seconds since 1970; text dates read once per distinct text (a column repeats its dates: a month of issue
        on 10,000 loans is a few dozen texts), each the same number as when read on every row."""
        if self.date_format:
            codes, texts = pd.factorize(series.astype(str))
            stamps = self.typed(pd.Series(texts, dtype=object).str.strip())
        else:
            stamps = pd.to_datetime(series, errors="coerce")
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert(None)
        seconds = (stamps.astype("datetime64[ns]").astype("int64") // 10**9).to_numpy(dtype=float)
        return seconds[codes] if self.date_format else seconds

    def restore(self, marginal, decoded: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """Rounded to the format's resolution and written in its format."""
        stamps = pd.Series(pd.to_datetime(np.rint(decoded).astype("int64"), unit="s"))
        resolution = self.date_resolution or "s"
        if resolution != "s":
            stamps = (stamps + ROUNDING_SHIFT[resolution]).dt.to_period(resolution).dt.to_timestamp()
        if not self.date_format:
            return self._zoned(stamps)
        return pd.Series(self._written_dates(stamps), dtype=object)

    def _zoned(self, stamps: pd.Series) -> pd.Series:
        """Native times of a zone (a Parquet column in Europe/Berlin) are modelled in UTC and put back in their
        zone: written naive, they read as UTC and every time moved by the zone's offset."""
        dtype = pd.api.types.pandas_dtype(self.dtype) if self.dtype.startswith("datetime64") else None
        if not isinstance(dtype, pd.DatetimeTZDtype):
            return stamps
        return stamps.dt.tz_localize("UTC").dt.tz_convert(dtype.tz)

    def typed(self, values: pd.Series) -> pd.Series:
        return col.parse_dates(values, self.date_format) if self.date_format else values

    def text(self, values: pd.Series) -> pd.Series:
        if not self.date_format:
            return values
        return _present_as_text(values, lambda present: self._written_dates(pd.to_datetime(present)))

    def _written_dates(self, stamps: pd.Series) -> np.ndarray:
        """Dates (none missing) in the column's text format."""
        return col.write_dates(stamps, self.date_format, self.utc_offsets)


# ------------------------------------------------------------------ sliced kinds
@dataclass
class Discrete(ColumnSpec):
    """A numeric column with at most DISCRETE_MAX_VALUES values, modelled value by value (rare ones merged)."""

    kind: ClassVar[str] = "discrete"
    shape: ClassVar[str] = "sliced"
    quantity: ClassVar[bool] = True
    category: ClassVar[bool] = True

    @classmethod
    def detect(cls, series: pd.Series, seen: Unlabelled) -> bool:
        return pd.api.types.is_numeric_dtype(series) and seen.distinct <= col.DISCRETE_MAX_VALUES

    def whole(self, marginal) -> bool:
        """Its values are real ones (its marginal's slices): whole numbers when every one is (a count, a flag)."""
        numbers = pd.to_numeric(pd.Series(getattr(marginal, "values", []), dtype=object), errors="coerce")
        return bool(len(numbers)) and bool(numbers.notna().all()) and bool(np.all(np.mod(numbers, 1) == 0))

    def value_variable(self, values: pd.Series, present: np.ndarray, k: int, rng) -> Iterator[tuple]:
        marginal = SlicedMarginal.fit(values, self.kind, k, rng=rng)
        yield "value", marginal, marginal.codes(values), present

    def restore(self, marginal, decoded: np.ndarray, rng: np.random.Generator) -> pd.Series:
        return pd.Series(self.stored(marginal.values)[decoded])


@dataclass
class Boolean(Discrete):
    """Two values: a bool dtype, 0/1, or a pair of words such as yes/no."""

    kind: ClassVar[str] = "boolean"
    quantity: ClassVar[bool] = False

    @classmethod
    def detect(cls, series: pd.Series, seen: Unlabelled) -> bool:
        if pd.api.types.is_bool_dtype(series):
            return True
        if seen.distinct != 2:
            return False
        values = seen.values
        if pd.api.types.is_numeric_dtype(series):
            return set(np.unique(values.to_numpy(dtype=float))) <= {0.0, 1.0}
        return set(values.astype(str).str.lower().unique()) <= col.BOOLEAN_WORDS


@dataclass
class Categorical(Discrete):
    """Labels (rare ones pooled into "Other"); the fit orders them along the other columns."""

    kind: ClassVar[str] = "categorical"
    unordered: ClassVar[bool] = True
    quantity: ClassVar[bool] = False

    @classmethod
    def detect(cls, series: pd.Series, seen: Unlabelled) -> bool:
        return True


@dataclass
class Text(Categorical):
    """Free text: more than TEXT_MIN_VALUES distinct strings, mostly rare (kept only when seen k times)."""

    kind: ClassVar[str] = "text"
    category: ClassVar[bool] = False

    @classmethod
    def detect(cls, series: pd.Series, seen: Unlabelled) -> bool:
        return seen.distinct > col.TEXT_MIN_VALUES and seen.distinct > 0.2 * len(seen.values)


# ----------------------------------------------------------- kinds with no marginal
@dataclass
class Identifier(ColumnSpec):
    """A key: never modelled; each sample mints fresh keys of the same shape that never equal a real one."""

    kind: ClassVar[str] = "identifier"
    is_key: ClassVar[bool] = True
    id_pattern: dict = field(default_factory=dict)  # how fresh keys are formed (keys.identifier_pattern)

    @classmethod
    def detect(cls, series: pd.Series, seen: Unlabelled) -> bool:
        return is_key(series, unique=seen.distinct == len(seen.values))

    @classmethod
    def fit(cls, series: pd.Series, k: int = 1, present: pd.Series | None = None) -> "Identifier":
        present = series.dropna() if present is None else present
        spec = super().fit(series, k, present)
        spec.id_pattern = identifier_pattern(present)
        return spec

    def variables(self, series, k, governed=None, rng=None) -> Iterator[tuple]:
        return iter(())

    def fill(self, size: int, start: int, rng: np.random.Generator) -> pd.Series:
        return pd.Series(self.mint(start, size, rng))

    def mint(self, start: int, count: int, rng: np.random.Generator) -> np.ndarray:
        """Fresh keys number `start` .. `start + count - 1` of a sample."""
        return mint_identifiers(self.id_pattern, start, count, rng)


@dataclass
class Constant(ColumnSpec):
    """One value on every present row. A value seen on fewer than k rows is rare: not stored, the column stays null."""

    kind: ClassVar[str] = "constant"
    value: object = None

    @classmethod
    def detect(cls, series: pd.Series, seen: Unlabelled) -> bool:
        return seen.distinct <= 1

    @classmethod
    def fit(cls, series: pd.Series, k: int = 1, present: pd.Series | None = None) -> "Constant":
        values = series.dropna() if present is None else present
        spec = super().fit(series, k, values)
        spec.value = None if len(values) < max(k, 1) else (
            values.iloc[0].item() if hasattr(values.iloc[0], "item") else values.iloc[0])
        return spec

    def fill(self, size: int, start: int, rng: np.random.Generator) -> pd.Series:
        return pd.Series(np.full(size, self.stored(self.value)))  # no list of `size` items first


@dataclass
class Duplicate(ColumnSpec):
    """A column equal to an earlier one on every row (funded_amnt = loan_amnt): written as a copy of it."""

    kind: ClassVar[str] = "duplicate"
    copy_of: str | None = None

    def variables(self, series, k, governed=None, rng=None) -> Iterator[tuple]:
        return iter(())

    def sample(self, marginal, decoded, is_null, size, start, rng, frame: dict) -> pd.Series:
        return frame[self.copy_of].copy()


@dataclass
class Derived(ColumnSpec):
    """A column computed from others through a business rule (rules/): written by the rule after sampling."""

    kind: ClassVar[str] = "derived"

    def variables(self, series, k, governed=None, rng=None) -> Iterator[tuple]:
        return iter(())

    def sample(self, marginal, decoded, is_null, size, start, rng, frame: dict) -> pd.Series:
        return pd.Series(np.full(size, np.nan))


KIND_CLASSES = {cls.kind: cls for cls in (Continuous, Integer, Discrete, Boolean, Categorical, Datetime, Identifier,
                                          Constant, Text, Duplicate, Derived)}
KINDS = tuple(KIND_CLASSES)
# Tried in this order on a column whose kind is not given; Categorical takes whatever is left.
DETECTION = (Constant, Boolean, Datetime, Identifier, Discrete, Integer, Continuous, Text, Categorical)


def detect_spec(series: pd.Series, primary_key: bool = False, kind: str | None = None, k: int = 1) -> ColumnSpec:
    """A fitted column: its kind (detected unless given; a primary key is an identifier) and format details."""
    if kind is not None and kind not in KIND_CLASSES:
        raise TwinInputError(series.name, f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if primary_key:
        kind = "identifier"
    seen = None
    if kind is None:
        seen = Unlabelled(series)
        kind = next(cls.kind for cls in DETECTION if cls.detect(series, seen))
    return KIND_CLASSES[kind].fit(series, k, None if seen is None else seen.values)


class Unlabelled:
    """What the kinds' tests read of a column whose kind is not given: its non-null values, their number of
    distinct values and whether they are whole numbers, each found once however many kinds ask (four tests
    counted the distinct values of every column, two read text numbers twice)."""

    def __init__(self, series: pd.Series):
        self.series, self.values = series, series.dropna()

    @cached_property
    def distinct(self) -> int:
        return self.values.nunique()

    @cached_property
    def whole(self) -> bool | None:
        """Whether a numeric column (or numbers written as text) holds whole numbers; None when it is neither."""
        if pd.api.types.is_numeric_dtype(self.series):
            return bool(np.all(np.mod(self.values.to_numpy(dtype=float), 1) == 0))
        number_format = col.detect_number_format(self.values) if self.distinct > col.DISCRETE_MAX_VALUES else None
        return None if number_format is None else number_format["decimals"] == 0


def mark_duplicates(df: pd.DataFrame, specs: list[ColumnSpec], fixed: set[str]) -> None:
    """A column equal to an earlier one on every row (funded_amnt = loan_amnt) becomes a copy of it, so the
    twin keeps the identity exactly instead of approximating it through a 0.9995 correlation."""
    first_with: dict[str, str] = {}
    for index, spec in enumerate(specs):
        if isinstance(spec, (Identifier, Constant)) or spec.name in fixed:
            continue
        column = df[spec.name]
        digest = hashlib.sha256(str(column.dtype).encode()
                                + pd.util.hash_pandas_object(column, index=False).to_numpy().tobytes()).hexdigest()
        source = first_with.setdefault(digest, spec.name)
        if source != spec.name and column.equals(df[source]):
            specs[index] = Duplicate(spec.name, spec.dtype, spec.null_rate, copy_of=source)
