"""Univariate marginals: how one column's values map to and from the copula's normal scale.

Two shapes cover every modelled column:

* `SlicedMarginal` (discrete, boolean, categorical, text): each value owns a slice of [0, 1] sized by its
  frequency; a normal score falls in exactly one slice. Values seen fewer than `k` times are never stored:
  categories are pooled into "Other", rare discrete numbers merge into their nearest frequent neighbour.
* `NumericMarginal` (continuous, integer, datetime): point masses (values carrying at least 0.5 % of the rows,
  such as zero debt) plus a continuous part, either a parametric family chosen by a Kolmogorov-Smirnov test or,
  when none fits, a summary grid (`summary_grid`): at most MAX_KNOTS knots, each the noisy mean of a block of
  at least MIN_BLOCK_RECORDS consecutive order statistics. Both compile to one monotone quantile function, so
  sampling is a single `np.interp` per column.

Every statistic is perturbed (`rng`): one borrower moves a block mean by at most the block's spread / its size,
and the noise has KNOT_NOISE times that standard deviation, so two models fitted with and without a borrower do not give the
value away (see perturb.py for counts and the correlation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse, special

from .families import distribution, ks_pvalue
from .perturb import noisy_counts

K_MIN = 5  # no value seen fewer than this many times is stored verbatim
OTHER = "Other"
ATOM_SHARE = 0.005  # a value repeated on at least this share of rows is a point mass
MAX_KNOTS = 129  # knots of a numeric quantile grid: 128 blocks of equal probability at most
MIN_BLOCK_RECORDS = 10  # every knot averages at least this many records (the end knots half as many); 25 cost
# credit_card (659 training rows, 26 knots a column) 2 SDMetrics points against 10, with no differencing estimate within 2 %
KNOT_NOISE = 1.0  # a knot's noise has standard deviation KNOT_NOISE x (its block's spread / its size) ...
END_KNOT_NOISE = 2.0  # ... and the end knots, which hold the most exposed borrowers (the top earner), 2 x
HISTOGRAM = "dp-histogram"  # a differentially private histogram's grid (dp.py): few, wide bins
SUBDIVIDE = 16  # a histogram grid's bins (any grid's end segments) are cut into this many steps when sampling
KS_ALPHA = 0.05  # a family is kept only when the KS test cannot reject it at this level
MAX_CATEGORIES = 5000
Z_CLIP = 1e-12


def point_mass_rows(n: int, k: int) -> float:
    """How many of n rows one value needs to be a point mass: stored exactly, with a noisy frequency."""
    return max(k, ATOM_SHARE * n)


def _normal_bounds(cumulative: np.ndarray) -> np.ndarray:
    return special.ndtri(np.clip(cumulative, Z_CLIP, 1 - Z_CLIP))


class SlicedMarginal:
    """Ordered values, each with a slice of [0, 1] sized by its frequency."""

    def __init__(self, values: list, probabilities: np.ndarray, pooled: int = 0):
        self.values = list(values)
        self.probabilities = np.asarray(probabilities, dtype=float)
        self.pooled = pooled  # how many distinct raw values were pooled or merged for privacy
        self.thresholds = _normal_bounds(np.cumsum(self.probabilities)[:-1])

    @classmethod
    def fit(cls, values: pd.Series, kind: str, k: int = K_MIN,
            rng: np.random.Generator | None = None) -> "SlicedMarginal":
        """Frequencies from counts perturbed by `noisy_counts` (fresh randomness when `rng` is None)."""
        counts = values.value_counts(sort=True)
        pooled = 0
        if kind == "discrete":
            counts, pooled = _merge_rare_numbers(counts.sort_index(), k)
        elif kind == "boolean":
            counts = counts.sort_index()
        else:
            counts, pooled = _pool_rare_categories(counts, k)
        probabilities = noisy_counts(counts.to_numpy(), rng)
        return cls(counts.index.tolist(), probabilities / probabilities.sum(), pooled)

    def codes(self, values: pd.Series) -> np.ndarray:
        """Slice index of each value; pooled values map to "Other", merged numbers to their neighbour."""
        index = pd.Index(self.values)
        codes = index.get_indexer(values)
        unknown = codes < 0
        if unknown.any():
            if OTHER in self.values and not pd.api.types.is_numeric_dtype(values):
                codes[unknown] = self.values.index(OTHER)
            else:  # merged rare numbers: their nearest kept value
                kept = np.asarray(self.values, dtype=float)
                target = values.to_numpy(dtype=float)[unknown]
                codes[unknown] = np.abs(target[:, None] - kept[None, :]).argmin(axis=1)
        return codes

    def decode(self, z: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.thresholds, z)

    def rescaled(self, transform) -> "SlicedMarginal":
        """A copy whose slice edges are moved by a monotone map of the latent scale."""
        copy = SlicedMarginal(self.values, self.probabilities, self.pooled)
        copy.thresholds = transform(self.thresholds)
        return copy

    def reorder(self, codes: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Order the values along the first principal direction of their mean `reference` scores (rows x
        variables, frequency-weighted); returns the rows' codes in the new order."""
        if reference.shape[1] == 0 or len(codes) == 0:
            return codes
        counts = np.bincount(codes, minlength=len(self.values))
        # Each value's rows summed in row order, as a bincount per variable would, in one pass over the rows.
        members = sparse.csr_matrix((np.ones(len(codes)), np.argsort(codes, kind="stable"),
                                     np.concatenate([[0], np.cumsum(counts)])), shape=(len(self.values), len(codes)))
        sums, counts = members @ reference, counts.astype(float)
        centroids = sums / np.maximum(counts, 1.0)[:, None]
        weights = counts / counts.sum()
        centred = (centroids - weights @ centroids) * np.sqrt(weights)[:, None]
        direction = np.linalg.svd(centred, full_matrices=False)[2][0]
        order = np.argsort(centroids @ direction, kind="stable")
        self.values = [self.values[i] for i in order]
        self.probabilities = self.probabilities[order]
        self.thresholds = _normal_bounds(np.cumsum(self.probabilities)[:-1])
        return np.argsort(order)[codes]

    def to_dict(self) -> dict:
        return {"shape": "sliced", "values": self.values, "probabilities": self.probabilities.tolist(),
                "pooled": self.pooled}

    @classmethod
    def from_dict(cls, data: dict) -> "SlicedMarginal":
        return cls(data["values"], np.asarray(data["probabilities"]), data.get("pooled", 0))


def _pool_rare_categories(counts: pd.Series, k: int) -> tuple[pd.Series, int]:
    """Categories seen fewer than k times (and past the MAX_CATEGORIES most frequent) become "Other"."""
    keep = (counts >= k) & (np.arange(len(counts)) < MAX_CATEGORIES)
    rare = counts[~keep]
    if rare.empty:
        return counts, 0
    kept = counts[keep].copy()
    kept[OTHER] = kept.get(OTHER, 0) + rare.sum()
    return kept.sort_values(ascending=False), int(len(rare))


def _merge_rare_numbers(counts: pd.Series, k: int) -> tuple[pd.Series, int]:
    """Numbers seen fewer than k times join their nearest frequent value (ordered by value)."""
    frequent = counts[counts >= k]
    if frequent.empty:
        frequent = counts.nlargest(1)
    rare = counts.drop(frequent.index)
    if rare.empty:
        return counts, 0
    kept_values = frequent.index.to_numpy(dtype=float)
    nearest = np.abs(rare.index.to_numpy(dtype=float)[:, None] - kept_values[None, :]).argmin(axis=1)
    merged = frequent.copy()
    np.add.at(merged.values, nearest, rare.to_numpy())
    return merged, int(len(rare))


class NumericMarginal:
    """Point masses plus a continuous part, compiled to a quantile function on the normal scale."""

    def __init__(self, atoms: np.ndarray, atom_probabilities: np.ndarray, family: str, parameters: dict,
                 fit_statistic: float | None, p_value: float | None, u_points: np.ndarray, x_points: np.ndarray):
        self.atoms = np.asarray(atoms, dtype=float)
        self.atom_probabilities = np.asarray(atom_probabilities, dtype=float)
        self.family = family
        self.parameters = parameters
        self.fit_statistic = fit_statistic
        self.p_value = p_value
        self.u_points = np.asarray(u_points, dtype=float)
        self.x_points = np.asarray(x_points, dtype=float)
        self._saved = self.u_points, self.x_points
        # The copula interpolates on the normal scale, so a segment is filled linearly in probability only when
        # it is narrow there. A histogram's wide bins are cut into steps; so are the two end segments of every
        # grid, which reach z = +-7 (Z_CLIP): uncut, their mass piled up at the inner knot (a 40,000-row card
        # table's 99.9th percentile amount 483 where the real one is 979). Not saved.
        self.u_points, self.x_points = _subdivided(self.u_points, self.x_points, ends_only=family != HISTOGRAM)
        self.z_points = _normal_bounds(self.u_points)

    @classmethod
    def fit(cls, numbers: np.ndarray, k: int = K_MIN, families: tuple[str, ...] | None = None,
            rng: np.random.Generator | None = None) -> "NumericMarginal":
        """Point masses with noisy frequencies, and a continuous part summarised by `summary_grid`; a family is
        fitted to that (already perturbed) grid, never to the raw values, so its parameters add no leak."""
        rng = rng if rng is not None else np.random.default_rng()
        numbers = np.sort(numbers[np.isfinite(numbers)])
        starts = np.flatnonzero(np.concatenate([[True], numbers[1:] != numbers[:-1]]))  # runs of equal values
        counts = np.diff(np.append(starts, len(numbers)))
        is_atom = counts >= point_mass_rows(len(numbers), k)
        atoms, atom_counts = numbers[starts[is_atom]], counts[is_atom].astype(float)
        rest = numbers[np.repeat(~is_atom, counts)]
        if 0 < len(rest) < MIN_BLOCK_RECORDS and len(atoms):  # too few to summarise: each joins its nearest point mass
            np.add.at(atom_counts, np.abs(rest[:, None] - atoms[None, :]).argmin(axis=1), 1.0)
            rest = rest[:0]
        shares = noisy_counts(np.append(atom_counts, len(rest)), rng)
        atom_probabilities = shares[:-1] / (shares.sum() if len(rest) else shares[:-1].sum())
        family, parameters, statistic, p_value = "empirical", {}, None, None
        u_grid, x_grid = summary_grid(rest, rng)
        if len(rest) >= max(k, 2) and x_grid[-1] > x_grid[0]:
            low, high = x_grid[0], x_grid[-1]
            pseudo = np.interp((np.arange(min(len(rest), 5000)) + 0.5) / min(len(rest), 5000), u_grid, x_grid)
            family, parameters, statistic, p_value = select_family(pseudo, low, high, families)
            if family != "empirical":
                u_grid = np.linspace(0.0, 1.0, MAX_KNOTS)
                x_grid = _truncated_quantiles(family, parameters, low, high, u_grid)
        u_points, x_points = _mix_atoms(atoms, atom_probabilities, u_grid, x_grid)
        return cls(atoms, atom_probabilities, family, parameters, statistic, p_value, u_points, x_points)

    def decode(self, z: np.ndarray) -> np.ndarray:
        return np.interp(z, self.z_points, self.x_points)

    def rescaled(self, transform) -> "NumericMarginal":
        """A copy whose knots are moved by a monotone map of the latent scale."""
        copy = NumericMarginal.from_dict(self.to_dict())
        copy.z_points = transform(self.z_points)
        return copy

    def to_dict(self) -> dict:
        return {"shape": "numeric", "atoms": self.atoms.tolist(), "atom_probabilities": self.atom_probabilities.tolist(),
                "family": self.family, "parameters": self.parameters, "fit_statistic": self.fit_statistic,
                "p_value": self.p_value, "u_points": self._saved[0].tolist(), "x_points": self._saved[1].tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "NumericMarginal":
        return cls(data["atoms"], data["atom_probabilities"], data["family"], data["parameters"],
                   data["fit_statistic"], data["p_value"], data["u_points"], data["x_points"])


def _subdivided(u_points: np.ndarray, x_points: np.ndarray, ends_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Every segment of a quantile grid (or its first and last only) cut into SUBDIVIDE equal steps of probability."""
    if len(u_points) < 2:
        return u_points, x_points
    last = len(u_points) - 1.0
    fine = np.linspace(0.0, last, int(last) * SUBDIVIDE + 1)
    if ends_only:
        fine = fine[(fine <= 1.0) | (fine >= last - 1.0) | (fine == np.round(fine))]
    return tuple(np.interp(fine, np.arange(len(u_points)), grid) for grid in (u_points, x_points))


def summary_grid(sorted_values: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A quantile grid of at most MAX_KNOTS knots that summarises a sorted column without storing it.

    The sorted values are cut into blocks of equal count (>= MIN_BLOCK_RECORDS, the two end blocks half as
    large); knot j is the mean of the block centred on rank j/B, plus Gaussian noise whose standard deviation is
    KNOT_NOISE (END_KNOT_NOISE for the two end knots) x the block's spread / its size (the spread at least a B-th
    of the interquartile range, so a block of equal values is perturbed too). Removing one borrower moves a block
    mean by at most spread / size, so solving a knot for a borrower's value leaves an error of standard deviation
    that multiple of the spread of the borrower's block: no knot, and no difference of two models' knots, pins the value down. The end knots,
    the means of the extreme half-blocks, are the grid's probability 0 and 1: the tails are clipped there, inside
    the observed range, and neither the minimum nor the maximum is stored. The knots are sorted so the quantile
    function stays monotone (post-processing).
    """
    n = len(sorted_values)
    if n == 0:
        return np.array([]), np.array([])
    blocks = int(np.clip(n // MIN_BLOCK_RECORDS, 1, MAX_KNOTS - 1))
    cuts = np.unique(np.round(np.concatenate([[0], (np.arange(blocks) + 0.5) * n / blocks, [n]])).astype(int))
    starts, stops = cuts[:-1], cuts[1:]
    cumulative = np.concatenate([[0.0], np.cumsum(sorted_values)])
    sizes = stops - starts
    means = (cumulative[stops] - cumulative[starts]) / sizes
    spreads = sorted_values[stops - 1] - sorted_values[starts]
    lower_quartile, upper_quartile = np.quantile(sorted_values, [0.25, 0.75])  # one partition, the same numbers
    floor = (upper_quartile - lower_quartile) / blocks
    if not floor > 0:
        floor = max(abs(float(np.median(sorted_values))), 1.0) / blocks
    scale = np.full(len(means), KNOT_NOISE)
    scale[[0, -1]] = END_KNOT_NOISE
    knots = means + rng.normal(0.0, scale * np.maximum(spreads, floor) / sizes)
    if sorted_values[0] >= 0:  # a non-negative column (amounts, counts) stays so: noise reflected at 0, never clipped to it
        knots = np.abs(knots)
    if len(knots) == 1:
        return np.array([0.0, 1.0]), np.repeat(knots, 2)
    return np.concatenate([[0.0], ((starts + stops) / 2 / n)[1:-1], [1.0]]), np.sort(knots)


def _mix_atoms(atoms, probabilities, u_grid, x_grid) -> tuple[np.ndarray, np.ndarray]:
    """Quantile function of atoms (flat steps) mixed with a continuous part given as a quantile grid."""
    weight = 1.0 - probabilities.sum() if len(x_grid) else 0.0
    mass_below = np.concatenate([[0.0], np.cumsum(probabilities)])  # atom mass below the i-th atom
    f_grid = weight * u_grid + mass_below[np.searchsorted(atoms, x_grid, side="left")]
    continuous_cdf = np.interp(atoms, x_grid, u_grid, left=0.0, right=1.0) if len(x_grid) else np.zeros(len(atoms))
    start = weight * continuous_cdf + mass_below[:-1]
    f_all = np.concatenate([f_grid, start, start + probabilities])
    x_all = np.concatenate([x_grid, atoms, atoms])
    order = np.lexsort((f_all, x_all))
    return np.maximum.accumulate(np.clip(f_all[order], 0.0, 1.0)), x_all[order]


FAMILIES = ("normal", "lognormal", "uniform", "gamma", "beta", "truncnorm")


def _fit_parameters(family: str, x: np.ndarray, low: float, high: float) -> dict | None:
    """Fast estimates (moments or closed-form MLE); None when the family cannot describe the data."""
    mean, var = float(x.mean()), float(x.var())
    if var <= 0:
        return None
    if family == "normal":
        return {"loc": mean, "scale": var**0.5}
    if family == "uniform":
        return {"loc": float(x.min()), "scale": float(x.max() - x.min())}
    if family in ("lognormal", "gamma") and x.min() <= 0:
        return None
    if family == "lognormal":
        logs = np.log(x)
        return {"s": float(logs.std()), "scale": float(np.exp(logs.mean()))} if logs.std() > 0 else None
    if family == "gamma":
        return {"a": mean**2 / var, "scale": var / mean}
    if family == "beta":
        margin = (high - low) * 1e-3
        loc, scale = low - margin, high - low + 2 * margin
        m, v = (mean - loc) / scale, var / scale**2
        common = m * (1 - m) / v - 1
        return {"a": m * common, "b": (1 - m) * common, "loc": loc, "scale": scale} if common > 0 else None
    if family == "truncnorm":
        def negative_log_likelihood(theta):
            loc, log_scale = theta
            scale = np.exp(log_scale)
            mass = special.ndtr((high - loc) / scale) - special.ndtr((low - loc) / scale)
            return 0.5 * np.square((x - loc) / scale).sum() + len(x) * (log_scale + np.log(max(mass, 1e-300)))
        loc, log_scale = _nelder_mead(negative_log_likelihood, (mean, 0.5 * np.log(var)))
        return {"loc": float(loc), "scale": float(np.exp(log_scale)), "low": low, "high": high}
    raise ValueError(f"unknown family {family!r}")


def _nelder_mead(function, start: tuple[float, float], maxiter: int = 200, xatol: float = 1e-4,
                 fatol: float = 1e-4) -> tuple[float, float]:
    """`optimize.minimize(function, start, method="Nelder-Mead", options={"maxiter", "xatol", "fatol"}).x` for a
    point of two coordinates, step for step: scipy's simplex, moves (reflect 2, expand 3, contract 1.5 / 0.5,
    shrink 0.5, each the same float operations), stopping test and order of the vertices (numpy's argsort of three
    values is this stable sort, NaN last), on floats instead of 2-vectors, whose bookkeeping cost as much as the
    likelihood (0.02 CPU s of a 55-column fit). `function` gets each point as a fresh array, as from scipy."""
    def value(point):
        return function(np.array(point, dtype=float))

    def ordered(vertices, values):
        order = sorted(range(3), key=lambda i: (values[i] != values[i], values[i]))
        return [vertices[i] for i in order], [values[i] for i in order]

    x0 = [float(start[0]), float(start[1])]
    vertices = [x0] + [[(1 + 0.05) * x0[0] if x0[0] != 0 else 0.00025, x0[1]],
                       [x0[0], (1 + 0.05) * x0[1] if x0[1] != 0 else 0.00025]]
    vertices, values = ordered(vertices, [value(vertex) for vertex in vertices])
    for _ in range(maxiter - 1):
        best, worst = vertices[0], vertices[-1]
        if (all(abs(vertex[i] - best[i]) <= xatol for vertex in vertices[1:] for i in (0, 1))
                and all(abs(values[0] - other) <= fatol for other in values[1:])):
            break
        centre = [(best[i] + vertices[1][i]) / 2 for i in (0, 1)]
        reflected = [2 * centre[i] - worst[i] for i in (0, 1)]
        reflected_value = value(reflected)
        if reflected_value < values[0]:
            expanded = [3 * centre[i] - 2 * worst[i] for i in (0, 1)]
            expanded_value = value(expanded)
            vertices[-1], values[-1] = (expanded, expanded_value) if expanded_value < reflected_value \
                else (reflected, reflected_value)
        elif reflected_value < values[-2]:
            vertices[-1], values[-1] = reflected, reflected_value
        else:
            if reflected_value < values[-1]:  # contract outside, else inside
                contracted = [1.5 * centre[i] - 0.5 * worst[i] for i in (0, 1)]
                contracted_value = value(contracted)
                shrink = not contracted_value <= reflected_value
            else:
                contracted = [0.5 * centre[i] + 0.5 * worst[i] for i in (0, 1)]
                contracted_value = value(contracted)
                shrink = not contracted_value < values[-1]
            if not shrink:
                vertices[-1], values[-1] = contracted, contracted_value
            else:
                for j in (1, 2):
                    vertices[j] = [best[i] + 0.5 * (vertices[j][i] - best[i]) for i in (0, 1)]
                    values[j] = value(vertices[j])
        vertices, values = ordered(vertices, values)
    return vertices[0][0], vertices[0][1]


def select_family(x: np.ndarray, low: float, high: float, families: tuple[str, ...] | None = None,
                  sample_size: int = 5000) -> tuple[str, dict, float | None, float | None]:
    """The family (truncated to [low, high]) with the smallest KS distance, or "empirical" if the test rejects all.

    Returns (family, parameters, KS statistic, p-value). Fits and tests run on at most `sample_size` values, an
    evenly spaced subsample of the sorted data, so the cost does not grow with the table.
    """
    x = x[:: max(1, len(x) // sample_size)] if len(x) > sample_size else x
    best = ("empirical", {}, None)
    for name in families or FAMILIES:
        parameters = _fit_parameters(name, x, low, high)
        if parameters is None or not all(np.isfinite(list(parameters.values()))):
            continue
        fitted = distribution(name, parameters)
        lower, upper = fitted.cdf(low), fitted.cdf(high)
        if not upper > lower:
            continue
        statistic = _ks_distance(x, np.clip((fitted.cdf(x) - lower) / (upper - lower), 0.0, 1.0))
        if best[2] is None or statistic < best[2]:
            best = (name, parameters, statistic)
    p_value = None if best[2] is None else ks_pvalue(best[2], len(x))  # the winner's only (exact: a few ms)
    if p_value is None or p_value < KS_ALPHA:
        return "empirical", {}, best[2], p_value
    return (*best, p_value)


def _ks_distance(sorted_x: np.ndarray, cdf: np.ndarray) -> float:
    """One-sample Kolmogorov-Smirnov distance of sorted data to a fitted CDF evaluated at the data."""
    n = len(sorted_x)
    steps = np.arange(1, n + 1) / n
    return float(max((steps - cdf).max(), (cdf - steps + 1 / n).max()))


def _truncated_quantiles(name: str, parameters: dict, low: float, high: float, u: np.ndarray) -> np.ndarray:
    fitted = distribution(name, parameters)
    lower, upper = fitted.cdf(low), fitted.cdf(high)
    return np.clip(fitted.ppf(lower + u * (upper - lower)), low, high)


def marginal_from_dict(data: dict) -> SlicedMarginal | NumericMarginal:
    return SlicedMarginal.from_dict(data) if data["shape"] == "sliced" else NumericMarginal.from_dict(data)
