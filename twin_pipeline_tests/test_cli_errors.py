"""Every bad input gives one clear line naming the file and the problem, exit code 2, no traceback."""

import pytest

from twin_pipeline.cli import main

ROWS = "grade,income\nA,100\nB,200\nA,150\n"


def run(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("name, content, problem", [
    ("empty.csv", b"", "is empty"),
    ("blank.csv", b"\n\n  \n", "is empty"),
    ("header.csv", "grade,income\n", "header but no data rows"),
    ("binary.csv", bytes(range(256)) * 20, "binary"),
    ("mixed.csv", "name,city\nJos\xe9,M\xe1laga\n".encode() + "Ana,Z\xfcrich\n".encode("latin-1"), "not valid UTF-8"),
    ("one_row.csv", "grade,income\nA,100\n", "only 1 data row"),
    ("dupes.csv", "grade,grade,income\nA,B,1\nC,D,2\n", "duplicate column names: grade"),
    # files picked instead of the CSV export said "binary (NUL bytes)", "no delimiter" or listed JSON as columns
    ("book.xlsx", b"PK\x03\x04" + bytes(range(256)) * 4, "Excel .xlsx workbook, not a CSV table: save the sheet as CSV"),
    ("loans.csv.gz", b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4, "gzip-compressed"),
    ("loans.json", '[{"grade": "A", "income": 100}, {"grade": "B", "income": 200}]', "is JSON, not a CSV table"),
    ("titled.csv", "Loan book export\nGenerated 2024-06-30 by CoreBanking\n\n" + ROWS * 3,
     "its first line ('Loan book export') is not a header like the lines below it"),
])
def test_bad_files(tmp_path, capsys, name, content, problem):
    path = write(tmp_path, name, content)
    code, err = run(capsys, "clone", str(path), "--out", str(tmp_path / "out"))
    assert code == 2
    assert len(err.splitlines()) == 1 and str(path) in err and problem in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_missing_file(tmp_path, capsys):
    code, err = run(capsys, "clone", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "out"))
    assert code == 2 and "nope.csv: file not found" in err


def test_unknown_and_non_unique_primary_key(tmp_path, capsys):
    path = write(tmp_path, "loans.csv", ROWS)
    code, err = run(capsys, "clone", str(path), "--out", str(tmp_path / "o"), "--primary-key", "id")
    assert code == 2 and "loans.csv" in err and "primary_key names unknown column(s) id" in err
    code, err = run(capsys, "clone", str(path), "--out", str(tmp_path / "o"), "--primary-key", "grade")
    assert code == 2 and "primary key 'grade' is not unique" in err


@pytest.mark.parametrize("rows", ["ten", "1.5", "0", "-3"])
def test_unparseable_rows(tmp_path, capsys, rows):
    path = write(tmp_path, "loans.csv", ROWS)
    with pytest.raises(SystemExit) as exit_info:
        main(["clone", str(path), "--out", str(tmp_path / "o"), "--rows", rows])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and "--rows" in err


def test_help_documents_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(command in out for command in ("clone", "demo", "audit"))


def test_a_table_whose_every_possible_row_is_a_rare_real_record_is_a_clear_error(tmp_path, capsys):
    """Each of the 12 possible rows is a real record shared by 2 people (< k): a twin could only disclose them.
    (Had 20 people shared each, the rows would disclose no one and the twin would be allowed.)"""
    rows = [f"{grade},{term},{status}" for grade in "ABC" for term in (36, 60) for status in ("ok", "late")] * 2
    path = write(tmp_path, "tiny_domain.csv", "grade,term,status\n" + "\n".join(rows) + "\n")
    code, err = run(capsys, "clone", str(path), "--out", str(tmp_path / "out"))
    assert code == 3 and "nearly every possible row of this table is a rare real record" in err
    assert str(path) in err and len(err.splitlines()) == 1 and not (tmp_path / "out" / "synthetic.csv").exists()


@pytest.mark.parametrize("flags, problem", [
    (["--k", "1"], "k must be a whole number of at least 2"),
    (["--k", "0"], "k must be a whole number of at least 2"),
    (["--max-suppression", "5"], "max_suppression must be a share"),
    (["--workers", "0"], "workers must be at least 1"),
    (["--seed", "-1"], "seed must be a whole number"),
])
def test_requests_that_protect_no_one_or_make_no_sense_are_refused_before_reading(tmp_path, capsys, flags, problem):
    path = write(tmp_path, "loans.csv", ROWS)
    code, err = run(capsys, "clone", str(path), "--out", str(tmp_path / "out"), *flags)
    assert code == 2 and problem in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
