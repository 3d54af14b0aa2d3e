"""`twin demo`: clone the bundled credit sample end to end on a persistent local Dagster instance.

The run is recorded in `<data>/dagster_home` (configured by the repository's dagster.yaml), so opening the UI
on that home afterwards shows the portfolio, its six assets, the check results and the run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from ..tables import sha256_file
from .config import CloneConfig
from .io_manager import asset_files
from .partitions import portfolio_key, portfolios
from .resources import TwinStorage

REPOSITORY = Path(__file__).resolve().parents[2]
SAMPLE = REPOSITORY / "data" / "samples" / "credit_data.csv"
INSTANCE_CONFIG = REPOSITORY / "dagster.yaml"


class BlockingCheckFailed(RuntimeError):
    """The demo twin failed a blocking (privacy) check: it must not be used."""


def prepare_home(home: Path) -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml in it."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_CONFIG, home / "dagster.yaml")
    return home


def run_demo(data_dir: str | Path, sample: str | Path = SAMPLE) -> dict:
    """Materialize the sample portfolio with its checks; return where everything is and how the checks went.

    Raises BlockingCheckFailed when a blocking check fails, RuntimeError when a step fails.
    """
    from .build import clone_job

    storage = TwinStorage(data_dir=str(data_dir))
    home = prepare_home(storage.root / "dagster_home")
    sample = Path(sample).resolve()
    portfolio = portfolio_key(sample.name, sha256_file(sample))
    job = clone_job(str(storage.root))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        if not instance.has_dynamic_partition(portfolios.name, portfolio):
            instance.add_dynamic_partitions(portfolios.name, [portfolio])
        result = job.execute_in_process(
            instance=instance, partition_key=portfolio, raise_on_error=False,
            run_config=dg.RunConfig(ops={"raw_upload": CloneConfig(source=str(sample))},
                                    loggers={"console": {"config": {"log_level": "WARNING"}}}),
        )
    checks = {evaluation.check_name: {"passed": evaluation.passed, "severity": evaluation.severity.value,
                                      "blocking": evaluation.blocking,
                                      "metadata": {key: getattr(value, "value", value)
                                                   for key, value in evaluation.metadata.items()}}
              for evaluation in result.get_asset_check_evaluations()}
    failed = [name for name, check in checks.items() if check["blocking"] and not check["passed"]]
    if failed:
        raise BlockingCheckFailed(f"portfolio {portfolio}: blocking check(s) failed: {', '.join(failed)} "
                                  f"(run {result.run_id} in {home})")
    if not result.success:
        failures = [event.step_key for event in result.all_events if event.is_step_failure]
        raise RuntimeError(f"portfolio {portfolio}: run {result.run_id} failed at {', '.join(failures)}")
    folder = storage.portfolio_dir(portfolio)
    shown = ("k_anonymized_output", "quality_report", "privacy_audit", "fitted_marginals", "raw_upload")
    outputs = {path.name: str(path) for asset in shown for path in asset_files(folder, asset).values()}
    quality = result.output_for_node("quality_report")["quality"]
    return {
        "portfolio": portfolio, "run_id": result.run_id, "portfolio_dir": str(folder), "outputs": outputs,
        "similarity_score": quality["similarity_score"], "correlation_error": quality["correlation_error"],
        "checks": checks, "audit_db": str(storage.audit_db), "dagster_home": str(home),
        "open_ui": f"DAGSTER_HOME={home} TWIN_DATA_DIR={storage.root} dagster dev -w {REPOSITORY / 'workspace.yaml'}",
    }
