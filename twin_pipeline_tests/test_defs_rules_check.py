"""The business_rules_hold asset check: a broken declared rule fails (blocking), broken mined rules warn."""

import dagster as dg
import pytest

from twin_pipeline.defs.checks import business_rules_hold


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
    result = business_rules_hold(quality_report=quality)
    assert result.passed is passed and result.severity == severity


def test_the_check_is_blocking():
    spec = next(iter(business_rules_hold.check_specs))
    assert spec.blocking and spec.asset_key == dg.AssetKey("quality_report")
