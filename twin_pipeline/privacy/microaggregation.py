"""Multi-dimensional micro-aggregation (Mondrian-style recursive cuts), vectorised over all partitions at once.

Why Mondrian and not bands: each group of at least k records gets its mean, so a numeric column stays numeric,
its mean is kept (up to rounding) and only within-group variation is lost. Why vectorised: every level of the
recursion splits all partitions in one sort, so a million rows need about log2(n / k) sorts, not n Python steps.
"""

from __future__ import annotations

import numpy as np


def _segments(sorted_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start offset and size of each run of equal labels in a sorted label array."""
    n = len(sorted_labels)
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    return starts, np.diff(np.r_[starts, n])


def mondrian_groups(points: np.ndarray, strata: np.ndarray, k: int, min_share: float = 0.1) -> np.ndarray:
    """Group ids such that every group has >= k rows, lies inside one stratum and is compact in `points`.

    points: (n, d) float array, each dimension already scaled to a comparable range, no NaN.
    strata: (n,) int labels; groups never cross strata, and every stratum must hold >= k rows.
    Each round, every partition of >= 2k rows is cut along the dimension holding most of its sum of squares,
    at the position that minimises the within-group sum of squares (each side >= k rows and >= min_share).
    """
    n = len(strata)
    groups = np.empty(n, dtype=np.int64)
    order = np.argsort(strata, kind="stable")
    labels = np.cumsum(np.r_[True, strata[order][1:] != strata[order][:-1]]) - 1 if n else order
    # Rows travel with their points; each round only reorders rows inside their partition (memory stays local).
    current = points[order].astype(np.float64)
    n_groups = 0
    while len(order):
        starts, sizes = _segments(labels)
        partition = np.repeat(np.arange(len(starts)), sizes)
        low = np.minimum.reduceat(current, starts, axis=0)
        spans = np.maximum.reduceat(current, starts, axis=0) - low
        # Cut the dimension holding most of the partition's sum of squares: that is the loss a cut can remove.
        sums = np.add.reduceat(current, starts, axis=0)
        squares = np.add.reduceat(current * current, starts, axis=0) - sums**2 / sizes[:, None]
        dimension = np.where(spans > 0, squares, -1.0).argmax(axis=1)
        width = spans[np.arange(len(starts)), dimension]
        splittable = (sizes >= 2 * k) & (width > 0)  # identical points gain nothing from a cut
        # Partitions that cannot be cut are final groups: retire their rows so later rounds skip them.
        done = ~splittable[partition]
        groups[order[done]] = n_groups + (np.cumsum(~splittable) - 1)[partition[done]]
        n_groups += int((~splittable).sum())
        if done.all():
            break
        active = np.flatnonzero(~done)
        sizes, low, width, dimension = sizes[splittable], low[splittable], width[splittable], dimension[splittable]
        starts = np.cumsum(sizes) - sizes
        partition = np.repeat(np.arange(len(sizes)), sizes)
        row_dimension = dimension[partition]
        offset = (current[active, row_dimension] - low[partition, row_dimension]) / width[partition]
        # Sorting by partition + offset in [0, 0.5] orders rows inside each partition along its cut dimension;
        # the key is already sorted by partition, which the stable (run-merging) sort exploits: ~3x faster.
        within = np.argsort(partition + 0.5 * offset, kind="stable")
        order, current = order[active[within]], current[active[within]]  # retire and reorder in one gather
        cut = np.zeros(len(order), dtype=bool)
        cut[_best_cuts(offset[within], partition, starts, sizes, k, min_share)] = True
        labels = np.cumsum(np.r_[True, partition[1:] != partition[:-1]] | cut) - 1
    return groups


def _best_cuts(sorted_values, partition, starts, sizes, k, min_share) -> np.ndarray:
    """Position of the cut in each partition, rows sorted along the cut dimension (`sorted_values`).

    The cut maximises L^2/a + R^2/b (L, R: sums left and right of the cut, a, b: their sizes), which is the
    same as minimising the within-group sum of squares along that dimension; both sides keep >= k rows and
    at least `min_share` of the partition, so the recursion depth stays logarithmic.
    """
    n = len(sorted_values)
    left_size = np.arange(n) - starts[partition]
    right_size = sizes[partition] - left_size
    floor = np.maximum(k, np.floor(sizes * min_share).astype(np.int64))[partition]
    valid = (left_size >= floor) & (right_size >= floor)
    cumulative = np.r_[0.0, np.cumsum(sorted_values)]
    left = cumulative[:-1] - cumulative[starts][partition]
    right = cumulative[starts + sizes][partition] - cumulative[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = np.where(valid, left**2 / left_size + right**2 / right_size, -np.inf)
    best = np.maximum.reduceat(gain, starts)
    winners = np.flatnonzero(valid & (gain == best[partition]))
    first = np.r_[True, partition[winners][1:] != partition[winners][:-1]]  # one cut per partition
    return winners[first]


def group_lower_medians(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per-row lower median of `values` (n, d) over each row's group: always one of the group's own values."""
    medians = np.empty_like(values, dtype=np.float64)
    if len(groups) == 0:
        return medians
    for column in range(values.shape[1]):  # loop over a handful of columns, not rows
        order = np.lexsort((values[:, column], groups))
        starts, sizes = _segments(groups[order])
        medians[:, column] = values[order[starts + (sizes - 1) // 2], column][groups]
    return medians


def group_means(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per-row mean of `values` (n, d) over each row's group; NaN where the group's values are missing."""
    counts = np.bincount(groups)
    means = np.empty_like(values, dtype=np.float64)
    for column in range(values.shape[1]):  # loop over a handful of columns, not rows
        present = ~np.isnan(values[:, column])
        sums = np.bincount(groups, weights=np.where(present, values[:, column], 0.0), minlength=len(counts))
        present_counts = np.bincount(groups, weights=present, minlength=len(counts))
        with np.errstate(invalid="ignore", divide="ignore"):
            means[:, column] = (sums / present_counts)[groups]
    return means


def group_member(values: np.ndarray, groups: np.ndarray, rng: np.random.Generator, key: np.ndarray,
                 features: np.ndarray | None = None) -> np.ndarray:
    """Per row, the values (n, d) of one member of its group, the same member for every column.

    Members are sorted by `key` inside their group, and each group takes the one at a quantile of an evenly
    spread, shuffled sequence ((permutation + one offset) / groups): the representatives are a stratified
    sample of the rows, so a column's shares keep to the rows' shares far closer than independent draws would
    (those vary by group size times the binomial error). Boolean `features` (n, m) (values on a round step)
    are then balanced: see `_balance`."""
    if len(groups) == 0:
        return values.astype(np.float64)
    order = np.lexsort((key, groups))
    starts, sizes = _segments(groups[order])
    quantile = (rng.permutation(len(sizes)) + rng.random()) / len(sizes)
    member = order[starts + np.floor(quantile * sizes).astype(np.int64)]
    if features is not None and features.shape[1]:
        member = _balance(member, order, starts, sizes, features.astype(np.float64), rng)
    return values[member][groups].astype(np.float64)


def _balance(member, order, starts, sizes, features, rng) -> np.ndarray:
    """Members chosen so each feature's share over all rows stays the rows' own (within a group's size).

    Every row takes its group's member's values, so a group of five on one member's round income counts five
    times: one random member per group moved credit_card's share of incomes on 0.05 by 1-2 points from seed to
    seed. Groups holding members that differ are visited in random order, each taking the member (the stratified
    one when it ties) that brings the running difference between the rows' and the chosen feature counts
    closest to zero (greedy balancing, as in systematic sampling)."""
    sorted_features = features[order]
    mean = np.add.reduceat(sorted_features, starts, axis=0) / sizes[:, None]
    mixed = np.flatnonzero((np.maximum.reduceat(sorted_features, starts, axis=0)
                            != np.minimum.reduceat(sorted_features, starts, axis=0)).any(axis=1))
    group_of = np.repeat(np.arange(len(sizes)), sizes)
    change = sizes[group_of][:, None] * (mean[group_of] - sorted_features)  # per sorted row: its effect if chosen
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))  # a row's place in the sorted order
    member = member.copy()
    deficit = np.zeros(features.shape[1])
    for group in rng.permutation(mixed).tolist():  # the loop does only what depends on the running deficit
        start = starts[group]
        after = deficit + change[start:start + sizes[group]]
        score = np.einsum("ij,ij->i", after, after)
        best = int(score.argmin())
        current = position[member[group]] - start
        choice = current if score[current] <= score[best] + 1e-9 else best
        member[group] = order[start + choice]
        deficit = after[choice]
    return member
