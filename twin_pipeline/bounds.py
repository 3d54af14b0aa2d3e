"""The range a twin may take per column: wide enough to hold every twin value, never the exact real extremes.

One home for it: the upload's pandera contract checks every stored twin against it, and the engine clips the
values it samples into it, so a model whose noisy end knots reach past the observed range (a differencing defence)
never makes a twin that breaks its own contract.
"""

from __future__ import annotations

import math

import pandas as pd


def outward_bounds(present: pd.Series) -> tuple:
    """The range a twin must stay in, never the exact real extremes (the richest borrower's exact income):
    numbers rounded outward to two significant digits, dates to whole months; a column with no negative value
    is bounded below by 0 (a sum derived through a business rule may reach 0 where the real minimum is 2.7)."""
    low, high = present.min(), present.max()
    if isinstance(low, pd.Timestamp):  # whole months: a bound one day off a whole-day extreme would give it away
        month = pd.DateOffset(months=1)
        start, end = _month_start(low), _month_start(high)
        return (start - month if start == low else start), end + month
    floor = 0 if float(low) >= 0 else _round_out(float(low), math.floor, present.dtype)
    return floor, _round_out(float(high), math.ceil, present.dtype)


def _round_out(value: float, direction, dtype):
    """`value` rounded to two significant digits in `direction`, one step further when it is exactly there."""
    if not math.isfinite(value):
        return value
    step = 10.0 ** (math.floor(math.log10(abs(value))) - 1) if value else 1.0
    rounded = direction(value / step) * step
    if rounded == value:  # an exact extreme stays private too: move one step out
        rounded += step if direction is math.ceil else -step
    rounded = round(rounded, 12)
    return int(rounded) if pd.api.types.is_integer_dtype(dtype) else rounded


def _month_start(stamp: pd.Timestamp) -> pd.Timestamp:
    return stamp.normalize().replace(day=1)
