"""The copula's correlation: normal scores, corrected for ties and categories, repaired to a valid matrix.

Each column is turned into normal scores by rank: a block of tied values (a category, a point mass, a discrete
number) gets the mean of a standard normal over the block's slice of [0, 1]. The Pearson correlation of such
scores understates the latent correlation whenever a column is coarse (two perfectly coupled yes/no columns
do not have latent correlation 1 in their scores' eyes, but their scores do correlate 1 while a yes/no column
and a continuous one correlate at most 0.8). We undo that exactly: for a step function g of a standard normal,
Cov(g(Z1), h(Z2)) = sum_k rho^k a_k b_k, with a_k, b_k the Hermite coefficients of g and h (Mehler's formula),
so the latent rho of every pair is the root of that series, found by vectorised bisection over all pairs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

HERMITE_TERMS = 60
MAX_BLOCKS = 4096  # coarser columns lose nothing; finer ones are merged for the coefficients only
MAX_CORRELATION = 0.9995


def tied_normal_scores(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal scores of sortable `keys` with ties: E[Z | Z in the block's slice].

    Returns (scores per row, cumulative probability at each block's upper edge, score per block).
    """
    inverse, _ = pd.factorize(np.asarray(keys), sort=True)  # hashing: several times faster than np.unique's sort
    counts = np.bincount(inverse)
    upper = np.cumsum(counts) / len(keys)
    lower = np.concatenate([[0.0], upper[:-1]])
    block_scores = truncated_normal_mean(lower, upper)
    return block_scores[inverse], upper, block_scores


def truncated_normal_mean(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """E[Z | Phi^-1(lower) < Z < Phi^-1(upper)] for a standard normal Z."""
    a, b = special.ndtri(lower), special.ndtri(upper)
    mass = np.maximum(upper - lower, 1e-300)
    return (_phi(a) - _phi(b)) / mass


def _phi(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), np.exp(-0.5 * np.square(np.where(np.isfinite(x), x, 0.0))) / np.sqrt(2 * np.pi), 0.0)


def hermite_coefficients(upper: np.ndarray, block_scores: np.ndarray, terms: int = HERMITE_TERMS) -> np.ndarray:
    """a_k = E[g(Z) He_k(Z)] / sqrt(k!) for k = 1..terms, g the step function of the block scores.

    By summation by parts, a_k = sum over inner edges t of (g_right - g_left) * He_{k-1}(t) phi(t) / sqrt(k!).
    """
    upper, block_scores = _coarsen(upper, block_scores)
    edges = special.ndtri(np.clip(upper[:-1], 1e-15, 1 - 1e-15))
    jumps = np.diff(block_scores)
    density = _phi(edges) * jumps
    coefficients = np.empty(terms)
    previous, current = np.zeros_like(edges), np.ones_like(edges)  # normalised He_{-1}, He_0
    for k in range(1, terms + 1):
        coefficients[k - 1] = (density * current).sum() / np.sqrt(k)
        previous, current = current, (edges * current - np.sqrt(k - 1) * previous) / np.sqrt(k)
    return coefficients


def _coarsen(upper: np.ndarray, block_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge thin blocks of a near-continuous column so the coefficients cost O(MAX_BLOCKS)."""
    if len(upper) <= MAX_BLOCKS:
        return upper, block_scores
    keep = np.unique(np.concatenate([np.searchsorted(upper, np.linspace(0, 1, MAX_BLOCKS)[1:-1]),
                                     np.flatnonzero(np.diff(np.concatenate([[0.0], upper])) >= 1 / MAX_BLOCKS),
                                     [len(upper) - 1]]))
    merged_upper = upper[np.clip(keep, 0, len(upper) - 1)]
    merged_lower = np.concatenate([[0.0], merged_upper[:-1]])
    return merged_upper, truncated_normal_mean(merged_lower, merged_upper)


def latent_correlation(scores: np.ndarray, present: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """Latent correlation matrix from normal scores (rows x variables, 0 where `present` is False).

    Covariances use pairwise-complete rows; each pair's rho solves sum_k rho^k a_k b_k = observed covariance.
    """
    filled = scores
    weights = present.astype(float)
    pair_rows = np.maximum(weights.T @ weights, 1.0)
    pair_means = (weights.T @ filled) / pair_rows  # [j, i]: mean of variable i over the rows where j is present
    covariance = (filled.T @ filled) / pair_rows - pair_means.T * pair_means
    return latent_from_covariance(covariance, coefficients)


def latent_from_covariance(covariance: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """Each pair's latent rho from the covariance of its normal scores: the root of sum_k rho^k a_k b_k."""
    terms = coefficients[:, None, :] * coefficients[None, :, :]  # (p, p, K)
    powers = np.arange(1, coefficients.shape[1] + 1)

    def implied(rho: np.ndarray) -> np.ndarray:
        return (terms * rho[..., None] ** powers).sum(axis=-1)

    low, high = np.full(covariance.shape, -1.0), np.full(covariance.shape, 1.0)
    for _ in range(40):
        middle = (low + high) / 2
        too_low = implied(middle) < covariance
        low, high = np.where(too_low, middle, low), np.where(too_low, high, middle)
    rho = np.clip((low + high) / 2, -MAX_CORRELATION, MAX_CORRELATION)
    rho = (rho + rho.T) / 2
    np.fill_diagonal(rho, 1.0)
    return rho


def nearest_correlation(matrix: np.ndarray, floor: float = 1e-6, iterations: int = 50) -> np.ndarray:
    """Nearest valid (positive definite, unit diagonal) correlation matrix by Higham's alternating projections."""
    matrix = (matrix + matrix.T) / 2
    if np.linalg.eigvalsh(matrix).min() > floor:
        return matrix
    correction = np.zeros_like(matrix)
    current = matrix.copy()
    for _ in range(iterations):
        adjusted = current - correction
        values, vectors = np.linalg.eigh(adjusted)
        projected = (vectors * np.maximum(values, floor)) @ vectors.T
        correction = projected - adjusted
        current = projected.copy()
        np.fill_diagonal(current, 1.0)
        if np.linalg.eigvalsh(current).min() > floor / 2:
            break
    values, vectors = np.linalg.eigh(current)
    current = (vectors * np.maximum(values, floor)) @ vectors.T
    scale = np.sqrt(np.diag(current))
    return current / scale[:, None] / scale[None, :]


T_DEGREES = (2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 50.0)
T_MAX_ROWS = 10_000


def fit_t_degrees(uniforms: np.ndarray, correlation: np.ndarray, rng: np.random.Generator) -> dict:
    """Profile likelihood of a Student-t copula's degrees of freedom against the Gaussian copula.

    `uniforms` are rank pseudo-observations (rows x variables, no ties at the edges) of the continuous variables,
    `correlation` their latent correlation. Returns the best degrees of freedom and both log-likelihoods; the
    t copula is worth its extra parameter when it gains more than 1 in log-likelihood (AIC).
    """
    if len(uniforms) > T_MAX_ROWS:
        uniforms = uniforms[rng.choice(len(uniforms), T_MAX_ROWS, replace=False)]
    dimension = correlation.shape[0]
    inverse = np.linalg.inv(correlation)
    log_det = np.linalg.slogdet(correlation)[1]
    normal = special.ndtri(uniforms)
    gaussian = float((-0.5 * log_det - 0.5 * np.einsum("ij,jk,ik->i", normal, inverse - np.eye(dimension), normal)).sum())
    best = {"degrees_of_freedom": None, "loglik_t": -np.inf, "loglik_gaussian": gaussian}
    for nu in T_DEGREES:
        x = special.stdtrit(nu, uniforms)
        quadratic = np.einsum("ij,jk,ik->i", x, inverse, x)
        joint = (special.gammaln((nu + dimension) / 2) - special.gammaln(nu / 2) - dimension / 2 * np.log(nu * np.pi)
                 - 0.5 * log_det - (nu + dimension) / 2 * np.log1p(quadratic / nu))
        univariate = (special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
                      - (nu + 1) / 2 * np.log1p(x**2 / nu)).sum(axis=1)
        loglik = float((joint - univariate).sum())
        if loglik > best["loglik_t"]:
            best.update(degrees_of_freedom=nu, loglik_t=loglik)
    best["use_t"] = bool(best["loglik_t"] - gaussian > 1.0)
    return best


PEARSON_NODES = 40


def match_pearson(correlation: np.ndarray, decoders: dict, targets: dict[tuple[int, int], float],
                  iterations: int = 30) -> np.ndarray:
    """Latent correlations that give numeric pairs their real Pearson correlation after the marginals (NORTA).

    The normal-score correlation keeps ranks; a risk modeller compares Pearson correlations of the values, which
    the marginals' shapes (skew, point masses) change. For each numeric pair the Pearson correlation implied by
    a latent rho is E[g_i(Z_i) g_j(Z_j)] by Gauss-Hermite quadrature, increasing in rho for monotone g, so the
    rho that reproduces the real value is found by vectorised bisection (clipped where the marginals cannot
    reach it).
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(PEARSON_NODES)
    weights = weights / weights.sum()
    on_nodes = {index: decode(nodes) for index, decode in decoders.items()}
    means = {index: weights @ values for index, values in on_nodes.items()}
    sds = {index: np.sqrt(max(weights @ values**2 - means[index] ** 2, 1e-300)) for index, values in on_nodes.items()}
    matched = correlation.copy()
    by_second: dict[int, list[int]] = {}
    for first, second in targets:
        by_second.setdefault(second, []).append(first)
    pair_weights = weights[:, None] * weights[None, :]
    for second, firsts in by_second.items():
        first_values = np.stack([on_nodes[first] for first in firsts])  # (P, m)
        target = np.array([targets[(first, second)] for first in firsts])
        scale = np.array([sds[first] * sds[second] for first in firsts])
        shift = np.array([means[first] * means[second] for first in firsts])

        def implied(rho: np.ndarray) -> np.ndarray:
            points = rho[:, None, None] * nodes[None, :, None] + np.sqrt(1 - rho**2)[:, None, None] * nodes[None, None, :]
            second_values = decoders[second](points)
            return (np.einsum("kl,pk,pkl->p", pair_weights, first_values, second_values) - shift) / scale

        low, high = np.full(len(firsts), -MAX_CORRELATION), np.full(len(firsts), MAX_CORRELATION)
        for _ in range(iterations):
            middle = (low + high) / 2
            too_low = implied(middle) < target
            low, high = np.where(too_low, middle, low), np.where(too_low, high, middle)
        matched[firsts, second] = matched[second, firsts] = (low + high) / 2
    return matched
