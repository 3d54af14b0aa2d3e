"""landing_sensor: a file dropped into `<data>/landing/` becomes a portfolio partition and one clone run; a bundle
of related tables (a folder with `.ready`, or a zip, holding CSVs and relationships.json) one related clone run."""


import dagster as dg

from ..tables import TwinInputError, sha256_file
from .assets import clone_portfolio
from .bundles import bundle_candidates, inspect_bundle
from .config import config_for_landed_file
from .landing import LandingCursor, candidates, probe_table, reject
from .partitions import portfolio_key, portfolios
from .rejected import rejection_observation
from .related_assets import RelatedConfig, clone_related_portfolio
from .resources import TwinStorage


@dg.sensor(jobs=[clone_portfolio, clone_related_portfolio], default_status=dg.DefaultSensorStatus.RUNNING,
           minimum_interval_seconds=5,
           description="Watches <data>/landing/: each new, fully written table starts one clone of its portfolio "
                       "(clone_portfolio), each complete bundle of related tables one clone_related_portfolio; "
                       "the same bytes landing again start nothing; unreadable ones go to <data>/rejected/.")
def landing_sensor(context: dg.SensorEvaluationContext, storage: TwinStorage) -> dg.SensorResult:
    storage.ensure_folders()
    cursor = LandingCursor.from_json(context.cursor)
    tables, bundles = candidates(storage.landing), bundle_candidates(storage.landing)
    seen = {**tables, **bundles}
    new_keys: list[str] = []
    rejections: list[dg.AssetObservation] = []
    requests: list[dg.RunRequest] = []
    for name in cursor.settled(seen):
        path = storage.landing / name
        cursor.mark_handled(name, seen[name])
        try:
            if name in bundles:
                sha = inspect_bundle(path)
                job, op, config = clone_related_portfolio.name, "related_twin", RelatedConfig(source=str(path))
            else:
                probe_table(path)
                job, op, config = clone_portfolio.name, "raw_upload", config_for_landed_file(path)
                sha = sha256_file(path)
        except (TwinInputError, OSError) as error:
            rejections.append(_reject(context, path, storage, getattr(error, "problem", None) or str(error)))
            continue
        key = portfolio_key(name, sha)
        if sha in cursor.hashes or key in new_keys or context.instance.has_dynamic_partition(portfolios.name, key):
            context.log.info(f"{name}: same bytes as portfolio {cursor.hashes.get(sha, key)}, not cloned again")
            continue
        cursor.hashes[sha] = key
        new_keys.append(key)
        requests.append(dg.RunRequest(run_key=key, partition_key=key, job_name=job,
                                      run_config=dg.RunConfig(ops={op: config}), tags={"twin/landed_file": name}))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[portfolios.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor.to_json(),
        asset_events=rejections,
        skip_reason=None if requests else "; ".join(
            [f"no new settled table or bundle in {storage.landing} ({len(cursor.waiting)} still settling)"]
            + [event.description for event in rejections]),
    )


def _reject(context: dg.SensorEvaluationContext, path, storage: TwinStorage, reason: str) -> dg.AssetObservation:
    """Move a bad file or bundle aside; if even that fails, log it: one bad landing never stops the others.
    Returns the observation of `rejected_uploads` that shows the rejection in the UI."""
    moved = None
    try:
        moved = reject(path, storage.rejected, reason)
        context.log.warning(f"rejected {path.name} -> {moved}: {reason}")
    except OSError as error:
        context.log.error(f"{path.name} is not a table or bundle ({reason}) and could not be moved to "
                          f"rejected/: {error}")
    return rejection_observation(path.name, reason, moved)
