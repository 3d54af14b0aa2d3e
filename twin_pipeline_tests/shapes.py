"""Tables of other shapes than the two bundled samples, built from a seed: tests and benchmarks use them so that
no change is judged only on the tables it was tuned on.

* `overdraft_table`: tiny and narrow, all discrete (age, sex, days, a 13 % overdrawn flag);
* `narrow_table`: 3-4 mostly discrete columns, any number of rows (30,000+ for the large case);
* `lending_table`: wide (about 55 columns) LendingClub-like loans with free text, many nulls, rounding steps and
  the business rules a credit analyst checks (balance <= loan_amount, balance 0 when Fully Paid,
  paid_total = principal + interest + fees, satisfactory <= open lines);
* `mixed_table`: a medium table of every common kind for large-row runs;
* `loan_book_table`: a reviewer-like loan book, 10,000 loans and 2 % default stepping up with grade E-G, a
  60-month term and under 2 years in employment (mostly discrete columns, amounts rounded to thousands);
* `mortgage_table`: a mortgage book with dates written as text, maturity = origination + term (calendar months),
  loan <= value and ltv = loan / value on 4 decimals, a rate and a default flag.

    from twin_pipeline_tests.shapes import SHAPES   # name -> builder(seed) -> DataFrame
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STATES = ["CA", "TX", "NY", "FL", "IL", "OH", "GA", "NC", "MI", "NJ", "VA", "WA", "AZ", "MA", "TN", "IN", "MO",
          "MD", "WI", "CO", "MN", "SC", "AL", "LA", "KY", "OR", "OK", "CT", "UT", "IA", "NV", "AR", "MS", "KS"]
TITLES = ["manager", "teacher", "owner", "registered nurse", "driver", "supervisor", "sales", "engineer",
          "director", "project manager", "office manager", "general manager", "truck driver", "nurse",
          "president", "operations manager", "accountant", "police officer", "store manager", "technician"]


def overdraft_table(seed: int = 0, n: int = 450) -> pd.DataFrame:
    """A few hundred bank customers, four discrete columns; 13 % overdrawn, 43 % aged 19."""
    rng = np.random.default_rng(seed)
    age = np.where(rng.random(n) < 0.43, 19, rng.integers(18, 27, n))
    sex = rng.choice(["M", "F"], n, p=[0.55, 0.45])
    days = rng.choice([7, 14, 30, 60, 90], n, p=[0.3, 0.25, 0.25, 0.12, 0.08])
    risk = 0.06 + 0.12 * (days >= 60) + 0.05 * (age < 20)
    overdrawn = rng.random(n) < risk / risk.mean() * 0.13
    return pd.DataFrame({"age": age, "sex": sex, "days": days, "overdrawn": np.where(overdrawn, "yes", "no")})


def narrow_table(seed: int = 0, n: int = 10_000) -> pd.DataFrame:
    """Four columns, three of them discrete: age, region, product and a default flag tied to age and product."""
    rng = np.random.default_rng(seed)
    age = np.clip(np.round(rng.normal(42, 12, n)), 18, 85).astype(int)
    region = rng.choice(["north", "south", "east", "west", "centre"], n, p=[0.3, 0.25, 0.2, 0.15, 0.1])
    product = rng.choice(["card", "loan", "mortgage"], n, p=[0.5, 0.35, 0.15])
    p = 0.04 + 0.08 * (age < 30) + 0.05 * (product == "card")
    return pd.DataFrame({"age": age, "region": region, "product": product,
                         "default": (rng.random(n) < p).astype(int)})


def loan_book_table(seed: int = 0, n: int = 10_000) -> pd.DataFrame:
    """Loans whose rare default (2 %) steps with three discrete columns; purpose and region say nothing of it."""
    rng = np.random.default_rng(seed)
    grade = rng.choice(list("ABCDEFG"), n, p=[0.2, 0.25, 0.22, 0.15, 0.1, 0.05, 0.03])
    term = rng.choice([36, 60], n, p=[0.7, 0.3])
    years = rng.integers(0, 11, n)
    risk = 1 + 3 * np.isin(grade, ["E", "F", "G"]) + 1.5 * (term == 60) + 2 * (years < 2)
    return pd.DataFrame({"grade": grade, "term": term,
                         "purpose": rng.choice(["car", "home", "debt", "card", "other"], n, p=[0.2, 0.15, 0.35, 0.2, 0.1]),
                         "emp_years": years, "region": rng.choice(["N", "S", "E", "W"], n),
                         "amount": np.clip(np.round(np.exp(rng.normal(9.3, 0.6, n)), -3), 1000, 40000),
                         "default": (rng.random(n) < risk / risk.mean() * 0.02).astype(int)})


def lending_table(seed: int = 0, n: int = 5_000) -> pd.DataFrame:
    """A wide LendingClub-like loan table (about 55 columns) with text, nulls, steps and business rules."""
    rng = np.random.default_rng(seed)
    u = lambda: rng.random(n)  # noqa: E731
    joint = u() < 0.15
    income = np.round(np.exp(rng.normal(11.0, 0.55, n)) / 100) * 100
    income = np.where(u() < 0.1, np.round(income / 1000) * 1000, income)
    grade_idx = np.clip((rng.normal(2.0, 1.4, n) - np.log(income / 60000)).round(), 0, 6).astype(int)
    grade = np.array(list("ABCDEFG"))[grade_idx]
    sub = rng.integers(1, 6, n)
    rate = np.round(5.3 + 3.9 * grade_idx + 0.6 * sub + rng.normal(0, 0.4, n), 2)
    amount = np.clip(np.round(income * rng.uniform(0.05, 0.45, n) / 25) * 25, 1000, 40000)
    term = np.where(u() < 0.3, 60, 36)
    installment = np.round(amount * (rate / 1200) / (1 - (1 + rate / 1200) ** -term), 2)
    status = rng.choice(["Current", "Fully Paid", "Charged Off", "Late (31-120 days)", "In Grace Period"], n,
                        p=[0.82, 0.1, 0.03, 0.03, 0.02])
    paid_share = np.where(status == "Fully Paid", 1.0, rng.uniform(0.0, 0.6, n))
    balance = np.where(status == "Fully Paid", 0.0, np.round(amount * (1 - paid_share), 2))
    paid_principal = np.round(amount - balance, 2)
    paid_interest = np.round(paid_principal * rate / 100 * rng.uniform(0.2, 0.8, n), 2)
    paid_late = np.where(u() < 0.03, np.round(rng.uniform(5, 60, n), 2), 0.0)
    open_lines = rng.integers(2, 30, n)
    satisfactory = np.minimum(open_lines, np.maximum(0, open_lines - rng.poisson(1.0, n)))
    total_lines = open_lines + rng.integers(0, 25, n)
    delinq = rng.poisson(0.25, n)
    limit = np.round(income * rng.uniform(0.3, 3.0, n) / 100) * 100
    utilized = np.round(limit * rng.beta(2, 3, n))
    months = pd.period_range("2018-01", "2018-03", freq="M").strftime("%b-%Y")
    titles = np.array([f"{rng.choice(TITLES)}" if x < 0.7 else f"{rng.choice(['senior', 'lead', 'chief'])} "
                       f"{rng.choice(TITLES)} {rng.integers(1, 400)}" for x in u()], dtype=object)
    titles[u() < 0.08] = None

    def nullable(values, share):
        out = pd.Series(values, dtype="float64")
        out[u() < share] = np.nan
        return out

    frame = {
        "emp_title": titles,
        "emp_length": nullable(rng.integers(0, 11, n), 0.08),
        "state": rng.choice(STATES, n),
        "homeownership": rng.choice(["MORTGAGE", "RENT", "OWN"], n, p=[0.48, 0.4, 0.12]),
        "annual_income": income,
        "verified_income": rng.choice(["Verified", "Source Verified", "Not Verified"], n),
        "debt_to_income": np.round(np.clip(rng.gamma(3, 6, n), 0, 60), 2),
        "annual_income_joint": np.where(joint, np.round(income * rng.uniform(1.2, 2.2, n) / 100) * 100, np.nan),
        "verification_income_joint": np.where(joint, rng.choice(["Verified", "Not Verified"], n), None),
        "debt_to_income_joint": np.where(joint, np.round(rng.gamma(3, 5, n), 2), np.nan),
        "delinq_2y": delinq,
        "months_since_last_delinq": nullable(np.where(delinq > 0, rng.integers(1, 24, n), rng.integers(24, 120, n)),
                                             0.55),
        "earliest_credit_line": rng.integers(1970, 2015, n),
        "inquiries_last_12m": rng.poisson(1.5, n),
        "total_credit_lines": total_lines,
        "open_credit_lines": open_lines,
        "total_credit_limit": limit,
        "total_credit_utilized": utilized,
        "num_collections_last_12m": (u() < 0.01).astype(int),
        "num_historical_failed_to_pay": rng.poisson(0.15, n),
        "months_since_90d_late": nullable(rng.integers(1, 120, n), 0.77),
        "current_accounts_delinq": np.zeros(n, dtype=int),
        "total_collection_amount_ever": np.where(u() < 0.12, np.round(rng.gamma(1.5, 800, n)), 0.0),
        "current_installment_accounts": rng.poisson(2.5, n),
        "accounts_opened_24m": rng.poisson(4, n),
        "months_since_last_credit_inquiry": nullable(rng.integers(0, 24, n), 0.13),
        "num_satisfactory_accounts": satisfactory,
        "num_accounts_120d_past_due": nullable(np.zeros(n), 0.03),
        "num_accounts_30d_past_due": np.zeros(n, dtype=int),
        "num_active_debit_accounts": rng.poisson(3.5, n),
        "total_debit_limit": np.round(rng.gamma(2, 12000, n) / 100) * 100,
        "num_total_cc_accounts": rng.poisson(13, n),
        "num_open_cc_accounts": rng.poisson(8, n),
        "num_cc_carrying_balance": rng.poisson(5, n),
        "num_mort_accounts": rng.poisson(1.4, n),
        "account_never_delinq_percent": np.round(np.clip(100 - rng.gamma(1, 5, n), 20, 100), 1),
        "tax_liens": (u() < 0.03).astype(int),
        "public_record_bankrupt": (u() < 0.12).astype(int),
        "loan_purpose": rng.choice(["debt_consolidation", "credit_card", "other", "home_improvement",
                                    "major_purchase", "medical", "house", "car"], n,
                                   p=[0.52, 0.24, 0.09, 0.07, 0.03, 0.02, 0.02, 0.01]),
        "application_type": np.where(joint, "joint", "individual"),
        "loan_amount": amount,
        "term": term,
        "interest_rate": rate,
        "installment": installment,
        "grade": grade,
        "sub_grade": [f"{g}{s}" for g, s in zip(grade, sub)],
        "issue_month": rng.choice(months, n),
        "loan_status": status,
        "initial_listing_status": rng.choice(["whole", "fractional"], n, p=[0.82, 0.18]),
        "disbursement_method": rng.choice(["Cash", "DirectPay"], n, p=[0.93, 0.07]),
        "balance": balance,
        "paid_total": np.round(paid_principal + paid_interest + paid_late, 2),
        "paid_principal": paid_principal,
        "paid_interest": paid_interest,
        "paid_late_fees": paid_late,
    }
    return pd.DataFrame(frame)


def mixed_table(seed: int = 0, n: int = 30_000) -> pd.DataFrame:
    """A medium table of every common kind, for large-row runs: ids, amounts, rates, dates, flags, categories."""
    rng = np.random.default_rng(seed)
    income = np.round(rng.lognormal(10.6, 0.5, n), -2)
    age = rng.integers(19, 80, n)
    amount = np.round(np.minimum(income * rng.uniform(0.05, 0.6, n), 50_000), -2)
    return pd.DataFrame({
        "loan_id": [f"L{i:07d}" for i in range(n)],
        "age": age,
        "income": income,
        "amount": amount,
        "rate": np.round(rng.uniform(3, 25, n), 2),
        "issued": pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D"),
        "purpose": rng.choice(["car", "home", "education", "business", "other"], n),
        "marital": rng.choice(["single", "married", "divorced", "widowed"], n, p=[0.4, 0.45, 0.1, 0.05]),
        "defaulted": rng.random(n) < 0.08 + 0.1 * (amount / income > 0.4),
    })


def mortgage_table(seed: int = 0, n: int = 2_000) -> pd.DataFrame:
    """A mortgage book (the rules every loan book has): maturity_date = origination_date + term_months calendar
    months, loan_amount <= property_value, ltv = loan_amount / property_value on 4 decimals; dates as text."""
    rng = np.random.default_rng(seed)
    origination = pd.Timestamp("2012-01-01") + pd.to_timedelta(rng.integers(0, 4000, n), unit="D")
    term = rng.choice([120, 180, 240, 300, 360], n, p=[0.1, 0.3, 0.2, 0.1, 0.3])
    value = np.round(rng.lognormal(12.6, 0.5, n), -3)
    loan = np.round(value * np.clip(rng.beta(6, 2.5, n), 0.2, 0.97), -2)
    ltv = np.round(loan / value, 4)
    income = np.round(rng.lognormal(11.2, 0.45, n), -2)
    rate = np.round(2.5 + 2.0 * (ltv > 0.8) + 0.004 * (term - 120) / 12 + rng.gamma(2, 0.4, n), 2)
    default = rng.random(n) < 0.01 + 0.06 * (ltv > 0.85) + 0.03 * (loan / income > 4)
    return pd.DataFrame({
        "loan_id": [f"M{i:06d}" for i in range(n)],
        "origination_date": origination.strftime("%Y-%m-%d"),
        "term_months": term,
        "maturity_date": [(day + pd.DateOffset(months=int(months))).strftime("%Y-%m-%d")
                          for day, months in zip(origination, term)],
        "property_value": value,
        "loan_amount": loan,
        "ltv": ltv,
        "interest_rate": rate,
        "annual_income": income,
        "default_flag": default.astype(int),
    })


SHAPES = {"tiny": overdraft_table, "narrow": narrow_table, "wide": lending_table, "large": mixed_table,
          "mortgage": mortgage_table}
