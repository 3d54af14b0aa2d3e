"""Spreadsheet formula injection: text cells a spreadsheet would run are written with OWASP's leading apostrophe in
every CSV output by default (the CLI, Dagster's product, related tables); numbers and Parquet are unchanged."""

import pandas as pd
import pytest
from shapes import overdraft_table

from twin_pipeline.cli import main
from twin_pipeline.shards import merge_shards
from twin_pipeline.tables import formula_safe, write_frame

ATTACKS = ["=HYPERLINK(\"http://evil\",\"x\")", "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|'/C calc'!A0",
           "\t=1+1", "\r=1+1"]


def executable(cell) -> bool:
    """What a spreadsheet runs: a text cell starting with = + - @ tab or CR that is not a plain number."""
    return isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(cell)


def _number(text: str) -> bool:
    try:
        float(text.replace(",", "").rstrip("%"))
        return True
    except ValueError:
        return False


def test_formula_cells_get_an_apostrophe_and_numbers_and_plain_text_do_not():
    frame = pd.DataFrame({"memo": ATTACKS + ["-12.5", "+3", "-1,200.50%", "plain", None],
                          "amount": [-1.5, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]})
    escaped = formula_safe(frame)
    assert escaped["memo"].tolist()[:6] == ["'" + cell for cell in ATTACKS]
    assert escaped["memo"].tolist()[6:10] == ["-12.5", "+3", "-1,200.50%", "plain"] and escaped["memo"].iloc[10] is None
    assert escaped["amount"].equals(frame["amount"]) and frame["memo"].tolist()[0] == ATTACKS[0]  # input untouched


def test_csv_is_escaped_by_default_with_an_opt_out_and_parquet_is_unchanged(tmp_path):
    frame = pd.DataFrame({"memo": ATTACKS, "n": range(len(ATTACKS))})
    write_frame(frame, tmp_path / "safe.csv")
    write_frame(frame, tmp_path / "raw.csv", escape_formulas=False)
    write_frame(frame, tmp_path / "t.parquet")
    assert not any(executable(cell) for cell in pd.read_csv(tmp_path / "safe.csv", keep_default_na=False)["memo"])
    assert pd.read_parquet(tmp_path / "t.parquet")["memo"].tolist() == ATTACKS
    shards = tmp_path / "shards"
    shards.mkdir()
    frame.to_parquet(shards / "shard-00000.parquet")
    merged = merge_shards(shards, tmp_path / "merged.csv")
    assert not any(executable(cell) for cell in pd.read_csv(merged, keep_default_na=False)["memo"])


@pytest.mark.parametrize("flag, escaped", [([], True), (["--no-escape-formulas"], False)])
def test_a_twin_of_a_table_with_formula_like_text_has_no_cell_a_spreadsheet_would_run(tmp_path, flag, escaped):
    real = overdraft_table()
    real["memo"] = [ATTACKS[i % 3] for i in range(len(real))]  # frequent enough to be kept as categories
    source = tmp_path / "loans.csv"
    real.to_csv(source, index=False)
    assert main(["clone", str(source), "--out", str(tmp_path / "out"), *flag]) == 0
    twin = pd.read_csv(tmp_path / "out" / "synthetic.csv", keep_default_na=False, dtype=str)
    cells = [cell for column in twin.columns for cell in twin[column]]
    assert (not any(map(executable, cells))) is escaped
    assert twin["memo"].str.lstrip("'").isin(ATTACKS[:3]).all()
