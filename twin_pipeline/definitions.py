"""The Dagster code location of twin-pipeline: `dagster dev -w workspace.yaml` (or `-m twin_pipeline.definitions`).

`clone_job` is importable from here for `dg.build_reconstructable_job("twin_pipeline.definitions", "clone_job")`."""

from .defs.build import build_definitions, clone_job, twin_resources

__all__ = ["build_definitions", "clone_job", "twin_resources", "defs"]

defs = build_definitions()
