"""Column kinds are detected from values and names, and can be overridden."""

import numpy as np
import pandas as pd
import pytest

from twin_pipeline.engine.columns import DATE_FORMATS, count_decimals, detect_date_format, parse_dates
from twin_pipeline.engine.transformers import detect_spec


def kind(values, name="x", **kwargs):
    return detect_spec(pd.Series(values, name=name), **kwargs).kind


def test_kinds_of_the_loan_book(loan_book):
    kinds = {name: detect_spec(loan_book[name]).kind for name in loan_book.columns}
    assert kinds == {
        "loan_id": "identifier", "income": "continuous", "loan_amount": "integer", "age": "integer",
        "term": "discrete", "grade": "categorical", "defaulted": "boolean", "issue_d": "datetime",
        "application_type": "categorical", "annual_inc_joint": "continuous", "debt": "integer",
        "emp_title": "text", "country": "constant", "notes": "constant",
    }


@pytest.mark.parametrize("values, expected", [
    (["Mar-2018", "Apr-2018", "Dec-2019"], ("%b-%Y", "M")),
    (["2018-03-01", "2019-12-31"], ("%Y-%m-%d", "D")),
    (["2018-03-01 10:00:00", "2019-12-31 23:59:59"], ("%Y-%m-%d %H:%M:%S", "s")),
    (["31/12/2019", "13/01/2020"], ("%d/%m/%Y", "D")),
    # were text (every value rare: "Other") or, for ISO times in UTC, keys minted as "SYN-000000001"
    (["2023-04-09T10:50:42Z", "2023-12-31T23:59:59Z"], ("%Y-%m-%dT%H:%M:%SZ", "s")),
    (["04/09/2023 10:50", "12/31/2023 23:59"], ("%m/%d/%Y %H:%M", "s")),
    (["09.04.2023 10:50", "31.12.2023 23:59"], ("%d.%m.%Y %H:%M", "s")),
    (["09-APR-23", "31-DEC-23"], ("%d-%^b-%y", "D")),  # capitals kept when written back
    (["09-Apr-23", "31-Dec-23"], ("%d-%b-%y", "D")),
    (["Apr 09, 2023", "Dec 31, 2023"], ("%b %d, %Y", "D")),
    (["Mar-18", "Apr-18", "Dec-19"], ("%b-%y", "M")),
    (["apple", "pear"], (None, None)),
    (["A1", "B5", "G3"], (None, None)),  # a grade's sub-grades: one digit, no year
])
def test_text_date_formats(values, expected):
    assert detect_date_format(pd.Series(values)) == expected


def test_no_date_format_reads_a_value_with_one_digit():
    """detect_date_format rules out values with fewer than two digits before trying the formats."""
    values = pd.Series(["A1", "1", "Jan-5", "5 Jan", "Jan 5, 5", "5-Jan-5", "1/1/1", "1.1.1", "1-1-1", "5T1Z"])
    for fmt, _ in DATE_FORMATS:
        assert parse_dates(values, fmt).isna().all(), fmt


def test_year_numbers_stay_integers():
    assert kind(np.arange(1990, 2021).repeat(3), name="year_built") == "integer"


def test_yes_no_is_boolean_and_zero_one_is_boolean():
    assert kind(["yes", "no", "yes"] * 10) == "boolean"
    assert kind([0, 1, 1, 0] * 10) == "boolean"


def test_numeric_id_needs_an_id_name():
    assert kind(np.arange(100), name="customer_id") == "identifier"
    assert kind(np.arange(5000, 5100), name="kunde_nr") == "identifier"  # a German export's customer number
    assert kind(np.arange(100), name="balance") == "integer"


def test_override_and_unknown_kind():
    assert kind([1.5, 2.5, 3.5] * 10, kind="categorical") == "categorical"
    with pytest.raises(ValueError, match="unknown kind"):
        kind([1, 2], kind="fancy")


def test_decimals_counted_from_values():
    assert count_decimals(np.array([1.25, 3.5, 7.0])) == 2
    assert count_decimals(np.array([10.0, 20.0])) == 0


def test_numbers_written_as_text_are_modelled_as_numbers_and_written_back_alike():
    from twin_pipeline.engine import GaussianCopulaEngine

    rng = np.random.default_rng(0)
    real = pd.DataFrame({"int_rate": [f"{rate:.2f}%" for rate in rng.uniform(5, 25, 2000)],
                         "amount": [f"${amount:,.2f}" for amount in rng.lognormal(9, 0.5, 2000)]})
    spec = detect_spec(real["int_rate"])
    assert spec.kind == "continuous" and spec.number_format["suffix"] == "%"
    twin = GaussianCopulaEngine().fit(real).sample(1000, seed=1)
    assert twin["int_rate"].str.fullmatch(r"\d{1,2}\.\d{2}%").all()
    assert twin["amount"].str.fullmatch(r"\$\d{1,3}(,\d{3})*\.\d{2}").all()
    rates = twin["int_rate"].str.rstrip("%").astype(float)
    assert 5 <= rates.min() and rates.max() <= 25 and abs(rates.mean() - 15) < 0.6


def test_decimal_comma_numbers_of_a_european_export_are_modelled_as_numbers_and_written_back_alike(tmp_path):
    """A semicolon CSV with decimal commas ("21014,17", "1.200,50"): its amounts were categories, and every
    rare one became "Other" in the twin."""
    from twin_pipeline.engine import GaussianCopulaEngine
    from twin_pipeline.tables import read_table

    rng = np.random.default_rng(4)
    income, rate = np.round(rng.lognormal(10.6, 0.4, 800), 2), np.round(rng.uniform(1.5, 9.5, 800), 2)
    path = tmp_path / "kredite.csv"
    pd.DataFrame({"einkommen": income, "zinssatz": rate, "betrag": [f"{v:,.2f}".translate(str.maketrans(",.", ".,"))
                                                                  for v in income * 3]}
                 ).to_csv(path, sep=";", decimal=",", index=False)
    real = read_table(path)
    assert real["einkommen"].str.contains(",").all()  # pandas reads them as text
    engine = GaussianCopulaEngine().fit(real)
    assert {engine.describe()[name]["kind"] for name in real} == {"continuous"}
    twin = engine.sample(2000, seed=1)
    assert twin["einkommen"].str.fullmatch(r"\d+,\d{2}").all()
    assert twin["betrag"].str.fullmatch(r"\d{1,3}(\.\d{3})*,\d{2}").all()
    rates = twin["zinssatz"].str.replace(",", ".").astype(float)
    assert 1.5 <= rates.min() and rates.max() <= 9.5 and abs(rates.mean() - rate.mean()) < 0.3


def with_blanks(n: int = 600, seed: int = 6) -> pd.DataFrame:
    """Whole years and a count of dependents (a discrete column) with a fifth of the cells empty ("30", "",
    "41"): pandas reads both as float64."""
    rng = np.random.default_rng(seed)
    years, dependents = rng.integers(1, 40, n).astype(float), rng.integers(0, 4, n).astype(float)
    years[rng.random(n) < 0.2] = dependents[rng.random(n) < 0.2] = np.nan
    return pd.DataFrame({"years": years, "dependents": dependents, "amount": rng.integers(10, 90, n) * 100,
                         "grade": rng.choice(list("ABC"), n)})


def test_whole_numbers_with_blanks_are_written_as_whole_numbers_and_blanks(tmp_path):
    """A float64 column of whole numbers came back as "31.0": the engine's output keeps them whole (nullable
    integers) for any writer, and reads them back as floats for protection."""
    from twin_pipeline.engine import GaussianCopulaEngine
    from twin_pipeline.tables import read_table, write_frame

    path = tmp_path / "real.csv"
    with_blanks().to_csv(path, index=False)
    real = read_table(path)
    assert real["years"].dtype == "float64"
    engine = GaussianCopulaEngine().fit(real)
    twin = engine.sample(800, seed=2)
    assert engine.describe()["dependents"]["kind"] == "discrete"
    assert twin.dtypes.astype(str).to_dict() == {"years": "Int64", "dependents": "Int64", "amount": "int64",
                                                 "grade": "object"}
    assert engine.typed_view(twin)["years"].dtype == "float64"
    written = pd.read_csv(write_frame(twin, tmp_path / "twin.csv"), dtype=str, keep_default_na=False)
    for name in ("years", "dependents"):
        assert written[name].str.fullmatch(r"\d+|").all() and 0.1 < (written[name] == "").mean() < 0.3


def test_unique_amounts_written_as_text_are_numbers_not_keys():
    """Every value distinct and of one shape ("$4,512.07"): an amount with cents, where a key has none."""
    amounts = pd.Series(np.arange(1000, 1800) + 0.37, name="balance")
    assert detect_spec(amounts.map("${:,.2f}".format)).kind == "continuous"
    assert detect_spec(amounts.map("{:.2f}".format).str.replace(".", ",")).kind == "continuous"
    assert detect_spec(pd.Series([f"LN{i:06d}" for i in range(800)], name="loan")).kind == "identifier"


def test_a_column_equal_to_another_stays_equal_in_the_twin():
    from twin_pipeline.engine import GaussianCopulaEngine

    rng = np.random.default_rng(2)
    amount = np.round(rng.lognormal(9, 0.6, 3000), -1)
    real = pd.DataFrame({"loan_amnt": amount, "funded_amnt": amount, "income": rng.lognormal(10, 0.5, 3000).round(2)})
    engine = GaussianCopulaEngine().fit(real)
    assert engine.describe()["funded_amnt"] == {**engine.describe()["funded_amnt"], "kind": "duplicate", "copy_of": "loan_amnt"}
    twin = engine.sample(2000, seed=1)
    assert twin["funded_amnt"].equals(twin["loan_amnt"]) and twin["funded_amnt"].dtype == real["funded_amnt"].dtype


def test_zero_padded_codes_keep_their_width():
    from twin_pipeline.engine.columns import format_number_text

    spec = detect_spec(pd.Series([f"{z:03d}xx" for z in range(0, 999, 7)] * 2, name="zip_code"))
    assert spec.number_format["width"] == 3
    assert list(format_number_text(np.array([7.0, 45.0, 123.0]), spec.number_format)) == ["007xx", "045xx", "123xx"]


OLD_COLUMN_FIELDS = {"decimals": None, "date_format": None, "date_resolution": None, "number_format": None,
                     "value": None, "copy_of": None, "id_pattern": {}, "rounding": None, "bounds": None}


def test_a_model_stores_each_kinds_own_fields_and_a_model_written_with_every_field_still_loads(loan_book):
    from twin_pipeline.engine import GaussianCopulaEngine

    engine = GaussianCopulaEngine().fit(loan_book.assign(copy=loan_book["income"]), primary_key="loan_id", seed=0)
    model = engine.to_dict()
    stored = {column["name"]: set(column) - {"name", "kind", "dtype", "null_rate"} for column in model["columns"]}
    assert stored["grade"] == set() and stored["defaulted"] == set()
    assert stored["issue_d"] == {"date_format", "date_resolution", "utc_offsets"} and stored["loan_id"] == {"id_pattern"}
    assert stored["country"] == {"value"} and stored["copy"] == {"copy_of"}
    assert stored["income"] == {"decimals", "number_format", "rounding", "bounds"}
    older = {**model, "columns": [{**OLD_COLUMN_FIELDS, **column} for column in model["columns"]]}
    assert GaussianCopulaEngine.from_dict(older).to_dict() == model
    assert GaussianCopulaEngine.from_dict(older).sample(300, seed=4).equals(engine.sample(300, seed=4))


def test_dates_written_with_a_midnight_time_stay_dates_and_keep_their_order():
    """An ERP export writes dates as "2023-01-05 00:00:00": the twin invented times of day ("19:04:01"), and as
    seconds beside a dd/mm/yyyy column no order was found between them (4.6 % paid before booked)."""
    from twin_pipeline.engine import GaussianCopulaEngine

    rng = np.random.default_rng(2)
    booked = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, 1500), "D")
    paid = booked + pd.to_timedelta(rng.integers(0, 400, 1500), "D")
    real = pd.DataFrame({"Booked": booked.strftime("%d/%m/%Y"), "Paid On": paid.strftime("%Y-%m-%d 00:00:00"),
                         "Amount": np.round(rng.lognormal(8, 1, 1500), 2)})
    engine = GaussianCopulaEngine().fit(real)
    twin = engine.sample(5000, seed=1)
    assert twin["Paid On"].str.fullmatch(r"\d{4}-\d{2}-\d{2} 00:00:00").all()
    assert (pd.to_datetime(twin["Paid On"]) >= pd.to_datetime(twin["Booked"], format="%d/%m/%Y")).all()


def test_accounting_negatives_and_dash_placeholders_are_numbers_and_blanks(tmp_path):
    """A ledger export writes negatives in brackets ("(1,234.56)") and a lone "-" where there is no balance: both
    columns were categories, every value a rare one written "Other" (quality 47.8)."""
    from twin_pipeline.engine import GaussianCopulaEngine
    from twin_pipeline.tables import read_table

    rng = np.random.default_rng(11)
    net, balance = np.round(rng.normal(500, 1500, 2000), 2), np.round(rng.lognormal(8, 1, 2000), 2)
    no_balance = rng.random(2000) < 0.1
    pd.DataFrame({"net_movement": [f"({-v:,.2f})" if v < 0 else f"{v:,.2f}" for v in net],
                  "balance": np.where(no_balance, "-", [f"{b:,.2f}" for b in balance])}).to_csv(tmp_path / "gl.csv", index=False)
    real = read_table(tmp_path / "gl.csv")
    assert real["balance"].isna().mean() == no_balance.mean()
    engine = GaussianCopulaEngine().fit(real)
    assert {engine.describe()[name]["kind"] for name in real} == {"continuous"}
    twin = engine.sample(4000, seed=1)
    assert twin["net_movement"].str.fullmatch(r"\(\d{1,3}(,\d{3})*\.\d{2}\)|\d{1,3}(,\d{3})*\.\d{2}").all()
    assert twin["net_movement"].str.startswith("(").mean() == pytest.approx((net < 0).mean(), abs=0.03)
    assert twin["balance"].isna().mean() == pytest.approx(no_balance.mean(), abs=0.02)


def test_right_aligned_amounts_are_numbers():
    """A fixed-width export pads amounts to one width ("    2,034.48"): the varying padding read as a prefix, so
    the column was text, every value rare."""
    values = pd.Series([f"{v:>12,.2f}" for v in np.random.default_rng(0).lognormal(8, 1, 300)], name="amount")
    spec = detect_spec(values)
    assert spec.kind == "continuous" and spec.number_format["prefix"] == ""
    assert np.allclose(spec.typed(values), values.str.replace(",", "").astype(float))


def test_times_with_a_utc_offset_are_dates_written_with_the_offset_in_force(tmp_path):
    """A card system writes local times with their offset ("2024-03-03T15:39:13+01:00", "+02:00" in summer): the
    column was a category of unique values, every twin row "Other". Modelled as UTC, each twin time is written
    with the offset in force then, so the zone's switch to summer time is kept."""
    from twin_pipeline.engine import GaussianCopulaEngine

    rng = np.random.default_rng(5)
    stamps = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 300 * 86400, 3000), "s")
    local = stamps.tz_convert("Europe/Berlin")
    real = pd.DataFrame({"txn_ts": [t.isoformat() for t in local], "amount_cents": rng.integers(100, 90000, 3000)})
    engine = GaussianCopulaEngine().fit(real)
    assert engine.describe()["txn_ts"]["kind"] == "datetime"
    twin = engine.sample(6000, seed=1)
    assert twin["txn_ts"].str.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0[12]:00").all()
    instants = pd.to_datetime(twin["txn_ts"], utc=True)
    berlin = instants.dt.tz_convert("Europe/Berlin").map(lambda t: t.isoformat())
    assert (berlin == twin["txn_ts"]).mean() > 0.995  # the offset in force, except within hours of a switch
    assert twin["txn_ts"].str.endswith("+02:00").mean() == pytest.approx(real["txn_ts"].str.endswith("+02:00").mean(),
                                                                      abs=0.03)
    assert instants.min() >= stamps.min() - pd.Timedelta(days=2) and instants.max() <= stamps.max() + pd.Timedelta(days=2)


def test_month_names_in_capitals_come_back_in_capitals():
    """Oracle writes dates as "09-APR-23": the twin wrote "09-Apr-23", which the bank's loader does not read."""
    from twin_pipeline.engine import GaussianCopulaEngine

    rng = np.random.default_rng(3)
    days = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, 800), "D")
    real = pd.DataFrame({"booked": days.strftime("%d-%b-%y").str.upper(), "amount": rng.lognormal(7, 1, 800)})
    twin = GaussianCopulaEngine().fit(real).sample(2000, seed=1)
    assert twin["booked"].str.fullmatch(r"\d{2}-(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)-\d{2}").all()


def test_native_times_of_a_zone_come_back_in_that_zone():
    """A Parquet column of Europe/Berlin times came back naive, in UTC: every time an hour or two early."""
    from twin_pipeline.engine import GaussianCopulaEngine

    rng = np.random.default_rng(1)
    utc = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 200 * 86400, 2000), "s")
    real = pd.DataFrame({"ts": utc.tz_convert("Europe/Berlin"), "amount": rng.integers(100, 9000, 2000)})
    twin = GaussianCopulaEngine().fit(real).sample(3000, seed=1)
    assert str(twin["ts"].dtype) == "datetime64[ns, Europe/Berlin]"
    assert real["ts"].min() - pd.Timedelta(days=2) <= twin["ts"].min() and twin["ts"].max() <= real["ts"].max() + pd.Timedelta(days=2)


def test_a_detected_column_is_fitted_as_when_its_kind_is_given(loan_book):
    """Detection hands its count of distinct values to the key test and its non-null values to the fit: the same
    kinds and specs (null rates to the bit) as a fit of each column on its own, and the same key verdicts."""
    from twin_pipeline.engine.keys import is_key
    from twin_pipeline.engine.transformers import KIND_CLASSES

    rng = np.random.default_rng(2)
    frame = loan_book.assign(loan_code=[f"L{i:05d}" for i in range(len(loan_book))],
                             repeated=rng.integers(0, len(loan_book) // 2, len(loan_book)),
                             sparse=np.where(rng.random(len(loan_book)) < 0.3, rng.normal(size=len(loan_book)), np.nan))
    for name in frame.columns:
        series = frame[name]
        detected = detect_spec(series)
        assert detected.to_dict() == KIND_CLASSES[detected.kind].fit(series).to_dict()
        assert detected.null_rate == float(series.isna().mean())
        values = series.dropna()
        assert is_key(series, unique=values.nunique() == len(values)) == is_key(series)


def test_nonnegative_least_squares_is_scipy_s_solution():
    """The rounding chain's solver (written out to spare each clone scipy.optimize's import) gives scipy's nnls
    solution, where constraints bind and where they do not, and its rounding weights land on the real shares."""
    from scipy.optimize import nnls

    from twin_pipeline.engine.columns import nonnegative_least_squares, rounding_weights

    rng = np.random.default_rng(4)
    bound = 0
    for _ in range(300):
        rows = int(rng.integers(3, 9))
        a, b = rng.normal(size=(rows, int(rng.integers(1, rows + 1)))), rng.normal(size=rows)
        ours, theirs = nonnegative_least_squares(a, b), nnls(a, b)[0]
        bound += bool((theirs == 0).any())
        np.testing.assert_allclose(ours, theirs, atol=1e-9)
    assert bound > 100  # many problems had a binding constraint
    steps, weights = [1.0, 100.0, 1000.0], rounding_weights([1.0, 100.0, 1000.0], [1.0, 0.3, 0.1])
    landing = [sum(w * (1.0 if i >= j else steps[i] / steps[j]) for i, w in enumerate(weights)) for j in range(3)]
    np.testing.assert_allclose(landing, [1.0, 0.3, 0.1], atol=1e-5)


@pytest.mark.parametrize("fmt", [fmt for fmt, _ in DATE_FORMATS])
def test_text_dates_read_once_per_distinct_text_are_read_as_every_row(fmt):
    """Datetime.to_numbers parses each distinct text once: the same seconds as parsing every row, with repeats,
    padding, blanks, unreadable texts and (for %z) offsets."""
    from twin_pipeline.engine.transformers import Datetime

    rng = np.random.default_rng(5)
    stamps = pd.Timestamp("1990-01-01") + pd.to_timedelta(rng.integers(0, 12_000, 400), unit="D") \
        + pd.to_timedelta(rng.integers(0, 86_400, 400), unit="s")
    fmt_plain = fmt.replace("%z", "")
    text = pd.Series(stamps.strftime(fmt_plain), dtype=object)
    if "%z" in fmt:
        text = text + pd.Series(rng.choice(["+01:00", "+0200", "-0530"], 400))
    text = text.sample(2_000, replace=True, random_state=1).reset_index(drop=True)
    text[rng.random(2_000) < 0.05] = None
    text[rng.random(2_000) < 0.02] = "not a date"
    padded = rng.random(2_000) < 0.1
    text[padded] = "  " + text[padded].astype(str) + " "
    spec = Datetime("d", "object", date_format=fmt, date_resolution="s")
    every_row = spec.typed(text.astype(str).str.strip())
    if getattr(every_row.dt, "tz", None) is not None:
        every_row = every_row.dt.tz_convert(None)
    expected = (every_row.astype("datetime64[ns]").astype("int64") // 10**9).to_numpy(dtype=float)
    np.testing.assert_array_equal(spec.to_numbers(text), expected)
