"""The whole privacy pass on a sampled twin, in the order that keeps every guarantee and the row count.

Order matters: rare real strings go first (and from every redrawn row too, or a replacement could bring one
back); rows reproducing a rare real record are redrawn before k-anonymity (so replacements are anonymised with
everyone else); rows k-anonymity had to suppress, and rows that micro-aggregation happened to land on a rare
real record, are replaced by fresh conforming draws: the quasi-identifier values of a row already in a group of
>= k (k holds), the other columns drawn by the model given that row's original values (so nothing is biased).
A twin therefore always has exactly the rows asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from twin_pipeline.privacy.copies import (RealCombinations, compared_columns, replace_disclosive_copies,
                                          replace_rare_strings)
from twin_pipeline.privacy.grouping import smallest_group
from twin_pipeline.privacy.k_anonymity import enforce_k_anonymity
from twin_pipeline.privacy.quasi_identifiers import GIVEN, OVERRIDE, choose_quasi_identifiers
from twin_pipeline.errors import PrivacyLimitError

MAX_COPY_SHARE = 0.5  # more forbidden rows than this left after redrawing: the table's rows are all rare records


def protect_twin(
    synthetic: pd.DataFrame,
    real: pd.DataFrame,
    resample: Callable[[int], pd.DataFrame],
    k: int = 5,
    quasi_identifiers: Sequence[str] | Mapping[str, str] | None = None,
    generalize: str | None = None,
    max_suppression: float = 0.01,
    primary_key: str | None = None,
    max_rounds: int = 10,
    ignore_columns: Sequence[str] = (),
    resample_given: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    conform: Callable[[pd.DataFrame, pd.DataFrame, list[str]], pd.DataFrame] | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """Rare strings -> the catch-all, rare real records redrawn, k-anonymity enforced; returns (twin, report)
    with exactly len(synthetic) rows.

    `resample(n)` draws n fresh synthetic rows; `resample_given(given)` (optional) draws one fresh row per row
    of `given` keeping its values (the engine's conditional sampling), so a refilled row's other columns fit its
    quasi-identifiers; without it refills are drawn unconditionally. `conform(before, after, qis)` (optional) makes
    the other columns of rows whose quasi-identifiers k-anonymity moved agree with them again (the engine's
    derived columns: a ratio to an income that now is a group member's).
    `quasi_identifiers`: None detects them on the twin; a mapping {column: why chosen} was detected upstream on
    the real table; any other sequence was given by the user. The report keeps which (issue #11).
    `primary_key` and `ignore_columns` (foreign keys, fresh direct identifiers) are neither compared nor replaced.
    """
    ignore = ([primary_key] if primary_key else []) + list(ignore_columns)
    choice = choose_quasi_identifiers(synthetic, primary_key=primary_key, exclude=ignore)
    if quasi_identifiers is not None:
        # A mapping was detected upstream and says why each was chosen (the near misses still apply); a list was
        # given by the user, whose choice no near miss explains.
        detected = isinstance(quasi_identifiers, Mapping)
        chosen = {q: quasi_identifiers[q] if detected else GIVEN for q in quasi_identifiers}
        choice = {"chosen": chosen, "not_chosen": {column: why for column, why in choice["not_chosen"].items()
                                                   if detected and column not in chosen}, "override": OVERRIDE}
    qis = list(choice["chosen"])

    def fresh(n: int) -> pd.DataFrame:
        return replace_rare_strings(resample(n).reset_index(drop=True), real, k, exclude=ignore)[0]

    def redraw(given: pd.DataFrame) -> pd.DataFrame:
        if resample_given is None or given.shape[1] == 0:
            return fresh(len(given))
        return replace_rare_strings(resample_given(given).reset_index(drop=True), real, k, exclude=ignore)[0]

    safe, rare_strings = replace_rare_strings(synthetic.set_axis(pd.RangeIndex(len(synthetic)), copy=False), real, k,
                                              exclude=ignore)  # fresh row numbers, no copy: neither writes into it
    combinations = RealCombinations(real, compared_columns(safe, real, ignore))  # once, for copies and refills
    safe, copies = replace_disclosive_copies(safe, real, fresh, k, ignore, max_rounds, seed,
                                             combinations=combinations)
    if len(synthetic) and copies["rows_dropped"] > MAX_COPY_SHARE * len(synthetic):
        raise PrivacyLimitError(
            None, f"{copies['rows_dropped']:,} of {len(synthetic):,} twin rows still equal a real record shared by "
                  f"fewer than {k} real rows after {max_rounds} redrawing rounds: nearly every possible row of this "
                  f"table is a rare real record (columns compared: {', '.join(map(str, copies['columns_compared']))}),"
                  " so a safe twin cannot be made; add columns that vary, or share an aggregate instead")

    def agree(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
        return after if conform is None else conform(before, after, qis)

    protected, anonymity = enforce_k_anonymity(safe, k, qis, generalize, max_suppression, synthetic=True, seed=seed)
    protected = agree(safe if protected.index.equals(safe.index) else safe.loc[protected.index], protected)
    protected, refill = _refill(protected, safe, combinations, len(synthetic), qis, redraw, agree, k, max_rounds,
                                seed)
    smallest = smallest_group(protected, qis)
    for round_ in range(1, max_rounds + 1):  # a late copy's group lost its row to a swapped donor: again
        if smallest >= k:
            break
        again, extra = enforce_k_anonymity(protected, k, qis, generalize, max_suppression, synthetic=True,
                                           seed=seed + round_)
        anonymity["records_suppressed"] += extra["records_suppressed"]
        again = agree(protected.loc[again.index], again)
        protected, more = _refill(again, protected, combinations, len(synthetic), qis, redraw, agree, k,
                                  max_rounds, seed + round_)
        refill = {key: refill[key] + more[key] for key in refill}
        smallest = smallest_group(protected, qis)
    if smallest < k:
        raise PrivacyLimitError(None, f"k = {k} could not be kept on {qis} while refilling the twin to "
                                      f"{len(synthetic):,} rows after {max_rounds} rounds")
    anonymity["final_k"] = smallest
    anonymity["bank_compliant"] = anonymity["final_k"] >= k
    return protected, {
        "quasi_identifiers": qis,
        "quasi_identifier_choice": choice,
        "rare_strings": rare_strings,
        "exact_copies": {**copies, "rare_record_copies_created_by_k_anonymity_replaced": refill["late_copies"]},
        "k_anonymity": anonymity,
        "rows": {"asked": len(synthetic), "returned": len(protected),
                 "suppressed_rows_replaced_by_conforming_draws": refill["filled"] - refill["late_copies"]},
    }


def _refill(protected, before, combinations, n, qis, redraw, conform, k, max_rounds, seed) -> tuple[pd.DataFrame,
                                                                                              dict]:
    """Back to `n` rows: suppressed (or dropped) rows, and rows that now equal a rare real record, become fresh
    conforming draws. Each takes the protected quasi-identifier values of a donor row already in a group of >= k
    (for a rare copy, itself first: its group keeps its size), and the rest is drawn given the donor's values
    before anonymisation, which the model knows, then made to agree with the protected ones (`conform`). A donor
    whose draws keep equalling a rare record is swapped for another; if that left a group short, k-anonymity is
    enforced once more (its suppressions refilled)."""
    rng = np.random.default_rng([seed, 1])
    counts = combinations.count(protected)
    late = (counts > 0) & (counts < k)
    late_copies = int(late.sum())
    if not late_copies and len(protected) == n > 0 and protected.index.equals(pd.RangeIndex(n)) \
            and isinstance(protected.index, pd.RangeIndex):
        return protected, {"filled": 0, "late_copies": 0}  # nothing to refill: the frame itself, not two copies
    kept = protected[~late]
    if len(kept) == 0:
        raise PrivacyLimitError(None, "every protected row equals a rare real record: no safe twin can be made")
    donors = np.concatenate([protected.index[late], rng.choice(kept.index, max(n - len(protected), 0))])
    filled, parts = 0, [kept]
    for round_ in range(max_rounds):
        if len(donors) == 0:
            break
        if round_ >= 2:  # these donors' neighbourhoods hold only rare records: borrow another row's values
            donors = rng.choice(kept.index, len(donors))
        drawn = redraw(before.loc[donors, qis])[protected.columns].astype(protected.dtypes.to_dict())
        fresh = drawn.copy()
        fresh[qis] = protected.loc[donors, qis].to_numpy()
        fresh = conform(drawn, fresh.astype(protected.dtypes.to_dict()))
        counts = combinations.count(fresh)
        ok = ~((counts > 0) & (counts < k))
        parts.append(fresh[ok])
        filled += int(ok.sum())
        donors = donors[~ok]
    out = pd.concat(parts, ignore_index=True)
    if len(out) != n:
        raise PrivacyLimitError(None, f"could not refill the twin to {n:,} rows: {n - len(out):,} fresh draws kept "
                                      f"equalling a rare real record after {max_rounds} rounds")
    return out, {"filled": filled, "late_copies": late_copies}
