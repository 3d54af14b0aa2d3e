"""Which columns could re-identify a person when combined with outside data (quasi-identifiers).

Chosen as a data-protection officer reads a schema: a column is a quasi-identifier when a whole word of its
name (or the whole name, for compounds like "homeownership") is in a known vocabulary, in English and in the
German, French and Spanish a European bank exports ("Geburtsdatum", "Ort"): age / birth date, sex,
postcode / state / region, marital status, ethnicity, job / employer / title, employment length, education,
dependents, home ownership, income. Never by substring: "debt_to_income" is a ratio, "annual_income_joint" a
derived amount, "verified_income" a verification status, none of which an attacker looks up about a person.
At most one column per kind (one income, one place) and at most MAX_DETECTED in all, most identifying kinds
first: every further quasi-identifier multiplies the combinations k-anonymity must coarsen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd

from twin_pipeline.engine.keys import is_key

MAX_DETECTED = 6
# Kinds in priority order (most identifying first): kind -> whole words (or whole compound names) that mark it.
VOCABULARY: dict[str, frozenset[str]] = {
    "age / birth date": frozenset({"age", "ages", "birth", "birthday", "birthdate", "birthyear", "dob", "born",
                                   "yob", "dateofbirth", "yearofbirth",
                                   "alter", "geburtsdatum", "geburtstag", "geburtsjahr", "naissance", "edad",
                                   "nacimiento"}),
    "sex / gender": frozenset({"sex", "gender", "geschlecht", "sexe", "sexo"}),
    "place (postcode, state, region)": frozenset({
        "zip", "zipcode", "postcode", "postal", "postalcode", "plz", "state", "region", "county", "city",
        "province", "district", "municipality", "country",
        "ort", "wohnort", "stadt", "postleitzahl", "bundesland", "ville", "ciudad", "provincia", "localidad"}),
    "marital status": frozenset({"marital", "married", "maritalstatus", "familienstand"}),
    "ethnicity / race": frozenset({"race", "ethnicity", "ethnic", "nationality", "citizenship", "religion",
                                   "nationalität", "staatsangehörigkeit", "nationalite", "nacionalidad"}),
    "job / employer / title": frozenset({"occupation", "job", "jobtitle", "employer", "title", "profession",
                                         "position", "beruf", "arbeitgeber", "ocupacion", "empleador"}),
    "income": frozenset({"income", "salary", "wage", "wages", "earnings", "annualincome", "monthlyincome",
                         "einkommen", "nettoeinkommen", "bruttoeinkommen", "gehalt", "revenu", "revenus", "salaire",
                         "ingresos", "salario"}),
    "education": frozenset({"education", "degree", "bildung", "ausbildung"}),
    "employment length": frozenset({"seniority", "employment", "employed", "selfemp", "selfemployed", "tenure",
                                    "yearsemployed"}),
    "dependents": frozenset({"dependents", "dependent", "dependants", "children", "kids", "household", "kinder",
                             "enfants", "hijos"}),
    "home ownership": frozenset({"home", "homeowner", "owner", "ownership", "homeownership", "housing",
                                 "wohnsituation"}),
}
# Abbreviations that only mean a quasi-identifier next to another word ("annual_inc", "emp_length").
_PAIRS = (
    ("income", {"inc"}, {"annual", "monthly", "total", "gross", "net"}),
    ("employment length", {"emp"}, {"length", "years", "year"}),
    ("job / employer / title", {"emp"}, {"title"}),
    ("marital status", {"family"}, {"status"}),
    ("dependents", {"family"}, {"size"}),
)
# Ratios, joint or derived amounts and verification flags: about a loan application, not looked up about a person.
_DERIVED = frozenset({"to", "ratio", "dti", "per", "pct", "percent", "share", "rate", "joint", "co", "coapplicant",
                      "verified", "verification", "verify", "debt", "change", "diff"})
_ID_TOKENS = frozenset({"id", "ids", "uuid", "guid", "key", "pk"})
_NOT_QI_KINDS = frozenset({"identifier", "constant"})
GIVEN = "given by the user"
OVERRIDE = ("to choose them yourself: --quasi-identifiers a,b,c (twin clone), \"quasi_identifiers\": [...] in the "
            "sidecar <file>.json, or ops.raw_upload.config.quasi_identifiers in the run config")


def name_tokens(name: str) -> list[str]:
    """Lower-case words of a column name: snake_case, kebab-case, spaces and camelCase all split."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", str(name))
    return [token for token in re.split(r"[\W_]+", spaced.lower()) if token]  # "Größe" one word, not two


def quasi_identifier_kind(name: str) -> tuple[str | None, str]:
    """(kind, why) for a column name; kind None when the name is not a quasi-identifier (why says so if asked)."""
    words = name_tokens(name)
    tokens = set(words)
    if tokens & _ID_TOKENS:
        return None, "a key"
    derived = sorted(tokens & _DERIVED)
    for kind, vocabulary in VOCABULARY.items():
        hit = sorted(tokens & vocabulary) or (["".join(words)] if "".join(words) in vocabulary else [])
        hit = hit or [f"{a}_{b}" for pair_kind, first, second in _PAIRS if pair_kind == kind
                      for a in sorted(tokens & first) for b in sorted(tokens & second)][:1]
        if hit:
            if derived:
                return None, (f"names {kind} but is a ratio, joint or derived amount or a verification flag "
                              f"(word '{derived[0]}'): not a quasi-identifier by default")
            return kind, f"the word '{hit[0]}' names {kind}"
    return None, "no quasi-identifier word in the name"


def choose_quasi_identifiers(
    df: pd.DataFrame,
    primary_key: str | None = None,
    column_kinds: Mapping[str, str] | None = None,
    exclude: Sequence[str] = (),
    limit: int = MAX_DETECTED,
) -> dict:
    """The detected quasi-identifiers with why each was chosen, why the near misses were not, and how to override.

    Returns {"chosen": {column: reason} in table order, "not_chosen": {column: reason}, "override": text}.
    """
    kinds = dict(column_kinds or {})
    candidates, not_chosen = [], {}
    for column in df.columns:
        if column == primary_key or column in exclude:
            continue
        kind, why = quasi_identifier_kind(column)
        if kind is None:
            if why.startswith("names"):
                not_chosen[column] = why
            continue
        if kinds.get(column) in _NOT_QI_KINDS or df[column].nunique(dropna=False) <= 1 or is_key(df[column]):
            not_chosen[column] = f"{why}, but it is a key or a constant: it cannot single anyone out"
            continue
        candidates.append((column, kind, why))
    priority = list(VOCABULARY)
    taken: dict[str, str] = {}
    chosen: dict = {}
    for column, kind, why in sorted(candidates, key=lambda c: priority.index(c[1])):
        if kind in taken:
            not_chosen[column] = f"{why}, but '{taken[kind]}' is already the {kind} quasi-identifier (one per kind)"
        elif len(chosen) >= limit:
            not_chosen[column] = f"{why}, but {limit} more identifying quasi-identifiers were already chosen"
        else:
            taken[kind], chosen[column] = column, why
    order = {column: i for i, column in enumerate(df.columns)}
    return {"chosen": dict(sorted(chosen.items(), key=lambda item: order[item[0]])), "not_chosen": not_chosen,
            "override": OVERRIDE}


def detect_quasi_identifiers(
    df: pd.DataFrame,
    primary_key: str | None = None,
    column_kinds: Mapping[str, str] | None = None,
) -> list[str]:
    """Quasi-identifier columns of `df` in table order; never the primary key, identifiers or constants."""
    return list(choose_quasi_identifiers(df, primary_key, column_kinds)["chosen"])
