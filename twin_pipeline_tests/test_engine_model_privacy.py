"""The saved model gives nothing away: no sorted data, no value readable from two models one borrower apart,
and an (epsilon, delta)-differentially private fit that records its budget."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from attacks import differencing_error, moving_average_leaks, rebuild_sorted_column, stored_numbers
from shapes import lending_table, narrow_table

from twin_pipeline.engine import GaussianCopulaEngine, marginals
from twin_pipeline.errors import TwinInputError
from twin_pipeline.options import CloneOptions, validate_options


def saved(engine: GaussianCopulaEngine, tmp_path) -> dict:
    return json.loads(engine.save(tmp_path / "model.json").read_text())


@pytest.fixture(scope="module")
def lending():
    return lending_table(seed=3, n=3000)


# One default fit per table, shared by the tests that only read it (a fit of credit_data costs about a second).
@pytest.fixture(scope="module")
def credit_data_engine(credit_data):
    return GaussianCopulaEngine().fit(credit_data)


@pytest.fixture(scope="module")
def lending_engine(lending):
    return GaussianCopulaEngine().fit(lending)


@pytest.mark.parametrize("table", ["credit_data", "lending"])
@pytest.mark.parametrize("epsilon", [None, 1.0])
def test_the_saved_model_holds_no_moving_average_of_consecutive_sorted_values(table, epsilon, request, tmp_path):
    real = request.getfixturevalue(table)
    engine = request.getfixturevalue(f"{table}_engine") if epsilon is None else GaussianCopulaEngine(epsilon=epsilon).fit(real)
    model = saved(engine, tmp_path)
    leaks = moving_average_leaks(real, model)
    assert sum(column["moving_averages"] for column in leaks.values()) > 1000  # the attack had material
    assert {name: column["stored_exactly"] for name, column in leaks.items() if column["stored_exactly"]} == {}


def test_the_leak_check_finds_a_stored_moving_average(credit_data, credit_data_engine, tmp_path):
    """The check can fail: a grid that holds one 5-value moving average of sorted incomes is caught."""
    model = saved(credit_data_engine, tmp_path)
    incomes = np.sort(credit_data["Income"].dropna().to_numpy())
    variable = next(v for v in model["variables"] if v["column"] == "Income" and v["role"] == "value")
    variable["marginal"]["x_points"].append(float(incomes[-5:].mean()))
    assert moving_average_leaks(credit_data, model)["Income"]["stored_exactly"] == 1


def test_the_sorted_column_cannot_be_rebuilt_from_its_largest_values(credit_data, credit_data_engine, tmp_path):
    model = saved(credit_data_engine, tmp_path)
    for column in ("Income", "Price", "Amount"):
        attack = rebuild_sorted_column(credit_data, model, column)
        assert attack["rebuilt"] > 0 and attack["recovered_exactly"] == 0, column


def test_numeric_grids_have_a_bounded_number_of_knots(lending_engine, tmp_path):
    model = saved(lending_engine, tmp_path)
    grids = [v["marginal"] for v in model["variables"] if v["marginal"]["shape"] == "numeric"]
    assert grids
    for grid in grids:  # continuous knots, plus two points (start and end of the step) per point mass
        assert len(grid["x_points"]) <= marginals.MAX_KNOTS + 2 + 2 * len(grid["atoms"])


def test_describe_holds_no_value_of_a_column(lending_engine):
    described = lending_engine.describe()
    numeric_keys = {key for entry in described.values() for key, value in entry.items()
                    if isinstance(value, (int, float)) and not isinstance(value, bool)}
    assert numeric_keys <= {"null_rate", "fit_statistic", "p_value", "point_masses", "categories", "pooled_values"}


def income_from_two_models(real, column, seeds, **engine_options):
    return np.array([differencing_error(real, column, lambda frame, seed=seed: GaussianCopulaEngine(**engine_options)
                                        .fit(frame, seed=seed).to_dict())["relative_error"] for seed in seeds])


@pytest.mark.parametrize("table, column", [
    ("credit_data", "Income"),
    pytest.param("lending", "annual_income", marks=pytest.mark.slow),  # 40 fits of 3,000 x 55: ~40 s of CPU
])
def test_two_models_one_borrower_apart_do_not_give_the_top_earners_income(table, column, request):
    real = request.getfixturevalue(table)
    # The attack reads only the column's own numbers (spec, marginal, rule formats), which the tail-dependence
    # fit leaves alone: without it (a third of the fit's time) a model stores the very same numbers for the column.
    with_tails = request.getfixturevalue(f"{table}_engine").to_dict()
    without_tails = GaussianCopulaEngine(preserve_tails=False).fit(real).to_dict()
    assert np.array_equal(stored_numbers(with_tails, column), stored_numbers(without_tails, column))
    errors = income_from_two_models(real, column, range(20), preserve_tails=False)
    assert np.median(errors) > 0.2
    assert (errors < 0.02).mean() <= 0.1


def test_without_the_noise_the_same_attack_reads_the_income_exactly(credit_data, monkeypatch):
    """The attack is sound: with the knots' noise switched off it recovers the top earner's income."""
    monkeypatch.setattr(marginals, "END_KNOT_NOISE", 0.0)
    assert income_from_two_models(credit_data, "Income", [0]).max() < 1e-9


def test_the_noise_repeats_for_the_same_seed_and_rows_and_follows_the_secret_key(credit_data, credit_data_engine,
                                                                                monkeypatch):
    first = credit_data_engine.to_dict()  # seed 0
    assert GaussianCopulaEngine().fit(credit_data, seed=0).to_dict() == first
    assert GaussianCopulaEngine().fit(credit_data, seed=5).to_dict() != first
    monkeypatch.setenv("TWIN_NOISE_KEY", "a secret")
    assert GaussianCopulaEngine().fit(credit_data, seed=0).to_dict() != first


def test_a_differentially_private_fit_gives_a_valid_twin_and_records_its_budget(lending, tmp_path):
    engine = GaussianCopulaEngine(epsilon=1.0).fit(lending, seed=2)
    twin = engine.sample(2000, seed=1)
    assert list(twin.columns) == list(lending.columns) and len(twin) == 2000
    for name in lending.columns:
        if pd.api.types.is_numeric_dtype(lending[name]):
            assert pd.api.types.is_numeric_dtype(twin[name]), name
        assert twin[name].notna().any() or lending[name].isna().all(), name
    assert twin["annual_income_joint"].isna().mean() == pytest.approx(lending["annual_income_joint"].isna().mean(), abs=0.1)
    privacy = GaussianCopulaEngine.load(engine.save(tmp_path / "model.json")).privacy
    assert privacy["mechanism"] == "differential privacy" and privacy["epsilon"] == 1.0 and privacy["delta"] == 1e-6
    assert math.isclose(sum(privacy["split"].values()), 1.0) and privacy["rho"] > 0
    parts = privacy["parts_rho"]  # every query's rho adds up to the total, which converts back to epsilon
    assert math.isclose(parts["rows"] + parts["correlation"] + sum(parts["columns"].values()), privacy["rho"], rel_tol=1e-6)
    assert set(parts["columns"]) == {spec.name for spec in engine.specs if spec.kind not in ("constant", "duplicate", "identifier")}
    rho = privacy["rho"]
    assert math.isclose(rho + 2 * math.sqrt(rho * math.log(2 / privacy["delta"])), 1.0, rel_tol=1e-6)
    assert np.allclose(np.diag(engine.correlation), 1.0) and np.linalg.eigvalsh(engine.correlation).min() > 0


def test_a_value_seen_once_never_reaches_a_private_model():
    real = narrow_table(seed=1, n=3000)
    real.loc[0, "region"] = "Atlantis"
    for seed in range(5):
        engine = GaussianCopulaEngine(epsilon=1.0).fit(real, seed=seed)
        assert "Atlantis" not in engine.marginals[engine.variables.index(("region", "value"))].values


def test_quality_rises_with_the_privacy_budget():
    from twin_pipeline.quality import quality_report

    real = narrow_table(seed=2, n=6000)
    scores = [np.mean([quality_report(real, GaussianCopulaEngine(epsilon=epsilon).fit(real, seed=seed).sample(6000, seed=1))
                       ["similarity_score"] for seed in range(3)]) for epsilon in (0.05, 10.0)]
    assert scores[1] > scores[0] + 2 and scores[1] > 95


@pytest.mark.parametrize("epsilon", [0, -1.0, float("nan"), float("inf")])
def test_epsilon_must_be_a_positive_number(epsilon):
    with pytest.raises(ValueError, match="epsilon must be a positive number"):
        GaussianCopulaEngine(epsilon=epsilon)
    with pytest.raises(TwinInputError, match="epsilon must be a positive number"):
        validate_options(CloneOptions(epsilon=epsilon))


def test_the_command_line_refuses_a_bad_epsilon(tmp_path, capsys):
    from twin_pipeline.cli import main

    source = tmp_path / "loans.csv"
    narrow_table(n=200).to_csv(source, index=False)
    assert main(["clone", str(source), "--out", str(tmp_path / "out"), "--epsilon", "0"]) == 2
    assert "epsilon" in capsys.readouterr().err


def test_the_upload_schema_stored_beside_the_twin_holds_no_extreme_value_and_the_twin_meets_it(credit_data,
                                                                                                 credit_data_engine):
    from twin_pipeline.defs.schemas import conform, infer_twin_schema, schema_to_dict

    schema = schema_to_dict(infer_twin_schema(credit_data, k=5))
    for name, column in schema["columns"].items():
        if pd.api.types.is_numeric_dtype(credit_data[name]):
            bounds = column["in_range"]
            low = bounds["min_value"]  # 0 for a non-negative column: it says no more than "non-negative"
            assert (low == 0 <= credit_data[name].min() or low < credit_data[name].min()) \
                and bounds["max_value"] > credit_data[name].max(), name
    conform(credit_data_engine.sample(5000, seed=1), infer_twin_schema(credit_data, k=5), "twin")
