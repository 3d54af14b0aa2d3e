"""The copula's dependence solvers: the latent correlation inverts the Hermite series, and the Latin hypercube
strata keep the draws' ranks; average ranks are pandas'."""

import numpy as np
import pandas as pd
from scipy import special

from twin_pipeline.engine.dependence import (average_ranks, hermite_coefficients, hermite_rows, latent_from_covariance, rising_orders, stratified,
                                            tied_normal_scores)


def test_latent_correlation_is_the_root_of_each_pairs_series():
    rng = np.random.default_rng(3)
    columns = [rng.integers(0, levels, 5_000) for levels in (2, 3, 5, 12, 400, 5_000)]  # flags to continuous
    coefficients = np.vstack([hermite_coefficients(*tied_normal_scores(keys)[1:]) for keys in columns])
    rho = rng.uniform(-0.9, 0.9, (6, 6))
    rho = (rho + rho.T) / 2
    powers = np.arange(1, 61)
    covariance = np.einsum("ik,jk,ijk->ij", coefficients, coefficients, rho[..., None] ** powers)
    solved = latent_from_covariance(covariance, coefficients)
    off = ~np.eye(6, dtype=bool)
    assert np.allclose(solved[off], rho[off], atol=1e-9)
    assert np.array_equal(solved, solved.T) and np.all(np.diag(solved) == 1.0)


def test_strata_keep_each_columns_ranks_one_draw_per_quantile():
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((1_000, 3)) @ np.array([[1.0, 0.6, 0.0], [0.0, 0.8, 0.3], [0.0, 0.0, 0.9]])
    strata, orders = stratified(latent, np.random.default_rng(1))
    assert strata.shape == latent.shape
    for column in range(3):
        assert np.array_equal(np.argsort(strata[:, column]), np.argsort(latent[:, column]))
        assert np.all(np.diff(latent[orders[column], column]) > 0)  # the rows by rising value, for decoding
        cells = np.floor(special.ndtr(strata[:, column]) * len(latent))  # which 1/n-quantile each draw is in
        assert np.array_equal(np.sort(cells), np.arange(len(latent)))


def test_rising_orders_are_argsorts_even_where_keys_tie_on_their_high_bits():
    rng = np.random.default_rng(9)
    columns = rng.standard_normal((8, 50_000)) * np.array([[1e-3], [1], [1], [1], [1], [1], [1e6], [1]])
    columns[1, 100:160] = np.repeat(columns[1, :6], 10) * (1 + np.tile(np.arange(10), 6) * 1e-15)  # runs of ten
    columns[2, 10:20] = columns[2, 10] * (1 - np.arange(10) * 2e-16)
    columns[3, 5] = columns[3, 6]  # equal values: argsort's own order
    columns[4, 7], columns[4, 9] = -0.0, 0.0  # the two zeros tie
    columns[5, 3], columns[5, 8] = np.nan, np.inf
    columns[7, :] = np.round(columns[7, :], 1)  # all ties
    assert np.array_equal(rising_orders(columns), columns.argsort(axis=1))
    assert np.array_equal(rising_orders(columns[:, :2]), columns[:, :2].argsort(axis=1))
    transposed = rng.standard_normal((3_000, 5))
    assert np.array_equal(rising_orders(transposed.T), transposed.T.argsort(axis=1))


def test_pairs_matched_together_get_the_rho_each_gets_alone():
    """Pairs of one second variable are bisected together and share the decoding of the middles they have in
    common (all start at 0): each still gets its own rho, as when matched alone."""
    from twin_pipeline.engine.dependence import match_pearson

    skewed = lambda z: np.exp(z)  # noqa: E731 - monotone marginals of different shapes
    stepped = lambda z: np.floor(2 * z)  # noqa: E731
    decoders = {0: skewed, 1: stepped, 2: lambda z: z, 3: lambda z: z**3}
    targets = {(0, 3): 0.3, (1, 3): 0.31, (2, 3): -0.5, (0, 2): 0.6, (1, 2): 0.6000001}
    together = match_pearson(np.eye(4), decoders, targets)
    for pair, target in targets.items():
        alone = match_pearson(np.eye(4), decoders, {pair: target})
        assert np.isclose(together[pair], alone[pair], rtol=0, atol=1e-12) and together[pair] == together[pair[::-1]]
    assert together[0, 3] != together[1, 3] and together[0, 2] != together[1, 2]


def test_average_ranks_are_pandas_ranks_to_the_bit():
    """Ties, both zeros, infinities, NaN (no rank, out of the others' way), one value, none; a frame ranked column
    by column as DataFrame.rank ranks it."""
    rng = np.random.default_rng(8)
    with_nan = rng.normal(size=3_000)
    with_nan[rng.random(3_000) < 0.1] = np.nan
    samples = [rng.normal(size=20_000), rng.integers(0, 30, 20_000).astype(float), np.round(rng.lognormal(size=9_999), 1),
               np.array([0.0, -0.0, np.inf, -np.inf, 1.0, np.inf, np.nan, 0.0]), with_nan, np.array([2.5]),
               np.array([np.nan]), np.array([])]
    for values in samples + [-values for values in samples]:
        np.testing.assert_array_equal(average_ranks(values), pd.Series(values).rank(method="average").to_numpy())
    frame = np.column_stack([rng.integers(0, 9, 500).astype(float), rng.normal(size=500), np.round(rng.normal(size=500))])
    ours, theirs = np.vstack([average_ranks(column) for column in frame.T]).T, pd.DataFrame(frame).rank().to_numpy()
    np.testing.assert_array_equal(ours, theirs)
    assert ours.flags.f_contiguous and theirs.flags.f_contiguous  # the layout later sums follow, too


def test_variables_with_as_many_edges_get_their_own_coefficients_when_run_together():
    """hermite_rows runs variables with the same number of edges together: each row is the variable's own
    coefficients to the bit (flags, counts, a coarsened continuous column, one block)."""
    rng = np.random.default_rng(6)
    columns = [rng.integers(0, 2, 800), rng.integers(0, 2, 3_000), rng.integers(0, 5, 500), rng.integers(0, 5, 9_000),
               rng.normal(size=9_000), np.zeros(40), rng.integers(0, 2, 50)]
    blocks = [tuple(tied_normal_scores(keys)[1:]) for keys in columns]
    together = hermite_rows(blocks)
    for row, block in zip(together, blocks):
        assert np.array_equal(row, hermite_rows([block])[0])
