"""The whole privacy pass on a sampled twin, in the order that keeps every guarantee.

Order matters: rare real strings go first (and from every resampled row too, or a replacement could bring one
back); copies are replaced before k-anonymity (so replacements are anonymised with everyone else); and because
moving values to group means could, rarely, land a row exactly on a real one, copies are checked once more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from twin_pipeline.privacy.copies import exact_copy_mask, remove_exact_copies, replace_rare_strings
from twin_pipeline.privacy.grouping import smallest_group
from twin_pipeline.privacy.k_anonymity import enforce_k_anonymity
from twin_pipeline.privacy.quasi_identifiers import detect_quasi_identifiers
from twin_pipeline.tables import TwinInputError

MAX_COPY_SHARE = 0.5  # more copies than this left after resampling: the table's rows are all common


def protect_twin(
    synthetic: pd.DataFrame,
    real: pd.DataFrame,
    resample: Callable[[int], pd.DataFrame],
    k: int = 5,
    quasi_identifiers: Sequence[str] | None = None,
    generalize: str | None = None,
    max_suppression: float = 0.01,
    primary_key: str | None = None,
    max_rounds: int = 10,
    ignore_columns: Sequence[str] = (),
) -> tuple[pd.DataFrame, dict]:
    """Rare strings -> "Other", copies of real rows resampled, k-anonymity enforced; returns (twin, report).

    `resample(n)` draws n fresh synthetic rows (e.g. `lambda n: engine.sample(n, seed=...)`); `primary_key`
    is excluded from string replacement and from copy comparison (a new id does not make a copy new), and so
    are `ignore_columns` (foreign keys to synthetic parents).
    """
    ignore = ([primary_key] if primary_key else []) + list(ignore_columns)
    qis = list(detect_quasi_identifiers(synthetic, primary_key=primary_key)
               if quasi_identifiers is None else quasi_identifiers)

    def fresh_rows(n: int) -> pd.DataFrame:
        return replace_rare_strings(resample(n), real, k, exclude=ignore)[0]

    safe, rare_strings = replace_rare_strings(synthetic, real, k, exclude=ignore)
    safe, copies = remove_exact_copies(safe, real, fresh_rows, max_rounds=max_rounds, ignore_columns=ignore)
    if len(synthetic) and copies["copies_dropped"] > MAX_COPY_SHARE * len(synthetic):
        raise TwinInputError(
            None, f"{copies['copies_dropped']:,} of {len(synthetic):,} twin rows still equal a real row after "
                  f"{max_rounds} resampling rounds: nearly every possible row of this table occurs in the real data "
                  f"(columns compared: {', '.join(map(str, copies['columns_compared']))}), so a twin without copies "
                  "cannot be made; add columns that vary, or share an aggregate instead")
    protected, anonymity = enforce_k_anonymity(safe, k, qis, generalize, max_suppression)
    late_copies = 0
    for _ in range(max_rounds):
        late = exact_copy_mask(protected, real, ignore)
        if not late.any():
            break
        late_copies += int(late.sum())
        protected = protected[~late]
        if smallest_group(protected, qis) < k:  # dropping rows can leave a group short: re-enforce on what is left
            protected, again = enforce_k_anonymity(protected, k, qis, generalize, max_suppression)
            anonymity["records_suppressed"] += again["records_suppressed"]
    anonymity["final_k"] = smallest_group(protected, qis)
    anonymity["bank_compliant"] = anonymity["final_k"] >= k
    return protected.reset_index(drop=True), {
        "quasi_identifiers": qis,
        "rare_strings": rare_strings,
        "exact_copies": {**copies, "copies_created_by_k_anonymity_dropped": late_copies},
        "k_anonymity": anonymity,
    }
