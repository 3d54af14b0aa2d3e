"""The statistics engine: column kinds, marginals, latent correlation, the copula and the cloner (no Dagster)."""

from .cloner import DigitalTwinCloner
from .copula import GaussianCopulaEngine

__all__ = ["DigitalTwinCloner", "GaussianCopulaEngine"]
