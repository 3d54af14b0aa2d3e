"""Quasi-identifier detection by column name and kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin_pipeline.privacy import choose_quasi_identifiers, detect_quasi_identifiers
from twin_pipeline.paths import SAMPLES


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
    # a European bank's export: German, French and Spanish headers, umlauts one word
    "Geburtsdatum", "Ort", "PLZ", "Geschlecht", "Familienstand", "Staatsangehörigkeit", "Nettoeinkommen",
    "date_de_naissance", "code_postal", "fecha_nacimiento", "ingresos", "sexo",
])
def test_names_of_quasi_identifiers(name):
    df = pd.DataFrame({name: ["a", "b", "c"] * 10})
    assert detect_quasi_identifiers(df) == [name]


@pytest.mark.parametrize("name", [
    "customer_id", "id", "mortgage", "loan_amnt", "int_rate", "Time", "Records", "Status", "purpose",
    "usage", "employer_id", "Kreditbetrag", "Zinssatz", "Laufzeit_Monate", "Vertragsdatum", "Größe_Betrieb",
])
def test_names_that_are_not_quasi_identifiers(name):
    df = pd.DataFrame({name: ["a", "b", "c"] * 10})
    assert detect_quasi_identifiers(df) == []


def test_never_the_primary_key_identifiers_or_constants():
    n = 50
    df = pd.DataFrame({
        "household_no": np.arange(1000, 1000 + n),  # unique whole numbers under a key's name: a key (keys.is_key)
        "income": np.linspace(1000, 5000, n),
        "region": ["north"] * n,  # constant: cannot single anyone out
        "job": ["a", "b"] * (n // 2),
    })
    assert detect_quasi_identifiers(df) == ["income", "job"]
    assert detect_quasi_identifiers(df.assign(household_no=np.random.default_rng(0).integers(1, 6, n))) == [
        "household_no", "income", "job"]
    # Every age different is no key (the engine models it as data): it singles everyone out, so it is protected.
    assert detect_quasi_identifiers(df.assign(age=np.arange(20, 20 + n))) == ["income", "job", "age"]
    assert detect_quasi_identifiers(df, primary_key="income") == ["job"]
    assert detect_quasi_identifiers(df, column_kinds={"job": "identifier"}) == ["income"]


def test_no_ratio_joint_or_verification_column_and_one_income_on_a_wide_table():
    from shapes import lending_table

    choice = choose_quasi_identifiers(lending_table(n=300))
    assert list(choice["chosen"]) == ["emp_title", "emp_length", "state", "homeownership", "annual_income"]
    for column in ("debt_to_income", "debt_to_income_joint", "annual_income_joint", "verified_income",
                   "verification_income_joint"):
        assert column not in choice["chosen"] and "not a quasi-identifier by default" in choice["not_chosen"][column]
    assert "--quasi-identifiers" in choice["override"]
    assert all("names" in why for why in choice["chosen"].values())


def test_at_most_six_and_one_per_kind():
    names = ["age", "gender", "zip", "state", "marital_status", "race", "occupation", "salary", "monthly_income",
             "education", "dependents", "home_ownership"]
    df = pd.DataFrame({name: ["a", "b", "c"] * 10 for name in names})
    choice = choose_quasi_identifiers(df)
    assert list(choice["chosen"]) == ["age", "gender", "zip", "marital_status", "race", "occupation"]
    assert "one per kind" in choice["not_chosen"]["state"]
    assert "6 more identifying" in choice["not_chosen"]["salary"]
    two_incomes = choose_quasi_identifiers(pd.DataFrame({"salary": [1, 2, 3] * 10, "monthly_income": [4, 5, 6] * 10}))
    assert list(two_incomes["chosen"]) == ["salary"]
    assert "one per kind" in two_incomes["not_chosen"]["monthly_income"]
