"""The copula keeps what a risk modeller checks: types, ranges, frequencies, nulls, dependence, determinism."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from twin_pipeline.engine import GaussianCopulaEngine
from twin_pipeline.quality import correlation_errors
from twin_pipeline.tables import TwinInputError


@pytest.fixture(scope="module")
def fitted(loan_book):
    return GaussianCopulaEngine().fit(loan_book, primary_key="loan_id")


@pytest.fixture(scope="module")
def twin(fitted):
    return fitted.sample(20000, seed=3)


def test_same_columns_order_and_dtypes(loan_book, twin):
    assert list(twin.columns) == list(loan_book.columns)
    assert twin.dtypes.to_dict() == loan_book.dtypes.to_dict()


def test_primary_key_is_fresh_unique_and_formatted(loan_book, twin):
    assert twin["loan_id"].is_unique
    assert not set(twin["loan_id"]) & set(loan_book["loan_id"])
    assert twin["loan_id"].str.fullmatch(r"LN\d{6,}").all()


def test_same_seed_same_rows_and_other_seed_other_rows(fitted):
    assert fitted.sample(500, seed=11).equals(fitted.sample(500, seed=11))
    assert not fitted.sample(500, seed=11).equals(fitted.sample(500, seed=12))


def test_chunks_concatenate_to_the_same_sample(fitted):
    chunks = list(fitted.iter_samples(2500, seed=5, chunk_size=1000))
    assert [len(chunk) for chunk in chunks] == [1000, 1000, 500]
    assert pd.concat(chunks, ignore_index=True).equals(fitted.sample(2500, seed=5, chunk_size=1000))


def test_each_column_of_a_sampled_chunk_holds_its_own_cells(fitted):
    """A chunk's frame takes its columns as sampled, unconsolidated (no copy): a caller writing into one column
    of a chunk must find no other column changed with it."""
    chunk = next(fitted.iter_samples(1000, seed=2))
    cells = [chunk[name].array for name in chunk.columns]
    buffers = [getattr(values, "_data", getattr(values, "_ndarray", None)) for values in cells]
    buffers = [np.asarray(values) if buffer is None else buffer for values, buffer in zip(cells, buffers)]
    shared = [(a, b) for i, a in enumerate(chunk.columns) for j, b in enumerate(chunk.columns)
              if i < j and np.shares_memory(buffers[i], buffers[j])]
    assert shared == []


def test_numbers_stay_in_range_integers_stay_integers_and_decimals_kept(loan_book, twin):
    for name in ("income", "loan_amount", "age", "debt", "annual_inc_joint"):
        assert twin[name].min() >= loan_book[name].min() and twin[name].max() <= loan_book[name].max(), name
    assert (twin["age"] == twin["age"].round()).all()
    assert np.allclose(twin["income"], twin["income"].round(2))
    assert set(twin["term"]) <= {36, 60}


def test_marginals_match(loan_book, fitted, twin):
    assert "loan_amount" in fitted.rules.derived_columns  # kept inside loan_amount <= income, with its own marginal
    for name in ("income", "loan_amount", "age", "debt"):
        assert stats.ks_2samp(loan_book[name], twin[name]).statistic < 0.03, name
    for name in ("grade", "term", "defaulted", "application_type"):
        real = loan_book[name].value_counts(normalize=True)
        synthetic = twin[name].value_counts(normalize=True).reindex(real.index, fill_value=0)
        assert 0.5 * (real - synthetic).abs().sum() < 0.02, name


def test_a_heavy_right_tail_is_kept_up_to_the_99_9th_percentile():
    """Card amounts (lognormal, sigma 1.1, 40,000 rows): the grid's last segment reaches z = 7 on the normal scale,
    and interpolated there linearly its 0.8 % of mass piled up near the inner knot: 99.9th percentile 483, real 979."""
    real = pd.DataFrame({"amount": np.round(np.random.default_rng(5).lognormal(3.4, 1.1, 40_000), 2)})
    twin = GaussianCopulaEngine().fit(real).sample(80_000, seed=1)
    for q in (0.99, 0.995):
        assert twin["amount"].quantile(q) == pytest.approx(real["amount"].quantile(q), rel=0.1), q
    # the grid ends at the mean of the top 0.4 % (the maximum is never stored), so the 99.9th falls a little short
    assert twin["amount"].quantile(0.999) > 0.7 * real["amount"].quantile(0.999)
    assert twin["amount"].max() <= real["amount"].max()


def test_point_mass_frequency_kept(loan_book, twin):
    assert abs((twin["debt"] == 0).mean() - (loan_book["debt"] == 0).mean()) < 0.02


def test_dependent_nulls_follow_the_application_type(twin):
    joint = twin["application_type"] == "Joint App"
    assert twin.loc[~joint, "annual_inc_joint"].isna().mean() > 0.97
    assert twin.loc[joint, "annual_inc_joint"].notna().mean() > 0.97


def test_correlations_kept(loan_book, twin):
    errors = correlation_errors(loan_book, twin)
    assert errors["mean_abs_error"] < 0.03 and errors["max_abs_error"] < 0.1


def test_text_dates_come_back_in_the_input_format(loan_book, twin):
    assert twin["issue_d"].str.fullmatch(r"[A-Z][a-z]{2}-20(1[5-9]|20)").all()
    real_years = pd.to_datetime(loan_book["issue_d"], format="%b-%Y").dt.year.value_counts(normalize=True)
    twin_years = pd.to_datetime(twin["issue_d"], format="%b-%Y").dt.year.value_counts(normalize=True)
    assert (real_years - twin_years.reindex(real_years.index, fill_value=0)).abs().max() < 0.03


def test_rare_free_text_never_emitted(loan_book, twin):
    assert set(twin["emp_title"].dropna()) <= {"manager", "Other"}


def test_constant_and_all_null_columns_kept_as_they_are(twin):
    assert (twin["country"] == "NL").all()
    assert twin["notes"].isna().all()


def test_correlation_matrix_is_labelled_valid_and_symmetric(fitted, loan_book, twin):
    matrix = fitted.correlation_matrix
    assert "income" in matrix.index and "debt" in matrix.columns
    # the joint income is null exactly for individual applications: a rule writes the null, no indicator needed
    assert "annual_inc_joint (is null)" not in matrix.columns
    assert any(rule.enforced and rule.kind == "fixed_when" and rule.params["column"] == "annual_inc_joint"
               for rule in fitted.rules.rules)
    assert np.allclose(matrix.to_numpy(), matrix.to_numpy().T)
    assert np.linalg.eigvalsh(matrix.to_numpy()).min() > 0
    assert matrix.loc["income", "debt"] < 0.2
    # loan_amount <= income is kept by modelling the loan as its share of the income: the values correlate
    real, synthetic = (frame[["income", "loan_amount"]].corr().iloc[0, 1] for frame in (loan_book, twin))
    assert real > 0.5 and abs(synthetic - real) < 0.05


def test_describe_records_family_and_fit_statistic(fitted):
    described = fitted.describe()
    assert described["income"]["family"] == "lognormal"  # the loan book's incomes are log-normal
    assert 0 <= described["income"]["fit_statistic"] < 0.05
    assert described["grade"]["kind"] == "categorical"


def test_families_are_chosen_by_fit():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"normal": rng.normal(50, 5, 4000), "lognormal": rng.lognormal(3, 0.6, 4000),
                          "uniform": rng.uniform(0, 10, 4000)})
    described = GaussianCopulaEngine().fit(frame).describe()
    assert described["normal"]["family"] in {"normal", "truncnorm"}
    assert described["lognormal"]["family"] == "lognormal"
    assert described["uniform"]["family"] in {"uniform", "beta"}


def test_save_load_gives_the_same_twin(fitted, tmp_path):
    path = fitted.save(tmp_path / "model.json")
    assert GaussianCopulaEngine.load(path).sample(300, seed=1).equals(fitted.sample(300, seed=1))


def test_saved_model_holds_no_raw_rows_or_rare_values(loan_book, fitted, tmp_path):
    text = (fitted.save(tmp_path / "model.json")).read_text()
    model = json.loads(text)
    assert "title 1" not in text and "LN000001" not in text and "LN003000" not in text
    numbers = set()
    def walk(node):
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, float):
            numbers.add(node)
    walk(model)
    # Raw incomes are unique per loan: at most a handful may coincide with a smoothed grid value by chance.
    assert len(numbers & set(loan_book["income"])) < 10
    assert len(numbers & set(loan_book["annual_inc_joint"].dropna())) < 10


def test_bad_fit_arguments_are_clear(loan_book):
    with pytest.raises(TwinInputError, match="primary key 'nope' is not a column"):
        GaussianCopulaEngine().fit(loan_book, primary_key="nope")
    with pytest.raises(TwinInputError, match="not unique"):
        GaussianCopulaEngine().fit(loan_book, primary_key="grade")
    with pytest.raises(TwinInputError, match="at least 2"):
        GaussianCopulaEngine().fit(loan_book.head(1))


def test_write_sample_streams_parquet_and_csv(fitted, tmp_path):
    parquet = fitted.write_sample(tmp_path / "twin.parquet", 2500, seed=2, chunk_size=1000)
    csv = fitted.write_sample(tmp_path / "twin.csv", 2500, seed=2, chunk_size=1000)
    expected = fitted.sample(2500, seed=2, chunk_size=1000)
    assert pd.read_parquet(parquet).equals(expected)
    assert len(pd.read_csv(csv)) == 2500
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.slow
def test_copulas_reference_backend_runs_behind_the_same_interface(credit_card):
    engine = GaussianCopulaEngine(backend="copulas").fit(credit_card.head(300))
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    twin = engine.sample(200, seed=1)
    assert np.random.random() == expected_next  # the caller's global NumPy stream is left as it was
    assert list(twin.columns) == list(credit_card.columns)
    assert set(twin["card"]) <= {"yes", "no"}
    assert twin.equals(engine.sample(200, seed=1))


@pytest.mark.parametrize("table", ["credit_data", "credit_card"])
def test_ten_x_twins_of_the_public_credit_tables_meet_the_targets(table, request):
    from twin_pipeline.quality import quality_report

    real = request.getfixturevalue(table)
    report = quality_report(real, GaussianCopulaEngine().fit(real).sample(10 * len(real), seed=0))
    # 0.04, not 0.03: the model no longer stores the extreme values that drive credit_card's Pearson correlations
    # (tails clipped at the noisy means of the extreme half-blocks); measured against held-out rows in
    # bench/bench_model_privacy.py
    assert report["correlation_error"] <= 0.04 and report["similarity_score"] >= 95


def test_pearson_matching_beats_rank_correlation_on_pearson(credit_data):
    from twin_pipeline.quality import correlation_error

    errors = [correlation_error(credit_data, GaussianCopulaEngine(match_pearson=flag).fit(credit_data).sample(20_000, seed=1))
              for flag in (True, False)]
    assert errors[0] < errors[1]


@pytest.mark.parametrize("seed", range(4))
def test_pearson_matching_keeps_independent_years_independent(seed):
    """A year (mean far above its spread) beside a count: the wide twin once had them correlated at 0.6 (real 0.01),
    because the matched Pearson correlation was computed as E[XY] - E[X]E[Y] and cancelled catastrophically."""
    rng = np.random.default_rng(seed)
    n = 5000
    count = rng.poisson(13, n)
    real = pd.DataFrame({"earliest_credit_line": rng.integers(1970, 2015, n), "num_total_cc_accounts": count,
                         "num_open_cc_accounts": np.minimum(count, rng.poisson(7, n))})
    twin = GaussianCopulaEngine(mine_rules=False).fit(real).sample(20_000, seed=1)
    assert abs(twin.corr().loc["earliest_credit_line", "num_total_cc_accounts"]) < 0.05
    real_dependence = real.corr().loc["num_total_cc_accounts", "num_open_cc_accounts"]
    assert abs(twin.corr().loc["num_total_cc_accounts", "num_open_cc_accounts"] - real_dependence) < 0.05


def test_ordinal_categories_follow_their_association():
    rng = np.random.default_rng(4)
    n = 6000
    grade = rng.choice(list("ABCDEFG"), n, p=[0.1, 0.25, 0.25, 0.2, 0.1, 0.06, 0.04])
    level = pd.Series(grade).map({letter: i for i, letter in enumerate("ABCDEFG")}).to_numpy()
    real = pd.DataFrame({"grade": grade, "sub_grade": [g + str(rng.integers(1, 6)) for g in grade],
                         "int_rate": np.round(6 + 3.5 * level + rng.normal(0, 1, n), 2)})
    engine = GaussianCopulaEngine(mine_rules=False).fit(real)
    grades = engine.marginals[engine.variables.index(("grade", "value"))].values
    assert "".join(grades) in ("ABCDEFG", "GFEDCBA")
    twin = engine.sample(20_000, seed=1)
    assert (twin["sub_grade"].str[0] == twin["grade"]).mean() > 0.75
    # with rules, grade is looked up from sub_grade: always consistent, and sub_grade follows the rate
    ruled = GaussianCopulaEngine().fit(real)
    sub_grades = ruled.marginals[ruled.variables.index(("sub_grade", "value"))].values
    assert "".join(dict.fromkeys(value[0] for value in sub_grades)) in ("ABCDEFG", "GFEDCBA")
    assert (ruled.sample(20_000, seed=1).eval("sub_grade.str[0] == grade")).all()
    by_grade = twin.groupby("grade")["int_rate"].mean()
    assert by_grade.is_monotonic_increasing


def test_correlation_errors_leave_keys_out(credit_data):
    real = credit_data.assign(loan_id=range(1, len(credit_data) + 1)).sort_values("Income", na_position="first")
    real["loan_id"] = range(1, len(real) + 1)  # a key that follows the file's order, here the income order
    twin = GaussianCopulaEngine().fit(real, primary_key="loan_id").sample(20_000, seed=1)
    assert correlation_errors(real, twin)["max_abs_error"] < 0.1


def test_zero_rows_give_an_empty_frame_with_the_schema(loan_book, fitted, tmp_path):
    empty = fitted.sample(0)
    assert empty.shape == (0, loan_book.shape[1]) and list(empty.columns) == list(loan_book.columns)
    assert pd.read_csv(fitted.write_sample(tmp_path / "none.csv", 0)).shape == (0, loan_book.shape[1])


def test_a_small_twin_adds_no_sampling_noise_of_its_own_to_the_shares():
    """Twins of 450 rows from one model keep a 13 % flag and the age shares to within 2 rows of one another
    (independent draws would scatter the flag rate by about +-1.6 points), while the rows still differ."""
    from shapes import overdraft_table

    real = overdraft_table()
    engine = GaussianCopulaEngine().fit(real)
    twins = [engine.sample(len(real), seed=seed) for seed in range(8)]
    for column in ("overdrawn", "age"):
        shares = pd.DataFrame([twin[column].value_counts() for twin in twins]).fillna(0)
        assert (shares.max() - shares.min()).max() <= 2, column
    assert not twins[0].equals(twins[1])
    flag = real["overdrawn"].value_counts(normalize=True)
    assert (twins[0]["overdrawn"].value_counts(normalize=True) - flag).abs().max() < 0.02
