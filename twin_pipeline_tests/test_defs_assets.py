"""The six assets materialized on an ephemeral Dagster instance: files, contracts, checks, audit and lineage."""

import base64
import io
import json
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from twin_pipeline import pipeline, publish, shards
from twin_pipeline.audit import AuditLog
from twin_pipeline.defs.assets import ASSETS
from twin_pipeline.defs.checks import CHECKS
from twin_pipeline.defs.config import CloneConfig
from twin_pipeline.defs.partitions import portfolios, table_key
from twin_pipeline.defs.resources import TwinStorage
from twin_pipeline.defs.schemas import conform, schema_from_dict
from twin_pipeline.definitions import twin_resources
from twin_pipeline.tables import sha256_file

SIX = ["raw_upload", "fitted_marginals", "correlation_matrix", "synthetic_sample", "k_anonymized_output", "quality_report"]
ALL = SIX + ["privacy_audit"]  # the attacker audit comes after the product and its report
OPERATIONS = ["UPLOAD_INGESTED", "CLONE_INITIATED", "MODEL_FITTED", "SAMPLE_GENERATED", "K_ANONYMITY_ENFORCED",
              "QUALITY_REPORTED", "PRIVACY_AUDITED"]


def land(storage, credit_data, name="loans.csv", rows=slice(0, 600)):
    """Land a slice of the bundled credit table (600 rows unless told) in `storage`'s landing folder."""
    storage.landing.mkdir(parents=True, exist_ok=True)
    path = storage.landing / name
    credit_data.iloc[rows].to_csv(path, index=False)
    return path


@pytest.fixture
def storage(tmp_path):
    return TwinStorage(data_dir=str(tmp_path / "data"))


@pytest.fixture
def landed(storage, credit_data):
    return lambda name="loans.csv", rows=slice(0, 600): land(storage, credit_data, name, rows)


def clone(storage, source, instance=None, raise_on_error=True, assets=ALL, **settings):
    """Materialize `assets` (all seven unless told) and their checks for the portfolio of `source`, as the
    sensor's run would."""
    instance = instance or dg.DagsterInstance.ephemeral()
    key = table_key(source.name, source)
    if not instance.has_dynamic_partition(portfolios.name, key):
        instance.add_dynamic_partitions(portfolios.name, [key])
    result = dg.materialize(
        [*ASSETS, *CHECKS], partition_key=key, instance=instance, raise_on_error=raise_on_error,
        resources=twin_resources(storage.data_dir), selection=dg.AssetSelection.assets(*assets),
        run_config=dg.RunConfig(ops={"raw_upload": CloneConfig(source=str(source), **settings)}
                                if "raw_upload" in assets else {}),
    )
    return key, result


@dataclass(frozen=True)
class Cloned:
    storage: TwinStorage
    source: Path
    key: str
    result: dg.ExecuteInProcessResult

    def copy(self, folder) -> TwinStorage:
        """A copy of the cloned data directory (links kept: the published version is the same), for a test that
        changes it."""
        shutil.copytree(self.storage.root, folder / "data", symlinks=True)
        return TwinStorage(data_dir=str(folder / "data"))


@pytest.fixture(scope="module")
def cloned(tmp_path_factory, credit_data) -> Cloned:
    """One end-to-end clone (seven assets, seven checks) of a 600-row slice, shared by the tests that read it or
    start from it: a full clone is the costly part of these tests."""
    storage = TwinStorage(data_dir=str(tmp_path_factory.mktemp("cloned") / "data"))
    source = land(storage, credit_data)
    key, result = clone(storage, source, seed=3, audit_budget=40.0, secrets=["Status", "Debt"])
    return Cloned(storage, source, key, result)


def files_state(folder):
    """Every file under a portfolio folder (the shards through the `shards` link), by path: content and mtime."""
    files = [path for path in folder.rglob("*") if path.is_file()] + list((folder / "shards").glob("*"))
    return {str(path.relative_to(folder)): (sha256_file(path), path.stat().st_mtime_ns) for path in sorted(files)}


def test_a_landed_file_becomes_a_protected_twin_with_reports_checks_and_an_audit_trail(cloned):
    storage, source, key, result = cloned.storage, cloned.source, cloned.key, cloned.result
    assert result.success
    assert {event.asset_key.path[-1] for event in result.get_asset_materialization_events()} == set(ALL)

    folder = storage.portfolio_dir(key)
    names = {path.name for path in folder.iterdir()}
    assert {"synthetic.csv", "quality_report.json", "privacy_report.json", "model.json", "schema.json",
            "raw_upload.json", "correlation_matrix.parquet", "shards.json", "shards"} <= names
    shards = json.loads((folder / "shards.json").read_text())
    assert [shard["file"] for shard in shards["shards"]] == sorted(p.name for p in (folder / "shards").iterdir())
    assert all(sha256_file(folder / "shards" / shard["file"]) == shard["sha256"] for shard in shards["shards"])
    manifest = json.loads((folder / "raw_upload.json").read_text())
    twin = pd.read_csv(folder / "synthetic.csv")
    assert manifest["rows"] == 600 and manifest["target_rows"] == 600
    assert 0.95 * 600 <= len(twin) <= 600  # k-anonymity may suppress at most 1% of rows (plus removed copies)
    conform(pd.read_csv(folder / "synthetic.csv", dtype={c: object for c in twin.select_dtypes(object)}),
            schema_from_dict(json.loads((folder / "schema.json").read_text())), "the product")

    raw = storage.raw_dir(key) / "loans.csv"
    assert stat.S_IMODE(raw.stat().st_mode) == 0o600 and stat.S_IMODE(raw.parent.stat().st_mode) == 0o700
    assert sha256_file(raw) == manifest["sha256"] == sha256_file(source)
    assert not any(name.endswith(".csv") and "loans" in name for name in names), "real rows must stay in raw/"

    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {"k_anonymity_at_least_k", "no_exact_copies", "matches_upload_schema",
                           "similarity_score_at_least_85", "correlation_error_at_most_0_10", "business_rules_hold",
                           "privacy_audit_finds_no_leak"}
    assert checks["k_anonymity_at_least_k"].passed
    assert checks["k_anonymity_at_least_k"].metadata["smallest_group"].value >= 5
    assert checks["no_exact_copies"].passed and checks["matches_upload_schema"].passed

    log = AuditLog(storage.audit_db)
    assert list(log.entries(key)["operation"]) == OPERATIONS
    assert log.verify().ok
    lineage = log.lineage(key)
    assert sorted(lineage["asset"]) == sorted(ALL)
    outputs = dict(zip(lineage["asset"], lineage["output_hash"]))
    for row in lineage.itertuples():  # every input hash is the hash its upstream asset recorded as its output
        inputs = row.input_hashes if isinstance(row.input_hashes, dict) else json.loads(row.input_hashes)
        for upstream, digest in inputs.items():
            assert digest == (outputs[upstream] if upstream in outputs else manifest["sha256"])


def test_the_ui_gets_marginal_families_ks_tables_and_a_real_correlation_heatmap_png(cloned):
    storage, key, result = cloned.storage, cloned.key, cloned.result
    metadata = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert "| Age |" in metadata["fitted_marginals"]["marginal_families"].value
    assert "KS D" in metadata["quality_report"]["ks_statistics"].value
    assert "| Home |" in metadata["quality_report"]["category_match"].value
    assert metadata["k_anonymized_output"]["rows"].value > 0
    assert str(storage.portfolio_dir(key) / "synthetic.csv") == metadata["k_anonymized_output"]["path table"].value

    quality = metadata["quality_report"]
    assert quality["similarity_score"].value == round(quality["similarity_score"].value, 1)  # rounded for people
    assert 80 < quality["quality_vs_ceiling"].value < 110 and quality["tstr_target"].value == "Status"
    assert quality["report"].value == str(storage.portfolio_dir(key) / "report.html")
    assert "alt=\"column Income\"" in (storage.portfolio_dir(key) / "report.html").read_text()
    pictures = re.findall(r"\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", quality["correlation_heatmap"].value)
    assert len(pictures) == 3  # labelled, full size, one click away
    for data in pictures:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        assert image.width >= 400 and len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 10

    # Shown on the asset page itself: the UI inlines a markdown entry only under 1,000 characters.
    inline = [f"worst_column_{rank}" for rank in range(1, 5)] + ["correlation_difference"]
    assert "Age" in quality["correlation_difference"].value and "Amount" in quality["worst_columns"].value + "".join(
        quality[name].value for name in inline)
    for name in inline:
        text = quality[name].value
        assert len(text) < 1_000
        (data,) = re.findall(r"\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", text)
        image = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
        assert image.shape[1] >= 150 and len(np.unique(image.reshape(-1, 3), axis=0)) >= 3  # a picture, not a dot


def test_rerunning_one_portfolio_rewrites_only_its_own_folder(cloned, credit_data, tmp_path):
    storage, key_a = cloned.copy(tmp_path), cloned.key
    instance = dg.DagsterInstance.ephemeral()
    key_b, _ = clone(storage, land(storage, credit_data, "b.csv", slice(600, 1200)), instance, assets=SIX)
    before_a, before_b = files_state(storage.portfolio_dir(key_a)), files_state(storage.portfolio_dir(key_b))

    clone(storage, storage.landing / cloned.source.name, instance, assets=SIX, seed=7)

    assert files_state(storage.portfolio_dir(key_b)) == before_b
    after_a = files_state(storage.portfolio_dir(key_a))
    assert after_a["synthetic.csv"] != before_a["synthetic.csv"]
    assert after_a["shards/shard-00000.parquet"] != before_a["shards/shard-00000.parquet"]
    assert after_a["schema.json"][0] == before_a["schema.json"][0]  # same upload, same contract
    versions = storage.portfolio_dir(key_a) / publish.VERSIONS
    published = publish.current(storage.portfolio_dir(key_a))
    assert [path.name for path in versions.iterdir()] == [published.name]  # the replaced version is gone
    assert storage.shards_dir(key_a).resolve() == (published / "shards").resolve()


def test_a_twin_that_breaks_the_upload_schema_fails_its_shard_step_with_the_column_named(storage, landed, monkeypatch):
    real_protect = shards.protect

    def out_of_range(synthetic, real, engine, options, **kwargs):
        protected, report = real_protect(synthetic, real, engine, options, **kwargs)
        protected.loc[0, "Amount"] = 10**9
        protected.loc[1, "Home"] = "castle"
        return protected, report

    monkeypatch.setattr(shards, "protect", out_of_range)
    key, result = clone(storage, landed(), raise_on_error=False, assets=SIX)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "synthetic_sample.make_shard[shard_00000]"
    message = failure.step_failure_data.error.to_string()
    assert "'Amount'" in message and "in_range" in message and "'Home'" in message and "castle" in message
    assert not storage.shards_dir(key).exists(), "a shard that breaks the contract is never published"


def test_a_blocking_privacy_check_stops_the_reports_when_real_rows_leak(storage, landed, monkeypatch):
    def leaky(synthetic, real, engine, options, **kwargs):
        protected, report = shard_protect(synthetic, real, engine, options, **kwargs)
        return pd.concat([protected, real.head(3)], ignore_index=True), report

    shard_protect = shards.protect
    monkeypatch.setattr(shards, "protect", leaky)
    key, result = clone(storage, landed(), raise_on_error=False, assets=SIX)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["no_exact_copies"].passed and checks["no_exact_copies"].metadata["exact_copies"].value >= 3
    assert "quality_report" not in {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert not (storage.portfolio_dir(key) / "quality_report.json").exists()
    assert not (storage.portfolio_dir(key) / "synthetic.csv").exists(), "the leaking twin is never downloadable"
    assert "nothing is at the download path" in checks["no_exact_copies"].metadata["publication"].value


def test_a_failed_blocking_check_leaves_the_previous_good_twin_and_its_reports_at_the_download_paths(
        cloned, tmp_path, monkeypatch):
    storage, key, first = cloned.copy(tmp_path), cloned.key, cloned.result
    folder = storage.portfolio_dir(key)
    good = {name: sha256_file(folder / name) for name in ("synthetic.csv", "model.json", "quality_report.json",
                                                           "shards.json", "raw_upload.json")}
    shard_protect = shards.protect
    monkeypatch.setattr(shards, "protect", lambda synthetic, real, *args, **kwargs: (
        lambda out: (pd.concat([out[0], real.head(3)], ignore_index=True), out[1]))(
        shard_protect(synthetic, real, *args, **kwargs)))
    _, leaked = clone(storage, storage.landing / cloned.source.name, raise_on_error=False, assets=SIX, seed=4)
    checks = {e.check_name: e for e in leaked.get_asset_check_evaluations()}
    assert not checks["no_exact_copies"].passed
    assert "previous good twin stays" in checks["no_exact_copies"].metadata["publication"].value
    assert {name: sha256_file(folder / name) for name in good} == good  # the whole set, not just the twin
    assert publish.current(folder).name == first.run_id


def test_deleting_the_raw_upload_after_the_clone_is_audited_and_later_steps_say_why_they_cannot_run(storage, landed):
    source = landed()
    key, result = clone(storage, source, delete_raw=True)
    assert result.success
    assert not source.exists() and not storage.raw_dir(key).exists()
    assert (storage.portfolio_dir(key) / "synthetic.csv").exists()
    entries = AuditLog(storage.audit_db).entries(key)
    # The audit is the last step that needs real rows: raw is deleted after it, and the audit still ran.
    assert list(entries["operation"]) == OPERATIONS[:-1] + ["RAW_DATA_DELETED", "PRIVACY_AUDITED"]
    assert set(entries.iloc[-2]["metadata"]["deleted"]) == {str(source), str(storage.raw_dir(key) / "loans.csv")}
    assert json.loads((storage.portfolio_dir(key) / "privacy_audit.json").read_text())["status"] == "completed"

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(portfolios.name, [key])
    rerun = dg.materialize([*ASSETS], partition_key=key, instance=instance, raise_on_error=False,
                           resources=twin_resources(storage.data_dir), selection=["raw_upload"])
    failure = next(e for e in rerun.all_events if e.is_step_failure)
    assert "deleted after its clone" in failure.step_failure_data.error.to_string()


def test_tampering_with_one_audit_row_breaks_the_chain_at_that_row(cloned, tmp_path):
    storage, key = cloned.copy(tmp_path), cloned.key
    log = AuditLog(storage.audit_db)
    assert log.verify().ok
    entries = log.entries(key)
    target = entries.iloc[2]
    with duckdb.connect(str(storage.audit_db)) as connection:
        connection.execute("UPDATE audit_log SET data_hash = ? WHERE entry_hash = ?", ["0" * 64, target["entry_hash"]])
    result = AuditLog(storage.audit_db).verify()
    assert not result.ok and result.first_broken_id == target["id"] and result.checked == target["id"] - 1


def test_the_twin_stays_published_and_the_run_succeeds_when_the_privacy_audit_fails(cloned, tmp_path, monkeypatch):
    def broken(real, options, holdout_share=0.2):
        raise RuntimeError("attack crashed")

    storage, key = cloned.copy(tmp_path), cloned.key
    folder = storage.portfolio_dir(key)
    published = {name: sha256_file(folder / name) for name in ("synthetic.csv", "quality_report.json")}
    monkeypatch.setattr(pipeline, "privacy_audit", broken)
    _, result = clone(storage, storage.landing / cloned.source.name, raise_on_error=False, assets=["privacy_audit"])
    assert result.success
    assert {name: sha256_file(folder / name) for name in published} == published
    assert publish.current(folder).name == cloned.result.run_id
    audit = json.loads((storage.staged(key, result.dagster_run) / "privacy_audit.json").read_text())
    assert audit == {"status": "failed", "error": "RuntimeError: attack crashed"}
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "privacy_audit_finds_no_leak")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN


def test_the_privacy_audit_asset_reports_its_budget_and_risks(cloned):
    result = cloned.result
    metadata = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                    if e.asset_key.path[-1] == "privacy_audit")
    assert metadata["status"].value == "completed" and metadata["budget_seconds"].value == 40.0
    assert "inference: Debt" in metadata["risks"].value and metadata["flagged"].value == "nothing"
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "privacy_audit_finds_no_leak")
    assert check.passed


def test_drop_identifiers_through_the_run_config_gives_a_twin_without_them_that_passes_its_contract(storage):
    """`drop_identifiers` in the run config (the sidecar's and the API's route too): the upload's contract is the
    twin's columns, so the schema check, the privacy recounts and the reports hold without the dropped columns."""
    from test_privacy_identifiers import customers

    storage.landing.mkdir(parents=True, exist_ok=True)
    source = storage.landing / "customers.csv"
    real = customers(n=500)
    real.to_csv(source, index=False)
    key, result = clone(storage, source, drop_identifiers=True)
    assert result.success
    checks = {check.check_name: check.passed for check in result.get_asset_check_evaluations()}
    assert checks["matches_upload_schema"] and checks["k_anonymity_at_least_k"] and checks["no_exact_copies"], checks
    folder = storage.portfolio_dir(key)
    privacy = json.loads((folder / "privacy_report.json").read_text())
    dropped = set(privacy["direct_identifiers"])
    assert {"ssn", "contact", "phone", "card_no"} <= dropped and "telephone" not in dropped
    twin = pd.read_csv(folder / "synthetic.csv")
    assert list(twin.columns) == [name for name in real.columns if name not in dropped] and len(twin) == 500
    assert set(json.loads((folder / "schema.json").read_text())["columns"]) == set(twin.columns)


def test_a_landed_semicolon_windows_export_is_published_in_its_own_dialect(storage):
    """The landing path wrote a German export (semicolons, Windows-1252) back as comma-separated UTF-8."""
    import numpy as np

    rng = np.random.default_rng(1)
    storage.landing.mkdir(parents=True, exist_ok=True)
    source = storage.landing / "kredite.csv"
    pd.DataFrame({"stadt": rng.choice(["München", "Köln", "Genève"], 400),
                  "einkommen": [f"{v:.2f}".replace(".", ",") for v in rng.lognormal(10, 0.4, 400)]}
                 ).to_csv(source, sep=";", index=False, encoding="cp1252")
    key, result = clone(storage, source, assets=SIX)
    assert result.success
    written = (storage.portfolio_dir(key) / "synthetic.csv").read_bytes()
    assert written.startswith(b"stadt;einkommen")
    twin = pd.read_csv(storage.portfolio_dir(key) / "synthetic.csv", sep=";", encoding="cp1252")
    assert set(twin["stadt"]) <= {"München", "Köln", "Genève"}


@pytest.mark.slow
def test_no_exact_extreme_or_rare_value_in_any_contract_report_metadata_log_or_audit_row(storage):
    """Every file a clone writes outside raw/ (schema, model, reports, manifests, lineage), every event of its
    run (asset metadata, check metadata, logs) and every audit row: no real extreme, no value seen < k times."""
    rng = np.random.default_rng(4)
    n = 1200
    real = pd.DataFrame({"income": np.round(rng.lognormal(10.5, 0.5, n), 2), "age": rng.integers(25, 65, n),
                         "grade": rng.choice(list("ABCDE"), n), "branch": rng.choice(["north", "south", "east"], n)})
    real["loan"] = np.round(real["income"] * rng.uniform(0.1, 0.9, n), 2)
    real["total"] = np.round(real["loan"] * 1.01, 2)
    real.loc[0, ["income", "loan", "total"]] = [987654.31, 876543.21, 885308.64]  # one borrower's extremes
    real.loc[1, ["income", "loan", "total"]] = [1234.57, 123.47, 124.70]
    real.loc[[2, 3], "grade"] = "ZRARE"  # seen twice, k = 5
    real.loc[4, "branch"] = "SECRETBRANCH"
    real["bonus"] = np.nan
    real.loc[[5, 6], "bonus"] = 31337.77
    secrets = ["987654.31", "876543.21", "885308.64", "1234.57", "123.47", "124.7", "ZRARE", "SECRETBRANCH", "31337.77"]
    storage.landing.mkdir(parents=True, exist_ok=True)
    source = storage.landing / "extremes.csv"
    real.to_csv(source, index=False)
    instance = dg.DagsterInstance.ephemeral()
    key, result = clone(storage, source, instance=instance)
    assert result.success
    texts = {str(path): path.read_text(errors="replace") for path in storage.root.rglob("*")
             if path.is_file() and "raw" not in path.relative_to(storage.root).parts and path != source
             and path.suffix in (".json", ".html", ".txt", ".log", ".heads", ".version")}
    assert any(path.endswith("schema.json") for path in texts) and any(path.endswith("model.json") for path in texts)
    texts["events"] = "\n".join(repr(event) for event in instance.all_logs(result.run_id))
    log = AuditLog(storage.audit_db)
    texts["audit"] = log.entries().to_json() + log.lineage().to_json()
    number = r"(?<![\d.]){}(?![\d])"
    leaks = [(secret, where) for where, text in texts.items() for secret in secrets
             if re.search(number.format(re.escape(secret)), text)]
    assert leaks == []


def test_the_run_s_privacy_report_keeps_why_each_detected_quasi_identifier_was_chosen(storage):
    """raw_upload pins the detected quasi-identifiers for every shard with their detection reason, so the report
    does not claim the user gave them (issue #11)."""
    from test_cli_clone import applicants

    storage.landing.mkdir(parents=True, exist_ok=True)
    source = storage.landing / "applicants.csv"
    applicants().to_csv(source, index=False)
    key, result = clone(storage, source, assets=SIX)
    assert result.success
    folder = storage.portfolio_dir(key)
    choice = json.loads((folder / "privacy_report.json").read_text())["protection"]["quasi_identifier_choice"]
    assert choice["chosen"] == {"age": "the word 'age' names age / birth date",
                                "region": "the word 'region' names place (postcode, state, region)"}
    assert "ratio" in choice["not_chosen"]["loan_to_income"] and "run config" in choice["override"]
