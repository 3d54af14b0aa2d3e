"""run_demo: the CLI's `twin demo` materializes a portfolio on a persistent local instance, or fails loudly."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from twin_pipeline import shards
from twin_pipeline.defs.demo import BlockingCheckFailed, failed_blocking, run_demo


@pytest.fixture
def sample(tmp_path, credit_data) -> Path:
    path = tmp_path / "sample.csv"
    credit_data.head(600).to_csv(path, index=False)
    return path


@pytest.mark.slow  # CI also runs `twin demo` itself
def test_the_demo_run_is_recorded_in_the_data_dirs_dagster_home_with_its_outputs_and_checks(tmp_path, sample):
    result = run_demo(tmp_path / "data", sample=sample)
    assert Path(result["outputs"]["synthetic.csv"]).exists() and Path(result["outputs"]["quality_report.json"]).exists()
    assert len(pd.read_csv(result["outputs"]["synthetic.csv"])) > 0
    assert all(check["passed"] for check in result["checks"].values() if check["blocking"])
    assert len(result["checks"]) == 7 and result["similarity_score"] > 0  # business rules and the audit included
    assert Path(result["outputs"]["privacy_audit.json"]).exists()  # the attacker audit runs after the product
    assert Path(result["dagster_home"], "dagster.yaml").exists()
    with dg.DagsterInstance.from_config(result["dagster_home"]) as instance:  # what `dagster dev` will show
        run = instance.get_run_by_id(result["run_id"])
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags["dagster/partition"] == result["portfolio"]
    assert f"DAGSTER_HOME={result['dagster_home']}" in result["open_ui"]


def test_the_demo_raises_when_a_blocking_privacy_check_fails(tmp_path, sample, monkeypatch):
    protect = shards.protect
    def leaky(synthetic, real, engine, options, **kwargs):
        protected, report = protect(synthetic, real, engine, options, **kwargs)
        return pd.concat([protected, real.head(2)], ignore_index=True), report

    monkeypatch.setattr(shards, "protect", leaky)
    with pytest.raises(BlockingCheckFailed, match="no_exact_copies"):
        run_demo(tmp_path / "data", sample=sample)


def test_a_warning_from_a_blocking_check_does_not_fail_the_demo():
    checks = {"business_rules_hold": {"passed": False, "severity": "WARN", "blocking": True},
              "no_exact_copies": {"passed": True, "severity": "ERROR", "blocking": True},
              "privacy_audit_finds_no_leak": {"passed": False, "severity": "WARN", "blocking": False}}
    assert failed_blocking(checks) == []
    checks["no_exact_copies"]["passed"] = False
    assert failed_blocking(checks) == ["no_exact_copies"]
