"""No verbatim rare value anywhere: a value on fewer than k rows is neither stored in the model nor written into
the twin, and the upload's contract holds bounds that are not the exact real extremes."""

import json

import numpy as np
import pandas as pd
from shapes import narrow_table, overdraft_table

from twin_pipeline.defs.schemas import infer_twin_schema, schema_to_dict
from twin_pipeline.engine import GaussianCopulaEngine

SECRET_NOTE = "SSN 078-05-1120 John Q Doe"
BONUS = 31337.77


def with_rare_values(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["note"] = None
    frame.loc[frame.index[3], "note"] = SECRET_NOTE  # the only non-null value of its column
    frame["bonus"] = np.nan
    frame.loc[frame.index[[5, 9]], "bonus"] = BONUS  # a number seen twice, fewer than k = 5 times
    return frame


def test_a_single_value_column_seen_fewer_than_k_times_is_not_in_the_model_or_the_twin(tmp_path):
    for real in (with_rare_values(overdraft_table()), with_rare_values(narrow_table(n=2000))):
        engine = GaussianCopulaEngine(k=5).fit(real)
        engine.save(tmp_path / "model.json")
        model_text = (tmp_path / "model.json").read_text()
        assert SECRET_NOTE not in model_text and "31337" not in model_text
        twin = engine.sample(5000, seed=1)
        assert not twin["note"].isin([SECRET_NOTE]).any() and not twin["bonus"].isin([BONUS]).any()
        assert list(twin.columns) == list(real.columns)


def test_a_single_value_seen_at_least_k_times_is_still_a_constant():
    real = overdraft_table().assign(country="NL")
    assert set(GaussianCopulaEngine(k=5).fit(real).sample(100, seed=1)["country"]) == {"NL"}


def test_the_upload_contract_holds_outward_rounded_bounds_not_the_exact_extremes():
    real = with_rare_values(narrow_table(n=2000)).assign(income=lambda f: np.linspace(1234.56, 98765.43, len(f)))
    contract = json.dumps(schema_to_dict(infer_twin_schema(real, k=5)))
    assert "98765.43" not in contract and "1234.56" not in contract and "31337" not in contract
    bounds = json.loads(contract)["columns"]["income"]["in_range"]
    assert (bounds["min_value"], bounds["max_value"]) == (0, 99000.0)  # non-negative; two significant digits, outward
    assert "bonus" in json.loads(contract)["columns"] and "in_range" not in json.loads(contract)["columns"]["bonus"]


def test_date_bounds_are_whole_months_so_a_whole_day_extreme_cannot_be_read_back():
    """A bound one day beyond a date column's first and last day would name both days exactly."""
    from twin_pipeline.bounds import outward_bounds

    dates = pd.Series(pd.to_datetime(["2019-03-17", "2020-06-01", "2021-11-29"]))
    assert outward_bounds(dates) == (pd.Timestamp("2019-03-01"), pd.Timestamp("2021-12-01"))
    exact = pd.Series(pd.to_datetime(["2019-03-01", "2021-12-01"]))  # extremes on month starts: one month out
    assert outward_bounds(exact) == (pd.Timestamp("2019-02-01"), pd.Timestamp("2022-01-01"))
    stamps = pd.Series(pd.to_datetime(["2019-03-17 08:30", "2021-11-29 23:59"], utc=True))
    low, high = outward_bounds(stamps)
    assert (low, high) == (pd.Timestamp("2019-03-01", tz="UTC"), pd.Timestamp("2021-12-01", tz="UTC"))
