"""Related tables: every foreign key points at a synthetic parent; child counts and parent-child relations kept."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from twin_pipeline import DigitalTwinCloner
from twin_pipeline.engine.multitable import MultiTableEngine
from twin_pipeline.tables import TwinInputError


@pytest.fixture(scope="module")
def bank():
    rng = np.random.default_rng(3)
    n = 2000
    income = np.round(rng.lognormal(10.5, 0.5, n), 2)
    borrowers = pd.DataFrame({"borrower_id": np.arange(1, n + 1), "income": income,
                              "region": rng.choice(["north", "south", "east", "west"], n),
                              "age": rng.integers(21, 70, n)})
    loans_per = rng.poisson(np.clip((income / income.mean()) * 1.5, 0.1, None))
    owner = np.repeat(borrowers["borrower_id"].to_numpy(), loans_per)
    owner_income = np.repeat(income, loans_per)
    loans = pd.DataFrame({"loan_id": np.arange(1, len(owner) + 1), "borrower_id": owner,
                          "amount": np.round(owner_income * rng.uniform(0.1, 0.4, len(owner)), -2),
                          "status": np.where(rng.random(len(owner)) < 0.1, "default", "current")})
    return {"borrowers": borrowers, "loans": loans}


RELATION = [("loans", "borrower_id", "borrowers", "borrower_id")]


@pytest.fixture(scope="module")
def twin(bank):
    return MultiTableEngine().fit(bank, RELATION, primary_keys={"loans": "loan_id"}).sample(seed=1)


def test_every_foreign_key_references_a_synthetic_parent(bank, twin):
    assert twin["loans"]["borrower_id"].isin(twin["borrowers"]["borrower_id"]).all()
    assert not set(twin["borrowers"]["borrower_id"]) & set(bank["borrowers"]["borrower_id"])
    assert list(twin["loans"].columns) == list(bank["loans"].columns)


def test_children_per_parent_distribution(bank, twin):
    def per_parent(tables):
        counts = tables["loans"]["borrower_id"].value_counts()
        return counts.reindex(tables["borrowers"]["borrower_id"], fill_value=0).to_numpy()
    assert stats.ks_2samp(per_parent(bank), per_parent(twin)).statistic <= 0.05


def test_parent_child_correlation_kept(bank, twin):
    def income_vs_amount(tables):
        joined = tables["loans"].merge(tables["borrowers"], on="borrower_id")
        return np.corrcoef(joined["income"], joined["amount"])[0, 1]
    assert abs(income_vs_amount(bank) - income_vs_amount(twin)) < 0.08


def test_orphans_and_unknown_columns_are_clear_errors(bank):
    broken = {"borrowers": bank["borrowers"].iloc[10:], "loans": bank["loans"]}
    with pytest.raises(TwinInputError, match="matches no borrowers.borrower_id"):
        MultiTableEngine().fit(broken, RELATION)
    with pytest.raises(TwinInputError, match="does not have"):
        MultiTableEngine().fit(bank, [("loans", "customer", "borrowers", "borrower_id")])


def test_cloner_round_trip(bank, tmp_path):
    cloner = DigitalTwinCloner(tmp_path)
    model_id, metadata = cloner.train_tables(bank, RELATION)
    assert metadata["tables"] == ["borrowers", "loans"]
    tables = cloner.generate_tables(model_id, scale=2, seed=4)
    assert len(tables["borrowers"]) == 2 * len(bank["borrowers"])
    assert tables["loans"]["borrower_id"].isin(tables["borrowers"]["borrower_id"]).all()
