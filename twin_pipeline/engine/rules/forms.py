"""How a column kept inside an order rule is modelled, and which way keeps its marginal best.

A column ``d`` bounded per row by other columns (``low <= d <= high``) can be modelled as
* ``fraction``: its position in its interval, ``(d - low) / (high - low)``; every row lands inside, but ``d`` is
  then a product of two modelled variables and its own distribution is only approximately kept (KS 0.013 -> 0.05
  for a loan bounded by the income);
* ``gap_above`` / ``gap_below``: its distance to its one-sided bound, ``high - d`` or ``d - low``, with the gap's own fitted marginal;
  right when the slack itself is the natural quantity (interest paid below the principal paid);
* ``own``: ``d`` itself with its own marginal and normal score, moved onto the bound only on the rows where the
  drawn value crosses it (identity wherever the rule is slack): exact when the copula rarely crosses the bound.

`choose_form` decides per column on the real rows, by which reproduces both the column's marginal and its slack to
the bound on held-out rows (half the rows), simulating the column's Gaussian copula with its bounds: a few
thousand draws, no engine fit. Only the chosen name is stored.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..dependence import average_ranks

FORMS = ("fraction", "gap_above", "gap_below", "own")  # gap_above: d = low + gap; gap_below: d = high - gap
SIMULATED_ROWS = 4_000


def encode(form: str, value: np.ndarray, low: np.ndarray, high: np.ndarray, floor: float, ceiling: float) -> np.ndarray:
    """The modelled variable of `value` (`low`/`high`: the rules' bounds per row, +-inf where none)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if form == "own":
            return value
        if form == "gap_above":
            return np.maximum(value - low, 0.0)
        if form == "gap_below":
            return np.maximum(high - value, 0.0)
        low, high = np.fmax(low, floor), np.fmin(high, ceiling)
        width = high - low
        fraction = np.clip(np.where(width > 0, (value - low) / width, 0.0), 0.0, 1.0)
        return np.where(np.isfinite(value), fraction, np.nan)


def decode(form: str, modelled: np.ndarray, low: np.ndarray, high: np.ndarray, floor: float, ceiling: float) -> np.ndarray:
    """Values back from the modelled variable, within the column's own range (the caller clips onto the rules);
    a gap whose bound is missing on a row counts from the column's own floor or ceiling."""
    if form == "fraction":
        low, high = np.fmax(low, floor), np.fmin(high, ceiling)
        return low + np.clip(modelled, 0, 1) * np.maximum(high - low, 0)
    if form == "gap_above":
        modelled = np.where(np.isfinite(low), low, floor) + np.maximum(modelled, 0.0)
    elif form == "gap_below":
        modelled = np.where(np.isfinite(high), high, ceiling) - np.maximum(modelled, 0.0)
    return np.clip(modelled, floor, ceiling)


def choose_form(value: np.ndarray, low: np.ndarray, high: np.ndarray, floor: float, ceiling: float,
                decimals: int | None, rng: np.random.Generator) -> str:
    """The form whose simulated twin, fitted on half the rows, is closest to the other half: KS of the column
    plus KS of its slack to the nearest bound (so piling values onto the bound is charged too)."""
    present = np.isfinite(value)
    has_low, has_high = np.isfinite(low[present]).any(), np.isfinite(high[present]).any()
    gap = {(True, False): "gap_above", (False, True): "gap_below"}.get((bool(has_low), bool(has_high)))
    forms = ["fraction", "own"] + ([gap] if gap and np.isfinite((low if has_low else high)[present]).all() else [])
    bounds = [bound for bound in (low, high) if np.isfinite(bound[present]).any()]
    rows = np.flatnonzero(present & np.all([np.isfinite(bound) for bound in bounds], axis=0))
    if len(rows) < 100 or len(forms) == 1:
        return "fraction"
    rows = rng.permutation(rows)
    fit, held = rows[: len(rows) // 2], rows[len(rows) // 2:]
    size = min(SIMULATED_ROWS, 4 * len(held))
    normals = rng.standard_normal((size, len(bounds) + 1))

    def slack(d, lo, hi):
        return np.fmin(np.where(np.isfinite(lo), d - lo, np.inf), np.where(np.isfinite(hi), hi - d, np.inf))

    scores = {}
    for form in forms:
        modelled = encode(form, value[fit], low[fit], high[fit], floor, ceiling)
        columns = [bound[fit] for bound in bounds] + [modelled]
        ranks = np.vstack([average_ranks(column) for column in columns]).T / (len(fit) + 1)  # as pandas lays it out
        with np.errstate(invalid="ignore", divide="ignore"):  # a constant bound: no correlation
            correlation = np.nan_to_num(np.corrcoef(special.ndtri(ranks).T))
        np.fill_diagonal(correlation, 1.0)
        try:
            latent = normals @ np.linalg.cholesky(correlation + 1e-9 * np.eye(len(columns))).T
        except np.linalg.LinAlgError:
            continue
        # the inverse empirical CDF: real values, so a discrete column is compared with values on its own grid
        drawn = [np.sort(column)[np.clip(np.ceil(special.ndtr(latent[:, j]) * len(column)).astype(int) - 1, 0,
                                         len(column) - 1)] for j, column in enumerate(columns)]
        sim_low = drawn[0] if has_low else np.full(size, -np.inf)
        sim_high = drawn[len(bounds) - 1] if has_high else np.full(size, np.inf)
        twin = np.clip(decode(form, drawn[-1], sim_low, sim_high, floor, ceiling), sim_low, sim_high)
        twin = twin if decimals is None else np.round(twin, decimals)  # as the engine writes it
        scores[form] = (_ks(twin, value[held])
                        + _ks(slack(twin, sim_low, sim_high), slack(value[held], low[held], high[held])))
    return min(scores, key=scores.get) if scores else "fraction"


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov D (the statistic only: scipy's exact p-value costs more than the search)."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return float(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b)).max())
