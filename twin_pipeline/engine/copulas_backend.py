"""The reference backend: the `copulas` library's GaussianMultivariate on the engine's encoded variables.

Kept behind `GaussianCopulaEngine(backend="copulas")` to compare quality and speed with the native engine on
the same data. Nothing else depends on it at run time (`copulas` is slow and BSL-1.1 licensed). Columns are
encoded as the native engine sees them (numbers, or a uniform draw inside a value's slice of [0, 1]), so the
two backends differ only in how marginals and correlation are fitted and sampled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .marginals import SlicedMarginal


def _encode(engine, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    encoded = {}
    for spec in engine.specs:
        for role, marginal, keys, mask in spec.variables(df[spec.name], engine.k, rng=rng):
            column = np.empty(len(df))
            if isinstance(marginal, SlicedMarginal):
                lower = np.concatenate([[0.0], np.cumsum(marginal.probabilities)[:-1]])
                column[mask] = lower[keys] + rng.uniform(size=len(keys)) * marginal.probabilities[keys]
                column[~mask] = rng.uniform(size=(~mask).sum())
            else:
                column[mask] = keys
                column[~mask] = np.median(keys) if len(keys) else 0.0
            encoded[f"v{len(encoded)}"] = column
    return pd.DataFrame(encoded)


def fit_reference(engine, df: pd.DataFrame):
    """Fit copulas' GaussianMultivariate (its default univariate search) on the encoded table."""
    from copulas.multivariate import GaussianMultivariate

    model = GaussianMultivariate()
    model.fit(_encode(engine, df, np.random.default_rng(0)))
    return model


def sample_reference(engine, size: int, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Sample `size` rows from the reference model, decoded per variable like the native engine's output."""
    saved = np.random.get_state()  # copulas draws from NumPy's global generator: seed it, then give it back
    try:
        np.random.seed(int(rng.integers(2**31 - 1)))
        samples = engine._reference.sample(size)
    finally:
        np.random.set_state(saved)
    decoded = {}
    for index, marginal in enumerate(engine.marginals):
        values = samples[f"v{index}"].to_numpy(dtype=float)
        if isinstance(marginal, SlicedMarginal):
            edges = np.cumsum(marginal.probabilities)[:-1]
            decoded[index] = np.searchsorted(edges, np.clip(values, 0.0, 1.0), side="right")
        else:
            decoded[index] = np.clip(values, marginal.x_points.min(), marginal.x_points.max())
    return decoded
