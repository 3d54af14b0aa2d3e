"""`twin demo`: clone the bundled credit sample end to end on a persistent local Dagster instance.

The run is recorded in `<data>/dagster_home` (configured by the package's dagster.yaml), so opening the UI on
that home afterwards shows the portfolio, its assets, the check results and the run. The sample and the instance
config are package data: the demo runs from an installed package as from a source checkout.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from ..paths import INSTANCE_CONFIG, SAMPLES
from .checks import blocks_publication
from .config import CloneConfig
from .partitions import portfolios, table_key
from .resources import TwinStorage

SAMPLE = SAMPLES / "credit_data.csv"


class BlockingCheckFailed(RuntimeError):
    """The demo twin failed a blocking (privacy) check: it must not be used."""


def failed_blocking(checks: dict[str, dict]) -> list[str]:
    """The checks that stopped publication (a mined rule's WARN leaves the twin published, the demo successful)."""
    return [name for name, check in checks.items()
            if blocks_publication(check["passed"], check["severity"], check["blocking"])]


def prepare_home(home: Path) -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml in it."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_CONFIG, home / "dagster.yaml")
    return home


STAGE_EVENTS = {"STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "ASSET_CHECK_EVALUATION"}


def progress_logger(say: Callable[[str], None]) -> dg.LoggerDefinition:
    """A Dagster logger that reports each step as it starts and ends (with its time) and each check's
    result, through `say`: `twin demo` is not silent for the minute a clone takes."""
    started: dict[str, float] = {}

    class _Stages(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            meta = getattr(record, "dagster_meta", None)
            event = meta.get("dagster_event") if isinstance(meta, dict) else None
            if event is None or event.event_type_value not in STAGE_EVENTS:
                return
            step = event.step_key or ""
            if event.event_type_value == "STEP_START":
                started[step] = time.perf_counter()
                say(f"... {step}")
            elif event.event_type_value == "ASSET_CHECK_EVALUATION":
                check = event.event_specific_data
                say(f"    check {check.check_name}: {'passed' if check.passed else 'FAILED'}")
            else:
                seconds = time.perf_counter() - started.get(step, time.perf_counter())
                say(f"{'ok ' if event.event_type_value == 'STEP_SUCCESS' else 'FAILED'} {step} ({seconds:.1f} s)")

    @dg.logger(description="Prints each step of the run as it starts and ends.")
    def stages(_init_context) -> logging.Logger:
        log = logging.getLogger("twin_pipeline.demo.stages")
        log.setLevel(logging.DEBUG)
        log.propagate = False
        log.handlers = [_Stages()]
        return log

    return stages


def run_demo(data_dir: str | Path, sample: str | Path = SAMPLE, progress: Callable[[str], None] | None = None) -> dict:
    """Materialize the sample portfolio with its checks; return where everything is and how the checks went.
    `progress` is told each step as it starts and ends.

    Raises BlockingCheckFailed when a blocking check fails, RuntimeError when a step fails.
    """
    from .build import clone_job

    storage = TwinStorage(data_dir=str(data_dir))
    storage.ensure_folders()
    home = prepare_home(storage.root / "dagster_home")
    sample = Path(sample).resolve()
    portfolio = table_key(sample.name, sample)
    job = clone_job(str(storage.root))
    loggers = {"console": {"config": {"log_level": "WARNING"}}}
    if progress is not None:
        job = job.with_logger_defs({**job.loggers, "stages": progress_logger(progress)})
        loggers["stages"] = {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        if not instance.has_dynamic_partition(portfolios.name, portfolio):
            instance.add_dynamic_partitions(portfolios.name, [portfolio])
        result = job.execute_in_process(
            instance=instance, partition_key=portfolio, raise_on_error=False,
            run_config=dg.RunConfig(ops={"raw_upload": CloneConfig(source=str(sample))},
                                    loggers=loggers),
        )
    checks = {evaluation.check_name: {"passed": evaluation.passed, "severity": evaluation.severity.value,
                                      "blocking": evaluation.blocking,
                                      "metadata": {key: getattr(value, "value", value)
                                                   for key, value in evaluation.metadata.items()}}
              for evaluation in result.get_asset_check_evaluations()}
    failed = failed_blocking(checks)
    if failed:
        raise BlockingCheckFailed(f"portfolio {portfolio}: blocking check(s) failed: {', '.join(failed)} "
                                  f"(run {result.run_id} in {home})")
    if not result.success:
        failures = [event.step_key for event in result.all_events if event.is_step_failure]
        raise RuntimeError(f"portfolio {portfolio}: run {result.run_id} failed at {', '.join(failures)}")
    folder = storage.portfolio_dir(portfolio)
    outputs = {Path(value.value).name: value.value for event in result.get_asset_materialization_events()
               for name, value in event.materialization.metadata.items() if name.startswith("path ")}
    outputs["report.html"] = str(folder / "report.html")
    quality = result.output_for_node("quality_report")["quality"]
    return {
        "portfolio": portfolio, "run_id": result.run_id, "portfolio_dir": str(folder), "outputs": outputs,
        "similarity_score": quality["similarity_score"], "correlation_error": quality["correlation_error"],
        "quality_vs_ceiling": quality.get("quality_vs_ceiling"), "utility": {
            key: value for key, value in (quality.get("utility") or {}).items() if key != "importance_agreement"},
        "checks": checks, "audit_db": str(storage.audit_db), "dagster_home": str(home),
        "open_ui": f"DAGSTER_HOME={home} TWIN_DATA_DIR={storage.root} dagster dev -m twin_pipeline.definitions",
    }
