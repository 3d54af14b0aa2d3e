"""Bundles of related tables: the landing sensor routes them to clone_related_portfolio, rejects bad ones, and
`related_twin` clones them with every foreign key valid, audited, checked."""

import json
import shutil
import stat
import zipfile

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from twin_pipeline.audit import AuditLog
from twin_pipeline.definitions import twin_resources
from twin_pipeline.defs.bundles import inspect_bundle
from twin_pipeline.defs.partitions import bundle_portfolios, portfolio_key, portfolios
from twin_pipeline.defs.related_assets import (RELATED_ASSETS, RELATED_CHECKS, RelatedConfig, foreign_keys_valid,
                                               orphan_foreign_keys)
from twin_pipeline.defs.resources import TwinStorage
from twin_pipeline.tables import read_table

SPEC = {"foreign_keys": ["loans.borrower_id=borrowers.borrower_id"],
        "primary_keys": {"borrowers": "borrower_id", "loans": "loan_id"}, "seed": 4}


def bank(n=300, seed=2):
    """Borrowers and their loans (about 1.5 per borrower, more for higher incomes)."""
    rng = np.random.default_rng(seed)
    income = np.round(rng.lognormal(10.5, 0.5, n), 2)
    borrowers = pd.DataFrame({"borrower_id": np.arange(1, n + 1), "income": income,
                              "region": rng.choice(["north", "south", "east", "west"], n),
                              "age": rng.integers(21, 70, n)})
    per_borrower = rng.poisson(np.clip(income / income.mean() * 1.5, 0.1, None))
    owner = np.repeat(borrowers["borrower_id"].to_numpy(), per_borrower)
    loans = pd.DataFrame({"loan_id": np.arange(1, len(owner) + 1), "borrower_id": owner,
                          "amount": np.round(np.repeat(income, per_borrower) * rng.uniform(0.1, 0.4, len(owner)), -2),
                          "status": np.where(rng.random(len(owner)) < 0.1, "default", "current")})
    return borrowers, loans


def write_bundle(folder, spec=SPEC, ready=True):
    folder.mkdir(parents=True)
    borrowers, loans = bank()
    borrowers.to_csv(folder / "borrowers.csv", index=False)
    loans.to_csv(folder / "loans.csv", index=False)
    if spec is not None:
        (folder / "relationships.json").write_text(json.dumps(spec))
    if ready:
        (folder / ".ready").touch()
    return folder


def zip_bundle(folder, target):
    """A zip of the folder as a user makes it: members inside a top folder."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"{folder.name}/{path.name}")
    return target


def test_a_ready_folder_and_a_zip_each_start_one_related_clone_and_the_same_bytes_start_nothing(landing, tmp_path):
    folder = write_bundle(landing.storage.landing / "Bank Q3")
    sha = inspect_bundle(folder)
    assert landing.tick().run_requests == []  # first look: the copy may still be in progress
    [request] = landing.tick().run_requests
    assert request.job_name == "clone_related_portfolio"
    assert request.partition_key == portfolio_key("Bank Q3", sha) == f"bank_q3-{sha[:16]}"
    assert request.run_config["ops"]["related_twin"]["config"]["source"] == str(folder)
    assert landing.instance.has_dynamic_partition(bundle_portfolios.name, request.partition_key)
    assert not landing.instance.has_dynamic_partition(portfolios.name, request.partition_key)  # not a table

    other = write_bundle(tmp_path / "other", spec={**SPEC, "seed": 5})
    archive = zip_bundle(other, landing.storage.landing / "other.zip")
    zip_bundle(folder, landing.storage.landing / "again.zip")  # the folder's bytes again, zipped: nothing new
    landing.tick()
    [request] = landing.tick().run_requests
    assert request.job_name == "clone_related_portfolio" and request.tags["twin/landed_file"] == "other.zip"
    assert request.partition_key == portfolio_key("other.zip", inspect_bundle(archive))
    assert landing.tick().run_requests == []


def test_a_folder_without_its_ready_marker_waits_and_single_files_still_go_to_clone_portfolio(landing, credit_data):
    write_bundle(landing.storage.landing / "pending", ready=False)
    credit_data.head(60).to_csv(landing.storage.landing / "loans.csv", index=False)
    landing.tick()
    requests = landing.tick().run_requests
    assert [(r.job_name, r.tags["twin/landed_file"]) for r in requests] == [("clone_portfolio", "loans.csv")]
    assert not any(landing.storage.rejected.iterdir())  # the folder exists (every tick makes it), nothing in it


@pytest.mark.parametrize("name, problem, reason", [
    ("no_spec", lambda folder: (folder / "relationships.json").unlink(), "has no relationships.json"),
    ("missing_column", lambda folder: (folder / "relationships.json").write_text(json.dumps(
        {**SPEC, "foreign_keys": ["loans.customer=borrowers.borrower_id"]})), "loans.customer"),
    ("missing_table", lambda folder: (folder / "relationships.json").write_text(json.dumps(
        {**SPEC, "foreign_keys": ["cards.borrower_id=borrowers.borrower_id"]})), "'cards'"),
    ("unreadable_csv", lambda folder: (folder / "loans.csv").write_bytes(bytes(range(256)) * 40), "binary"),
])
def test_a_bad_bundle_goes_to_rejected_with_its_reason_and_the_good_one_still_runs(landing, tmp_path, name,
                                                                                 problem, reason):
    problem(write_bundle(landing.storage.landing / name))
    truncated = zip_bundle(write_bundle(tmp_path / "cut"), tmp_path / "cut.zip").read_bytes()
    (landing.storage.landing / "cut.zip").write_bytes(truncated[: len(truncated) // 2])
    write_bundle(landing.storage.landing / "good")
    landing.tick()
    assert [r.tags["twin/landed_file"] for r in landing.tick().run_requests] == ["good"]
    rejected = landing.storage.rejected
    assert reason in (rejected / f"{name}.reason.txt").read_text() and (rejected / name).is_dir()
    assert "not a readable zip" in (rejected / "cut.zip.reason.txt").read_text()
    assert sorted(p.name for p in landing.storage.landing.iterdir()) == ["good"]


def test_related_twin_clones_the_bundle_with_valid_foreign_keys_audited_and_checked(tmp_path):
    storage = TwinStorage(data_dir=str(tmp_path / "data"))
    archive = zip_bundle(write_bundle(tmp_path / "bank"), tmp_path / "bank.zip")
    key = portfolio_key(archive.name, inspect_bundle(archive))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(bundle_portfolios.name, [key])
    result = dg.materialize([*RELATED_ASSETS, *RELATED_CHECKS], partition_key=key, instance=instance,
                            resources=twin_resources(storage.data_dir),
                            run_config=dg.RunConfig(ops={"related_twin": RelatedConfig(source=str(archive))}))
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "foreign_keys_valid" and check.passed
    assert all(spec.blocking for spec in foreign_keys_valid.check_specs)

    folder = storage.portfolio_dir(key)
    borrowers, loans = read_table(folder / "borrowers.csv"), read_table(folder / "loans.csv")
    real_borrowers, real_loans = bank()
    assert list(loans.columns) == list(real_loans.columns) and len(borrowers) >= 0.95 * len(real_borrowers)
    assert loans["borrower_id"].isin(borrowers["borrower_id"]).all() and len(loans) > 0.7 * len(real_loans)
    report = json.loads((folder / "quality_report.json").read_text())
    assert report["loans->borrowers"]["valid_foreign_keys"] == 1.0
    assert report["loans->borrowers"]["children_per_parent_ks"] <= 0.2
    manifest = json.loads((folder / "related_twin.json").read_text())
    assert manifest["options"]["seed"] == SPEC["seed"] and manifest["tables"]["loans"] == len(loans)

    raw = storage.raw_dir(key)
    assert sorted(p.name for p in raw.iterdir()) == ["borrowers.csv", "loans.csv", "relationships.json"]
    assert stat.S_IMODE(raw.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in raw.iterdir())

    log = AuditLog(storage.audit_db)
    assert list(log.entries(key)["operation"]) == ["UPLOAD_INGESTED", "CLONE_INITIATED", "SAMPLE_GENERATED",
                                                   "K_ANONYMITY_ENFORCED", "QUALITY_REPORTED"]
    assert set(log.entries(key)["data_hash"]) == {manifest["sha256"]} and log.verify().ok
    assert list(log.lineage(key)["asset"]) == ["related_twin"]

    shutil.rmtree(folder)  # a re-run from the kept raw copy (no source) writes the same twin
    rerun = dg.materialize([*RELATED_ASSETS, *RELATED_CHECKS], partition_key=key, instance=instance,
                           resources=twin_resources(storage.data_dir))
    assert rerun.success and read_table(folder / "loans.csv").equals(loans)

    orphan = loans.head(1).assign(borrower_id=borrowers["borrower_id"].max() + 1)
    written = tmp_path / "written"
    shutil.copytree(folder, written)
    pd.concat([loans, orphan]).to_csv(written / "loans.csv", index=False)  # a loan whose borrower is not there
    assert orphan_foreign_keys(written, manifest)[0] == {"loans.borrower_id->borrowers.borrower_id": 1}


def test_related_tables_are_published_only_when_every_foreign_key_is_valid(tmp_path, monkeypatch):
    from twin_pipeline import related

    storage = TwinStorage(data_dir=str(tmp_path / "data"))
    archive = zip_bundle(write_bundle(tmp_path / "bank"), tmp_path / "bank.zip")
    key = portfolio_key(archive.name, inspect_bundle(archive))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(bundle_portfolios.name, [key])
    write_frame = related.write_frame

    def orphaning(frame, target, *args):  # a bug that writes a loan whose borrower does not exist
        if target.name == "loans.csv":
            frame = pd.concat([frame, frame.head(1).assign(borrower_id=10**9)])
        return write_frame(frame, target, *args)

    monkeypatch.setattr(related, "write_frame", orphaning)
    result = dg.materialize([*RELATED_ASSETS, *RELATED_CHECKS], partition_key=key, instance=instance,
                            resources=twin_resources(storage.data_dir), raise_on_error=False,
                            run_config=dg.RunConfig(ops={"related_twin": RelatedConfig(source=str(archive))}))
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and "NOT published" in check.metadata["publication"].value
    assert not storage.published(key) and not (storage.portfolio_dir(key) / "loans.csv").exists()
