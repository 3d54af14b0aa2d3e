"""The statistics engine: column kinds, marginals, latent correlation and the copula (no Dagster)."""

from .copula import GaussianCopulaEngine

__all__ = ["GaussianCopulaEngine"]
