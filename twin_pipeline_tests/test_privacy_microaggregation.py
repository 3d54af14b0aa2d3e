"""Mondrian-style micro-aggregation: groups of >= k inside their stratum, compact, and vectorised."""

from __future__ import annotations


import numpy as np
import pandas as pd

from twin_pipeline.privacy.microaggregation import group_lower_medians, group_means, mondrian_groups


def normalised_sse(points: np.ndarray, groups: np.ndarray) -> float:
    means = group_means(points, groups)
    return float(((points - means) ** 2).sum() / ((points - points.mean(axis=0)) ** 2).sum())


def test_groups_hold_k_rows_never_cross_strata_and_are_compact():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(20_000, 3))
    strata = rng.integers(0, 7, len(points))
    groups = mondrian_groups(points, strata, k=5)
    sizes = np.bincount(groups)
    assert sizes.min() >= 5 and sizes.max() < 2 * 5  # every partition of 2k or more is cut
    assert pd.Series(strata).groupby(groups).nunique().max() == 1
    shuffled = rng.permutation(groups)  # same group sizes, members at random
    assert normalised_sse(points, groups) < 0.1 * normalised_sse(points, shuffled)


def test_identical_points_are_not_cut():
    points = np.ones((40, 2))
    groups = mondrian_groups(points, np.repeat([0, 1], 20), k=5)
    assert sorted(np.bincount(groups)) == [20, 20]


def test_hundreds_of_thousands_of_rows_are_grouped_into_groups_of_at_least_k():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(300_000, 2))
    groups = mondrian_groups(points, np.zeros(len(points), dtype=np.int64), k=5)  # timed in bench/bench_privacy.py
    assert np.bincount(groups).min() >= 5


def test_representatives():
    values = np.array([[1.0], [5.0], [3.0], [10.0], [np.nan], [np.nan]])
    groups = np.array([0, 0, 0, 1, 2, 2])
    assert np.allclose(group_means(values, groups)[:4, 0], [3, 3, 3, 10])
    assert np.isnan(group_means(values, groups)[4:, 0]).all()
    assert group_lower_medians(np.array([[4.0], [1.0], [2.0], [3.0]]), np.zeros(4, dtype=np.int64)).ravel().tolist() == [2, 2, 2, 2]
