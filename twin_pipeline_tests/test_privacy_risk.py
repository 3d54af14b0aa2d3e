"""Privacy report: k recount, exact-match rate, distance to closest record, and anonymeter attacker risk."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from twin_pipeline.privacy import attacker_risk, enforce_k_anonymity, privacy_report
from twin_pipeline.privacy.risk import _encode, closest_distances


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


def test_distance_is_gower_style_with_missing_values():
    reference = pd.DataFrame({"x": [0.0, 10.0, 20.0, 30.0, np.nan], "c": ["a", "b", "a", "b", "a"]})
    rows = pd.DataFrame({"x": [0.0, 5.0, 1000.0, np.nan], "c": ["a", "a", "b", "a"]})
    encoded = _encode([rows, reference], ["x", "c"], reference=reference)
    # IQR of x is 15: 5 apart costs 1/3 of a column, far apart or missing-vs-number costs a full column.
    distances = closest_distances(encoded[0], encoded[1])
    assert distances == pytest.approx([0.0, (5 / 15) / 2, (1 + 0) / 2, 0.0])
    assert closest_distances(encoded[0], encoded[0]) == pytest.approx([0, 0, 0, 0])


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


def test_attacker_risk_separates_an_independent_twin_from_a_leaking_one():
    train, holdout = population(600, 1), population(600, 2)
    qis = ["age", "income", "region", "sex"]
    start = time.perf_counter()
    independent = attacker_risk(population(600, 3), train, holdout, quasi_identifiers=qis, n_attacks=100, seed=0)
    leaking = attacker_risk(train.assign(income=train["income"] + 0.01), train, holdout, quasi_identifiers=qis,
                            n_attacks=100, seed=0)
    assert time.perf_counter() - start < 60  # ~11 s, most of it anonymeter's one-off numba compilation
    assert list(independent["inference"]) == ["default"]
    for report in (independent, leaking):
        for result in [report["singling_out"], report["linkability"], *report["inference"].values()]:
            low, high = result["ci"]
            assert 0.0 <= low <= result["risk"] <= high <= 1.0
    # Risks are the advantage on training rows over the control rows: ~0 for an independent twin.
    assert independent["singling_out"]["risk"] < 0.1 and independent["inference"]["default"]["risk"] < 0.1
    assert leaking["singling_out"]["ci"][0] > 0.1 and leaking["inference"]["default"]["ci"][0] > 0.5
    again = attacker_risk(population(600, 3), train, holdout, quasi_identifiers=qis, n_attacks=100, seed=0)
    assert again["singling_out"] == independent["singling_out"] and again["inference"] == independent["inference"]
