"""Differencing resistance: the random perturbation every fitted model carries, by default.

A bank that refits monthly publishes pairs of models that differ by a few borrowers. If the stored statistics
were exact, the difference of two models would give a removed borrower's values (the mean of a block of sorted
incomes moves by exactly the borrower's income over the block's size). So every stored statistic carries noise
at least as large as one borrower's influence on it:

* numeric quantile knots: see `marginals.summary_grid` (noise = the block's spread / its size);
* counts (categories, point masses, nulls): Gaussian noise of standard deviation COUNT_NOISE records;
* the latent correlation: symmetric Gaussian noise of standard deviation CORRELATION_NOISE (1 - rho^2) / sqrt(n)
  on every off-diagonal entry rho (half the sampling error of a correlation, (1 - rho^2) / sqrt(n)), then the
  nearest valid correlation matrix.

The noise of a fit is drawn from `fit_rng(seed, df)`: the same seed and the same rows give the same model (a
clone is reproducible), while a table that differs by one row gets independent noise, so the noise does not
cancel between two models. Set TWIN_NOISE_KEY to a secret to make the noise unpredictable even to someone who
knows the seed and every row but one; `seed=None` draws it from the operating system.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pandas as pd

COUNT_NOISE = 2.0  # standard deviation, in records, of the noise on every stored count
CORRELATION_NOISE = 0.5  # the correlation noise's standard deviation is this x (1 - rho^2) / sqrt(rows)
NOISE_KEY_VARIABLE = "TWIN_NOISE_KEY"
DIFFERENCING_NOISE = {"mechanism": "differencing noise",
                      "knots": "block mean + Gaussian noise, sd = block spread / block size",
                      "counts": f"Gaussian noise, sd {COUNT_NOISE} records",
                      "correlation": f"Gaussian noise, sd {CORRELATION_NOISE} (1 - rho^2) / sqrt(rows)"}


def fit_rng(seed: int | None, df: pd.DataFrame) -> np.random.Generator:
    """The generator of a fit's noise: from (seed, the rows' content, $TWIN_NOISE_KEY), or fresh when seed is None."""
    if seed is None:
        return np.random.default_rng()
    digest = hashlib.sha256(os.environ.get(NOISE_KEY_VARIABLE, "").encode())
    digest.update(repr([str(name) for name in df.columns]).encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**63, int(digest.hexdigest(), 16)]))


def noisy_counts(counts: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """Counts plus Gaussian noise (standard deviation COUNT_NOISE), kept positive: whether one borrower is in a
    category, a point mass or the nulls cannot be read off two models."""
    rng = rng if rng is not None else np.random.default_rng()
    counts = np.asarray(counts, dtype=float)
    return np.maximum(counts + rng.normal(0.0, COUNT_NOISE, len(counts)), np.minimum(counts, 0.5))


def noisy_correlation(matrix: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """A correlation matrix with symmetric noise on every off-diagonal entry (zeros, the independent
    variables, stay zero), kept within [-1, 1]; the caller repairs it to the nearest valid matrix."""
    scale = CORRELATION_NOISE * (1.0 - np.square(matrix)) / np.sqrt(max(rows, 1))
    noise = np.triu(rng.normal(0.0, 1.0, matrix.shape) * scale, 1)
    noisy = np.clip(matrix + np.where(matrix != 0.0, noise + noise.T, 0.0), -1.0, 1.0)
    np.fill_diagonal(noisy, 1.0)
    return noisy
