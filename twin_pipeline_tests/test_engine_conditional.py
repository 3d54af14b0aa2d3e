"""Stress sampling: conditioned rows meet their conditions and keep the conditional relations of the real table."""

import numpy as np
import pytest

from twin_pipeline import DigitalTwinCloner, GaussianCopulaEngine
from twin_pipeline.tables import TwinInputError


@pytest.fixture(scope="module")
def engine(credit_data):
    return GaussianCopulaEngine().fit(credit_data)


def test_category_condition_keeps_conditional_means(credit_data, engine):
    twin = engine.sample(40_000, seed=1, conditions={"Status": "bad"})
    real = credit_data[credit_data["Status"] == "bad"]
    assert (twin["Status"] == "bad").all()
    assert abs((twin["Records"] == "yes").mean() - (real["Records"] == "yes").mean()) < 0.05
    for column in ("Seniority", "Age", "Income"):
        assert abs(twin[column].mean() - real[column].mean()) < 0.1 * real[column].std(), column


def test_rare_condition_needs_no_rejection(engine):
    twin = engine.sample(100_000, seed=2, conditions={"Home": "ignore"})  # 0.45 % of the real rows
    assert len(twin) == 100_000 and (twin["Home"] == "ignore").all()


def test_numeric_range_and_combined_conditions(credit_data, engine):
    low_income = credit_data["Income"].quantile(0.1)
    twin = engine.sample(20_000, seed=3, conditions={"Income": (None, low_income)})
    assert twin["Income"].notna().all() and twin["Income"].max() <= low_income
    real_bad = (credit_data.loc[credit_data["Income"] <= low_income, "Status"] == "bad").mean()
    assert abs((twin["Status"] == "bad").mean() - real_bad) < 0.08
    both = engine.sample(5_000, seed=4, conditions={"Income": (100, 200), "Status": "bad"})
    assert both["Income"].between(100, 200).all() and (both["Status"] == "bad").all()


def test_scenario_with_twenty_percent_defaults(engine):
    twin = engine.sample_scenario(10_000, "Status", {"bad": 0.2}, seed=5)
    assert len(twin) == 10_000 and abs((twin["Status"] == "bad").mean() - 0.2) < 0.001


def test_bad_conditions_are_clear(engine):
    with pytest.raises(TwinInputError, match="not among the modelled values"):
        engine.sample(10, conditions={"Status": "unknown"})
    with pytest.raises(TwinInputError, match="range"):
        engine.sample(10, conditions={"Income": 5})
    with pytest.raises(TwinInputError, match="not modelled"):
        engine.sample(10, conditions={"nope": 1})


def test_cloner_trains_saves_and_generates_by_id(credit_data, tmp_path):
    cloner = DigitalTwinCloner(tmp_path)
    model_id, metadata = cloner.train(credit_data)
    assert metadata["n_rows"] == len(credit_data) and metadata["columns"] == list(credit_data.columns)
    assert metadata["column_kinds"]["Status"] == "categorical" and metadata["column_kinds"]["Records"] == "boolean" and "Income" in metadata["families"]
    assert model_id in cloner.list_models()
    twin = DigitalTwinCloner(tmp_path).generate(model_id, 1000, seed=1, conditions={"Status": "bad"})
    assert len(twin) == 1000 and (twin["Status"] == "bad").all()
    assert np.isfinite(twin["Age"]).all()
