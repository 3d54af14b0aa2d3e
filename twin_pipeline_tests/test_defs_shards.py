"""The sharded twin in Dagster: one step per shard, the same bytes in one process, in one process per step and
on Celery workers; k and copies recounted over all shards; the definitions load with each step executor."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import stop_process_group

from twin_pipeline.definitions import build_definitions, clone_job
from twin_pipeline.defs.config import CloneConfig
from twin_pipeline.defs.demo import prepare_home
from twin_pipeline.defs.partitions import portfolios, table_key
from twin_pipeline.defs.raw import options_of
from twin_pipeline.defs.resources import TwinStorage
from twin_pipeline.engine import GaussianCopulaEngine
from twin_pipeline import publish, shards
from twin_pipeline.shards import make_shards, verify_shards
from twin_pipeline.tables import read_table, sha256_file

REPOSITORY = Path(__file__).resolve().parents[1]
ROWS, SHARD_ROWS = 600, 200
SHARD_STEPS = [f"synthetic_sample.make_shard[shard_{index:05d}]" for index in range(ROWS // SHARD_ROWS)]
THROUGH_THE_PRODUCT = [dg.AssetKey(name) for name in
                       ("raw_upload", "fitted_marginals", "synthetic_sample", "k_anonymized_output")]
WORKER_DEADLINE_SECONDS = 60


@pytest.fixture(scope="module")
def upload(tmp_path_factory, credit_data):
    path = tmp_path_factory.mktemp("upload") / "loans.csv"
    credit_data.head(ROWS).to_csv(path, index=False)
    return path


def run_config(upload, execution: dict | None = None) -> dict:
    """Three shards of 200 rows; a 200-row shard may need up to 5 % of its rows suppressed to reach k = 5."""
    config = dg.RunConfig(ops={"raw_upload": CloneConfig(source=str(upload), seed=5, shard_rows=SHARD_ROWS,
                                                         max_suppression=0.05)}).to_config_dict()
    return {**config, "execution": {"config": execution}} if execution else config


def materialize(root, upload, executor: str | None = None, execution: dict | None = None):
    """Materialize the portfolio through its product (with the checks on it) on a persistent instance: in this
    process (executor None), or with one of the code location's executors, rebuilding the job in each step."""
    key = table_key(upload.name, upload)
    with dg.DagsterInstance.from_config(str(prepare_home(root / "dagster_home"))) as instance:
        instance.add_dynamic_partitions(portfolios.name, [key])
        if executor is None:
            result = clone_job(str(root)).execute_in_process(
                run_config=run_config(upload), instance=instance, partition_key=key,
                asset_selection=THROUGH_THE_PRODUCT)
        else:
            job = dg.build_reconstructable_job("twin_pipeline.definitions", "clone_job",
                                               reconstructable_kwargs={"data_dir": str(root), "executor": executor})
            result = dg.execute_job(job, instance, run_config=run_config(upload, execution),
                                    asset_selection=THROUGH_THE_PRODUCT, tags={"dagster/partition": key},
                                    raise_on_error=True)
        assert result.success
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        pids = {event.step_key: event.pid for event in result.all_events if event.is_step_start}
    return TwinStorage(data_dir=str(root)), key, checks, pids


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, upload):
    return (materialize(tmp_path_factory.mktemp("one_process"), upload),
            materialize(tmp_path_factory.mktemp("multiprocess"), upload, "multiprocess"))


def written(storage: TwinStorage, key: str) -> Path:
    """What the newest run wrote: these runs stop at the product, before quality_report publishes it, so their
    outputs are in the run's own version of the portfolio."""
    return max((storage.portfolio_dir(key) / publish.VERSIONS).iterdir(), key=lambda path: path.stat().st_mtime)


def shard_files(storage, key):
    return sorted((written(storage, key) / "shards").glob("shard-*.parquet"))


def assert_same_twin(one: TwinStorage, other: TwinStorage, key: str) -> None:
    assert [path.name for path in shard_files(one, key)] == ["shard-00000.parquet", "shard-00001.parquet",
                                                             "shard-00002.parquet"]
    for a, b in zip(shard_files(one, key), shard_files(other, key), strict=True):
        assert sha256_file(a) == sha256_file(b), a.name
    for name in ("shards.json", "synthetic.csv", "protection_report.json"):
        assert sha256_file(written(one, key) / name) == sha256_file(written(other, key) / name), name


@pytest.mark.slow
def test_each_shard_is_its_own_step_and_process_and_the_twin_is_byte_identical_to_the_in_process_run(two_runs):
    (one, key, _, one_pids), (many, _, checks, many_pids) = two_runs
    assert set(SHARD_STEPS) <= set(one_pids) and set(SHARD_STEPS) <= set(many_pids)
    assert set(one_pids.values()) == {os.getpid()}
    assert len({many_pids[step] for step in SHARD_STEPS} - {os.getpid()}) == len(SHARD_STEPS), "a process per shard"
    assert checks and all(checks.values())
    assert_same_twin(one, many, key)


@pytest.mark.slow
def test_a_reexecution_from_a_failed_shard_reruns_that_shard_only_and_publishes_the_same_twin(
        two_runs, upload, tmp_path, monkeypatch):
    (one, key, _, _), _ = two_runs
    make_shard = shards.make_shard

    def lost_worker(engine, real, options, shard, folder):
        if shard.index == 1:
            raise RuntimeError("the worker running shard 1 was lost")
        return make_shard(engine, real, options, shard, folder)

    monkeypatch.setattr(shards, "make_shard", lost_worker)
    job = dg.build_reconstructable_job("twin_pipeline.definitions", "clone_job",
                                       reconstructable_kwargs={"data_dir": str(tmp_path), "executor": "in_process"})
    with dg.DagsterInstance.from_config(str(prepare_home(tmp_path / "dagster_home"))) as instance:
        instance.add_dynamic_partitions(portfolios.name, [key])
        failed = dg.execute_job(job, instance, run_config=run_config(upload), asset_selection=THROUGH_THE_PRODUCT,
                                tags={"dagster/partition": key})
        assert not failed.success and not TwinStorage(data_dir=str(tmp_path)).shards_dir(key).exists()
        monkeypatch.undo()
        again = dg.execute_job(job, instance, tags={"dagster/partition": key},  # not taken from the parent run
                               reexecution_options=dg.ReexecutionOptions.from_failure(failed.run_id, instance))
        assert again.success
        rerun = {event.step_key for event in again.all_events if event.is_step_start}
    assert SHARD_STEPS[1] in rerun and not {SHARD_STEPS[0], SHARD_STEPS[2]} & rerun
    assert_same_twin(one, TwinStorage(data_dir=str(tmp_path)), key)
    storage = TwinStorage(data_dir=str(tmp_path))
    versions = storage.portfolio_dir(key) / publish.VERSIONS
    assert sorted(path.name for path in versions.iterdir()) == sorted([failed.run_id, again.run_id])
    assert not storage.published(key), "stopped before quality_report: nothing published"


@pytest.mark.slow
def test_the_shard_steps_make_the_twin_layer_one_makes_from_the_same_model_and_seed(two_runs, tmp_path):
    (storage, key, _, _), _ = two_runs
    manifest = json.loads((written(storage, key) / "raw_upload.json").read_text())
    engine = GaussianCopulaEngine.load(written(storage, key) / "model.json")
    real = read_table(storage.raw_dir(key) / manifest["file_name"])
    make_shards(engine, real, options_of(manifest), ROWS, tmp_path, shard_rows=SHARD_ROWS)
    for ours, layer_one in zip(shard_files(storage, key), sorted(tmp_path.glob("shard-*.parquet")), strict=True):
        pd.testing.assert_frame_equal(pd.read_parquet(ours), pd.read_parquet(layer_one))


@pytest.mark.slow
def test_k_and_copies_recounted_over_all_shards_and_the_product_is_their_union(two_runs):
    (storage, key, checks, _), _ = two_runs
    manifest = json.loads((written(storage, key) / "raw_upload.json").read_text())
    options = options_of(manifest)
    real = read_table(storage.raw_dir(key) / manifest["file_name"])
    verified = verify_shards((written(storage, key) / "shards"), real, options.quasi_identifiers, [])
    assert options.quasi_identifiers and verified["k"] >= 5 and verified["exact_matches"] == 0
    assert checks["k_anonymity_at_least_k"] and checks["no_exact_copies"] and checks["matches_upload_schema"]
    product = pd.read_csv(written(storage, key) / "synthetic.csv")
    manifest_rows = json.loads((written(storage, key) / "shards.json").read_text())["rows"]
    assert len(product) == verified["rows"] == manifest_rows
    assert product.groupby(options.quasi_identifiers, dropna=False).size().min() >= 5


RUN_SETTING = {"multiprocess": ("max_concurrent", 3), "k8s": ("max_concurrent", 3),
               "celery": ("include", ["twin_pipeline.definitions"])}


@pytest.mark.parametrize("executor", ["multiprocess", "k8s", "celery"])
def test_the_definitions_load_and_validate_with_each_step_executor(executor, monkeypatch):
    pytest.importorskip({"multiprocess": "dagster", "k8s": "dagster_k8s", "celery": "dagster_celery"}[executor])
    monkeypatch.setenv("TWIN_DATA_DIR", "/mnt/twin")
    defs = build_definitions(executor=executor)
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("clone_portfolio")
    assert job.executor_def.name == executor
    setting, value = RUN_SETTING[executor]
    config = dg.validate_run_config(job, {"execution": {"config": {setting: value}}})["execution"][executor]
    assert config[setting] == value  # a run's config still reaches the executor, over the project's defaults
    if executor == "multiprocess":
        assert "forkserver" in config["start_method"]
    if executor == "k8s":  # every step pod mounts the data volume where TWIN_DATA_DIR points
        from dagster_k8s.models import k8s_snake_case_dict
        from kubernetes.client import V1Volume, V1VolumeMount

        volume = V1Volume(**k8s_snake_case_dict(V1Volume, config["volumes"][0]))
        mount = V1VolumeMount(**k8s_snake_case_dict(V1VolumeMount, config["volume_mounts"][0]))
        assert volume.persistent_volume_claim["claim_name"] == "twin-data" and mount.name == volume.name
        assert mount.mount_path == "/mnt/twin" and "TWIN_DATA_DIR=/mnt/twin" in config["env_vars"]
    if executor == "celery":
        assert config["backend"] == "rpc://"


def test_an_unknown_executor_is_named_with_the_choices():
    with pytest.raises(ValueError, match="'spark'.*multiprocess, k8s, celery"):
        build_definitions(executor="spark")


@pytest.fixture(scope="module")
def celery_worker(tmp_path_factory):
    """A `dagster-celery worker start` process (two worker processes) on a filesystem broker, so no message
    server is needed; yields the executor config that reaches it. Stopped afterwards."""
    pytest.importorskip("dagster_celery")
    folder = tmp_path_factory.mktemp("celery")
    queue, results = folder / "queue", folder / "results"
    queue.mkdir(), results.mkdir()
    execution = {"broker": "filesystem://", "backend": f"file://{results}", "config_source": {
        "broker_transport_options": {"data_folder_in": str(queue), "data_folder_out": str(queue),
                                     "control_folder": str(folder / "control")}}}  # not ./control in the checkout
    (folder / "celery.yaml").write_text(json.dumps({"execution": {"config": execution}}))  # JSON is YAML
    env = {**os.environ, "DAGSTER_HOME": str(prepare_home(folder / "home")), "PYTHONPATH": str(REPOSITORY)}
    log_path = folder / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-celery")), "worker", "start", "-A", "dagster_celery.app",
             "-y", str(folder / "celery.yaml"), "-i", "twin_pipeline.definitions", "--", "--concurrency=2"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        started = time.monotonic()
        while " ready." not in log_path.read_text():
            assert worker.poll() is None and time.monotonic() - started < WORKER_DEADLINE_SECONDS, log_path.read_text()
            time.sleep(0.5)
        yield execution
    finally:
        stop_process_group(worker, signal.SIGTERM)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")  # dagster-celery's, per step
def test_celery_workers_in_other_processes_make_the_same_twin(two_runs, celery_worker, upload, tmp_path):
    (one, key, _, _), _ = two_runs
    on_celery, _, checks, pids = materialize(tmp_path, upload, "celery", celery_worker)
    assert os.getpid() not in {pids[step] for step in SHARD_STEPS}
    assert checks and all(checks.values())
    assert_same_twin(one, on_celery, key)
