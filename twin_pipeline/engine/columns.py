"""Format detectors of a column's values: text dates, numbers written as text, decimals, rounding steps.

The column kinds that use them (one class each, with detection, encoding and decoding) are in transformers.py.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

DISCRETE_MAX_VALUES = 20  # a numeric column with at most this many values is modelled value by value
TEXT_MIN_VALUES = 100  # a string column with more distinct values than this, mostly rare, is free text
BOOLEAN_WORDS = {"true", "false", "yes", "no", "y", "n", "t", "f"}

# Text date formats tried in order; the first that parses every sampled value wins. `resolution` is the finest
# unit the format can express, so sampled dates are rounded to it and printed back in the same format.
DATE_FORMATS = (
    ("%Y-%m-%d", "D"), ("%Y-%m-%d %H:%M:%S", "s"), ("%Y-%m-%dT%H:%M:%S", "s"), ("%Y/%m/%d", "D"),
    ("%d/%m/%Y", "D"), ("%m/%d/%Y", "D"), ("%d.%m.%Y", "D"), ("%d-%m-%Y", "D"), ("%b-%Y", "M"), ("%b-%y", "M"),
    ("%B %Y", "M"), ("%Y-%m", "M"), ("%m/%Y", "M"), ("%Y%m%d", "D"), ("%d-%b-%Y", "D"), ("%d %b %Y", "D"),
    # exports seen at banks: ISO times in UTC from an API, minutes without seconds, Oracle's 09-APR-23
    ("%Y-%m-%dT%H:%M:%SZ", "s"), ("%Y-%m-%d %H:%M", "s"), ("%d/%m/%Y %H:%M", "s"), ("%m/%d/%Y %H:%M", "s"),
    ("%d.%m.%Y %H:%M", "s"), ("%d-%b-%y", "D"), ("%b %d, %Y", "D"),
    # times with their UTC offset ("2024-03-03T15:39:13+01:00", a card system's local time): modelled as UTC
    ("%Y-%m-%dT%H:%M:%S%z", "s"), ("%Y-%m-%d %H:%M:%S%z", "s"),
)
MAX_OFFSET_CHANGES = 24  # a zone's daylight-saving switches over a dozen years; more: several zones mixed
OFFSET_TEXT = re.compile(r"(?:(?P<sign>[+-])(?P<hours>\d\d):?(?P<minutes>\d\d)|Z)$")


def detect_date_format(values: pd.Series) -> tuple[str | None, str | None]:
    """The first format in DATE_FORMATS that parses every sampled non-null string value."""
    if pd.api.types.is_numeric_dtype(values):
        return None, None
    for sample in values.iloc[:1], values.iloc[:: max(1, len(values) // 500)][:500]:  # the first value decides most
        sample = sample.astype(str).str.strip()
        if sample.empty or not sample.str.contains(r"\d\D*\d").all():
            return None, None  # every format has a year (%Y: four digits, %y: two): "A1" is no date in any
    first = sample.iloc[:1]  # a format that cannot read the first value is not tried on the other 499
    for fmt, resolution in DATE_FORMATS:
        if parse_dates(first, fmt).notna().all() and parse_dates(sample, fmt).notna().all():
            if re.search("%[bB]", fmt) and sample.str.replace(r"[^A-Za-z]", "", regex=True).str.isupper().all():
                fmt = re.sub("%([bB])", r"%^\1", fmt)  # Oracle's "09-APR-23": months written in capitals
            return fmt, resolution
    return None, None


def parse_dates(text: pd.Series, fmt: str) -> pd.Series:
    """Text dates in `fmt` as naive datetimes, NaT where unreadable; times with a UTC offset (%z) in UTC; `%^b`
    (a month name in capitals) reads as %b."""
    fmt = fmt.replace("%^", "%")
    if "%z" not in fmt:
        return pd.to_datetime(text, format=fmt, errors="coerce")
    return pd.to_datetime(text, format=fmt, errors="coerce", utc=True).dt.tz_localize(None)


def utc_offsets(text: pd.Series, fmt: str) -> dict | None:
    """How times written with a UTC offset give it: {"colon": "+01:00" or "+0100", "changes": [[from, minutes],
    ...]}, the offset in force from each instant on (seconds since 1970, the first from the start of time).

    One zone's offsets change at its daylight-saving switches: each switch is kept as the midpoint, to the hour,
    between the last time of one offset and the first of the next (no real time is stored). Offsets changing
    more often than MAX_OFFSET_CHANGES (several zones in one column) are written as the most common one."""
    if "%z" not in fmt:
        return None
    text = text.dropna().astype(str).str.strip()
    parts = text.str.extract(OFFSET_TEXT)
    minutes = (parts["hours"].astype(float) * 60 + parts["minutes"].astype(float)).fillna(0)
    minutes = minutes.where(parts["sign"] != "-", -minutes).astype(int).to_numpy()
    seconds = parse_dates(text, fmt).astype("int64").to_numpy() // 10**9
    order = np.argsort(seconds, kind="stable")
    seconds, minutes = seconds[order], minutes[order]
    switch = np.flatnonzero(np.diff(minutes) != 0) + 1
    if len(switch) > MAX_OFFSET_CHANGES:
        values, counts = np.unique(minutes, return_counts=True)
        changes = [[None, int(values[np.argmax(counts)])]]
    else:
        starts = (seconds[switch - 1] + seconds[switch]) // 2 // 3600 * 3600
        changes = [[None, int(minutes[0])]] + [[int(at), int(minutes[i])] for at, i in zip(starts, switch)]
    return {"colon": bool(text.str.contains(r"[+-]\d\d:\d\d$").any()), "changes": changes}


def write_dates(stamps: pd.Series, fmt: str, offsets: dict | None = None) -> np.ndarray:
    """Naive datetimes (none missing) as text in `fmt`; UTC times with an offset in force (see utc_offsets) are
    written as local time plus that offset. Each distinct time is formatted once (strftime is a call per value)."""
    if "%^" in fmt:  # capitals, as glibc's %^b writes them (portably)
        return pd.Series(write_dates(stamps, fmt.replace("%^", "%"), offsets)).str.upper().to_numpy(dtype=object)
    codes, distinct = pd.factorize(stamps)
    distinct = pd.Series(distinct)
    if "%z" not in fmt:
        return distinct.dt.strftime(fmt).to_numpy(dtype=object)[codes]
    offsets = offsets or {"colon": True, "changes": [[None, 0]]}
    starts = np.array([np.iinfo(np.int64).min if at is None else at for at, _ in offsets["changes"]], dtype=np.int64)
    minutes = np.array([m for _, m in offsets["changes"]], dtype=np.int64)
    seconds = distinct.astype("int64").to_numpy() // 10**9
    minute = minutes[np.searchsorted(starts, seconds, side="right") - 1]
    local = (distinct + pd.to_timedelta(minute, unit="m")).dt.strftime(fmt.replace("%z", ""))
    sign = np.where(minute < 0, "-", "+")
    hours, rest = np.abs(minute) // 60, np.abs(minute) % 60
    joint = ":" if offsets["colon"] else ""
    zone = [f"{s}{h:02d}{joint}{m:02d}" for s, h, m in zip(sign, hours, rest)]
    return (local + pd.Series(zone, index=local.index)).to_numpy(dtype=object)[codes]


SCREEN_ROWS = 100
DECIMAL_COMMA = str.maketrans(",.", ".,")  # "1.200,50" <-> "1,200.50"
ACCOUNTING_NEGATIVE = re.compile(r"^\((?P<prefix>[^\d()-]*?)(?P<rest>\d[^()]*)\)$")  # "(1,234.56)", "($9.50)"
NUMBER_TEXT = re.compile(r"^(?P<prefix>[^\w+-]*?)(?P<number>[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)(?P<suffix>[^\d]*)$")


def detect_number_format(values: pd.Series) -> dict | None:
    """Numbers written as text with one fixed prefix and suffix ("13.56%", "$1,200.50", " 36 months"), or with a
    decimal comma ("21014,17", "1.200,50 EUR": a European export), which is kept as `decimal`.

    The prefix may hold symbols only (a currency sign, spaces): "customer 0042" is a label, not a number.
    A column read both ways ("1,200" only) takes the comma as a thousands separator.
    """
    first = values.iloc[:1].astype(str)
    if first.empty or not any(character.isdigit() for character in first.iloc[0]):
        return None  # every value must hold a number (stripping, brackets and commas add no digit): "Paris" is none
    text = pd.Series(values.astype(str).unique(), dtype=object)  # the format depends on the distinct texts only
    if (text.str.len() - text.str.lstrip().str.len()).nunique() > 1:  # right-aligned ("    2,034.48"): padding
        text = text.str.strip()  # is no prefix (a constant one, " 36 months", is)
    bracketed = text.str.match(ACCOUNTING_NEGATIVE).any()
    text = _signed(text) if bracketed else text
    found = _number_format(text)
    if found is None:
        found = _number_format(text.str.translate(DECIMAL_COMMA))
        if found is not None:
            found.update(prefix=found["prefix"].translate(DECIMAL_COMMA), suffix=found["suffix"].translate(DECIMAL_COMMA),
                         decimal=",")
    if found is not None and bracketed:
        found["negatives"] = "brackets"
    return found


def _signed(text: pd.Series) -> pd.Series:
    """Accounting negatives in brackets with a minus sign after the prefix: "(1,234.56)" -> "-1,234.56"."""
    return text.str.replace(ACCOUNTING_NEGATIVE, r"\g<prefix>-\g<rest>", regex=True)


def _number_format(text: pd.Series) -> dict | None:
    if any(NUMBER_TEXT.search(value) is None for value in text.iloc[:SCREEN_ROWS]):
        return None  # a text column is mostly ruled out on its first values, before the extract of every one
    parts = text.str.extract(NUMBER_TEXT)
    if text.empty or parts["number"].isna().any() or parts["prefix"].nunique() != 1 or parts["suffix"].nunique() != 1:
        return None
    decimals = pd.to_numeric(parts["number"].str.extract(r"\.(\d+)$")[0].str.len(), errors="coerce").max()
    decimals = 0 if pd.isna(decimals) else decimals
    padded = parts["number"].str.match(r"[-+]?0\d")  # "007xx": zero-padded to a fixed width
    return {"prefix": parts["prefix"].iloc[0], "suffix": parts["suffix"].iloc[0], "decimals": int(decimals),
            "thousands": bool(parts["number"].str.contains(",").any()),
            "width": int(parts["number"].str.len().max()) if padded.any() else 0}


def is_amount_format(number_format: dict | None) -> bool:
    """Text numbers with cents or thousands separators ("$9,999.99", "1.234,56") are amounts: a key has neither,
    so a column of such values is not a key even when every value is distinct and of one shape."""
    return bool(number_format and (number_format["decimals"] or number_format["thousands"]))


def parse_number_text(values: pd.Series, number_format: dict) -> np.ndarray:
    text = values.astype(str).str.strip()
    if number_format.get("negatives") == "brackets":
        text = _signed(text)
    if number_format.get("decimal") == ",":
        text = text.str.translate(DECIMAL_COMMA)
    numbers = text.str.extract(NUMBER_TEXT)["number"].str.replace(",", "", regex=False)
    return pd.to_numeric(numbers, errors="coerce").to_numpy(dtype=float)


def format_number_text(numbers: np.ndarray, number_format: dict) -> np.ndarray:
    width = f"0{number_format['width']}" if number_format.get("width") else ""
    pattern = "{:" + width + ("," if number_format["thousands"] else "") + f".{number_format['decimals']}f" + "}"
    bracketed = number_format.get("negatives") == "brackets"
    text = pd.Series(np.abs(numbers) if bracketed else numbers).map(pattern.format)
    if number_format.get("decimal") == ",":
        text = text.str.translate(DECIMAL_COMMA)
    text = number_format["prefix"] + text + number_format["suffix"]
    if bracketed:
        text = text.where(~(np.asarray(numbers) < 0), "(" + text + ")")
    return text.to_numpy(dtype=object)


def count_decimals(numbers: np.ndarray, most: int = 8) -> int:
    """Fewest decimals that represent every value (to float precision), capped at `most`."""
    sample = numbers[np.isfinite(numbers)][:20000]
    for decimals in range(most + 1):
        scaled = sample * 10.0**decimals
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled))):
            return decimals
    return most


ROUNDING_STEPS = tuple(sorted({m * 10.0**e for e in range(-4, 7) for m in (1, 2, 2.5, 5)}))
ROUNDING_MIN_GAIN = 0.02  # a step is real when this much more of the values sit on it than chance would put there
ATOM_SHARE = 0.005  # as in marginals: values this frequent are point masses, kept exactly and not rounded


def to_plain_numbers(values: pd.Series, number_format: dict | None) -> np.ndarray:
    return parse_number_text(values, number_format) if number_format else values.to_numpy(dtype=float)


def on_step(numbers: np.ndarray, step: float) -> np.ndarray:
    """Whole multiples of `step`; a small non-zero value is no multiple of a far larger step (a ratio of 0.002
    is not on 5,000,000, though it is within the tolerance of 0 times it)."""
    ratio = numbers / step
    whole = np.round(ratio)
    return (np.abs(ratio - whole) <= 1e-9 * np.maximum(1.0, np.abs(ratio))) & ((whole != 0) | (numbers == 0))


def detect_rounding(numbers: np.ndarray, decimals: int | None, with_atoms: bool = False) -> dict | None:
    """The rounding steps a column's values sit on beyond its decimals (incomes in hundreds, 10 % of them in
    thousands), as a chain of nested steps with the share of values on each; point masses are left out.

    Returns {"steps": fine to coarse, "shares": share of values on each, "weights": the share of values to
    round to each step so that a smooth sample lands on every step as often as the real values do}."""
    # Each distinct value is tested once per step and counted as often as it occurs (amounts repeat): the
    # shares are whole counts over the same total, so the same numbers as testing every value.
    values, counts = np.unique(numbers[np.isfinite(numbers)], return_counts=True)
    if not with_atoms:  # `with_atoms`: for values computed through a rule, which has no point masses of its own
        kept = counts < max(5, ATOM_SHARE * counts.sum())
        values, counts = values[kept], counts[kept]
    total = int(counts.sum())
    if total < 50:
        return None
    base = 10.0 ** -(decimals or 0)
    chain, shares = [base], [1.0]
    # a step at least twice the largest value holds its zeros only (every other ratio rounds to 0): counted once
    largest, zeros = max(abs(values[0]), abs(values[-1])), float(counts[values == 0].sum() / total)
    on = {step: float(counts[on_step(values, step)].sum() / total) if step < 2 * largest else zeros
          for step in ROUNDING_STEPS if step > base * (1 + 1e-9)}
    while True:  # the next step is the one with most values above chance (amounts in 100s, not 20s, after 10s)
        options = [(on[step] - shares[-1] * chain[-1] / step, step) for step in on  # nesting tested last: the
                   if step > chain[-1] * (1 + 1e-9)  # shares rule out most steps at a float comparison's cost
                   and on[step] >= shares[-1] * chain[-1] / step + ROUNDING_MIN_GAIN
                   and on[step] >= 1.5 * shares[-1] * chain[-1] / step and on_step(np.array([step]), chain[-1])[0]]
        if not options:
            break
        _, step = max(options)
        chain.append(step)
        shares.append(on[step])
    for index in range(len(chain) - 2, 0, -1):  # a step every value on a coarser one also fills says nothing
        if shares[index + 1] >= shares[index] - 0.005:
            del chain[index], shares[index]
    if len(chain) == 1:
        return None
    return {"steps": chain, "shares": [round(share, 6) for share in shares], "weights": rounding_weights(chain, shares)}


def rounding_weights(steps: list[float], shares: list[float]) -> list[float]:
    """Share of values to round to each step: rounding to step i also lands on a coarser step j with chance
    s_i / s_j, so the real shares are solved for (non-negative least squares, weights summing to 1)."""
    levels = len(steps)
    landing = np.array([[1.0 if i >= j else steps[i] / steps[j] for i in range(levels)] for j in range(levels)])
    system = np.vstack([landing, 10.0 * np.ones(levels)])
    weights = nonnegative_least_squares(system, np.concatenate([shares, [10.0]]))
    return [round(float(w), 6) for w in weights / weights.sum()]


def nonnegative_least_squares(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin |a x - b| over x >= 0: Lawson and Hanson's active-set method (scipy.optimize.nnls's), for the few
    columns of a rounding chain. Written out because importing scipy.optimize for it cost each of a clone's two
    processes 0.09 s. The same weights to six decimals but for ties (in 2 % of 20,000 random chains one differs
    by 1e-6, where the exact weight ends in a 5 at the seventh)."""
    rows, columns = a.shape
    tolerance = 10 * max(rows, columns) * np.linalg.norm(a, 1) * np.finfo(float).eps
    x, passive = np.zeros(columns), np.zeros(columns, dtype=bool)
    gradient = a.T @ (b - a @ x)
    for _ in range(3 * columns):
        if passive.all() or gradient[~passive].max() <= tolerance:
            break
        passive[np.flatnonzero(~passive)[np.argmax(gradient[~passive])]] = True  # the steepest column joins
        while True:
            trial = np.zeros(columns)
            trial[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if trial[passive].min() > 0:
                x = trial
                break
            blocked = passive & (trial <= 0)  # go toward the trial as far as x stays >= 0; who reaches 0 leaves
            x = x + np.min(x[blocked] / (x[blocked] - trial[blocked])) * (trial - x)
            passive &= x > tolerance
            x[~passive] = 0.0
        gradient = a.T @ (b - a @ x)
    return x


def calibrate_rounding(rounding: dict, numbers: np.ndarray, sample, atoms: np.ndarray, decimals: int | None,
                       iterations: int = 4, draws: int = 20_000) -> dict:
    """Weights that make sampled values sit on each step as often as the real ones (all values, point masses
    included): a smooth sample rounded to a step also lands on coarser steps and on the point masses'
    values, which the closed-form weights do not see, so the shares are corrected on a simulated sample.
    `sample(n, rng)` draws model values of the column."""
    numbers = numbers[np.isfinite(numbers)]
    steps = rounding["steps"]
    target = np.array([on_step(numbers, step).mean() for step in steps])
    rng = np.random.default_rng(0)
    values = np.round(sample(draws, rng), decimals if decimals is not None else 6)
    keep = np.isin(values, atoms)
    shares = np.array(rounding["shares"], dtype=float)
    for _ in range(iterations):
        weights = rounding_weights(steps, list(shares))
        rounded = round_to_steps(values, {"steps": steps, "weights": weights}, np.random.default_rng(1), keep,
                                 bounds=(values.min(), values.max()))
        measured = np.array([on_step(rounded, step).mean() for step in steps])
        shares = np.clip(shares + (target - measured), 0.0, 1.0)
        shares[0] = 1.0
    return {**rounding, "weights": rounding_weights(steps, list(shares))}


def round_to_steps(numbers: np.ndarray, rounding: dict, rng: np.random.Generator, keep: np.ndarray | None = None,
                   bounds: tuple[float, float] | None = None) -> np.ndarray:
    """Round each value to a step drawn with the column's weights; `keep` (point masses) stays as it is, and a
    value the step would push out of `bounds` (the real range: 200 to a step of 500) keeps the finest step."""
    steps, weights = np.asarray(rounding["steps"]), np.asarray(rounding["weights"])
    level = np.minimum(np.searchsorted(np.cumsum(weights), rng.random(len(numbers)), side="right"), len(steps) - 1)
    step = steps[level]
    digits = max(0, int(np.ceil(-np.log10(steps[0]))) + 1)
    rounded = np.round(np.round(numbers / step) * step, digits)
    if bounds is not None:
        outside = (rounded < bounds[0]) | (rounded > bounds[1])
        rounded = np.where(outside, np.round(np.round(numbers / steps[0]) * steps[0], digits), rounded)
    finite = np.isfinite(numbers) if keep is None else np.isfinite(numbers) & ~keep
    return np.where(finite, rounded, numbers)
