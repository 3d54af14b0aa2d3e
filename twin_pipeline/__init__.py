"""twin-pipeline: privacy-safe synthetic digital twins of credit and loan tables.

The notebook API: `GaussianCopulaEngine` (fit / sample / save), `DigitalTwinCloner`
(train / generate / get_comparison) and `enforce_k_anonymity(df, target_k=5)`. None of it imports Dagster;
the orchestration lives in `twin_pipeline.defs`.
"""

from .cloner import DigitalTwinCloner
from .engine import GaussianCopulaEngine
from .privacy import enforce_k_anonymity

__all__ = ["DigitalTwinCloner", "GaussianCopulaEngine", "enforce_k_anonymity"]
