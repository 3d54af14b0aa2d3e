"""Keys: which column is one (`is_key`), and fresh keys and identifier values for a twin: the shape of the real
ones, never a real one.

A key (`identifier_pattern`) keeps its type and format and the largest number; a direct identifier (SSN, e-mail,
card number, found by privacy/identifiers.py) keeps its character shapes, shared e-mail domains and whether it
passes the Luhn check. `mint_identifiers` draws the values the engine's identifier columns write.
"""

from __future__ import annotations

import re
from functools import reduce

import numpy as np
import pandas as pd

from .columns import detect_number_format, is_amount_format
from .marginals import K_MIN

SERIAL_DIGITS = 18  # longer digit runs (a 20-digit account number) do not fit the int64 serial fresh keys count on
MIN_KEY_ROWS = 20  # fewer unique values say nothing: a small table's amounts are often all different
HEAD_ROWS = 10_000  # a repeat among the first rows settles most columns before a full pass
ID_NAME = re.compile(r"(^|[_\s.-])(id|key|uuid|guid)$|^(id|uuid|guid)([_\s.-]|$)|(number|num|no|nr)$", re.IGNORECASE)  # "nr": kunden_nr, konto_nr

HEX_BYTES = np.array([f"{byte:02x}" for byte in range(256)])
UUID_GROUPS = (slice(0, 4), slice(4, 6), slice(6, 8), slice(8, 10), slice(10, 16))
_FIRST = ["Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn", "Robin", "Drew",
          "Kai", "Rowan", "Sage", "Elliot", "Noa", "Ari", "Remy", "Lee", "Dana", "Toni", "Jules", "Blair"]
_LAST = ["Ashford", "Brennock", "Calloway", "Dunmore", "Everly", "Fairholm", "Garroway", "Hollins", "Ivers",
         "Jessup", "Kettering", "Lindqvist", "Marlow", "Northcott", "Oakes", "Pembry", "Quill", "Rothwell",
         "Sallow", "Thorne", "Upfield", "Vance", "Whitlock", "Yardley"]
_STREETS = ["Maple", "Cedar", "Willow", "Harbor", "Orchard", "Meadow", "Station", "Mill", "Chapel", "Bridge"]


def is_key(series: pd.Series, unique: bool | None = None) -> bool:
    """Whether a column is a key (loan_id, "LN000123", a UUID) rather than data: its present values are unique on
    a sizeable table and are whole numbers under a key-like name, or text under such a name or of one key shape.
    Amounts with cents or thousands separators ("1.234,56", "$9,999.99") are not keys. The one rule of the engine
    (which mints fresh keys), the quality report (which does not score them) and quasi-identifier detection.
    A key-named column may repeat (a customer number over the customer's loans) when most of its rows hold a
    value seen fewer than K_MIN times: as a category it became "Other", and a customer with K_MIN loans kept
    their real number in the twin. `unique`: whether its present values all differ, when the caller counted them
    (on a table of at most HEAD_ROWS rows, the first rows' test)."""
    named = bool(ID_NAME.search(str(series.name)))
    if not named and not (unique if unique is not None and len(series) <= HEAD_ROWS
                          else series.iloc[:HEAD_ROWS].dropna().is_unique):
        return False
    values = series.dropna()
    if len(values) < MIN_KEY_ROWS or not (values.is_unique or named and _mostly_rare(values)):
        return False
    if pd.api.types.is_numeric_dtype(series):
        return named and bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
    if named:
        return True
    return not is_amount_format(detect_number_format(values)) and _one_key_shape(values.astype(str))


def _mostly_rare(values: pd.Series) -> bool:
    counts = values.value_counts()
    return counts[counts < K_MIN].sum() > len(values) / 2


def _one_key_shape(strings: pd.Series) -> bool:
    """Keys share one shape (e.g. 'LN000123' or a UUID) and contain digits; free text does not."""
    sample = strings.iloc[:1000]
    shapes = sample.str.replace(r"[0-9]", "9", regex=True).str.replace(r"[a-zA-Z]", "a", regex=True)
    return shapes.nunique() <= 3 and bool(sample.str.contains(r"\d").all()) and not bool(sample.str.contains(" ").any())


def identifier_pattern(values: pd.Series) -> dict:
    """How to mint fresh keys that look like the real ones (same type and format) but never equal one.

    Only the shape and the largest number are kept: no real key is stored.
    """
    if pd.api.types.is_numeric_dtype(values):
        top = int(values.max()) if len(values) else 0
        return {"type": "integer", "start": top + 1}
    strings = values.astype(str)
    parts = strings.str.extract(r"^(\D*)(\d+)(\D*)$")
    if (len(strings) and parts.notna().all().all() and parts[0].nunique() == 1 and parts[2].nunique() == 1
            and parts[1].str.len().max() <= SERIAL_DIGITS):
        digits = parts[1]
        return {"type": "pattern", "prefix": parts[0].iloc[0], "suffix": parts[2].iloc[0],
                "width": int(digits.str.len().max()), "start": int(digits.astype("int64").max()) + 1}
    if len(strings) and strings.str.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}").all():
        return {"type": "uuid"}
    return {"type": "pattern", "prefix": "SYN-", "suffix": "", "width": 9, "start": 1}


def mint_identifiers(pattern: dict, start: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Fresh keys number `start` .. `start + count - 1` of a sample, formatted like the real keys."""
    if pattern["type"] == "format":  # a direct identifier (e-mail, SSN, card number): fresh values of its format
        return fresh_values(pattern, count, rng)
    serial = np.arange(start, start + count, dtype=np.int64)
    if pattern["type"] == "integer":
        return serial + pattern["start"]
    if pattern["type"] == "uuid":
        raw = rng.integers(0, 256, size=(count, 16), dtype=np.uint8)
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
        raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
        pairs = HEX_BYTES[raw]
        groups = [reduce(np.char.add, pairs[:, block].T) for block in UUID_GROUPS]
        return reduce(lambda left, right: np.char.add(np.char.add(left, "-"), right), groups).astype(object)
    numbers = pd.Series(serial + pattern["start"]).astype(str).str.zfill(pattern["width"])
    return (pattern["prefix"] + numbers + pattern["suffix"]).to_numpy(dtype=object)


def fresh_values(fmt: dict, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` new values in the column's format (object array; integers for a numeric column)."""
    kind = fmt["kind"]
    if kind == "e-mail":
        local = _from_shapes(["aaaaaa99", "aaaaa.aaaaaa", "aaaaaaa9"], [0.4, 0.4, 0.2], count, rng)
        domains = rng.choice(np.array(fmt["domains"], dtype=object), count)
        return (local + "@" + domains).astype(object)
    if kind == "full name":
        first, last = rng.choice(_FIRST, count), rng.choice(_LAST, count)
        names = pd.Series(last).str.cat(pd.Series(first), sep=", ") if fmt.get("comma") else \
            pd.Series(first).str.cat(pd.Series(last), sep=" ")
        return (names.str.upper() if fmt.get("upper") else names).to_numpy(dtype=object)
    if kind == "street address":
        numbers = rng.integers(1, 9999, count).astype(str).astype(object)
        return numbers + " " + rng.choice(np.array(_STREETS, dtype=object), count) + " Street"
    values = _from_shapes(fmt["shapes"], fmt["weights"], count, rng, fmt.get("fixed"))
    if fmt.get("luhn"):
        values = np.array([_with_check_digit(value) for value in values], dtype=object)
    if fmt.get("iban"):
        values = np.array([_with_iban_check(value) for value in values], dtype=object)
    if fmt.get("numeric"):
        return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy()
    return values


def _from_shapes(shapes: list[str], weights: list[float], count: int, rng: np.random.Generator,
                 fixed: list[dict[str, str]] | None = None) -> np.ndarray:
    """Values drawn from character shapes (9 a digit, a / A a letter); `fixed[i]` writes the characters shape i's
    real values all share ({position: character}) as they are."""
    chosen = rng.choice(len(shapes), count, p=np.asarray(weights) / np.sum(weights))
    out = np.empty(count, dtype=object)
    for index in np.unique(chosen):
        rows = np.flatnonzero(chosen == index)
        shape = np.array(list(shapes[index]))
        grid = np.tile(shape, (len(rows), 1))
        for symbol, alphabet in (("9", "0123456789"), ("a", "abcdefghijklmnopqrstuvwxyz"),
                                 ("A", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")):
            where = grid == symbol
            grid[where] = rng.choice(list(alphabet), int(where.sum()))
        first_digit = np.argmax(shape == "9") if (shape == "9").any() else None
        if first_digit is not None and shape[0] == "9":  # no leading zero: numbers stay numbers, IINs start 1-9
            grid[:, first_digit] = rng.choice(list("123456789"), len(rows))
        for position, character in (fixed[index] if fixed else {}).items():
            grid[:, int(position)] = character
        out[rows] = ["".join(row) for row in grid]
    return out


def _digits(value: str) -> list[int]:
    return [int(c) for c in value if c.isdigit()]


def _luhn_sum(digits: list[int]) -> int:
    return sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))


def luhn_valid(values: pd.Series) -> pd.Series:
    return values.map(lambda value: len(_digits(value)) >= 12 and _luhn_sum(_digits(value)) % 10 == 0)


def _iban_remainder(value: str) -> int:
    """ISO 13616: the IBAN without spaces, its first four characters moved to the end, letters as 10-35, mod 97."""
    compact = value.replace(" ", "")
    return int("".join(str(int(c, 36)) for c in compact[4:] + compact[:4])) % 97


def iban_valid(values: pd.Series) -> pd.Series:
    return values.map(lambda value: bool(re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9 ]{10,}", value))
                      and _iban_remainder(value) == 1)


def _with_iban_check(value: str) -> str:
    """The IBAN with its check digits (third and fourth characters) set so that it passes the mod-97 check."""
    check = 98 - _iban_remainder(value[:2] + "00" + value[4:])
    return f"{value[:2]}{check:02d}{value[4:]}"


def _with_check_digit(value: str) -> str:
    """The value with its last digit set so that it passes the Luhn check."""
    digits = _digits(value)
    partial = _luhn_sum(digits[:-1] + [0])
    check = (10 - partial % 10) % 10
    position = max(i for i, c in enumerate(value) if c.isdigit())
    return value[:position] + str(check) + value[position + 1:]
