"""landing_sensor: a file dropped into `<data>/landing/` becomes a portfolio partition and one clone run."""


import dagster as dg

from ..tables import TwinInputError, sha256_file
from .assets import clone_portfolio
from .config import config_for_landed_file
from .landing import LandingCursor, candidates, probe_table, reject
from .partitions import portfolio_key, portfolios
from .resources import TwinStorage


@dg.sensor(job=clone_portfolio, default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=5,
           description="Watches <data>/landing/: each new, fully written table starts one clone of its portfolio; "
                       "the same bytes landing again start nothing; unreadable files go to <data>/rejected/.")
def landing_sensor(context: dg.SensorEvaluationContext, storage: TwinStorage) -> dg.SensorResult:
    cursor = LandingCursor.from_json(context.cursor)
    seen = candidates(storage.landing)
    new_keys: list[str] = []
    requests: list[dg.RunRequest] = []
    for name in cursor.settled(seen):
        path = storage.landing / name
        cursor.mark_handled(name, seen[name])
        try:
            probe_table(path)
            config = config_for_landed_file(path)
            sha = sha256_file(path)
        except (TwinInputError, OSError) as error:
            _reject(context, path, storage, getattr(error, "problem", None) or str(error))
            continue
        key = portfolio_key(name, sha)
        if sha in cursor.hashes or key in new_keys or context.instance.has_dynamic_partition(portfolios.name, key):
            context.log.info(f"{name}: same bytes as portfolio {cursor.hashes.get(sha, key)}, not cloned again")
            continue
        cursor.hashes[sha] = key
        new_keys.append(key)
        requests.append(dg.RunRequest(run_key=key, partition_key=key,
                                      run_config=dg.RunConfig(ops={"raw_upload": config}),
                                      tags={"twin/landed_file": name}))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[portfolios.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor.to_json(),
        skip_reason=None if requests else f"no new settled table in {storage.landing} "
                                          f"({len(cursor.waiting)} file(s) still settling)",
    )


def _reject(context: dg.SensorEvaluationContext, path, storage: TwinStorage, reason: str) -> None:
    """Move a bad file aside; if even that fails, log it: one bad file never stops the others."""
    try:
        moved = reject(path, storage.rejected, reason)
        context.log.warning(f"rejected {path.name} -> {moved}: {reason}")
    except OSError as error:
        context.log.error(f"{path.name} is not a table ({reason}) and could not be moved to rejected/: {error}")
