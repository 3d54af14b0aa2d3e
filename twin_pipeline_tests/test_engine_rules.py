"""Business rules and value formats a credit analyst checks: each rule family is found on a small constructed
table and kept (by construction) in a 100,000-row twin; near-rules are reported, not enforced; declared rules
are checked against the data; rounding steps round-trip."""

import json

import numpy as np
import pandas as pd
import pytest

from shapes import lending_table
from twin_pipeline.bounds import outward_bounds
from twin_pipeline.engine import GaussianCopulaEngine
from twin_pipeline.engine.columns import detect_rounding, on_step
from twin_pipeline.engine.rules import RuleSet, load_declared
from twin_pipeline.tables import TwinInputError

N_TWIN = 100_000


def rules_of(engine, kind):
    return [rule for rule in engine.rules.rules if rule.kind == kind]


def twin_share(engine, rule, twin):
    return rule.shares(twin)["share"]


@pytest.fixture(scope="module")
def loans():
    """A small loan table with one rule of every family, plus unrelated columns."""
    rng = np.random.default_rng(3)
    n = 3000
    age = rng.integers(18, 80, n)
    seniority = np.minimum(rng.integers(0, 45, n), age - 14)  # Age - Seniority >= 14, reached by many rows
    income = np.round(np.exp(rng.normal(8, 0.5, n)), 2)
    amount = np.round(income * rng.uniform(0.05, 0.9, n), 2)  # amount <= income
    card = rng.choice(["yes", "no"], n, p=[0.75, 0.25])
    spend = np.where(card == "no", 0.0, np.round(rng.gamma(2, 100, n), 2))  # 0 whenever card == no
    share = 12 * spend / (income * 1e4)  # a ratio, exact
    principal = np.round(amount * rng.uniform(0, 1, n), 2)
    interest = np.round(principal * rng.uniform(0.02, 0.2, n), 2)
    fees = np.where(rng.random(n) < 0.1, np.round(rng.uniform(5, 50, n), 2), 0.0)
    sub_grade = rng.choice([f"{g}{s}" for g in "ABCD" for s in range(1, 4)], n)
    joint = rng.random(n) < 0.2
    return pd.DataFrame({
        "age": age, "seniority": seniority, "income": income, "amount": amount, "card": card, "spend": spend,
        "share": share, "principal": principal, "interest": interest, "fees": fees,
        "paid_total": np.round(principal + interest + fees, 2),
        "grade": [value[0] for value in sub_grade], "sub_grade": sub_grade,
        "application": np.where(joint, "joint", "individual"),
        "income_joint": np.where(joint, np.round(income * rng.uniform(1.1, 2, n), 2), np.nan),
        "noise": rng.normal(0, 1, n).round(3),
    })


@pytest.fixture(scope="module")
def fitted(loans):
    return GaussianCopulaEngine().fit(loans)


@pytest.fixture(scope="module")
def twin(fitted):
    return fitted.sample(N_TWIN, seed=5)


@pytest.mark.parametrize("kind, text", [
    ("order", "amount <= income"),
    ("order", "age - seniority >= 14"),
    ("sum", "paid_total = principal + interest + fees"),
    ("ratio", "share ~="),
    ("fixed_when", "spend is 0.0 when card == 'no'"),
    ("fixed_when", "income_joint is null when application == 'individual'"),
    ("determined", "grade is determined by sub_grade"),
])
def test_each_rule_family_is_found_and_kept_in_a_large_twin(fitted, twin, kind, text):
    found = [rule for rule in rules_of(fitted, kind) if rule.text.startswith(text)]
    assert found, f"{text!r} not found among {[rule.text for rule in fitted.rules.rules]}"
    rule = found[0]
    assert rule.real_share == 1.0 and rule.enforced
    # a mined ratio's target also stays within its own range, which wins on the few rows the line would carry past it
    assert twin_share(fitted, rule, twin) >= (0.995 if kind == "ratio" else 1.0)


def test_rules_keep_marginals_and_correlations(loans, twin):
    from twin_pipeline.quality import quality_report

    report = quality_report(loans, twin)
    assert max(report["ks_statistics"][name] for name in ("amount", "paid_total", "share", "spend")) < 0.06
    assert report["correlation_error"] < 0.05


def test_a_column_kept_inside_an_order_rule_keeps_its_own_marginal(fitted, loans, twin):
    """Modelled as its fraction of its interval, its gap to its bound or itself (whichever reproduces it on held-out
    rows), a bounded column keeps its distribution: as a fraction alone, amount <= income cost KS 0.0475 here."""
    from scipy import stats

    ordered = [name for name, rule in fitted.rules.derived_columns.items() if rule.kind == "order"]
    assert {"amount", "seniority"} <= set(ordered)
    for name in ordered:
        assert stats.ks_2samp(loans[name].dropna(), twin[name].dropna()).statistic < 0.045, name


def test_a_noisy_near_rule_is_reported_not_enforced():
    rng = np.random.default_rng(1)
    n = 20_000
    low = rng.gamma(2, 100, n).round(2)
    high = (low + rng.gamma(2, 50, n)).round(2)
    broken = rng.choice(n, 10, replace=False)  # 0.05 % of the rows break it
    high[broken] = low[broken] - 1
    engine = GaussianCopulaEngine().fit(pd.DataFrame({"low": low, "high": high, "other": rng.normal(size=n)}))
    rule = next(rule for rule in rules_of(engine, "order") if rule.text == "low <= high")
    assert rule.real_share == pytest.approx(0.9995) and not rule.enforced and "reported" in rule.note


def test_unrelated_columns_give_no_rules():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(5000, 6)).round(3), columns=list("abcdef"))
    assert GaussianCopulaEngine().fit(frame).rules.rules == []


def test_declared_rules_are_enforced(loans, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n"
                    "  - {type: formula, name: yearly, target: paid_total, expression: principal + interest + fees}\n"
                    "  - {type: inequality, low: principal, high: amount}\n"
                    "  - {type: range, column: age, min: 18, max: 80}\n"
                    "  - {type: fixed_combinations, columns: [card, application]}\n")
    engine = GaussianCopulaEngine(mine_rules=False, rules=str(path)).fit(loans)
    assert [rule.source for rule in engine.rules.rules] == ["declared"] * 4
    twin = engine.sample(20_000, seed=1)
    report = engine.rules_report(loans, twin)
    assert all(entry["twin"]["share"] == 1.0 for entry in report["rules"]), report["rules"]
    assert report["summary"]["declared_broken"] == []


@pytest.mark.parametrize("rules, message", [
    ([{"type": "inequality", "low": "income", "high": "amount"}], "contradicts the data: it fails on"),
    ([{"type": "formula", "target": "paid_total", "expression": "principal + interest"}], "contradicts the data"),
    ([{"type": "inequality", "low": "amount", "high": "salary"}], "names columns not in the table: salary"),
    ([{"type": "between", "column": "age"}], "unknown type 'between'"),
    ([{"type": "formula", "target": "paid_total", "expression": "__import__('os')"}], "cannot read the expression"),
    ([{"type": "fixed_when", "column": "spend", "value": 0}], "missing when"),
])
def test_a_bad_or_contradicting_declared_rule_is_a_clear_error(loans, rules, message):
    with pytest.raises(TwinInputError, match="rule 1") as error:
        GaussianCopulaEngine(rules=rules).fit(loans)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_bad_rules_file_names_the_file(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text("{not json")
    with pytest.raises(TwinInputError, match="rules.json: is not valid JSON"):
        load_declared(str(path))


def test_small_ratios_have_no_rounding_step():
    """A share of spending in income (a quarter of them below 0.005) sits on no step: not on 5,000,000 because
    0.002 / 5,000,000 is within float tolerance of 0."""
    share = np.random.default_rng(5).lognormal(-4, 1.5, 2000).clip(1e-4, 0.9)
    assert (share < 0.005).mean() > 0.15
    assert detect_rounding(share, None) is None
    assert not on_step(np.array([0.002, 1e-4]), 5e6).any() and on_step(np.array([0.0, 1e7]), 5e6).all()


def test_rounding_steps_round_trip():
    rng = np.random.default_rng(4)
    n = 8000
    income = np.round(np.exp(rng.normal(10.5, 0.5, n)) / 100) * 100
    income = np.where(rng.random(n) < 0.15, np.round(income / 1000) * 1000, income)  # 100 %: 100s, ~24 %: 1000s
    amount = np.round(rng.uniform(1000, 30000, n) / 25) * 25
    rate = np.round(rng.uniform(5, 25, n), 2)
    real = pd.DataFrame({"income": income, "amount": amount, "rate": rate})
    assert detect_rounding(income, 0)["steps"][1:] == [100.0, 1000.0]
    assert detect_rounding(amount, 0)["steps"][1:] == [25.0]
    assert detect_rounding(rate, 2) is None
    engine = GaussianCopulaEngine()
    twin = engine.fit(real).sample(N_TWIN, seed=2)
    for name, step in (("income", 100), ("income", 1000), ("amount", 25), ("amount", 100)):
        real_share, twin_share = (on_step(frame[name].to_numpy(float), step).mean() for frame in (real, twin))
        assert abs(real_share - twin_share) <= 0.02, (name, step, real_share, twin_share)
    assert np.allclose(twin["rate"], twin["rate"].round(2))
    report = engine.rules_report(real, twin)["rounding"]
    assert report["income"]["steps"] == [100.0, 1000.0] and report["income"]["real"][0] == 1.0


def test_lending_table_rules_are_found_and_kept():
    real = lending_table()
    engine = GaussianCopulaEngine().fit(real)
    texts = {rule.text: rule for rule in engine.rules.rules}
    for text in ("balance <= loan_amount", "balance is 0.0 when loan_status == 'Fully Paid'",
                 "num_satisfactory_accounts <= open_credit_lines", "grade is determined by sub_grade"):
        assert texts[text].enforced, text
    assert any(rule.kind == "sum" and set(rule.columns) == {"paid_total", "paid_principal", "paid_interest",
                                                            "paid_late_fees"} and rule.enforced
               for rule in engine.rules.rules)
    twin = engine.sample(50_000, seed=3)
    summary = engine.rules_report(real, twin)["summary"]
    assert summary["mined_break_mean"] <= 0.001 and summary["mined_break_worst"] <= 0.01


def test_rules_are_saved_as_statistics_and_reload(fitted, tmp_path):
    path = fitted.save(tmp_path / "model.json")
    stored = json.loads(path.read_text())["rules"]
    assert {rule["kind"] for rule in stored["rules"]} >= {"order", "sum", "ratio", "fixed_when", "determined"}
    loaded = GaussianCopulaEngine.load(path)
    assert loaded.sample(2000, seed=9).equals(fitted.sample(2000, seed=9))


def test_conditioning_on_a_column_derived_through_a_rule_is_a_clear_error(fitted):
    with pytest.raises(TwinInputError, match="modelled through the rule"):
        fitted.sample(10, conditions={"amount": (None, 500)})


def test_ruleset_without_rules_changes_nothing(loans):
    empty = RuleSet()
    assert empty.encode(loans).equals(loans) and empty.decode(loans.copy()).equals(loans)


def test_a_column_derived_through_a_mined_ratio_stays_within_its_own_range(credit_card):
    """credit_card's share ~ expenditure / income: off the line at the extremes, the twin must still stay in the
    column's range, which the upload's contract checks on every stored twin (bounds.outward_bounds: 0 to 0.91)."""
    engine = GaussianCopulaEngine().fit(credit_card)
    assert any(rule.kind == "ratio" and rule.derived == "share" for rule in engine.rules.rules)
    twin = engine.sample(20_000, seed=0)
    low, high = outward_bounds(credit_card["share"])
    assert low <= twin["share"].min() and twin["share"].max() <= high
    assert twin["share"].quantile(0.999) <= credit_card["share"].max()  # the ratio's tail is not stretched


def test_order_rules_on_text_dates_and_text_numbers_are_found_and_kept():
    """issue_date <= last_payment_date written as text (with nulls), and "$" amounts: read as the engine reads
    them, kept by construction, and written back in their own formats."""
    rng = np.random.default_rng(1)
    n = 3000
    issue = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D")
    last = issue + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    income = np.round(rng.lognormal(10.5, 0.5, n), -2)
    loan = np.round(income * rng.uniform(0.05, 0.6, n), -1)
    real = pd.DataFrame({"issue_date": issue.strftime("%Y-%m-%d"),
                         "last_payment_date": np.where(rng.random(n) < 0.1, None, last.strftime("%Y-%m-%d")),
                         "income": [f"${value:,.0f}" for value in income], "loan": [f"${value:,.2f}" for value in loan],
                         "stamp": issue + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")})
    engine = GaussianCopulaEngine().fit(real)
    texts = {rule.text: rule for rule in engine.rules.rules}
    assert {"issue_date <= last_payment_date", "loan <= income"} <= set(texts)
    assert not [text for text in texts if "stamp" in text]  # a timestamp never bounds a day written as text
    twin = engine.sample(20_000, seed=2)
    for text in ("issue_date <= last_payment_date", "loan <= income"):
        assert texts[text].enforced and twin_share(engine, texts[text], twin) == 1.0, text
    assert twin["last_payment_date"].dropna().str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert twin["loan"].str.fullmatch(r"\$[\d,]+\.\d{2}").all()
    assert 0.05 < twin["last_payment_date"].isna().mean() < 0.15
    on_tens = twin["loan"].str.replace(r"[$,]", "", regex=True).astype(float) % 10 == 0
    assert on_tens.mean() > 0.97  # the real amounts' rounding step survives the rule


def test_a_ratio_is_kept_in_a_large_twin_where_its_inputs_would_carry_it_past_its_range():
    """credit_card's share = 12 x spend / (income x 10^4): a 100,000-row twin draws large spends on small incomes
    that no real row has, whose share would leave the column's range (which the upload's contract checks). The
    spend is moved onto the value that puts the share on its range's end, so the rule holds on every row and the
    share stays in its range; a spend that a category fixes (0 without a card) is never moved."""
    rng = np.random.default_rng(5)
    n = 1300
    income = np.round(np.exp(rng.normal(1.1, 0.7, n)), 2)
    card = rng.choice(["yes", "no"], n, p=[0.8, 0.2])
    spend = np.where(card == "no", 0.0, np.round(rng.gamma(0.6, 300, n), 4))  # (clipping broke 0.1 % of rows)
    real = pd.DataFrame({"card": card, "income": income, "spend": spend,
                         "share": np.round(12 * spend / (income * 1e4) + 0.0005 / income, 8)})
    engine = GaussianCopulaEngine().fit(real)
    (ratio,) = rules_of(engine, "ratio")
    assert ratio.enforced and ratio.derived == "share"
    twin = engine.sample(N_TWIN, seed=0)
    assert twin_share(engine, ratio, twin) == 1.0
    fmt = engine.rules.formats["share"]
    low, high = np.round([fmt["floor"], fmt["ceiling"]], 8)  # the range's ends on the column's 8 decimals
    assert low <= twin["share"].min() and twin["share"].max() <= high
    assert (twin.loc[twin["card"] == "no", "spend"] == 0).all()
    assert twin["spend"].min() >= 0 and (twin["spend"] == twin["spend"].round(4)).all()


def test_rules_hold_on_the_protected_twin_after_k_anonymity_moves_a_quasi_identifier():
    """k-anonymity gives a twin row another group member's income (micro-aggregation) or redraws it around a
    donor's: the loan bounded by the income, the balance by the loan and the joint income by the income are then
    derived again from what the model drew for them, so every rule of every real row holds on the twin the user
    gets, not only on the drawn one (`twin clone` printed 8 % of rows breaking `income <= income_joint`)."""
    from twin_pipeline.options import CloneOptions
    from twin_pipeline.protection import protect

    rng = np.random.default_rng(11)
    n = 4000
    income = np.round(np.exp(rng.normal(11, 0.5, n)) / 100) * 100
    joint = rng.random(n) < 0.2
    loan = np.round(income * rng.beta(2, 5, n), 2)
    real = pd.DataFrame({
        "age": rng.integers(18, 80, n), "state": rng.choice(["CA", "TX", "NY", "FL", "WA"], n),
        "income": income, "application": np.where(joint, "joint", "individual"),
        "income_joint": np.where(joint, income + np.round(np.exp(rng.normal(10, 0.6, n)) / 100) * 100, np.nan),
        "loan": loan, "balance": np.round(loan * rng.uniform(0, 1, n), 2)})
    engine = GaussianCopulaEngine().fit(real)
    kept = {rule.text for rule in engine.rules.rules if rule.enforced and rule.kind == "order"}
    assert {"income <= income_joint", "loan <= income", "balance <= loan"} <= kept
    options = CloneOptions(quasi_identifiers=["age", "state", "income"])
    drawn = engine.sample(20_000, seed=0)
    twin, protection = protect(drawn, real, engine, options)
    assert len(twin) == len(drawn) and protection["k_anonymity"]["final_k"] >= options.k
    assert (twin["income"] != drawn["income"]).mean() > 0.05  # protection did move incomes
    summary = engine.rules_report(real, twin)["summary"]
    assert summary["mined_break_worst"] == 0.0


def test_protection_moving_a_bound_does_not_round_a_derived_value_again():
    """Loans on 25s (10 % on 1,000s) below incomes on 100s: when k-anonymity moves an income and the loan still
    fits under it, the loan is left as drawn. Rounding it again with the step weights (meant for smooth values)
    put 2.5 % more of those rows on 1,000 and 20,000 on every pass, so the protected twin drifted off the real
    share of round loans."""
    rng = np.random.default_rng(6)
    n = 4000
    income = np.round(np.exp(rng.normal(11, 0.5, n)), -2)
    loan = np.round(income * rng.uniform(0.05, 0.6, n) / 25) * 25
    loan = np.where(rng.random(n) < 0.1, np.round(loan, -3), loan).clip(1000, None)
    engine = GaussianCopulaEngine().fit(pd.DataFrame({"income": income.clip(loan), "loan": loan}))
    assert engine.rules.derived_columns["loan"].kind == "order"
    before = engine.typed_view(engine.sample(20_000, seed=1))
    after = before.copy()
    after["income"] = before["income"] + 100  # a group member's income, a little higher: every loan still fits
    again = engine.rederive(before, after, keep=["income"], seed=2)
    assert (again["loan"] == before["loan"]).all()
    assert (again["loan"] <= again["income"]).all()


def test_a_cell_moved_by_protection_is_one_whose_value_changed_two_blanks_being_no_change():
    from twin_pipeline.engine.copula import _moved

    before = pd.Series([1.0, np.nan, np.nan, 3.0, 4.0], index=range(5, 10))
    after = pd.Series([1.0, np.nan, 2.0, np.nan, 5.0], index=range(5, 10))
    assert _moved(before, after).tolist() == [False, False, True, True, True]
    text = pd.Series(["a", None, np.nan, "b", "c"], dtype=object)
    assert _moved(text, pd.Series(["a", np.nan, "x", None, "c"], dtype=object)).tolist() == [False, False, True, True,
                                                                                           False]


def test_a_rule_on_a_whole_number_column_with_blanks_is_checked_on_the_written_twin():
    """The twin writes whole numbers with blanks as nullable integers (`written_view`); checking "spend is 0 when
    there is no card" on it compared blanks as NA and crashed the clone's report."""
    rng = np.random.default_rng(0)
    card = rng.choice(["yes", "no"], 2000, p=[0.7, 0.3])
    spend = np.where(card == "no", 0.0, rng.gamma(2.0, 150.0, 2000).round())
    spend[(card == "yes") & (rng.random(2000) < 0.1)] = np.nan
    real = pd.DataFrame({"card": card, "spend": spend, "income": rng.lognormal(8, 0.4, 2000).round()})
    engine = GaussianCopulaEngine().fit(real)
    twin = engine.sample(5000, seed=1)
    assert str(twin["spend"].dtype) == "Int64" and twin["spend"].isna().any()
    fixed = [entry for entry in engine.rules_report(real, twin)["rules"] if entry["kind"] == "fixed_when"]
    assert fixed and all(entry["twin"]["share"] == 1.0 for entry in fixed)


def test_a_ratio_of_two_columns_bound_by_an_order_rule_is_modelled_and_its_input_derived():
    """A mortgage book: loan <= value and ltv = loan / value on 4 decimals. Deriving ltv from a loan already bound
    by the value clipped it to its own range and broke the ratio on 0.38 % of rows; now ltv is modelled and
    loan = ltv x value is derived from it (on its 100s, inside the value), ltv recomputed from the rounded loan,
    so both rules hold on every row, in the drawn twin and after k-anonymity moves the value or the loan."""
    from scipy import stats

    from twin_pipeline.options import CloneOptions
    from twin_pipeline.protection import protect

    rng = np.random.default_rng(0)
    value = np.round(rng.lognormal(12.6, .5, 2000), -3)
    loan = np.round(value * np.clip(rng.beta(6, 2.5, 2000), .2, .97), -2)
    real = pd.DataFrame({"value": value, "loan": loan, "ltv": np.round(loan / value, 4),
                         "region": rng.choice(["N", "S", "E", "W"], 2000)})
    engine = GaussianCopulaEngine().fit(real)
    (ratio,), (order,) = rules_of(engine, "ratio"), rules_of(engine, "order")
    assert ratio.enforced and ratio.derived == "loan" and order.text == "loan <= value" and order.enforced
    twin = engine.sample(N_TWIN, seed=1)
    assert twin_share(engine, ratio, twin) == 1.0 and twin_share(engine, order, twin) == 1.0
    assert (twin["loan"] % 100 == 0).all() and (twin["ltv"] == twin["ltv"].round(4)).all()
    assert stats.ks_2samp(real["ltv"], twin["ltv"]).statistic < 0.03
    assert stats.ks_2samp(real["loan"], twin["loan"]).statistic < 0.03
    for moved in ("value", "loan"):  # a quasi-identifier protection moves: the value (loan derived again from
        # ltv) or the loan itself (kept as protection left it, ltv recomputed from it)
        protected, _ = protect(twin.head(20_000), real, engine, CloneOptions(quasi_identifiers=[moved, "region"]))
        assert (protected[moved] != twin[moved].head(20_000)).mean() > 0.05
        assert twin_share(engine, ratio, protected) == 1.0, moved
        # a kept loan is not moved under a value protection redrew (as before, when the loan was derived from
        # the value: 3 rows of 20,000 here then, and 150 broke the ratio)
        assert twin_share(engine, order, protected) >= (1.0 if moved == "value" else 0.999), moved


def test_a_date_plus_a_term_is_found_in_its_unit_and_kept_in_a_large_twin(tmp_path):
    """maturity = origination + term, the rule every loan book has, with the term in calendar months (31 January
    + 1 month = 29 February), in years of 365 days, or in days; dates written as text in the CSV. Each is found
    in its unit and kept by construction (the later date computed from the earlier one and the term)."""
    rng = np.random.default_rng(4)
    n = 3000
    origination = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000, n), unit="D")
    origination = origination.where(rng.random(n) > 0.05, pd.Timestamp("2020-01-31"))  # month ends
    months = rng.integers(1, 61, n)
    years = rng.choice([10, 15, 20, 30], n)
    grace = rng.integers(10, 90, n)
    path = tmp_path / "book.csv"
    pd.DataFrame({
        "origination": origination.strftime("%d/%m/%Y"), "term_months": months,
        "maturity": [(day + pd.DateOffset(months=int(m))).strftime("%d/%m/%Y") for day, m in zip(origination, months)],
        "term_years": years, "final_date": (origination + pd.to_timedelta(years * 365, unit="D")).strftime("%Y-%m-%d"),
        "grace_days": grace, "first_due": (origination + pd.to_timedelta(grace + 1, unit="D")).strftime("%Y-%m-%d"),
        "amount": np.round(rng.lognormal(10, 0.6, n), -2),
    }).to_csv(path, index=False)
    real = pd.read_csv(path)
    engine = GaussianCopulaEngine().fit(real)
    found = {rule.text: rule for rule in rules_of(engine, "date_term")}
    assert set(found) == {"maturity = origination + term_months months",
                          "final_date = origination + term_years x 365 days",
                          "first_due = origination + grace_days days + 1 day"}
    twin = engine.sample(N_TWIN, seed=3)
    report = {entry["rule"]: entry for entry in engine.rules_report(real, twin)["rules"]}
    for text, rule in found.items():
        assert rule.real_share == 1.0 and rule.enforced and rule.derived == text.split(" = ")[0]
        assert report[text]["real"]["share"] == 1.0 and report[text]["twin"]["share"] == 1.0, text
    assert twin["maturity"].str.fullmatch(r"\d{2}/\d{2}/\d{4}").all()
    assert twin["first_due"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    expected = [(day + pd.DateOffset(months=int(m))).strftime("%d/%m/%Y") for day, m in
                zip(pd.to_datetime(twin["origination"].head(2000), format="%d/%m/%Y"), twin["term_months"].head(2000))]
    assert (twin["maturity"].head(2000) == expected).all()  # calendar months, as pandas counts them
    assert (twin["origination"] == "31/01/2020").mean() > 0.02  # the month ends were drawn too
    # k-anonymity on the origination date (a usual quasi-identifier) moves it: the later dates follow it
    from twin_pipeline.options import CloneOptions
    from twin_pipeline.protection import protect

    protected, _ = protect(twin.head(20_000), real, engine, CloneOptions(quasi_identifiers=["origination", "amount"]))
    assert (protected["origination"] != twin["origination"].head(20_000)).mean() > 0.1
    assert engine.rules_report(real, protected)["summary"]["mined_break_worst"] == 0.0


def test_a_date_plus_a_term_broken_on_a_few_rows_is_reported_not_enforced():
    rng = np.random.default_rng(8)
    n = 20_000
    start = pd.Timestamp("2016-01-01") + pd.to_timedelta(rng.integers(0, 2000, n), unit="D")
    term = rng.choice([12, 24, 36, 48, 60], n)
    end = pd.Series([day + pd.DateOffset(months=int(m)) for day, m in zip(start, term)])
    broken = rng.choice(n, 10, replace=False)  # 0.05 % of the rows were restructured
    end[broken] = end[broken] + pd.Timedelta(days=200)
    real = pd.DataFrame({"start": start.strftime("%Y-%m-%d"), "term": term, "end": end.dt.strftime("%Y-%m-%d"),
                         "amount": rng.normal(1000, 100, n).round(2)})
    (rule,) = rules_of(GaussianCopulaEngine().fit(real), "date_term")
    assert rule.text == "end = start + term months"
    assert rule.real_share == pytest.approx(0.9995) and not rule.enforced and "reported" in rule.note


def test_a_point_mass_on_the_end_of_an_ordered_column_stays_exact():
    """Half the loans are paid off (balance 0 <= amount): the balance, modelled inside its order rule, was clipped
    to the noisy end knot of its own range, so 55 % zero balances came back as 0.01 (5 % zeros in the twin)."""
    rng = np.random.default_rng(0)
    n = 3000
    amount = np.round(rng.lognormal(10, 0.8, n), -2) + 1000
    paid_off = rng.random(n) < 0.5
    balance = np.where(paid_off, 0.0, np.round(amount * rng.uniform(0.05, 1, n), 2))
    real = pd.DataFrame({"original_amount": amount, "outstanding_balance": balance})
    engine = GaussianCopulaEngine().fit(real)
    assert engine.rules.derived_columns["outstanding_balance"].kind == "order"
    twin = engine.sample(20_000, seed=1)
    assert (twin["outstanding_balance"] == 0).mean() == pytest.approx(paid_off.mean(), abs=0.03)
    assert (twin["outstanding_balance"] <= twin["original_amount"]).all()


def collections(n: int = 8000) -> pd.DataFrame:
    """Accounts in arrears: 80 % current (0 days past due), heavy-tailed amounts owed by the others, missed
    payments one per 30 days, and written off on half the 180+ ones."""
    rng = np.random.default_rng(5)
    days = np.where(rng.random(n) < 0.8, 0, rng.choice([30, 60, 90, 120, 180, 365], n, p=[.4, .2, .15, .1, .1, .05]))
    return pd.DataFrame({"days_past_due": days,
                         "arrears_amount": np.where(days == 0, 0.0, np.round(rng.pareto(1.5, n) * 300 + 50, 2)),
                         "missed_payments": days // 30,
                         "collector": rng.choice(["team_a", "team_b", "agency", "legal"], n),
                         "written_off": ((days >= 180) & (rng.random(n) < 0.5)).astype(int)})


def test_a_count_every_value_of_which_a_category_fixes_stays_whole():
    """missed_payments is fixed by each days-past-due value and bound by an order: the rule left it empty and
    the fixed values made it float, written "6.0"."""
    real = collections(3000)
    twin = GaussianCopulaEngine().fit(real).sample(3000, seed=1)
    assert twin["missed_payments"].dtype == "int64"
    assert (twin["missed_payments"] == twin["days_past_due"] // 30).all()


def test_a_flag_a_category_fixes_on_most_rows_keeps_its_rate():
    """Collections: written_off is 0 whenever days_past_due is 0 (80 % of accounts) and 1 on half the 180+ ones.
    Fitted on the other rows, which the copula's correlation with days past due selects, the flag came out at
    3.7 % where the real rate is 1.5 %."""
    real = collections().drop(columns="missed_payments")
    engine = GaussianCopulaEngine().fit(real)
    assert any(rule.kind == "fixed_when" and rule.params["column"] == "written_off" for rule in engine.rules.rules)
    twin = engine.sample(40_000, seed=1)
    assert twin["written_off"].mean() == pytest.approx(real["written_off"].mean(), rel=0.2)
    assert not twin["written_off"][twin["days_past_due"] == 0].any()


def test_a_flag_s_shares_are_corrected_on_its_own_slices_as_on_whole_twins(monkeypatch):
    """After the first simulated twin, the shares' later rounds read only the flag's own slices (no other column
    reads it): the same corrected shares, to the bit, as a whole twin every round."""
    real = collections().drop(columns="missed_payments")
    quick = GaussianCopulaEngine().fit(real)
    flag = quick.variables.index(("written_off", "value"))
    assert quick._shares_alone({flag})
    monkeypatch.setattr(GaussianCopulaEngine, "_shares_alone", lambda self, targets: False)
    whole = GaussianCopulaEngine().fit(real)
    assert whole.variables == quick.variables
    assert [m.to_dict() for m in whole.marginals] == [m.to_dict() for m in quick.marginals]


def test_a_product_of_three_columns_is_found_and_kept():
    """A Basel risk table's expected loss is PD x LGD x EAD, rounded to cents: the twin broke it on 99.97 % of
    its rows (only products of two were searched). Names with spaces and units are read through col("...")."""
    rng = np.random.default_rng(8)
    n = 6000
    pd_ = np.clip(np.round(rng.choice([0.0003, 0.0008, 0.002, 0.01, 0.05, 0.2], n) * rng.uniform(0.8, 1.2, n), 4),
                  0.0001, 1)
    lgd = np.round(rng.beta(2, 3, n), 2)
    ead = np.round(np.exp(rng.normal(11, 1.2, n)), 2)
    real = pd.DataFrame({"PD": pd_, "LGD": lgd, "EAD (EUR)": ead, "Expected Loss (EUR)": np.round(pd_ * lgd * ead, 2),
                         "segment": rng.choice(["Retail", "SME", "Corporate"], n)})
    engine = GaussianCopulaEngine().fit(real)
    rule = next(rule for rule in rules_of(engine, "formula"))
    assert rule.text == "Expected Loss (EUR) = PD * LGD * col('EAD (EUR)')" and rule.enforced
    twin = engine.sample(30_000, seed=2)
    broken = np.abs(twin["PD"] * twin["LGD"] * twin["EAD (EUR)"] - twin["Expected Loss (EUR)"]) > 0.005 + 1e-9
    high = outward_bounds(real["Expected Loss (EUR)"])[1]
    assert not broken[twin["Expected Loss (EUR)"] < high].any()  # a product of extremes stops at the contract's range
    assert broken.mean() < 0.001 and twin["Expected Loss (EUR)"].max() <= high


def test_a_term_in_30_day_months_is_found_and_kept():
    """A small-business book counts its terms in 30-day months (the 30/360 convention): maturity = origination +
    30 x term days was no rule of any unit (a calendar month is 28 to 31 days), and 19 % of twin loans broke it."""
    rng = np.random.default_rng(6)
    n = 3000
    origination = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000, n), unit="D")
    term = rng.choice([12, 24, 36, 60, 84, 120], n)
    real = pd.DataFrame({"origination": origination.strftime("%Y-%m-%d"), "term_months": term,
                         "maturity": (origination + pd.to_timedelta(term * 30, unit="D")).strftime("%Y-%m-%d"),
                         "principal": np.round(rng.lognormal(11, 1, n), -2)})
    engine = GaussianCopulaEngine().fit(real)
    (rule,) = rules_of(engine, "date_term")
    assert rule.text == "maturity = origination + term_months x 30 days" and rule.enforced
    twin = engine.sample(20_000, seed=1)
    gap = pd.to_datetime(twin["maturity"]) - pd.to_datetime(twin["origination"])
    assert (gap.dt.days == twin["term_months"] * 30).all()


def test_a_determined_rule_reads_each_row_as_its_text_whichever_way_it_is_looked_up():
    from twin_pipeline.engine.rules.core import Rule

    rule = Rule("determined", {"column": "grade", "by": "sub_grade",
                               "mapping": {"A1": "A", "A2": "A", "B1": "B", "1": "C", "nan": "D"}})
    texts = pd.DataFrame({"sub_grade": ["A1", "B1", "A2", "Z9", "B1"] * 20, "grade": ["A", "B", "B", "A", "C"] * 20})
    mixed = texts.assign(sub_grade=["A1", 1, 1.0, "Z9", np.nan] * 20)  # 1 and 1.0 are equal, written unalike
    for frame in (texts, mixed, texts.assign(sub_grade=texts.sub_grade.where(texts.index % 7 > 0))):
        expected = frame.sub_grade.map(lambda value: rule.params["mapping"].get(str(value)))
        applicable = expected.notna().to_numpy()
        holds = applicable & (frame.grade.astype(str).to_numpy() == expected.astype(str).to_numpy())
        found = rule.check(frame)
        assert np.array_equal(found[0], applicable) and np.array_equal(found[1], holds)


def test_order_screens_of_both_directions_come_from_one_difference_per_pair():
    """Each pair is differenced once and its reverse read off the same difference (negated exactly): the rows,
    shares, lowest values and rows at them are those of differencing every ordered pair, with blanks, ties and
    both zeros among the values."""
    from twin_pipeline.engine.rules.mining import _pair_screens

    rng = np.random.default_rng(3)
    sample = rng.integers(-3, 4, (400, 6)).astype(float) * np.array([1.0, 0.5, 1.0, 2.0, 1.0, 1.0])
    sample[:, 2] = np.where(sample[:, 2] == 0, -0.0, sample[:, 2])
    sample[:, 4] = np.sort(sample[:, 4])
    sample[rng.random(sample.shape) < 0.1] = np.nan
    sample[:, 5] = np.nan  # a column with no values: no pair rows
    present = np.isfinite(sample)
    counts, holds, lowest, on_bound = _pair_screens(sample, present)
    for i in range(6):
        for j in range(6):
            if i == j:
                continue
            both = present[:, i] & present[:, j]
            difference = sample[both, j] - sample[both, i]
            assert counts[i, j] == both.sum()
            assert holds[i, j] == ((difference >= 0).sum() / both.sum() if both.any() else 0.0)
            if both.any():
                assert lowest[i, j] == difference.min() and on_bound[i, j] == (difference <= difference.min()).sum()
            else:
                assert np.isnan(lowest[i, j])


def test_a_column_modelled_in_its_rule_s_form_keeps_its_range_and_is_written_in_the_real_format(fitted, loans, twin):
    """An ordered column is modelled as its form's numbers with their range only; its decimals and steps are the
    real column's, applied on decoding, so the twin writes it as the real table does."""
    ordered = [name for name, rule in fitted.rules.derived_columns.items() if rule.kind == "order"]
    assert ordered
    for name in ordered:
        spec = fitted._spec(name)
        assert spec.decimals is None and spec.rounding is None and len(spec.bounds) == 2
        assert fitted.rules.formats[name]["decimals"] == 2 or loans[name].dtype.kind == "i"
        assert np.allclose(twin[name].dropna(), twin[name].dropna().round(2))


def test_a_category_is_determined_by_another_only_when_every_row_agrees():
    """grade of sub_grade on every row is a rule; one row off the mapping (outside the screened row sample or in
    it) and it is none, whichever row; a coarser column never determines a finer one."""
    from twin_pipeline.engine.rules import mining
    from twin_pipeline.engine.transformers import detect_spec

    rng = np.random.default_rng(4)
    n = 2 * mining.SCREEN_ROWS
    sub = rng.integers(0, 35, n)
    real = pd.DataFrame({"sub_grade": [f"{'ABCDEFG'[s // 5]}{s % 5 + 1}" for s in sub],
                         "grade": ["ABCDEFG"[s // 5] for s in sub], "term": rng.choice([36, 60], n)})

    def determined(frame):
        specs = [detect_spec(frame[name], k=5) for name in frame.columns]
        return [(rule.params["column"], rule.params["by"], rule.params["mapping"])
                for rule in mining.mine_determined(frame, specs, 5, mining.value_codes(frame, specs))]

    (found,) = determined(real)
    assert found == ("grade", "sub_grade", {f"{g}{i}": g for g in "ABCDEFG" for i in range(1, 6)})
    for row in rng.choice(n, 5, replace=False):
        broken = real.copy()
        broken.loc[row, "grade"] = "A" if broken.loc[row, "grade"] != "A" else "B"
        assert determined(broken) == []
