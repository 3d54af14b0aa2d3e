"""Attacks on a saved model, as an attacker holding model.json would run them; shared by the tests and
bench/bench_model_privacy.py.

* `moving_average_leaks`: how many moving averages of 1..10 consecutive sorted training values of a numeric column
  appear verbatim among the numbers the model stores for that column on its own scale (its spec, its variables'
  marginals; `describe()` holds only kinds, families, counts and shares). Values repeated on at least k rows (point masses such as zero debt, category-like
  numbers) are not personal and are left out.
* `rebuild_sorted_column`: the attack of the old grid: consecutive knots x[i+L] - x[i] = L (s[i+1] - s[i]) give
  the sorted column from its L largest values; counts the rebuilt values that equal a rare training value.
* `differencing_error`: an attacker who knows every other row (so knows the model without the borrower) reads
  the block mean holding the borrower from the model fitted with them and solves for the value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WINDOWS = range(1, 11)


def numbers_in(value) -> list[float]:
    """Every number in a nested JSON-like structure."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float, np.number)):
        return [float(value)]
    if isinstance(value, dict):
        return [number for item in value.values() for number in numbers_in(item)]
    if isinstance(value, (list, tuple)):
        return [number for item in value for number in numbers_in(item)]
    return []


SHARES = ("u_points", "probabilities", "atom_probabilities", "fit_statistic", "p_value", "pooled")


MATCH_DIGITS = 11


def stored_numbers(model: dict, column: str) -> np.ndarray:
    """The numbers on the column's own scale that a saved model (`engine.to_dict()`) holds about one column
    (shares, probabilities, test statistics and counts left out: they are not values of the column)."""
    parts = [{"value": spec.get("value")} for spec in model["columns"] if spec["name"] == column]  # the rest: formats
    formats = (model.get("rules") or {}).get("formats", {}).get(column, {})  # a rule-bound column's own range
    # the marginal, when it is on the column's scale: a column kept inside an order rule as its fraction or its
    # gap to its bound has its marginal on that scale (a gap of 125 seen on many rows is no average of amounts)
    # (a column computed by a ratio rule has formats but no form: its marginal is its residual's, 0.0012 on many rows)
    own_scale = not formats or formats.get("form") == "own"
    parts += [variable["marginal"] for variable in model["variables"] if variable["column"] == column
              and variable["role"] == "value" and own_scale]  # the null indicator: 0, 1
    parts.append({key: formats[key] for key in ("floor", "ceiling") if key in formats})
    parts = [{key: value for key, value in part.items() if key not in SHARES} for part in parts]
    return np.unique(np.asarray(numbers_in(parts), dtype=float))


def rare_sorted_values(values: pd.Series, k: int = 5) -> tuple[np.ndarray, set]:
    """The column's sorted numeric values, and the set of values seen on at least k rows (not personal)."""
    numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    unique, counts = np.unique(numbers, return_counts=True)
    return np.sort(numbers), set(unique[counts >= k].tolist())


def moving_average_leaks(real: pd.DataFrame, model: dict, k: int = 5) -> dict:
    """Per numeric column: the distinct 1..10-value moving averages of the sorted column (frequent values left
    out), and how many of them the model stores exactly (rounded to MATCH_DIGITS significant digits on both sides)."""
    out = {}
    for spec in model["columns"]:
        name = spec["name"]
        if spec["kind"] not in ("continuous", "integer", "discrete"):
            continue
        ordered, frequent = rare_sorted_values(real[name], k)
        if len(ordered) == 0:
            continue
        # 11 significant digits: a stored average survives a cumulative sum's float error (about 1e-12 of the
        # value), while a noisy knot meets one of ~30,000 averages by chance far less often than at 9 (the lending
        # table's paid_interest knot 550.42142938 met a 7-value average, 550.42142857, at 9 digits)
        stored = set(_rounded(stored_numbers(model, name), MATCH_DIGITS).tolist())
        cumulative = np.concatenate([[0.0], np.cumsum(ordered)])
        averages = np.unique(np.concatenate([(cumulative[w:] - cumulative[:-w]) / w for w in WINDOWS if w <= len(ordered)]))
        frequent = set(_rounded(np.array(sorted(frequent)), MATCH_DIGITS).tolist())
        averages = [value for value in _rounded(averages, MATCH_DIGITS).tolist() if value not in frequent]
        hits = int(sum(value in stored for value in averages))
        out[name] = {"moving_averages": int(len(averages)), "stored_exactly": hits}
    return out


def rebuild_sorted_column(real: pd.DataFrame, model: dict, column: str, window: int = 5) -> dict:
    """Rebuild the sorted column from the stored grid and its `window - 1` largest values (known to the attacker):
    s[i] = s[i + L] - L (x[i + 1] - x[i]), read backwards from the top of the grid's continuous part (the point
    masses, which the attacker sees, taken out of both). Counts the rebuilt values that equal the true value at
    their rank: exact recoveries, not coincidences with some other row."""
    marginal = [variable["marginal"] for variable in model["variables"]
                if variable["column"] == column and variable["role"] == "value"][0]
    atoms = np.asarray(marginal.get("atoms", []), dtype=float)
    numbers = pd.to_numeric(real[column], errors="coerce").dropna().to_numpy(dtype=float)
    ordered = np.sort(numbers[~np.isin(numbers, atoms)])
    knots = np.asarray(marginal.get("x_points", []), dtype=float)
    knots = np.sort(knots[~np.isin(knots, atoms)])
    if len(knots) < 2 or len(ordered) < window:
        return {"rebuilt": 0, "recovered_exactly": 0}
    rebuilt = list(ordered[-(window - 1):])
    for step in (window * np.diff(knots))[::-1]:
        rebuilt.insert(0, rebuilt[window - 2] - step)
    guesses = _rounded(np.asarray(rebuilt[: len(rebuilt) - (window - 1)]))
    truth = _rounded(ordered[: len(ordered) - (window - 1)][-len(guesses):]) if len(guesses) else np.array([])
    matched = len(truth)
    return {"rebuilt": int(len(guesses)), "recovered_exactly": int((guesses[-matched:] == truth).sum()) if matched else 0}


def differencing_error(real: pd.DataFrame, column: str, fit) -> dict:
    """The value of the borrower with the column's largest value, from the model fitted with them
    (`fit(frame) -> model dict`) by an attacker who knows every other row. Such an attacker needs no second
    model (the model without the borrower is what it can compute itself, and its noise is independent): it
    recomputes the top block's other members, reads the stored number closest to the true top-block mean (an
    oracle choice: no real attacker does better) and solves for the value. Returns the value, the estimate and
    the relative error."""
    from twin_pipeline.engine.marginals import MIN_BLOCK_RECORDS, MAX_KNOTS

    target_row = real[column].idxmax()
    value = float(real.loc[target_row, column])
    with_target = fit(real)
    numbers = pd.to_numeric(real[column], errors="coerce").dropna().to_numpy(dtype=float)
    atoms = [variable["marginal"]["atoms"] for variable in with_target["variables"]
             if variable["column"] == column and variable["role"] == "value"][0]
    rest = np.sort(numbers[~np.isin(numbers, atoms)])
    blocks = int(np.clip(len(rest) // MIN_BLOCK_RECORDS, 1, MAX_KNOTS - 1))
    top_start = int(round((blocks - 0.5) * len(rest) / blocks))
    others = rest[top_start:-1]
    true_mean = rest[top_start:].mean()
    stored = stored_numbers(with_target, column)
    read = stored[np.argmin(np.abs(stored - true_mean))]
    estimate = float(read * (len(others) + 1) - others.sum())
    return {"value": value, "estimate": estimate, "relative_error": abs(estimate - value) / abs(value),
            "block_size": int(len(others) + 1)}


def _rounded(values: np.ndarray, digits: int = 9) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.array([float(f"{value:.{digits}g}") for value in values])
