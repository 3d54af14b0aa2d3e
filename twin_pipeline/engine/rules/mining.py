"""Finding rules in the real table: vectorised screens on a row sample, then an exact check on every row.

Only statistics come out: column names, signs, offsets shared by at least k rows, fitted coefficients,
category-to-value lookups of categories seen at least k times. No row is stored.
"""

from __future__ import annotations

import functools
import itertools
import keyword
import warnings

import numpy as np
import pandas as pd

from .core import DATE_UNITS, DAY, Rule, date_plus, numbers, parse_of

SCREEN_ROWS = 5_000  # order rules are screened on a row sample of this size
PROBE_ROWS = 8  # sums are screened on a few complete rows before the full check
RATIO_ROWS = 512
REPORT_SHARE = 0.999  # a near-rule holding on at least this share of rows is reported (not enforced)
NEAR_RULE_LIFT = 10  # ... when independent draws would break it this many times more often
INFORMATIVE = 0.005  # an order rule matters when independent draws would break it this often
RATIO_TOLERANCE = 0.01  # a ratio holds when its residual stays within this share of the spread
MAX_GROUP_VALUES = 60  # category columns with more values are not screened for fixed values
CHANCE = 1e-6  # a fixed value in a category must be this unlikely to arise by chance
MAX_SUM_COLUMNS = 60  # wider tables screen sums on the most varied columns only
PRODUCT_COLUMNS = 24  # products of three are screened among this many positive columns, the most varied
PRODUCT_ROWS = 64  # ... on this many rows where the target's rounding is negligible (LOG_TOLERANCE)
LOG_TOLERANCE = 1e-3
THRESHOLD_SHARE = 0.01  # a value fixed past a threshold: on at least this share of the rows (and k, and 20)
THRESHOLD_STEP = 0.1  # ... where at least this share of the rows just below the cut is off the value
GAP_PREFERENCE = 10  # ... cut just below its rows unless a gap this many times wider follows
TERM_DAYS = 2  # a date plus a term holds within this many days (a convention's day, a rounded term)
MONTH_DAYS = 365.2425 / 12


def numeric_columns(df: pd.DataFrame, specs) -> list[str]:
    """Columns read as plain numbers: the ones sums and ratios are searched among."""
    return [spec.name for spec in specs
            if spec.quantity and not spec.number_format
            and pd.api.types.is_numeric_dtype(df[spec.name]) and not pd.api.types.is_bool_dtype(df[spec.name])]


def parsed_columns(specs) -> dict[str, dict]:
    """Columns the engine reads as numbers although they are not plain numbers: text numbers ("$1,200") and
    dates (native or text), with how each is read (core.parse_of). Orders are searched among them too."""
    return {spec.name: parse_of(spec) for spec in specs
            if spec.quantity and parse_of(spec) is not None}


def units(specs, names) -> np.ndarray:
    """Half a unit of each column's last decimal: the rounding error a value can carry."""
    decimals = {spec.name: spec.decimals or 0 for spec in specs}
    return np.array([0.5 * 10.0 ** -decimals[name] for name in names])


def mine(df: pd.DataFrame, specs, k: int = 5, seed: int = 0) -> list[Rule]:
    """Every rule family on `df` (the real table); `specs` are the engine's column specs. A large table is
    mined on a row sample (a rule of every row holds on the sample too) and each rule found is confirmed, and
    its offset or tolerance re-measured, on every row."""
    if len(df) <= 2 * SCREEN_ROWS:
        return _mine(df, specs, k, seed)
    rules = _mine(df.sample(SCREEN_ROWS, random_state=seed).reset_index(drop=True), specs, k, seed)
    return [confirmed for confirmed in (confirm(rule, df, k) for rule in rules) if confirmed is not None]


def confirm(rule: Rule, df: pd.DataFrame, k: int) -> Rule | None:
    """A rule found on a sample, checked on every row: None when it does not hold as it did."""
    p = rule.params
    if rule.kind == "order" and p["offset"] != 0:
        parse = p.get("parse", {})
        gap = numbers(df[p["high"]], parse.get(p["high"])) - numbers(df[p["low"]], parse.get(p["low"]))
        lowest = np.nanmin(gap)
        if (gap <= lowest).sum() < k:
            return None
        p["offset"] = _clean(lowest)
    if rule.kind == "ratio":
        scale = 1.0 if not p.get("b") else df[p["b"]].to_numpy(dtype=float) ** (-p["power"])
        y = df[p["target"]].to_numpy(dtype=float) * scale
        residual = np.abs(y - p["slope"] * df[p["a"]].to_numpy(dtype=float) - p["intercept"])
        if np.nanmax(residual) > RATIO_TOLERANCE * np.nanstd(y):
            return None
        p["tolerance"] = max(p["tolerance"], float(np.nanmax(residual)) * 1.01)
    if rule.kind == "date_term":  # the offset and the distance re-measured on every row
        parse = p.get("parse", {})
        start, end = (numbers(df[p[side]], parse.get(p[side])) for side in ("start", "end"))
        term = numbers(df[p["term"]])
        complete = np.isfinite(start) & np.isfinite(end) & np.isfinite(term)
        found = _date_term_rule(start[complete], end[complete], term[complete], p["unit"])
        if found is None:
            return None
        p["tolerance_days"], p["offset_days"] = found[1], found[3]
    share = rule.shares(df)["share"]
    exact_only = rule.kind in ("fixed_when", "determined", "ratio")
    if share is None or share < (1.0 if exact_only else REPORT_SHARE):
        return None
    rule.real_share = share
    return rule


def _mine(df: pd.DataFrame, specs, k: int, seed: int) -> list[Rule]:
    rng = np.random.default_rng(seed)
    names = numeric_columns(df, specs)
    values = df[names].to_numpy(dtype=float) if names else np.zeros((len(df), 0))
    rules = mine_sums(values, names, specs, rng)
    found = {frozenset(rule.columns) for rule in rules}
    rules += [rule for rule in mine_ratios(values, names, specs, rng) if frozenset(rule.columns) not in found]
    found = {rule.params["target"] for rule in rules}
    rules += [rule for rule in mine_products(values, names, specs, rng) if rule.params["target"] not in found]
    parsed = parsed_columns(specs)  # orders also among text numbers, and among dates (never a date and a number)
    order_names = names + list(parsed)
    order_values = np.column_stack([values] + [numbers(df[name], parse) for name, parse in parsed.items()])
    resolution = {spec.name: spec.date_resolution for spec in specs}  # dates of one resolution only: a day
    unit_of = [f"date {resolution[name]}" if parsed.get(name, {}).get("kind") == "datetime" else "number"
             for name in order_names]  # written as text is never bounded inside one day by a timestamp
    rules += [_with_parse(rule, parsed) for rule in mine_orders(order_values, order_names, k, rng, unit_of)]
    dates = {name: order_values[:, len(names) + i] for i, (name, parse) in enumerate(parsed.items())
             if parse["kind"] == "datetime"}
    rules += [_with_parse(rule, parsed) for rule in mine_date_terms(dates, values, names, k)]
    coded = value_codes(df, specs)
    determined = mine_determined(df, specs, k, coded)
    implied = {(rule.params["column"], rule.params["by"]) for rule in determined}
    rules += [rule for rule in mine_fixed_values(df, specs, k, coded)
              if (rule.params["column"], next(iter(rule.params["when"]))) not in implied]
    return rules + determined + mine_thresholds(df, names, k, coded)


# ---------------------------------------------------------------------- order and bounded differences
def _with_parse(rule: Rule, parsed: dict) -> Rule:
    parse = {name: parsed[name] for name in rule.columns if name in parsed}
    if parse:
        rule.params["parse"] = parse
    return rule


def mine_orders(values: np.ndarray, names: list[str], k: int, rng, units: list[str] | None = None) -> list[Rule]:
    """`high - low >= offset` on (nearly) every row: offset 0 (an order), or a bound shared by >= k rows;
    only columns of one unit are compared (numbers, or dates of one resolution)."""
    n, p = values.shape
    if p < 2:
        return []
    sample = values[rng.choice(n, SCREEN_ROWS, replace=False)] if n > SCREEN_ROWS else values
    present = np.isfinite(sample)
    rules = []
    quantiles = [_quantiles(np.sort(sample[present[:, j], j])) for j in range(p)]
    counts, holds, lowest, on_bound = _pair_screens(sample, present)
    for i in range(p):
        for j in np.flatnonzero(counts[i] >= 50):
            if j == i or (units is not None and units[i] != units[j]):
                continue
            if (1 - holds[i, j]) * NEAR_RULE_LIFT > 1.0:
                continue  # broken too often for any chance (at most 1) to make it a near-rule
            offset = None
            if np.isfinite(lowest[i, j]) and lowest[i, j] != 0 and int(on_bound[i, j]) >= k:
                offset = float(lowest[i, j])  # a bound shared by at least k rows: Age - Seniority >= 14
            elif holds[i, j] >= REPORT_SHARE:
                offset = 0.0
            if offset is None:
                continue
            chance = _independent_violation(quantiles[i], quantiles[j], offset)
            if chance < INFORMATIVE or (1 - holds[i, j]) * NEAR_RULE_LIFT > chance:
                continue
            rules.append(_order_rule(values, names, i, j, offset))
    return [rule for rule in rules if rule.real_share >= REPORT_SHARE]


def _pair_screens(sample: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, ...]:
    """For every ordered pair (i, j) of columns, over the rows where both are present, of `high - low` with j
    high and i low: the number of rows, the share where it is >= 0, its lowest value (NaN without rows) and the
    number of rows at it. Each unordered pair is differenced once: the (j, i) difference is the (i, j) one negated,
    exactly (a - b = -(b - a) in floating point), so its share, lowest value and rows at it are the (i, j)
    difference's share <= 0, highest value negated and rows at that highest value. The columns are laid out as
    contiguous rows, so every count and extreme is a reduction along contiguous memory (numpy's reductions
    across rows of a row-major array were three quarters of the time)."""
    p = sample.shape[1]
    columns, known = np.ascontiguousarray(sample.T), np.ascontiguousarray(present.T)
    counts, above = np.zeros((p, p), dtype=np.int64), np.zeros((p, p), dtype=np.int64)
    lowest, on_bound = np.full((p, p), np.nan), np.zeros((p, p), dtype=np.int64)
    with np.errstate(invalid="ignore"):
        for i in range(p - 1):
            both = known[i] & known[i + 1:]
            difference = np.where(both, columns[i + 1:] - columns[i], np.nan)  # high (j > i) - low (i)
            counts[i, i + 1:] = counts[i + 1:, i] = both.sum(axis=1)
            above[i, i + 1:], above[i + 1:, i] = (difference >= 0).sum(axis=1), (difference <= 0).sum(axis=1)
            least, most = np.fmin.reduce(difference, axis=1), np.fmax.reduce(difference, axis=1)  # NaN: no rows
            lowest[i, i + 1:], lowest[i + 1:, i] = least, -most
            on_bound[i, i + 1:] = (difference <= least[:, None]).sum(axis=1)
            on_bound[i + 1:, i] = (difference >= most[:, None]).sum(axis=1)
        holds = np.where(counts > 0, above / np.maximum(counts, 1), 0.0)
    return counts, holds, lowest, on_bound


def _quantiles(sorted_values: np.ndarray, m: int = 2000) -> np.ndarray:
    """At most `m` evenly spaced order statistics of a sorted column: what `_independent_violation` compares,
    taken once per column rather than once per pair."""
    return sorted_values[np.linspace(0, len(sorted_values) - 1, min(m, len(sorted_values))).astype(int)]


def _independent_violation(low: np.ndarray, high: np.ndarray, offset: float) -> float:
    """How often `high - low >= offset` fails for independent draws of the two columns (`_quantiles` of each):
    0 when the ranges alone imply it (nothing to keep), large when only their dependence keeps it."""
    if not len(low) or not len(high):
        return 0.0
    return float(np.searchsorted(high, low + offset, side="left").mean() / len(high))


def _order_rule(values, names, i, j, offset) -> Rule:
    low, high = values[:, i], values[:, j]
    both = np.isfinite(low) & np.isfinite(high)
    share = float((high[both] - low[both] >= offset - 1e-9 * np.maximum(1.0, np.abs(high[both]))).mean())
    return Rule("order", {"low": names[i], "high": names[j], "offset": _clean(offset)}, real_share=round(share, 6))


def _clean(number: float) -> float | int:
    return int(number) if float(number).is_integer() else round(float(number), 10)


# ---------------------------------------------------------------------- a date plus a term
def mine_date_terms(dates: dict[str, np.ndarray], values: np.ndarray, names: list[str], k: int) -> list[Rule]:
    """`end = start + term x unit` within TERM_DAYS days (maturity = origination + term in months or years): for
    each pair of dates, the median gap per term unit of every never-negative varying numeric column at once (on a
    few hundred rows); the units near it are checked on every complete row, and the one holding on most rows (then
    the tightest) kept."""
    if len(dates) < 2:
        return []
    terms = [j for j in range(len(names)) if np.nanmin(values[:, j], initial=np.inf) >= 0
             and np.unique(values[np.isfinite(values[:, j]), j]).size >= 2]
    lengths = np.array([days or months * MONTH_DAYS for days, months in DATE_UNITS.values()])
    screen = np.unique(np.linspace(0, len(values) - 1, RATIO_ROWS).astype(int))  # rows the median is taken on
    positive = values[np.ix_(screen, terms)]
    positive[~(positive > 0)] = np.nan  # a gap per unit only where the term is positive
    rules = []
    for start, end in itertools.permutations(dates, 2):
        gap = (dates[end] - dates[start]) / DAY
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column with no positive term: no median
            per_unit = np.nanmedian(gap[screen, None] / positive, axis=0)
        for j, per in zip(terms, per_unit):
            near = [unit for unit, length in zip(DATE_UNITS, lengths) if 0.9 <= per / length <= 1.1]
            t = values[:, j]
            complete = np.isfinite(gap) & np.isfinite(t)
            if not near or complete.sum() < max(k, 30):
                continue
            options = [_date_term_rule(dates[start][complete], dates[end][complete], t[complete], unit)
                       for unit in near if DATE_UNITS[unit][0]  # a calendar term is a whole number of months
                       or np.allclose(t[complete] * DATE_UNITS[unit][1], np.round(t[complete] * DATE_UNITS[unit][1]))]
            options = [option for option in options if option is not None]
            if options:
                share, spread, unit, offset = max(options, key=lambda option: (option[0], -option[1]))
                rules.append(Rule("date_term", {"end": end, "start": start, "term": names[j], "unit": unit,
                                                "offset_days": offset, "tolerance_days": spread},
                                  real_share=round(share, 6)))
    return rules


def _date_term_rule(start: np.ndarray, end: np.ndarray, term: np.ndarray, unit: str) -> tuple | None:
    """(share of rows within TERM_DAYS of `start + term x unit + offset`, largest distance among them, unit,
    offset): the offset is the gap's median distance in whole days; None below REPORT_SHARE."""
    distance = (end - date_plus(start, term, unit)) / DAY
    offset = int(np.round(np.median(distance)))
    spread = np.abs(distance - offset)
    holds = spread <= TERM_DAYS
    if holds.mean() < REPORT_SHARE:
        return None
    return float(holds.mean()), round(float(spread[holds].max()), 6), unit, offset


# ---------------------------------------------------------------------- sums and differences
def mine_sums(values: np.ndarray, names: list[str], specs, rng) -> list[Rule]:
    """`target = a + b` and `target = a + b +/- c` within rounding: screened on a few complete rows
    (every candidate at once, by broadcasting), then checked on every row."""
    n, p = values.shape
    if p < 3:
        return []
    if p > MAX_SUM_COLUMNS:
        keep = np.argsort(-np.nanstd(values, axis=0))[:MAX_SUM_COLUMNS]
        values, names = values[:, keep], [names[index] for index in keep]
        p = len(names)
    half_units = units(specs, names)
    probes = _probe_rows(values, rng)
    if probes is None:
        return []
    x = values[probes]  # (m, p)
    tolerance = half_units.max() * 4 + 1e-9 * np.abs(x).max()
    pair_sum = x[:, :, None] + x[:, None, :]  # (m, p, p): a + b
    low, high = np.triu_indices(p, 1)  # the pairs a < b
    candidates = set()
    for target in range(p):
        rest = x[:, target][:, None, None] - pair_sum  # target - a - b
        three = np.all(np.abs(rest) <= tolerance, axis=0)
        for a, b in zip(*np.nonzero(np.triu(three, 1))):
            candidates.add((target, (int(a), 1), (int(b), 1)))
        for sign in (1, -1):  # target - a - b = sign * c: screened on the first probe row, then on all of them
            pair, c = np.nonzero(np.abs(rest[0][low, high][:, None] - sign * x[0][None, :]) <= tolerance)
            a, b = low[pair], high[pair]
            apart = (a != target) & (b != target) & (c != target) & (c != a) & (c != b) & ((sign < 0) | (b < c))
            a, b, c = a[apart], b[apart], c[apart]  # four columns; + c after b (the same sum in another order)
            keep = np.all(np.abs(rest[:, a, b] - sign * x[:, c]) <= tolerance, axis=0)
            for a, b, c in zip(a[keep], b[keep], c[keep]):
                candidates.add((target, (int(a), 1), (int(b), 1), (int(c), sign)))
    rules, seen = [], set()
    stats = _ColumnStats(values)
    for target, *terms in sorted(candidates):
        columns = frozenset([target, *(index for index, _ in terms)])
        if columns in seen or any(stats.spread(index) == 0 for index in columns):
            continue
        rule = _sum_rule(values, names, half_units, target, terms, stats)
        if rule is not None:
            seen.add(columns)
            rules.append(rule)
    return rules


def _probe_rows(values: np.ndarray, rng, m: int = PROBE_ROWS) -> np.ndarray | None:
    """A few rows where every column is present, the nonzero-rich ones first (a fee that is mostly 0 must not
    hide in the screen); None if no row is complete."""
    complete = np.flatnonzero(np.isfinite(values).all(axis=1))
    if len(complete) < 3:
        return None
    nonzero = (values[complete] != 0).sum(axis=1)
    ranked = complete[np.argsort(-nonzero + rng.random(len(complete)) * 0.5, kind="stable")]
    return np.concatenate([ranked[: m // 2], rng.choice(complete, min(m - m // 2, len(complete)), replace=False)])


class _ColumnStats:
    """A column's spread and size, which the candidate sums sharing it ask for again and again (a hundred
    candidates over a few dozen columns on the wide table): each measured once, as the same call on the same
    column, so every comparison reads the same number."""

    def __init__(self, values: np.ndarray):
        self.spread = functools.cache(lambda index: np.nanstd(values[:, index]))
        self.median_size = functools.cache(lambda index: np.nanmedian(np.abs(values[:, index])))
        self.largest_size = functools.cache(lambda index: np.nanmax(np.abs(values[:, index])))


def _sum_rule(values, names, half_units, target, terms, stats: _ColumnStats) -> Rule | None:
    indices = [target, *(index for index, _ in terms)]
    tolerance = float(half_units[indices].max()) * 1.01
    if len(set(indices)) < len(indices) or any(stats.median_size(index) <= 2 * tolerance
                                               and stats.largest_size(index) <= 2 * tolerance
                                               for index in indices):
        return None  # a term lost in the rounding of the others (a tiny share added to an age) is no sum
    parts = sum(sign * values[:, index] for index, sign in terms)
    y = values[:, target]
    present = np.isfinite(y) & np.isfinite(parts)
    holds = np.abs(y - parts)[present] <= tolerance + 1e-9 * np.maximum(1.0, np.abs(y[present]))
    if not present.sum() or holds.mean() < REPORT_SHARE:
        return None
    return Rule("sum", {"target": names[target], "terms": {names[index]: sign for index, sign in terms},
                        "tolerance": tolerance}, real_share=round(float(holds.mean()), 6))


# ---------------------------------------------------------------------- ratios and products
def mine_ratios(values: np.ndarray, names: list[str], specs, rng) -> list[Rule]:
    """`target * b ** -power` affine in `a` (power -1, 0 or 1): near-perfect correlation on a row sample,
    then a residual within RATIO_TOLERANCE of the spread on every row."""
    n, p = values.shape
    if p < 2:
        return []
    complete = np.flatnonzero(np.isfinite(values).all(axis=1))
    if len(complete) < 30:
        return []
    rows = values[rng.choice(complete, min(RATIO_ROWS, len(complete)), replace=False)]
    positive = [j for j in range(p) if np.nanmin(values[:, j]) > 0]
    standard = _standardise(rows)
    best: dict[frozenset, list[Rule]] = {}
    half_units = dict(zip(names, units(specs, names)))
    for target in range(p):
        candidates = [(None, 0, rows[:, target])] + [(b, power, rows[:, target] * rows[:, b] ** -power)
                                                     for b in positive if b != target for power in (1, -1)]
        ys = _standardise(np.column_stack([y for _, _, y in candidates]))
        correlation = np.abs(ys.T @ standard) / len(rows)  # (candidates, p)
        for candidate, a in zip(*np.nonzero(correlation > 1 - 1e-5)):
            b, power, _ = candidates[candidate]
            if a in (target, b):
                continue
            rule = _ratio_rule(values, names, target, int(a), b, power)
            if rule is not None:
                best.setdefault(frozenset((target, a, b)), []).append(rule)
    decimals = {spec.name: spec.decimals or 0 for spec in specs}
    chosen = []
    for options in best.values():  # the orientations that rebuild their target best (no division by a
        least = min(rule.params["error"] for rule in options)  # near-zero), the finest-grained target first
        good = [rule for rule in options if rule.params["error"] <= 2 * least + 1e-9]
        rule = max(good, key=lambda rule: decimals.get(rule.params["target"], 0))
        del rule.params["error"]
        rule.params["rounding"] = float(half_units[rule.params["target"]]) * 1.01
        chosen.append(rule)
    return chosen


def mine_products(values: np.ndarray, names: list[str], specs, rng) -> list[Rule]:
    """`target = a * b * c` within the target's rounding (expected loss = PD x LGD x EAD), as a formula rule:
    screened in logs on rows where the target is large against its rounding, then checked on every row."""
    n, p = values.shape
    half_units = units(specs, names)
    with np.errstate(invalid="ignore"):
        positive = [j for j in range(p) if np.nanmin(values[:, j]) >= 0 and np.nanstd(values[:, j]) > 0]
    if len(positive) < 4:
        return []
    rules: list[Rule] = []
    for target in positive:
        large = np.flatnonzero(values[:, target] >= 1000 * half_units[target])
        if len(large) < 30:
            continue
        rows = values[rng.choice(large, min(PRODUCT_ROWS, len(large)), replace=False)]
        others = [j for j in positive if j != target]
        inputs = np.array(others)[(rows[:, others] > 0).all(axis=0)]
        logs = np.log(np.ascontiguousarray(rows[:, inputs].T))  # (q, m): each column's logs contiguous, as alone
        most = np.argsort(-np.std(logs, axis=1), kind="stable")[:PRODUCT_COLUMNS]  # the most varied first
        inputs, logs = inputs[most].tolist(), logs[most].T  # (m, q)
        if len(inputs) < 3:
            continue
        rest = np.log(rows[:, target])[:, None, None] - logs[:, :, None] - logs[:, None, :]  # log target - a - b
        # target - a - b = c, a < b < c: every triple on the first screened row at once, then those on every row
        a, b, c = np.nonzero(np.abs(rest[0][:, :, None] - logs[0][None, None, :]) <= LOG_TOLERANCE)
        ordered = (a < b) & (b < c)
        a, b, c = a[ordered], b[ordered], c[ordered]
        close = np.all(np.abs(rest[:, a, b] - logs[:, c]) <= LOG_TOLERANCE, axis=0)
        for a, b, c in zip(a[close], b[close], c[close]):
            rule = _product_rule(values, names, half_units, target, [inputs[a], inputs[b], inputs[c]])
            rules += [rule] if rule is not None else []
    return list({rule.params["target"]: rule for rule in rules}.values())  # one product per target


def _product_rule(values, names, half_units, target, factors) -> Rule | None:
    factors = sorted(factors)  # written in table order
    product = np.prod(values[:, factors], axis=1)
    y = values[:, target]
    present = np.isfinite(y) & np.isfinite(product)
    tolerance = float(half_units[target]) * 1.01
    holds = np.abs(y - product)[present] <= tolerance + 1e-9 * np.maximum(1.0, np.abs(y[present]))
    if not present.sum() or holds.mean() < REPORT_SHARE:
        return None
    expression = " * ".join(names[j] if names[j].isidentifier() and not keyword.iskeyword(names[j])
                            and names[j] != "col" else f"col({names[j]!r})" for j in factors)
    return Rule("formula", {"target": names[target], "expression": expression, "tolerance": tolerance},
                real_share=round(float(holds.mean()), 6))


def _standardise(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    scale = centred.std(axis=0)
    return np.where(scale > 0, centred / np.where(scale > 0, scale, 1.0), 0.0)


def _ratio_rule(values, names, target, a, b, power) -> Rule | None:
    y = values[:, target] if b is None else values[:, target] * values[:, b] ** -power
    x = values[:, a]
    present = np.isfinite(y) & np.isfinite(x)
    if present.sum() < 30 or np.std(x[present]) == 0:
        return None
    slope, intercept = np.polyfit(x[present], y[present], 1)
    residual = np.abs(y[present] - slope * x[present] - intercept)
    tolerance = float(residual.max())
    if tolerance > RATIO_TOLERANCE * np.std(y[present]) or abs(slope) < 1e-12:
        return None
    if b is None and abs(intercept) <= tolerance and abs(slope - 1) < 1e-9:
        return None  # a copy of another column: the engine keeps duplicates already
    intercept = float(intercept)
    rebuilt = (slope * x + intercept) * (1.0 if b is None else values[:, b] ** power)
    with np.errstate(invalid="ignore"):
        error = float(np.nanmax(np.abs(rebuilt - values[:, target])) / np.nanstd(values[:, target]))
    params = {"target": names[target], "a": names[a], "b": None if b is None else names[b], "power": power,
              "slope": float(slope), "intercept": intercept, "tolerance": tolerance * 1.01 + 1e-12,
              "error": error if np.isfinite(error) else np.inf}
    return Rule("ratio", params)  # holds on every row: the tolerance is the largest residual


# ---------------------------------------------------------------------- fixed values within a category
def value_codes(df: pd.DataFrame, specs) -> tuple[list[str], np.ndarray]:
    """The columns a value may be fixed in (not keys, constants or copies) and their values as integer codes
    (-1 for null; pd.factorize's, numbered in order of first appearance), rows by columns: the fixed-value, the
    threshold and the determined searches all read them (every category column is among them). 32-bit: the
    blocks of rows those searches gather are half the memory."""
    targets = [spec.name for spec in specs if spec.shape]
    matrix = np.empty((len(df), len(targets)), dtype=np.int32)
    for j, name in enumerate(targets):
        matrix[:, j] = pd.factorize(df[name], use_na_sentinel=True)[0]
    return targets, matrix


def mine_fixed_values(df: pd.DataFrame, specs, k: int, coded: tuple[list[str], np.ndarray]) -> list[Rule]:
    """`column == value` (or null) on every row of a category, when that is not chance: the value is rare
    enough elsewhere that a group of this size would not all carry it by luck. `coded`: `value_codes`."""
    targets, matrix = coded
    column_of = {name: j for j, name in enumerate(targets)}
    groups = [spec.name for spec in specs if spec.category
              and matrix[:, column_of[spec.name]].max(initial=-1) + 1 <= MAX_GROUP_VALUES]  # distinct values
    if not groups or not targets:
        return []
    rules = []
    for group in groups:
        group_codes = matrix[:, column_of[group]]
        others = np.array([name != group for name in targets])
        order = np.argsort(group_codes.astype(np.int8), kind="stable")  # codes -1 .. 59: a radix sort
        distinct = int(group_codes.max(initial=-1)) + 1
        bounds = np.searchsorted(group_codes[order], np.arange(distinct + 1))
        for code in range(distinct):
            rows = order[bounds[code]:bounds[code + 1]]
            if len(rows) < max(k, 20):
                continue
            block = matrix[rows]
            constant = np.flatnonzero((block.min(axis=0) == block.max(axis=0)) & others)
            if not len(constant):
                continue
            fixed_codes = matrix[rows[0], constant]  # how often the value occurs outside the group (every row inside has it)
            elsewhere = ((matrix[:, constant] == fixed_codes).sum(axis=0) - len(rows)) / max(len(df) - len(rows), 1)
            chance = np.where(elsewhere > 0, len(rows) * np.log(np.maximum(elsewhere, 1e-300)), -np.inf)
            for index in constant[(elsewhere < 1.0) & (chance <= np.log(CHANCE))]:
                target = targets[index]
                fixed = None if matrix[rows[0], index] == -1 else df[target].iloc[rows[0]]
                value = df[group].iloc[rows[0]]  # the code's value: its first row's (rows are in row order)
                rules.append(Rule("fixed_when", {"column": target, "value": _plain(fixed),
                                                 "when": {group: _plain(value)}}))
    return rules


def mine_thresholds(df: pd.DataFrame, names: list[str], k: int, coded: tuple[list[str], np.ndarray]) -> list[Rule]:
    """`column == value` on every row past a cut of a number column (IFRS 9 stage 3 when days past due >= 90).
    The rows above the largest value of `x` where the column is not `value` are all `value` by definition; the
    cut is a rule only when those rows are many (k, 20 and THRESHOLD_SHARE of the rows, as many below), the value
    steps up there (THRESHOLD_STEP of as many rows just below are off it: a steep trend makes the top rows agree
    too) and their run is not chance given how often the value occurs just below. The
    cut is written where the real rows change, as an analyst would (`>= 90`, `> 0`; see `_cut`). One value of
    `x` past the cut is a point mass (its maximum), not a threshold. `coded`: `value_codes`."""
    targets, codes = coded
    if not names or not targets:
        return []
    least = max(k, 20)
    rules = []
    for x in names:
        values = df[x].to_numpy(dtype=float)
        present = np.flatnonzero(np.isfinite(values))
        enough = max(least, int(np.ceil(THRESHOLD_SHARE * len(present))))
        if len(present) < 2 * enough:
            continue
        order = present[_stable_order(values[present])]
        top = codes[order[-enough:]]  # a run long enough holds the top row's value on the top `enough` rows:
        runs = np.flatnonzero((top == top[-1]).all(axis=0))  # only those columns are read on every row
        if not len(runs):
            continue
        ordered, block = values[order], codes[order[:, None], runs]  # rows by x, ascending
        differs = block != block[-1]  # rows whose column is not the top row's value
        last = len(order) - 1 - np.argmax(differs[::-1], axis=0)  # the last such row, per column (none: the top)
        steps = np.flatnonzero(np.diff(ordered)) + 1  # the first row of each distinct value of x
        for c in np.flatnonzero(len(order) - 1 - last >= enough):  # long enough runs, with a row off the value
            target = targets[runs[c]]
            # the run: every row past the last one off the value. The cut goes where the rows change: the gap
            # just below the run, unless a gap ten times wider follows within its first tenth (a few rows of
            # the value by chance before a point mass stay below the cut)
            first = steps[np.searchsorted(steps, last[c], side="right"):]
            first = first[first <= first[0] + (len(order) - first[0]) // 10] if len(first) else first
            if target == x or not len(first):
                continue
            gaps = ordered[first] - ordered[first - 1]
            gaps[0] *= GAP_PREFERENCE
            cut = first[np.argmax(gaps)]
            run = len(order) - cut
            if cut == steps[-1]:  # one value of x past the cut: a point mass (its maximum), not a threshold
                continue
            if run < enough or cut < enough:
                continue
            near = block[max(0, cut - run):cut, c]  # as many rows just below the cut
            share = float((near == block[-1, c]).mean())
            if share > 1 - THRESHOLD_STEP or (share > 0 and run * np.log(share) > np.log(CHANCE)):
                continue  # no step at the cut (a trend), or a run this long is chance at that share
            value = None if block[-1, c] == -1 else _plain(df[target].iloc[order[-1]])
            op, bound = _cut(float(ordered[cut - 1]), float(ordered[cut]))
            rules.append(Rule("fixed_when", {"column": target, "value": value, "when": {x: {op: bound}}}))
    return rules


def _stable_order(values: np.ndarray) -> np.ndarray:
    """np.argsort(values, kind="stable") of finite floats at a third of its cost: small whole numbers (counts) as
    16-bit integers, which numpy sorts by radix; others by numpy's (vectorised) quicksort, each run of equal
    values then put back in the order of its positions by one sort of (the value's rank, position) keys."""
    if np.all(np.abs(values) < 2**15):
        small = values.astype(np.int16)
        if np.array_equal(small, values):
            return np.argsort(small, kind="stable")
    order = np.argsort(values)
    ordered = values[order]
    keys = np.zeros(len(values), dtype=np.int64)
    np.cumsum(ordered[1:] != ordered[:-1], out=keys[1:])  # each sorted place's rank among the distinct values
    keys *= len(values)
    keys += order
    keys.sort()
    return keys % max(len(values), 1)


def _cut(below: float, above: float) -> tuple[str, float | int]:
    """How an analyst writes a cut between the largest value off the rule and the smallest on it: the roundest
    number in [below, above] (a multiple of the largest 1, 2 or 5 x 10^e that has one there); `> below` when
    that is `below` itself (`> 0`), else `>= number` (`>= 90` between 89 and 90, `>= 24` between 23 and 24)."""
    scale = max(abs(below), abs(above), 1e-12)
    for exponent in range(int(np.floor(np.log10(scale))) + 1, -13, -1):
        for step in (5 * 10.0 ** exponent, 2 * 10.0 ** exponent, 10.0 ** exponent):
            number = round(np.ceil(below / step - 1e-9) * step, 12)
            if number <= above + 1e-12 * scale:
                return (">", _clean(below)) if np.isclose(number, below, rtol=1e-12, atol=0) else (">=", _clean(number))
    return ">", _clean(below)


def _plain(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


# ---------------------------------------------------------------------- one category determines another
def mine_determined(df: pd.DataFrame, specs, k: int, coded: tuple[list[str], np.ndarray]) -> list[Rule]:
    """A category column that is a function of another (grade of sub_grade), neither with values rarer than k.
    `coded`: `value_codes`."""
    targets, matrix = coded
    every = {name: matrix[:, j] for j, name in enumerate(targets)}
    names = [spec.name for spec in specs if spec.category
             and len(df) and every[spec.name].min() >= 0 and np.bincount(every[spec.name]).min() >= k]
    codes = {name: every[name] for name in names}
    distinct = {name: int(code.max()) + 1 for name, code in codes.items()}
    screen = np.random.default_rng(0).choice(len(df), min(len(df), SCREEN_ROWS), replace=False)

    def determines(by: str, column: str, rows=slice(None)) -> bool:  # one `column` code per `by` code on `rows`:
        by_codes, column_codes = codes[by][rows], codes[column][rows]  # each `by` code's last one read back on all
        last = np.zeros(distinct[by], dtype=column_codes.dtype)
        last[by_codes] = column_codes
        return bool(np.array_equal(last[by_codes], column_codes))

    rules, derived = [], set()
    for by, column in itertools.permutations(names, 2):
        if column in derived or distinct[by] <= distinct[column] or distinct[column] < 2:
            continue
        if determines(by, column, screen) and determines(by, column):  # a row sample first, then every row
            mapping = df.drop_duplicates(by).set_index(by)[column]
            rules.append(Rule("determined", {"column": column, "by": by,
                                             "mapping": {str(key): _plain(value) for key, value in mapping.items()}}))
            derived.add(column)
    return rules
