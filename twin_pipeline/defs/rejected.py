"""Rejected uploads in the Dagster UI: an asset with no job of its own, observed by the landing sensor each
time a landed file or bundle is moved to rejected/, so the catalog lists every rejection with its reason
(Assets -> rejected_uploads -> Events) instead of one sensor tick's log."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

rejected_uploads = dg.AssetSpec(
    "rejected_uploads", kinds={"csv"}, group_name="digital_twin",
    description="Files and bundles landed in <data>/landing/ that are not readable tables: each observation names "
                "the file, the reason and where it was moved (<data>/rejected/, beside <name>.reason.txt). "
                "`twin status` lists them too.")


def rejection_observation(name: str, reason: str, moved_to: Path | None) -> dg.AssetObservation:
    return dg.AssetObservation(asset_key=rejected_uploads.key, description=f"rejected {name}: {reason}", metadata={
        "file": name, "reason": reason,
        "moved_to": dg.MetadataValue.path(str(moved_to)) if moved_to else "(could not be moved)",
    })
