"""An (epsilon, delta)-differentially private fit of the Gaussian copula (`GaussianCopulaEngine(epsilon=...)`).

Neighbouring tables differ by one added or removed row. Every query below is a Gaussian mechanism, accounted in
zero-concentrated DP (rho-zCDP, which adds up over queries) and converted once to (epsilon, delta):
epsilon = rho + 2 sqrt(rho ln(2 / delta)), the other delta / 2 paying for the thresholds that decide which
values exist (a value seen once must not show). Sampling from the model is post-processing.

Budget (`SPLIT`, recorded in the model as `privacy.parts_rho`, which adds up to `privacy.rho`): 2 % for the row
count; 20 % for the correlation; 78 % for the marginals, shared by the modelled columns with weight 1 for a
numeric column and SLICED_WEIGHT for a categorical one (its existence threshold is what costs it most).
* Numeric column (L2 sensitivity 1 per pass: a row falls in one cell): 25 % of its share finds point masses
  (noisy counts of exact non-zero values, kept above the existence threshold and 0.5 % of the rows); 25 % is a
  histogram on the public grid `EDGES` (half-octave cells, a cell of exact zeros, which becomes a point mass
  when it stands out: no threshold is needed for a public value); 50 % is a histogram between the noisy
  quantiles of the kept cells, plus one tail bin each side, and the null count.
* Categorical column: noisy counts of every observed value and of the nulls; a value is kept only when its noisy
  count clears 1 + sigma z(1 - delta_c), the rest is pooled into "Other", which gets a noisy count of its own
  (a row counts twice at most: L2 sensitivity sqrt 2).
* Correlation: normal scores of every row under the private marginals (post-processing), each row's score vector
  clipped to squared norm CLIP_SHARE x the number of variables, summed as z z^T with Gaussian noise (L2
  sensitivity: the clip), rescaled per variable, corrected for coarse columns (Mehler) and projected to the
  nearest correlation matrix. Variables with few rows off their mode stay independent (chosen from released counts).

Public (not protected): the column names, kinds and formats (the schema: decimals, date formats, nullability,
duplicated columns), a constant column's value, the shape of identifier keys. No statistic is fitted on raw
values outside these queries: the rounding steps and observed range of the non-private fit are not used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from .dependence import hermite_coefficients, latent_from_covariance, nearest_correlation, truncated_normal_mean
from .marginals import HISTOGRAM, OTHER, NumericMarginal, SlicedMarginal, _mix_atoms

DEFAULT_DELTA = 1e-6
QUERIES = {"rows": "noisy count, L2 sensitivity 1",
           "numeric column": "point-mass counts above a threshold, public-grid histogram, detail histogram and null "
                             "count; L2 sensitivity 1 each; shares 25 / 25 / 50 %",
           "categorical column": "value and null counts above a threshold, pooled Other count; L2 sensitivity sqrt 2",
           "correlation": "sum of z z^T of clipped normal scores; L2 sensitivity = the clip (squared norm)"}
PUBLIC = "column names, kinds and formats; constant values; identifier shapes"
SPLIT = {"rows": 0.02, "marginals": 0.78, "correlation": 0.20}
SLICED_WEIGHT = 1.5  # a categorical column's share of the marginals' budget, against 1 for a numeric one
ATOM_SHARE = 0.25  # of a numeric column's share: finding point masses (values on many rows, such as 0 debt)
RANGE_SHARE = 0.25  # of a numeric column's share: the range-finding pass
ATOM_MIN_SHARE = 0.005  # a point mass carries at least this share of the rows, as in the non-private fit
GRID_STEPS_PER_OCTAVE = 1
# The first pass's public grid: cells between +-2^(j + 1/2) (never a round number) for |x| from about 1e-6 to
# 1.3e19, one cell around 0, and (index 0) a cell of exact zeros.
_HALF_OCTAVES = np.exp2((np.arange(-20 * GRID_STEPS_PER_OCTAVE, 63 * GRID_STEPS_PER_OCTAVE + 1) + 0.5)
                        / GRID_STEPS_PER_OCTAVE)
EDGES = np.concatenate([-_HALF_OCTAVES[::-1], _HALF_OCTAVES])
KEEP_SIGMAS = 3.5  # first-pass cells below this many noise deviations are taken as empty
WIDEN_CELLS = 1  # the range is widened by this many cells past the outermost kept cell
TAIL_SIGMAS = 2.0  # a tail bin's noisy count must exceed this many noise deviations
RECORDS_PER_NOISE = 8  # second-pass bins hold about this many noise deviations of records
MAX_BINS = 64
SCORE_CLIP = 1e-3
SCORE_SLICES = 512
CLIP_SHARE = 0.5  # a row's score vector is clipped to squared norm CLIP_SHARE x the number of variables
MIN_DEPENDENCE_ROWS = 30  # as in the non-private fit
MIN_DEPENDENCE_SHARE = 0.05  # and at least this share of the rows off the most common value


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
    weights = {spec.name: SLICED_WEIGHT if spec.shape == "sliced" else 1.0 for spec in modelled}
    rho_unit = SPLIT["marginals"] * rho / max(sum(weights.values()), 1.0)
    threshold_delta = delta / 2 / max(len(modelled), 1)
    rows = max(2, int(round(len(df) + rng.normal(0.0, gaussian_sigma(1.0, SPLIT["rows"] * rho)))))
    variables, marginals, scores = [], [], []
    for spec in modelled:
        series = df[spec.name]
        present = series.notna().to_numpy()
        nullable = spec.null_rate > 0  # the schema's nullability is public
        if spec.shape == "numeric":
            # dates: days from 2000-01-01, so the octave grid resolves years (seconds since 1970 share one octave)
            unit, origin = spec.grid_scale
            numbers = (spec.to_numbers(series[present]) - origin) / unit
            marginal, null_share = private_numeric(numbers, int((~present).sum()), nullable,
                                                   weights[spec.name] * rho_unit,
                                                   threshold_delta, rng)
            value_scores = _numeric_scores(marginal, numbers)
            grid = marginal.to_dict()  # the stored (not subdivided) grid, back on the column's own scale
            marginal = NumericMarginal(marginal.atoms * unit + origin, marginal.atom_probabilities, HISTOGRAM, {},
                                       None, None, grid["u_points"], np.asarray(grid["x_points"]) * unit + origin)
            # rounding shares and the observed range are statistics of the raw values: replaced by the private
            # marginal's own range (post-processing) and no rounding steps
            spec.rounding = None
            spec.bounds = [float(marginal.x_points[0]), float(marginal.x_points[-1])] if spec.bounds else None
        else:
            marginal, null_share = private_sliced(series[present], int((~present).sum()), nullable,
                                                   weights[spec.name] * rho_unit,
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
            "rho": round(rho, 10), "split": dict(SPLIT),
            "parts_rho": {"rows": round(SPLIT["rows"] * rho, 10), "correlation": round(SPLIT["correlation"] * rho, 10),
                          "columns": {name: round(weight * rho_unit, 10) for name, weight in weights.items()}},
            "queries": QUERIES, "public": PUBLIC}


def private_numeric(numbers: np.ndarray, nulls: int, nullable: bool, rho: float, threshold_delta: float,
                    rng: np.random.Generator) -> tuple[NumericMarginal, float]:
    """A numeric marginal from three noisy histograms (point masses; range and shape on the public grid `EDGES`,
    whose cell of exact zeros makes 0 a point mass without a threshold; detail between the noisy quantiles of
    the second), and the null share."""
    sigma_atoms = gaussian_sigma(1.0, ATOM_SHARE * rho)
    sigma_range = gaussian_sigma(1.0, RANGE_SHARE * rho)
    sigma_detail = gaussian_sigma(1.0, (1 - RANGE_SHARE - ATOM_SHARE) * rho)
    values, counts = np.unique(numbers[numbers != 0], return_counts=True)
    noisy_atoms = counts + rng.normal(0.0, sigma_atoms, len(counts))
    is_atom = noisy_atoms >= max(1.0 + sigma_atoms * special.ndtri(1.0 - threshold_delta),
                                 ATOM_MIN_SHARE * noisy_atoms.clip(0).sum())
    atoms, atom_counts = values[is_atom], noisy_atoms[is_atom]
    rest = numbers[~np.isin(numbers, atoms)]
    cells = np.where(rest == 0, 0, np.clip(np.searchsorted(EDGES, rest, side="right"), 1, len(EDGES) - 1))
    noisy_cells = np.bincount(cells, minlength=len(EDGES)) + rng.normal(0.0, sigma_range, len(EDGES))
    if noisy_cells[0] > KEEP_SIGMAS * sigma_range:  # exact zeros (no debt) stand out: a point mass
        order = np.searchsorted(atoms, 0.0)
        atoms, atom_counts = np.insert(atoms, order, 0.0), np.insert(atom_counts, order, noisy_cells[0])
        rest = rest[rest != 0]
    else:  # zeros join the cell around 0
        noisy_cells[len(EDGES) // 2] += noisy_cells[0]
    noisy_cells[0] = 0.0
    coarse = np.where(noisy_cells > KEEP_SIGMAS * sigma_range, noisy_cells, 0.0)
    kept = np.flatnonzero(coarse)
    if len(kept) == 0:  # no cell stands out from the noise: the likeliest one
        kept = np.array([int(np.argmax(noisy_cells[1:])) + 1])
        coarse[kept] = 1.0
    # Detail bins of equal (first-pass) mass over the kept cells, plus a tail bin on either side out to
    # WIDEN_CELLS more cells: the values of cells too sparse to keep land there, counted like the rest.
    low_cell, high_cell = max(kept[0] - WIDEN_CELLS, 1), min(kept[-1] + WIDEN_CELLS, len(EDGES) - 1)
    cumulative = np.concatenate([[0.0], np.cumsum(coarse[kept[0]: kept[-1] + 1])])
    bins = int(np.clip(cumulative[-1] / (RECORDS_PER_NOISE * sigma_detail), 2, MAX_BINS))
    inner = np.interp(np.linspace(0, 1, bins + 1)[1:-1] * cumulative[-1], cumulative, EDGES[kept[0] - 1: kept[-1] + 1])
    x_grid = np.unique(np.concatenate([EDGES[[low_cell - 1, kept[0] - 1]], inner, EDGES[[kept[-1], high_cell]]]))
    detail = np.histogram(np.clip(rest, x_grid[0], x_grid[-1]), bins=x_grid)[0]
    detail = np.maximum(detail + rng.normal(0.0, sigma_detail, len(detail)), 0.0)
    for end in (0, -1):  # a tail bin is kept only when its count stands out from the noise
        detail[end] = detail[end] if detail[end] > TAIL_SIGMAS * sigma_detail else 0.0
    nonzero = np.flatnonzero(detail)
    if len(nonzero):  # trim empty end bins: the range ends where the mass does
        detail, x_grid = detail[nonzero[0]: nonzero[-1] + 1], x_grid[nonzero[0]: nonzero[-1] + 2]
    rest_count = detail.sum()
    u_grid = np.concatenate([[0.0], np.cumsum(detail)]) / rest_count if rest_count > 0 else np.array([])
    x_grid = x_grid if rest_count > 0 else np.array([])
    noisy_null = max(float(nulls + rng.normal(0.0, sigma_detail)), 0.0) if nullable else 0.0
    if not len(atoms) and not len(x_grid):  # the noise took every count to zero: the kept cells, flat
        u_grid, x_grid, rest_count = np.array([0.0, 1.0]), EDGES[[kept[0] - 1, kept[-1]]], 1.0
    present = atom_counts.sum() + rest_count
    atom_probabilities = atom_counts / present
    u_points, x_points = _mix_atoms(atoms, atom_probabilities, u_grid, x_grid)
    marginal = NumericMarginal(atoms, atom_probabilities, HISTOGRAM, {}, None, None, u_points, x_points)
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
    """Noisy second moments of clipped normal scores, corrected for coarse variables, as a valid correlation.

    Only variables with at least MIN_DEPENDENCE_ROWS (noisy) rows off their most common value take part: the others
    (a column null on 1 % of the rows) would only add noise, so they join independently. Each row's score vector
    is clipped to squared norm CLIP_SHARE x the number of variables, which bounds the sensitivity; each variable's
    moments are then rescaled so its noisy second moment matches its marginal's (undoing the clip's shrinkage)."""
    dimension = scores.shape[1]
    coefficients = np.vstack([_coefficients(marginal) for marginal in marginals]) if dimension else np.zeros((0, 1))
    used = np.flatnonzero([_minority_share(marginal) * rows >= max(MIN_DEPENDENCE_ROWS, MIN_DEPENDENCE_SHARE * rows) for marginal in marginals])
    correlation = np.eye(dimension)
    if len(used) < 2:
        return correlation
    scores, coefficients = scores[:, used], coefficients[used]
    bound = CLIP_SHARE * len(used)  # squared norm of a row's score vector after clipping
    norms = np.square(scores).sum(axis=1)
    clipped = scores * np.sqrt(np.minimum(1.0, bound / np.maximum(norms, 1e-300)))[:, None]
    noise = np.triu(rng.normal(0.0, gaussian_sigma(bound, rho), (len(used), len(used))))
    moments = clipped.T @ clipped + noise + np.triu(noise, 1).T
    variance = np.square(coefficients).sum(axis=1)
    scale = np.sqrt(variance / np.maximum(np.diag(moments), 1e-3 * rows * variance))
    latent = latent_from_covariance(moments * scale[:, None] * scale[None, :], coefficients)
    correlation[np.ix_(used, used)] = nearest_correlation(latent)
    return correlation


def _minority_share(marginal) -> float:
    """The probability off a variable's most common value (1 for a continuous part)."""
    if isinstance(marginal, SlicedMarginal):
        return float(1.0 - marginal.probabilities.max())
    return float(1.0 - marginal.atom_probabilities.max()) if len(marginal.atoms) else 1.0


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
    """Hermite coefficients of a variable's score function; a numeric one is read on SCORE_SLICES equal slices of
    [0, 1] (a point mass is one flat step: its rows share the mid-rank score)."""
    if isinstance(marginal, SlicedMarginal):
        upper = np.minimum(np.cumsum(marginal.probabilities), 1.0)
        return hermite_coefficients(upper, truncated_normal_mean(np.concatenate([[0.0], upper[:-1]]), upper))
    upper = np.arange(1, SCORE_SLICES + 1) / SCORE_SLICES
    quantiles = np.interp(upper - 0.5 / SCORE_SLICES, marginal.u_points, marginal.x_points)
    return hermite_coefficients(upper, _numeric_scores(marginal, quantiles))
