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

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

HERMITE_TERMS = 60
BLOCK_VALUES = 1 << 19  # values drawn per block by `stratified` (4 MB)
MAX_BLOCKS = 4096  # coarser columns lose nothing; finer ones are merged for the coefficients only
MAX_CORRELATION = 0.9995


def average_ranks(values: np.ndarray) -> np.ndarray:
    """pandas' rank(method="average") of a float column to the bit (a tie group's mean 1-based position, exact in
    floats; a NaN keeps none), from one quicksort instead of pandas' stable sort and frame machinery (a quarter of
    the CPU time)."""
    order = np.argsort(values)
    ordered = values[order]
    starts = np.flatnonzero(np.append(True, ordered[1:] != ordered[:-1]))  # first position of each distinct value
    ends = np.append(starts[1:], len(values))
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    if len(values) and np.isnan(ordered[-1]):  # NaNs sort last, out of every other value's way
        ranks[np.isnan(values)] = np.nan
    return ranks


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


def stratified(latent: np.ndarray, rng: np.random.Generator, nu: float | None = None
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """Latin hypercube sampling with the copula's ranks (Stein 1987): each column's values move to one draw per
    1/n-quantile stratum of its latent marginal (normal, or Student-t with `nu`), in the order the copula drew
    them. The dependence (ranks) is untouched and each marginal stays exact in distribution, but an n-row twin
    no longer adds its own sampling noise to every column's shares: on small tables that noise alone put the
    twin a point or more further from the real data than the model is.

    Ranks come from one sort per column on a contiguous (columns x rows) copy (`rising_orders`: an argsort's
    orders from a sort of integer keys).
    The strata stay in that (columns x rows) layout, computed in place, and come back as its transpose: the same
    numbers, each column contiguous for the decoding that reads them one column at a time.

    Returns (strata, orders): orders[j] lists the rows by rising column j, for the decoding (copula._decoded),
    which walks a column's knots 10x faster in that order; None when nothing was sorted."""
    size = len(latent)
    if size < 2:
        return latent, None
    orders = rising_orders(latent.T)
    strata = np.empty(orders.shape)  # the inverse permutations: what a second argsort gives, at a scatter's cost
    positions = np.arange(size, dtype=float)
    for stratum, order in zip(strata, orders):
        stratum[order] = positions
    # The same draws as rng.random(latent.shape), row by row, only their layout transposed, drawn a block of rows
    # at a time: no third array of the sample's size is made (fresh memory is most of its cost, cli.py).
    block = max(1, BLOCK_VALUES // max(latent.shape[1], 1))
    for start in range(0, size, block):
        strata[:, start:start + block] += rng.random((min(block, size - start), latent.shape[1])).T
    strata /= size
    return (special.ndtri(strata, out=strata) if nu is None else special.stdtrit(nu, strata, out=strata)).T, orders


def rising_orders(columns: np.ndarray) -> np.ndarray:
    """`columns.argsort(axis=1)` for float rows at two thirds of its cost: one vectorised sort of 64-bit integer
    keys, each a value's order-preserving bits with its position written over the lowest bits, the positions read
    back from the sorted keys. Keys that still tie on the bits left (values within about 1e-11 of each other
    relatively: a few per 100,000 x 55) are put in order by their values (`_untie`), so the orders are
    argsort's exactly. The two zeros tie as in argsort: -0.0 is added to +0.0 in the (contiguous) copy first."""
    rows, size = columns.shape
    keys = np.add(columns, 0.0, out=np.empty((rows, size))).view(np.int64)  # -0.0 + 0.0 = +0.0
    for key in keys:  # a negative value's other bits count backwards: flipped (a row at a time, no second array)
        key ^= (key >> 63) & np.int64(2**63 - 1)
    positions = np.int64((1 << max(size - 1, 1).bit_length()) - 1)
    keys &= ~positions
    keys |= np.arange(size, dtype=np.int64)
    keys.sort(axis=1)
    orders = keys & positions
    keys &= ~positions
    _untie(columns, orders, *np.nonzero(keys[:, 1:] == keys[:, :-1]))
    return orders


def _untie(columns: np.ndarray, orders: np.ndarray, rows: np.ndarray, tied: np.ndarray) -> None:
    """Each run of sorted places whose keys tie (`tied` i: places i and i + 1 of row `rows` i) sorted by value,
    in place; a row whose tie holds equal values, or holding a NaN or an infinity, is argsorted whole (argsort's
    own order among equal values)."""
    with np.errstate(all="ignore"):  # a NaN sum: a NaN, or inf - inf
        whole = set(np.flatnonzero(~np.isfinite(columns.sum(axis=1))).tolist())
    first = 0
    for k in range(len(tied)):
        if k + 1 < len(tied) and rows[k + 1] == rows[k] and tied[k + 1] == tied[k] + 1:
            continue  # the run goes on
        row, start, stop = rows[k], tied[first], tied[k] + 2
        first = k + 1
        run = orders[row, start:stop]
        values = columns[row, run]
        rank = values.argsort(kind="stable")
        if (np.diff(values[rank]) == 0).any():
            whole.add(int(row))
        else:
            orders[row, start:stop] = run[rank]
    for row in whole:
        orders[row] = columns[row].argsort()


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
    return hermite_rows([(upper, block_scores)], terms)[0]


def hermite_rows(blocks: list[tuple[np.ndarray, np.ndarray]], terms: int = HERMITE_TERMS) -> np.ndarray:
    """`hermite_coefficients` of each (upper, block_scores), one row each. Variables with as many inner edges
    (every null indicator has one) run the recurrence together, a row each: the same operations on each value,
    and a row's sum is the sum of that row alone, so the same numbers as one variable at a time."""
    edges, density = [], []
    for upper, block_scores in blocks:
        upper, block_scores = _coarsen(upper, block_scores)
        edges.append(special.ndtri(np.clip(upper[:-1], 1e-15, 1 - 1e-15)))
        density.append(_phi(edges[-1]) * np.diff(block_scores))
    coefficients = np.empty((len(blocks), terms))
    roots = np.sqrt(np.arange(terms + 1))  # the same square roots as one call per term, at one call's cost
    sizes = np.array([len(values) for values in edges], dtype=int)
    for size in np.unique(sizes):
        rows = np.flatnonzero(sizes == size)
        at, weight = np.vstack([edges[i] for i in rows]), np.vstack([density[i] for i in rows])
        previous, current, sums = np.zeros_like(at), np.ones_like(at), []  # normalised He_{-1}, He_0
        for k in range(1, terms + 1):
            sums.append((weight * current).sum(axis=1))
            previous, current = current, (at * current - roots[k - 1] * previous) / roots[k]
        coefficients[rows] = np.array(sums).T / roots[1:]
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
    """Each pair's latent rho from the covariance of its normal scores: the root of sum_k rho^k a_k b_k.

    A covariance that is exactly symmetric (a.T @ a is) has one root per pair: the upper triangle is solved and
    mirrored, half the work; otherwise every cell is solved and the two roots of a pair are averaged."""
    if np.array_equal(covariance, covariance.T):
        rows, columns = np.triu_indices(len(covariance))
    else:
        rows, columns = (index.ravel() for index in np.indices(covariance.shape))
    terms = (coefficients[rows] * coefficients[columns]).T  # (K, cells): a term's cells contiguous
    target = covariance[rows, columns]
    low, high = np.full(len(target), -1.0), np.full(len(target), 1.0)
    for _ in range(40):
        middle = (low + high) / 2
        too_low = _series(terms, middle) < target
        low, high = np.where(too_low, middle, low), np.where(too_low, high, middle)
    rho = np.empty_like(covariance)
    rho[columns, rows] = (low + high) / 2  # the mirror first: when every cell was solved, the next line sets it
    rho[rows, columns] = (low + high) / 2
    rho = np.clip(rho, -MAX_CORRELATION, MAX_CORRELATION)
    rho = (rho + rho.T) / 2
    np.fill_diagonal(rho, 1.0)
    return rho


def _series(terms: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """sum_k terms[k-1] rho^k by Horner's rule: K multiply-adds per cell instead of K powers (a tenth of the
    time). Bisection reads only its sign against the target, so the roots agree with the powers' to the last
    bit unless a midpoint lands within rounding of a root."""
    total = terms[-1].copy()
    for term in terms[-2::-1]:
        total *= rho
        total += term
    return total * rho


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
    # Every column holds the same ranks / (n + 1): each quantile's inverse t (the costly part) is taken once
    values, positions = np.unique(uniforms, return_inverse=True)
    positions = positions.reshape(uniforms.shape)
    for nu in T_DEGREES:
        x = special.stdtrit(nu, values)[positions]
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
    # Centred values: E[g_i g_j] - E[g_i] E[g_j] by quadrature cancels catastrophically when a mean dwarfs its
    # spread (a year 1970-2014: a 1 % quadrature error on a staircase marginal swamped the covariance and drove an
    # uncorrelated pair to 0.6), so the product is taken of deviations from the means.
    on_nodes = {index: decode(nodes) for index, decode in decoders.items()}
    means = {index: weights @ values for index, values in on_nodes.items()}
    on_nodes = {index: values - means[index] for index, values in on_nodes.items()}
    sds = {index: np.sqrt(max(weights @ values**2, 1e-300)) for index, values in on_nodes.items()}
    matched = correlation.copy()
    by_second: dict[int, list[int]] = {}
    for first, second in targets:
        by_second.setdefault(second, []).append(first)
    pair_weights = weights[:, None] * weights[None, :]
    for second, firsts in by_second.items():
        first_values = np.stack([on_nodes[first] for first in firsts])  # (P, m)
        target = np.array([targets[(first, second)] for first in firsts])
        scale = np.array([sds[first] * sds[second] for first in firsts])

        def implied(middles: np.ndarray, pair_middle) -> np.ndarray:
            # Each pair's implied Pearson correlation, from the distinct latent `middles` (`pair_middle`: each pair's).
            # points[p, k, l] = rho_p n_k + sqrt(1 - rho_p^2) n_l. np.interp looks each point's knot up starting
            # from the previous point's, so it is laid out with the node of the smaller coefficient varying fastest
            # (for most pairs, |rho| < 0.7: along k), where consecutive points are close; the values are the same.
            shift = np.sqrt(1 - middles**2)
            if 2 * np.count_nonzero(np.abs(middles) < shift) > len(middles):
                points = middles[:, None, None] * nodes[None, None, :] + shift[:, None, None] * nodes[None, :, None]
                decoded = np.ascontiguousarray(decoders[second](points).transpose(0, 2, 1))  # [p, l, k] -> [p, k, l]
            else:
                decoded = decoders[second](middles[:, None, None] * nodes[None, :, None]
                                           + shift[:, None, None] * nodes[None, None, :])
            return np.einsum("kl,pk,pkl->p", pair_weights, first_values, decoded[pair_middle] - means[second]) / scale

        low, high = np.full(len(firsts), -MAX_CORRELATION), np.full(len(firsts), MAX_CORRELATION)
        apart = False
        for _ in range(iterations):
            middle = (low + high) / 2
            # Every bisection starts at 0, and pairs that took the same turns so far share their middle (a quarter
            # of the pairs' evaluations on a 55-column table): each distinct middle's points are decoded once. Once
            # every pair has its own, they stay apart (each in its own half of a distinct interval): no more search.
            middles, pair_middle = (middle, slice(None)) if apart else np.unique(middle, return_inverse=True)
            if len(middles) == len(middle):
                middles, pair_middle, apart = middle, slice(None), True
            too_low = implied(middles, pair_middle) < target
            low, high = np.where(too_low, middle, low), np.where(too_low, high, middle)
        matched[firsts, second] = matched[second, firsts] = (low + high) / 2
    return matched


# ----------------------------------------------------------------------- asymmetric tails: a gamma frailty
FRAILTY_THETAS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
FRAILTY_NODES = 64  # log-spaced integration points over the frailty
FRAILTY_ROWS = 4000  # rows the frailty likelihood is evaluated on
FRAILTY_BLOCK = 128  # rows evaluated at once: their (rows, nodes, variables) scores stay in cache
ASYMMETRY_Z = 4.0  # lower and upper joint tails differ by this many standard errors (the largest of
# many pairs: ~3.8 is chance for 1,500 pairs of a symmetric copula): worth a frailty fit
REACHABLE_EIGENVALUE = 1e-6  # nearest_correlation's floor: a calibrated inner correlation at or under it is no
# correlation matrix
CALIBRATION_DRAWS = 10_000
CALIBRATION_GRID = np.linspace(-0.95, 0.95, 20)
FRAILTY_FAMILIES = ("clayton", "survival_clayton")


def frailty_scores(normals: np.ndarray, theta: float, survival: bool, frailty: np.ndarray) -> np.ndarray:
    """Normal scores of a Gaussian copula mixed with a common gamma frailty (Marshall-Olkin).

    E_i = -log Phi(Z_i) is exponential (joined by the Gaussian copula), V ~ Gamma(1/theta) is shared by the row,
    U_i = (1 + E_i / V) ** (-1 / theta) is uniform: with independent Z this is exactly the Clayton copula; with
    correlated Z it keeps their correlation structure and adds Clayton's lower-tail dependence (a crisis hits
    every borrower through V). `survival` mirrors it: the same dependence in the upper tail.
    """
    z = -normals if survival else normals
    e = -special.log_ndtr(z)
    log_u = -np.log1p(e / frailty[:, None]) / theta
    scores = special.ndtri(np.exp(log_u))
    return -scores if survival else scores


@functools.lru_cache(maxsize=None)
def _calibration(theta: float, survival: bool) -> tuple[np.ndarray, np.ndarray]:
    """`simulate_calibration`, read from CALIBRATION_FILE for the grid's thetas (the same numbers: a test checks
    them; simulated, they cost 15 ms a theta, a tenth of a second of a fit). Once per process and theta; the
    arrays are read-only."""
    stored = _stored_calibrations().get(_calibration_key(theta, survival))
    curves = tuple(np.array(curve) for curve in stored) if stored else simulate_calibration(theta, survival)
    for curve in curves:
        curve.setflags(write=False)
    return curves


CALIBRATION_FILE = Path(__file__).with_name("frailty_calibration.json")


@functools.lru_cache(maxsize=1)
def _stored_calibrations() -> dict[str, list[list[float]]]:
    return json.loads(CALIBRATION_FILE.read_text()) if CALIBRATION_FILE.is_file() else {}


def _calibration_key(theta: float, survival: bool) -> str:
    return f"{theta:g} {'upper' if survival else 'lower'}"


def calibration_table() -> dict[str, list[list[float]]]:
    """Every grid theta's calibration, as CALIBRATION_FILE stores it (json.dump(..., indent=0) writes the file)."""
    return {_calibration_key(theta, survival): [curve.tolist() for curve in simulate_calibration(theta, survival)]
            for theta in FRAILTY_THETAS for survival in (False, True)}


def simulate_calibration(theta: float, survival: bool) -> tuple[np.ndarray, np.ndarray]:
    """Normal-score correlation produced by inner correlation r (CALIBRATION_GRID), between two frailty
    variables and between a frailty variable and a plain Gaussian one: increasing in r, inverted by interpolation.
    A fixed simulation (seed 0) of (theta, survival) alone. The first variable does not move with r: scored once."""
    rng = np.random.default_rng(0)
    first, second = rng.standard_normal((2, CALIBRATION_DRAWS))
    frailty = rng.gamma(1 / theta, 1.0, CALIBRATION_DRAWS)
    first_scores = np.clip(frailty_scores(first[:, None], theta, survival, frailty)[:, 0], -8, 8)
    both, cross = [], []
    for r in CALIBRATION_GRID:
        partner = r * first + np.sqrt(1 - r * r) * second
        scores = np.clip(frailty_scores(partner[:, None], theta, survival, frailty)[:, 0], -8, 8)
        both.append(np.corrcoef(first_scores, scores)[0, 1])
        cross.append(np.corrcoef(first_scores, partner)[0, 1])
    return np.maximum.accumulate(np.array(both)), np.maximum.accumulate(np.array(cross))


def inner_correlation(correlation: np.ndarray, chosen: list[int], theta: float, survival: bool) -> np.ndarray:
    """The latent correlation to sample from so that, after the frailty, every pair keeps its fitted
    normal-score correlation (frailty pairs and frailty-Gaussian pairs each by their own calibration)."""
    both, cross = _calibration(theta, survival)
    inner = correlation.copy()
    mask = np.zeros(len(correlation), dtype=bool)
    mask[chosen] = True
    pair = np.outer(mask, mask)
    mixed = np.outer(mask, ~mask) | np.outer(~mask, mask)
    inner[pair] = np.interp(correlation[pair], both, CALIBRATION_GRID)
    inner[mixed] = np.interp(correlation[mixed], cross, CALIBRATION_GRID)
    np.fill_diagonal(inner, 1.0)
    return nearest_correlation(inner)


def frailty_loglik(uniforms: np.ndarray, inner: np.ndarray, theta: float, survival: bool) -> float:
    """Log-likelihood of the frailty copula at rank pseudo-observations.

    The density is a one-dimensional integral over the frailty; scaled per row (t = v (1 + sum(u^-theta - 1)))
    it is integrated on a log-spaced grid in t, which also resolves the integrable spike of the Gaussian part
    near t = 0 (fixed Gauss-Laguerre nodes miss it and overstate the likelihood). Exact for R = I (Clayton).
    """
    u = 1 - uniforms if survival else uniforms
    n, d = u.shape
    a = np.expm1(-theta * np.log(u))  # u ** -theta - 1
    total = 1 + a.sum(axis=1)
    log_t = np.linspace(np.log(1e-9), np.log(60.0 + 4 * d / theta), FRAILTY_NODES)
    step = log_t[1] - log_t[0]
    shape = 1 / theta + d
    log_weight = shape * log_t - np.exp(log_t) + np.log(step) - special.gammaln(shape)  # t^shape e^-t dlog t / Gamma
    log_weight[[0, -1]] += np.log(0.5)
    inverse = np.linalg.inv(inner) - np.eye(d)
    log_det = np.linalg.slogdet(inner)[1]
    log_integral = np.concatenate([_frailty_integral(part, log_t, log_weight, inverse, log_det)
                                   for part in np.array_split(a / total[:, None], max(1, n // FRAILTY_BLOCK))])
    log_c = (log_integral + special.gammaln(shape) - special.gammaln(1 / theta) - shape * np.log(total)
             + d * np.log(theta) - (theta + 1) * np.log(u).sum(axis=1))
    return float(log_c.sum())


def _frailty_integral(scaled: np.ndarray, log_t: np.ndarray, log_weight: np.ndarray, inverse: np.ndarray,
                      log_det: float) -> np.ndarray:
    """log of each row's integral over the frailty grid, for a block of rows: its (rows, T, d) scores stay in
    cache and are computed in place (the whole table's were 60 MB per step at 4,000 x 30)."""
    z = np.exp(log_t)[None, :, None] * scaled[:, None, :]  # e, then Phi^-1(exp(-e)), accurate for small e
    np.negative(z, out=z)
    np.expm1(z, out=z)
    np.negative(z, out=z)
    special.ndtri(z, out=z)
    np.negative(z, out=z)
    np.clip(z, -38, 38, out=z)
    quadratic = z @ inverse
    quadratic *= z
    log_gauss = -0.5 * log_det - 0.5 * quadratic.sum(axis=-1)
    return special.logsumexp(log_gauss + log_weight[None, :], axis=1)


def tail_asymmetry(uniforms: np.ndarray, q: float = 0.05) -> float:
    """Largest standardised gap between a pair's lower and upper joint-tail counts: near 0 for Gaussian and t
    copulas (radially symmetric), large when joint defaults outnumber joint booms (or the reverse)."""
    low, high = (uniforms < q).astype(float), (uniforms > 1 - q).astype(float)
    lower, upper = low.T @ low, high.T @ high
    z = (lower - upper) / np.sqrt(np.maximum(lower + upper, 1.0))
    np.fill_diagonal(z, 0.0)
    return float(np.abs(z).max())


def fit_frailty(uniforms: np.ndarray, correlation: np.ndarray, full_correlation: np.ndarray, chosen: list[int],
                rng: np.random.Generator) -> dict:
    """Best gamma-frailty copula (lower tail, or upper tail mirrored) over a grid of theta, by likelihood on the
    continuous variables; returns its family, theta, log-likelihood (scaled to all rows) and the full inner
    correlation to sample. Symmetric tables are not fitted (loglik -inf): they keep the Gaussian or t copula.

    A theta whose calibration asks for an inner correlation that is no correlation matrix (not positive definite:
    a strong frailty cannot make the table's negative correlations) is skipped unscored. Repaired to the nearest
    valid one, its likelihood collapsed to -1e7 or below on every table tried (Clayton, mirrored, correlated
    frailty, credit_data, credit_card, large: 100 of them) and never won, and it cost most of the fit: 5 of 7
    thetas on credit_data."""
    best = {"family": "clayton", "loglik": -np.inf, "asymmetry": tail_asymmetry(uniforms)}
    if best["asymmetry"] < ASYMMETRY_Z:
        return best
    scale = 1.0
    if len(uniforms) > FRAILTY_ROWS:
        scale = len(uniforms) / FRAILTY_ROWS
        uniforms = uniforms[rng.choice(len(uniforms), FRAILTY_ROWS, replace=False)]
    survival = bool((uniforms < 0.05).all(axis=1).sum() < (uniforms > 0.95).all(axis=1).sum())
    for theta in FRAILTY_THETAS:
        both, _ = _calibration(theta, survival)
        block = correlation.copy()
        off_diagonal = ~np.eye(len(block), dtype=bool)
        block[off_diagonal] = np.interp(block[off_diagonal], both, CALIBRATION_GRID)
        if np.linalg.eigvalsh(block).min() <= REACHABLE_EIGENVALUE:
            continue  # no inner correlation gives this frailty the table's correlations: not a candidate
        loglik = frailty_loglik(uniforms, nearest_correlation(block), theta, survival) * scale
        if loglik > best["loglik"]:
            best.update(family=FRAILTY_FAMILIES[survival], theta=theta, loglik=loglik)
    if np.isfinite(best["loglik"]):
        best["inner"] = inner_correlation(full_correlation, chosen, best["theta"],
                                          best["family"] == "survival_clayton")
    return best
