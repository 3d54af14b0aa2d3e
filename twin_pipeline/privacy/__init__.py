"""Privacy of the synthetic twin: k-anonymity with the least information loss, copy protection by risk, direct
identifiers replaced, privacy report.

No Dagster import: the statistics are usable from the CLI, tests and notebooks alike.
"""

from twin_pipeline.privacy.copies import exact_copy_mask, replace_disclosive_copies, replace_rare_strings
from twin_pipeline.privacy.k_anonymity import KAnonymityError, enforce_k_anonymity
from twin_pipeline.privacy.protect import protect_twin
from twin_pipeline.privacy.quasi_identifiers import choose_quasi_identifiers, detect_quasi_identifiers
from twin_pipeline.privacy.risk import attacker_risk, privacy_report

__all__ = [
    "KAnonymityError",
    "attacker_risk",
    "choose_quasi_identifiers",
    "detect_quasi_identifiers",
    "enforce_k_anonymity",
    "exact_copy_mask",
    "privacy_report",
    "protect_twin",
    "replace_disclosive_copies",
    "replace_rare_strings",
]
