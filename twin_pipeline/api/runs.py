"""Running the API's clones without a daemon, on the same Dagster instance `dagster dev` shows.

`dagster.yaml` queues runs for the daemon (QueuedRunCoordinator), and Dagster's default run launcher needs a
code-location gRPC server; `twin serve` has neither and must not need them. So it does what a run launcher
does, itself: it creates the run in the instance (status NOT_STARTED, with the job's Python origin, so the
UI shows it at once and the daemon never dequeues it) and starts `dagster api execute_run` for it, the worker
command every Dagster run launcher starts. At most `max_concurrent_runs` of its runs execute at a time (the
instance's own run-queue limit); the others wait as NOT_STARTED in the instance, which is the queue: a
restarted server picks them up. A worker that dies before its run finishes gets its run marked failed.

Why Dagster internals (`dagster._grpc.types.ExecuteRunArgs`, `dagster._cli.api`), and only here: Dagster has no
public way to execute a run that already exists in the instance. Its public entry points, `dagster.execute_job`
and `dagster job execute`, create their own run when they start; a run launcher (`instance.launch_run`) needs a
workspace of code-location servers. Creating the run only when a worker starts would hide waiting clones from
`dagster dev` and from a restarted server (the run queue above is the instance itself). So the server does what
`DefaultRunLauncher` does and every Dagster deployment relies on: `dagster api execute_run` with the
`ExecuteRunArgs` it expects. `test_api.py` pins that contract in the fast tests, so a Dagster upgrade that changes
it fails there, not in production.

Workers are forked from a server process that has already imported Dagster and this package (multiprocessing's
forkserver, preloaded): a fresh interpreter would spend several seconds of CPU importing them for every run.

A clone whose twin fits in one shard runs its steps in one process (executor `in_process`): there is nothing
to parallelise, and starting a process per step costs about a minute on a small machine. Larger twins keep
the default executor (one step per shard, in parallel).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
from pathlib import Path

import dagster as dg
from dagster._grpc.types import ExecuteRunArgs  # the worker's argument type, as every run launcher builds it
from dagster._serdes import serialize_value

from ..defs.partitions import portfolios
from ..defs.sensors import process_alive

log = logging.getLogger(__name__)

API_TAG, PORTFOLIO_TAG, FILE_TAG = "twin/api", "twin/portfolio_id", "twin/file_id"
SERVER_TAG, WORKER_TAG, PARTITION_TAG = "twin/server", "twin/worker_pid", "dagster/partition"
POLL_SECONDS = 1.0
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
ACTIVE = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}


def clone_job(data_dir: Path, executor: str | None) -> dg.ReconstructableJob:
    """The `clone_portfolio` job over `data_dir`, rebuildable in the worker process (and its step processes)."""
    return dg.build_reconstructable_job("twin_pipeline.definitions", "clone_job",
                                        reconstructable_kwargs={"data_dir": str(data_dir), "executor": executor})


PRELOAD = ["twin_pipeline.definitions", "dagster._cli.api"]


def _execute_run(serialized_args: str, log_path: str) -> None:
    """The body of a worker process: `dagster api execute_run <args>`, its output appended to `log_path`."""
    from dagster._cli.api import execute_run_command

    with open(log_path, "ab") as output:
        os.dup2(output.fileno(), 1)
        os.dup2(output.fileno(), 2)
    execute_run_command.main(args=[serialized_args], prog_name="dagster api execute_run")


class RunLauncher:
    """Creates clone runs in the instance and executes them in worker processes, a bounded number at a time."""

    def __init__(self, instance: dg.DagsterInstance, data_dir: Path, max_concurrent: int | None = None):
        self.instance, self.data_dir = instance, data_dir
        queue = instance.get_concurrency_config().run_queue_config
        self.max_concurrent = max(1, max_concurrent or (queue.max_concurrent_runs if queue else 0) or 2)
        self.server_id = f"{socket.gethostname()}:{os.getpid()}"
        self.logs = data_dir / "api" / "run-logs"
        self._workers: dict[str, multiprocessing.Process] = {}
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self._lock = threading.Lock()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, partition: str, run_config: dict, tags: dict[str, str], executor: str | None) -> dg.DagsterRun:
        """Add the portfolio partition and create its clone run (NOT_STARTED); the dispatcher starts it."""
        if not self.instance.has_dynamic_partition(portfolios.name, partition):
            self.instance.add_dynamic_partitions(portfolios.name, [partition])
        job = clone_job(self.data_dir, executor)
        run = self.instance.create_run_for_job(
            job_def=job.get_definition(), run_config=run_config, job_code_origin=job.get_python_origin(),
            status=dg.DagsterRunStatus.NOT_STARTED,
            tags={**tags, PARTITION_TAG: partition, API_TAG: "1", SERVER_TAG: self.server_id})
        self._wake.set()
        return run

    def start(self) -> None:
        self._adopt_orphans()
        self._thread = threading.Thread(target=self._loop, name="twin-run-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop dispatching; runs already executing finish in their own processes."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _api_runs(self, statuses) -> list[dg.DagsterRun]:
        return list(self.instance.get_runs(filters=dg.RunsFilter(statuses=list(statuses), tags={API_TAG: "1"})))

    def _adopt_orphans(self) -> None:
        """Runs left by a server that is gone: waiting ones become ours, executing ones whose worker died fail."""
        host = socket.gethostname()
        for run in self._api_runs([dg.DagsterRunStatus.NOT_STARTED]):
            owner_host, _, owner_pid = run.tags.get(SERVER_TAG, "").partition(":")
            if owner_host == host and owner_pid.isdigit() and not process_alive(int(owner_pid)):
                self.instance.add_run_tags(run.run_id, {SERVER_TAG: self.server_id})
        for run in self._api_runs(ACTIVE):
            owner_host = run.tags.get(SERVER_TAG, "").partition(":")[0]
            worker = run.tags.get(WORKER_TAG, "")
            if owner_host == host and worker.isdigit() and not process_alive(int(worker)):
                self.instance.report_run_failed(run, "its run worker is gone (the server stopped while it ran)")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reap()
                self._dispatch()
            except Exception:  # the dispatcher must outlive a locked SQLite file or a failed spawn
                if not self._stop.is_set():  # at shutdown the forkserver may already be gone
                    log.exception("run dispatcher")
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def _reap(self) -> None:
        with self._lock:
            done = {run_id: worker.exitcode for run_id, worker in self._workers.items() if not worker.is_alive()}
            for run_id in done:
                del self._workers[run_id]
        for run_id, code in done.items():
            run = self.instance.get_run_by_id(run_id)
            if run is not None and run.status not in FINISHED:
                self.instance.report_run_failed(run, f"the run worker exited with code {code} before the run "
                                                     f"finished (log: {self.logs / f'{run_id}.log'})")

    def _dispatch(self) -> None:
        with self._lock:
            free = self.max_concurrent - len(self._workers)
        if free <= 0:
            return
        waiting = [run for run in self._api_runs([dg.DagsterRunStatus.NOT_STARTED])
                   if run.tags.get(SERVER_TAG) == self.server_id and run.run_id not in self._workers]
        for run in sorted(waiting, key=self._created)[:free]:
            self._launch(run)

    def _created(self, run: dg.DagsterRun) -> float:
        record = self.instance.get_run_record_by_id(run.run_id)
        return record.create_timestamp.timestamp() if record else 0.0

    def _launch(self, run: dg.DagsterRun) -> None:
        args = ExecuteRunArgs(job_origin=run.job_code_origin, run_id=run.run_id,
                              instance_ref=self.instance.get_ref(), set_exit_code_on_failure=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        worker = self._context.Process(target=_execute_run, name=f"run-{run.run_id}",
                                       args=(serialize_value(args), str(self.logs / f"{run.run_id}.log")))
        worker.start()
        with self._lock:
            self._workers[run.run_id] = worker
        self.instance.add_run_tags(run.run_id, {WORKER_TAG: str(worker.pid)})

    def active(self) -> int:
        with self._lock:
            return len(self._workers)
