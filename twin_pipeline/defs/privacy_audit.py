"""The attacker audit of a portfolio's twin as its own asset, after the product and its quality report.

Making the twin never waits for the audit: `privacy_audit` runs last in the clone job, within the portfolio's
time budget (`audit_budget`, default 60 s), in no concurrency pool, and an audit that fails or cannot run is materialized as such (status, reason) and flagged by a warning check;
it does not fail the clone run. It needs the real rows, so
with `delete_raw` the raw upload is deleted after it (or by `quality_report` when the audit is not in the run).
"""

import dagster as dg
import pandas as pd

from .. import pipeline
from ..pipeline import AUDIT_FILE
from ..privacy.risk import risk_figures
from ..tables import TwinInputError
from .display import markdown_table
from .raw import delete_raw_audited, load_real, options_of
from .resources import TwinStorage
from .shard_steps import STEP_IO
from .audit_trail import audit_facts
from .shared import twin_asset

ASSET = "privacy_audit"


def runs_in_this_run(context: dg.AssetExecutionContext) -> bool:
    """Whether the privacy_audit steps are part of the current run (so they, not quality_report, delete raw)."""
    step_keys = context.run.step_keys_to_execute
    return ASSET in context.job_def.graph.node_names() and (
        step_keys is None or any(key.split(".")[0] == ASSET for key in step_keys))


@dg.op(out=dg.Out(dict, io_manager_key=STEP_IO))
def attack(context: dg.OpExecutionContext, storage: TwinStorage, raw_upload: dict, quality_report: dict) -> dict:
    """Run the audit (`quality_report` only orders it after the report); any failure becomes the audit's status."""
    manifest = raw_upload["manifest"]
    try:
        audit = pipeline.privacy_audit(load_real(storage, manifest), options_of(manifest))
    except TwinInputError as error:  # the raw upload is gone or changed: nothing to attack with
        audit = {"status": "skipped", "skipped": str(error)}
    except Exception as error:  # noqa: BLE001 - a failed audit is reported, it never fails the clone
        context.log.exception("the privacy audit failed")
        audit = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    context.log.info(pipeline.audit_summary(audit))
    return audit


@dg.op
def publish_audit(context: dg.OpExecutionContext, storage: TwinStorage, raw_upload: dict,
                  audit: dict) -> dg.Output[dict]:
    """The audit as the asset's value (written and audited as PRIVACY_AUDITED), then the raw upload deleted when
    the clone asked for it: the audit was the last step that needed real rows."""
    manifest = raw_upload["manifest"]
    deleted = delete_raw_audited(context, storage, manifest) if manifest["delete_raw"] else {}
    return dg.Output(audit, metadata={**audit_metadata(audit), **deleted, **audit_facts(manifest["options"])})


@twin_asset("PRIVACY_AUDITED", files={"audit": AUDIT_FILE}, decorator=dg.graph_asset, kinds={"json"})
def privacy_audit(raw_upload: dict, quality_report: dict):
    """An attacker's view of the pipeline, off the clone's critical path: the same pipeline refitted on 80 % of
    the rows, its twin attacked with the other 20 % as the control set (membership by distance to the closest
    twin row, inference of the secret columns, linkability, singling-out), each risk with a 95 % interval,
    within the time budget (`audit_budget`)."""
    return publish_audit(raw_upload, attack(raw_upload, quality_report))


def audit_metadata(audit: dict) -> dict:
    """What the asset page shows: status, budget, what was flagged, and each risk with its interval."""
    metadata = {"status": audit.get("status", "skipped"), "summary": pipeline.audit_summary(audit)}
    if audit.get("status") != "completed":
        return metadata
    table = pd.DataFrame([{"attack": name, "risk": figure["risk"], "95% CI low": figure["ci"][0],
                           "95% CI high": figure["ci"][1]} for name, figure in risk_figures(audit).items()])
    budget = audit["budget"]
    return {**metadata, "flagged": ", ".join(audit["flagged"]) or "nothing", "elapsed_seconds": budget["elapsed"],
            "budget_seconds": budget["seconds"], "truncated": budget["truncated"],
            "risks": dg.MetadataValue.md(markdown_table(table))}
