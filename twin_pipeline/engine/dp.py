"""An (epsilon, delta)-differentially private fit of the Gaussian copula (`GaussianCopulaEngine(epsilon=...)`).

Neighbouring tables differ by one added or removed row. Every query below is a Gaussian mechanism, accounted in
zero-concentrated DP (rho-zCDP, which adds up over queries) and converted once to (epsilon, delta):
epsilon = rho + 2 sqrt(rho ln(2 / delta)), the other delta / 2 paying for the thresholds that decide which
categories exist (a category seen once must not show). Sampling from the model is post-processing.

Budget (`SPLIT`, recorded in the model as `privacy`): 2 % for the row count; 78 % for the marginals, shared
evenly by the modelled columns; 20 % for the correlation.
* Numeric column: 25 % of its share finds point masses (noisy counts of exact values that clear the existence
  threshold and 0.5 % of the rows), 25 % the range and rough shape of the other values on a data-independent
  grid (octaves of sign(x) log2(1 + |x|)), the rest is a histogram between the noisy quantiles of that
  pass, and a noisy null count. The range is clipped where the noisy grid has too few rows to tell from noise,
  widened by two grid steps.
* Categorical column: noisy counts of every observed value and of the nulls; a value is kept only when its noisy
  count clears 1 + sigma z(1 - delta_c), the rest is pooled into "Other", which gets a noisy count of its own
  (a row counts twice at most: L2 sensitivity sqrt 2).
* Correlation: normal scores of every row under the private marginals (post-processing), each row's score vector
  clipped to squared norm <= the number of variables, summed as z z^T with Gaussian noise (sensitivity: the clip),
  corrected for coarse columns (Mehler, as in the non-private fit) and projected to the nearest correlation matrix.

Public (not protected): the column names, kinds and formats (the schema), a constant column's value, the shape
of identifier keys. No statistic is fitted on raw values outside these queries.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from .dependence import hermite_coefficients, latent_from_covariance, nearest_correlation, truncated_normal_mean
from .marginals import OTHER, NumericMarginal, SlicedMarginal, _mix_atoms

DEFAULT_DELTA = 1e-6
SPLIT = {"rows": 0.02, "marginals": 0.78, "correlation": 0.20}
ATOM_SHARE = 0.25  # of a numeric column's share: finding point masses (values on many rows, such as 0 debt)
RANGE_SHARE = 0.25  # of a numeric column's share: the range-finding pass
ATOM_MIN_SHARE = 0.005  # a point mass carries at least this share of the rows, as in the non-private fit
GRID_STEPS_PER_OCTAVE = 1
GRID_LIMIT = 64 * GRID_STEPS_PER_OCTAVE  # the first pass covers |x| < 2^64
KEEP_SIGMAS = 3.5  # first-pass cells below this many noise deviations are taken as empty
RECORDS_PER_NOISE = 8  # second-pass bins hold about this many noise deviations of records
MAX_BINS = 64
SCORE_CLIP = 1e-3
DAY, DATE_ORIGIN = 86400.0, 946684800.0  # dates are modelled in seconds since 1970; 2000-01-01 in those


def zcdp_rho(epsilon: float, delta: float) -> float:
    """The rho whose rho-zCDP guarantee converts to (epsilon, delta)-DP: epsilon = rho + 2 sqrt(rho ln(1/delta))."""
    log_term = np.log(1.0 / delta)
    return float((np.sqrt(log_term + epsilon) - np.sqrt(log_term)) ** 2)


def gaussian_sigma(sensitivity: float, rho: float) -> float:
    """Noise of a Gaussian mechanism with L2 `sensitivity` that is rho-zCDP."""
    return float(sensitivity / np.sqrt(2.0 * rho))


def fit_private(engine, df: pd.DataFrame, epsilon: float, delta: float, rng: np.random.Generator) -> dict:
    """Fill `engine`'s variables, marginals and correlation from private queries only; returns the budget record."""
    modelled = [spec for spec in engine.specs if spec.shape]
    rho = zcdp_rho(epsilon, delta / 2)
    rho_column = SPLIT["marginals"] * rho / max(len(modelled), 1)
    threshold_delta = delta / 2 / max(len(modelled), 1)
    rows = max(2, int(round(len(df) + rng.normal(0.0, gaussian_sigma(1.0, SPLIT["rows"] * rho)))))
    variables, marginals, scores = [], [], []
    for spec in modelled:
        series = df[spec.name]
        present = series.notna().to_numpy()
        nullable = spec.null_rate > 0  # the schema's nullability is public
        if spec.shape == "numeric":
            # dates: days from 2000-01-01, so the octave grid resolves years (seconds since 1970 share one octave)
            unit, origin = (DAY, DATE_ORIGIN) if spec.kind == "datetime" else (1.0, 0.0)
            numbers = (spec.to_numbers(series[present]) - origin) / unit
            marginal, null_share = private_numeric(numbers, int((~present).sum()), nullable, rho_column,
                                                   threshold_delta, rng)
            value_scores = _numeric_scores(marginal, numbers)
            marginal = NumericMarginal(marginal.atoms * unit + origin, marginal.atom_probabilities, marginal.family,
                                       {}, None, None, marginal.u_points, marginal.x_points * unit + origin)
        else:
            marginal, null_share = private_sliced(series[present], int((~present).sum()), nullable, rho_column,
                                                  threshold_delta, rng)
            value_scores = _slice_scores(marginal, marginal.codes(series[present]))
        spec.null_rate = null_share
        if null_share >= 1.0:
            continue
        column_scores = np.zeros(len(df))
        column_scores[present] = value_scores
        variables.append((spec.name, "value"))
        marginals.append(marginal)
        scores.append(column_scores)
        if nullable:
            null_marginal = SlicedMarginal([0, 1], np.array([1 - null_share, null_share]))
            variables.append((spec.name, "null"))
            marginals.append(null_marginal)
            scores.append(_slice_scores(null_marginal, (~present).astype(int)))
    engine.variables, engine.marginals, engine.n_rows = variables, marginals, rows
    engine.correlation = private_correlation(np.column_stack(scores) if scores else np.zeros((len(df), 0)),
                                             marginals, rows, SPLIT["correlation"] * rho, rng)
    return {"mechanism": "differential privacy", "epsilon": epsilon, "delta": delta,
            "neighbours": "tables differing by one added or removed row", "accounting": "zCDP",
            "rho": round(rho, 8), "split": dict(SPLIT), "per_column_rho": round(rho_column, 8),
            "public": "column names, kinds and formats; constant values; identifier shapes"}


def private_numeric(numbers: np.ndarray, nulls: int, nullable: bool, rho: float, threshold_delta: float,
                    rng: np.random.Generator) -> tuple[NumericMarginal, float]:
    """A numeric marginal from three noisy histograms (point masses; range and shape; detail between the noisy
    quantiles of the second), and the null share."""
    sigma_atoms = gaussian_sigma(1.0, ATOM_SHARE * rho)
    sigma_range = gaussian_sigma(1.0, RANGE_SHARE * rho)
    sigma_detail = gaussian_sigma(1.0, (1 - RANGE_SHARE - ATOM_SHARE) * rho)
    values, counts = np.unique(numbers, return_counts=True)
    noisy_atoms = counts + rng.normal(0.0, sigma_atoms, len(counts))
    is_atom = noisy_atoms >= max(1.0 + sigma_atoms * special.ndtri(1.0 - threshold_delta),
                                 ATOM_MIN_SHARE * noisy_atoms.clip(0).sum())
    atoms, atom_counts = values[is_atom], noisy_atoms[is_atom]
    rest = numbers[~np.isin(numbers, atoms)]
    cells = np.clip(np.floor(_octaves(rest)), -GRID_LIMIT, GRID_LIMIT - 1).astype(int) + GRID_LIMIT
    noisy_cells = np.bincount(cells, minlength=2 * GRID_LIMIT) + rng.normal(0.0, sigma_range, 2 * GRID_LIMIT)
    coarse = np.where(noisy_cells > KEEP_SIGMAS * sigma_range, noisy_cells, 0.0)
    kept = np.flatnonzero(coarse)
    if len(kept) == 0:  # no cell stands out from the noise: the point masses' cell, or the likeliest one
        likeliest = np.floor(_octaves(np.median(atoms))) + GRID_LIMIT if len(atoms) else np.argmax(noisy_cells)
        kept = np.array([int(np.clip(likeliest, 0, 2 * GRID_LIMIT - 1))])
        coarse[kept] = 1.0
    low_cell, high_cell = max(kept[0] - 2, 0), min(kept[-1] + 3, 2 * GRID_LIMIT)
    grid = np.arange(low_cell, high_cell + 1) - GRID_LIMIT  # cell edges on the octave scale
    cumulative = np.concatenate([[0.0], np.cumsum(coarse[low_cell:high_cell])])
    bins = int(np.clip(cumulative[-1] / (RECORDS_PER_NOISE * sigma_detail), 2, MAX_BINS))
    edges = _from_octaves(grid)  # interpolated on the value scale: no edge falls on a round number
    x_grid = np.unique(np.interp(np.linspace(0, 1, bins + 1) * cumulative[-1], cumulative, edges))
    x_grid[0], x_grid[-1] = edges[0], edges[-1]
    detail = np.histogram(np.clip(rest, x_grid[0], x_grid[-1]), bins=x_grid)[0]
    detail = np.maximum(detail + rng.normal(0.0, sigma_detail, len(detail)), 0.0)
    rest_count = detail.sum()
    u_grid = np.concatenate([[0.0], np.cumsum(detail)]) / rest_count if rest_count > 0 else np.array([])
    x_grid = x_grid if rest_count > 0 else np.array([])
    noisy_null = max(float(nulls + rng.normal(0.0, sigma_detail)), 0.0) if nullable else 0.0
    if not len(atoms) and not len(x_grid):  # the noise took every count to zero: the widened cell, flat
        u_grid, x_grid, rest_count = np.array([0.0, 1.0]), _from_octaves(np.array([kept[0] - 2.0, kept[0] + 3.0]) - GRID_LIMIT), 1.0
    present = atom_counts.sum() + rest_count
    atom_probabilities = atom_counts / present
    u_points, x_points = _mix_atoms(atoms, atom_probabilities, u_grid, x_grid)
    marginal = NumericMarginal(atoms, atom_probabilities, "dp-histogram", {}, None, None, u_points, x_points)
    return marginal, float(noisy_null / (present + noisy_null)) if present + noisy_null > 0 else 0.0


def private_sliced(values: pd.Series, nulls: int, nullable: bool, rho: float, threshold_delta: float,
                   rng: np.random.Generator) -> tuple[SlicedMarginal, float]:
    """Noisy counts of each value and of the nulls; values below the existence threshold are pooled into Other."""
    sigma = gaussian_sigma(np.sqrt(2.0), rho)  # a row counts in its value's bin and, when pooled, in Other's
    counts = values.value_counts(sort=False)
    if pd.api.types.is_numeric_dtype(values):
        counts = counts.sort_index()
    noisy = counts.to_numpy(dtype=float) + rng.normal(0.0, sigma, len(counts))
    threshold = 1.0 + sigma * special.ndtri(1.0 - threshold_delta)
    keep = noisy >= threshold
    noisy_null = max(float(nulls + rng.normal(0.0, sigma)), 0.0) if nullable else 0.0
    kept_values, kept_counts = counts.index[keep].tolist(), list(noisy[keep])
    pooled = int((~keep).sum())
    if pooled and not pd.api.types.is_numeric_dtype(values):
        # Other: the total is not released, so the pooled values share one more noisy count.
        other = max(float(counts.to_numpy()[~keep].sum() + rng.normal(0.0, sigma)), 0.0)
        kept_values.append(OTHER)
        kept_counts.append(other)
    if not kept_values:  # nothing clears the threshold: the most frequent noisy value stands for all
        best = int(np.argmax(noisy))
        kept_values, kept_counts = [counts.index[best]], [max(noisy[best], 1.0)]
    kept_counts = np.maximum(np.asarray(kept_counts), 1e-9)
    total = kept_counts.sum() + noisy_null
    marginal = SlicedMarginal(kept_values, kept_counts / kept_counts.sum(), pooled)
    return marginal, float(noisy_null / total)


def private_correlation(scores: np.ndarray, marginals: list, rows: int, rho: float,
                        rng: np.random.Generator) -> np.ndarray:
    """Noisy second moments of clipped normal scores, corrected for coarse variables, as a valid correlation."""
    dimension = scores.shape[1]
    if dimension == 0:
        return np.zeros((0, 0))
    bound = float(dimension)  # squared norm of a row's score vector after clipping
    norms = np.square(scores).sum(axis=1)
    clipped = scores * np.sqrt(np.minimum(1.0, bound / np.maximum(norms, 1e-300)))[:, None]
    noise = np.triu(rng.normal(0.0, gaussian_sigma(bound, rho), (dimension, dimension)))
    moments = (clipped.T @ clipped + noise + np.triu(noise, 1).T) / rows
    coefficients = np.vstack([_coefficients(marginal) for marginal in marginals])
    latent = latent_from_covariance(moments, coefficients)
    return nearest_correlation(latent)


def _octaves(x: np.ndarray) -> np.ndarray:
    """The data-independent grid's scale; cell edges fall at half octaves (2^(j + 1/2) - 1, never a round number)."""
    return np.sign(x) * np.log2(1.0 + np.abs(x)) * GRID_STEPS_PER_OCTAVE - 0.5


def _from_octaves(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, dtype=float) + 0.5
    return np.sign(t) * (np.exp2(np.abs(t) / GRID_STEPS_PER_OCTAVE) - 1.0)


def _numeric_scores(marginal: NumericMarginal, numbers: np.ndarray) -> np.ndarray:
    """Mid-rank scores under the private CDF: a point mass scores the middle of its step."""
    x, u = marginal.x_points, marginal.u_points
    distinct, first = np.unique(x, return_index=True)
    last = len(x) - 1 - np.unique(x[::-1], return_index=True)[1]
    u = (np.interp(numbers, distinct, u[first]) + np.interp(numbers, distinct, u[last])) / 2
    return special.ndtri(np.clip(u, SCORE_CLIP, 1 - SCORE_CLIP))


def _slice_scores(marginal: SlicedMarginal, codes: np.ndarray) -> np.ndarray:
    upper = np.cumsum(marginal.probabilities)
    lower = np.concatenate([[0.0], upper[:-1]])
    return truncated_normal_mean(lower, np.minimum(upper, 1.0))[codes]


def _coefficients(marginal) -> np.ndarray:
    """Hermite coefficients of a variable's score function (continuous parts: 256 equal slices)."""
    if isinstance(marginal, SlicedMarginal):
        upper = np.minimum(np.cumsum(marginal.probabilities), 1.0)
    else:
        upper = np.linspace(SCORE_CLIP, 1 - SCORE_CLIP, 256)
        upper[-1] = 1.0
    lower = np.concatenate([[0.0], upper[:-1]])
    return hermite_coefficients(upper, truncated_normal_mean(lower, upper))
