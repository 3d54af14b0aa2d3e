"""One outcome column per table, the same for TSTR (what the models predict) and for the attacker audit (what it
tries to infer), found without --target on every table shape."""

import pandas as pd
import pytest
from shapes import lending_table, mixed_table, narrow_table, overdraft_table

from twin_pipeline.errors import TwinInputError
from twin_pipeline.outcome import outcome_column
from twin_pipeline.privacy import default_secrets, detect_quasi_identifiers
from twin_pipeline.quality.utility import choose_target


@pytest.mark.parametrize("table, outcome", [
    ("credit_data", "Status"), ("credit_card", "card"), (lambda: overdraft_table(0), "overdrawn"),
    (lambda: narrow_table(0, 2_000), "default"), (lambda: lending_table(0, 2_000), "loan_status"),
    (lambda: mixed_table(0, 3_000), "defaulted"),
])
def test_the_outcome_is_found_on_every_table_and_tstr_and_the_audit_agree(table, outcome, request):
    real = request.getfixturevalue(table) if isinstance(table, str) else table()
    assert outcome_column(real)[0] == outcome
    assert choose_target(real)[0] == outcome  # TSTR, without --target
    secrets = default_secrets(real, [q for q in detect_quasi_identifiers(real) if q != outcome])
    assert secrets[0] == outcome  # the audit's first secret


def test_names_rank_by_specificity_and_a_word_must_be_a_word():
    frame = pd.DataFrame({"majorcards": [0, 1] * 5, "card": ["yes", "no"] * 5, "bad_flag": [0, 1] * 5,
                          "loan_status": ["a", "b"] * 5, "region": ["n", "s"] * 5, "age": range(10)})
    assert outcome_column(frame)[0] == "loan_status"
    assert outcome_column(frame.drop(columns="loan_status"))[0] == "bad_flag"
    assert outcome_column(frame[["majorcards", "card"]])[0] == "card"  # "majorcards" counts cards, it is no outcome
    assert outcome_column(frame, exclude=["loan_status", "bad_flag"])[0] == "card"
    assert outcome_column(frame[["region", "age"]])[0] is None
    many = pd.DataFrame({"status": [str(i) for i in range(30)]})  # 30 values: an identifier, not a class
    assert outcome_column(many)[0] is None


def test_a_good_bad_class_is_the_outcome_before_any_status():
    """The German credit data: its outcome is "class" (good / bad); "checking_status" is an account's balance band."""
    frame = pd.DataFrame({"checking_status": ["<0", "0<=X<200", "no checking"] * 4, "personal_status": ["a", "b"] * 6,
                          "class": ["good", "Bad ", "good", "good"] * 3})
    assert outcome_column(frame) == ("class", "its values are good / bad")
    assert choose_target(frame)[0] == "class"
    assert outcome_column(frame.drop(columns="class"))[0] == "checking_status"  # names still decide without it


def test_a_given_target_wins_and_a_missing_one_is_a_clear_error():
    frame = pd.DataFrame({"loan_status": ["a", "b"] * 5, "region": ["n", "s"] * 5})
    assert choose_target(frame, target="region") == ("region", "given")
    with pytest.raises(TwinInputError, match="--target.*'income' is not in the real data"):
        choose_target(frame, target="income")


def test_a_write_off_flag_and_a_german_default_are_outcomes():
    """A collections table's written_off and a German export's ausfall had no TSTR and no inferred secret."""
    frame = pd.DataFrame({"arrears_amount": [float(i) for i in range(30)], "written_off": [0, 1] * 15,
                          "collector": ["a", "b", "c"] * 10})
    assert outcome_column(frame)[0] == "written_off"
    assert outcome_column(pd.DataFrame({"ausfall": ["ja", "nein"] * 5, "stadt": ["K", "M"] * 5}))[0] == "ausfall"


def test_a_card_extracts_chargeback_is_the_outcome():
    """A card-transactions extract's 0.3 % chargebacks had no TSTR and no inferred secret."""
    frame = pd.DataFrame({"mcc": [5411, 5812, 7995] * 10, "amount_cents": range(30), "Charge-Back": [0, 0, 1] * 10})
    assert outcome_column(frame)[0] == "Charge-Back"


def test_a_good_bad_column_is_found_whatever_its_first_row():
    """The first row rules most text columns out; a good / bad class whose first row is blank, or spelled
    " Good", is still found, and a column whose first row is good but others are not is not."""
    rows = ["good", "bad", "Bad ", "good"] * 10
    for first in (None, float("nan"), " Good"):
        table = pd.DataFrame({"city": ["Oslo"] * 41, "class": [first] + rows})
        assert outcome_column(table)[0] == "class"
    assert outcome_column(pd.DataFrame({"class": ["good"] + rows[1:] + ["ugly"]}))[0] is None
