"""Quality metrics: exact on hand-computed cases, equal to the reference implementations (scipy, SDMetrics)
where the definitions coincide, and moving in the right direction when a twin gets worse."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from twin_pipeline.quality import (
    categorical_match,
    column_types,
    contingency_similarity,
    correlation_error,
    ks_statistic,
    ks_statistics,
    quality_report,
    similarity_score,
)
from twin_pipeline.tables import TwinInputError, to_jsonable
from twin_pipeline.paths import SAMPLES


@pytest.fixture(scope="module")
def credit() -> pd.DataFrame:
    return pd.read_csv(SAMPLES / "credit_data.csv")


def mixed_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Columns of every metric type, with nulls, a key and correlated numbers."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.6, n)
    months = pd.date_range("2012-01-01", periods=60, freq="MS")
    frame = pd.DataFrame({
        "loan_id": np.arange(1000, 1000 + n),
        "income": income,
        "debt": income * rng.uniform(0.1, 0.5, n),
        "age": rng.integers(20, 70, n),
        "defaulted": rng.integers(0, 2, n),
        "grade": rng.choice(list("ABCDE"), n),
        "opened": pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 2000, n), unit="D"),
        "issue_d": months[rng.integers(0, 60, n)].strftime("%b-%Y"),
        "int_rate": [f"{rate:.2f}%" for rate in rng.uniform(5, 25, n)],
    })
    frame.loc[rng.random(n) < 0.1, "debt"] = np.nan
    frame.loc[rng.random(n) < 0.1, "grade"] = None
    return frame


def perturbed(real: pd.DataFrame, noise: float, flip: float, shuffled: int, seed: int = 1) -> pd.DataFrame:
    """A resampled copy: numbers jittered by `noise` standard deviations, a share `flip` of categories redrawn,
    and the first `shuffled` columns permuted independently (their dependence on the others destroyed)."""
    rng = np.random.default_rng(seed)
    copy = real.sample(len(real), replace=True, random_state=seed).reset_index(drop=True)
    for name, kind in column_types(real).items():
        if kind == "numeric":
            jittered = copy[name] + rng.normal(0, noise * real[name].std(), len(copy))
            jittered = jittered.round() if pd.api.types.is_integer_dtype(real[name]) else jittered.round(3)
            copy[name] = jittered.clip(lower=real[name].min())
        else:
            redraw = rng.random(len(copy)) < flip
            copy.loc[redraw, name] = rng.choice(real[name].dropna().unique(), redraw.sum())
    for name in list(real.columns)[:shuffled]:
        copy[name] = rng.permutation(copy[name].to_numpy())
    return copy


def test_column_types_follow_the_documented_rules():
    types = column_types(mixed_frame())
    assert types == {
        "loan_id": "excluded",  # all-unique integers named like an id
        "income": "numeric",
        "debt": "numeric",
        "age": "numeric",
        "defaulted": "categorical",  # a 0/1 flag is a label, not a shape
        "grade": "categorical",
        "opened": "datetime",
        "issue_d": "datetime",  # text dates such as "Mar-2018"
        "int_rate": "numeric",  # numbers written as text
    }


def test_primary_key_and_unique_text_are_excluded_but_unique_floats_are_not():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "ref": [f"LN{i:06d}" for i in range(200)],
        "account": rng.permutation(200),
        "balance": rng.normal(1000, 100, 200),
        "limit": (np.arange(1000, 1200) + 0.5).astype(str),  # distinct amounts written as text ...
        "einkommen": [f"{v:.2f}".replace(".", ",") for v in rng.normal(3000, 100, 200)],  # ... decimal comma too
    })
    assert column_types(frame) == {"ref": "excluded", "account": "numeric", "balance": "numeric", "limit": "numeric",
                                   "einkommen": "numeric"}
    assert column_types(frame, primary_key="account")["account"] == "excluded"
    notes = pd.Series([f"called client re {i}, promised {i * 7} EUR" if i % 3 else None for i in range(200)])
    assert column_types(frame.assign(notes=notes))["notes"] == "excluded"  # unique where filled: free text
    report = quality_report(frame, frame.sample(frac=1, random_state=1), primary_key="account")
    assert set(report["ks_statistics"]) == {"balance", "limit", "einkommen"}


def test_the_report_leaves_out_exactly_the_columns_the_engine_takes_for_keys():
    """One key rule (engine.keys.is_key): what the engine regenerates as fresh keys is not scored, and what it
    models as data is (unique amounts with cents, unique text dates); free text new on every row is not scored."""
    from twin_pipeline.engine.transformers import detect_spec

    rng = np.random.default_rng(1)
    n = 60
    frame = pd.DataFrame({
        "loan_id": rng.permutation(n) + 1000.0,  # whole floats under a key's name
        "code": [f"LN{i:06d}" for i in range(n)],
        "amount": [f"${value:,.2f}" for value in rng.uniform(1_000, 9_000, n)],
        "opened": pd.date_range("2020-01-01", periods=n).strftime("%Y-%m-%d"),
        "age": np.arange(20, 20 + n),
        "note": [f"called on day {i} about the loan" for i in range(n)],
    })
    kinds = {name: detect_spec(frame[name]).kind for name in frame.columns}
    types = column_types(frame)
    assert {name for name, kind in kinds.items() if kind == "identifier"} == {"loan_id", "code"}
    assert types == {"loan_id": "excluded", "code": "excluded", "amount": "numeric", "opened": "datetime",
                     "age": "numeric", "note": "excluded"}


def test_engine_kinds_override_detection():
    frame = mixed_frame()
    types = column_types(frame, column_kinds={"age": "discrete", "defaulted": "integer", "loan_id": "continuous"})
    assert (types["age"], types["defaulted"], types["loan_id"]) == ("categorical", "numeric", "numeric")
    with pytest.raises(TwinInputError, match="unknown kind"):
        column_types(frame, column_kinds={"age": "fuzzy"})
    with pytest.raises(TwinInputError, match="not in the real data"):
        column_types(frame, column_kinds={"nope": "integer"})


def test_identical_frames_score_100_with_no_error():
    frame = mixed_frame()
    report = quality_report(frame, frame.copy())
    assert report["similarity_score"] == pytest.approx(100.0)
    assert report["correlation_error"] == pytest.approx(0.0, abs=1e-12)
    assert all(value == 0.0 for value in report["ks_statistics"].values())
    assert all(value == pytest.approx(1.0) for value in report["categorical_match"].values())
    assert report["contingency_similarity"]["mean"] == pytest.approx(1.0)
    assert (report["n_real"], report["n_synthetic"]) == (600, 600)
    assert "loan_id" not in report["ks_statistics"] and report["column_types"]["loan_id"] == "excluded"


def test_report_holds_every_documented_key_and_is_json_safe():
    report = quality_report(mixed_frame(seed=0), mixed_frame(seed=1))
    expected = {"similarity_score", "correlation_error", "ks_statistics", "categorical_match", "column_shapes",
                "pair_trends", "contingency_similarity", "column_types", "n_real", "n_synthetic"}
    assert expected <= set(report)
    assert 0 <= report["similarity_score"] <= 100
    assert json.loads(json.dumps(to_jsonable(report)))["similarity_score"] == pytest.approx(report["similarity_score"])


def test_shuffled_columns_lose_their_correlations_but_keep_their_shapes(credit):
    rng = np.random.default_rng(0)
    shuffled = credit.apply(lambda column: pd.Series(rng.permutation(column.to_numpy()), name=column.name))
    numeric = [name for name, kind in column_types(credit).items() if kind == "numeric"]
    real_corr = credit[numeric].corr().to_numpy()[np.triu_indices(len(numeric), 1)]
    report = quality_report(credit, shuffled)
    # Independent columns have correlations near 0, so the error is about the real correlations' magnitude.
    assert report["correlation_error"] == pytest.approx(np.abs(real_corr).mean(), abs=0.03)
    assert report["column_shapes"] == pytest.approx(1.0)
    assert report["pair_trends"] < 0.95
    assert report["similarity_score"] < 98


@pytest.mark.filterwarnings("ignore:ks_2samp")
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60),
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60),
    st.booleans(),
)
@example(real=[1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0], synthetic=[1.0, -1.0, 0.0], few_values=False)  # same value set
@settings(max_examples=200, deadline=None)
def test_ks_statistic_equals_scipy(real, synthetic, few_values):
    real, synthetic = np.array(real), np.array(synthetic)
    if few_values:  # many ties: the counting path
        real, synthetic = np.round(real / 3e5), np.round(synthetic / 3e5)
    assert ks_statistic(real, synthetic) == pytest.approx(ks_2samp(real, synthetic).statistic, abs=1e-12)


def test_ks_ignores_nulls_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    real = pd.DataFrame({"x": rng.normal(size=5000), "y": rng.integers(0, 100, 5000)})
    with_nulls = real.copy()
    with_nulls.loc[::7, "x"] = np.nan
    assert ks_statistics(real, with_nulls)["x"] < 0.02
    shifts = [0.0, 0.1, 0.3, 1.0, 3.0]
    ks = [ks_statistics(real, real.assign(x=real.x + shift, y=real.y + 30 * shift)) for shift in shifts]
    for column in ("x", "y"):
        values = [entry[column] for entry in ks]
        assert values == sorted(values) and values[0] == 0.0 and values[-1] > 0.8


def test_categorical_match_is_one_minus_tvd_with_null_as_a_category():
    real = pd.DataFrame({"c": ["a", "a", "b", None]})
    synthetic = pd.DataFrame({"c": ["a", "b", "b", "b", "b", "b", "b", "b"]})
    # P_R = (a .5, b .25, null .25), P_S = (a .125, b .875): TVD = (.375 + .625 + .25) / 2 = .625
    assert categorical_match(real, synthetic)["c"] == pytest.approx(0.375)


def test_contingency_uses_real_quantile_bins_and_the_joint_distribution():
    x = np.arange(1, 11)
    real = pd.DataFrame({"x": x, "group": np.where(x <= 5, "low", "high")})
    swapped = real.copy()
    swapped.loc[[0, 9], "group"] = ["high", "low"]  # two of ten rows move to the other joint cell
    pairs = contingency_similarity(real, swapped, column_kinds={"x": "continuous"})["pairs"]
    assert pairs == [{"column_1": "x", "column_2": "group", "score": pytest.approx(0.8)}]
    # Values beyond the real range fall into the outer bins, so a shift the bins cannot see scores the same.
    stretched = real.assign(x=np.where(x == 10, 1000, x))
    assert contingency_similarity(real, stretched, column_kinds={"x": "continuous"})["mean"] == pytest.approx(1.0)


def test_contingency_sees_a_lost_dependence_on_a_skewed_column():
    """Deciles of the real values keep every bin populated; equal-width bins would put nearly all of a
    heavy-tailed income into the first bin and miss that the synthetic groups no longer follow it."""
    rng = np.random.default_rng(0)
    income = rng.lognormal(10, 2, 4000)
    real = pd.DataFrame({"income": income, "band": np.where(income > np.median(income), "upper", "lower")})
    lost = real.assign(band=rng.permutation(real.band.to_numpy()))
    assert contingency_similarity(real, real)["mean"] == pytest.approx(1.0)
    assert contingency_similarity(real, lost)["mean"] < 0.6


def test_contingency_of_two_high_cardinality_columns_is_exact():
    """2,600 x 2,600 possible cells: counted by hashing instead of a dense grid, same definition."""

    def frame(seed):
        rng = np.random.default_rng(seed)
        return pd.DataFrame({"a": rng.integers(0, 2600, 8000).astype(str), "b": rng.integers(0, 2600, 8000).astype(str)})

    real, synthetic = frame(0), frame(1)
    real_share = real.value_counts(normalize=True)
    synth_share = synthetic.value_counts(normalize=True)
    expected = 1 - 0.5 * real_share.sub(synth_share, fill_value=0).abs().sum()
    labels = {"a": "categorical", "b": "categorical"}  # digit strings would otherwise be read as numbers
    assert contingency_similarity(real, synthetic, column_kinds=labels)["mean"] == pytest.approx(expected, abs=1e-12)


def test_contingency_pairs_counted_together_score_as_each_pair_counted_alone():
    """A column's partners are counted in one pass over their joint codes while the joint grid is small: each
    pair's score is, bit for bit, the one its own count gives."""
    from twin_pipeline.quality.metrics import JOINT_CELLS, _Comparison, _tvd

    def frame(seed, n):
        rng = np.random.default_rng(seed)
        columns = {f"c{size}": np.char.add("v", rng.integers(0, size, n).astype(str)).astype(object)
                   for size in (2, 3, 7, 60, 90)}
        columns["c7"][rng.random(n) < 0.1] = None  # missing: a category of its own
        return pd.DataFrame({**columns, "x": rng.lognormal(0, 1, n)})

    comparison = _Comparison(frame(0, 3_000), frame(1, 7_000))
    sizes = {name: comparison.codes[name][2] for name in comparison.plan}
    assert sizes["c90"] * sizes["c60"] > JOINT_CELLS >= sizes["c2"] * sizes["c3"] * sizes["c7"] * sizes["x"]
    assert [len(group) for group in comparison._partner_groups("c2", ["c3", "c7", "x", "c60", "c90"])] == [3, 1, 1]
    for pair in comparison.contingency_pairs():
        real_a, synth_a, size_a = comparison.codes[pair["column_1"]]
        real_b, synth_b, size_b = comparison.codes[pair["column_2"]]
        alone = _tvd(real_a.astype(np.int64) * size_b + real_b, synth_a.astype(np.int64) * size_b + synth_b,
                     size_a * size_b)
        assert pair["score"] == 1.0 - alone, pair
    assert len(comparison.contingency_pairs()) == 6 * 5 / 2


def test_categorical_pairs_equal_sdmetrics_contingency_similarity(credit):
    from sdmetrics.column_pairs import ContingencySimilarity

    synthetic = perturbed(credit, noise=0.2, flip=0.2, shuffled=2)
    ours = {(pair["column_1"], pair["column_2"]): pair["score"]
            for pair in contingency_similarity(credit, synthetic)["pairs"]}
    for pair in [("Status", "Home"), ("Home", "Marital"), ("Records", "Job")]:
        reference = ContingencySimilarity.compute(credit[list(pair)], synthetic[list(pair)])
        assert ours[pair] == pytest.approx(reference, abs=1e-12)


def test_correlation_error_matches_pandas_pairwise_pearson():
    real, synthetic = mixed_frame(seed=0), mixed_frame(seed=1)
    numeric = ["income", "debt", "age"]  # debt has nulls: each pair uses the rows where both are present
    delta = (real[numeric].corr() - synthetic[numeric].corr()).abs().to_numpy()[np.triu_indices(3, 1)]
    assert correlation_error(real[numeric], synthetic[numeric]) == pytest.approx(delta.mean(), abs=1e-12)
    assert correlation_error(real, real) == pytest.approx(0.0, abs=1e-12)


def test_pairwise_pearson_counts_each_pair_on_its_own_rows():
    from twin_pipeline.quality.metrics import _pearson_matrix

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(400, 5)), columns=list("abcde"))
    frame.loc[rng.random(400) < 0.3, "b"] = np.nan  # gaps in some columns only, overlapping
    frame.loc[rng.random(400) < 0.5, "c"] = np.nan
    frame.loc[8:, "d"] = np.nan
    ours = _pearson_matrix([frame[name].to_numpy() for name in frame])
    np.testing.assert_allclose(ours, frame.corr().to_numpy(), atol=1e-12)


def test_datetimes_are_correlated_as_numbers():
    real, synthetic = mixed_frame(seed=0), mixed_frame(seed=1)

    def as_numbers(frame):
        return pd.DataFrame({"opened": frame.opened.astype("int64"), "income": frame.income}).corr().iloc[0, 1]

    expected = abs(as_numbers(real) - as_numbers(synthetic))
    assert correlation_error(real[["opened", "income"]], synthetic[["opened", "income"]]) == pytest.approx(expected)


def test_score_falls_as_the_twin_gets_worse(credit):
    levels = [(0.05, 0.02, 0), (0.3, 0.1, 2), (1.0, 0.4, 6)]
    scores = [similarity_score(credit, perturbed(credit, *level)) for level in levels]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 90 and scores[-1] < 85


def test_score_agrees_with_sdmetrics_quality_report(credit):
    """Column shapes are the same statistics. Pair trends differ by design: SDMetrics 0.32 averages only pairs
    with a strong real relationship (|r| > 0.5, Cramer's V > 0.3) and cuts numbers into equal-width bins per
    table; we average every pair on the real table's deciles. Measured at most 2.7 points apart."""
    from sdmetrics.reports import QualityReport

    columns = {name: {"sdtype": "numerical" if kind == "numeric" else "categorical"}
               for name, kind in column_types(credit).items()}
    for level in [(0.2, 0.1, 0), (0.5, 0.2, 3)]:
        synthetic = perturbed(credit, *level)
        ours = quality_report(credit, synthetic)
        reference = QualityReport()
        reference.generate({"credit": credit}, {"credit": synthetic}, {"tables": {"credit": {"columns": columns}}},
                           verbose=False)
        shapes = reference.get_properties().set_index("Property")["Score"]["Column Shapes"]
        assert ours["column_shapes"] == pytest.approx(shapes, abs=1e-3)
        assert ours["similarity_score"] == pytest.approx(100 * reference.get_score(), abs=3.5)


def test_bad_inputs_name_the_problem():
    frame = mixed_frame()
    with pytest.raises(TwinInputError, match="synthetic data.*lacks column.*grade"):
        quality_report(frame, frame.drop(columns="grade"))
    with pytest.raises(TwinInputError, match="real data.*no rows"):
        quality_report(frame.iloc[:0], frame)
    with pytest.raises(TwinInputError, match="primary_key.*'nope'"):
        quality_report(frame, frame, primary_key="nope")
    with pytest.raises(TwinInputError, match="must be a pandas DataFrame"):
        quality_report(frame, frame.to_dict())
