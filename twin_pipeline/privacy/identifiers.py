"""Direct identifiers (SSN, e-mail, phone, full name, street address, account or card number, masked or not):
found at ingest by name and by value pattern, and by default replaced by fresh values of the same format, never
a real one.

A direct identifier names one person by itself, so it is neither modelled nor protected statistically: the
model keeps only its format (character shapes seen at least k times and the characters all their values share,
e-mail domains shared by at least k people, whether card numbers pass the Luhn check and IBANs their mod-97
check), fresh values are minted from that format (engine/keys.py), and any fresh value that happens to equal a
real one is drawn again. `--drop-identifiers` drops the columns instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from twin_pipeline.engine.keys import fresh_values, iban_valid, luhn_valid
from twin_pipeline.privacy.quasi_identifiers import name_tokens

SAMPLE_ROWS = 5_000  # detection reads at most this many rows: a pattern is a property of the column
MATCH_SHARE = 0.9  # share of sampled values that must match a kind's pattern
MAX_SHAPES = 50

_PATTERNS = {
    "social security number": re.compile(r"\d{3}-\d{2}-\d{4}"),
    "e-mail": re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}"),
    "phone number": re.compile(r"(?=(?:\D*\d){9,15}\D*$)\+?[\d\s()-]{9,}"),
    "card number": re.compile(r"\d{4}([ -]?\d{4}){2}[ -]?\d{1,7}"),
    # a card number with its middle digits masked ("482933******5348"): the bank's own key to the card
    "masked card number": re.compile(r"\d{4}[ -]?\d{0,2}[ -]?[*xX#•]{2,4}([ -]?[*xX#•]{2,4}){0,2}[ -]?\d{4}"),
    "account number": re.compile(r"[A-Z]{2}\d{2}[ ]?[A-Z0-9]{4}([ ]?[A-Z0-9]{2,4}){2,7}"),  # IBAN
    "street address": re.compile(r"\d+[A-Za-z]?\s+\S.*\b(street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|"
                                 r"blvd|way|court|ct|place|pl|terrace|close|crescent)\b\.?.*", re.IGNORECASE),
    "full name": re.compile(r"[A-Z][a-z'’-]+,?(\s+[A-Z]\.?)?(\s+[A-Z][a-z'’-]+){1,2}"),
}
_NAME_WORDS = {
    "social security number": ({"ssn", "socialsecurity", "sin", "nino"}, [({"social"}, {"security"})]),
    "e-mail": ({"email", "emailaddress", "mail"}, [({"e"}, {"mail"})]),
    "phone number": ({"phone", "telephone", "mobile", "phonenumber", "tel", "cellphone"}, []),
    "card number": ({"pan", "cardnumber", "ccnumber", "creditcardnumber"},
                    [({"card", "cc"}, {"number", "no", "num", "nr"})]),
    "account number": ({"iban", "bban", "accountnumber", "acctno"},
                       [({"account", "acct", "acc"}, {"number", "no", "num", "nr"})]),
    "national id": ({"nationalid", "dni", "nie", "passport", "taxid", "tin", "cpf", "pesel", "personnummer", "bsn",
                     "steuerid"}, [({"national", "tax", "passport", "personal", "identity"}, {"id", "number", "no", "nr"})]),
    "street address": ({"address", "street", "streetaddress", "addressline"}, []),
    "full name": ({"name", "fullname", "firstname", "lastname", "surname", "forename", "givenname", "nachname",
                   "vorname", "nom", "prenom", "prénom", "apellido", "apellidos", "nombre"}, []),
}
# A name word only names a person when the rest of the name is about a person ("NAME_FAMILY_STATUS" is not).
_PERSON_WORDS = {"name", "full", "first", "last", "given", "family", "middle", "sur", "fore", "customer", "client",
                 "borrower", "applicant", "holder", "account", "card", "person", "primary", "co", "address", "line",
                 "street", "home", "mailing", "residential", "1", "2", "e", "mail", "email", "phone", "number", "no",
                 "mobile", "contact"}
def _values(series: pd.Series) -> pd.Series:
    """A sample of the column's values as stripped text (each distinct text stripped once: columns repeat)."""
    values = series.dropna()
    if len(values) > SAMPLE_ROWS:
        values = values.sample(SAMPLE_ROWS, random_state=0)
    if pd.api.types.is_float_dtype(values.dtype):
        if not (values == values.round()).all():
            return values.iloc[:0].astype(str)
        values = values.astype("int64")
    # Integers are told apart by value, so they are factorized before their text is made; anything else (1 and
    # "1", True and 1 in one object column) by its text.
    codes, distinct = pd.factorize(values if pd.api.types.is_integer_dtype(values.dtype) else values.astype(str))
    distinct = distinct.astype(str)
    return pd.Series(pd.Series(distinct, dtype=object).str.strip().to_numpy(dtype=object)[codes], index=values.index,
                     name=values.name, dtype=object)


def _pattern_kind(values: pd.Series) -> str | None:
    if len(values) == 0:
        return None
    # Each distinct value is matched once (a column repeats its values). If none of the first (1 - MATCH_SHARE)
    # share of values (plus one) match, the share cannot reach MATCH_SHARE: most columns are ruled out on a
    # tenth of their values, with the same answer.
    codes, distinct = pd.factorize(values)
    distinct = pd.Series(distinct, dtype=object)
    head = distinct.iloc[np.unique(codes[: int(len(values) * (1 - MATCH_SHARE)) + 1])]
    for kind, pattern in _PATTERNS.items():
        if not head.str.fullmatch(pattern).any():
            continue
        matched = distinct.str.fullmatch(pattern).to_numpy(dtype=bool)[codes]
        if matched.mean() >= MATCH_SHARE:
            if kind == "card number" and luhn_valid(values[matched]).mean() < MATCH_SHARE:
                continue
            if kind == "full name" and values.nunique() < 0.5 * len(values):
                continue  # a few capitalised categories ("Fully Paid") are not people
            return kind
    return None


def _name_kind(name: str) -> str | None:
    words = name_tokens(name)
    tokens, compact = set(words), "".join(words)
    for kind, (vocabulary, pairs) in _NAME_WORDS.items():
        if tokens & vocabulary or compact in vocabulary or any(tokens & a and tokens & b for a, b in pairs):
            if kind in ("full name", "street address") and not tokens <= _PERSON_WORDS | vocabulary:
                continue
            return kind
    return None


def detect_direct_identifiers(df: pd.DataFrame, primary_key: str | None = None,
                              exclude: Sequence[str] = ()) -> dict[str, dict]:
    """{column: {"kind", "why"}} for columns that name a person by themselves, in table order.

    A column qualifies by its values (90 % of a sample match the kind's pattern), or by its name when its values
    are mostly distinct: a "phone" column holding yes/no is a flag, not a number to call.
    """
    found = {}
    for column in df.columns:
        if column == primary_key or column in exclude or pd.api.types.is_bool_dtype(df[column].dtype):
            continue
        values = _values(df[column])
        by_value, by_name = _pattern_kind(values), _name_kind(column)
        if by_value == "phone number" and pd.api.types.is_numeric_dtype(df[column]) and not _phone_like(values):
            by_value = None  # amounts in cents of 9 digits and more (a corporate exposure) are no phone numbers
        if by_value == "phone number" and by_name:  # 9 to 15 digits fit many numbers: the name says which
            found[column] = {"kind": by_name, "why": f"its name says {by_name} and its values are long numbers"}
        elif by_value:
            found[column] = {"kind": by_value, "why": f"{MATCH_SHARE:.0%} or more of its values match the {by_value} "
                             "pattern" + (f", and its name says {by_name}" if by_name else "")}
        elif by_name and len(values) and values.nunique() >= 0.5 * len(values):
            found[column] = {"kind": by_name, "why": f"its name says {by_name} and its values are mostly distinct"}
    return found


def _phone_like(digits: pd.Series) -> bool:
    """Numbers that could be phone numbers stored as numbers: none negative, of one or two lengths (a country's
    numbers), where amounts spread over several orders of magnitude."""
    return not digits.str.startswith("-").any() and digits.str.len().nunique() <= 2


def identifier_format(series: pd.Series, kind: str, k: int = 5) -> dict:
    """What fresh values of this column need: character shapes (digit 9, letter a/A) seen at least k times and
    the characters their values all share, the e-mail domains at least k people share, Luhn-valid card numbers,
    IBANs passing their check; never a real value."""
    values = _values(series)
    shape_of = (values.str.replace(r"[0-9]", "9", regex=True).str.replace(r"[a-z]", "a", regex=True)
                .str.replace(r"[A-Z]", "A", regex=True))
    shapes = shape_of.value_counts()
    common = shapes[shapes >= k].iloc[:MAX_SHAPES]
    if common.empty:
        common = shapes.iloc[:1].rename(lambda shape: re.sub(r"\S", lambda m: m.group() if m.group() in "9aA-@. "
                                                             else "9", shape))
    fmt = {"type": "format", "kind": kind, "shapes": list(common.index),
           "weights": (common / common.sum()).round(6).tolist(), "numeric": bool(pd.api.types.is_numeric_dtype(series))}
    fixed = [_shared_characters(shape, values[shape_of == shape], k) for shape in common.index]
    if any(fixed):
        fmt["fixed"] = fixed
    if kind == "e-mail":
        domains = values.str.extract(r"@(.+)$")[0].str.lower().value_counts()
        fmt["domains"] = list(domains[domains >= k].index[:20]) or ["example.com"]
    if kind == "card number":
        fmt["luhn"] = bool(luhn_valid(values).mean() >= MATCH_SHARE)
    if kind == "account number":
        fmt["iban"] = bool(iban_valid(values).mean() >= MATCH_SHARE)
    if kind == "full name":
        fmt["upper"] = bool(values.str.isupper().mean() > 0.5)
        fmt["comma"] = bool(values.str.contains(",").mean() > 0.5)
    return fmt


def _shared_characters(shape: str, values: pd.Series, k: int) -> dict[str, str]:
    """{position: character} that every one of a shape's real values shares where the shape draws (a German
    IBAN's "DE", a phone's "+49"), kept in fresh values: common to at least k distinct values, they name no one,
    and drawn at random they made "NY26..." of a book of German accounts. Empty below k distinct values."""
    distinct = values.unique()
    if len(distinct) < k:
        return {}
    chars = np.array([list(value) for value in distinct])
    shared = (chars == chars[0]).all(axis=0) & np.isin(list(shape), list("9aA"))
    return {str(position): str(chars[0, position]) for position in np.flatnonzero(shared)}


def replace_real_values(twin: pd.DataFrame, real: pd.DataFrame, formats: dict[str, dict],
                        rng: np.random.Generator, max_rounds: int = 20) -> tuple[pd.DataFrame, dict]:
    """Redraw any fresh identifier equal to a real value of its column, so no real one is ever emitted (`twin`
    itself is returned when it has none of these columns: nothing to copy for)."""
    formats = {column: fmt for column, fmt in formats.items() if column in twin.columns and column in real.columns}
    out, redrawn = twin.copy() if formats else twin, {}
    for column, fmt in formats.items():
        real_values = set(real[column].dropna().astype(str))
        clash = out[column].astype(str).isin(real_values).to_numpy() & out[column].notna().to_numpy()
        redrawn[column] = int(clash.sum())
        for _ in range(max_rounds):
            if not clash.any():
                break
            values = out[column].to_numpy(dtype=object).copy()
            values[clash] = fresh_values(fmt, int(clash.sum()), rng)
            out[column] = pd.Series(values, index=out.index).astype(out[column].dtype, errors="ignore")
            clash = out[column].astype(str).isin(real_values).to_numpy()
        if clash.any():
            out.loc[clash, column] = None  # a format with no free value left: better empty than real
    return out, redrawn
