"""The business_rules_hold asset check: a broken declared rule fails (blocking), broken mined rules warn."""

import dagster as dg
import pytest

from twin_pipeline.defs.checks import business_rules_hold, rules_verdict
from twin_pipeline.errors import TwinInputError


def report(declared_broken=(), worst=0.0, mean=0.0):
    summary = {"rules": 3, "enforced": 2, "declared": 1, "declared_broken": list(declared_broken),
               "mined_break_worst": worst, "mined_break_mean": mean}
    return {"quality": {"rules": {"rules": [], "rounding": {}, "summary": summary}}}


@pytest.mark.parametrize("quality, passed, severity", [
    (report(), True, dg.AssetCheckSeverity.WARN),
    (report(worst=0.02, mean=0.0005), False, dg.AssetCheckSeverity.WARN),
    (report(worst=0.005, mean=0.002), False, dg.AssetCheckSeverity.WARN),
    (report(declared_broken=["rule 1"]), False, dg.AssetCheckSeverity.ERROR),
])
def test_declared_rules_block_and_mined_rules_warn(quality, passed, severity):
    result = rules_verdict(quality)
    assert result.passed is passed and result.severity == severity


def test_the_check_is_blocking():
    spec = next(iter(business_rules_hold.check_specs))
    assert spec.blocking and spec.asset_key == dg.AssetKey("quality_report")


def test_a_sidecar_gives_rules_inline_or_as_a_file_beside_it(tmp_path):
    import json

    from twin_pipeline.defs.config import config_for_landed_file

    table = tmp_path / "loans.csv"
    table.write_text("a,b\n1,2\n")
    rules = [{"type": "inequality", "low": "a", "high": "b"}]
    (tmp_path / "loans.csv.json").write_text(json.dumps({"rules": rules}))
    assert config_for_landed_file(table).to_options().rules == rules
    (tmp_path / "mine.yaml").write_text("- {type: inequality, low: a, high: b}\n")
    (tmp_path / "loans.csv.json").write_text(json.dumps({"rules": "mine.yaml"}))
    assert config_for_landed_file(table).to_options().rules == rules
    (tmp_path / "loans.csv.json").write_text(json.dumps({"rules": [{"type": "between"}]}))
    with pytest.raises(TwinInputError, match=r"loans.csv.json: rule 1: unknown type 'between'"):
        config_for_landed_file(table)
