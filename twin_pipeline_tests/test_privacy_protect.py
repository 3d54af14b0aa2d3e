"""The full privacy pass on a twin: no rare real string, no copy of a real row, k >= 5, schema kept."""

from __future__ import annotations

import numpy as np
import pandas as pd

from twin_pipeline.privacy import exact_copy_mask, protect_twin


def applicants(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "application_id": [f"A{seed}-{i}" for i in range(n)],
        "age": rng.integers(18, 80, n),
        "income": np.round(rng.lognormal(8, 0.5, n), 2),
        "emp_title": np.where(rng.random(n) < 0.9, rng.choice(["clerk", "nurse", "driver"], n),
                              [f"title {seed}-{i}" for i in range(n)]),  # 10% one-off free text
        "amount": rng.integers(1, 100, n) * 100,
    })


def test_twin_has_no_rare_strings_no_copies_and_k5():
    real = applicants(1_000, seed=1)
    leaked = real.sample(30, random_state=0).assign(application_id=lambda d: "S" + d["application_id"])
    synthetic = pd.concat([applicants(2_000, seed=2), leaked], ignore_index=True)
    synthetic.loc[:9, "emp_title"] = real["emp_title"][real["emp_title"].str.startswith("title")].iloc[:10].values
    seeds = iter(range(100, 200))
    protected, report = protect_twin(synthetic, real, lambda n: applicants(n, seed=next(seeds)), k=5,
                                     primary_key="application_id")
    assert report["quasi_identifiers"] == ["age", "income", "emp_title"]
    assert not exact_copy_mask(protected, real, ignore_columns=["application_id"]).any()
    rare_real = real["emp_title"].value_counts()[lambda c: c < 5].index
    assert not protected["emp_title"].isin(rare_real).any()
    assert protected.groupby(report["quasi_identifiers"], dropna=False).size().min() >= 5
    assert report["k_anonymity"]["bank_compliant"]
    # Leaked rows with a one-off title stopped being copies when the title became "Other".
    leaked_common = (~leaked["emp_title"].isin(rare_real)).sum()
    assert report["exact_copies"]["exact_copies_found"] == leaked_common
    assert report["rare_strings"]["emp_title"]["cells_replaced"] == 10 + (len(leaked) - leaked_common)
    assert list(protected.dtypes) == list(synthetic.dtypes)
    assert protected["application_id"].is_unique


def test_copies_created_by_micro_aggregation_are_removed():
    real = pd.DataFrame({"age": [40, 60, 61, 62, 63, 64] * 2, "sex": ["F"] * 12, "job": ["a"] * 12})
    # Five ages averaging exactly 40: after aggregation they would all equal the real row (40, F, a).
    # (Groups of 20s and 70s, already k-anonymous, hold the range, so the mean is what the five get.)
    synthetic = pd.DataFrame({"age": [36, 39, 41, 42, 42] + [20] * 5 + [70] * 5, "sex": ["F"] * 15, "job": ["a"] * 15})
    assert not exact_copy_mask(synthetic, real).any()
    protected, report = protect_twin(synthetic, real, lambda n: synthetic.iloc[:0], k=5,
                                     quasi_identifiers=["age", "sex"], max_suppression=0.5)
    assert not exact_copy_mask(protected, real).any()
    assert report["exact_copies"]["copies_created_by_k_anonymity_dropped"] == 5
    assert report["k_anonymity"]["final_k"] >= 5


def test_ignored_columns_are_neither_compared_nor_replaced():
    real = applicants(500, seed=1).assign(branch_id=[f"B{i % 150}" for i in range(500)])  # each branch < 5 times
    common = real[real["emp_title"].isin(["clerk", "nurse", "driver"])]
    twin = common.iloc[:20].assign(application_id=[f"S{i}" for i in range(20)])  # copies with new keys
    fresh = applicants(200, seed=7).assign(branch_id="B1")
    protected, report = protect_twin(twin, real, lambda n: fresh.iloc[:n], k=5, quasi_identifiers=["age"],
                                     primary_key="application_id", ignore_columns=["branch_id"],
                                     max_suppression=1.0)
    assert report["exact_copies"]["exact_copies_found"] == 20
    assert "branch_id" not in report["exact_copies"]["columns_compared"]
    assert "branch_id" not in report["rare_strings"]
    assert protected["branch_id"].str.startswith("B").all()
