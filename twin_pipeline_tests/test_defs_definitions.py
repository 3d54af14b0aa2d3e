"""The code location loads and validates; the instance config, run config, partition keys and PNG are sound."""

import dataclasses
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from twin_pipeline.definitions import defs
from twin_pipeline.defs.config import EXECUTOR_OWNED, CloneConfig
from twin_pipeline.defs.partitions import portfolio_key
from twin_pipeline.options import CloneOptions
from twin_pipeline.paths import INSTANCE_CONFIG

REPOSITORY = Path(__file__).resolve().parents[1]
SIX = {"raw_upload", "fitted_marginals", "correlation_matrix", "synthetic_sample", "k_anonymized_output", "quality_report"}
TWIN_ASSETS = SIX | {"privacy_audit"}  # the attacker audit: in the clone job, after the product


def test_the_definitions_are_loadable_and_valid():
    dg.Definitions.validate_loadable(defs)  # what `dagster definitions validate` checks, in this process


@pytest.mark.slow  # a fresh interpreter importing Dagster and the code location: ~8 s of CPU each
@pytest.mark.parametrize("target", [["-m", "twin_pipeline.definitions"], ["-w", "workspace.yaml"]])
def test_dagster_validates_the_code_location(target):
    completed = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", *target], cwd=REPOSITORY,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Validation successful" in completed.stderr + completed.stdout


def test_the_twin_assets_are_described_partitioned_in_one_group_in_no_pool_and_one_job():
    graph = defs.resolve_asset_graph()
    nodes = {key.path[-1]: graph.get(key) for key in graph.get_all_asset_keys()}
    rejected = nodes.pop("rejected_uploads")  # observed by the landing sensor, never materialized by a run
    assert rejected.group_name == "digital_twin" and rejected.partitions_def is None and "reason" in rejected.description
    assert set(nodes) == TWIN_ASSETS | {"related_twin"}  # related_twin: bundles of related tables, its own job
    for name, node in nodes.items():
        assert node.group_name == "digital_twin", name
        # a bundle's key is never a partition of the single-table assets, nor the reverse
        assert node.partitions_def.name == ("bundles" if name == "related_twin" else "portfolios"), name
        assert node.description and len(node.description) > 40, name
        assert not node.pools, name  # fits and refits of different portfolios run in parallel
    ops = [op for job in defs.resolve_all_job_defs() for op in job.all_node_defs if hasattr(op, "pool")]
    assert ops and not any(op.pool for op in ops)  # the shard and audit steps too: only the audit write takes turns
    job = defs.resolve_job_def("clone_portfolio")
    assert {key.path[-1] for key in job.asset_layer.selected_asset_keys} == TWIN_ASSETS
    assert graph.get(dg.AssetKey("privacy_audit")).parent_keys >= {dg.AssetKey("quality_report")}  # off the path
    sensor = defs.resolve_sensor_def("landing_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert [target.job_name for target in sensor.targets] == ["clone_portfolio", "clone_related_portfolio"]
    related = defs.resolve_job_def("clone_related_portfolio")
    assert {key.path[-1] for key in related.asset_layer.selected_asset_keys} == {"related_twin"}
    [check] = [spec for spec in graph.asset_check_keys if spec.name == "foreign_keys_valid"]
    assert check.asset_key == dg.AssetKey("related_twin")


def test_the_instance_config_queues_runs_has_no_pool_and_stores_sqlite_in_the_home(tmp_path):
    shutil.copyfile(INSTANCE_CONFIG, tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit is None  # no step waits for a pool slot
        assert concurrency.run_queue_config.max_concurrent_runs >= 1
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
    assert (tmp_path / "history" / "runs.db").exists()
    assert (REPOSITORY / "dagster.yaml").resolve() == INSTANCE_CONFIG  # `dagster dev` in the repository reads it


def test_the_run_config_offers_every_cli_option_with_its_default():
    options = {field.name for field in dataclasses.fields(CloneOptions)} - EXECUTOR_OWNED
    config = CloneConfig()
    assert options <= set(CloneConfig.model_fields)
    defaults = CloneOptions()
    assert config.to_options() == defaults
    assert all(CloneConfig.model_fields[name].description for name in CloneConfig.model_fields)


def test_portfolio_keys_are_safe_stable_and_tell_contents_apart():
    digest_a, digest_b = "ab" * 32, "cd" * 32
    assert portfolio_key("x.csv", "0123456789abcdef" + "f" * 48).endswith("-0123456789abcdef")  # 64 bits
    assert portfolio_key("Loans Q3 (2024)/final.v2.csv", digest_a) == "final-abababababababab"
    assert portfolio_key("Lën$ 2024.csv", digest_a) == portfolio_key("Lën$ 2024.csv", digest_a) == "l_n_2024-abababababababab"
    assert portfolio_key("loans.csv", digest_a) != portfolio_key("loans.csv", digest_b)
    assert portfolio_key("....csv", digest_a) == "upload-abababababababab"
    with pytest.raises(ValueError):
        portfolio_key("loans.csv", "not a digest")




def test_what_twin_demo_reads_from_the_package_is_package_data():
    """`twin demo` from an installed package (not a source checkout) needs the sample and the instance config in
    the wheel: both must match the package-data globs, and the demo must read them from the package."""
    from fnmatch import fnmatch

    from twin_pipeline.defs import demo
    from twin_pipeline.paths import PACKAGE

    globs = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = globs["twin_pipeline"]
    for path in (demo.SAMPLE, INSTANCE_CONFIG):
        assert path.is_relative_to(PACKAGE) and path.is_file(), path
        assert any(fnmatch(str(path.relative_to(PACKAGE)), glob) for glob in shipped), path
