"""landing_sensor: a file dropped into `<data>/landing/` becomes a portfolio partition and one clone run; a bundle
of related tables (a folder with `.ready`, or a zip, holding CSVs and relationships.json) one related clone run.

No landed file can stop the sensor: every per-file failure, whatever its type, moves that file or bundle to
`rejected/` with a reason and the tick goes on; a tick starts no new file after TICK_BUDGET_SECONDS (the rest is
looked at by the next tick). A request is validated here, before a run starts (settings against the table's
columns), so a bad sidecar rejects its file with the reason instead of launching a run that fails later.
The same bytes landing again start nothing once their portfolio is published; if its clone failed, landing
the file again (or touching it) starts a new run.
"""

import os
import time

import dagster as dg
import pandas as pd

from ..options import resolve_options
from ..tables import TwinInputError, sampled_sha256
from .assets import clone_portfolio
from .bundles import bundle_candidates, inspect_bundle
from .config import config_for_landed_file, sidecar_of
from .landing import TICK_BUDGET_SECONDS, LandingCursor, candidates, landed_problem, probe_table, reject
from .partitions import bundle_portfolios, portfolio_key, portfolios
from .rejected import rejection_observation
from .related_assets import RelatedConfig, clone_related_portfolio
from .resources import TwinStorage

ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED]


@dg.sensor(jobs=[clone_portfolio, clone_related_portfolio], default_status=dg.DefaultSensorStatus.RUNNING,
           minimum_interval_seconds=5,
           description="Watches <data>/landing/: each new, fully written table starts one clone of its portfolio "
                       "(clone_portfolio), each complete bundle of related tables one clone_related_portfolio; "
                       "the same bytes landing again start nothing unless their clone failed; unreadable ones, "
                       "links and bad settings go to <data>/rejected/ with a reason.")
def landing_sensor(context: dg.SensorEvaluationContext, storage: TwinStorage) -> dg.SensorResult:
    storage.ensure_folders()
    cursor = LandingCursor.from_json(context.cursor)
    tables, bundles = candidates(storage.landing), bundle_candidates(storage.landing)
    seen = {**tables, **bundles}
    new_keys: dict[str, dg.DynamicPartitionsDefinition] = {}  # partition key -> its set (tables or bundles)
    rejections: list[dg.AssetObservation] = []
    requests: list[dg.RunRequest] = []
    deadline = time.monotonic() + TICK_BUDGET_SECONDS
    for number, name in enumerate(cursor.settled(seen)):
        if number and time.monotonic() > deadline:  # the rest stays settled-but-unhandled: the next tick takes it
            cursor.waiting[name] = list(seen[name])
            continue
        path = storage.landing / name
        cursor.mark_handled(name, seen[name])
        try:
            request = _request(context, storage, path, name in bundles, seen[name], cursor.hashes)
        except Exception as error:  # any failure is this file's, never the folder's (see the module docstring)
            reason = error.problem if isinstance(error, TwinInputError) else f"{type(error).__name__}: {error}"
            rejections.append(_reject(context, path, storage, reason[:2000]))
            continue
        if request is None or request.partition_key in new_keys:
            continue
        cursor.hashes[request.tags["twin/content_digest"]] = request.partition_key
        new_keys[request.partition_key] = bundle_portfolios if name in bundles else portfolios
        requests.append(request)
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=_new_partitions(context.instance, new_keys),
        cursor=cursor.to_json(),
        asset_events=rejections,
        skip_reason=None if requests else "; ".join(
            [f"no new settled table or bundle in {storage.landing} ({len(cursor.waiting)} still settling)"]
            + [event.description for event in rejections]),
    )


def _request(context: dg.SensorEvaluationContext, storage: TwinStorage, path, is_bundle: bool,
             stat: tuple[int, int], hashes: dict[str, str]) -> dg.RunRequest | None:
    """The run of one settled landing, checked and validated; None when its bytes were cloned (or are being
    cloned) already, under this name or another. Raises (any exception) when the landing is bad."""
    problem = landed_problem(path)
    if problem:
        raise TwinInputError(path, problem)
    if is_bundle:
        sha, exact = inspect_bundle(path), True
        job, op, config = clone_related_portfolio.name, "related_twin", RelatedConfig(source=str(path))
        partitions = bundle_portfolios
    else:
        columns = probe_table(path)
        config = config_for_landed_file(path)
        # the sidecar's fields were checked when it was read; here, that every column it names is in the table
        resolve_options(pd.DataFrame(columns=columns), config.to_options(), sidecar_of(path) or path)
        job, op, partitions = clone_portfolio.name, "raw_upload", portfolios
        sha, exact = sampled_sha256(path, follow_links=False)  # at most 2 MiB read: the run hashes it all
    key = portfolio_key(path.name, sha)
    run_key = key
    for earlier in dict.fromkeys(k for k in (hashes.get(sha), key) if k):
        if context.instance.has_dynamic_partition(partitions.name, earlier):
            if not exact:  # same size, head and tail only: the run's full SHA-256 decides (partitions.py)
                context.log.info(f"{path.name}: same size, first and last MiB as portfolio {earlier}; its run "
                                 "compares the whole file")
            elif not _failed(context, storage, earlier):
                context.log.info(f"{path.name}: same bytes as portfolio {earlier}; not cloned again")
                return None
            else:
                context.log.info(f"{path.name}: the clone of portfolio {earlier} failed and published nothing: "
                                 "cloning again")
            run_key = f"{key}@retry-{stat[1]}"  # Dagster never launches a run key twice
    return dg.RunRequest(run_key=run_key, partition_key=key, job_name=job,
                         run_config=dg.RunConfig(ops={op: config}),
                         tags={"twin/landed_file": path.name[:200], "twin/content_digest": sha})


def _new_partitions(instance: dg.DagsterInstance, keys: dict[str, dg.DynamicPartitionsDefinition]
                    ) -> list[dg.AddDynamicPartitionsRequest]:
    """One request per partition set, adding the keys it does not have yet."""
    requests = []
    for partitions in (portfolios, bundle_portfolios):
        new = [key for key, chosen in keys.items()
               if chosen is partitions and not instance.has_dynamic_partition(partitions.name, key)]
        if new:
            requests.append(partitions.build_add_request(new))
    return requests


def _failed(context: dg.SensorEvaluationContext, storage: TwinStorage, portfolio: str) -> bool:
    """A portfolio whose clone failed: no published twin, a failed or canceled run, and none still going.
    (No run at all means the daemon has not created the requested one yet: not a failure.)"""
    if storage.published(portfolio):
        return False
    runs = context.instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": portfolio}), limit=20)
    statuses = {record.dagster_run.status for record in runs}
    return bool(statuses & {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}) and not statuses & set(ACTIVE)


def _reject(context: dg.SensorEvaluationContext, path, storage: TwinStorage, reason: str) -> dg.AssetObservation:
    """Move a bad file or bundle aside; if even that fails, log it: one bad landing never stops the others.
    Returns the observation of `rejected_uploads` that shows the rejection in the UI."""
    moved = None
    try:
        moved = reject(path, storage.rejected, reason)
        context.log.warning(f"rejected {path.name} -> {moved}: {reason}")
    except Exception as error:  # noqa: BLE001 - the tick goes on whatever happened to this one file
        context.log.error(f"{path.name} is not a table or bundle ({reason}) and could not be moved to "
                          f"rejected/: {error}")
    return rejection_observation(path.name[:200], reason, moved)


@dg.sensor(default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
           description="Marks a run whose run worker process is gone (killed, out of memory) as failed, so that "
                       "its place in the run queue is freed and queued clones start; the local run launcher "
                       "cannot report a dead worker itself (its run workers are local processes, so their pids are "
                       "checked here).")
def dead_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    instance = context.instance
    if instance.run_launcher.supports_check_run_worker_health:  # run monitoring fails its dead runs itself
        return dg.SkipReason("the run launcher checks its run workers itself")
    failed = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]), limit=100):
        run = record.dagster_run
        pid = run_worker_pid(instance, run.run_id)
        if pid is not None and not process_alive(pid):
            instance.report_run_failed(run, f"the run worker (pid {pid}) is gone (killed or out of memory): run "
                                            "marked failed so that its concurrency slots are freed")
            failed.append(run.run_id)
    return dg.SkipReason(f"marked {len(failed)} dead run(s) failed: {', '.join(failed)}" if failed
                         else "every started run has a live run worker")


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of a run's worker process, as recorded by its RUN_START event."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    event = records[0].event_log_entry.dagster_event if records else None
    return event.pid if event is not None else None


def process_alive(pid: int) -> bool:
    """Whether a local process runs (a zombie, killed but not yet reaped by its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
