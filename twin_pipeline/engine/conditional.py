"""Conditional (stress) sampling: draw only rows that meet conditions, through the conditional copula.

A condition on a column is a box on that variable's latent normal score: a category owns a slice, a numeric
range maps through the marginal's quantile function. The conditioned scores are drawn from their truncated
joint normal (exactly for one condition, by a few vectorised Gibbs sweeps for several), and every other
variable from its conditional normal given them. No rejection loop: a 1 %-frequency condition costs the same
as no condition at all.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..tables import TwinInputError
from .marginals import NumericMarginal, SlicedMarginal

GIBBS_SWEEPS = 12


def latent_box(marginal, condition, column: str) -> tuple[float, float]:
    """The interval of normal scores that decodes to values meeting `condition`."""
    if isinstance(marginal, SlicedMarginal):
        matches = [index for index, value in enumerate(marginal.values) if value == condition or str(value) == str(condition)]
        if not matches:
            raise TwinInputError(column, f"condition value {condition!r} is not among the modelled values "
                                         f"({', '.join(map(str, marginal.values[:20]))}); rare values are pooled into 'Other'")
        edges = np.concatenate([[-np.inf], marginal.thresholds, [np.inf]])
        return float(edges[matches[0]]), float(edges[matches[0] + 1])
    if not (isinstance(condition, (tuple, list)) and len(condition) == 2):
        raise TwinInputError(column, f"a numeric condition is a (low, high) range with None for an open end, got {condition!r}")
    low, high = condition
    return _score_at(marginal, low, "left"), _score_at(marginal, high, "right")


def _score_at(marginal: NumericMarginal, value, side: str) -> float:
    if value is None:
        return -np.inf if side == "left" else np.inf
    return float(scores_at(marginal, np.array([float(value)]), side)[0])


def scores_at(marginal: NumericMarginal, values: np.ndarray, side: str) -> np.ndarray:
    """Normal scores where the quantile function reaches `values`: the start ("left") or end ("right") of a
    point mass's flat step; -inf / +inf beyond the modelled range."""
    x, z = marginal.x_points, marginal.z_points
    index = np.searchsorted(x, values, side=side)
    inner = np.clip(index, 1, len(x) - 1)
    left, right = x[inner - 1], x[inner]
    span = np.where(right > left, right - left, 1.0)
    weight = np.clip(np.where(right > left, (values - left) / span, 0.0), 0.0, 1.0)
    score = z[inner - 1] + weight * (z[inner] - z[inner - 1])
    return np.where(index == 0, -np.inf, np.where(index == len(x), np.inf, score))


def value_boxes(marginal, model_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row score intervals that decode to the given values (slice codes, or numbers); missing: unbounded."""
    if isinstance(marginal, SlicedMarginal):
        edges = np.concatenate([[-np.inf], marginal.thresholds, [np.inf]])
        codes = np.asarray(model_values)
        missing = codes < 0
        codes = np.where(missing, 0, codes)
        return np.where(missing, -np.inf, edges[codes]), np.where(missing, np.inf, edges[codes + 1])
    numbers = np.clip(np.asarray(model_values, dtype=float), marginal.x_points[0], marginal.x_points[-1])
    missing = np.isnan(numbers)
    low, high = scores_at(marginal, numbers, "left"), scores_at(marginal, numbers, "right")
    low = np.where(np.isneginf(low), marginal.z_points[0], low)
    high = np.where(np.isposinf(high), marginal.z_points[-1], high)
    return np.where(missing, -np.inf, low), np.where(missing, np.inf, high)


def truncated_normal(mean: np.ndarray, sd: np.ndarray, low: np.ndarray, high: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """Draws of N(mean, sd^2) truncated to [low, high] by inverse CDF, mirrored to stay accurate in the upper tail."""
    a, b = (low - mean) / sd, (high - mean) / sd
    flip = a > 0  # work in the lower tail, where ndtr keeps its precision
    a, b = np.where(flip, -b, a), np.where(flip, -a, b)
    lower, upper = special.ndtr(a), special.ndtr(b)
    u = lower + rng.uniform(size=np.shape(mean)) * (upper - lower)
    draw = special.ndtri(np.clip(u, 1e-300, 1 - 1e-16))
    draw = np.clip(draw, a, b)
    return mean + sd * np.where(flip, -draw, draw)


def conditional_normals(correlation: np.ndarray, box: dict[int, tuple[float, float]], size: int,
                        rng: np.random.Generator, row_scale: np.ndarray | None = None) -> np.ndarray:
    """Latent normals (size x variables) whose variables in `box` lie in their intervals.

    `row_scale` multiplies the bounds per row (the Student-t copula's mixing variable).
    """
    conditioned = list(box)
    rest = [index for index in range(correlation.shape[0]) if index not in box]
    scale = np.ones(size) if row_scale is None else row_scale
    lows = np.column_stack([np.full(size, box[index][0]) * scale for index in conditioned])
    highs = np.column_stack([np.full(size, box[index][1]) * scale for index in conditioned])
    block = correlation[np.ix_(conditioned, conditioned)]
    values = np.zeros((size, len(conditioned)))
    for _ in range(1 if len(conditioned) == 1 else GIBBS_SWEEPS):
        for position in range(len(conditioned)):
            others = [other for other in range(len(conditioned)) if other != position]
            if others:
                beta = np.linalg.solve(block[np.ix_(others, others)], block[others, position])
                mean = values[:, others] @ beta
                sd = np.sqrt(max(1.0 - block[position, others] @ beta, 1e-12))
            else:
                mean, sd = np.zeros(size), 1.0
            values[:, position] = truncated_normal(mean, np.full(size, sd), lows[:, position], highs[:, position], rng)
    normals = np.empty((size, correlation.shape[0]))
    normals[:, conditioned] = values
    if rest:
        cross = correlation[np.ix_(conditioned, rest)]
        weights = np.linalg.solve(block, cross)
        residual = correlation[np.ix_(rest, rest)] - cross.T @ weights
        residual_root = np.linalg.cholesky(residual + 1e-10 * np.eye(len(rest)))
        normals[:, rest] = values @ weights + rng.standard_normal((size, len(rest))) @ residual_root.T
    return normals
