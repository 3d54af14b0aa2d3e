"""Reading uploads: delimiters and encodings are detected; problems are one clear line; writes are atomic."""

import numpy as np
import pandas as pd
import pytest

from twin_pipeline.engine import GaussianCopulaEngine
from twin_pipeline.tables import TwinInputError, read_table, write_frame


@pytest.mark.parametrize("separator", [",", ";", "\t", "|"])
def test_delimiters_are_sniffed(tmp_path, separator):
    path = tmp_path / "loans.csv"
    path.write_text(separator.join(["grade", "income", "note"]) + "\n"
                    + "\n".join(separator.join([g, str(i), "a b"]) for g, i in [("A", 10), ("B", 20), ("C", 30)]))
    frame = read_table(path)
    assert list(frame.columns) == ["grade", "income", "note"] and frame["income"].sum() == 60


def test_bom_and_parquet(tmp_path):
    (tmp_path / "bom.csv").write_bytes("\ufeffgrade,income\nA,1\nB,2\n".encode("utf-8"))
    assert list(read_table(tmp_path / "bom.csv").columns) == ["grade", "income"]
    pd.DataFrame({"x": [1, 2, 3]}).to_parquet(tmp_path / "t.parquet")
    assert read_table(tmp_path / "t.parquet")["x"].tolist() == [1, 2, 3]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(TwinInputError, match="bad.parquet: is not a readable Parquet file"):
        read_table(tmp_path / "bad.parquet")


def test_ragged_rows_are_a_clear_error(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(TwinInputError, match="ragged.csv: is not a well-formed table"):
        read_table(path)


def test_a_failed_write_leaves_the_old_file_untouched(tmp_path):
    target = tmp_path / "synthetic.csv"
    write_frame(pd.DataFrame({"x": [1]}), target)

    class Exploding(pd.DataFrame):
        def to_csv(self, *args, **kwargs):
            raise OSError("disk full")

    with pytest.raises(OSError):
        write_frame(Exploding({"x": [2]}), target)
    assert pd.read_csv(target)["x"].tolist() == [1] and not list(tmp_path.glob("*.tmp"))


def test_a_column_with_a_huge_number_of_categories_is_pooled_and_fast():
    rng = np.random.default_rng(0)
    n = 200_000
    frame = pd.DataFrame({"customer_name": [f"name {i}" for i in range(n)],
                          "employer": rng.choice([f"employer {i}" for i in range(8000)], n),
                          "income": rng.lognormal(10, 0.5, n).round(2)})
    engine = GaussianCopulaEngine().fit(frame)
    described = engine.describe()
    assert described["customer_name"]["kind"] == "text" and described["customer_name"]["categories"] == 1
    assert described["employer"]["categories"] <= 5001
    twin = engine.sample(10_000, seed=1)
    assert set(twin["customer_name"]) == {"Other"}
    assert twin["employer"].isin(set(frame["employer"]) | {"Other"}).all()


def test_single_column_tables_read_and_unknown_delimiters_are_named(tmp_path):
    (tmp_path / "one.csv").write_text("amount\n10\n20\n30\n")
    assert read_table(tmp_path / "one.csv")["amount"].tolist() == [10, 20, 30]
    (tmp_path / "colon.csv").write_text("grade:income:age\nA:10:30\nB:20:40\n")
    with pytest.raises(TwinInputError, match="colon.csv: no delimiter found"):
        read_table(tmp_path / "colon.csv")
    (tmp_path / "spaces.csv").write_text("grade income age\nA 10 30\nB 20 40\n")
    with pytest.raises(TwinInputError, match="spaces.csv: no delimiter found"):
        read_table(tmp_path / "spaces.csv")


def test_codes_with_leading_zeros_stay_codes_and_their_twin_keeps_the_width(tmp_path):
    """Zip codes "01067": read as numbers they lost the zero, and a tenth of the twin's zip codes had four digits."""
    rng = np.random.default_rng(2)
    path = tmp_path / "loans.csv"
    pd.DataFrame({"zip_code": [f"{z:05d}" for z in rng.integers(1_000, 99_999, 1_500)],
                  "amount": rng.integers(1, 50, 1_500) * 1_000, "rate": np.round(rng.uniform(1, 9, 1_500), 2)}
                 ).to_csv(path, index=False)
    real = read_table(path)
    assert real["zip_code"].str.len().eq(5).all() and real["amount"].dtype.kind == "i" and real["rate"].dtype.kind == "f"
    twin = GaussianCopulaEngine().fit(real).sample(3_000, seed=1)
    assert twin["zip_code"].str.fullmatch(r"\d{5}").all() and twin["zip_code"].str.startswith("0").mean() > 0.04


def test_a_latin_1_export_is_read_and_a_mixed_file_is_refused(tmp_path):
    """A Windows / Latin-1 export (the usual European spreadsheet CSV) is read as such; a file with both UTF-8 and
    other bytes is damaged, and refused rather than guessed."""
    path = tmp_path / "kunden.csv"
    path.write_bytes("stadt;betrag\nD\xfcsseldorf;1,5\nM\xfcnchen;2,25\nZ\xfcrich;3\n\u20ac Gen\xe8ve;4\n".encode("cp1252"))
    assert read_table(path)["stadt"].tolist() == ["D\xfcsseldorf", "M\xfcnchen", "Z\xfcrich", "\u20ac Gen\xe8ve"]
    path.write_bytes("stadt;n\nM\xfcnchen;1\n".encode() + "Z\xfcrich;2\n".encode("latin-1"))
    with pytest.raises(TwinInputError, match="not valid UTF-8"):
        read_table(path)


def erp_export(path, n: int = 400, totals: bool = True) -> pd.DataFrame:
    """An ERP export: BOM, CRLF, quoted thousands, TRUE/FALSE flags, a totals row and blank lines at the end."""
    rng = np.random.default_rng(8)
    amounts = np.round(rng.lognormal(9, 0.8, n), 2)
    table = pd.DataFrame({"Invoice No": [f"INV-{100000 + i}" for i in range(n)],
                          "Product": rng.choice(["Total", "Partial"], n),  # "Total" as a value, not a totals row
                          "Amount": [f"{a:,.2f}" for a in amounts],
                          "Overdue": np.where(rng.random(n) < 0.1, "TRUE", "FALSE"),
                          "Days": rng.integers(1, 90, n)})
    body = table.to_csv(index=False, lineterminator="\r\n")
    if totals:
        body += f'TOTAL,,"{amounts.sum():,.2f}",,\r\n'
    path.write_bytes(("\ufeff" + body + "\r\n\r\n").encode("utf-8"))
    return table


def test_an_erp_exports_totals_row_is_left_out_and_its_flags_keep_their_spelling(tmp_path):
    """The totals row was a record (an amount 20,000 times the median in the twin's tail, blanks in every other
    column), and TRUE/FALSE came back as True/False."""
    table = erp_export(tmp_path / "erp.csv")
    real = read_table(tmp_path / "erp.csv")
    assert len(real) == len(table) and "TOTAL" in real.attrs["left_out"]
    assert real["Days"].dtype == "int64" and set(real["Overdue"]) == {"TRUE", "FALSE"}
    twin = GaussianCopulaEngine().fit(real, primary_key="Invoice No").sample(2000, seed=1)
    assert set(twin["Overdue"]) == {"TRUE", "FALSE"} and twin["Days"].dtype == "int64"
    assert twin["Amount"].str.replace(",", "").astype(float).max() < 2 * table["Amount"].str.replace(",", "").astype(float).max()
    erp_export(tmp_path / "plain.csv", totals=False)
    assert len(read_table(tmp_path / "plain.csv")) == len(table) and "left_out" not in read_table(tmp_path / "plain.csv").attrs


def test_a_semicolon_latin_1_or_bom_export_is_written_back_in_its_own_dialect(tmp_path):
    """A German bank's export (semicolons, Windows-1252, "München") came back comma-separated UTF-8, which its
    spreadsheet opens as one column of "MÃ¼nchen"; a UTF-8 export with a byte-order mark lost the mark."""
    from twin_pipeline.pipeline import clone_file
    from twin_pipeline.options import CloneOptions

    rng = np.random.default_rng(1)
    table = pd.DataFrame({"stadt": rng.choice(["München", "Köln", "Genève"], 300),
                          "einkommen": [f"{v:.2f}".replace(".", ",") for v in rng.lognormal(10, 0.4, 300)]})
    table.to_csv(tmp_path / "de.csv", sep=";", index=False, encoding="cp1252")
    table.to_csv(tmp_path / "bom.csv", index=False, encoding="utf-8-sig")
    for name, sep, encoding, start in (("de", ";", "cp1252", b"stadt;einkommen"), ("bom", ",", "utf-8-sig", b"\xef\xbb\xbfstadt")):
        clone_file(tmp_path / f"{name}.csv", tmp_path / name, CloneOptions(scale=2))
        written = (tmp_path / name / "synthetic.csv").read_bytes()
        assert written.startswith(start) and written.count(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
        twin = pd.read_csv(tmp_path / name / "synthetic.csv", sep=sep, encoding=encoding)
        assert set(twin["stadt"]) <= {"München", "Köln", "Genève"} and twin["einkommen"].str.fullmatch(r"\d+,\d{2}").all()


def test_a_windows_export_keeps_its_line_ends_and_its_dash_for_nothing(tmp_path):
    """A Windows ERP export ends its lines with CRLF and writes "-" where there is no value: its twin came back
    with LF line ends and blank cells, which the bank's loader reads differently from its own file."""
    from twin_pipeline.options import CloneOptions
    from twin_pipeline.pipeline import clone_file

    rng = np.random.default_rng(2)
    paid = np.where(rng.random(400) < 0.2, "-", [f"{v:.2f}" for v in rng.lognormal(7, 0.5, 400)])
    table = pd.DataFrame({"invoice_amount": np.round(rng.lognormal(7, 0.5, 400), 2), "paid": paid,
                          "region": rng.choice(["north", "south"], 400)})
    table.to_csv(tmp_path / "erp.csv", index=False, lineterminator="\r\n")
    assert read_table(tmp_path / "erp.csv").attrs["csv_dialect"] == {"sep": ",", "encoding": "utf-8",
                                                                    "lineterminator": "\r\n", "na_rep": "-"}
    clone_file(tmp_path / "erp.csv", tmp_path / "out", CloneOptions(scale=2))
    written = (tmp_path / "out" / "synthetic.csv").read_bytes()
    assert written.count(b"\r\n") == written.count(b"\n") == 801
    twin = pd.read_csv(tmp_path / "out" / "synthetic.csv", dtype=str, keep_default_na=False)
    assert (twin["paid"] == "-").mean() == pytest.approx(0.2, abs=0.05) and not (twin == "").any().any()
    pd.DataFrame({"a": ["1", "", "3"], "b": ["-", "2", "x"]}).to_csv(tmp_path / "blank.csv", index=False)
    assert "na_rep" not in read_table(tmp_path / "blank.csv").attrs["csv_dialect"]  # blanks and dashes: blank


@pytest.mark.parametrize("dialect", [None, {"sep": ";", "encoding": "utf-8-sig"}, {"sep": "\t", "encoding": "cp1252"}])
def test_a_twin_is_written_byte_for_byte_as_pandas_writes_it(tmp_path, dialect):
    """Most twins go through Arrow's CSV writer (tables._arrow_columns): every kind of cell must read as pandas
    would have written it (floats as Python writes them, whole ones with ".0", tiny and huge ones in exponent form,
    missing values empty, flags True/False), and a frame Arrow cannot write exactly goes to pandas."""
    import csv

    from twin_pipeline.tables import formula_safe, to_csv

    rng = np.random.default_rng(0)
    n = 400
    numbers = pd.DataFrame({
        "amount": rng.normal(0, 1e4, n).round(2), "rate": rng.uniform(0, 1, n),
        "spread": 10.0 ** rng.uniform(-7, 18, n) * rng.choice([-1, 1], n), "whole": rng.integers(0, 99, n) * 1.0,
        "big": 10.0 ** rng.uniform(10, 15, n), "tiny": 10.0 ** rng.uniform(-6, -4, n),
        "count": rng.integers(-5, 10**12, n), "small": rng.integers(0, 9, n).astype("uint8"),
        "nullable": pd.array(np.where(rng.random(n) < 0.3, None, rng.integers(0, 9, n)), dtype="Int64"),
        "flag": rng.random(n) < 0.5, "maybe": pd.array(np.where(rng.random(n) < 0.2, None, rng.random(n) < 0.5),
                                                        dtype="boolean"),
        "grade": rng.choice(["A", "B", "", " C ", "é", "=SUM(A1)", "-3.5", None, np.nan], n),
    })
    numbers.loc[:5, "amount"] = [0.0, -0.0, np.nan, np.inf, 1e-4, 9_999_999_999.5]
    numbers["step"] = rng.integers(-4, 4, n) * 0.25  # few distinct values: written by distinct value
    numbers.loc[:3, "step"] = [-0.0, 0.0, np.nan, -0.0]
    frames = {"numbers": numbers, "quoted text": numbers.assign(grade="a;b\tc,d\"e"),
              "dates": numbers.assign(day=pd.Timestamp("2024-01-31")), "mixed objects": numbers.assign(grade=1),
              "one column": numbers[["grade"]]}
    sep, encoding = (dialect or {}).get("sep", ","), (dialect or {}).get("encoding", "utf-8")
    for name, frame in frames.items():
        ours, theirs = tmp_path / f"{name}.ours", tmp_path / f"{name}.pandas"
        to_csv(frame, ours, dialect=dialect)
        to_csv(frame.iloc[:7], ours, dialect=dialect, mode="a", header=False)
        formula_safe(frame).to_csv(theirs, index=False, sep=sep, encoding=encoding, errors="replace",
                                   quoting=csv.QUOTE_MINIMAL)
        formula_safe(frame.iloc[:7]).to_csv(theirs, index=False, sep=sep, errors="replace", mode="a", header=False,
                                            encoding="utf-8" if encoding == "utf-8-sig" else encoding)
        assert ours.read_bytes() == theirs.read_bytes(), name


def test_an_open_contracts_end_date_9999_12_31_is_read_as_open_and_written_back(tmp_path):
    """A core banking export writes an open contract's end as 9999-12-31 (past pandas' last date): the column was
    text, and its twin wrote "Other" on most rows (quality 76.9). Read as a blank, it is a date column; the twin
    writes the open ends as the export did, and its other end dates follow their start."""
    from twin_pipeline.options import CloneOptions
    from twin_pipeline.pipeline import clone_file

    rng = np.random.default_rng(9)
    start = pd.Timestamp("2018-01-01") + pd.to_timedelta(rng.integers(0, 1500, 2000), "D")
    end = (start + pd.to_timedelta(rng.integers(100, 2000, 2000), "D")).strftime("%d.%m.%Y").to_numpy(dtype=object)
    end[rng.random(2000) < 0.4] = "31.12.9999"
    pd.DataFrame({"start": start.strftime("%d.%m.%Y"), "end": end, "limit": np.round(rng.lognormal(9, 1, 2000), -2),
                  "always_open": "9999-12-31"}).to_csv(tmp_path / "contracts.csv", index=False)
    real = read_table(tmp_path / "contracts.csv")
    assert real["end"].isna().mean() == (end == "31.12.9999").mean() and real["always_open"].notna().all()
    assert real.attrs["csv_dialect"]["open_end"] == {"end": "31.12.9999"}
    clone_file(tmp_path / "contracts.csv", tmp_path / "out", CloneOptions(scale=2))
    twin = pd.read_csv(tmp_path / "out" / "synthetic.csv", dtype=str)
    is_open = twin["end"] == "31.12.9999"
    assert is_open.mean() == pytest.approx(0.4, abs=0.04) and twin["end"].notna().all()
    closed = twin[~is_open]
    assert (pd.to_datetime(closed["end"], format="%d.%m.%Y") >= pd.to_datetime(closed["start"], format="%d.%m.%Y")).all()
