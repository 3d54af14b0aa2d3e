"""The copula's dependence solvers: the latent correlation inverts the Hermite series, and the Latin hypercube
strata keep the draws' ranks."""

import numpy as np
from scipy import special

from twin_pipeline.engine.dependence import hermite_coefficients, latent_from_covariance, stratified, tied_normal_scores


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
