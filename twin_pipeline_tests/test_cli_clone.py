"""`twin clone` end to end: the protected twin, its model and both reports, with the guarantees recounted."""

import json

import pandas as pd
import pytest

from twin_pipeline.cli import main


@pytest.fixture(scope="module")
def cloned(tmp_path_factory, credit_data):
    folder = tmp_path_factory.mktemp("clone")
    source = folder / "loans.csv"
    credit_data.head(1500).to_csv(source, index=False)
    code = main(["clone", str(source), "--out", str(folder / "out"), "--scale", "2", "--seed", "7",
                 "--quasi-identifiers", "Age,Marital,Home,Job,Income"])
    return code, folder / "out", credit_data.head(1500)


def test_writes_the_twin_and_reports(cloned):
    code, out, real = cloned
    assert code == 0
    twin = pd.read_csv(out / "synthetic.csv")
    assert list(twin.columns) == list(real.columns) and abs(len(twin) - 3000) <= 30
    quality = json.loads((out / "quality_report.json").read_text())
    privacy = json.loads((out / "privacy_report.json").read_text())
    assert quality["similarity_score"] > 85 and quality["correlation_error"] < 0.1
    assert privacy["k"] >= 5 and privacy["exact_match_rate"] == 0
    assert "singling_out" in privacy["audit"]["attacker_risk"]
    assert (out / "model.json").exists() and not list(out.glob("*.tmp"))


def test_k_anonymity_holds_when_recounted_and_no_row_is_a_copy(cloned):
    _, out, real = cloned
    twin = pd.read_csv(out / "synthetic.csv")
    qis = ["Age", "Marital", "Home", "Job", "Income"]
    assert twin.groupby(qis, dropna=False).size().min() >= 5
    assert not twin.merge(real.drop_duplicates(), how="inner", on=list(real.columns)).shape[0]


def test_same_seed_same_twin(cloned, tmp_path):
    _, out, real = cloned
    source = tmp_path / "loans.csv"
    real.to_csv(source, index=False)
    assert main(["clone", str(source), "--out", str(tmp_path / "again"), "--scale", "2", "--seed", "7",
                 "--quasi-identifiers", "Age,Marital,Home,Job,Income"]) == 0
    assert pd.read_csv(tmp_path / "again" / "synthetic.csv").equals(pd.read_csv(out / "synthetic.csv"))
