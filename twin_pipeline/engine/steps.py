"""The outcome's steps: its latent thresholds set per cell of its most telling columns.

A Gaussian copula ties the outcome to each column by one correlation, so a step (a 2 % default that doubles for
grades E-G, a 60-month term or under two years employed, and is flat elsewhere) becomes a weak slope: the twin of
such a loan book trained a model little better than chance (TSTR AUC 0.52 against 0.62 real). Here a small tree
of binary splits on the outcome's parents (categorical columns, numbers cut at their model's deciles; chosen on
the real rows by AIC) makes at most MAX_CELLS cells, and in each the outcome's thresholds on its latent score are
placed so that the cell keeps the real shares of the outcome, shrunk toward the copula's own (PRIOR_ROWS). Which
rows of a cell take which class still follows the copula's latent score, so the outcome's dependence on every
other column stays. Every cell holds at least k real rows (and MIN_CELL_SHARE of them); the counts carry the
model's differencing noise. An outcome that takes part in a business rule is left to the rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from ..outcome import outcome_column
from .marginals import SlicedMarginal
from .perturb import noisy_counts

MAX_CELLS = 16
MAX_VALUES = 20  # a categorical parent with more values would split the rows too finely
BANDS = 10  # numeric parents are cut at their deciles
MIN_CELL_SHARE = 0.02  # no cell of fewer rows than this share (nor than k): a step is a group, not a few rows
PRIOR_ROWS = 20  # a cell's real shares weigh as much as this many rows against the copula's own
SIMULATED_ROWS = 20_000  # latent rows drawn at fit time to place each cell's thresholds
MIN_SIMULATED = 50  # fewer simulated rows in a cell and its thresholds would be noise: the copula's stay


class OutcomeSteps:
    """`outcome`: the outcome's variable index; `parents`: variable index -> decile edges (a numeric) or None (a
    categorical's codes); `splits`: the cells as a tree, node -> (variable, codes sent left, left node, right
    node), nodes in the order they were made; `cells`: leaf node -> (the outcome's cumulative shares there, its
    latent thresholds there)."""

    def __init__(self, outcome: int, parents: dict[int, np.ndarray | None], splits: dict[int, tuple],
                 cells: dict[int, np.ndarray]):
        self.outcome, self.parents, self.splits, self.cells = outcome, parents, splits, cells

    @classmethod
    def fit(cls, engine, df: pd.DataFrame, rng: np.random.Generator) -> "OutcomeSteps | None":
        """On the encoded real table `df` of a fitted copula `engine`; None when the table has no categorical
        outcome or no split explains it beyond its penalty."""
        name, _ = outcome_column(df)
        if name is None or (name, "value") not in engine.variables or any(
                name in rule.columns for rule in engine.rules.rules if rule.enforced):
            return None  # an outcome a rule ties to other columns (expenditure 0 when no card) keeps the rule's
        outcome = engine.variables.index((name, "value"))
        marginal = engine.marginals[outcome]
        present = df[name].notna().to_numpy()
        if not isinstance(marginal, SlicedMarginal) or len(marginal.values) < 2 or present.sum() < engine.k:
            return None
        y, classes = marginal.codes(df.loc[present, name]), len(marginal.values)
        parents, codes, ordered = {}, {}, set()
        for index, (column, role) in enumerate(engine.variables):
            if role != "value" or index == outcome or df[column].isna().any():
                continue  # a parent with nulls: the cell of a null row would not be the same in the twin
            parent = engine.marginals[index]
            if isinstance(parent, SlicedMarginal):
                if 2 <= len(parent.values) <= MAX_VALUES:
                    parents[index], codes[index] = None, parent.codes(df.loc[present, column])
                    if not engine._spec(column).unordered:
                        ordered.add(index)
                continue
            # Deciles of the fitted (noisy) marginal, not of the rows: the model holds them already, and a
            # quantile of the rows is an average of two real values
            edges = np.unique(parent.decode(special.ndtri(np.linspace(0, 1, BANDS + 1)[1:-1])))
            numbers = engine._spec(column).to_numbers(df.loc[present, column])
            if len(edges) and np.isfinite(numbers).all():
                parents[index], codes[index] = edges, _bands(numbers, edges)
                ordered.add(index)
        splits = _grow(codes, ordered, y, classes, max(engine.k, int(np.ceil(MIN_CELL_SHARE * len(y)))))
        if not splits:
            return None
        used = {variable for variable, *_ in splits.values()}
        steps = cls(outcome, {index: edges for index, edges in parents.items() if index in used}, splits, {})
        steps.cells = steps._thresholds(engine, steps.cell_of(codes, coded=True), y, classes, rng)
        return steps if steps.cells else None

    def cell_of(self, decoded: dict[int, np.ndarray], coded: bool = False) -> np.ndarray:
        """Each row's leaf (decoded: variable index -> codes of a categorical, numbers of a numeric; `coded`:
        numbers already cut into their bands)."""
        size = len(next(iter(decoded.values())))
        codes = {index: decoded[index] if edges is None or coded else _bands(np.asarray(decoded[index], float), edges)
                 for index, edges in self.parents.items()}
        node = np.zeros(size, dtype=np.int64)
        for at, (variable, left, left_node, right_node) in self.splits.items():
            here = node == at
            node[here] = np.where(np.isin(codes[variable][here], left), left_node, right_node)
        return node

    def _thresholds(self, engine, real_cells, y, classes, rng) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        latent, _ = engine._latent_values(SIMULATED_ROWS, rng, np.linalg.cholesky(engine.correlation), {})
        marginals = engine._latent_marginals()
        simulated = self.cell_of({index: marginals[index].decode(latent[:, index]) for index in self.parents})
        score = latent[:, self.outcome]
        copula = marginals[self.outcome].decode(score)
        cells = {}
        for cell in np.unique(real_cells):
            rows, drawn = real_cells == cell, simulated == cell
            if rows.sum() < engine.k or drawn.sum() < MIN_SIMULATED:
                continue
            counts = noisy_counts(np.bincount(y[rows], minlength=classes), rng)
            own = np.bincount(copula[drawn], minlength=classes) / drawn.sum()
            shares = (counts + PRIOR_ROWS * own) / (counts.sum() + PRIOR_ROWS)
            cumulative = np.clip(np.cumsum(shares)[:-1], 0.0, 1.0)
            cut = np.quantile(score[drawn], cumulative)
            cells[int(cell)] = (cumulative, np.where(cumulative <= 0, -np.inf, np.where(cumulative >= 1, np.inf, cut)))
        return cells

    def apply(self, decoded: dict[int, np.ndarray], latent: np.ndarray, rng: np.random.Generator | None = None) -> None:
        """Decode the outcome in its cell (in place): by the cell's thresholds on the latent score, or, given `rng`
        (an unconditional batch), as many rows of each class as the cell's shares ask for, highest scores in the
        highest class, rounded systematically across cells: the outcome's count then carries no sampling noise of
        its own, as every other column's (Latin hypercube, dependence.stratified)."""
        if len(latent) == 0:
            return
        cells, outcome = self.cell_of(decoded), np.array(decoded[self.outcome], copy=True)
        score, offset = latent[:, self.outcome], None if rng is None else rng.random()
        expected = 0.0
        for cell, (cumulative, cuts) in self.cells.items():
            rows = np.flatnonzero(cells == cell)
            if offset is None:
                outcome[rows] = np.searchsorted(cuts, score[rows])
                continue
            below = np.floor(expected + len(rows) * cumulative + offset) - np.floor(expected + offset)
            expected = expected + len(rows) * cumulative
            ranked = rows[np.argsort(score[rows], kind="stable")]
            outcome[ranked] = np.searchsorted(np.maximum.accumulate(below), np.arange(len(rows)), side="right")
        decoded[self.outcome] = outcome

    def to_dict(self) -> dict:
        return {"outcome": self.outcome,
                "parents": {str(index): None if edges is None else edges.tolist()
                            for index, edges in self.parents.items()},
                "splits": {str(node): [variable, np.asarray(left).tolist(), int(a), int(b)]
                           for node, (variable, left, a, b) in self.splits.items()},
                "cells": {str(cell): {"cumulative_shares": cumulative.tolist(), "thresholds": cuts.tolist()}
                          for cell, (cumulative, cuts) in self.cells.items()}}

    @classmethod
    def from_dict(cls, data: dict | None) -> "OutcomeSteps | None":
        if not data:
            return None
        parents = {int(index): None if edges is None else np.asarray(edges, float)
                   for index, edges in data["parents"].items()}
        splits = {int(node): (variable, np.asarray(left), a, b)
                  for node, (variable, left, a, b) in data["splits"].items()}
        return cls(data["outcome"], parents, splits, {int(cell): (np.asarray(found["cumulative_shares"], float),
                                                                  np.asarray(found["thresholds"], float))
                                                      for cell, found in data["cells"].items()})


def _bands(numbers: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Decile band of each number."""
    return np.searchsorted(edges, numbers, side="right")


def _entropy_sum(counts: np.ndarray) -> np.ndarray:
    """Per row of class counts, sum of n log(n / total): the log-likelihood of those rows under their own shares."""
    totals = counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, counts * np.log(counts / totals), 0.0).sum(axis=-1)


def _best_split(codes: dict, ordered: set, y: np.ndarray, classes: int, min_rows: int):
    """(log-likelihood gain, variable, codes sent left) of the best binary split of these rows: an ordered
    parent's codes in their order, a categorical's by the share of the rows' least common class (for a binary
    outcome the best split of a categorical is one of these; Breiman et al. 1984), cut at every point leaving
    min_rows on both sides."""
    whole = _entropy_sum(np.bincount(y, minlength=classes).astype(float))
    rare = np.argmin(np.bincount(y, minlength=classes))
    best = None
    for variable, parent_codes in codes.items():
        size = int(parent_codes.max()) + 1
        table = np.bincount(parent_codes * classes + y, minlength=size * classes).reshape(size, classes).astype(float)
        seen = np.flatnonzero(table.sum(axis=1) > 0)
        if len(seen) < 2:
            continue
        order = seen if variable in ordered else seen[np.argsort(table[seen, rare] / table[seen].sum(axis=1),
                                                                 kind="stable")]
        left = np.cumsum(table[order], axis=0)[:-1]
        right = left[-1:] + table[order][-1] - left
        sizes = left.sum(axis=1), right.sum(axis=1)
        gain = _entropy_sum(left) + _entropy_sum(right) - whole
        gain[(sizes[0] < min_rows) | (sizes[1] < min_rows)] = -np.inf
        cut = int(np.argmax(gain))
        if np.isfinite(gain[cut]) and (best is None or gain[cut] > best[0]):
            best = (float(gain[cut]), variable, np.sort(order[:cut + 1]))
    return best


def _grow(codes: dict, ordered: set, y: np.ndarray, classes: int, min_rows: int) -> dict[int, tuple]:
    """The cells: best-first binary splits while one raises the outcome's log-likelihood by more than its AIC
    penalty (one per added free share: AIC estimates the likelihood on new rows, which is what a model trained
    on the twin is judged on; BIC's log n kept only the strongest step of a 2 % default) plus the log of the
    number of cuts searched (the best of many cuts gains by chance), at most MAX_CELLS leaves of at least
    min_rows rows."""
    cuts = sum(len(np.unique(parent_codes)) - 1 for parent_codes in codes.values())
    penalty = (classes - 1) + np.log(max(cuts, 1))
    node = np.zeros(len(y), dtype=np.int64)
    candidates, splits, nodes = {}, {}, 1
    while nodes - len(splits) < MAX_CELLS:
        for leaf in set(np.unique(node)) - set(candidates) - set(splits):
            rows = node == leaf
            candidates[leaf] = _best_split({v: c[rows] for v, c in codes.items()}, ordered, y[rows], classes, min_rows)
        open_leaves = [(found[0], leaf) for leaf, found in candidates.items() if found and found[0] > penalty]
        if not open_leaves:
            break
        _, leaf = max(open_leaves)
        _, variable, left = candidates.pop(leaf)
        splits[leaf] = (variable, left, nodes, nodes + 1)
        here = node == leaf
        node[here] = np.where(np.isin(codes[variable][here], left), nodes, nodes + 1)
        nodes += 2
    return splits
