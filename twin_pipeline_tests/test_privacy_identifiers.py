"""Direct identifiers: found by name and by value pattern, replaced by fresh values of the same format (never a
real one) or dropped with --drop-identifiers, and said so in the privacy report; `--rows N` gives N rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from shapes import overdraft_table

from twin_pipeline import pipeline
from twin_pipeline.cli import main
from twin_pipeline.engine.keys import fresh_values, luhn_valid
from twin_pipeline.options import CloneOptions
from twin_pipeline.privacy.identifiers import detect_direct_identifiers, identifier_format

FIRST = ["John", "Mary", "Li", "Ana", "Sven", "Olu", "Priya", "Tom", "Ines", "Karl", "Mei", "Omar"]
LAST = ["Smith", "Jones", "Wang", "Silva", "Berg", "Adeyemi", "Kim", "Roe", "Novak", "Fox", "Haddad", "Costa"]


def customers(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    table = overdraft_table(seed, n)
    table.insert(0, "ssn", [f"{a:03d}-{b:02d}-{c:04d}" for a, b, c in
                            zip(rng.integers(100, 899, n), rng.integers(10, 99, n), rng.integers(1000, 9999, n))])
    table["contact"] = [f"{f.lower()}.{l.lower()}{i}@{d}" for i, (f, l, d) in enumerate(
        zip(rng.choice(FIRST, n), rng.choice(LAST, n), rng.choice(["gmail.com", "yahoo.com", "bank.example"], n)))]
    table["phone"] = [f"+44 20 {a:04d} {b:04d}" for a, b in zip(rng.integers(0, 9999, n), rng.integers(0, 9999, n))]
    table["customer_name"] = [f"{f} {m}. {l}" for f, m, l in zip(rng.choice(FIRST, n), rng.choice(list("ABCDEFGHJKLMN"), n),
                                                                 rng.choice(LAST, n))]
    table["card_no"] = [_card(rng) for _ in range(n)]
    table["telephone"] = rng.choice(["yes", "no"], n)  # a flag named like an identifier
    return table


def _card(rng) -> str:
    digits = [4] + list(rng.integers(0, 10, 14))
    total = sum(d if i % 2 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))
    return "".join(map(str, digits + [(10 - total % 10) % 10]))


def test_detected_by_name_and_by_value_but_not_a_flag_or_a_category():
    found = detect_direct_identifiers(customers())
    assert {name: entry["kind"] for name, entry in found.items()} == {
        "ssn": "social security number", "contact": "e-mail", "phone": "phone number",
        "customer_name": "full name", "card_no": "card number"}
    assert "pattern" in found["contact"]["why"] and "name" not in found["contact"]["why"]  # found by its values


def test_fresh_values_keep_the_format_and_are_never_real():
    real = customers()
    rng = np.random.default_rng(1)
    for column, entry in detect_direct_identifiers(real).items():
        fmt = identifier_format(real[column], entry["kind"])
        fresh = pd.Series(fresh_values(fmt, 2_000, rng))
        assert not fresh.isin(set(real[column])).any(), column
        if column == "ssn":
            assert fresh.str.fullmatch(r"\d{3}-\d{2}-\d{4}").all()
        if column == "contact":
            assert fresh.str.fullmatch(r"[^@]+@(gmail\.com|yahoo\.com|bank\.example)").all()
        if column == "card_no":
            assert fresh.str.fullmatch(r"\d{16}").all() and luhn_valid(fresh).all()
        if column == "phone":
            assert fresh.str.fullmatch(r"\+\d\d \d\d \d{4} \d{4}").all()


@pytest.mark.parametrize("drop", [False, True])
def test_clone_replaces_or_drops_identifiers_and_gives_the_rows_asked_for(tmp_path, drop, monkeypatch):
    # The attacker audit is tested elsewhere; anonymeter's singling-out search is slow on four discrete columns.
    monkeypatch.setattr(pipeline, "privacy_audit", lambda real, options: {"skipped": "not under test"})
    real = customers(seed=2)
    source = tmp_path / "customers.csv"
    real.to_csv(source, index=False)
    out = tmp_path / "out"
    arguments = ["clone", str(source), "--out", str(out), "--rows", "1234", "--seed", "3",
                 "--quasi-identifiers", "age,sex,days", "--max-suppression", "0.05"]
    assert main(arguments + (["--drop-identifiers"] if drop else [])) == 0
    twin = pd.read_csv(out / "synthetic.csv", dtype=str)
    privacy = json.loads((out / "privacy_report.json").read_text())
    assert len(twin) == 1234 and privacy["rows"] == 1234
    identifiers = ["ssn", "contact", "phone", "customer_name", "card_no"]
    assert set(privacy["direct_identifiers"]) == set(identifiers)
    if drop:
        assert not set(identifiers) & set(twin.columns)
        assert all(entry["action"].startswith("dropped") for entry in privacy["direct_identifiers"].values())
    else:
        assert list(twin.columns) == list(real.columns)
        for column in identifiers:
            assert not twin[column].isin(set(real[column].astype(str))).any(), column
        assert twin["ssn"].str.fullmatch(r"\d{3}-\d{2}-\d{4}").all()
        assert "fresh values of the same format" in privacy["direct_identifiers"]["ssn"]["action"]
    assert privacy["k"] >= 5 and privacy["rare_record_copies"] == 0


def test_the_pipeline_scans_a_table_for_identifiers_once_and_a_new_table_afresh(monkeypatch):
    import twin_pipeline.privacy.identifiers as identifiers

    scans = []
    monkeypatch.setattr(identifiers, "detect_direct_identifiers",
                        lambda df, **kw: scans.append(df.shape) or detect_direct_identifiers(df, **kw))
    table, options = customers(200), CloneOptions()
    first = pipeline.direct_identifiers(table, options)
    assert set(first) == {"ssn", "contact", "phone", "customer_name", "card_no"}
    first.clear()  # a caller's copy: the kept answer is not changed by it
    assert set(pipeline.direct_identifiers(table, options)) == {"ssn", "contact", "phone", "customer_name", "card_no"}
    assert pipeline.key_columns(table, options)[:1] == ["ssn"] and len(scans) == 1
    assert set(pipeline.direct_identifiers(table.drop(columns=["ssn"]), options)) == {
        "contact", "phone", "customer_name", "card_no"} and len(scans) == 2
    kinds = CloneOptions(column_kinds={"phone": "text"})  # the user's kind wins: another answer
    assert "phone" not in pipeline.direct_identifiers(table, kinds) and len(scans) == 3


def test_long_account_numbers_and_a_repeating_customer_number_are_replaced_never_copied():
    """A 22-character IBAN (20 digits: past int64) crashed the fit; a customer number repeated over a customer's
    loans was a category, written "Other" on every row, and a customer with 5 loans kept their real number."""
    rng = np.random.default_rng(1)
    table = overdraft_table(1, 1200)
    customers = np.concatenate([np.repeat(rng.integers(10**6, 10**7, 20), 6), rng.integers(10**6, 10**7, 1080)])
    table.insert(0, "customer_id", [f"C{c}" for c in rng.permutation(customers)])
    table.insert(1, "iban", [f"DE{rng.integers(10, 99)}{rng.integers(10**8, 10**9)}{rng.integers(10**8, 10**9)}"
                             for _ in range(len(table))])
    options = CloneOptions()
    engine = pipeline.fit_model(table, options)
    twin = pipeline.protect(engine.sample(3000, seed=1), table, engine, options)[0]
    for column in ("customer_id", "iban"):
        assert not set(twin[column]) & set(table[column]), column
    assert twin["customer_id"].str.fullmatch(r"C\d{7,}").all()
    assert twin["iban"].str.len().eq(22).all()


def test_national_ids_are_direct_identifiers_by_name():
    """A Spanish DNI ("12345678Z") matches no value pattern and has no key name: a customer with five loans had
    their real DNI written into the twin."""
    rng = np.random.default_rng(2)
    table = overdraft_table(2, 1000)
    people = [f"{rng.integers(10**7, 10**8)}{rng.choice(list('TRWAGMYFPDXBNJZSQVHLCKE'))}" for _ in range(700)]
    table["dni"] = rng.permutation(people * 2)[:1000]
    table.loc[:5, "dni"] = people[0]  # one customer, six loans
    assert detect_direct_identifiers(table)["dni"]["kind"] == "national id"
    digits = pd.DataFrame({"national_id": [f"{n:011d}" for n in rng.integers(10**10, 10**11, 300)],
                           "account_number": rng.integers(10**9, 10**10, 300).astype(str)})  # 11 and 10 digits
    assert {name: entry["kind"] for name, entry in detect_direct_identifiers(digits).items()} == {
        "national_id": "national id", "account_number": "account number"}  # not "phone number"
    options = CloneOptions()
    engine = pipeline.fit_model(table, options)
    twin = pipeline.protect(engine.sample(2000, seed=1), table, engine, options)[0]
    assert not set(twin["dni"]) & set(table["dni"]) and twin["dni"].str.fullmatch(r"\d{8}[A-Z]").all()


def _iban(rng) -> str:
    body = "".join(map(str, rng.integers(0, 10, 18)))  # bank code + account number
    check = 98 - int(body + "131400") % 97  # "DE00" moved to the end, D = 13, E = 14
    return f"DE{check:02d}{body}"


def test_fresh_ibans_and_phones_keep_what_every_real_one_shares_and_pass_the_check():
    """A German book's IBANs all start "DE" and its phones "+49": fresh values keep them (drawn at random they
    read "NY26..."), and IBANs pass the mod-97 check a bank system applies on load. Never a real value."""
    from twin_pipeline.engine.keys import iban_valid

    rng = np.random.default_rng(0)
    real = pd.DataFrame({"iban": [_iban(rng) for _ in range(500)],
                         "phone": [f"+49 1{a:02d} {b:07d}" for a, b in zip(rng.integers(50, 80, 500),
                                                                            rng.integers(0, 9_999_999, 500))]})
    assert iban_valid(real["iban"]).all()
    found = detect_direct_identifiers(real)
    assert found["iban"]["kind"] == "account number"
    for column in ("iban", "phone"):
        fresh = pd.Series(fresh_values(identifier_format(real[column], found[column]["kind"]), 2_000, rng))
        assert not fresh.isin(set(real[column])).any()
        assert fresh.nunique() > 1_900  # still drawn, not copied: only the shared characters are fixed
        if column == "iban":
            assert fresh.str.fullmatch(r"DE\d{20}").all() and iban_valid(fresh).all()
        else:
            assert fresh.str.fullmatch(r"\+49 1\d\d \d{7}").all()


def test_masked_card_numbers_repeating_over_transactions_are_replaced_never_copied():
    """A card extract's masked numbers ("482933******5348", each card on several transactions) matched no pattern
    and were a category: 2,374 real masked cards written into a card extract's twin, each the bank's key to a
    cardholder."""
    rng = np.random.default_rng(3)
    cards = [f"4{rng.integers(10**4, 10**5)}******{rng.integers(1000, 9999)}" for _ in range(300)]
    table = overdraft_table(3, 2000)
    table["card_masked"] = rng.choice(cards, len(table))  # about 7 transactions per card
    assert detect_direct_identifiers(table)["card_masked"]["kind"] == "masked card number"
    options = CloneOptions()
    engine = pipeline.fit_model(table, options)
    twin = pipeline.protect(engine.sample(4000, seed=1), table, engine, options)[0]
    assert not set(twin["card_masked"]) & set(table["card_masked"])
    assert twin["card_masked"].str.fullmatch(r"4\d{5}\*{6}\d{4}").all()


def test_large_amounts_in_cents_are_not_phone_numbers():
    """Exposures in cents have 9 to 13 digits, as phone numbers do: a corporate book's amounts were labelled
    phone numbers and replaced by random digits. A phone stored as a number (one length, no sign) still is one."""
    rng = np.random.default_rng(5)
    table = pd.DataFrame({"exposure_cents": np.round(rng.lognormal(21, 1.5, 800)).astype(np.int64),
                          "net_change_cents": rng.integers(-10**12, 10**12, 800),
                          "contact": 4915100000000 + rng.integers(0, 10**8, 800)})
    assert (table["exposure_cents"].astype(str).str.len() >= 9).mean() > 0.9
    assert {name: entry["kind"] for name, entry in detect_direct_identifiers(table).items()} == {
        "contact": "phone number"}
