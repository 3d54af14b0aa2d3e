"""Privacy report (k recount, exact-match rate, distance to closest record) and the bounded attacker audit: it
flags a generator that copies its training rows and passes one drawing fresh rows, within its time budget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shapes import lending_table, narrow_table
from twin_pipeline.privacy import (audit_generator, default_secrets, detect_quasi_identifiers, enforce_k_anonymity,
                                   privacy_report, risk)
from twin_pipeline.privacy.risk import Encoder, _twice_midranks, auc_with_interval, closest_distances, nearest


def population(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    return pd.DataFrame({
        "age": age,
        "income": np.round(rng.lognormal(8, 0.5, n) + 20 * age, 2),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "sex": rng.choice(["F", "M"], n),
        "default": rng.choice(["yes", "no"], n, p=[0.2, 0.8]),
    })


def test_distance_is_a_rank_based_gower_distance_with_missing_values():
    reference = pd.DataFrame({"x": [0.0, 10.0, 20.0, 30.0, np.nan], "c": ["a", "b", "a", "b", "a"]})
    rows = pd.DataFrame({"x": [0.0, 20.0, np.nan, 1000.0], "c": ["a", "b", "a", "a"]})
    encoder = Encoder.fit(reference, ["x", "c"], [rows])
    # Mid-ranks of 0, 10, 20, 30 are 1/8, 3/8, 5/8, 7/8 (1000: 1); a category mismatch costs 1, missing is its own
    # value. (20, b): nearest is (10, b) or (30, b), a quarter apart in rank: sqrt(0.25^2 / 2 columns).
    distances = closest_distances(encoder.transform(rows), encoder.transform(reference), n_columns=2)
    assert distances == pytest.approx([0.0, np.sqrt(0.25**2 / 2), 0.0, np.sqrt(0.375**2 / 2)])


def test_the_matrix_product_search_finds_the_kd_tree_neighbours(monkeypatch):
    rng = np.random.default_rng(0)
    reference, queries = rng.random((3_000, 12)), rng.random((500, 12))
    queries[:50] = reference[:50]  # exact copies are at distance 0 both ways
    tree_d, tree_i = nearest(queries, reference, k=3)
    monkeypatch.setattr(risk, "KD_TREE_MAX_DIMENSIONS", 0)
    brute_d, brute_i = nearest(queries, reference, k=3)
    assert np.array_equal(tree_i, brute_i) and brute_d == pytest.approx(tree_d, abs=1e-6)
    assert np.all(brute_d[:50, 0] == 0) and np.array_equal(brute_i[:50, 0], np.arange(50))


def test_auc_and_its_delong_interval_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    positives, negatives = rng.integers(0, 6, 400) + 0.5, rng.integers(0, 6, 300).astype(float)
    auc, (low, high) = auc_with_interval(positives, negatives)
    labels = np.r_[np.ones(400), np.zeros(300)]
    assert auc == pytest.approx(roc_auc_score(labels, np.r_[positives, negatives]))
    assert low < auc < high and high - low < 0.15
    assert auc_with_interval(np.zeros(50), np.zeros(50))[0] == 0.5  # all tied: no signal


def test_an_independent_twin_is_no_closer_to_train_than_the_holdout():
    train, holdout, twin = population(3_000, 1), population(3_000, 2), population(6_000, 3)
    report = privacy_report(twin, train, holdout, quasi_identifiers=["age", "region", "sex"], k=5, max_rows=2_000)
    assert report["exact_match_rate"] == 0.0
    assert 0.4 < report["share_closer_to_train_than_holdout"] < 0.6
    dcr = report["distance_to_closest_record"]
    assert dcr["rows_compared"] == {"synthetic": 2_000, "train": 2_000, "holdout": 2_000}
    assert dcr["synthetic_to_train"]["median"] == pytest.approx(dcr["holdout_to_train"]["median"], rel=0.3)
    assert report["k"] == int(twin.groupby(["age", "region", "sex"]).size().min())


def test_a_memorising_twin_is_flagged():
    train, holdout = population(2_000, 1), population(2_000, 2)
    leaked = train.assign(income=train["income"] + 0.01)  # near-copies of training rows
    report = privacy_report(leaked, train, holdout, quasi_identifiers=["age", "sex"], max_rows=2_000)
    assert report["share_closer_to_train_than_holdout"] > 0.95
    dcr = report["distance_to_closest_record"]
    assert dcr["synthetic_to_train"]["median"] < 0.2 * dcr["holdout_to_train"]["median"]
    copied = privacy_report(train.iloc[:100], train, quasi_identifiers=["age"])
    assert copied["exact_match_rate"] == 1.0 and copied["exact_matches"] == 100
    assert copied["share_closer_to_train_than_holdout"] is None


def test_report_recounts_k_on_a_protected_twin_and_carries_suppression():
    train, twin = population(2_000, 1), population(4_000, 5)
    qis = ["age", "income", "region", "sex"]
    protected, anonymity = enforce_k_anonymity(twin, target_k=5, quasi_identifiers=qis)
    report = privacy_report(protected, train, quasi_identifiers=qis, k=5, anonymity=anonymity)
    assert report["k"] >= 5 and report["k_satisfied"]
    assert report["records_suppressed"] == anonymity["records_suppressed"]
    unprotected = privacy_report(twin, train, quasi_identifiers=qis, k=5)
    assert unprotected["k"] == 1 and not unprotected["k_satisfied"]


def copying(train: pd.DataFrame) -> pd.DataFrame:
    """A "generator" that publishes its training rows."""
    return train.copy()


FRESH = {  # table builder (seed, rows), and a generator drawing fresh rows from the same distribution
    "population": (lambda n: population(n, 1), lambda train: population(len(train), 99)),
    "lending (wide)": (lambda n: lending_table(0, n), lambda train: lending_table(99, len(train))),
}


@pytest.mark.parametrize("name", list(FRESH))
def test_the_audit_flags_a_copying_generator_and_passes_a_fresh_one(name):
    build, fresh = FRESH[name]
    real = build(3_000)
    copied = audit_generator(real, copying, seed=0)
    assert "membership" in copied["flagged"] and copied["membership"]["ci"][0] > 0.5
    assert copied["membership"]["share_of_train_with_a_copy"] == 1.0
    assert copied["rows"]["train"] == copied["method"]["train"] == 2_400  # every training row tested, not a slice
    target = copied["secrets"][0]
    assert copied["inference"][target]["ci"][0] > 0 and f"inference: {target}" in copied["flagged"]
    clean = audit_generator(real, fresh, seed=0)
    assert clean["flagged"] == []
    assert clean["membership"]["ci"][0] <= 0 <= clean["membership"]["ci"][1] or clean["membership"]["risk"] < 0.05


def test_the_audit_flags_a_copy_of_the_bundled_credit_table(credit_data):
    copied = audit_generator(credit_data, copying, seed=0)
    assert {"membership", "inference: Status"} <= set(copied["flagged"])
    assert copied["membership"]["risk"] > 0.9 and copied["membership"]["ci"][0] > 0.9


def test_default_secrets_are_the_target_and_the_sensitive_amounts(credit_data):
    qis = ["Seniority", "Home", "Age", "Marital", "Job", "Income"]
    secrets = default_secrets(credit_data, qis)
    assert secrets[0] == "Status" and set(secrets[1:]) <= {"Amount", "Debt", "Assets", "Price", "Expenses"}
    non_qi = [c for c in credit_data.columns if c not in qis]
    assert secrets != non_qi[:3]  # not "the first three non-QI columns" (Status, Time, Records)
    wide = lending_table(0, 2_000)
    wide_secrets = default_secrets(wide, detect_quasi_identifiers(wide))
    assert wide_secrets[0] == "loan_status" and "balance" in wide_secrets[1:]
    assert not {"num_cc_carrying_balance", "months_since_last_delinq", "debt_to_income"} & set(wide_secrets)


def test_named_secrets_are_the_ones_attacked():
    real = population(2_000, 1)
    audit = audit_generator(real, copying, secrets=["income", "region"], quasi_identifiers=["age", "sex"])
    assert list(audit["inference"]) == ["income", "region"] and audit["known_columns"] == ["age", "sex"]


def test_the_audit_finishes_within_its_budget_on_a_narrow_30000_row_table():
    real = narrow_table(0, 30_000)
    audit = audit_generator(real, lambda train: narrow_table(5, len(train)), seed=0)
    budget = audit["budget"]
    assert budget["seconds"] == 60 and not budget["truncated"] and budget["not_run"] == {}
    assert set(budget["stage_seconds"]) == {"membership", "inference", "linkability", "singling_out"}
    assert audit["method"]["rows_used"] == 20_000 and audit["rows"]["train"] == 5_000  # subsampled, CI stated
    assert audit["singling_out"]["n_attacks"] <= 200 and "ci" in audit["singling_out"]
    assert audit["flagged"] == []


def test_a_spent_budget_leaves_the_attacks_out_and_says_so():
    audit = audit_generator(population(1_000, 1), copying, budget_seconds=1e-9)
    assert audit["budget"]["truncated"]
    assert set(audit["budget"]["not_run"]) == {"membership", "inference", "linkability", "singling_out"}
    assert "membership" not in audit and audit["flagged"] == []


def test_one_failing_attack_leaves_the_others_standing(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(risk, "linkability_risk", broken)
    audit = audit_generator(population(1_000, 1), copying)
    assert audit["linkability"] == {"error": "RuntimeError: boom"}
    assert "membership" in audit["flagged"] and "linkability" not in audit["flagged"]


def test_twice_midranks_are_both_searches_summed():
    """One search among the distinct values gives what the two searches (left and right) gave: ties, both zeros,
    infinities, NaN (past the end) and values outside the reference, on continuous and stepped columns."""
    rng = np.random.default_rng(4)
    for ordered in (np.sort(rng.lognormal(8, 1, 3_000)), np.sort(np.round(rng.normal(0, 50, 3_000), -1)),
                    np.sort(np.r_[-0.0, 0.0, 0.0, -np.inf, 1.0, 1.0, np.inf]), np.array([2.5]), np.array([])):
        values = np.r_[rng.choice(ordered, 500) if len(ordered) else [], rng.normal(0, 1e4, 500), -0.0, 0.0, np.nan,
                       np.inf, -np.inf, 1.0]
        both = np.searchsorted(ordered, values, "left") + np.searchsorted(ordered, values, "right")
        assert np.array_equal(_twice_midranks(ordered, values), both)
