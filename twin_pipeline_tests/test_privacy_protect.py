"""The full privacy pass on a twin: no rare real string, no rare real record, k >= 5, the rows asked for, and the
shares of low-cardinality columns kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
from shapes import lending_table, overdraft_table

from twin_pipeline import pipeline, protection
from twin_pipeline.options import CloneOptions
from twin_pipeline.privacy import protect_twin
from twin_pipeline.privacy.copies import RealCombinations


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


def rare_record_copies(twin: pd.DataFrame, real: pd.DataFrame, ignore=(), k: int = 5) -> int:
    counts = RealCombinations(real, [c for c in twin.columns if c not in ignore]).count(twin)
    return int(((counts > 0) & (counts < k)).sum())


def test_twin_has_no_rare_strings_no_rare_records_k5_and_all_its_rows():
    real = applicants(1_000, seed=1)
    leaked = real.sample(30, random_state=0).assign(application_id=lambda d: "S" + d["application_id"])
    synthetic = pd.concat([applicants(2_000, seed=2), leaked], ignore_index=True)
    synthetic.loc[:9, "emp_title"] = real["emp_title"][real["emp_title"].str.startswith("title")].iloc[:10].values
    seeds = iter(range(100, 200))
    protected, report = protect_twin(synthetic, real, lambda n: applicants(n, seed=next(seeds)), k=5,
                                     primary_key="application_id")
    assert report["quasi_identifiers"] == ["age", "income", "emp_title"]
    assert set(report["quasi_identifier_choice"]["chosen"]) == {"age", "income", "emp_title"}
    assert rare_record_copies(protected, real, ["application_id"]) == 0
    rare_real = real["emp_title"].value_counts()[lambda c: c < 5].index
    assert not protected["emp_title"].isin(rare_real).any()
    assert protected.groupby(report["quasi_identifiers"], dropna=False).size().min() >= 5
    assert report["k_anonymity"]["bank_compliant"]
    # Every real row is unique (incomes to the cent): the leaked rows with a common title are rare records.
    leaked_common = (~leaked["emp_title"].isin(rare_real)).sum()
    assert report["exact_copies"]["rare_record_copies_found"] == leaked_common
    assert len(protected) == len(synthetic) and report["rows"]["returned"] == len(synthetic)
    assert list(protected.dtypes) == list(synthetic.dtypes)


def test_protection_never_writes_into_the_twin_it_is_given():
    """Its steps share the columns they leave alone with the frame they are given (no copy of every column): a
    replaced copy, a regrouped string, a micro-aggregated income or a redrawn title must land in a frame of
    protection's own, never in the caller's."""
    real = applicants(1_000, seed=1)
    leaked = real.sample(30, random_state=0).assign(application_id=lambda d: "S" + d["application_id"])
    synthetic = pd.concat([applicants(2_000, seed=2), leaked], ignore_index=True)
    synthetic.loc[:9, "emp_title"] = real["emp_title"][real["emp_title"].str.startswith("title")].iloc[:10].values
    before = synthetic.copy()
    seeds = iter(range(100, 200))
    protected, report = protect_twin(synthetic, real, lambda n: applicants(n, seed=next(seeds)), k=5,
                                     primary_key="application_id")
    assert report["exact_copies"]["rows_replaced"] > 0 and report["rare_strings"]["emp_title"]["cells_replaced"] > 0
    assert not protected["income"].equals(synthetic["income"])  # micro-aggregated
    pd.testing.assert_frame_equal(synthetic, before)


def test_a_small_discrete_table_keeps_its_flag_rate_and_its_shares():
    """450 rows of four discrete columns with a 13 % flag: most twin rows equal some real row, as most fresh real
    rows would; only rare records are replaced, from a reweighted pool, so every share stays within sampling error."""
    real = overdraft_table(seed=3)
    options = CloneOptions()
    engine = pipeline.fit_model(real, options)
    synthetic = engine.sample(len(real), seed=4)
    protected, report = protection.protect(synthetic, real, engine, options)
    assert len(protected) == len(real)
    assert report["exact_copies"]["rare_record_copies_found"] > 0  # the test exercises the replacement
    assert rare_record_copies(protected, real) == 0
    natural = report["exact_copies"]["natural_identical_match_share"]
    assert 0.5 < report["exact_copies"]["identical_match_share"] <= natural["leave_one_out"] + 0.05
    for column in real.columns:
        real_shares = real[column].value_counts(normalize=True)
        twin_shares = protected[column].value_counts(normalize=True).reindex(real_shares.index, fill_value=0)
        tolerance = 0.02 + 2 * np.sqrt(real_shares * (1 - real_shares) / len(real)) * np.sqrt(2)
        assert ((twin_shares - real_shares).abs() <= tolerance).all(), column
    flag = (protected["overdrawn"] == "yes").mean()
    assert abs(flag - (real["overdrawn"] == "yes").mean()) <= 0.02 + 2 * np.sqrt(0.13 * 0.87 / len(real))
    assert report["exact_copies"]["share_shift"]["largest_share_change"] < 0.06


def test_rows_suppressed_by_k_anonymity_are_refilled_with_conforming_draws():
    real = applicants(600, seed=1)
    synthetic = applicants(600, seed=2)
    synthetic.loc[:2, "age"] = [95, 96, 97]  # three outliers no group can take in...
    synthetic.loc[:2, "emp_title"] = [f"unique {i}" for i in range(3)]  # ...with a title of their own
    seeds = iter(range(300, 400))
    protected, report = protect_twin(synthetic, real, lambda n: applicants(n, seed=next(seeds)), k=5,
                                     quasi_identifiers=["age", "emp_title"], primary_key="application_id",
                                     max_suppression=0.05)
    assert len(protected) == len(synthetic)
    assert protected.groupby(["age", "emp_title"]).size().min() >= 5
    assert report["rows"] == {"asked": 600, "returned": 600, "suppressed_rows_replaced_by_conforming_draws":
                              report["k_anonymity"]["records_suppressed"]}


def test_wide_table_low_cardinality_columns_outside_the_quasi_identifiers_keep_their_shares():
    real = lending_table(seed=1, n=3_000)
    options = CloneOptions()
    engine = pipeline.fit_model(real, options)
    synthetic = engine.sample(len(real), seed=2)
    protected, report = protection.protect(synthetic, real, engine, options)
    assert len(protected) == len(real)
    for column in ("loan_status", "grade", "term", "application_type", "verified_income"):
        before = synthetic[column].value_counts(normalize=True)
        after = protected[column].value_counts(normalize=True).reindex(before.index, fill_value=0)
        assert (after - before).abs().max() <= 0.02, column


def test_a_ratio_to_a_quasi_identifier_the_twin_keeps_by_construction_survives_k_anonymity():
    """share = expenditure / income on every real row (credit_card's rule): micro-aggregation gives a row a group
    member's income, so the row's share is derived again from it (it had broken the rule on half the rows): protection
    breaks it on no row the sampled twin kept it on."""
    rng = np.random.default_rng(5)
    n = 800
    real = pd.DataFrame({"age": rng.integers(18, 80, n), "income": np.round(rng.lognormal(8, 0.5, n), 2),
                         "expenditure": np.round(rng.lognormal(5, 0.8, n), 2)})
    real["share"] = np.round(real["expenditure"] / real["income"], 6)
    options = CloneOptions()
    engine = pipeline.fit_model(real, options)
    ratio = [rule for rule in engine.rules.rules if rule.enforced and rule.derived == "share"]
    assert ratio and ratio[0].kind == "ratio"
    synthetic = engine.sample(n, seed=1)
    protected, report = protection.protect(synthetic, real, engine, options)
    qis = report["quasi_identifiers"]
    assert "income" in qis and report["k_anonymity"]["information_loss"]["share_rows_changed"]["income"] > 0.3
    assert protected.groupby(qis).size().min() >= 5 and len(protected) == n
    assert ratio[0].shares(engine.typed_view(synthetic))["share"] == 1.0  # (its input moves to keep it in range)
    assert ratio[0].shares(engine.typed_view(protected))["share"] == 1.0


def test_text_dates_bound_by_an_order_rule_stay_dates_after_protection():
    """origination_date <= maturity_date, both written as text: the column the rule derives was read as raw
    text by protection, and its rare dates became "Other" (42 % of a mortgage twin's origination dates)."""
    rng = np.random.default_rng(3)
    n = 1_500
    start = pd.Timestamp("2012-01-01") + pd.to_timedelta(rng.integers(0, 4_000, n), unit="D")
    real = pd.DataFrame({"origination_date": start.strftime("%Y-%m-%d"),
                         "maturity_date": (start + pd.to_timedelta(rng.choice([10, 20, 30], n) * 365, unit="D"))
                         .strftime("%Y-%m-%d"),
                         "amount": np.round(rng.lognormal(11, 0.5, n), -2),
                         "defaulted": (rng.random(n) < 0.05).astype(int)})
    options = CloneOptions()
    engine = pipeline.fit_model(real, options)
    assert any(rule.enforced for rule in engine.rules.rules if rule.kind == "order")
    twin, _ = protection.protect(engine.sample(n, seed=1), real, engine, options)
    for column in ("origination_date", "maturity_date"):
        assert twin[column].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all(), twin[column].value_counts().head(3)
        assert pd.api.types.is_datetime64_any_dtype(engine.typed_view(twin)[column])
    assert (twin["origination_date"] <= twin["maturity_date"]).all()
