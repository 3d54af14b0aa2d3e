"""Quasi-identifier detection by column name and kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin_pipeline.privacy import detect_quasi_identifiers

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def test_public_samples():
    assert detect_quasi_identifiers(pd.read_csv(SAMPLES / "credit_card.csv")) == [
        "age", "income", "owner", "selfemp", "dependents"]
    assert detect_quasi_identifiers(pd.read_csv(SAMPLES / "credit_data.csv")) == [
        "Seniority", "Home", "Age", "Marital", "Job", "Income"]


@pytest.mark.parametrize("name", [
    "annual_inc", "emp_length", "emp_title", "home_ownership", "addr_state", "zip_code", "postcode",
    "DAYS_BIRTH", "dateOfBirth", "CODE_GENDER", "NAME_FAMILY_STATUS", "CNT_CHILDREN", "MonthlyIncome",
    "NumberOfDependents", "personal_status_sex", "Race", "ethnicity", "occupation", "employer", "region",
    "marital_status", "YearsEmployed", "education_level",
])
def test_names_of_quasi_identifiers(name):
    df = pd.DataFrame({name: ["a", "b", "c"] * 10})
    assert detect_quasi_identifiers(df) == [name]


@pytest.mark.parametrize("name", [
    "customer_id", "id", "mortgage", "loan_amnt", "int_rate", "Time", "Records", "Status", "purpose",
    "usage", "employer_id",
])
def test_names_that_are_not_quasi_identifiers(name):
    df = pd.DataFrame({name: ["a", "b", "c"] * 10})
    assert detect_quasi_identifiers(df) == []


def test_never_the_primary_key_identifiers_or_constants():
    n = 50
    df = pd.DataFrame({
        "age": np.arange(20, 20 + n),  # unique, sorted integers named like a QI: still a key
        "income": np.linspace(1000, 5000, n),
        "region": ["north"] * n,  # constant: cannot single anyone out
        "job": ["a", "b"] * (n // 2),
    })
    assert detect_quasi_identifiers(df) == ["income", "job"]
    assert detect_quasi_identifiers(df.assign(age=np.random.default_rng(0).integers(20, 70, n))) == [
        "age", "income", "job"]
    assert detect_quasi_identifiers(df, primary_key="income") == ["job"]
    assert detect_quasi_identifiers(df, column_kinds={"job": "identifier"}) == ["income"]
