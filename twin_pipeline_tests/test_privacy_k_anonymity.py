"""k-anonymity: every quasi-identifier combination occurs >= k times, recounted independently with pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin_pipeline.errors import PrivacyLimitError
from twin_pipeline.privacy import KAnonymityError, enforce_k_anonymity
from twin_pipeline.tables import TwinInputError
from twin_pipeline.paths import SAMPLES


def recount_k(df: pd.DataFrame, qis: list[str]) -> int:
    """k as an auditor would count it: smallest group, missing values grouped as a value."""
    return int(df.groupby(qis, dropna=False, observed=True).size().min())


def assert_same_schema(before: pd.DataFrame, after: pd.DataFrame) -> None:
    assert list(after.columns) == list(before.columns)
    for column in before.columns:
        if isinstance(before[column].dtype, pd.CategoricalDtype):
            assert isinstance(after[column].dtype, pd.CategoricalDtype), column
        else:
            assert after[column].dtype == before[column].dtype, column


def people(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": np.arange(n),
        "age": rng.integers(18, 80, n),
        "income": np.round(rng.lognormal(8, 0.5, n), 2),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "sex": rng.choice(["F", "M"], n),
        "balance": rng.normal(1000, 300, n),
    })


def test_credit_data_reaches_k5_keeps_numbers_numeric_with_small_loss():
    real = pd.read_csv(SAMPLES / "credit_data.csv")
    qis = ["Age", "Marital", "Home", "Job", "Income"]
    protected, report = enforce_k_anonymity(real, target_k=5, quasi_identifiers=qis)
    assert recount_k(protected, qis) >= 5
    assert report["final_k"] == recount_k(protected, qis) and report["bank_compliant"]
    assert report["initial_k"] == recount_k(real, qis) == 1
    assert_same_schema(real, protected)
    assert protected["Age"].dtype == np.int64 and protected["Income"].dtype == np.float64
    assert (protected["Income"].dropna() == protected["Income"].dropna().round(0)).all()  # rounded like the input
    for column in ["Age", "Income"]:  # the range survives, so histograms over each table's range line up
        assert protected[column].min() == real[column].min() and protected[column].max() == real[column].max()
    # Measured: Age 0.081, Income 0.194 normalised SSE; categorical <= 2.7% regrouped; 5 rows (0.11%) suppressed.
    # At 1x rows many category combinations hold only 5-20 people, and the group holding the top income keeps
    # it (the column's range is kept); a 10x twin loses ~0.03 (bench/bench_privacy.py).
    loss = report["information_loss"]
    assert loss["numeric_normalised_sse"]["Age"] < 0.12
    assert loss["numeric_normalised_sse"]["Income"] < 0.25
    assert max(loss["categorical_share_regrouped"].values()) < 0.05
    assert report["records_suppressed"] <= 0.01 * len(real)
    # Non-QI columns are untouched row by row.
    kept = real.loc[protected.index]
    pd.testing.assert_frame_equal(protected[["Status", "Amount", "Price"]], kept[["Status", "Amount", "Price"]])


def test_qi_unique_on_every_row_is_aggregated_not_dropped():
    df = people(2_000)
    df["income"] = np.arange(2_000) * 1.5 + 1000  # unique on every row
    protected, report = enforce_k_anonymity(df, target_k=5, quasi_identifiers=["income", "sex"])
    assert report["initial_k"] == 1
    assert recount_k(protected, ["income", "sex"]) >= 5
    assert report["records_suppressed"] == 0
    assert protected["income"].dtype == np.float64
    assert abs(protected["income"].mean() - df["income"].mean()) < 1.0  # group means keep the column mean
    assert report["information_loss"]["numeric_normalised_sse"]["income"] < 0.01


def test_qi_with_a_huge_number_of_categories_runs_vectorised():
    n = 200_000  # stands for "a million categories": every value distinct
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"job_title": [f"title {i}" for i in range(n)], "age": rng.integers(18, 80, n)})
    protected, report = enforce_k_anonymity(df, target_k=5, quasi_identifiers=["job_title", "age"])  # timed in bench/
    assert recount_k(protected, ["job_title", "age"]) >= 5
    assert set(protected["job_title"]) == {"Other"}
    assert report["information_loss"]["categorical_share_regrouped"]["job_title"] == 1.0


def test_all_rows_identical_is_already_anonymous_and_unchanged():
    df = pd.DataFrame({"age": [40] * 12, "sex": ["F"] * 12, "amount": np.arange(12)})
    protected, report = enforce_k_anonymity(df, target_k=5, quasi_identifiers=["age", "sex"])
    pd.testing.assert_frame_equal(protected, df)
    assert report["initial_k"] == report["final_k"] == 12
    assert report["records_suppressed"] == 0
    assert all(steps == [] for steps in report["transformations_applied"].values())


def test_k_larger_than_rows_is_a_clear_error():
    df = people(7)
    with pytest.raises(TwinInputError, match=r"target_k=10 is larger than the number of rows \(7\)"):
        enforce_k_anonymity(df, target_k=10, quasi_identifiers=["age"])


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_invalid_k_is_rejected(bad):
    with pytest.raises(TwinInputError, match="target_k must be a whole number"):
        enforce_k_anonymity(people(20), target_k=bad, quasi_identifiers=["age"])


def test_unknown_quasi_identifier_and_generalization_are_rejected():
    with pytest.raises(TwinInputError, match=r"\['postcode'\] are not columns"):
        enforce_k_anonymity(people(20), quasi_identifiers=["age", "postcode"])
    with pytest.raises(TwinInputError, match="generalize must be None or 'bands'"):
        enforce_k_anonymity(people(20), quasi_identifiers=["age"], generalize="stars")


def test_missing_values_inside_qis_are_a_group_of_their_own():
    df = people(3_000, seed=2)
    rng = np.random.default_rng(3)
    df.loc[rng.random(len(df)) < 0.1, "income"] = np.nan
    df.loc[rng.random(len(df)) < 0.1, "region"] = None
    qis = ["age", "income", "region", "sex"]
    protected, report = enforce_k_anonymity(df, target_k=5, quasi_identifiers=qis)
    assert recount_k(protected, qis) >= 5
    # Missing stays missing: no value is invented for it, and observed values never become missing.
    kept = df.loc[protected.index]
    assert (protected["income"].isna() == kept["income"].isna()).all()
    assert protected["region"].isna().sum() > 0
    assert not (protected["region"].isna() & kept["region"].notna()).any()


def test_suppression_cap_raises_instead_of_silently_dropping():
    df = people(100, seed=4)
    df["age"] = df["age"].astype(float)
    df.loc[[1, 2, 3], "age"] = np.nan  # two missing-value patterns of 3 rows: only suppression can fix them
    df.loc[[10, 11, 12], "income"] = np.nan
    with pytest.raises(KAnonymityError, match=r"suppressing 6 of 100 rows.*cap of 1 rows") as caught:
        enforce_k_anonymity(df, target_k=5, quasi_identifiers=["age", "income"])
    assert isinstance(caught.value, PrivacyLimitError) and caught.value.exit_code == 3  # the data is fine, the cap is not
    protected, report = enforce_k_anonymity(df, target_k=5, quasi_identifiers=["age", "income"], max_suppression=0.1)
    assert report["records_suppressed"] == 6 and len(protected) == 94
    assert not protected.index.isin([1, 2, 3, 10, 11, 12]).any()
    assert recount_k(protected, ["age", "income"]) >= 5


@pytest.mark.parametrize("synthetic", [True, False])
def test_a_relation_between_quasi_identifiers_that_holds_on_every_row_still_holds(synthetic):
    """Seniority <= age - 14 on every row (a mined rule the twin keeps by construction): micro-aggregation gives
    each group one member's values or its means, both of which keep it, and the groups that keep a column's
    extremes take the whole extreme row (moving only the top seniority onto a group of younger people broke the
    rule on 1.5 % of the demo twin's rows)."""
    qis = ["age", "seniority", "sex"]
    for seed in range(5):  # the old way broke it in 2 (twin) and 3 (means) of these 5 tables
        rng = np.random.default_rng(seed)
        age = rng.integers(18, 70, 300)
        df = pd.DataFrame({"age": age, "seniority": np.floor(rng.random(300) * (age - 13)).astype(int),
                           "sex": rng.choice(["F", "M"], 300)})
        protected, report = enforce_k_anonymity(df, target_k=5, quasi_identifiers=qis, synthetic=synthetic)
        assert report["transformations_applied"]["seniority"] and recount_k(protected, qis) >= 5
        assert (protected["age"] - protected["seniority"] >= 14).all(), seed
        for column in ("age", "seniority"):  # the range is still kept
            assert protected[column].min() == df[column].min() and protected[column].max() == df[column].max()


def test_a_twin_may_always_have_a_few_rows_redrawn():
    """The same 6 % of isolated rows on a twin: its suppressed rows are redrawn, not lost, so up to
    TWIN_MAX_REDRAWN passes without raising the 1 % cap a real table keeps (a 600-row twin failed half its seeds)."""
    df = people(100, seed=4)
    df["age"] = df["age"].astype(float)
    df.loc[[1, 2, 3], "age"] = np.nan
    df.loc[[10, 11, 12], "income"] = np.nan
    with pytest.raises(KAnonymityError):  # 6 % is above the twin's 5 % too
        enforce_k_anonymity(df, target_k=5, quasi_identifiers=["age", "income"], synthetic=True)
    df.loc[[12], "income"] = df.loc[13, "income"]
    protected, report = enforce_k_anonymity(df.drop(index=[3]), target_k=5, quasi_identifiers=["age", "income"],
                                            synthetic=True)
    assert report["records_suppressed"] == 4 and recount_k(protected, ["age", "income"]) >= 5


def test_schema_and_dtypes_are_preserved_for_every_kind_of_column():
    n = 500
    rng = np.random.default_rng(5)
    df = pd.DataFrame({
        "age": rng.integers(18, 80, n).astype(np.int32),
        "income": np.round(rng.normal(3000, 800, n), 2),
        "dependents": pd.array(rng.integers(0, 5, n), dtype="Int64"),
        "birth_date": pd.to_datetime("1950-01-01") + pd.to_timedelta(rng.integers(0, 20_000, n), unit="D"),
        "region": pd.Categorical(rng.choice(["a", "b", "c", "d", "rare"], n, p=[0.3, 0.3, 0.3, 0.096, 0.004])),
        "homeowner": rng.random(n) < 0.5,
        "note": rng.choice(["x", "y"], n),
    })
    qis = ["age", "income", "dependents", "birth_date", "region", "homeowner"]
    protected, _ = enforce_k_anonymity(df, target_k=5, quasi_identifiers=qis, max_suppression=0.05)
    assert_same_schema(df, protected)
    assert recount_k(protected, qis) >= 5
    assert (protected["birth_date"] == protected["birth_date"].dt.normalize()).all()  # dates stay whole days
    cents = protected["income"] * 100
    assert np.allclose(cents, cents.round())  # two decimals in, two decimals out


def test_rows_already_k_anonymous_are_left_alone():
    common = pd.DataFrame({"age": [30, 40, 50] * 100, "sex": ["F", "M", "F"] * 100})
    rare = pd.DataFrame({"age": [33, 47, 61, 29, 52, 38], "sex": ["M", "F", "M", "F", "M", "F"]})
    df = pd.concat([common, rare], ignore_index=True)
    protected, report = enforce_k_anonymity(df, target_k=5, quasi_identifiers=["age", "sex"])
    pd.testing.assert_frame_equal(protected.iloc[:300], common)
    assert recount_k(protected, ["age", "sex"]) >= 5
    assert report["transformations_applied"]["age"][0]["rows_changed"] <= 6


def test_rare_categories_are_grouped_least_frequent_first():
    df = pd.DataFrame({"job": ["clerk"] * 50 + ["nurse"] * 40 + ["astronaut"] * 3 + ["judge"] * 4,
                       "amount": range(97)})
    protected, report = enforce_k_anonymity(df, target_k=5, quasi_identifiers=["job"])
    assert protected["job"].value_counts().to_dict() == {"clerk": 50, "nurse": 40, "Other": 7}
    assert report["transformations_applied"]["job"][0]["values_grouped"] == 2
    assert report["information_loss"]["categorical_share_regrouped"]["job"] == pytest.approx(7 / 97)


def test_local_recoding_changes_the_fewest_cells_and_spares_rare_free_text():
    common = pd.DataFrame({"job_title": ["clerk"] * 500, "state": list("PQRST") * 100})
    # 25 rows, each a unique (title, state) pair: recoding either column for them makes groups of 5.
    grid = pd.DataFrame([(title, state) for title in ["actuary", "baker", "cook", "diver", "envoy"]
                         for state in "PQRST"], columns=["job_title", "state"])
    df = pd.concat([common, grid], ignore_index=True)
    protected, report = enforce_k_anonymity(df, target_k=5, quasi_identifiers=["job_title", "state"])
    assert recount_k(protected, ["job_title", "state"]) >= 5 and report["records_suppressed"] == 0
    # Same number of cells either way; a state carries fewer bits than a rare job title, so the state goes.
    assert (protected["state"].iloc[500:] == "Other").all()
    assert protected["job_title"].equals(df["job_title"])
    assert report["information_loss"]["categorical_share_regrouped"] == {"job_title": 0.0, "state": 25 / 525}


def test_bands_only_when_asked():
    df = people(1_000, seed=6)
    protected, report = enforce_k_anonymity(df, target_k=5, quasi_identifiers=["age", "sex"], generalize="bands")
    assert recount_k(protected, ["age", "sex"]) >= 5
    band = report["transformations_applied"]["age"][0]
    assert band["what"].startswith("generalised to bands") and band["band_width"] == 10
    assert set(protected["age"]) <= {15, 25, 35, 45, 55, 65, 75}  # ages 18..79 in bands of ten
    plain, _ = enforce_k_anonymity(df, target_k=5, quasi_identifiers=["age", "sex"])
    assert plain["age"].nunique() > 6


def test_primary_key_is_never_detected_as_a_quasi_identifier():
    df = people(400, seed=7)
    protected, report = enforce_k_anonymity(df, target_k=5)
    assert report["quasi_identifiers"] == ["age", "income", "region", "sex"]
    assert (protected["customer_id"] == df.loc[protected.index, "customer_id"]).all()
    assert recount_k(protected, report["quasi_identifiers"]) >= 5


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(5, 300),
    k=st.integers(2, 6),
    missing=st.floats(0, 0.3),
)
def test_any_table_is_k_anonymous_or_refused_clearly(seed, n, k, missing):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.integers(18, 30, n).astype(float),
        "score": rng.normal(0, 1, n).round(1),
        "city": rng.choice(list("abcdefg"), n),
        "sex": rng.choice(["F", "M"], n),
    })
    df.loc[rng.random(n) < missing, "age"] = np.nan
    df.loc[rng.random(n) < missing, "city"] = None
    qis = list(df.columns)
    if k > n:
        with pytest.raises(TwinInputError):
            enforce_k_anonymity(df, target_k=k, quasi_identifiers=qis)
        return
    try:
        protected, report = enforce_k_anonymity(df, target_k=k, quasi_identifiers=qis, max_suppression=0.2)
    except KAnonymityError as error:
        assert "max_suppression" in str(error)
        return
    assert recount_k(protected, qis) >= k if len(protected) else report["records_suppressed"] == n
    assert_same_schema(df, protected)
    assert report["records_suppressed"] == n - len(protected) <= 0.2 * n


def test_an_existing_others_category_is_reused_not_a_new_other_beside_it():
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"Job": rng.choice(["fixed", "freelance", "partime", "others"], n, p=[0.6, 0.2, 0.15, 0.05]),
                       "Home": rng.choice(["owner", "rent", "priv", "ignore", "Others"], n,
                                          p=[0.5, 0.3, 0.15, 0.01, 0.04]),
                       "Age": rng.integers(18, 70, n)})
    protected, report = enforce_k_anonymity(df, 5, ["Job", "Home", "Age"])
    assert report["final_k"] >= 5
    assert "Other" not in set(protected["Job"]) and "Other" not in set(protected["Home"])
    assert set(protected["Home"]) <= {"owner", "rent", "priv", "ignore", "Others"}
    loss = report["information_loss"]
    assert set(loss["share_rows_changed"]) == {"Job", "Home", "Age"}
    assert all(0 <= value <= 1 for value in loss["categorical_arx_loss"].values())
    assert loss["categorical_arx_loss"]["Home"] <= loss["share_rows_changed"]["Home"]


def test_a_synthetic_twin_keeps_its_frequent_titles_and_real_states_at_full_granularity():
    """20 titles x 34 states at 2,500 rows: k-anonymity over the pair by generalising would set the title (or the
    state) to Other nearly everywhere. A twin's rows are draws, so states are redrawn inside the census hierarchy
    and numbers take a group member's values: every value stays a real one and the shares stay."""
    from twin_pipeline_tests.shapes import STATES, TITLES

    rng = np.random.default_rng(8)
    n = 2_500
    df = pd.DataFrame({"emp_title": rng.choice(TITLES, n), "state": rng.choice(STATES, n),
                       "homeownership": rng.choice(["MORTGAGE", "RENT", "OWN"], n, p=[0.48, 0.4, 0.12]),
                       "annual_income": np.round(np.exp(rng.normal(11, 0.55, n)) / 100) * 100})
    qis = list(df.columns)
    protected, report = enforce_k_anonymity(df, 5, qis, synthetic=True, seed=1)
    assert recount_k(protected, qis) >= 5 and report["records_suppressed"] == 0
    assert set(protected["state"]) <= set(STATES) and set(protected["emp_title"]) <= set(TITLES)
    changed = report["information_loss"]["share_rows_changed"]
    assert changed["emp_title"] < 0.02  # the title is the last thing to move
    for column in ["emp_title", "state", "homeownership"]:  # shares within sampling error
        shares = pd.concat([df[column].value_counts(normalize=True), protected[column].value_counts(normalize=True)],
                           axis=1).fillna(0)
        assert (shares.iloc[:, 0] - shares.iloc[:, 1]).abs().max() < 0.03, column
    assert abs(np.log(protected["annual_income"]).std() / np.log(df["annual_income"]).std() - 1) < 0.05
    assert report["information_loss"]["categorical_arx_loss"]["state"] < changed["state"]  # often the same region


def test_real_records_are_never_redrawn_only_generalised():
    common = pd.DataFrame({"job_title": ["clerk"] * 500, "state": list("PQRST") * 100})
    rare = pd.DataFrame({"job_title": ["actuary", "baker"], "state": ["P", "Q"]})
    df = pd.concat([common, rare], ignore_index=True)
    protected, _ = enforce_k_anonymity(df, 5, ["job_title", "state"])
    assert set(protected["job_title"]) <= {"clerk", "actuary", "baker", "Other"}
    assert not (protected["job_title"].iloc[500:] == "clerk").any()  # no real record gets another person's title


def test_us_states_generalise_to_census_division_then_region():
    from twin_pipeline.privacy.hierarchies import hierarchy_levels

    division, region = hierarchy_levels(pd.Series(["CA", "OR", "TX", "NY", None]))
    assert division["CA"] == division["OR"] == "Pacific" and region["TX"] == "South" and region["NY"] == "Northeast"
    assert hierarchy_levels(pd.Series(["clerk", "nurse"])) == []


def test_a_columns_codes_come_with_the_value_of_each_code():
    from twin_pipeline.privacy.grouping import column_codes
    from twin_pipeline.privacy.hierarchies import _coded

    series = pd.Series(["TX", "CA", None, "TX", "NY", None, "CA"], index=range(10, 17))
    (codes, n_codes), values = _coded(series)
    assert (codes.tolist(), n_codes) == (column_codes(series)[0].tolist(), column_codes(series)[1])
    assert values.tolist() == ["TX", "CA", None, "NY"]  # the missing value is a code of its own, in order
    assert series.reset_index(drop=True).equals(values.iloc[codes].reset_index(drop=True))


def test_round_values_keep_their_share_when_a_twin_group_takes_one_members_values():
    """Incomes 70 % on multiples of 100 and ages 60 % whole years: every group takes one member's values, and
    a group of five counts five times, so one random member per group moved the income share by 1.5 points
    (standard deviation over 40 seeds); balanced, the twin keeps both within half a point, with k kept."""
    qis = ["age", "income", "city"]
    for seed in range(4):
        rng = np.random.default_rng(seed)
        n = 3000
        income = rng.lognormal(10, 0.5, n)
        income = np.where(rng.random(n) < 0.7, np.round(income, -2), np.round(income))
        age = rng.integers(20, 70, n) + np.where(rng.random(n) < 0.6, 0, rng.integers(1, 12, n) / 12).round(4)
        real = pd.DataFrame({"age": age, "income": income, "city": rng.choice(list("abc"), n)})
        twin, report = enforce_k_anonymity(real, 5, qis, synthetic=True, seed=seed)
        assert report["transformations_applied"]["income"] and len(twin) == n
        assert twin.groupby(qis).size().min() >= 5
        for column, step in (("income", 100), ("age", 1)):
            shares = [np.mean(frame[column] % step == 0) for frame in (real, twin)]
            assert abs(shares[0] - shares[1]) <= 0.005, (seed, column, shares)


def test_on_a_twin_the_columns_left_alone_are_shared_with_the_input_which_stays_unchanged():
    """k-anonymity replaces the columns it changes and shares the others with its input (no copy of a wide
    twin); `rederive` then finds no moved cell in a shared column without comparing it, and compares the rest."""
    from twin_pipeline.engine.copula import _moved

    df = people(3000)
    df["accounts"] = pd.array(np.where(np.arange(3000) % 7 == 0, None, np.arange(3000) % 5), dtype="Int64")
    before = df.copy()
    out, report = enforce_k_anonymity(df, 5, ["age", "region", "sex"], synthetic=True, seed=1)
    assert report["records_suppressed"] == 0 and df.equals(before)
    assert np.shares_memory(out["balance"].to_numpy(), df["balance"].to_numpy())
    for column in ["balance", "customer_id", "accounts"]:
        assert not _moved(df[column], out[column]).any()
    assert _moved(df["age"], out["age"]).tolist() == (df["age"] != out["age"]).tolist() and (df["age"] != out["age"]).any()
    changed = df["accounts"].copy()
    changed.iloc[[1, 7]] = [4, 3]  # a value changed, a blank filled
    assert np.flatnonzero(_moved(df["accounts"], changed)).tolist() == [1, 7]
